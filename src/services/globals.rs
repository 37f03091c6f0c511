//! Server-wide state: configuration, the signing key, and the commit path that hands out stream
//! positions and short ids.
//!
//! Every write that clients observe through /sync goes through [`Globals::commit`]: positions are
//! allocated and the batch written under one lock, so that a reader that sees position `p` also
//! sees every change at a position `<= p`. When several processes share the database
//! (`storage.postgres.shared`), the lock is the database's (`Engine::sequence`), the counters are
//! read under it, and a process advances its position past the others' commits only after
//! applying their invalidations (`services::cluster`).

use std::sync::{
    Mutex, OnceLock,
    atomic::{AtomicU64, Ordering},
};

use ruma::{OwnedServerName, signatures::Ed25519KeyPair};
use tokio::sync::watch;

use crate::{
    config::{Config, EngineKind},
    error::{Error, Result},
    services::cluster::{self, INVALIDATIONS, Invalidation},
    storage::{Batch, Db, Map, keys::u64_from},
};

pub const GLOBAL: Map = Map("global");
pub const MAPS: &[Map] = &[GLOBAL, INVALIDATIONS];

/// Applies an invalidation recorded by a commit to this process's caches.
/// Applies another process's invalidation, recorded at a stream position.
pub type InvalidationHandler = Box<dyn Fn(u64, &Invalidation) + Send + Sync>;

const KEY_POS: &[u8] = b"stream_pos";
const KEY_SHORT: &[u8] = b"next_short_id";
const KEY_SIGNING: &[u8] = b"signing_key";

pub struct Globals {
    pub config: Config,
    pub keypair: Ed25519KeyPair,
    pub db: Db,
    commit_lock: Mutex<()>,
    pos: AtomicU64,
    next_short: AtomicU64,
    notify: watch::Sender<u64>,
    /// Several processes share the database.
    shared: bool,
    /// Held while moving `pos` past other processes' commits and applying their invalidations.
    advance_lock: Mutex<()>,
    on_invalidation: OnceLock<InvalidationHandler>,
    /// This process runs the background work (holds the lease, `cluster::lease`).
    background_here: std::sync::atomic::AtomicBool,
    /// Where the streams last changed (/sync's shortcuts; off in a group of processes).
    pub stream_changes: super::stream_changes::StreamChanges,
}

/// One atomic change under the commit lock.
pub struct Commit<'a> {
    pub batch: Batch,
    pos: u64,
    pos_allocated: bool,
    next_short: u64,
    short_allocated: bool,
    /// In-memory caches updated only once the batch is written, so that a failed commit leaves no
    /// cache entry for an id that was never persisted (and will be handed out again).
    after_write: Vec<Box<dyn FnOnce() + 'a>>,
    /// Short ids created in this commit, by the key they were created for (a second request for the
    /// same key in the same commit must get the same id: the caches only learn it after the write).
    created: std::collections::HashMap<Vec<u8>, u64>,
    /// What this commit makes stale in other processes' memory (recorded when shared).
    invalidations: Vec<Invalidation>,
    /// Stream changes, recorded at the commit's position once written (`stream_changes`).
    stream_changes: Vec<super::stream_changes::StreamChange>,
}

impl<'a> Commit<'a> {
    /// The short id this commit already created for `key`, if any.
    pub fn created_id(&self, key: &[u8]) -> Option<u64> {
        self.created.get(key).copied()
    }

    pub fn note_created(&mut self, key: Vec<u8>, id: u64) {
        self.created.insert(key, id);
    }

    /// Notes a change of a stream (at a position this commit allocated): /sync's shortcuts
    /// learn it once the batch is written, before the position is served.
    pub fn stream_changed(&mut self, change: super::stream_changes::StreamChange) {
        self.stream_changes.push(change);
    }

    /// Records that this commit makes `invalidation`'s cache entries stale in the other processes
    /// of a group (this process updates its own caches itself, with [`Commit::after_write`]).
    pub fn invalidate(&mut self, invalidation: Invalidation) {
        self.invalidations.push(invalidation);
    }

