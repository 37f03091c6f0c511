//! End-to-end flows of the client-server API against an in-process server.

mod common;

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn timeline_bodies(sync: &Value, room: &str) -> Vec<String> {
    sync["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["type"] == "m.room.message")
                .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn two_users_chat_and_history_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;

    let room = server
        .create_room(
            &alice,
            json!({ "name": "Project", "preset": "private_chat" }),
        )
        .await;
    assert!(room.starts_with('!'), "{room}");
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            &alice,
            json!({ "user_id": bob_id }),
        )
        .await;

    let sync = server.get("/_matrix/client/v3/sync", &bob).await;
    assert!(
        sync["rooms"]["invite"][&room]["invite_state"]["events"]
            .as_array()
            .unwrap()
            .len()
            >= 2,
        "{sync}"
    );
    // The inviter's member event is in the invite state (clients show who invited from it).
    let invite_state = sync["rooms"]["invite"][&room]["invite_state"]["events"]
        .as_array()
        .unwrap();
    assert!(
        invite_state.iter().any(|e| e["type"] == "m.room.member"
            && e["state_key"] == alice_id.as_str()
            && e["content"]["membership"] == "join"),
        "{sync}"
    );
    let since = sync["next_batch"].as_str().unwrap().to_owned();

    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    server.send_text(&alice, &room, "t1", "hello bob").await;
    server.send_text(&bob, &room, "t1", "hello alice").await;

    let sync = server
        .get(&format!("/_matrix/client/v3/sync?since={since}"), &bob)
        .await;
    assert_eq!(
        timeline_bodies(&sync, &room),
        vec!["hello bob", "hello alice"],
        "{sync}"
    );

    // Idempotent transaction ids.
    let first = server.send_text(&alice, &room, "same", "once").await;
    let again = server.send_text(&alice, &room, "same", "once").await;
    assert_eq!(first, again);

    let messages = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=10",
                enc(&room)
            ),
            &alice,
        )
        .await;
    let bodies: Vec<&str> = messages["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["once", "hello alice", "hello bob"]);

    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let sync = server.get("/_matrix/client/v3/sync", &bob).await;
    let bodies = timeline_bodies(&sync, &room);
    assert!(
        bodies.ends_with(&[
            "hello bob".to_owned(),
            "hello alice".to_owned(),
            "once".to_owned()
        ]),
        "{sync}"
    );
    server.stop().await;
}

#[tokio::test]
async fn long_poll_wakes_on_new_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let since = server.get("/_matrix/client/v3/sync", &alice).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();

    let poll = {
        let http = server.http.clone();
        let url = format!(
            "{}/_matrix/client/v3/sync?since={since}&timeout=20000",
            server.base
        );
        let token = alice.clone();
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    server.send_text(&alice, &room, "w", "wake up").await;
    let sync = tokio::time::timeout(std::time::Duration::from_secs(10), poll)
        .await
        .expect("woke before timeout")
        .unwrap();
    assert_eq!(timeline_bodies(&sync, &room), vec!["wake up"]);
    server.stop().await;
}

