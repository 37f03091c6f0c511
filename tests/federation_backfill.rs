//! /messages backfills from other servers: a user of B joins a room of A that already has
//! history; paginating backwards on B fetches it over federation (`/backfill`), in order, with
//! stable tokens, never in /sync; /context and /event serve backfilled events; history visibility
//! applies at each backfilled event; with A down, /messages answers from what B has.

mod common;

use std::time::Duration;

use common::federation::{fixed_config, services};
use common::{TestServer, enc};
use parvis::services::Services;
use reqwest::{Method, StatusCode};
use ruma::{OwnedRoomId, OwnedServerName};
use serde_json::{Value, json};

fn config_for(dir: &std::path::Path) -> (parvis::config::Config, OwnedServerName) {
    let (mut config, name) = fixed_config(dir);
    config.federation.request_timeout_secs = 5;
    (config, name)
}
/// A public room of A with `history_visibility` `visibility` and `count` messages, then joined by
/// `bob` of B. Returns the room id.
async fn room_with_history(
    a: &TestServer,
    a_name: &OwnedServerName,
    alice: &str,
    b: &TestServer,
    bob: &str,
    visibility: &str,
    count: usize,
) -> String {
    let room = a
        .create_room(
            alice,
            json!({
                "preset": "public_chat",
                "room_version": "12",
                "initial_state": [{ "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": visibility } }],
            }),
        )
        .await;
    for i in 0..count {
        a.send_text(alice, &room, &format!("t{i}"), &format!("m{i}"))
            .await;
    }
    let path = format!(
        "/_matrix/client/v3/join/{}?server_name={}",
        enc(&room),
        enc(a_name.as_str())
    );
    b.post(&path, bob, json!({})).await;
    room
}

async fn messages(server: &TestServer, token: &str, room: &str, query: &str) -> Value {
    server
        .get(
            &format!("/_matrix/client/v3/rooms/{}/messages?{query}", enc(room)),
            token,
        )
        .await
}

fn chunk(page: &Value) -> Vec<Value> {
    page["chunk"].as_array().cloned().unwrap_or_default()
}

fn body_of(event: &Value) -> Option<&str> {
    event["content"]["body"].as_str()
}

