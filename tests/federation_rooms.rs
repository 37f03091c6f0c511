//! Two (or three) Parvis servers in one process share rooms over TLS on loopback: invite, join,
//! messages both ways, leave and ban for room versions 10, 11 and 12; and bad input from a peer,
//! each refused with the spec's error and changing nothing.

mod common;

use common::federation::{eventually, fixed_config, free_port, services, start, start_configured};
use common::peer::*;
use common::{TestServer, enc};
use parvis::{federation::request::send_json, services::Services};
use reqwest::{Method, StatusCode};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedServerName, signatures::hash_and_sign_event,
};
use serde_json::{Value, json};

async fn rooms_both_ways(version: &str) {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, _) = start(dir_b.path()).await;
    let (_alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let (carol, carol_token) = b.register("carol").await;

    // Invite and join.
    let room = shared_room(&a, &a_name, &alice_token, &b, (&bob, &bob_token), version).await;
    let create = b
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.create",
                enc(&room)
            ),
            &bob_token,
        )
        .await;
    assert_eq!(create["room_version"], version, "{create}");
    let members = b
        .get(
            &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)),
            &bob_token,
        )
        .await;
    assert_eq!(members["joined"].as_object().unwrap().len(), 2, "{members}");

    // Messages both ways.
    a.send_text(&alice_token, &room, "t1", "from alice").await;
    wait_message(&b, &bob_token, &room, "from alice").await;
    b.send_text(&bob_token, &room, "t1", "from bob").await;
    wait_message(&a, &alice_token, &room, "from bob").await;

    // Leave.
    b.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
        &bob_token,
        json!({}),
    )
    .await;
    wait_membership(&a, &alice_token, &room, &bob, "leave").await;

    // Ban: carol joins, alice bans her, B refuses carol's messages.
    a.post(
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
        &alice_token,
        json!({ "user_id": carol }),
    )
    .await;
    wait_invite(&b, &carol_token, &room).await;
    b.post(
        &format!(
            "/_matrix/client/v3/join/{}?server_name={}",
            enc(&room),
            enc(a_name.as_str())
        ),
        &carol_token,
        json!({}),
    )
    .await;
    wait_membership(&a, &alice_token, &room, &carol, "join").await;
    a.post(
        &format!("/_matrix/client/v3/rooms/{}/ban", enc(&room)),
        &alice_token,
        json!({ "user_id": carol }),
    )
    .await;
    wait_membership(&b, &carol_token, &room, &carol, "ban").await;
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/t9",
        enc(&room)
    );
    let (status, body) = b
        .call(
            Method::PUT,
            &path,
            Some(&carol_token),
            Some(json!({ "msgtype": "m.text", "body": "banned" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn rooms_v10() {
    rooms_both_ways("10").await;
}

#[tokio::test]
async fn rooms_v11() {
    rooms_both_ways("11").await;
}

#[tokio::test]
async fn rooms_v12() {
    rooms_both_ways("12").await;
}

#[tokio::test]
async fn a_good_pdu_is_accepted_the_same_pdu_with_a_bad_signature_is_refused() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    let (mut object, id) = message(&sb, &sa, &p.room, &p.alice, "forged");
    // Replace A's signature with one over other bytes.
    let sig = CanonicalJsonValue::String("A".repeat(86));
    if let Some(CanonicalJsonValue::Object(sigs)) = object.get_mut("signatures")
        && let Some(CanonicalJsonValue::Object(ours)) = sigs.get_mut(p.a_name.as_str())
    {
        for v in ours.values_mut() {
            *v = sig.clone();
        }
    }
    let (status, answer) = send_txn(
        &sa,
        &p.b_name,
        "bad-sig",
        txn_body(
            &p.a_name,
            vec![serde_json::to_value(&object).unwrap()],
            vec![],
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert!(
        answer["pdus"][id.as_str()]["error"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{answer}"
    );
    assert!(!stored(&sb, &id));

    let (good, good_id) = message(&sb, &sa, &p.room, &p.alice, "genuine");
    let (status, answer) = send_txn(
        &sa,
        &p.b_name,
        "good",
        txn_body(
            &p.a_name,
            vec![serde_json::to_value(&good).unwrap()],
            vec![],
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(answer["pdus"][good_id.as_str()], json!({}), "{answer}");
    assert!(stored(&sb, &good_id));
}

#[tokio::test]
async fn a_transaction_whose_origin_is_not_the_signing_server_is_refused() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    let (object, id) = message(&sb, &sa, &p.room, &p.alice, "wrong origin");
    let body = txn_body(
        &"other.example".try_into().unwrap(),
        vec![serde_json::to_value(&object).unwrap()],
        vec![],
    );
    let (status, answer) = send_txn(&sa, &p.b_name, "wrong-origin", body).await;
    assert_eq!(status, http::StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["errcode"], "M_FORBIDDEN");
    assert!(!stored(&sb, &id));
}

#[tokio::test]
async fn an_edu_that_speaks_for_another_servers_user_is_ignored() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    let before = sb.typing.counter();
    let bob_id = ruma::OwnedUserId::try_from(p.bob.as_str()).unwrap();
    let presence_before = sb
        .presence
        .get(&bob_id)
        .unwrap()
        .map(|r| (r.presence, r.status_msg, r.pos));
    // A claims B's user bob is typing, and sets bob's presence.
    let edus = vec![
        json!({ "edu_type": "m.typing", "content": { "room_id": p.room, "user_id": p.bob, "typing": true } }),
        json!({ "edu_type": "m.presence", "content": { "push": [{ "user_id": p.bob, "presence": "unavailable", "status_msg": "forged", "last_active_ago": 0 }] } }),
    ];
    let (status, answer) = send_txn(
        &sa,
        &p.b_name,
        "impersonation",
        txn_body(&p.a_name, vec![], edus),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(sb.typing.counter(), before);
    assert!(
        sb.typing
            .typing_since(&p.room, 0)
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(
        sb.presence
            .get(&bob_id)
            .unwrap()
            .map(|r| (r.presence, r.status_msg, r.pos)),
        presence_before
    );

    // The same EDU about A's own user is applied.
    let edus = vec![
        json!({ "edu_type": "m.typing", "content": { "room_id": p.room, "user_id": p.alice, "typing": true } }),
    ];
    send_txn(
        &sa,
        &p.b_name,
        "own-user",
        txn_body(&p.a_name, vec![], edus),
    )
    .await;
    assert!(
        sb.typing
            .typing_since(&p.room, 0)
            .unwrap()
            .iter()
            .any(|u| u.as_str() == p.alice)
    );
}

#[tokio::test]
async fn an_event_from_a_server_not_in_the_room_is_refused() {
    let p = pair().await;
    let dir_c = tempfile::tempdir().unwrap();
    let (c, c_name) = start(dir_c.path()).await;
    let (sb, sc) = (services(&p.b), services(&c));
    let (mallory, _) = c.register("mallory").await;
    let (object, id) = message(&sb, &sc, &p.room, &mallory, "intruder");
    let (status, answer) = send_txn(
        &sc,
        &p.b_name,
        "intruder",
        txn_body(
            &c_name,
            vec![serde_json::to_value(&object).unwrap()],
            vec![],
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert!(
        answer["pdus"][id.as_str()]["error"]
            .as_str()
            .unwrap()
            .contains("not in room"),
        "{answer}"
    );
    assert!(!stored(&sb, &id));
    c.stop().await;
}

#[tokio::test]
async fn an_oversize_transaction_is_refused_whole() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    let mut pdus = Vec::new();
    let mut ids = Vec::new();
    for i in 0..51 {
        let (object, id) = message(&sb, &sa, &p.room, &p.alice, &format!("m{i}"));
        pdus.push(serde_json::to_value(&object).unwrap());
        ids.push(id);
    }
    let (status, answer) = send_txn(
        &sa,
        &p.b_name,
        "too-big",
        txn_body(&p.a_name, pdus.clone(), vec![]),
    )
    .await;
    assert_eq!(status, http::StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errcode"], "M_BAD_JSON");
    assert!(ids.iter().all(|id| !stored(&sb, id)));
    // Nothing was recorded under that transaction id: a valid retry is processed.
    pdus.truncate(50);
    let (status, _) = send_txn(&sa, &p.b_name, "too-big", txn_body(&p.a_name, pdus, vec![])).await;
    assert_eq!(status, http::StatusCode::OK);
    assert!(stored(&sb, &ids[0]));
}

#[tokio::test]
async fn make_join_refuses_a_server_without_the_rooms_version() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    let user = format!("@someone:{}", p.b_name);
    let path = format!(
        "/_matrix/federation/v1/make_join/{}/{}?ver=10&ver=11",
        enc(p.room.as_str()),
        enc(&user)
    );
    let (status, answer) = send_json(&sb, &p.a_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errcode"], "M_INCOMPATIBLE_ROOM_VERSION");
    assert_eq!(answer["room_version"], "12");
    // With the version: a user who is not invited to this private room may not join; and a
    // server may only ask for its own users.
    let ok = format!(
        "/_matrix/federation/v1/make_join/{}/{}?ver=12",
        enc(p.room.as_str()),
        enc(&user)
    );
    let (status, answer) = send_json(&sb, &p.a_name, http::Method::GET, &ok, None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["errcode"], "M_FORBIDDEN");
    let (status, _) = send_json(&sa, &p.a_name, http::Method::GET, &ok, None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_restarted_server_fills_a_gap_with_missing_events_and_state_ids() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let port = free_port();
    let mut b_config = common::config(dir_b.path());
    let b_name: OwnedServerName = format!("127.0.0.1:{port}").try_into().unwrap();
    b_config.server_name = b_name.clone();
    b_config.federation.listen = format!("127.0.0.1:{port}").parse().unwrap();
    b_config.federation.verify_certificates = false;
    let b = TestServer::start_with(b_config.clone()).await;
    let (_, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let room = shared_room(&a, &a_name, &alice_token, &b, (&bob, &bob_token), "12").await;
    a.send_text(&alice_token, &room, "t0", "before").await;
    wait_message(&b, &bob_token, &room, "before").await;

    // B is down while A sends 30 messages, and A forgets to send them (its queue is emptied).
    b.stop().await;
    for i in 0..30 {
        a.send_text(&alice_token, &room, &format!("gap{i}"), &format!("gap {i}"))
            .await;
    }
    let sa = services(&a);
    loop {
        let name = b_name.clone();
        let batch = sa.federation.sender.next_batch(&name).unwrap();
        if batch.is_empty() {
            break;
        }
        sa.federation
            .sender
            .acknowledge(&name, &batch.iter().map(|(s, _)| *s).collect::<Vec<_>>())
            .unwrap();
    }

    // B is back; A's next message has 30 unknown events before it: B fetches 20 with
    // get_missing_events, then takes the state from state_ids and appends it.
    let b = TestServer::start_with(b_config).await;
    a.send_text(&alice_token, &room, "t1", "after the gap")
        .await;
    wait_message(&b, &bob_token, &room, "after the gap").await;
    let seen = bodies(&b, &bob_token, &room).await;
    assert!(
        seen.iter().any(|m| m == "gap 29") && seen.iter().any(|m| m == "gap 11"),
        "the 20 newest missing events are fetched: {seen:?}"
    );
    assert!(
        !seen.iter().any(|m| m == "gap 9"),
        "older ones are not (the state came from state_ids): {seen:?}"
    );
    b.send_text(&bob_token, &room, "t2", "bob is back").await;
    wait_message(&a, &alice_token, &room, "bob is back").await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn queued_events_survive_a_restart_of_the_sender() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_config, a_name) = fixed_config(dir_a.path());
    let (b_config, b_name) = fixed_config(dir_b.path());
    let a = TestServer::start_with(a_config.clone()).await;
    let b = TestServer::start_with(b_config.clone()).await;
    let (_, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let room = shared_room(&a, &a_name, &alice_token, &b, (&bob, &bob_token), "12").await;

    // B is down: A's message waits in A's queue, and A restarts.
    b.stop().await;
    a.send_text(&alice_token, &room, "q1", "queued across a restart")
        .await;
    assert!(
        !services(&a)
            .federation
            .sender
            .next_batch(&b_name)
            .unwrap()
            .is_empty()
    );
    a.stop().await;
    let a = TestServer::start_with(a_config).await;
    let b = TestServer::start_with(b_config).await;
    wait_message(&b, &bob_token, &room, "queued across a restart").await;
    // Acknowledged: the queue is empty.
    eventually("A's queue for B to empty", || async {
        services(&a)
            .federation
            .sender
            .next_batch(&b_name)
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn typing_receipts_profiles_and_aliases_cross_servers() {
    let p = pair().await;
    // The pair's alice and bob are in the room: log them in again for tokens.
    let alice_token = login(&p.a, &p.alice).await;
    let bob_token = login(&p.b, &p.bob).await;
    let room = p.room.to_string();

    // Typing of alice (A) reaches bob's /sync on B.
    let path = format!(
        "/_matrix/client/v3/rooms/{}/typing/{}",
        enc(&room),
        enc(&p.alice)
    );
    p.a.put(
        &path,
        &alice_token,
        json!({ "typing": true, "timeout": 30000 }),
    )
    .await;
    eventually("alice typing on B", || async {
        let (_, body) =
            p.b.call(
                Method::GET,
                "/_matrix/client/v3/sync",
                Some(&bob_token),
                None,
            )
            .await;
        let events = body["rooms"]["join"][&room]["ephemeral"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        events
            .iter()
            .any(|e| {
                e["type"] == "m.typing"
                    && e["content"]["user_ids"]
                        .as_array()
                        .is_some_and(|u| u.contains(&json!(p.alice)))
            })
            .then_some(())
    })
    .await;

    // A read receipt of bob (B) reaches alice's /sync on A.
    let event = p.a.send_text(&alice_token, &room, "r1", "read me").await;
    wait_message(&p.b, &bob_token, &room, "read me").await;
    p.b.post(
        &format!(
            "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
            enc(&room),
            enc(&event)
        ),
        &bob_token,
        json!({}),
    )
    .await;
    eventually("bob's receipt on A", || async {
        let (_, body) =
            p.a.call(
                Method::GET,
                "/_matrix/client/v3/sync",
                Some(&alice_token),
                None,
            )
            .await;
        let events = body["rooms"]["join"][&room]["ephemeral"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        events
            .iter()
            .any(|e| e["type"] == "m.receipt" && !e["content"][&event]["m.read"][&p.bob].is_null())
            .then_some(())
    })
    .await;

    // An explicit presence change of alice reaches B.
    let path = format!("/_matrix/client/v3/presence/{}/status", enc(&p.alice));
    p.a.put(
        &path,
        &alice_token,
        json!({ "presence": "unavailable", "status_msg": "away" }),
    )
    .await;
    let sb = services(&p.b);
    let alice_id = ruma::OwnedUserId::try_from(p.alice.as_str()).unwrap();
    eventually("alice's presence on B", || async {
        sb.presence
            .get(&alice_id)
            .unwrap()
            .filter(|r| r.presence == "unavailable" && r.status_msg.as_deref() == Some("away"))
            .map(|_| ())
    })
    .await;

    // Profiles and aliases of A, read on B.
    p.a.put(
        &format!("/_matrix/client/v3/profile/{}/displayname", enc(&p.alice)),
        &alice_token,
        json!({ "displayname": "Alice A" }),
    )
    .await;
    let profile =
        p.b.get(
            &format!("/_matrix/client/v3/profile/{}", enc(&p.alice)),
            &bob_token,
        )
        .await;
    assert_eq!(profile["displayname"], "Alice A", "{profile}");
    let alias = format!("#shared:{}", p.a_name);
    p.a.put(
        &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
        &alice_token,
        json!({ "room_id": room }),
    )
    .await;
    let resolved =
        p.b.get(
            &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
            &bob_token,
        )
        .await;
    assert_eq!(resolved["room_id"], room.as_str(), "{resolved}");
    assert!(
        resolved["servers"]
            .as_array()
            .unwrap()
            .contains(&json!(p.a_name)),
        "{resolved}"
    );
    let missing = format!("#nothing:{}", p.a_name);
    let (status, body) =
        p.b.call(
            Method::GET,
            &format!("/_matrix/client/v3/directory/room/{}", enc(&missing)),
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["errcode"], "M_NOT_FOUND");
}

async fn login(server: &TestServer, user: &str) -> String {
    let body = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user }, "password": "secret-password" });
    let (status, answer) = server
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_server_denied_by_the_rooms_acl_is_refused() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    let alice_token = login(&p.a, &p.alice).await;
    let bob_token = login(&p.b, &p.bob).await;
    let room = p.room.to_string();
    // Both test servers are on 127.0.0.1: deny that host (A's own events are not checked by A).
    let acl = json!({ "allow": ["*"], "deny": ["127.0.0.1"], "allow_ip_literals": true });
    p.a.put(
        &format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.server_acl/",
            enc(&room)
        ),
        &alice_token,
        acl,
    )
    .await;
    eventually("the ACL on B", || async {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.server_acl/",
            enc(&room)
        );
        let (status, _) = p.b.call(Method::GET, &path, Some(&bob_token), None).await;
        (status == StatusCode::OK).then_some(())
    })
    .await;

    // B's event is refused by A, whatever way it comes.
    let (object, id) = message(&sa, &sb, &p.room, &p.bob, "denied");
    let (status, answer) = send_txn(
        &sb,
        &p.a_name,
        "acl",
        txn_body(
            &p.b_name,
            vec![serde_json::to_value(&object).unwrap()],
            vec![],
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert!(
        answer["pdus"][id.as_str()]["error"]
            .as_str()
            .unwrap()
            .contains("ACL"),
        "{answer}"
    );
    assert!(!stored(&sa, &id));
    // And B may not read the room from A.
    let event_id = sa
        .short
        .event_id(
            sa.timeline
                .extremities(sa.short.room(&p.room).unwrap().unwrap())
                .unwrap()[0],
        )
        .unwrap();
    let path = format!(
        "/_matrix/federation/v1/state_ids/{}?event_id={}",
        enc(&room),
        enc(event_id.as_str())
    );
    let (status, answer) = send_json(&sb, &p.a_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["errcode"], "M_FORBIDDEN");
}

#[tokio::test]
async fn knocking_on_a_room_of_another_server() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, _) = start(dir_b.path()).await;
    let (_, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let room = a
        .create_room(&alice_token, json!({
            "room_version": "12", "preset": "private_chat", "name": "knock here",
            "initial_state": [{ "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" } }],
        }))
        .await;
    let path = format!(
        "/_matrix/client/v3/knock/{}?server_name={}",
        enc(&room),
        enc(a_name.as_str())
    );
    b.post(&path, &bob_token, json!({ "reason": "let me in" }))
        .await;
    wait_membership(&a, &alice_token, &room, &bob, "knock").await;
    let knocked = eventually("the knock in B's /sync", || async {
        let (_, body) = b
            .call(
                Method::GET,
                "/_matrix/client/v3/sync",
                Some(&bob_token),
                None,
            )
            .await;
        body["rooms"]["knock"].get(&room).cloned()
    })
    .await;
    let state = knocked["knock_state"]["events"].as_array().unwrap();
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "knock here"),
        "{knocked}"
    );

    // Alice lets bob in: an invite, then bob joins.
    a.post(
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
        &alice_token,
        json!({ "user_id": bob }),
    )
    .await;
    wait_invite(&b, &bob_token, &room).await;
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
    wait_membership(&a, &alice_token, &room, &bob, "join").await;
}

#[tokio::test]
async fn timestamps_devices_and_public_rooms_for_peers() {
    let p = pair().await;
    let sb = services(&p.b);
    let alice_token = login(&p.a, &p.alice).await;
    let event =
        p.a.send_text(&alice_token, p.room.as_str(), "ts1", "at a time")
            .await;
    let now = parvis::util::now_ms();
    let path = format!(
        "/_matrix/federation/v1/timestamp_to_event/{}?ts={now}&dir=b",
        enc(p.room.as_str())
    );
    let (status, answer) = send_json(&sb, &p.a_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(answer["event_id"], event.as_str(), "{answer}");
    let path = format!(
        "/_matrix/federation/v1/timestamp_to_event/{}?ts={}&dir=f",
        enc(p.room.as_str()),
        now + 60_000
    );
    let (status, answer) = send_json(&sb, &p.a_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::NOT_FOUND, "{answer}");

    let path = format!("/_matrix/federation/v1/user/devices/{}", enc(&p.alice));
    let (status, answer) = send_json(&sb, &p.a_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert!(answer["devices"].as_array().unwrap().len() >= 2, "{answer}");

    let public =
        p.a.create_room(
            &alice_token,
            json!({ "preset": "public_chat", "visibility": "public", "name": "lobby" }),
        )
        .await;
    let (status, answer) = send_json(
        &sb,
        &p.a_name,
        http::Method::GET,
        "/_matrix/federation/v1/publicRooms?limit=10",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert!(
        answer["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["room_id"] == public.as_str()),
        "{answer}"
    );
    let body = json!({ "filter": { "generic_search_term": "nothing like it" } });
    let (_, answer) = send_json(
        &sb,
        &p.a_name,
        http::Method::POST,
        "/_matrix/federation/v1/publicRooms",
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(answer["chunk"], json!([]), "{answer}");
}

#[tokio::test]
async fn an_event_allowed_before_a_ban_but_not_after_is_soft_failed() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    let alice_token = login(&p.a, &p.alice).await;
    // Carol keeps B in the room after bob's ban.
    let (carol, carol_token) = p.b.register("carol").await;
    p.a.post(
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(p.room.as_str())),
        &alice_token,
        json!({ "user_id": carol }),
    )
    .await;
    wait_invite(&p.b, &carol_token, p.room.as_str()).await;
    let join = format!(
        "/_matrix/client/v3/join/{}?server_name={}",
        enc(p.room.as_str()),
        enc(p.a_name.as_str())
    );
    p.b.post(&join, &carol_token, json!({})).await;
    wait_membership(&p.a, &alice_token, p.room.as_str(), &carol, "join").await;
    let (old_prev, old_state) = now_at(&sa, &p.room);
    p.a.post(
        &format!("/_matrix/client/v3/rooms/{}/ban", enc(p.room.as_str())),
        &alice_token,
        json!({ "user_id": p.bob }),
    )
    .await;

    // Bob's message on the state before the ban passes the checks against the state before it,
    // fails against the current state: stored, kept out of the timeline and the extremities.
    let (object, id) = message_on(&sa, &sb, &p.room, &p.bob, "sneaky", old_prev, old_state);
    let (status, answer) = send_txn(
        &sb,
        &p.a_name,
        "soft",
        txn_body(
            &p.b_name,
            vec![serde_json::to_value(&object).unwrap()],
            vec![],
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(answer["pdus"][id.as_str()], json!({}), "{answer}");
    assert!(stored(&sa, &id));
    let short = sa.short.event(&id).unwrap().unwrap();
    assert_eq!(sa.timeline.meta(short).unwrap().unwrap().pos, 0);
    let short_room = sa.short.room(&p.room).unwrap().unwrap();
    assert!(
        !sa.timeline
            .extremities(short_room)
            .unwrap()
            .contains(&short)
    );
    assert!(
        !bodies(&p.a, &alice_token, p.room.as_str())
            .await
            .iter()
            .any(|b| b == "sneaky")
    );
}

/// make_join then send_join v2 on A for `user` (of B), the join event signed by B; the answer.
async fn join_by_hand(
    sb: &Services,
    a_name: &OwnedServerName,
    room: &str,
    user: &str,
    query: &str,
) -> (http::StatusCode, Value) {
    let path = format!(
        "/_matrix/federation/v1/make_join/{}/{}?ver=12",
        enc(room),
        enc(user)
    );
    let (status, answer) = send_json(sb, a_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    let mut object: CanonicalJsonObject = serde_json::from_value(answer["event"].clone()).unwrap();
    object.insert(
        "origin_server_ts".into(),
        CanonicalJsonValue::Integer((parvis::util::now_ms() as i64).try_into().unwrap()),
    );
    let rules = ruma::RoomVersionId::V12.rules().unwrap();
    hash_and_sign_event(
        sb.globals.server_name().as_str(),
        &sb.globals.keypair,
        &mut object,
        &rules.redaction,
    )
    .unwrap();
    let id = format!(
        "${}",
        ruma::signatures::reference_hash(&object, &rules).unwrap()
    );
    let path = format!(
        "/_matrix/federation/v2/send_join/{}/{}{query}",
        enc(room),
        enc(&id)
    );
    let body = serde_json::to_value(&object).unwrap();
    send_json(sb, a_name, http::Method::PUT, &path, Some(&body))
        .await
        .unwrap()
}

fn members_in(events: &Value) -> Vec<String> {
    let mut out: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn send_join_with_omit_members_leaves_out_member_events_but_the_heroes_and_the_auth_chain() {
    let p = pair().await;
    let sb = services(&p.b);
    let alice_token = login(&p.a, &p.alice).await;
    let (dave, dave_token) = p.a.register("dave").await;
    // A public room without a name: alice and dave are its heroes.
    let room =
        p.a.create_room(
            &alice_token,
            json!({ "preset": "public_chat", "room_version": "12" }),
        )
        .await;
    p.a.post(
        &format!("/_matrix/client/v3/join/{}", enc(&room)),
        &dave_token,
        json!({}),
    )
    .await;

    let carol = format!("@carol:{}", p.b_name);
    let (status, answer) = join_by_hand(&sb, &p.a_name, &room, &carol, "?omit_members=true").await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(answer["members_omitted"], true, "{answer}");
    let mut heroes = vec![p.alice.clone(), dave.clone()];
    heroes.sort();
    assert_eq!(members_in(&answer["state"]), heroes, "{answer}");
    assert!(
        answer["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.create"),
        "{answer}"
    );
    assert_eq!(
        answer["servers_in_room"],
        json!([p.a_name.as_str()]),
        "{answer}"
    );

    // With a name, no member event is in `state`; the auth chain keeps those the answered
    // events need (alice's join, the sender of the create's power levels), nothing answered in
    // `state` is repeated there.
    p.a.put(
        &format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", enc(&room)),
        &alice_token,
        json!({ "name": "named" }),
    )
    .await;
    let erin = format!("@erin:{}", p.b_name);
    let (status, answer) = join_by_hand(&sb, &p.a_name, &room, &erin, "?omit_members=true").await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(answer["members_omitted"], true, "{answer}");
    assert_eq!(
        members_in(&answer["state"]),
        Vec::<String>::new(),
        "{answer}"
    );
    assert!(
        members_in(&answer["auth_chain"]).contains(&p.alice),
        "{answer}"
    );
    let rules = ruma::RoomVersionId::V12.rules().unwrap();
    let ids = |events: &Value| -> Vec<String> {
        events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let object: CanonicalJsonObject = serde_json::from_value(e.clone()).unwrap();
                ruma::signatures::reference_hash(&object, &rules).unwrap()
            })
            .collect()
    };
    let (state, chain) = (ids(&answer["state"]), ids(&answer["auth_chain"]));
    assert!(chain.iter().all(|id| !state.contains(id)), "{answer}");
    let mut servers: Vec<&str> = answer["servers_in_room"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    servers.sort();
    let mut want = vec![p.a_name.as_str(), p.b_name.as_str()];
    want.sort();
    assert_eq!(servers, want, "{answer}");

    // Without omit_members: every member event, `members_omitted` false.
    let frank = format!("@frank:{}", p.b_name);
    let (status, answer) = join_by_hand(&sb, &p.a_name, &room, &frank, "").await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(answer["members_omitted"], false, "{answer}");
    let mut all = vec![p.alice.clone(), dave, carol, erin];
    all.sort();
    assert_eq!(members_in(&answer["state"]), all, "{answer}");
    let (status, _) = join_by_hand(
        &sb,
        &p.a_name,
        &room,
        &format!("@gina:{}", p.b_name),
        "?omit_members=maybe",
    )
    .await;
    assert_eq!(status, http::StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn public_rooms_can_be_kept_from_other_servers() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start_configured(dir_a.path(), |c| {
        c.federation.public_rooms_over_federation = false
    })
    .await;
    let (b, _) = start(dir_b.path()).await;
    let (_, alice_token) = a.register("alice").await;
    let public = a
        .create_room(
            &alice_token,
            json!({ "preset": "public_chat", "visibility": "public", "name": "lobby" }),
        )
        .await;
    let sb = services(&b);
    let (status, answer) = send_json(
        &sb,
        &a_name,
        http::Method::GET,
        "/_matrix/federation/v1/publicRooms?limit=10",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, http::StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["errcode"], "M_FORBIDDEN");
    let body = json!({ "limit": 10 });
    let (status, answer) = send_json(
        &sb,
        &a_name,
        http::Method::POST,
        "/_matrix/federation/v1/publicRooms",
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(status, http::StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["errcode"], "M_FORBIDDEN");
    // Local clients still see the directory.
    let local = a.get("/_matrix/client/v3/publicRooms", &alice_token).await;
    assert!(
        local["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["room_id"] == public.as_str()),
        "{local}"
    );
}

#[tokio::test]
async fn openid_tokens_are_checked_by_other_servers() {
    let p = pair().await;
    let (sa, sb) = (services(&p.a), services(&p.b));
    let alice_token = login(&p.a, &p.alice).await;
    let path = format!(
        "/_matrix/client/v3/user/{}/openid/request_token",
        enc(&p.alice)
    );
    let answer = p.a.post(&path, &alice_token, json!({})).await;
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    assert_eq!(answer["matrix_server_name"], p.a_name.as_str(), "{answer}");
    assert_eq!(answer["expires_in"], 3600, "{answer}");
    let token = answer["access_token"].as_str().unwrap().to_owned();
    // Only for oneself.
    let path = format!(
        "/_matrix/client/v3/user/{}/openid/request_token",
        enc(&p.bob)
    );
    let (status, _) =
        p.a.call(Method::POST, &path, Some(&alice_token), Some(json!({})))
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let userinfo = |token: &str| {
        format!(
            "/_matrix/federation/v1/openid/userinfo?access_token={}",
            enc(token)
        )
    };
    let (status, answer) = send_json(&sb, &p.a_name, http::Method::GET, &userinfo(&token), None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(answer["sub"], p.alice.as_str(), "{answer}");

    let (status, answer) = send_json(
        &sb,
        &p.a_name,
        http::Method::GET,
        &userinfo("not-a-token"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, http::StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["errcode"], "M_UNKNOWN_TOKEN");
    // A token issued two hours ago has expired (after one hour).
    let alice: ruma::OwnedUserId = p.alice.clone().try_into().unwrap();
    let old = sa
        .users
        .create_openid_token(&alice, parvis::util::now_ms() - 2 * 3_600_000)
        .unwrap();
    let (status, answer) = send_json(&sb, &p.a_name, http::Method::GET, &userinfo(&old), None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["errcode"], "M_UNKNOWN_TOKEN");
    // The token of alice is not an access token, nor the other way round.
    let (status, _) = send_json(
        &sb,
        &p.a_name,
        http::Method::GET,
        &userinfo(&alice_token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, http::StatusCode::UNAUTHORIZED);
    let (status, _) =
        p.a.call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn presence_set_by_sync_reaches_the_other_server() {
    let p = pair().await;
    let sb = services(&p.b);
    let alice_token = login(&p.a, &p.alice).await;
    let alice_id = ruma::OwnedUserId::try_from(p.alice.as_str()).unwrap();
    let on_b = |presence: &'static str, status: Option<&'static str>| {
        let (sb, alice_id) = (sb.clone(), alice_id.clone());
        async move {
            eventually(&format!("alice {presence} on B"), || async {
                sb.presence
                    .get(&alice_id)
                    .unwrap()
                    .filter(|r| r.presence == presence && r.status_msg.as_deref() == status)
                    .map(|_| ())
            })
            .await
        }
    };
    p.a.put(
        &format!("/_matrix/client/v3/presence/{}/status", enc(&p.alice)),
        &alice_token,
        json!({ "presence": "online", "status_msg": "busy" }),
    )
    .await;
    on_b("online", Some("busy")).await;
    // /sync's set_presence goes out too, with the status message alice set.
    p.a.get(
        "/_matrix/client/v3/sync?timeout=0&set_presence=unavailable",
        &alice_token,
    )
    .await;
    on_b("unavailable", Some("busy")).await;
    // A /sync without set_presence means online.
    p.a.get("/_matrix/client/v3/sync?timeout=0", &alice_token)
        .await;
    on_b("online", Some("busy")).await;
}
