//! Simplified sliding sync (MSC4186) through the client API of a real server: lists sorted by
//! recency with ranges, room subscriptions with `required_state` and `$LAZY`, incremental answers
//! with `pos` and long-polling, invites, the to_device and e2ee extensions, `M_UNKNOWN_POS`, and
//! history visibility.

mod common;

use std::time::Duration;

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PATH: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

async fn sliding(server: &TestServer, token: &str, pos: Option<&str>, body: Value) -> Value {
    let path = match pos {
        Some(pos) => format!("{PATH}?pos={}&timeout=0", enc(pos)),
        None => PATH.to_owned(),
    };
    server.post(&path, token, body).await
}

fn all_rooms(range_end: u64, timeline_limit: u64) -> Value {
    json!({ "lists": { "all": { "ranges": [[0, range_end]], "timeline_limit": timeline_limit, "required_state": [["m.room.name", ""]] } } })
}

fn bodies(room: &Value) -> Vec<String> {
    room["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

fn pos(answer: &Value) -> String {
    answer["pos"].as_str().expect("pos").to_owned()
}

#[tokio::test]
async fn versions_advertise_simplified_sliding_sync() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let versions = server.get("/_matrix/client/versions", &alice).await;
    assert_eq!(
        versions["unstable_features"]["org.matrix.simplified_msc3575"], true,
        "{versions}"
    );
    server.stop().await;
}

/// List ranges and ordering by recency.
#[tokio::test]
async fn lists_are_sorted_by_recency_and_cut_by_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let a = server.create_room(&alice, json!({ "name": "A" })).await;
    let b = server.create_room(&alice, json!({ "name": "B" })).await;
    let c = server.create_room(&alice, json!({ "name": "C" })).await;
    server.send_text(&alice, &a, "1", "in a").await;
    server.send_text(&alice, &c, "2", "in c").await;
    // Recency: c, a, b.
    let first = sliding(&server, &alice, None, all_rooms(1, 1)).await;
    assert_eq!(first["lists"]["all"]["count"], 3, "{first}");
    let rooms = first["rooms"].as_object().unwrap();
    assert_eq!(rooms.len(), 2, "{first}");
    assert!(
        rooms.contains_key(&c) && rooms.contains_key(&a) && !rooms.contains_key(&b),
        "{first}"
    );
    assert!(rooms[&c]["bump_stamp"].as_u64().unwrap() > rooms[&a]["bump_stamp"].as_u64().unwrap());
    assert_eq!(rooms[&c]["initial"], true);
    assert_eq!(rooms[&c]["name"], "C");
    assert_eq!(bodies(&rooms[&c]), ["in c"]);
    assert_eq!(rooms[&c]["limited"], true);
    assert_eq!(rooms[&c]["joined_count"], 1);

    // A message in b moves it to the top: it enters the range, sent for the first time.
    server.send_text(&alice, &b, "3", "in b").await;
    let next = sliding(&server, &alice, Some(&pos(&first)), all_rooms(1, 1)).await;
    assert_eq!(next["lists"]["all"]["count"], 3);
    let rooms = next["rooms"].as_object().unwrap();
    assert!(rooms.contains_key(&b), "{next}");
    assert_eq!(rooms[&b]["initial"], true);
    assert_eq!(bodies(&rooms[&b]), ["in b"]);
    // c did not change: it is not repeated.
    assert!(!rooms.contains_key(&c), "{next}");
    server.stop().await;
}

