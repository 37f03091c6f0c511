//! What peers and clients can make the server store is bounded: pending to-device messages per
//! device, remembered to-device transaction ids (pruned after a day), presence of remote users
//! (only of users sharing a room with a local user). UIA sessions: unit tests in services/uia.rs.

mod common;

use common::federation::{eventually, services, start};
use common::{TestServer, enc};
use parvis::{federation::request::send_json, services::to_device};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn sync(server: &TestServer, token: &str, since: Option<&str>) -> Value {
    let path = match since {
        Some(since) => format!("/_matrix/client/v3/sync?timeout=0&since={}", enc(since)),
        None => "/_matrix/client/v3/sync?timeout=0".to_owned(),
    };
    server.get(&path, token).await
}

/// A device keeps at most `limits.max_pending_to_device` messages; beyond, new ones are dropped.
#[tokio::test]
async fn pending_to_device_messages_per_device_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.limits.max_pending_to_device = 3;
    let server = TestServer::start_with(config).await;
    let (_, alice_token) = server.register("alice").await;
    let (bob, bob_token) = server.register("bob").await;
    let t0 = sync(&server, &bob_token, None).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..5 {
        let path = format!("/_matrix/client/v3/sendToDevice/m.test/txn{n}");
        server
            .put(
                &path,
                &alice_token,
                json!({ "messages": { &bob: { "*": { "n": n } } } }),
            )
            .await;
    }
    let first = sync(&server, &bob_token, Some(&t0)).await;
    let numbers: Vec<Value> = first["to_device"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"]["n"].clone())
        .collect();
    assert_eq!(numbers, vec![json!(0), json!(1), json!(2)], "{first}");
    // Once acknowledged, there is room again.
    let t1 = first["next_batch"].as_str().unwrap().to_owned();
    sync(&server, &bob_token, Some(&t1)).await;
    server
        .put(
            "/_matrix/client/v3/sendToDevice/m.test/txn9",
            &alice_token,
            json!({ "messages": { &bob: { "*": { "n": 9 } } } }),
        )
        .await;
    let later = sync(&server, &bob_token, Some(&t1)).await;
    let numbers: Vec<Value> = later["to_device"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"]["n"].clone())
        .collect();
    assert_eq!(numbers, vec![json!(9)], "{later}");
    server.stop().await;
}

/// Transaction ids of `sendToDevice` are remembered a day, then pruned with their time index.
#[tokio::test]
async fn to_device_transaction_ids_are_pruned_after_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice_token) = server.register("alice").await;
    let (bob, _) = server.register("bob").await;
    for n in 0..3 {
        let path = format!("/_matrix/client/v3/sendToDevice/m.test/txn{n}");
        server
            .put(
                &path,
                &alice_token,
                json!({ "messages": { &bob: { "*": { "n": n } } } }),
            )
            .await;
    }
    let s = server.server.as_ref().unwrap().services.clone();
    let db = s.globals.db.clone();
    let count = move |map| db.scan_prefix(map, &[]).count();
    assert_eq!(count(to_device::TO_DEVICE_TXNS), 3);
    assert_eq!(count(to_device::TO_DEVICE_TXN_TIMES), 3);
    let now = parvis::util::now_ms();
    assert_eq!(to_device::prune_txns(&s.globals.db, now, true).unwrap(), 0);
    assert_eq!(count(to_device::TO_DEVICE_TXNS), 3);
    let tomorrow = now + to_device::TXN_KEEP.as_millis() as u64 + 1;
    assert_eq!(
        to_device::prune_txns(&s.globals.db, tomorrow, false).unwrap(),
        3
    );
    assert_eq!(count(to_device::TO_DEVICE_TXNS), 0);
    assert_eq!(count(to_device::TO_DEVICE_TXN_TIMES), 0);
    server.stop().await;
}

/// A server's presence EDUs about users who share no room with a local user are ignored; about
/// a user who does, applied.
#[tokio::test]
async fn presence_of_remote_users_sharing_no_room_is_ignored() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, b_name) = start(dir_b.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (loner, _) = a.register("loner").await;
    let (bob, bob_token) = b.register("bob").await;
    // alice (A) and bob (B) share a room; loner shares none.
    let room = a
        .create_room(&alice_token, json!({ "preset": "private_chat" }))
        .await;
    a.post(
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
        &alice_token,
        json!({ "user_id": bob }),
    )
    .await;
    eventually("the invite on B", || async {
        let (_, body) = b
            .call(
                Method::GET,
                "/_matrix/client/v3/sync?timeout=0",
                Some(&bob_token),
                None,
            )
            .await;
        body["rooms"]["invite"].get(&room).map(|_| ())
    })
    .await;
    let path = format!(
        "/_matrix/client/v3/join/{}?server_name={}",
        enc(&room),
        enc(a_name.as_str())
    );
    b.post(&path, &bob_token, json!({})).await;

    let (sa, sb) = (services(&a), services(&b));
    let presence = |user: &str| json!({ "edu_type": "m.presence", "content": { "push": [{ "user_id": user, "presence": "online", "status_msg": "here", "last_active_ago": 0 }] } });
    let txn = json!({ "origin": a_name, "origin_server_ts": parvis::util::now_ms(), "pdus": [], "edus": [presence(&loner), presence(&alice)] });
    let (status, answer) = send_json(
        &sa,
        &b_name,
        http::Method::PUT,
        "/_matrix/federation/v1/send/presence-1",
        Some(&txn),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (loner_id, alice_id) = (
        ruma::OwnedUserId::try_from(loner.as_str()).unwrap(),
        ruma::OwnedUserId::try_from(alice.as_str()).unwrap(),
    );
    assert!(
        sb.presence.get(&loner_id).unwrap().is_none(),
        "presence of a user sharing no room was stored"
    );
    assert!(
        sb.presence
            .get(&alice_id)
            .unwrap()
            .is_some_and(|p| p.status_msg.as_deref() == Some("here"))
    );
    a.stop().await;
    b.stop().await;
}
