//! A hostile peer against a room's integrity (issue 8, spec/security.md): events of another room
//! named as prev events, redactions that the redaction rules do not allow, a redaction sent before
//! its target, an invite that claims another room version. Each attack is built by hand, signed
//! with a real server's key, and sent over federation; each test fails without its check.

mod common;

use common::federation::{eventually, services, start};
use common::peer::*;
use common::{TestServer, enc};
use parvis::{federation::request::send_json, services::Services};
use reqwest::Method;
use ruma::{CanonicalJsonObject, OwnedEventId, OwnedRoomId, signatures::hash_and_sign_event};
use serde_json::{Value, json};

fn txn(object: &CanonicalJsonObject, p: &Pair, from_a: bool) -> Value {
    txn_body(
        if from_a { &p.a_name } else { &p.b_name },
        vec![serde_json::to_value(object).unwrap()],
        vec![],
    )
}

fn short_room(s: &Services, room: &OwnedRoomId) -> u64 {
    s.short.room(room).unwrap().unwrap()
}

async fn event_on_a(p: &Pair, id: &str, token: &str) -> Value {
    p.a.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(p.room.as_str()),
            enc(id)
        ),
        token,
    )
    .await
}

#[tokio::test]
async fn a_pdu_whose_prev_event_is_an_event_of_another_room_is_refused() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    // A second room that both servers are in: its events are stored on B.
    let other: OwnedRoomId = shared_room(
        &p.a,
        &p.a_name,
        &p.alice_token,
        &p.b,
        (&p.bob, &p.bob_token),
        "12",
    )
    .await
    .try_into()
    .unwrap();
    let (other_prev, _) = now_at(&sb, &other);
    let (room_prev, room_state) = now_at(&sb, &p.room);
    let state_before = sb.state.current_snapshot(short_room(&sb, &p.room)).unwrap();

    // Only the other room's event as prev event; then both rooms' extremities.
    for (txn_id, prev) in [
        ("other-only", other_prev.clone()),
        ("both", [room_prev.clone(), other_prev.clone()].concat()),
    ] {
        let (object, id) = message_on(
            &sb,
            &sa,
            &p.room,
            &p.alice,
            "crossing rooms",
            prev,
            room_state.clone(),
        );
        let (status, answer) = send_txn(&sa, &p.b_name, txn_id, txn(&object, &p, true)).await;
        assert_eq!(status, http::StatusCode::OK, "{answer}");
        let error = answer["pdus"][id.as_str()]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.contains("another room"), "{txn_id}: {answer}");
        assert!(!stored(&sb, &id), "{txn_id}: the event is not stored");
    }
    assert_eq!(
        sb.state.current_snapshot(short_room(&sb, &p.room)).unwrap(),
        state_before,
        "the room's state is unchanged"
    );
    assert_eq!(
        now_at(&sb, &p.room).0,
        room_prev,
        "and so are its extremities"
    );

    // An event is never served under another room, not even from the event cache.
    let other_event = sb
        .short
        .event(&OwnedEventId::try_from(other_prev[0].as_str()).unwrap())
        .unwrap()
        .unwrap();
    assert!(
        parvis::services::rooms::event_by_short(&sb, other_event, &other)
            .unwrap()
            .is_some()
    );
    assert!(
        parvis::services::rooms::event_by_short(&sb, other_event, &p.room)
            .unwrap()
            .is_none()
    );

    // The room still works.
    let (good, good_id) = message(&sb, &sa, &p.room, &p.alice, "still fine");
    let (_, answer) = send_txn(&sa, &p.b_name, "good", txn(&good, &p, true)).await;
    assert_eq!(answer["pdus"][good_id.as_str()], json!({}), "{answer}");
    p.a.stop().await;
    p.b.stop().await;
}

/// A redaction built by `signer` for `sender`, on `on`'s current state of the room.
fn redaction(
    on: &Services,
    signer: &Services,
    room: &OwnedRoomId,
    sender: &str,
    target: &str,
) -> (CanonicalJsonObject, OwnedEventId) {
    let (prev, state) = now_at(on, room);
    let content = json!({ "redacts": target, "reason": "spam" });
    event_on(
        on,
        signer,
        room,
        Built {
            sender,
            kind: "m.room.redaction",
            state_key: None,
            content,
            prev,
        },
        &state,
    )
}

