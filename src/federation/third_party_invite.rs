//! Third-party invites turned into invites once the invitee binds the identifier: the identity
//! server calls `PUT /_matrix/federation/v1/3pid/onbind` on the invitee's server (`on_bind`),
//! which asks the inviter's server with `PUT /_matrix/federation/v1/exchange_third_party_invite`
//! (or does it itself when it is in the room); that server (`exchange`) builds the invite with
//! the `third_party_invite` content, whose `signed` block ruma's authorization rules check against
//! the public keys of the room's `m.room.third_party_invite` event, and invites the user.

use std::sync::Arc;

use ruma::{OwnedRoomId, OwnedUserId, events::StateEventType};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    federation::request::call,
    services::{Services, rooms, timeline::append::NewEvent},
    util::encode_segment,
};

/// The resident (inviting) server's side: checks the partial member event and invites the user.
/// `content` is `{membership: invite, third_party_invite: {signed: {mxid, token, signatures}}}`;
/// its `display_name` is taken from our `m.room.third_party_invite` event.
pub async fn exchange(
    services: &Arc<Services>,
    room_id: OwnedRoomId,
    sender: OwnedUserId,
    invitee: OwnedUserId,
    mut content: Value,
) -> Result<()> {
    if sender.server_name() != services.globals.server_name() {
        return Err(Error::forbidden("The inviter is not a user of this server"));
    }
    if content.get("membership").and_then(Value::as_str) != Some("invite") {
        return Err(Error::bad_json("The member event must be an invite"));
    }
    let signed = content
        .pointer("/third_party_invite/signed")
        .filter(|v| v.is_object())
        .cloned();
    let signed = signed.ok_or_else(|| Error::bad_json("third_party_invite.signed is missing"))?;
    if signed.get("mxid").and_then(Value::as_str) != Some(invitee.as_str()) {
        return Err(Error::bad_json("The signed mxid is not the invitee"));
    }
    let token = signed
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_json("The signed block has no token"))?
        .to_owned();
    let (room, s_user) = (room_id.clone(), sender.clone());
    let display_name = services
        .run(move |s| {
            let short = rooms::short_room(s, &room)?;
            if !s.membership.is_joined(short, &s_user)? {
                return Err(Error::forbidden("The inviter is not in the room"));
            }
            let invite =
                rooms::state_content(s, &room, &StateEventType::RoomThirdPartyInvite, &token)?
                    .ok_or_else(|| {
                        Error::forbidden("No third-party invite of this room has this token")
                    })?;
            Ok(invite.get("display_name").cloned().unwrap_or(json!("")))
        })
        .await?;
    content = json!({
        "membership": "invite",
        "third_party_invite": { "display_name": display_name, "signed": signed },
    });
    if invitee.server_name() != services.globals.server_name() {
        return crate::federation::invite::invite_remote_with(
            services, room_id, sender, invitee, content,
        )
        .await;
    }
    services
        .run(move |s| {
            super::identity::check_local_invitee(s, &room_id, &invitee)?;
            rooms::send(
                s,
                &room_id,
                &sender,
                NewEvent::state(StateEventType::RoomMember, invitee.as_str(), content),
            )?;
            Ok(())
        })
        .await
}

/// One pending invite of an `onbind` call.
#[derive(Debug, Clone, serde::Deserialize)]
struct BoundInvite {
    mxid: OwnedUserId,
    room_id: OwnedRoomId,
    sender: OwnedUserId,
    signed: Value,
}

/// `PUT /_matrix/federation/v1/3pid/onbind` (from an identity server, unauthenticated): the
/// identifier is now bound to `mxid`, one of our users; each pending invite is exchanged, by us
/// when we are in the room and the inviter is ours, else by the inviter's server. Answers the
/// first error when an invite could not be exchanged (the others are still tried).
pub async fn on_bind(services: &Arc<Services>, body: &Value) -> Result<()> {
    let mxid = body
        .get("mxid")
        .and_then(Value::as_str)
        .and_then(|m| OwnedUserId::try_from(m).ok())
        .ok_or_else(|| Error::bad_json("mxid is missing or invalid"))?;
    if mxid.server_name() != services.globals.server_name() {
        return Err(Error::invalid_param(
            "The user is not a user of this server",
        ));
    }
    let invites: Vec<BoundInvite> =
        serde_json::from_value(body.get("invites").cloned().unwrap_or(json!([])))
            .map_err(|e| Error::bad_json(format!("invalid invites: {e}")))?;
    let mut first_error = None;
    for invite in invites.into_iter().filter(|i| i.mxid == mxid) {
        let content = json!({
            "membership": "invite",
            // The inviting server replaces it with the display name of its m.room.third_party_invite.
            "third_party_invite": { "display_name": "", "signed": invite.signed },
        });
        let result = if invite.sender.server_name() == services.globals.server_name() {
            exchange(
                services,
                invite.room_id.clone(),
                invite.sender.clone(),
                mxid.clone(),
                content,
            )
            .await
        } else {
            let body = json!({
                "type": "m.room.member",
                "room_id": invite.room_id,
                "sender": invite.sender,
                "state_key": mxid,
                "content": content,
            });
            let path = format!(
                "/_matrix/federation/v1/exchange_third_party_invite/{}",
                encode_segment(invite.room_id.as_str())
            );
            call(
                services,
                invite.sender.server_name(),
                http::Method::PUT,
                &path,
                Some(&body),
            )
            .await
            .map(|_| ())
        };
        if let Err(e) = result {
            tracing::info!(
                "third-party invite of {mxid} to {}: {} {}",
                invite.room_id,
                e.errcode,
                e.message
            );
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
