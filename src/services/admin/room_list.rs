//! `GET /_synapse/admin/v1/rooms` and `/rooms/{roomId}`: a summary of each room from its current
//! state, and the filtering and sorting of the list (pure).

use std::cmp::Ordering;

use ruma::{OwnedRoomId, RoomId, events::StateEventType};
use serde::Serialize;
use serde_json::Value;

use super::paging::{Dir, Page, sorted_page};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{self, membership::Membership},
        timeline::ROOMS,
    },
};

/// What the admin API shows of a room (the list's entries; details add `topic` and `avatar`).
#[derive(Debug, Clone, Serialize)]
pub struct RoomSummary {
    pub room_id: OwnedRoomId,
    pub name: Option<String>,
    pub canonical_alias: Option<String>,
    pub topic: Option<String>,
    pub avatar: Option<String>,
    pub joined_members: usize,
    pub joined_local_members: usize,
    pub version: String,
    pub creator: Option<String>,
    pub encryption: Option<String>,
    pub federatable: bool,
    pub public: bool,
    pub join_rules: Option<String>,
    pub guest_access: Option<String>,
    pub history_visibility: Option<String>,
    pub state_events: usize,
    pub room_type: Option<String>,
    /// Joined with partial state, its members still being fetched (Parvis's addition).
    pub partial_state: bool,
}

/// The sort orders of the room list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoomOrder {
    /// Alphabetically by name, rooms without a name last (the default).
    #[default]
    Name,
    CanonicalAlias,
    /// Largest first.
    JoinedMembers,
    /// Largest first.
    JoinedLocalMembers,
    /// Largest first.
    StateEvents,
    Version,
    Creator,
}