    /// Runs `update` after the batch is written, and not at all if the commit fails.
    pub fn after_write(&mut self, update: impl FnOnce() + 'a) {
        self.after_write.push(Box::new(update));
    }

    /// Allocates the next stream position.
    pub fn next_pos(&mut self) -> u64 {
        self.pos += 1;
        self.pos_allocated = true;
        self.pos
    }

    /// Allocates a new short id (for events, rooms, state keys and state snapshots).
    pub fn short_id(&mut self) -> u64 {
        let id = self.next_short;
        self.next_short += 1;
        self.short_allocated = true;
        id
    }
}

impl Globals {
    pub fn open(config: Config, db: Db) -> Result<Self> {
        let keypair = load_or_generate_key(&db)?;
        let pos = db.get_u64(GLOBAL, KEY_POS)?.unwrap_or(0);
        let next_short = db.get_u64(GLOBAL, KEY_SHORT)?.unwrap_or(1);
        let (notify, _) = watch::channel(pos);
        let shared =
            config.storage.engine == EngineKind::Postgres && config.storage.postgres.shared;
        Ok(Self {
            config,
            keypair,
            db,
            commit_lock: Mutex::new(()),
            pos: AtomicU64::new(pos),
            next_short: AtomicU64::new(next_short),
            notify,
            shared,
            advance_lock: Mutex::new(()),
            on_invalidation: OnceLock::new(),
            background_here: Default::default(),
            stream_changes: Default::default(),
        })
    }

    /// Several processes share the database.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Whether this process runs the background work (holds the lease).
    pub fn background_here(&self) -> bool {
        self.background_here.load(Ordering::Acquire)
    }

    pub fn set_background_here(&self, here: bool) {
        self.background_here.store(here, Ordering::Release);
    }

    /// Sets what applies other processes' invalidations (once, when the services are built).
    pub fn set_invalidation_handler(&self, handler: InvalidationHandler) {
        let _ = self.on_invalidation.set(handler);
    }

    /// Moves this process's position to `to` (when ahead): applies the invalidations recorded
    /// up to it first, then publishes it. `own`: `to` is this process's commit, whose
    /// invalidations its writer applied itself (and may hold the locks they take).
    fn advance_to(&self, to: u64, own: bool) -> Result<()> {
        let _guard = self.advance_lock.lock().unwrap_or_else(|e| e.into_inner());
        let seen = self.pos.load(Ordering::Acquire);
        if to <= seen {
            return Ok(());
        }
        if let Some(apply) = self.on_invalidation.get() {
            for (pos, invalidation) in cluster::recorded(&self.db, seen, to)? {
                if !(own && pos == to) {
                    apply(pos, &invalidation);
                }
            }
        }
        self.pos.store(to, Ordering::Release);
        self.notify.send_replace(to);
        Ok(())
    }

    /// Catches up with what the other processes of a group committed (a no-op alone).
    pub fn catch_up(&self) -> Result<()> {
        if !self.shared {
            return Ok(());
        }
        let stored = self.db.get_u64(GLOBAL, KEY_POS)?.unwrap_or(0);
        self.advance_to(stored, false)
    }

    pub fn server_name(&self) -> &OwnedServerName {
        &self.config.server_name
    }

