//! Event filters (the spec's `RoomEventFilter` and `Filter`), applied to events as JSON.

use ruma::{
    RoomId, UserId,
    api::client::filter::{Filter, LazyLoadOptions, RoomEventFilter},
};

/// `*` at the end of a pattern matches any suffix.
fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

fn allowed(types: Option<&[String]>, not_types: &[String], kind: &str) -> bool {
    if not_types.iter().any(|p| type_matches(p, kind)) {
        return false;
    }
    types.is_none_or(|t| t.iter().any(|p| type_matches(p, kind)))
}

fn sender_allowed(
    senders: Option<&[ruma::OwnedUserId]>,
    not_senders: &[ruma::OwnedUserId],
    sender: Option<&UserId>,
) -> bool {
    let Some(sender) = sender else { return true };
    if not_senders.iter().any(|s| s == sender) {
        return false;
    }
    senders.is_none_or(|s| s.iter().any(|x| x == sender))
}

pub fn room_event_matches(
    filter: &RoomEventFilter,
    kind: &str,
    sender: Option<&UserId>,
    room: Option<&RoomId>,
) -> bool {
    if let Some(room) = room {
        if filter.not_rooms.iter().any(|r| r == room) {
            return false;
        }
        if filter
            .rooms
            .as_ref()
            .is_some_and(|rs| !rs.iter().any(|r| r == room))
        {
            return false;
        }
    }
    allowed(filter.types.as_deref(), &filter.not_types, kind)
        && sender_allowed(filter.senders.as_deref(), &filter.not_senders, sender)
}

pub fn event_matches(filter: &Filter, kind: &str, sender: Option<&UserId>) -> bool {
    allowed(filter.types.as_deref(), &filter.not_types, kind)
        && sender_allowed(filter.senders.as_deref(), &filter.not_senders, sender)
}

pub fn lazy_members(filter: &RoomEventFilter) -> bool {
    matches!(filter.lazy_load_options, LazyLoadOptions::Enabled { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_exclusions() {
        let mut f = RoomEventFilter::default();
        f.types = Some(vec!["m.room.*".into()]);
        f.not_types = vec!["m.room.member".into()];
        assert!(room_event_matches(&f, "m.room.message", None, None));
        assert!(!room_event_matches(&f, "m.room.member", None, None));
        assert!(!room_event_matches(&f, "org.example", None, None));
    }
}
