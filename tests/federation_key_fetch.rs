//! How often we fetch other servers' keys: requests naming unknown key ids and notary queries
//! cause at most one fetch of a server per interval (concurrent ones wait for one fetch), one
//! notary request fetches from a bounded number of servers, and a key id named in an event's
//! signatures that we lack (a rotated key) is fetched although older keys are cached.

mod common;

use std::{sync::Arc, time::Duration};

use common::federation::{fixed_config, services};
use common::{TestServer, enc};
use http::StatusCode;
use parvis::{
    federation::{
        incoming::pdu_checks, now_ms, own_keys, remote_keys, resolve::resolve,
        xmatrix::sign_request,
    },
    services::Services,
};
use ruma::{CanonicalJsonObject, OwnedEventId, OwnedRoomId, RoomVersionId, ServerName};
use serde_json::{Value, json};

/// Sends `request` from `from` to `to` as it is (no signing added); returns status and JSON.
async fn send_as_is(
    from: &Arc<Services>,
    to: &ServerName,
    request: http::Request<Vec<u8>>,
) -> (StatusCode, Value) {
    let dest = resolve(from, to).await.unwrap();
    let response = from
        .federation
        .transport
        .send(&dest, request)
        .await
        .unwrap();
    (
        response.status(),
        serde_json::from_slice(response.body()).unwrap_or(Value::Null),
    )
}

/// A profile request from `from` to `to`, signed by `from` but naming the key id `key_id`.
fn request_with_key_id(
    from: &Arc<Services>,
    to: &ServerName,
    uri: &str,
    key_id: &str,
) -> http::Request<Vec<u8>> {
    let mut request = http::Request::get(uri).body(Vec::new()).unwrap();
    sign_request(
        &mut request,
        from.globals.server_name(),
        to,
        &from.globals.keypair,
    )
    .unwrap();
    let real = own_keys::current_key_id(&from.globals.keypair);
    let header = request.headers()[http::header::AUTHORIZATION]
        .to_str()
        .unwrap()
        .replace(&real, key_id);
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, header.parse().unwrap());
    request
}