    /// The last committed stream position.
    pub fn current_pos(&self) -> u64 {
        self.pos.load(Ordering::Acquire)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Runs `f` under the commit lock and writes its batch atomically, together with the
    /// counters it advanced. Keep `f` short: it serialises every writer.
    pub fn commit<'a, R>(&self, f: impl FnOnce(&mut Commit<'a>) -> Result<R>) -> Result<(R, u64)> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Shared: the database's lock, and the counters as the last commit of any process left them.
        let sequenced = self.db.sequence(GLOBAL, &[KEY_POS, KEY_SHORT])?;
        let (pos, next_short) = match &sequenced {
            Some(s) => (
                stored_u64(&s.values()[0])?.unwrap_or(0),
                stored_u64(&s.values()[1])?.unwrap_or(1),
            ),
            None => (
                self.pos.load(Ordering::Acquire),
                self.next_short.load(Ordering::Acquire),
            ),
        };
        let mut c = Commit {
            batch: Batch::new(),
            pos,
            pos_allocated: false,
            next_short,
            short_allocated: false,
            after_write: Vec::new(),
            created: Default::default(),
            invalidations: Vec::new(),
            stream_changes: Vec::new(),
        };
        let result = f(&mut c)?;
        let invalidations = std::mem::take(&mut c.invalidations);
        if self.shared && !invalidations.is_empty() {
            // Invalidations are read by position: they need one.
            if !c.pos_allocated {
                c.next_pos();
            }
            let now = crate::util::now_ms();
            for (index, invalidation) in invalidations.iter().enumerate() {
                c.batch.put(
                    INVALIDATIONS,
                    cluster::key(c.pos, index as u16),
                    cluster::encode(invalidation, now),
                );
            }
        }
        if c.pos_allocated {
            c.batch.put(GLOBAL, KEY_POS, c.pos.to_be_bytes());
        }
        if c.short_allocated {
            c.batch.put(GLOBAL, KEY_SHORT, c.next_short.to_be_bytes());
        }
        match sequenced {
            Some(s) => s.commit(c.batch, &c.pos.to_string())?,
            None => self.db.write(c.batch)?,
        }
        for update in c.after_write {
            update();
        }
        for change in c.stream_changes {
            self.stream_changes.record(change, c.pos);
        }
        self.next_short.store(c.next_short, Ordering::Release);
        if c.pos_allocated {
            if self.shared {
                // Other processes' commits before this one may be unseen yet: their
                // invalidations first.
                self.advance_to(c.pos, true)?;
            } else {
                self.pos.store(c.pos, Ordering::Release);
                self.notify.send_replace(c.pos);
            }
        }
        Ok((result, c.pos))
    }

    /// Wakes the long-polling syncs without a new position (typing notifications).
    pub fn wake(&self) {
        let pos = self.current_pos();
        self.notify.send_replace(pos);
    }
}

/// The server's signing key, generated on first start. Processes of a group that start together
/// generate it under the database's commit lock: one key, which all of them use.
fn load_or_generate_key(db: &Db) -> Result<Ed25519KeyPair> {
    let sequenced = db.sequence(GLOBAL, &[KEY_SIGNING])?;
    let stored = match &sequenced {
        Some(s) => s.values()[0].clone(),
        None => db.get(GLOBAL, KEY_SIGNING)?,
    };
    if let Some(stored) = stored {
        let (version, der) = split_key_record(&stored)
            .ok_or_else(|| Error::internal("corrupt signing key record"))?;
        return Ed25519KeyPair::from_der(der, version.to_owned())
            .map_err(|e| Error::internal(format!("bad signing key: {e}")));
    }
    let der = Ed25519KeyPair::generate();
    let version: String = {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..6)
            .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
            .collect()
    };
    let mut record = version.as_bytes().to_vec();
    record.push(0xFF);
    record.extend_from_slice(&der);
    match sequenced {
        Some(s) => {
            let mut batch = Batch::new();
            batch.put(GLOBAL, KEY_SIGNING, record);
            s.commit(batch, "")?;
        }
        None => db.put(GLOBAL, KEY_SIGNING, record)?,
    }
    Ed25519KeyPair::from_der(&der, version)
        .map_err(|e| Error::internal(format!("bad signing key: {e}")))
}

fn split_key_record(record: &[u8]) -> Option<(&str, &[u8])> {
    let sep = record.iter().position(|b| *b == 0xFF)?;
    Some((
        std::str::from_utf8(&record[..sep]).ok()?,
        &record[sep + 1..],
    ))
}

fn stored_u64(value: &Option<Vec<u8>>) -> Result<Option<u64>> {
    value.as_deref().map(read_u64).transpose()
}

/// Reads a big-endian u64 value, for maps whose values are counters or short ids.
pub fn read_u64(bytes: &[u8]) -> Result<u64> {
    u64_from(bytes).ok_or_else(|| Error::internal("corrupt numeric value"))
}
