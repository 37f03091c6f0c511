//! Room upgrades (`POST /rooms/{roomId}/upgrade`, client-server spec "Room upgrades"): the
//! replacement room (its create event names its predecessor), the tombstone in the old room, the
//! state, bans, aliases and directory entry carried over, invites for the old room's members when
//! the new room is not public, and the old room's power levels raised so that ordinary members
//! stop talking there. Every event goes through the local send path (authorization rules,
//! federation queue), so the old room's other servers receive the tombstone.

use std::sync::Arc;

use ruma::{
    OwnedEventId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, RoomVersionId, UserId,
    events::StateEventType,
};
use serde_json::{Map, Value, json};

use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{
            self,
            create::{self, CreateRoom, Preset},
            membership::Membership,
            power, send, set_membership, upgrade_levels, upgrade_user_state, version,
        },
        timeline::append::NewEvent,
    },
};

/// State copied to the new room: type, and whether only the empty state key counts.
const COPIED: &[(&str, bool)] = &[
    ("m.room.join_rules", true),
    ("m.room.name", true),
    ("m.room.topic", true),
    ("m.room.avatar", true),
    ("m.room.encryption", true),
    ("m.room.history_visibility", true),
    ("m.room.guest_access", true),
    ("m.room.server_acl", true),
    ("m.space.child", false),
    ("m.space.parent", false),
];

/// What the upgrade reads from the old room before changing anything.
struct Plan {
    user: OwnedUserId,
    old_room: OwnedRoomId,
    version: RoomVersionId,
    creation_content: Map<String, Value>,
    /// The old room's levels as the new room takes them (`None`: the old room has none).
    levels: Option<Map<String, Value>>,
    /// The old room's own levels, for the restriction after the upgrade.
    old_levels: Option<Map<String, Value>>,
    state: Vec<(String, String, Value)>,
    public_join_rule: bool,
    bans: Vec<(String, Value)>,
    invitees: Vec<OwnedUserId>,
    canonical_alias: Option<Value>,
}

/// Upgrades `old_room` to `version` for `user`; returns the new room's id.
pub async fn upgrade_room(
    services: &Arc<Services>,
    user: OwnedUserId,
    old_room: OwnedRoomId,
    version: RoomVersionId,
    additional_creators: Vec<OwnedUserId>,
) -> Result<OwnedRoomId> {
    let (new_room, plan, remote) = services
        .run(move |s| {
            let plan = plan(s, user, old_room, version, &additional_creators)?;
            let (new_room, remote) = replace(s, &plan)?;
            Ok((new_room, plan, remote))
        })
        .await?;
    // Members of other servers are invited over federation; a server that cannot be reached
    // does not stop the upgrade (the member can still follow the tombstone when it can join).
    for invitee in remote {
        if let Err(e) = crate::federation::invite::invite_remote(
            services,
            new_room.clone(),
            plan.user.clone(),
            invitee.clone(),
            None,
        )
        .await
        {
            tracing::warn!(
                "room upgrade of {}: inviting {invitee}: {}",
                plan.old_room,
                e.message
            );
        }
    }
    let room = new_room.clone();
    services.run(move |s| finish(s, &plan, &room)).await?;
    Ok(new_room)
}

