//! Incoming webhooks (issue 10): managed by the REST API and by `!webhook` commands to the
//! integration user; each payload form posted through a secret URL becomes one message from the
//! webhook's own user, formatted; bad payloads, oversized bodies, too many posts and dead URLs are
//! refused with the documented errors and post nothing.

mod common;

use common::{TestServer, config, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn hooks_path(room: &str) -> String {
    format!("/_parvis/client/v1/rooms/{}/webhooks", enc(room))
}

/// POSTs `body` with `content_type` to a hook path; the status and the JSON answer.
async fn post_raw(
    server: &TestServer,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut req = server
        .http
        .post(format!("{}{path}", server.base))
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn event(server: &TestServer, token: &str, room: &str, event_id: &str) -> Value {
    server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(room),
                enc(event_id)
            ),
            token,
        )
        .await
}

/// The newest message events of the room, newest first.
async fn latest_messages(server: &TestServer, token: &str, room: &str) -> Vec<Value> {
    let page = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
                enc(room)
            ),
            token,
        )
        .await;
    page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .cloned()
        .collect()
}

#[tokio::test]
async fn payloads_become_formatted_messages_from_the_webhook_user() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("db"));
    c.webhooks.max_body_bytes = 4096;
    let server = TestServer::start_with(c).await;
    let (_, alice) = server.register("alice").await;
    let room = server
        .create_room(&alice, json!({ "preset": "private_chat" }))
        .await;

    let (status, hook) = server
        .call(
            Method::POST,
            &hooks_path(&room),
            Some(&alice),
            Some(json!({ "name": "Jira", "avatar_url": "mxc://test.local/jira" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hook}");
    let path = hook["path"].as_str().unwrap().to_owned();
    assert!(hook["url"].as_str().unwrap().ends_with(&path), "{hook}");
    let hook_user = hook["user_id"].as_str().unwrap().to_owned();
    let profile = server
        .get(
            &format!("/_matrix/client/v3/profile/{}", enc(&hook_user)),
            &alice,
        )
        .await;
    assert_eq!(profile["displayname"], "Jira");
    assert_eq!(profile["avatar_url"], "mxc://test.local/jira");

    // Slack's JSON: mrkdwn text, links, code, an attachment with fields, a username.
    let slack = json!({
        "text": "*Ticket* <https://desk.example/12|#12> opened in `prod`",
        "username": "Jira Cloud",
        "attachments": [{
            "color": "#36a64f",
            "title": "Printer on fire",
            "fields": [
                { "title": "Priority", "value": "High", "short": true },
                { "title": "Reporter", "value": "Bob", "short": true }
            ]
        }]
    });
    let (status, posted) =
        post_raw(&server, &path, Some("application/json"), slack.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    let e = event(&server, &alice, &room, posted["event_id"].as_str().unwrap()).await;
    assert_eq!(e["sender"], hook_user.as_str());
    assert_eq!(e["content"]["msgtype"], "m.notice");
    assert_eq!(e["content"]["format"], "org.matrix.custom.html");
    let html = e["content"]["formatted_body"].as_str().unwrap();
    for part in [
        "<b>Ticket</b>",
        "<a href=\"https://desk.example/12\">#12</a>",
        "<code>prod</code>",
        "Printer on fire",
        "Priority",
        "High",
        "Reporter",
    ] {
        assert!(html.contains(part), "{part} in {html}");
    }
    let body = e["content"]["body"].as_str().unwrap();
    assert!(
        body.contains("Ticket") && body.contains("https://desk.example/12"),
        "{body}"
    );
    assert_eq!(
        e["content"]["com.beeper.per_message_profile"]["displayname"],
        "Jira Cloud"
    );

    // Plain JSON with text and html (sanitised).
    let (status, posted) = post_raw(
        &server,
        &path,
        Some("application/json"),
        json!({ "text": "Deal won", "html": "<p>Deal <b>won</b><script>x()</script></p>" })
            .to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    let e = event(&server, &alice, &room, posted["event_id"].as_str().unwrap()).await;
    assert_eq!(e["content"]["body"], "Deal won");
    let html = e["content"]["formatted_body"].as_str().unwrap();
    assert!(
        html.contains("<b>won</b>") && !html.contains("script"),
        "{html}"
    );

    // Slack's form encoding: payload=<JSON>.
    let form = format!(
        "payload={}",
        enc(&json!({ "text": "Build _green_ on main" }).to_string())
    );
    let (status, posted) = post_raw(
        &server,
        &path,
        Some("application/x-www-form-urlencoded"),
        form,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    let e = event(&server, &alice, &room, posted["event_id"].as_str().unwrap()).await;
    assert!(
        e["content"]["formatted_body"]
            .as_str()
            .unwrap()
            .contains("<i>green</i>"),
        "{e}"
    );

    // Plain text.
    let (status, posted) =
        post_raw(&server, &path, Some("text/plain"), "disk 91% full on db-1").await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    let e = event(&server, &alice, &room, posted["event_id"].as_str().unwrap()).await;
    assert_eq!(e["content"]["body"], "disk 91% full on db-1");
    let last = posted["event_id"].as_str().unwrap().to_owned();

    // Refusals post nothing.
    let (status, answer) = post_raw(&server, &path, Some("application/json"), "{\"text\": ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errcode"], "M_BAD_JSON");
    assert!(
        answer["error"].as_str().unwrap().contains("JSON"),
        "{answer}"
    );
    let (status, answer) = post_raw(
        &server,
        &path,
        Some("application/json"),
        json!({ "attachments": "no" }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = post_raw(&server, &path, Some("text/plain"), "x".repeat(5000)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["errcode"], "M_TOO_LARGE");
    let wrong_secret = format!("{}x", &path);
    let (status, answer) = post_raw(&server, &wrong_secret, Some("text/plain"), "hi").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["errcode"], "M_NOT_FOUND");
    let (status, _) = post_raw(&server, "/_parvis/hooks/nohook/nosecret", None, "hi").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let newest = latest_messages(&server, &alice, &room).await;
    assert_eq!(newest[0]["event_id"], last.as_str(), "nothing half-posted");

    // Listing shows no secret; revoking kills the URL and the user leaves.
    let listed = server.get(&hooks_path(&room), &alice).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["webhooks"][0]["name"], "Jira");
    assert!(
        !listed
            .to_string()
            .contains(path.rsplit('/').next().unwrap())
    );
    let id = hook["id"].as_str().unwrap();
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("{}/{id}", hooks_path(&room)),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post_raw(&server, &path, Some("text/plain"), "after").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let listed = server.get(&hooks_path(&room), &alice).await;
    assert_eq!(listed["webhooks"], json!([]));
    let member = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
                enc(&room),
                enc(&hook_user)
            ),
            &alice,
        )
        .await;
    assert_eq!(member["membership"], "leave");
    server.stop().await;
}

#[tokio::test]
async fn only_members_who_may_send_state_manage_webhooks_and_posts_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("db"));
    c.webhooks.burst = 3.0;
    c.webhooks.posts_per_minute = 1.0;
    let server = TestServer::start_with(c).await;
    let (_, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let (_, mallory) = server.register("mallory").await;
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
    let create = |token: &str, name: &str| {
        let (server, token, room) = (&server, token.to_owned(), room.clone());
        let body = json!({ "name": name });
        async move {
            server
                .call(Method::POST, &hooks_path(&room), Some(&token), Some(body))
                .await
        }
    };
    let (status, answer) = create(&bob, "ci").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a member at level 0: {answer}"
    );
    assert_eq!(answer["errcode"], "M_FORBIDDEN");
    let (status, _) = create(&mallory, "ci").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not a member");
    let (status, _) = server
        .call(Method::GET, &hooks_path(&room), Some(&mallory), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .call(
            Method::POST,
            &hooks_path(&room),
            None,
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, answer) = create(&alice, "  ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // Bob gets the level to send state: now he may.
    let mut levels = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.power_levels/",
                enc(&room)
            ),
            &alice,
        )
        .await;
    levels["users"][bob_id.as_str()] = json!(50);
    server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.power_levels/",
                enc(&room)
            ),
            &alice,
            levels,
        )
        .await;
    let (status, hook) = create(&bob, "ci").await;
    assert_eq!(status, StatusCode::OK, "{hook}");
    let (status, answer) = create(&alice, "ci").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "names are unique: {answer}"
    );
    let path = hook["path"].as_str().unwrap();

    for n in 0..3 {
        let (status, answer) =
            post_raw(&server, path, Some("text/plain"), format!("post {n}")).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (status, answer) = post_raw(&server, path, Some("text/plain"), "one too many").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["errcode"], "M_LIMIT_EXCEEDED");
    let newest = latest_messages(&server, &alice, &room).await;
    assert_eq!(newest[0]["content"]["body"], "post 2");
    server.stop().await;
}

