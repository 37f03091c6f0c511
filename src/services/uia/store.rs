//! Where user-interactive authentication sessions are kept: in the process's memory (one
//! process), or in the database when several processes share it (`[storage.postgres] shared`),
//! so that a client's next stage may reach any process of the group.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use ruma::OwnedUserId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{MAX_SESSIONS, SESSION_LIFETIME};
use crate::{
    error::Result,
    storage::{
        Batch, Db, Map,
        db::{decode_json, encode_json},
    },
};

/// Shared sessions: session → JSON [`Session`].
pub const UIA_SESSIONS: Map = Map("uia_sessions");
/// Shared sessions by age: `created ms (8 bytes) ‖ session` → empty.
pub const UIA_SESSIONS_BY_AGE: Map = Map("uia_sessions_by_age");
pub const MAPS: &[Map] = &[UIA_SESSIONS, UIA_SESSIONS_BY_AGE];

/// Expired shared sessions deleted at most per new session (the rest go with the next ones).
const SWEEP_BATCH: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub completed: Vec<String>,
    /// Milliseconds since the epoch.
    pub created: u64,
    /// The signed-in user the session confirms (None: registration). A stage completed outside
    /// the request (single sign-on's fallback page) must be by this user.
    pub owner: Option<OwnedUserId>,
    /// What stages found out (the e-mail address a registration validated), handed to the
    /// request that completes the session.
    pub data: serde_json::Map<String, Value>,
}

impl Session {
    pub fn live(&self, now: u64) -> bool {
        now.saturating_sub(self.created) < SESSION_LIFETIME.as_millis() as u64
    }
}

pub enum Store {
    Memory(Mutex<HashMap<String, Session>>),
    Shared {
        db: Db,
        /// When this process created its sessions still in their lifetime: beyond
        /// [`MAX_SESSIONS`] of them, the oldest session of the group goes.
        created_here: Mutex<VecDeque<u64>>,
        /// Serializes changes where the engine has no lock of its own.
        local: Mutex<()>,
    },
}

impl Store {
    pub fn shared(db: Db) -> Self {
        Store::Shared {
            db,
            created_here: Mutex::default(),
            local: Mutex::default(),
        }
    }

