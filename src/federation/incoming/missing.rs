//! Filling a gap before a received event: its missing prev events are asked from the origin
//! with `get_missing_events` (between our forward extremities and the event) and appended
//! oldest first.

use std::sync::Arc;

use ruma::{OwnedEventId, OwnedRoomId, RoomVersionId, ServerName};
use serde_json::{Value, json};

use super::{pdu_checks, persist, same_room};
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
            s.timeline
                .extremities(short)?
                .into_iter()
                .map(|e| s.short.event_id(e))
                .collect()
        })
        .await?;
    let body = json!({
        "earliest_events": earliest,
        "latest_events": [latest],
        "limit": MAX_MISSING,
        "min_depth": 0,
    });
    let path = format!(
        "/_matrix/federation/v1/get_missing_events/{}",
        crate::util::encode_segment(room_id.as_str())
    );
    let answer = call(services, origin, http::Method::POST, &path, Some(&body)).await?;
    let mut events: Vec<(u64, ruma::CanonicalJsonObject)> = Vec::new();
    for raw in answer
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Ok(object) = serde_json::from_value::<ruma::CanonicalJsonObject>(raw.clone()) else {
            continue;
        };
        let depth = object
            .get("depth")
            .and_then(|d| d.as_integer())
            .map_or(0, |d| i64::from(d).max(0) as u64);
        events.push((depth, object));
    }
    events.sort_by_key(|(d, _)| *d);
    for (_, object) in events {
        let checked =
            match pdu_checks::check_pdu(services, object, room_id.clone(), version.clone()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!("missing event from {origin} refused: {}", e.message);
                    continue;
                }
            };
        let id = checked.event_id.clone();
        // The oldest event of the window usually follows events we still lack: its state comes
        // from the origin's state_ids; the others then follow it.
        let prevs = checked.pdu.prev_events.clone();
        let given = if services
            .run(move |s| persist::missing_prev_events(s, &prevs))
            .await?
            .is_empty()
        {
            None
        } else {
            match state_from_origin(services, origin, room_id, version, &id).await {
                Ok(before) => Some(before),
                Err(e) => {
                    tracing::info!("state_ids for {id} from {origin}: {}", e.message);
                    continue;
                }
            }
        };
        if let Err(e) = services
            .run_heavy(move |s| persist::append_remote_at(s, checked, Forward::None, false, given))
            .await
        {
            tracing::info!(
                "missing event {id} from {origin} not appended: {}",
                e.message
            );
        }
    }
    Ok(())
}

/// The state before `event_id` from `origin` (`state_ids`): the events we lack are fetched with
/// `/event` and stored as outliers; returns the snapshot of that state.
pub async fn state_from_origin(
    services: &Arc<Services>,
    origin: &ServerName,
    room_id: &OwnedRoomId,
    version: &RoomVersionId,
    event_id: &OwnedEventId,
) -> Result<u64> {
    let path = format!(
        "/_matrix/federation/v1/state_ids/{}?event_id={}",
        crate::util::encode_segment(room_id.as_str()),
        crate::util::encode_segment(event_id.as_str())
    );
    let answer = call(services, origin, http::Method::GET, &path, None).await?;
    let ids = |field: &str| -> Vec<OwnedEventId> {
        answer
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().and_then(|s| OwnedEventId::try_from(s).ok()))
            .collect()
    };
    let (state_ids, chain_ids) = (ids("pdu_ids"), ids("auth_chain_ids"));
    let wanted: Vec<OwnedEventId> = chain_ids.iter().chain(state_ids.iter()).cloned().collect();
    let room = room_id.clone();
    let unknown = services
        .run(move |s| {
            // A state or auth chain naming another room's events is refused whole.
            let short_room = crate::services::rooms::short_room(s, &room)?;
            same_room::ensure_in_room(s, short_room, wanted.iter().map(|e| &**e), "state event")?;
            let mut out = Vec::new();
            for id in wanted {
                let known = match s.short.event(&id)? {
                    Some(short) => s.timeline.meta(short)?.is_some(),
                    None => false,
                };
                if !known {
                    out.push(id);
                }
            }
            Ok(out)
        })
        .await?;
    let mut fetched = Vec::new();
    for id in unknown {
        let path = format!(
            "/_matrix/federation/v1/event/{}",
            crate::util::encode_segment(id.as_str())
        );
        let answer = call(services, origin, http::Method::GET, &path, None).await?;
        let Some(object) = answer
            .get("pdus")
            .and_then(Value::as_array)
            .and_then(|p| p.first())
            .and_then(|p| serde_json::from_value::<ruma::CanonicalJsonObject>(p.clone()).ok())
        else {
            continue;
        };
        let checked =
            pdu_checks::check_pdu(services, object, room_id.clone(), version.clone()).await?;
        if checked.event_id != id {
            return Err(crate::error::Error::new(
                http::StatusCode::BAD_GATEWAY,
                "M_UNKNOWN",
                "a peer answered another event",
            ));
        }
        fetched.push(checked);
    }
    let room = room_id.clone();
    let rules = crate::services::rooms::version::rules(version)?;
    services
        .run_heavy(move |s| {
            let fetched = pdu_checks::authorised_subset(s, fetched, &rules);
            let ((), _) = s.globals.commit(|c| {
                let short_room = crate::federation::join::outliers::room_short(s, c, &room)?;
                for event in &fetched {
                    crate::federation::join::outliers::store(s, c, short_room, event)?;
                }
                Ok(())
            })?;
            let short_room = crate::services::rooms::short_room(s, &room)?;
            let mut pairs = Vec::new();
            for id in &state_ids {
                let Some(event) = crate::services::rooms::event_by_id(s, id)? else {
                    continue;
                };
                if event.meta.short_room != short_room {
                    return Err(crate::error::Error::forbidden(format!(
                        "state event {id} is an event of another room"
                    )));
                }
                let Some(state_key) = event.pdu.state_key.clone() else {
                    continue;
                };
                pairs.push((
                    ruma::events::StateEventType::from(event.pdu.kind.to_string()),
                    state_key,
                    event.short,
                ));
            }
            let (snapshot, _) = s.globals.commit(|c| {
                let mut changes = Vec::new();
                for (kind, state_key, short) in &pairs {
                    changes.push((s.short.get_or_create_statekey(c, kind, state_key)?, *short));
                }
                Ok(s.state.create(c, 0, &changes)?.0)
            })?;
            Ok(snapshot)
        })
        .await
}
