//! E-mail addresses of accounts with a real SMTP server (aiosmtpd on loopback, requiring STARTTLS
//! and AUTH, `tests/common/smtp.rs`): the validation mail and its link, adding, listing and
//! removing an address, login by address, a forgotten password reset by mail, registration that
//! requires an address, and a server whose certificate is not trusted getting nothing.

mod common;

use common::{
    TestServer, assert_error,
    federation::free_port,
    password_login,
    smtp::{self, SmtpSink, link_in},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Setup {
    server: TestServer,
    sink: SmtpSink,
    _data: tempfile::TempDir,
}

async fn setup(require_email: bool, trust_the_sink: bool) -> Setup {
    let sink = SmtpSink::start();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut config = common::config(data.path());
    config.listen.client = format!("127.0.0.1:{port}").parse().unwrap();
    config.listen.public_base_url = Some(format!("http://127.0.0.1:{port}"));
    config.registration.require_email = require_email;
    let email = &mut config.email;
    email.enabled = true;
    email.smtp_host = "localhost".into();
    email.smtp_port = sink.port;
    email.require_transport_security = true;
    email.smtp_user = Some(smtp::USER.into());
    email.smtp_pass = Some(smtp::PASSWORD.into());
    if trust_the_sink {
        email.ca_files = vec![sink.ca_file.clone()];
    }
    email.notif_from = "Parvis <noreply@test.local>".into();
    email.app_name = "Parvis".into();
    Setup {
        server: TestServer::start_with(config).await,
        sink,
        _data: data,
    }
}

async fn request_token(
    server: &TestServer,
    kind: &str,
    token: Option<&str>,
    secret: &str,
    email: &str,
    attempt: u64,
) -> (StatusCode, Value) {
    server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/{kind}/email/requestToken"),
            token,
            Some(json!({ "client_secret": secret, "email": email, "send_attempt": attempt })),
        )
        .await
}

fn password_auth(user: &str, session: &str) -> Value {
    json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user },
            "password": "secret-password", "session": session })
}