#[tokio::test]
async fn a_redaction_from_another_server_without_the_redact_level_is_stored_but_not_applied() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    let target =
        p.a.send_text(&p.alice_token, p.room.as_str(), "t1", "alice's words")
            .await;
    wait_message(&p.b, &p.bob_token, p.room.as_str(), "alice's words").await;

    // Bob (of B, power 0) redacts alice's message (of A): B signs it, as a hostile B would send it.
    let (object, id) = redaction(&sa, &sb, &p.room, &p.bob, &target);
    let (status, answer) = send_txn(&sb, &p.a_name, "redact-alice", txn(&object, &p, false)).await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(
        answer["pdus"][id.as_str()],
        json!({}),
        "the redaction passes the authorization rules: {answer}"
    );
    assert!(stored(&sa, &id), "and is stored");
    let event = event_on_a(&p, &target, &p.alice_token).await;
    assert_eq!(
        event["content"]["body"], "alice's words",
        "but alice's message keeps its content: {event}"
    );

    // Bob redacting his own message is applied.
    let own =
        p.b.send_text(&p.bob_token, p.room.as_str(), "t2", "bob's words")
            .await;
    wait_message(&p.a, &p.alice_token, p.room.as_str(), "bob's words").await;
    let path = format!(
        "/_matrix/client/v3/rooms/{}/redact/{}/r1",
        enc(p.room.as_str()),
        enc(&own)
    );
    p.b.put(&path, &p.bob_token, json!({})).await;
    eventually("bob's own redaction applied on A", || async {
        (event_on_a(&p, &own, &p.alice_token).await["content"] == json!({})).then_some(())
    })
    .await;
    p.a.stop().await;
    p.b.stop().await;
}

#[tokio::test]
async fn a_redaction_received_before_its_target_is_applied_when_the_target_arrives() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    // Bob's message, built and signed by B but not sent yet; then bob's redaction of it, sent first.
    let (message_object, message_id) = message(&sa, &sb, &p.room, &p.bob, "sent late");
    let (redaction_object, redaction_id) =
        redaction(&sa, &sb, &p.room, &p.bob, message_id.as_str());
    let (_, answer) = send_txn(
        &sb,
        &p.a_name,
        "redaction-first",
        txn(&redaction_object, &p, false),
    )
    .await;
    assert_eq!(answer["pdus"][redaction_id.as_str()], json!({}), "{answer}");
    let (_, answer) = send_txn(
        &sb,
        &p.a_name,
        "target-later",
        txn(&message_object, &p, false),
    )
    .await;
    assert_eq!(answer["pdus"][message_id.as_str()], json!({}), "{answer}");
    let event = event_on_a(&p, message_id.as_str(), &p.alice_token).await;
    assert_eq!(
        event["content"],
        json!({}),
        "the target is stored redacted: {event}"
    );
    assert_eq!(
        event["unsigned"]["redacted_because"]["event_id"],
        redaction_id.as_str(),
        "{event}"
    );
    p.a.stop().await;
    p.b.stop().await;
}

#[tokio::test]
async fn an_invite_claiming_another_version_for_a_known_room_is_refused() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    let (carol, _) = p.b.register("carol").await;
    // A v2 invite for a room B knows as version 12, claiming version 11, in version 11's format.
    let (prev, state) = now_at(&sb, &p.room);
    let mut auth = vec![format!("${}", &p.room.as_str()[1..])];
    for (kind, key) in [
        ("m.room.power_levels", ""),
        ("m.room.member", p.alice.as_str()),
        ("m.room.join_rules", ""),
    ] {
        let k = sb.short.statekey(&kind.into(), key).unwrap().unwrap();
        auth.push(
            sb.short
                .event_id(*state.get(&k).unwrap())
                .unwrap()
                .to_string(),
        );
    }
    let mut object: CanonicalJsonObject = serde_json::from_value(json!({
        "room_id": p.room, "sender": p.alice, "type": "m.room.member", "state_key": carol,
        "content": { "membership": "invite" }, "origin_server_ts": parvis::util::now_ms(), "depth": 100,
        "prev_events": prev, "auth_events": auth,
    }))
    .unwrap();
    let rules = ruma::RoomVersionId::V11.rules().unwrap();
    hash_and_sign_event(
        p.a_name.as_str(),
        &sa.globals.keypair,
        &mut object,
        &rules.redaction,
    )
    .unwrap();
    let id = format!(
        "${}",
        ruma::signatures::reference_hash(&object, &rules).unwrap()
    );
    let body = json!({ "event": object, "room_version": "11", "invite_room_state": [] });
    let path = format!(
        "/_matrix/federation/v2/invite/{}/{}",
        enc(p.room.as_str()),
        enc(&id)
    );
    let (status, answer) = send_json(&sa, &p.b_name, http::Method::PUT, &path, Some(&body))
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errcode"], "M_INCOMPATIBLE_ROOM_VERSION", "{answer}");
    assert_eq!(
        sb.timeline.room_version(&p.room).unwrap(),
        Some(ruma::RoomVersionId::V12),
        "the stored version stays"
    );
    assert!(!stored(&sb, &id.try_into().unwrap()));
    p.a.stop().await;
    p.b.stop().await;
}

