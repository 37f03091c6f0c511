//! Send-to-device messages: kept per device (`to_device`: user, device, stream position → event)
//! until the device's next `/sync` with a `since` token that acknowledges them (then deleted in one
//! batch), so each is delivered exactly once, across restarts. A /sync gives at most
//! [`SYNC_LIMIT`] of them; the rest come with the next /sync (`sync/e2ee.rs`). `PUT /sendToDevice` is idempotent per device and
//! transaction id, and messages received over federation per sender and `message_id`
//! (`to_device_txns`). Messages for other servers' users go out as `m.direct_to_device` EDUs
//! through the persisted federation queue, in the same batch as the transaction id.

use std::collections::BTreeMap;

use ruma::{OwnedServerName, OwnedUserId, ServerName, UserId};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    federation::sender::queue::put_edu,
    services::{Services, globals::Commit},
    storage::{
        Batch, Db, Map,
        db::encode_json,
        keys::{Key, KeyReader},
    },
    util::random_string,
};

/// user, device, position u64 → `{type, sender, content}`.
pub const TO_DEVICE: Map = Map("to_device");
/// sender user, sender device (empty for federation), transaction or message id → empty.
pub const TO_DEVICE_TXNS: Map = Map("to_device_txns");
pub const MAPS: &[Map] = &[TO_DEVICE, TO_DEVICE_TXNS];

/// At most this many to-device messages per /sync answer (the spec's guidance).
pub const SYNC_LIMIT: usize = 100;

/// The target devices of one user: `*` or device ids, each with its content.
pub type Messages = BTreeMap<OwnedUserId, BTreeMap<String, Value>>;

fn message_key(user: &str, device: &str, pos: u64) -> Vec<u8> {
    Key::new().str(user).str(device).u64(pos).build()
}

/// Stores one message for each target local device (`*`: every device of the user) in `c`.
fn deliver_local(s: &Services, c: &mut Commit, sender: &UserId, event_type: &str, user: &UserId, targets: &BTreeMap<String, Value>) -> Result<()> {
    let all: Vec<String> = if targets.contains_key("*") {
        s.users.devices(user)?.into_iter().map(|d| d.device_id.to_string()).collect()
    } else {
        Vec::new()
    };
    let mut deliveries: Vec<(String, &Value)> = Vec::new();
    for (device, content) in targets {
        if device == "*" {
            deliveries.extend(all.iter().map(|d| (d.clone(), content)));
        } else if s.users.device(user, device)?.is_some() {
            deliveries.push((device.clone(), content));
        }
    }
    for (device, content) in deliveries {
        let pos = c.next_pos();
        let event = json!({ "type": event_type, "sender": sender, "content": content });
        c.batch.put(TO_DEVICE, message_key(user.as_str(), &device, pos), encode_json(&event));
    }
    Ok(())
}

/// `PUT /sendToDevice/{type}/{txnId}` from a local device.
pub fn send(s: &Services, sender: &UserId, sender_device: &str, event_type: &str, txn_id: &str, messages: &Messages) -> Result<()> {
    let db = &s.globals.db;
    let txn_key = Key::new().str(sender.as_str()).str(sender_device).str(txn_id).build();
    let ours = s.globals.server_name().clone();
    let mut remote: BTreeMap<OwnedServerName, Messages> = BTreeMap::new();
    for (user, targets) in messages {
        if user.server_name() != ours {
            remote.entry(user.server_name().to_owned()).or_default().insert(user.clone(), targets.clone());
        }
    }
    let (queued, _) = s.globals.commit(|c| {
        if db.contains(TO_DEVICE_TXNS, &txn_key)? {
            return Ok(Vec::new());
        }
        c.batch.put(TO_DEVICE_TXNS, txn_key.clone(), Vec::new());
        for (user, targets) in messages {
            if user.server_name() == ours {
                deliver_local(s, c, sender, event_type, user, targets)?;
            }
        }
        let mut queued = Vec::new();
        for (server, messages) in &remote {
            let edu = json!({
                "edu_type": "m.direct_to_device",
                "content": { "sender": sender, "type": event_type, "message_id": random_string(16), "messages": messages },
            });
            put_edu(c, server, &edu)?;
            queued.push(server.clone());
        }
        Ok(queued)
    })?;
    for server in queued {
        s.federation.sender.wake(&server);
    }
    Ok(())
}

