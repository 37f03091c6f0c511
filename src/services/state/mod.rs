//! Room state: compressed snapshots (a diff against a parent, with a full snapshot every few
//! levels), the current state of every room, and the state before and after each event.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{
    error::{Error, Result},
    services::globals::Commit,
    storage::{Db, Map},
};

/// Short state key → short event id.
pub type StateMap = BTreeMap<u64, u64>;

pub const SNAPSHOTS: Map = Map("state_snapshots");
pub const ROOM_STATE: Map = Map("room_current_state");
pub const MAPS: &[Map] = &[SNAPSHOTS, ROOM_STATE];

/// A chain deeper than this is cut by writing a full snapshot.
const MAX_CHAIN: u64 = 24;
const CACHE_ENTRIES: usize = 1024;
/// A walk up a chain longer than this meets a corrupt record (a cycle): chains are cut at
/// `MAX_CHAIN`, and records rewritten by older versions may be a little longer.
const MAX_WALK: usize = 4 * MAX_CHAIN as usize;

pub struct StateService {
    db: Db,
    /// Snapshot id → its full state and its depth in the diff chain.
    cache: Mutex<HashMap<u64, (Arc<StateMap>, u64)>>,
    /// Bumped when stored records change in place ([`StateService::fill_full_records`]): a load
    /// begun before does not enter the cache.
    generation: AtomicU64,
}

struct Snapshot {
    parent: u64,
    depth: u64,
    /// Short state key → short event id; 0 removes the key.
    changes: Vec<(u64, u64)>,
}

