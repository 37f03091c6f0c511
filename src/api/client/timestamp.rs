//! `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`: jump to date. The closest event
//! of our history (the time index, `services/time_index`); when our history may not reach that
//! time (no event found, or history missing between the time and the event found), the room's
//! other servers are asked (`federation/timestamp`) and a closer event they name is backfilled.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    MilliSecondsSinceUnixEpoch, UInt,
    api::{Direction, client::room::get_event_by_timestamp},
};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    federation::{sender::servers_in_room, timestamp},
    services::{
        Services,
        time_index::lookup::{closest, next_to_backward_gap},
        timeline::visibility::may_read_room,
    },
};

pub async fn timestamp_to_event(
    State(services): State<Arc<Services>>,
    req: Ruma<get_event_by_timestamp::v1::Request>,
) -> Result<RumaResponse<get_event_by_timestamp::v1::Response>> {
    let user = req.user()?.clone();
    let room_id = req.body.room_id;
    let ts: u64 = req.body.ts.get().into();
    let forward = req.body.dir == Direction::Forward;
    let room = room_id.clone();
    let (local, gap, servers) = services
        .run(move |s| {
            let forbidden =
                || Error::forbidden("You are not in the room and it is not world readable");
            let short = s.short.room(&room)?.ok_or_else(forbidden)?;
            if !may_read_room(s, &user, short)? {
                return Err(forbidden());
            }
            let local = closest(s, short, &room, ts, forward)?;
            // Events may hide between the time and the event found: before it (going forward), or
            // anywhere when nothing was found. Going backward our history is contiguous up to now.
            let gap = match &local {
                None => true,
                Some(found) if forward => next_to_backward_gap(s, found)?,
                Some(_) => false,
            };
            let servers = if gap {
                servers_in_room(s, short)?.iter().cloned().collect()
            } else {
                Vec::new()
            };
            Ok((local, gap, servers))
        })
        .await?;
    let distance = |event_ts: u64| event_ts.abs_diff(ts);
    if gap && let Some(remote) = timestamp::ask(&services, &room_id, ts, forward, &servers).await {
        let closer = local
            .as_ref()
            .is_none_or(|l| distance(remote.origin_server_ts) < distance(l.origin_server_ts));
        if closer {
            timestamp::fetch_into_history(&services, &room_id, &remote.event_id).await;
            let at = MilliSecondsSinceUnixEpoch(UInt::new_saturating(remote.origin_server_ts));
            return Ok(get_event_by_timestamp::v1::Response::new(remote.event_id, at).into());
        }
    }
    let found = local.ok_or_else(|| {
        Error::not_found(format!(
            "Unable to find event from {ts} in direction {}",
            if forward { "f" } else { "b" }
        ))
    })?;
    let at = MilliSecondsSinceUnixEpoch(UInt::new_saturating(found.origin_server_ts));
    Ok(get_event_by_timestamp::v1::Response::new(found.event_id, at).into())
}
