//! Indexing the timeline events stored before the time index existed: a background walk of every
//! stored event by short id, a batch at a time, each batch written with the progress marker so a
//! restart resumes where it stopped. Events committed meanwhile are indexed by their own commit;
//! indexing one again writes the same entry.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use super::{EVENTS_BY_TIME, TIME_INDEX_META};
use crate::{
    error::Result,
    services::{Services, timeline::EVENT_META},
    storage::{Direction, keys::u64_from},
};

const KEY_NEXT: &[u8] = b"rebuild_next";
const BATCH: usize = 512;
const PAUSE: Duration = Duration::from_millis(5);

/// Indexes the next batch of stored events; returns whether the walk is complete.
pub fn step(s: &Services) -> Result<bool> {
    let next = s
        .globals
        .db
        .get_u64(TIME_INDEX_META, KEY_NEXT)?
        .unwrap_or(0);
    if next == u64::MAX {
        return Ok(true);
    }
    let (done, _) = s.globals.commit(|c| {
        let mut last = None;
        for entry in s
            .globals
            .db
            .scan_from(EVENT_META, &[], &next.to_be_bytes(), Direction::Forward)
            .take(BATCH)
        {
            let (key, _) = entry?;
            let Some(short) = u64_from(&key) else {
                continue;
            };
            last = Some(short);
            let Some(meta) = s.timeline.meta(short)? else {
                continue;
            };
            // Timeline events have a position; backfilled ones a place under the timeline.
            if meta.pos == 0 && s.timeline.backfilled_seq(short)?.is_none() {
                continue;
            }
            let Some(json) = s.timeline.json(short)? else {
                continue;
            };
            let Some(ts) = json.get("origin_server_ts").and_then(|v| match v {
                ruma::CanonicalJsonValue::Integer(i) => u64::try_from(i64::from(*i)).ok(),
                _ => None,
            }) else {
                continue;
            };
            c.batch.put(
                EVENTS_BY_TIME,
                super::key(meta.short_room, ts, short),
                Vec::new(),
            );
        }
        let marker = crate::util::walk_resume_at(last);
        c.batch.put(TIME_INDEX_META, KEY_NEXT, marker.to_be_bytes());
        Ok(marker == u64::MAX)
    })?;
    Ok(done)
}

/// Starts the walk in the background; it stops when complete or when `stop` changes.
pub fn spawn(
    services: Arc<Services>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match services.run(step).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!("time index rebuild: {e}");
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(PAUSE) => {}
                _ = stop.changed() => return,
            }
        }
    })
}
