//! Federation limits: the queue of a destination that does not answer is capped (oldest EDUs
//! dropped, PDUs kept); stored answers to incoming transactions are pruned after a day; outgoing
//! requests to one destination reuse their TLS connections; the federation listener's body limit
//! fits a transaction of 50 PDUs of 64 KiB.

mod common;

use std::time::Duration;

use common::TestServer;
use common::federation::{free_port, services, start_configured as start};
use parvis::{
    federation::{
        incoming::{transaction::TXNS, txn_expiry},
        request::send_json,
        sender::queue::{Item, queue_edu},
    },
    storage::keys::Key,
};
use ruma::{OwnedEventId, OwnedServerName};
use serde_json::json;

#[tokio::test]
async fn a_dead_destinations_queue_drops_its_oldest_typing_edus_and_keeps_pdus_and_to_device() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = start(dir.path(), |c| c.federation.max_queued_per_destination = 5).await;
    let sa = services(&a);
    // Nothing listens there: every transaction fails.
    let dead: OwnedServerName = format!("127.0.0.1:{}", free_port()).try_into().unwrap();
    let pdus: Vec<OwnedEventId> = (0..3)
        .map(|i| OwnedEventId::try_from(format!("$pdu{i}")).unwrap())
        .collect();
    sa.globals
        .commit(|c| {
            for id in &pdus {
                sa.federation.sender.queue_pdu(c, &dead, id);
            }
            Ok(())
        })
        .unwrap();
    // A to-device message must arrive: it is never dropped.
    queue_edu(
        &sa,
        std::slice::from_ref(&dead),
        json!({ "edu_type": "m.direct_to_device", "content": { "n": -1 } }),
    )
    .unwrap();
    for i in 0..20 {
        queue_edu(
            &sa,
            std::slice::from_ref(&dead),
            json!({ "edu_type": "m.typing", "content": { "n": i } }),
        )
        .unwrap();
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let queued = loop {
        let queued = sa.federation.sender.next_batch(&dead).unwrap();
        if queued.len() <= 5 {
            break queued;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue was never trimmed: {} items",
            queued.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let kept_pdus: Vec<OwnedEventId> = queued
        .iter()
        .filter_map(|(_, item)| {
            if let Item::Pdu(id) = item {
                Some(id.clone())
            } else {
                None
            }
        })
        .collect();
    let kept_edus: Vec<i64> = queued
        .iter()
        .filter_map(|(_, item)| {
            if let Item::Edu(edu) = item {
                edu["content"]["n"].as_i64()
            } else {
                None
            }
        })
        .collect();
    assert_eq!(kept_pdus, pdus, "every PDU stays");
    assert_eq!(
        kept_edus,
        vec![-1, 19],
        "the to-device message and the newest typing EDU stay"
    );
    a.stop().await;
}

#[tokio::test]
async fn stored_transaction_answers_are_pruned_after_a_day() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path(), |_| ()).await;
    let (b, b_name) = start(dir_b.path(), |_| ()).await;
    let (sa, sb) = (services(&a), services(&b));

    // B sends A a transaction: A keeps its answer, with its time.
    let body = json!({ "origin": b_name, "origin_server_ts": parvis::util::now_ms(), "pdus": [], "edus": [] });
    let (status, answer) = send_json(
        &sb,
        &a_name,
        http::Method::PUT,
        "/_matrix/federation/v1/send/txn-1",
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    let key = Key::new().str(b_name.as_str()).str("txn-1").build();
    assert!(sa.globals.db.get(TXNS, &key).unwrap().is_some());
    // An answer given two days ago.
    let old_key = Key::new().str(b_name.as_str()).str("txn-0").build();
    let two_days_ago = parvis::util::now_ms() - 2 * 24 * 3600 * 1000;
    txn_expiry::record(
        &sa,
        old_key.clone(),
        br#"{"pdus":{}}"#.to_vec(),
        two_days_ago,
    )
    .unwrap();

    // Pruning now removes only the old answer; a day later, the new one too.
    assert_eq!(txn_expiry::prune(&sa, parvis::util::now_ms()).unwrap(), 1);
    assert!(sa.globals.db.get(TXNS, &old_key).unwrap().is_none());
    assert!(sa.globals.db.get(TXNS, &key).unwrap().is_some());
    assert_eq!(txn_expiry::prune(&sa, parvis::util::now_ms()).unwrap(), 0);
    let tomorrow = parvis::util::now_ms() + txn_expiry::KEEP.as_millis() as u64 + 1000;
    assert_eq!(txn_expiry::prune(&sa, tomorrow).unwrap(), 1);
    assert!(sa.globals.db.get(TXNS, &key).unwrap().is_none());
    assert!(
        sa.globals
            .db
            .scan_prefix(txn_expiry::TXN_TIMES, &[])
            .next()
            .is_none(),
        "the time index is emptied too"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn requests_to_one_destination_reuse_their_tls_connection() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, _) = start(dir_a.path(), |_| ()).await;
    let port = free_port();
    let mut b_config = common::config(dir_b.path());
    let b_name: OwnedServerName = format!("127.0.0.1:{port}").try_into().unwrap();
    b_config.server_name = b_name.clone();
    b_config.federation.listen = format!("127.0.0.1:{port}").parse().unwrap();
    b_config.federation.verify_certificates = false;
    let b = TestServer::start_with(b_config.clone()).await;
    let sa = services(&a);
    let transport = &sa.federation.transport;

    let version = async || {
        let (status, body) = send_json(
            &sa,
            &b_name,
            http::Method::GET,
            "/_matrix/federation/v1/version",
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, http::StatusCode::OK, "{body}");
        assert_eq!(body["server"]["name"], "Parvis");
    };
    let before = transport.connections_opened();
    for _ in 0..5 {
        version().await;
    }
    assert_eq!(
        transport.connections_opened(),
        before + 1,
        "five requests, one connection"
    );

    // Two at once need two connections; both are kept and reused.
    tokio::join!(version(), version());
    let after_parallel = transport.connections_opened();
    assert!(after_parallel <= before + 2);
    tokio::join!(version(), version());
    assert_eq!(transport.connections_opened(), after_parallel);

    // B restarts: the kept connections are dead; the next request opens a new one and succeeds.
    b.stop().await;
    let b = TestServer::start_with(b_config).await;
    version().await;
    assert_eq!(transport.connections_opened(), after_parallel + 1);
    a.stop().await;
    b.stop().await;
}

/// A `/send` body of `pdus` PDUs whose content holds `filler` bytes each (for a room A does not
/// know: A skips them, the point is the size of the body).
fn big_transaction(origin: &OwnedServerName, pdus: usize, filler: usize) -> serde_json::Value {
    let pdu = |i: usize| {
        json!({
            "room_id": "!unknown:elsewhere.example", "sender": format!("@u:{origin}"), "type": "m.room.message",
            "origin_server_ts": 1, "depth": 1, "prev_events": [], "auth_events": [], "hashes": { "sha256": "x" },
            "signatures": {}, "content": { "msgtype": "m.text", "body": format!("{i}{}", "a".repeat(filler)) },
        })
    };
    json!({ "origin": origin, "origin_server_ts": parvis::util::now_ms(), "pdus": (0..pdus).map(pdu).collect::<Vec<_>>(), "edus": [] })
}

#[tokio::test]
async fn a_transaction_of_fifty_pdus_near_64_kib_is_accepted_and_larger_bodies_are_413() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path(), |_| ()).await;
    let (b, b_name) = start(dir_b.path(), |_| ()).await;
    let sb = services(&b);

    // 50 PDUs of about 63 KiB: more than the client API's 1 MiB, within the spec's maxima.
    let body = big_transaction(&b_name, 50, 63 * 1024);
    assert!(serde_json::to_vec(&body).unwrap().len() > 3 << 20);
    let (status, answer) = send_json(
        &sb,
        &a_name,
        http::Method::PUT,
        "/_matrix/federation/v1/send/big-1",
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(status, http::StatusCode::OK, "{answer}");

    // Beyond federation.max_request_bytes (8 MiB): 413 M_TOO_LARGE.
    let body = big_transaction(&b_name, 50, 200 * 1024);
    let (status, answer) = send_json(
        &sb,
        &a_name,
        http::Method::PUT,
        "/_matrix/federation/v1/send/big-2",
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (http::StatusCode::PAYLOAD_TOO_LARGE, Some("M_TOO_LARGE")),
        "{answer}"
    );
    a.stop().await;
    b.stop().await;
}
