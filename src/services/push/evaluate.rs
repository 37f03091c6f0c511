//! Evaluation of committed events (runs on the blocking pool, woken after each commit): for every
//! local member of the room other than the sender, ruma's `Ruleset::get_actions` with the room's
//! context (member count, the user's display name, power levels). A notifying event gets, in one
//! batch: the user's notification, unread entry and counts, the delivery queue items for the
//! user's http pushers, and the deletion of its `push_pending` entry.

use std::{collections::{BTreeSet, HashMap}, future::Future, pin::pin, sync::Arc, task::{Context, Poll, Waker}};

use ruma::{
    OwnedUserId, UInt, UserId,
    events::{
        StateEventType, TimelineEventType,
        room::power_levels::{RoomPowerLevels, RoomPowerLevelsEventContent, RoomPowerLevelsSource},
    },
    push::{Action, PushConditionPowerLevelsCtx, PushConditionRoomCtx},
    serde::Raw,
};
use serde_json::Value;

use super::{
    PUSH_COUNTS, PUSH_NOTIFICATIONS, PUSH_PENDING, PUSH_UNREAD,
    counts::{Entry, RoomCounts},
    notifications::Notification,
    queue,
    read::{room_counts, totals},
    rules,
};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{event_by_short, membership::Membership, version},
        state::StateMap,
        timeline::{StoredEvent, pdu::{ClientFormat, raw}},
    },
    storage::{
        Batch,
        db::encode_json,
        keys::{Key, u64_from},
    },
};

/// Events evaluated per call (the evaluator calls again while there are more).
pub const BATCH: usize = 64;

/// Evaluates up to [`BATCH`] pending events, oldest first, and records them in one batch;
/// returns how many it took.
pub fn process_pending(s: &Services) -> Result<usize> {
    let pending: Vec<(u64, u64)> = s
        .push
        .db
        .scan_prefix(PUSH_PENDING, &[])
        .take(BATCH)
        .map(|entry| {
            let (key, value) = entry?;
            Ok((u64_from(&key).unwrap_or(0), u64_from(&value).unwrap_or(0)))
        })
        .collect::<Result<_>>()?;
    let mut evaluated = Vec::with_capacity(pending.len());
    for (pos, short_event) in &pending {
        match evaluate(s, *short_event) {
            Ok(outcome) => evaluated.push((*pos, outcome)),
            Err(e) => {
                // An event that cannot be evaluated must not block the ones after it.
                tracing::warn!("push evaluation of event {short_event} failed: {e}");
                evaluated.push((*pos, None));
            }
        }
    }
    record(s, evaluated)?;
    Ok(pending.len())
}

/// A user an event notifies, with the actions of the rule that matched.
pub struct Notified {
    pub user: OwnedUserId,
    pub actions: Vec<Action>,
}

/// The event and what it does for each local user.
pub struct Evaluated {
    pub event: Arc<StoredEvent>,
    pub notified: Vec<Notified>,
}

/// Runs the push rules of every local member (and the local invitee of an invite) but the sender.
pub fn evaluate(s: &Services, short_event: u64) -> Result<Option<Evaluated>> {
    let Some(meta) = s.timeline.meta(short_event)? else { return Ok(None) };
    if meta.pos == 0 {
        return Ok(None);
    }
    let room_id = s.short.room_id(meta.short_room)?;
    let Some(event) = event_by_short(s, short_event, &room_id)? else { return Ok(None) };
    let ours = s.globals.server_name();
    let joined = s.membership.members(meta.short_room, Membership::Join)?;
    let mut users: BTreeSet<OwnedUserId> =
        joined.iter().filter(|u| u.server_name() == ours && **u != event.pdu.sender).cloned().collect();
    if event.pdu.kind == TimelineEventType::RoomMember
        && event.pdu.membership().as_deref() == Some("invite")
        && let Some(target) = event.pdu.state_key.as_deref().and_then(|k| UserId::parse(k).ok())
        && target.server_name() == ours
        && target != event.pdu.sender
    {
        users.insert(target);
    }
    if users.is_empty() {
        return Ok(Some(Evaluated { event, notified: Vec::new() }));
    }

    let state = s.state.load(meta.state_before)?;
    let power_levels = power_levels(s, &room_id, &state)?;
    let json = event.to_client(&s.timeline, ClientFormat::Room, None)?;
    let raw_event: Raw<Value> = raw(&json);
    let member_count = UInt::new(joined.len() as u64).unwrap_or_default();
    let mut notified = Vec::new();
    for user in users {
        let ruleset = rules::ruleset(s, &user)?;
        let mut ctx = PushConditionRoomCtx::new(room_id.clone(), member_count, user.clone(), display_name(s, &room_id, &state, &user)?);
        if let Some(pl) = &power_levels {
            ctx = ctx.with_power_levels(pl.clone());
        }
        let Some(actions) = now_or_never(ruleset.get_actions(&raw_event, &ctx)) else {
            return Err(Error::internal("push rule evaluation did not complete"));
        };
        if actions.iter().any(Action::should_notify) {
            notified.push(Notified { user, actions: actions.to_vec() });
        }
    }
    Ok(Some(Evaluated { event, notified }))
}

/// Polls a future that never waits (ruma's rule matching awaits nothing without MSC4306).
fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fn state_event(s: &Services, room_id: &ruma::RoomId, state: &StateMap, kind: &StateEventType, key: &str) -> Result<Option<Arc<StoredEvent>>> {
    let Some(short_key) = s.short.statekey(kind, key)? else { return Ok(None) };
    let Some(short) = state.get(&short_key) else { return Ok(None) };
    event_by_short(s, *short, room_id)
}

