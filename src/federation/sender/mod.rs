//! Sending to other servers: a persisted per-destination queue of PDUs and EDUs (`queue`), and
//! one worker per destination that sends it as transactions, with backoff (`worker`).

pub mod cap;
pub mod e2ee;
pub mod edus;
pub mod queue;
pub mod worker;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use ruma::{OwnedServerName, ServerName, UserId};
use tokio::sync::mpsc;

use crate::{
    error::Result,
    services::{Services, rooms::membership::Membership, timeline::pdu::Pdu},
    storage::Db,
};

/// What the workers are told.
#[derive(Debug, Clone)]
pub enum Wake {
    /// Something was queued for this destination.
    Queued(OwnedServerName),
    /// The destination contacted us: retry now, backoff reset.
    PeerBack(OwnedServerName),
}

pub struct Sender {
    pub(crate) db: Db,
    tx: mpsc::UnboundedSender<Wake>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Wake>>>,
    /// Short room → the other servers with joined members (every local event reads it).
    /// Per room: the other servers with joined members, and whether one of ours is joined.
    servers: Mutex<HashMap<u64, (Arc<Vec<OwnedServerName>>, bool)>>,
}

impl Sender {
    pub fn new(db: Db) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            db,
            tx,
            rx: Mutex::new(Some(rx)),
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets the servers of a room after a membership change was written.
    pub fn membership_changed(&self, short_room: u64) {
        self.servers.lock().unwrap().remove(&short_room);
    }

    /// Tells the worker of `destination` that something was queued.
    pub fn wake(&self, destination: &ServerName) {
        let _ = self.tx.send(Wake::Queued(destination.to_owned()));
    }

    /// `origin` reached us: its worker retries now.
    pub fn peer_back(&self, origin: &ServerName) {
        let _ = self.tx.send(Wake::PeerBack(origin.to_owned()));
    }

    /// The receiving end, taken once by the server's worker supervisor.
    pub(crate) fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<Wake>> {
        self.rx.lock().unwrap().take()
    }
}

/// The other servers with joined members in a room (before `pdu`), plus the server of the target
/// of a membership event, without us and without `except`.
pub fn destinations_for(
    s: &Services,
    short_room: u64,
    pdu: &Pdu,
    except: Option<&ServerName>,
) -> Result<Vec<OwnedServerName>> {
    let mut servers: BTreeSet<OwnedServerName> =
        servers_in_room(s, short_room)?.iter().cloned().collect();
    if let Some(target) = pdu.state_key.as_deref().filter(|_| pdu.kind == ruma::events::TimelineEventType::RoomMember)
        && let Ok(user) = UserId::parse(target)
        // An invite reaches a server not yet in the room through `/invite`, not through `/send`.
        && pdu.membership().as_deref() != Some("invite")
    {
        servers.insert(user.server_name().to_owned());
    }
    servers.remove(s.globals.server_name());
    if let Some(except) = except {
        servers.remove(except);
    }
    Ok(servers.into_iter().collect())
}

/// The other servers with joined members in a room (cached until a membership change).
pub fn servers_in_room(s: &Services, short_room: u64) -> Result<Arc<Vec<OwnedServerName>>> {
    Ok(room_servers(s, short_room)?.0)
}

/// Whether a user of ours is joined to the room (cached with `servers_in_room`).
pub fn joined_here(s: &Services, short_room: u64) -> Result<bool> {
    Ok(room_servers(s, short_room)?.1)
}

/// In a group of processes the servers are read every time: another process may have written a
/// membership change (a remote server joining over federation through it) a moment ago.
fn room_servers(s: &Services, short_room: u64) -> Result<(Arc<Vec<OwnedServerName>>, bool)> {
    let cached = !s.globals.shared();
    if cached && let Some(servers) = s.federation.sender.servers.lock().unwrap().get(&short_room) {
        return Ok(servers.clone());
    }
    let ours = s.globals.server_name();
    let mut servers: BTreeSet<OwnedServerName> = s
        .membership
        .members(short_room, Membership::Join)?
        .iter()
        .map(|u| u.server_name().to_owned())
        .collect();
    let here = servers.contains(ours);
    // Joined with partial state: the servers the resident named, until the members are known.
    if let Some(partial) = s.partial_state.get(short_room)? {
        servers.extend(partial.servers);
    }
    let servers: Arc<Vec<OwnedServerName>> =
        Arc::new(servers.into_iter().filter(|n| n != ours).collect());
    if cached {
        s.federation
            .sender
            .servers
            .lock()
            .unwrap()
            .insert(short_room, (servers.clone(), here));
    }
    Ok((servers, here))
}
