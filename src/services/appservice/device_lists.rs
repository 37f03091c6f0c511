//! What an encrypting service needs beside its to-device messages (MSC3202, for registrations with
//! `org.matrix.msc3202: true`): `org.matrix.msc3202.device_lists.changed`, the users whose devices
//! or keys changed since the service's last acknowledged transaction and who are its own users or
//! are in a room that interests it; and the one-time key counts and unused fallback key types of
//! its users' devices that this transaction concerns (those its to-device messages are for, and
//! those of its own users whose devices changed).
//!
//! A per-service cursor (the stream position up to which changes were sent) is stored in
//! `appservice_txns` under `<id> ‖ "device_lists"` and moved when a transaction is acknowledged;
//! a retried transaction recomputes from the same cursor (it may say more, never less). A
//! service's first cursor is the position at which it was first looked at: no history.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};

use super::{Appservice, queue::APPSERVICE_TXNS, queue::room_interests};
use crate::{
    error::Result,
    services::{Services, keys},
    storage::keys::{Key, u64_from},
};

fn cursor_key(appservice: &str) -> Vec<u8> {
    Key::new().str(appservice).str("device_lists").build()
}

/// The device-list part of a transaction: the position it runs to, and its changed users.
#[derive(Debug, Default)]
pub struct Changes {
    pub to: u64,
    pub changed: Vec<OwnedUserId>,
}

/// The changes since the service's cursor (set to now, with nothing to say, the first time).
pub fn pending(s: &Services, appservice: &Appservice) -> Result<Changes> {
    let now = s.globals.current_pos();
    let key = cursor_key(&appservice.registration.id);
    let Some(since) = s
        .globals
        .db
        .get(APPSERVICE_TXNS, &key)?
        .and_then(|v| u64_from(&v))
    else {
        s.globals.db.put(APPSERVICE_TXNS, key, now.to_be_bytes())?;
        return Ok(Changes {
            to: now,
            changed: Vec::new(),
        });
    };
    let mut changed = BTreeSet::new();
    for user in keys::changes::changed_between(&s.globals.db, since, now)? {
        if changed.contains(&user) {
            continue;
        }
        if concerns(s, appservice, &user)? {
            changed.insert(user);
        }
    }
    Ok(Changes {
        to: now,
        changed: changed.into_iter().collect(),
    })
}

/// Whether `user`'s device changes concern the service: its own user, or a user in a room that
/// interests it.
fn concerns(s: &Services, appservice: &Appservice, user: &UserId) -> Result<bool> {
    if appservice.owns_user(user) {
        return Ok(true);
    }
    for room_id in s.membership.joined_room_ids(user)? {
        if let Some(short) = s.short.room(&room_id)?
            && room_interests(s, appservice, short, &room_id, &mut None)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `device_lists.left`: users who, by the membership events of this transaction (leaves and bans
/// of others, or of the service's own users), no longer share a room of interest with the service.
pub fn left(s: &Services, appservice: &Appservice, events: &[Value]) -> Result<Vec<OwnedUserId>> {
    let mut left = BTreeSet::new();
    for event in events {
        let membership = event["content"]["membership"].as_str();
        if event["type"] != "m.room.member" || !matches!(membership, Some("leave" | "ban")) {
            continue;
        }
        let Some(target) = event["state_key"]
            .as_str()
            .and_then(|u| OwnedUserId::try_from(u).ok())
        else {
            continue;
        };
        let candidates = if appservice.owns_user(&target) {
            // One of its users left: the room's members may no longer share a room with it.
            let room = event["room_id"]
                .as_str()
                .and_then(|r| ruma::OwnedRoomId::try_from(r).ok());
            match room.map(|r| s.short.room(&r)).transpose()?.flatten() {
                Some(short) => s
                    .membership
                    .members(short, crate::services::rooms::membership::Membership::Join)?,
                None => Vec::new(),
            }
        } else {
            vec![target]
        };
        for user in candidates {
            if !left.contains(&user) && !concerns(s, appservice, &user)? {
                left.insert(user);
            }
        }
    }
    Ok(left.into_iter().collect())
}

/// The service acknowledged changes up to `to`.
pub fn advance(s: &Services, appservice: &str, to: u64) -> Result<()> {
    Ok(s.globals
        .db
        .put(APPSERVICE_TXNS, cursor_key(appservice), to.to_be_bytes())?)
}

/// `device_one_time_keys_count` and `device_unused_fallback_key_types` of these devices of the
/// service's users.
pub fn key_counts(
    s: &Services,
    appservice: &Appservice,
    devices: &BTreeSet<(OwnedUserId, String)>,
) -> Result<(Value, Value)> {
    let mut counts: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut fallbacks: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (user, device) in devices {
        if !appservice.owns_user(user) {
            continue;
        }
        let device_id: ruma::OwnedDeviceId = device.as_str().into();
        if s.users.device(user, device)?.is_none() {
            continue;
        }
        let db = &s.globals.db;
        counts.entry(user.to_string()).or_default().insert(
            device.clone(),
            json!(keys::one_time::counts(db, user, &device_id)?),
        );
        fallbacks.entry(user.to_string()).or_default().insert(
            device.clone(),
            json!(keys::one_time::unused_fallback_types(db, user, &device_id)?),
        );
    }
    Ok((json!(counts), json!(fallbacks)))
}

/// The devices of the service's users among `changed`.
pub fn devices_of(
    s: &Services,
    appservice: &Appservice,
    changed: &[OwnedUserId],
) -> Result<BTreeSet<(OwnedUserId, String)>> {
    let mut out = BTreeSet::new();
    for user in changed.iter().filter(|u| appservice.owns_user(u)) {
        for device in s.users.devices(user)? {
            out.insert((user.clone(), device.device_id.to_string()));
        }
    }
    Ok(out)
}
