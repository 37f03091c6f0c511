//! End-to-end encryption support, through the client API of real servers: key upload, query,
//! claim and changes; /sync counts and device lists; to-device messages delivered exactly once
//! (across a restart); cross-signing; key backup; and the same between two servers over
//! federation (query and claim of a remote user, to-device, a device list update after a new
//! device). Test names follow Complement where they match: TestUploadKey and TestKeyClaimOrdering,
//! TestDeviceListUpdates, TestToDeviceMessages, TestMSC3967, TestE2EKeyBackupReplaceRoomKeyRules,
//! TestToDeviceMessagesOverFederation and TestDeviceListsUpdateOverFederation; dehydrated devices
//! (MSC3814).

mod common;

use base64::Engine as _;
use common::federation::{eventually, free_port, start as start_named};
use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use ruma::{
    CanonicalJsonObject, OwnedServerName,
    signatures::{Ed25519KeyPair, sign_json},
};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// An ed25519 key pair whose key id is `ed25519:{name}`.
fn keypair(name: &str) -> Ed25519KeyPair {
    Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), name.to_owned()).unwrap()
}

/// A key pair for a cross-signing key: its key id is its own public key.
fn cross_keypair() -> Ed25519KeyPair {
    let der = Ed25519KeyPair::generate();
    let public = b64(&Ed25519KeyPair::from_der(&der, "x".into())
        .unwrap()
        .public_key());
    Ed25519KeyPair::from_der(&der, public).unwrap()
}

fn signed(signer: &str, kp: &Ed25519KeyPair, value: Value) -> Value {
    let mut object: CanonicalJsonObject = serde_json::from_value(value).unwrap();
    sign_json(signer, kp, &mut object).unwrap();
    serde_json::to_value(object).unwrap()
}

/// Device keys of `device`, signed by its own key `kp`.
fn device_keys(user: &str, device: &str, kp: &Ed25519KeyPair) -> Value {
    signed(
        user,
        kp,
        json!({
            "user_id": user,
            "device_id": device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": { format!("curve25519:{device}"): b64(device.as_bytes()), format!("ed25519:{device}"): b64(&kp.public_key()) },
        }),
    )
}

fn one_time_keys(user: &str, kp: &Ed25519KeyPair, names: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for name in names {
        out.insert(
            format!("signed_curve25519:{name}"),
            signed(user, kp, json!({ "key": b64(name.as_bytes()) })),
        );
    }
    Value::Object(out)
}

fn fallback_key(user: &str, kp: &Ed25519KeyPair, name: &str) -> Value {
    json!({ format!("signed_curve25519:{name}"): signed(user, kp, json!({ "key": b64(name.as_bytes()), "fallback": true })) })
}

async fn whoami(server: &TestServer, token: &str) -> String {
    server.get("/_matrix/client/v3/account/whoami", token).await["device_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn login(server: &TestServer, user: &str, device: &str) -> String {
    let body = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user }, "password": "secret-password", "device_id": device, "initial_device_display_name": format!("{device} phone") });
    server.post_anon("/_matrix/client/v3/login", body).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

trait Anon {
    async fn post_anon(&self, path: &str, body: Value) -> Value;
}

