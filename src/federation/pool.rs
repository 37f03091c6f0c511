//! Idle HTTP/1.1 connections to other servers, kept for reuse: at most [`MAX_IDLE`] per
//! destination (host, port, TLS name) and [`MAX_IDLE_TOTAL`] in all, each for at most
//! [`IDLE_FOR`]; one in use is out of the pool. A connection the server closed is noticed when
//! taken (`is_closed`) and dropped.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

use super::discovery::Destination;

/// Idle connections kept per destination.
pub const MAX_IDLE: usize = 4;
/// How long an idle connection is kept.
pub const IDLE_FOR: Duration = Duration::from_secs(30);
/// Idle connections kept to all destinations together: beyond, expired ones are closed, then
/// the oldest.
pub const MAX_IDLE_TOTAL: usize = 512;

/// One HTTP/1.1 connection: the request side and the task driving it.
pub struct Connection {
    pub sender: SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Connection {
    pub fn new(sender: SendRequest<Full<Bytes>>, driver: tokio::task::JoinHandle<()>) -> Self {
        Self { sender, driver }
    }

    /// Ends the connection.
    pub fn close(self) {
        self.driver.abort();
    }
}

type Key = (String, u16, String);

#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<Key, Vec<(Connection, Instant)>>>,
}

fn key(dest: &Destination) -> Key {
    (dest.host.clone(), dest.port, dest.tls_name.clone())
}

impl Pool {
    /// The most recently used idle connection to `dest` that is still open and ready.
    pub async fn take(&self, dest: &Destination) -> Option<Connection> {
        loop {
            let (mut connection, since) = {
                let mut idle = self.idle.lock().unwrap();
                let list = idle.get_mut(&key(dest))?;
                let entry = list.pop()?;
                if list.is_empty() {
                    idle.remove(&key(dest));
                }
                entry
            };
            if since.elapsed() >= IDLE_FOR
                || connection.sender.is_closed()
                || connection.sender.ready().await.is_err()
            {
                connection.close();
                continue;
            }
            return Some(connection);
        }
    }

    /// Keeps a connection whose exchange is complete; beyond [`MAX_IDLE`], the oldest is closed.
    pub fn put(&self, dest: &Destination, connection: Connection) {
        if connection.sender.is_closed() {
            connection.close();
            return;
        }
        let mut idle = self.idle.lock().unwrap();
        let list = idle.entry(key(dest)).or_default();
        for (stale, _) in list.extract_if(.., |(_, since)| since.elapsed() >= IDLE_FOR) {
            stale.close();
        }
        list.push((connection, Instant::now()));
        if list.len() > MAX_IDLE {
            let (oldest, _) = list.remove(0);
            oldest.close();
        }
        if idle.values().map(Vec::len).sum::<usize>() > MAX_IDLE_TOTAL {
            trim(&mut idle, MAX_IDLE_TOTAL);
        }
    }
}

/// Closes expired connections of every destination, then the oldest ones until at most `keep`
/// remain.
fn trim<C: Closable>(idle: &mut HashMap<Key, Vec<(C, Instant)>>, keep: usize) {
    for list in idle.values_mut() {
        for (stale, _) in list.extract_if(.., |(_, since)| since.elapsed() >= IDLE_FOR) {
            stale.close_now();
        }
    }
    idle.retain(|_, list| !list.is_empty());
    let total: usize = idle.values().map(Vec::len).sum();
    if total <= keep {
        return;
    }
    let mut ages: Vec<(Instant, Key)> = idle
        .iter()
        .flat_map(|(k, list)| list.iter().map(move |(_, at)| (*at, k.clone())))
        .collect();
    ages.sort_by_key(|(at, _)| *at);
    for (_, key) in ages.into_iter().take(total - keep) {
        if let Some(list) = idle.get_mut(&key) {
            // Each list is oldest first.
            let (oldest, _) = list.remove(0);
            oldest.close_now();
            if list.is_empty() {
                idle.remove(&key);
            }
        }
    }
}

/// What the trimming closes (a connection; a stand-in in tests).
trait Closable {
    fn close_now(self);
}

impl Closable for Connection {
    fn close_now(self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl Closable for Fake {
        fn close_now(self) {}
    }

    #[test]
    fn the_total_of_idle_connections_is_capped_oldest_first() {
        let mut idle: HashMap<Key, Vec<(Fake, Instant)>> = HashMap::new();
        let start = Instant::now();
        for i in 0..100u16 {
            let key = (format!("host{i}"), 8448, format!("host{i}"));
            idle.entry(key)
                .or_default()
                .push((Fake, start + Duration::from_millis(u64::from(i))));
        }
        trim(&mut idle, 10);
        assert_eq!(idle.values().map(Vec::len).sum::<usize>(), 10);
        let mut kept: Vec<&String> = idle.keys().map(|(host, _, _)| host).collect();
        kept.sort();
        assert_eq!(kept.first().map(|h| h.as_str()), Some("host90"));
    }
}
