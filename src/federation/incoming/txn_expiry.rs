//! The answers kept for `/send` idempotency (`federation_txns`) are pruned a day after they were
//! given: a retry comes within minutes, so a day is ample. A time index
//! (`federation_txn_times`: received ms ‖ origin ‖ txn id) is written in the answer's batch, so
//! pruning reads only what expired. A task started with the server prunes at start and hourly.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use super::transaction::TXNS;
use crate::{
    error::Result,
    services::Services,
    storage::{Batch, Map, time_index},
};

/// received ms u64 ‖ origin str ‖ txn id str → empty.
pub const TXN_TIMES: Map = Map("federation_txn_times");
/// How long an answer is kept.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How often the pruning runs.
pub const EVERY: Duration = Duration::from_secs(3600);
/// Answers deleted per batch.
const PER_BATCH: usize = 1000;

/// Stores the answer to a transaction (`key`: origin ‖ txn id) with its time, in one batch.
pub fn record(s: &Services, key: Vec<u8>, answer: Vec<u8>, now_ms: u64) -> Result<()> {
    let mut batch = Batch::new();
    time_index::put_timed(&mut batch, TXNS, TXN_TIMES, &key, answer, now_ms);
    Ok(s.globals.db.write(batch)?)
}

/// Deletes the answers given before `now_ms - KEEP`; returns how many.
pub fn prune(s: &Services, now_ms: u64) -> Result<usize> {
    let cutoff = now_ms.saturating_sub(KEEP.as_millis() as u64);
    Ok(time_index::prune_before(
        &s.globals.db,
        TXNS,
        TXN_TIMES,
        cutoff,
        PER_BATCH,
    )?)
}

/// Prunes at start and every [`EVERY`] until `stop` changes.
pub async fn prune_periodically(services: Arc<Services>, mut stop: watch::Receiver<bool>) {
    loop {
        match services.run(|s| prune(s, crate::util::now_ms())).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} stored federation transaction answers pruned"),
            Err(e) => tracing::warn!("pruning federation transaction answers: {}", e.message),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
