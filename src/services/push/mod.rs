//! Push notifications: each user's push rules (`rules`), the evaluation of every new room event for
//! the room's local members (`evaluate`, before the event's commit, written in its batch), the
//! unread counts it keeps and read receipts reset (`counts`, `read`), the notifications list
//! (`notifications`), pushers (`pushers`) and the delivery to push gateways from a persisted queue
//! (`queue`, `gateway`, `worker`).
//!
//! An event's notifications, unread entries and counts are written in the event's own batch, at
//! its position: a crash keeps both or neither, and a reader never sees the event without its
//! counts. `push_pending` entries left by older versions are evaluated once at start-up.

pub mod counts;
pub mod counts_store;
pub mod evaluate;
pub mod gateway;
pub mod notifications;
pub mod pushers;
pub mod queue;
pub mod read;
pub mod rules;
pub mod worker;

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::storage::{Db, Map};

/// event position u64 → short event u64: events committed by an older version, not evaluated yet.
pub const PUSH_PENDING: Map = Map("push_pending");
/// user ‖ short room → [`counts::RoomCounts`] (`counts_store::encode_room`).
pub const PUSH_COUNTS: Map = Map("push_counts");
/// user ‖ short room ‖ thread root → [`counts::ThreadCounts`] (`counts_store::encode_thread`).
pub const PUSH_THREAD_COUNTS: Map = Map("push_thread_counts");
/// Markers of one-time conversions (`counts_converted`).
pub const PUSH_META: Map = Map("push_meta");
/// user ‖ short room ‖ event position → [`counts::Entry`]: the unread notifications.
pub const PUSH_UNREAD: Map = Map("push_unread");
/// user ‖ event position → the notification (`GET /notifications`): compact
/// (`notifications::encode`: short event, ts, actions), or [`notifications::Notification`] JSON
/// as older versions wrote it.
pub const PUSH_NOTIFICATIONS: Map = Map("push_notifications");
/// user ‖ app id ‖ pushkey → [`pushers::StoredPusher`] JSON.
pub const PUSHERS: Map = Map("pushers");
/// app id ‖ pushkey ‖ user → empty (the other users of a pushkey, for `append: false`).
pub const PUSHKEYS: Map = Map("pushkeys");
/// sequence u64 → [`queue::Item`] JSON: notifications still to be sent to a push gateway.
pub const PUSH_QUEUE: Map = Map("push_queue");
pub const MAPS: &[Map] = &[
    PUSH_PENDING,
    PUSH_COUNTS,
    PUSH_THREAD_COUNTS,
    PUSH_META,
    PUSH_UNREAD,
    PUSH_NOTIFICATIONS,
    PUSHERS,
    PUSHKEYS,
    PUSH_QUEUE,
];

pub struct Push {
    pub(crate) db: Db,
    pub(crate) rules_cache: Mutex<rules::RulesCache>,
    /// The server-default rules give the same actions to every user an event does not name
    /// (`rules::defaults_depend_only_on_the_id`): evaluated once per event for all of them.
    pub(crate) share_default_rules: bool,
    /// Serialises read-modify-writes of push rules.
    pub(crate) rules_write: Mutex<()>,
    /// Serialises changes of counts (a new notification, a read receipt), and holds the counts
    /// last written (a notification in a busy room reads the same users' counts again and again).
    pub(crate) counts_lock: Mutex<counts::CountsCache>,
    /// In a group of processes: counts are read and staged inside the commit that writes them,
    /// under the database's commit lock (`evaluate::PushStage`), never from a cache.
    pub stage_in_commit: bool,
    /// A single process: a notification writes the member's counts only now and then
    /// (`counts::UNSTORED_MAX`), readers add the entries after the stored value. A group writes
    /// them every time (a reader in another process has no cache to add them from).
    pub(crate) counts_unstored: bool,
    /// Wakes the delivery worker (something was queued).
    pub(crate) deliver_wake: Arc<Notify>,
    pub(crate) http_pusher_users: Mutex<pushers::HttpPusherUsers>,
}

impl Push {
    /// The push service over `db`, whose counts in an older form are converted first.
    /// `shared`: in a group of processes, counts are not cached (`counts::CountsCache`).
    pub fn open(db: Db, shared: bool) -> crate::error::Result<Self> {
        counts_store::convert_legacy(&db)?;
        if shared {
            counts_store::store_unstored(&db)?;
        } else {
            counts_store::mark_unstored(&db)?;
        }
        let mut push = Self::new(db);
        push.stage_in_commit = shared;
        push.counts_unstored = !shared;
        push.counts_lock
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .uncached = shared;
        Ok(push)
    }

    pub fn new(db: Db) -> Self {
        Self {
            db,
            rules_cache: Default::default(),
            share_default_rules: rules::defaults_depend_only_on_the_id(),
            rules_write: Default::default(),
            counts_lock: Default::default(),
            stage_in_commit: false,
            counts_unstored: true,
            deliver_wake: Default::default(),
            http_pusher_users: Default::default(),
        }
    }

    pub fn pushers(&self) -> pushers::Pushers<'_> {
        pushers::Pushers {
            db: &self.db,
            known: &self.http_pusher_users,
        }
    }
}
