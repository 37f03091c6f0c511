//! Restricted joins (locally, and over federation through a resident server's signature, with the
//! next `via` server tried when the first cannot authorise), v1 invites received, and space
//! hierarchies across two servers (client and federation endpoints); rejoining, and being invited
//! again to, a room of another server after the last local member left it.

mod common;

use std::sync::Arc;

use common::federation::{eventually, services, start};
use common::{TestServer, enc};
use parvis::{
    federation::request::send_json,
    services::{
        Services,
        rooms::version,
        timeline::append::{NewEvent, Target, build_fields, sign_built},
    },
};
use reqwest::{Method, StatusCode};
use ruma::{OwnedRoomId, OwnedServerName, OwnedUserId, events::StateEventType};
use serde_json::{Value, json};

async fn member_event(server: &TestServer, token: &str, room: &str, user: &str) -> Option<Value> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.member/{}?format=event",
        enc(room),
        enc(user)
    );
    let (status, body) = server.call(Method::GET, &path, Some(token), None).await;
    (status == StatusCode::OK).then_some(body)
}

async fn wait_joined(server: &TestServer, token: &str, room: &str, user: &str) -> Value {
    eventually(&format!("{user} joined {room}"), || async {
        member_event(server, token, room, user)
            .await
            .filter(|e| e["content"]["membership"] == "join" || e["membership"] == "join")
    })
    .await
}

fn join_rules(rule: &str, allowed: &[&str]) -> Value {
    let allow: Vec<Value> = allowed
        .iter()
        .map(|r| json!({ "type": "m.room_membership", "room_id": r }))
        .collect();
    json!({ "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": rule, "allow": allow } })
}

/// A room of version 10 whose join rule is `rule`, allowing members of `allowed`.
async fn restricted_room(
    server: &TestServer,
    token: &str,
    rule: &str,
    allowed: &[&str],
    extra: Value,
) -> String {
    let mut body = json!({ "room_version": "10", "preset": "private_chat", "initial_state": [join_rules(rule, allowed)] });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            body[k] = v;
        }
    }
    server.create_room(token, body).await
}

async fn join(
    server: &TestServer,
    token: &str,
    room: &str,
    via: &[&OwnedServerName],
) -> (StatusCode, Value) {
    let query: Vec<String> = via
        .iter()
        .map(|v| format!("server_name={}", enc(v.as_str())))
        .collect();
    let path = format!("/_matrix/client/v3/join/{}?{}", enc(room), query.join("&"));
    server
        .call(Method::POST, &path, Some(token), Some(json!({})))
        .await
}

