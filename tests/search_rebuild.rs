//! `parvis rebuild-search` (issue 11, long CLI jobs): with the server stopped, the search index is
//! deleted and rebuilt from the stored events, with progress lines on a non-terminal; search finds
//! the same messages afterwards. A running server's database is refused.

mod common;

use std::process::Command;

use common::TestServer;
use serde_json::{Value, json};

async fn results(server: &TestServer, token: &str, term: &str) -> usize {
    let body = server
        .post(
            "/_matrix/client/v3/search",
            token,
            json!({ "search_categories": { "room_events": { "search_term": term } } }),
        )
        .await;
    body["search_categories"]["room_events"]["results"]
        .as_array()
        .unwrap()
        .len()
}

fn rebuild(data: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_parvis"))
        .arg("rebuild-search")
        .envs(common::engine_env(data))
        .env("PARVIS_STORAGE__PATH", data)
        .env("PARVIS_SERVER_NAME", "test.local")
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_search_index_is_rebuilt_from_the_stored_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    for n in 0..300 {
        server
            .send_text(
                &alice,
                &room,
                &format!("t{n}"),
                &format!("quarterly report number {n}"),
            )
            .await;
    }
    server.send_text(&alice, &room, "x", "zebra crossing").await;
    assert_eq!(results(&server, &alice, "zebra").await, 1);
    // The database of a running server is locked.
    let refused = rebuild(dir.path());
    assert_eq!(refused.status.code(), Some(2));
    server.stop().await;

    let out = rebuild(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(result["events"].as_u64().unwrap() > 300, "{result}");
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.contains("clearing: 1/1") && progress.contains("events: "),
        "{progress}"
    );

    let server = TestServer::start(dir.path()).await;
    assert_eq!(results(&server, &alice, "zebra").await, 1);
    assert_eq!(results(&server, &alice, "quarterly").await, 10);
    server.stop().await;
}
