//! Server notices (issue 11, ★ among Rust servers): `POST|PUT /_synapse/admin/v1/send_server_notice`
//! puts a message from the notices user into the user's notices room, tagged `m.server_notice`,
//! which the user may read and leave but not post in; a user who left gets a new room.

mod common;

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const NOTICE: &str = "/_synapse/admin/v1/send_server_notice";

async fn invites(server: &TestServer, token: &str) -> Value {
    server.get("/_matrix/client/v3/sync", token).await["rooms"]["invite"].clone()
}

#[tokio::test]
async fn notices_reach_a_tagged_room_the_user_cannot_post_in() {
    let dir = tempfile::tempdir().unwrap();
    // Off without a notices user.
    let mut config = common::config(dir.path());
    let server = TestServer::start_with(config.clone()).await;
    let (_, root) = server.register("root").await;
    server.stop().await;
    parvis::services::admin::make_admin::make_admin(config.clone(), "@root:test.local").unwrap();
    let server = TestServer::start_with(config.clone()).await;
    let (alice_id, alice) = server.register("alice").await;
    let notice = json!({ "user_id": alice_id, "content": { "msgtype": "m.text", "body": "Maintenance at 22:00" } });
    let (status, _) = server
        .call(Method::POST, NOTICE, Some(&root), Some(notice.clone()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.stop().await;

    config.server_notices.system_mxid_localpart = Some("notices".into());
    config.server_notices.system_mxid_display_name = Some("Server Notices".into());
    config.server_notices.room_topic = Some("Messages from the administrators".into());
    let server = TestServer::start_with(config).await;
    let sent = server.post(NOTICE, &root, notice.clone()).await;
    let event_id = sent["event_id"].as_str().unwrap().to_owned();

    // Alice is invited to a room named as configured, tagged m.server_notice.
    let invited = invites(&server, &alice).await;
    let (room, invite) = invited.as_object().unwrap().iter().next().unwrap();
    let room = room.clone();
    let names: Vec<&Value> = invite["invite_state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.name")
        .map(|e| &e["content"]["name"])
        .collect();
    assert_eq!(names, [&json!("Server Notices")]);
    let tags = server
        .get(
            &format!(
                "/_matrix/client/v3/user/{}/rooms/{}/tags",
                enc(&alice_id),
                enc(&room)
            ),
            &alice,
        )
        .await;
    assert!(tags["tags"].get("m.server_notice").is_some(), "{tags}");
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &alice,
            json!({}),
        )
        .await;
    let event = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(&event_id)
            ),
            &alice,
        )
        .await;
    assert_eq!(event["sender"], "@notices:test.local");
    assert_eq!(event["content"]["body"], "Maintenance at 22:00");
    let profile = server
        .get("/_matrix/client/v3/profile/@notices:test.local", &alice)
        .await;
    assert_eq!(profile["displayname"], "Server Notices");
    // She may not post there.
    let (status, _) = server
        .call(
            Method::PUT,
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/x",
                enc(&room)
            ),
            Some(&alice),
            Some(json!({ "msgtype": "m.text", "body": "reply" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The next notice goes to the same room; a retried PUT gives the same event.
    let put = |txn: &str| format!("{NOTICE}/{txn}");
    let second = json!({ "user_id": alice_id, "content": { "msgtype": "m.text", "body": "Done" } });
    let first_try = server.put(&put("t1"), &root, second.clone()).await;
    let retry = server.put(&put("t1"), &root, second).await;
    assert_eq!(first_try["event_id"], retry["event_id"]);
    let again = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(first_try["event_id"].as_str().unwrap())
            ),
            &alice,
        )
        .await;
    assert_eq!(again["content"]["body"], "Done");

    // After leaving, a new room.
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
            &alice,
            json!({}),
        )
        .await;
    server.post(NOTICE, &root, notice).await;
    let invited = invites(&server, &alice).await;
    let new_room = invited.as_object().unwrap().keys().next().unwrap().clone();
    assert_ne!(new_room, room);

    // Only local, existing users.
    for user in ["@bob:elsewhere.org", "@nobody:test.local"] {
        let (status, _) = server
            .call(
                Method::POST,
                NOTICE,
                Some(&root),
                Some(json!({ "user_id": user, "content": { "body": "x" } })),
            )
            .await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{user}: {status}"
        );
    }
    server.stop().await;
}
