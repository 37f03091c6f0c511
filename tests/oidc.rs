//! Single sign-on with a real OpenID provider (node-oidc-provider on loopback,
//! `tests/common/oidc.rs`): `/login` advertises the providers, the browser flow (redirect, the
//! provider's login form, the callback, the new-account page, the login token handed to the
//! client), attribute requirements, taken usernames, existing accounts, clients outside the
//! whitelist, user-interactive auth through the fallback page, and back-channel logout.

mod common;

use common::{
    TestServer, assert_error,
    federation::free_port,
    oidc::{Browser, CLIENT_ID, CLIENT_SECRET, OidcProvider, Page},
};
use parvis::services::sso::config::OidcProviderConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The client's redirect URL (in `client_whitelist`; never fetched).
const CLIENT: &str = "http://client.test/done";

struct Setup {
    server: TestServer,
    provider: OidcProvider,
    _data: tempfile::TempDir,
}

/// A server on a fixed port (the provider must know its callback) with two providers on the one
/// OpenID provider: `company` (members of the `matrix` group, new accounts only) and `staff`
/// (anyone; it may sign into existing accounts).
async fn setup(passwords: bool) -> Setup {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(
        &format!("{base}/_parvis/client/oidc/callback"),
        &format!("{base}/_parvis/client/oidc/backchannel_logout"),
    );
    let mut config = common::config(data.path());
    config.listen.client = format!("127.0.0.1:{port}").parse().unwrap();
    config.listen.public_base_url = Some(base);
    config.password_config.enabled = passwords;
    config.sso.client_whitelist = vec!["http://client.test/".into()];
    let idp = |id: &str, name: &str, extra: Value| -> OidcProviderConfig {
        let mut value = json!({
            "idp_id": id, "idp_name": name, "issuer": provider.issuer,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "scopes": ["profile", "email", "groups"],
            "backchannel_logout_enabled": true,
        });
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(value).unwrap()
    };
    config.sso.oidc_providers = vec![
        idp(
            "company",
            "Company",
            json!({ "attribute_requirements": [{ "attribute": "groups", "value": "matrix" }] }),
        ),
        idp("staff", "Staff", json!({ "allow_existing_users": true })),
    ];
    Setup {
        server: TestServer::start_with(config).await,
        provider,
        _data: data,
    }
}

/// The login token in the redirect to the client.
fn login_token(page: &Page) -> String {
    assert_eq!(page.status, StatusCode::FOUND, "{page:?}");
    let location = page.location.as_deref().unwrap();
    assert!(location.starts_with(CLIENT), "{location}");
    location.split("loginToken=").nth(1).unwrap().to_owned()
}

async fn token_login(server: &TestServer, token: &str) -> (StatusCode, Value) {
    server
        .login(json!({ "type": "m.login.token", "token": token }))
        .await
}

/// From `/login/sso/redirect/{idp}` through the provider's login as `login` to where Parvis sends
/// the browser (the client, or one of its pages).
async fn sign_in(browser: &mut Browser, s: &Setup, idp: &str, login: &str, client: &str) -> Page {
    let url = format!(
        "{}/_matrix/client/v3/login/sso/redirect/{idp}?redirectUrl={}",
        s.server.base,
        common::enc(client)
    );
    let page = browser.get(&url, CLIENT).await;
    browser.provider_login(page, login, CLIENT).await
}

