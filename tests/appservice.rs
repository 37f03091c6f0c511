//! Application services (issue 10), first part: registration files read at start-up (a bad one
//! stops the server with the file and field named) and the ids they hold exclusively, which
//! ordinary users may not take (400 `M_EXCLUSIVE`).

mod common;

use common::{TestServer, config, enc};
use reqwest::{Method, StatusCode};
use serde_json::json;

const IRC: &str = r##"
id: irc
url: null
as_token: "as-irc-token"
hs_token: "hs-irc-token"
sender_localpart: _irc_bot
namespaces:
  users:
    - exclusive: true
      regex: "@_irc_.*:test\\.local"
  aliases:
    - exclusive: true
      regex: "#_irc_.*"
"##;

#[tokio::test]
async fn exclusive_namespaces_are_kept_for_their_application_service() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("irc.yaml");
    std::fs::write(&file, IRC).unwrap();
    let mut c = config(&dir.path().join("db"));
    c.appservices.registration_files = vec![file];
    let server = TestServer::start_with(c).await;

    let body = json!({ "username": "_irc_alice", "password": "secret-password", "auth": { "type": "m.login.dummy" } });
    let (status, answer) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(body),
        )
        .await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_EXCLUSIVE")),
        "{answer}"
    );
    let (status, answer) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/register/available?username=_irc_alice",
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_EXCLUSIVE")),
        "{answer}"
    );
    let (status, answer) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/register/available?username=irc_alice",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "outside the namespace: {answer}");

    let (_, alice) = server.register("alice").await;
    let room = server.create_room(&alice, json!({})).await;
    let alias_path = |alias: &str| format!("/_matrix/client/v3/directory/room/{}", enc(alias));
    let (status, answer) = server
        .call(
            Method::PUT,
            &alias_path("#_irc_general:test.local"),
            Some(&alice),
            Some(json!({ "room_id": room })),
        )
        .await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_EXCLUSIVE")),
        "{answer}"
    );
    let (status, _) = server
        .call(
            Method::GET,
            &alias_path("#_irc_general:test.local"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
    let (status, answer) = server
        .call(
            Method::PUT,
            &alias_path("#general:test.local"),
            Some(&alice),
            Some(json!({ "room_id": room })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_bad_registration_stops_the_server_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, IRC.replace("\"#_irc_.*\"", "\"#_irc_(\"")).unwrap();
    let mut c = config(&dir.path().join("db"));
    c.appservices.registration_files = vec![file];
    let error = match parvis::server::start(c).await {
        Ok(_) => panic!("the server started with a broken registration"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("broken.yaml") && error.contains("namespaces.aliases"),
        "{error}"
    );
}
