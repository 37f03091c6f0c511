//! Kill -9 under load (issue 8, spec/security.md "Durability"): the `parvis` binary A serves 20
//! clients sending at once while B (another `parvis`) sends into the same room over federation; A
//! is killed with SIGKILL 20 times at random moments and started again. Then every event A
//! acknowledged is there, once; every retried transaction id gives the event id it gave before;
//! /sync tokens handed out before a kill still work; and A's queue to B resumed (B has every event A
//! acknowledged), as B's to A did.

mod common;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use common::peer::{wait_invite, wait_membership};
use common::process::Proc;
use common::{TestServer, enc};
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CLIENTS: usize = 20;
const KILLS: usize = 20;

/// Sends `count` messages with transaction ids `{prefix}{n}`, retrying each (same id) until it is
/// acknowledged; records (body → event id). A retry must give the event id acknowledged before.
async fn client(
    base: String,
    token: String,
    room: String,
    prefix: String,
    stop: Arc<Mutex<bool>>,
    acked: Arc<Mutex<HashMap<String, String>>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut n = 0;
    while !*stop.lock().unwrap() {
        let txn = format!("{prefix}{n}");
        let body = format!("message {txn}");
        let path = format!(
            "{base}/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
            enc(&room)
        );
        let mut first: Option<String> = None;
        for _attempt in 0..200 {
            let res = http
                .put(&path)
                .bearer_auth(&token)
                .json(&json!({ "msgtype": "m.text", "body": body }))
                .send()
                .await;
            match res {
                Ok(r) if r.status() == StatusCode::OK => {
                    let id = r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["event_id"].as_str().map(str::to_owned));
                    let Some(id) = id else { continue };
                    if let Some(before) = &first {
                        assert_eq!(before, &id, "a retried transaction gives the same event");
                    }
                    first = Some(id);
                    // Once more, to check idempotency of an acknowledged send.
                    if rand::thread_rng().gen_bool(0.1) {
                        continue;
                    }
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let id = first.expect("the send is acknowledged once the server is back");
        acked.lock().unwrap().insert(body, id);
        n += 1;
    }
}

/// Every message body in the room as `server` serves it (all pages of /messages, newest first).
async fn all_bodies(server: &TestServer, token: &str, room: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let mut path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=500",
            enc(room)
        );
        if let Some(from) = &from {
            path = format!("{path}&from={}", enc(from));
        }
        let page = server.get(&path, token).await;
        let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
        out.extend(
            chunk
                .iter()
                .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned)),
        );
        match page["end"].as_str() {
            Some(end) if !chunk.is_empty() => from = Some(end.to_owned()),
            _ => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_event_survives_twenty_kills_under_load() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, mut b) = (Proc::new(dir_a.path()), Proc::new(dir_b.path()));
    a.start().await;
    b.start().await;
    let (sa, sb) = (a.server(), b.server());
    let (_, alice) = sa.register("alice").await;
    let (bob_id, bob) = sb.register("bob").await;
    let room = sa
        .create_room(&alice, json!({ "preset": "private_chat" }))
        .await;
    sa.post(
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
        &alice,
        json!({ "user_id": bob_id }),
    )
    .await;
    wait_invite(&sb, &bob, &room).await;
    sb.post(
        &format!(
            "/_matrix/client/v3/join/{}?server_name={}",
            enc(&room),
            enc(&a.name())
        ),
        &bob,
        json!({}),
    )
    .await;
    wait_membership(&sa, &alice, &room, &bob_id, "join").await;

    let stop = Arc::new(Mutex::new(false));
    let acked_a = Arc::new(Mutex::new(HashMap::new()));
    let acked_b = Arc::new(Mutex::new(HashMap::new()));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        tasks.push(tokio::spawn(client(
            sa.base.clone(),
            alice.clone(),
            room.clone(),
            format!("a{i}-"),
            stop.clone(),
            acked_a.clone(),
        )));
    }
    tasks.push(tokio::spawn(client(
        sb.base.clone(),
        bob.clone(),
        room.clone(),
        "b-".into(),
        stop.clone(),
        acked_b.clone(),
    )));

    let mut tokens = Vec::new();
    for _ in 0..KILLS {
        let wait = rand::thread_rng().gen_range(100..500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Ok(sync) = tokio::time::timeout(
            Duration::from_secs(2),
            sa.get("/_matrix/client/v3/sync?timeout=0", &alice),
        )
        .await
        {
            tokens.push(sync["next_batch"].as_str().unwrap().to_owned());
        }
        a.kill();
        a.start().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    *stop.lock().unwrap() = true;
    for task in tasks {
        task.await.unwrap();
    }

    let acked_a = acked_a.lock().unwrap().clone();
    let acked_b = acked_b.lock().unwrap().clone();
    assert!(
        acked_a.len() > CLIENTS * KILLS / 2,
        "the load went on through the kills: {} sends",
        acked_a.len()
    );
    // Every acknowledged event is there, once.
    let bodies = all_bodies(&sa, &alice, &room).await;
    let mut seen = HashSet::new();
    for body in bodies.iter().filter(|b| b.starts_with("message a")) {
        assert!(seen.insert(body.clone()), "{body} is in the room twice");
    }
    for (body, id) in &acked_a {
        assert!(
            seen.contains(body),
            "{body} ({id}) was acknowledged and is lost"
        );
        let event = sa
            .get(
                &format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(id)),
                &alice,
            )
            .await;
        assert_eq!(event["content"]["body"], body.as_str());
    }
    // Tokens handed out before a kill still work.
    for token in &tokens {
        let (status, answer) = sa
            .call(
                Method::GET,
                &format!("/_matrix/client/v3/sync?timeout=0&since={token}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "since={token}: {answer}");
    }
    // The federation queues resumed both ways: the queue A built up during the kills drains into B
    // (and B's into A) at the pace B takes them, so the wait lasts as long as it makes progress.
    caught_up("B has every event A acknowledged", &acked_a, || {
        all_bodies(&sb, &bob, &room)
    })
    .await;
    caught_up("A has every event B acknowledged", &acked_b, || {
        all_bodies(&sa, &alice, &room)
    })
    .await;
}

/// Waits until every acknowledged body is among `bodies()`; fails when 20 s pass without one more
/// of them arriving (the queue stopped), or after 5 minutes in all.
async fn caught_up<F, Fut>(what: &str, acked: &HashMap<String, String>, mut bodies: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let start = tokio::time::Instant::now();
    let (mut best, mut last_progress) = (0, start);
    loop {
        let there: HashSet<String> = bodies().await.into_iter().collect();
        let arrived = acked.keys().filter(|b| there.contains(*b)).count();
        if arrived == acked.len() {
            eprintln!("{what}: all {arrived} after {:?}", start.elapsed());
            return;
        }
        let now = tokio::time::Instant::now();
        if arrived > best {
            (best, last_progress) = (arrived, now);
        }
        assert!(
            now - last_progress < Duration::from_secs(20) && now - start < Duration::from_secs(300),
            "timed out waiting for {what}: {arrived} of {} arrived, none more in the last {:?}",
            acked.len(),
            now - last_progress
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
