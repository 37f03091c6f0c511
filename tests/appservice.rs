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

/// A server configuration with these registration files (name, YAML text), written into `dir`.
fn config_with(dir: &std::path::Path, registrations: &[(&str, String)]) -> parvis::config::Config {
    let mut c = config(&dir.join("db"));
    for (name, text) in registrations {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        c.appservices.registration_files.push(file);
    }
    c
}

/// Sends a message at `path` (a full `/send` path, query included) with `token`, and returns the
/// event as `viewer` fetches it.
async fn send_and_fetch(
    server: &TestServer,
    room: &str,
    path: &str,
    token: &str,
    body: &str,
    viewer: &str,
) -> serde_json::Value {
    let (status, sent) = server
        .call(
            Method::PUT,
            path,
            Some(token),
            Some(json!({ "msgtype": "m.text", "body": body })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let event_id = sent["event_id"].as_str().unwrap();
    server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(room),
                enc(event_id)
            ),
            viewer,
        )
        .await
}

#[tokio::test]
async fn exclusive_namespaces_are_kept_for_their_application_service() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_with(config_with(dir.path(), &[("irc.yaml", IRC.to_owned())])).await;

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
    let c = config_with(
        dir.path(),
        &[("broken.yaml", IRC.replace("\"#_irc_.*\"", "\"#_irc_(\""))],
    );
    let error = match parvis::server::start(c).await {
        Ok(_) => panic!("the server started with a broken registration"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("broken.yaml") && error.contains("namespaces.aliases"),
        "{error}"
    );
}