#[tokio::test]
async fn a_redaction_sent_as_a_state_event_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(dir.path()).await;
    let (_, token) = server.register("alice").await;
    let room = server.create_room(&token, json!({})).await;
    let target = server.send_text(&token, &room, "t1", "kept").await;
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.redaction/x",
        enc(&room)
    );
    let (status, body) = server
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({ "redacts": target })),
        )
        .await;
    assert_eq!(status, http::StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errcode"], "M_BAD_JSON");
    let event = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(&target)
            ),
            &token,
        )
        .await;
    assert_eq!(event["content"]["body"], "kept");
    server.stop().await;
}

async fn search_count(server: &TestServer, token: &str, term: &str) -> Value {
    let criteria = json!({ "search_categories": { "room_events": { "search_term": term } } });
    server
        .post("/_matrix/client/v3/search", token, criteria)
        .await["search_categories"]["room_events"]["count"]
        .clone()
}

/// A redaction that reaches B through backfill (its target in B's timeline, found by /search)
/// takes the target out of the search index, as a live redaction does.
#[tokio::test]
async fn a_backfilled_redaction_removes_its_target_from_search() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    let target =
        p.a.send_text(&p.alice_token, p.room.as_str(), "t1", "quartzite")
            .await;
    wait_message(&p.b, &p.bob_token, p.room.as_str(), "quartzite").await;
    assert_eq!(
        search_count(&p.b, &p.bob_token, "quartzite").await,
        json!(1)
    );
    let (object, _) = redaction(&sb, &sa, &p.room, &p.alice, &target);
    let pdus = vec![serde_json::value::to_raw_value(&object).unwrap()];
    let outcome = parvis::federation::backfill::store::store_answer(
        &sb,
        &p.a_name,
        &p.room,
        &ruma::RoomVersionId::V12,
        short_room(&sb, &p.room),
        pdus,
    )
    .await
    .unwrap();
    assert_eq!(outcome.stored.len(), 1, "{outcome:?}");
    assert_eq!(
        search_count(&p.b, &p.bob_token, "quartzite").await,
        json!(0),
        "the redacted message is no longer found"
    );
    p.a.stop().await;
    p.b.stop().await;
}

/// A server with no user left in a room keeps no more of it: a peer's `/send` PDU for it is
/// ignored (not stored, not listed in the answer), as for a room it never knew; the rejoin takes
/// the room's state from the join.
#[tokio::test]
async fn a_pdu_for_a_room_none_of_our_users_is_joined_to_is_ignored() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    p.b.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(p.room.as_str())),
        &p.bob_token,
        json!({}),
    )
    .await;
    wait_membership(&p.a, &p.alice_token, p.room.as_str(), &p.bob, "leave").await;

    // A (or anyone in the room) pushes a message into B's stale copy anyway.
    let (object, id) = message(&sa, &sa, &p.room, &p.alice, "after bob left");
    let extremities = now_at(&sb, &p.room).0;
    let (status, answer) = send_txn(&sa, &p.b_name, "stale-copy", txn(&object, &p, true)).await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert!(answer["pdus"].get(id.as_str()).is_none(), "{answer}");
    assert!(!stored(&sb, &id), "the event is not stored on B");
    assert_eq!(now_at(&sb, &p.room).0, extremities, "B's copy is unchanged");

    // While bob is joined, the same kind of PDU is taken.
    let room = p.room.as_str();
    p.a.post(
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(room)),
        &p.alice_token,
        json!({ "user_id": p.bob }),
    )
    .await;
    wait_invite(&p.b, &p.bob_token, room).await;
    let (status, body) =
        p.b.call(
            Method::POST,
            &format!(
                "/_matrix/client/v3/join/{}?server_name={}",
                enc(room),
                enc(p.a_name.as_str())
            ),
            Some(&p.bob_token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, http::StatusCode::OK, "{body}");
    wait_membership(&p.a, &p.alice_token, room, &p.bob, "join").await;
    let (object, id) = message(&sa, &sa, &p.room, &p.alice, "bob is back");
    let (_, answer) = send_txn(&sa, &p.b_name, "joined-again", txn(&object, &p, true)).await;
    assert_eq!(answer["pdus"][id.as_str()], json!({}), "{answer}");
    assert!(stored(&sb, &id));
    p.a.stop().await;
    p.b.stop().await;
}