#[tokio::test]
async fn errors_follow_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;

    let (status, body) = server
        .call(Method::GET, "/_matrix/client/v3/account/whoami", None, None)
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_MISSING_TOKEN"))
    );
    let (status, body) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some("nope"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_UNKNOWN_TOKEN"))
    );
    let (status, body) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/no/such/endpoint",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_UNRECOGNIZED"))
    );

    let res = server
        .http
        .post(format!("{}/_matrix/client/v3/createRoom", server.base))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["errcode"], "M_NOT_JSON");

    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(&alice),
            Some(json!({ "preset": 5 })),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_BAD_JSON")),
        "{body}"
    );

    let room = server.create_room(&alice, json!({})).await;
    let big = "x".repeat(70_000);
    let (status, body) = server
        .call(
            Method::PUT,
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/big",
                enc(&room)
            ),
            Some(&alice),
            Some(json!({ "msgtype": "m.text", "body": big })),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("M_TOO_LARGE")),
        "{body}"
    );

    // Bob may not change Alice's display name; nothing changes.
    let (status, body) = server
        .call(
            Method::PUT,
            &format!("/_matrix/client/v3/profile/{}/displayname", enc(&alice_id)),
            Some(&bob),
            Some(json!({ "displayname": "Mallory" })),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")),
        "{body}"
    );
    let profile = server
        .get(
            &format!("/_matrix/client/v3/profile/{}", enc(&alice_id)),
            &alice,
        )
        .await;
    assert_eq!(profile["displayname"], "alice");

    // Bob is not in the room: he may not send to it.
    let (status, _) = server
        .call(
            Method::PUT,
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/x",
                enc(&room)
            ),
            Some(&bob),
            Some(json!({ "msgtype": "m.text", "body": "hi" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(json!({ "username": "alice", "password": "x" })),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_USER_IN_USE"))
    );
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(json!({ "username": "bad name!", "password": "x" })),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_INVALID_USERNAME"))
    );
    server.stop().await;
}

#[tokio::test]
async fn every_supported_room_version_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    for version in 1..=12 {
        let room = server
            .create_room(&alice, json!({ "room_version": version.to_string(), "preset": "public_chat", "name": format!("v{version}") }))
            .await;
        server
            .post(
                &format!("/_matrix/client/v3/join/{}", enc(&room)),
                &bob,
                json!({}),
            )
            .await;
        let event = server
            .send_text(&bob, &room, &format!("v{version}"), "hi")
            .await;
        let fetched = server
            .get(
                &format!(
                    "/_matrix/client/v3/rooms/{}/event/{}",
                    enc(&room),
                    enc(&event)
                ),
                &alice,
            )
            .await;
        assert_eq!(fetched["content"]["body"], "hi", "room version {version}");
        let redaction = server
            .put(
                &format!(
                    "/_matrix/client/v3/rooms/{}/redact/{}/r{version}",
                    enc(&room),
                    enc(&event)
                ),
                &alice,
                json!({ "reason": "test" }),
            )
            .await;
        assert!(redaction["event_id"].is_string());
        let fetched = server
            .get(
                &format!(
                    "/_matrix/client/v3/rooms/{}/event/{}",
                    enc(&room),
                    enc(&event)
                ),
                &alice,
            )
            .await;
        assert_eq!(
            fetched["content"],
            json!({}),
            "room version {version}: {fetched}"
        );
        let _ = bob_id.as_str();
    }
    server.stop().await;
}

#[tokio::test]
async fn knocking_shows_in_sync_and_invite_admits() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "initial_state": [{ "type": "m.room.join_rules", "content": { "join_rule": "knock" } }] }))
        .await;
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            Some(&bob),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    server
        .post(
            &format!("/_matrix/client/v3/knock/{}", enc(&room)),
            &bob,
            json!({ "reason": "let me in" }),
        )
        .await;
    let sync = server.get("/_matrix/client/v3/sync", &bob).await;
    assert!(
        sync["rooms"]["knock"][&room]["knock_state"]["events"].is_array(),
        "{sync}"
    );
    let members = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/members?membership=knock",
                enc(&room)
            ),
            &alice,
        )
        .await;
    assert_eq!(members["chunk"][0]["state_key"], bob_id);
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            &alice,
            json!({ "user_id": bob_id }),
        )
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    server.stop().await;
}

#[tokio::test]
async fn rate_limits_answer_limit_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.rate_limits.enabled = true;
    config.rate_limits.per_second = 0.5;
    config.rate_limits.burst = 3.0;
    let server = TestServer::start_with(config).await;
    let mut limited = None;
    for i in 0..10 {
        let (status, body) = server
            .call(Method::POST, "/_matrix/client/v3/login", None, Some(json!({ "type": "m.login.password", "user": format!("nobody{i}"), "password": "x" })))
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(body);
            break;
        }
    }
    let body = limited.expect("the burst of 3 is exhausted within 10 requests");
    assert_eq!(body["errcode"], "M_LIMIT_EXCEEDED");
    assert!(body["retry_after_ms"].as_u64().unwrap() > 0);
    server.stop().await;
}

