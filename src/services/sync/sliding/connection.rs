//! Per-connection memory of simplified sliding sync (MSC4186): what each connection (user, device,
//! `conn_id`) was already sent, under the `pos` token that the answer carried.
//!
//! Kept in memory only, and bounded: at most [`MAX_CONNECTIONS`] connections (the least recently
//! used one is dropped first) and the last [`KEPT_POSITIONS`] answers of each. A `pos` that is not
//! (or no longer) here, after a restart for example, is answered with `M_UNKNOWN_POS`, and the
//! client starts over without `pos`: nothing acknowledged is lost, since everything is computed
//! again from the stream positions stored in RocksDB.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use ruma::{OwnedRoomId, OwnedUserId};

pub const MAX_CONNECTIONS: usize = 1_000;
pub const KEPT_POSITIONS: usize = 4;

/// What a connection had been sent when an answer was given.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// The stream position and typing counter of the answer.
    pub stream: u64,
    pub typing: u64,
    /// Each room sent on this connection: the stream position it was sent up to.
    pub rooms: HashMap<OwnedRoomId, u64>,
    /// The `count` of each list.
    pub list_counts: HashMap<String, u64>,
}

type Key = (OwnedUserId, String, String);

struct Connection {
    last_used: u64,
    positions: VecDeque<(u64, Arc<Sent>)>,
}

/// Every live connection of the server (a field of `Services`, no global).
pub struct Connections {
    /// Each room's last bump event (the lists' order).
    pub bumps: super::bumps::Bumps,
    next_pos: AtomicU64,
    use_counter: AtomicU64,
    map: Mutex<HashMap<Key, Connection>>,
}

impl Default for Connections {
    fn default() -> Self {
        // Tokens of a previous run of the server never match the ones of this run.
        Self {
            bumps: Default::default(),
            next_pos: AtomicU64::new(crate::util::now_ms()),
            use_counter: AtomicU64::new(0),
            map: Mutex::default(),
        }
    }
}

/// A `pos` token: the connection's answer number and the stream position (for logs; opaque to
/// clients).
pub fn encode_pos(id: u64, stream: u64) -> String {
    format!("{id}_{stream}")
}

pub fn parse_pos(pos: &str) -> Option<u64> {
    pos.split_once('_')?.0.parse().ok()
}

impl Connections {
    /// What the connection had been sent at `pos`; `None`: unknown or expired (`M_UNKNOWN_POS`).
    pub fn sent_at(
        &self,
        user: &OwnedUserId,
        device: &str,
        conn_id: &str,
        pos: &str,
    ) -> Option<Arc<Sent>> {
        let id = parse_pos(pos)?;
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let conn = map.get(&(user.clone(), device.to_owned(), conn_id.to_owned()))?;
        conn.positions
            .iter()
            .find(|(p, _)| *p == id)
            .map(|(_, sent)| sent.clone())
    }

    /// A request without `pos` starts the connection over.
    pub fn reset(&self, user: &OwnedUserId, device: &str, conn_id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(user.clone(), device.to_owned(), conn_id.to_owned()));
    }

    /// Records an answer; returns its `pos` token.
    pub fn record(&self, user: &OwnedUserId, device: &str, conn_id: &str, sent: Sent) -> String {
        let id = self.next_pos.fetch_add(1, Ordering::Relaxed);
        let token = encode_pos(id, sent.stream);
        let used = self.use_counter.fetch_add(1, Ordering::Relaxed);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let key = (user.clone(), device.to_owned(), conn_id.to_owned());
        if !map.contains_key(&key)
            && map.len() >= MAX_CONNECTIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let conn = map.entry(key).or_insert_with(|| Connection {
            last_used: used,
            positions: VecDeque::new(),
        });
        conn.last_used = used;
        conn.positions.push_back((id, Arc::new(sent)));
        while conn.positions.len() > KEPT_POSITIONS {
            conn.positions.pop_front();
        }
        token
    }

    /// How many connections are remembered.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> OwnedUserId {
        "@a:x".try_into().unwrap()
    }

    #[test]
    fn a_recorded_pos_is_found_and_an_unknown_one_is_not() {
        let conns = Connections::default();
        let token = conns.record(
            &user(),
            "D",
            "main",
            Sent {
                stream: 7,
                ..Sent::default()
            },
        );
        assert_eq!(
            conns.sent_at(&user(), "D", "main", &token).unwrap().stream,
            7
        );
        assert!(conns.sent_at(&user(), "D", "other", &token).is_none());
        assert!(conns.sent_at(&user(), "E", "main", &token).is_none());
        assert!(conns.sent_at(&user(), "D", "main", "garbage").is_none());
        conns.reset(&user(), "D", "main");
        assert!(conns.sent_at(&user(), "D", "main", &token).is_none());
    }

    #[test]
    fn only_the_last_positions_are_kept() {
        let conns = Connections::default();
        let tokens: Vec<_> = (0..KEPT_POSITIONS + 1)
            .map(|i| {
                conns.record(
                    &user(),
                    "D",
                    "",
                    Sent {
                        stream: i as u64,
                        ..Sent::default()
                    },
                )
            })
            .collect();
        assert!(conns.sent_at(&user(), "D", "", &tokens[0]).is_none());
        assert!(
            conns
                .sent_at(&user(), "D", "", &tokens[KEPT_POSITIONS])
                .is_some()
        );
    }

    #[test]
    fn the_number_of_connections_is_bounded() {
        let conns = Connections::default();
        let first = conns.record(&user(), "D", "c0", Sent::default());
        for i in 1..=MAX_CONNECTIONS {
            conns.record(&user(), "D", &format!("c{i}"), Sent::default());
        }
        assert_eq!(conns.len(), MAX_CONNECTIONS);
        assert!(conns.sent_at(&user(), "D", "c0", &first).is_none());
    }
}