/// A received `m.direct_to_device` EDU: the sender must belong to `origin`; a `message_id` seen
/// before from that sender is ignored; messages for users of other servers are dropped.
pub fn receive(s: &Services, origin: &ServerName, content: &Value) -> Result<()> {
    let sender = content
        .get("sender")
        .and_then(Value::as_str)
        .and_then(|u| OwnedUserId::try_from(u).ok())
        .ok_or_else(|| Error::bad_json("m.direct_to_device without a valid sender"))?;
    if sender.server_name() != origin {
        return Err(Error::forbidden(format!("{origin} cannot send to-device messages for {sender}")));
    }
    let event_type = content.get("type").and_then(Value::as_str).ok_or_else(|| Error::bad_json("m.direct_to_device without type"))?;
    let message_id = content.get("message_id").and_then(Value::as_str).ok_or_else(|| Error::bad_json("m.direct_to_device without message_id"))?;
    let messages: Messages = content
        .get("messages")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::bad_json(format!("m.direct_to_device messages: {e}")))?
        .unwrap_or_default();
    let db = &s.globals.db;
    let dedup = Key::new().str(sender.as_str()).str("").str(message_id).build();
    let ours = s.globals.server_name().clone();
    s.globals.commit(|c| {
        if db.contains(TO_DEVICE_TXNS, &dedup)? {
            return Ok(());
        }
        c.batch.put(TO_DEVICE_TXNS, dedup.clone(), Vec::new());
        for (user, targets) in &messages {
            if user.server_name() == ours {
                deliver_local(s, c, &sender, event_type, user, targets)?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// The first `limit` messages of a device stored after `after` and at or before `up_to`:
/// (position, event), in position order.
pub fn pending(db: &Db, user: &UserId, device: &str, after: u64, up_to: u64, limit: usize) -> Result<Vec<(u64, Value)>> {
    let prefix = Key::new().str(user.as_str()).str(device).build();
    let from = Key::new().str(user.as_str()).str(device).u64(after.saturating_add(1)).build();
    let mut out = Vec::new();
    for entry in db.scan_from(TO_DEVICE, &prefix, &from, crate::storage::Direction::Forward) {
        if out.len() >= limit {
            break;
        }
        let (k, v) = entry?;
        let Some(pos) = KeyReader::new(&k[prefix.len()..]).u64() else { continue };
        if pos > up_to {
            break;
        }
        out.push((pos, serde_json::from_slice(&v).unwrap_or(Value::Null)));
    }
    Ok(out)
}

/// The device acknowledged every message at or before `since` (it synced with a token that says
/// so): they are deleted in one batch.
pub fn acknowledge(db: &Db, user: &UserId, device: &str, since: u64) -> Result<()> {
    let prefix = Key::new().str(user.as_str()).str(device).build();
    let mut batch = Batch::new();
    for entry in db.scan_prefix(TO_DEVICE, &prefix) {
        let (k, _) = entry?;
        if KeyReader::new(&k[prefix.len()..]).u64().is_none_or(|pos| pos > since) {
            break;
        }
        batch.delete(TO_DEVICE, k.to_vec());
    }
    Ok(db.write(batch)?)
}

/// Deletes the messages of a removed device in `batch`.
pub fn device_removed_ops(db: &Db, batch: &mut Batch, user: &str, device: &str) -> Result<()> {
    let prefix = Key::new().str(user).str(device).build();
    for entry in db.scan_prefix(TO_DEVICE, &prefix) {
        let (k, _) = entry?;
        batch.delete(TO_DEVICE, k.to_vec());
    }
    Ok(())
}
