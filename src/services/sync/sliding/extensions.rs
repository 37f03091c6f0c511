//! The `extensions` of a request: `to_device` (with its own `since`; messages up to it are
//! acknowledged and deleted, as /sync does), `e2ee` (device lists, one-time key counts, fallback key
//! types), `account_data` (global and per room), `receipts` and `typing` (for the rooms in scope).

use std::collections::{BTreeMap, BTreeSet};

use ruma::{
    DeviceId, OwnedRoomId,
    api::client::sync::sync_events::{
        DeviceLists,
        v5::{
            request::{self, ExtensionRoomConfig},
            response,
        },
    },
};
use serde_json::{Map, Value, json};

use crate::{
    error::{Error, Result},
    services::{
        Services,
        sync::{e2ee::device_lists, notifications::add_default_push_rules},
        timeline::pdu::raw,
        to_device,
    },
};

const DEFAULT_TO_DEVICE_LIMIT: usize = 100;

/// The rooms an answer's extensions cover: those of each list's ranges and the subscriptions.
#[derive(Debug, Default)]
pub struct Scope {
    pub lists: BTreeMap<String, Vec<OwnedRoomId>>,
    pub subscriptions: Vec<OwnedRoomId>,
}

impl Scope {
    /// The rooms named by an extension's `lists` and `rooms` (absent: every list, every
    /// subscription).
    pub fn rooms(
        &self,
        lists: Option<&Vec<String>>,
        rooms: Option<&Vec<ExtensionRoomConfig>>,
    ) -> BTreeSet<OwnedRoomId> {
        let mut out = BTreeSet::new();
        for (name, ids) in &self.lists {
            if lists.is_none_or(|l| l.iter().any(|n| n == "*" || n == name)) {
                out.extend(ids.iter().cloned());
            }
        }
        match rooms {
            None => out.extend(self.subscriptions.iter().cloned()),
            Some(rooms) => {
                for room in rooms {
                    match room {
                        ExtensionRoomConfig::AllSubscribed => {
                            out.extend(self.subscriptions.iter().cloned())
                        }
                        ExtensionRoomConfig::Room(id) if self.subscriptions.contains(id) => {
                            out.insert(id.clone());
                        }
                        _ => {}
                    }
                }
            }
        }
        out
    }
}

pub struct Context<'a> {
    pub user: &'a ruma::UserId,
    pub device: &'a str,
    /// The stream position and typing counter the connection was answered up to (`None`: a new
    /// connection).
    pub since: Option<(u64, u64)>,
    pub now: u64,
    /// Per room: where it was sent up to before this answer (`None`: first time).
    pub room_since: &'a dyn Fn(&OwnedRoomId) -> Option<u64>,
}

/// Fills the answer's extensions; whether they carry something new.
pub fn add(
    s: &Services,
    ctx: &Context<'_>,
    req: &request::Extensions,
    scope: &Scope,
    out: &mut response::Extensions,
) -> Result<bool> {
    let mut changed = false;
    if req.to_device.enabled == Some(true) {
        changed |= to_device_ext(s, ctx, &req.to_device, out)?;
    }
    if req.e2ee.enabled == Some(true) {
        changed |= e2ee_ext(s, ctx, &mut out.e2ee)?;
    }
    if req.account_data.enabled == Some(true) {
        let rooms = scope.rooms(
            req.account_data.lists.as_ref(),
            req.account_data.rooms.as_ref(),
        );
        changed |= account_data_ext(s, ctx, &rooms, &mut out.account_data)?;
    }
    if req.receipts.enabled == Some(true) {
        let rooms = scope.rooms(req.receipts.lists.as_ref(), req.receipts.rooms.as_ref());
        changed |= receipts_ext(s, ctx, &rooms, &mut out.receipts)?;
    }
    if req.typing.enabled == Some(true) {
        let rooms = scope.rooms(req.typing.lists.as_ref(), req.typing.rooms.as_ref());
        changed |= typing_ext(s, ctx, &rooms, &mut out.typing);
    }
    Ok(changed)
}

fn to_device_ext(
    s: &Services,
    ctx: &Context<'_>,
    req: &request::ToDevice,
    out: &mut response::Extensions,
) -> Result<bool> {
    let since = match req.since.as_deref() {
        None => None,
        Some(token) => Some(
            token
                .parse::<u64>()
                .map_err(|_| Error::invalid_param("Invalid to_device since token"))?,
        ),
    };
    if let Some(since) = since {
        to_device::acknowledge_seen(s, ctx.user, ctx.device, since)?;
    }
    let limit = req
        .limit
        .map_or(DEFAULT_TO_DEVICE_LIMIT, |l| u64::from(l) as usize)
        .max(1);
    // One more than the limit tells whether there are more.
    let pending = to_device::pending_seen(
        s,
        ctx.user,
        ctx.device,
        since.unwrap_or(0),
        ctx.now,
        limit.saturating_add(1),
    )?;
    let limited = pending.len() > limit;
    let mut next_batch = since.unwrap_or(0).max(if limited { 0 } else { ctx.now });
    let mut ext = response::ToDevice::default();
    for (pos, event) in pending.into_iter().take(limit) {
        ext.events.push(raw(&event));
        if limited {
            next_batch = next_batch.max(pos);
        }
    }
    let changed = !ext.events.is_empty();
    ext.next_batch = next_batch.to_string();
    out.to_device = Some(ext);
    Ok(changed)
}

