//! Relations and threads: the index written with each event, `/relations` (filters, pagination
//! both ways, `recurse`, history visibility, 404s), `/threads` (latest activity first,
//! `include=participated`, pagination), bundled aggregations (`m.thread`, `m.replace`,
//! `m.reference`) on /event, /messages, /context and /sync, redactions, and the refusals
//! (duplicate annotation, relation to an event of another room).

mod common;

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn send(
    server: &TestServer,
    token: &str,
    room: &str,
    kind: &str,
    txn: &str,
    content: Value,
) -> (StatusCode, Value) {
    let path = format!("/_matrix/client/v3/rooms/{}/send/{kind}/{txn}", enc(room));
    server
        .call(Method::PUT, &path, Some(token), Some(content))
        .await
}

async fn send_ok(
    server: &TestServer,
    token: &str,
    room: &str,
    kind: &str,
    txn: &str,
    content: Value,
) -> String {
    let (status, body) = send(server, token, room, kind, txn, content).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

fn reply(root: &str, body: &str) -> Value {
    json!({ "msgtype": "m.text", "body": body, "m.relates_to": { "rel_type": "m.thread", "event_id": root } })
}

fn ids(chunk: &Value) -> Vec<String> {
    chunk
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

fn relations_path(room: &str, event: &str, rest: &str) -> String {
    format!(
        "/_matrix/client/v1/rooms/{}/relations/{}{rest}",
        enc(room),
        enc(event)
    )
}

#[tokio::test]
async fn relations_are_listed_filtered_and_paginated_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let root = server.send_text(&alice, &room, "t0", "root").await;
    let mut thread = Vec::new();
    for i in 0..5 {
        thread.push(
            send_ok(
                &server,
                &alice,
                &room,
                "m.room.message",
                &format!("r{i}"),
                reply(&root, &format!("reply {i}")),
            )
            .await,
        );
    }
    let reaction = send_ok(
        &server,
        &alice,
        &room,
        "m.reaction",
        "a1",
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": root, "key": "👍" } }),
    )
    .await;
    // A reply (m.in_reply_to only) is not a relation.
    send_ok(&server, &alice, &room, "m.room.message", "plain", json!({ "msgtype": "m.text", "body": "x", "m.relates_to": { "m.in_reply_to": { "event_id": root } } })).await;

    // Everything, newest first.
    let all = server
        .get(&relations_path(&room, &root, "?limit=50"), &alice)
        .await;
    let mut expected: Vec<String> = thread.iter().cloned().chain([reaction.clone()]).collect();
    expected.reverse();
    assert_eq!(ids(&all["chunk"]), expected);
    assert!(all.get("next_batch").is_none(), "{all}");
    assert!(all.get("recursion_depth").is_none());

    // By relation type, and by relation type and event type.
    let threads = server
        .get(&relations_path(&room, &root, "/m.thread?limit=50"), &alice)
        .await;
    assert_eq!(
        ids(&threads["chunk"]),
        thread.iter().rev().cloned().collect::<Vec<_>>()
    );
    let reactions = server
        .get(
            &relations_path(&room, &root, "/m.annotation/m.reaction"),
            &alice,
        )
        .await;
    assert_eq!(ids(&reactions["chunk"]), vec![reaction.clone()]);
    let none = server
        .get(
            &relations_path(&room, &root, "/m.annotation/m.room.message"),
            &alice,
        )
        .await;
    assert_eq!(ids(&none["chunk"]), Vec::<String>::new());

    // Backwards, two at a time: 4 3 | 2 1 | 0.
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..5 {
        let q = match &from {
            Some(t) => format!("/m.thread?limit=2&from={}", enc(t)),
            None => "/m.thread?limit=2".to_owned(),
        };
        let page = server.get(&relations_path(&room, &root, &q), &alice).await;
        seen.extend(ids(&page["chunk"]));
        match page["next_batch"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, thread.iter().rev().cloned().collect::<Vec<_>>());

    // Forwards, two at a time: 0 1 | 2 3 | 4.
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..5 {
        let q = match &from {
            Some(t) => format!("/m.thread?dir=f&limit=2&from={}", enc(t)),
            None => "/m.thread?dir=f&limit=2".to_owned(),
        };
        let page = server.get(&relations_path(&room, &root, &q), &alice).await;
        seen.extend(ids(&page["chunk"]));
        match page["next_batch"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, thread);

    // `to` stops at a previous page's token: from the start back to the first page's end.
    let first = server
        .get(&relations_path(&room, &root, "/m.thread?limit=2"), &alice)
        .await;
    let to = first["next_batch"].as_str().unwrap();
    let bounded = server
        .get(
            &relations_path(&room, &root, &format!("/m.thread?limit=50&to={}", enc(to))),
            &alice,
        )
        .await;
    assert_eq!(
        ids(&bounded["chunk"]),
        thread[3..].iter().rev().cloned().collect::<Vec<_>>()
    );

    // A /messages token works as `from`.
    let messages = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1",
                enc(&room)
            ),
            &alice,
        )
        .await;
    let end = messages["end"].as_str().unwrap();
    let page = server
        .get(
            &relations_path(
                &room,
                &root,
                &format!("/m.thread?limit=50&from={}", enc(end)),
            ),
            &alice,
        )
        .await;
    assert_eq!(
        ids(&page["chunk"]),
        thread.iter().rev().cloned().collect::<Vec<_>>()
    );

    // Unknown event, event of another room: 404.
    let (status, body) = server
        .call(
            Method::GET,
            &relations_path(&room, "$nope:x", ""),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_NOT_FOUND"))
    );
    let other = server.create_room(&alice, json!({})).await;
    let (status, _) = server
        .call(
            Method::GET,
            &relations_path(&other, &root, ""),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn recurse_follows_relations_of_relations() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let root = server.send_text(&alice, &room, "t0", "root").await;
    let child = send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "c",
        reply(&root, "in thread"),
    )
    .await;
    let grandchild = send_ok(
        &server,
        &alice,
        &room,
        "m.reaction",
        "g",
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": child, "key": "x" } }),
    )
    .await;
    let great = send_ok(&server, &alice, &room, "m.room.message", "gg", json!({ "msgtype": "m.text", "body": "ref", "m.relates_to": { "rel_type": "m.reference", "event_id": grandchild } })).await;

    let direct = server.get(&relations_path(&room, &root, ""), &alice).await;
    assert_eq!(ids(&direct["chunk"]), vec![child.clone()]);
    let deep = server
        .get(&relations_path(&room, &root, "?recurse=true"), &alice)
        .await;
    assert_eq!(
        ids(&deep["chunk"]),
        vec![great.clone(), grandchild.clone(), child.clone()]
    );
    assert_eq!(deep["recursion_depth"], json!(3));
    // The relation type filter applies to every event returned.
    let annotations = server
        .get(
            &relations_path(&room, &root, "/m.annotation?recurse=true"),
            &alice,
        )
        .await;
    assert_eq!(ids(&annotations["chunk"]), vec![grandchild]);
    server.stop().await;
}

#[tokio::test]
async fn relations_respect_history_visibility() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    let room = server.create_room(&alice, json!({ "preset": "public_chat", "initial_state": [
        { "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": "joined" } }
    ] })).await;
    let root = server.send_text(&alice, &room, "t0", "root").await;
    let early = send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "r0",
        reply(&root, "before bob"),
    )
    .await;
    // Bob, not in the room: the parent is not visible to him.
    let (status, _) = server
        .call(
            Method::GET,
            &relations_path(&room, &root, ""),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    let late = send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "r1",
        reply(&root, "after bob"),
    )
    .await;
    let new_root = server.send_text(&alice, &room, "t1", "new root").await;
    let new_reply = send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "r2",
        reply(&new_root, "x"),
    )
    .await;
    // Bob joined after the root: still not visible to him under `joined`.
    let (status, _) = server
        .call(
            Method::GET,
            &relations_path(&room, &root, ""),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let page = server
        .get(&relations_path(&room, &new_root, ""), &bob)
        .await;
    assert_eq!(ids(&page["chunk"]), vec![new_reply.clone()]);
    // Alice sees both replies of the first thread; the thread list shows bob only what he may see.
    let page = server.get(&relations_path(&room, &root, ""), &alice).await;
    assert_eq!(ids(&page["chunk"]), vec![late, early]);
    let listed = server
        .get(
            &format!("/_matrix/client/v1/rooms/{}/threads", enc(&room)),
            &bob,
        )
        .await;
    assert_eq!(ids(&listed["chunk"]), vec![new_root.clone()]);
    let listed = server
        .get(
            &format!("/_matrix/client/v1/rooms/{}/threads", enc(&room)),
            &alice,
        )
        .await;
    assert_eq!(ids(&listed["chunk"]), vec![new_root.clone(), root]);

    // Bob leaves; a reply sent after that is not his to see: the root's bundled thread shows
    // him the latest reply he may see, and everyone else the real latest.
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    let after_leave = send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "r3",
        reply(&new_root, "after bob left"),
    )
    .await;
    let event_path = format!(
        "/_matrix/client/v3/rooms/{}/event/{}",
        enc(&room),
        enc(&new_root)
    );
    let seen = server.get(&event_path, &bob).await;
    let thread = &seen["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(
        thread["latest_event"]["event_id"],
        json!(new_reply),
        "{seen}"
    );
    let seen = server.get(&event_path, &alice).await;
    assert_eq!(
        seen["unsigned"]["m.relations"]["m.thread"]["latest_event"]["event_id"],
        json!(after_leave),
        "{seen}"
    );
    server.stop().await;
}

