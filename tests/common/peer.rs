//! A misbehaving peer built in a test: two federating servers that share a room, and events
//! built and signed by hand (with either server's key) to send from one to the other.

use std::sync::Arc;

use super::federation::{eventually, start};
use super::{TestServer, enc};

use parvis::{federation::request::send_json, services::Services};
use reqwest::{Method, StatusCode};
use ruma::{
    CanonicalJsonObject, OwnedEventId, OwnedRoomId, OwnedServerName,
    signatures::hash_and_sign_event,
};
use serde_json::{Value, json};

pub async fn membership(
    server: &TestServer,
    token: &str,
    room: &str,
    user: &str,
) -> Option<String> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
        enc(room),
        enc(user)
    );
    let (status, body) = server.call(Method::GET, &path, Some(token), None).await;
    (status == StatusCode::OK).then(|| body["membership"].as_str().unwrap_or_default().to_owned())
}

pub async fn wait_membership(
    server: &TestServer,
    token: &str,
    room: &str,
    user: &str,
    wanted: &str,
) {
    eventually(&format!("{user} {wanted} in {room}"), || async {
        (membership(server, token, room, user).await.as_deref() == Some(wanted)).then_some(())
    })
    .await
}

pub async fn bodies(server: &TestServer, token: &str, room: &str) -> Vec<String> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
        enc(room)
    );
    let (_, body) = server.call(Method::GET, &path, Some(token), None).await;
    body["chunk"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

pub async fn wait_message(server: &TestServer, token: &str, room: &str, text: &str) {
    eventually(&format!("{text:?} in {room}"), || async {
        bodies(server, token, room)
            .await
            .iter()
            .any(|b| b == text)
            .then_some(())
    })
    .await
}

pub async fn wait_invite(server: &TestServer, token: &str, room: &str) -> Value {
    eventually("the invite in /sync", || async {
        let (_, body) = server
            .call(Method::GET, "/_matrix/client/v3/sync", Some(token), None)
            .await;
        body["rooms"]["invite"].get(room).cloned()
    })
    .await
}

/// A room of A (version `version`) that `remote` (a user of B) joined after an invite.
pub async fn shared_room(
    a: &TestServer,
    a_name: &OwnedServerName,
    alice: &str,
    b: &TestServer,
    remote: (&str, &str),
    version: &str,
) -> String {
    let room = a
        .create_room(
            alice,
            json!({ "room_version": version, "preset": "private_chat", "name": "shared" }),
        )
        .await;
    a.post(
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
        alice,
        json!({ "user_id": remote.0 }),
    )
    .await;
    let invite = wait_invite(b, remote.1, &room).await;
    let state = invite["invite_state"]["events"].as_array().unwrap();
    assert!(
        state.iter().any(|e| e["type"] == "m.room.create"),
        "{invite}"
    );
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "shared"),
        "{invite}"
    );
    let path = format!(
        "/_matrix/client/v3/join/{}?server_name={}",
        enc(&room),
        enc(a_name.as_str())
    );
    b.post(&path, remote.1, json!({})).await;
    wait_membership(a, alice, &room, remote.0, "join").await;
    wait_full_state(b, &room).await;
    room
}

/// Waits until `server` has the whole state of `room` (a join has partial state until its resync):
/// for tests that build events by hand on that server's state.
pub async fn wait_full_state(server: &TestServer, room: &str) {
    let services = super::federation::services(server);
    let room_id = ruma::RoomId::parse(room).unwrap();
    eventually("the room's full state", || async {
        let short = services.short.room(&room_id).unwrap()?;
        (!services.partial_state.is_partial(short).unwrap()).then_some(())
    })
    .await
}

/// A shared room of A and B, plus everything the bad-input tests need.
pub struct Pair {
    pub a: TestServer,
    pub b: TestServer,
    pub a_name: OwnedServerName,
    pub b_name: OwnedServerName,
    pub room: OwnedRoomId,
    pub alice: String,
    pub bob: String,
    pub alice_token: String,
    pub bob_token: String,
    pub _dirs: (tempfile::TempDir, tempfile::TempDir),
}

pub async fn pair() -> Pair {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, b_name) = start(dir_b.path()).await;
    let (alice, alice_token) = a.register("alice").await;
    let (bob, bob_token) = b.register("bob").await;
    let room = shared_room(&a, &a_name, &alice_token, &b, (&bob, &bob_token), "12").await;
    Pair {
        a,
        b,
        a_name,
        b_name,
        room: room.try_into().unwrap(),
        alice,
        bob,
        alice_token,
        bob_token,
        _dirs: (dir_a, dir_b),
    }
}

