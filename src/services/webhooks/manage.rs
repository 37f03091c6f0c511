//! Creating, listing and revoking a room's webhooks, for the REST API and the `!webhook`
//! commands alike. Managing needs membership of the room and the power level to send state
//! there (the level of the state event type `im.parvis.webhook`: `state_default` unless the
//! room's power levels name that type).
//!
//! A new webhook gets its own account of this server, `@webhook_<id>`, named after the webhook
//! (no password: nobody logs in as it), invited by the creator and joined to the room; a revoked
//! one leaves the room, and its URL answers 404 from then on.

use ruma::{OwnedUserId, RoomId, UserId};
use serde_json::json;

use super::{Hook, check_name, sha256_hex};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{self, membership::Membership, power},
    },
    util::{now_ms, random_string},
};

/// The state event type whose power level manages webhooks.
pub const MANAGE_EVENT_TYPE: &str = "im.parvis.webhook";

/// Checks that `user` may manage `room_id`'s webhooks: 404 unknown room, 403 not joined or not
/// powerful enough.
pub fn check_may_manage(s: &Services, room_id: &RoomId, user: &UserId) -> Result<()> {
    let Some(short) = s.short.room(room_id)? else {
        return Err(Error::not_found("Unknown room"));
    };
    if !s.membership.is_joined(short, user)? {
        return Err(Error::forbidden("You are not in this room"));
    }
    if !power::can_send_state(s, room_id, user, MANAGE_EVENT_TYPE)? {
        let needed = power::state_level(s, room_id, MANAGE_EVENT_TYPE)?;
        return Err(Error::forbidden(format!(
            "Managing this room's webhooks needs power level {needed} (the level to send state)"
        )));
    }
    Ok(())
}

/// What a new webhook is.
pub struct NewHook<'a> {
    pub name: &'a str,
    /// An `mxc://` URI for the webhook's avatar.
    pub avatar_url: Option<&'a str>,
}

/// Creates a webhook in `room_id` for `creator` (who must be allowed, `check_may_manage`);
/// returns it and the secret of its URL, which is not kept (only its hash).
pub fn create(
    s: &Services,
    room_id: &RoomId,
    creator: &UserId,
    new: NewHook<'_>,
) -> Result<(Hook, String)> {
    check_may_manage(s, room_id, creator)?;
    let name = check_name(new.name)?;
    if let Some(avatar) = new.avatar_url
        && !avatar.starts_with("mxc://")
    {
        return Err(Error::invalid_param("avatar_url must be an mxc:// URI"));
    }
    let webhooks = &s.webhooks;
    let (id, user_id) = new_ids(s)?;
    let secret = random_string(40);
    let hook = Hook {
        id,
        room_id: room_id.to_owned(),
        name,
        user_id,
        secret_sha256: sha256_hex(&secret),
        created_by: creator.to_owned(),
        created_ts: now_ms(),
        revoked_ts: None,
    };
    // The name and the room's count are checked and the hook stored in one step, one room's
    // change at a time across processes; its account and membership follow. Nobody can post
    // to it before this returns (the secret is shown only then); if they fail, it is revoked.
    webhooks.claim(&hook)?;
    let set_up = (|| {
        s.users.create(&hook.user_id, None)?;
        s.users.set_profile(&hook.user_id, |account| {
            account.displayname = Some(hook.name.clone());
            account.avatar_url = new.avatar_url.map(str::to_owned);
        })?;
        join_room(s, room_id, creator, &hook.user_id)
    })();
    if let Err(e) = set_up {
        webhooks.release(room_id, &hook.id, now_ms())?;
        return Err(e);
    }
    tracing::info!(
        "webhook {} ({}) created in {room_id} by {creator}",
        hook.id,
        hook.name
    );
    Ok((hook, secret))
}

/// A fresh hook id and the id of its account (created afterwards, without a password).
fn new_ids(s: &Services) -> Result<(String, OwnedUserId)> {
    for _ in 0..8 {
        let id = random_string(16).to_lowercase();
        let user = OwnedUserId::try_from(format!("@webhook_{id}:{}", s.globals.server_name()))
            .map_err(|e| Error::internal(format!("webhook user id: {e}")))?;
        if !s.users.exists(&user)? && s.webhooks.hook(&id)?.is_none() {
            return Ok((id, user));
        }
    }
    Err(Error::internal("no free webhook id"))
}

/// Brings the webhook's user into the room: joined directly where anyone may join, else invited
/// by the creator first.
fn join_room(s: &Services, room_id: &RoomId, creator: &UserId, user: &UserId) -> Result<()> {
    let public = matches!(
        rooms::restricted::join_rule(s, room_id)?,
        Some(ruma::room::JoinRule::Public)
    );
    if !public {
        rooms::set_membership(s, room_id, creator, user, "invite", None, None)?;
    }
    rooms::set_membership(s, room_id, user, user, "join", None, None)?;
    Ok(())
}

/// Revokes the room's webhook with this id (REST) or name (commands): its URL is dead from now
/// on and its user leaves the room. 404 when the room has no such active webhook.
pub fn revoke(s: &Services, room_id: &RoomId, by: &UserId, id_or_name: &str) -> Result<Hook> {
    check_may_manage(s, room_id, by)?;
    let webhooks = &s.webhooks;
    let hook = webhooks.release(room_id, id_or_name, now_ms())?;
    tracing::info!(
        "webhook {} ({}) in {room_id} revoked by {by}",
        hook.id,
        hook.name
    );
    let short = rooms::short_room(s, room_id)?;
    if s.membership.membership(short, &hook.user_id)? == Some(Membership::Join) {
        rooms::set_membership(
            s,
            room_id,
            &hook.user_id,
            &hook.user_id,
            "leave",
            Some("webhook revoked"),
            None,
        )?;
    }
    Ok(hook)
}

/// The room's active webhooks, for someone who may manage them.
pub fn list(s: &Services, room_id: &RoomId, by: &UserId) -> Result<Vec<Hook>> {
    check_may_manage(s, room_id, by)?;
    s.webhooks.of_room(room_id)
}

/// A webhook as the REST API shows it (never its secret).
pub fn hook_json(hook: &Hook) -> serde_json::Value {
    json!({
        "id": hook.id,
        "room_id": hook.room_id,
        "name": hook.name,
        "user_id": hook.user_id,
        "created_by": hook.created_by,
        "created_ts": hook.created_ts,
    })
}

/// The full URL of a hook path: `listen.public_base_url`, else `https://<server name>`.
pub fn url_of(s: &Services, path: &str) -> String {
    let base = s
        .config()
        .listen
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", s.globals.server_name()));
    format!("{}{path}", base.trim_end_matches('/'))
}