/// The order (bump stamps) follows each new message over several answers (the remembered bumps
/// are updated by the appends), and an event that is not a bump (a name change) leaves its room where it was.
#[tokio::test]
async fn recency_follows_messages_over_many_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let mut rooms = Vec::new();
    for name in ["A", "B", "C"] {
        let room = server.create_room(&alice, json!({ "name": name })).await;
        server.send_text(&alice, &room, name, name).await;
        rooms.push(room);
    }
    let stamps = |answer: &Value| -> Vec<u64> {
        rooms
            .iter()
            .map(|r| answer["rooms"][r]["bump_stamp"].as_u64().unwrap_or(0))
            .collect()
    };
    // The list's order: by bump stamp, newest first (answers carry no `ops`).
    let order = |answer: &Value| -> Vec<String> {
        let mut by_stamp: Vec<(u64, String)> = stamps(answer)
            .into_iter()
            .zip(rooms.iter().cloned())
            .collect();
        by_stamp.sort_by(|a, b| b.cmp(a));
        by_stamp.into_iter().map(|(_, r)| r).collect()
    };
    // A new connection each time (its own `conn_id`), beside the one that goes on.
    let fresh_body = |n: usize| {
        let mut body = all_rooms(9, 1);
        body["conn_id"] = json!(format!("fresh{n}"));
        body
    };
    let first = sliding(&server, &alice, None, all_rooms(9, 1)).await;
    let before = stamps(&first);
    assert!(before[2] > before[1] && before[1] > before[0], "{first}");
    let mut pos_token = pos(&first);
    // Each room in turn gets a message and comes first; a fresh connection shows the same order.
    for (turn, target) in [0usize, 1, 0, 2].into_iter().enumerate() {
        server
            .send_text(&alice, &rooms[target], &format!("t{turn}"), "again")
            .await;
        let next = sliding(&server, &alice, Some(&pos_token), all_rooms(9, 1)).await;
        pos_token = pos(&next);
        let bumped = next["rooms"][&rooms[target]]["bump_stamp"]
            .as_u64()
            .unwrap();
        let fresh = sliding(&server, &alice, None, fresh_body(turn)).await;
        assert_eq!(order(&fresh)[0], rooms[target], "turn {turn}: {fresh}");
        let now = stamps(&fresh);
        assert_eq!(now[target], bumped, "turn {turn}: {fresh}");
        assert!(
            now.iter()
                .enumerate()
                .all(|(i, s)| i == target || *s < bumped),
            "turn {turn}: {fresh}"
        );
    }
    // A name change is not a bump: the room keeps its stamp and place.
    let fresh = sliding(&server, &alice, None, fresh_body(10)).await;
    let (order_before, stamps_before) = (order(&fresh), stamps(&fresh));
    server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.name/",
                enc(&rooms[1])
            ),
            &alice,
            json!({ "name": "B2" }),
        )
        .await;
    let next = sliding(&server, &alice, Some(&pos_token), all_rooms(9, 1)).await;
    assert_eq!(next["rooms"][&rooms[1]]["name"], "B2", "{next}");
    let fresh = sliding(&server, &alice, None, fresh_body(11)).await;
    assert_eq!(order(&fresh), order_before, "{fresh}");
    assert_eq!(stamps(&fresh), stamps_before, "{fresh}");
    // After a restart (nothing remembered), each room's stored last bump gives the same.
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let after = sliding(&server, &alice, None, all_rooms(9, 1)).await;
    assert_eq!(stamps(&after), stamps_before, "{after}");
    server.stop().await;
    // Rooms last bumped before the record existed (none stored, nothing remembered after a
    // restart): each room's timeline is read back past the name change to its last message.
    let server = TestServer::start(dir.path()).await;
    {
        use parvis::services::sync::sliding::bumps::ROOM_LAST_BUMP;
        let s = common::federation::services(&server);
        let db = &s.globals.db;
        let records: Vec<Box<[u8]>> = db
            .scan_prefix(ROOM_LAST_BUMP, &[])
            .map(|entry| entry.unwrap().0)
            .collect();
        assert_eq!(records.len(), rooms.len(), "one record per room");
        for key in records {
            db.delete(ROOM_LAST_BUMP, key).unwrap();
        }
    }
    let without = sliding(&server, &alice, None, all_rooms(9, 1)).await;
    assert_eq!(stamps(&without), stamps_before, "{without}");
    assert_eq!(order(&without), order_before, "{without}");
    // A message after that is a bump again, remembered and then recorded.
    let new_pos = {
        let first = sliding(&server, &alice, None, fresh_body(12)).await;
        server.send_text(&alice, &rooms[2], "t-last", "last").await;
        let next = sliding(&server, &alice, Some(&pos(&first)), fresh_body(12)).await;
        next["rooms"][&rooms[2]]["bump_stamp"].as_u64().unwrap()
    };
    assert!(new_pos > stamps_before[2]);
    let fresh = sliding(&server, &alice, None, fresh_body(13)).await;
    assert_eq!(order(&fresh)[0], rooms[2], "{fresh}");
    assert_eq!(stamps(&fresh)[2], new_pos, "{fresh}");
    server.stop().await;
}