/// A UIA request twice: the first gets the session, the second passes `auth(session)`.
async fn with_uia(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    body: Value,
    auth: impl Fn(&str) -> Value,
) -> (StatusCode, Value) {
    let (status, first) = server
        .call(Method::POST, path, token, Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{first}");
    let session = first["session"].as_str().unwrap();
    let mut body = body;
    body["auth"] = auth(session);
    server.call(Method::POST, path, token, Some(body)).await
}

#[tokio::test]
async fn email_addresses_are_validated_added_used_to_log_in_and_reset_passwords() {
    let s = setup(false, true).await;
    let server = &s.server;
    let (_, alice) = server.register("alice").await;
    let caps = server.get("/_matrix/client/v3/capabilities", &alice).await;
    // `m.3pid_changes` is on (absent means on; a server without e-mail says `false`).
    assert_ne!(
        caps["capabilities"]["m.3pid_changes"]["enabled"],
        json!(false),
        "{caps}"
    );

    // The validation mail: to the canonical address, over STARTTLS, after AUTH.
    let (status, body) = request_token(
        server,
        "account/3pid",
        Some(&alice),
        "cs-1",
        "Alice@Example.org",
        1,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sid = body["sid"].as_str().unwrap().to_owned();
    let mail = s.sink.wait_for(1).await;
    assert!(mail.contains("X-Sink-Rcpt-To: alice@example.org"), "{mail}");
    assert!(
        mail.contains("X-Sink-Tls: yes") && mail.contains("X-Sink-Auth: yes"),
        "{mail}"
    );
    let link = link_in(&mail);
    assert!(
        link.contains("/_parvis/client/email/validate?") && link.contains(&sid),
        "{link}"
    );
    // The same attempt again: the same session, no second mail.
    let (_, again) = request_token(
        server,
        "account/3pid",
        Some(&alice),
        "cs-1",
        "alice@example.org",
        1,
    )
    .await;
    assert_eq!(again["sid"], sid.as_str());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(s.sink.mails().len(), 1);

    // Adding before the link is opened fails; a wrong token does not validate.
    let add = json!({ "client_secret": "cs-1", "sid": sid });
    let (status, body) = with_uia(
        server,
        "/_matrix/client/v3/account/3pid/add",
        Some(&alice),
        add.clone(),
        |session| password_auth("alice", session),
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_THREEPID_AUTH_FAILED")),
        "{body}"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let forged = link.replace("token=", "token=x");
    assert_eq!(
        http.get(&forged).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        http.get(&link).send().await.unwrap().status(),
        StatusCode::OK
    );
    let (status, body) = with_uia(
        server,
        "/_matrix/client/v3/account/3pid/add",
        Some(&alice),
        add.clone(),
        |session| password_auth("alice", session),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = server.get("/_matrix/client/v3/account/3pid", &alice).await;
    assert_eq!(list["threepids"][0]["address"], "alice@example.org");
    assert_eq!(list["threepids"][0]["medium"], "email");
    // The session is spent: it adds nothing twice.
    let (status, _) = with_uia(
        server,
        "/_matrix/client/v3/account/3pid/add",
        Some(&alice),
        add,
        |session| password_auth("alice", session),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Another account cannot take the address.
    let (_, bob) = server.register("bob").await;
    let (status, body) = request_token(
        server,
        "account/3pid",
        Some(&bob),
        "cs-b",
        "alice@example.org",
        1,
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "M_THREEPID_IN_USE");
    let (status, body) = request_token(
        server,
        "account/3pid",
        Some(&bob),
        "cs-b",
        "not an address",
        1,
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    // Login by address.
    let by_mail = json!({ "type": "m.login.password", "password": "secret-password",
                          "identifier": { "type": "m.id.thirdparty", "medium": "email", "address": "ALICE@example.org" } });
    let (status, login) = server.login(by_mail.clone()).await;
    assert_eq!(
        (status, login["user_id"].as_str()),
        (StatusCode::OK, Some("@alice:test.local")),
        "{login}"
    );

    // A forgotten password: unknown address refused; the mail's link, then the new password.
    let (status, body) = request_token(
        server,
        "account/password",
        None,
        "cs-r",
        "nobody@example.org",
        1,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "M_THREEPID_NOT_FOUND",
    );
    let (status, body) = request_token(
        server,
        "account/password",
        None,
        "cs-r",
        "alice@example.org",
        1,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reset_sid = body["sid"].as_str().unwrap().to_owned();
    let mail = s.sink.wait_for(2).await;
    assert!(mail.contains("Password reset"), "{mail}");
    let reset = json!({ "new_password": "a-new-password" });
    let creds = |session: &str| {
        json!({ "type": "m.login.email.identity", "session": session,
                                        "threepid_creds": { "sid": reset_sid, "client_secret": "cs-r" } })
    };
    let (status, body) = with_uia(
        server,
        "/_matrix/client/v3/account/password",
        None,
        reset.clone(),
        creds,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "not before the link: {body}"
    );
    http.get(link_in(&mail)).send().await.unwrap();
    let (status, body) = with_uia(
        server,
        "/_matrix/client/v3/account/password",
        None,
        reset.clone(),
        creds,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server.whoami(&alice).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "every session ended");
    assert_eq!(
        server
            .login(password_login("alice", "secret-password"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, login) = server
        .login(password_login("alice", "a-new-password"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let alice = login["access_token"].as_str().unwrap().to_owned();
    // The link resets once.
    let (status, _) = with_uia(
        server,
        "/_matrix/client/v3/account/password",
        None,
        json!({ "new_password": "third-password" }),
        creds,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Removed: no longer listed, no longer a login.
    let (status, _) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/account/3pid/delete",
            Some(&alice),
            Some(json!({ "medium": "email", "address": "alice@example.org" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server.get("/_matrix/client/v3/account/3pid", &alice).await["threepids"],
        json!([])
    );
    assert_eq!(server.login(by_mail).await.0, StatusCode::FORBIDDEN);

    s.server.stop().await;
}

#[tokio::test]
async fn registration_can_require_a_validated_address() {
    let s = setup(true, true).await;
    let server = &s.server;
    let (status, first) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(json!({ "username": "carol", "password": "secret-password" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        first["flows"],
        json!([{ "stages": ["m.login.email.identity"] }])
    );
    let session = first["session"].as_str().unwrap().to_owned();
    // The dummy stage is not a way around it.
    let (status, _) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(json!({ "username": "carol", "password": "secret-password",
                           "auth": { "type": "m.login.dummy", "session": session } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) =
        request_token(server, "register", None, "cs-c", "carol@example.org", 1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sid = body["sid"].as_str().unwrap().to_owned();
    let mail = s.sink.wait_for(1).await;
    reqwest::get(link_in(&mail)).await.unwrap();
    let (status, body) = server
        .call(Method::POST, "/_matrix/client/v3/register", None,
              Some(json!({ "username": "carol", "password": "secret-password",
                           "auth": { "type": "m.login.email.identity", "session": session,
                                     "threepid_creds": { "sid": sid, "client_secret": "cs-c" } } })))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let carol = body["access_token"].as_str().unwrap();
    let list = server.get("/_matrix/client/v3/account/3pid", carol).await;
    assert_eq!(list["threepids"][0]["address"], "carol@example.org");
    // The address is taken now.
    let (status, body) =
        request_token(server, "register", None, "cs-d", "carol@example.org", 1).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "M_THREEPID_IN_USE");
    s.server.stop().await;
}

#[tokio::test]
async fn a_mail_server_with_an_untrusted_certificate_gets_nothing() {
    let s = setup(false, false).await;
    let (_, alice) = s.server.register("alice").await;
    let (status, body) = request_token(
        &s.server,
        "account/3pid",
        Some(&alice),
        "cs-1",
        "alice@example.org",
        1,
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("M_UNKNOWN")),
        "{body}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(s.sink.mails().is_empty());
    s.server.stop().await;
}