fn e2ee_ext(s: &Services, ctx: &Context<'_>, out: &mut response::E2EE) -> Result<bool> {
    let db = &s.globals.db;
    let device: &DeviceId = ctx.device.into();
    let counts = s.users.key_counts.get(db, ctx.user, device)?;
    out.device_one_time_keys_count = counts.one_time;
    out.device_unused_fallback_key_types = Some(counts.unused_fallback);
    let Some((since, _)) = ctx.since else {
        return Ok(false);
    };
    let (changed, left) = device_lists(s, &ctx.user.to_owned(), since, ctx.now)?;
    let new = !changed.is_empty() || !left.is_empty();
    let mut lists = DeviceLists::new();
    lists.changed = changed;
    lists.left = left;
    out.device_lists = lists;
    Ok(new)
}

fn account_data_ext(
    s: &Services,
    ctx: &Context<'_>,
    rooms: &BTreeSet<OwnedRoomId>,
    out: &mut response::AccountData,
) -> Result<bool> {
    let since = ctx.since.map_or(0, |(p, _)| p);
    let mut global =
        s.account_data
            .changes_since_known(&s.globals.stream_changes, ctx.user, since)?;
    if ctx.since.is_none() {
        add_default_push_rules(s, ctx.user, &mut global)?;
    }
    for entry in global.into_iter().filter(|e| e.room.is_none()) {
        out.global.push(raw(
            &json!({ "type": entry.kind, "content": entry.content }),
        ));
    }
    // Each room's account data since the room was last sent on this connection (all of it for a
    // room sent for the first time): rooms grouped by that position, one read of the stream each.
    let mut by_since: BTreeMap<u64, BTreeSet<&OwnedRoomId>> = BTreeMap::new();
    for room in rooms {
        by_since
            .entry((ctx.room_since)(room).unwrap_or(0))
            .or_default()
            .insert(room);
    }
    for (room_since, wanted) in by_since {
        for entry in
            s.account_data
                .changes_since_known(&s.globals.stream_changes, ctx.user, room_since)?
        {
            if let Some(room) = entry.room
                && wanted.contains(&room)
            {
                out.rooms.entry(room).or_default().push(raw(
                    &json!({ "type": entry.kind, "content": entry.content }),
                ));
            }
        }
    }
    Ok(!out.is_empty())
}

fn receipts_ext(
    s: &Services,
    ctx: &Context<'_>,
    rooms: &BTreeSet<OwnedRoomId>,
    out: &mut response::Receipts,
) -> Result<bool> {
    for room_id in rooms {
        let Some(short_room) = s.short.room(room_id)? else {
            continue;
        };
        let since = (ctx.room_since)(room_id).unwrap_or(0);
        let mut content: Map<String, Value> = Map::new();
        for (kind, user, receipt) in
            s.receipts
                .changed_since_known(&s.globals.stream_changes, short_room, since)?
        {
            if receipt.pos > ctx.now || (kind == "m.read.private" && user != ctx.user) {
                continue;
            }
            let mut entry = json!({ "ts": receipt.ts });
            if let Some(thread) = &receipt.thread_id {
                entry["thread_id"] = json!(thread);
            }
            let by_event = content
                .entry(receipt.event_id.to_string())
                .or_insert_with(|| json!({}));
            by_event[&kind][user.as_str()] = entry;
        }
        if !content.is_empty() {
            out.rooms.insert(
                room_id.clone(),
                raw(&json!({ "type": "m.receipt", "content": content })),
            );
        }
    }
    Ok(!out.rooms.is_empty())
}

fn typing_ext(
    s: &Services,
    ctx: &Context<'_>,
    rooms: &BTreeSet<OwnedRoomId>,
    out: &mut response::Typing,
) -> bool {
    for room_id in rooms {
        let first_time = ctx.since.is_none() || (ctx.room_since)(room_id).is_none();
        let since = if first_time {
            0
        } else {
            ctx.since.map_or(0, |(_, t)| t)
        };
        if let Some(users) = s.typing.typing_since(room_id, since)
            && (!first_time || !users.is_empty())
        {
            out.rooms.insert(
                room_id.clone(),
                raw(&json!({ "type": "m.typing", "content": { "user_ids": users } })),
            );
        }
    }
    !out.rooms.is_empty()
}
