//! Room upgrades (`POST /rooms/{roomId}/upgrade`): the tombstone and the predecessor, the copied
//! state and power levels (with the upgrader's temporary power), bans, aliases, the canonical
//! alias and the directory entry moved, invites in rooms that are not public, the old room's
//! levels restricted, room version 12 creators, the errors, and what `/sync` and sliding sync show.

mod common;

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn room_path(room: &str, rest: &str) -> String {
    format!("/_matrix/client/v3/rooms/{}/{rest}", enc(room))
}

async fn upgrade(server: &TestServer, token: &str, room: &str, body: Value) -> (StatusCode, Value) {
    server
        .call(
            Method::POST,
            &room_path(room, "upgrade"),
            Some(token),
            Some(body),
        )
        .await
}

async fn state(server: &TestServer, token: &str, room: &str, kind: &str, key: &str) -> Value {
    server
        .get(
            &room_path(room, &format!("state/{kind}/{}", enc(key))),
            token,
        )
        .await
}

async fn state_event(server: &TestServer, token: &str, room: &str, kind: &str) -> Value {
    server
        .get(
            &room_path(room, &format!("state/{kind}/?format=event")),
            token,
        )
        .await
}

async fn put_state(
    server: &TestServer,
    token: &str,
    room: &str,
    kind: &str,
    key: &str,
    content: Value,
) {
    server
        .put(
            &room_path(room, &format!("state/{kind}/{}", enc(key))),
            token,
            content,
        )
        .await;
}

async fn membership(server: &TestServer, token: &str, room: &str, user: &str) -> Option<String> {
    let (status, body) = server
        .call(
            Method::GET,
            &room_path(room, &format!("state/m.room.member/{}", enc(user))),
            Some(token),
            None,
        )
        .await;
    (status == StatusCode::OK).then(|| body["membership"].as_str().unwrap().to_owned())
}

async fn room_rule(server: &TestServer, token: &str, room: &str) -> (StatusCode, Value) {
    server
        .call(
            Method::GET,
            &format!("/_matrix/client/v3/pushrules/global/room/{}", enc(room)),
            Some(token),
            None,
        )
        .await
}

