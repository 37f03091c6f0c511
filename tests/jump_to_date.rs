//! Jump to date (`GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`) over the local time
//! index; and the other room-finding endpoints of issue 9: the room summary
//! (`GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`), another server's `/publicRooms`, mutual
//! rooms, and the empty lists Synapse always sends.

mod common;

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn errcode(body: &Value) -> &str {
    body["errcode"].as_str().unwrap_or_default()
}

async fn jump(
    server: &TestServer,
    token: &str,
    room: &str,
    ts: u64,
    dir: &str,
) -> (StatusCode, Value) {
    let path = format!(
        "/_matrix/client/v1/rooms/{}/timestamp_to_event?ts={ts}&dir={dir}",
        enc(room)
    );
    server.call(Method::GET, &path, Some(token), None).await
}

#[tokio::test]
async fn jump_to_date_finds_the_closest_event_in_each_direction() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (_, mallory) = server.register("mallory").await;
    let room = server
        .create_room(&alice, json!({ "preset": "private_chat" }))
        .await;
    let mut events = Vec::new();
    for i in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let id = server
            .send_text(&alice, &room, &format!("t{i}"), &format!("message {i}"))
            .await;
        let event = server
            .get(
                &format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&id)),
                &alice,
            )
            .await;
        events.push((id, event["origin_server_ts"].as_u64().unwrap()));
    }
    let (e1, e2, e3) = (&events[0], &events[1], &events[2]);
    assert!(e1.1 < e2.1 && e2.1 < e3.1);

    let answer = |body: &Value| {
        (
            body["event_id"].as_str().unwrap().to_owned(),
            body["origin_server_ts"].as_u64().unwrap(),
        )
    };
    let (status, body) = jump(&server, &alice, &room, e2.1, "f").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(answer(&body), (e2.0.clone(), e2.1));
    let (_, body) = jump(&server, &alice, &room, e2.1, "b").await;
    assert_eq!(answer(&body).0, e2.0);
    let (_, body) = jump(&server, &alice, &room, e2.1 + 1, "f").await;
    assert_eq!(answer(&body).0, e3.0);
    let (_, body) = jump(&server, &alice, &room, e2.1 - 1, "b").await;
    assert_eq!(answer(&body).0, e1.0);
    let (_, body) = jump(&server, &alice, &room, e3.1 + 60_000, "b").await;
    assert_eq!(answer(&body).0, e3.0);
    // Before the room's creation going forward: its first event (the create event).
    let (_, body) = jump(&server, &alice, &room, 1, "f").await;
    let create = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.create/",
                enc(&room)
            ),
            &alice,
        )
        .await;
    assert!(create.is_object());
    let first = &server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=f&limit=1",
                enc(&room)
            ),
            &alice,
        )
        .await["chunk"][0];
    assert_eq!(body["event_id"], first["event_id"]);

    // Nothing after the last event, nothing before the first (no other server to ask): 404.
    let (status, body) = jump(&server, &alice, &room, e3.1 + 60_000, "f").await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    let (status, body) = jump(&server, &alice, &room, 1, "b").await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    // Not in the room: 403; bad parameters: 400.
    let (status, body) = jump(&server, &mallory, &room, e2.1, "f").await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::FORBIDDEN, "M_FORBIDDEN")
    );
    let (status, body) = jump(&server, &alice, &room, e2.1, "sideways").await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::BAD_REQUEST, "M_INVALID_PARAM"),
        "{body}"
    );
    let path = format!(
        "/_matrix/client/v1/rooms/{}/timestamp_to_event?dir=f",
        enc(&room)
    );
    let (status, _) = server.call(Method::GET, &path, Some(&alice), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The index survives a restart (and the start-up walk indexes the same events again).
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let alice = {
        let body = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "secret-password" });
        server
            .call(Method::POST, "/_matrix/client/v3/login", None, Some(body))
            .await
            .1["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (_, body) = jump(&server, &alice, &room, e2.1 + 1, "f").await;
    assert_eq!(answer(&body).0, e3.0);
    server.stop().await;
}

async fn summary(server: &TestServer, token: Option<&str>, target: &str) -> (StatusCode, Value) {
    server
        .call(
            Method::GET,
            &format!("/_matrix/client/v1/room_summary/{}", enc(target)),
            token,
            None,
        )
        .await
}

