//! The admin API (`/_synapse/admin/...`): admin-only access, `make-admin`, users and rooms.

mod common;

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

const ADMIN: &str = "/_synapse/admin";

/// A server whose `@root` was made admin with the CLI's function (server stopped in between).
async fn admin_server() -> (TempDir, TestServer, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    server.register("root").await;
    // The database of a running server is locked: make-admin refuses.
    assert!(
        parvis::services::admin::make_admin::make_admin(
            common::config(dir.path()),
            "@root:test.local"
        )
        .is_err()
    );
    server.stop().await;
    let made = parvis::services::admin::make_admin::make_admin(
        common::config(dir.path()),
        "@root:test.local",
    )
    .unwrap();
    assert_eq!(made.as_str(), "@root:test.local");
    let server = TestServer::start(dir.path()).await;
    let token = login(&server, "root", "secret-password")
        .await
        .expect("root logs in");
    (dir, server, token)
}

async fn login(
    server: &TestServer,
    user: &str,
    password: &str,
) -> Result<String, (StatusCode, Value)> {
    let body = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user }, "password": password });
    let (status, body) = server
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(body))
        .await;
    if status == StatusCode::OK {
        Ok(body["access_token"].as_str().unwrap().to_owned())
    } else {
        Err((status, body))
    }
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    server
        .call(method, &format!("{ADMIN}{path}"), Some(token), body)
        .await
}

