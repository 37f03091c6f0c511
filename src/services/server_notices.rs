//! Server notices (Synapse's `server_notices`): messages from the server to a user, in a room the
//! notices user makes for them, tagged `m.server_notice` on the user's side so clients show it
//! apart. The user is invited (or, with `auto_join`, joined) and may read and leave, but not post:
//! the room's `users_default` is -10. A user who left gets a new room with the next notice. Sent by
//! `POST|PUT /_synapse/admin/v1/send_server_notice`.

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{
            create::{CreateRoom, Preset, create_room},
            membership::Membership,
            set_membership,
        },
        timeline::append::{NewEvent, Target, Txn, append_local},
    },
    storage::Map as StoreMap,
};

/// user id → room id: the user's notices room.
pub const NOTICE_ROOMS: StoreMap = StoreMap("server_notice_rooms");
pub const MAPS: &[StoreMap] = &[NOTICE_ROOMS];

/// The tag of notices rooms (on the user's room account data).
pub const TAG: &str = "m.server_notice";

/// `[server_notices]` (Synapse's section). Without `system_mxid_localpart`, notices are off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerNoticesConfig {
    /// The localpart of the user notices come from (created at start).
    pub system_mxid_localpart: Option<String>,
    pub system_mxid_display_name: Option<String>,
    pub system_mxid_avatar_url: Option<String>,
    pub room_name: String,
    pub room_topic: Option<String>,
    pub room_avatar_url: Option<String>,
    /// Join the user to a new notices room instead of inviting them.
    pub auto_join: bool,
}

impl Default for ServerNoticesConfig {
    fn default() -> Self {
        Self {
            system_mxid_localpart: None,
            system_mxid_display_name: None,
            system_mxid_avatar_url: None,
            room_name: "Server Notices".into(),
            room_topic: None,
            room_avatar_url: None,
            auto_join: false,
        }
    }
}

/// The notices user, when notices are on.
pub fn notices_user(s: &Services) -> Option<OwnedUserId> {
    let localpart = s.config().server_notices.system_mxid_localpart.as_deref()?;
    OwnedUserId::try_from(format!("@{localpart}:{}", s.config().server_name)).ok()
}

/// At start: the notices user exists, with its display name and avatar.
pub fn ensure_user(s: &Services) -> Result<()> {
    let Some(user) = notices_user(s) else {
        return Ok(());
    };
    let config = &s.config().server_notices;
    if s.users.ensure_exists(&user)? {
        tracing::info!("created {user}, the server notices user");
    }
    let (name, avatar) = (
        config.system_mxid_display_name.clone(),
        config.system_mxid_avatar_url.clone(),
    );
    s.users.set_profile(&user, |a| {
        if name.is_some() {
            a.displayname = name;
        }
        if avatar.is_some() {
            a.avatar_url = avatar;
        }
    })?;
    Ok(())
}

/// Sends a notice (`kind`, a state event when `state_key` is given) to a local user; `txn`
/// makes a retried request give the same event.
pub fn send(
    s: &Services,
    user: &UserId,
    kind: &str,
    state_key: Option<String>,
    content: Map<String, Value>,
    txn: Option<String>,
) -> Result<OwnedEventId> {
    let notices = notices_user(s)
        .ok_or_else(|| Error::invalid_param("Server notices are not enabled on this server"))?;
    if user.server_name() != s.config().server_name {
        return Err(Error::invalid_param(
            "Server notices can only be sent to local users",
        ));
    }
    if !s.users.exists(user)? {
        return Err(Error::not_found("Unknown user"));
    }
    let room = notice_room(s, &notices, user)?;
    let content = Value::Object(content);
    let event = match state_key {
        Some(key) => NewEvent::state(kind.into(), key, content),
        None => NewEvent::message(kind.into(), content),
    };
    let txn = txn.map(|txn_id| Txn {
        device: "server_notices".into(),
        txn_id,
    });
    Ok(append_local(s, Target::Room(&room), &notices, event, txn)?.0)
}

/// The user's notices room: the recorded one while the user is invited or joined to it, else a
/// new one.
fn notice_room(s: &Services, notices: &UserId, user: &UserId) -> Result<OwnedRoomId> {
    if let Some(bytes) = s.globals.db.get(NOTICE_ROOMS, user.as_bytes())?
        && let Ok(room) = OwnedRoomId::try_from(String::from_utf8_lossy(&bytes).as_ref())
        && let Some(short) = s.short.room(&room)?
        && matches!(
            s.membership.membership(short, user)?,
            Some(Membership::Join | Membership::Invite)
        )
    {
        return Ok(room);
    }
    let config = &s.config().server_notices;
    let mut initial_state = Vec::new();
    if let Some(url) = &config.room_avatar_url {
        initial_state.push(("m.room.avatar".into(), String::new(), json!({ "url": url })));
    }
    let mut power = Map::new();
    power.insert("users_default".into(), json!(-10));
    let room = create_room(
        s,
        notices,
        CreateRoom {
            preset: Some(Preset::PrivateChat),
            name: Some(config.room_name.clone()),
            topic: config.room_topic.clone(),
            power_level_override: Some(power),
            initial_state,
            invite: vec![user.to_owned()],
            ..Default::default()
        },
    )?;
    if config.auto_join {
        set_membership(s, &room, user, user, "join", None, None)?;
    }
    s.account_data.set(
        &s.globals,
        user,
        Some(&room),
        "m.tag",
        &json!({ "tags": { TAG: {} } }),
    )?;
    s.globals
        .db
        .put(NOTICE_ROOMS, user.as_bytes(), room.as_bytes())?;
    Ok(room)
}