#[tokio::test]
async fn unknown_key_ids_cause_at_most_one_fetch_per_interval() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, _) = common::federation::start(dir_a.path()).await;
    let (b, b_name) = common::federation::start(dir_b.path()).await;
    let (sa, sb) = (services(&a), services(&b));
    let (alice, _) = b.register("alice").await;
    let uri = format!(
        "/_matrix/federation/v1/query/profile?user_id={}",
        enc(&alice)
    );

    // Twenty requests at once, each naming another unknown key of A: B fetches A's keys once.
    let requests = (0..20).map(|i| {
        let (sa, b_name, uri) = (sa.clone(), b_name.clone(), uri.clone());
        async move {
            send_as_is(
                &sa,
                &b_name,
                request_with_key_id(&sa, &b_name, &uri, &format!("ed25519:unknown{i}")),
            )
            .await
        }
    });
    for (status, body) in futures_util::future::join_all(requests).await {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    assert_eq!(sb.federation.key_fetches.fetches_started(), 1);
    // Twenty more, one after the other: nothing more is fetched within the interval.
    for i in 20..40 {
        let (status, _) = send_as_is(
            &sa,
            &b_name,
            request_with_key_id(&sa, &b_name, &uri, &format!("ed25519:unknown{i}")),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(sb.federation.key_fetches.fetches_started(), 1);
    // The real key was cached by that one fetch: a correct request passes without another.
    let real = own_keys::current_key_id(&sa.globals.keypair);
    let (status, body) =
        send_as_is(&sa, &b_name, request_with_key_id(&sa, &b_name, &uri, &real)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sb.federation.key_fetches.fetches_started(), 1);

    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn notary_queries_cannot_make_us_fetch_again_and_again() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = common::federation::start(dir_a.path()).await;
    let (b, b_name) = common::federation::start(dir_b.path()).await;
    let (sa, sb) = (services(&a), services(&b));

    // `minimum_valid_until_ts` far in the future, asked again and again: one fetch of A.
    let far = now_ms() + 365 * 24 * 3_600_000;
    for _ in 0..10 {
        let uri = format!(
            "/_matrix/key/v2/query/{}?minimum_valid_until_ts={far}",
            enc(a_name.as_str())
        );
        let (status, body) = send_as_is(
            &sa,
            &b_name,
            http::Request::get(uri).body(Vec::new()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["server_keys"].as_array().unwrap().len(), 1, "{body}");
    }
    let mut batch = serde_json::Map::new();
    batch.insert(a_name.to_string(), json!({}));
    let body = json!({ "server_keys": batch });
    let mut request = http::Request::post("/_matrix/key/v2/query")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    let (status, _) = send_as_is(&sa, &b_name, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sb.federation.key_fetches.fetches_started(), 1);

    // One batch naming fifty servers (nothing listens on those ports): at most
    // MAX_NOTARY_FETCHES of them are asked.
    let mut batch = serde_json::Map::new();
    for port in 1..=50 {
        batch.insert(format!("127.0.0.1:{port}"), json!({}));
    }
    let body = json!({ "server_keys": batch });
    let mut request = http::Request::post("/_matrix/key/v2/query")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    let (status, body) = send_as_is(&sa, &b_name, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fetched = sb.federation.key_fetches.fetches_started() - 1;
    assert!(
        fetched <= remote_keys::MAX_NOTARY_FETCHES as u64,
        "{fetched} servers asked for one notary request"
    );

    a.stop().await;
    b.stop().await;
}

/// Retires `config`'s server signing key while it is stopped (`parvis rotate-key`).
fn rotate_key(config: parvis::config::Config) -> (String, String) {
    let services = Services::open(config).unwrap();
    let rotated = own_keys::rotate_signing_key(&services.globals.db, now_ms()).unwrap();
    services.shutdown();
    rotated
}

#[tokio::test]
async fn a_rotated_key_named_by_an_event_is_fetched_while_older_keys_are_cached() {
    let (dir_a, dir_c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (config_a, a_name) = fixed_config(dir_a.path());
    let a = TestServer::start_with(config_a.clone()).await;
    // C may fetch a server's keys again one second after the last fetch.
    let (c, _) = common::federation::start_configured(dir_c.path(), |config| {
        config.federation.key_fetch_interval_secs = 1
    })
    .await;
    let sc = services(&c);
    let (_, alice) = a.register("alice").await;
    let room = a
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "room_version": "12" }),
        )
        .await;

    // C caches A's current key.
    let before = remote_keys::verify_keys_for(&sc, &a_name, now_ms())
        .await
        .unwrap();
    assert_eq!(before.len(), 1);

    // A rotates its key and comes back.
    a.stop().await;
    let (old_id, new_id) = rotate_key(config_a.clone());
    assert!(before.contains_key(&old_id));
    let a = TestServer::start_with(config_a).await;
    let event_id = a
        .send_text(&alice, &room, "t1", "signed with the new key")
        .await;

    // The event as A sends it to other servers: signed with the new key only.
    let sa = services(&a);
    let id = OwnedEventId::try_from(event_id.as_str()).unwrap();
    let stored = sa
        .run(move |s| parvis::services::rooms::event_by_id(s, &id))
        .await
        .unwrap()
        .unwrap();
    let object: CanonicalJsonObject = stored.json.clone();
    let signatures = serde_json::to_value(&object["signatures"]).unwrap();
    assert!(
        signatures[a_name.as_str()].get(&new_id).is_some(),
        "{signatures}"
    );

    // C checks it: the key id it lacks is fetched (once the interval since its last fetch ended).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let room_id = OwnedRoomId::try_from(room.as_str()).unwrap();
    let checked = pdu_checks::check_pdu(&sc, object, room_id, RoomVersionId::V12).await;
    assert!(checked.is_ok(), "{:?}", checked.err());
    let name = a_name.clone();
    let cached = sc
        .run(move |s| s.federation.cached_keys(&name))
        .await
        .unwrap();
    assert!(
        cached.contains_key(&new_id) && cached.contains_key(&old_id),
        "{cached:?}"
    );

    a.stop().await;
    c.stop().await;
}
