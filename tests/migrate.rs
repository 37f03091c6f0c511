//! `parvis migrate` (issue 13): a server's RocksDB database copied into PostgreSQL serves the
//! same accounts, sessions, rooms, history, media and signing key, and its streams go on where
//! they stopped. A running server's database and a non-empty target are refused. Runs when
//! `PARVIS_TEST_PG` names a PostgreSQL (`scripts/with-postgres.sh`, as `scripts/test.sh` does).

mod common;

use std::process::{Command, Output};

use common::{TestServer, enc};
use parvis::config::EngineKind;
use serde_json::{Value, json};

fn migrate(data: &std::path::Path, url: &str, schema: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parvis"))
        .args(["migrate", "--from"])
        .arg(format!("rocksdb:{}", data.display()))
        .arg("--to")
        .arg(format!("postgres:{url}"))
        .args(["--schema", schema])
        .env("PARVIS_STORAGE__PATH", data)
        .output()
        .expect("parvis runs")
}

async fn bodies(server: &TestServer, token: &str, room: &str) -> Vec<String> {
    let page = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=f&limit=1000",
                enc(room)
            ),
            token,
        )
        .await;
    page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

fn verify_keys(server: &TestServer) -> Value {
    let services = &server.server.as_ref().unwrap().services;
    let document = parvis::federation::own_keys::own_document(services, parvis::util::now_ms())
        .expect("the key document");
    serde_json::to_value(&document["verify_keys"]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_database_serves_the_same_data_on_postgres() {
    let Ok(url) = std::env::var("PARVIS_TEST_PG") else {
        eprintln!(
            "PARVIS_TEST_PG is not set: the migration needs a PostgreSQL (scripts/with-postgres.sh)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = common::config(&data);
    config.storage.engine = EngineKind::Rocksdb;

    let server = TestServer::start_with(config.clone()).await;
    let (alice, token) = server.register("alice").await;
    let (_, bob_token) = server.register("bob").await;
    let room = server
        .create_room(&token, json!({ "name": "moved", "preset": "public_chat" }))
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob_token,
            json!({}),
        )
        .await;
    let mut sent = Vec::new();
    for n in 0..40 {
        let body = format!("message {n}");
        server
            .send_text(&token, &room, &format!("t{n}"), &body)
            .await;
        sent.push(body);
    }
    let upload: Value = server
        .http
        .post(format!("{}/_matrix/media/v3/upload", server.base))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("a file that stays in the data folder")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mxc = upload["content_uri"].as_str().unwrap().to_owned();
    let since = server.get("/_matrix/client/v3/sync", &bob_token).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys = verify_keys(&server);

    // The running server holds the RocksDB lock: nothing is copied from under it.
    let schema = format!("m_{}", std::process::id());
    let refused = migrate(&data, &url, &schema);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is a server running on it?"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    server.stop().await;

    let out = migrate(&data, &url, &schema);
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["verified"], true);
    assert!(result["entries"].as_u64().unwrap() > 100, "{result}");

    // A second run finds the target full and changes nothing.
    let again = migrate(&data, &url, &schema);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));

    config.storage.engine = EngineKind::Postgres;
    config.storage.postgres.url = url;
    config.storage.postgres.schema = schema;
    config.storage.postgres.pool_size = 2;
    let server = TestServer::start_with(config).await;
    assert_eq!(server.whoami(&token).await.1["user_id"], alice);
    assert_eq!(bodies(&server, &token, &room).await, sent);
    let name = server
        .get(
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", enc(&room)),
            &token,
        )
        .await;
    assert_eq!(name["name"], "moved");
    let members = server
        .get(
            &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)),
            &token,
        )
        .await;
    assert_eq!(members["joined"].as_object().unwrap().len(), 2);
    let download = server
        .http
        .get(format!(
            "{}/_matrix/client/v1/media/download/{}",
            server.base,
            mxc.trim_start_matches("mxc://")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(download.status().is_success());
    assert_eq!(
        download.text().await.unwrap(),
        "a file that stays in the data folder"
    );
    assert_eq!(
        verify_keys(&server),
        keys,
        "the signing key moved with the data"
    );

    // The stream goes on from where it stopped: bob's old token sees only what is new.
    server
        .send_text(&token, &room, "after", "after the move")
        .await;
    let sync = server
        .get(
            &format!("/_matrix/client/v3/sync?since={}", enc(&since)),
            &bob_token,
        )
        .await;
    let timeline: Vec<&str> = sync["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(timeline, ["after the move"]);
    server.stop().await;
}