#[tokio::test]
async fn test_restricted_rooms_local_join() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = start(dir.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = a.register("bob").await;
    let (_carol, carol_token) = a.register("carol").await;
    let allowed = a
        .create_room(&alice_token, json!({ "preset": "public_chat" }))
        .await;
    a.post(
        &format!("/_matrix/client/v3/join/{}", enc(&allowed)),
        &bob_token,
        json!({}),
    )
    .await;

    for rule in ["restricted", "knock_restricted"] {
        let room = restricted_room(&a, &alice_token, rule, &[&allowed], json!({})).await;
        // Carol is in no allowed room: 403, and no membership is written.
        let (status, body) = join(&a, &carol_token, &room, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{rule}: {body}");
        assert_eq!(body["errcode"], "M_FORBIDDEN");
        // Bob is in the allowed room: his join names alice, who may invite.
        let (status, body) = join(&a, &bob_token, &room, &[]).await;
        assert_eq!(status, StatusCode::OK, "{rule}: {body}");
        let event = member_event(&a, &bob_token, &room, &bob).await.unwrap();
        assert_eq!(
            event["content"]["join_authorised_via_users_server"],
            alice.as_str(),
            "{event}"
        );
    }

    // Bob leaves the allowed room: he may no longer join a restricted room through it.
    a.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(&allowed)),
        &bob_token,
        json!({}),
    )
    .await;
    let room = restricted_room(&a, &alice_token, "restricted", &[&allowed], json!({})).await;
    let (status, _) = join(&a, &bob_token, &room, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Room version 12 (creators have unlimited power, so alice may authorise).
    let (_frank, frank_token) = a.register("frank").await;
    let body = json!({ "room_version": "12", "preset": "private_chat", "initial_state": [join_rules("restricted", &[&allowed])] });
    let v12 = a.create_room(&alice_token, body).await;
    let (status, _) = join(&a, &frank_token, &v12, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    a.post(
        &format!("/_matrix/client/v3/join/{}", enc(&allowed)),
        &frank_token,
        json!({}),
    )
    .await;
    let (status, body) = join(&a, &frank_token, &v12, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // In room version 7 a restricted rule lets nobody in.
    let body = json!({ "room_version": "7", "preset": "private_chat", "initial_state": [join_rules("restricted", &[&allowed])] });
    let old = a.create_room(&alice_token, body).await;
    a.post(
        &format!("/_matrix/client/v3/join/{}", enc(&allowed)),
        &bob_token,
        json!({}),
    )
    .await;
    let (status, _) = join(&a, &bob_token, &old, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    a.stop().await;
}

#[tokio::test]
async fn test_restricted_rooms_remote_join() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, b_name) = start(dir_b.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let (sa, sb) = (services(&a), services(&b));

    let allowed = a
        .create_room(
            &alice_token,
            json!({ "preset": "public_chat", "room_version": "10" }),
        )
        .await;
    let room = restricted_room(&a, &alice_token, "restricted", &[&allowed], json!({})).await;
    // Bob is in no allowed room yet: the resident refuses (403), and so does the join.
    let make = format!(
        "/_matrix/federation/v1/make_join/{}/{}?ver=10",
        enc(&room),
        enc(&bob)
    );
    let (status, answer) = send_json(&sb, &a_name, http::Method::GET, &make, None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::FORBIDDEN, "{answer}");
    let (status, _) = join(&b, &bob_token, &room, &[&a_name]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Bob joins the allowed (public) room, then the restricted one through A.
    let (status, body) = join(&b, &bob_token, &allowed, &[&a_name]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_joined(&a, &alice_token, &allowed, &bob).await;
    let (status, answer) = send_json(&sb, &a_name, http::Method::GET, &make, None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(
        answer["event"]["content"]["join_authorised_via_users_server"],
        alice.as_str(),
        "{answer}"
    );
    let (status, body) = join(&b, &bob_token, &room, &[&a_name]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Both servers store the join with the resident's authoriser and both signatures.
    for (server, token) in [(&a, &alice_token), (&b, &bob_token)] {
        let event = wait_joined(server, token, &room, &bob).await;
        assert_eq!(
            event["content"]["join_authorised_via_users_server"],
            alice.as_str(),
            "{event}"
        );
        let id: ruma::OwnedEventId = event["event_id"].as_str().unwrap().try_into().unwrap();
        let s = services(server);
        let short = s.short.event(&id).unwrap().unwrap();
        let stored = s.timeline.json(short).unwrap().unwrap();
        let signatures = serde_json::to_value(stored.get("signatures").unwrap()).unwrap();
        assert!(
            signatures.get(a_name.as_str()).is_some() && signatures.get(b_name.as_str()).is_some(),
            "{signatures}"
        );
    }
    // Messages flow in the room afterwards.
    b.send_text(&bob_token, &room, "t1", "restricted hello")
        .await;

    // A room allowing a room A does not know: A cannot tell (M_UNABLE_TO_AUTHORISE_JOIN).
    let unknown = format!("!unknown:{b_name}");
    let blind = restricted_room(&a, &alice_token, "restricted", &[&unknown], json!({})).await;
    let path = format!(
        "/_matrix/federation/v1/make_join/{}/{}?ver=10",
        enc(&blind),
        enc(&bob)
    );
    let (status, answer) = send_json(&sb, &a_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (
            http::StatusCode::BAD_REQUEST,
            Some("M_UNABLE_TO_AUTHORISE_JOIN")
        ),
        "{answer}"
    );

    // Nobody on A may invite: A cannot grant the join (M_UNABLE_TO_GRANT_JOIN).
    let levels = json!({ "power_level_content_override": { "invite": 150 } });
    let locked = restricted_room(&a, &alice_token, "restricted", &[&allowed], levels).await;
    let path = format!(
        "/_matrix/federation/v1/make_join/{}/{}?ver=10",
        enc(&locked),
        enc(&bob)
    );
    let (status, answer) = send_json(&sb, &a_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (
            http::StatusCode::BAD_REQUEST,
            Some("M_UNABLE_TO_GRANT_JOIN")
        ),
        "{answer}"
    );

    // A send_join naming alice for a user who is in no allowed room is refused, nothing stored.
    let (_, dave_token) = b.register("dave").await;
    let dave: OwnedUserId = format!("@dave:{b_name}").try_into().unwrap();
    let room_id: OwnedRoomId = room.clone().try_into().unwrap();
    let forged = {
        let short = sa.short.room(&room_id).unwrap().unwrap();
        let state = sa.state.current_state(short).unwrap();
        let mut auth = Vec::new();
        for (kind, key) in [
            ("m.room.create", ""),
            ("m.room.power_levels", ""),
            ("m.room.join_rules", ""),
            ("m.room.member", alice.as_str()),
        ] {
            let k = sa.short.statekey(&kind.into(), key).unwrap().unwrap();
            auth.push(sa.short.event_id(state[&k]).unwrap().to_string());
        }
        let prev: Vec<String> = sa
            .timeline
            .extremities(short)
            .unwrap()
            .iter()
            .map(|e| sa.short.event_id(*e).unwrap().to_string())
            .collect();
        let mut object: ruma::CanonicalJsonObject = serde_json::from_value(json!({
            "room_id": room, "sender": dave, "state_key": dave, "type": "m.room.member",
            "content": { "membership": "join", "join_authorised_via_users_server": alice },
            "origin_server_ts": parvis::util::now_ms(), "depth": 100, "prev_events": prev, "auth_events": auth,
        }))
        .unwrap();
        let rules = ruma::RoomVersionId::V10.rules().unwrap();
        ruma::signatures::hash_and_sign_event(
            b_name.as_str(),
            &sb.globals.keypair,
            &mut object,
            &rules.redaction,
        )
        .unwrap();
        let hash = ruma::signatures::reference_hash(&object, &rules).unwrap();
        (object, format!("${hash}"))
    };
    let path = format!(
        "/_matrix/federation/v2/send_join/{}/{}",
        enc(&room),
        enc(&forged.1)
    );
    let (status, answer) = send_json(
        &sb,
        &a_name,
        http::Method::PUT,
        &path,
        Some(&serde_json::to_value(&forged.0).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(status, http::StatusCode::FORBIDDEN, "{answer}");
    assert!(
        member_event(&a, &alice_token, &room, dave.as_str())
            .await
            .is_none()
    );
    let _ = dave_token;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn test_restricted_rooms_remote_join_fail_over_and_local_user() {
    let dirs = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a, a_name) = start(dirs.0.path()).await;
    let (b, b_name) = start(dirs.1.path()).await;
    let (c, _) = start(dirs.2.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let (carol, carol_token) = c.register("carol").await;

    // A public room everyone joins; a restricted room of A where only bob (of B) may invite.
    let allowed = a
        .create_room(
            &alice_token,
            json!({ "preset": "public_chat", "room_version": "10" }),
        )
        .await;
    for (server, token, user) in [(&b, &bob_token, &bob), (&c, &carol_token, &carol)] {
        let (status, body) = join(server, token, &allowed, &[&a_name]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        wait_joined(&a, &alice_token, &allowed, user).await;
    }
    wait_joined(&b, &bob_token, &allowed, &carol).await;
    let levels = json!({ "power_level_content_override": { "invite": 50, "users": { alice.as_str(): 100, bob.as_str(): 100 } } });
    let room = restricted_room(&a, &alice_token, "restricted", &[&allowed], levels).await;
    let (status, body) = join(&b, &bob_token, &room, &[&a_name]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_joined(&a, &alice_token, &room, &bob).await;
    // Alice steps down: A has nobody who may invite.
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.power_levels/",
        enc(&room)
    );
    let mut pl = a.get(&path, &alice_token).await;
    pl["users"][alice.as_str()] = json!(0);
    a.put(&path, &alice_token, pl).await;
    eventually("B sees the new power levels", || async {
        let pl = b.get(&path, &bob_token).await;
        (pl["users"][alice.as_str()] == 0).then_some(())
    })
    .await;

    // Carol asks A first (M_UNABLE_TO_GRANT_JOIN), then B, which authorises through bob.
    let (status, body) = join(&c, &carol_token, &room, &[&a_name, &b_name]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let event = wait_joined(&a, &alice_token, &room, &carol).await;
    assert_eq!(
        event["content"]["join_authorised_via_users_server"],
        bob.as_str(),
        "{event}"
    );

    // A user of A, where nobody may authorise the join, joins through B (a server of the room).
    let (erin, erin_token) = a.register("erin").await;
    a.post(
        &format!("/_matrix/client/v3/join/{}", enc(&allowed)),
        &erin_token,
        json!({}),
    )
    .await;
    wait_joined(&b, &bob_token, &allowed, &erin).await;
    let (status, body) = join(&a, &erin_token, &room, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let event = wait_joined(&b, &bob_token, &room, &erin).await;
    assert_eq!(
        event["content"]["join_authorised_via_users_server"],
        bob.as_str(),
        "{event}"
    );
    a.send_text(&erin_token, &room, "e1", "erin is in").await;
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn test_v1_invite_received() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, b_name) = start(dir_b.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let sb = services(&b);
    let room = b
        .create_room(
            &bob_token,
            json!({ "room_version": "2", "preset": "private_chat", "name": "old room" }),
        )
        .await;

    // B builds and signs an invite of alice, and sends it with the v1 API.
    let room_id: OwnedRoomId = room.clone().try_into().unwrap();
    let bob_id: OwnedUserId = bob.clone().try_into().unwrap();
    let rules = version::rules(&ruma::RoomVersionId::V2).unwrap();
    let new = NewEvent::state(
        StateEventType::RoomMember,
        alice.as_str(),
        json!({ "membership": "invite" }),
    );
    let built = build_fields(
        &sb,
        &Target::Room(&room_id),
        &rules,
        Some(&room_id),
        &bob_id,
        &new,
    )
    .unwrap();
    let (object, event_id, _) = sign_built(&sb, &rules, built.object, built.room_id_field).unwrap();
    let mut body = serde_json::to_value(&object).unwrap();
    body["unsigned"] = json!({ "invite_room_state": [
        { "type": "m.room.name", "state_key": "", "sender": bob, "content": { "name": "old room" } },
    ] });
    let path = format!(
        "/_matrix/federation/v1/invite/{}/{}",
        enc(&room),
        enc(event_id.as_str())
    );
    let (status, answer) = send_json(&sb, &a_name, http::Method::PUT, &path, Some(&body))
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(answer[0], 200, "{answer}");
    assert_eq!(
        answer[1]["event"]["event_id"],
        event_id.as_str(),
        "{answer}"
    );
    assert!(
        answer[1]["event"]["signatures"][a_name.as_str()].is_object(),
        "{answer}"
    );
    assert!(
        answer[1]["event"]["signatures"][b_name.as_str()].is_object(),
        "{answer}"
    );

    // Alice sees the invite with its stripped state.
    let invite = eventually("the v1 invite in /sync", || async {
        let (_, body) = a
            .call(
                Method::GET,
                "/_matrix/client/v3/sync",
                Some(&alice_token),
                None,
            )
            .await;
        body["rooms"]["invite"].get(&room).cloned()
    })
    .await;
    let state = invite["invite_state"]["events"].as_array().unwrap();
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "old room"),
        "{invite}"
    );

    // A v1 invite for another server's user, or with a tampered body, is refused.
    let mut tampered = body.clone();
    tampered["content"]["membership"] = json!("join");
    let (status, _) = send_json(&sb, &a_name, http::Method::PUT, &path, Some(&tampered))
        .await
        .unwrap();
    assert!(status.is_client_error(), "{status}");
    a.stop().await;
    b.stop().await;
}

async fn hierarchy(
    server: &TestServer,
    token: &str,
    room: &str,
    query: &str,
) -> (StatusCode, Value) {
    let path = format!("/_matrix/client/v1/rooms/{}/hierarchy?{query}", enc(room));
    server.call(Method::GET, &path, Some(token), None).await
}

fn ids(page: &Value) -> Vec<String> {
    page["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn add_child(
    server: &TestServer,
    token: &str,
    space: &str,
    child: &str,
    via: &OwnedServerName,
    extra: Value,
) {
    let mut content = json!({ "via": [via] });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            content[k] = v;
        }
    }
    server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.space.child/{}",
                enc(space),
                enc(child)
            ),
            token,
            content,
        )
        .await;
}

#[tokio::test]
async fn test_federated_client_spaces() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, b_name) = start(dir_b.path()).await;
    let (_alice, alice_token) = a.register("alice").await;
    let (_dave, dave_token) = a.register("dave").await;
    let (_bob, bob_token) = b.register("bob").await;
    let sb = services(&b);

    // A space of A with a public child on A, a private child on A and a public child on B.
    let space = a
        .create_room(&alice_token, json!({ "preset": "public_chat", "name": "space", "creation_content": { "type": "m.space" } }))
        .await;
    let a1 = a
        .create_room(
            &alice_token,
            json!({ "preset": "public_chat", "name": "a1" }),
        )
        .await;
    let private = a
        .create_room(
            &alice_token,
            json!({ "preset": "private_chat", "name": "private" }),
        )
        .await;
    let b1 = b
        .create_room(
            &bob_token,
            json!({ "preset": "public_chat", "name": "b1", "topic": "on B" }),
        )
        .await;
    add_child(
        &a,
        &alice_token,
        &space,
        &a1,
        &a_name,
        json!({ "order": "b", "suggested": true }),
    )
    .await;
    add_child(
        &a,
        &alice_token,
        &space,
        &private,
        &a_name,
        json!({ "order": "c" }),
    )
    .await;
    add_child(
        &a,
        &alice_token,
        &space,
        &b1,
        &b_name,
        json!({ "order": "a" }),
    )
    .await;
    a.post(
        &format!("/_matrix/client/v3/join/{}", enc(&space)),
        &dave_token,
        json!({}),
    )
    .await;

    // Dave sees the space, b1 (asked of B), a1, in the children's order; not the private room.
    let (status, page) = hierarchy(&a, &dave_token, &space, "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        ids(&page),
        vec![space.clone(), b1.clone(), a1.clone()],
        "{page}"
    );
    assert!(page.get("next_batch").is_none(), "{page}");
    let rooms = page["rooms"].as_array().unwrap();
    assert_eq!(rooms[0]["room_type"], "m.space");
    assert_eq!(
        rooms[0]["children_state"].as_array().unwrap().len(),
        3,
        "{page}"
    );
    assert_eq!(
        (rooms[1]["name"].as_str(), rooms[1]["topic"].as_str()),
        (Some("b1"), Some("on B")),
        "{page}"
    );
    // A public room's join rule may be left out ("When not present, the room is assumed to be public").
    assert_eq!(
        rooms[1]
            .get("join_rule")
            .and_then(Value::as_str)
            .unwrap_or("public"),
        "public",
        "{page}"
    );
    assert_eq!(rooms[2]["children_state"], json!([]));
    // Alice, in the private room, sees it too.
    let (_, page) = hierarchy(&a, &alice_token, &space, "").await;
    assert_eq!(
        ids(&page),
        vec![space.clone(), b1.clone(), a1.clone(), private.clone()],
        "{page}"
    );

    // One room per page, following next_batch.
    let mut seen = Vec::new();
    let mut query = "limit=1".to_owned();
    loop {
        let (status, page) = hierarchy(&a, &dave_token, &space, &query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["rooms"].as_array().unwrap().len(), 1, "{page}");
        seen.extend(ids(&page));
        let Some(next) = page["next_batch"].as_str() else {
            break;
        };
        query = format!("limit=1&from={}", enc(next));
    }
    assert_eq!(seen, vec![space.clone(), b1.clone(), a1.clone()]);
    // A token with other parameters, or no token at all, is refused.
    let (_, first) = hierarchy(&a, &dave_token, &space, "limit=1").await;
    let token = enc(first["next_batch"].as_str().unwrap());
    let (status, body) = hierarchy(
        &a,
        &dave_token,
        &space,
        &format!("limit=1&suggested_only=true&from={token}"),
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_INVALID_PARAM")),
        "{body}"
    );
    let (status, _) = hierarchy(&a, &dave_token, &space, "from=nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = hierarchy(&a, &dave_token, &space, "limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // suggested_only and max_depth.
    let (_, page) = hierarchy(&a, &dave_token, &space, "suggested_only=true").await;
    assert_eq!(ids(&page), vec![space.clone(), a1.clone()], "{page}");
    let (_, page) = hierarchy(&a, &dave_token, &space, "max_depth=0").await;
    assert_eq!(ids(&page), vec![space.clone()], "{page}");

    // A room the user may not see: 403.
    let (status, _) = hierarchy(&a, &dave_token, &private, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The federation endpoint: B asks A. The private child is inaccessible; b1 is not A's to describe.
    let path = format!("/_matrix/federation/v1/hierarchy/{}", enc(&space));
    let (status, answer) = send_json(&sb, &a_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(answer["room"]["room_id"], space.as_str());
    assert_eq!(
        answer["room"]["children_state"].as_array().unwrap().len(),
        3
    );
    let children: Vec<&str> = answer["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(children, vec![a1.as_str()], "{answer}");
    assert_eq!(
        answer["inaccessible_children"],
        json!([private]),
        "{answer}"
    );
    let (_, answer) = send_json(
        &sb,
        &a_name,
        http::Method::GET,
        &format!("{path}?suggested_only=true"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(answer["inaccessible_children"], json!([]), "{answer}");
    // A room B may not see: 404.
    let path = format!("/_matrix/federation/v1/hierarchy/{}", enc(&private));
    let (status, answer) = send_json(&sb, &a_name, http::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (http::StatusCode::NOT_FOUND, Some("M_NOT_FOUND")),
        "{answer}"
    );

    // B's answer is reused for a while: with B stopped, b1 is still listed.
    b.stop().await;
    let (_, page) = hierarchy(&a, &dave_token, &space, "").await;
    assert_eq!(
        ids(&page),
        vec![space.clone(), b1.clone(), a1.clone()],
        "{page}"
    );
    a.stop().await;
}

/// A tiny identity server over TLS: `hash_details`, `lookup` (one bound address), `store-invite`
/// (bearer token `secret`; one token per invite, signed later with `key`).
struct FakeIdentityServer {
    name: String,
    key: ruma::signatures::Ed25519KeyPair,
    stored: Arc<std::sync::Mutex<Vec<Value>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn fake_identity_server(bound: (&str, &str)) -> FakeIdentityServer {
    use axum::{
        Json,
        routing::{get, post},
    };
    let doc = ruma::signatures::Ed25519KeyPair::generate();
    let key = ruma::signatures::Ed25519KeyPair::from_der(&doc, "0".into()).unwrap();
    let public_key =
        ruma::serde::Base64::<ruma::serde::base64::Standard, _>::new(key.public_key().to_vec())
            .encode();
    let stored: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    let (address, mxid) = (bound.0.to_owned(), bound.1.to_owned());
    let hashed =
        parvis::federation::identity::lookup_key("sha256", &address, "email", "pepper").unwrap();
    let store = stored.clone();
    let app = axum::Router::new()
        .route("/_matrix/identity/v2/hash_details", get(|| async { Json(json!({ "algorithms": ["sha256"], "lookup_pepper": "pepper" })) }))
        .route(
            "/_matrix/identity/v2/lookup",
            post(move |Json(body): Json<Value>| async move {
                let found = body["addresses"].as_array().unwrap().iter().any(|a| a == &json!(hashed));
                Json(if found { json!({ "mappings": { hashed.clone(): mxid } }) } else { json!({ "mappings": {} }) })
            }),
        )
        .route(
            "/_matrix/identity/v2/store-invite",
            post(move |headers: http::HeaderMap, Json(body): Json<Value>| async move {
                if headers.get("authorization").and_then(|h| h.to_str().ok()) != Some("Bearer secret") {
                    return (http::StatusCode::UNAUTHORIZED, Json(json!({ "errcode": "M_UNAUTHORIZED" })));
                }
                let mut stored = store.lock().unwrap();
                stored.push(body);
                let token = format!("tok{}", stored.len());
                let answer = json!({
                    "token": token,
                    "public_keys": [{ "public_key": public_key, "key_validity_url": "https://id.example/isvalid" }],
                    "display_name": "b...@e...",
                });
                (http::StatusCode::OK, Json(answer))
            }),
        );
    let (name, stop, dir) = common::federation::fake_peer(app).await;
    FakeIdentityServer {
        name,
        key,
        stored,
        _stop: stop,
        _dir: dir,
    }
}

impl FakeIdentityServer {
    /// The `signed` block the identity server gives when `mxid` binds the address of `token`.
    fn signed(
        &self,
        mxid: &str,
        token: &str,
        key: Option<&ruma::signatures::Ed25519KeyPair>,
    ) -> Value {
        let mut object: ruma::CanonicalJsonObject =
            serde_json::from_value(json!({ "mxid": mxid, "token": token })).unwrap();
        ruma::signatures::sign_json(&self.name, key.unwrap_or(&self.key), &mut object).unwrap();
        serde_json::to_value(object).unwrap()
    }
}

/// `PUT /3pid/onbind` on `to`, unsigned, as an identity server sends it.
async fn on_bind(from: &Services, to: &OwnedServerName, body: Value) -> http::StatusCode {
    let request = http::Request::builder()
        .method(http::Method::PUT)
        .uri(format!("https://{to}/_matrix/federation/v1/3pid/onbind"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    parvis::federation::request::send_raw(from, to, request, false)
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn test_third_party_invite_exchange() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, b_name) = start(dir_b.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let (carol, carol_token) = b.register("carol").await;
    let (dave, dave_token) = b.register("dave").await;
    let sa = services(&a);
    let is = fake_identity_server(("carol@example.org", &carol)).await;
    let room = a
        .create_room(
            &alice_token,
            json!({ "preset": "private_chat", "name": "3pid" }),
        )
        .await;
    let invite_path = format!("/_matrix/client/v3/rooms/{}/invite", enc(&room));
    let third_party = |address: &str, token: &str| json!({ "id_server": is.name, "id_access_token": token, "medium": "email", "address": address });

    // A wrong identity-server token: the identity server refuses, nothing is stored.
    let (status, _) = a
        .call(
            Method::POST,
            &invite_path,
            Some(&alice_token),
            Some(third_party("bob@example.org", "wrong")),
        )
        .await;
    assert!(!status.is_success());
    assert!(is.stored.lock().unwrap().is_empty());

    // An address bound already (carol's): a plain invite of carol.
    a.post(
        &invite_path,
        &alice_token,
        third_party("carol@example.org", "secret"),
    )
    .await;
    eventually("carol's invite", || async {
        let (_, body) = b
            .call(
                Method::GET,
                "/_matrix/client/v3/sync",
                Some(&carol_token),
                None,
            )
            .await;
        body["rooms"]["invite"].get(&room).cloned()
    })
    .await;

    // An unbound address: stored on the identity server, m.room.third_party_invite in the room.
    a.post(
        &invite_path,
        &alice_token,
        third_party("bob@example.org", "secret"),
    )
    .await;
    let stored = is.stored.lock().unwrap().clone();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (
            stored[0]["address"].as_str(),
            stored[0]["room_id"].as_str(),
            stored[0]["sender"].as_str()
        ),
        (
            Some("bob@example.org"),
            Some(room.as_str()),
            Some(alice.as_str())
        )
    );
    assert_eq!(stored[0]["room_name"], "3pid");
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.third_party_invite/tok1",
        enc(&room)
    );
    let invite = a.get(&path, &alice_token).await;
    assert_eq!(invite["display_name"], "b...@e...", "{invite}");
    assert_eq!(
        invite["public_keys"][0]["key_validity_url"], "https://id.example/isvalid",
        "{invite}"
    );

    // The binding signed with another key: B's exchange is refused by A, no invite.
    let other_doc = ruma::signatures::Ed25519KeyPair::generate();
    let other = ruma::signatures::Ed25519KeyPair::from_der(&other_doc, "0".into()).unwrap();
    let bad = json!({ "medium": "email", "address": "bob@example.org", "mxid": dave, "invites": [{
        "medium": "email", "address": "bob@example.org", "mxid": dave, "room_id": room, "sender": alice,
        "signed": is.signed(&dave, "tok1", Some(&other)),
    }] });
    assert_eq!(
        on_bind(&sa, &b_name, bad).await,
        http::StatusCode::FORBIDDEN
    );
    let (_, sync) = b
        .call(
            Method::GET,
            "/_matrix/client/v3/sync",
            Some(&dave_token),
            None,
        )
        .await;
    assert!(sync["rooms"]["invite"].get(&room).is_none(), "{sync}");

    // Bob binds the address: the identity server tells B, B asks A, A invites bob.
    let body = json!({ "medium": "email", "address": "bob@example.org", "mxid": bob, "invites": [{
        "medium": "email", "address": "bob@example.org", "mxid": bob, "room_id": room, "sender": alice,
        "signed": is.signed(&bob, "tok1", None),
    }] });
    assert_eq!(on_bind(&sa, &b_name, body).await, http::StatusCode::OK);
    eventually("bob's invite", || async {
        let (_, body) = b
            .call(
                Method::GET,
                "/_matrix/client/v3/sync",
                Some(&bob_token),
                None,
            )
            .await;
        body["rooms"]["invite"].get(&room).cloned()
    })
    .await;
    let event = member_event(&a, &alice_token, &room, &bob).await.unwrap();
    assert_eq!(event["content"]["membership"], "invite", "{event}");
    assert_eq!(
        event["content"]["third_party_invite"]["display_name"], "b...@e...",
        "{event}"
    );
    assert_eq!(
        event["content"]["third_party_invite"]["signed"]["token"], "tok1",
        "{event}"
    );
    let (status, body) = join(&b, &bob_token, &room, &[&a_name]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_joined(&a, &alice_token, &room, &bob).await;

    // A local invitee: A does the exchange itself.
    let (erin, erin_token) = a.register("erin").await;
    a.post(
        &invite_path,
        &alice_token,
        third_party("erin@example.org", "secret"),
    )
    .await;
    let body = json!({ "medium": "email", "address": "erin@example.org", "mxid": erin, "invites": [{
        "medium": "email", "address": "erin@example.org", "mxid": erin, "room_id": room, "sender": alice,
        "signed": is.signed(&erin, "tok2", None),
    }] });
    assert_eq!(
        on_bind(&services(&b), &a_name, body).await,
        http::StatusCode::OK
    );
    let event = member_event(&a, &alice_token, &room, &erin).await.unwrap();
    assert_eq!(event["content"]["membership"], "invite", "{event}");
    assert_eq!(
        event["content"]["third_party_invite"]["signed"]["token"], "tok2",
        "{event}"
    );
    a.post(
        &format!("/_matrix/client/v3/join/{}", enc(&room)),
        &erin_token,
        json!({}),
    )
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn test_restricted_rooms_spaces_summary_federation() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, b_name) = start(dir_b.path()).await;
    let (_alice, alice_token) = a.register("alice").await;
    let (dave, dave_token) = a.register("dave").await;
    let (_eve, eve_token) = a.register("eve").await;
    let (_bob, bob_token) = b.register("bob").await;

    // A public space of A; a room of B restricted to the space's members (B follows the space).
    let space = a
        .create_room(
            &alice_token,
            json!({ "preset": "public_chat", "creation_content": { "type": "m.space" } }),
        )
        .await;
    let (status, body) = join(&b, &bob_token, &space, &[&a_name]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let room = restricted_room(&b, &bob_token, "restricted", &[&space], json!({})).await;
    add_child(&a, &alice_token, &space, &room, &b_name, json!({})).await;
    let (status, body) = join(&a, &dave_token, &space, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_joined(&b, &bob_token, &space, &dave).await;

    // Dave, in the space, sees the restricted room (A asked B, which knows A is in the space).
    let (status, page) = hierarchy(&a, &dave_token, &space, "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), vec![space.clone(), room.clone()], "{page}");
    let summary = &page["rooms"][1];
    assert_eq!(summary["join_rule"], "restricted", "{page}");
    assert_eq!(summary["allowed_room_ids"], json!([space]), "{page}");
    // Eve is not in the space: the space is public, the restricted room is not hers to see.
    let (status, page) = hierarchy(&a, &eve_token, &space, "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), vec![space.clone()], "{page}");
    // And dave may join it through B.
    let (status, body) = join(&a, &dave_token, &room, &[&b_name]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    a.stop().await;
    b.stop().await;
}

async fn bodies(server: &TestServer, token: &str, room: &str) -> Vec<String> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
        enc(room)
    );
    let (_, body) = server.call(Method::GET, &path, Some(token), None).await;
    body["chunk"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

async fn wait_message(server: &TestServer, token: &str, room: &str, text: &str) {
    eventually(&format!("{text:?} in {room}"), || async {
        bodies(server, token, room)
            .await
            .iter()
            .any(|b| b == text)
            .then_some(())
    })
    .await
}

async fn wait_membership(server: &TestServer, token: &str, room: &str, user: &str, wanted: &str) {
    eventually(&format!("{user} {wanted} in {room}"), || async {
        member_event(server, token, room, user)
            .await
            .filter(|e| e["content"]["membership"] == wanted)
    })
    .await;
}

/// A public room of A that bob (of B) joined, said hello in both ways, and left: B keeps its copy
/// of the room with no member of its own. Then A goes on without B: messages and a new name.
async fn room_left_by_b(
    a: &TestServer,
    a_name: &OwnedServerName,
    alice: (&str, &str),
    b: &TestServer,
    bob: (&str, &str),
) -> String {
    let room = a
        .create_room(
            alice.1,
            json!({ "preset": "public_chat", "room_version": "10", "name": "before" }),
        )
        .await;
    let (status, body) = join(b, bob.1, &room, &[a_name]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_joined(a, alice.1, &room, bob.0).await;
    a.send_text(alice.1, &room, "h1", "hello bob").await;
    wait_message(b, bob.1, &room, "hello bob").await;
    b.send_text(bob.1, &room, "h1", "hello alice").await;
    wait_message(a, alice.1, &room, "hello alice").await;
    b.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
        bob.1,
        json!({}),
    )
    .await;
    wait_membership(a, alice.1, &room, bob.0, "leave").await;
    // While B is away: messages and a state change B never receives.
    for i in 0..3 {
        a.send_text(
            alice.1,
            &room,
            &format!("away{i}"),
            &format!("while bob was away {i}"),
        )
        .await;
    }
    a.put(
        &format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", enc(&room)),
        alice.1,
        json!({ "name": "after" }),
    )
    .await;
    room
}

/// After a rejoin: messages both ways, B's state is the resident's, B's /sync has the room joined
/// with the new message, and B's stale extremities are gone (one extremity: the last event).
async fn check_rejoined(
    a: &TestServer,
    alice: (&str, &str),
    b: &TestServer,
    bob: (&str, &str),
    room: &str,
) {
    wait_joined(a, alice.1, room, bob.0).await;
    let sb = services(b);
    let room_id: OwnedRoomId = room.try_into().unwrap();
    let short = sb.short.room(&room_id).unwrap().unwrap();
    let extremities = || -> Vec<String> {
        sb.timeline
            .extremities(short)
            .unwrap()
            .iter()
            .map(|e| sb.short.event_id(*e).unwrap().to_string())
            .collect()
    };
    // Our join is B's one forward extremity: none of the stale copy's is left.
    let join = wait_joined(b, bob.1, room, bob.0).await;
    assert_eq!(
        extremities(),
        vec![join["event_id"].as_str().unwrap().to_owned()],
        "B's forward extremities after the join"
    );
    a.send_text(alice.1, room, "back1", "welcome back").await;
    wait_message(b, bob.1, room, "welcome back").await;
    let bob_text = b.send_text(bob.1, room, "back1", "glad to be back").await;
    wait_message(a, alice.1, room, "glad to be back").await;
    let name = b
        .get(
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", enc(room)),
            bob.1,
        )
        .await;
    assert_eq!(name["name"], "after", "{name}");
    let (_, sync) = b
        .call(Method::GET, "/_matrix/client/v3/sync", Some(bob.1), None)
        .await;
    let joined = &sync["rooms"]["join"][room];
    let texts: Vec<&str> = joined["timeline"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert!(
        texts.contains(&"welcome back") && texts.contains(&"glad to be back"),
        "{sync}"
    );
    assert!(sync["rooms"]["leave"].get(room).is_none(), "{sync}");
    assert_eq!(extremities(), vec![bob_text], "B's forward extremities");
}

#[tokio::test]
async fn test_rejoin_remote_room_after_the_last_local_member_left() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, b_name) = start(dir_b.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let room = room_left_by_b(&a, &a_name, (&alice, &alice_token), &b, (&bob, &bob_token)).await;

    // B, with no member left, is no resident: a send_join built on its stale copy is refused.
    let (sa, sb) = (services(&a), services(&b));
    let room_id: OwnedRoomId = room.clone().try_into().unwrap();
    let (_, _dave_token) = a.register("dave").await;
    let dave = format!("@dave:{a_name}");
    let (object, event_id) = {
        let short = sb.short.room(&room_id).unwrap().unwrap();
        let state = sb.state.current_state(short).unwrap();
        let mut auth = Vec::new();
        for (kind, key) in [
            ("m.room.create", ""),
            ("m.room.power_levels", ""),
            ("m.room.join_rules", ""),
        ] {
            let k = sb.short.statekey(&kind.into(), key).unwrap().unwrap();
            auth.push(sb.short.event_id(state[&k]).unwrap().to_string());
        }
        let prev: Vec<String> = sb
            .timeline
            .extremities(short)
            .unwrap()
            .iter()
            .map(|e| sb.short.event_id(*e).unwrap().to_string())
            .collect();
        let mut object: ruma::CanonicalJsonObject = serde_json::from_value(json!({
            "room_id": room, "sender": dave, "state_key": dave, "type": "m.room.member", "content": { "membership": "join" },
            "origin_server_ts": parvis::util::now_ms(), "depth": 100, "prev_events": prev, "auth_events": auth,
        }))
        .unwrap();
        let rules = ruma::RoomVersionId::V10.rules().unwrap();
        ruma::signatures::hash_and_sign_event(
            a_name.as_str(),
            &sa.globals.keypair,
            &mut object,
            &rules.redaction,
        )
        .unwrap();
        let hash = ruma::signatures::reference_hash(&object, &rules).unwrap();
        (object, format!("${hash}"))
    };
    let path = format!(
        "/_matrix/federation/v2/send_join/{}/{}",
        enc(&room),
        enc(&event_id)
    );
    let (status, answer) = send_json(
        &sa,
        &b_name,
        http::Method::PUT,
        &path,
        Some(&serde_json::to_value(&object).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (http::StatusCode::NOT_FOUND, Some("M_NOT_FOUND")),
        "{answer}"
    );
    assert!(
        member_event(&b, &bob_token, &room, &dave)
            .await
            .is_none_or(|e| e["content"]["membership"] != "join")
    );

    // Bob rejoins through A: a fresh join on A's current state.
    let (status, body) = join(&b, &bob_token, &room, &[&a_name]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    check_rejoined(&a, (&alice, &alice_token), &b, (&bob, &bob_token), &room).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn test_reinvite_to_remote_room_after_the_last_local_member_left() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, _) = start(dir_b.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let room = room_left_by_b(&a, &a_name, (&alice, &alice_token), &b, (&bob, &bob_token)).await;
    let wait_invite = || async {
        eventually("the invite in B's /sync", || async {
            let (_, body) = b
                .call(
                    Method::GET,
                    "/_matrix/client/v3/sync",
                    Some(&bob_token),
                    None,
                )
                .await;
            body["rooms"]["invite"].get(&room).cloned()
        })
        .await
    };
    let invite = || async {
        let (status, body) = a
            .call(
                Method::POST,
                &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
                Some(&alice_token),
                Some(json!({ "user_id": bob })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "the invite: {body}");
    };

    // A re-invite B's copy of the room cannot place: stored like an invite to an unknown room.
    invite().await;
    let invited = wait_invite().await;
    let state = invited["invite_state"]["events"].as_array().unwrap();
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "after"),
        "{invited}"
    );
    // Rejected (through A), then invited again and accepted.
    b.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
        &bob_token,
        json!({}),
    )
    .await;
    wait_membership(&a, &alice_token, &room, &bob, "leave").await;
    invite().await;
    wait_invite().await;
    let (status, body) = join(&b, &bob_token, &room, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    check_rejoined(&a, (&alice, &alice_token), &b, (&bob, &bob_token), &room).await;
    a.stop().await;
    b.stop().await;
}

/// A resident server that lies about the room's version in `make_join` (version 11 for a room B
/// holds as version 10); it records every path asked.
async fn lying_resident() -> (
    String,
    Arc<std::sync::Mutex<Vec<String>>>,
    tokio::sync::oneshot::Sender<()>,
    tempfile::TempDir,
) {
    let asked: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let record = asked.clone();
    let app = axum::Router::new().fallback(move |uri: http::Uri| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(uri.path().to_owned());
            if !uri.path().contains("/make_join/") {
                return (http::StatusCode::NOT_FOUND, axum::Json(json!({ "errcode": "M_UNRECOGNIZED" })));
            }
            let event = json!({ "type": "m.room.member", "content": { "membership": "join" }, "prev_events": [], "auth_events": [], "depth": 5 });
            (http::StatusCode::OK, axum::Json(json!({ "room_version": "11", "event": event })))
        }
    });
    let (name, stop, dir) = common::federation::fake_peer(app).await;
    (name, asked, stop, dir)
}

#[tokio::test]
async fn test_rejoin_refuses_a_resident_that_changes_the_rooms_version() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, _) = start(dir_b.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let room = room_left_by_b(&a, &a_name, (&alice, &alice_token), &b, (&bob, &bob_token)).await;
    let (liar, asked, _stop, _dir) = lying_resident().await;
    let sb = services(&b);
    let room_id: OwnedRoomId = room.clone().try_into().unwrap();
    let bob_id: OwnedUserId = bob.clone().try_into().unwrap();
    let liar: OwnedServerName = liar.try_into().unwrap();
    let e = parvis::federation::join::remote::join_remote(&sb, bob_id, room_id.clone(), vec![liar])
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.errcode),
        (http::StatusCode::BAD_REQUEST, "M_INCOMPATIBLE_ROOM_VERSION"),
        "{}",
        e.message
    );
    let asked = asked.lock().unwrap().clone();
    assert!(asked.iter().all(|p| !p.contains("send_join")), "{asked:?}");
    assert_eq!(
        sb.timeline.room_version(&room_id).unwrap(),
        Some(ruma::RoomVersionId::V10)
    );
    // The real resident still lets bob back in.
    let (status, body) = join(&b, &bob_token, &room, &[&a_name]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    a.stop().await;
    b.stop().await;
}
