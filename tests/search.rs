//! Server-side search (`POST /search`): the index, ranking, filters, context, groupings,
//! pagination, redactions, history visibility, and the index after restarts.

mod common;

use std::{collections::HashSet, time::Duration};

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SEARCH: &str = "/_matrix/client/v3/search";

async fn search(server: &TestServer, token: &str, criteria: Value) -> Value {
    let body = server
        .post(
            SEARCH,
            token,
            json!({ "search_categories": { "room_events": criteria } }),
        )
        .await;
    body["search_categories"]["room_events"].clone()
}

fn bodies(room_events: &Value) -> Vec<String> {
    room_events["results"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| {
            r["result"]["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn join(server: &TestServer, token: &str, room: &str) {
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(room)),
            token,
            json!({}),
        )
        .await;
}

async fn redact(server: &TestServer, token: &str, room: &str, event: &str, txn: &str) {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/redact/{}/{txn}",
        enc(room),
        enc(event)
    );
    server.put(&path, token, json!({})).await;
}

#[tokio::test]
async fn can_search_for_an_event_by_body_all_words_rank_and_recent() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    server
        .send_text(&alice, &room, "1", "Quick quick QUICK brown fox")
        .await;
    server.send_text(&alice, &room, "2", "Lunch at noon?").await;
    server
        .send_text(&alice, &room, "3", "a quick lunch, then")
        .await;
    server
        .send_text(&alice, &room, "4", "the fox is quick")
        .await;

    let by_rank = search(&server, &alice, json!({ "search_term": "quick" })).await;
    assert_eq!(
        bodies(&by_rank),
        [
            "Quick quick QUICK brown fox",
            "the fox is quick",
            "a quick lunch, then"
        ]
    );
    assert_eq!(by_rank["count"], 3);
    assert_eq!(by_rank["results"][0]["rank"], 3.0);
    assert_eq!(by_rank["highlights"], json!(["quick"]));
    assert_eq!(by_rank["results"][0]["result"]["room_id"], room.as_str());
    assert!(by_rank.get("next_batch").is_none());

    let by_recent = search(
        &server,
        &alice,
        json!({ "search_term": "quick", "order_by": "recent" }),
    )
    .await;
    assert_eq!(
        bodies(&by_recent),
        [
            "the fox is quick",
            "a quick lunch, then",
            "Quick quick QUICK brown fox"
        ]
    );

    // Every word must match; the last one also as a prefix.
    assert_eq!(
        bodies(&search(&server, &alice, json!({ "search_term": "QUICK fox" })).await),
        ["Quick quick QUICK brown fox", "the fox is quick"]
    );
    assert_eq!(
        bodies(&search(&server, &alice, json!({ "search_term": "quick lunch" })).await),
        ["a quick lunch, then"]
    );
    let prefix = search(
        &server,
        &alice,
        json!({ "search_term": "lun", "order_by": "recent" }),
    )
    .await;
    assert_eq!(bodies(&prefix), ["a quick lunch, then", "Lunch at noon?"]);
    assert_eq!(prefix["highlights"], json!(["lunch"]));
    let none = search(&server, &alice, json!({ "search_term": "dinner" })).await;
    assert_eq!(none["count"], 0);
    assert!(bodies(&none).is_empty());
    server.stop().await;
}