/// The text of the newest notice from `sender` in `room` containing `needle`, waiting for it.
async fn wait_for_notice(
    server: &TestServer,
    token: &str,
    room: &str,
    sender: &str,
    needle: &str,
) -> String {
    for _ in 0..200 {
        let found = latest_messages(server, token, room)
            .await
            .into_iter()
            .filter(|e| e["sender"] == sender)
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .find(|b| b.contains(needle));
        if let Some(found) = found {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "no notice with {needle:?} from {sender} in {room}: {:?}",
        latest_messages(server, token, room).await
    );
}

#[tokio::test]
async fn the_integration_user_manages_webhooks_by_command_and_sends_the_url_privately() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("db")).await;
    let (_, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    let bot = "@integrations:test.local";
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat", "invite": [bot] }))
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    wait_for_notice(&server, &alice, &room, bot, "!webhook create").await;

    server
        .send_text(&bob, &room, "b1", "!webhook create sneaky")
        .await;
    let refused = wait_for_notice(&server, &alice, &room, bot, "Sorry").await;
    assert!(refused.contains("power level"), "{refused}");

    server
        .send_text(&alice, &room, "a1", "!webhook create Grafana alerts")
        .await;
    let created = wait_for_notice(&server, &alice, &room, bot, "Created webhook").await;
    assert!(created.contains("Grafana alerts"), "{created}");
    let room_text: String = latest_messages(&server, &alice, &room)
        .await
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        !room_text.contains("/_parvis/hooks/"),
        "the URL is not shown in the room"
    );

    // The URL comes in a direct chat the bot invited alice to.
    let mut dm = None;
    for _ in 0..200 {
        let sync = server
            .get("/_matrix/client/v3/sync?timeout=0", &alice)
            .await;
        if let Some((id, _)) = sync["rooms"]["invite"]
            .as_object()
            .and_then(|m| m.iter().next())
        {
            dm = Some(id.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let dm = dm.expect("invited to a direct chat");
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&dm)),
            &alice,
            json!({}),
        )
        .await;
    let secret_message = wait_for_notice(&server, &alice, &dm, bot, "/_parvis/hooks/").await;
    let start = secret_message.find("/_parvis/hooks/").unwrap();
    let path: String = secret_message[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let (status, posted) = post_raw(
        &server,
        &path,
        Some("application/json"),
        json!({ "text": "CPU *high*" }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    let e = event(&server, &alice, &room, posted["event_id"].as_str().unwrap()).await;
    assert_eq!(e["content"]["formatted_body"], "CPU <b>high</b>");

    server.send_text(&alice, &room, "a2", "!webhook list").await;
    let listed = wait_for_notice(&server, &alice, &room, bot, "This room's webhooks").await;
    assert!(listed.contains("Grafana alerts"), "{listed}");
    server
        .send_text(&alice, &room, "a3", "!webhook revoke Grafana alerts")
        .await;
    wait_for_notice(&server, &alice, &room, bot, "Revoked webhook").await;
    let (status, _) = post_raw(&server, &path, Some("text/plain"), "after").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}
