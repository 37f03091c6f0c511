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
    storage::{Batch, Direction, Map, keys::Key},
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
    let mut index = now_ms.to_be_bytes().to_vec();
    index.extend_from_slice(&key);
    batch.put(TXN_TIMES, index, Vec::new());
    batch.put(TXNS, key, answer);
    Ok(s.globals.db.write(batch)?)
}

/// Deletes the answers given before `now_ms - KEEP`; returns how many.
pub fn prune(s: &Services, now_ms: u64) -> Result<usize> {
    let cutoff = now_ms.saturating_sub(KEEP.as_millis() as u64);
    let mut pruned = 0;
    loop {
        let mut batch = Batch::new();
        let mut count = 0;
        for entry in s.globals.db.scan_from(TXN_TIMES, &[], &Key::new().u64(0).build(), Direction::Forward).take(PER_BATCH) {
            let (index, _) = entry?;
            let Some(at) = index.get(..8).and_then(crate::storage::keys::u64_from) else { continue };
            if at >= cutoff {
                break;
            }
            batch.delete(TXNS, index[8..].to_vec());
            batch.delete(TXN_TIMES, index.to_vec());
            count += 1;
        }
        if count == 0 {
            return Ok(pruned);
        }
        s.globals.db.write(batch)?;
        pruned += count;
    }
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