/// Room subscription with required_state and lazy-loaded members.
#[tokio::test]
async fn room_subscription_with_required_state_and_lazy_members() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let (carol_id, carol) = server.register("carol").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat", "topic": "t" }))
        .await;
    for token in [&bob, &carol] {
        server
            .post(
                &format!("/_matrix/client/v3/join/{}", enc(&room)),
                token,
                json!({}),
            )
            .await;
    }
    server.send_text(&carol, &room, "1", "from carol").await;
    server.send_text(&bob, &room, "2", "from bob").await;
    let body = json!({ "room_subscriptions": { &room: {
        "timeline_limit": 1,
        "required_state": [["m.room.topic", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"]],
    } } });
    let answer = sliding(&server, &alice, None, body.clone()).await;
    let data = &answer["rooms"][&room];
    assert_eq!(bodies(data), ["from bob"], "{answer}");
    let mut state: Vec<(String, String)> = data["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["state_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    state.sort();
    let mut want = vec![
        ("m.room.member".to_owned(), alice_id.clone()),
        ("m.room.member".to_owned(), bob_id.clone()),
        ("m.room.topic".to_owned(), String::new()),
    ];
    want.sort();
    assert_eq!(state, want, "carol sent nothing in the timeline: {answer}");
    assert!(!state.iter().any(|(_, k)| *k == carol_id));
    assert_eq!(data["joined_count"], 3);
    // No name: heroes stand in for it.
    let heroes: Vec<&str> = data["heroes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["user_id"].as_str().unwrap())
        .collect();
    assert!(
        heroes.contains(&bob_id.as_str())
            && heroes.contains(&carol_id.as_str())
            && !heroes.contains(&alice_id.as_str())
    );
    // prev_batch is a /messages token: the earlier message is behind it.
    let prev = data["prev_batch"].as_str().unwrap();
    let messages = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&from={prev}&limit=1",
                enc(&room)
            ),
            &alice,
        )
        .await;
    assert_eq!(
        messages["chunk"][0]["content"]["body"], "from carol",
        "{messages}"
    );

    // Later, carol speaks: her member event comes along with the new timeline.
    server.send_text(&carol, &room, "3", "carol again").await;
    let next = sliding(&server, &alice, Some(&pos(&answer)), body).await;
    let data = &next["rooms"][&room];
    assert_eq!(bodies(data), ["carol again"], "{next}");
    assert_eq!(data["num_live"], 1);
    assert!(data.get("initial").is_none());
    let keys: Vec<&str> = data["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [carol_id.as_str()], "{next}");
    server.stop().await;
}

/// Incremental sync with pos, waking a long poll.
#[tokio::test]
async fn incremental_answers_and_long_poll_wake_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    server.send_text(&alice, &room, "1", "old").await;
    let first = sliding(&server, &alice, None, all_rooms(9, 5)).await;
    assert!(bodies(&first["rooms"][&room]).contains(&"old".to_owned()));

    // Nothing new: a short poll answers after its timeout with no room.
    let path = format!("{PATH}?pos={}&timeout=300", enc(&pos(&first)));
    let started = std::time::Instant::now();
    let quiet = server.post(&path, &alice, all_rooms(9, 5)).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(
        quiet
            .get("rooms")
            .is_none_or(|r| r.as_object().unwrap().is_empty()),
        "{quiet}"
    );

    let poll = {
        let http = server.http.clone();
        let url = format!(
            "{}{PATH}?pos={}&timeout=20000",
            server.base,
            enc(&pos(&quiet))
        );
        let token = alice.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&all_rooms(9, 5))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.send_text(&alice, &room, "2", "wake up").await;
    let woke = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("woke before the timeout")
        .unwrap();
    assert_eq!(bodies(&woke["rooms"][&room]), ["wake up"], "{woke}");
    // `limited: false` is left out.
    assert!(
        woke["rooms"][&room]
            .get("limited")
            .is_none_or(|l| l == false),
        "{woke}"
    );

    // The same pos can be used again (a retried request) and gives the same room.
    let again = sliding(&server, &alice, Some(&pos(&quiet)), all_rooms(9, 5)).await;
    assert_eq!(bodies(&again["rooms"][&room]), ["wake up"]);
    server.stop().await;
}

/// M_UNKNOWN_POS.
#[tokio::test]
async fn unknown_pos_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (status, body) = server
        .call(
            Method::POST,
            &format!("{PATH}?pos=12345_6"),
            Some(&alice),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errcode"], "M_UNKNOWN_POS");
    // A pos of another connection is unknown on this one.
    let first = sliding(&server, &alice, None, json!({ "conn_id": "one" })).await;
    let (status, body) = server
        .call(
            Method::POST,
            &format!("{PATH}?pos={}", enc(&pos(&first))),
            Some(&alice),
            Some(json!({ "conn_id": "two" })),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_UNKNOWN_POS"))
    );
    let ok = sliding(
        &server,
        &alice,
        Some(&pos(&first)),
        json!({ "conn_id": "one" }),
    )
    .await;
    assert!(ok["pos"].is_string());
    server.stop().await;
}

/// Invites with invite_state and the is_invite filter.
#[tokio::test]
async fn invites_carry_invite_state() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let joined = server.create_room(&bob, json!({})).await;
    let room = server.create_room(&alice, json!({ "name": "Party" })).await;
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            &alice,
            json!({ "user_id": bob_id }),
        )
        .await;
    let body = json!({ "lists": {
        "invites": { "ranges": [[0, 9]], "timeline_limit": 1, "filters": { "is_invite": true } },
        "others": { "ranges": [[0, 9]], "timeline_limit": 1, "filters": { "is_invite": false } },
    } });
    let answer = sliding(&server, &bob, None, body).await;
    assert_eq!(answer["lists"]["invites"]["count"], 1, "{answer}");
    assert_eq!(answer["lists"]["others"]["count"], 1, "{answer}");
    let invite = &answer["rooms"][&room];
    let state = invite["invite_state"].as_array().unwrap();
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Party"),
        "{answer}"
    );
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == bob_id.as_str())
    );
    assert!(invite.get("timeline").is_none());
    assert!(answer["rooms"][&joined].is_object());

    // Rejecting the invite: the room comes once more, with bob's leave, and leaves the lists.
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    let body = json!({ "lists": { "invites": { "ranges": [[0, 9]], "timeline_limit": 1, "filters": { "is_invite": true } } } });
    let next = sliding(&server, &bob, Some(&pos(&answer)), body.clone()).await;
    assert_eq!(next["lists"]["invites"]["count"], 0, "{next}");
    let left = &next["rooms"][&room];
    let events: Vec<&Value> = left["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(left["required_state"].as_array().into_iter().flatten())
        .collect();
    assert!(
        events.iter().any(|e| e["type"] == "m.room.member"
            && e["state_key"] == bob_id.as_str()
            && e["content"]["membership"] == "leave"),
        "{next}"
    );
    let after = sliding(&server, &bob, Some(&pos(&next)), body).await;
    assert!(
        after["rooms"].get(&room).is_none(),
        "the leave comes once: {after}"
    );
    server.stop().await;
}