/// Changes, in every event list of a `send_join` or `state` answer, the topic's text (the event
/// ID stays: a redaction drops a topic's content, so its reference hash leaves it out) and removes
/// the power levels' signatures; the number of events changed.
fn forge_state_answer(answer: &mut Value) -> usize {
    let mut forged = 0;
    for field in ["state", "pdus", "auth_chain"] {
        for event in answer
            .get_mut(field)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            match event["type"].as_str() {
                Some("m.room.topic") => {
                    event["content"]["topic"] = json!("a forged topic");
                    forged += 1;
                }
                Some("m.room.power_levels") => {
                    event.as_object_mut().unwrap().remove("signatures");
                    forged += 1;
                }
                _ => {}
            }
        }
    }
    forged
}

/// A resident in front of A: it passes each federation request on to A, signed as B (the only
/// server that asks it anything here), and forges the state in A's `send_join` and `state`
/// answers (`forge_state_answer`); it counts the events it forged.
async fn forging_resident(
    b: &TestServer,
    a_name: &ruma::OwnedServerName,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::sync::oneshot::Sender<()>,
    tempfile::TempDir,
) {
    let forged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (sb, a_name, count) = (services(b), a_name.clone(), forged.clone());
    let app = axum::Router::new().fallback(
        move |method: http::Method, uri: http::Uri, body: axum::body::Bytes| {
            let (sb, a_name, count) = (sb.clone(), a_name.clone(), count.clone());
            async move {
                let body: Option<Value> = serde_json::from_slice(&body).ok();
                let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
                let (status, mut answer) = send_json(&sb, &a_name, method, path, body.as_ref())
                    .await
                    .unwrap_or((http::StatusCode::BAD_GATEWAY, Value::Null));
                if uri.path().contains("/send_join/") || uri.path().contains("/v1/state/") {
                    count.fetch_add(
                        forge_state_answer(&mut answer),
                        std::sync::atomic::Ordering::SeqCst,
                    );
                }
                (status, axum::Json(answer))
            }
        },
    );
    let (name, stop, dir) = common::federation::fake_peer(app).await;
    (name, forged, stop, dir)
}

#[tokio::test]
async fn a_state_answer_cannot_replace_the_events_we_hold() {
    // B joined A's room and left; it joins again through a resident that forges the room's state
    // in its answers: the topic's text changed under the same event ID, the power levels without
    // their signatures. B holds both events (checked when they were stored) and keeps its copies:
    // the forged text is not taken (a stored event is never replaced), and the unsigned copy does
    // not cost B the event (`remote::stored_copies`: without it, the power levels are refused and
    // B's state lacks them).
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, _) = start(dir_b.path()).await;
    let (_alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let room = a
        .create_room(
            &alice_token,
            json!({ "room_version": "12", "preset": "public_chat", "topic": "the real topic" }),
        )
        .await;
    let join_path = |through: &str| {
        format!(
            "/_matrix/client/v3/join/{}?server_name={}",
            enc(&room),
            enc(through)
        )
    };
    b.post(&join_path(a_name.as_str()), &bob_token, json!({}))
        .await;
    wait_membership(&a, &alice_token, &room, &bob, "join").await;
    wait_full_state(&b, &room).await;
    b.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
        &bob_token,
        json!({}),
    )
    .await;
    wait_membership(&a, &alice_token, &room, &bob, "leave").await;

    let (forger, forged, _stop, _dir) = forging_resident(&b, &a_name).await;
    b.post(&join_path(&forger), &bob_token, json!({})).await;
    assert!(
        forged.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the join went through the forging resident"
    );
    wait_membership(&a, &alice_token, &room, &bob, "join").await;
    wait_full_state(&b, &room).await;
    let state = |kind: &str| format!("/_matrix/client/v3/rooms/{}/state/{kind}/", enc(&room));
    let topic = b.get(&state("m.room.topic"), &bob_token).await;
    assert_eq!(topic["topic"], "the real topic", "{topic}");
    let levels = b.get(&state("m.room.power_levels"), &bob_token).await;
    assert_eq!(levels["events"]["m.room.tombstone"], 150, "{levels}");
    // B still writes in the room, on the state it kept.
    let sent = b
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/t1",
                enc(&room)
            ),
            &bob_token,
            json!({ "msgtype": "m.text", "body": "back" }),
        )
        .await;
    assert!(sent["event_id"].is_string(), "{sent}");
    wait_message(&a, &alice_token, &room, "back").await;
    a.stop().await;
    b.stop().await;
}
