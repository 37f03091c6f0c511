//! The cap on a destination's queue (`federation.max_queued_per_destination`): while a
//! destination does not answer, its queue grows with every event and EDU. Past the cap, the oldest
//! ephemeral EDUs are dropped (typing, receipts and presence go stale anyway); PDUs are kept (they
//! are event ids, and what the peer misses of them it could only get back with
//! `get_missing_events` and backfill), and so are the EDUs that must arrive (to-device messages,
//! device list and signing key updates). The worker trims after each failed transaction.

use ruma::ServerName;

use super::{Sender, queue::QUEUE};
use crate::{
    error::{Error, Result},
    storage::{
        Batch,
        keys::{Key, KeyReader},
    },
};

/// EDUs that may be dropped: what they say is soon stale.
const DROPPABLE: &[&str] = &["m.typing", "m.receipt", "m.presence"];

/// The sequences of the items to drop from a queue (`(sequence, droppable)`, oldest first) so that
/// it holds at most `cap` items, or as few as it can dropping only droppable EDUs (pure).
pub fn edus_to_drop(items: &[(u64, bool)], cap: usize) -> Vec<u64> {
    let excess = items.len().saturating_sub(cap);
    items
        .iter()
        .filter(|(_, droppable)| *droppable)
        .take(excess)
        .map(|(seq, _)| *seq)
        .collect()
}

/// Whether a queued item (its stored JSON) is an EDU that may be dropped.
fn droppable(stored: &[u8]) -> bool {
    // Items are `{"pdu":…}` or `{"edu":{edu_type, content}}` (serde's external tag).
    if !stored.starts_with(b"{\"edu\"") {
        return false;
    }
    serde_json::from_slice::<super::queue::Item>(stored).is_ok_and(|item| match item {
        super::queue::Item::Edu(edu) => edu
            .get("edu_type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| DROPPABLE.contains(&t)),
        super::queue::Item::Pdu(_) => false,
    })
}

impl Sender {
    /// Drops the oldest droppable EDUs (typing, receipts, presence) of `destination`'s queue beyond
    /// `cap` items, in one batch; returns how many were dropped.
    pub fn trim(&self, destination: &ServerName, cap: usize) -> Result<usize> {
        let prefix = Key::new().str(destination.as_str()).build();
        let mut items = Vec::new();
        for entry in self.db.scan_prefix(QUEUE, &prefix) {
            let (k, v) = entry?;
            let seq = KeyReader::new(&k[prefix.len()..])
                .u64()
                .ok_or_else(|| Error::internal("corrupt queue key"))?;
            items.push((seq, droppable(&v)));
        }
        let drop = edus_to_drop(&items, cap);
        if drop.is_empty() {
            return Ok(0);
        }
        let mut batch = Batch::new();
        for seq in &drop {
            batch.delete(
                QUEUE,
                Key::new().str(destination.as_str()).u64(*seq).build(),
            );
        }
        self.db.write(batch)?;
        tracing::info!(
            "{destination} is not answering: {} queued typing/receipt/presence EDUs dropped (queue cap {cap})",
            drop.len()
        );
        Ok(drop.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_droppable_edus_go_first_and_the_rest_stays() {
        // true: a droppable EDU, false: a PDU or an EDU that must arrive; oldest first.
        let items = [
            (1, true),
            (2, false),
            (3, true),
            (4, true),
            (5, false),
            (6, true),
        ];
        assert_eq!(edus_to_drop(&items, 6), Vec::<u64>::new());
        assert_eq!(edus_to_drop(&items, 4), vec![1, 3]);
        // Every droppable EDU goes, the rest stays even above the cap.
        assert_eq!(edus_to_drop(&items, 1), vec![1, 3, 4, 6]);
        assert_eq!(
            edus_to_drop(&[(1, false), (2, false)], 1),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn only_typing_receipts_and_presence_may_be_dropped() {
        let stored = |item: serde_json::Value| serde_json::to_vec(&item).unwrap();
        let edu = |t: &str| stored(serde_json::json!({ "edu": { "edu_type": t, "content": {} } }));
        assert!(
            droppable(&edu("m.typing"))
                && droppable(&edu("m.receipt"))
                && droppable(&edu("m.presence"))
        );
        assert!(!droppable(&edu("m.direct_to_device")) && !droppable(&edu("m.device_list_update")));
        assert!(!droppable(&edu("m.signing_key_update")));
        assert!(!droppable(&stored(serde_json::json!({ "pdu": "$event" }))));
    }
}
