//! Registration tokens (issue 11): Synapse's admin API (`/_synapse/admin/v1/registration_tokens`
//! with `uses_allowed`, `expiry_time`, `pending`, `completed`), the client's validity endpoint, and
//! registration requiring a token (`[registration] requires_token`): a token reserved by a
//! registration in progress counts as used until that session ends.

mod common;

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TOKENS: &str = "/_synapse/admin/v1/registration_tokens";

async fn register_with(server: &TestServer, user: &str, token: &str) -> (StatusCode, Value) {
    let body = json!({ "username": user, "password": "secret-password" });
    let (status, first) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{first}");
    assert_eq!(
        first["flows"],
        json!([{ "stages": ["m.login.registration_token"] }])
    );
    let mut body = body;
    body["auth"] = json!({ "type": "m.login.registration_token", "token": token,
                           "session": first["session"] });
    server
        .call(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(body),
        )
        .await
}

async fn valid(server: &TestServer, token: &str) -> bool {
    let body = server
        .http
        .get(format!(
            "{}/_matrix/client/v1/register/m.login.registration_token/validity?token={}",
            server.base,
            enc(token)
        ))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    body["valid"].as_bool().unwrap()
}

#[tokio::test]
async fn admins_hand_out_tokens_that_registration_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    let open = TestServer::start_with(config.clone()).await;
    let (_, root) = open.register("root").await;
    open.stop().await;
    parvis::services::admin::make_admin::make_admin(config.clone(), "@root:test.local").unwrap();
    config.registration.requires_token = true;
    config.registration.tokens = vec!["static-one".into()];
    let server = TestServer::start_with(config).await;

    // Creating: checked, then shown as Synapse does.
    let created = server
        .post(
            &format!("{TOKENS}/new"),
            &root,
            json!({ "token": "abc", "uses_allowed": 1 }),
        )
        .await;
    assert_eq!(
        created,
        json!({ "token": "abc", "uses_allowed": 1, "pending": 0, "completed": 0, "expiry_time": null })
    );
    for bad in [
        json!({ "token": "abc" }),
        json!({ "token": "has space" }),
        json!({ "length": 0 }),
        json!({ "uses_allowed": -1 }),
        json!({ "expiry_time": 1 }),
    ] {
        let (status, body) = server
            .call(
                Method::POST,
                &format!("{TOKENS}/new"),
                Some(&root),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(
            (status, body["errcode"].as_str()),
            (StatusCode::BAD_REQUEST, Some("M_INVALID_PARAM")),
            "{bad}"
        );
    }
    let random = server
        .post(&format!("{TOKENS}/new"), &root, json!({ "length": 24 }))
        .await;
    assert_eq!(random["token"].as_str().unwrap().len(), 24);
    let expiring = server
        .post(
            &format!("{TOKENS}/new"),
            &root,
            json!({ "token": "soon", "expiry_time": parvis::util::now_ms() + 1_000 }),
        )
        .await;
    assert_eq!(expiring["token"], "soon");

    // The validity endpoint; a registration in progress holds the only use of "abc".
    assert!(valid(&server, "abc").await && valid(&server, "static-one").await);
    assert!(!valid(&server, "nope").await);
    let services = common::federation::services(&server);
    assert!(
        services
            .registration_tokens
            .reserve("abc", "someone-else")
            .unwrap()
    );
    let shown = server.get(&format!("{TOKENS}/abc"), &root).await;
    assert_eq!(
        (shown["pending"].clone(), shown["completed"].clone()),
        (json!(1), json!(0))
    );
    assert!(!valid(&server, "abc").await);
    let (status, body) = register_with(&server, "alice", "abc").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = register_with(&server, "alice", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // One more use: alice registers with it, and it is used up.
    let changed = server
        .put(
            &format!("{TOKENS}/abc"),
            &root,
            json!({ "uses_allowed": 2 }),
        )
        .await;
    assert_eq!(changed["uses_allowed"], 2);
    let (status, body) = register_with(&server, "alice", "abc").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@alice:test.local");
    let shown = server.get(&format!("{TOKENS}/abc"), &root).await;
    assert_eq!(
        (shown["pending"].clone(), shown["completed"].clone()),
        (json!(1), json!(1))
    );
    let (status, _) = register_with(&server, "bob", "abc").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Unlimited again (null), then bob registers; the static token works too.
    server
        .put(
            &format!("{TOKENS}/abc"),
            &root,
            json!({ "uses_allowed": null }),
        )
        .await;
    assert_eq!(register_with(&server, "bob", "abc").await.0, StatusCode::OK);
    assert_eq!(
        register_with(&server, "carol", "static-one").await.0,
        StatusCode::OK
    );

    // Expired tokens are invalid; the list filters by validity.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert!(!valid(&server, "soon").await);
    let invalid = server.get(&format!("{TOKENS}?valid=false"), &root).await;
    let names: Vec<&str> = invalid["registration_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["soon"]);
    let all = server.get(TOKENS, &root).await;
    assert_eq!(all["registration_tokens"].as_array().unwrap().len(), 3);

    // Deleting.
    let (status, body) = server
        .call(Method::DELETE, &format!("{TOKENS}/abc"), Some(&root), None)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = server
            .call(method, &format!("{TOKENS}/abc"), Some(&root), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    drop(services);
    server.stop().await;
}
