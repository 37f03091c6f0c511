//! Jump to date across servers: asking the room's other servers for the event closest to a time
//! (`GET /_matrix/federation/v1/timestamp_to_event/{roomId}`) when our own history does not reach
//! it, and fetching older history (backfill) so that the event they name is ours to serve.

use std::sync::Arc;

use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedServerName, api::Direction,
    api::federation::event::get_event_by_timestamp,
};

use crate::{federation::request::send, services::Services};

/// Rounds of backfill tried to bring the event a server named into our history.
const BACKFILL_ROUNDS: usize = 5;

/// What a server answered.
#[derive(Debug, Clone)]
pub struct RemoteFound {
    pub event_id: OwnedEventId,
    pub origin_server_ts: u64,
}

/// Asks `servers` in turn; the first answer wins (`None`: none had one).
pub async fn ask(
    services: &Arc<Services>,
    room_id: &OwnedRoomId,
    ts: u64,
    forward: bool,
    servers: &[OwnedServerName],
) -> Option<RemoteFound> {
    let dir = if forward {
        Direction::Forward
    } else {
        Direction::Backward
    };
    let ts_ms = MilliSecondsSinceUnixEpoch(ruma::UInt::new_saturating(ts));
    for server in servers
        .iter()
        .filter(|s| *s != services.globals.server_name())
    {
        let request = get_event_by_timestamp::v1::Request::new(room_id.clone(), ts_ms, dir);
        match send(services, server, request).await {
            Ok(answer) => {
                return Some(RemoteFound {
                    event_id: answer.event_id,
                    origin_server_ts: answer.origin_server_ts.get().into(),
                });
            }
            Err(e) => tracing::info!(
                "timestamp_to_event of {room_id} from {server}: {} {}",
                e.errcode,
                e.message
            ),
        }
    }
    None
}

/// Backfills the room (a few rounds) until `event_id` is part of our history; returns whether it is.
pub async fn fetch_into_history(
    services: &Arc<Services>,
    room_id: &OwnedRoomId,
    event_id: &OwnedEventId,
) -> bool {
    let known = |services: &Arc<Services>| {
        let id = event_id.clone();
        let services = services.clone();
        async move {
            services
                .run(move |s| Ok(crate::federation::backfill::frontier::known(s, &id)))
                .await
                .unwrap_or(false)
        }
    };
    for _ in 0..BACKFILL_ROUNDS {
        if known(services).await {
            return true;
        }
        match crate::federation::backfill::fill(services, room_id).await {
            Ok(true) => {}
            _ => break,
        }
    }
    known(services).await
}
