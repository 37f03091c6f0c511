//! Backfill: older history of a room fetched from the other servers in it when a client
//! paginates past our oldest events (`GET /_matrix/federation/v1/backfill`). Received events are
//! checked like any PDU, stored under the timeline (`services::timeline::backfilled`) with the
//! state before them, and never change the current state, the forward extremities or /sync.
//!
//! One fill at a time per room; the frontier (the prev events still missing) is stored, so a range
//! is asked once; when every server that answers has nothing more, the frontier is emptied and the
//! room's history ends there. When no server could be reached, the room is not asked again for
//! [`RETRY_AFTER`].

pub mod fetch;
pub mod frontier;
pub mod store;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ruma::{OwnedEventId, OwnedRoomId};

use crate::{
    error::Result,
    services::{Services, rooms::short_room},
};

/// How long a room whose servers could not be reached is not asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Events asked per `/backfill` request (the spec lets servers cap it; Synapse caps at 100).
pub const BATCH: u32 = 100;
/// Frontier events named in one request.
pub const MAX_FROM: usize = 20;

#[derive(Default)]
pub struct Backfill {
    locks: Mutex<HashMap<OwnedRoomId, Arc<tokio::sync::Mutex<()>>>>,
    unreachable: Mutex<HashMap<OwnedRoomId, Instant>>,
}

impl Backfill {
    fn lock(&self, room_id: &OwnedRoomId) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap()
            .entry(room_id.clone())
            .or_default()
            .clone()
    }

    fn recently_unreachable(&self, room_id: &OwnedRoomId) -> bool {
        self.unreachable
            .lock()
            .unwrap()
            .get(room_id)
            .is_some_and(|at| at.elapsed() < RETRY_AFTER)
    }
}

/// Fetches older events of a room from its other servers, one after the other, until one gives
/// events we did not have. Returns whether new events were stored.
pub async fn fill(services: &Arc<Services>, room_id: &OwnedRoomId) -> Result<bool> {
    let backfill = &services.federation.backfill;
    let lock = backfill.lock(room_id);
    let _guard = lock.lock().await;
    if backfill.recently_unreachable(room_id) {
        return Ok(false);
    }
    let room = room_id.clone();
    let (short, frontier, servers) = services
        .run(move |s| {
            let short = short_room(s, &room)?;
            let frontier = frontier::current(s, short)?;
            let servers = crate::federation::sender::servers_in_room(s, short)?;
            Ok((short, frontier, servers))
        })
        .await?;
    if frontier.is_empty() || servers.is_empty() {
        return Ok(false);
    }
    let Some(version) = services.timeline.room_version(room_id)? else {
        return Ok(false);
    };
    let from: Vec<OwnedEventId> = frontier.iter().take(MAX_FROM).cloned().collect();
    let mut answered = false;
    for server in servers.iter() {
        let pdus = match fetch::ask(services, server, room_id, from.clone()).await {
            Ok(pdus) => pdus,
            Err(e) => {
                tracing::info!("backfill of {room_id} from {server}: {}", e.message);
                continue;
            }
        };
        answered = true;
        let outcome = store::store_answer(services, server, room_id, &version, short, pdus).await?;
        if outcome.stored.is_empty() && outcome.refused.is_empty() {
            continue;
        }
        let stored_any = !outcome.stored.is_empty();
        let frontier = frontier.clone();
        services
            .run(move |s| {
                let next = frontier::advance(&frontier, &outcome.stored, &outcome.refused, |id| {
                    frontier::known(s, id)
                });
                s.globals
                    .commit(|c| s.timeline.put_backfill_frontier(c, short, &next))?;
                Ok(())
            })
            .await?;
        if stored_any {
            return Ok(true);
        }
    }
    if answered {
        // Every server that answered had nothing more: the history ends here.
        services
            .run(move |s| {
                Ok(s.globals
                    .commit(|c| s.timeline.put_backfill_frontier(c, short, &[]))?)
            })
            .await?;
    } else {
        backfill
            .unreachable
            .lock()
            .unwrap()
            .insert(room_id.clone(), Instant::now());
    }
    Ok(false)
}