#[tokio::test]
async fn history_visibility_joined_hides_earlier_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    let room = server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "initial_state": [{ "type": "m.room.history_visibility", "content": { "history_visibility": "joined" } }] }),
        )
        .await;
    let secret = server.send_text(&alice, &room, "s", "before bob").await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    server.send_text(&alice, &room, "p", "after bob").await;
    let messages = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
                enc(&room)
            ),
            &bob,
        )
        .await;
    let bodies: Vec<&str> = messages["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies, vec!["after bob"]);
    let (status, _) = server
        .call(
            Method::GET,
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(&secret)
            ),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_room_creation_by_one_user_gives_distinct_rooms() {
    let dir = tempfile::tempdir().unwrap();
    let server = std::sync::Arc::new(TestServer::start(dir.path()).await);
    let (_, alice) = server.register("alice").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (server, alice) = (server.clone(), alice.clone());
        tasks.push(tokio::spawn(async move {
            server.create_room(&alice, json!({})).await
        }));
    }
    let mut rooms = std::collections::BTreeSet::new();
    for task in tasks {
        rooms.insert(task.await.unwrap());
    }
    assert_eq!(rooms.len(), 8);
    let joined = server.get("/_matrix/client/v3/joined_rooms", &alice).await;
    assert_eq!(joined["joined_rooms"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn well_known_client_announces_the_public_base_url() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (status, body) = server
        .call(Method::GET, "/.well-known/matrix/client", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["m.homeserver"]["base_url"], "http://test.local");
    server.stop().await;

    let mut config = common::config(dir.path());
    config.listen.public_base_url = Some("https://matrix.example.org/".to_owned());
    let server = TestServer::start_with(config).await;
    let (_, body) = server
        .call(Method::GET, "/.well-known/matrix/client", None, None)
        .await;
    assert_eq!(
        body["m.homeserver"]["base_url"],
        "https://matrix.example.org"
    );
    server.stop().await;
}

/// The room summary of /sync (member counts, heroes of an unnamed room): in the first answer, left
/// out of an incremental answer when no membership changed (the spec allows it; a big room's
/// /sync then reads none of its members), and there again when one did.
#[tokio::test]
async fn sync_room_summary_comes_when_the_membership_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let (carol_id, _) = server.register("carol").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server.join(&bob, &room).await;
    let first = server.get("/_matrix/client/v3/sync", &alice).await;
    let summary = &first["rooms"]["join"][&room]["summary"];
    assert_eq!(summary["m.joined_member_count"], 2, "{first}");
    assert_eq!(summary["m.invited_member_count"], 0, "{first}");
    assert_eq!(summary["m.heroes"], json!([bob_id]), "{first}");

    server.send_text(&alice, &room, "t1", "hello").await;
    let since = first["next_batch"].as_str().unwrap();
    let next = server
        .get(
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            &alice,
        )
        .await;
    let entry = &next["rooms"]["join"][&room];
    assert_eq!(entry["timeline"]["events"][0]["content"]["body"], "hello");
    let summary = &entry["summary"];
    assert!(
        summary.is_null() || summary == &json!({}),
        "no membership changed: {next}"
    );

    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            &alice,
            json!({ "user_id": carol_id }),
        )
        .await;
    let since = next["next_batch"].as_str().unwrap();
    let third = server
        .get(
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            &alice,
        )
        .await;
    let summary = &third["rooms"]["join"][&room]["summary"];
    assert_eq!(summary["m.joined_member_count"], 2, "{third}");
    assert_eq!(summary["m.invited_member_count"], 1, "{third}");
    assert_eq!(summary["m.heroes"], json!([bob_id, carol_id]), "{third}");
    server.stop().await;
}

