//! `POST /_synapse/admin/v1/purge_history/{roomId}[/{eventId}]`: purges a room's history before an
//! event or a time (`timeline::purge`), as a background job (kind `purge_history`) whose status
//! `GET /_synapse/admin/v1/purge_history_status/{purgeId}` answers in Synapse's words.
//! Like Synapse, local users' events are kept unless `delete_local_events` is set; state events,
//! the room's forward extremities and its latest event always stay.

use std::sync::Arc;

use ruma::{EventId, RoomId};
use serde_json::json;

use crate::{
    error::{Error, Result},
    services::{
        Services,
        jobs::{Job, JobStatus},
        timeline::purge::{self, Scope},
    },
};

pub const JOB_KIND: &str = "purge_history";

/// What a purge request asks: the room and the scope (checked: 400/404 errors).
pub fn scope_of(
    s: &Services,
    room_id: &RoomId,
    up_to_event: Option<&EventId>,
    up_to_ts: Option<u64>,
    delete_local_events: bool,
) -> Result<(u64, Scope)> {
    let short_room = s
        .short
        .room(room_id)?
        .ok_or_else(|| Error::not_found("Room not found"))?;
    let before_ts = match (up_to_event, up_to_ts) {
        (Some(event_id), _) => {
            let event = crate::services::rooms::event_by_id(s, event_id)?
                .filter(|e| e.pdu.room_id == room_id)
                .ok_or_else(|| Error::not_found("Event not found in this room"))?;
            u64::from(event.pdu.origin_server_ts.get())
        }
        (None, Some(ts)) => ts,
        (None, None) => {
            return Err(Error::missing_param(
                "purge_up_to_event_id or purge_up_to_ts is required",
            ));
        }
    };
    Ok((
        short_room,
        Scope {
            before_ts,
            keep_graph_ends: true,
            local_events: delete_local_events,
        },
    ))
}

/// Starts the purge as a background job (kind `purge_history`); answers the job at once.
pub fn start(
    services: &Arc<Services>,
    admin: &str,
    room_id: &RoomId,
    short_room: u64,
    scope: Scope,
) -> Result<Job> {
    let params = json!({
        "room_id": room_id,
        "before_ts": scope.before_ts,
        "delete_local_events": scope.local_events,
    });
    let (job, _) = crate::services::jobs::run_in_background(
        services,
        JOB_KIND,
        admin,
        Some(params),
        None,
        move |s, _, _| {
            let purged = purge::purge(s, short_room, scope, &|| false)?;
            Ok(json!({ "events_purged": purged.unwrap_or(0) }))
        },
    )?;
    Ok(job)
}

/// Synapse's status of a purge: `active`, `complete` or `failed` (with `error`).
pub fn status(s: &Services, purge_id: &str) -> Result<serde_json::Value> {
    let job = s
        .jobs
        .get(purge_id)?
        .filter(|j| j.kind == JOB_KIND)
        .ok_or_else(|| Error::not_found("purge id not found"))?;
    Ok(match job.status {
        JobStatus::Running => json!({ "status": "active" }),
        JobStatus::Complete => json!({ "status": "complete" }),
        JobStatus::Failed => json!({ "status": "failed", "error": job.error }),
    })
}