#[tokio::test]
async fn threads_are_listed_by_latest_activity_with_aggregations() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
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
    let a = server.send_text(&alice, &room, "a", "thread a").await;
    let b = server.send_text(&bob, &room, "b", "thread b").await;
    let c = server.send_text(&bob, &room, "c", "thread c").await;
    send_ok(
        &server,
        &bob,
        &room,
        "m.room.message",
        "ra",
        reply(&a, "a1"),
    )
    .await;
    send_ok(
        &server,
        &bob,
        &room,
        "m.room.message",
        "rb",
        reply(&b, "b1"),
    )
    .await;
    send_ok(
        &server,
        &bob,
        &room,
        "m.room.message",
        "rc",
        reply(&c, "c1"),
    )
    .await;
    let latest_a = send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "ra2",
        reply(&a, "a2"),
    )
    .await;
    let threads = format!("/_matrix/client/v1/rooms/{}/threads", enc(&room));

    let all = server.get(&format!("{threads}?limit=10"), &alice).await;
    assert_eq!(ids(&all["chunk"]), vec![a.clone(), c.clone(), b.clone()]);
    let summary = &all["chunk"][0]["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(summary["count"], json!(2));
    assert_eq!(summary["latest_event"]["event_id"], json!(latest_a));
    assert_eq!(summary["latest_event"]["sender"], json!(alice_id));
    assert_eq!(summary["current_user_participated"], json!(true));
    // Bob replied to b and c and sent them; alice only took part in a.
    let mine = server
        .get(&format!("{threads}?include=participated"), &alice)
        .await;
    assert_eq!(ids(&mine["chunk"]), vec![a.clone()]);
    let bobs = server
        .get(&format!("{threads}?include=participated&limit=10"), &bob)
        .await;
    assert_eq!(ids(&bobs["chunk"]), vec![a.clone(), c.clone(), b.clone()]);
    let in_c = server.get(&format!("{threads}?limit=10"), &alice).await;
    assert_eq!(
        in_c["chunk"][1]["unsigned"]["m.relations"]["m.thread"]["current_user_participated"],
        json!(false)
    );

    // Pagination: one at a time.
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..5 {
        let q = match &from {
            Some(t) => format!("{threads}?limit=1&from={}", enc(t)),
            None => format!("{threads}?limit=1"),
        };
        let page = server.get(&q, &alice).await;
        seen.extend(ids(&page["chunk"]));
        match page["next_batch"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, vec![a.clone(), c.clone(), b.clone()]);
    let (status, body) = server
        .call(
            Method::GET,
            &format!("{threads}?from=nonsense"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_INVALID_PARAM"))
    );

    // The root served by /event, /messages, /context and /sync carries the same summary.
    let event = server
        .get(
            &format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&a)),
            &alice,
        )
        .await;
    assert_eq!(
        event["unsigned"]["m.relations"]["m.thread"]["count"],
        json!(2)
    );
    let messages = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
                enc(&room)
            ),
            &alice,
        )
        .await;
    let root = messages["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == json!(a))
        .unwrap();
    assert_eq!(
        root["unsigned"]["m.relations"]["m.thread"]["latest_event"]["event_id"],
        json!(latest_a)
    );
    let context = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/context/{}",
                enc(&room),
                enc(&b)
            ),
            &alice,
        )
        .await;
    assert_eq!(
        context["event"]["unsigned"]["m.relations"]["m.thread"]["count"],
        json!(1)
    );
    let sync = server.get("/_matrix/client/v3/sync", &alice).await;
    let timeline = sync["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap();
    let root = timeline
        .iter()
        .find(|e| e["event_id"] == json!(a))
        .expect("root in the initial sync");
    assert_eq!(
        root["unsigned"]["m.relations"]["m.thread"]["count"],
        json!(2)
    );
    // And /search results.
    let criteria = json!({ "search_term": "thread", "filter": { "rooms": [room] } });
    let found = server
        .post(
            "/_matrix/client/v3/search",
            &alice,
            json!({ "search_categories": { "room_events": criteria } }),
        )
        .await;
    let results = found["search_categories"]["room_events"]["results"]
        .as_array()
        .unwrap();
    let root = results
        .iter()
        .find(|r| r["result"]["event_id"] == json!(a))
        .expect("root found by search");
    assert_eq!(
        root["result"]["unsigned"]["m.relations"]["m.thread"]["count"],
        json!(2)
    );
    server.stop().await;
}

