//! Send-to-device messages: kept per device (`to_device`: user, device, stream position → event)
//! until the device's next `/sync` with a `since` token that acknowledges them (then deleted in one
//! batch), so each is delivered exactly once, across restarts. A /sync gives at most
//! [`SYNC_LIMIT`] of them; the rest come with the next /sync (`sync/e2ee.rs`). `PUT /sendToDevice` is idempotent per device and
//! transaction id, and messages received over federation per sender and `message_id`
//! (`to_device_txns`). Messages for other servers' users go out as `m.direct_to_device` EDUs
//! through the persisted federation queue, in the same batch as the transaction id.
//!
//! Limits: a device keeps at most `limits.max_pending_to_device` undelivered messages; beyond, new
//! messages for it are dropped (the sender is not told: the spec has no error for it, and a
//! device that does not sync for so long must re-establish its sessions anyway). Transaction and
//! message ids are kept a day ([`TXN_KEEP`]), through a time index (`to_device_txn_times`),
//! pruned at start and hourly ([`prune_periodically`]).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use ruma::{OwnedServerName, OwnedUserId, ServerName, UserId};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    federation::sender::queue::put_edu,
    services::{Services, globals::Commit, stream_changes::StreamChange},
    storage::{
        Batch, Db, Map,
        db::encode_json,
        keys::{Key, KeyReader},
    },
    util::random_string,
};

/// user, device, position u64 → `{type, sender, content}`.
pub const TO_DEVICE: Map = Map("to_device");
/// sender user, sender device (empty for federation), transaction or message id → received ms
/// (u64; empty for ids stored before the time index existed).
pub const TO_DEVICE_TXNS: Map = Map("to_device_txns");
/// received ms u64 ‖ `to_device_txns` key → empty.
pub const TO_DEVICE_TXN_TIMES: Map = Map("to_device_txn_times");
pub const MAPS: &[Map] = &[TO_DEVICE, TO_DEVICE_TXNS, TO_DEVICE_TXN_TIMES];

/// How long a transaction or message id is remembered (retries come within minutes).
pub const TXN_KEEP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// How often they are pruned.
pub const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
/// Ids deleted per batch.
const PRUNE_PER_BATCH: usize = 1000;

/// At most this many to-device messages per /sync answer (the spec's guidance).
pub const SYNC_LIMIT: usize = 100;

/// The target devices of one user: `*` or device ids, each with its content.
pub type Messages = BTreeMap<OwnedUserId, BTreeMap<String, Value>>;

pub fn message_key(user: &str, device: &str, pos: u64) -> Vec<u8> {
    Key::new().str(user).str(device).u64(pos).build()
}

/// The local devices that get a message (`*`: every device of the user), each with its content;
/// devices holding `limits.max_pending_to_device` undelivered messages are left out. Read before
/// the commit lock is taken.
fn local_deliveries<'m>(
    s: &Services,
    user: &UserId,
    targets: &'m BTreeMap<String, Value>,
) -> Result<Vec<(String, &'m Value)>> {
    let all: Vec<String> = if targets.contains_key("*") {
        s.users
            .devices(user)?
            .into_iter()
            .map(|d| d.device_id.to_string())
            .collect()
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
    let cap = s.config().limits.max_pending_to_device;
    let mut kept = Vec::with_capacity(deliveries.len());
    for (device, content) in deliveries {
        let prefix = Key::new().str(user.as_str()).str(&device).build();
        if s.globals
            .db
            .scan_prefix(TO_DEVICE, &prefix)
            .take(cap)
            .count()
            >= cap
        {
            tracing::debug!("to-device message for {user} {device} dropped: {cap} pending");
            continue;
        }
        kept.push((device, content));
    }
    Ok(kept)
}

/// Stores the planned messages of one sender in `c` (and queues those of application services'
/// users for their service); returns the services to wake after the commit.
fn deliver_local(
    s: &Services,
    c: &mut Commit,
    sender: &UserId,
    event_type: &str,
    planned: &[(&UserId, Vec<(String, &Value)>)],
) -> Vec<usize> {
    let mut services = Vec::new();
    for (user, deliveries) in planned {
        for (device, content) in deliveries {
            let pos = c.next_pos();
            c.stream_changed(StreamChange::ToDevice((*user).to_owned(), device.clone()));
            let event = json!({ "type": event_type, "sender": sender, "content": content });
            c.batch.put(
                TO_DEVICE,
                message_key(user.as_str(), device, pos),
                encode_json(&event),
            );
            services.extend(crate::services::appservice::queue::to_device_committed(
                s, c, user, device, pos,
            ));
        }
    }
    services
}

/// Records a transaction or message id with its time (for [`prune_txns`]) in `c`.
fn remember_txn(c: &mut Commit, txn_key: &[u8], now_ms: u64) {
    crate::storage::time_index::put_timed(
        &mut c.batch,
        TO_DEVICE_TXNS,
        TO_DEVICE_TXN_TIMES,
        txn_key,
        now_ms.to_be_bytes().to_vec(),
        now_ms,
    );
}

/// The deliveries to local users of `messages`, planned before the commit.
fn plan<'m>(
    s: &Services,
    messages: &'m Messages,
) -> Result<Vec<(&'m UserId, Vec<(String, &'m Value)>)>> {
    let ours = s.globals.server_name();
    let mut planned = Vec::new();
    for (user, targets) in messages {
        if user.server_name() == ours {
            planned.push((user.as_ref(), local_deliveries(s, user, targets)?));
        }
    }
    Ok(planned)
}