fn errcode(body: &Value) -> &str {
    body["errcode"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn only_admins_pass_and_make_admin_grants_it() {
    let (_dir, server, root) = admin_server().await;
    let (_, bob) = server.register("bob").await;

    let (status, body) = server
        .call(Method::GET, &format!("{ADMIN}/v2/users"), None, None)
        .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN")
    );
    let (status, body) = call(&server, Method::GET, "/v2/users", "nonsense", None).await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN")
    );
    for path in [
        "/v2/users",
        "/v1/server_version",
        "/v1/rooms",
        "/v1/users/@root:test.local/admin",
    ] {
        let (status, body) = call(&server, Method::GET, path, &bob, None).await;
        assert_eq!(
            (status, errcode(&body)),
            (StatusCode::FORBIDDEN, "M_FORBIDDEN"),
            "{path}"
        );
    }
    let (status, body) = call(
        &server,
        Method::PUT,
        "/v1/users/@bob:test.local/admin",
        &bob,
        Some(json!({"admin": true})),
    )
    .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::FORBIDDEN, "M_FORBIDDEN")
    );

    let version = server
        .get(&format!("{ADMIN}/v1/server_version"), &root)
        .await;
    assert!(
        version["server_version"]
            .as_str()
            .unwrap()
            .starts_with("Parvis ")
    );
    assert_eq!(
        server
            .get(&format!("{ADMIN}/v1/users/@root:test.local/admin"), &root)
            .await["admin"],
        json!(true)
    );
    assert_eq!(
        server
            .get(&format!("{ADMIN}/v1/users/@bob:test.local/admin"), &root)
            .await["admin"],
        json!(false)
    );

    // The API makes and unmakes admins; nobody demotes themselves.
    server
        .put(
            &format!("{ADMIN}/v1/users/@bob:test.local/admin"),
            &root,
            json!({"admin": true}),
        )
        .await;
    assert_eq!(
        server
            .get(&format!("{ADMIN}/v1/users/@bob:test.local/admin"), &bob)
            .await["admin"],
        json!(true)
    );
    let (status, _) = call(
        &server,
        Method::PUT,
        "/v1/users/@root:test.local/admin",
        &root,
        Some(json!({"admin": false})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server
        .put(
            &format!("{ADMIN}/v1/users/@bob:test.local/admin"),
            &root,
            json!({"admin": false}),
        )
        .await;
    let (status, _) = call(&server, Method::GET, "/v2/users", &bob, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Remote and unknown users; malformed ids.
    let (status, _) = call(
        &server,
        Method::GET,
        "/v1/users/@x:elsewhere.org/admin",
        &root,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = call(
        &server,
        Method::GET,
        "/v1/users/@ghost:test.local/admin",
        &root,
        None,
    )
    .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    let (status, body) = call(&server, Method::GET, "/v2/users/not-a-user", &root, None).await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::BAD_REQUEST, "M_INVALID_PARAM")
    );

    // The client API is unchanged for admins.
    let me = server.get("/_matrix/client/v3/account/whoami", &root).await;
    assert_eq!(me["user_id"], "@root:test.local");
    // make-admin refuses unknown users and other servers' users.
    server.stop().await;
    assert!(
        parvis::services::admin::make_admin::make_admin(
            common::config(_dir.path()),
            "@ghost:test.local"
        )
        .is_err()
    );
    assert!(
        parvis::services::admin::make_admin::make_admin(
            common::config(_dir.path()),
            "@bob:elsewhere.org"
        )
        .is_err()
    );
}

#[tokio::test]
async fn user_list_pages_filters_and_sorts() {
    let (_dir, server, root) = admin_server().await;
    for (name, display) in [
        ("anna", "Zoe"),
        ("bert", "Yann"),
        ("cleo", "Xavier"),
        ("dan", "Walter"),
    ] {
        let (status, body) = call(
            &server,
            Method::PUT,
            &format!("/v2/users/@{name}:test.local"),
            &root,
            Some(json!({"password": "pw-123456", "displayname": display})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    server
        .post(
            &format!("{ADMIN}/v1/deactivate/@dan:test.local"),
            &root,
            json!({}),
        )
        .await;

    let names = |body: &Value| -> Vec<String> {
        body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = server
        .get(&format!("{ADMIN}/v2/users?limit=2"), &root)
        .await;
    assert_eq!(names(&first), ["@anna:test.local", "@bert:test.local"]);
    // The integration user (webhooks) is an account of the server too.
    assert_eq!(
        (first["total"].clone(), first["next_token"].clone()),
        (json!(5), json!("2"))
    );
    let second = server
        .get(&format!("{ADMIN}/v2/users?limit=2&from=2"), &root)
        .await;
    assert_eq!(
        names(&second),
        ["@cleo:test.local", "@integrations:test.local"]
    );
    assert_eq!(second["next_token"], json!("4"));
    let third = server
        .get(&format!("{ADMIN}/v2/users?limit=2&from=4"), &root)
        .await;
    assert_eq!(names(&third), ["@root:test.local"]);
    assert!(third.get("next_token").is_none());

    let all = server
        .get(&format!("{ADMIN}/v2/users?deactivated=true"), &root)
        .await;
    assert_eq!(all["total"], json!(6));
    let dan = all["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "@dan:test.local")
        .unwrap()
        .clone();
    assert_eq!(dan["deactivated"], json!(true));

    let by_name = server
        .get(&format!("{ADMIN}/v2/users?name=xav"), &root)
        .await;
    assert_eq!(names(&by_name), ["@cleo:test.local"]);
    let by_name = server
        .get(&format!("{ADMIN}/v2/users?name=ANNA"), &root)
        .await;
    assert_eq!(names(&by_name), ["@anna:test.local"]);
    let sorted = server
        .get(
            &format!("{ADMIN}/v2/users?order_by=displayname&dir=b&limit=3"),
            &root,
        )
        .await;
    assert_eq!(
        names(&sorted),
        ["@anna:test.local", "@bert:test.local", "@cleo:test.local"]
    );
    let admins = server
        .get(&format!("{ADMIN}/v2/users?admins=true"), &root)
        .await;
    assert_eq!(names(&admins), ["@root:test.local"]);

    for bad in [
        "limit=0",
        "limit=-1",
        "from=x",
        "order_by=nope",
        "dir=sideways",
        "deactivated=maybe",
    ] {
        let (status, body) = call(
            &server,
            Method::GET,
            &format!("/v2/users?{bad}"),
            &root,
            None,
        )
        .await;
        assert_eq!(
            (status, errcode(&body)),
            (StatusCode::BAD_REQUEST, "M_INVALID_PARAM"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn create_modify_and_deactivate_users() {
    let (_dir, server, root) = admin_server().await;
    let path = format!("{ADMIN}/v2/users/@erin:test.local");
    let (status, created) = server
        .call(
            Method::PUT,
            &path,
            Some(&root),
            Some(json!({"password": "first-pass", "displayname": "Erin", "admin": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (created["displayname"].clone(), created["admin"].clone()),
        (json!("Erin"), json!(true))
    );
    let shown = server.get(&path, &root).await;
    assert_eq!(
        (shown["name"].clone(), shown["deactivated"].clone()),
        (json!("@erin:test.local"), json!(false))
    );
    assert!(shown["creation_ts"].as_u64().unwrap() > 1_600_000_000_000);
    let (status, body) = call(
        &server,
        Method::GET,
        "/v2/users/@nobody:test.local",
        &root,
        None,
    )
    .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    let (status, _) = call(
        &server,
        Method::GET,
        "/v2/users/@erin:elsewhere.org",
        &root,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &server,
        Method::PUT,
        "/v2/users/@erin:elsewhere.org",
        &root,
        Some(json!({"password": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = call(
        &server,
        Method::PUT,
        "/v2/users/@Bad Name:test.local",
        &root,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(
        &server,
        Method::PUT,
        "/v2/users/@erin:test.local",
        &root,
        Some(json!({"admin": "yes"})),
    )
    .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::BAD_REQUEST, "M_BAD_JSON")
    );

    // Two sessions; a password change with logout_devices (the default) ends both.
    let first = login(&server, "erin", "first-pass").await.unwrap();
    let second = login(&server, "erin", "first-pass").await.unwrap();
    let devices = server.get(&format!("{path}/devices"), &root).await;
    assert_eq!(devices["total"], json!(2));
    let (status, modified) = server
        .call(
            Method::PUT,
            &path,
            Some(&root),
            Some(json!({"password": "second-pass", "displayname": "Erin B", "admin": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{modified}");
    assert_eq!(
        (modified["displayname"].clone(), modified["admin"].clone()),
        (json!("Erin B"), json!(false))
    );
    for token in [&first, &second] {
        let (status, body) = server
            .call(
                Method::GET,
                "/_matrix/client/v3/account/whoami",
                Some(token),
                None,
            )
            .await;
        assert_eq!(
            (status, errcode(&body)),
            (StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN")
        );
    }
    assert_eq!(
        server.get(&format!("{path}/devices"), &root).await["total"],
        json!(0)
    );
    assert_eq!(
        login(&server, "erin", "first-pass").await.unwrap_err().0,
        StatusCode::FORBIDDEN
    );

    // With logout_devices false the session stays; reset_password logs out by default.
    let kept = login(&server, "erin", "second-pass").await.unwrap();
    server
        .put(
            &path,
            &root,
            json!({"password": "third-pass", "logout_devices": false}),
        )
        .await;
    server.get("/_matrix/client/v3/account/whoami", &kept).await;
    server
        .post(
            &format!("{ADMIN}/v1/reset_password/@erin:test.local"),
            &root,
            json!({"new_password": "fourth-pass"}),
        )
        .await;
    let (status, _) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some(&kept),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(
        &server,
        Method::POST,
        "/v1/reset_password/@erin:test.local",
        &root,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::BAD_REQUEST, "M_BAD_JSON")
    );

    // Devices: whois, one device, rename, delete.
    let token = login(&server, "erin", "fourth-pass").await.unwrap();
    let me = server
        .get("/_matrix/client/v3/account/whoami", &token)
        .await;
    let device = me["device_id"].as_str().unwrap().to_owned();
    let whois = server
        .get(&format!("{ADMIN}/v1/whois/@erin:test.local"), &root)
        .await;
    let connections = &whois["devices"][""]["sessions"][0]["connections"];
    assert_eq!(connections.as_array().unwrap().len(), 1);
    assert!(connections[0]["last_seen"].as_u64().is_some());
    let one = server.get(&format!("{path}/devices/{device}"), &root).await;
    assert_eq!(
        (one["device_id"].clone(), one["user_id"].clone()),
        (json!(device), json!("@erin:test.local"))
    );
    server
        .put(
            &format!("{path}/devices/{device}"),
            &root,
            json!({"display_name": "laptop"}),
        )
        .await;
    assert_eq!(
        server.get(&format!("{path}/devices/{device}"), &root).await["display_name"],
        json!("laptop")
    );
    let (status, _) = call(
        &server,
        Method::GET,
        "/v2/users/@erin:test.local/devices/NOPE",
        &root,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("{path}/devices/{device}"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Deactivation: afterwards no login.
    let token = login(&server, "erin", "fourth-pass").await.unwrap();
    server
        .get("/_matrix/client/v3/account/whoami", &token)
        .await;
    let done = server
        .post(
            &format!("{ADMIN}/v1/deactivate/@erin:test.local"),
            &root,
            json!({}),
        )
        .await;
    assert_eq!(done["id_server_unbind_result"], "no-support");
    let (status, body) = login(&server, "erin", "fourth-pass").await.unwrap_err();
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::FORBIDDEN, "M_USER_DEACTIVATED")
    );
    let (status, _) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.get(&path, &root).await["deactivated"], json!(true));
    let (status, _) = call(
        &server,
        Method::POST,
        "/v1/deactivate/@ghost:test.local",
        &root,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Reactivation needs a password.
    let (status, body) = call(
        &server,
        Method::PUT,
        "/v2/users/@erin:test.local",
        &root,
        Some(json!({"deactivated": false})),
    )
    .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::BAD_REQUEST, "M_MISSING_PARAM")
    );
    server
        .put(
            &path,
            &root,
            json!({"deactivated": false, "password": "fifth-pass"}),
        )
        .await;
    login(&server, "erin", "fifth-pass").await.unwrap();
}

#[tokio::test]
async fn rooms_list_details_join_and_delete() {
    let (_dir, server, root) = admin_server().await;
    let (bob_id, bob) = server.register("bob").await;
    let (carol_id, carol) = server.register("carol").await;
    let lobby = server
        .create_room(&bob, json!({"preset": "public_chat", "name": "Lobby", "room_alias_name": "lobby", "visibility": "public"}))
        .await;
    let secret = server
        .create_room(&bob, json!({"preset": "private_chat", "name": "Secret"}))
        .await;
    let unnamed = server.create_room(&root, json!({})).await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&lobby)),
            &carol,
            json!({}),
        )
        .await;

    let ids = |body: &Value| -> Vec<String> {
        body["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["room_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = server.get(&format!("{ADMIN}/v1/rooms"), &root).await;
    assert_eq!(ids(&all), [lobby.clone(), secret.clone(), unnamed.clone()]);
    assert_eq!(
        (all["total_rooms"].clone(), all["offset"].clone()),
        (json!(3), json!(0))
    );
    assert!(all.get("next_batch").is_none());
    let page = server
        .get(
            &format!("{ADMIN}/v1/rooms?limit=2&order_by=joined_members"),
            &root,
        )
        .await;
    assert_eq!(ids(&page)[0], lobby);
    assert_eq!(page["next_batch"], json!(2));
    let rest = server
        .get(
            &format!("{ADMIN}/v1/rooms?limit=2&from=2&order_by=joined_members"),
            &root,
        )
        .await;
    assert_eq!(ids(&rest).len(), 1);
    assert_eq!(rest["prev_batch"], json!(0));
    let found = server
        .get(&format!("{ADMIN}/v1/rooms?search_term=secr"), &root)
        .await;
    assert_eq!(ids(&found), [secret.as_str()]);
    let reversed = server.get(&format!("{ADMIN}/v1/rooms?dir=b"), &root).await;
    assert_eq!(
        ids(&reversed),
        [unnamed.clone(), secret.clone(), lobby.clone()]
    );
    let (status, _) = call(
        &server,
        Method::GET,
        "/v1/rooms?order_by=colour",
        &root,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let details = server
        .get(&format!("{ADMIN}/v1/rooms/{}", enc(&lobby)), &root)
        .await;
    assert_eq!(details["name"], "Lobby");
    assert_eq!(details["canonical_alias"], "#lobby:test.local");
    assert_eq!(
        (
            details["joined_members"].clone(),
            details["joined_local_members"].clone()
        ),
        (json!(2), json!(2))
    );
    assert_eq!(
        (details["public"].clone(), details["join_rules"].clone()),
        (json!(true), json!("public"))
    );
    assert_eq!(details["creator"], json!(bob_id));
    assert!(details["state_events"].as_u64().unwrap() >= 6);
    let (status, body) = call(
        &server,
        Method::GET,
        "/v1/rooms/!missing:test.local",
        &root,
        None,
    )
    .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::NOT_FOUND, "M_NOT_FOUND")
    );
    let (status, _) = call(&server, Method::GET, "/v1/rooms/not-a-room", &root, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let members = server
        .get(&format!("{ADMIN}/v1/rooms/{}/members", enc(&lobby)), &root)
        .await;
    let mut listed: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, [bob_id.as_str(), carol_id.as_str()]);
    assert_eq!(members["total"], json!(2));
    let state = server
        .get(&format!("{ADMIN}/v1/rooms/{}/state", enc(&lobby)), &root)
        .await;
    let state = state["state"].as_array().unwrap();
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Lobby")
    );
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.create" && e["room_id"] == json!(lobby))
    );
    let joined = server
        .get(
            &format!("{ADMIN}/v1/users/{}/joined_rooms", enc(&bob_id)),
            &root,
        )
        .await;
    assert_eq!(joined["total"], json!(2));
    // A display name set through the admin API reaches the member events.
    server
        .put(
            &format!("{ADMIN}/v2/users/{}", enc(&bob_id)),
            &root,
            json!({"displayname": "Bobby"}),
        )
        .await;
    let state = server
        .get(&format!("{ADMIN}/v1/rooms/{}/state", enc(&lobby)), &root)
        .await;
    let member = state["state"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == json!(bob_id))
        .unwrap()
        .clone();
    assert_eq!(member["content"]["displayname"], "Bobby");

    // Admin join: a public room directly, by alias; a private room only through an admin in it.
    let (dave_id, _dave) = server.register("dave").await;
    let joined = server
        .post(
            &format!("{ADMIN}/v1/join/{}", enc("#lobby:test.local")),
            &root,
            json!({"user_id": dave_id}),
        )
        .await;
    assert_eq!(joined["room_id"], json!(lobby));
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/v1/join/{}", enc(&secret)),
        &root,
        Some(json!({"user_id": dave_id})),
    )
    .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::FORBIDDEN, "M_FORBIDDEN")
    );
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/v1/join/{}", enc(&lobby)),
        &root,
        Some(json!({"user_id": "@x:elsewhere.org"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server
        .post(
            &format!("{ADMIN}/v1/join/{}", enc(&unnamed)),
            &root,
            json!({"user_id": dave_id}),
        )
        .await;
    let details = server
        .get(&format!("{ADMIN}/v1/rooms/{}", enc(&unnamed)), &root)
        .await;
    assert_eq!(details["joined_members"], json!(2));

    // Deleting the lobby without purging: every local member leaves and it leaves the directory
    // and its aliases.
    assert_eq!(
        server
            .get(&format!("{ADMIN}/v1/rooms/{}", enc(&lobby)), &root)
            .await["joined_members"],
        json!(3)
    );
    let (status, body) = call(
        &server,
        Method::GET,
        &format!("/v2/rooms/{}/delete_status", enc(&lobby)),
        &root,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, deleted) = call(
        &server,
        Method::DELETE,
        &format!("/v2/rooms/{}", enc(&lobby)),
        &root,
        Some(json!({"purge": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let delete_id = deleted["delete_id"].as_str().unwrap().to_owned();
    let status = server
        .get(
            &format!("{ADMIN}/v2/rooms/{}/delete_status", enc(&lobby)),
            &root,
        )
        .await;
    let result = &status["results"][0];
    assert_eq!(
        (result["delete_id"].clone(), result["status"].clone()),
        (json!(delete_id), json!("complete"))
    );
    let mut kicked: Vec<&str> = result["shutdown_room"]["kicked_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    kicked.sort();
    assert_eq!(
        kicked,
        [bob_id.as_str(), carol_id.as_str(), dave_id.as_str()]
    );
    assert_eq!(
        result["shutdown_room"]["local_aliases"],
        json!(["#lobby:test.local"])
    );
    let by_id = server
        .get(
            &format!("{ADMIN}/v2/rooms/delete_status/{delete_id}"),
            &root,
        )
        .await;
    assert_eq!(by_id["room_id"], json!(lobby));

    let details = server
        .get(&format!("{ADMIN}/v1/rooms/{}", enc(&lobby)), &root)
        .await;
    assert_eq!(
        (details["joined_members"].clone(), details["public"].clone()),
        (json!(0), json!(false))
    );
    let joined = server.get("/_matrix/client/v3/joined_rooms", &carol).await;
    assert!(
        !joined["joined_rooms"]
            .as_array()
            .unwrap()
            .contains(&json!(lobby))
    );
    let (status, _) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/directory/room/%23lobby:test.local",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let public = server.get("/_matrix/client/v3/publicRooms", &bob).await;
    assert!(
        public["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["room_id"] != json!(lobby))
    );
    // Each member's leave is an event of the room the other members see.
    let state = server
        .get(&format!("{ADMIN}/v1/rooms/{}/state", enc(&lobby)), &root)
        .await;
    for user in [&bob_id, &carol_id, &dave_id] {
        let member = state["state"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "m.room.member" && e["state_key"] == json!(user))
            .unwrap();
        assert_eq!(
            (
                member["content"]["membership"].clone(),
                member["sender"].clone()
            ),
            (json!("leave"), json!(user))
        );
    }
    let (status, _) = call(
        &server,
        Method::DELETE,
        "/v2/rooms/!missing:test.local",
        &root,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A blocked room: local users may not join, knock or be invited (403), members stay; unblocked,
/// joining works again. Synapse's shapes.
#[tokio::test]
async fn a_blocked_room_refuses_joins_and_invites_until_unblocked() {
    let (_dir, server, root) = admin_server().await;
    let (_, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let block_path = format!("/v1/rooms/{}/block", common::enc(&room));
    let (status, body) = call(&server, Method::GET, &block_path, &root, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "block": false })));
    let (status, body) = call(
        &server,
        Method::PUT,
        &block_path,
        &root,
        Some(json!({ "block": true })),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "block": true })));
    let (status, body) = call(&server, Method::GET, &block_path, &root, None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({ "block": true, "user_id": "@root:test.local" })
        )
    );

    let join = format!("/_matrix/client/v3/join/{}", common::enc(&room));
    let (status, body) = server
        .call(Method::POST, &join, Some(&bob), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(errcode(&body), "M_FORBIDDEN");
    let invite = format!("/_matrix/client/v3/rooms/{}/invite", common::enc(&room));
    let (status, body) = server
        .call(
            Method::POST,
            &invite,
            Some(&alice),
            Some(json!({ "user_id": "@bob:test.local" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Alice, already a member, still posts.
    server.send_text(&alice, &room, "t1", "still here").await;

    let (status, _) = call(
        &server,
        Method::PUT,
        &block_path,
        &root,
        Some(json!({ "block": false })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .call(Method::POST, &join, Some(&bob), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&server, Method::GET, &block_path, &bob, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only admins: {body}");
    server.stop().await;
}

/// The message bodies of the room's last 50 events, as `token`'s user reads them.
async fn room_bodies(server: &TestServer, token: &str, room: &str) -> Vec<String> {
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
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

/// Polls an admin status route until its `field` is no longer `pending`.
async fn status_after(
    server: &TestServer,
    root: &str,
    path: &str,
    field: &str,
    pending: &str,
) -> Value {
    for _ in 0..200 {
        let body = server.get(path, root).await;
        let value = if field == "results.0.status" {
            body["results"][0]["status"].clone()
        } else {
            body[field].clone()
        };
        if value != json!(pending) {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} stayed {pending}");
}

#[tokio::test]
async fn purge_history_and_deleting_with_purge_and_block() {
    let (_dir, server, root) = admin_server().await;
    let (_, bob) = server.register("bob").await;
    let room = server
        .create_room(&bob, json!({ "preset": "public_chat" }))
        .await;
    let mut early = Vec::new();
    for n in 0..5 {
        early.push(
            server
                .send_text(&bob, &room, &format!("e{n}"), &format!("early {n}"))
                .await,
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let marker = server.send_text(&bob, &room, "m", "marker").await;
    server.send_text(&bob, &room, "l", "late message").await;
    // Neither an event nor a time: 400.
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/v1/purge_history/{}", enc(&room)),
        &root,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_MISSING_PARAM"))
    );
    // An event of no room here: 404.
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/v1/purge_history/{}/{}", enc(&room), enc("$nothing")),
        &root,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &server,
        Method::GET,
        "/v1/purge_history_status/nope",
        &root,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Up to the marker, local events kept (Synapse's default): nothing of bob's goes.
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/v1/purge_history/{}/{}", enc(&room), enc(&marker)),
        &root,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!(
        "{ADMIN}/v1/purge_history_status/{}",
        body["purge_id"].as_str().unwrap()
    );
    let done = status_after(&server, &root, &path, "status", "active").await;
    assert_eq!(done, json!({ "status": "complete" }));
    assert!(
        room_bodies(&server, &bob, &room)
            .await
            .contains(&"early 0".to_owned())
    );

    // With delete_local_events: the early messages go, the marker and what follows stay.
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/v1/purge_history/{}", enc(&room)),
        &root,
        Some(json!({ "purge_up_to_event_id": marker, "delete_local_events": true })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!(
        "{ADMIN}/v1/purge_history_status/{}",
        body["purge_id"].as_str().unwrap()
    );
    assert_eq!(
        status_after(&server, &root, &path, "status", "active").await,
        json!({ "status": "complete" })
    );
    let left = room_bodies(&server, &bob, &room).await;
    assert!(
        left.contains(&"marker".to_owned()) && left.contains(&"late message".to_owned()),
        "{left:?}"
    );
    assert!(!left.iter().any(|b| b.starts_with("early")), "{left:?}");
    let services = common::federation::services(&server);
    for id in &early {
        let event = parvis::services::rooms::event_by_id(
            &services,
            &ruma::OwnedEventId::try_from(id.as_str()).unwrap(),
        )
        .unwrap()
        .unwrap();
        assert!(
            event.pdu.content_value().get("body").is_none(),
            "{id} kept its content"
        );
    }

    // Deleting with block (and purge, the default): the room is blocked, then purged.
    let (status, body) = call(
        &server,
        Method::DELETE,
        &format!("/v2/rooms/{}", enc(&room)),
        &root,
        Some(json!({ "block": true })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("{ADMIN}/v2/rooms/{}/delete_status", enc(&room));
    let done = status_after(&server, &root, &path, "results.0.status", "purging").await;
    assert_eq!(done["results"][0]["status"], "complete", "{done}");
    let block = server
        .get(&format!("{ADMIN}/v1/rooms/{}/block", enc(&room)), &root)
        .await;
    assert_eq!(
        block,
        json!({ "block": true, "user_id": "@root:test.local" })
    );
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            Some(&bob),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for id in [&marker] {
        let event = parvis::services::rooms::event_by_id(
            &services,
            &ruma::OwnedEventId::try_from(id.as_str()).unwrap(),
        )
        .unwrap()
        .unwrap();
        assert!(
            event.pdu.content_value().get("body").is_none(),
            "{id} kept its content"
        );
    }

    // The purges are background jobs, listed with their kind.
    let jobs = server.get("/_parvis/admin/v1/jobs", &root).await;
    let kinds: Vec<(&str, &str)> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["kind"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("room_deletion", "complete")), "{kinds:?}");
    assert!(kinds.contains(&("purge_history", "complete")), "{kinds:?}");
    // v1 answers when everything is done.
    let other = server.create_room(&bob, json!({})).await;
    server.send_text(&bob, &other, "x", "to be purged").await;
    let (status, body) = call(
        &server,
        Method::DELETE,
        &format!("/v1/rooms/{}", enc(&other)),
        &root,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kicked_users"], json!(["@bob:test.local"]), "{body}");
    drop(services);
    server.stop().await;
}

#[tokio::test]
async fn room_history_routes_read_any_room() {
    let (_dir, server, root) = admin_server().await;
    let (_, bob) = server.register("bob").await;
    let room = server.create_room(&bob, json!({})).await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(
            server
                .send_text(&bob, &room, &format!("t{n}"), &format!("m{n}"))
                .await,
        );
    }
    let r = enc(&room);
    // Messages, though root is not in the room.
    let page = server
        .get(
            &format!("{ADMIN}/v1/rooms/{r}/messages?dir=b&limit=2"),
            &root,
        )
        .await;
    let bodies: Vec<&str> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["m3", "m2"]);
    let next = server
        .get(
            &format!(
                "{ADMIN}/v1/rooms/{r}/messages?dir=b&limit=1&from={}",
                enc(page["end"].as_str().unwrap())
            ),
            &root,
        )
        .await;
    assert_eq!(next["chunk"][0]["content"]["body"], "m1");
    let first = server
        .get(
            &format!("{ADMIN}/v1/rooms/{r}/messages?dir=f&limit=1"),
            &root,
        )
        .await;
    assert_eq!(first["chunk"][0]["type"], "m.room.create");
    let (status, _) = call(
        &server,
        Method::GET,
        "/v1/rooms/!none:test.local/messages",
        &root,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The event closest to a time.
    let found = server
        .get(
            &format!("{ADMIN}/v1/room/{r}/timestamp_to_event?ts=0"),
            &root,
        )
        .await;
    assert_eq!(found["event_id"], first["chunk"][0]["event_id"]);
    let later = parvis::util::now_ms() + 60_000;
    let found = server
        .get(
            &format!("{ADMIN}/v1/room/{r}/timestamp_to_event?ts={later}&dir=b"),
            &root,
        )
        .await;
    assert_eq!(found["event_id"], json!(ids[2]));
    let (status, body) = call(
        &server,
        Method::GET,
        &format!("/v1/room/{r}/timestamp_to_event"),
        &root,
        None,
    )
    .await;
    assert_eq!(
        (status, errcode(&body)),
        (StatusCode::BAD_REQUEST, "M_MISSING_PARAM")
    );

    // Forward extremities: a fork (two of them) is reduced to the deepest.
    let listed = server
        .get(&format!("{ADMIN}/v1/rooms/{r}/forward_extremities"), &root)
        .await;
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["results"][0]["event_id"], json!(ids[2]));
    let s = common::federation::services(&server);
    let short_room = s
        .short
        .room(&ruma::OwnedRoomId::try_from(room.as_str()).unwrap())
        .unwrap()
        .unwrap();
    let short = |id: &str| {
        s.short
            .event(&ruma::OwnedEventId::try_from(id).unwrap())
            .unwrap()
            .unwrap()
    };
    let fork: Vec<u8> = [short(&ids[1]), short(&ids[2])]
        .iter()
        .flat_map(|n| n.to_be_bytes())
        .collect();
    s.globals
        .db
        .put(
            parvis::services::timeline::EXTREMITIES,
            short_room.to_be_bytes(),
            fork,
        )
        .unwrap();
    let listed = server
        .get(&format!("{ADMIN}/v1/rooms/{r}/forward_extremities"), &root)
        .await;
    assert_eq!(listed["count"], 2);
    let (status, body) = call(
        &server,
        Method::DELETE,
        &format!("/v1/rooms/{r}/forward_extremities"),
        &root,
        None,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "deleted": 1 })));
    let listed = server
        .get(&format!("{ADMIN}/v1/rooms/{r}/forward_extremities"), &root)
        .await;
    assert_eq!(
        (
            listed["count"].clone(),
            listed["results"][0]["event_id"].clone()
        ),
        (json!(1), json!(ids[2]))
    );
    let after = server.send_text(&bob, &room, "t4", "m4").await;
    let event = server
        .get(
            &format!("{ADMIN}/v1/rooms/{r}/messages?dir=b&limit=1"),
            &root,
        )
        .await;
    assert_eq!(event["chunk"][0]["event_id"], json!(after));
    drop(s);
    server.stop().await;
}

#[tokio::test]
async fn users_account_data_pushers_login_shadow_ban_and_rate_limits() {
    let (_dir, server, root) = admin_server().await;
    let (bob_id, bob) = server.register("bob").await;
    let (_, carol) = server.register("carol").await;
    let b = enc(&bob_id);
    let room = server
        .create_room(&bob, json!({ "preset": "public_chat" }))
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &carol,
            json!({}),
        )
        .await;
    server
        .put(
            &format!("/_matrix/client/v3/user/{b}/account_data/org.example.settings"),
            &bob,
            json!({ "theme": "dark" }),
        )
        .await;
    server
        .put(
            &format!(
                "/_matrix/client/v3/user/{b}/rooms/{}/tags/u.work",
                enc(&room)
            ),
            &bob,
            json!({}),
        )
        .await;
    server
        .post("/_matrix/client/v3/pushers/set", &bob, json!({
            "kind": "http", "app_id": "org.example.app", "pushkey": "k1", "app_display_name": "App",
            "device_display_name": "Phone", "lang": "en", "data": { "url": "https://push.example.org/_matrix/push/v1/notify" } }))
        .await;

    // Account data and pushers.
    let data = server
        .get(&format!("{ADMIN}/v1/users/{b}/accountdata"), &root)
        .await;
    assert_eq!(
        data["account_data"]["global"]["org.example.settings"],
        json!({ "theme": "dark" })
    );
    assert!(
        data["account_data"]["rooms"][&room]["m.tag"]["tags"]["u.work"].is_object(),
        "{data}"
    );
    let pushers = server
        .get(&format!("{ADMIN}/v1/users/{b}/pushers"), &root)
        .await;
    assert_eq!(pushers["total"], 1);
    assert_eq!(pushers["pushers"][0]["pushkey"], "k1");
    let (status, _) = call(
        &server,
        Method::GET,
        "/v1/users/@nobody:test.local/pushers",
        &root,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Logging in as bob: a token of his, on a device he can see.
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/v1/users/{b}/login"),
        &root,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let as_bob = body["access_token"].as_str().unwrap().to_owned();
    let me = server
        .get("/_matrix/client/v3/account/whoami", &as_bob)
        .await;
    assert_eq!(me["user_id"], json!(bob_id));
    let devices = server.get("/_matrix/client/v3/devices", &bob).await;
    assert!(
        devices["devices"]
            .to_string()
            .contains("Logged in by the admin @root:test.local")
    );
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/v1/users/{b}/login"),
        &root,
        Some(json!({ "valid_until_ms": 1 })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Shadow-banned: bob's messages answer but nobody sees them; lifted: seen again.
    server
        .post(
            &format!("{ADMIN}/v1/users/{b}/shadow_ban"),
            &root,
            json!({}),
        )
        .await;
    let ghost = server.send_text(&bob, &room, "g1", "spam spam").await;
    assert!(ghost.starts_with('$'));
    let (status, _) = server
        .call(
            Method::GET,
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(&ghost)
            ),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            Some(&bob),
            Some(json!({ "user_id": "@root:test.local" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let details = server
        .get(&format!("{ADMIN}/v1/rooms/{}", enc(&room)), &root)
        .await;
    assert_eq!(
        details["invited_members"].as_u64().unwrap_or(0),
        0,
        "{details}"
    );
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("{ADMIN}/v1/users/{b}/shadow_ban"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let seen = server.send_text(&bob, &room, "g2", "hello for real").await;
    server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(&seen)
            ),
            &carol,
        )
        .await;
    drop(as_bob);

    // Rate-limit overrides.
    assert_eq!(
        server
            .get(&format!("{ADMIN}/v1/users/{b}/override_ratelimit"), &root)
            .await,
        json!({})
    );
    let set = server
        .post(
            &format!("{ADMIN}/v1/users/{b}/override_ratelimit"),
            &root,
            json!({ "messages_per_second": 0, "burst_count": 0 }),
        )
        .await;
    assert_eq!(set, json!({ "messages_per_second": 0, "burst_count": 0 }));
    assert_eq!(
        server
            .get(&format!("{ADMIN}/v1/users/{b}/override_ratelimit"), &root)
            .await,
        set
    );
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/v1/users/{b}/override_ratelimit"),
        &root,
        Some(json!({ "messages_per_second": -1 })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = call(
        &server,
        Method::DELETE,
        &format!("/v1/users/{b}/override_ratelimit"),
        &root,
        None,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(
        server
            .get(&format!("{ADMIN}/v1/users/{b}/override_ratelimit"), &root)
            .await,
        json!({})
    );
    server.stop().await;
}

/// An override is what the limiter applies to the user's rate-limited requests: with limits on,
/// a user limited to 1 request per second and a burst of 2 is refused the third at once; 0 per
/// second lifts the limit.
#[tokio::test]
async fn a_rate_limit_override_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.rate_limits.enabled = true;
    config.rate_limits.per_second = 1000.0;
    config.rate_limits.burst = 1000.0;
    let server = TestServer::start_with(config).await;
    let (bob_id, bob) = server.register("bob").await;
    let room = server.create_room(&bob, json!({})).await;
    let s = common::federation::services(&server);
    let limits = |per_second, burst| parvis::services::ratelimit::Override {
        messages_per_second: per_second,
        burst_count: burst,
    };
    s.rate_limiter
        .set_override(&s.globals.db, &bob_id, Some(limits(1, 2)))
        .unwrap();
    let event = server.send_text(&bob, &room, "r", "read me").await;
    // Receipts are rate-limited routes.
    let receipt = format!(
        "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
        enc(&room),
        enc(&event)
    );
    let mut refused = 0;
    for _ in 0..3 {
        let (status, _) = server
            .call(Method::POST, &receipt, Some(&bob), Some(json!({})))
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert_eq!(refused, 1);
    s.rate_limiter
        .set_override(&s.globals.db, &bob_id, Some(limits(0, 0)))
        .unwrap();
    for _ in 0..20 {
        let (status, _) = server
            .call(Method::POST, &receipt, Some(&bob), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    drop(s);
    server.stop().await;
}

/// `erase: true`: the user's events reach readers who were not in the room when they were sent
/// in redacted form; members of that time still read them; the profile is gone.
#[tokio::test]
async fn an_erased_users_events_are_redacted_for_new_readers() {
    let (_dir, server, root) = admin_server().await;
    let (_, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    let (_, carol) = server.register("carol").await;
    server
        .put(
            "/_matrix/client/v3/profile/@bob:test.local/displayname",
            &bob,
            json!({ "displayname": "Bob" }),
        )
        .await;
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
    let said = server.send_text(&bob, &room, "b1", "bob's words").await;
    let done = server
        .post(
            &format!("{ADMIN}/v1/deactivate/{}", enc(&bob_id)),
            &root,
            json!({ "erase": true }),
        )
        .await;
    assert_eq!(done["id_server_unbind_result"], "no-support");
    // carol joins afterwards: a new reader.
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &carol,
            json!({}),
        )
        .await;
    let event_path = format!(
        "/_matrix/client/v3/rooms/{}/event/{}",
        enc(&room),
        enc(&said)
    );
    let for_carol = server.get(&event_path, &carol).await;
    assert_eq!(for_carol["content"], json!({}), "{for_carol}");
    let for_alice = server.get(&event_path, &alice).await;
    assert_eq!(for_alice["content"]["body"], "bob's words");
    let page = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=20",
                enc(&room)
            ),
            &carol,
        )
        .await;
    let seen = page["chunk"].to_string();
    assert!(
        seen.contains(&said) && !seen.contains("bob's words"),
        "{seen}"
    );
    let sync = server.get("/_matrix/client/v3/sync", &carol).await;
    assert!(!sync.to_string().contains("bob's words"));
    let profile = server
        .get(&format!("{ADMIN}/v2/users/{}", enc(&bob_id)), &root)
        .await;
    assert_eq!(profile["displayname"], Value::Null, "{profile}");
    assert_eq!(profile["deactivated"], true);
    server.stop().await;
}