/// Checks the request and reads what the new room takes from the old one.
fn plan(
    s: &Services,
    user: OwnedUserId,
    old_room: OwnedRoomId,
    version: RoomVersionId,
    additional_creators: &[OwnedUserId],
) -> Result<Plan> {
    let rules = version::rules(&version)?;
    if !s.timeline.room_exists(&old_room)? {
        return Err(Error::not_found("Unknown room"));
    }
    let short_room = rooms::short_room(s, &old_room)?;
    if !s.membership.is_joined(short_room, &user)? {
        return Err(Error::forbidden("You are not in this room"));
    }
    if !power::can_send_state(s, &old_room, &user, "m.room.tombstone")? {
        return Err(Error::forbidden("You cannot upgrade this room"));
    }

    let old_create =
        rooms::state_content(s, &old_room, &StateEventType::RoomCreate, "")?.unwrap_or_default();
    let mut creation_content = Map::new();
    if old_create.get("m.federate") == Some(&Value::Bool(false)) {
        creation_content.insert("m.federate".into(), json!(false));
    }
    if let Some(kind) = old_create.get("type") {
        creation_content.insert("type".into(), kind.clone());
    }
    let privileged_creators = rules.authorization.explicitly_privilege_room_creators;
    if rules.authorization.additional_room_creators && !additional_creators.is_empty() {
        creation_content.insert("additional_creators".into(), json!(additional_creators));
    }

    let old_levels = rooms::state_content(s, &old_room, &StateEventType::RoomPowerLevels, "")?
        .map(|c| upgrade_levels::normalise(&c));
    let levels = old_levels.clone().map(|mut levels| {
        if privileged_creators {
            let mut creators: Vec<&str> = additional_creators.iter().map(|u| u.as_str()).collect();
            creators.push(user.as_str());
            upgrade_levels::without_users(&mut levels, &creators);
        }
        levels
    });

    let mut state = Vec::new();
    let mut bans = Vec::new();
    let mut invitees = Vec::new();
    let mut canonical_alias = None;
    let mut public_join_rule = false;
    for (key, short_event) in s.state.current_state(short_room)?.iter() {
        let (kind, state_key) = s.short.statekey_of(*key)?;
        let kind = kind.to_string();
        let Some(event) = rooms::event_by_short(s, *short_event, &old_room)? else {
            continue;
        };
        let content = event.pdu.content_value();
        if kind == "m.room.member" {
            match content
                .get("membership")
                .and_then(Value::as_str)
                .and_then(Membership::parse)
            {
                Some(Membership::Ban) => bans.push((state_key, content)),
                Some(Membership::Join | Membership::Invite) if state_key != user.as_str() => {
                    if let Ok(member) = UserId::parse(state_key.as_str()) {
                        invitees.push(member);
                    }
                }
                _ => {}
            }
        } else if kind == "m.room.canonical_alias" && state_key.is_empty() {
            canonical_alias = Some(content);
        } else if COPIED
            .iter()
            .any(|(k, empty_key)| *k == kind && (!empty_key || state_key.is_empty()))
        {
            // A space child or parent with empty content was removed.
            if kind.starts_with("m.space.") && content.as_object().is_none_or(Map::is_empty) {
                continue;
            }
            if kind == "m.room.join_rules" {
                let rule = content
                    .get("join_rule")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                public_join_rule = rule == "public";
                // Found now, not half-way through the upgrade: a join rule the new version lacks.
                let supported = match rule {
                    "knock" => rules.authorization.knocking,
                    "restricted" => rules.authorization.restricted_join_rule,
                    "knock_restricted" => rules.authorization.knock_restricted_join_rule,
                    _ => true,
                };
                if !supported {
                    return Err(Error::unsupported_room_version(format!(
                        "room version {version} has no {rule} join rule"
                    )));
                }
            }
            state.push((kind, state_key, content));
        }
    }
    // The join rule first (the preset is chosen from it), then the rest in a stable order.
    state.sort_by(|a, b| {
        (a.0 != "m.room.join_rules", &a.0, &a.1).cmp(&(b.0 != "m.room.join_rules", &b.0, &b.1))
    });
    // Anyone may join a public room by following the tombstone; other rooms need an invite.
    if public_join_rule {
        invitees.clear();
    }
    Ok(Plan {
        user,
        old_room,
        version,
        creation_content,
        levels,
        old_levels,
        state,
        public_join_rule,
        bans,
        invitees,
        canonical_alias,
    })
}

/// Creates the new room with the old room's state, sends the tombstone, copies the bans, moves
/// the aliases and the directory entry, invites this server's members; returns the new room and
/// the members of other servers to invite.
fn replace(s: &Services, plan: &Plan) -> Result<(OwnedRoomId, Vec<OwnedUserId>)> {
    let rules = version::rules(&plan.version)?;
    let mut creation_content = plan.creation_content.clone();
    let mut predecessor = json!({ "room_id": plan.old_room });
    // A room id that is its create event's hash is known only once the room exists: the tombstone
    // comes after, and the predecessor names no event (as `event_id` is deprecated since v1.16).
    // Otherwise the id is chosen first and the predecessor names the tombstone.
    let (room_id, tombstone) = if rules.authorization.room_create_event_id_as_room_id {
        (None, None)
    } else {
        let room_id = create::random_room_id(s);
        let tombstone = send_tombstone(s, plan, &room_id)?;
        predecessor["event_id"] = json!(tombstone);
        (Some(room_id), Some(tombstone))
    };
    creation_content.insert("predecessor".into(), predecessor);

    let new_room = create::create_room(
        s,
        &plan.user,
        CreateRoom {
            version: Some(plan.version.clone()),
            preset: Some(if plan.public_join_rule {
                Preset::PublicChat
            } else {
                Preset::PrivateChat
            }),
            creation_content: Some(creation_content),
            // A creator of a version that privileges creators needs no level (and may not have one).
            power_levels: plan.levels.as_ref().map(|levels| {
                match rules.authorization.explicitly_privilege_room_creators {
                    true => levels.clone(),
                    false => upgrade_levels::raised_for(levels, plan.user.as_str())
                        .unwrap_or_else(|| levels.clone()),
                }
            }),
            initial_state: plan.state.clone(),
            room_id,
            ..Default::default()
        },
    )?;
    if tombstone.is_none() {
        send_tombstone(s, plan, &new_room)?;
    }

    for (target, content) in &plan.bans {
        send(
            s,
            &new_room,
            &plan.user,
            NewEvent::state(StateEventType::RoomMember, target.clone(), content.clone()),
        )?;
    }

    move_aliases(s, plan, &new_room)?;

    let mut remote = Vec::new();
    for invitee in &plan.invitees {
        if invitee.server_name() != s.globals.server_name() {
            remote.push(invitee.clone());
        } else if s.users.is_active(invitee)?
            && let Err(e) = set_membership(s, &new_room, &plan.user, invitee, "invite", None, None)
        {
            tracing::warn!(
                "room upgrade of {}: inviting {invitee}: {}",
                plan.old_room,
                e.message
            );
        }
    }
    Ok((new_room, remote))
}