#[tokio::test]
async fn filters_keys_and_groupings() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let room_a = server.create_room(&alice, json!({ "preset": "public_chat", "name": "Budget planning", "topic": "the budget for 2025" })).await;
    let room_b = server
        .create_room(&bob, json!({ "preset": "public_chat" }))
        .await;
    join(&server, &bob, &room_a).await;
    join(&server, &alice, &room_b).await;
    server
        .send_text(&alice, &room_a, "1", "budget draft from alice")
        .await;
    server
        .send_text(&bob, &room_a, "2", "budget comments from bob")
        .await;
    server
        .send_text(&bob, &room_b, "3", "budget in room b")
        .await;
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/4",
        enc(&room_b)
    );
    server
        .put(
            &path,
            &alice,
            json!({ "msgtype": "m.file", "body": "budget.pdf", "url": "mxc://test.local/abc" }),
        )
        .await;

    let all = search(
        &server,
        &alice,
        json!({ "search_term": "budget", "order_by": "recent" }),
    )
    .await;
    assert_eq!(all["count"], 6, "{all}");
    let senders = search(
        &server,
        &alice,
        json!({ "search_term": "budget", "filter": { "senders": [bob_id] } }),
    )
    .await;
    assert_eq!(senders["count"], 2);
    let not_senders = search(&server, &alice, json!({ "search_term": "budget", "filter": { "not_senders": [bob_id], "types": ["m.room.message"] } })).await;
    assert_eq!(not_senders["count"], 2);
    let rooms = search(
        &server,
        &alice,
        json!({ "search_term": "budget", "filter": { "rooms": [room_b] } }),
    )
    .await;
    assert_eq!(rooms["count"], 2);
    let not_rooms = search(
        &server,
        &alice,
        json!({ "search_term": "budget", "filter": { "not_rooms": [room_b] } }),
    )
    .await;
    assert_eq!(not_rooms["count"], 4);
    let with_url = search(
        &server,
        &alice,
        json!({ "search_term": "budget", "filter": { "contains_url": true } }),
    )
    .await;
    assert_eq!(bodies(&with_url), ["budget.pdf"]);
    let without_url = search(&server, &alice, json!({ "search_term": "budget", "filter": { "contains_url": false, "types": ["m.room.message"] } })).await;
    assert_eq!(without_url["count"], 3);
    let topics = search(
        &server,
        &alice,
        json!({ "search_term": "budget", "keys": ["content.topic"] }),
    )
    .await;
    assert_eq!(topics["count"], 1);
    assert_eq!(
        topics["results"][0]["result"]["content"]["topic"],
        "the budget for 2025"
    );
    let names = search(&server, &alice, json!({ "search_term": "planning" })).await;
    assert_eq!(names["results"][0]["result"]["type"], "m.room.name");
    let names_only_bodies = search(
        &server,
        &alice,
        json!({ "search_term": "planning", "keys": ["content.body"] }),
    )
    .await;
    assert_eq!(names_only_bodies["count"], 0);
    let types = search(
        &server,
        &alice,
        json!({ "search_term": "budget", "filter": { "not_types": ["m.room.message"] } }),
    )
    .await;
    assert_eq!(types["count"], 2);
    let limited = search(
        &server,
        &alice,
        json!({ "search_term": "budget", "filter": { "limit": 1 } }),
    )
    .await;
    assert_eq!(limited["results"].as_array().unwrap().len(), 1);
    assert!(limited["next_batch"].is_string());

    let grouped = search(&server, &alice, json!({
        "search_term": "budget", "order_by": "recent", "filter": { "types": ["m.room.message"] },
        "groupings": { "group_by": [{ "key": "room_id" }, { "key": "sender" }] },
    }))
    .await;
    let by_room = &grouped["groups"]["room_id"];
    assert_eq!(by_room[&room_b]["order"], 1, "{grouped}");
    assert_eq!(by_room[&room_a]["order"], 2);
    assert_eq!(by_room[&room_a]["results"].as_array().unwrap().len(), 2);
    let by_sender = &grouped["groups"]["sender"];
    assert_eq!(by_sender[&alice_id]["results"].as_array().unwrap().len(), 2);
    assert_eq!(by_sender[&bob_id]["results"].as_array().unwrap().len(), 2);

    let with_state = search(
        &server,
        &alice,
        json!({ "search_term": "draft", "include_state": true }),
    )
    .await;
    let state = with_state["state"][&room_a].as_array().unwrap();
    assert!(state.iter().any(|e| e["type"] == "m.room.create"));
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == bob_id.as_str())
    );
    assert!(with_state["state"].get(&room_b).is_none());
    server.stop().await;
}

#[tokio::test]
async fn can_get_context_around_search_results() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice_id, alice) = server.register("alice").await;
    server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", enc(&alice_id)),
            &alice,
            json!({ "displayname": "Alice A." }),
        )
        .await;
    let room = server.create_room(&alice, json!({})).await;
    for i in 1..=4 {
        server
            .send_text(&alice, &room, &format!("b{i}"), &format!("before {i}"))
            .await;
    }
    server.send_text(&alice, &room, "hit", "the needle").await;
    for i in 1..=4 {
        server
            .send_text(&alice, &room, &format!("a{i}"), &format!("after {i}"))
            .await;
    }
    let found = search(
        &server,
        &alice,
        json!({
            "search_term": "needle",
            "event_context": { "before_limit": 2, "after_limit": 3, "include_profile": true },
        }),
    )
    .await;
    let context = &found["results"][0]["context"];
    let texts = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        texts(&context["events_before"]),
        ["before 4", "before 3"],
        "{context}"
    );
    assert_eq!(
        texts(&context["events_after"]),
        ["after 1", "after 2", "after 3"]
    );
    assert_eq!(
        context["profile_info"][&alice_id]["displayname"],
        "Alice A."
    );
    // The tokens page on with /messages.
    let start = context["start"].as_str().unwrap();
    let older = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1&from={}",
                enc(&room),
                enc(start)
            ),
            &alice,
        )
        .await;
    assert_eq!(older["chunk"][0]["content"]["body"], "before 2");
    let end = context["end"].as_str().unwrap();
    let newer = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=f&limit=1&from={}",
                enc(&room),
                enc(end)
            ),
            &alice,
        )
        .await;
    assert_eq!(newer["chunk"][0]["content"]["body"], "after 4");
    // Without event_context, no context.
    let plain = search(&server, &alice, json!({ "search_term": "needle" })).await;
    assert!(plain["results"][0].get("context").is_none(), "{plain}");
    server.stop().await;
}

