//! Partial-state ("faster") joins (MSC3706) between two Parvis servers: B joins A's room with
//! `omit_members=true`, answers its client at once with the partial state, takes events from
//! members it does not know yet (their auth events fetched from A), sends, refuses to serve the
//! room's state to others, and completes the state in the background; listing the members waits
//! for it; a restart in the middle resumes the resync.

mod common;

use std::time::Duration;

use common::federation::{eventually, fixed_config, services, start};
use common::peer::*;
use common::{TestServer, enc};
use parvis::federation::request::send_json;
use reqwest::Method;
use serde_json::{Value, json};

/// A public, named room of A with alice and `others` more local members; returns its id and
/// the members' tokens.
async fn busy_room(a: &TestServer, others: usize) -> (String, String, Vec<(String, String)>) {
    let (_, alice) = a.register("alice").await;
    let room = a
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "name": "company-wide", "room_version": "12" }),
        )
        .await;
    let mut members = Vec::new();
    for i in 0..others {
        let (user, token) = a.register(&format!("member{i}")).await;
        a.post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &token,
            json!({}),
        )
        .await;
        members.push((user, token));
    }
    (room, alice, members)
}

async fn join(b: &TestServer, token: &str, room: &str, via: &str) -> Value {
    let (status, body) = b
        .call(
            Method::POST,
            &format!(
                "/_matrix/client/v3/join/{}?server_name={}",
                enc(room),
                enc(via)
            ),
            Some(token),
            Some(json!({})),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    body
}

fn short_room(b: &TestServer, room: &str) -> u64 {
    let room = ruma::RoomId::parse(room).unwrap();
    services(b).short.room(&room).unwrap().unwrap()
}

fn is_partial(b: &TestServer, room: &str) -> bool {
    services(b)
        .partial_state
        .is_partial(short_room(b, room))
        .unwrap()
}

async fn joined_count(server: &TestServer, token: &str, room: &str) -> usize {
    let body = server
        .get(
            &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(room)),
            token,
        )
        .await;
    body["joined"].as_object().map_or(0, |j| j.len())
}

