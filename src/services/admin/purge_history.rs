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

/// Checks the request and records the job; the purge itself is [`run`].
pub fn start(
    s: &Services,
    admin: &str,
    room_id: &RoomId,
    up_to_event: Option<&EventId>,
    up_to_ts: Option<u64>,
    delete_local_events: bool,
) -> Result<(Job, u64, Scope)> {
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
    let scope = Scope {
        before_ts,
        keep_graph_ends: true,
        local_events: delete_local_events,
    };
    let params = json!({
        "room_id": room_id,
        "before_ts": before_ts,
        "delete_local_events": delete_local_events,
    });
    let job = s.jobs.start(JOB_KIND, admin, Some(params))?;
    Ok((job, short_room, scope))
}

/// Runs a recorded purge to its end (on the blocking pool, in the background).
pub fn run(services: Arc<Services>, job_id: String, short_room: u64, scope: Scope) {
    tokio::spawn(async move {
        let id = job_id.clone();
        let ran = services
            .run(move |s| {
                let outcome = purge::purge(s, short_room, scope, &|| false)
                    .map(|n| json!({ "events_purged": n.unwrap_or(0) }))
                    .map_err(|e| e.message);
                s.jobs.finish(&id, outcome)
            })
            .await;
        if let Err(e) = ran {
            tracing::warn!("purge_history {job_id}: {}", e.message);
        }
    });
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