async fn page_through(server: &TestServer, token: &str, criteria: Value) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(n) => format!("{SEARCH}?next_batch={}", enc(n)),
            None => SEARCH.to_owned(),
        };
        let body = server
            .post(
                &path,
                token,
                json!({ "search_categories": { "room_events": criteria.clone() } }),
            )
            .await;
        let room_events = &body["search_categories"]["room_events"];
        pages.push(bodies(room_events));
        match room_events["next_batch"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => return pages,
        }
        assert!(pages.len() < 20, "pagination does not end");
    }
}

#[tokio::test]
async fn can_back_paginate_search_results_without_duplicates_or_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    for i in 0..23 {
        let text = if i % 3 == 0 {
            format!("Message number {i} message")
        } else {
            format!("Message number {i}")
        };
        server
            .send_text(&alice, &room, &format!("m{i}"), &text)
            .await;
    }
    let pages = page_through(
        &server,
        &alice,
        json!({ "search_term": "message", "order_by": "recent" }),
    )
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3]);
    let want: Vec<String> = (0..23)
        .rev()
        .map(|i| {
            if i % 3 == 0 {
                format!("Message number {i} message")
            } else {
                format!("Message number {i}")
            }
        })
        .collect();
    assert_eq!(pages.concat(), want);

    let pages = page_through(
        &server,
        &alice,
        json!({ "search_term": "message", "filter": { "limit": 4 } }),
    )
    .await;
    let all = pages.concat();
    assert_eq!(all.len(), 23);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 23);
    // Rank first (the eight with the word twice, newest first), then the others newest first.
    assert_eq!(all[0], "Message number 21 message");
    assert_eq!(all[7], "Message number 0 message");
    assert_eq!(all[8], "Message number 22");

    // Messages sent while paging never shift what later pages give.
    let first = server.post(SEARCH, &alice, json!({ "search_categories": { "room_events": { "search_term": "message", "order_by": "recent" } } })).await;
    let next = first["search_categories"]["room_events"]["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .send_text(&alice, &room, "late", "a late message")
        .await;
    let second = server.post(&format!("{SEARCH}?next_batch={}", enc(&next)), &alice, json!({ "search_categories": { "room_events": { "search_term": "message", "order_by": "recent" } } })).await;
    assert_eq!(
        bodies(&second["search_categories"]["room_events"])[0],
        "Message number 12 message"
    );

    // Bad tokens and bodies.
    for bad in ["nonsense", "t", "k1_x"] {
        let (status, body) = server.call(Method::POST, &format!("{SEARCH}?next_batch={bad}"), Some(&alice), Some(json!({ "search_categories": { "room_events": { "search_term": "message", "order_by": "recent" } } }))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["errcode"], "M_INVALID_PARAM");
    }
    let (status, body) = server
        .call(
            Method::POST,
            SEARCH,
            Some(&alice),
            Some(json!({ "search_categories": { "room_other": { "search_term": "x" } } })),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_BAD_JSON")),
        "{body}"
    );
    let (status, body) = server
        .call(
            Method::POST,
            SEARCH,
            Some(&alice),
            Some(json!({ "search_categories": { "room_events": {} } })),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_BAD_JSON")),
        "{body}"
    );
    let (status, body) = server.call(Method::POST, SEARCH, Some(&alice), Some(json!({ "search_categories": { "room_events": { "search_term": "x", "order_by": "loudest" } } }))).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_INVALID_PARAM")),
        "{body}"
    );
    let (status, body) = server.call(Method::POST, SEARCH, Some(&alice), Some(json!({ "search_categories": { "room_events": { "search_term": "x", "keys": ["content.other"] } } }))).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_INVALID_PARAM")),
        "{body}"
    );
    let (status, _) = server
        .call(
            Method::POST,
            SEARCH,
            None,
            Some(json!({ "search_categories": { "room_events": { "search_term": "x" } } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn search_results_with_rank_and_recent_ordering_do_not_include_redacted_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let secret = server
        .send_text(&alice, &room, "1", "the secret password")
        .await;
    server
        .send_text(&alice, &room, "2", "not a secret anymore")
        .await;
    redact(&server, &alice, &room, &secret, "r1").await;
    for order in ["rank", "recent"] {
        let found = search(
            &server,
            &alice,
            json!({ "search_term": "secret", "order_by": order }),
        )
        .await;
        assert_eq!(bodies(&found), ["not a secret anymore"], "{order}");
        assert_eq!(found["count"], 1);
    }
    assert_eq!(
        search(&server, &alice, json!({ "search_term": "password" })).await["count"],
        0
    );
    server.stop().await;
}

#[tokio::test]
async fn only_rooms_and_history_the_user_may_see_are_searched() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    // A room bob never joined.
    let private = server.create_room(&alice, json!({})).await;
    server
        .send_text(&alice, &private, "1", "private plans")
        .await;
    // A `joined` room: only what is sent while bob is in it.
    let joined = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.history_visibility/",
        enc(&joined)
    );
    server
        .put(&path, &alice, json!({ "history_visibility": "joined" }))
        .await;
    server
        .send_text(&alice, &joined, "2", "plans before bob")
        .await;
    join(&server, &bob, &joined).await;
    server
        .send_text(&alice, &joined, "3", "plans with bob")
        .await;
    // A room bob left: searched up to the leave.
    let left = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    join(&server, &bob, &left).await;
    server
        .send_text(&alice, &left, "4", "plans while bob is here")
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&left)),
            &bob,
            json!({}),
        )
        .await;
    server
        .send_text(&alice, &left, "5", "plans after bob left")
        .await;

    let found = search(
        &server,
        &bob,
        json!({ "search_term": "plans", "order_by": "recent" }),
    )
    .await;
    assert_eq!(
        bodies(&found),
        ["plans while bob is here", "plans with bob"],
        "{found}"
    );
    assert_eq!(found["count"], 2);
    // Alice sees them all.
    assert_eq!(
        search(&server, &alice, json!({ "search_term": "plans" })).await["count"],
        5
    );
    // A filter naming a room bob never joined does not open it.
    let forced = search(
        &server,
        &bob,
        json!({ "search_term": "plans", "filter": { "rooms": [private] } }),
    )
    .await;
    assert_eq!(forced["count"], 0);
    server.stop().await;
}

