//! Asking one server for the events before ours: `GET /_matrix/federation/v1/backfill/{roomId}`
//! (limited by `federation.request_timeout_secs`, as every outgoing request).

use std::sync::Arc;

use ruma::{OwnedEventId, OwnedRoomId, ServerName, api::federation::backfill::get_backfill};
use serde_json::value::RawValue;

use super::BATCH;
use crate::{error::Result, federation::request::send, services::Services};

/// The PDUs `server` answers for the events before `from` (those included).
pub async fn ask(
    services: &Arc<Services>,
    server: &ServerName,
    room_id: &OwnedRoomId,
    from: Vec<OwnedEventId>,
) -> Result<Vec<Box<RawValue>>> {
    let request = get_backfill::v1::Request::new(room_id.clone(), from, ruma::UInt::from(BATCH));
    Ok(send(services, server, request).await?.pdus)
}