#[tokio::test]
async fn edits_references_and_redactions_aggregate_as_the_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
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
    let original = server.send_text(&alice, &room, "o", "helo").await;
    let edit = |body: &str| json!({ "msgtype": "m.text", "body": format!("* {body}"), "m.new_content": { "msgtype": "m.text", "body": body }, "m.relates_to": { "rel_type": "m.replace", "event_id": original } });
    let first = send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "e1",
        edit("hello"),
    )
    .await;
    let second = send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "e2",
        edit("hello!"),
    )
    .await;
    // Not valid: another sender, no m.new_content.
    send_ok(&server, &bob, &room, "m.room.message", "e3", edit("bob's")).await;
    send_ok(&server, &alice, &room, "m.room.message", "e4", json!({ "msgtype": "m.text", "body": "x", "m.relates_to": { "rel_type": "m.replace", "event_id": original } })).await;
    let reference = send_ok(&server, &bob, &room, "m.room.message", "ref", json!({ "msgtype": "m.text", "body": "see", "m.relates_to": { "rel_type": "m.reference", "event_id": original } })).await;
    let event_path = format!(
        "/_matrix/client/v3/rooms/{}/event/{}",
        enc(&room),
        enc(&original)
    );

    let served = server.get(&event_path, &alice).await;
    let relations = &served["unsigned"]["m.relations"];
    assert_eq!(
        relations["m.replace"]["event_id"],
        json!(second),
        "{served}"
    );
    assert_eq!(
        relations["m.replace"]["content"]["m.new_content"]["body"],
        json!("hello!")
    );
    // The original content is served as it is (spec v1.7+).
    assert_eq!(served["content"]["body"], json!("helo"));
    assert_eq!(
        relations["m.reference"]["chunk"],
        json!([{ "event_id": reference }])
    );

    // Redacting the latest edit: the one before applies.
    let redact = |event: String, txn: &'static str| {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/{txn}",
            enc(&room),
            enc(&event)
        );
        let server = &server;
        let alice = alice.clone();
        async move { server.put(&path, &alice, json!({})).await }
    };
    redact(second.clone(), "x1").await;
    let served = server.get(&event_path, &alice).await;
    assert_eq!(
        served["unsigned"]["m.relations"]["m.replace"]["event_id"],
        json!(first)
    );
    let edits = server
        .get(
            &relations_path(&room, &original, "/m.replace?limit=50"),
            &alice,
        )
        .await;
    assert!(!ids(&edits["chunk"]).contains(&second));
    // Redacting the original hides its edits.
    redact(original.clone(), "x2").await;
    let served = server.get(&event_path, &alice).await;
    assert!(
        served["unsigned"]["m.relations"].get("m.replace").is_none(),
        "{served}"
    );
    server.stop().await;
}

