//! Sessions (issue 12): refresh tokens (`refresh_token: true`, `POST /refresh`, expiring access
//! tokens), login with another device (`POST /login/get_token`, `m.login.token`), account locking
//! and suspension (the spec's admin endpoints and Synapse's), and the password settings
//! (`[password_config]`: policy, disabled passwords, no local database).

mod common;

use std::time::Duration;

use common::{TestServer, assert_error, enc, password_login};
use parvis::{config::Config, services::retention::lifetime::Lifetime};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `POST /register` once (no session): for bodies refused before user-interactive auth.
async fn register_once(server: &TestServer, body: Value) -> (StatusCode, Value) {
    server
        .call(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(body),
        )
        .await
}

/// `POST /refresh` with `token`.
async fn use_refresh_token(server: &TestServer, token: &str) -> (StatusCode, Value) {
    server
        .call(
            Method::POST,
            "/_matrix/client/v3/refresh",
            None,
            Some(json!({ "refresh_token": token })),
        )
        .await
}

/// The errcode of a request's answer, with its status.
async fn answer(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>) {
    let (status, body) = server.call(method, path, Some(token), body).await;
    (status, body["errcode"].as_str().map(str::to_owned))
}

/// A server whose `@root` is an admin, started with `config` changed by `change`; root's token.
async fn with_admin(
    dir: &std::path::Path,
    change: impl FnOnce(&mut Config),
) -> (TestServer, String) {
    let mut config = common::config(dir);
    change(&mut config);
    TestServer::start_with_admin(config).await
}

#[tokio::test]
async fn refresh_tokens_rotate_and_expired_access_tokens_soft_logout() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.sessions.access_token_lifetime = Lifetime(1_000);
    let server = TestServer::start_with(config.clone()).await;
    server.register("alice").await;

    // A client that does not ask gets a token that does not expire.
    let (_, plain) = server
        .login(password_login("alice", "secret-password"))
        .await;
    assert!(plain.get("refresh_token").is_none() && plain.get("expires_in_ms").is_none());

    let mut ask = password_login("alice", "secret-password");
    ask["refresh_token"] = json!(true);
    let (status, first) = server.login(ask).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["expires_in_ms"], 1_000, "{first}");
    let access = first["access_token"].as_str().unwrap().to_owned();
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(server.whoami(&access).await.0, StatusCode::OK);

    // Expired: 401 M_UNKNOWN_TOKEN with soft_logout, so the client refreshes.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = server.whoami(&access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errcode"], "M_UNKNOWN_TOKEN");
    assert_eq!(body["soft_logout"], true);

    // The refresh survives a restart (it is stored), and keeps the device.
    server.stop().await;
    let server = TestServer::start_with(config).await;
    let (status, second) = use_refresh_token(&server, &refresh).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["expires_in_ms"], 1_000);
    let access2 = second["access_token"].as_str().unwrap().to_owned();
    let refresh2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(access2, access);
    assert_ne!(refresh2, refresh);
    let (_, me) = server.whoami(&access2).await;
    assert_eq!(me["device_id"], first["device_id"], "{me}");

    // A refresh before expiry ends the old access token at once; a spent refresh token is
    // unknown (and not a soft logout).
    let (status, third) = use_refresh_token(&server, &refresh2).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    let access3 = third["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        server.whoami(&access2).await.1["errcode"],
        "M_UNKNOWN_TOKEN"
    );
    assert_eq!(server.whoami(&access3).await.0, StatusCode::OK);
    for spent in [&refresh, &refresh2] {
        let (status, body) = use_refresh_token(&server, spent).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["errcode"], "M_UNKNOWN_TOKEN");
        assert_eq!(body["soft_logout"], false);
    }

    // Logout ends the refresh token too.
    let refresh3 = third["refresh_token"].as_str().unwrap().to_owned();
    server
        .post("/_matrix/client/v3/logout", &access3, json!({}))
        .await;
    let (status, _) = use_refresh_token(&server, &refresh3).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Registration hands them out too.
    let (status, bob) = server
        .register_with(json!({ "username": "bob", "password": "secret-password",
                               "refresh_token": true }))
        .await;
    assert_eq!(status, StatusCode::OK, "{bob}");
    assert!(
        bob["refresh_token"].is_string() && bob["expires_in_ms"] == 1_000,
        "{bob}"
    );
    server.stop().await;
}

