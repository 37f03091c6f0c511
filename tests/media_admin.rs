//! The media admin API (issue 11, Synapse's routes and shapes) and media retention: information
//! and last access, a user's media paged, per-user statistics, quarantine of one medium / a room's
//! / a user's (protected media excepted) and its undoing, deletion of one / by date / of a user's
//! (a file shared by identical uploads stays until nothing names it), the remote cache purge, and
//! `[media] local_media_lifetime` / `remote_media_lifetime`.

mod common;

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "/_synapse/admin/v1";

async fn admin_server(
    config: impl FnOnce(&mut parvis::config::Config),
) -> (tempfile::TempDir, TestServer, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::config(dir.path());
    config(&mut c);
    let server = TestServer::start_with(c.clone()).await;
    let (_, token) = server.register("root").await;
    server.stop().await;
    parvis::services::admin::make_admin::make_admin(c.clone(), "@root:test.local").unwrap();
    (dir, TestServer::start_with(c).await, token)
}

async fn upload(server: &TestServer, token: &str, bytes: &'static [u8], name: &str) -> String {
    let body: Value = server
        .http
        .post(format!(
            "{}/_matrix/media/v3/upload?filename={name}",
            server.base
        ))
        .bearer_auth(token)
        .header("content-type", "text/plain")
        .body(bytes)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["content_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mxc://test.local/")
        .to_owned()
}