/// An incremental /sync shows the receipts, presence and member changes (in `device_lists`)
/// made since its token, and only those: the server skips reading what it knows did not change
/// since the token (`services::stream_changes`), and knows nothing from before its start, so a
/// token from before a restart still sees what changed before the restart.
#[tokio::test]
async fn incremental_sync_shows_receipts_presence_and_member_changes_since_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let (carol_id, carol) = server.register("carol").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server.join(&bob, &room).await;
    let event = server.send_text(&alice, &room, "t1", "read me").await;
    let sync = |since: String| {
        let server = server.handle();
        let alice = alice.clone();
        async move {
            server
                .get(
                    &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
                    &alice,
                )
                .await
        }
    };
    let next = |answer: &Value| answer["next_batch"].as_str().unwrap().to_owned();
    let receipts = |answer: &Value| -> Vec<Value> {
        answer["rooms"]["join"][&room]["ephemeral"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] == "m.receipt")
            .cloned()
            .collect()
    };
    let presence_of = |answer: &Value, user: &str| -> Option<Value> {
        answer["presence"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["sender"] == user)
            .map(|e| e["content"]["presence"].clone())
    };
    let changed = |answer: &Value| -> Vec<String> {
        answer["device_lists"]["changed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect()
    };
    let first = server.get("/_matrix/client/v3/sync", &alice).await;
    let token = next(&first);

    // Bob reads the message: the next answer has his receipt, the one after it does not.
    server
        .post(
            &format!(
                "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
                enc(&room),
                enc(&event)
            ),
            &bob,
            json!({}),
        )
        .await;
    let with_receipt = sync(token.clone()).await;
    let read = receipts(&with_receipt);
    assert_eq!(read.len(), 1, "{with_receipt}");
    assert!(
        read[0]["content"][&event]["m.read"][&bob_id].is_object(),
        "{with_receipt}"
    );
    let quiet = sync(next(&with_receipt)).await;
    assert!(receipts(&quiet).is_empty(), "{quiet}");

    // Bob's presence, then carol's join (her devices are now alice's concern).
    server
        .put(
            &format!("/_matrix/client/v3/presence/{}/status", enc(&bob_id)),
            &bob,
            json!({ "presence": "unavailable" }),
        )
        .await;
    let with_presence = sync(next(&quiet)).await;
    assert_eq!(
        presence_of(&with_presence, &bob_id),
        Some(json!("unavailable")),
        "{with_presence}"
    );
    let quiet = sync(next(&with_presence)).await;
    assert_eq!(presence_of(&quiet, &bob_id), None, "{quiet}");
    server.join(&carol, &room).await;
    let with_join = sync(next(&quiet)).await;
    assert!(changed(&with_join).contains(&carol_id), "{with_join}");
    let quiet = sync(next(&with_join)).await;
    assert!(!changed(&quiet).contains(&carol_id), "{quiet}");

    // Changes before a restart, asked for after it with a token from before them.
    let before = next(&quiet);
    let late = server.send_text(&alice, &room, "t2", "late").await;
    server
        .post(
            &format!(
                "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
                enc(&room),
                enc(&late)
            ),
            &carol,
            json!({}),
        )
        .await;
    server
        .put(
            &format!("/_matrix/client/v3/presence/{}/status", enc(&bob_id)),
            &bob,
            json!({ "presence": "online" }),
        )
        .await;
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let after = server
        .get(
            &format!("/_matrix/client/v3/sync?since={before}&timeout=0"),
            &alice,
        )
        .await;
    let read = receipts(&after);
    assert!(
        read.iter()
            .any(|r| r["content"][&late]["m.read"][&carol_id].is_object()),
        "{after}"
    );
    assert_eq!(
        presence_of(&after, &bob_id),
        Some(json!("online")),
        "{after}"
    );
    server.stop().await;
}
