//! Push notifications end to end: push rules, evaluation, unread counts in /sync, /notifications,
//! pushers and delivery to a push gateway that runs in the test process.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Json, extract::State, http::StatusCode as AxumStatus, routing::post};
use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A push gateway: records the `notify` bodies it accepts; answers 503 to the first `fail_first`.
struct Gateway {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct GatewayState {
    received: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<AtomicUsize>,
    fail_first: usize,
    /// Pushkeys answered as `rejected`.
    reject: Vec<String>,
}

async fn notify(
    State(state): State<GatewayState>,
    Json(body): Json<Value>,
) -> (AxumStatus, Json<Value>) {
    let attempt = state.attempts.fetch_add(1, Ordering::SeqCst);
    if attempt < state.fail_first {
        return (AxumStatus::SERVICE_UNAVAILABLE, Json(json!({})));
    }
    let pushkey = body["notification"]["devices"][0]["pushkey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    state.received.lock().unwrap().push(body);
    let rejected: Vec<&String> = state.reject.iter().filter(|k| **k == pushkey).collect();
    (AxumStatus::OK, Json(json!({ "rejected": rejected })))
}

impl Gateway {
    async fn start(fail_first: usize) -> Self {
        Self::start_with(fail_first, Vec::new()).await
    }

    async fn start_with(fail_first: usize, reject: Vec<String>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = GatewayState {
            received: Default::default(),
            attempts: Default::default(),
            fail_first,
            reject,
        };
        let (received, attempts) = (state.received.clone(), state.attempts.clone());
        let app = axum::Router::new()
            .route("/_matrix/push/v1/notify", post(notify))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/_matrix/push/v1/notify"),
            received,
            attempts,
            task,
        }
    }

    /// The same gateway behind TLS (a self-signed certificate for 127.0.0.1, made in `dir`).
    async fn start_tls(dir: &std::path::Path) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = common::config(dir);
        config.server_name = "127.0.0.1".try_into().unwrap();
        let tls = parvis::federation::tls::server_config(&config).unwrap();
        let state = GatewayState {
            received: Default::default(),
            attempts: Default::default(),
            fail_first: 0,
            reject: Vec::new(),
        };
        let (received, attempts) = (state.received.clone(), state.attempts.clone());
        let app = axum::Router::new()
            .route("/_matrix/push/v1/notify", post(notify))
            .with_state(state);
        let (_stop, stop_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let _keep = _stop;
            parvis::federation::listener::serve(listener, tls, app, stop_rx).await;
        });
        Self {
            url: format!("https://{addr}/_matrix/push/v1/notify"),
            received,
            attempts,
            task,
        }
    }

    fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// Sets an http pusher of `token`'s user to this gateway, under `pushkey`.
    async fn set_pusher(&self, server: &TestServer, token: &str, pushkey: &str) {
        server
            .post(
                "/_matrix/client/v3/pushers/set",
                token,
                pusher(&self.url, pushkey),
            )
            .await;
    }

    /// Waits until a notification for `event_id` arrived.
    async fn wait_for(&self, event_id: &str) -> Value {
        for _ in 0..200 {
            if let Some(n) = self
                .received()
                .into_iter()
                .find(|n| n["notification"]["event_id"] == event_id)
            {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no notification for {event_id}; received {:?}",
            self.received()
        );
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pusher(url: &str, pushkey: &str) -> Value {
    json!({
        "kind": "http", "app_id": "org.example.app", "pushkey": pushkey,
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "data": { "url": url },
    })
}

/// A public room of A that B joined; returns (server, A's token, B's id, B's token, room).
async fn two_users(dir: &std::path::Path) -> (TestServer, String, String, String, String) {
    let server = TestServer::start(dir).await;
    let (_a, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    (server, alice, bob_id, bob, room)
}

/// [`two_users`], with a gateway that B's pusher (`bob-key`) notifies; returns the gateway first.
async fn two_users_bob_pushed(
    dir: &std::path::Path,
) -> (Gateway, TestServer, String, String, String, String) {
    let gateway = Gateway::start(0).await;
    let (server, alice, bob_id, bob, room) = two_users(dir).await;
    gateway.set_pusher(&server, &bob, "bob-key").await;
    (gateway, server, alice, bob_id, bob, room)
}

/// Sends the messages `m{i}` for `i` in `range`, their IDs pushed onto `ids`.
async fn send_numbered(
    server: &TestServer,
    token: &str,
    room: &str,
    ids: &mut Vec<String>,
    range: std::ops::Range<usize>,
) {
    for i in range {
        ids.push(
            server
                .send_text(token, room, &format!("m{i}"), "hello")
                .await,
        );
    }
}

async fn send_mention(
    server: &TestServer,
    token: &str,
    room: &str,
    txn: &str,
    user: &str,
) -> String {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
        enc(room)
    );
    let body = json!({ "msgtype": "m.text", "body": format!("hello {user}"), "m.mentions": { "user_ids": [user] } });
    server.put(&path, token, body).await["event_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn unread(sync: &Value, room: &str) -> (u64, u64) {
    let counts = &sync["rooms"]["join"][room]["unread_notifications"];
    (
        counts["notification_count"].as_u64().unwrap_or(0),
        counts["highlight_count"].as_u64().unwrap_or(0),
    )
}

/// Syncs (incrementally from `since` when given) until the room's counts are `want`.
async fn sync_until_counts(
    server: &TestServer,
    token: &str,
    room: &str,
    want: (u64, u64),
) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = server.get("/_matrix/client/v3/sync", token).await;
        if unread(&last, room) == want {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "counts never became {want:?}: {}",
        last["rooms"]["join"][room]
    );
}

#[tokio::test]
async fn a_mention_is_pushed_with_counts_listed_and_reset_by_a_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, server, alice, bob_id, bob, room) = two_users_bob_pushed(dir.path()).await;

    let plain = server.send_text(&alice, &room, "t1", "no mention").await;
    let mention = send_mention(&server, &alice, &room, "t2", &bob_id).await;

    let pushed = gateway.wait_for(&mention).await;
    let n = &pushed["notification"];
    assert_eq!(n["room_id"], room.as_str());
    assert_eq!(n["counts"]["unread"], 2, "{pushed}");
    assert_eq!(n["prio"], "high");
    assert_eq!(n["type"], "m.room.message");
    assert_eq!(n["content"]["body"], format!("hello {bob_id}"));
    assert_eq!(n["devices"][0]["pushkey"], "bob-key");
    assert_eq!(n["devices"][0]["app_id"], "org.example.app");
    assert_eq!(n["devices"][0]["tweaks"]["highlight"], true);
    assert!(n["devices"][0]["data"].get("url").is_none(), "{pushed}");
    // The plain message of a two-member room notifies too (`.m.rule.room_one_to_one`), not highlighted.
    let first = gateway.wait_for(&plain).await;
    assert_eq!(first["notification"]["prio"], "low");
    assert_eq!(first["notification"]["counts"]["unread"], 1);

    sync_until_counts(&server, &bob, &room, (2, 1)).await;
    // The sender's own events never count for them.
    let alice_sync = server.get("/_matrix/client/v3/sync", &alice).await;
    assert_eq!(unread(&alice_sync, &room), (0, 0));

    let listed = server.get("/_matrix/client/v3/notifications", &bob).await;
    let ids: Vec<&str> = listed["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![mention.as_str(), plain.as_str()], "{listed}");
    assert_eq!(listed["notifications"][0]["read"], false);
    assert_eq!(listed["notifications"][0]["room_id"], room.as_str());
    assert!(
        listed["notifications"][0]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "notify")
    );
    let highlights = server
        .get("/_matrix/client/v3/notifications?only=highlight", &bob)
        .await;
    assert_eq!(highlights["notifications"].as_array().unwrap().len(), 1);
    let page = server
        .get("/_matrix/client/v3/notifications?limit=1", &bob)
        .await;
    assert_eq!(page["notifications"].as_array().unwrap().len(), 1);
    let next = page["next_token"].as_str().expect("a next page").to_owned();
    let page2 = server
        .get(
            &format!("/_matrix/client/v3/notifications?limit=1&from={next}"),
            &bob,
        )
        .await;
    assert_eq!(
        page2["notifications"][0]["event"]["event_id"],
        plain.as_str()
    );

    // A read receipt for the first event leaves the mention; one for the mention resets both.
    let since = server.get("/_matrix/client/v3/sync", &bob).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .post(
            &format!(
                "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
                enc(&room),
                enc(&plain)
            ),
            &bob,
            json!({}),
        )
        .await;
    sync_until_counts(&server, &bob, &room, (1, 1)).await;
    server
        .post(
            &format!(
                "/_matrix/client/v3/rooms/{}/receipt/m.read.private/{}",
                enc(&room),
                enc(&mention)
            ),
            &bob,
            json!({}),
        )
        .await;
    sync_until_counts(&server, &bob, &room, (0, 0)).await;
    // An incremental sync carries the room with its new counts.
    let incremental = server
        .get(&format!("/_matrix/client/v3/sync?since={since}"), &bob)
        .await;
    assert_eq!(unread(&incremental, &room), (0, 0), "{incremental}");
    assert!(
        incremental["rooms"]["join"][&room]["unread_notifications"].is_object(),
        "{incremental}"
    );
    let listed = server.get("/_matrix/client/v3/notifications", &bob).await;
    assert!(
        listed["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["read"] == true),
        "{listed}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_muted_room_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(0).await;
    let (server, alice, bob_id, bob, room) = two_users(dir.path()).await;
    let mut rooms = Vec::new();
    for _ in 0..2 {
        let other = server
            .create_room(&alice, json!({ "preset": "public_chat" }))
            .await;
        server
            .post(
                &format!("/_matrix/client/v3/join/{}", enc(&other)),
                &bob,
                json!({}),
            )
            .await;
        rooms.push(other);
    }
    let (silenced, other) = (rooms[0].clone(), rooms[1].clone());
    gateway.set_pusher(&server, &bob, "bob-key").await;
    // A room rule without actions mutes the room's messages.
    server
        .put(
            &format!("/_matrix/client/v3/pushrules/global/room/{}", enc(&room)),
            &bob,
            json!({ "actions": [] }),
        )
        .await;
    // An override rule (`dont_notify`) silences even mentions.
    let condition = json!([{ "kind": "event_match", "key": "room_id", "pattern": silenced }]);
    server
        .put(
            "/_matrix/client/v3/pushrules/global/override/silence",
            &bob,
            json!({ "actions": ["dont_notify"], "conditions": condition }),
        )
        .await;

    server.send_text(&alice, &room, "m1", "muted").await;
    server.send_text(&alice, &room, "m2", "muted again").await;
    send_mention(&server, &alice, &silenced, "m3", &bob_id).await;
    // An event in the other room, sent after: once it is pushed, the muted rooms' were evaluated.
    let marker = server.send_text(&alice, &other, "m4", "not muted").await;
    gateway.wait_for(&marker).await;
    let pushed = gateway.received();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!(pushed[0]["notification"]["counts"]["unread"], 1);
    let sync = sync_until_counts(&server, &bob, &other, (1, 0)).await;
    assert_eq!(unread(&sync, &room), (0, 0));
    assert_eq!(unread(&sync, &silenced), (0, 0));
    let listed = server.get("/_matrix/client/v3/notifications", &bob).await;
    assert_eq!(
        listed["notifications"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    server.stop().await;
}

#[tokio::test]
async fn delivery_is_retried_after_the_gateway_was_down_and_counts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(2).await;
    let (server, alice, _bob_id, bob, room) = two_users(dir.path()).await;
    gateway.set_pusher(&server, &bob, "bob-key").await;
    let event = server.send_text(&alice, &room, "r1", "are you there").await;
    let started = std::time::Instant::now();
    let pushed = gateway.wait_for(&event).await;
    assert_eq!(
        gateway.attempts.load(Ordering::SeqCst),
        3,
        "two refused attempts, then the delivery"
    );
    // Backoff: 1 s, then 2 s.
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(pushed["notification"]["counts"]["unread"], 1);
    sync_until_counts(&server, &bob, &room, (1, 0)).await;

    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let (status, login) = server
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(json!({
            "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "bob" }, "password": "secret-password",
        })))
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let bob2 = login["access_token"].as_str().unwrap().to_owned();
    sync_until_counts(&server, &bob2, &room, (1, 0)).await;
    // Nothing is delivered twice after the restart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gateway.received().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn thread_counts_are_separate_when_the_filter_asks() {
    let dir = tempfile::tempdir().unwrap();
    let (server, alice, _bob_id, bob, room) = two_users(dir.path()).await;
    let root = server.send_text(&alice, &room, "t1", "root").await;
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/t2",
        enc(&room)
    );
    let reply = server
        .put(&path, &alice, json!({ "msgtype": "m.text", "body": "in thread", "m.relates_to": { "rel_type": "m.thread", "event_id": root } }))
        .await["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    sync_until_counts(&server, &bob, &room, (2, 0)).await;
    let filter = enc(
        &json!({ "room": { "timeline": { "unread_thread_notifications": true } } }).to_string(),
    );
    let sync = server
        .get(&format!("/_matrix/client/v3/sync?filter={filter}"), &bob)
        .await;
    assert_eq!(unread(&sync, &room), (1, 0), "{sync}");
    assert_eq!(
        sync["rooms"]["join"][&room]["unread_thread_notifications"][&root]["notification_count"], 1,
        "{sync}"
    );
    // A receipt in the thread resets only the thread.
    server
        .post(
            &format!(
                "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
                enc(&room),
                enc(&reply)
            ),
            &bob,
            json!({ "thread_id": root }),
        )
        .await;
    sync_until_counts(&server, &bob, &room, (1, 0)).await;
    let sync = server
        .get(&format!("/_matrix/client/v3/sync?filter={filter}"), &bob)
        .await;
    assert!(
        sync["rooms"]["join"][&room]["unread_thread_notifications"]
            .get(&root)
            .is_none(),
        "{sync}"
    );

    // A second thread, and a new reply in the first: each thread is counted on its own.
    let in_thread = |txn: &'static str, root: String| {
        let server = &server;
        let alice = &alice;
        let room = &room;
        async move {
            let path = format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
                enc(room)
            );
            let content = json!({ "msgtype": "m.text", "body": txn, "m.relates_to": { "rel_type": "m.thread", "event_id": root } });
            server.put(&path, alice, content).await["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let root2 = server.send_text(&alice, &room, "t3", "second root").await;
    in_thread("t4", root2.clone()).await;
    let last = in_thread("t5", root.clone()).await;
    sync_until_counts(&server, &bob, &room, (4, 0)).await;
    let sync = server
        .get(&format!("/_matrix/client/v3/sync?filter={filter}"), &bob)
        .await;
    assert_eq!(unread(&sync, &room), (2, 0), "{sync}");
    let threads = &sync["rooms"]["join"][&room]["unread_thread_notifications"];
    assert_eq!(
        (
            threads[&root]["notification_count"].as_u64(),
            threads[&root2]["notification_count"].as_u64()
        ),
        (Some(1), Some(1)),
        "{sync}"
    );
    // An unthreaded receipt reads everything up to its event, threads included.
    server
        .post(
            &format!(
                "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
                enc(&room),
                enc(&root2)
            ),
            &bob,
            json!({}),
        )
        .await;
    sync_until_counts(&server, &bob, &room, (2, 0)).await;
    server
        .post(
            &format!(
                "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
                enc(&room),
                enc(&last)
            ),
            &bob,
            json!({}),
        )
        .await;
    sync_until_counts(&server, &bob, &room, (0, 0)).await;
    let sync = server
        .get(&format!("/_matrix/client/v3/sync?filter={filter}"), &bob)
        .await;
    let threads = &sync["rooms"]["join"][&room]["unread_thread_notifications"];
    assert!(threads.as_object().is_none_or(|t| t.is_empty()), "{sync}");
    server.stop().await;
}

#[tokio::test]
async fn pushers_are_set_listed_replaced_deleted_and_dropped_at_logout() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_bob_id, bob) = server.register("bob").await;
    let url = "http://127.0.0.1:9/_matrix/push/v1/notify";
    server
        .post("/_matrix/client/v3/pushers/set", &bob, pusher(url, "k1"))
        .await;
    let mut second = pusher(url, "k2");
    second["data"]["format"] = json!("event_id_only");
    server
        .post("/_matrix/client/v3/pushers/set", &bob, second)
        .await;
    let listed = server.get("/_matrix/client/v3/pushers", &bob).await;
    let keys: Vec<&str> = listed["pushers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pushkey"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["k1", "k2"], "{listed}");
    assert_eq!(listed["pushers"][1]["data"]["format"], "event_id_only");
    assert_eq!(listed["pushers"][0]["kind"], "http");

    // Errors: missing fields, a URL that is not a gateway's, an unknown kind.
    let mut missing = pusher(url, "k3");
    missing.as_object_mut().unwrap().remove("app_id");
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/pushers/set",
            Some(&bob),
            Some(missing),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_MISSING_PARAM")),
        "{body}"
    );
    let mut no_url = pusher(url, "k3");
    no_url["data"] = json!({});
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/pushers/set",
            Some(&bob),
            Some(no_url),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_MISSING_PARAM")),
        "{body}"
    );
    let bad_url = pusher("http://127.0.0.1:9/notify", "k3");
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/pushers/set",
            Some(&bob),
            Some(bad_url),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_INVALID_PARAM")),
        "{body}"
    );
    let mut bad_kind = pusher(url, "k3");
    bad_kind["kind"] = json!("pigeon");
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/pushers/set",
            Some(&bob),
            Some(bad_kind),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_INVALID_PARAM")),
        "{body}"
    );
    assert_eq!(
        server.get("/_matrix/client/v3/pushers", &bob).await["pushers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // kind null deletes.
    server
        .post(
            "/_matrix/client/v3/pushers/set",
            &bob,
            json!({ "kind": null, "app_id": "org.example.app", "pushkey": "k2" }),
        )
        .await;
    let listed = server.get("/_matrix/client/v3/pushers", &bob).await;
    assert_eq!(listed["pushers"].as_array().unwrap().len(), 1, "{listed}");

    // Another user taking the same pushkey without `append` takes it away from bob.
    let (_carol_id, carol) = server.register("carol").await;
    server
        .post("/_matrix/client/v3/pushers/set", &carol, pusher(url, "k1"))
        .await;
    assert!(
        server.get("/_matrix/client/v3/pushers", &bob).await["pushers"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let mut appended = pusher(url, "k1");
    appended["append"] = json!(true);
    server
        .post("/_matrix/client/v3/pushers/set", &bob, appended)
        .await;
    assert_eq!(
        server.get("/_matrix/client/v3/pushers", &carol).await["pushers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        server.get("/_matrix/client/v3/pushers", &bob).await["pushers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Logging out deletes the pushers of that access token.
    server
        .post("/_matrix/client/v3/logout", &carol, json!({}))
        .await;
    let (status, login) = server
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(json!({
            "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "carol" }, "password": "secret-password",
        })))
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let carol = login["access_token"].as_str().unwrap().to_owned();
    assert!(
        server.get("/_matrix/client/v3/pushers", &carol).await["pushers"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test]
async fn push_rules_are_created_ordered_changed_and_deleted_with_spec_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_bob_id, bob) = server.register("bob").await;
    let rules = "/_matrix/client/v3/pushrules";

    let all = server.get(&format!("{rules}/"), &bob).await;
    assert_eq!(
        all["global"]["override"][0]["rule_id"], ".m.rule.master",
        "{all}"
    );
    let global = server.get(&format!("{rules}/global/"), &bob).await;
    assert_eq!(global["underride"], all["global"]["underride"]);
    // The initial sync shows the rules in the global account data.
    let sync = server.get("/_matrix/client/v3/sync", &bob).await;
    let pushed_rules = sync["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.push_rules")
        .cloned();
    assert_eq!(
        pushed_rules.expect("m.push_rules in sync")["content"]["global"]["override"][0]["rule_id"],
        ".m.rule.master"
    );

    let rule = json!({ "actions": ["notify"], "conditions": [{ "kind": "event_match", "key": "content.body", "pattern": "lunch" }] });
    server
        .put(&format!("{rules}/global/override/one"), &bob, rule.clone())
        .await;
    server
        .put(&format!("{rules}/global/override/two"), &bob, rule.clone())
        .await;
    server
        .put(
            &format!("{rules}/global/override/three?after=one"),
            &bob,
            rule.clone(),
        )
        .await;
    let ids = |all: &Value| -> Vec<String> {
        all["global"]["override"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["rule_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = server.get(&format!("{rules}/"), &bob).await;
    assert_eq!(&ids(&all)[..4], [".m.rule.master", "two", "one", "three"]);
    server
        .put(
            &format!("{rules}/global/override/three?before=two"),
            &bob,
            rule.clone(),
        )
        .await;
    let all = server.get(&format!("{rules}/"), &bob).await;
    assert_eq!(&ids(&all)[..4], [".m.rule.master", "three", "two", "one"]);
    let one = server
        .get(&format!("{rules}/global/override/one"), &bob)
        .await;
    assert_eq!(one["conditions"][0]["pattern"], "lunch");
    assert_eq!(one["default"], false);

    // enabled and actions, on user and server-default rules.
    server
        .put(
            &format!("{rules}/global/override/one/enabled"),
            &bob,
            json!({ "enabled": false }),
        )
        .await;
    assert_eq!(
        server
            .get(&format!("{rules}/global/override/one/enabled"), &bob)
            .await["enabled"],
        false
    );
    server
        .put(
            &format!("{rules}/global/underride/.m.rule.message/actions"),
            &bob,
            json!({ "actions": [] }),
        )
        .await;
    let actions = server
        .get(
            &format!("{rules}/global/underride/.m.rule.message/actions"),
            &bob,
        )
        .await;
    assert_eq!(actions["actions"], json!([]));
    // A content rule.
    server
        .put(
            &format!("{rules}/global/content/cake"),
            &bob,
            json!({ "actions": ["notify"], "pattern": "cake" }),
        )
        .await;
    assert_eq!(
        server
            .get(&format!("{rules}/global/content/cake"), &bob)
            .await["pattern"],
        "cake"
    );

    let error = |status: StatusCode, body: &Value| {
        (
            status,
            body["errcode"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let (s, b) = server
        .call(
            Method::GET,
            &format!("{rules}/global/override/nope"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(error(s, &b), (StatusCode::NOT_FOUND, "M_NOT_FOUND".into()));
    let (s, b) = server
        .call(
            Method::PUT,
            &format!("{rules}/global/override/.m.rule.mine"),
            Some(&bob),
            Some(rule.clone()),
        )
        .await;
    assert_eq!(
        error(s, &b),
        (StatusCode::BAD_REQUEST, "M_INVALID_PARAM".into())
    );
    let (s, b) = server
        .call(
            Method::PUT,
            &format!("{rules}/global/override/four?before=nope"),
            Some(&bob),
            Some(rule.clone()),
        )
        .await;
    assert_eq!(error(s, &b), (StatusCode::BAD_REQUEST, "M_UNKNOWN".into()));
    let (s, b) = server
        .call(
            Method::DELETE,
            &format!("{rules}/global/override/.m.rule.master"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        error(s, &b),
        (StatusCode::BAD_REQUEST, "M_INVALID_PARAM".into())
    );
    let (s, b) = server
        .call(
            Method::PUT,
            &format!("{rules}/global/room/nope/enabled"),
            Some(&bob),
            Some(json!({ "enabled": true })),
        )
        .await;
    assert_eq!(error(s, &b), (StatusCode::NOT_FOUND, "M_NOT_FOUND".into()));
    let (s, b) = server
        .call(
            Method::GET,
            &format!("{rules}/global/override/nope/actions"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(error(s, &b), (StatusCode::NOT_FOUND, "M_NOT_FOUND".into()));
    // The failed requests changed nothing.
    let after_errors = server.get(&format!("{rules}/"), &bob).await;
    assert!(!ids(&after_errors).contains(&"four".to_owned()));

    server
        .call(
            Method::DELETE,
            &format!("{rules}/global/override/two"),
            Some(&bob),
            None,
        )
        .await;
    let (s, b) = server
        .call(
            Method::DELETE,
            &format!("{rules}/global/override/two"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(error(s, &b), (StatusCode::NOT_FOUND, "M_NOT_FOUND".into()));
    let all = server.get(&format!("{rules}/"), &bob).await;
    assert_eq!(&ids(&all)[..3], [".m.rule.master", "three", "one"]);

    // Rules survive a restart.
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let (status, login) = server
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(json!({
            "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "bob" }, "password": "secret-password",
        })))
        .await;
    assert_eq!(status, StatusCode::OK);
    let bob = login["access_token"].as_str().unwrap().to_owned();
    let all = server.get(&format!("{rules}/"), &bob).await;
    assert_eq!(&ids(&all)[..3], [".m.rule.master", "three", "one"]);
    assert_eq!(
        server
            .get(&format!("{rules}/global/override/one/enabled"), &bob)
            .await["enabled"],
        false
    );
    server.stop().await;
}

#[tokio::test]
async fn an_event_committed_while_no_push_task_runs_has_its_counts_after_the_restart() {
    use parvis::services::{
        Services,
        timeline::append::{NewEvent, Target, append_local},
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, _alice, bob_id, bob, room) = two_users(dir.path()).await;
    sync_until_counts(&server, &bob, &room, (0, 0)).await;
    server.stop().await;

    // The services alone (no server, so no push tasks): the event is committed with its counts in
    // its own batch, and the services close at once, as after a crash.
    let config = common::config(dir.path());
    let room_id: ruma::OwnedRoomId = room.as_str().try_into().unwrap();
    tokio::task::spawn_blocking(move || {
        let services = Services::open(config).unwrap();
        let alice: ruma::OwnedUserId = "@alice:test.local".try_into().unwrap();
        let content = json!({ "msgtype": "m.text", "body": format!("sent while down {bob_id}"), "m.mentions": { "user_ids": [bob_id] } });
        append_local(&services, Target::Room(&room_id), &alice, NewEvent::message("m.room.message".into(), content), None).unwrap();
        services.shutdown();
    })
    .await
    .unwrap();

    let server = TestServer::start(dir.path()).await;
    let (status, login) = server
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(json!({
            "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "bob" }, "password": "secret-password",
        })))
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let bob = login["access_token"].as_str().unwrap().to_owned();
    sync_until_counts(&server, &bob, &room, (1, 1)).await;
    server.stop().await;
}

#[tokio::test]
async fn event_id_only_pushers_get_no_content_and_rejected_pushkeys_lose_their_pusher() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(0, vec!["gone-key".to_owned()]).await;
    let (server, alice, _bob_id, bob, room) = two_users(dir.path()).await;
    let mut short = pusher(&gateway.url, "short-key");
    short["data"]["format"] = json!("event_id_only");
    short["data"]["custom"] = json!("kept");
    server
        .post("/_matrix/client/v3/pushers/set", &bob, short)
        .await;
    gateway.set_pusher(&server, &bob, "gone-key").await;

    let event = server
        .send_text(&alice, &room, "e1", "secret content")
        .await;
    gateway.wait_for(&event).await;
    for _ in 0..100 {
        if gateway.received().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = gateway.received();
    let short = received
        .iter()
        .find(|n| n["notification"]["devices"][0]["pushkey"] == "short-key")
        .expect("short-key pushed");
    let n = &short["notification"];
    assert_eq!(n["event_id"], event.as_str());
    assert_eq!(n["room_id"], room.as_str());
    assert_eq!(n["counts"]["unread"], 1);
    assert!(
        n.get("content").is_none() && n.get("sender").is_none() && n.get("type").is_none(),
        "{short}"
    );
    assert_eq!(
        n["devices"][0]["data"],
        json!({ "format": "event_id_only", "custom": "kept" })
    );

    // The gateway rejected gone-key: that pusher is deleted, the other stays.
    let mut keys = Vec::new();
    for _ in 0..100 {
        let listed = server.get("/_matrix/client/v3/pushers", &bob).await;
        keys = listed["pushers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pushkey"].as_str().unwrap().to_owned())
            .collect();
        if keys == ["short-key"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(keys, ["short-key"]);
    server.stop().await;
}

#[tokio::test]
async fn https_gateways_are_reached_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_tls(gateway_dir.path()).await;
    // The gateway's certificate is self-signed: this server accepts it (`federation.verify_certificates`).
    let mut config = common::config(dir.path());
    config.federation.verify_certificates = false;
    let server = TestServer::start_with(config).await;
    let (_a, alice) = server.register("alice").await;
    let (_b, bob) = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    gateway.set_pusher(&server, &bob, "tls-key").await;
    let event = server.send_text(&alice, &room, "s1", "over tls").await;
    let pushed = gateway.wait_for(&event).await;
    assert_eq!(pushed["notification"]["content"]["body"], "over tls");
    assert_eq!(pushed["notification"]["devices"][0]["pushkey"], "tls-key");
    server.stop().await;
}

#[tokio::test]
async fn the_badge_counts_only_joined_rooms() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(0).await;
    let (server, alice, _bob_id, bob, room) = two_users(dir.path()).await;
    let other = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&other)),
            &bob,
            json!({}),
        )
        .await;
    gateway.set_pusher(&server, &bob, "bob-key").await;
    let first = server.send_text(&alice, &room, "b1", "one").await;
    assert_eq!(
        gateway.wait_for(&first).await["notification"]["counts"]["unread"],
        1
    );
    let second = server.send_text(&alice, &other, "b2", "two").await;
    assert_eq!(
        gateway.wait_for(&second).await["notification"]["counts"]["unread"],
        2
    );
    // Bob leaves the first room with its notification unread: it no longer counts.
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    let third = server.send_text(&alice, &other, "b3", "three").await;
    assert_eq!(
        gateway.wait_for(&third).await["notification"]["counts"]["unread"],
        2
    );
    server.stop().await;
}

/// A read receipt and the counts it resets are one batch: a crash before it keeps both (the
/// client sends the receipt again), a completed write has both.
#[tokio::test]
async fn a_read_receipt_and_the_counts_it_resets_are_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (server, alice, bob_id, bob, room) = two_users(dir.path()).await;
    let event = send_mention(&server, &alice, &room, "m1", &bob_id).await;
    sync_until_counts(&server, &bob, &room, (1, 1)).await;
    server.stop().await;

    let (s, engine) = common::crash_engine::services(dir.path());
    let bob_id = ruma::UserId::parse(bob_id).unwrap();
    let room_id = ruma::RoomId::parse(room).unwrap();
    let event_id = ruma::EventId::parse(event).unwrap();
    let short = s.short.room(&room_id).unwrap().unwrap();
    let state = |s: &parvis::services::Services| {
        let receipt = s
            .receipts
            .get(short, "m.read", &bob_id)
            .unwrap()
            .map(|r| r.event_id);
        let counts = parvis::services::push::counts_store::room_counts(s, &bob_id, short)
            .unwrap()
            .total();
        (receipt, counts.notify, counts.highlight)
    };
    assert_eq!(state(&s), (None, 1, 1));

    engine.allow_writes(0);
    assert!(
        parvis::services::push::read::receipt(&s, &bob_id, short, "m.read", &event_id, None)
            .is_err()
    );
    assert_eq!(state(&s), (None, 1, 1), "a failed write changes nothing");

    engine.allow_writes(1);
    parvis::services::push::read::receipt(&s, &bob_id, short, "m.read", &event_id, None).unwrap();
    assert_eq!(
        state(&s),
        (Some(event_id.clone()), 0, 0),
        "the receipt and its reset in one write"
    );
}

/// The counts of a message are written in the message's own batch: the first /sync answer that
/// carries the message (a long poll woken by its commit) already counts it, every time.
#[tokio::test]
async fn a_sync_that_shows_a_message_shows_its_count() {
    let dir = tempfile::tempdir().unwrap();
    let (server, alice, bob_id, bob, room) = two_users(dir.path()).await;
    let mut since = sync_until_counts(&server, &bob, &room, (0, 0)).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..10u64 {
        let server_ref = &server;
        let (bob_ref, since_ref) = (&bob, since.clone());
        let poll = async move {
            server_ref
                .get(
                    &format!("/_matrix/client/v3/sync?timeout=5000&since={since_ref}"),
                    bob_ref,
                )
                .await
        };
        let send = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            send_mention(&server, &alice, &room, &format!("race{i}"), &bob_id).await
        };
        let (answer, event_id) = tokio::join!(poll, send);
        let events = answer["rooms"]["join"][&room]["timeline"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            events.iter().any(|e| e["event_id"] == event_id.as_str()),
            "the long poll wakes with the message: {answer}"
        );
        assert_eq!(
            unread(&answer, &room),
            (i + 1, i + 1),
            "and with its count: {}",
            answer["rooms"]["join"][&room]
        );
        since = answer["next_batch"].as_str().unwrap().to_owned();
    }
    server.stop().await;
}

/// The per-user memories of the push path (the counts last written, whether a user has an http
/// pusher) never hide a change: a pusher set after messages were evaluated gets the next one, and
/// counts reset by a receipt count again from zero.
#[tokio::test]
async fn a_pusher_set_after_messages_gets_the_next_and_counts_follow_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(0).await;
    let (server, alice, bob_id, bob, room) = two_users(dir.path()).await;
    // Evaluated while bob has no pusher.
    let first = send_mention(&server, &alice, &room, "c1", &bob_id).await;
    sync_until_counts(&server, &bob, &room, (1, 1)).await;
    gateway.set_pusher(&server, &bob, "late-key").await;
    let second = send_mention(&server, &alice, &room, "c2", &bob_id).await;
    let pushed = gateway.wait_for(&second).await;
    assert_eq!(pushed["notification"]["counts"]["unread"], 2, "{pushed}");
    assert_eq!(pushed["notification"]["devices"][0]["pushkey"], "late-key");
    sync_until_counts(&server, &bob, &room, (2, 2)).await;

    // A receipt resets the counts; the next message counts from there, not from the counts the
    // push path last wrote.
    server
        .post(
            &format!(
                "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
                enc(&room),
                enc(&second)
            ),
            &bob,
            json!({}),
        )
        .await;
    sync_until_counts(&server, &bob, &room, (0, 0)).await;
    let third = send_mention(&server, &alice, &room, "c3", &bob_id).await;
    let pushed = gateway.wait_for(&third).await;
    assert_eq!(pushed["notification"]["counts"]["unread"], 1, "{pushed}");
    let sync = sync_until_counts(&server, &bob, &room, (1, 1)).await;
    assert_ne!(first, third);
    assert!(sync["next_batch"].is_string());
    server.stop().await;
}

/// Several members with the server-default rules (evaluated once per event for all whom the
/// event does not name) and members with rules of their own: each gets their own counts. A
/// mention counts as a highlight for the mentioned member only, whichever place that member has
/// among the others; a member who muted the room gets nothing; a keyword rule highlights only its
/// owner.
#[tokio::test]
async fn members_with_default_and_own_rules_each_get_their_counts() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let mut members = Vec::new();
    for name in ["bob", "carol", "dave", "erin", "frank"] {
        let (id, token) = server.register(name).await;
        server.join(&token, &room).await;
        members.push((id, token));
    }
    let (erin, frank) = (&members[3].1, &members[4].1);
    server
        .put(
            &format!("/_matrix/client/v3/pushrules/global/room/{}", enc(&room)),
            erin,
            json!({ "actions": [] }),
        )
        .await;
    server
        .put(
            "/_matrix/client/v3/pushrules/global/content/deploys",
            frank,
            json!({ "actions": ["notify", { "set_tweak": "highlight" }], "pattern": "deploy" }),
        )
        .await;
    // The members' counts after each message, in the order bob, carol, dave, erin, frank.
    let expect = async |want: [(u64, u64); 5]| {
        for ((id, token), want) in members.iter().zip(want) {
            let sync = sync_until_counts(&server, token, &room, want).await;
            assert_eq!(unread(&sync, &room), want, "{id}");
        }
    };
    server.send_text(&alice, &room, "t1", "hello all").await;
    expect([(1, 0), (1, 0), (1, 0), (0, 0), (1, 0)]).await;
    // carol is named: evaluated apart from bob and dave, who share an evaluation.
    send_mention(&server, &alice, &room, "t2", &members[1].0).await;
    expect([(2, 0), (2, 1), (2, 0), (0, 0), (2, 0)]).await;
    // bob, the first of them, is named.
    send_mention(&server, &alice, &room, "t3", &members[0].0).await;
    expect([(3, 1), (3, 1), (3, 0), (0, 0), (3, 0)]).await;
    server.send_text(&alice, &room, "t4", "we deploy now").await;
    expect([(4, 1), (4, 1), (4, 0), (0, 0), (4, 1)]).await;
    // A member who puts the defaults back shares them again, and a rule disabled after that
    // counts: dave turns messages off.
    let dave_messages = async |enabled: bool| {
        server
            .put(
                "/_matrix/client/v3/pushrules/global/underride/.m.rule.message/enabled",
                &members[2].1,
                json!({ "enabled": enabled }),
            )
            .await;
    };
    dave_messages(false).await;
    server
        .send_text(&alice, &room, "t5", "quiet for dave")
        .await;
    expect([(5, 1), (5, 1), (4, 0), (0, 0), (5, 1)]).await;
    dave_messages(true).await;
    server.send_text(&alice, &room, "t6", "dave again").await;
    expect([(6, 1), (6, 1), (5, 0), (0, 0), (6, 1)]).await;
    server.stop().await;
}

/// In a room big enough for its members to be cached (100 and more), the members evaluated for a
/// message follow the joins and leaves: one who left gets no count, one who joined gets one.
#[tokio::test]
async fn a_big_rooms_notified_members_follow_joins_and_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let mut members = Vec::new();
    for i in 0..105 {
        let (_, token) = server.register(&format!("member{i:03}")).await;
        server.join(&token, &room).await;
        members.push(token);
    }
    let (_, newcomer) = server.register("newcomer").await;
    server.send_text(&alice, &room, "t1", "first").await;
    sync_until_counts(&server, &members[0], &room, (1, 0)).await;
    sync_until_counts(&server, &members[104], &room, (1, 0)).await;
    // member000 leaves, the newcomer joins: the next message counts for the newcomer only.
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
            &members[0],
            json!({}),
        )
        .await;
    server.join(&newcomer, &room).await;
    server.send_text(&alice, &room, "t2", "second").await;
    sync_until_counts(&server, &newcomer, &room, (1, 0)).await;
    sync_until_counts(&server, &members[104], &room, (2, 0)).await;
    let listed = server
        .get("/_matrix/client/v3/notifications", &members[0])
        .await;
    assert_eq!(
        listed["notifications"].as_array().unwrap().len(),
        1,
        "the member who left was notified of the first message only: {listed}"
    );
    server.stop().await;
}

/// A message writes its notification entry, and a member's counts only every
/// `counts::UNSTORED_MAX` messages: every reader adds the entries after the stored value. Counted
/// right by /sync and by the badge sent to a push gateway, after a restart (nothing cached), after
/// a receipt in the middle of them, and after a thread message (which writes the counts).
#[tokio::test]
async fn counts_of_many_messages_hold_across_a_restart_a_receipt_and_a_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, server, alice, _bob_id, bob, room) = two_users_bob_pushed(dir.path()).await;
    let mut ids = Vec::new();
    send_numbered(&server, &alice, &room, &mut ids, 0..150).await;
    sync_until_counts(&server, &bob, &room, (150, 0)).await;
    let pushed = gateway.wait_for(&ids[149]).await;
    assert_eq!(pushed["notification"]["counts"]["unread"], 150);

    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let (_, login) = server
        .login(common::password_login("bob", "secret-password"))
        .await;
    let bob = login["access_token"].as_str().unwrap().to_owned();
    let (_, login) = server
        .login(common::password_login("alice", "secret-password"))
        .await;
    let alice = login["access_token"].as_str().unwrap().to_owned();
    sync_until_counts(&server, &bob, &room, (150, 0)).await;

    // A receipt in the middle: the 50 messages after it stay unread.
    let receipt = |event: &str, body: Value| {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
            enc(&room),
            enc(event)
        );
        let (server, bob) = (&server, &bob);
        async move { server.post(&path, bob, body).await }
    };
    receipt(&ids[99], json!({})).await;
    sync_until_counts(&server, &bob, &room, (50, 0)).await;
    send_numbered(&server, &alice, &room, &mut ids, 150..160).await;
    let pushed = gateway.wait_for(&ids[159]).await;
    assert_eq!(pushed["notification"]["counts"]["unread"], 60);

    // A thread message writes the counts with the entries before it.
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/t1",
        enc(&room)
    );
    server
        .put(&path, &alice, json!({ "msgtype": "m.text", "body": "in thread", "m.relates_to": { "rel_type": "m.thread", "event_id": ids[0] } }))
        .await;
    send_numbered(&server, &alice, &room, &mut ids, 160..170).await;
    sync_until_counts(&server, &bob, &room, (71, 0)).await;
    // A receipt for the main timeline leaves the thread's message.
    receipt(&ids[169], json!({ "thread_id": "main" })).await;
    sync_until_counts(&server, &bob, &room, (1, 0)).await;
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    sync_until_counts(&server, &bob, &room, (1, 0)).await;
    server.stop().await;
}

/// An incremental /sync reads a room's counts only when a notification or a receipt may have
/// changed them since its token; a message the timeline filter hides still changes them, and the
/// room comes with its new count (and does not come again after).
#[tokio::test]
async fn a_message_the_filter_hides_still_brings_its_rooms_new_count() {
    let dir = tempfile::tempdir().unwrap();
    let (server, alice, _bob_id, bob, room) = two_users(dir.path()).await;
    let filter =
        enc(&json!({ "room": { "timeline": { "not_types": ["m.room.message"] } } }).to_string());
    let first = server
        .get(&format!("/_matrix/client/v3/sync?filter={filter}"), &bob)
        .await;
    let since = first["next_batch"].as_str().unwrap().to_owned();
    server.send_text(&alice, &room, "hidden", "hello").await;
    let next = server
        .get(
            &format!("/_matrix/client/v3/sync?filter={filter}&since={since}"),
            &bob,
        )
        .await;
    assert_eq!(unread(&next, &room), (1, 0), "{next}");
    let since = next["next_batch"].as_str().unwrap().to_owned();
    let quiet = server
        .get(
            &format!("/_matrix/client/v3/sync?filter={filter}&since={since}&timeout=0"),
            &bob,
        )
        .await;
    assert!(quiet["rooms"]["join"].get(&room).is_none(), "{quiet}");
    server.stop().await;
}
