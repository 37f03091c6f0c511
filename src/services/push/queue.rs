//! The persisted delivery queue: one item per notification and http pusher, written in the batch
//! that records the notification, deleted once the gateway accepted (or refused for good) it.
//! A failed attempt is retried after a delay that doubles from [`MIN_BACKOFF_MS`] up to
//! [`MAX_BACKOFF_MS`]; after [`MAX_ATTEMPTS`] the item is dropped.

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, UserId, push::Action};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{PUSH_QUEUE, counts::Count};
use crate::{
    error::Result,
    services::{Services, globals::Commit, timeline::StoredEvent},
    storage::{
        db::{decode_json, encode_json},
        keys::u64_from,
    },
};

pub const MIN_BACKOFF_MS: u64 = 1_000;
pub const MAX_BACKOFF_MS: u64 = 600_000;
pub const MAX_ATTEMPTS: u32 = 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub user: OwnedUserId,
    pub app_id: String,
    pub pushkey: String,
    pub room_id: OwnedRoomId,
    pub event_id: OwnedEventId,
    /// The user's unread notifications when the event notified (`counts.unread`).
    pub unread: u64,
    pub missed_calls: u64,
    /// `prio: high`.
    pub highlight: bool,
    /// The `set_tweak` actions, as the gateway's `tweaks`.
    pub tweaks: Map<String, Value>,
    #[serde(default)]
    pub attempts: u32,
    /// Not before this time (ms).
    #[serde(default)]
    pub next_ts: u64,
}

/// The tweaks of a rule's actions (`{"sound": "default", "highlight": true}`).
pub fn tweaks_of(actions: &[Action]) -> Map<String, Value> {
    let mut tweaks = Map::new();
    for action in actions {
        if let Ok(Value::Object(obj)) = serde_json::to_value(action)
            && let Some(Value::String(name)) = obj.get("set_tweak")
        {
            let value = obj.get("value").cloned().unwrap_or(Value::Bool(true));
            tweaks.insert(name.clone(), value);
        }
    }
    tweaks
}

/// The queue items of a notification: one per http pusher of the user.
/// `totals` (the badge) is only computed for a user with an http pusher.
pub fn items_for(
    s: &Services,
    user: &UserId,
    event: &StoredEvent,
    actions: &[Action],
    totals: impl FnOnce() -> Result<Count>,
) -> Result<Vec<Item>> {
    if !s.push.pushers().has_http(user)? {
        return Ok(Vec::new());
    }
    let pushers: Vec<_> = s
        .push
        .pushers()
        .list(user)?
        .into_iter()
        .filter(|pusher| pusher.http().is_some())
        .collect();
    if pushers.is_empty() {
        return Ok(Vec::new());
    }
    let totals = totals()?;
    Ok(pushers
        .into_iter()
        .map(|pusher| Item {
            user: user.to_owned(),
            app_id: pusher.pusher.ids.app_id.clone(),
            pushkey: pusher.pusher.ids.pushkey.clone(),
            room_id: event.pdu.room_id.clone(),
            event_id: event.pdu.event_id.clone(),
            unread: totals.notify,
            missed_calls: totals.calls,
            highlight: actions.iter().any(Action::is_highlight),
            tweaks: tweaks_of(actions),
            attempts: 0,
            next_ts: 0,
        })
        .collect())
}

/// Writes queue items in the commit `c` (each gets a new sequence number).
/// Notifications queued for gateways, counted up to `max`.
pub fn count(s: &Services, max: u64) -> Result<u64> {
    let mut n = 0;
    for entry in s.push.db.scan_prefix(PUSH_QUEUE, &[]) {
        entry?;
        n += 1;
        if n >= max {
            break;
        }
    }
    Ok(n)
}

pub fn enqueue(c: &mut Commit, items: &[Item]) {
    for item in items {
        let seq = c.short_id();
        c.batch
            .put(PUSH_QUEUE, seq.to_be_bytes(), encode_json(item));
    }
}

/// Items due (with their sequence numbers) and the earliest time of the others.
pub type Due = (Vec<(u64, Item)>, Option<u64>);

/// Items due at `now` (at most `max`), and the earliest time of the others.
pub fn due(s: &Services, now: u64, max: usize) -> Result<Due> {
    let mut ready = Vec::new();
    let mut next: Option<u64> = None;
    for entry in s.push.db.scan_prefix(PUSH_QUEUE, &[]) {
        let (key, value) = entry?;
        let Some(seq) = u64_from(&key) else { continue };
        let item: Item = decode_json(PUSH_QUEUE, &value)?;
        if item.next_ts <= now {
            if ready.len() < max {
                ready.push((seq, item));
            } else {
                next = Some(now);
            }
        } else {
            next = Some(next.map_or(item.next_ts, |n| n.min(item.next_ts)));
        }
    }
    Ok((ready, next))
}

/// The delay before attempt `attempts + 1`.
pub fn backoff_ms(attempts: u32) -> u64 {
    MIN_BACKOFF_MS
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(20))
        .min(MAX_BACKOFF_MS)
}

/// Done with an item (delivered, refused for good, or out of attempts).
pub fn remove(s: &Services, seq: u64) -> Result<()> {
    s.globals.commit(|c| {
        c.batch.delete(PUSH_QUEUE, seq.to_be_bytes());
        Ok(())
    })?;
    Ok(())
}

/// A failed attempt: retried later, or dropped after [`MAX_ATTEMPTS`].
pub fn failed(s: &Services, seq: u64, mut item: Item, now: u64) -> Result<()> {
    item.attempts += 1;
    if item.attempts >= MAX_ATTEMPTS {
        tracing::warn!(
            "push to {} for {} dropped after {} attempts",
            item.app_id,
            item.user,
            item.attempts
        );
        return remove(s, seq);
    }
    item.next_ts = now + backoff_ms(item.attempts);
    s.globals.commit(|c| {
        c.batch
            .put(PUSH_QUEUE, seq.to_be_bytes(), encode_json(&item));
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        assert_eq!(backoff_ms(1), 1_000);
        assert_eq!(backoff_ms(2), 2_000);
        assert_eq!(backoff_ms(5), 16_000);
        assert_eq!(backoff_ms(15), MAX_BACKOFF_MS);
    }

    #[test]
    fn tweaks_come_from_set_tweak_actions() {
        let actions: Vec<Action> = serde_json::from_value(serde_json::json!([
            "notify",
            { "set_tweak": "sound", "value": "default" },
            { "set_tweak": "highlight" }
        ]))
        .unwrap();
        let tweaks = tweaks_of(&actions);
        assert_eq!(tweaks["sound"], "default");
        assert_eq!(tweaks["highlight"], true);
        assert_eq!(tweaks.len(), 2);
    }
}
