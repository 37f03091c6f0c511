//! An event of a room joined with partial state may name auth events this server never received
//! (the sender's membership was among the members the resident left out): they are fetched from
//! the event's origin (`/event_auth`), checked like any event (signatures, hashes, room),
//! authorised against their own auth events, and kept as outliers, before the event is checked.

use std::sync::Arc;

use ruma::{OwnedRoomId, RoomVersionId, ServerName};

use super::pdu_checks::{self, CheckedPdu};
use crate::{
    error::Result,
    federation::{
        join::{outliers, remote::check_field},
        request::call,
    },
    services::{Services, rooms::version},
    util::encode_segment,
};

/// Fetches and stores the auth events of `event` we lack, when its room's state is partial.
pub async fn fetch_unknown_auth_events(
    services: &Arc<Services>,
    origin: &ServerName,
    room_id: &OwnedRoomId,
    version: &RoomVersionId,
    event: &CheckedPdu,
) -> Result<()> {
    let (room, auth_events) = (room_id.clone(), event.pdu.auth_events.clone());
    let needed = services
        .run(move |s| {
            let Some(short_room) = s.short.room(&room)? else {
                return Ok(false);
            };
            if !s.partial_state.is_partial(short_room)? {
                return Ok(false);
            }
            for id in &auth_events {
                let known = match s.short.event(id)? {
                    Some(short) => s.timeline.meta(short)?.is_some(),
                    None => false,
                };
                if !known {
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .await?;
    if !needed {
        return Ok(());
    }
    let path = format!(
        "/_matrix/federation/v1/event_auth/{}/{}",
        encode_segment(room_id.as_str()),
        encode_segment(event.event_id.as_str())
    );
    let answer = call(services, origin, http::Method::GET, &path, None).await?;
    let checked = check_field(services, &answer, "auth_chain", room_id, version).await;
    let (room, version) = (room_id.clone(), version.clone());
    services
        .run_heavy(move |s| {
            let rules = version::rules(&version)?;
            let kept = pdu_checks::authorised_subset(s, checked, &rules);
            s.globals.commit(|c| {
                let short_room = outliers::room_short(s, c, &room)?;
                for event in &kept {
                    outliers::store(s, c, short_room, event)?;
                }
                Ok(())
            })?;
            Ok(())
        })
        .await
}
