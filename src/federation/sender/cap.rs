//! The cap on a destination's queue (`federation.max_queued_per_destination`): while a
//! destination does not answer, its queue grows with every event and EDU. Past the cap, the oldest
//! EDUs are dropped (typing, receipts and presence go stale anyway); PDUs are kept (they are event
//! ids, and what the peer misses of them it could only get back with `get_missing_events` and
//! backfill). The worker trims after each failed transaction.

use ruma::ServerName;

use super::{Sender, queue::QUEUE};
use crate::{
    error::{Error, Result},
    storage::{
        Batch,
        keys::{Key, KeyReader},
    },
};

/// The sequences of the EDUs to drop from a queue (`(sequence, is_edu)`, oldest first) so that it
/// holds at most `cap` items, or as few as it can without dropping PDUs (pure).
pub fn edus_to_drop(items: &[(u64, bool)], cap: usize) -> Vec<u64> {
    let excess = items.len().saturating_sub(cap);
    items.iter().filter(|(_, is_edu)| *is_edu).take(excess).map(|(seq, _)| *seq).collect()
}

impl Sender {
    /// Drops the oldest EDUs of `destination`'s queue beyond `cap` items, in one batch; returns how
    /// many were dropped.
    pub fn trim(&self, destination: &ServerName, cap: usize) -> Result<usize> {
        let prefix = Key::new().str(destination.as_str()).build();
        let mut items = Vec::new();
        for entry in self.db.scan_prefix(QUEUE, &prefix) {
            let (k, v) = entry?;
            let seq = KeyReader::new(&k[prefix.len()..]).u64().ok_or_else(|| Error::internal("corrupt queue key"))?;
            // Items are `{"pdu":…}` or `{"edu":…}` (serde's external tag).
            items.push((seq, v.starts_with(b"{\"edu\"")));
        }
        let drop = edus_to_drop(&items, cap);
        if drop.is_empty() {
            return Ok(0);
        }
        let mut batch = Batch::new();
        for seq in &drop {
            batch.delete(QUEUE, Key::new().str(destination.as_str()).u64(*seq).build());
        }
        self.db.write(batch)?;
        tracing::info!("{destination} is not answering: {} queued EDUs dropped (queue cap {cap})", drop.len());
        Ok(drop.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_edus_go_first_and_pdus_stay() {
        // p = PDU, e = EDU, oldest first.
        let items = [(1, true), (2, false), (3, true), (4, true), (5, false), (6, true)];
        assert_eq!(edus_to_drop(&items, 6), Vec::<u64>::new());
        assert_eq!(edus_to_drop(&items, 4), vec![1, 3]);
        // Every EDU goes, the PDUs stay even above the cap.
        assert_eq!(edus_to_drop(&items, 1), vec![1, 3, 4, 6]);
        assert_eq!(edus_to_drop(&[(1, false), (2, false)], 1), Vec::<u64>::new());
    }
}
