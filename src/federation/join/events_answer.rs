//! A peer's answer that carries a room's events (`send_join`, `state`): read off the async
//! workers, with each event kept as its raw JSON until it is checked. A big room's answer is
//! megabytes: parsed into one tree on an async worker it held that worker for tens of
//! milliseconds, and the events a partial-state join leaves for the resync
//! (`deferred_state`) were parsed for nothing.

use std::sync::Arc;

use ruma::{CanonicalJsonObject, OwnedRoomId, RoomVersionId, ServerName};
use serde::Deserialize;
use serde_json::{Value, value::RawValue};

use super::remote::check_all;
use crate::{
    error::Result,
    federation::{incoming::pdu_checks::CheckedPdu, request::call_bytes, unreachable},
    services::Services,
};

/// The fields of a `send_join` (v2) or `state` answer.
#[derive(Debug, Default, Deserialize)]
pub struct EventsAnswer {
    #[serde(default)]
    pub state: Vec<Box<RawValue>>,
    #[serde(default)]
    pub pdus: Vec<Box<RawValue>>,
    #[serde(default)]
    pub auth_chain: Vec<Box<RawValue>>,
    #[serde(default)]
    pub event: Option<Box<RawValue>>,
    #[serde(default)]
    pub members_omitted: Option<Value>,
    #[serde(default)]
    pub servers_in_room: Option<Value>,
}

/// Asks `server` (`call_bytes`) and reads its answer on the blocking pool.
pub async fn fetch(
    services: &Arc<Services>,
    server: &ServerName,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<EventsAnswer> {
    let bytes = call_bytes(services, server, method, path, body).await?;
    let server = server.to_owned();
    services
        .run(move |_| {
            serde_json::from_slice(&bytes)
                .map_err(|e| unreachable(format!("{server} answered an invalid room answer: {e}")))
        })
        .await
}

/// The events `raw` parsed (on the blocking pool; those that are no JSON object are left out),
/// then checked as [`check_all`] does.
pub async fn check_raw(
    services: &Arc<Services>,
    raw: Vec<Box<RawValue>>,
    room_id: &OwnedRoomId,
    version: &RoomVersionId,
) -> Vec<CheckedPdu> {
    let objects = services
        .run(move |_| {
            Ok(raw
                .iter()
                .filter_map(|r| serde_json::from_str::<CanonicalJsonObject>(r.get()).ok())
                .collect::<Vec<_>>())
        })
        .await
        .unwrap_or_default();
    check_all(services, objects, room_id, version).await
}