/// The application service's `as_token`: it acts as its own user (created at start-up) or, with
/// `user_id`, as a user of its namespace it registered (`m.login.application_service`, no UIA);
/// never as anyone else.
#[tokio::test]
async fn the_as_token_registers_and_acts_as_namespaced_users_only() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_with(config_with(dir.path(), &[("irc.yaml", IRC.to_owned())])).await;
    let token = "as-irc-token";
    let whoami = |user: Option<&str>| {
        let path = match user {
            Some(u) => format!("/_matrix/client/v3/account/whoami?user_id={}", enc(u)),
            None => "/_matrix/client/v3/account/whoami".to_owned(),
        };
        let server = &server;
        async move { server.call(Method::GET, &path, Some(token), None).await }
    };
    let (status, me) = whoami(None).await;
    assert_eq!(
        (status, me["user_id"].as_str()),
        (StatusCode::OK, Some("@_irc_bot:test.local")),
        "{me}"
    );

    let (_, types) = server
        .call(Method::GET, "/_matrix/client/v3/login", None, None)
        .await;
    assert!(
        types["flows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["type"] == "m.login.application_service"),
        "{types}"
    );

    let register = |username: &str, as_token: Option<&'static str>| {
        let body = json!({ "type": "m.login.application_service", "username": username });
        let server = &server;
        async move {
            server
                .call(
                    Method::POST,
                    "/_matrix/client/v3/register",
                    as_token,
                    Some(body),
                )
                .await
        }
    };
    let (status, done) = register("_irc_bob", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["user_id"], "@_irc_bob:test.local");
    let (status, again) = register("_irc_bob", Some(token)).await;
    assert_eq!(
        (status, again["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_USER_IN_USE")),
        "{again}"
    );
    let (status, outside) = register("mallory", Some(token)).await;
    assert_eq!(
        (status, outside["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_EXCLUSIVE")),
        "{outside}"
    );
    // Frameworks (mautrix) name the user they create in `user_id`, before it exists.
    let (status, named) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/register?kind=user&user_id={}", enc("@_irc_dave:test.local")),
            Some(token),
            Some(json!({ "type": "m.login.application_service", "username": "_irc_dave", "inhibit_login": true })),
        )
        .await;
    assert_eq!(
        (status, named["user_id"].as_str()),
        (StatusCode::OK, Some("@_irc_dave:test.local")),
        "{named}"
    );
    assert!(
        named.get("access_token").is_none(),
        "inhibit_login: {named}"
    );
    let (status, anonymous) = register("_irc_carol", None).await;
    assert_eq!(
        (status, anonymous["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_MISSING_TOKEN")),
        "{anonymous}"
    );

    let (status, me) = whoami(Some("@_irc_bob:test.local")).await;
    assert_eq!(
        (status, me["user_id"].as_str()),
        (StatusCode::OK, Some("@_irc_bob:test.local")),
        "{me}"
    );
    let (alice_id, alice) = server.register("alice").await;
    let (status, denied) = whoami(Some(&alice_id)).await;
    assert_eq!(
        (status, denied["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")),
        "{denied}"
    );
    let (status, unknown) = whoami(Some("@_irc_nobody:test.local")).await;
    assert_eq!(
        (status, unknown["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")),
        "{unknown}"
    );

    // The bridge's user joins alice's room and speaks there as itself.
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let as_bob = |path: String| format!("{path}?user_id={}", enc("@_irc_bob:test.local"));
    let (status, joined) = server
        .call(
            Method::POST,
            &as_bob(format!("/_matrix/client/v3/join/{}", enc(&room))),
            Some(token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    let send = |txn: &str| {
        format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
            enc(&room)
        )
    };
    let event = send_and_fetch(
        &server,
        &room,
        &as_bob(send("t1")),
        token,
        "from irc",
        &alice,
    )
    .await;
    assert_eq!(event["sender"], "@_irc_bob:test.local", "{event}");

    // Timestamp massaging: the bridged message keeps the time it was sent on the other network;
    // an ordinary user's `ts` is ignored.
    let at = format!("{}&ts=1500000000000", as_bob(send("t2")));
    let event = send_and_fetch(&server, &room, &at, token, "old", &alice).await;
    assert_eq!(event["origin_server_ts"], 1_500_000_000_000u64, "{event}");
    let at = format!("{}?ts=1500000000000", send("t3"));
    let event = send_and_fetch(&server, &room, &at, &alice, "now", &alice).await;
    assert!(
        event["origin_server_ts"].as_u64().unwrap() > 1_700_000_000_000,
        "{event}"
    );

    // A device of its own for one of its users.
    let login = json!({ "type": "m.login.application_service", "identifier": { "type": "m.id.user", "user": "_irc_bob" } });
    let (status, logged) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/login",
            Some(token),
            Some(login.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{logged}");
    let me = server
        .get(
            "/_matrix/client/v3/account/whoami",
            logged["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(me["user_id"], "@_irc_bob:test.local");
    let (status, refused) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/login",
            Some(&alice),
            Some(login),
        )
        .await;
    assert_eq!(
        (status, refused["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_MISSING_TOKEN")),
        "{refused}"
    );
    let stranger = json!({ "type": "m.login.application_service", "identifier": { "type": "m.id.user", "user": alice_id } });
    let (status, refused) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/login",
            Some(token),
            Some(stranger),
        )
        .await;
    assert_eq!(
        (status, refused["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")),
        "{refused}"
    );
    server.stop().await;
}

/// A stand-in application service on loopback: records every transaction PUT to it and answers
/// 500 while `failing` is set.
#[derive(Clone, Default)]
struct FakeService {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String, Vec<String>, bool)>>>,
    pings: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    /// The homeserver the fake service acts on when queried (its base URL).
    homeserver: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    queries: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The `ephemeral` events of accepted transactions, in order.
    ephemeral: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    /// The `to_device` messages of accepted transactions (MSC4203), in order.
    to_device: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    /// The bodies of accepted transactions, in order.
    bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

/// The id field of a third-party `location` (`alias`) or `user` (`userid`), and its value: the
/// one asked for in `query`, or a fixed one.
fn third_party_id(
    kind: &str,
    query: Option<&std::collections::BTreeMap<String, String>>,
) -> (&'static str, String) {
    let (field, fixed) = match kind {
        "location" => ("alias", "#_irc_x:test.local"),
        _ => ("userid", "@_irc_nick:test.local"),
    };
    let asked = query.and_then(|q| q.get(field)).cloned();
    (field, asked.unwrap_or_else(|| fixed.to_owned()))
}

impl FakeService {
    async fn start(&self) -> String {
        use axum::{Json, Router, extract::Path, http::HeaderMap, routing::put};
        let me = self.clone();
        let pinger = self.clone();
        let (alias_me, user_me) = (self.clone(), self.clone());
        let app = Router::new()
            .route(
                "/_matrix/app/v1/rooms/{alias}",
                axum::routing::get(move |Path(alias): Path<String>| {
                    let me = alias_me.clone();
                    async move {
                        me.queries.lock().unwrap().push(alias.clone());
                        if !alias.starts_with("#_irc_made") {
                            return (StatusCode::NOT_FOUND, Json(json!({ "errcode": "M_NOT_FOUND" })));
                        }
                        // Create the room and its alias as the bridge's own user.
                        let base = me.homeserver.lock().unwrap().clone().unwrap();
                        let http = reqwest::Client::new();
                        let created: serde_json::Value = http
                            .post(format!("{base}/_matrix/client/v3/createRoom"))
                            .bearer_auth("as-irc-token")
                            .json(&json!({ "preset": "public_chat", "room_alias_name": alias.trim_start_matches('#').split(':').next().unwrap() }))
                            .send().await.unwrap().json().await.unwrap();
                        assert!(created["room_id"].is_string(), "{created}");
                        (StatusCode::OK, Json(json!({})))
                    }
                }),
            )
            .route(
                "/_matrix/app/v1/users/{user}",
                axum::routing::get(move |Path(user): Path<String>| {
                    let me = user_me.clone();
                    async move {
                        me.queries.lock().unwrap().push(user.clone());
                        let base = me.homeserver.lock().unwrap().clone().unwrap();
                        let localpart = user.trim_start_matches('@').split(':').next().unwrap().to_owned();
                        reqwest::Client::new()
                            .post(format!("{base}/_matrix/client/v3/register"))
                            .bearer_auth("as-irc-token")
                            .json(&json!({ "type": "m.login.application_service", "username": localpart }))
                            .send().await.unwrap();
                        (StatusCode::OK, Json(json!({})))
                    }
                }),
            )
            .route(
                "/_matrix/app/v1/thirdparty/protocol/{protocol}",
                axum::routing::get(|Path(protocol): Path<String>| async move {
                    if protocol != "irc" {
                        return (StatusCode::NOT_FOUND, Json(json!({ "errcode": "M_NOT_FOUND" })));
                    }
                    (StatusCode::OK, Json(json!({
                        "user_fields": ["network", "nickname"],
                        "location_fields": ["network", "channel"],
                        "icon": "mxc://test.local/irc",
                        "field_types": {
                            "network": { "regexp": "[a-z.]+", "placeholder": "libera.chat" },
                            "nickname": { "regexp": "[^\\s]+", "placeholder": "alice" },
                            "channel": { "regexp": "#[^\\s]+", "placeholder": "#matrix" }
                        },
                        "instances": [{
                            "desc": "Libera Chat",
                            "network_id": "libera",
                            "fields": { "network": "libera.chat" }
                        }]
                    })))
                }),
            )
            // Lookups in a protocol echo the fields asked; reverse lookups answer for the id asked.
            .route(
                "/_matrix/app/v1/thirdparty/{kind}/{protocol}",
                axum::routing::get(
                    |Path((kind, protocol)): Path<(String, String)>,
                     axum::extract::Query(fields): axum::extract::Query<std::collections::BTreeMap<String, String>>| async move {
                        let (field, id) = third_party_id(&kind, None);
                        Json(json!([{ field: id, "protocol": protocol, "fields": fields }]))
                    },
                ),
            )
            .route(
                "/_matrix/app/v1/thirdparty/{kind}",
                axum::routing::get(
                    |Path(kind): Path<String>,
                     axum::extract::Query(q): axum::extract::Query<std::collections::BTreeMap<String, String>>| async move {
                        let (field, id) = third_party_id(&kind, Some(&q));
                        let fields = if kind == "location" { json!({ "channel": "#x" }) } else { json!({ "nickname": "nick" }) };
                        Json(json!([{ field: id, "protocol": "irc", "fields": fields }]))
                    },
                ),
            )
            .route(
                "/_matrix/app/v1/ping",
                axum::routing::post(
                    move |headers: HeaderMap, Json(body): Json<serde_json::Value>| {
                        let me = pinger.clone();
                        async move {
                            let auth = headers
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let txn = body["transaction_id"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            let fail = me.failing.load(std::sync::atomic::Ordering::SeqCst);
                            me.pings.lock().unwrap().push((txn, auth));
                            if fail {
                                (
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    Json(json!({ "errcode": "M_UNKNOWN" })),
                                )
                            } else {
                                (StatusCode::OK, Json(json!({})))
                            }
                        }
                    },
                ),
            )
            .route(
                "/_matrix/app/v1/transactions/{txn}",
                put(
                    move |Path(txn): Path<String>,
                          headers: HeaderMap,
                          Json(body): Json<serde_json::Value>| {
                        let me = me.clone();
                        async move {
                            let auth = headers
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let ids = body["events"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|e| e["event_id"].as_str().unwrap().to_owned())
                                .collect();
                            let fail = me.failing.load(std::sync::atomic::Ordering::SeqCst);
                            if !fail {
                                let ephemeral = body["ephemeral"].as_array().cloned();
                                me.ephemeral.lock().unwrap().extend(ephemeral.unwrap_or_default());
                                let to_device = body["to_device"].as_array().cloned();
                                me.to_device.lock().unwrap().extend(to_device.unwrap_or_default());
                                me.bodies.lock().unwrap().push(body.clone());
                            }
                            me.seen.lock().unwrap().push((txn, auth, ids, !fail));
                            if fail {
                                (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({})))
                            } else {
                                (StatusCode::OK, Json(json!({})))
                            }
                        }
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    /// Event ids of the accepted transactions, in order.
    fn delivered(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.3)
            .flat_map(|t| t.2.clone())
            .collect()
    }

    async fn wait_for(&self, event: &str) {
        for _ in 0..200 {
            if self.delivered().iter().any(|e| e == event) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "{event} never delivered; transactions: {:?}",
            self.seen.lock().unwrap()
        );
    }
}

/// Events of rooms where the service's users are go to it as transactions with the hs_token, in
/// order, each once; a failed transaction is sent again with the same id and events; what is
/// queued survives a restart.
#[tokio::test]
async fn events_reach_the_service_in_order_through_failures_and_restarts() {
    let service = FakeService::default();
    let url = service.start().await;
    let dir = tempfile::tempdir().unwrap();
    let c = config_with(
        dir.path(),
        &[(
            "irc.yaml",
            IRC.replace("url: null", &format!("url: \"{url}\"")),
        )],
    );
    let server = TestServer::start_with(c.clone()).await;
    let token = "as-irc-token";

    let (_, alice) = server.register("alice").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let quiet = server
        .send_text(&alice, &room, "q", "before the bridge")
        .await;
    let body = json!({ "type": "m.login.application_service", "username": "_irc_bob" });
    server
        .call(
            Method::POST,
            "/_matrix/client/v3/register",
            Some(token),
            Some(body),
        )
        .await;
    let join = format!(
        "/_matrix/client/v3/join/{}?user_id={}",
        enc(&room),
        enc("@_irc_bob:test.local")
    );
    let (status, joined) = server
        .call(Method::POST, &join, Some(token), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");

    service
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let first = server.send_text(&alice, &room, "m1", "one").await;
    let second = server.send_text(&alice, &room, "m2", "two").await;
    // Refused at least once, then accepted.
    for _ in 0..100 {
        if !service.seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    service
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    service.wait_for(&second).await;

    // Down again: a message queued while it is down is delivered after a restart.
    service
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let third = server.send_text(&alice, &room, "m3", "three").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    server.stop().await;
    service
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let server = TestServer::start_with(c).await;
    service.wait_for(&third).await;

    let delivered = service.delivered();
    let position = |id: &str| delivered.iter().position(|e| e == id);
    assert_eq!(
        position(&quiet),
        None,
        "before its user joined, the room was none of its business"
    );
    let (p1, p2, p3) = (
        position(&first).unwrap(),
        position(&second).unwrap(),
        position(&third).unwrap(),
    );
    assert!(p1 < p2 && p2 < p3, "in order: {delivered:?}");
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "each event once: {delivered:?}"
    );
    let seen = service.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|t| t.1 == "Bearer hs-irc-token"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|t| !t.3),
        "a transaction was refused: {seen:?}"
    );
    // A refused transaction comes again with the same id and the same events.
    for refused in seen.iter().filter(|t| !t.3) {
        let retried = seen
            .iter()
            .find(|t| t.3 && t.0 == refused.0)
            .expect("retried under the same id");
        assert_eq!(retried.2, refused.2, "same events on retry");
    }
    server.stop().await;
}

/// `POST /appservice/{id}/ping`: the server reaches the service and says how long it took, or why
/// it could not (spec v1.7 errors); only the service itself may ask.
#[tokio::test]
async fn a_service_pings_itself_through_the_server() {
    let service = FakeService::default();
    let url = service.start().await;
    let dir = tempfile::tempdir().unwrap();
    let with_url = dir.path().join("irc.yaml");
    std::fs::write(
        &with_url,
        IRC.replace("url: null", &format!("url: \"{url}\"")),
    )
    .unwrap();
    let without_url = dir.path().join("quiet.yaml");
    let quiet = IRC
        .replace("id: irc", "id: quiet")
        .replace("as-irc", "as-quiet")
        .replace("hs-irc", "hs-quiet")
        .replace("_irc_", "_quiet_");
    std::fs::write(&without_url, quiet).unwrap();
    let mut c = config(&dir.path().join("db"));
    c.appservices.registration_files = vec![with_url, without_url];
    let server = TestServer::start_with(c).await;
    let ping = |id: &str, token: &str| {
        let path = format!("/_matrix/client/v1/appservice/{id}/ping");
        let (server, token) = (&server, token.to_owned());
        async move {
            server
                .call(
                    Method::POST,
                    &path,
                    Some(&token),
                    Some(json!({ "transaction_id": "t-1" })),
                )
                .await
        }
    };
    let (status, answer) = ping("irc", "as-irc-token").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["duration_ms"].is_u64(), "{answer}");
    assert_eq!(
        service.pings.lock().unwrap().clone(),
        vec![("t-1".to_owned(), "Bearer hs-irc-token".to_owned())]
    );
    service
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, answer) = ping("irc", "as-irc-token").await;
    assert_eq!(
        (
            status,
            answer["errcode"].as_str(),
            answer["status"].as_u64()
        ),
        (StatusCode::BAD_GATEWAY, Some("M_BAD_STATUS"), Some(500)),
        "{answer}"
    );
    let (status, answer) = ping("quiet", "as-quiet-token").await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_URL_NOT_SET")),
        "{answer}"
    );
    let (status, answer) = ping("irc", "as-quiet-token").await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")),
        "another service: {answer}"
    );
    let (_, alice) = server.register("alice").await;
    let (status, _) = ping("irc", &alice).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a user");
    assert_eq!(
        service.pings.lock().unwrap().len(),
        2,
        "refused pings reach nobody"
    );
    server.stop().await;
}

