//! Entries that expire: beside a map, a time index (`received ms u64 ‖ key` → empty) written in
//! the entry's own batch, so that pruning reads only what expired, oldest first.

use super::{
    Batch, Db, Direction, Map, Result,
    keys::{Key, u64_from},
};

/// Writes `key` → `value` into `map`, and its time into the index `times`, in `batch`.
pub fn put_timed(batch: &mut Batch, map: Map, times: Map, key: &[u8], value: Vec<u8>, now_ms: u64) {
    let mut index = now_ms.to_be_bytes().to_vec();
    index.extend_from_slice(key);
    batch.put(times, index, Vec::new());
    batch.put(map, key.to_vec(), value);
}

/// Deletes the entries of `map` indexed in `times` before `cutoff` (ms), with their index entries,
/// `per_batch` in each batch; returns how many.
pub fn prune_before(db: &Db, map: Map, times: Map, cutoff: u64, per_batch: usize) -> Result<usize> {
    let mut pruned = 0;
    loop {
        let mut batch = Batch::new();
        let mut count = 0;
        for entry in db
            .scan_from(times, &[], &Key::new().u64(0).build(), Direction::Forward)
            .take(per_batch)
        {
            let (index, _) = entry?;
            let Some(at) = index.get(..8).and_then(u64_from) else {
                continue;
            };
            if at >= cutoff {
                break;
            }
            batch.delete(map, index[8..].to_vec());
            batch.delete(times, index.to_vec());
            count += 1;
        }
        if count == 0 {
            return Ok(pruned);
        }
        db.write(batch)?;
        pruned += count;
    }
}