impl Anon for TestServer {
    async fn post_anon(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(Method::POST, path, None, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }
}

async fn sync(server: &TestServer, token: &str, since: Option<&str>) -> Value {
    let path = match since {
        Some(since) => format!("/_matrix/client/v3/sync?timeout=0&since={}", enc(since)),
        None => "/_matrix/client/v3/sync?timeout=0".to_owned(),
    };
    server.get(&path, token).await
}

async fn query(server: &TestServer, token: &str, user: &str) -> Value {
    server
        .post(
            "/_matrix/client/v3/keys/query",
            token,
            json!({ "device_keys": { user: [] } }),
        )
        .await
}

#[tokio::test]
async fn upload_key_query_and_claim_in_upload_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice, alice_token) = server.register("alice").await;
    let (_bob, bob_token) = server.register("bob").await;
    let device = whoami(&server, &alice_token).await;
    let kp = keypair(&device);

    // Keys that claim another user or device, or are not self-signed, are refused (400) and change nothing.
    let other = device_keys("@mallory:test.local", &device, &kp);
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/keys/upload",
            Some(&alice_token),
            Some(json!({ "device_keys": other })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let wrong_device = device_keys(&alice, "OTHERDEVICE", &keypair("OTHERDEVICE"));
    let (status, _) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/keys/upload",
            Some(&alice_token),
            Some(json!({ "device_keys": wrong_device })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut forged = device_keys(&alice, &device, &kp);
    forged["algorithms"] = json!(["m.olm.v1.curve25519-aes-sha2"]);
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/keys/upload",
            Some(&alice_token),
            Some(json!({ "device_keys": forged })),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_INVALID_PARAM")),
        "{body}"
    );
    assert_eq!(
        query(&server, &bob_token, &alice).await["device_keys"][&alice],
        json!({})
    );

    // Upload: device keys, three one-time keys, a fallback key.
    let upload = json!({
        "device_keys": device_keys(&alice, &device, &kp),
        "one_time_keys": one_time_keys(&alice, &kp, &["AAAA", "AAAB", "AAAC"]),
        "fallback_keys": fallback_key(&alice, &kp, "FFFF"),
    });
    let answer = server
        .post(
            "/_matrix/client/v3/keys/upload",
            &alice_token,
            upload.clone(),
        )
        .await;
    assert_eq!(
        answer["one_time_key_counts"]["signed_curve25519"], 3,
        "{answer}"
    );
    // The same upload again changes nothing; a known key id with another key is refused.
    assert_eq!(
        server
            .post("/_matrix/client/v3/keys/upload", &alice_token, upload)
            .await["one_time_key_counts"]["signed_curve25519"],
        3
    );
    let clash = json!({ "one_time_keys": { "signed_curve25519:AAAA": signed(&alice, &kp, json!({ "key": "other" })) } });
    let (status, _) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/keys/upload",
            Some(&alice_token),
            Some(clash),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A later upload is claimed after the earlier ones, whatever its key id (MSC4225).
    let later = json!({ "one_time_keys": one_time_keys(&alice, &kp, &["0000"]) });
    assert_eq!(
        server
            .post("/_matrix/client/v3/keys/upload", &alice_token, later)
            .await["one_time_key_counts"]["signed_curve25519"],
        4
    );

    let first = sync(&server, &alice_token, None).await;
    assert_eq!(
        first["device_one_time_keys_count"]["signed_curve25519"], 4,
        "{first}"
    );
    assert_eq!(
        first["device_unused_fallback_key_types"],
        json!(["signed_curve25519"]),
        "{first}"
    );

    // Query: the keys as uploaded, with the display name in `unsigned`.
    let answer = query(&server, &bob_token, &alice).await;
    let keys = &answer["device_keys"][&alice][&device];
    assert_eq!(
        keys["keys"][format!("ed25519:{device}")],
        b64(&kp.public_key()),
        "{answer}"
    );
    assert!(
        keys["signatures"][&alice][format!("ed25519:{device}")].is_string(),
        "{answer}"
    );

    // Claim: one key per claim, each only once and in upload order, then the fallback key (marked
    // used, given again).
    let claim = json!({ "one_time_keys": { &alice: { &device: "signed_curve25519" } } });
    let mut seen = Vec::new();
    for _ in 0..4 {
        let answer = server
            .post("/_matrix/client/v3/keys/claim", &bob_token, claim.clone())
            .await;
        let keys = answer["one_time_keys"][&alice][&device]
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(keys.len(), 1, "{answer}");
        seen.push(keys.keys().next().unwrap().clone());
    }
    let expected: Vec<String> = ["AAAA", "AAAB", "AAAC", "0000"]
        .iter()
        .map(|n| format!("signed_curve25519:{n}"))
        .collect();
    assert_eq!(seen, expected);
    for _ in 0..2 {
        let answer = server
            .post("/_matrix/client/v3/keys/claim", &bob_token, claim.clone())
            .await;
        let key = &answer["one_time_keys"][&alice][&device]["signed_curve25519:FFFF"];
        assert_eq!(key["fallback"], true, "{answer}");
    }
    let after = sync(&server, &alice_token, first["next_batch"].as_str()).await;
    assert_eq!(
        after["device_one_time_keys_count"]["signed_curve25519"], 0,
        "{after}"
    );
    assert_eq!(
        after["device_unused_fallback_key_types"],
        json!([]),
        "{after}"
    );
    // A device without keys is left out of the claim answer.
    let none = server
        .post(
            "/_matrix/client/v3/keys/claim",
            &bob_token,
            json!({ "one_time_keys": { &alice: { "NODEVICE": "signed_curve25519" } } }),
        )
        .await;
    assert_eq!(none["one_time_keys"], json!({}), "{none}");

    // A deleted device takes its keys with it.
    let second = login(&server, &alice, "SECOND").await;
    let kp2 = keypair("SECOND");
    server
        .post(
            "/_matrix/client/v3/keys/upload",
            &second,
            json!({ "device_keys": device_keys(&alice, "SECOND", &kp2) }),
        )
        .await;
    assert!(query(&server, &bob_token, &alice).await["device_keys"][&alice]["SECOND"].is_object());
    server
        .post("/_matrix/client/v3/logout", &second, json!({}))
        .await;
    assert!(
        query(&server, &bob_token, &alice).await["device_keys"][&alice]
            .get("SECOND")
            .is_none()
    );
    server.stop().await;
}

#[tokio::test]
async fn device_list_updates_in_sync_and_keys_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice, alice_token) = server.register("alice").await;
    let (bob, bob_token) = server.register("bob").await;
    let (carol, carol_token) = server.register("carol").await;
    let room = server
        .create_room(&alice_token, json!({ "preset": "public_chat" }))
        .await;
    let start = sync(&server, &bob_token, None).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob_token,
            json!({}),
        )
        .await;

    // Bob newly shares a room with alice: she is in `changed`.
    let joined = sync(&server, &bob_token, Some(&start)).await;
    assert!(
        joined["device_lists"]["changed"]
            .as_array()
            .unwrap()
            .contains(&json!(alice)),
        "{joined}"
    );
    let token = joined["next_batch"].as_str().unwrap().to_owned();

    // Alice adds a device with keys: bob sees her in `changed`, carol (no shared room) does not.
    let carol_start = sync(&server, &carol_token, None).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let phone = login(&server, &alice, "PHONE").await;
    server
        .post(
            "/_matrix/client/v3/keys/upload",
            &phone,
            json!({ "device_keys": device_keys(&alice, "PHONE", &keypair("PHONE")) }),
        )
        .await;
    let changed = sync(&server, &bob_token, Some(&token)).await;
    assert_eq!(
        changed["device_lists"]["changed"],
        json!([alice]),
        "{changed}"
    );
    let carol_sync = sync(&server, &carol_token, Some(&carol_start)).await;
    assert!(
        carol_sync.get("device_lists").is_none_or(|d| d["changed"]
            .as_array()
            .is_none_or(|c| !c.contains(&json!(alice)))),
        "{carol_sync}"
    );
    let next = changed["next_batch"].as_str().unwrap().to_owned();
    let answer = server
        .get(
            &format!(
                "/_matrix/client/v3/keys/changes?from={}&to={}",
                enc(&token),
                enc(&next)
            ),
            &bob_token,
        )
        .await;
    assert_eq!(answer["changed"], json!([alice]), "{answer}");
    assert_eq!(answer["left"], json!([]), "{answer}");

    // Bob leaves: alice is in `left`.
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
            &bob_token,
            json!({}),
        )
        .await;
    let left = sync(&server, &bob_token, Some(&next)).await;
    assert_eq!(left["device_lists"]["left"], json!([alice]), "{left}");
    let _ = bob;
    let _ = carol;
    server.stop().await;
}