/// `PUT /sendToDevice/{type}/{txnId}` from a local device.
pub fn send(
    s: &Services,
    sender: &UserId,
    sender_device: &str,
    event_type: &str,
    txn_id: &str,
    messages: &Messages,
) -> Result<()> {
    let db = &s.globals.db;
    let txn_key = Key::new()
        .str(sender.as_str())
        .str(sender_device)
        .str(txn_id)
        .build();
    let ours = s.globals.server_name().clone();
    let mut remote: BTreeMap<OwnedServerName, Messages> = BTreeMap::new();
    for (user, targets) in messages {
        if user.server_name() != ours {
            remote
                .entry(user.server_name().to_owned())
                .or_default()
                .insert(user.clone(), targets.clone());
        }
    }
    if db.contains(TO_DEVICE_TXNS, &txn_key)? {
        return Ok(());
    }
    let planned = plan(s, messages)?;
    let now = crate::util::now_ms();
    let mut appservices = Vec::new();
    let (queued, _) = s.globals.commit(|c| {
        if db.contains(TO_DEVICE_TXNS, &txn_key)? {
            return Ok(Vec::new());
        }
        remember_txn(c, &txn_key, now);
        appservices = deliver_local(s, c, sender, event_type, &planned);
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
    s.appservices.wake(&appservices);
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
        return Err(Error::forbidden(format!(
            "{origin} cannot send to-device messages for {sender}"
        )));
    }
    let event_type = content
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_json("m.direct_to_device without type"))?;
    let message_id = content
        .get("message_id")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_json("m.direct_to_device without message_id"))?;
    let messages: Messages = content
        .get("messages")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::bad_json(format!("m.direct_to_device messages: {e}")))?
        .unwrap_or_default();
    let db = &s.globals.db;
    let dedup = Key::new()
        .str(sender.as_str())
        .str("")
        .str(message_id)
        .build();
    if db.contains(TO_DEVICE_TXNS, &dedup)? {
        return Ok(());
    }
    let planned = plan(s, &messages)?;
    let now = crate::util::now_ms();
    let (appservices, _) = s.globals.commit(|c| {
        if db.contains(TO_DEVICE_TXNS, &dedup)? {
            return Ok(Vec::new());
        }
        remember_txn(c, &dedup, now);
        Ok(deliver_local(s, c, &sender, event_type, &planned))
    })?;
    s.appservices.wake(&appservices);
    Ok(())
}

/// Deletes the transaction and message ids received before `now_ms - TXN_KEEP`, and ids stored
/// before the time index existed (empty values; only with `legacy`, a full scan); returns how
/// many.
pub fn prune_txns(db: &Db, now_ms: u64, legacy: bool) -> Result<usize> {
    let cutoff = now_ms.saturating_sub(TXN_KEEP.as_millis() as u64);
    let mut pruned = crate::storage::time_index::prune_before(
        db,
        TO_DEVICE_TXNS,
        TO_DEVICE_TXN_TIMES,
        cutoff,
        PRUNE_PER_BATCH,
    )?;
    if legacy {
        let mut batch = Batch::new();
        for entry in db.scan_prefix(TO_DEVICE_TXNS, &[]) {
            let (key, value) = entry?;
            if value.is_empty() {
                batch.delete(TO_DEVICE_TXNS, key.to_vec());
                pruned += 1;
            }
            if batch.ops.len() >= PRUNE_PER_BATCH {
                db.write(std::mem::take(&mut batch))?;
            }
        }
        db.write(batch)?;
    }
    Ok(pruned)
}

