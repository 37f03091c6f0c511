//! Reporting content: events, rooms and users reported by users, kept across restarts, read and
//! deleted by admins with the admin API (`/_synapse/admin/v1/event_reports`).

mod common;

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

const ADMIN: &str = "/_synapse/admin/v1";

async fn login(server: &TestServer, user: &str) -> String {
    let body = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user }, "password": "secret-password" });
    let (status, body) = server
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A server whose `@root` is an admin.
async fn admin_server() -> (TempDir, TestServer, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    server.register("root").await;
    server.stop().await;
    parvis::services::admin::make_admin::make_admin(common::config(dir.path()), "@root:test.local")
        .unwrap();
    let server = TestServer::start(dir.path()).await;
    let token = login(&server, "root").await;
    (dir, server, token)
}

fn errcode(body: &Value) -> &str {
    body["errcode"].as_str().unwrap_or_default()
}

async fn report_event(
    server: &TestServer,
    token: &str,
    room: &str,
    event: &str,
    body: Value,
) -> (StatusCode, Value) {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/report/{}",
        enc(room),
        enc(event)
    );
    server
        .call(Method::POST, &path, Some(token), Some(body))
        .await
}

#[tokio::test]
async fn reports_are_checked_stored_listed_and_deleted() {
    let (dir, server, root) = admin_server().await;
    let (alice_id, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    let (_, eve) = server.register("eve").await;
    let room = server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "name": "Town square" }),
        )
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/join", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    let rude = server
        .send_text(&alice, &room, "t1", "something rude")
        .await;
    let second = server.send_text(&alice, &room, "t2", "more rudeness").await;

    // Bob, a member, reports twice (one with a score); Eve is not in the room: 404, nothing stored.
    let (status, body) = report_event(
        &server,
        &bob,
        &room,
        &rude,
        json!({ "reason": "rude", "score": -100 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({}));
    let (status, _) =
        report_event(&server, &bob, &room, &second, json!({ "reason": "again" })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = report_event(&server, &eve, &room, &rude, json!({ "reason": "x" })).await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    // An unknown event, an event of another room: 404 as well.
    let (status, body) = report_event(
        &server,
        &bob,
        &room,
        "$nope:test.local",
        json!({ "reason": "x" }),
    )
    .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    let other = server.create_room(&bob, json!({})).await;
    let (status, _) = report_event(&server, &bob, &other, &rude, json!({ "reason": "x" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A score out of range: 400, nothing stored.
    let (status, body) = report_event(
        &server,
        &bob,
        &room,
        &rude,
        json!({ "reason": "x", "score": 5 }),
    )
    .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::BAD_REQUEST, "M_INVALID_PARAM")
    );

    // Room and user reports: known ones are accepted, unknown ones are 404; a reason is required.
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/report", enc(&room)),
            Some(&eve),
            Some(json!({ "reason": "" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/rooms/!unknown:test.local/report",
            Some(&eve),
            Some(json!({ "reason": "x" })),
        )
        .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/report", enc(&room)),
            Some(&eve),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::BAD_REQUEST, "M_BAD_JSON")
    );
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/users/{}/report", enc(&alice_id)),
            Some(&eve),
            Some(json!({ "reason": "spam" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/users/@ghost:test.local/report",
            Some(&eve),
            Some(json!({ "reason": "x" })),
        )
        .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );

    // Only admins read them.
    let (status, body) = server
        .call(
            Method::GET,
            &format!("{ADMIN}/event_reports"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::FORBIDDEN, "M_FORBIDDEN")
    );

    // They survive a restart.
    server.stop().await;
    let server = TestServer::start(dir.path()).await;

    // Newest first by default; only the two event reports.
    let list = server.get(&format!("{ADMIN}/event_reports"), &root).await;
    assert_eq!(list["total"], 2, "{list}");
    let reports = list["event_reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert!(list.get("next_token").is_none());
    assert_eq!(reports[0]["event_id"], second.as_str());
    assert_eq!(reports[1]["event_id"], rude.as_str());
    let first = &reports[1];
    assert_eq!(first["user_id"], "@bob:test.local");
    assert_eq!(first["sender"], alice_id.as_str());
    assert_eq!(first["room_id"], room.as_str());
    assert_eq!(first["name"], "Town square");
    assert_eq!(first["reason"], "rude");
    assert_eq!(first["score"], -100);
    assert!(first["received_ts"].as_u64().unwrap() > 0);

    // Paging, direction and filters.
    let page = server
        .get(&format!("{ADMIN}/event_reports?limit=1&dir=f"), &root)
        .await;
    assert_eq!(
        (page["total"].clone(), page["next_token"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(page["event_reports"][0]["event_id"], rude.as_str());
    let page = server
        .get(
            &format!("{ADMIN}/event_reports?limit=1&dir=f&from=1"),
            &root,
        )
        .await;
    assert_eq!(page["event_reports"][0]["event_id"], second.as_str());
    assert!(page.get("next_token").is_none());
    let none = server
        .get(
            &format!("{ADMIN}/event_reports?user_id={}", enc("@eve:test.local")),
            &root,
        )
        .await;
    assert_eq!(
        (none["total"].clone(), none["event_reports"].clone()),
        (json!(0), json!([]))
    );
    let by_room = server
        .get(
            &format!("{ADMIN}/event_reports?room_id={}", enc(&room)),
            &root,
        )
        .await;
    assert_eq!(by_room["total"], 2);
    for bad in ["from=-1", "limit=-5", "dir=x"] {
        let (status, body) = server
            .call(
                Method::GET,
                &format!("{ADMIN}/event_reports?{bad}"),
                Some(&root),
                None,
            )
            .await;
        assert_eq!(
            (status, errcode(&body)),
            (StatusCode::BAD_REQUEST, "M_INVALID_PARAM"),
            "{bad}"
        );
    }

    // Details carry the event; deletion removes the report and only it.
    let id = first["id"].as_u64().unwrap();
    let details = server
        .get(&format!("{ADMIN}/event_reports/{id}"), &root)
        .await;
    assert_eq!(details["event_json"]["content"]["body"], "something rude");
    assert_eq!(details["reason"], "rude");
    let (status, body) = server
        .call(
            Method::GET,
            &format!("{ADMIN}/event_reports/abc"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::BAD_REQUEST, "M_INVALID_PARAM")
    );
    let (status, body) = server
        .call(
            Method::DELETE,
            &format!("{ADMIN}/event_reports/{id}"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, body) = server
        .call(
            Method::GET,
            &format!("{ADMIN}/event_reports/{id}"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    let (status, body) = server
        .call(
            Method::DELETE,
            &format!("{ADMIN}/event_reports/{id}"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    assert_eq!(
        server.get(&format!("{ADMIN}/event_reports"), &root).await["total"],
        1
    );
    server.stop().await;
}
