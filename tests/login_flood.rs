//! Logins cannot stall the server or be brute-forced: password hashing runs on its own bounded
//! pool (a flood gets 429, other users' sends and /sync keep answering), login limits are per
//! resolved account with a growing delay after failures, and unauthenticated clients are limited
//! per address (behind a proxy, the address it reports).

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn wrong_login(user: &str) -> Value {
    json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user }, "password": "wrong" })
}

/// Sends a request with an `X-Forwarded-For` header.
async fn call_from(
    server: &TestServer,
    from: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let res = server
        .http
        .post(format!("{}{}", server.base, path))
        .header("X-Forwarded-For", from)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Registers `name` (dummy flow) from the address `from`.
async fn register_from(server: &TestServer, from: &str, name: &str) {
    let body = json!({ "username": name, "password": "secret-password" });
    let (status, first) =
        call_from(server, from, "/_matrix/client/v3/register", body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{first}");
    let mut body = body;
    body["auth"] = json!({ "type": "m.login.dummy", "session": first["session"] });
    let (status, done) = call_from(server, from, "/_matrix/client/v3/register", body).await;
    assert_eq!(status, StatusCode::OK, "{done}");
}

/// 200 tasks send wrong-password logins for one account, as fast as they are answered, while
/// another user sends messages and syncs: each of those answers within 1 s, and the flood gets
/// 403 or 429, never a server error. Runs on the runtime `parvis serve` uses (8 blocking threads).
#[test]
fn a_login_flood_does_not_stall_other_users() {
    parvis::server::runtime().unwrap().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = Arc::new(TestServer::start(dir.path()).await);
        server.register("victim").await;
        let (_, token) = server.register("sender").await;
        let room = server.create_room(&token, json!({})).await;
        let (_, first) = server
            .call(Method::GET, "/_matrix/client/v3/sync", Some(&token), None)
            .await;
        let mut since = first["next_batch"].as_str().unwrap().to_owned();

        let stop = Arc::new(AtomicBool::new(false));
        let (refused, errors) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut flood = Vec::new();
        for _ in 0..200 {
            let (server, stop, refused, errors) = (
                server.clone(),
                stop.clone(),
                refused.clone(),
                errors.clone(),
            );
            flood.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = server
                        .call(
                            Method::POST,
                            "/_matrix/client/v3/login",
                            None,
                            Some(wrong_login("victim")),
                        )
                        .await;
                    match status {
                        StatusCode::FORBIDDEN => {}
                        StatusCode::TOO_MANY_REQUESTS => {
                            assert!(body["retry_after_ms"].as_u64().is_some(), "{body}");
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        // Let the flood fill every queue first.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let bound = Duration::from_secs(1);
        let mut slowest = Duration::ZERO;
        for i in 0..10 {
            let started = Instant::now();
            let path = format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/flood-{i}",
                enc(&room)
            );
            let (status, body) = server
                .call(
                    Method::PUT,
                    &path,
                    Some(&token),
                    Some(json!({ "msgtype": "m.text", "body": format!("m{i}") })),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            slowest = slowest.max(started.elapsed());

            let started = Instant::now();
            let path = format!("/_matrix/client/v3/sync?timeout=0&since={since}");
            let (status, body) = server.call(Method::GET, &path, Some(&token), None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            since = body["next_batch"].as_str().unwrap().to_owned();
            slowest = slowest.max(started.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
        for task in flood {
            task.await.unwrap();
        }
        assert!(
            slowest < bound,
            "a send or /sync took {slowest:?} during the login flood"
        );
        assert_eq!(
            errors.load(Ordering::Relaxed),
            0,
            "the flood got answers other than 403 and 429"
        );
        assert!(
            refused.load(Ordering::Relaxed) > 0,
            "the password pool never refused work"
        );
        Arc::try_unwrap(server).ok().unwrap().stop().await;
    });
}

/// Login limits are per account as login resolves it: `Alice` and `alice` (with an extra field)
/// share one bucket; another account from another address does not.
#[tokio::test]
async fn two_spellings_of_one_account_share_a_login_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.listen.client_ip_header = Some("X-Forwarded-For".into());
    config.rate_limits.enabled = true;
    config.rate_limits.per_second = 0.001;
    config.rate_limits.burst = 2.0;
    config.rate_limits.login_failures_before_delay = 0;
    let server = TestServer::start_with(config).await;
    register_from(&server, "10.1.0.1", "alice").await;
    register_from(&server, "10.1.0.2", "bob").await;
    let login = "/_matrix/client/v3/login";
    // Each attempt from its own address: only the account's bucket is shared.
    let (status, body) = call_from(&server, "10.0.0.1", login, wrong_login("Alice")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let mut other_spelling = wrong_login("@ALICE:test.local");
    other_spelling["identifier"]["x"] = json!(1);
    let (status, body) = call_from(&server, "10.0.0.2", login, other_spelling.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = call_from(
        &server,
        "10.0.0.3",
        login,
        json!({ "type": "m.login.password", "user": "alice", "password": "x" }),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["errcode"], "M_LIMIT_EXCEEDED");
    // Another account is not limited by alice's attempts.
    let (status, body) = call_from(&server, "10.0.0.4", login, wrong_login("bob")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    server.stop().await;
}

/// After three failures each further attempt of the account waits, longer each time, even with
/// the right password; a success starts over.
#[tokio::test]
async fn failed_logins_delay_the_next_attempts_of_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.rate_limits.enabled = true;
    config.rate_limits.login_failures_before_delay = 3;
    config.rate_limits.login_failure_delay_ms = 300;
    let server = TestServer::start_with(config).await;
    server.register("carol").await;
    let login = "/_matrix/client/v3/login";
    let right =
        json!({ "type": "m.login.password", "user": "carol", "password": "secret-password" });
    for _ in 0..3 {
        let (status, body) = server
            .call(Method::POST, login, None, Some(wrong_login("carol")))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, body) = server
        .call(Method::POST, login, None, Some(right.clone()))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let first_wait = body["retry_after_ms"].as_u64().unwrap();
    assert!(first_wait > 0 && first_wait <= 300, "{body}");
    tokio::time::sleep(Duration::from_millis(first_wait + 50)).await;
    let (status, body) = server
        .call(Method::POST, login, None, Some(wrong_login("CAROL")))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = server
        .call(Method::POST, login, None, Some(right.clone()))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let second_wait = body["retry_after_ms"].as_u64().unwrap();
    assert!(second_wait > 300, "the delay grows: {body}");
    tokio::time::sleep(Duration::from_millis(second_wait + 50)).await;
    let (status, body) = server
        .call(Method::POST, login, None, Some(right.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A success starts over: three failures again before any wait.
    for _ in 0..3 {
        let (status, body) = server
            .call(Method::POST, login, None, Some(wrong_login("carol")))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    server.stop().await;
}

/// Unauthenticated requests are limited per client address: with the proxy header configured,
/// two addresses get two buckets; without it, the header is not trusted (one TCP peer, one bucket).
#[tokio::test]
async fn anonymous_clients_are_limited_per_address() {
    let register = "/_matrix/client/v3/register";
    let body = json!({ "username": "someone", "password": "secret-password" });
    for trusted in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path());
        config.listen.client_ip_header = trusted.then(|| "X-Forwarded-For".to_owned());
        config.rate_limits.enabled = true;
        config.rate_limits.per_second = 0.001;
        config.rate_limits.burst = 2.0;
        let server = TestServer::start_with(config).await;
        for _ in 0..2 {
            let (status, answer) =
                call_from(&server, "192.0.2.1, 10.0.0.1", register, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        }
        let (status, answer) = call_from(&server, "10.0.0.1", register, body.clone()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
        // The client cannot pick its bucket with the entries it writes itself.
        let (status, answer) =
            call_from(&server, "10.0.0.2, 10.0.0.1", register, body.clone()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
        let (status, answer) = call_from(&server, "10.0.0.2", register, body.clone()).await;
        let expected = if trusted {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(status, expected, "trusted header: {trusted}: {answer}");
        server.stop().await;
    }
}