async fn wait_for_count(server: &TestServer, token: &str, term: &str, want: u64) {
    for _ in 0..200 {
        if search(server, token, json!({ "search_term": term })).await["count"] == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("search for {term} never found {want} results");
}

#[tokio::test]
async fn restart_keeps_the_index_and_a_cleared_index_is_rebuilt_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, alice) = server.register("alice").await;
    let room = server
        .create_room(&alice, json!({ "topic": "archive of old letters" }))
        .await;
    for i in 0..300 {
        server
            .send_text(&alice, &room, &format!("t{i}"), &format!("old mail {i}"))
            .await;
    }
    let redacted = server
        .send_text(&alice, &room, "r", "old mail never to be found")
        .await;
    redact(&server, &alice, &room, &redacted, "x").await;
    server.stop().await;

    let server = TestServer::start(dir.path()).await;
    let alice = login(&server).await;
    assert_eq!(
        search(&server, &alice, json!({ "search_term": "mail" })).await["count"],
        300
    );
    server.stop().await;

    // Events written before the index existed: the index's column families emptied, as in a
    // database of an older version, and the start-up indexing interrupted after its first batch.
    let config = common::config(dir.path());
    tokio::task::spawn_blocking(move || {
        let services = parvis::services::Services::open(config).unwrap();
        parvis::services::search::rebuild::clear(&services).unwrap();
        // One batch indexed before a stop: the next start resumes after it.
        assert!(!parvis::services::search::rebuild::step(&services).unwrap());
        services.shutdown();
    })
    .await
    .unwrap();
    let server = TestServer::start(dir.path()).await;
    wait_for_count(&server, &alice, "mail", 300).await;
    assert_eq!(
        search(&server, &alice, json!({ "search_term": "never" })).await["count"],
        0
    );
    assert_eq!(
        search(&server, &alice, json!({ "search_term": "archive" })).await["count"],
        1
    );
    // New events are indexed as usual once the rebuild is done.
    server.send_text(&alice, &room, "new", "new mail").await;
    assert_eq!(
        search(&server, &alice, json!({ "search_term": "mail" })).await["count"],
        301
    );
    server.stop().await;
}

async fn login(server: &TestServer) -> String {
    let body = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "secret-password" });
    let (status, done) = server
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    done["access_token"].as_str().unwrap().to_owned()
}
