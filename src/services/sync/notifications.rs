//! The push parts of /sync: each joined room's `unread_notifications` (and, when the timeline
//! filter asks for them, `unread_thread_notifications`), and the user's push rules in the global
//! account data of an initial sync.

use ruma::{
    OwnedEventId, UInt, UserId,
    api::client::sync::sync_events::{UnreadNotificationsCount, v3 as sync},
};

use super::SyncRequest;
use crate::{
    error::Result,
    services::{
        Services,
        account_data::Entry,
        push::{
            counts::Count,
            counts_store::{room_counts, room_threads},
            rules,
        },
    },
};

fn count(c: Count) -> UnreadNotificationsCount {
    let mut out = UnreadNotificationsCount::new();
    out.notification_count = Some(UInt::new_saturating(c.notify));
    out.highlight_count = Some(UInt::new_saturating(c.highlight));
    out
}

/// Sets the room's unread counts; returns the position of their last change (the room is in an
/// incremental sync when it is after `since`).
pub fn unread_counts(
    s: &Services,
    req: &SyncRequest,
    short_room: u64,
    joined: &mut sync::JoinedRoom,
) -> Result<u64> {
    let counts = room_counts(s, &req.user, short_room)?;
    if req.filter.room.timeline.unread_thread_notifications {
        joined.unread_notifications = count(counts.main);
        // The threads are read only when some thread has unread notifications.
        if !counts.threads.is_zero() {
            for (root, thread) in room_threads(s, &req.user, short_room)? {
                if let Ok(root) = OwnedEventId::try_from(root)
                    && !thread.count.is_zero()
                {
                    joined
                        .unread_thread_notifications
                        .insert(root, count(thread.count));
                }
            }
        }
    } else {
        joined.unread_notifications = count(counts.total());
    }
    Ok(counts.pos)
}

/// An initial sync shows the push rules even when the user never changed them.
pub fn add_default_push_rules(
    s: &Services,
    user: &UserId,
    account_data: &mut Vec<Entry>,
) -> Result<()> {
    if account_data
        .iter()
        .any(|e| e.room.is_none() && e.kind == rules::ACCOUNT_DATA_TYPE)
    {
        return Ok(());
    }
    let ruleset = rules::ruleset(s, user)?;
    account_data.push(Entry {
        room: None,
        kind: rules::ACCOUNT_DATA_TYPE.to_owned(),
        content: rules::content_of(&ruleset),
    });
    Ok(())
}
