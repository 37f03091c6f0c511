//! Push notifications: each user's push rules (`rules`), the evaluation of every new room event for
//! the room's local members (`evaluate`, on the blocking pool, after the event is committed), the
//! unread counts it keeps and read receipts reset (`counts`, `read`), the notifications list
//! (`notifications`), pushers (`pushers`) and the delivery to push gateways from a persisted queue
//! (`queue`, `gateway`, `worker`).
//!
//! The commit of an event writes a `push_pending` entry in the event's own batch, so an event
//! committed before a crash is still evaluated after the restart; the evaluator deletes the entry
//! in the batch that records the event's notifications.

pub mod counts;
pub mod evaluate;
pub mod gateway;
pub mod notifications;
pub mod pushers;
pub mod queue;
pub mod read;
pub mod rules;
pub mod worker;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use ruma::{OwnedUserId, push::Ruleset};
use tokio::sync::Notify;

use crate::{
    services::globals::Commit,
    storage::{Db, Map},
};

/// event position u64 → short event u64: committed events not evaluated yet.
pub const PUSH_PENDING: Map = Map("push_pending");
/// user ‖ short room → [`counts::RoomCounts`] JSON.
pub const PUSH_COUNTS: Map = Map("push_counts");
/// user ‖ short room ‖ event position → [`counts::Entry`]: the unread notifications.
pub const PUSH_UNREAD: Map = Map("push_unread");
/// user ‖ event position → [`notifications::Notification`] JSON (`GET /notifications`).
pub const PUSH_NOTIFICATIONS: Map = Map("push_notifications");
/// user ‖ app id ‖ pushkey → [`pushers::StoredPusher`] JSON.
pub const PUSHERS: Map = Map("pushers");
/// app id ‖ pushkey ‖ user → empty (the other users of a pushkey, for `append: false`).
pub const PUSHKEYS: Map = Map("pushkeys");
/// sequence u64 → [`queue::Item`] JSON: notifications still to be sent to a push gateway.
pub const PUSH_QUEUE: Map = Map("push_queue");
pub const MAPS: &[Map] = &[PUSH_PENDING, PUSH_COUNTS, PUSH_UNREAD, PUSH_NOTIFICATIONS, PUSHERS, PUSHKEYS, PUSH_QUEUE];

pub struct Push {
    pub(crate) db: Db,
    pub(crate) rules_cache: Mutex<HashMap<OwnedUserId, Arc<Ruleset>>>,
    /// Serialises read-modify-writes of push rules.
    pub(crate) rules_write: Mutex<()>,
    /// Serialises changes of counts (a new notification, a read receipt).
    pub(crate) counts_lock: Mutex<()>,
    /// Wakes the evaluator (an event was committed).
    pub(crate) evaluate_wake: Arc<Notify>,
    /// Wakes the delivery worker (something was queued).
    pub(crate) deliver_wake: Arc<Notify>,
}

impl Push {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            rules_cache: Default::default(),
            rules_write: Default::default(),
            counts_lock: Default::default(),
            evaluate_wake: Default::default(),
            deliver_wake: Default::default(),
        }
    }

    /// In the commit of a new timeline event: the event is evaluated once the batch is written.
    pub fn event_committed(&self, c: &mut Commit, pos: u64, short_event: u64) {
        c.batch.put(PUSH_PENDING, pos.to_be_bytes(), short_event.to_be_bytes());
    }

    /// After the commit: wakes the evaluator (never waits for it).
    pub fn wake(&self) {
        self.evaluate_wake.notify_one();
    }

    pub fn pushers(&self) -> pushers::Pushers<'_> {
        pushers::Pushers { db: &self.db }
    }
}