fn send_tombstone(s: &Services, plan: &Plan, replacement: &RoomId) -> Result<OwnedEventId> {
    let content = json!({ "body": "This room has been replaced", "replacement_room": replacement });
    send(
        s,
        &plan.old_room,
        &plan.user,
        NewEvent::state(StateEventType::RoomTombstone, "", content),
    )
}

/// This server's aliases and the directory entry move to the new room; the canonical alias
/// event's aliases of this server move with them (others stay in the old room's event).
fn move_aliases(s: &Services, plan: &Plan, new_room: &RoomId) -> Result<()> {
    s.directory.move_room(&plan.old_room, new_room)?;
    let Some(old) = &plan.canonical_alias else {
        return Ok(());
    };
    let ours = |a: &Value| {
        a.as_str()
            .and_then(|a| ruma::RoomAliasId::parse(a).ok())
            .is_some_and(|a| a.server_name() == s.globals.server_name())
    };
    let mut old_content = old.as_object().cloned().unwrap_or_default();
    let mut new_content = Map::new();
    if let Some(alias) = old_content.get("alias").filter(|a| ours(a)).cloned() {
        old_content.remove("alias");
        new_content.insert("alias".into(), alias);
    }
    if let Some(alt) = old_content
        .get("alt_aliases")
        .and_then(Value::as_array)
        .cloned()
    {
        let (moved, kept): (Vec<Value>, Vec<Value>) = alt.into_iter().partition(|a| ours(a));
        if !moved.is_empty() {
            new_content.insert("alt_aliases".into(), Value::Array(moved));
            old_content.insert("alt_aliases".into(), Value::Array(kept));
        }
    }
    if new_content.is_empty() {
        return Ok(());
    }
    let event = |content: Map<String, Value>| {
        NewEvent::state(
            StateEventType::RoomCanonicalAlias,
            "",
            Value::Object(content),
        )
    };
    // The old room's event may need more power than the tombstone: kept as it is then.
    if let Err(e) = send(s, &plan.old_room, &plan.user, event(old_content)) {
        tracing::warn!(
            "room upgrade of {}: canonical alias of the old room: {}",
            plan.old_room,
            e.message
        );
    }
    send(s, new_room, &plan.user, event(new_content))?;
    Ok(())
}

/// The upgrader's settings follow the room, the new room gets the old room's levels (the
/// upgrader's temporary power ends) and the old room's levels stop ordinary messages and invites.
fn finish(s: &Services, plan: &Plan, new_room: &RoomId) -> Result<()> {
    if let Err(e) = upgrade_user_state::copy(s, &plan.user, &plan.old_room, new_room) {
        tracing::warn!(
            "room upgrade of {}: the upgrader's settings: {}",
            plan.old_room,
            e.message
        );
    }
    if let Some(levels) = &plan.levels {
        send(
            s,
            new_room,
            &plan.user,
            NewEvent::state(
                StateEventType::RoomPowerLevels,
                "",
                Value::Object(levels.clone()),
            ),
        )?;
    }
    if let Some(restricted) = plan
        .old_levels
        .as_ref()
        .and_then(upgrade_levels::restricted)
    {
        let event = NewEvent::state(
            StateEventType::RoomPowerLevels,
            "",
            Value::Object(restricted),
        );
        // The upgrader may send a tombstone but not change the levels: they stay then.
        if let Err(e) = send(s, &plan.old_room, &plan.user, event) {
            tracing::warn!(
                "room upgrade of {}: restricting the old room's levels: {}",
                plan.old_room,
                e.message
            );
        }
    }
    Ok(())
}

/// Servers that may let `user` into `room`, a replacement room: the senders' servers of the
/// tombstones pointing to it in the rooms the user is in (a v12 room id names no server, and a
/// client following a tombstone may give none).
pub fn tombstone_servers(
    s: &Services,
    user: &UserId,
    room: &RoomId,
) -> Result<Vec<OwnedServerName>> {
    let mut servers = Vec::new();
    for joined in s.membership.joined_room_ids(user)? {
        if let Some(tombstone) = rooms::state_event(s, &joined, &StateEventType::RoomTombstone, "")?
            && tombstone
                .pdu
                .content_field("replacement_room")
                .and_then(|r| r.as_str().map(str::to_owned))
                .as_deref()
                == Some(room.as_str())
        {
            servers.push(tombstone.pdu.sender.server_name().to_owned());
        }
    }
    Ok(servers)
}