#[tokio::test]
async fn login_with_another_device_uses_a_single_use_login_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.sessions.login_via_existing_session.enabled = true;
    let server = TestServer::start_with(config).await;
    let (alice_id, alice) = server.register("alice").await;

    let types = server
        .call(Method::GET, "/_matrix/client/v3/login", None, None)
        .await
        .1;
    assert!(
        types["flows"]
            .as_array()
            .unwrap()
            .contains(&json!({ "type": "m.login.token", "get_login_token": true })),
        "{types}"
    );
    let caps = server.get("/_matrix/client/v3/capabilities", &alice).await;
    assert_eq!(caps["capabilities"]["m.get_login_token"]["enabled"], true);

    // User-interactive auth first.
    let path = "/_matrix/client/v1/login/get_token";
    let (status, uia) = server
        .call(Method::POST, path, Some(&alice), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{uia}");
    assert_eq!(uia["flows"], json!([{ "stages": ["m.login.password"] }]));
    let mut auth = password_login(&alice_id, "wrong-password");
    auth["session"] = uia["session"].clone();
    let (status, _) = server
        .call(
            Method::POST,
            path,
            Some(&alice),
            Some(json!({ "auth": auth })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    auth["password"] = json!("secret-password");
    let made = server.post(path, &alice, json!({ "auth": auth })).await;
    let token = made["login_token"].as_str().unwrap().to_owned();
    assert_eq!(made["expires_in_ms"], 300_000, "{made}");

    // The new device logs in once with it.
    let by_token = json!({ "type": "m.login.token", "token": token,
                           "initial_device_display_name": "Phone" });
    let (status, phone) = server.login(by_token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{phone}");
    assert_eq!(phone["user_id"], alice_id);
    let phone_token = phone["access_token"].as_str().unwrap();
    assert_eq!(server.whoami(phone_token).await.1["user_id"], alice_id);
    let (status, again) = server.login(by_token).await;
    assert_error(status, &again, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (status, guess) = server
        .login(json!({ "type": "m.login.token", "token": "guessed" }))
        .await;
    assert_error(status, &guess, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    server.stop().await;

    // Off (the default): not offered, not served.
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let types = server
        .call(Method::GET, "/_matrix/client/v3/login", None, None)
        .await
        .1;
    assert!(
        !types["flows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["type"] == "m.login.token"),
        "{types}"
    );
    let caps = server.get("/_matrix/client/v3/capabilities", &alice).await;
    // Absent means off (ruma leaves out a capability at its default).
    assert_ne!(
        caps["capabilities"]["m.get_login_token"]["enabled"], true,
        "{caps}"
    );
    assert_eq!(
        answer(&server, Method::POST, path, &alice, Some(json!({}))).await,
        (StatusCode::NOT_FOUND, Some("M_UNRECOGNIZED".into()))
    );
    let (status, _) = server
        .login(json!({ "type": "m.login.token", "token": "x" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test]
async fn a_locked_account_gets_user_locked_everywhere_but_logout() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = with_admin(dir.path(), |_| {}).await;
    let (alice_id, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    let lock = format!("/_matrix/client/v1/admin/lock/{}", enc(&alice_id));

    // Only admins, and the caller is checked before the target is looked up.
    let unknown = format!(
        "/_matrix/client/v1/admin/lock/{}",
        enc("@nobody:test.local")
    );
    assert_eq!(
        answer(&server, Method::GET, &unknown, &bob, None).await,
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN".into()))
    );
    assert_eq!(
        answer(&server, Method::GET, &unknown, &root, None).await,
        (StatusCode::NOT_FOUND, Some("M_NOT_FOUND".into()))
    );
    let remote = format!(
        "/_matrix/client/v1/admin/lock/{}",
        enc("@eve:elsewhere.example")
    );
    assert_eq!(
        answer(&server, Method::GET, &remote, &root, None).await,
        (StatusCode::BAD_REQUEST, Some("M_INVALID_PARAM".into()))
    );
    let own = format!("/_matrix/client/v1/admin/lock/{}", enc("@root:test.local"));
    assert_eq!(
        answer(
            &server,
            Method::PUT,
            &own,
            &root,
            Some(json!({ "locked": true }))
        )
        .await,
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN".into()))
    );
    assert_eq!(server.get(&lock, &root).await, json!({ "locked": false }));
    let caps = server.get("/_matrix/client/v3/capabilities", &root).await;
    assert_eq!(
        caps["capabilities"]["m.account_moderation"],
        json!({ "lock": true, "suspend": true })
    );
    let caps = server.get("/_matrix/client/v3/capabilities", &alice).await;
    assert!(
        caps["capabilities"].get("m.account_moderation").is_none(),
        "{caps}"
    );

    assert_eq!(
        server.put(&lock, &root, json!({ "locked": true })).await,
        json!({ "locked": true })
    );
    for (method, path) in [
        (Method::GET, "/_matrix/client/v3/account/whoami"),
        (Method::GET, "/_matrix/client/v3/sync?timeout=0"),
        (Method::GET, "/_matrix/client/v3/joined_rooms"),
    ] {
        let (status, body) = server.call(method, path, Some(&alice), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["errcode"], "M_USER_LOCKED");
        assert_eq!(body["soft_logout"], true);
    }
    let (status, body) = server
        .login(password_login("alice", "secret-password"))
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "M_USER_LOCKED");
    let admin_view = server
        .get(
            &format!("/_synapse/admin/v2/users/{}", enc(&alice_id)),
            &root,
        )
        .await;
    assert_eq!(admin_view["locked"], true, "{admin_view}");

    // Unlocked (here with Synapse's route), the same session works again.
    server
        .put(
            &format!("/_synapse/admin/v2/users/{}", enc(&alice_id)),
            &root,
            json!({ "locked": false }),
        )
        .await;
    assert_eq!(server.whoami(&alice).await.0, StatusCode::OK);

    // Locked again, the user may still log out.
    server.put(&lock, &root, json!({ "locked": true })).await;
    assert_eq!(
        server
            .call(
                Method::POST,
                "/_matrix/client/v3/logout",
                Some(&alice),
                Some(json!({}))
            )
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(server.whoami(&alice).await.1["errcode"], "M_UNKNOWN_TOKEN");
    server.stop().await;
}

#[tokio::test]
async fn a_suspended_account_reads_and_leaves_but_cannot_send() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = with_admin(dir.path(), |_| {}).await;
    let (alice_id, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    let room = server
        .create_room(&bob, json!({ "preset": "public_chat" }))
        .await;
    let other = server
        .create_room(&bob, json!({ "preset": "public_chat" }))
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &alice,
            json!({}),
        )
        .await;
    let mine = server.send_text(&alice, &room, "t1", "before").await;
    let bobs = server.send_text(&bob, &room, "t2", "from bob").await;

    let suspend = format!("/_matrix/client/v1/admin/suspend/{}", enc(&alice_id));
    assert_eq!(
        server
            .put(&suspend, &root, json!({ "suspended": true }))
            .await,
        json!({ "suspended": true })
    );
    assert_eq!(
        server.get(&suspend, &root).await,
        json!({ "suspended": true })
    );

    let suspended = (StatusCode::FORBIDDEN, Some("M_USER_SUSPENDED".to_owned()));
    let send = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/t3",
        enc(&room)
    );
    let refused: Vec<(Method, String, Value)> = vec![
        (
            Method::PUT,
            send.clone(),
            json!({ "msgtype": "m.text", "body": "after" }),
        ),
        (
            Method::PUT,
            format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.topic/",
                enc(&room)
            ),
            json!({ "topic": "x" }),
        ),
        (
            Method::POST,
            "/_matrix/client/v3/createRoom".into(),
            json!({}),
        ),
        (
            Method::POST,
            format!("/_matrix/client/v3/join/{}", enc(&other)),
            json!({}),
        ),
        (
            Method::PUT,
            format!("/_matrix/client/v3/profile/{}/displayname", enc(&alice_id)),
            json!({ "displayname": "Alice!" }),
        ),
        (
            Method::PUT,
            format!(
                "/_matrix/client/v3/rooms/{}/redact/{}/r1",
                enc(&room),
                enc(&bobs)
            ),
            json!({}),
        ),
        (
            Method::PUT,
            format!(
                "/_matrix/client/v3/directory/room/{}",
                enc("#alice:test.local")
            ),
            json!({ "room_id": room }),
        ),
    ];
    for (method, path, body) in refused {
        assert_eq!(
            answer(&server, method, &path, &alice, Some(body)).await,
            suspended,
            "{path}"
        );
    }
    let upload = server
        .http
        .post(format!("{}/_matrix/media/v3/upload", server.base))
        .bearer_auth(&alice)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::FORBIDDEN);

    // What a suspended user may do: read, redact their own events, leave.
    server
        .get(
            &format!("/_matrix/client/v3/rooms/{}/messages?dir=b", enc(&room)),
            &alice,
        )
        .await;
    server
        .get("/_matrix/client/v3/sync?timeout=0", &alice)
        .await;
    server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/redact/{}/r2",
                enc(&room),
                enc(&mine)
            ),
            &alice,
            json!({}),
        )
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
            &alice,
            json!({}),
        )
        .await;
    let admin_view = server
        .get(
            &format!("/_synapse/admin/v2/users/{}", enc(&alice_id)),
            &root,
        )
        .await;
    assert_eq!(admin_view["suspended"], true, "{admin_view}");

    // Lifted with Synapse's route: she can join and send again.
    let lifted = server
        .put(
            &format!("/_synapse/admin/v1/suspend/{}", enc(&alice_id)),
            &root,
            json!({ "suspend": false }),
        )
        .await;
    assert_eq!(
        lifted[format!("user_{alice_id}_suspended")],
        false,
        "{lifted}"
    );
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &alice,
            json!({}),
        )
        .await;
    server.send_text(&alice, &room, "t4", "back").await;
    server.stop().await;
}

#[tokio::test]
async fn the_password_policy_refuses_weak_passwords_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    let policy = &mut config.password_config.policy;
    policy.enabled = true;
    policy.minimum_length = 10;
    policy.require_digit = true;
    policy.require_symbol = true;
    policy.require_lowercase = true;
    policy.require_uppercase = true;
    let server = TestServer::start_with(config).await;

    let body = json!({ "username": "weak", "password": "password",
                       "auth": { "type": "m.login.dummy" } });
    let (status, refused) = register_once(&server, body).await;
    assert_error(status, &refused, StatusCode::BAD_REQUEST, "M_WEAK_PASSWORD");
    let (status, _) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/register/available?username=weak",
            None,
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the refused registration made no account"
    );

    // `register` uses "secret-password": no digit, symbol-only '-', no uppercase: refused.
    let strong = "Str0ng-enough!";
    let (status, alice) = server
        .register_with(json!({ "username": "alice", "password": strong }))
        .await;
    assert_eq!(status, StatusCode::OK, "{alice}");
    let alice = alice["access_token"].as_str().unwrap();

    let mut auth = password_login("alice", strong);
    auth["session"] = json!("none-yet");
    let (status, weak) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/account/password",
            Some(alice),
            Some(json!({ "new_password": "short1A!", "auth": auth })),
        )
        .await;
    assert_eq!(
        (status, weak["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_WEAK_PASSWORD")),
        "{weak}"
    );
    assert_eq!(
        server.login(password_login("alice", strong)).await.0,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn passwords_can_be_turned_off_or_kept_out_of_the_local_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(dir.path());
    let first = TestServer::start_with(config.clone()).await;
    first.register("alice").await;
    first.stop().await;

    // No local database: the stored hash is never checked.
    let mut no_localdb = config.clone();
    no_localdb.password_config.localdb_enabled = false;
    let server = TestServer::start_with(no_localdb).await;
    let (status, _) = server
        .login(password_login("alice", "secret-password"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    server.stop().await;

    // Passwords off: not offered, not accepted, not changeable, no password registrations.
    let mut off = config;
    off.password_config.enabled = false;
    off.sessions.login_via_existing_session.enabled = true;
    let server = TestServer::start_with(off).await;
    let types = server
        .call(Method::GET, "/_matrix/client/v3/login", None, None)
        .await
        .1;
    let listed: Vec<&str> = types["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["type"].as_str())
        .collect();
    assert_eq!(
        listed,
        ["m.login.token", "m.login.application_service"],
        "{types}"
    );
    let (status, body) = server
        .login(password_login("alice", "secret-password"))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "M_UNKNOWN");
    let body = json!({ "username": "bob", "password": "secret-password",
                       "auth": { "type": "m.login.dummy" } });
    let (status, _) = register_once(&server, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    server.stop().await;
}
