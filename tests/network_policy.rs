//! Outgoing connections and `[network]`: a server with the default `deny_ranges` (and no
//! `allow_ranges`) never connects to loopback, whether the destination is an IP literal, a name
//! that resolves to it or an IPv4-mapped IPv6 literal: federation requests, remote media, identity
//! servers and push gateways. Clients get a generic error, without the transport's details.

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{TestServer, enc};
use parvis::{
    config::Config,
    federation::request::send_raw,
    services::{Services, push::queue},
};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A TCP listener on `ip` that counts the connections it accepts (and drops them).
async fn counting_listener(ip: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, count)
}

/// The test configuration with the default `network` section (loopback denied).
fn default_network(dir: &std::path::Path) -> Config {
    let mut config = common::config(dir);
    config.network = Default::default();
    config.federation.request_timeout_secs = 5;
    config
}

fn services(server: &TestServer) -> Arc<Services> {
    server.server.as_ref().unwrap().services.clone()
}

fn get(uri: &str) -> http::Request<Vec<u8>> {
    http::Request::get(uri).body(Vec::new()).unwrap()
}

#[tokio::test]
async fn federation_and_media_requests_to_denied_addresses_are_refused_without_connecting() {
    let (dir, dir_allowed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (addr, accepted) = counting_listener("127.0.0.1").await;
    let port = addr.port();
    let server = TestServer::start_with(default_network(dir.path())).await;
    let s = services(&server);

    // An IP literal, a name resolving to loopback, and the IPv4-mapped form of loopback.
    for name in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
    ] {
        let destination: ruma::OwnedServerName = name.as_str().try_into().unwrap();
        let error = send_raw(
            &s,
            &destination,
            get("/_matrix/federation/v1/version"),
            false,
        )
        .await
        .unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_GATEWAY, "{name}: {error:?}");
        // Generic: the transport's reason stays in the log.
        assert_eq!(
            error.message,
            format!("{name} could not be reached"),
            "{name}"
        );
    }
    // Signed requests too.
    let destination: ruma::OwnedServerName = format!("127.0.0.1:{port}").try_into().unwrap();
    assert!(
        send_raw(
            &s,
            &destination,
            get("/_matrix/federation/v1/query/profile?user_id=%40a%3Ab"),
            true
        )
        .await
        .is_err()
    );

    // A client asks for media of a server on loopback.
    let (_, token) = server.register("alice").await;
    let path = format!(
        "/_matrix/client/v1/media/download/{}/abc",
        enc(&format!("127.0.0.1:{port}"))
    );
    let response = server
        .http
        .request(Method::GET, format!("{}{path}", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(
        !message.contains("deny") && !message.contains("connect") && !message.contains("refused"),
        "{message}"
    );

    // A client asks for another server's profile.
    let user = enc(&format!("@bob:localhost:{port}"));
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/_matrix/client/v3/profile/{user}"),
            Some(&token),
            None,
        )
        .await;
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{status}"
    );

    // A third-party invite naming an identity server on loopback.
    let room = server.create_room(&token, json!({})).await;
    let invite = json!({ "id_server": format!("127.0.0.1:{port}"), "id_access_token": "t", "medium": "email", "address": "x@example.org" });
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            Some(&token),
            Some(invite),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");

    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a denied address was connected to"
    );

    // The same request from a server whose allow list holds loopback does connect.
    let allowed = TestServer::start(dir_allowed.path()).await;
    let _ = send_raw(
        &services(&allowed),
        &destination,
        get("/_matrix/federation/v1/version"),
        false,
    )
    .await;
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "the listener counts connections"
    );

    server.stop().await;
    allowed.stop().await;
}

#[tokio::test]
async fn push_gateways_in_denied_ranges_are_not_delivered_to() {
    let dir = tempfile::tempdir().unwrap();
    // The denied gateway on 127.0.0.1; the allowed one on 127.0.0.2 (allow_ranges names it alone).
    let (denied, denied_accepted) = counting_listener("127.0.0.1").await;
    let (allowed, allowed_accepted) = counting_listener("127.0.0.2").await;
    let mut config = default_network(dir.path());
    config.network.allow_ranges = vec!["127.0.0.2/32".into()];
    let server = TestServer::start_with(config).await;
    let s = services(&server);

    let (_, alice) = server.register("alice").await;
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
    for (addr, pushkey) in [(denied, "denied-key"), (allowed, "allowed-key")] {
        let pusher = json!({
            "kind": "http", "app_id": "org.example.app", "pushkey": pushkey,
            "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
            "data": { "url": format!("http://{addr}/_matrix/push/v1/notify") },
        });
        server
            .post("/_matrix/client/v3/pushers/set", &bob, pusher)
            .await;
    }
    let body =
        json!({ "msgtype": "m.text", "body": "hello bob", "m.mentions": { "user_ids": [bob_id] } });
    server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/t1",
                enc(&room)
            ),
            &alice,
            body,
        )
        .await;

    // The allowed gateway is reached (it drops the connection: the item is retried later); the
    // denied one's item is dropped without a connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let remaining = s.run(|s| queue::due(s, u64::MAX, 100)).await.unwrap().0;
        let denied_queued = remaining
            .iter()
            .any(|(_, item)| item.pushkey == "denied-key");
        if allowed_accepted.load(Ordering::SeqCst) > 0 && !denied_queued {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "push deliveries did not happen: {remaining:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        denied_accepted.load(Ordering::SeqCst),
        0,
        "a gateway in a denied range was connected to"
    );
    server.stop().await;
}
