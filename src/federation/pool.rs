//! Idle HTTP/1.1 connections to other servers, kept for reuse: at most [`MAX_IDLE`] per
//! destination (host, port, TLS name), each for at most [`IDLE_FOR`]; one in use is out of the
//! pool. A connection the server closed is noticed when taken (`is_closed`) and dropped.

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
            if since.elapsed() >= IDLE_FOR || connection.sender.is_closed() || connection.sender.ready().await.is_err() {
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
    }
}
