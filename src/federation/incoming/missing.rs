//! Filling a gap before a received event: its missing prev events are asked from the origin
//! with `get_missing_events` (between our forward extremities and the event) and appended
//! oldest first.

use std::sync::Arc;

use ruma::{OwnedEventId, OwnedRoomId, RoomVersionId, ServerName};
use serde_json::{Value, json};

use super::{pdu_checks, persist};
use crate::{
    error::Result,
    federation::request::call,
    services::{Services, timeline::append::Forward},
};

/// At most this many events are fetched for one gap.
const MAX_MISSING: u64 = 20;

/// Asks `origin` for the events between our extremities and `latest`, and appends those whose
/// prev events we have, oldest first. Errors of single events are logged and skipped.
pub async fn fetch_missing(
    services: &Arc<Services>,
    origin: &ServerName,
    room_id: &OwnedRoomId,
    version: &RoomVersionId,
    latest: &OwnedEventId,
) -> Result<()> {
    let room = room_id.clone();
    let earliest: Vec<OwnedEventId> = services
        .run(move |s| {
            let short = crate::services::rooms::short_room(s, &room)?;
            s.timeline.extremities(short)?.into_iter().map(|e| s.short.event_id(e)).collect()
        })
        .await?;
    let body = json!({
        "earliest_events": earliest,
        "latest_events": [latest],
        "limit": MAX_MISSING,
        "min_depth": 0,
    });
    let path = format!("/_matrix/federation/v1/get_missing_events/{}", encode(room_id.as_str()));
    let answer = call(services, origin, http::Method::POST, &path, Some(&body)).await?;
    let mut events: Vec<(u64, ruma::CanonicalJsonObject)> = Vec::new();
    for raw in answer.get("events").and_then(Value::as_array).into_iter().flatten() {
        let Ok(object) = serde_json::from_value::<ruma::CanonicalJsonObject>(raw.clone()) else { continue };
        let depth = object.get("depth").and_then(|d| d.as_integer()).map_or(0, |d| i64::from(d).max(0) as u64);
        events.push((depth, object));
    }
    events.sort_by_key(|(d, _)| *d);
    for (_, object) in events {
        let checked = match pdu_checks::check_pdu(services, object, room_id.clone(), version.clone()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::info!("missing event from {origin} refused: {}", e.message);
                continue;
            }
        };
        let id = checked.event_id.clone();
        if let Err(e) = services.run(move |s| persist::append_remote(s, checked, Forward::None, false)).await {
            tracing::info!("missing event {id} from {origin} not appended: {}", e.message);
        }
    }
    Ok(())
}

/// Percent-encodes a path segment.
pub fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}