/// A message event of `sender` in `room`, on the current state of `on` (a server in the room),
/// signed by `signer` (its key and name).
pub fn message(
    on: &Services,
    signer: &Services,
    room: &OwnedRoomId,
    sender: &str,
    body: &str,
) -> (CanonicalJsonObject, OwnedEventId) {
    let (prev, state) = now_at(on, room);
    message_on(on, signer, room, sender, body, prev, state)
}

/// The forward extremities and current state of `room` on `on`.
pub fn now_at(
    on: &Services,
    room: &OwnedRoomId,
) -> (Vec<String>, Arc<parvis::services::state::StateMap>) {
    let short = on.short.room(room).unwrap().unwrap();
    let extremities = on.timeline.extremities(short).unwrap();
    let prev: Vec<String> = extremities
        .iter()
        .map(|e| on.short.event_id(*e).unwrap().to_string())
        .collect();
    (prev, on.state.current_state(short).unwrap())
}

/// A message on given prev events and state.
pub fn message_on(
    on: &Services,
    signer: &Services,
    room: &OwnedRoomId,
    sender: &str,
    body: &str,
    prev: Vec<String>,
    state: Arc<parvis::services::state::StateMap>,
) -> (CanonicalJsonObject, OwnedEventId) {
    let content = json!({ "msgtype": "m.text", "body": body });
    event_on(
        on,
        signer,
        room,
        Built {
            sender,
            kind: "m.room.message",
            state_key: None,
            content,
            prev,
        },
        &state,
    )
}

/// The fields of a hand-built event.
pub struct Built<'a> {
    pub sender: &'a str,
    pub kind: &'a str,
    pub state_key: Option<&'a str>,
    pub content: Value,
    pub prev: Vec<String>,
}

/// A room 12 event on given prev events, with its auth events (power levels, the sender's
/// membership) taken from `state` as `on` stores it, hashed and signed by `signer`.
pub fn event_on(
    on: &Services,
    signer: &Services,
    room: &OwnedRoomId,
    e: Built<'_>,
    state: &parvis::services::state::StateMap,
) -> (CanonicalJsonObject, OwnedEventId) {
    let mut auth = Vec::new();
    for (kind, key) in [("m.room.power_levels", ""), ("m.room.member", e.sender)] {
        if let Some(k) = on.short.statekey(&kind.into(), key).unwrap()
            && let Some(ev) = state.get(&k)
        {
            auth.push(on.short.event_id(*ev).unwrap().to_string());
        }
    }
    let mut value = json!({
        "room_id": room, "sender": e.sender, "type": e.kind, "content": e.content,
        "origin_server_ts": parvis::util::now_ms(), "depth": 100,
        "prev_events": e.prev, "auth_events": auth,
    });
    if let Some(key) = e.state_key {
        value["state_key"] = json!(key);
    }
    let mut object: CanonicalJsonObject = serde_json::from_value(value).unwrap();
    let rules = ruma::RoomVersionId::V12.rules().unwrap();
    hash_and_sign_event(
        signer.globals.server_name().as_str(),
        &signer.globals.keypair,
        &mut object,
        &rules.redaction,
    )
    .unwrap();
    let hash = ruma::signatures::reference_hash(&object, &rules).unwrap();
    (object, format!("${hash}").try_into().unwrap())
}

pub fn stored(s: &Services, id: &OwnedEventId) -> bool {
    s.short
        .event(id)
        .unwrap()
        .is_some_and(|short| s.timeline.meta(short).unwrap().is_some())
}

pub async fn send_txn(
    from: &Services,
    to: &OwnedServerName,
    txn: &str,
    body: Value,
) -> (http::StatusCode, Value) {
    send_json(
        from,
        to,
        http::Method::PUT,
        &format!("/_matrix/federation/v1/send/{txn}"),
        Some(&body),
    )
    .await
    .unwrap()
}

pub fn txn_body(origin: &OwnedServerName, pdus: Vec<Value>, edus: Vec<Value>) -> Value {
    json!({ "origin": origin, "origin_server_ts": parvis::util::now_ms(), "pdus": pdus, "edus": edus })
}
