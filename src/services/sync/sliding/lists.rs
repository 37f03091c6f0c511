//! The `lists` of a request: the user's rooms (joined, invited, knocked) that pass a list's
//! `filters`, sorted by recency (the position of the last "bump" event, newest first), and the
//! rooms inside its `ranges`. Answers carry only each list's `count` (no `ops`, as the simplified
//! MSC4186 has it); the rooms in range go to the answer's `rooms`.

use std::collections::BTreeSet;

use ruma::{
    RoomId, UInt, api::client::sync::sync_events::v5::request::ListFilters,
    directory::RoomTypeFilter,
};

/// A room of the user as the lists see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub room_id: &'a RoomId,
    /// The stream position of the room's last bump event (the answer's `bump_stamp`).
    pub bump: u64,
    pub is_invite: bool,
    pub is_dm: bool,
    pub is_encrypted: bool,
    /// The `type` of the room's create event (`m.space`, …); `None`: an ordinary room.
    pub room_type: Option<String>,
}

/// The event types that move a room up the list (MSC4186's default bump event types); the user's
/// own join and invite also count (see [`is_bump`]).
pub const BUMP_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "m.beacon",
    "org.matrix.msc3381.poll.start",
    "org.matrix.msc3672.beacon",
];

/// Whether an event of this type bumps the rooms it is in (for every user).
pub fn is_bump_type(kind: &str) -> bool {
    BUMP_TYPES.contains(&kind)
}

/// Whether an event bumps the room for `user`: one of [`BUMP_TYPES`], or the user's own
/// membership becoming join or invite.
pub fn is_bump(kind: &str, state_key: Option<&str>, membership: Option<&str>, user: &str) -> bool {
    is_bump_type(kind)
        || kind == "m.room.member"
            && state_key == Some(user)
            && matches!(membership, Some("join" | "invite"))
}

/// Whether a room passes a list's filters (absent filters pass everything).
pub fn matches(filters: Option<&ListFilters>, room: &Candidate<'_>) -> bool {
    let Some(f) = filters else { return true };
    let room_type = RoomTypeFilter::from(room.room_type.as_deref());
    f.is_invite.is_none_or(|want| want == room.is_invite)
        && f.is_dm.is_none_or(|want| want == room.is_dm)
        && f.is_encrypted.is_none_or(|want| want == room.is_encrypted)
        && (f.room_types.is_empty() || f.room_types.contains(&room_type))
        && !f.not_room_types.contains(&room_type)
}

/// Newest bump first; the room id breaks ties so that the order is stable.
pub fn sort_by_recency(rooms: &mut [Candidate<'_>]) {
    rooms.sort_by(|a, b| b.bump.cmp(&a.bump).then_with(|| a.room_id.cmp(&b.room_id)));
}

/// The indexes of a sorted list of `len` rooms inside `ranges` (inclusive on both ends, clamped to
/// the list).
pub fn indexes_in_ranges(len: usize, ranges: &[(UInt, UInt)]) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    if len == 0 {
        return out;
    }
    for (start, end) in ranges {
        let start = u64::from(*start) as usize;
        let end = (u64::from(*end) as usize).min(len - 1);
        if start <= end {
            out.extend(start..=end);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str, bump: u64) -> Candidate<'static> {
        let id: &'static str = Box::leak(format!("!{id}:x").into_boxed_str());
        Candidate {
            room_id: <&RoomId>::try_from(id).unwrap(),
            bump,
            is_invite: false,
            is_dm: false,
            is_encrypted: false,
            room_type: None,
        }
    }

    #[test]
    fn newest_bump_first_with_a_stable_tie_break() {
        let mut rooms = vec![room("a", 5), room("c", 9), room("b", 5), room("d", 1)];
        sort_by_recency(&mut rooms);
        let order: Vec<_> = rooms.iter().map(|r| r.room_id.as_str()).collect();
        assert_eq!(order, ["!c:x", "!a:x", "!b:x", "!d:x"]);
    }

    #[test]
    fn ranges_are_inclusive_and_clamped() {
        let r = |a: u32, b: u32| (UInt::from(a), UInt::from(b));
        assert_eq!(indexes_in_ranges(5, &[r(0, 1)]), BTreeSet::from([0, 1]));
        assert_eq!(indexes_in_ranges(3, &[r(0, 99)]), BTreeSet::from([0, 1, 2]));
        assert_eq!(
            indexes_in_ranges(10, &[r(0, 0), r(5, 6)]),
            BTreeSet::from([0, 5, 6])
        );
        assert!(indexes_in_ranges(2, &[r(4, 9)]).is_empty());
        assert!(indexes_in_ranges(0, &[r(0, 9)]).is_empty());
        assert!(indexes_in_ranges(5, &[r(3, 1)]).is_empty());
    }

    #[test]
    fn filters() {
        let mut invite = room("i", 1);
        invite.is_invite = true;
        let mut dm = room("d", 1);
        dm.is_dm = true;
        dm.is_encrypted = true;
        let mut space = room("s", 1);
        space.room_type = Some("m.space".into());
        let plain = room("p", 1);

        let mut f = ListFilters::default();
        f.is_invite = Some(true);
        assert!(matches(Some(&f), &invite) && !matches(Some(&f), &plain));
        let mut f = ListFilters::default();
        f.is_dm = Some(true);
        assert!(matches(Some(&f), &dm) && !matches(Some(&f), &plain));
        let mut f = ListFilters::default();
        f.is_encrypted = Some(false);
        assert!(!matches(Some(&f), &dm) && matches(Some(&f), &plain));
        let mut f = ListFilters::default();
        f.not_room_types = vec![RoomTypeFilter::Space];
        assert!(!matches(Some(&f), &space) && matches(Some(&f), &plain));
        let mut f = ListFilters::default();
        f.room_types = vec![RoomTypeFilter::Space];
        assert!(matches(Some(&f), &space) && !matches(Some(&f), &plain));
        assert!(matches(None, &space));
    }

    #[test]
    fn bump_events() {
        assert!(is_bump("m.room.message", None, None, "@me:x"));
        assert!(is_bump("m.room.encrypted", None, None, "@me:x"));
        assert!(!is_bump("m.room.topic", Some(""), None, "@me:x"));
        assert!(!is_bump("m.reaction", None, None, "@me:x"));
        assert!(is_bump(
            "m.room.member",
            Some("@me:x"),
            Some("join"),
            "@me:x"
        ));
        assert!(is_bump(
            "m.room.member",
            Some("@me:x"),
            Some("invite"),
            "@me:x"
        ));
        assert!(!is_bump(
            "m.room.member",
            Some("@other:x"),
            Some("join"),
            "@me:x"
        ));
        assert!(!is_bump(
            "m.room.member",
            Some("@me:x"),
            Some("leave"),
            "@me:x"
        ));
    }
}