/// An unknown alias or user in the service's namespace is asked of it; what it creates then
/// resolves (and what it does not stays unknown).
#[tokio::test]
async fn unknown_aliases_and_users_are_asked_of_their_service() {
    let service = FakeService::default();
    let url = service.start().await;
    let dir = tempfile::tempdir().unwrap();
    let c = config_with(
        dir.path(),
        &[(
            "irc.yaml",
            IRC.replace("url: null", &format!("url: \"{url}\"")),
        )],
    );
    let server = TestServer::start_with(c).await;
    *service.homeserver.lock().unwrap() = Some(server.base.clone());
    let (_, alice) = server.register("alice").await;

    let alias_path = |alias: &str| format!("/_matrix/client/v3/directory/room/{}", enc(alias));
    let found = server
        .get(&alias_path("#_irc_made:test.local"), &alice)
        .await;
    assert!(
        found["room_id"]
            .as_str()
            .is_some_and(|r| r.starts_with('!')),
        "{found}"
    );
    let (status, _) = server
        .call(
            Method::GET,
            &alias_path("#_irc_absent:test.local"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call(
            Method::GET,
            &alias_path("#elsewhere:test.local"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Joining by an alias it makes on demand works too.
    let (status, joined) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/join/{}", enc("#_irc_made2:test.local")),
            Some(&alice),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");

    let profile = |user: &str| format!("/_matrix/client/v3/profile/{}", enc(user));
    let (status, answer) = server
        .call(
            Method::GET,
            &profile("@_irc_carol:test.local"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = server
        .call(
            Method::GET,
            &profile("@nobody:test.local"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Inviting a user of its namespace asks too, by /invite and in createRoom's `invite`.
    let room = server.create_room(&alice, json!({})).await;
    let (status, answer) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            Some(&alice),
            Some(json!({ "user_id": "@_irc_dave:test.local" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(&alice),
            Some(json!({ "invite": ["@_irc_erin:test.local"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let queries = service.queries.lock().unwrap().clone();
    assert_eq!(
        queries,
        vec![
            "#_irc_made:test.local",
            "#_irc_absent:test.local",
            "#_irc_made2:test.local",
            "@_irc_carol:test.local",
            "@_irc_dave:test.local",
            "@_irc_erin:test.local"
        ],
        "only namespaced ids are asked"
    );
    server.stop().await;
}

const SLACK: &str = r##"
id: slack
url: null
as_token: "as-slack-token"
hs_token: "hs-slack-token"
sender_localpart: _slack_bot
namespaces:
  users:
    - exclusive: true
      regex: "@_slack_.*:test\\.local"
"##;

/// MSC2409: a service whose registration asks for ephemeral events gets the typing, public read
/// receipts and presence of the rooms it is in, in its transactions; one that does not ask gets
/// none of them.
#[tokio::test]
async fn typing_receipts_and_presence_go_to_services_that_ask() {
    let (asks, silent) = (FakeService::default(), FakeService::default());
    let (asks_url, silent_url) = (asks.start().await, silent.start().await);
    let dir = tempfile::tempdir().unwrap();
    let c = config_with(
        dir.path(),
        &[
            (
                "irc.yaml",
                IRC.replace(
                    "url: null",
                    &format!("url: \"{asks_url}\"\nreceive_ephemeral: true"),
                ),
            ),
            (
                "slack.yaml",
                SLACK.replace("url: null", &format!("url: \"{silent_url}\"")),
            ),
        ],
    );
    let server = TestServer::start_with(c).await;
    let (_, alice) = server.register("alice").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    for (token, user) in [
        ("as-irc-token", "_irc_bob"),
        ("as-slack-token", "_slack_eve"),
    ] {
        let body = json!({ "type": "m.login.application_service", "username": user });
        let (status, answer) = server
            .call(
                Method::POST,
                "/_matrix/client/v3/register",
                Some(token),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let join = format!(
            "/_matrix/client/v3/join/{}?user_id={}",
            enc(&room),
            enc(&format!("@{user}:test.local"))
        );
        let (status, joined) = server
            .call(Method::POST, &join, Some(token), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::OK, "{joined}");
    }
    let read = server.send_text(&alice, &room, "r1", "read me").await;

    let alice_id = "@alice:test.local";
    let typing = format!(
        "/_matrix/client/v3/rooms/{}/typing/{}",
        enc(&room),
        enc(alice_id)
    );
    let (status, _) = server
        .call(
            Method::PUT,
            &typing,
            Some(&alice),
            Some(json!({ "typing": true, "timeout": 30000 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let receipt = format!(
        "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
        enc(&room),
        enc(&read)
    );
    let (status, _) = server
        .call(Method::POST, &receipt, Some(&alice), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let presence = format!("/_matrix/client/v3/presence/{}/status", enc(alice_id));
    let (status, _) = server
        .call(
            Method::PUT,
            &presence,
            Some(&alice),
            Some(json!({ "presence": "online", "status_msg": "here" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let last = server.send_text(&alice, &room, "r2", "after").await;

    let found = |kind: &str, check: &dyn Fn(&serde_json::Value) -> bool| {
        asks.ephemeral
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["type"] == kind && check(e))
    };
    let all = eventually(|| {
        found("m.typing", &|e| {
            e["room_id"] == room.as_str()
                && e["content"]["user_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|u| u == alice_id)
        }) && found("m.receipt", &|e| {
            e["room_id"] == room.as_str()
                && e["content"][read.as_str()]["m.read"][alice_id]["ts"].is_u64()
        }) && found("m.presence", &|e| {
            e["sender"] == alice_id
                && e["content"]["presence"] == "online"
                && e["content"]["status_msg"] == "here"
        })
    })
    .await;
    assert!(
        all,
        "ephemeral events received: {:?}",
        asks.ephemeral.lock().unwrap()
    );
    asks.wait_for(&last).await;
    silent.wait_for(&last).await;
    assert!(
        silent.ephemeral.lock().unwrap().is_empty(),
        "a service that did not ask got {:?}",
        silent.ephemeral.lock().unwrap()
    );
    server.stop().await;
}

/// A stand-in service and a server with the IRC registration pointing at it, plus `extra` YAML
/// lines (flags such as `receive_ephemeral: true`). The temporary directory lives as long as the
/// returned guard.
async fn irc_with_service(extra: &str) -> (FakeService, TestServer, tempfile::TempDir) {
    let service = FakeService::default();
    let url = service.start().await;
    let dir = tempfile::tempdir().unwrap();
    let c = config_with(
        dir.path(),
        &[(
            "irc.yaml",
            IRC.replace("url: null", &format!("url: \"{url}\"\n{extra}")),
        )],
    );
    let server = TestServer::start_with(c).await;
    (service, server, dir)
}

/// Polls `check` until it holds (10 s at most); whether it did.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check()
}

/// Registers a user of the IRC service with a device (`m.login.application_service`); its device id.
async fn register_irc_user(server: &TestServer, localpart: &str) -> String {
    let (status, registered) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/register",
            Some("as-irc-token"),
            Some(json!({ "type": "m.login.application_service", "username": localpart })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    registered["device_id"].as_str().unwrap().to_owned()
}

/// Third-party lookups go to the service that lists the protocol, and what it answers comes back
/// (instances named `<service>|<network>`); the service publishes rooms in its network's
/// directory, which clients list by that instance id.
#[tokio::test]
async fn third_party_lookups_and_the_network_directory_go_through_the_service() {
    let (_service, server, _dir) = irc_with_service("protocols: [\"irc\"]").await;
    let (_, alice) = server.register("alice").await;
    let get = |path: String| {
        let server = &server;
        let alice = alice.clone();
        async move { server.call(Method::GET, &path, Some(&alice), None).await }
    };
    const TP: &str = "/_matrix/client/v3/thirdparty";

    let (status, protocols) = get(format!("{TP}/protocols")).await;
    assert_eq!(status, StatusCode::OK, "{protocols}");
    assert_eq!(
        protocols["irc"]["instances"][0]["instance_id"], "irc|libera",
        "{protocols}"
    );
    assert_eq!(
        protocols["irc"]["location_fields"],
        json!(["network", "channel"])
    );
    let (status, irc) = get(format!("{TP}/protocol/irc")).await;
    assert_eq!(status, StatusCode::OK, "{irc}");
    assert_eq!(irc["instances"][0]["network_id"], "libera");
    let (status, unknown) = get(format!("{TP}/protocol/xmpp")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
    assert_eq!(unknown["errcode"], "M_NOT_FOUND");

    let (status, found) = get(format!("{TP}/location/irc?channel={}", enc("#matrix"))).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(
        found[0]["fields"]["channel"], "#matrix",
        "the fields reach the service"
    );
    assert_eq!(found[0]["alias"], "#_irc_x:test.local");
    let (status, found) = get(format!("{TP}/user/irc?nickname=nick")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found[0]["userid"], "@_irc_nick:test.local");
    assert_eq!(found[0]["fields"]["nickname"], "nick");
    let (status, found) = get(format!("{TP}/location?alias={}", enc("#_irc_y:test.local"))).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found[0]["alias"], "#_irc_y:test.local");
    let (status, found) = get(format!("{TP}/user?userid={}", enc("@_irc_z:test.local"))).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found[0]["userid"], "@_irc_z:test.local");
    let (status, _) = get(format!("{TP}/location/xmpp")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The network's directory.
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let list = format!(
        "/_matrix/client/v3/directory/list/appservice/libera/{}",
        enc(&room)
    );
    let public = json!({ "visibility": "public" });
    let (status, answer) = server
        .call(Method::PUT, &list, Some(&alice), Some(public.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only a service: {answer}");
    let (status, answer) = server
        .call(
            Method::PUT,
            &list,
            Some("as-irc-token"),
            Some(public.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let missing = format!(
        "/_matrix/client/v3/directory/list/appservice/libera/{}",
        enc("!nowhere:test.local")
    );
    let (status, _) = server
        .call(Method::PUT, &missing, Some("as-irc-token"), Some(public))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let listed = |filter: serde_json::Value| {
        let server = &server;
        let alice = alice.clone();
        let room = room.clone();
        async move {
            let (status, page) = server
                .call(
                    Method::POST,
                    "/_matrix/client/v3/publicRooms",
                    Some(&alice),
                    Some(filter),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page["chunk"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["room_id"] == room.as_str())
        }
    };
    assert!(!listed(json!({})).await, "not in the Matrix directory");
    assert!(listed(json!({ "third_party_instance_id": "irc|libera" })).await);
    assert!(listed(json!({ "include_all_networks": true })).await);
    assert!(!listed(json!({ "third_party_instance_id": "irc|oftc" })).await);
    let (status, _) = server
        .call(
            Method::PUT,
            &list,
            Some("as-irc-token"),
            Some(json!({ "visibility": "private" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!listed(json!({ "third_party_instance_id": "irc|libera" })).await);
    server.stop().await;
}

/// MSC4203 and MSC4326: a to-device message for a device of the service's exclusive user goes to
/// the service in a transaction (with `to_user_id` and `to_device_id`) and then leaves the
/// device's inbox; the service acts as that device with `device_id` (one the user does not have:
/// 400 `M_UNKNOWN_DEVICE`).
#[tokio::test]
async fn to_device_messages_go_to_the_service_which_acts_as_the_device() {
    let (service, server, _dir) = irc_with_service("receive_ephemeral: true").await;
    let token = "as-irc-token";
    let (_, alice) = server.register("alice").await;
    let device = register_irc_user(&server, "_irc_bob").await;
    let bob = "@_irc_bob:test.local";

    let as_device = |path: &str, device: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}user_id={}&device_id={}", enc(bob), enc(device))
    };
    let (status, whoami) = server
        .call(
            Method::GET,
            &as_device("/_matrix/client/v3/account/whoami", &device),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{whoami}");
    assert_eq!(whoami["user_id"], bob);
    assert_eq!(whoami["device_id"], device.as_str());
    let (status, refused) = server
        .call(
            Method::GET,
            &as_device("/_matrix/client/v3/account/whoami", "NOPE"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["errcode"], "M_UNKNOWN_DEVICE");

    let (status, _) = server
        .call(
            Method::PUT,
            "/_matrix/client/v3/sendToDevice/org.example.hello/t1",
            Some(&alice),
            Some(json!({ "messages": { bob: { device.as_str(): { "hello": "bridge" } } } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut got = None;
    for _ in 0..200 {
        got = service.to_device.lock().unwrap().first().cloned();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = got.expect("the to-device message reached the service");
    assert_eq!(got["to_user_id"], bob);
    assert_eq!(got["to_device_id"], device.as_str());
    assert_eq!(got["type"], "org.example.hello");
    assert_eq!(got["sender"], "@alice:test.local");
    assert_eq!(got["content"]["hello"], "bridge");

    // Acknowledged by the service: no longer in the device's inbox.
    let mut left = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, sync) = server
            .call(
                Method::GET,
                &as_device("/_matrix/client/v3/sync?timeout=0", &device),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{sync}");
        left = sync["to_device"]["events"].clone();
        if left.as_array().is_none_or(|e| e.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        left.as_array().is_none_or(|e| e.is_empty()),
        "still in the inbox: {left}"
    );
    assert_eq!(service.to_device.lock().unwrap().len(), 1, "once");
    server.stop().await;
}

/// MSC3202: a service with `org.matrix.msc3202: true` hears of device list changes of users in
/// its rooms (also when nothing else is sent) and gets its devices' one-time key counts.
#[tokio::test]
async fn device_list_changes_and_key_counts_go_to_an_msc3202_service() {
    let (service, server, _dir) = irc_with_service("org.matrix.msc3202: true").await;
    let token = "as-irc-token";
    let (_, alice) = server.register("alice").await;
    let bob_device = register_irc_user(&server, "_irc_bob").await;
    let bob = "@_irc_bob:test.local";
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    let join = format!(
        "/_matrix/client/v3/join/{}?user_id={}",
        enc(&room),
        enc(bob)
    );
    let (status, _) = server
        .call(Method::POST, &join, Some(token), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let hello = server.send_text(&alice, &room, "h", "hello").await;
    service.wait_for(&hello).await;
    // The bridge has heard of every change so far (the cursor moves with each acknowledgement).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = service.bodies.lock().unwrap().len();

    // Alice's device changes (a rename): the service hears of it, with nothing else to send.
    let whoami = server
        .get("/_matrix/client/v3/account/whoami", &alice)
        .await;
    let device = whoami["device_id"].as_str().unwrap();
    server
        .put(
            &format!("/_matrix/client/v3/devices/{}", enc(device)),
            &alice,
            json!({ "display_name": "laptop" }),
        )
        .await;
    let heard = eventually(|| {
        service.bodies.lock().unwrap().iter().skip(before).any(|b| {
            b["events"].as_array().is_some_and(|e| e.is_empty())
                && b["org.matrix.msc3202.device_lists"]["changed"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|u| u == "@alice:test.local"))
        })
    })
    .await;
    assert!(
        heard,
        "device list change not sent: {:?}",
        service.bodies.lock().unwrap()
    );

    // A to-device message for the bridge's device comes with that device's key counts.
    let (status, _) = server
        .call(
            Method::PUT,
            "/_matrix/client/v3/sendToDevice/org.example.hello/t1",
            Some(&alice),
            Some(json!({ "messages": { bob: { bob_device.as_str(): { "n": 1 } } } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut counted = None;
    for _ in 0..200 {
        counted = service.bodies.lock().unwrap().iter().find_map(|b| {
            b["org.matrix.msc3202.device_one_time_keys_count"][bob][bob_device.as_str()]
                .as_object()
                .cloned()
        });
        if counted.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let counted = counted.expect("key counts of the bridge's device");
    assert_eq!(counted["signed_curve25519"], 0);

    // Carol joins and leaves: she shares no room with the bridge's users any more.
    let (_, carol) = server.register("carol").await;
    let room_path = |action: &str| format!("/_matrix/client/v3/rooms/{}/{action}", enc(&room));
    server.post(&room_path("join"), &carol, json!({})).await;
    server.post(&room_path("leave"), &carol, json!({})).await;
    let gone = eventually(|| {
        service.bodies.lock().unwrap().iter().any(|b| {
            b["org.matrix.msc3202.device_lists"]["left"]
                .as_array()
                .is_some_and(|l| l.iter().any(|u| u == "@carol:test.local"))
        })
    })
    .await;
    assert!(
        gone,
        "carol's leave not in device_lists.left: {:?}",
        service.bodies.lock().unwrap()
    );
    assert!(
        !service.bodies.lock().unwrap().iter().any(|b| {
            b["org.matrix.msc3202.device_lists"]["left"]
                .as_array()
                .is_some_and(|l| l.iter().any(|u| u == "@alice:test.local"))
        }),
        "alice is still in the room"
    );
    server.stop().await;
}