    /// Keeps a new session, making room by forgetting expired sessions, then the oldest.
    pub fn insert(&self, id: &str, session: Session, now: u64) -> Result<()> {
        match self {
            Store::Memory(sessions) => {
                let mut sessions = sessions.lock().unwrap_or_else(|e| e.into_inner());
                if sessions.len() >= MAX_SESSIONS {
                    sessions.retain(|_, s| s.live(now));
                }
                if sessions.len() >= MAX_SESSIONS
                    && let Some(oldest) = sessions
                        .iter()
                        .min_by_key(|(_, s)| s.created)
                        .map(|(k, _)| k.clone())
                {
                    sessions.remove(&oldest);
                }
                sessions.insert(id.to_owned(), session);
            }
            Store::Shared {
                db, created_here, ..
            } => {
                let mut batch = Batch::new();
                let lifetime = SESSION_LIFETIME.as_millis() as u64;
                let mut doomed = expired(db, now.saturating_sub(lifetime))?;
                let over = {
                    let mut here = created_here.lock().unwrap_or_else(|e| e.into_inner());
                    while here
                        .front()
                        .is_some_and(|t| now.saturating_sub(*t) >= lifetime)
                    {
                        here.pop_front();
                    }
                    here.push_back(now);
                    let over = here.len() > MAX_SESSIONS;
                    if over {
                        here.pop_front();
                    }
                    over
                };
                if over && doomed.is_empty() {
                    doomed = oldest(db)?;
                }
                for (age_key, old) in doomed {
                    batch.delete(UIA_SESSIONS_BY_AGE, age_key);
                    batch.delete(UIA_SESSIONS, old.into_bytes());
                }
                batch.put(UIA_SESSIONS, id.as_bytes(), encode_json(&session));
                batch.put(
                    UIA_SESSIONS_BY_AGE,
                    age_key(session.created, id),
                    Vec::new(),
                );
                db.write(batch)?;
            }
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<Session>> {
        Ok(match self {
            Store::Memory(sessions) => sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .cloned(),
            Store::Shared { db, .. } => db.get_json(UIA_SESSIONS, id.as_bytes())?,
        })
    }

    /// Changes a kept session with `change`, atomically for the group; None when it is gone.
    pub fn update<R>(&self, id: &str, change: impl FnOnce(&mut Session) -> R) -> Result<Option<R>> {
        self.locked(id, |session| {
            let Some(mut session) = session else {
                return (None, Change::Keep);
            };
            let result = change(&mut session);
            (Some(result), Change::Put(session))
        })
    }

    /// Takes a session out (once: of concurrent takers, one gets it).
    pub fn take(&self, id: &str) -> Result<Option<Session>> {
        self.locked(id, |session| match session {
            Some(session) => (Some(session), Change::Remove),
            None => (None, Change::Keep),
        })
    }

    /// How many sessions are kept.
    pub fn len(&self) -> Result<usize> {
        Ok(match self {
            Store::Memory(sessions) => sessions.lock().unwrap_or_else(|e| e.into_inner()).len(),
            Store::Shared { db, .. } => db.scan_prefix(UIA_SESSIONS, &[]).count(),
        })
    }

    /// Reads session `id` and applies what `decide` makes of it, with no other change to it
    /// in between (the process's lock alone; the database's lock in a group).
    fn locked<R>(
        &self,
        id: &str,
        decide: impl FnOnce(Option<Session>) -> (R, Change),
    ) -> Result<R> {
        match self {
            Store::Memory(sessions) => {
                let mut sessions = sessions.lock().unwrap_or_else(|e| e.into_inner());
                let (result, change) = decide(sessions.get(id).cloned());
                match change {
                    Change::Keep => {}
                    Change::Put(session) => {
                        sessions.insert(id.to_owned(), session);
                    }
                    Change::Remove => {
                        sessions.remove(id);
                    }
                }
                Ok(result)
            }
            Store::Shared { db, local, .. } => {
                db.read_then_write(local, UIA_SESSIONS, id.as_bytes(), |stored| {
                    let session = stored
                        .map(|bytes| decode_json::<Session>(UIA_SESSIONS, &bytes))
                        .transpose()?;
                    let created = session.as_ref().map(|s| s.created);
                    let (result, change) = decide(session);
                    let mut batch = Batch::new();
                    match change {
                        Change::Keep => {}
                        Change::Put(session) => {
                            batch.put(UIA_SESSIONS, id.as_bytes(), encode_json(&session));
                        }
                        Change::Remove => {
                            batch.delete(UIA_SESSIONS, id.as_bytes());
                            if let Some(created) = created {
                                batch.delete(UIA_SESSIONS_BY_AGE, age_key(created, id));
                            }
                        }
                    }
                    Ok::<_, crate::error::Error>((result, batch))
                })
            }
        }
    }
}

enum Change {
    Keep,
    Put(Session),
    Remove,
}

fn age_key(created: u64, id: &str) -> Vec<u8> {
    let mut key = created.to_be_bytes().to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

/// Sessions created before `before` (a batch of them): (age key, session).
fn expired(db: &Db, before: u64) -> Result<Vec<(Vec<u8>, String)>> {
    let mut found = Vec::new();
    for entry in db.scan_prefix(UIA_SESSIONS_BY_AGE, &[]) {
        let (key, _) = entry?;
        let Some(created) = key.get(..8).and_then(|b| b.try_into().ok()) else {
            continue;
        };
        if u64::from_be_bytes(created) >= before || found.len() >= SWEEP_BATCH {
            break;
        }
        let id = String::from_utf8_lossy(&key[8..]).into_owned();
        found.push((key.into_vec(), id));
    }
    Ok(found)
}

/// The oldest session of the group.
fn oldest(db: &Db) -> Result<Vec<(Vec<u8>, String)>> {
    Ok(match db.scan_prefix(UIA_SESSIONS_BY_AGE, &[]).next() {
        Some(entry) => {
            let (key, _) = entry?;
            let id = String::from_utf8_lossy(key.get(8..).unwrap_or_default()).into_owned();
            vec![(key.into_vec(), id)]
        }
        None => Vec::new(),
    })
}
