//! Spaces as this server sees them: the summary of a room we are in (from its current state), its
//! `m.space.child` links in the spec's order, and who may see a summary (a user for the client
//! `/hierarchy`, a server for the federation one).

use ruma::{
    OwnedRoomId, OwnedServerName, RoomId, ServerName, UInt, UserId,
    events::{StateEventType, TimelineEventType, space::child::HierarchySpaceChildEvent},
    room::{JoinRule, JoinRuleSummary, RoomSummary, RoomType},
    serde::Raw,
};
use serde_json::{Value, json};

use crate::{
    error::Result,
    services::{
        Services,
        rooms::{self, event_by_short, membership::Membership, restricted},
    },
};

/// One `m.space.child` link of a space (a child event whose `via` is not empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildLink {
    pub room_id: OwnedRoomId,
    pub via: Vec<OwnedServerName>,
    pub suggested: bool,
    /// A valid `order` (at most 50 characters, each from `\x20` to `\x7E`), else `None`.
    pub order: Option<String>,
    /// `origin_server_ts` of the child event.
    pub ts: u64,
}

/// A room's summary with its space children.
#[derive(Debug, Clone)]
pub struct SpaceSummary {
    pub summary: RoomSummary,
    /// The child events, stripped, with `origin_server_ts` (empty for a room that is not a space).
    pub children_state: Vec<Raw<HierarchySpaceChildEvent>>,
    /// The children, in the spec's order (empty for a room that is not a space).
    pub children: Vec<ChildLink>,
}

impl SpaceSummary {
    pub fn is_space(&self) -> bool {
        self.summary.room_type == Some(RoomType::Space)
    }
}

/// Who asks for a summary.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    User(&'a UserId),
    Server(&'a ServerName),
}

/// The link of a child event's content, if it is a valid, non-empty one (pure).
pub fn child_link(state_key: &str, content: &Value, ts: u64) -> Option<ChildLink> {
    let room_id = OwnedRoomId::try_from(state_key).ok()?;
    let via: Vec<OwnedServerName> = content
        .get("via")?
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().and_then(|s| OwnedServerName::try_from(s).ok()))
        .collect();
    if via.is_empty() {
        return None;
    }
    let order = content
        .get("order")
        .and_then(Value::as_str)
        .filter(|o| o.len() <= 50 && o.chars().all(|c| ('\x20'..='\x7E').contains(&c)))
        .map(str::to_owned);
    let suggested = content
        .get("suggested")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some(ChildLink {
        room_id,
        via,
        suggested,
        order,
        ts,
    })
}

/// The spec's order of children: by `order` (children without one last), then by the child
/// event's timestamp, then by room id (pure).
pub fn sort_children(children: &mut [ChildLink]) {
    children.sort_by(|a, b| {
        let by_order = match (&a.order, &b.order) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_order
            .then(a.ts.cmp(&b.ts))
            .then_with(|| a.room_id.cmp(&b.room_id))
    });
}

/// The summary of a room this server is in (has a joined member in), from its current state
/// (`None`: not in it; a room all our users left has a state we no longer follow).
pub fn local_summary(s: &Services, room_id: &RoomId) -> Result<Option<SpaceSummary>> {
    let Some(short) = restricted::follows(s, room_id)? else {
        return Ok(None);
    };
    let state = s.state.current_state(short)?;
    if state.is_empty() {
        return Ok(None);
    }
    let content = |kind: StateEventType| rooms::state_content(s, room_id, &kind, "");
    let text = |kind: StateEventType, field: &str| -> Result<Option<String>> {
        Ok(content(kind)?.and_then(|c| c.get(field).and_then(Value::as_str).map(str::to_owned)))
    };
    let joined = s.membership.members(short, Membership::Join)?.len() as u64;
    let join_rule: JoinRuleSummary = restricted::join_rule(s, room_id)?
        .unwrap_or(JoinRule::Invite)
        .into();
    let world_readable = text(StateEventType::RoomHistoryVisibility, "history_visibility")?
        .as_deref()
        == Some("world_readable");
    let guest_can_join =
        text(StateEventType::RoomGuestAccess, "guest_access")?.as_deref() == Some("can_join");
    let mut summary = RoomSummary::new(
        room_id.to_owned(),
        join_rule,
        guest_can_join,
        UInt::new(joined).unwrap_or_default(),
        world_readable,
    );
    summary.name = text(StateEventType::RoomName, "name")?;
    summary.topic = text(StateEventType::RoomTopic, "topic")?;
    summary.canonical_alias =
        text(StateEventType::RoomCanonicalAlias, "alias")?.and_then(|a| a.try_into().ok());
    summary.avatar_url = text(StateEventType::RoomAvatar, "url")?.map(Into::into);
    summary.room_type =
        text(StateEventType::RoomCreate, "type")?.map(|t| RoomType::from(t.as_str()));
    summary.encryption =
        text(StateEventType::RoomEncryption, "algorithm")?.map(|a| a.as_str().into());
    summary.room_version = s.timeline.room_version(room_id)?;

    let mut children = Vec::new();
    let mut children_state = Vec::new();
    if summary.room_type == Some(RoomType::Space) {
        for (key, event) in state.iter() {
            let (kind, state_key) = s.short.statekey_of(*key)?;
            if kind != StateEventType::SpaceChild {
                continue;
            }
            let Some(e) = event_by_short(s, *event, room_id)? else {
                continue;
            };
            if e.pdu.kind != TimelineEventType::SpaceChild {
                continue;
            }
            let ts = u64::from(e.pdu.origin_server_ts.get());
            let content = e.pdu.content_value();
            let Some(link) = child_link(&state_key, &content, ts) else {
                continue;
            };
            let stripped = json!({
                "type": "m.space.child",
                "state_key": state_key,
                "sender": e.pdu.sender,
                "content": content,
                "origin_server_ts": ts,
            });
            if let Ok(raw) = serde_json::from_value(stripped) {
                children_state.push(raw);
            }
            children.push(link);
        }
        sort_children(&mut children);
    }
    Ok(Some(SpaceSummary {
        summary,
        children_state,
        children,
    }))
}