/// To_device and e2ee extensions.
#[tokio::test]
async fn to_device_and_e2ee_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let (carol_id, carol) = server.register("carol").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server
        .post("/_matrix/client/v3/keys/upload", &alice, json!({ "one_time_keys": { "signed_curve25519:AAAA": { "key": "a2V5", "signatures": {} } } }))
        .await;
    let body = |since: Option<&str>| {
        let mut to_device = json!({ "enabled": true });
        if let Some(since) = since {
            to_device["since"] = json!(since);
        }
        json!({ "extensions": { "to_device": to_device, "e2ee": { "enabled": true } } })
    };
    let first = sliding(&server, &alice, None, body(None)).await;
    assert_eq!(
        first["extensions"]["e2ee"]["device_one_time_keys_count"]["signed_curve25519"], 1,
        "{first}"
    );
    assert!(first["extensions"]["e2ee"]["device_unused_fallback_key_types"].is_array());

    server
        .put(
            "/_matrix/client/v3/sendToDevice/m.test/t1",
            &bob,
            json!({ "messages": { &alice_id: { "*": { "n": 1 } } } }),
        )
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &carol,
            json!({}),
        )
        .await;
    let since = first["extensions"]["to_device"]["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = sliding(&server, &alice, Some(&pos(&first)), body(Some(&since))).await;
    let events = second["extensions"]["to_device"]["events"]
        .as_array()
        .unwrap();
    assert_eq!(events.len(), 1, "{second}");
    assert_eq!(
        (events[0]["type"].as_str(), events[0]["sender"].as_str()),
        (Some("m.test"), Some(bob_id.as_str()))
    );
    // carol newly shares a room with alice: her devices are to be fetched.
    let changed = second["extensions"]["e2ee"]["device_lists"]["changed"]
        .as_array()
        .unwrap();
    assert!(changed.iter().any(|u| u == carol_id.as_str()), "{second}");

    // Acknowledged with the next since: deleted, never sent again.
    let next = second["extensions"]["to_device"]["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let third = sliding(&server, &alice, Some(&pos(&second)), body(Some(&next))).await;
    assert!(
        third["extensions"]["to_device"]["events"]
            .as_array()
            .is_none_or(|e| e.is_empty()),
        "{third}"
    );
    let fresh = sliding(&server, &alice, None, body(None)).await;
    assert!(
        fresh["extensions"]["to_device"]["events"]
            .as_array()
            .is_none_or(|e| e.is_empty()),
        "{fresh}"
    );
    server.stop().await;
}

/// History visibility: "joined" hides what came before the join.
#[tokio::test]
async fn history_visibility_hides_events_before_the_join() {
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
    server.send_text(&alice, &room, "1", "before bob").await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    server.send_text(&alice, &room, "2", "after bob").await;
    let answer = sliding(&server, &bob, None, all_rooms(9, 20)).await;
    let seen = bodies(&answer["rooms"][&room]);
    assert_eq!(seen, ["after bob"], "{answer}");
    // A room bob is not in and cannot read is not given by a subscription.
    let private = server
        .create_room(&alice, json!({ "preset": "private_chat" }))
        .await;
    let sub = sliding(
        &server,
        &bob,
        None,
        json!({ "room_subscriptions": { &private: { "timeline_limit": 5 } } }),
    )
    .await;
    assert!(sub["rooms"].get(&private).is_none(), "{sub}");
    server.stop().await;
}

/// Account data extension: global data and push rules on a new connection, room account data
/// (tags) of rooms in range, and the tag set on a room while it was out of range once it comes in.
#[tokio::test]
async fn account_data_extension_follows_the_rooms_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let old = server.create_room(&alice, json!({})).await;
    let new = server.create_room(&alice, json!({})).await;
    server.send_text(&alice, &new, "1", "newer").await;
    let body = json!({
        "lists": { "top": { "ranges": [[0, 0]], "timeline_limit": 1 } },
        "extensions": { "account_data": { "enabled": true } },
    });
    let first = sliding(&server, &alice, None, body.clone()).await;
    let global = first["extensions"]["account_data"]["global"]
        .as_array()
        .unwrap();
    assert!(
        global.iter().any(|e| e["type"] == "m.push_rules"),
        "{first}"
    );
    assert!(
        first["rooms"].get(&new).is_some() && first["rooms"].get(&old).is_none(),
        "{first}"
    );

    // A tag on the room out of range is not sent yet…
    let tag_path = format!(
        "/_matrix/client/v3/user/{}/rooms/{}/tags/u.work",
        enc(&alice_id),
        enc(&old)
    );
    server.put(&tag_path, &alice, json!({ "order": 0.5 })).await;
    server
        .put(
            &format!(
                "/_matrix/client/v3/user/{}/account_data/org.example.x",
                enc(&alice_id)
            ),
            &alice,
            json!({ "a": 1 }),
        )
        .await;
    let second = sliding(&server, &alice, Some(&pos(&first)), body.clone()).await;
    let ext = &second["extensions"]["account_data"];
    assert_eq!(
        ext["global"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["org.example.x"],
        "{second}"
    );
    assert!(
        ext.get("rooms").is_none_or(|r| r.get(&old).is_none()),
        "{second}"
    );

    // …and comes with the room when a message brings it into range.
    server.send_text(&alice, &old, "2", "back on top").await;
    let third = sliding(&server, &alice, Some(&pos(&second)), body.clone()).await;
    assert!(third["rooms"].get(&old).is_some(), "{third}");
    let tags = &third["extensions"]["account_data"]["rooms"][&old];
    assert!(
        tags.as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.tag" && e["content"]["tags"]["u.work"].is_object()),
        "{third}"
    );
    assert!(
        third["extensions"]["account_data"].get("global").is_none(),
        "{third}"
    );

    // A room already sent, then out of range when it was tagged: the tag comes when it is back.
    let tag_path = format!(
        "/_matrix/client/v3/user/{}/rooms/{}/tags/u.later",
        enc(&alice_id),
        enc(&new)
    );
    server.put(&tag_path, &alice, json!({})).await;
    let fourth = sliding(&server, &alice, Some(&pos(&third)), body.clone()).await;
    assert!(
        fourth["extensions"]["account_data"]
            .get("rooms")
            .is_none_or(|r| r.get(&new).is_none()),
        "{fourth}"
    );
    server.send_text(&alice, &new, "3", "new again").await;
    let fifth = sliding(&server, &alice, Some(&pos(&fourth)), body).await;
    assert_eq!(bodies(&fifth["rooms"][&new]), ["new again"], "{fifth}");
    let tags = &fifth["extensions"]["account_data"]["rooms"][&new];
    assert!(
        tags.as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.tag" && e["content"]["tags"]["u.later"].is_object()),
        "{fifth}"
    );
    server.stop().await;
}

/// A user in many rooms (100 and more: their rooms are remembered between requests): the lists
/// follow a join, a leave and an invite.
#[tokio::test]
async fn a_user_in_many_rooms_sees_joins_leaves_and_invites() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    let mut rooms = Vec::new();
    for _ in 0..101 {
        rooms.push(server.create_room(&alice, json!({})).await);
    }
    let count = |answer: &Value| answer["lists"]["all"]["count"].as_u64().unwrap();
    let first = sliding(&server, &alice, None, all_rooms(4, 1)).await;
    assert_eq!(count(&first), 101, "{first}");
    let mut token = pos(&first);
    // A join: bob's public room.
    let public = server
        .create_room(&bob, json!({ "preset": "public_chat" }))
        .await;
    server.join(&alice, &public).await;
    let next = sliding(&server, &alice, Some(&token), all_rooms(4, 1)).await;
    assert_eq!(count(&next), 102, "{next}");
    assert!(next["rooms"].get(&public).is_some(), "{next}");
    token = pos(&next);
    // A leave.
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&rooms[0])),
            &alice,
            json!({}),
        )
        .await;
    let next = sliding(&server, &alice, Some(&token), all_rooms(4, 1)).await;
    assert_eq!(count(&next), 101, "{next}");
    token = pos(&next);
    // An invite from bob.
    let private = server.create_room(&bob, json!({})).await;
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&private)),
            &bob,
            json!({ "user_id": alice_id }),
        )
        .await;
    let next = sliding(&server, &alice, Some(&token), all_rooms(4, 1)).await;
    assert_eq!(count(&next), 102, "{next}");
    assert!(next["rooms"].get(&private).is_some(), "{next}");
    server.stop().await;
}