async fn download(server: &TestServer, token: &str, media_id: &str) -> StatusCode {
    server
        .http
        .get(format!(
            "{}/_matrix/client/v1/media/download/test.local/{media_id}",
            server.base
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn admin(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
) -> (StatusCode, Value) {
    server
        .call(
            method,
            &format!("{ADMIN}{path}"),
            Some(token),
            Some(json!({})),
        )
        .await
}

fn file_of(server: &TestServer, media_id: &str) -> std::path::PathBuf {
    let s = common::federation::services(server);
    let record =
        parvis::services::media::records::get(s.media.db(), &s.config().server_name, media_id)
            .unwrap()
            .unwrap();
    s.media.files.path_of(&record.sha256.unwrap()).unwrap()
}

#[tokio::test]
async fn media_admin_routes_follow_synapse() {
    let (_dir, server, root) = admin_server(|_| {}).await;
    let (_, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    let a = upload(&server, &alice, b"alpha file", "a.txt").await;
    let b = upload(&server, &alice, b"bravo file!", "b.txt").await;
    let c = upload(&server, &bob, b"charlie", "c.txt").await;
    let room = server.create_room(&alice, json!({})).await;
    server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/1",
                enc(&room)
            ),
            &alice,
            json!({ "msgtype": "m.file", "body": "a.txt", "url": format!("mxc://test.local/{a}") }),
        )
        .await;
    assert_eq!(download(&server, &bob, &a).await, StatusCode::OK);

    // Information, with the last access.
    let info = server
        .get(&format!("{ADMIN}/media/test.local/{a}"), &root)
        .await;
    let info = &info["media_info"];
    assert_eq!(info["media_id"], json!(a));
    assert_eq!(info["user_id"], "@alice:test.local");
    assert_eq!(info["media_length"], 10);
    assert_eq!(info["upload_name"], "a.txt");
    assert!(info["last_access_ts"].as_u64().is_some(), "{info}");
    assert_eq!(info["quarantined_by"], Value::Null);
    let (status, _) = admin(&server, Method::GET, "/media/test.local/nothing", &root).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A user's media, paged; per-user statistics.
    let page = server
        .get(
            &format!("{ADMIN}/users/{}/media?limit=1", enc("@alice:test.local")),
            &root,
        )
        .await;
    assert_eq!(
        (page["total"].clone(), page["next_token"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(page["media"][0]["media_id"], json!(a));
    let by_size = server
        .get(
            &format!(
                "/_synapse/admin/v3/users/{}/media?order_by=media_length&dir=b",
                enc("@alice:test.local")
            ),
            &root,
        )
        .await;
    assert_eq!(by_size["media"][0]["media_id"], json!(b));
    let stats = server
        .get(&format!("{ADMIN}/statistics/users/media"), &root)
        .await;
    let users: Vec<(String, u64, u64)> = stats["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["user_id"].as_str().unwrap().to_owned(),
                u["media_count"].as_u64().unwrap(),
                u["media_length"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            ("@bob:test.local".to_owned(), 1, 7),
            ("@alice:test.local".to_owned(), 2, 21)
        ]
    );

    // Quarantine: not served; undone: served again.
    let (status, _) = admin(
        &server,
        Method::POST,
        &format!("/media/quarantine/test.local/{a}"),
        &root,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(download(&server, &bob, &a).await, StatusCode::NOT_FOUND);
    let info = server
        .get(&format!("{ADMIN}/media/test.local/{a}"), &root)
        .await;
    assert_eq!(info["media_info"]["quarantined_by"], "@root:test.local");
    admin(
        &server,
        Method::POST,
        &format!("/media/unquarantine/test.local/{a}"),
        &root,
    )
    .await;
    assert_eq!(download(&server, &bob, &a).await, StatusCode::OK);
    // A room's media, and quarantining it.
    let listed = server
        .get(&format!("{ADMIN}/room/{}/media", enc(&room)), &root)
        .await;
    assert_eq!(
        listed,
        json!({ "local": [format!("mxc://test.local/{a}")], "remote": [] })
    );
    let (_, body) = admin(
        &server,
        Method::POST,
        &format!("/room/{}/media/quarantine", enc(&room)),
        &root,
    )
    .await;
    assert_eq!(body, json!({ "num_quarantined": 1 }));
    admin(
        &server,
        Method::POST,
        &format!("/media/unquarantine/test.local/{a}"),
        &root,
    )
    .await;
    // A user's media, the protected one excepted.
    admin(&server, Method::POST, &format!("/media/protect/{b}"), &root).await;
    let (_, body) = admin(
        &server,
        Method::POST,
        &format!("/user/{}/media/quarantine", enc("@alice:test.local")),
        &root,
    )
    .await;
    assert_eq!(body, json!({ "num_quarantined": 1 }));
    assert_eq!(download(&server, &alice, &b).await, StatusCode::OK);
    assert_eq!(download(&server, &alice, &a).await, StatusCode::NOT_FOUND);
    admin(
        &server,
        Method::POST,
        &format!("/media/unprotect/{b}"),
        &root,
    )
    .await;

    // Deleting one (only ours), then by date (the protected and avatars kept).
    let (status, _) = admin(&server, Method::DELETE, "/media/elsewhere.org/xyz", &root).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let c_file = file_of(&server, &c);
    let (status, body) = admin(
        &server,
        Method::DELETE,
        &format!("/media/test.local/{c}"),
        &root,
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "deleted_media": [c], "total": 1 }))
    );
    assert_eq!(download(&server, &bob, &c).await, StatusCode::NOT_FOUND);
    assert!(!c_file.exists(), "the file is gone");
    // Identical uploads share a file: it stays while one of them is left.
    let twin1 = upload(&server, &bob, b"same bytes", "1.txt").await;
    let twin2 = upload(&server, &bob, b"same bytes", "2.txt").await;
    let shared = file_of(&server, &twin1);
    admin(
        &server,
        Method::DELETE,
        &format!("/media/test.local/{twin1}"),
        &root,
    )
    .await;
    assert!(shared.exists());
    assert_eq!(download(&server, &bob, &twin2).await, StatusCode::OK);
    admin(
        &server,
        Method::DELETE,
        &format!("/users/{}/media", enc("@bob:test.local")),
        &root,
    )
    .await;
    assert!(!shared.exists());
    let avatar = upload(&server, &alice, b"my face", "face.png").await;
    server
        .put(
            "/_matrix/client/v3/profile/@alice:test.local/avatar_url",
            &alice,
            json!({ "avatar_url": format!("mxc://test.local/{avatar}") }),
        )
        .await;
    admin(&server, Method::POST, &format!("/media/protect/{b}"), &root).await;
    let (status, body) = admin(&server, Method::POST, "/media/delete", &root).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_MISSING_PARAM"))
    );
    let future = parvis::util::now_ms() + 60_000;
    let (status, body) = admin(
        &server,
        Method::POST,
        &format!("/media/delete?before_ts={future}&size_gt=0"),
        &root,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted_media"], json!([a]), "{body}");
    assert_eq!(download(&server, &alice, &b).await, StatusCode::OK);
    assert_eq!(download(&server, &alice, &avatar).await, StatusCode::OK);

    // The remote cache.
    let s = common::federation::services(&server);
    let remote: ruma::OwnedServerName = "elsewhere.org".try_into().unwrap();
    parvis::services::media::download::store_remote(
        &s,
        &remote,
        "cached1",
        parvis::services::media::remote::Fetched {
            bytes: b"remote bytes".to_vec(),
            content_type: None,
            filename: None,
        },
    )
    .unwrap();
    let (_, body) = admin(
        &server,
        Method::POST,
        "/purge_media_cache?before_ts=1",
        &root,
    )
    .await;
    assert_eq!(body, json!({ "deleted": 0 }));
    let (_, body) = admin(
        &server,
        Method::POST,
        &format!("/purge_media_cache?before_ts={future}"),
        &root,
    )
    .await;
    assert_eq!(body, json!({ "deleted": 1 }));
    drop(s);
    server.stop().await;
}

#[tokio::test]
async fn media_retention_deletes_what_was_not_read_for_its_lifetime() {
    use parvis::services::retention::lifetime::Lifetime;
    let (_dir, server, root) = admin_server(|c| {
        c.media.local_media_lifetime = Some(Lifetime(5_000));
        c.media.remote_media_lifetime = Some(Lifetime(5_000));
    })
    .await;
    let (_, alice) = server.register("alice").await;
    let old = upload(&server, &alice, b"old and unread", "old.txt").await;
    let kept = upload(&server, &alice, b"protected one", "kept.txt").await;
    admin(
        &server,
        Method::POST,
        &format!("/media/protect/{kept}"),
        &root,
    )
    .await;
    let s = common::federation::services(&server);
    // Nothing is past its lifetime yet.
    assert_eq!(parvis::services::media::retention::expire(&s).unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    let fresh = upload(&server, &alice, b"new", "new.txt").await;
    assert_eq!(parvis::services::media::retention::expire(&s).unwrap(), 1);
    assert_eq!(download(&server, &alice, &old).await, StatusCode::NOT_FOUND);
    assert_eq!(download(&server, &alice, &kept).await, StatusCode::OK);
    assert_eq!(download(&server, &alice, &fresh).await, StatusCode::OK);
    drop(s);
    server.stop().await;
}
