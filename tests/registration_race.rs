//! Two registrations of one name at once: one wins, the others are told the name is taken, and
//! the account keeps the winner's password.

mod common;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_name_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    // Every registration's hash fits in the password pool's queue.
    config.limits.password_hash_queue = 32;
    let server = std::sync::Arc::new(TestServer::start_with(config).await);
    let register = "/_matrix/client/v3/register";
    const N: usize = 8;
    let mut bodies = Vec::new();
    for i in 0..N {
        let body = json!({ "username": "taken", "password": format!("password-{i}") });
        let (status, first) = server
            .call(Method::POST, register, None, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{first}");
        let mut body = body;
        body["auth"] = json!({ "type": "m.login.dummy", "session": first["session"] });
        bodies.push(body);
    }
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let server = server.clone();
            tokio::spawn(async move { server.call(Method::POST, register, None, Some(body)).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let (status, answer) = task.await.unwrap();
        match status {
            StatusCode::OK => winners.push(i),
            StatusCode::BAD_REQUEST => assert_eq!(answer["errcode"], "M_USER_IN_USE", "{answer}"),
            other => panic!("registration {i}: {other} {answer}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "registrations that succeeded: {winners:?}"
    );
    for i in 0..N {
        let body = json!({ "type": "m.login.password", "user": "taken", "password": format!("password-{i}") });
        let (status, answer) = server
            .call(Method::POST, "/_matrix/client/v3/login", None, Some(body))
            .await;
        let expected = if i == winners[0] {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected, "password {i}: {answer}");
    }
    std::sync::Arc::try_unwrap(server)
        .ok()
        .unwrap()
        .stop()
        .await;
}
