//! The persisted outgoing queue: destination ‖ sequence → one PDU (by event id) or one EDU.
//! Entries are deleted only once the destination acknowledged the transaction that carried them.

use ruma::{OwnedEventId, OwnedServerName, ServerName};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Sender;
use crate::{
    error::{Error, Result},
    services::{Services, globals::Commit},
    storage::{
        Batch, Map,
        keys::{Key, KeyReader},
    },
};

/// destination str ‖ sequence u64 → [`Item`] JSON.
pub const QUEUE: Map = Map("federation_queue");

/// At most this many PDUs and EDUs per transaction (the spec's limits).
pub const MAX_PDUS: usize = 50;
pub const MAX_EDUS: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    Pdu(OwnedEventId),
    Edu(Value),
}

fn key(destination: &ServerName, seq: u64) -> Vec<u8> {
    Key::new().str(destination.as_str()).u64(seq).build()
}

impl Sender {
    /// Queues a PDU for `destination` in the batch of `c` (the batch that stores the event).
    pub fn queue_pdu(&self, c: &mut Commit, destination: &ServerName, event_id: &OwnedEventId) {
        let seq = c.short_id();
        c.batch.put(
            QUEUE,
            key(destination, seq),
            serde_json::to_vec(&Item::Pdu(event_id.clone())).unwrap_or_default(),
        );
    }

    /// The oldest queued items of `destination`: (sequence, item), at most 50 PDUs and 100 EDUs.
    pub fn next_batch(&self, destination: &ServerName) -> Result<Vec<(u64, Item)>> {
        let prefix = Key::new().str(destination.as_str()).build();
        let (mut pdus, mut edus) = (0, 0);
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(QUEUE, &prefix) {
            let (k, v) = entry?;
            let seq = KeyReader::new(&k[prefix.len()..])
                .u64()
                .ok_or_else(|| Error::internal("corrupt queue key"))?;
            let Ok(item) = serde_json::from_slice::<Item>(&v) else {
                continue;
            };
            match item {
                Item::Pdu(_) if pdus < MAX_PDUS => pdus += 1,
                Item::Edu(_) if edus < MAX_EDUS => edus += 1,
                _ if pdus >= MAX_PDUS && edus >= MAX_EDUS => break,
                _ => continue,
            }
            out.push((seq, item));
        }
        Ok(out)
    }

    /// Removes acknowledged items, in one batch.
    pub fn acknowledge(&self, destination: &ServerName, seqs: &[u64]) -> Result<()> {
        let mut batch = Batch::new();
        for seq in seqs {
            batch.delete(QUEUE, key(destination, *seq));
        }
        Ok(self.db.write(batch)?)
    }

    /// The number of queued items per destination (for the metrics; each destination's queue is
    /// bounded by `federation.max_queued_per_destination`).
    pub fn depth_per_destination(&self) -> Result<Vec<(OwnedServerName, u64)>> {
        let mut out: Vec<(OwnedServerName, u64)> = Vec::new();
        for entry in self.db.scan_prefix(QUEUE, &[]) {
            let (k, _) = entry?;
            let Some(name) = KeyReader::new(&k).str() else {
                continue;
            };
            match out.last_mut() {
                Some((last, n)) if last.as_str() == name => *n += 1,
                _ => {
                    if let Ok(name) = OwnedServerName::try_from(name) {
                        out.push((name, 1));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Destinations with something queued (workers to start after a restart).
    pub fn pending_destinations(&self) -> Result<Vec<OwnedServerName>> {
        Ok(self
            .depth_per_destination()?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }
}

/// Queues an EDU for each destination (its own batch) and wakes their workers.
pub fn queue_edu(s: &Services, destinations: &[OwnedServerName], edu: Value) -> Result<()> {
    if destinations.is_empty() {
        return Ok(());
    }
    let bytes = serde_json::to_vec(&Item::Edu(edu)).map_err(|e| Error::internal(e.to_string()))?;
    s.globals.commit(|c| {
        // In a group of processes the sender runs on the lease holder, which is woken by new
        // stream positions: this commit takes one, so that the holder looks at the queue.
        if s.globals.shared() {
            c.next_pos();
        }
        for destination in destinations {
            let seq = c.short_id();
            c.batch.put(QUEUE, key(destination, seq), bytes.clone());
        }
        Ok(())
    })?;
    for destination in destinations {
        s.federation.sender.wake(destination);
    }
    Ok(())
}

/// Queues an EDU for `destination` in the batch of `c` (wake the worker after the commit).
pub fn put_edu(c: &mut Commit, destination: &ServerName, edu: &Value) -> Result<()> {
    let bytes =
        serde_json::to_vec(&Item::Edu(edu.clone())).map_err(|e| Error::internal(e.to_string()))?;
    let seq = c.short_id();
    c.batch.put(QUEUE, key(destination, seq), bytes);
    Ok(())
}