fn encode(s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + s.changes.len() * 16);
    out.extend_from_slice(&s.parent.to_be_bytes());
    out.extend_from_slice(&s.depth.to_be_bytes());
    for (k, v) in &s.changes {
        out.extend_from_slice(&k.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Result<Snapshot> {
    if bytes.len() < 16 || (bytes.len() - 16) % 16 != 0 {
        return Err(Error::internal("corrupt state snapshot"));
    }
    let num = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let changes = (16..bytes.len())
        .step_by(16)
        .map(|i| (num(i), num(i + 8)))
        .collect();
    Ok(Snapshot {
        parent: num(0),
        depth: num(8),
        changes,
    })
}

impl StateService {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            cache: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// The full state of a snapshot (0 is the empty state): the diffs from the nearest cached
    /// ancestor (or full record) applied to one copy of it. The result is cached, and so is the
    /// full record a chain starts from, where the next load of the chain stops.
    pub fn load(&self, id: u64) -> Result<Arc<StateMap>> {
        if id == 0 {
            return Ok(Arc::new(StateMap::new()));
        }
        if let Some(map) = self.cached(id) {
            return Ok(map);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let (chain, base) = self.chain_to_cached(id)?;
        let Some((_, top)) = chain.first() else {
            // Cached meanwhile.
            return Ok(base.unwrap_or_default());
        };
        let depth = top.depth;
        let mut map = base.as_deref().cloned().unwrap_or_default();
        for (_, snapshot) in chain.iter().rev() {
            apply(&mut map, &snapshot.changes);
        }
        if base.is_none()
            && chain.len() > 1
            && let Some((full_id, full)) = chain.last()
        {
            let mut full_map = StateMap::new();
            apply(&mut full_map, &full.changes);
            self.remember_from(generation, *full_id, Arc::new(full_map), 0);
        }
        let map = Arc::new(map);
        self.remember_from(generation, id, map.clone(), depth);
        Ok(map)
    }

    /// The values of `keys` in the state of snapshot `id` (`None` where a key is not in it), read
    /// along the diff chain without building the state: for the checks that need a key or two of
    /// the state before an event (history visibility).
    pub fn get_many(&self, id: u64, keys: &[u64]) -> Result<Vec<Option<u64>>> {
        let mut out: Vec<Option<Option<u64>>> = vec![None; keys.len()];
        let mut next = id;
        let mut steps = 0;
        while next != 0 && out.iter().any(Option::is_none) {
            if let Some(map) = self.cached(next) {
                for (slot, key) in out.iter_mut().zip(keys) {
                    slot.get_or_insert_with(|| map.get(key).copied());
                }
                break;
            }
            let snapshot = self.read(next)?;
            for (slot, key) in out.iter_mut().zip(keys) {
                if slot.is_none()
                    && let Some((_, v)) = snapshot.changes.iter().rev().find(|(k, _)| k == key)
                {
                    *slot = Some((*v != 0).then_some(*v));
                }
            }
            next = snapshot.parent;
            steps += 1;
            if steps > MAX_WALK {
                return Err(Error::internal(format!(
                    "state snapshot {id}: chain too long"
                )));
            }
        }
        Ok(out.into_iter().map(Option::flatten).collect())
    }

    fn cached(&self, id: u64) -> Option<Arc<StateMap>> {
        self.cache
            .lock()
            .unwrap()
            .get(&id)
            .map(|(map, _)| map.clone())
    }

    fn read(&self, id: u64) -> Result<Snapshot> {
        let bytes = self
            .db
            .get(SNAPSHOTS, &id.to_be_bytes())?
            .ok_or_else(|| Error::internal(format!("missing state snapshot {id}")))?;
        decode(&bytes)
    }

    /// The records from `id` up to (not including) the nearest cached ancestor, child first, and
    /// that ancestor's state (`None`: the chain ends at a full record).
    fn chain_to_cached(&self, id: u64) -> Result<(Vec<(u64, Snapshot)>, Option<Arc<StateMap>>)> {
        let mut chain = Vec::new();
        let mut next = id;
        while next != 0 {
            if let Some(map) = self.cached(next) {
                return Ok((chain, Some(map)));
            }
            let snapshot = self.read(next)?;
            let parent = snapshot.parent;
            chain.push((next, snapshot));
            if chain.len() > MAX_WALK {
                return Err(Error::internal(format!(
                    "state snapshot {id}: chain too long"
                )));
            }
            next = parent;
        }
        Ok((chain, None))
    }

    fn remember(&self, id: u64, map: Arc<StateMap>, depth: u64) {
        self.remember_from(self.generation.load(Ordering::Acquire), id, map, depth);
    }

    /// Caches a state read while the records were at `generation`.
    fn remember_from(&self, generation: u64, id: u64, map: Arc<StateMap>, depth: u64) {
        let mut cache = self.cache.lock().unwrap();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if cache.len() >= CACHE_ENTRIES {
            let victim = cache.keys().next().copied();
            if let Some(v) = victim {
                cache.remove(&v);
            }
        }
        cache.insert(id, (map, depth));
    }

    fn depth(&self, id: u64) -> Result<u64> {
        if id == 0 {
            return Ok(0);
        }
        if let Some((_, depth)) = self.cache.lock().unwrap().get(&id) {
            return Ok(*depth);
        }
        Ok(self.read(id)?.depth)
    }

    /// Writes a snapshot that is `parent` with `changes` applied; returns its id and full state.
    pub fn create<'a>(
        &'a self,
        commit: &mut Commit<'a>,
        parent: u64,
        changes: &[(u64, u64)],
    ) -> Result<(u64, Arc<StateMap>)> {
        let parent_map = self.load(parent)?;
        let mut map = (*parent_map).clone();
        apply(&mut map, changes);
        let parent_depth = self.depth(parent)?;
        let snapshot = if parent == 0 || parent_depth + 1 >= MAX_CHAIN {
            Snapshot {
                parent: 0,
                depth: 0,
                changes: map.iter().map(|(k, v)| (*k, *v)).collect(),
            }
        } else {
            Snapshot {
                parent,
                depth: parent_depth + 1,
                changes: changes.to_vec(),
            }
        };
        let id = commit.short_id();
        commit
            .batch
            .put(SNAPSHOTS, id.to_be_bytes(), encode(&snapshot));
        let map = Arc::new(map);
        let (cached, depth) = (map.clone(), snapshot.depth);
        commit.after_write(move || self.remember(id, cached, depth));
        Ok((id, map))
    }

    /// The snapshot id of a room's current state (0 before its create event).
    pub fn current_snapshot(&self, short_room: u64) -> Result<u64> {
        Ok(self
            .db
            .get_u64(ROOM_STATE, &short_room.to_be_bytes())?
            .unwrap_or(0))
    }

    pub fn set_current(&self, commit: &mut Commit, short_room: u64, snapshot: u64) {
        commit
            .batch
            .put(ROOM_STATE, short_room.to_be_bytes(), snapshot.to_be_bytes());
    }

    pub fn current_state(&self, short_room: u64) -> Result<Arc<StateMap>> {
        self.load(self.current_snapshot(short_room)?)
    }
}

impl StateService {
    /// Adds `entries` (short state key → short event) to the full records (those without a
    /// parent) among `ids` that lack their keys, rewriting them in place; the records that are
    /// diffs against them have the entries too. For a room whose state was partial: its snapshots
    /// since the join lacked the members the full state adds (`partial_state::complete`). Call
    /// [`StateService::forget_all`] after the write. Returns how many records were rewritten.
    pub fn fill_full_records(
        &self,
        commit: &mut Commit,
        ids: &BTreeSet<u64>,
        entries: &StateMap,
    ) -> Result<usize> {
        let mut rewritten = 0;
        for id in ids.iter().filter(|id| **id != 0) {
            let bytes = self
                .db
                .get(SNAPSHOTS, &id.to_be_bytes())?
                .ok_or_else(|| Error::internal(format!("missing state snapshot {id}")))?;
            let snapshot = decode(&bytes)?;
            if snapshot.parent != 0 {
                continue;
            }
            let mut map: StateMap = snapshot
                .changes
                .iter()
                .filter(|(_, v)| *v != 0)
                .copied()
                .collect();
            let before = map.len();
            for (k, v) in entries {
                map.entry(*k).or_insert(*v);
            }
            if map.len() == before {
                continue;
            }
            let full = Snapshot {
                parent: 0,
                depth: 0,
                changes: map.into_iter().collect(),
            };
            commit.batch.put(SNAPSHOTS, id.to_be_bytes(), encode(&full));
            rewritten += 1;
        }
        Ok(rewritten)
    }

    /// Empties the cache (records were rewritten in place); loads begun before are not cached.
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.lock().unwrap().clear();
    }
}

fn apply(map: &mut StateMap, changes: &[(u64, u64)]) {
    for (k, v) in changes {
        if *v == 0 {
            map.remove(k);
        } else {
            map.insert(*k, *v);
        }
    }
}

/// The keys whose value differs between two states: (key, value in `new`, or 0 if gone).
pub fn diff(old: &StateMap, new: &StateMap) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = new
        .iter()
        .filter(|(k, v)| old.get(k) != Some(v))
        .map(|(k, v)| (*k, *v))
        .collect();
    out.extend(old.keys().filter(|k| !new.contains_key(k)).map(|k| (*k, 0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_encoding_round_trips() {
        let s = Snapshot {
            parent: 7,
            depth: 3,
            changes: vec![(1, 2), (3, 0)],
        };
        let d = decode(&encode(&s)).unwrap();
        assert_eq!((d.parent, d.depth, d.changes), (7, 3, vec![(1, 2), (3, 0)]));
        assert!(decode(&[1, 2, 3]).is_err());
    }

    #[test]
    fn filling_full_records_reaches_their_diffs_and_keeps_later_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::default();
        config.storage.path = dir.path().to_owned();
        let s = crate::services::Services::open(config).unwrap();
        // a: a full record (a partial state); b: a diff of it that sets key 3; c: another full
        // record (a chain cut) that holds key 3 already.
        let ((a, b, c), _) = s
            .globals
            .commit(|commit| {
                let (a, _) = s.state.create(commit, 0, &[(1, 10), (2, 20)])?;
                Ok(a)
            })
            .map(|(a, p)| {
                let ((b, c), _) = s
                    .globals
                    .commit(|commit| {
                        let (b, _) = s.state.create(commit, a, &[(3, 30)])?;
                        let (c, _) = s.state.create(commit, 0, &[(1, 10), (3, 31)])?;
                        Ok((b, c))
                    })
                    .unwrap();
                ((a, b, c), p)
            })
            .unwrap();
        let added: StateMap = [(3, 99), (4, 40)].into();
        let (rewritten, _) = s
            .globals
            .commit(|commit| {
                s.state
                    .fill_full_records(commit, &BTreeSet::from([a, b, c]), &added)
            })
            .unwrap();
        assert_eq!(rewritten, 2, "a and c are full records; b is a diff");
        s.state.forget_all();
        let load = |id| (*s.state.load(id).unwrap()).clone();
        assert_eq!(load(a), [(1, 10), (2, 20), (3, 99), (4, 40)].into());
        assert_eq!(load(b), [(1, 10), (2, 20), (3, 30), (4, 40)].into());
        assert_eq!(load(c), [(1, 10), (3, 31), (4, 40)].into());
    }

    #[test]
    fn loads_and_key_reads_along_chains_agree_with_a_model_cold_and_warm() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::default();
        config.storage.path = dir.path().to_owned();
        let s = crate::services::Services::open(config).unwrap();
        // 80 snapshots, each a child of the previous one (chains cut every MAX_CHAIN), setting
        // and removing keys 1..=12; the model is the expected full state of each.
        let mut ids = Vec::new();
        let mut models: Vec<StateMap> = Vec::new();
        let mut model = StateMap::new();
        let mut parent = 0;
        for i in 0..80u64 {
            let key = i * 7 % 12 + 1;
            let value = if i % 5 == 4 { 0 } else { 100 + i };
            let changes = [(key, value), ((i + 3) % 12 + 1, 200 + i)];
            apply(&mut model, &changes);
            let ((id, _), _) = s
                .globals
                .commit(|commit| s.state.create(commit, parent, &changes))
                .unwrap();
            ids.push(id);
            models.push(model.clone());
            parent = id;
        }
        let keys: Vec<u64> = (1..=13).collect();
        let check = |id: u64, model: &StateMap| {
            let expected: Vec<Option<u64>> = keys.iter().map(|k| model.get(k).copied()).collect();
            assert_eq!(
                s.state.get_many(id, &keys).unwrap(),
                expected,
                "snapshot {id}"
            );
        };
        // Cold: nothing cached; key reads first, then loads from the newest back.
        s.state.forget_all();
        for (id, model) in ids.iter().zip(&models) {
            check(*id, model);
        }
        for (id, model) in ids.iter().zip(&models).rev() {
            assert_eq!(*s.state.load(*id).unwrap(), *model, "snapshot {id}");
        }
        // Warm: everything cached now, and after a cache cut, mixed.
        for (id, model) in ids.iter().zip(&models) {
            check(*id, model);
        }
        s.state.forget_all();
        for (i, (id, model)) in ids.iter().zip(&models).enumerate() {
            if i % 3 == 0 {
                assert_eq!(*s.state.load(*id).unwrap(), *model, "snapshot {id}");
            }
            check(*id, model);
        }
        assert_eq!(s.state.get_many(0, &keys).unwrap(), vec![None; keys.len()]);
    }

    #[test]
    fn diff_lists_changed_and_removed_keys() {
        let old: StateMap = [(1, 10), (2, 20), (3, 30)].into();
        let new: StateMap = [(1, 10), (2, 21), (4, 40)].into();
        let mut d = diff(&old, &new);
        d.sort();
        assert_eq!(d, vec![(2, 21), (3, 0), (4, 40)]);
    }
}