#[tokio::test]
async fn thread_summary_follows_redactions_of_replies() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let root = server.send_text(&alice, &room, "t0", "root").await;
    let r1 = send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "r1",
        reply(&root, "one"),
    )
    .await;
    let r2 = send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "r2",
        reply(&root, "two"),
    )
    .await;
    let other = server.send_text(&alice, &room, "t1", "other root").await;
    send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "o1",
        reply(&other, "x"),
    )
    .await;
    let threads = format!("/_matrix/client/v1/rooms/{}/threads", enc(&room));
    assert_eq!(
        ids(&server.get(&threads, &alice).await["chunk"]),
        vec![other.clone(), root.clone()]
    );

    let redact = |event: &str, txn: &str| {
        format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/{txn}",
            enc(&room),
            enc(event)
        )
    };
    server.put(&redact(&r2, "x1"), &alice, json!({})).await;
    let event = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(&root)
            ),
            &alice,
        )
        .await;
    let summary = &event["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(
        (
            summary["count"].clone(),
            summary["latest_event"]["event_id"].clone()
        ),
        (json!(1), json!(r1))
    );
    // The last reply redacted: no thread any more.
    server.put(&redact(&r1, "x2"), &alice, json!({})).await;
    assert_eq!(
        ids(&server.get(&threads, &alice).await["chunk"]),
        vec![other]
    );
    let event = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(&root)
            ),
            &alice,
        )
        .await;
    assert!(event["unsigned"].get("m.relations").is_none(), "{event}");
    server.stop().await;
}

