//! Indexing the events stored before the index existed (or after its content was cleared): a
//! background task started with the server walks every stored event by short id, a batch at a
//! time, and writes the postings of timeline events together with the progress marker
//! (`search_meta`/`rebuild_next`), so a restart resumes where it stopped. Each batch is written
//! under the commit lock and reads the events inside it, so a redaction committed meanwhile is
//! never undone (an event redacted before its batch has no text left to index). Events committed
//! while it runs are indexed by their own commit; indexing one again writes the same postings.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use super::{SEARCH_META, SEARCH_POSTINGS, index};
use crate::{
    error::Result,
    services::{Services, timeline::EVENT_META},
    storage::{Batch, Direction, keys::u64_from},
};

const KEY_NEXT: &[u8] = b"rebuild_next";
/// Events read per batch.
pub const BATCH: usize = 256;
/// Pause between batches, so that writers waiting on the commit lock get their turn.
const PAUSE: Duration = Duration::from_millis(5);

/// Indexes the next batch of stored events; returns whether the walk is complete.
pub fn step(s: &Services) -> Result<bool> {
    let next = s.globals.db.get_u64(SEARCH_META, KEY_NEXT)?.unwrap_or(0);
    if next == u64::MAX {
        return Ok(true);
    }
    let (done, _) = s.globals.commit(|c| {
        let mut last = None;
        let from = next.to_be_bytes();
        for entry in s
            .globals
            .db
            .scan_from(EVENT_META, &[], &from, Direction::Forward)
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
            if meta.pos == 0 {
                continue;
            }
            let Some(json) = s.timeline.json(short)? else {
                continue;
            };
            for (token, count) in index::event_tokens(&json) {
                c.batch.put(
                    SEARCH_POSTINGS,
                    index::posting_key(meta.short_room, &token, meta.pos),
                    index::posting_value(short, count),
                );
            }
        }
        let marker = crate::util::walk_resume_at(last);
        c.batch.put(SEARCH_META, KEY_NEXT, marker.to_be_bytes());
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
        let mut indexed_batches = 0u64;
        loop {
            match services.run(step).await {
                Ok(true) => {
                    if indexed_batches > 0 {
                        tracing::info!("search index: stored events indexed");
                    }
                    return;
                }
                Ok(false) => indexed_batches += 1,
                Err(e) => {
                    tracing::warn!("search index rebuild: {e}");
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

/// Deletes the whole index and the progress marker (the next start indexes every event again).
pub fn clear(s: &Services) -> Result<()> {
    loop {
        let mut batch = Batch::new();
        for entry in s.globals.db.scan_prefix(SEARCH_POSTINGS, &[]).take(4096) {
            batch.delete(SEARCH_POSTINGS, entry?.0.to_vec());
        }
        if batch.is_empty() {
            break;
        }
        s.globals.db.write(batch)?;
    }
    let mut batch = Batch::new();
    batch.delete(SEARCH_META, KEY_NEXT.to_vec());
    s.globals.db.write(batch)?;
    Ok(())
}
