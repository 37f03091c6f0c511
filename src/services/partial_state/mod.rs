//! Rooms joined with partial state (MSC3706, "faster joins"): the join is answered as soon as it is
//! stored with the state the resident server sent without its member events, and the full state
//! is fetched in the background (`federation::join::resync`). While a room is partial it is
//! recorded here; [`complete`] makes its state full in one batch and clears the record.
//! Documented in spec/federation.md ("Partial-state joins").

pub mod complete;
pub mod sender_members;

use std::{collections::HashMap, sync::Mutex, time::Duration};

use ruma::{OwnedEventId, OwnedRoomId, OwnedServerName};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{
    error::{Error, Result},
    services::globals::Commit,
    storage::{Db, Map},
};

/// Short room id (u64 BE) → [`PartialRoom`] JSON, while the room's state is partial.
pub const PARTIAL_STATE_ROOMS: Map = Map("partial_state_rooms");
pub const MAPS: &[Map] = &[PARTIAL_STATE_ROOMS];

/// Waiters for a room's full state look again this often (another process may complete it).
const LOOK_AGAIN: Duration = Duration::from_millis(250);

/// What a partial room's resync needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialRoom {
    pub room_id: OwnedRoomId,
    pub short_room: u64,
    /// Our join event: the full state is the state before it, asked of the room's servers.
    pub join_event: OwnedEventId,
    /// The servers in the room as the resident answered (`servers_in_room`), the resident first:
    /// the room's events go to them, theirs are accepted from them, until the state is full.
    pub servers: Vec<OwnedServerName>,
    /// When the join was stored (milliseconds since the epoch).
    pub since_ms: u64,
}

pub struct PartialState {
    db: Db,
    shared: bool,
    /// Alone on the database: the partial rooms (read at start, kept with each change). In a
    /// group of processes another may complete a room: the map is read every time.
    known: Mutex<HashMap<u64, PartialRoom>>,
    /// Counts changes: a room became partial or full here (resync worker, waiters).
    changes: watch::Sender<u64>,
}

impl PartialState {
    pub fn open(db: Db, shared: bool) -> Result<Self> {
        let this = Self {
            db,
            shared,
            known: Mutex::new(HashMap::new()),
            changes: watch::Sender::new(0),
        };
        if !shared {
            let rooms = this.list()?;
            let mut known = this.known.lock().unwrap();
            for room in rooms {
                known.insert(room.short_room, room);
            }
        }
        Ok(this)
    }

    /// The record of a room whose state is partial; None when its state is full.
    pub fn get(&self, short_room: u64) -> Result<Option<PartialRoom>> {
        if !self.shared {
            return Ok(self.known.lock().unwrap().get(&short_room).cloned());
        }
        self.read(short_room)
    }

    /// The record as stored (under the commit lock in a group, every process's commit is visible).
    pub fn read(&self, short_room: u64) -> Result<Option<PartialRoom>> {
        self.db
            .get(PARTIAL_STATE_ROOMS, &short_room.to_be_bytes())?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    pub fn is_partial(&self, short_room: u64) -> Result<bool> {
        if !self.shared {
            return Ok(self.known.lock().unwrap().contains_key(&short_room));
        }
        Ok(self.read(short_room)?.is_some())
    }

    /// Whether any room may be partial (always in a group, where another process may join one):
    /// when not, readers that would wait for a room's full state skip even looking.
    pub fn any(&self) -> bool {
        self.shared || !self.known.lock().unwrap().is_empty()
    }

    /// Every partial room, from the database.
    pub fn list(&self) -> Result<Vec<PartialRoom>> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(PARTIAL_STATE_ROOMS, b"") {
            let (_, value) = entry?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    /// Records in `c` that a room's state is partial.
    pub fn mark<'a>(&'a self, c: &mut Commit<'a>, room: PartialRoom) -> Result<()> {
        let bytes = serde_json::to_vec(&room).map_err(|e| Error::internal(e.to_string()))?;
        c.batch
            .put(PARTIAL_STATE_ROOMS, room.short_room.to_be_bytes(), bytes);
        c.after_write(move || {
            self.known.lock().unwrap().insert(room.short_room, room);
            self.changed();
        });
        Ok(())
    }

    /// Records in `c` that a room's state is full.
    pub fn clear<'a>(&'a self, c: &mut Commit<'a>, short_room: u64) {
        c.batch
            .delete(PARTIAL_STATE_ROOMS, short_room.to_be_bytes());
        c.after_write(move || {
            self.known.lock().unwrap().remove(&short_room);
            self.changed();
        });
    }

    /// Wakes the resync worker and the waiters for full state (also for another process's change).
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Waits until the room's state is full, at most `limit`; returns whether it is.
    pub async fn wait_full(&self, short_room: u64, limit: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut changes = self.subscribe();
        loop {
            changes.mark_unchanged();
            if !self.is_partial(short_room)? {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let _ = tokio::time::timeout(LOOK_AGAIN.min(deadline - now), changes.changed()).await;
        }
    }
}

/// While a room's state is partial, the event of `(kind, state_key)` among `pdu`'s own auth
/// events (which were checked against each other when it arrived); None otherwise.
pub fn auth_event_while_partial(
    s: &crate::services::Services,
    pdu: &crate::services::timeline::pdu::Pdu,
    kind: &ruma::events::StateEventType,
    state_key: &str,
) -> Result<Option<std::sync::Arc<crate::services::timeline::StoredEvent>>> {
    let Some(short_room) = s.short.room(&pdu.room_id)? else {
        return Ok(None);
    };
    if !s.partial_state.is_partial(short_room)? {
        return Ok(None);
    }
    for id in &pdu.auth_events {
        if let Some(event) = crate::services::rooms::event_by_id(s, id)?
            && event.pdu.room_id == pdu.room_id
            && event.pdu.state_key.as_deref() == Some(state_key)
            && event.pdu.kind.to_string() == kind.to_string()
        {
            return Ok(Some(event));
        }
    }
    Ok(None)
}

fn decode(bytes: &[u8]) -> Result<PartialRoom> {
    serde_json::from_slice(bytes).map_err(|e| Error::internal(format!("partial room record: {e}")))
}

/// Requests that need a room's full state (other servers' `state`, `state_ids`, joins through
/// us) are refused while it is partial: 404 `M_NOT_FOUND`, as Synapse answers them.
pub fn refuse_while_partial(s: &crate::services::Services, room_id: &ruma::RoomId) -> Result<()> {
    if let Some(short_room) = s.short.room(room_id)?
        && s.partial_state.is_partial(short_room)?
    {
        return Err(Error::not_found(
            "This server is not fully joined to the room yet",
        ));
    }
    Ok(())
}
