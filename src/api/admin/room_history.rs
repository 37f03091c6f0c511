//! Admin routes over a room's history: its forward extremities (listed, and all but the newest
//! deleted), its messages (every event, whatever the admin's membership), and the event closest
//! to a time.

use std::sync::Arc;

use axum::{Json, extract::State};
use ruma::api::client::filter::RoomEventFilter;
use serde_json::{Value, json};

use super::extract::{Admin, Args, Params};
use crate::{
    api::client::events::paginate,
    error::{Error, Result},
    services::{
        Services,
        relations::filter::RelationFilter,
        rooms::event_by_short,
        timeline::{EXTREMITIES, order::Place},
    },
    storage::Direction,
};

type Answer = Result<Json<Value>>;

fn short_room(s: &Services, room_id: &ruma::RoomId) -> Result<u64> {
    s.short
        .room(room_id)?
        .ok_or_else(|| Error::not_found("Room not found"))
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/forward_extremities`:
/// `{"count", "results": [{event_id, state_group, depth, received_ts}]}`.
pub async fn forward_extremities(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
) -> Answer {
    let room_id = args.room(0)?;
    services
        .run(move |s| {
            let short = short_room(s, &room_id)?;
            let mut results = Vec::new();
            for event_short in s.timeline.extremities(short)? {
                let Some(event) = event_by_short(s, event_short, &room_id)? else {
                    continue;
                };
                results.push(json!({
                    "event_id": event.pdu.event_id,
                    "state_group": event.meta.state_after,
                    "depth": event.json.get("depth").and_then(|d| d.as_integer()).map(i64::from),
                    "received_ts": u64::from(event.pdu.origin_server_ts.get()),
                }));
            }
            Ok(Json(json!({ "count": results.len(), "results": results })))
        })
        .await
}

/// `DELETE /_synapse/admin/v1/rooms/{roomId}/forward_extremities`: keeps the deepest extremity
/// (the newest on a tie) and forgets the others, so the next event references one prev event;
/// `{"deleted": n}`.
pub async fn delete_forward_extremities(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
) -> Answer {
    let room_id = args.room(0)?;
    services
        .run(move |s| {
            let short = short_room(s, &room_id)?;
            let (deleted, _) = s.globals.commit(|c| {
                let all = s.timeline.extremities(short)?;
                let mut best: Option<(i64, u64, u64)> = None;
                for event_short in &all {
                    let Some(event) = event_by_short(s, *event_short, &room_id)? else {
                        continue;
                    };
                    let depth = event
                        .json
                        .get("depth")
                        .and_then(|d| d.as_integer())
                        .map(i64::from)
                        .unwrap_or(0);
                    let rank = (depth, event.meta.pos, *event_short);
                    if best.is_none_or(|b| rank > b) {
                        best = Some(rank);
                    }
                }
                let Some((_, _, keep)) = best else {
                    return Ok(0);
                };
                c.batch
                    .put(EXTREMITIES, short.to_be_bytes(), keep.to_be_bytes());
                Ok(all.len().saturating_sub(1))
            })?;
            Ok(Json(json!({ "deleted": deleted })))
        })
        .await
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/messages?from=&to=&limit=&dir=&filter=`: the room's
/// events whatever the admin's membership (history visibility does not apply; retention's
/// expired events are still hidden); `dir` `b` (the default, from the end) or `f` (from the
/// start), `limit` 10 (at most 1000); `{"chunk", "start", "end", "state": []}`.
pub async fn messages(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
    params: Params,
) -> Answer {
    let room_id = args.room(0)?;
    let direction = match params.0.get("dir").map(String::as_str) {
        None | Some("b") => Direction::Backward,
        Some("f") => Direction::Forward,
        Some(other) => return Err(Error::invalid_param(format!("Unknown dir: {other}"))),
    };
    let limit = match params.0.get("limit") {
        None => 10,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| Error::invalid_param("limit must be a positive integer"))?
            .clamp(1, 1000),
    };
    let filter: RoomEventFilter = match params.0.get("filter") {
        None => RoomEventFilter::default(),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| Error::invalid_param(format!("filter: {e}")))?
        }
    };
    let (from, to) = (params.0.get("from").cloned(), params.0.get("to").cloned());
    services
        .run(move |s| {
            let short = short_room(s, &room_id)?;
            let from = match from {
                Some(token) => Place::parse(&token)?,
                None if direction == Direction::Backward => Place::Main(s.globals.current_pos()),
                None => Place::Back(u64::MAX),
            };
            let stop = to.as_deref().map(Place::parse).transpose()?;
            let page = paginate(
                s,
                None,
                &room_id,
                short,
                from,
                direction,
                limit,
                stop,
                &filter,
                &RelationFilter::default(),
            )?;
            let now = crate::util::now_ms();
            let mut chunk = Vec::new();
            for event in &page.events {
                if !crate::services::retention::expired(s, event, now)? {
                    chunk.push(crate::services::export::room::client_form(event, &room_id));
                }
            }
            let mut body = json!({ "chunk": chunk, "start": from.encode(), "state": [] });
            if !page.exhausted || (!page.events.is_empty() && direction == Direction::Forward) {
                body["end"] = json!(page.cursor.encode());
            }
            Ok(Json(body))
        })
        .await
}

/// `GET /_synapse/admin/v1/room/{roomId}/timestamp_to_event?ts=&dir=`: the first event at or
/// after `ts` (`f`, the default) or the last at or before it (`b`) among the events this server
/// holds: `{"event_id", "origin_server_ts"}`; none: 404.
pub async fn timestamp_to_event(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
    params: Params,
) -> Answer {
    let room_id = args.room(0)?;
    let ts = params
        .0
        .get("ts")
        .ok_or_else(|| Error::missing_param("ts is required"))?
        .parse::<u64>()
        .map_err(|_| Error::invalid_param("ts must be a timestamp in milliseconds"))?;
    let forward = match params.0.get("dir").map(String::as_str) {
        None | Some("f") => true,
        Some("b") => false,
        Some(other) => return Err(Error::invalid_param(format!("Unknown dir: {other}"))),
    };
    services
        .run(move |s| {
            let short = short_room(s, &room_id)?;
            let found =
                crate::services::time_index::lookup::closest(s, short, &room_id, ts, forward)?
                    .ok_or_else(|| {
                        Error::not_found(format!(
                            "No event found {} {ts}",
                            if forward { "after" } else { "before" }
                        ))
                    })?;
            Ok(Json(json!({
                "event_id": found.event_id,
                "origin_server_ts": found.origin_server_ts,
            })))
        })
        .await
}