/// Pages backwards with `limit` from the newest event until `end` is gone; checks each page's
/// `start` is the token asked with. Returns the events (newest first) and the `end` of each page.
async fn page_back(
    server: &TestServer,
    token: &str,
    room: &str,
    limit: usize,
) -> (Vec<Value>, Vec<String>) {
    let (mut events, mut tokens) = (Vec::new(), Vec::new());
    let mut from: Option<String> = None;
    for _ in 0..100 {
        let query = match &from {
            Some(f) => format!("dir=b&limit={limit}&from={}", enc(f)),
            None => format!("dir=b&limit={limit}"),
        };
        let page = messages(server, token, room, &query).await;
        if let Some(f) = &from {
            assert_eq!(
                page["start"].as_str(),
                Some(f.as_str()),
                "start is the token asked with: {page}"
            );
        }
        events.extend(chunk(&page));
        match page["end"].as_str() {
            Some(end) => {
                assert!(chunk(&page).len() <= limit);
                tokens.push(end.to_owned());
                from = Some(end.to_owned());
            }
            None => return (events, tokens),
        }
    }
    panic!("pagination did not end");
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

fn short_room(s: &Services, room: &str) -> u64 {
    let room: OwnedRoomId = room.try_into().unwrap();
    s.short.room(&room).unwrap().unwrap()
}

#[tokio::test]
async fn test_messages_over_federation_backfills_history_before_the_join() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_config, a_name) = config_for(dir_a.path());
    let (b_config, _) = config_for(dir_b.path());
    let a = TestServer::start_with(a_config).await;
    let b = TestServer::start_with(b_config).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let room = room_with_history(&a, &a_name, &alice_token, &b, &bob_token, "shared", 60).await;
    // The join's resync (partial state) moves the stream once: done before positions are compared.
    common::peer::wait_full_state(&b, &room).await;

    // B's initial sync, before any pagination: its timeline starts at the join.
    let first_sync = b.get("/_matrix/client/v3/sync", &bob_token).await;
    let since = first_sync["next_batch"].as_str().unwrap().to_owned();
    let synced = first_sync["rooms"]["join"][&room]["timeline"]["events"].to_string();
    assert!(
        !synced.contains("\"m59\""),
        "history is not in the initial sync: {synced}"
    );

    let sb = services(&b);
    let short = short_room(&sb, &room);
    let (extremities, current) = (
        sb.timeline.extremities(short).unwrap(),
        sb.state.current_snapshot(short).unwrap(),
    );
    let position = sb.globals.current_pos();

    // Backwards, 7 at a time: bob's join, the 60 messages newest first, then the creation events.
    let (events, tokens) = page_back(&b, &bob_token, &room, 7).await;
    assert_eq!(events[0]["type"], "m.room.member");
    assert_eq!(events[0]["state_key"], bob.as_str());
    let bodies: Vec<&str> = events.iter().filter_map(body_of).collect();
    let expected: Vec<String> = (0..60).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected, "all 60 messages, newest first");
    let oldest = events.last().unwrap();
    assert_eq!(
        oldest["type"], "m.room.create",
        "the room's creation ends the history: {oldest}"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in [
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == alice.as_str())
    );
    let distinct: std::collections::HashSet<String> = ids(&events).into_iter().collect();
    assert_eq!(distinct.len(), events.len(), "no event twice");
    let mut unique_tokens = tokens.clone();
    unique_tokens.dedup();
    assert_eq!(unique_tokens.len(), tokens.len(), "every page moves on");

    // The history is fetched once: the frontier is empty, and A is asked no more.
    assert_eq!(
        sb.timeline.backfill_frontier(short).unwrap(),
        Some(Vec::new())
    );
    // Backfilling changed neither the forward extremities, nor the current state, nor the stream.
    assert_eq!(sb.timeline.extremities(short).unwrap(), extremities);
    assert_eq!(sb.state.current_snapshot(short).unwrap(), current);
    assert_eq!(sb.globals.current_pos(), position);

    // Tokens stay valid: paging again gives the same events, and forwards from a token in the
    // backfilled part gives back, oldest first, what lay before it (across into the timeline).
    let (again, again_tokens) = page_back(&b, &bob_token, &room, 7).await;
    assert_eq!(ids(&again), ids(&events));
    assert_eq!(again_tokens, tokens);
    let middle = &tokens[4]; // after 35 events: among the backfilled ones
    let forward = messages(
        &b,
        &bob_token,
        &room,
        &format!("dir=f&limit=100&from={}", enc(middle)),
    )
    .await;
    let newer: Vec<Value> = events[..35].iter().rev().cloned().collect();
    assert_eq!(
        ids(&chunk(&forward)),
        ids(&newer),
        "forward from the middle: the 35 newer events, oldest first, ending with the join"
    );
    // And the whole room forwards from its start.
    let all_forward = messages(&b, &bob_token, &room, "dir=f&limit=200").await;
    let oldest_first: Vec<Value> = events.iter().rev().cloned().collect();
    assert_eq!(ids(&chunk(&all_forward)), ids(&oldest_first));
    // `to` bounds a page in the backfilled part.
    let bounded = messages(
        &b,
        &bob_token,
        &room,
        &format!(
            "dir=b&limit=100&from={}&to={}",
            enc(&tokens[1]),
            enc(&tokens[3])
        ),
    )
    .await;
    assert_eq!(ids(&chunk(&bounded)), ids(&events[14..28]));

    // /members at a token among backfilled events: the members then (alice alone).
    let then = b
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/members?at={}",
                enc(&room),
                enc(middle)
            ),
            &bob_token,
        )
        .await;
    let joined: Vec<&str> = then["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["content"]["membership"] == "join")
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert_eq!(joined, vec![alice.as_str()]);

    // /event and /context serve backfilled events.
    let m30 = events.iter().find(|e| body_of(e) == Some("m30")).unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let event = b
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(&m30)
            ),
            &bob_token,
        )
        .await;
    assert_eq!(body_of(&event), Some("m30"));
    let context = b
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/context/{}?limit=4",
                enc(&room),
                enc(&m30)
            ),
            &bob_token,
        )
        .await;
    let before: Vec<&str> = context["events_before"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(body_of)
        .collect();
    let after: Vec<&str> = context["events_after"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(body_of)
        .collect();
    assert_eq!((before, after), (vec!["m29", "m28"], vec!["m31", "m32"]));
    let from_context = messages(
        &b,
        &bob_token,
        &room,
        &format!(
            "dir=b&limit=2&from={}",
            enc(context["start"].as_str().unwrap())
        ),
    )
    .await;
    assert_eq!(
        chunk(&from_context)
            .iter()
            .filter_map(body_of)
            .collect::<Vec<_>>(),
        vec!["m27", "m26"]
    );

    // An incremental /sync after the backfill has A's new message and none of the history.
    a.send_text(&alice_token, &room, "late", "after the backfill")
        .await;
    let mut seen = String::new();
    for _ in 0..50 {
        let sync = b
            .get(
                &format!("/_matrix/client/v3/sync?since={}&timeout=2000", enc(&since)),
                &bob_token,
            )
            .await;
        seen.push_str(&sync["rooms"].to_string());
        if seen.contains("after the backfill") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.contains("after the backfill"), "{seen}");
    for i in 0..60 {
        assert!(
            !seen.contains(&format!("\"m{i}\"")),
            "m{i} came down /sync: {seen}"
        );
    }
    // Nor did the current state change: bob is joined, the extremity is A's new message.
    let members = b
        .get(
            &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)),
            &bob_token,
        )
        .await;
    assert!(
        members["joined"].get(bob.as_str()).is_some()
            && members["joined"].get(alice.as_str()).is_some()
    );

    // With A stopped, B still answers from what it holds.
    a.stop().await;
    let started = std::time::Instant::now();
    let (offline, _) = page_back(&b, &bob_token, &room, 50).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no waiting for a stopped peer"
    );
    assert_eq!(offline.len(), events.len() + 1);
    b.stop().await;
}

