//! What the server tells about itself and its accounts beyond the core: support contacts
//! (`/.well-known/matrix/support`), TURN credentials (`/voip/turnServer`), registration token
//! validity, `/refresh`, and the third-party identifier endpoints of a server that keeps none
//! (`m.3pid_changes` off in `/capabilities`).

mod common;

use common::{TestServer, config, enc};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn support_turn_and_registration_tokens_follow_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.support.contacts = vec![parvis::config::SupportContact {
        role: "m.role.admin".into(),
        matrix_id: Some("@admin:test.local".try_into().unwrap()),
        email_address: None,
    }];
    c.support.support_page = Some("https://help.test.local".into());
    c.voip.turn_uris = vec!["turn:turn.test.local:3478?transport=udp".into()];
    c.voip.turn_shared_secret = Some("north".into());
    c.voip.turn_user_lifetime_secs = 600;
    c.registration.tokens = vec!["let-me-in".into()];
    let server = TestServer::start_with(c).await;

    let (status, support) = server
        .call(Method::GET, "/.well-known/matrix/support", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{support}");
    assert_eq!(
        support,
        json!({ "contacts": [{ "role": "m.role.admin", "matrix_id": "@admin:test.local" }], "support_page": "https://help.test.local" })
    );

    let validity = "/_matrix/client/v1/register/m.login.registration_token/validity";
    let (_, body) = server
        .call(
            Method::GET,
            &format!("{validity}?token=let-me-in"),
            None,
            None,
        )
        .await;
    assert_eq!(body, json!({ "valid": true }));
    let (_, body) = server
        .call(Method::GET, &format!("{validity}?token=guess"), None, None)
        .await;
    assert_eq!(body, json!({ "valid": false }));
    let (status, body) = server.call(Method::GET, validity, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a missing token: {body}");

    let (alice_id, alice) = {
        let body = json!({ "username": "alice", "password": "secret-password" });
        let (_, first) = server
            .call(
                Method::POST,
                "/_matrix/client/v3/register",
                None,
                Some(body),
            )
            .await;
        assert!(first["session"].is_string(), "{first}");
        let auth = json!({ "type": "m.login.registration_token", "token": "let-me-in", "session": first["session"] });
        let body = json!({ "username": "alice", "password": "secret-password", "auth": auth });
        let (status, done) = server
            .call(
                Method::POST,
                "/_matrix/client/v3/register",
                None,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        (
            done["user_id"].as_str().unwrap().to_owned(),
            done["access_token"].as_str().unwrap().to_owned(),
        )
    };
    let turn = server
        .get("/_matrix/client/v3/voip/turnServer", &alice)
        .await;
    assert_eq!(
        turn["uris"],
        json!(["turn:turn.test.local:3478?transport=udp"]),
        "{turn}"
    );
    assert_eq!(turn["ttl"], 600);
    let username = turn["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, alice_id);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 590..=now + 610).contains(&expiry.parse::<u64>().unwrap()),
        "{username}"
    );
    assert_eq!(
        turn["password"].as_str().unwrap().len(),
        28,
        "base64 of an HMAC-SHA1: {turn}"
    );
    server.stop().await;
}

#[tokio::test]
async fn without_configuration_support_is_404_and_turn_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (status, body) = server
        .call(Method::GET, "/.well-known/matrix/support", None, None)
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_NOT_FOUND")),
        "{body}"
    );
    assert_eq!(
        server
            .get("/_matrix/client/v3/voip/turnServer", &alice)
            .await,
        json!({})
    );
    server.stop().await;
}

#[tokio::test]
async fn third_party_identifiers_are_not_kept_and_guessed_refresh_tokens_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let caps = server.get("/_matrix/client/v3/capabilities", &alice).await;
    assert_eq!(
        caps["capabilities"]["m.3pid_changes"]["enabled"], false,
        "{caps}"
    );
    assert_eq!(
        server.get("/_matrix/client/v3/account/3pid", &alice).await,
        json!({ "threepids": [] })
    );
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/account/3pid/add",
            Some(&alice),
            Some(json!({ "client_secret": "s", "sid": "1" })),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")),
        "{body}"
    );
    let removed = server
        .post(
            "/_matrix/client/v3/account/3pid/delete",
            &alice,
            json!({ "medium": "email", "address": "a@test.local" }),
        )
        .await;
    assert_eq!(removed, json!({ "id_server_unbind_result": "no-support" }));
    // A malformed body is the spec's error, before anything else.
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/account/3pid/delete",
            Some(&alice),
            Some(json!({ "medium": "email" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let request = json!({ "client_secret": "s3cr3t", "email": "a@test.local", "send_attempt": 1 });
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/register/email/requestToken",
            None,
            Some(request.clone()),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_THREEPID_DENIED")),
        "{body}"
    );
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/account/password/email/requestToken",
            None,
            Some(request),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_THREEPID_NOT_FOUND")),
        "{body}"
    );

    // A login that asks for a refresh token gets one (tests/sessions.rs uses it); a guessed
    // one is unknown.
    let login = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": alice_id }, "password": "secret-password", "refresh_token": true });
    let (status, body) = server
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(login))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["refresh_token"].is_string() && body["expires_in_ms"].is_u64(),
        "{body}"
    );
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/refresh",
            None,
            Some(json!({ "refresh_token": "guess" })),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_UNKNOWN_TOKEN")),
        "{body}"
    );

    // No protocol is served.
    assert_eq!(
        server
            .get("/_matrix/client/v3/thirdparty/protocols", &alice)
            .await,
        json!({})
    );
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/_matrix/client/v3/thirdparty/protocol/{}", enc("irc")),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

/// `GET /health` answers 200 `OK` once the database answers (the federation listener's: in
/// `federation_keys.rs`).
#[tokio::test]
async fn health_answers_ok() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let res = server
        .http
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "OK");
    server.stop().await;
}