/// The user's display name in the room (their member event), or their localpart.
fn display_name(s: &Services, room_id: &ruma::RoomId, state: &StateMap, user: &UserId) -> Result<String> {
    let member = state_event(s, room_id, state, &StateEventType::RoomMember, user.as_str())?;
    Ok(member
        .and_then(|m| m.pdu.content_field("displayname"))
        .and_then(|d| d.as_str().map(str::to_owned))
        .unwrap_or_else(|| user.localpart().to_owned()))
}

/// The room's power levels as the push conditions read them (creators of v12 rooms included).
fn power_levels(s: &Services, room_id: &ruma::RoomId, state: &StateMap) -> Result<Option<PushConditionPowerLevelsCtx>> {
    let Some(version) = s.timeline.room_version(room_id)? else { return Ok(None) };
    let rules = version::rules(&version)?;
    let create = state_event(s, room_id, state, &StateEventType::RoomCreate, "")?;
    let mut creators: Vec<OwnedUserId> = Vec::new();
    if rules.authorization.explicitly_privilege_room_creators
        && let Some(create) = &create
    {
        creators.push(create.pdu.sender.clone());
        for extra in create.pdu.content_field("additional_creators").and_then(|v| v.as_array().cloned()).unwrap_or_default() {
            if let Some(user) = extra.as_str().and_then(|u| OwnedUserId::try_from(u).ok()) {
                creators.push(user);
            }
        }
    }
    let source = match state_event(s, room_id, state, &StateEventType::RoomPowerLevels, "")? {
        Some(event) => match serde_json::from_str::<RoomPowerLevelsEventContent>(event.pdu.content.get()) {
            Ok(content) => RoomPowerLevelsSource::Original(content),
            Err(_) => return Ok(None),
        },
        None => {
            // Without power levels the creator has 100 (before v12, where creators are privileged).
            if !rules.authorization.explicitly_privilege_room_creators
                && let Some(create) = &create
            {
                creators.push(create.pdu.sender.clone());
            }
            RoomPowerLevelsSource::None
        }
    };
    let levels = RoomPowerLevels::new(source, &rules.authorization, creators);
    Ok(Some(levels.into()))
}

/// The thread of an event: the root of its `m.thread` relation.
pub fn thread_of(event: &StoredEvent) -> Option<String> {
    let relates = event.pdu.content_field("m.relates_to")?;
    (relates.get("rel_type")?.as_str()? == "m.thread").then(|| relates.get("event_id")?.as_str().map(str::to_owned))?
}

/// Writes what evaluated events do and deletes their pending entries: one batch. Everything is
/// read before the commit (under the counts lock, so no count changes meanwhile); counts changed
/// by an earlier event of the batch are read from `overlay`, not from the database.
fn record(s: &Services, evaluated: Vec<(u64, Option<Evaluated>)>) -> Result<()> {
    let _guard = s.push.counts_lock.lock().unwrap_or_else(|e| e.into_inner());
    let mut batch = Batch::new();
    let mut overlay: HashMap<OwnedUserId, HashMap<u64, RoomCounts>> = HashMap::new();
    let mut changed: BTreeSet<(OwnedUserId, u64)> = BTreeSet::new();
    let mut items = Vec::new();
    let ts = crate::util::now_ms();
    for (pos, outcome) in evaluated {
        batch.delete(PUSH_PENDING, pos.to_be_bytes());
        let Some(Evaluated { event, notified }) = outcome else { continue };
        let short_room = event.meta.short_room;
        let thread = thread_of(&event);
        for Notified { user, actions } in notified {
            let highlight = actions.iter().any(Action::is_highlight);
            let entry = Entry { highlight, call: event.pdu.kind == TimelineEventType::CallInvite, thread: thread.clone() };
            let rooms = overlay.entry(user.clone()).or_default();
            let counts = match rooms.entry(short_room) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(room_counts(s, &user, short_room)?),
            };
            let notification = Notification {
                room_id: event.pdu.room_id.clone(),
                event_id: event.pdu.event_id.clone(),
                actions: actions.clone(),
                ts,
            };
            batch.put(PUSH_NOTIFICATIONS, Key::new().str(user.as_str()).u64(event.meta.pos).build(), encode_json(&notification));
            if counts.add(event.meta.pos, &entry) {
                changed.insert((user.clone(), short_room));
                batch.put(PUSH_UNREAD, Key::new().str(user.as_str()).u64(short_room).u64(event.meta.pos).build(), entry.encode());
                // The badge: every unread notification of the user, this one included.
                let totals = totals(s, &user, rooms)?;
                items.extend(queue::items_for(s, &user, &event, &actions, totals)?);
            }
        }
    }
    s.globals.commit(|c| {
        c.batch.ops.append(&mut batch.ops);
        if !changed.is_empty() {
            // A new position: /sync shows the rooms whose counts changed.
            let pos = c.next_pos();
            for (user, short_room) in &changed {
                if let Some(counts) = overlay.get_mut(user).and_then(|rooms| rooms.get_mut(short_room)) {
                    counts.pos = pos;
                    c.batch.put(PUSH_COUNTS, Key::new().str(user.as_str()).u64(*short_room).build(), encode_json(counts));
                }
            }
        }
        queue::enqueue(c, &items);
        Ok(())
    })?;
    if !items.is_empty() {
        s.push.deliver_wake.notify_one();
    }
    Ok(())
}
