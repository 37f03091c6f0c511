//! `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}` (spec v1.15, MSC3266; also the unstable
//! `im.nheko.summary` paths Synapse serves): the preview of a room shown before joining it. A room
//! this server is in is summarised from its current state; another is asked of the servers in
//! `via` (or the room id's or alias's server) with the federation space hierarchy API, as Synapse
//! does. Visible only as the spec allows: world readable, or a public / knock join rule, or (for a
//! user of ours) joined, invited, knocking, or allowed by a restricted rule; anything else is 404,
//! the same answer as for an unknown room. `membership` is the asker's (absent without a token).

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    OwnedRoomAliasId, OwnedRoomId, OwnedServerName,
    api::client::room::get_summary,
    events::room::member::MembershipState,
    room::{JoinRuleSummary, RoomSummary},
};

use crate::{
    api::{
        always_sent::{self, Filled},
        ruma_wrapper::Ruma,
    },
    error::{Error, Result},
    federation::{hierarchy::ask, join::remote::resolve_remote_alias},
    services::{
        Services,
        rooms::{
            hierarchy::{Viewer, local_summary, may_see},
            membership::Membership,
        },
    },
};

fn not_found() -> Error {
    Error::not_found("Room not found or is not accessible")
}

/// Whether anyone may see the summary (no token needed): world readable, public or knockable.
fn open_to_all(summary: &RoomSummary) -> bool {
    summary.world_readable
        || matches!(
            summary.join_rule,
            JoinRuleSummary::Public | JoinRuleSummary::Knock | JoinRuleSummary::KnockRestricted(_)
        )
}

pub async fn summary(
    State(services): State<Arc<Services>>,
    req: Ruma<get_summary::v1::Request>,
) -> Result<Filled<get_summary::v1::Response>> {
    let user = req.user.clone();
    let mut via: Vec<OwnedServerName> = req.body.via.clone();
    let target = req.body.room_id_or_alias.as_str().to_owned();
    let room_id: OwnedRoomId = match OwnedRoomAliasId::try_from(target.as_str()) {
        Ok(alias) if alias.server_name() != services.globals.server_name() => {
            let (room_id, servers) = resolve_remote_alias(&services, &alias)
                .await
                .map_err(|_| not_found())?;
            via.extend(servers);
            room_id
        }
        Ok(alias) => {
            services
                .run(move |s| Ok(s.directory.resolve(&alias)?.ok_or_else(not_found)?.room_id))
                .await?
        }
        Err(_) => OwnedRoomId::try_from(target.as_str())
            .map_err(|_| Error::invalid_param("Invalid room id or alias"))?,
    };
    let (room, asker) = (room_id.clone(), user.clone());
    let (local, membership) = services
        .run(move |s| {
            let local = local_summary(s, &room)?.map(|l| l.summary);
            let membership = match &asker {
                Some(user) => s.membership.user_room(user, &room)?.map(|r| r.membership),
                None => None,
            };
            Ok((local, membership))
        })
        .await?;
    let summary = match local {
        Some(summary) => summary,
        None => {
            if let Some(server) = room_id.server_name() {
                via.push(server.to_owned());
            }
            via.dedup();
            let answer = ask(&services, &room_id, &via, false)
                .await
                .ok_or_else(not_found)?;
            answer.room.summary.clone()
        }
    };
    let visible = match user.clone() {
        None => open_to_all(&summary),
        Some(user) => {
            let checked = summary.clone();
            membership == Some(Membership::Knock)
                || services
                    .run(move |s| may_see(s, &checked, Viewer::User(&user)))
                    .await?
        }
    };
    if !visible {
        return Err(not_found());
    }
    let mut response = get_summary::v1::Response::new(summary);
    if user.is_some() {
        response.membership = Some(MembershipState::from(
            membership.map_or("leave", Membership::as_str),
        ));
    }
    Ok(Filled::new(response, always_sent::room_summary))
}
