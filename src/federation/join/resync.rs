//! The full state of a room joined with partial state: asked of the room's servers (`/state` at
//! our join event, the resident first), checked like a `send_join` answer (signatures, hashes,
//! room, authorised against their own auth events), then made the room's state by
//! `partial_state::complete`. The worker runs with the background work (on the process that holds
//! the lease): it resyncs every partial room, those a restart interrupted too, retrying with a
//! growing pause until a server answers.

use std::{collections::HashMap, sync::Arc, time::Duration};

use ruma::OwnedRoomId;
use tokio::{sync::watch, task::JoinHandle};

use super::events_answer;
use crate::{
    error::{Error, Result},
    federation::incoming::pdu_checks,
    services::{
        Services,
        partial_state::{
            PartialRoom,
            complete::{Completed, complete},
        },
        rooms::version,
    },
    util::encode_segment,
};

/// The worker looks for partial rooms (another process's joins) at least this often.
const LOOK_AGAIN: Duration = Duration::from_secs(2);
/// Pauses between failed attempts: doubled each time, up to the last.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(60);
/// In a group, a partial room whose join event is not stored after this long never got it.
const JOIN_SETTLES: Duration = Duration::from_secs(60);

/// Fetches the full state of `room` and completes it. None: nothing to complete (done already,
/// or the join never finished).
pub async fn resync(services: &Arc<Services>, room: &PartialRoom) -> Result<Option<Completed>> {
    let r = room.clone();
    let short_room = room.short_room;
    let Some((version, joined)) = services
        .run(move |s| {
            if s.partial_state.read(short_room)?.is_none() {
                return Ok(None);
            }
            // The join stores the room's state, then appends our join, under the room's lock:
            // under it, a join event not stored is one that never will be.
            let lock = s.timeline.room_lock(&r.room_id);
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let joined = match s.short.event(&r.join_event)? {
                Some(short) => s.timeline.meta(short)?.is_some_and(|m| m.pos != 0),
                None => false,
            };
            Ok(Some((s.timeline.room_version(&r.room_id)?, joined)))
        })
        .await?
    else {
        // Completed already (by another process, or an earlier attempt).
        return Ok(None);
    };
    // In a group the room's lock is this process's: another process's join may be between its
    // two batches for a moment.
    let young =
        crate::util::now_ms().saturating_sub(room.since_ms) < JOIN_SETTLES.as_millis() as u64;
    if !joined && services.globals.shared() && young {
        return Err(Error::not_found("our join event is not stored yet"));
    }
    let Some(version) = version.filter(|_| joined) else {
        // Stopped between storing the room's state and our join: the room was never joined.
        services
            .run(move |s| {
                s.globals.commit(|c| {
                    s.partial_state.clear(c, short_room);
                    Ok(())
                })?;
                Ok(())
            })
            .await?;
        return Ok(None);
    };
    let path = format!(
        "/_matrix/federation/v1/state/{}?event_id={}",
        encode_segment(room.room_id.as_str()),
        encode_segment(room.join_event.as_str())
    );
    let mut last = Error::not_found("No server of the room answered its state");
    for server in room
        .servers
        .iter()
        .filter(|s| *s != services.globals.server_name())
    {
        let answer =
            match events_answer::fetch(services, server, http::Method::GET, &path, None).await {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::info!("state of {} from {server}: {}", room.room_id, e.message);
                    last = e;
                    continue;
                }
            };
        let state = events_answer::check_raw(services, answer.pdus, &room.room_id, &version).await;
        let auth_chain =
            events_answer::check_raw(services, answer.auth_chain, &room.room_id, &version).await;
        let room = room.clone();
        let version = version.clone();
        return services
            .run_heavy(move |s| {
                let rules = version::rules(&version)?;
                let (state, auth_chain) =
                    pdu_checks::authorised_state(s, state, auth_chain, &rules);
                complete(s, &room, state, auth_chain)
            })
            .await;
    }
    Err(last)
}

/// Resyncs `room` until it is complete (or the server stops), after the configured delay.
async fn resync_until_done(services: Arc<Services>, room: PartialRoom) {
    let delay = Duration::from_millis(services.config().federation.partial_state_resync_delay_ms);
    let waited = Duration::from_millis(crate::util::now_ms().saturating_sub(room.since_ms));
    if let Some(rest) = delay.checked_sub(waited) {
        tokio::time::sleep(rest).await;
    }
    let mut pause = FIRST_PAUSE;
    loop {
        let started = std::time::Instant::now();
        match resync(&services, &room).await {
            Ok(Some(done)) => {
                tracing::info!(
                    "{}: full state after a partial join, {} entries added in {} ms{}",
                    room.room_id,
                    done.added,
                    started.elapsed().as_millis(),
                    if done.not_allowed.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; events the full state does not allow: {:?}",
                            done.not_allowed
                        )
                    }
                );
                return;
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(
                    "resync of {} failed ({}), again in {} s",
                    room.room_id,
                    e.message,
                    pause.as_secs()
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}

/// The worker: one resync task per partial room, started when the room becomes partial (here,
/// or on another process, seen within [`LOOK_AGAIN`]) or at start (a resync a restart cut).
pub fn spawn(services: Arc<Services>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: HashMap<OwnedRoomId, JoinHandle<()>> = HashMap::new();
        let mut changes = services.partial_state.subscribe();
        loop {
            changes.mark_unchanged();
            running.retain(|_, task| !task.is_finished());
            match services.run(|s| s.partial_state.list()).await {
                Ok(rooms) => {
                    for room in rooms {
                        if !running.contains_key(&room.room_id) {
                            let id = room.room_id.clone();
                            running.insert(
                                id,
                                tokio::spawn(resync_until_done(services.clone(), room)),
                            );
                        }
                    }
                }
                Err(e) => tracing::warn!("listing partial rooms: {}", e.message),
            }
            tokio::select! {
                _ = stop.changed() => break,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(LOOK_AGAIN) => {}
            }
        }
        for (_, task) in running {
            task.abort();
        }
    })
}