async fn joined_rooms(server: &TestServer, token: &str) -> Vec<String> {
    let body = server.get("/_matrix/client/v3/joined_rooms", token).await;
    body["joined_rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn upgrade_copies_state_levels_and_bans_and_moves_aliases_and_the_directory_entry() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let old = server
        .create_room(
            &alice,
            json!({ "room_version": "10", "preset": "public_chat", "visibility": "public", "room_alias_name": "lounge", "name": "Lounge", "topic": "chat" }),
        )
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&old)),
            &bob,
            json!({}),
        )
        .await;
    server
        .put(
            "/_matrix/client/v3/directory/room/%23lounge2%3Atest.local",
            &alice,
            json!({ "room_id": old }),
        )
        .await;
    let copied = [
        ("m.room.avatar", json!({ "url": "mxc://test.local/avatar" })),
        (
            "m.room.encryption",
            json!({ "algorithm": "m.megolm.v1.aes-sha2" }),
        ),
        (
            "m.room.server_acl",
            json!({ "allow": ["*"], "allow_ip_literals": false, "deny": ["evil.example"] }),
        ),
        (
            "m.room.history_visibility",
            json!({ "history_visibility": "joined" }),
        ),
        (
            "m.room.guest_access",
            json!({ "guest_access": "forbidden" }),
        ),
        ("m.room.join_rules", json!({ "join_rule": "public" })),
        ("m.room.name", json!({ "name": "Lounge" })),
        ("m.room.topic", json!({ "topic": "chat" })),
    ];
    for (kind, content) in &copied[..5] {
        put_state(&server, &alice, &old, kind, "", content.clone()).await;
    }
    put_state(
        &server,
        &alice,
        &old,
        "m.space.parent",
        "!space:test.local",
        json!({ "via": ["test.local"] }),
    )
    .await;
    put_state(
        &server,
        &alice,
        &old,
        "m.room.canonical_alias",
        "",
        json!({ "alias": "#lounge:test.local", "alt_aliases": ["#lounge2:test.local"] }),
    )
    .await;
    put_state(
        &server,
        &alice,
        &old,
        "m.room.member",
        "@troll:elsewhere.example",
        json!({ "membership": "ban", "reason": "spam" }),
    )
    .await;
    // Alice keeps only the levels to upgrade: the copy of the state needs more, which she gets in
    // the new room for the copy, then her own level back.
    let mut levels = state(&server, &alice, &old, "m.room.power_levels", "").await;
    levels["users"]["@someone:elsewhere.example"] = json!(40);
    levels["users"][&alice_id] = json!(50);
    for kind in ["m.room.name", "m.room.topic", "m.room.server_acl"] {
        levels["events"][kind] = json!(80);
    }
    levels["events"]["m.room.tombstone"] = json!(50);
    levels["events"]["m.room.power_levels"] = json!(50);
    put_state(
        &server,
        &alice,
        &old,
        "m.room.power_levels",
        "",
        levels.clone(),
    )
    .await;
    server.send_text(&alice, &old, "before", "last words").await;

    let (status, body) = upgrade(&server, &alice, &old, json!({ "new_version": "11" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["replacement_room"].as_str().unwrap().to_owned();
    assert!(new.ends_with(":test.local"), "{new}");

    // The tombstone, and the predecessor naming it.
    let tombstone = state_event(&server, &alice, &old, "m.room.tombstone").await;
    assert_eq!(tombstone["content"]["replacement_room"], new.as_str());
    assert_eq!(tombstone["sender"], alice_id.as_str());
    let create = state(&server, &alice, &new, "m.room.create", "").await;
    assert_eq!(create["room_version"], "11");
    assert_eq!(
        create["predecessor"],
        json!({ "room_id": old, "event_id": tombstone["event_id"] })
    );
    assert!(
        create.get("creator").is_none(),
        "v11 has no creator field: {create}"
    );

    // The state, the levels (the upgrader's raise undone), the bans.
    for (kind, content) in &copied {
        assert_eq!(
            &state(&server, &alice, &new, kind, "").await,
            content,
            "{kind}"
        );
    }
    assert_eq!(
        state(&server, &alice, &new, "m.space.parent", "!space:test.local").await,
        json!({ "via": ["test.local"] })
    );
    assert_eq!(
        state(&server, &alice, &new, "m.room.power_levels", "").await,
        levels
    );
    let member = state(
        &server,
        &alice,
        &new,
        "m.room.member",
        "@troll:elsewhere.example",
    )
    .await;
    assert_eq!(member, json!({ "membership": "ban", "reason": "spam" }));

    // Aliases, the canonical alias and the directory entry now belong to the new room.
    for alias in ["#lounge:test.local", "#lounge2:test.local"] {
        let resolved = server
            .get(
                &format!("/_matrix/client/v3/directory/room/{}", enc(alias)),
                &alice,
            )
            .await;
        assert_eq!(resolved["room_id"], new.as_str(), "{alias}");
    }
    let mut aliases: Vec<Value> = server.get(&room_path(&new, "aliases"), &alice).await["aliases"]
        .as_array()
        .unwrap()
        .clone();
    aliases.sort_by_key(|a| a.to_string());
    assert_eq!(
        aliases,
        [json!("#lounge2:test.local"), json!("#lounge:test.local")]
    );
    assert_eq!(
        server.get(&room_path(&old, "aliases"), &alice).await["aliases"],
        json!([])
    );
    assert_eq!(
        state(&server, &alice, &new, "m.room.canonical_alias", "").await,
        json!({ "alias": "#lounge:test.local", "alt_aliases": ["#lounge2:test.local"] })
    );
    assert_eq!(
        state(&server, &alice, &old, "m.room.canonical_alias", "").await,
        json!({ "alt_aliases": [] })
    );
    let visibility = |room: &str| format!("/_matrix/client/v3/directory/list/room/{}", enc(room));
    assert_eq!(
        server.get(&visibility(&new), &alice).await["visibility"],
        "public"
    );
    assert_eq!(
        server.get(&visibility(&old), &alice).await["visibility"],
        "private"
    );
    let public = server.get("/_matrix/client/v3/publicRooms", &alice).await;
    let listed: Vec<&str> = public["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [new.as_str()]);

    // The old room's levels stop ordinary messages and invites.
    let old_levels = state(&server, &alice, &old, "m.room.power_levels", "").await;
    assert_eq!(
        (
            old_levels["events_default"].clone(),
            old_levels["invite"].clone()
        ),
        (json!(50), json!(50))
    );
    let (status, _) = server
        .call(
            Method::PUT,
            &room_path(&old, "send/m.room.message/late"),
            Some(&bob),
            Some(json!({ "msgtype": "m.text", "body": "hi" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A public room: nobody is invited, bob joins by following the tombstone.
    assert_eq!(membership(&server, &alice, &new, &bob_id).await, None);
    assert_eq!(joined_rooms(&server, &bob).await, [old.clone()]);
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&new)),
            &bob,
            json!({}),
        )
        .await;
    server.send_text(&bob, &new, "after", "hello again").await;
    // Both rooms are joined until the client leaves the old one.
    let mut rooms = joined_rooms(&server, &alice).await;
    rooms.sort();
    let mut both = vec![old.clone(), new.clone()];
    both.sort();
    assert_eq!(rooms, both);
    server.stop().await;
}

#[tokio::test]
async fn sync_and_sliding_sync_show_the_tombstone_and_both_rooms() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let old = server
        .create_room(&alice, json!({ "room_version": "11", "name": "Old" }))
        .await;
    let since = server
        .get("/_matrix/client/v3/sync?timeout=0", &alice)
        .await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let new = upgrade(&server, &alice, &old, json!({ "new_version": "11" }))
        .await
        .1["replacement_room"]
        .as_str()
        .unwrap()
        .to_owned();

    let sync = server
        .get(
            &format!("/_matrix/client/v3/sync?timeout=0&since={}", enc(&since)),
            &alice,
        )
        .await;
    let old_timeline = sync["rooms"]["join"][&old]["timeline"]["events"]
        .as_array()
        .unwrap();
    assert_eq!(old_timeline[0]["type"], "m.room.tombstone", "{sync}");
    assert_eq!(old_timeline[0]["content"]["replacement_room"], new.as_str());
    let new_timeline = sync["rooms"]["join"][&new]["timeline"]["events"]
        .as_array()
        .unwrap();
    assert_eq!(new_timeline[0]["type"], "m.room.create");
    assert_eq!(
        new_timeline[0]["content"]["predecessor"]["event_id"],
        old_timeline[0]["event_id"]
    );

    let sliding = server
        .post(
            "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
            &alice,
            json!({ "lists": { "all": { "ranges": [[0, 10]], "timeline_limit": 5, "required_state": [["m.room.tombstone", ""], ["m.room.create", ""]] } } }),
        )
        .await;
    let rooms = &sliding["rooms"];
    let tomb = rooms[&old]["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.tombstone")
        .cloned();
    assert_eq!(
        tomb.expect("tombstone in required_state")["content"]["replacement_room"],
        new.as_str(),
        "{sliding}"
    );
    let create = rooms[&new]["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.create")
        .cloned();
    assert_eq!(
        create.expect("create in required_state")["content"]["predecessor"]["room_id"],
        old.as_str()
    );
    server.stop().await;
}

#[tokio::test]
async fn upgrading_a_private_room_to_v12_invites_the_members_with_additional_creators() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let (carol_id, carol) = server.register("carol").await;
    let (dave_id, _) = server.register("dave").await;
    let old = server
        .create_room(
            &alice,
            json!({ "room_version": "11", "preset": "private_chat", "invite": [bob_id, carol_id] }),
        )
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&old)),
            &bob,
            json!({}),
        )
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&old)),
            &carol,
            json!({}),
        )
        .await;
    server
        .post(
            &room_path(&old, "invite"),
            &alice,
            json!({ "user_id": dave_id }),
        )
        .await;
    let mut levels = state(&server, &alice, &old, "m.room.power_levels", "").await;
    levels["users"][&carol_id] = json!(50);
    levels["users"][&bob_id] = json!(20);
    put_state(
        &server,
        &alice,
        &old,
        "m.room.power_levels",
        "",
        levels.clone(),
    )
    .await;

    let (status, body) = upgrade(
        &server,
        &alice,
        &old,
        json!({ "new_version": "12", "additional_creators": [carol_id] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["replacement_room"].as_str().unwrap().to_owned();

    // A v12 room id is its create event's hash; the predecessor names no event.
    let create = state_event(&server, &alice, &new, "m.room.create").await;
    assert_eq!(
        format!("!{}", &create["event_id"].as_str().unwrap()[1..]),
        new
    );
    assert_eq!(create["content"]["predecessor"], json!({ "room_id": old }));
    assert_eq!(create["content"]["additional_creators"], json!([carol_id]));
    assert_eq!(create["sender"], alice_id.as_str());
    assert_eq!(
        state(&server, &alice, &old, "m.room.tombstone", "").await["replacement_room"],
        new.as_str()
    );
    // Creators have no level in v12: alice and carol leave `users`, bob keeps his.
    let new_levels = state(&server, &alice, &new, "m.room.power_levels", "").await;
    assert_eq!(
        new_levels["users"],
        json!({ bob_id.clone(): 20 }),
        "{new_levels}"
    );
    assert_eq!(
        state(&server, &alice, &new, "m.room.join_rules", "").await["join_rule"],
        "invite"
    );

    // An invite-only room: its joined and invited members are invited to the new one.
    for user in [&bob_id, &carol_id, &dave_id] {
        assert_eq!(
            membership(&server, &alice, &new, user).await.as_deref(),
            Some("invite"),
            "{user}"
        );
    }
    let sync = server.get("/_matrix/client/v3/sync?timeout=0", &bob).await;
    assert!(sync["rooms"]["invite"].get(&new).is_some(), "{sync}");
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&new)),
            &bob,
            json!({}),
        )
        .await;
    server.send_text(&bob, &new, "1", "moved").await;
    // Carol, a creator, may change what only creators and admins may.
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&new)),
            &carol,
            json!({}),
        )
        .await;
    put_state(
        &server,
        &carol,
        &new,
        "m.room.name",
        "",
        json!({ "name": "by carol" }),
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn upgrade_errors_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    let (_, mallory) = server.register("mallory").await;
    let room = server
        .create_room(
            &alice,
            json!({ "room_version": "11", "preset": "public_chat" }),
        )
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;

    let (status, body) = upgrade(
        &server,
        &alice,
        &room,
        json!({ "new_version": "my_bad_version" }),
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_UNSUPPORTED_ROOM_VERSION")),
        "{body}"
    );
    // Bob may not send the tombstone (level 100 needed).
    let (status, body) = upgrade(&server, &bob, &room, json!({ "new_version": "12" })).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")),
        "{body}"
    );
    // Mallory is not in the room.
    let (status, body) = upgrade(&server, &mallory, &room, json!({ "new_version": "12" })).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")),
        "{body}"
    );
    // A room this server does not know.
    let (status, body) = upgrade(
        &server,
        &alice,
        "!fail:unknown.example",
        json!({ "new_version": "12" }),
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_NOT_FOUND")),
        "{body}"
    );
    // No version given.
    let (status, body) = upgrade(&server, &alice, &room, json!({})).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_BAD_JSON")),
        "{body}"
    );

    // A join rule the new version lacks: refused before anything is sent.
    let restricted = server
        .create_room(
            &alice,
            json!({ "room_version": "10", "initial_state": [{ "type": "m.room.join_rules", "content": {
                "join_rule": "restricted", "allow": [{ "type": "m.room_membership", "room_id": room }] } }] }),
        )
        .await;
    let (status, body) = upgrade(&server, &alice, &restricted, json!({ "new_version": "7" })).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_UNSUPPORTED_ROOM_VERSION")),
        "{body}"
    );

    for room in [&room, &restricted] {
        let (status, _) = server
            .call(
                Method::GET,
                &room_path(room, "state/m.room.tombstone/"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let mut rooms = joined_rooms(&server, &alice).await;
    rooms.sort();
    let mut before = vec![room.clone(), restricted.clone()];
    before.sort();
    assert_eq!(rooms, before);
    assert_eq!(
        state(&server, &alice, &room, "m.room.power_levels", "").await["events_default"],
        0
    );
    server.stop().await;
}

#[tokio::test]
async fn push_rules_tags_and_direct_follow_the_upgrader_and_members_who_join() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let old = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&old)),
            &bob,
            json!({}),
        )
        .await;
    for token in [&alice, &bob] {
        server
            .put(
                &format!("/_matrix/client/v3/pushrules/global/room/{}", enc(&old)),
                token,
                json!({ "actions": ["dont_notify"] }),
            )
            .await;
    }
    let rule = json!({ "actions": [], "conditions": [{ "kind": "event_match", "key": "room_id", "pattern": old }] });
    server
        .put(
            "/_matrix/client/v3/pushrules/global/override/mute-it",
            &bob,
            rule,
        )
        .await;
    let tag_path = |user: &str, room: &str| {
        format!(
            "/_matrix/client/v3/user/{}/rooms/{}/tags/u.work",
            enc(user),
            enc(room)
        )
    };
    server
        .put(&tag_path(&alice_id, &old), &alice, json!({ "order": 0.5 }))
        .await;
    let direct = format!(
        "/_matrix/client/v3/user/{}/account_data/m.direct",
        enc(&alice_id)
    );
    server
        .put(&direct, &alice, json!({ bob_id.clone(): [old] }))
        .await;

    let new = upgrade(&server, &alice, &old, json!({ "new_version": "12" }))
        .await
        .1["replacement_room"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = room_rule(&server, &alice, &new).await;
    assert_eq!(
        (status, body["actions"].clone()),
        (StatusCode::OK, json!(["dont_notify"])),
        "{body}"
    );
    let tags = server
        .get(
            &format!(
                "/_matrix/client/v3/user/{}/rooms/{}/tags",
                enc(&alice_id),
                enc(&new)
            ),
            &alice,
        )
        .await;
    assert_eq!(tags["tags"]["u.work"]["order"], 0.5);
    assert_eq!(
        server.get(&direct, &alice).await,
        json!({ bob_id.clone(): [old, new] })
    );

    // Bob's rules follow when he joins the new room, not before.
    assert_eq!(
        room_rule(&server, &bob, &new).await.0,
        StatusCode::NOT_FOUND
    );
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&new)),
            &bob,
            json!({}),
        )
        .await;
    assert_eq!(room_rule(&server, &bob, &new).await.0, StatusCode::OK);
    let copied = format!(
        "/_matrix/client/v3/pushrules/global/override/{}",
        enc(&format!("mute-it-{new}"))
    );
    let rule = server.get(&copied, &bob).await;
    assert_eq!(rule["conditions"][0]["pattern"], new.as_str(), "{rule}");
    server.stop().await;
}

/// A room 12 created here needs 150 for the tombstone (the spec's createRoom: above the other
/// admin levels), so an admin of level 100 may not upgrade it; its creator may.
#[tokio::test]
async fn a_v12_room_needs_150_for_the_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let room = server
        .create_room(
            &alice,
            json!({ "room_version": "12", "preset": "public_chat" }),
        )
        .await;
    let levels = state(&server, &alice, &room, "m.room.power_levels", "").await;
    assert_eq!(levels["events"]["m.room.tombstone"], 150, "{levels}");
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    let mut raised = levels.clone();
    raised["users"][&bob_id] = json!(100);
    server
        .put(
            &room_path(&room, "state/m.room.power_levels/"),
            &alice,
            raised,
        )
        .await;
    let (status, body) = upgrade(&server, &bob, &room, json!({ "new_version": "12" })).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")),
        "{body}"
    );
    let (status, body) = upgrade(&server, &alice, &room, json!({ "new_version": "12" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.stop().await;
}