/// Prunes at start (with the ids from before the time index) and every [`PRUNE_EVERY`] until
/// `stop` changes.
pub async fn prune_periodically(
    services: std::sync::Arc<Services>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut legacy = true;
    loop {
        match services
            .run(move |s| prune_txns(&s.globals.db, crate::util::now_ms(), legacy))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} to-device transaction ids pruned"),
            Err(e) => tracing::warn!("pruning to-device transaction ids: {}", e.message),
        }
        legacy = false;
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// What this process knows of the devices' queues, so that a /sync reads a queue only when a
/// message may be in it: most answers have none to give and none to delete, and the two scans
/// were a third of the engine calls of an incremental /sync. Alone on the database only (in a
/// group, another process stores messages too: every queue is read).
#[derive(Default)]
pub struct Queues {
    /// Per device, the position up to which its acknowledged messages were deleted here: none
    /// is stored at or before it.
    drained: Mutex<HashMap<(OwnedUserId, String), u64>>,
}

/// Devices whose drained position is kept before the map starts again empty.
const DRAINED_KEPT: usize = 100_000;

impl Queues {
    fn drained(&self, key: &(OwnedUserId, String)) -> Option<u64> {
        self.lock().get(key).copied()
    }

    fn set_drained(&self, key: (OwnedUserId, String), pos: u64) {
        let mut drained = self.lock();
        if drained.len() >= DRAINED_KEPT && !drained.contains_key(&key) {
            drained.clear();
        }
        let entry = drained.entry(key).or_insert(pos);
        *entry = (*entry).max(pos);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(OwnedUserId, String), u64>> {
        self.drained.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// [`acknowledge`] for a device's /sync at `since`, without reading its queue when no message can
/// be stored at or before `since`: this process deleted them up to a position, and no message for
/// the device came after it (a later message has a later position), or that position is past
/// `since`.
pub fn acknowledge_seen(s: &Services, user: &UserId, device: &str, since: u64) -> Result<()> {
    let key = (user.to_owned(), device.to_owned());
    if !s.globals.shared()
        && let Some(drained) = s.to_device.drained(&key)
        && (drained >= since
            || !s
                .globals
                .stream_changes
                .to_device
                .may_have_changed_since(&key, drained))
    {
        return Ok(());
    }
    acknowledge(&s.globals.db, user, device, since)?;
    if !s.globals.shared() {
        s.to_device.set_drained(key, since);
    }
    Ok(())
}

/// [`pending`] for a device's /sync, without reading its queue when no message for the device was
/// stored after `after`.
pub fn pending_seen(
    s: &Services,
    user: &UserId,
    device: &str,
    after: u64,
    up_to: u64,
    limit: usize,
) -> Result<Vec<(u64, Value)>> {
    let key = (user.to_owned(), device.to_owned());
    if !s
        .globals
        .stream_changes
        .to_device
        .may_have_changed_since(&key, after)
    {
        return Ok(Vec::new());
    }
    pending(&s.globals.db, user, device, after, up_to, limit)
}

/// The first `limit` messages of a device stored after `after` and at or before `up_to`:
/// (position, event), in position order.
pub fn pending(
    db: &Db,
    user: &UserId,
    device: &str,
    after: u64,
    up_to: u64,
    limit: usize,
) -> Result<Vec<(u64, Value)>> {
    let prefix = Key::new().str(user.as_str()).str(device).build();
    let from = Key::new()
        .str(user.as_str())
        .str(device)
        .u64(after.saturating_add(1))
        .build();
    let mut out = Vec::new();
    for entry in db.scan_from(
        TO_DEVICE,
        &prefix,
        &from,
        crate::storage::Direction::Forward,
    ) {
        if out.len() >= limit {
            break;
        }
        let (k, v) = entry?;
        let Some(pos) = KeyReader::new(&k[prefix.len()..]).u64() else {
            continue;
        };
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
        if KeyReader::new(&k[prefix.len()..])
            .u64()
            .is_none_or(|pos| pos > since)
        {
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