#[tokio::test]
async fn a_partial_state_join_is_answered_at_once_and_completed_in_the_background() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (mut b_config, b_name) = fixed_config(dir_b.path());
    // The resync waits 10 s, so that what B does while partial can be watched.
    b_config.federation.partial_state_resync_delay_ms = 10_000;
    let b = TestServer::start_with(b_config).await;
    let (room, alice, members) = busy_room(&a, 12).await;
    // The room's own state comes with the join; an integration's state waits for the resync.
    let state_path = |kind: &str, key: &str| {
        format!("/_matrix/client/v3/rooms/{}/state/{kind}/{key}", enc(&room))
    };
    a.put(
        &state_path("m.room.topic", ""),
        &alice,
        json!({ "topic": "all hands" }),
    )
    .await;
    a.put(
        &state_path("com.example.ticket", "T-1"),
        &alice,
        json!({ "status": "open" }),
    )
    .await;
    let (bob, bob_token) = b.register("bob").await;

    join(&b, &bob_token, &room, a_name.as_str()).await;
    assert!(
        is_partial(&b, &room),
        "the join is answered before the members are known"
    );
    let sb = services(&b);
    let room_id = ruma::RoomId::parse(&room).unwrap();
    let known_state = |kind: &str, key: &str| {
        parvis::services::rooms::state_content(&sb, &room_id, &kind.into(), key).unwrap()
    };
    assert_eq!(
        known_state("m.room.topic", "").unwrap()["topic"],
        "all hands"
    );
    assert!(
        known_state("com.example.ticket", "T-1").is_none(),
        "state outside the room's own namespace waits for the resync"
    );
    let known = sb
        .membership
        .members(
            short_room(&b, &room),
            parvis::services::rooms::membership::Membership::Join,
        )
        .unwrap();
    assert!(
        known.len() < 5,
        "a named room's partial state holds no other member: {known:?}"
    );
    // The room shows in /sync with its name and timeline.
    let sync = b.get("/_matrix/client/v3/sync", &bob_token).await;
    assert!(sync["rooms"]["join"].get(&room).is_some(), "{sync}");
    let since = sync["next_batch"].as_str().unwrap().to_owned();

    // A member B does not know yet speaks, and one joins: B takes both (the auth events it
    // lacked come from A's event_auth).
    let (_, speaker) = &members[7];
    a.send_text(speaker, &room, "p1", "while partial").await;
    wait_message(&b, &bob_token, &room, "while partial").await;
    // Sliding sync (Element X's room list) shows the room as it is known: its name, the latest
    // message, and the member who sent it (lazy-loaded members).
    let speaker_id = members[7].0.clone();
    let list = b
        .post(
            "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
            &bob_token,
            json!({ "lists": { "all": {
                "ranges": [[0, 9]],
                "timeline_limit": 1,
                "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
            } } }),
        )
        .await;
    let entry = &list["rooms"][&room];
    assert_eq!(entry["name"], "company-wide", "{list}");
    assert_eq!(
        entry["timeline"][0]["content"]["body"], "while partial",
        "{list}"
    );
    let lazy_members: Vec<&str> = entry["required_state"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "m.room.member")
        .filter_map(|e| e["state_key"].as_str())
        .collect();
    assert!(
        lazy_members.contains(&speaker_id.as_str()),
        "the sender's member event: {list}"
    );
    // So does /sync with lazy-loaded members.
    let filter = enc(r#"{"room":{"state":{"lazy_load_members":true}}}"#);
    let lazy = b
        .get(
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0&filter={filter}"),
            &bob_token,
        )
        .await;
    let state = lazy["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == speaker_id.as_str()),
        "the sender's member event: {lazy}"
    );
    let (late, late_token) = a.register("latecomer").await;
    a.post(
        &format!("/_matrix/client/v3/join/{}", enc(&room)),
        &late_token,
        json!({}),
    )
    .await;
    // (Not through the member's state event: asked while partial, that waits for the full state.)
    let late_id = ruma::UserId::parse(&late).unwrap();
    eventually("the latecomer's join on B", || async {
        let m = sb
            .membership
            .membership(short_room(&b, &room), &late_id)
            .unwrap();
        (m == Some(parvis::services::rooms::membership::Membership::Join)).then_some(())
    })
    .await;
    // Bob sends; A gets it.
    let bobs = b
        .send_text(&bob_token, &room, "p2", "bob while partial")
        .await;
    wait_message(&a, &alice, &room, "bob while partial").await;
    // B does not serve the state of a room it only partly knows.
    let path = format!(
        "/_matrix/federation/v1/state_ids/{}?event_id={}",
        enc(&room),
        enc(&bobs)
    );
    let (status, answer) = send_json(&services(&a), &b_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 404, "{answer}");
    assert_eq!(answer["errcode"], "M_NOT_FOUND");
    assert!(
        is_partial(&b, &room),
        "all of the above happened while partial"
    );

    // A state key of a type the join left for the resync waits for the full state.
    let ticket = b
        .get(&state_path("com.example.ticket", "T-1"), &bob_token)
        .await;
    assert_eq!(ticket["status"], "open");
    assert!(!is_partial(&b, &room));
    // Listing the members waits for the full state: alice, 12 members, the latecomer and bob.
    let joined = joined_count(&b, &bob_token, &room).await;
    assert_eq!(joined, 15);
    assert!(!is_partial(&b, &room));
    let members_body = b
        .get(
            &format!("/_matrix/client/v3/rooms/{}/members", enc(&room)),
            &bob_token,
        )
        .await;
    assert_eq!(members_body["chunk"].as_array().unwrap().len(), 15);
    // The state is whole for events sent after the join too, and for others' requests.
    let (status, _) = send_json(&services(&a), &b_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 200);
    // After completion, B's next /sync (from a token of the partial time) shows the room again
    // as newly joined, with its whole state.
    let sync = eventually("the room's members in /sync", || async {
        let body = b
            .get(
                &format!("/_matrix/client/v3/sync?since={since}"),
                &bob_token,
            )
            .await;
        let state = body["rooms"]["join"][&room]["state"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (state
            .iter()
            .filter(|e| e["type"] == "m.room.member")
            .count()
            >= 13)
            .then_some(body)
    })
    .await;
    assert!(sync["rooms"]["join"].get(&room).is_some());
    let ticket = sync["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["type"] == "com.example.ticket")
        .unwrap_or_else(|| panic!("the deferred state in the new /sync: {sync}"));
    assert_eq!(ticket["content"]["status"], "open");
    assert_eq!(
        known_state("com.example.ticket", "T-1").unwrap()["status"],
        "open"
    );
    // A message from a member B first knew from the full state still arrives.
    a.send_text(&members[3].1, &room, "p3", "after the resync")
        .await;
    wait_message(&b, &bob_token, &room, "after the resync").await;
    let _ = bob;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_restart_in_the_middle_resumes_the_resync() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (mut b_config, _) = fixed_config(dir_b.path());
    b_config.federation.partial_state_resync_delay_ms = 600_000;
    let b = TestServer::start_with(b_config.clone()).await;
    let (room, _, _) = busy_room(&a, 6).await;
    let (_, bob_token) = b.register("bob").await;
    join(&b, &bob_token, &room, a_name.as_str()).await;
    assert!(is_partial(&b, &room));
    b.stop().await;

    b_config.federation.partial_state_resync_delay_ms = 0;
    let b = TestServer::start_with(b_config).await;
    eventually("the resync after the restart", || async {
        (!is_partial(&b, &room)).then_some(())
    })
    .await;
    assert_eq!(joined_count(&b, &bob_token, &room).await, 8);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn with_partial_state_joins_off_the_whole_state_comes_with_the_join() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (mut b_config, _) = fixed_config(dir_b.path());
    b_config.federation.partial_state_joins = false;
    let b = TestServer::start_with(b_config).await;
    let (room, _, _) = busy_room(&a, 4).await;
    let (_, bob_token) = b.register("bob").await;
    join(&b, &bob_token, &room, a_name.as_str()).await;
    assert!(!is_partial(&b, &room));
    let joined = tokio::time::timeout(Duration::from_secs(2), joined_count(&b, &bob_token, &room))
        .await
        .expect("no wait");
    assert_eq!(joined, 6);
    a.stop().await;
    b.stop().await;
}
