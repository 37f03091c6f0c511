//! Room creation: the create event, the creator's join, power levels, presets, initial state,
//! name, topic, alias and invites, in the order the spec gives.

use ruma::{
    OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomVersionId, UserId, events::StateEventType,
};
use serde_json::{Map, Value, json};

use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{send, set_membership, version},
        timeline::append::{NewEvent, Target, append_local},
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    PrivateChat,
    TrustedPrivateChat,
    PublicChat,
}

#[derive(Debug, Default)]
pub struct CreateRoom {
    pub version: Option<RoomVersionId>,
    pub preset: Option<Preset>,
    /// Published in the room directory.
    pub public: bool,
    pub creation_content: Option<Map<String, Value>>,
    pub power_level_override: Option<Map<String, Value>>,
    /// (type, state_key, content).
    pub initial_state: Vec<(String, String, Value)>,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub alias_localpart: Option<String>,
    pub invite: Vec<OwnedUserId>,
    pub is_direct: bool,
    /// The room id, chosen beforehand (room versions whose ids are not the create event's hash;
    /// a room upgrade names the new room in its tombstone first). Ignored by other versions.
    pub room_id: Option<OwnedRoomId>,
    /// The whole first power levels content, instead of the defaults and the preset's (a room
    /// upgrade copies the old room's).
    pub power_levels: Option<Map<String, Value>>,
}

/// A random room id of this server (room versions whose ids are not the create event's hash).
pub fn random_room_id(s: &Services) -> OwnedRoomId {
    OwnedRoomId::try_from(format!(
        "!{}:{}",
        crate::util::random_string(18),
        s.globals.server_name()
    ))
    .expect("valid room id")
}

pub fn create_room(s: &Services, creator: &UserId, req: CreateRoom) -> Result<OwnedRoomId> {
    let version = req
        .version
        .clone()
        .unwrap_or_else(|| s.globals.config.rooms.default_version.clone());
    let rules = version::rules(&version)?;
    let preset = req.preset.unwrap_or(if req.public {
        Preset::PublicChat
    } else {
        Preset::PrivateChat
    });

    let alias = match &req.alias_localpart {
        Some(local) => {
            let alias = OwnedRoomAliasId::try_from(format!("#{local}:{}", s.globals.server_name()))
                .map_err(|_| Error::invalid_param("Invalid room_alias_name"))?;
            if s.directory.resolve(&alias)?.is_some() {
                return Err(Error::room_in_use("Room alias already taken"));
            }
            Some(alias)
        }
        None => None,
    };
    for (kind, _, _) in &req.initial_state {
        if kind == "m.room.create" || kind == "m.room.member" {
            return Err(Error::bad_json(format!(
                "initial_state may not contain {kind}"
            )));
        }
    }

    // 1. m.room.create
    let mut create = req.creation_content.clone().unwrap_or_default();
    create.insert("room_version".into(), json!(version.as_str()));
    let invitees_are_creators = preset == Preset::TrustedPrivateChat
        && rules.authorization.additional_room_creators
        && !req.invite.is_empty();
    if invitees_are_creators {
        let mut creators: Vec<Value> = create
            .get("additional_creators")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for invitee in &req.invite {
            if !creators
                .iter()
                .any(|c| c.as_str() == Some(invitee.as_str()))
            {
                creators.push(json!(invitee));
            }
        }
        create.insert("additional_creators".into(), Value::Array(creators));
    }
    if !rules.authorization.use_room_create_sender {
        create.insert("creator".into(), json!(creator));
    } else {
        create.remove("creator");
    }
    let room_id_for_old = (!rules.authorization.room_create_event_id_as_room_id)
        .then(|| req.room_id.clone().unwrap_or_else(|| random_room_id(s)));
    let (_, room_id) = append_local(
        s,
        Target::NewRoom {
            version: version.clone(),
            room_id: room_id_for_old,
        },
        creator,
        NewEvent::state(StateEventType::RoomCreate, "", Value::Object(create)),
        None,
    )?;

    // 2. The creator joins.
    set_membership(s, &room_id, creator, creator, "join", None, None)?;

    // 3. Power levels.
    let mut users = Map::new();
    if !rules.authorization.explicitly_privilege_room_creators {
        users.insert(creator.to_string(), json!(100));
    }
    if preset == Preset::TrustedPrivateChat && !invitees_are_creators {
        for invitee in &req.invite {
            users.insert(invitee.to_string(), json!(100));
        }
    }
    let mut power_levels = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": if preset == Preset::PublicChat { 0 } else { 50 },
        "notifications": { "room": 50 },
    });
    // From room version 12 the tombstone (an upgrade) needs a level explicitly above the other
    // admin-only state (the spec's createRoom: 150 rather than 100); creators, whose power is
    // infinite, can always send it.
    if rules.authorization.explicitly_privilege_room_creators {
        power_levels["events"]["m.room.tombstone"] = json!(150);
    }
    if let Some(over) = &req.power_level_override {
        for (k, v) in over {
            power_levels[k] = v.clone();
        }
    }
    if let Some(levels) = &req.power_levels {
        power_levels = Value::Object(levels.clone());
    }
    send(
        s,
        &room_id,
        creator,
        NewEvent::state(StateEventType::RoomPowerLevels, "", power_levels),
    )?;

    // 4. Canonical alias.
    if let Some(alias) = &alias {
        s.directory.set_alias(alias, &room_id, creator)?;
        send(
            s,
            &room_id,
            creator,
            NewEvent::state(
                StateEventType::RoomCanonicalAlias,
                "",
                json!({ "alias": alias }),
            ),
        )?;
    }

    // 5. Preset state, unless initial_state sets the same.
    let overridden = |kind: &str| {
        req.initial_state
            .iter()
            .any(|(k, sk, _)| k == kind && sk.is_empty())
    };
    let join_rule = if preset == Preset::PublicChat {
        "public"
    } else {
        "invite"
    };
    let guest = if preset == Preset::PublicChat {
        "forbidden"
    } else {
        "can_join"
    };
    for (kind, content) in [
        ("m.room.join_rules", json!({ "join_rule": join_rule })),
        (
            "m.room.history_visibility",
            json!({ "history_visibility": "shared" }),
        ),
        ("m.room.guest_access", json!({ "guest_access": guest })),
    ] {
        if !overridden(kind) {
            send(
                s,
                &room_id,
                creator,
                NewEvent::state(kind.into(), "", content),
            )?;
        }
    }

    // 6. initial_state.
    for (kind, state_key, content) in &req.initial_state {
        send(
            s,
            &room_id,
            creator,
            NewEvent::state(kind.as_str().into(), state_key.clone(), content.clone()),
        )?;
    }

    // 7. Name and topic.
    if let Some(name) = &req.name {
        send(
            s,
            &room_id,
            creator,
            NewEvent::state(StateEventType::RoomName, "", json!({ "name": name })),
        )?;
    }
    if let Some(topic) = &req.topic {
        send(
            s,
            &room_id,
            creator,
            NewEvent::state(StateEventType::RoomTopic, "", json!({ "topic": topic })),
        )?;
    }

    // 8. Invites.
    for invitee in &req.invite {
        let mut extra = Map::new();
        if req.is_direct {
            extra.insert("is_direct".into(), json!(true));
        }
        set_membership(s, &room_id, creator, invitee, "invite", None, Some(extra))?;
    }

    if req.public {
        s.directory.set_public(&room_id, true)?;
    }
    Ok(room_id)
}
