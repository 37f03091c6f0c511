//! Where the stream last changed, by kind and key, so that an incremental /sync skips reading
//! what surely did not change since its token: a user's account data, a room's timeline, its
//! receipts, its member events and its members' unread counts, the devices and keys of any user,
//! anyone's presence, the relations to an event, and a device's to-device messages. Each is a
//! [`ChangeCache`]: kept in memory, bounded, answering "maybe" for what came before this process
//! started (and in a group of processes, always).
//!
//! A commit notes its changes ([`Commit::stream_changed`]); [`Globals::commit`] records them at
//! the commit's position once its batch is written, before that position is served, so a reader
//! at a position sees every change at or before it.
//!
//! [`Commit::stream_changed`]: crate::services::globals::Commit::stream_changed
//! [`Globals::commit`]: crate::services::globals::Globals::commit

use ruma::OwnedUserId;

use super::change_cache::ChangeCache;

/// One change a commit makes to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamChange {
    /// The user's account data (global or of a room).
    AccountData(OwnedUserId),
    /// A receipt in the room (short room).
    Receipt(u64),
    /// A member event appended to the room's timeline (short room).
    MemberEvent(u64),
    /// Some user's devices or keys (`keys::changes`).
    DeviceKeys,
    /// Some user's presence.
    Presence,
    /// A relation to this event (by ID) indexed or removed.
    RelationTo(Box<str>),
    /// A to-device message stored for this device of the user.
    ToDevice(OwnedUserId, String),
    /// Some member's unread counts in the room (short room): a notification or a receipt.
    Counts(u64),
    /// An event appended to the room's timeline (short room).
    Timeline(u64),
}

#[derive(Default)]
pub struct StreamChanges {
    pub account_data: ChangeCache<OwnedUserId>,
    pub receipts: ChangeCache<u64>,
    pub member_events: ChangeCache<u64>,
    pub device_keys: ChangeCache<()>,
    pub presence: ChangeCache<()>,
    pub relations: ChangeCache<Box<str>>,
    pub to_device: ChangeCache<(OwnedUserId, String)>,
    pub counts: ChangeCache<u64>,
    pub timeline: ChangeCache<u64>,
}

impl StreamChanges {
    /// Known from `pos` on: every later change passes through [`StreamChanges::record`].
    pub fn start(&self, pos: u64) {
        self.account_data.start(pos);
        self.receipts.start(pos);
        self.member_events.start(pos);
        self.device_keys.start(pos);
        self.presence.start(pos);
        self.relations.start(pos);
        self.to_device.start(pos);
        self.counts.start(pos);
        self.timeline.start(pos);
    }

    pub fn record(&self, change: StreamChange, pos: u64) {
        match change {
            StreamChange::AccountData(user) => self.account_data.changed(user, pos),
            StreamChange::Receipt(room) => self.receipts.changed(room, pos),
            StreamChange::MemberEvent(room) => self.member_events.changed(room, pos),
            StreamChange::DeviceKeys => self.device_keys.changed((), pos),
            StreamChange::Presence => self.presence.changed((), pos),
            StreamChange::RelationTo(target) => self.relations.changed(target, pos),
            StreamChange::ToDevice(user, device) => self.to_device.changed((user, device), pos),
            StreamChange::Counts(room) => self.counts.changed(room, pos),
            StreamChange::Timeline(room) => self.timeline.changed(room, pos),
        }
    }

    /// False only when no relation to the event `event_id` at position `pos` can exist: it was
    /// created by this server after this process started (nobody could name it before its
    /// commit), and no relation to it was indexed or removed since.
    pub fn surely_without_relations(&self, event_id: &str, pos: u64, local: bool) -> bool {
        local && pos > 0 && !self.relations.may_have_changed_since(event_id, pos - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::{StreamChange, StreamChanges};

    #[test]
    fn changes_are_known_per_kind_and_key_from_the_start() {
        let changes = StreamChanges::default();
        changes.record(StreamChange::Receipt(1), 5);
        assert!(
            changes.receipts.may_have_changed_since(&1, 10),
            "not started"
        );
        changes.start(10);
        assert!(!changes.receipts.may_have_changed_since(&1, 10));
        changes.record(StreamChange::Receipt(1), 11);
        changes.record(StreamChange::MemberEvent(2), 12);
        changes.record(StreamChange::DeviceKeys, 13);
        assert!(!changes.presence.may_have_changed_since(&(), 10));
        changes.record(StreamChange::Presence, 13);
        assert!(changes.presence.may_have_changed_since(&(), 12));
        changes.record(StreamChange::RelationTo("$a".into()), 14);
        assert!(changes.receipts.may_have_changed_since(&1, 10));
        assert!(!changes.receipts.may_have_changed_since(&2, 10));
        assert!(!changes.member_events.may_have_changed_since(&1, 10));
        assert!(changes.member_events.may_have_changed_since(&2, 11));
        assert!(!changes.member_events.may_have_changed_since(&2, 12));
        assert!(changes.device_keys.may_have_changed_since(&(), 12));
        assert!(!changes.device_keys.may_have_changed_since(&(), 13));
        // Relations: only a local event created after the start is known to have none.
        assert!(!changes.surely_without_relations("$a", 12, true));
        assert!(changes.surely_without_relations("$b", 12, true));
        assert!(!changes.surely_without_relations("$b", 12, false), "remote");
        assert!(
            !changes.surely_without_relations("$b", 9, true),
            "before the start"
        );
        assert!(
            changes.surely_without_relations("$a", 15, true),
            "relation before it"
        );
    }
}