#[tokio::test]
async fn messages_answer_local_events_when_the_rooms_servers_are_down_and_fill_in_later() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_config, a_name) = config_for(dir_a.path());
    let (b_config, _) = config_for(dir_b.path());
    let a = TestServer::start_with(a_config.clone()).await;
    let b = TestServer::start_with(b_config).await;
    let (_, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let room = room_with_history(&a, &a_name, &alice_token, &b, &bob_token, "shared", 5).await;

    // A goes down before B paginated: B answers its own events (the join), nothing is lost.
    a.stop().await;
    let (path, query) = (
        format!("/_matrix/client/v3/rooms/{}/messages", enc(&room)),
        "?dir=b&limit=20",
    );
    let (status, page) = b
        .call(
            Method::GET,
            &format!("{path}{query}"),
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let events = chunk(&page);
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["state_key"], bob.as_str());
    let sb = services(&b);
    assert_ne!(
        sb.timeline
            .backfill_frontier(short_room(&sb, &room))
            .unwrap(),
        Some(Vec::new()),
        "the gap is still to fill"
    );

    // A is back: once the retry pause is over, the history comes.
    let a = TestServer::start_with(a_config).await;
    tokio::time::sleep(parvis::federation::backfill::RETRY_AFTER).await;
    let (events, _) = page_back(&b, &bob_token, &room, 20).await;
    let bodies: Vec<&str> = events.iter().filter_map(body_of).collect();
    assert_eq!(bodies, vec!["m4", "m3", "m2", "m1", "m0"]);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn backfilled_events_follow_the_history_visibility_at_each_event() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_config, a_name) = config_for(dir_a.path());
    let (b_config, _) = config_for(dir_b.path());
    let a = TestServer::start_with(a_config).await;
    let b = TestServer::start_with(b_config).await;
    let (_, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    // `joined`: bob may not see what was said before he joined, though B stores it.
    let room = room_with_history(&a, &a_name, &alice_token, &b, &bob_token, "joined", 3).await;
    // Then the room opens its history (shared) and says more; a second user of B joins later.
    let state_path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.history_visibility/",
        enc(&room)
    );
    a.put(
        &state_path,
        &alice_token,
        json!({ "history_visibility": "shared" }),
    )
    .await;
    a.send_text(&alice_token, &room, "s0", "shared 0").await;

    let (events, _) = page_back(&b, &bob_token, &room, 10).await;
    let bodies: Vec<&str> = events.iter().filter_map(body_of).collect();
    assert!(
        bodies.is_empty() || bodies == vec!["shared 0"],
        "nothing from before the join: {bodies:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["state_key"] == bob.as_str())
            .count(),
        1
    );

    // The earlier messages are stored (backfilled), but A gave them redacted: no user of B was
    // joined when they were sent. Bob cannot fetch them.
    let sb = services(&b);
    let short = short_room(&sb, &room);
    let backfilled: Vec<_> = sb
        .timeline
        .scan_backfilled(short, 1, parvis::storage::Direction::Forward, 100)
        .unwrap()
        .into_iter()
        .map(|(_, e)| {
            parvis::services::rooms::event_by_id(&sb, &sb.short.event_id(e).unwrap())
                .unwrap()
                .unwrap()
        })
        .collect();
    let earlier: Vec<_> = backfilled
        .iter()
        .filter(|e| e.pdu.kind.to_string() == "m.room.message")
        .collect();
    assert_eq!(
        earlier.len(),
        3,
        "the three messages from before the join are backfilled"
    );
    assert!(
        earlier
            .iter()
            .all(|e| e.pdu.content_field("body").is_none()),
        "and redacted by A"
    );
    let create = backfilled
        .iter()
        .find(|e| e.pdu.kind.to_string() == "m.room.create")
        .expect("the create event is backfilled");
    assert!(
        create.pdu.content_field("room_version").is_some(),
        "state events keep what redaction keeps"
    );
    let (status, _) = b
        .call(
            Method::GET,
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(earlier[0].pdu.event_id.as_str())
            ),
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_long_history_comes_in_several_backfills_each_with_its_state() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_config, a_name) = config_for(dir_a.path());
    let (b_config, _) = config_for(dir_b.path());
    let a = TestServer::start_with(a_config).await;
    let b = TestServer::start_with(b_config).await;
    let (_, alice_token) = a.register("alice").await;
    let (_, bob_token) = b.register("bob").await;
    // More than one /backfill answer holds (100): the oldest event of the first answer follows
    // events B lacks, so its state comes from A's state_ids.
    let room = room_with_history(&a, &a_name, &alice_token, &b, &bob_token, "shared", 150).await;
    let (events, _) = page_back(&b, &bob_token, &room, 40).await;
    let bodies: Vec<&str> = events.iter().filter_map(body_of).collect();
    let expected: Vec<String> = (0..150).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected);
    assert_eq!(events.last().unwrap()["type"], "m.room.create");
    // Every backfilled event has the state before it: the messages were sent with alice joined.
    let sb = services(&b);
    let short = short_room(&sb, &room);
    let alice_key = sb
        .short
        .statekey(
            &ruma::events::StateEventType::RoomMember,
            &format!("@alice:{a_name}"),
        )
        .unwrap()
        .unwrap();
    for (_, short_event) in sb
        .timeline
        .scan_backfilled(short, 1, parvis::storage::Direction::Forward, 1000)
        .unwrap()
    {
        let event =
            parvis::services::rooms::event_by_id(&sb, &sb.short.event_id(short_event).unwrap())
                .unwrap()
                .unwrap();
        if event.pdu.kind.to_string() == "m.room.message" {
            let before = sb.state.load(event.meta.state_before).unwrap();
            assert!(
                before.contains_key(&alice_key),
                "state before {} lacks alice",
                event.pdu.event_id
            );
        }
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_auth_event_the_joiner_lost_comes_back_with_the_state_of_the_first_backfilled_event() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_config, a_name) = config_for(dir_a.path());
    let (b_config, _) = config_for(dir_b.path());
    let a = TestServer::start_with(a_config).await;
    let b = TestServer::start_with(b_config.clone()).await;
    let (alice, alice_token) = a.register("alice").await;
    // 110 messages authorised by alice's first join, then alice renames herself (a new member event).
    let room = a
        .create_room(&alice_token, json!({ "preset": "public_chat" }))
        .await;
    for i in 0..110 {
        a.send_text(&alice_token, &room, &format!("t{i}"), &format!("m{i}"))
            .await;
    }
    a.put(
        &format!("/_matrix/client/v3/profile/{}/displayname", enc(&alice)),
        &alice_token,
        json!({ "displayname": "Alice" }),
    )
    .await;
    let first = messages(&a, &alice_token, &room, "dir=f&limit=100").await;
    let first_join = chunk(&first)
        .into_iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == alice.as_str())
        .unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A user of B joins now; B then loses alice's first join (as if it had been given a partial
    // auth chain) and restarts. The first /backfill answer (100 events) does not reach back to it,
    // and its messages need it: B takes the state before the oldest of them from A's state_ids
    // and fetches the events of it that it lacks (/event), alice's first join among them.
    let (_, carol_token) = b.register("carol").await;
    let path = format!(
        "/_matrix/client/v3/join/{}?server_name={}",
        enc(&room),
        enc(a_name.as_str())
    );
    b.post(&path, &carol_token, json!({})).await;
    let sb = services(&b);
    let id: ruma::OwnedEventId = first_join.as_str().try_into().unwrap();
    let short = sb
        .short
        .event(&id)
        .unwrap()
        .expect("B holds alice's first join");
    let mut batch = parvis::storage::Batch::new();
    batch.delete(parvis::services::timeline::PDUS, short.to_be_bytes());
    batch.delete(parvis::services::timeline::EVENT_META, short.to_be_bytes());
    sb.globals.db.write(batch).unwrap();
    drop(sb);
    b.stop().await;
    let b = TestServer::start_with(b_config).await;
    assert!(
        parvis::services::rooms::event_by_id(&services(&b), &id)
            .unwrap()
            .is_none()
    );

    let (events, _) = page_back(&b, &carol_token, &room, 50).await;
    let bodies: Vec<&str> = events.iter().filter_map(body_of).collect();
    let expected: Vec<String> = (0..110).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected);
    assert!(
        parvis::services::rooms::event_by_id(&services(&b), &id)
            .unwrap()
            .is_some(),
        "alice's first join is back"
    );
    a.stop().await;
    b.stop().await;
}