/// The allowed rooms of a restricted summary (any room version: the summary says what the room uses).
fn allowed_of(summary: &RoomSummary) -> Option<&[OwnedRoomId]> {
    match &summary.join_rule {
        JoinRuleSummary::Restricted(r) | JoinRuleSummary::KnockRestricted(r) => {
            Some(&r.allowed_room_ids)
        }
        _ => None,
    }
}

/// Whether `viewer` may see a room's summary: it is world readable, public or knockable; the user
/// (a user of the server) is joined or invited; or the restricted rule lets them join (joined to
/// an allowed room we follow). For a room we are not in, only the summary's fields count, and the
/// memberships we know of the allowed rooms.
pub fn may_see(s: &Services, summary: &RoomSummary, viewer: Viewer<'_>) -> Result<bool> {
    if summary.world_readable
        || matches!(
            summary.join_rule,
            JoinRuleSummary::Public | JoinRuleSummary::Knock | JoinRuleSummary::KnockRestricted(_)
        )
    {
        return Ok(true);
    }
    // Our users' memberships are always known (invites to rooms we are not in too); other
    // servers' only in rooms we follow.
    let known = |room: &RoomId| -> Result<Option<u64>> {
        match viewer {
            Viewer::User(_) => s.short.room(room),
            Viewer::Server(_) => restricted::follows(s, room),
        }
    };
    if let Some(short) = known(&summary.room_id)?
        && has_member(s, short, viewer, &[Membership::Join, Membership::Invite])?
    {
        return Ok(true);
    }
    if let Some(allowed) = allowed_of(summary) {
        for room in allowed {
            if let Some(short) = known(room)?
                && has_member(s, short, viewer, &[Membership::Join])?
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Whether the user, or a user of the server, has one of `wanted` memberships in a room.
fn has_member(
    s: &Services,
    short_room: u64,
    viewer: Viewer<'_>,
    wanted: &[Membership],
) -> Result<bool> {
    match viewer {
        Viewer::User(user) => Ok(s
            .membership
            .membership(short_room, user)?
            .is_some_and(|m| wanted.contains(&m))),
        Viewer::Server(server) => {
            for m in wanted {
                if s.membership
                    .members(short_room, *m)?
                    .iter()
                    .any(|u| u.server_name() == server)
                {
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{child_link, sort_children};

    #[test]
    fn child_links_need_a_via_and_keep_only_valid_orders() {
        assert!(child_link("!a:x", &json!({}), 1).is_none());
        assert!(child_link("!a:x", &json!({ "via": [] }), 1).is_none());
        assert!(child_link("not a room", &json!({ "via": ["x"] }), 1).is_none());
        let link = child_link(
            "!a:x",
            &json!({ "via": ["x"], "order": "b", "suggested": true }),
            1,
        )
        .unwrap();
        assert_eq!((link.order.as_deref(), link.suggested), (Some("b"), true));
        let long = "a".repeat(51);
        assert_eq!(
            child_link("!a:x", &json!({ "via": ["x"], "order": long }), 1)
                .unwrap()
                .order,
            None
        );
        assert_eq!(
            child_link("!a:x", &json!({ "via": ["x"], "order": "é" }), 1)
                .unwrap()
                .order,
            None
        );
        assert_eq!(
            child_link("!a:x", &json!({ "via": ["x"], "order": 5 }), 1)
                .unwrap()
                .order,
            None
        );
    }

    #[test]
    fn children_are_ordered_by_order_then_timestamp_then_room_id() {
        let link = |id: &str, order: Option<&str>, ts: u64| {
            let mut content = json!({ "via": ["x"] });
            if let Some(o) = order {
                content["order"] = json!(o);
            }
            child_link(id, &content, ts).unwrap()
        };
        let mut children = vec![
            link("!d:x", None, 5),
            link("!c:x", None, 5),
            link("!b:x", None, 1),
            link("!a:x", Some("z"), 9),
            link("!e:x", Some("a"), 9),
        ];
        sort_children(&mut children);
        let ids: Vec<&str> = children.iter().map(|c| c.room_id.as_str()).collect();
        assert_eq!(ids, ["!e:x", "!a:x", "!b:x", "!c:x", "!d:x"]);
    }
}
