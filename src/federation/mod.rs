//! Federation, part 1: identity and transport. Our signing keys and the notary
//! (`own_keys`, `remote_keys`), X-Matrix request signatures (`xmatrix`), server discovery
//! (`discovery`, `resolve`), the TLS client (`client`, `tls`) and listener (`listener`).
//! HTTP routes live in `api/federation`; this is the service side, reached as `services.federation`.

pub mod acl;
pub mod backfill;
pub mod client;
pub mod connector;
pub mod discovery;
pub mod dns;
pub mod hierarchy;
pub mod identity;
pub mod incoming;
pub mod invite;
pub mod ip_ranges;
pub mod join;
pub mod key_fetch_gate;
pub mod keys_client;
pub mod listener;
pub mod own_keys;
pub mod pool;
pub mod profile;
pub mod public_rooms;
pub mod read;
pub mod remote_keys;
pub mod request;
pub mod resolve;
pub mod sender;
pub mod server_visibility;
pub mod signing;
pub mod third_party_invite;
pub mod timed_cache;
pub mod timestamp;
pub mod tls;
pub mod xmatrix;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::StatusCode;
use ruma::OwnedServerName;

use crate::{
    config::Config,
    error::{Error, Result},
    storage::{Db, Map},
};

/// Other servers' keys: server str ‖ key id str → [`signing::KeyRecord`] JSON.
pub const SERVER_KEYS: Map = Map("server_keys");
/// The newest key document of each server, as it signed it: server name → JSON
/// `{fetched_ts, document}` (served again, co-signed, by the notary).
pub const SERVER_KEY_DOCUMENTS: Map = Map("server_key_documents");
/// Our retired signing keys: key id → [`signing::OldKey`] JSON.
pub const OLD_SIGNING_KEYS: Map = Map("old_signing_keys");
pub const MAPS: &[Map] = &[
    SERVER_KEYS,
    SERVER_KEY_DOCUMENTS,
    OLD_SIGNING_KEYS,
    sender::queue::QUEUE,
    incoming::transaction::TXNS,
    incoming::txn_expiry::TXN_TIMES,
];

/// How long a resolved destination is reused.
const RESOLVE_CACHE: Duration = Duration::from_secs(3600);
/// Resolved destinations kept (server names come from peers and clients: bounded).
const RESOLVE_CACHE_ENTRIES: usize = 10_000;
/// Origins whose transaction lock is kept while unused; beyond, unused locks are dropped.
const ORIGIN_LOCKS_KEPT: usize = 1_000;

pub struct Federation {
    pub(crate) db: Db,
    pub transport: client::Transport,
    /// The bound address of the federation listener, once it listens.
    local_addr: OnceLock<SocketAddr>,
    resolved: Mutex<timed_cache::TimedCache<OwnedServerName, discovery::Destination>>,
    /// Fetches of other servers' keys: one at a time per server, one per interval.
    pub key_fetches: key_fetch_gate::KeyFetchGate,
    /// The outgoing queue and its workers' wake-up channel.
    pub sender: sender::Sender,
    /// One transaction at a time per origin.
    origin_locks: Mutex<HashMap<OwnedServerName, Arc<tokio::sync::Mutex<()>>>>,
    /// Other servers' recent `hierarchy` answers.
    pub hierarchy_cache: hierarchy::AnswerCache,
    /// Fills of rooms' older history in progress, and rooms whose servers were unreachable.
    pub backfill: backfill::Backfill,
}

impl Federation {
    pub fn new(config: &Config, db: Db) -> Result<Self> {
        let tls = tls::client_config(config).map_err(Error::internal)?;
        let timeout = Duration::from_secs(config.federation.request_timeout_secs);
        let policy =
            ip_ranges::AddressPolicy::from_config(&config.network).map_err(Error::internal)?;
        Ok(Self {
            db: db.clone(),
            transport: client::Transport::new(tls, timeout, connector::Connector::new(policy)),
            local_addr: OnceLock::new(),
            resolved: Mutex::new(timed_cache::TimedCache::new(
                RESOLVE_CACHE,
                RESOLVE_CACHE_ENTRIES,
            )),
            key_fetches: key_fetch_gate::KeyFetchGate::new(Duration::from_secs(
                config.federation.key_fetch_interval_secs,
            )),
            sender: sender::Sender::new(db.clone()),
            origin_locks: Mutex::new(HashMap::new()),
            hierarchy_cache: hierarchy::AnswerCache::default(),
            backfill: Default::default(),
        })
    }

    /// The lock that serialises the transactions of `origin`.
    pub fn origin_lock(&self, origin: &ruma::ServerName) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.origin_locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.len() >= ORIGIN_LOCKS_KEPT && !locks.contains_key(origin) {
            // Only locks nobody holds or waits for are dropped.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(origin.to_owned()).or_default().clone()
    }

    /// Records the address the federation listener is bound to (set once, by the server).
    pub fn set_local_addr(&self, addr: SocketAddr) {
        let _ = self.local_addr.set(addr);
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr.get().copied()
    }

    /// What `/.well-known/matrix/server` answers: `federation.well_known_server`, or the host of
    /// the server name with the federation listener's port.
    pub fn well_known_server(&self, config: &Config) -> String {
        if let Some(delegated) = &config.federation.well_known_server {
            return delegated.clone();
        }
        let name = config.server_name.as_str();
        let host = discovery::split_host_port(name).map_or(name, |(h, _)| h);
        let port = self
            .local_addr()
            .map_or(config.federation.listen.port(), |a| a.port());
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 401 M_UNAUTHORIZED: the answer to every failed X-Matrix check.
pub fn unauthorized(message: impl Into<String>) -> Error {
    Error::new(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED", message)
}

/// A failure to talk to another server.
pub fn unreachable(message: impl Into<String>) -> Error {
    Error::new(StatusCode::BAD_GATEWAY, "M_UNKNOWN", message)
}