#[tokio::test]
async fn duplicate_annotations_and_cross_room_relations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let other = server.create_room(&alice, json!({})).await;
    let target = server.send_text(&alice, &room, "t0", "hi").await;
    let like =
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": target, "key": "👍" } });
    let first = send_ok(&server, &alice, &room, "m.reaction", "l1", like.clone()).await;
    let (status, body) = send(&server, &alice, &room, "m.reaction", "l2", like.clone()).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_DUPLICATE_ANNOTATION")),
        "{body}"
    );
    // Another key is fine; once the first is redacted the same key is accepted again.
    send_ok(
        &server,
        &alice,
        &room,
        "m.reaction",
        "l3",
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": target, "key": "🎉" } }),
    )
    .await;
    server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/redact/{}/x",
                enc(&room),
                enc(&first)
            ),
            &alice,
            json!({}),
        )
        .await;
    send_ok(&server, &alice, &room, "m.reaction", "l4", like).await;

    // Annotating, editing or threading an event of another room.
    for (txn, kind, content) in [
        (
            "c1",
            "m.reaction",
            json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": target, "key": "x" } }),
        ),
        (
            "c2",
            "m.room.message",
            json!({ "msgtype": "m.text", "body": "*", "m.new_content": { "msgtype": "m.text", "body": "y" }, "m.relates_to": { "rel_type": "m.replace", "event_id": target } }),
        ),
        ("c3", "m.room.message", reply(&target, "x")),
    ] {
        let (status, body) = send(&server, &alice, &other, kind, txn, content).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let relations = server
        .get(&relations_path(&room, &target, "?limit=50"), &alice)
        .await;
    assert_eq!(ids(&relations["chunk"]).len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn relations_received_over_federation_aggregate_the_same_way() {
    let p = common::peer::pair().await;
    let room = p.room.to_string();
    let original = p.b.send_text(&p.bob_token, &room, "o", "helo from b").await;
    let edit = json!({ "msgtype": "m.text", "body": "* hello", "m.new_content": { "msgtype": "m.text", "body": "hello from b" }, "m.relates_to": { "rel_type": "m.replace", "event_id": original } });
    let edit_id = send_ok(&p.b, &p.bob_token, &room, "m.room.message", "e", edit).await;
    let reply_id = send_ok(
        &p.b,
        &p.bob_token,
        &room,
        "m.room.message",
        "r",
        reply(&original, "in thread"),
    )
    .await;
    // On A, the remote edit and thread reply aggregate on the remote original.
    let path = format!(
        "/_matrix/client/v3/rooms/{}/event/{}",
        enc(&room),
        enc(&original)
    );
    let relations = common::federation::eventually("the relations on A", || async {
        let (status, event) =
            p.a.call(Method::GET, &path, Some(&p.alice_token), None)
                .await;
        let relations = event["unsigned"]["m.relations"].clone();
        (status == StatusCode::OK
            && relations["m.thread"]["count"] == json!(1)
            && relations.get("m.replace").is_some())
        .then_some(relations)
    })
    .await;
    assert_eq!(relations["m.replace"]["event_id"], json!(edit_id));
    assert_eq!(
        relations["m.thread"]["latest_event"]["event_id"],
        json!(reply_id)
    );
    assert_eq!(
        relations["m.thread"]["current_user_participated"],
        json!(false)
    );
    let threads =
        p.a.get(
            &format!("/_matrix/client/v1/rooms/{}/threads", enc(&room)),
            &p.alice_token,
        )
        .await;
    assert_eq!(ids(&threads["chunk"]), vec![original.clone()]);
    let listed =
        p.a.get(
            &relations_path(&room, &original, "/m.replace"),
            &p.alice_token,
        )
        .await;
    assert_eq!(ids(&listed["chunk"]), vec![edit_id]);
}

/// Matches Synapse's `related_by_rel_types` / `related_by_senders` filters (threads MSC3440) and
/// MSC3874's `rel_types` / `not_rel_types`, on /messages (query filter), /context and /sync (an
/// inline filter and a stored one); a field of the wrong type is 400 `M_BAD_JSON`.
#[tokio::test]
async fn filters_by_relations_on_messages_context_and_sync() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
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
    // root_a: a thread with a reply by bob; root_b: a thread with a reply by alice;
    // plain: a reaction by bob; quiet: nothing relates to it.
    let root_a = server.send_text(&alice, &room, "a", "thread a").await;
    let root_b = server.send_text(&alice, &room, "b", "thread b").await;
    let plain = server.send_text(&alice, &room, "p", "plain").await;
    let quiet = server.send_text(&alice, &room, "q", "quiet").await;
    let reply_a = send_ok(
        &server,
        &bob,
        &room,
        "m.room.message",
        "ra",
        reply(&root_a, "bob in a"),
    )
    .await;
    let reply_b = send_ok(
        &server,
        &alice,
        &room,
        "m.room.message",
        "rb",
        reply(&root_b, "alice in b"),
    )
    .await;
    let reaction = send_ok(
        &server,
        &bob,
        &room,
        "m.reaction",
        "r",
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": plain, "key": "👍" } }),
    )
    .await;

    let messages = |filter: Value| {
        let (server, room, alice) = (&server, &room, &alice);
        async move {
            let path = format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50&filter={}",
                enc(room),
                enc(&filter.to_string())
            );
            server.call(Method::GET, &path, Some(alice), None).await
        }
    };
    let chunk_ids = |body: &Value| ids(&body["chunk"]);

    let (status, body) = messages(json!({ "related_by_rel_types": ["m.thread"] })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(chunk_ids(&body), vec![root_b.clone(), root_a.clone()]);
    let (_, body) =
        messages(json!({ "related_by_rel_types": ["m.thread"], "related_by_senders": [bob_id] }))
            .await;
    assert_eq!(chunk_ids(&body), vec![root_a.clone()]);
    let (_, body) = messages(json!({ "related_by_senders": [bob_id] })).await;
    assert_eq!(chunk_ids(&body), vec![plain.clone(), root_a.clone()]);
    let (_, body) = messages(
        json!({ "related_by_senders": [alice_id], "related_by_rel_types": ["m.annotation"] }),
    )
    .await;
    assert_eq!(chunk_ids(&body), Vec::<String>::new());
    // MSC3874: the main timeline without thread replies, or only them.
    let (_, body) = messages(json!({ "types": ["m.room.message", "m.reaction"], "org.matrix.msc3874.not_rel_types": ["m.thread"] })).await;
    assert_eq!(
        chunk_ids(&body),
        vec![
            reaction.clone(),
            quiet.clone(),
            plain.clone(),
            root_b.clone(),
            root_a.clone()
        ]
    );
    let (_, body) = messages(json!({ "org.matrix.msc3874.rel_types": ["m.thread"] })).await;
    assert_eq!(chunk_ids(&body), vec![reply_b.clone(), reply_a.clone()]);
    let (status, body) = messages(json!({ "related_by_rel_types": "m.thread" })).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_BAD_JSON")),
        "{body}"
    );

    // /context around `quiet`: only the thread roots on either side.
    let filter = enc(&json!({ "related_by_rel_types": ["m.thread"] }).to_string());
    let context = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/context/{}?limit=20&filter={filter}",
                enc(&room),
                enc(&quiet)
            ),
            &alice,
        )
        .await;
    assert_eq!(
        ids(&context["events_before"]),
        vec![root_b.clone(), root_a.clone()],
        "{context}"
    );
    assert_eq!(
        ids(&context["events_after"]),
        Vec::<String>::new(),
        "{context}"
    );

    // /sync: inline, and stored under a filter id.
    let timeline_filter =
        json!({ "room": { "timeline": { "related_by_rel_types": ["m.thread"], "limit": 50 } } });
    let inline = server
        .get(
            &format!(
                "/_matrix/client/v3/sync?filter={}",
                enc(&timeline_filter.to_string())
            ),
            &alice,
        )
        .await;
    assert_eq!(
        ids(&inline["rooms"]["join"][&room]["timeline"]["events"]),
        vec![root_a.clone(), root_b.clone()],
        "{inline}"
    );
    let created = server
        .post(
            &format!("/_matrix/client/v3/user/{}/filter", enc(&alice_id)),
            &alice,
            timeline_filter,
        )
        .await;
    let id = created["filter_id"].as_str().unwrap();
    let stored = server
        .get(&format!("/_matrix/client/v3/sync?filter={id}"), &alice)
        .await;
    assert_eq!(
        ids(&stored["rooms"]["join"][&room]["timeline"]["events"]),
        vec![root_a, root_b],
        "{stored}"
    );
    let bad = json!({ "room": { "timeline": { "related_by_senders": [1] } } });
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/user/{}/filter", enc(&alice_id)),
            Some(&alice),
            Some(bad.clone()),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_BAD_JSON")),
        "{body}"
    );
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/_matrix/client/v3/sync?filter={}", enc(&bad.to_string())),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_BAD_JSON")),
        "{body}"
    );
    server.stop().await;
}