#[tokio::test]
async fn sso_sign_in_creates_links_and_logs_into_accounts() {
    let s = setup(true).await;
    let server = &s.server;

    // `/login` lists both providers, and the login token type that ends the flow.
    let (status, types) = server
        .call(Method::GET, "/_matrix/client/v3/login", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let flows = types["flows"].as_array().unwrap();
    let sso = flows
        .iter()
        .find(|f| f["type"] == "m.login.sso")
        .expect("m.login.sso");
    let ids: Vec<&str> = sso["identity_providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["company", "staff"]);
    assert_eq!(sso["identity_providers"][0]["name"], "Company");
    assert!(flows.iter().any(|f| f["type"] == "m.login.token"));
    assert!(flows.iter().any(|f| f["type"] == "m.login.password"));

    // Bad requests: no redirectUrl, an unknown provider.
    let (status, body) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/login/sso/redirect",
            None,
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
    let (status, body) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/login/sso/redirect/nobody?redirectUrl=http%3A%2F%2Fclient.test%2F",
            None,
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Two providers and no choice: a page links to each.
    let mut browser = Browser::new();
    let picker = browser
        .get(
            &format!(
                "{}/_matrix/client/v3/login/sso/redirect?redirectUrl={}",
                server.base,
                common::enc(CLIENT)
            ),
            CLIENT,
        )
        .await;
    assert_eq!(picker.status, StatusCode::OK);
    assert!(
        picker
            .link_with("/redirect/company")
            .contains("redirectUrl=http%3A%2F%2Fclient%2Etest%2Fdone")
    );
    assert!(picker.link_with("/redirect/staff").contains("/staff?"));

    // alice's first sign-in: the new-account page names her account; she confirms; the
    // whitelisted client gets a login token; the token logs in once.
    let page = sign_in(&mut browser, &s, "company", "alice", CLIENT).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(page.body.contains("@alice:test.local"), "{}", page.body);
    assert!(
        !page.body.contains("name=\"username\""),
        "the claim gives the username"
    );
    let done = browser.post(&page.form_action(), &[], CLIENT).await;
    let token = login_token(&done);
    let (status, login) = token_login(server, &token).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["user_id"], "@alice:test.local");
    let alice = login["access_token"].as_str().unwrap().to_owned();
    let profile = server
        .get("/_matrix/client/v3/profile/@alice:test.local", &alice)
        .await;
    assert_eq!(profile["displayname"], "Alice Liddell");
    let (status, again) = token_login(server, &token).await;
    assert_error(status, &again, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // Her next sign-in goes straight to the client: the account is linked.
    let page = sign_in(&mut browser, &s, "company", "alice", CLIENT).await;
    let (status, login) = token_login(server, &login_token(&page)).await;
    assert_eq!(
        (status, login["user_id"].as_str()),
        (StatusCode::OK, Some("@alice:test.local"))
    );

    // A client outside the whitelist: a page names it and the user continues by hand.
    let page = sign_in(
        &mut browser,
        &s,
        "company",
        "alice",
        "https://elsewhere.test/app",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(page.body.contains("elsewhere.test"));
    let link = page.link_with("loginToken=");
    assert!(
        link.starts_with("https://elsewhere.test/app?loginToken="),
        "{link}"
    );

    // bob is not in the `matrix` group: refused, and no account is made.
    let mut bobs = Browser::new();
    let page = sign_in(&mut bobs, &s, "company", "bob", CLIENT).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{page:?}");
    let (status, _) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/profile/@bob:test.local",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // carol's provider gives no username: she chooses one; an invalid one is refused on the page.
    let mut carols = Browser::new();
    let page = sign_in(&mut carols, &s, "company", "carol", CLIENT).await;
    assert!(page.body.contains("name=\"username\""), "{}", page.body);
    let refused = carols
        .post(&page.form_action(), &[("username", "Carol C")], CLIENT)
        .await;
    assert_eq!(refused.status, StatusCode::OK);
    assert!(refused.body.contains("class=\"error\""), "{}", refused.body);
    let taken = carols
        .post(&page.form_action(), &[("username", "alice")], CLIENT)
        .await;
    assert!(taken.body.contains("taken"), "{}", taken.body);
    let done = carols
        .post(&page.form_action(), &[("username", "carol.c")], CLIENT)
        .await;
    let (status, login) = token_login(server, &login_token(&done)).await;
    assert_eq!(
        (status, login["user_id"].as_str()),
        (StatusCode::OK, Some("@carol.c:test.local"))
    );

    // dave already has a local account. `company` does not take over existing accounts: he must
    // choose another name. `staff` (allow_existing_users) signs him into it and links it.
    let (_, dave_token) = server.register("dave").await;
    let mut daves = Browser::new();
    let page = sign_in(&mut daves, &s, "company", "dave", CLIENT).await;
    assert!(
        page.body.contains("taken") && page.body.contains("name=\"username\""),
        "{}",
        page.body
    );
    let page = sign_in(&mut daves, &s, "staff", "dave", CLIENT).await;
    let (status, login) = token_login(server, &login_token(&page)).await;
    assert_eq!(
        (status, login["user_id"].as_str()),
        (StatusCode::OK, Some("@dave:test.local"))
    );
    let profile = server
        .get("/_matrix/client/v3/profile/@dave:test.local", &dave_token)
        .await;
    assert_eq!(
        profile["displayname"], "dave",
        "an existing account keeps its profile"
    );

    // A callback without the flow cookie (another browser, or a forged link) changes nothing.
    let forged = Browser::new()
        .get(
            &format!(
                "{}/_parvis/client/oidc/callback?code=x&state=y",
                server.base
            ),
            CLIENT,
        )
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    // Nor does a state that is not the cookie's.
    let start = browser
        .get(
            &format!(
                "{}/_matrix/client/v3/login/sso/redirect/company?redirectUrl={}",
                server.base,
                common::enc(CLIENT)
            ),
            "http://127.0.0.1",
        )
        .await;
    assert!(
        start
            .location
            .as_deref()
            .unwrap()
            .starts_with(&s.provider.issuer)
    );
    let wrong = browser
        .get(
            &format!(
                "{}/_parvis/client/oidc/callback?code=x&state=not-the-cookies",
                server.base
            ),
            CLIENT,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{wrong:?}");

    s.server.stop().await;
}

#[tokio::test]
async fn sso_users_confirm_with_the_provider_and_backchannel_logout_ends_sessions() {
    let s = setup(false).await;
    let server = &s.server;

    // Passwords are off: `/login` offers single sign-on only.
    let (_, types) = server
        .call(Method::GET, "/_matrix/client/v3/login", None, None)
        .await;
    assert!(
        !types["flows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["type"] == "m.login.password")
    );

    let mut browser = Browser::new();
    let page = sign_in(&mut browser, &s, "company", "alice", CLIENT).await;
    let done = browser.post(&page.form_action(), &[], CLIENT).await;
    let (_, login) = token_login(server, &login_token(&done)).await;
    let alice = login["access_token"].as_str().unwrap().to_owned();
    let first_device = login["device_id"].as_str().unwrap().to_owned();
    let page = sign_in(&mut browser, &s, "company", "alice", CLIENT).await;
    let (_, second) = token_login(server, &login_token(&page)).await;
    let second_device = second["device_id"].as_str().unwrap().to_owned();

    // Deleting a device asks for confirmation: single sign-on is the only flow.
    let delete = json!({ "devices": [second_device] });
    let (status, uia) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/delete_devices",
            Some(&alice),
            Some(delete.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(uia["flows"], json!([{ "stages": ["m.login.sso"] }]));
    let session = uia["session"].as_str().unwrap().to_owned();
    // The request alone cannot complete it.
    let (status, _) = server
        .call(Method::POST, "/_matrix/client/v3/delete_devices", Some(&alice),
              Some(json!({ "devices": [second_device], "auth": { "type": "m.login.sso", "session": session } })))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Someone signed in as another user at the provider cannot confirm alice's session.
    let fallback = format!(
        "{}/_matrix/client/v3/auth/m.login.sso/fallback/web?session={session}",
        server.base
    );
    let mut carols = Browser::new();
    let page = sign_in(&mut carols, &s, "company", "carol", CLIENT).await;
    carols
        .post(&page.form_action(), &[("username", "carol")], CLIENT)
        .await;
    let page = carols.get(&fallback, CLIENT).await;
    let confirm = page.link_with("/_parvis/client/oidc/confirm/company");
    let refused = carols.get(&confirm, CLIENT).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");

    // alice confirms (already signed in at the provider: straight back), then the request passes.
    let page = browser.get(&fallback, CLIENT).await;
    assert_eq!(page.status, StatusCode::OK);
    let confirmed = browser
        .get(
            &page.link_with("/_parvis/client/oidc/confirm/company"),
            CLIENT,
        )
        .await;
    let confirmed = browser.provider_login(confirmed, "alice", CLIENT).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{confirmed:?}");
    assert!(confirmed.body.contains("authDone"));
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/delete_devices",
            Some(&alice),
            Some(json!({ "devices": [second_device], "auth": { "session": session } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A logout token no provider signed: 400, nothing ends.
    let response = reqwest::Client::new()
        .post(format!(
            "{}/_parvis/client/oidc/backchannel_logout",
            server.base
        ))
        .form(&[("logout_token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, _) = server.whoami(&alice).await;
    assert_eq!(status, StatusCode::OK);

    // alice signs out at the provider: its back-channel logout ends her session here.
    let page = browser.provider_logout(&s.provider.issuer).await;
    assert!(
        page.status.is_success() || page.status.is_redirection(),
        "{page:?}"
    );
    let (status, body) = server.whoami(&alice).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_UNKNOWN_TOKEN")),
        "device {first_device}"
    );

    s.server.stop().await;
}