/// A backfilled `m.room.redaction` redacts its stored target in its own batch. A gives what it
/// stores (already redacted), so the test hands B an answer as a server that kept the original
/// would: the target unredacted, then the redaction.
#[tokio::test]
async fn a_backfilled_redaction_redacts_its_stored_target() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_config, a_name) = config_for(dir_a.path());
    let (b_config, _) = config_for(dir_b.path());
    let a = TestServer::start_with(a_config).await;
    let b = TestServer::start_with(b_config).await;
    let (_, alice_token) = a.register("alice").await;
    let (_, bob_token) = b.register("bob").await;
    let room = a
        .create_room(
            &alice_token,
            json!({ "preset": "public_chat", "room_version": "12" }),
        )
        .await;
    let target = a.send_text(&alice_token, &room, "t0", "secret").await;
    let sa = services(&a);
    let stored = |s: &Services, id: &str| {
        let short = s.short.event(&ruma::EventId::parse(id).unwrap()).unwrap()?;
        s.timeline.json(short).unwrap()
    };
    let original = stored(&sa, &target).unwrap();
    let path = format!(
        "/_matrix/client/v3/rooms/{}/redact/{}/r1",
        enc(&room),
        enc(&target)
    );
    let redaction = a
        .put(&path, &alice_token, json!({ "reason": "oops" }))
        .await["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let redaction_json = stored(&sa, &redaction).unwrap();
    a.send_text(&alice_token, &room, "t1", "after").await;
    b.post(
        &format!(
            "/_matrix/client/v3/join/{}?server_name={}",
            enc(&room),
            enc(a_name.as_str())
        ),
        &bob_token,
        json!({}),
    )
    .await;

    let sb = services(&b);
    let room_id: OwnedRoomId = room.as_str().try_into().unwrap();
    let version = ruma::RoomVersionId::V12;
    let pdus = [&original, &redaction_json]
        .map(|o| serde_json::value::to_raw_value(o).unwrap())
        .to_vec();
    let outcome = parvis::federation::backfill::store::store_answer(
        &sb,
        &a_name,
        &room_id,
        &version,
        short_room(&sb, &room),
        pdus,
    )
    .await
    .unwrap();
    assert_eq!(outcome.stored.len(), 2, "{outcome:?}");
    let on_b = stored(&sb, &target).expect("the target is stored");
    assert!(
        on_b["content"]
            .as_object()
            .is_some_and(|c| !c.contains_key("body")),
        "the target is redacted: {on_b:?}"
    );
    // /event on B shows it redacted too (no stale cached copy).
    let event = b
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(&target)
            ),
            &bob_token,
        )
        .await;
    assert_eq!(event["content"], json!({}), "{event}");
    a.stop().await;
    b.stop().await;
}