#[tokio::test]
async fn to_device_messages_until_acknowledged_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_alice, alice_token) = server.register("alice").await;
    let (bob, bob_token) = server.register("bob").await;
    let bob_device = whoami(&server, &bob_token).await;
    let bob_phone = login(&server, &bob, "PHONE").await;
    let initial = sync(&server, &bob_token, None).await;
    let t0 = initial["next_batch"].as_str().unwrap().to_owned();

    // The same transaction twice delivers once; `*` reaches every device.
    let path = "/_matrix/client/v3/sendToDevice/m.test/txn1";
    let body = json!({ "messages": { &bob: { &bob_device: { "n": 1 } } } });
    server.put(path, &alice_token, body.clone()).await;
    server.put(path, &alice_token, body).await;
    server
        .put(
            "/_matrix/client/v3/sendToDevice/m.test/txn2",
            &alice_token,
            json!({ "messages": { &bob: { "*": { "n": 2 } } } }),
        )
        .await;

    let s1 = sync(&server, &bob_token, Some(&t0)).await;
    let events = s1["to_device"]["events"].as_array().unwrap().clone();
    assert_eq!(
        events
            .iter()
            .map(|e| e["content"]["n"].clone())
            .collect::<Vec<_>>(),
        vec![json!(1), json!(2)],
        "{s1}"
    );
    assert_eq!(events[0]["type"], "m.test");
    assert_eq!(events[0]["sender"], "@alice:test.local");
    // Not acknowledged yet: the same `since` gives them again.
    assert_eq!(
        sync(&server, &bob_token, Some(&t0)).await["to_device"]["events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let phone = sync(&server, &bob_phone, Some(&t0)).await;
    assert_eq!(
        phone["to_device"]["events"].as_array().unwrap().len(),
        1,
        "{phone}"
    );

    // A restart keeps unacknowledged messages.
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    assert_eq!(
        sync(&server, &bob_token, Some(&t0)).await["to_device"]["events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A sync past them acknowledges (deletes) them: never again, even with the old token.
    let t1 = s1["next_batch"].as_str().unwrap();
    let s2 = sync(&server, &bob_token, Some(t1)).await;
    assert!(
        s2.get("to_device")
            .is_none_or(|t| t["events"].as_array().is_none_or(Vec::is_empty)),
        "{s2}"
    );
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let again = sync(&server, &bob_token, Some(&t0)).await;
    assert!(
        again
            .get("to_device")
            .is_none_or(|t| t["events"].as_array().is_none_or(Vec::is_empty)),
        "{again}"
    );
    // The phone's message is still there.
    assert_eq!(
        sync(&server, &bob_phone, Some(&t0)).await["to_device"]["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn msc3967_cross_signing_keys_and_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice, alice_token) = server.register("alice").await;
    let (bob, bob_token) = server.register("bob").await;
    let device = whoami(&server, &alice_token).await;
    let kp = keypair(&device);
    server
        .post(
            "/_matrix/client/v3/keys/upload",
            &alice_token,
            json!({ "device_keys": device_keys(&alice, &device, &kp) }),
        )
        .await;

    let (master, ssk, usk) = (cross_keypair(), cross_keypair(), cross_keypair());
    let cross_key = |kp: &Ed25519KeyPair, usage: &str| {
        let public = b64(&kp.public_key());
        json!({ "user_id": alice, "usage": [usage], "keys": { format!("ed25519:{public}"): public } })
    };
    let master_key = cross_key(&master, "master");
    let ssk_key = signed(&alice, &master, cross_key(&ssk, "self_signing"));
    let usk_key = signed(&alice, &master, cross_key(&usk, "user_signing"));

    // A self-signing key not signed by the master key is refused.
    let bad =
        json!({ "master_key": master_key, "self_signing_key": cross_key(&ssk, "self_signing") });
    let (status, _) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/keys/device_signing/upload",
            Some(&alice_token),
            Some(bad),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The first upload needs no authentication.
    let upload = json!({ "master_key": master_key, "self_signing_key": ssk_key, "user_signing_key": usk_key });
    server
        .post(
            "/_matrix/client/v3/keys/device_signing/upload",
            &alice_token,
            upload,
        )
        .await;

    let to_bob = query(&server, &bob_token, &alice).await;
    assert_eq!(
        to_bob["master_keys"][&alice]["usage"],
        json!(["master"]),
        "{to_bob}"
    );
    assert_eq!(
        to_bob["self_signing_keys"][&alice]["usage"],
        json!(["self_signing"]),
        "{to_bob}"
    );
    assert!(
        to_bob["user_signing_keys"].get(&alice).is_none(),
        "{to_bob}"
    );
    let to_alice = query(&server, &alice_token, &alice).await;
    assert_eq!(
        to_alice["user_signing_keys"][&alice]["usage"],
        json!(["user_signing"]),
        "{to_alice}"
    );

    // Replacing them needs the password.
    let other = cross_keypair();
    let replace = json!({ "master_key": cross_key(&other, "master") });
    let (status, body) = server
        .call(
            Method::POST,
            "/_matrix/client/v3/keys/device_signing/upload",
            Some(&alice_token),
            Some(replace.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["flows"].is_array(), "{body}");

    // The self-signing key signs the device; a bad signature is a failure.
    let ssk_id = format!("ed25519:{}", b64(&ssk.public_key()));
    let mut device_copy: CanonicalJsonObject =
        serde_json::from_value(device_keys(&alice, &device, &kp)).unwrap();
    device_copy.remove("signatures");
    sign_json(&alice, &ssk, &mut device_copy).unwrap();
    let signed_device = serde_json::to_value(&device_copy).unwrap();
    let answer = server
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            &alice_token,
            json!({ &alice: { &device: signed_device } }),
        )
        .await;
    assert!(
        answer["failures"].as_object().is_none_or(|f| f.is_empty()),
        "{answer}"
    );
    let after = query(&server, &bob_token, &alice).await;
    assert!(
        after["device_keys"][&alice][&device]["signatures"][&alice][&ssk_id].is_string(),
        "{after}"
    );
    let mut forged = device_copy.clone();
    forged.insert(
        "signatures".into(),
        serde_json::from_value(json!({ &alice: { &ssk_id: b64(&[7u8; 64]) } })).unwrap(),
    );
    let answer = server
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            &alice_token,
            json!({ &alice: { &device: forged } }),
        )
        .await;
    assert_eq!(
        answer["failures"][&alice][&device]["errcode"], "M_INVALID_SIGNATURE",
        "{answer}"
    );

    // The device signs the master key (key id: the master public key).
    let master_public = b64(&master.public_key());
    let mut master_copy: CanonicalJsonObject = serde_json::from_value(master_key.clone()).unwrap();
    sign_json(&alice, &kp, &mut master_copy).unwrap();
    let answer = server
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            &alice_token,
            json!({ &alice: { &master_public: master_copy } }),
        )
        .await;
    assert!(
        answer["failures"].as_object().is_none_or(|f| f.is_empty()),
        "{answer}"
    );
    let after = query(&server, &bob_token, &alice).await;
    assert!(
        after["master_keys"][&alice]["signatures"][&alice][format!("ed25519:{device}")].is_string(),
        "{after}"
    );

    // With the password, the master key is replaced.
    let session = body["session"].as_str().unwrap();
    let mut replace = replace;
    replace["auth"] = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": alice }, "password": "secret-password", "session": session });
    server
        .post(
            "/_matrix/client/v3/keys/device_signing/upload",
            &alice_token,
            replace,
        )
        .await;
    let after = query(&server, &bob_token, &alice).await;
    assert_eq!(
        after["master_keys"][&alice]["keys"][format!("ed25519:{}", b64(&other.public_key()))],
        b64(&other.public_key()),
        "{after}"
    );
    let _ = bob;
    server.stop().await;
}

#[tokio::test]
async fn e2e_key_backup_replace_room_key_rules() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_alice, token) = server.register("alice").await;
    let (status, body) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/room_keys/version",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_NOT_FOUND"))
    );

    let algorithm = json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": { "public_key": "abcdefg", "signatures": {} } });
    let v1 = server
        .post(
            "/_matrix/client/v3/room_keys/version",
            &token,
            algorithm.clone(),
        )
        .await["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let info = server
        .get("/_matrix/client/v3/room_keys/version", &token)
        .await;
    assert_eq!(
        (info["version"].as_str(), info["count"].as_u64()),
        (Some(v1.as_str()), Some(0)),
        "{info}"
    );

    let key = |index: u64, forwarded: u64, verified: bool, tag: &str| json!({ "first_message_index": index, "forwarded_count": forwarded, "is_verified": verified, "session_data": { "ephemeral": tag, "ciphertext": tag, "mac": tag } });
    let session_path = |v: &str| {
        format!(
            "/_matrix/client/v3/room_keys/keys/{}/sess1?version={v}",
            enc("!room:test.local")
        )
    };
    let put = server
        .put(&session_path(&v1), &token, key(5, 1, false, "first"))
        .await;
    assert_eq!(put["count"], 1, "{put}");
    let etag1 = put["etag"].as_str().unwrap().to_owned();
    // A worse key (higher index) is ignored; the etag stays.
    let put = server
        .put(&session_path(&v1), &token, key(6, 0, false, "worse"))
        .await;
    assert_eq!(put["etag"], etag1.as_str());
    assert_eq!(
        server.get(&session_path(&v1), &token).await["session_data"]["ciphertext"],
        "first"
    );
    // A lower index wins; then a verified key wins whatever its index.
    let put = server
        .put(&session_path(&v1), &token, key(2, 3, false, "better"))
        .await;
    assert_ne!(put["etag"], etag1.as_str());
    assert_eq!(
        server.get(&session_path(&v1), &token).await["session_data"]["ciphertext"],
        "better"
    );
    server
        .put(&session_path(&v1), &token, key(9, 9, true, "verified"))
        .await;
    assert_eq!(
        server.get(&session_path(&v1), &token).await["session_data"]["ciphertext"],
        "verified"
    );
    server
        .put(&session_path(&v1), &token, key(0, 0, false, "unverified"))
        .await;
    assert_eq!(
        server.get(&session_path(&v1), &token).await["session_data"]["ciphertext"],
        "verified"
    );
    // Same verification and index: the lower forwarded count wins.
    server
        .put(
            &session_path(&v1),
            &token,
            key(9, 1, true, "fewer-forwards"),
        )
        .await;
    assert_eq!(
        server.get(&session_path(&v1), &token).await["session_data"]["ciphertext"],
        "fewer-forwards"
    );

    // All keys, by room.
    let all = server
        .get(
            &format!("/_matrix/client/v3/room_keys/keys?version={v1}"),
            &token,
        )
        .await;
    assert!(
        all["rooms"]["!room:test.local"]["sessions"]["sess1"].is_object(),
        "{all}"
    );

    // A newer version: keys for the old one are refused with the current version.
    let v2 = server
        .post(
            "/_matrix/client/v3/room_keys/version",
            &token,
            algorithm.clone(),
        )
        .await["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = server
        .call(
            Method::PUT,
            &session_path(&v1),
            Some(&token),
            Some(key(0, 0, true, "old")),
        )
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_WRONG_ROOM_KEYS_VERSION")),
        "{body}"
    );
    assert_eq!(body["current_version"], v2.as_str());
    let (status, _) = server
        .call(Method::GET, &session_path(&v2), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Update: the auth data changes; the algorithm cannot.
    let mut update = json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": { "public_key": "new", "signatures": {} }, "version": v2 });
    server
        .put(
            &format!("/_matrix/client/v3/room_keys/version/{v2}"),
            &token,
            update.clone(),
        )
        .await;
    assert_eq!(
        server
            .get(
                &format!("/_matrix/client/v3/room_keys/version/{v2}"),
                &token
            )
            .await["auth_data"]["public_key"],
        "new"
    );
    update["algorithm"] = json!("m.other");
    let (status, _) = server
        .call(
            Method::PUT,
            &format!("/_matrix/client/v3/room_keys/version/{v2}"),
            Some(&token),
            Some(update),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Deleting keys, then the version.
    let deleted = server
        .call(
            Method::DELETE,
            &format!("/_matrix/client/v3/room_keys/keys?version={v1}"),
            Some(&token),
            None,
        )
        .await
        .1;
    assert_eq!(deleted["count"], 0, "{deleted}");
    server
        .call(
            Method::DELETE,
            &format!("/_matrix/client/v3/room_keys/version/{v2}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        server
            .get("/_matrix/client/v3/room_keys/version", &token)
            .await["version"],
        v1.as_str()
    );
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/_matrix/client/v3/room_keys/version/{v2}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

// ---- Over federation -------------------------------------------------------------------------

async fn membership(server: &TestServer, token: &str, room: &str, user: &str) -> Option<String> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
        enc(room),
        enc(user)
    );
    let (status, body) = server.call(Method::GET, &path, Some(token), None).await;
    (status == StatusCode::OK).then(|| body["membership"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn keys_to_device_messages_and_device_lists_update_over_federation() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start_named(dir_a.path()).await;
    let (b, _) = start_named(dir_b.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let alice_device = whoami(&a, &alice_token).await;
    let bob_device = whoami(&b, &bob_token).await;
    let alice_kp = keypair(&alice_device);
    a.post(
        "/_matrix/client/v3/keys/upload",
        &alice_token,
        json!({ "device_keys": device_keys(&alice, &alice_device, &alice_kp), "one_time_keys": one_time_keys(&alice, &alice_kp, &["K1", "K2"]) }),
    )
    .await;

    // Before sharing a room: a remote query goes to A directly.
    let answer = query(&b, &bob_token, &alice).await;
    assert_eq!(
        answer["device_keys"][&alice][&alice_device]["keys"][format!("ed25519:{alice_device}")],
        b64(&alice_kp.public_key()),
        "{answer}"
    );

    // An encrypted room shared by both.
    let room = a.create_room(&alice_token, json!({ "preset": "public_chat", "initial_state": [{ "type": "m.room.encryption", "state_key": "", "content": { "algorithm": "m.megolm.v1.aes-sha2" } }] })).await;
    b.post(
        &format!(
            "/_matrix/client/v3/join/{}?server_name={}",
            enc(&room),
            enc(a_name.as_str())
        ),
        &bob_token,
        json!({}),
    )
    .await;
    eventually("bob joined on A", || async {
        (membership(&a, &alice_token, &room, &bob).await.as_deref() == Some("join")).then_some(())
    })
    .await;

    // Query (now through the cached device list) and claim of a remote user.
    let answer = query(&b, &bob_token, &alice).await;
    assert!(
        answer["device_keys"][&alice][&alice_device].is_object(),
        "{answer}"
    );
    let claim = b
        .post(
            "/_matrix/client/v3/keys/claim",
            &bob_token,
            json!({ "one_time_keys": { &alice: { &alice_device: "signed_curve25519" } } }),
        )
        .await;
    let claimed = claim["one_time_keys"][&alice][&alice_device]
        .as_object()
        .unwrap();
    assert_eq!(claimed.len(), 1, "{claim}");
    assert!(
        claimed
            .keys()
            .next()
            .unwrap()
            .starts_with("signed_curve25519:K"),
        "{claim}"
    );
    let counts = sync(&a, &alice_token, None).await;
    assert_eq!(
        counts["device_one_time_keys_count"]["signed_curve25519"], 1,
        "{counts}"
    );

    // To-device from B to A (m.direct_to_device), delivered once.
    let alice_start = counts["next_batch"].as_str().unwrap().to_owned();
    b.put(
        "/_matrix/client/v3/sendToDevice/m.room_key_request/t1",
        &bob_token,
        json!({ "messages": { &alice: { &alice_device: { "hello": "alice" } } } }),
    )
    .await;
    let got = eventually("the to-device message on A", || async {
        let s = sync(&a, &alice_token, Some(&alice_start)).await;
        let events = s["to_device"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (!events.is_empty()).then_some((events, s["next_batch"].as_str().unwrap().to_owned()))
    })
    .await;
    assert_eq!(got.0.len(), 1);
    assert_eq!(got.0[0]["sender"], bob.as_str());
    assert_eq!(got.0[0]["content"]["hello"], "alice");
    let later = sync(&a, &alice_token, Some(&got.1)).await;
    assert!(
        later
            .get("to_device")
            .is_none_or(|t| t["events"].as_array().is_none_or(Vec::is_empty)),
        "{later}"
    );

    // And from A to B, to all of bob's devices.
    let bob_start = sync(&b, &bob_token, None).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    a.put(
        "/_matrix/client/v3/sendToDevice/m.test/t2",
        &alice_token,
        json!({ "messages": { &bob: { "*": { "hi": "bob" } } } }),
    )
    .await;
    eventually("the to-device message on B", || async {
        let s = sync(&b, &bob_token, Some(&bob_start)).await;
        s["to_device"]["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["content"]["hi"] == "bob"))
            .then_some(())
    })
    .await;
    let _ = bob_device;

    // Alice adds a device: B hears of it (m.device_list_update), bob sees her in `changed` and a
    // query shows the new device.
    let bob_token_pos = sync(&b, &bob_token, None).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let laptop = login(&a, &alice, "LAPTOP").await;
    a.post(
        "/_matrix/client/v3/keys/upload",
        &laptop,
        json!({ "device_keys": device_keys(&alice, "LAPTOP", &keypair("LAPTOP")) }),
    )
    .await;
    eventually("alice in bob's device_lists.changed", || async {
        let s = sync(&b, &bob_token, Some(&bob_token_pos)).await;
        s["device_lists"]["changed"]
            .as_array()
            .is_some_and(|c| c.contains(&json!(alice)))
            .then_some(())
    })
    .await;
    let answer = eventually("alice's new device in bob's query", || async {
        let answer = query(&b, &bob_token, &alice).await;
        answer["device_keys"][&alice]["LAPTOP"]
            .is_object()
            .then_some(answer)
    })
    .await;
    assert!(
        answer["device_keys"][&alice][&alice_device].is_object(),
        "{answer}"
    );

    // An unreachable server is named in `failures`.
    let answer = b
        .post("/_matrix/client/v3/keys/query", &bob_token, json!({ "device_keys": { format!("@x:127.0.0.1:{}", free_port()): [] }, "timeout": 2000 }))
        .await;
    assert_eq!(
        answer["failures"].as_object().map(|f| f.len()),
        Some(1),
        "{answer}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn msc3814_dehydrated_device() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice, alice_token) = server.register("alice").await;
    let (_bob, bob_token) = server.register("bob").await;
    let base = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";
    let (status, body) = server
        .call(Method::GET, base, Some(&alice_token), None)
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_NOT_FOUND"))
    );

    let put = |device: &str, kp: &Ed25519KeyPair| {
        let mut keys = device_keys(&alice, device, kp);
        keys["dehydrated"] = json!(true);
        let mut object: CanonicalJsonObject = serde_json::from_value(keys).unwrap();
        object.remove("signatures");
        sign_json(&alice, kp, &mut object).unwrap();
        json!({
            "device_id": device,
            "initial_device_display_name": "dehydrated",
            "device_data": { "algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": format!("pickle of {device}") },
            "device_keys": object,
            "one_time_keys": one_time_keys(&alice, kp, &["D1"]),
        })
    };
    // Keys not signed by the named device are refused.
    let (status, _) = server
        .call(
            Method::PUT,
            base,
            Some(&alice_token),
            Some(put("DEHYD1", &keypair("OTHER"))),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let kp1 = keypair("DEHYD1");
    assert_eq!(
        server.put(base, &alice_token, put("DEHYD1", &kp1)).await["device_id"],
        "DEHYD1"
    );
    let got = server.get(base, &alice_token).await;
    assert_eq!(got["device_id"], "DEHYD1");
    assert_eq!(got["device_data"]["device_pickle"], "pickle of DEHYD1");
    let keys = query(&server, &bob_token, &alice).await;
    assert_eq!(
        keys["device_keys"][&alice]["DEHYD1"]["dehydrated"], true,
        "{keys}"
    );

    // Messages to it are read in batches, each acknowledging the previous one.
    for n in 0..3 {
        server
            .put(
                &format!("/_matrix/client/v3/sendToDevice/m.test/d{n}"),
                &bob_token,
                json!({ "messages": { &alice: { "DEHYD1": { "n": n } } } }),
            )
            .await;
    }
    let events_path = format!("{base}/DEHYD1/events");
    let first = server.post(&events_path, &alice_token, json!({})).await;
    assert_eq!(first["events"].as_array().unwrap().len(), 3, "{first}");
    let token = first["next_batch"].as_str().unwrap().to_owned();
    let again = server.post(&events_path, &alice_token, json!({})).await;
    assert_eq!(
        again["events"].as_array().unwrap().len(),
        3,
        "not acknowledged yet"
    );
    let rest = server
        .post(&events_path, &alice_token, json!({ "next_batch": token }))
        .await;
    assert_eq!(rest["events"], json!([]), "{rest}");
    let after = server.post(&events_path, &alice_token, json!({})).await;
    assert_eq!(
        after["events"],
        json!([]),
        "acknowledged messages are deleted: {after}"
    );
    let (status, _) = server
        .call(
            Method::POST,
            &format!("{base}/NOTIT/events"),
            Some(&alice_token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A new dehydrated device replaces the old one.
    server
        .put(base, &alice_token, put("DEHYD2", &keypair("DEHYD2")))
        .await;
    assert_eq!(server.get(base, &alice_token).await["device_id"], "DEHYD2");
    let keys = query(&server, &bob_token, &alice).await;
    assert!(
        keys["device_keys"][&alice].get("DEHYD1").is_none()
            && keys["device_keys"][&alice]["DEHYD2"].is_object(),
        "{keys}"
    );

    let (status, body) = server
        .call(Method::DELETE, base, Some(&alice_token), None)
        .await;
    assert_eq!(
        (status, body["device_id"].as_str()),
        (StatusCode::OK, Some("DEHYD2"))
    );
    let (status, _) = server
        .call(Method::GET, base, Some(&alice_token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        query(&server, &bob_token, &alice).await["device_keys"][&alice]
            .get("DEHYD2")
            .is_none()
    );
    server.stop().await;
}

/// A transaction from `from` to `to` carrying `edus`.
async fn send_edus(
    from: &TestServer,
    from_name: &OwnedServerName,
    to: &OwnedServerName,
    txn: &str,
    edus: Vec<Value>,
) {
    let services = from.server.as_ref().unwrap().services.clone();
    let body = json!({ "origin": from_name, "origin_server_ts": parvis::util::now_ms(), "pdus": [], "edus": edus });
    let (status, answer) = parvis::federation::request::send_json(
        &services,
        to,
        http::Method::PUT,
        &format!("/_matrix/federation/v1/send/{txn}"),
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(status, http::StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn received_e2ee_edus_are_checked_and_deduplicated_and_signing_keys_travel() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start_named(dir_a.path()).await;
    let (b, b_name) = start_named(dir_b.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let bob_device = whoami(&b, &bob_token).await;
    let start = sync(&b, &bob_token, None).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();

    // A to-device EDU twice with the same message_id: delivered once. One whose sender is not of
    // the origin, or the same message id from another sender of the origin: the first ignored, the
    // second delivered.
    let edu = |sender: &str, id: &str, n: u64| json!({ "edu_type": "m.direct_to_device", "content": { "sender": sender, "type": "m.test", "message_id": id, "messages": { &bob: { &bob_device: { "n": n } } } } });
    send_edus(&a, &a_name, &b_name, "t1", vec![edu(&alice, "m1", 1)]).await;
    send_edus(
        &a,
        &a_name,
        &b_name,
        "t2",
        vec![
            edu(&alice, "m1", 1),
            edu(&bob, "m2", 2),
            edu(&format!("@carol:{a_name}"), "m1", 3),
        ],
    )
    .await;
    let got = sync(&b, &bob_token, Some(&start)).await;
    let ns: Vec<Value> = got["to_device"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"]["n"].clone())
        .collect();
    assert_eq!(ns, vec![json!(1), json!(3)], "{got}");

    // A device list update about B's own user from A is ignored.
    let fake = json!({ "edu_type": "m.device_list_update", "content": { "user_id": bob, "device_id": "FAKE", "stream_id": 99, "prev_id": [], "deleted": false } });
    let next = got["next_batch"].as_str().unwrap().to_owned();
    send_edus(&a, &a_name, &b_name, "t3", vec![fake]).await;
    let after = sync(&b, &bob_token, Some(&next)).await;
    assert!(
        after
            .get("device_lists")
            .is_none_or(|d| d["changed"].as_array().is_none_or(Vec::is_empty)),
        "{after}"
    );

    // Sharing a room: alice's new cross-signing keys reach B (m.signing_key_update) and B's queries.
    let room = a
        .create_room(&alice_token, json!({ "preset": "public_chat" }))
        .await;
    b.post(
        &format!(
            "/_matrix/client/v3/join/{}?server_name={}",
            enc(&room),
            enc(a_name.as_str())
        ),
        &bob_token,
        json!({}),
    )
    .await;
    eventually("bob joined on A", || async {
        (membership(&a, &alice_token, &room, &bob).await.as_deref() == Some("join")).then_some(())
    })
    .await;
    let device = whoami(&a, &alice_token).await;
    a.post(
        "/_matrix/client/v3/keys/upload",
        &alice_token,
        json!({ "device_keys": device_keys(&alice, &device, &keypair(&device)) }),
    )
    .await;
    // B caches alice's device list (user/devices) before the keys change.
    let cached = eventually("alice's device on B", || async {
        let answer = query(&b, &bob_token, &alice).await;
        answer["device_keys"][&alice][&device]
            .is_object()
            .then_some(answer)
    })
    .await;
    assert!(cached["master_keys"].get(&alice).is_none(), "{cached}");
    let master = cross_keypair();
    let public = b64(&master.public_key());
    let master_key = json!({ "user_id": alice, "usage": ["master"], "keys": { format!("ed25519:{public}"): public } });
    a.post(
        "/_matrix/client/v3/keys/device_signing/upload",
        &alice_token,
        json!({ "master_key": master_key }),
    )
    .await;
    eventually("alice's master key on B", || async {
        let answer = query(&b, &bob_token, &alice).await;
        (answer["master_keys"][&alice]["keys"][format!("ed25519:{public}")] == public.as_str())
            .then_some(())
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// Writes of the user's entry in `key_changes`, by position (all of them, to count duplicates).
fn key_change_entries(s: &parvis::services::Services, user: &str) -> usize {
    s.globals
        .db
        .scan_prefix(parvis::services::keys::KEY_CHANGES, &[])
        .filter(|e| e.as_ref().is_ok_and(|(_, v)| &v[..] == user.as_bytes()))
        .count()
}

fn device_list_id(s: &parvis::services::Services, user: &str) -> Option<u64> {
    s.globals
        .db
        .get_u64(parvis::services::keys::DEVICE_LIST_IDS, user.as_bytes())
        .unwrap()
}

/// A device change (login, rename, key upload, removal of several devices) is one batch with the
/// user's device list change and the `m.device_list_update` stream id: a crash after the first
/// write cannot leave a device change /sync and other servers never hear of.
#[tokio::test]
async fn device_changes_and_their_device_list_updates_are_one_batch() {
    use parvis::services::keys::{KEY_CHANGE_POS, device_keys, device_list};
    let dir = tempfile::tempdir().unwrap();
    let (s, engine) = common::crash_engine::services(dir.path());
    let alice = ruma::UserId::parse("@alice:test.local").unwrap();
    s.users.create(&alice, None).unwrap();
    let change_pos = |s: &parvis::services::Services| {
        s.globals
            .db
            .get_u64(KEY_CHANGE_POS, alice.as_bytes())
            .unwrap()
    };

    // Login: one write holds the device, the change and the update.
    engine.allow_writes(1);
    device_list::login(&s, &alice, Some("PHONE".into()), Some("Phone".into())).unwrap();
    engine.allow_writes(0);
    assert!(s.users.device(&alice, "PHONE").unwrap().is_some());
    let after_login = change_pos(&s).expect("the login is a device list change");
    let id_after_login =
        device_list_id(&s, alice.as_str()).expect("an m.device_list_update stream id");

    // A crash before the write: nothing at all.
    assert!(device_list::rename(&s, &alice, "PHONE", Some("Old phone".into())).is_err());
    assert_eq!(
        s.users
            .device(&alice, "PHONE")
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Phone")
    );
    assert_eq!(change_pos(&s), Some(after_login));

    engine.allow_writes(1);
    device_list::rename(&s, &alice, "PHONE", Some("Old phone".into())).unwrap();
    assert_eq!(
        s.users
            .device(&alice, "PHONE")
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Old phone")
    );
    let after_rename = change_pos(&s).unwrap();
    assert!(after_rename > after_login);
    let id_after_rename = device_list_id(&s, alice.as_str()).unwrap();
    assert!(id_after_rename > id_after_login);

    // A key upload with device keys.
    engine.allow_writes(1);
    let keys = device_keys(alice.as_str(), "PHONE", &keypair("PHONE"));
    let upload = device_keys::Upload {
        device_keys: Some(serde_json::from_value(keys).unwrap()),
        ..Default::default()
    };
    device_keys::upload(&s, &alice, "PHONE".into(), upload).unwrap();
    assert!(device_keys::get(&s, &alice, "PHONE").unwrap().is_some());
    assert!(change_pos(&s).unwrap() > after_rename);
    let id_after_upload = device_list_id(&s, alice.as_str()).unwrap();
    assert!(id_after_upload > id_after_rename);

    // Two devices removed at once: one write, one key change entry, two chained updates.
    engine.allow_writes(-1);
    device_list::login(&s, &alice, Some("LAPTOP".into()), None).unwrap();
    let id_before_removal = device_list_id(&s, alice.as_str()).unwrap();
    engine.allow_writes(1);
    device_list::remove(&s, &alice, &["PHONE", "LAPTOP"]).unwrap();
    assert!(s.users.devices(&alice).unwrap().is_empty());
    assert!(device_keys::get(&s, &alice, "PHONE").unwrap().is_none());
    assert_eq!(
        key_change_entries(&s, alice.as_str()),
        1,
        "one key_changes entry per user"
    );
    assert!(
        device_list_id(&s, alice.as_str()).unwrap() > id_before_removal + 1,
        "one update per removed device"
    );
}

/// More than 100 pending to-device messages: each /sync gives 100 (sytest's "Can recv device
/// messages until they are acknowledged" in batches); the token says which were given, a repeated
/// `since` gives the same batch again, and only what a later token acknowledges is deleted.
#[tokio::test]
async fn to_device_messages_come_100_per_sync_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_alice, alice_token) = server.register("alice").await;
    let (bob, bob_token) = server.register("bob").await;
    let bob_device = whoami(&server, &bob_token).await;
    let t0 = sync(&server, &bob_token, None).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..250 {
        let body = json!({ "messages": { &bob: { &bob_device: { "n": n } } } });
        server
            .put(
                &format!("/_matrix/client/v3/sendToDevice/m.test/t{n}"),
                &alice_token,
                body,
            )
            .await;
    }
    let numbers = |answer: &Value| -> Vec<u64> {
        answer["to_device"]["events"]
            .as_array()
            .map_or(Vec::new(), |e| {
                e.iter()
                    .map(|e| e["content"]["n"].as_u64().unwrap())
                    .collect()
            })
    };

    let s1 = sync(&server, &bob_token, Some(&t0)).await;
    assert_eq!(numbers(&s1), (0..100).collect::<Vec<_>>());
    let t1 = s1["next_batch"].as_str().unwrap().to_owned();
    // The answer was lost: the same token gives the same messages.
    assert_eq!(
        numbers(&sync(&server, &bob_token, Some(&t0)).await),
        (0..100).collect::<Vec<_>>()
    );
    // The next token gives the next ones, at once (a long poll does not wait for them).
    let (status, s2) = server
        .call(
            Method::GET,
            &format!("/_matrix/client/v3/sync?timeout=10000&since={}", enc(&t1)),
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(numbers(&s2), (100..200).collect::<Vec<_>>());
    let t2 = s2["next_batch"].as_str().unwrap().to_owned();
    // A restart between two batches loses nothing.
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    assert_eq!(
        numbers(&sync(&server, &bob_token, Some(&t1)).await),
        (100..200).collect::<Vec<_>>()
    );
    let s3 = sync(&server, &bob_token, Some(&t2)).await;
    assert_eq!(numbers(&s3), (200..250).collect::<Vec<_>>());
    // Every message given: the token is an ordinary one again, and nothing is left.
    let t3 = s3["next_batch"].as_str().unwrap().to_owned();
    assert_eq!(t3.matches('_').count(), 1, "{t3}");
    assert!(numbers(&sync(&server, &bob_token, Some(&t3)).await).is_empty());
    // Acknowledged messages are gone, even for an older token.
    assert!(numbers(&sync(&server, &bob_token, Some(&t1)).await).is_empty());
    server.stop().await;
}

/// A /sync reads a device's to-device queue only when a message may be in it
/// (`to_device::Queues`); messages still come once each, and once acknowledged never again.
#[tokio::test]
async fn to_device_messages_between_empty_syncs_come_once_and_go_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_alice, alice_token) = server.register("alice").await;
    let (bob, bob_token) = server.register("bob").await;
    let bob_device = whoami(&server, &bob_token).await;
    let events = |body: &Value| -> Vec<Value> {
        body["to_device"]["events"]
            .as_array()
            .map(|e| e.iter().map(|e| e["content"]["n"].clone()).collect())
            .unwrap_or_default()
    };
    let mut token = sync(&server, &bob_token, None).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 1..=3 {
        // Syncs with nothing for the device, past the message before.
        for _ in 0..2 {
            let empty = sync(&server, &bob_token, Some(&token)).await;
            assert!(events(&empty).is_empty(), "{empty}");
            // Another user's message moves the position on.
            server.create_room(&alice_token, json!({})).await;
            token = empty["next_batch"].as_str().unwrap().to_owned();
        }
        let before = token.clone();
        server
            .put(
                &format!("/_matrix/client/v3/sendToDevice/m.test/t{n}"),
                &alice_token,
                json!({ "messages": { &bob: { &bob_device: { "n": n } } } }),
            )
            .await;
        let got = sync(&server, &bob_token, Some(&before)).await;
        assert_eq!(events(&got), vec![json!(n)], "{got}");
        token = got["next_batch"].as_str().unwrap().to_owned();
        // Acknowledged by the next sync: the old token no longer brings it.
        let next = sync(&server, &bob_token, Some(&token)).await;
        assert!(events(&next).is_empty(), "{next}");
        let old = sync(&server, &bob_token, Some(&before)).await;
        assert!(
            events(&old).is_empty(),
            "acknowledged message {n} again: {old}"
        );
        token = next["next_batch"].as_str().unwrap().to_owned();
    }
    server.stop().await;
}

/// /sync keeps a device's key counts between changes (`keys::one_time::CountsCache`): an upload,
/// a claim, and a device removed then created again under the same id each show at once.
#[tokio::test]
async fn one_time_key_counts_in_sync_follow_uploads_claims_and_a_device_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (alice, _) = server.register("alice").await;
    let (_bob, bob_token) = server.register("bob").await;
    let kp = keypair("PHONE");
    let count = |body: &Value| body["device_one_time_keys_count"]["signed_curve25519"].clone();
    let phone = login(&server, &alice, "PHONE").await;
    let first = sync(&server, &phone, None).await;
    assert_eq!(count(&first), json!(0), "{first}");
    assert_eq!(first["device_unused_fallback_key_types"], json!([]));
    server
        .post(
            "/_matrix/client/v3/keys/upload",
            &phone,
            json!({
                "one_time_keys": one_time_keys(&alice, &kp, &["AAAA", "AAAB"]),
                "fallback_keys": fallback_key(&alice, &kp, "FFFF"),
            }),
        )
        .await;
    let uploaded = sync(&server, &phone, first["next_batch"].as_str()).await;
    assert_eq!(count(&uploaded), json!(2), "{uploaded}");
    assert_eq!(
        uploaded["device_unused_fallback_key_types"],
        json!(["signed_curve25519"])
    );
    let claim = json!({ "one_time_keys": { &alice: { "PHONE": "signed_curve25519" } } });
    server
        .post("/_matrix/client/v3/keys/claim", &bob_token, claim)
        .await;
    let claimed = sync(&server, &phone, uploaded["next_batch"].as_str()).await;
    assert_eq!(count(&claimed), json!(1), "{claimed}");
    // Logging out removes the device and its keys; the same id logged in again has none.
    server
        .post("/_matrix/client/v3/logout", &phone, json!({}))
        .await;
    let phone = login(&server, &alice, "PHONE").await;
    let again = sync(&server, &phone, None).await;
    assert_eq!(count(&again), json!(0), "{again}");
    assert_eq!(again["device_unused_fallback_key_types"], json!([]));
    server.stop().await;
}