#[tokio::test]
async fn room_summary_is_shown_only_as_the_spec_allows() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let public = server
        .create_room(&alice, json!({ "preset": "public_chat", "name": "Lobby", "topic": "hello", "room_alias_name": "lobby" }))
        .await;
    let private = server
        .create_room(
            &alice,
            json!({ "preset": "private_chat", "name": "Secret" }),
        )
        .await;

    // A public room: anyone, even without a token; by id or alias; membership is the asker's.
    let (status, body) = summary(&server, Some(&bob), &public).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["room_id"].as_str(),
            body["name"].as_str(),
            body["topic"].as_str()
        ),
        (Some(public.as_str()), Some("Lobby"), Some("hello"))
    );
    assert_eq!(
        (
            body["join_rule"].as_str(),
            body["num_joined_members"].as_u64()
        ),
        (Some("public"), Some(1))
    );
    assert_eq!(body["membership"], "leave");
    assert!(body["room_version"].is_string());
    let (status, body) = summary(&server, None, "#lobby:test.local").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["room_id"], public.as_str());
    assert!(body.get("membership").is_none());
    let (_, body) = summary(&server, Some(&alice), &public).await;
    assert_eq!(body["membership"], "join");
    // The unstable MSC3266 paths answer the same.
    for path in [
        format!(
            "/_matrix/client/unstable/im.nheko.summary/rooms/{}/summary",
            enc(&public)
        ),
        format!(
            "/_matrix/client/unstable/im.nheko.summary/summary/{}",
            enc(&public)
        ),
    ] {
        let (status, body) = server.call(Method::GET, &path, Some(&bob), None).await;
        assert_eq!(
            (status, body["room_id"].as_str()),
            (StatusCode::OK, Some(public.as_str())),
            "{path}: {body}"
        );
    }

    // A private room: 404 for strangers (as an unknown room), seen by the invited.
    let (status, body) = summary(&server, Some(&bob), &private).await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    let (status, _) = summary(&server, None, &private).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = summary(&server, Some(&bob), "!unknown:test.local").await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    let (status, _) = summary(&server, Some(&bob), "#nothing:test.local").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&private)),
            &alice,
            json!({ "user_id": bob_id }),
        )
        .await;
    let (status, body) = summary(&server, Some(&bob), &private).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["membership"].as_str()),
        (Some("Secret"), Some("invite"))
    );
    server.stop().await;
}

#[tokio::test]
async fn public_rooms_of_another_server_are_asked_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "visibility": "public", "name": "Ours" }),
        )
        .await;
    // Our own name: our list.
    let ours = server
        .get("/_matrix/client/v3/publicRooms?server=test.local", &alice)
        .await;
    assert_eq!(ours["chunk"].as_array().unwrap().len(), 1, "{ours}");
    // A server that cannot be reached: 502, GET and POST; asking for a user needs a token.
    let (status, body) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/publicRooms?server=unreachable.invalid",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body["errcode"].is_string());
    let (status, _) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/publicRooms?server=unreachable.invalid",
            Some(&alice),
            Some(json!({ "limit": 5 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (status, body) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/publicRooms?server=unreachable.invalid",
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN")
    );
    server.stop().await;
}

#[tokio::test]
async fn empty_lists_are_sent_as_synapse_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let event = server.send_text(&alice, &room, "t1", "only message").await;

    let body =
        json!({ "search_categories": { "room_events": { "search_term": "nomatchanywhere" } } });
    let found = server.post("/_matrix/client/v3/search", &alice, body).await;
    let room_events = &found["search_categories"]["room_events"];
    assert_eq!(
        (
            room_events["results"].clone(),
            room_events["count"].clone(),
            room_events["highlights"].clone()
        ),
        (json!([]), json!(0), json!([])),
        "{found}"
    );

    let all = server.get("/_matrix/client/v3/pushrules/", &alice).await;
    let global = server
        .get("/_matrix/client/v3/pushrules/global/", &alice)
        .await;
    for kind in ["override", "content", "room", "sender", "underride"] {
        assert!(all["global"][kind].is_array(), "{kind}: {all}");
        assert!(global[kind].is_array(), "{kind}: {global}");
    }
    assert_eq!(global["room"], json!([]));

    // /context of the room's last event: `events_after` is there, empty.
    let context = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/context/{}?limit=2",
                enc(&room),
                enc(&event)
            ),
            &alice,
        )
        .await;
    assert_eq!(context["events_after"], json!([]), "{context}");
    assert!(context["events_before"].is_array() && context["state"].is_array());
    server.stop().await;
}

#[tokio::test]
async fn mutual_rooms_are_the_rooms_both_users_are_joined_to() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let shared = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/join", enc(&shared)),
            &bob,
            json!({}),
        )
        .await;
    server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await; // alice's alone
    let invited = server
        .create_room(&alice, json!({ "preset": "private_chat" }))
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&invited)),
            &alice,
            json!({ "user_id": bob_id }),
        )
        .await;

    let stable = server
        .get(
            &format!("/_matrix/client/v1/mutual_rooms?user_id={}", enc(&bob_id)),
            &alice,
        )
        .await;
    assert_eq!(
        (stable["joined"].clone(), stable["count"].clone()),
        (json!([shared]), json!(1)),
        "{stable}"
    );
    let unstable = server
        .get(
            &format!(
                "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms?user_id={}",
                enc(&alice_id)
            ),
            &bob,
        )
        .await;
    assert_eq!(unstable["joined"], json!([shared]));
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/_matrix/client/v1/mutual_rooms?user_id={}", enc(&alice_id)),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "M_INVALID_PARAM")
    );
    let (status, body) = server
        .call(
            Method::GET,
            &format!(
                "/_matrix/client/v1/mutual_rooms?user_id={}&from=x",
                enc(&bob_id)
            ),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::BAD_REQUEST, "M_INVALID_PARAM")
    );
    server.stop().await;
}