impl RoomOrder {
    pub fn parse(value: Option<&str>) -> Result<Self> {
        Ok(match value {
            None | Some("name") | Some("alphabetical") => Self::Name,
            Some("canonical_alias") => Self::CanonicalAlias,
            Some("joined_members") | Some("size") => Self::JoinedMembers,
            Some("joined_local_members") => Self::JoinedLocalMembers,
            Some("state_events") => Self::StateEvents,
            Some("version") => Self::Version,
            Some("creator") => Self::Creator,
            Some(other) => {
                return Err(Error::invalid_param(format!(
                    "Unknown value for order_by: {other}"
                )));
            }
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct RoomQuery {
    pub from: usize,
    pub limit: usize,
    pub order_by: RoomOrder,
    pub dir: Dir,
    /// Keeps rooms whose name, canonical alias or id contains it (case-insensitive).
    pub search_term: Option<String>,
}

/// Text fields: absent values sort after present ones.
fn text(a: &Option<String>, b: &Option<String>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.to_lowercase().cmp(&b.to_lowercase()),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn compare(order: RoomOrder, a: &RoomSummary, b: &RoomSummary) -> Ordering {
    let by = match order {
        RoomOrder::Name => text(&a.name, &b.name),
        RoomOrder::CanonicalAlias => text(&a.canonical_alias, &b.canonical_alias),
        RoomOrder::JoinedMembers => b.joined_members.cmp(&a.joined_members),
        RoomOrder::JoinedLocalMembers => b.joined_local_members.cmp(&a.joined_local_members),
        RoomOrder::StateEvents => b.state_events.cmp(&a.state_events),
        RoomOrder::Version => b.version.cmp(&a.version),
        RoomOrder::Creator => text(&a.creator, &b.creator),
    };
    by.then_with(|| a.room_id.cmp(&b.room_id))
}

fn matches(term: &str, room: &RoomSummary) -> bool {
    let term = term.to_lowercase();
    [
        room.name.as_deref(),
        room.canonical_alias.as_deref(),
        Some(room.room_id.as_str()),
    ]
    .into_iter()
    .flatten()
    .any(|field| field.to_lowercase().contains(&term))
}

/// The page of `rooms` that `q` asks for.
pub fn list(rooms: Vec<RoomSummary>, q: &RoomQuery) -> Page<RoomSummary> {
    let kept: Vec<_> = rooms
        .into_iter()
        .filter(|r| q.search_term.as_deref().is_none_or(|t| matches(t, r)))
        .collect();
    sorted_page(
        kept,
        |a, b| compare(q.order_by, a, b),
        q.dir,
        q.from,
        q.limit,
    )
}

/// Every room this server has a timeline of.
pub fn all_room_ids(s: &Services) -> Result<Vec<OwnedRoomId>> {
    let mut out = Vec::new();
    for entry in s.globals.db.scan_prefix(ROOMS, &[]) {
        let (key, _) = entry?;
        if let Ok(room) = OwnedRoomId::try_from(String::from_utf8_lossy(&key).as_ref()) {
            out.push(room);
        }
    }
    Ok(out)
}

/// The summary of a room from its current state; `None` for a room this server does not know.
pub fn summary(s: &Services, room_id: &RoomId) -> Result<Option<RoomSummary>> {
    let (Some(short), Some(version)) = (s.short.room(room_id)?, s.timeline.room_version(room_id)?)
    else {
        return Ok(None);
    };
    let field = |kind: StateEventType, name: &str| -> Result<Option<String>> {
        Ok(rooms::state_content(s, room_id, &kind, "")?
            .and_then(|c| c.get(name).and_then(Value::as_str).map(str::to_owned)))
    };
    let create = rooms::state_event(s, room_id, &StateEventType::RoomCreate, "")?;
    let create_content = create
        .as_ref()
        .map(|e| e.pdu.content_value())
        .unwrap_or_default();
    let joined = s.membership.members(short, Membership::Join)?;
    let server = s.globals.server_name();
    Ok(Some(RoomSummary {
        room_id: room_id.to_owned(),
        name: field(StateEventType::RoomName, "name")?,
        canonical_alias: field(StateEventType::RoomCanonicalAlias, "alias")?,
        topic: field(StateEventType::RoomTopic, "topic")?,
        avatar: field(StateEventType::RoomAvatar, "url")?,
        joined_local_members: joined.iter().filter(|u| u.server_name() == server).count(),
        joined_members: joined.len(),
        version: version.to_string(),
        creator: create.as_ref().map(|e| e.pdu.sender.to_string()),
        encryption: field(StateEventType::RoomEncryption, "algorithm")?,
        federatable: create_content
            .get("m.federate")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        public: s.directory.is_public(room_id)?,
        join_rules: field(StateEventType::RoomJoinRules, "join_rule")?,
        guest_access: field(StateEventType::RoomGuestAccess, "guest_access")?,
        history_visibility: field(StateEventType::RoomHistoryVisibility, "history_visibility")?,
        state_events: s.state.current_state(short)?.len(),
        room_type: create_content
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_owned),
        partial_state: s.partial_state.is_partial(short)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str, name: Option<&str>, joined: usize) -> RoomSummary {
        RoomSummary {
            room_id: OwnedRoomId::try_from(id).unwrap(),
            name: name.map(str::to_owned),
            canonical_alias: None,
            topic: None,
            avatar: None,
            joined_members: joined,
            joined_local_members: joined,
            version: "12".into(),
            creator: None,
            encryption: None,
            federatable: true,
            public: false,
            join_rules: None,
            guest_access: None,
            history_visibility: None,
            state_events: 0,
            partial_state: false,
            room_type: None,
        }
    }

    fn sample() -> Vec<RoomSummary> {
        vec![
            room("!c:x", Some("beta"), 1),
            room("!a:x", None, 5),
            room("!b:x", Some("Alpha"), 3),
            room("!d:x", Some("gamma"), 3),
        ]
    }

    fn ids(p: &Page<RoomSummary>) -> Vec<&str> {
        p.items.iter().map(|r| r.room_id.as_str()).collect()
    }

    fn query() -> RoomQuery {
        RoomQuery {
            limit: 100,
            ..Default::default()
        }
    }

    #[test]
    fn by_name_case_insensitive_unnamed_last() {
        assert_eq!(
            ids(&list(sample(), &query())),
            ["!b:x", "!c:x", "!d:x", "!a:x"]
        );
        let q = RoomQuery {
            dir: Dir::Backward,
            ..query()
        };
        assert_eq!(ids(&list(sample(), &q)), ["!a:x", "!d:x", "!c:x", "!b:x"]);
    }

    #[test]
    fn by_members_largest_first_ties_by_id() {
        let q = RoomQuery {
            order_by: RoomOrder::JoinedMembers,
            ..query()
        };
        assert_eq!(ids(&list(sample(), &q)), ["!a:x", "!b:x", "!d:x", "!c:x"]);
        assert_eq!(
            RoomOrder::parse(Some("size")).unwrap(),
            RoomOrder::JoinedMembers
        );
        assert_eq!(
            RoomOrder::parse(Some("nope")).unwrap_err().errcode,
            "M_INVALID_PARAM"
        );
    }

    #[test]
    fn search_term_matches_name_or_id() {
        let q = RoomQuery {
            search_term: Some("ALP".into()),
            ..query()
        };
        assert_eq!(ids(&list(sample(), &q)), ["!b:x"]);
        let q = RoomQuery {
            search_term: Some("!a:".into()),
            ..query()
        };
        assert_eq!(ids(&list(sample(), &q)), ["!a:x"]);
    }

    #[test]
    fn pages_with_offsets() {
        let q = RoomQuery {
            limit: 3,
            from: 0,
            ..query()
        };
        let first = list(sample(), &q);
        assert_eq!(
            (first.items.len(), first.total, first.next),
            (3, 4, Some(3))
        );
        let q = RoomQuery {
            limit: 3,
            from: 3,
            ..query()
        };
        let second = list(sample(), &q);
        assert_eq!(
            (ids(&second), second.next, second.prev),
            (vec!["!a:x"], None, Some(0))
        );
    }
}
