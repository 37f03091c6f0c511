//! The background lease: which process of a group runs the work done once per homeserver
//! (federation sending, push delivery, application service transactions, index rebuilds,
//! retention, sweeps). A row of `global` names the holder and when its lease ends; the holder
//! renews it every [`RENEW`], another process takes it once it has ended ([`TTL`] after the last
//! renewal: a process that died, or lost the database). Read and written under the database's
//! commit lock, so two processes never both take it. A process alone on its database holds it
//! without writing anything.

use std::{sync::Arc, time::Duration};

use crate::{
    error::Result,
    services::{Services, globals::GLOBAL},
    storage::keys::KeyReader,
};

/// A lease not renewed for this long has ended.
pub const TTL: Duration = Duration::from_secs(30);
/// How often the holder renews it.
pub const RENEW: Duration = Duration::from_secs(10);
/// How often a process without it tries to take it.
pub const RETRY: Duration = Duration::from_secs(5);

const KEY: &[u8] = b"lease/background";

/// This process as a (would-be) holder: a random id, new at every start.
#[derive(Clone)]
pub struct Holder {
    id: Arc<str>,
}

impl Default for Holder {
    fn default() -> Self {
        Self::new()
    }
}

impl Holder {
    pub fn new() -> Self {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let id = format!(
            "{}/{}/{}",
            host.trim(),
            std::process::id(),
            crate::util::random_string(8)
        );
        Self { id: id.into() }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Takes or renews the lease; whether this process holds it now.
    pub fn acquire(&self, s: &Services) -> Result<bool> {
        if !s.globals.shared() {
            return Ok(true);
        }
        self.acquire_at(s, crate::util::now_ms())
    }

    fn acquire_at(&self, s: &Services, now: u64) -> Result<bool> {
        let (held, _) = s.globals.commit(|c| {
            if let Some((holder, until)) = current(s)?
                && holder != *self.id
                && until > now
            {
                return Ok(false);
            }
            c.batch
                .put(GLOBAL, KEY, record(&self.id, now + TTL.as_millis() as u64));
            Ok(true)
        })?;
        Ok(held)
    }

    /// Gives the lease up (a clean stop), so another process takes it at once.
    pub fn release(&self, s: &Services) -> Result<()> {
        if !s.globals.shared() {
            return Ok(());
        }
        self.release_at(s)
    }

    fn release_at(&self, s: &Services) -> Result<()> {
        s.globals.commit(|c| {
            if current(s)?.is_some_and(|(holder, _)| holder == *self.id) {
                c.batch.delete(GLOBAL, KEY);
            }
            Ok(())
        })?;
        Ok(())
    }
}

fn record(holder: &str, until: u64) -> Vec<u8> {
    crate::storage::keys::Key::new()
        .str(holder)
        .u64(until)
        .build()
}

/// The holder and the end of the lease, as stored.
fn current(s: &Services) -> Result<Option<(String, u64)>> {
    let Some(value) = s.globals.db.get(GLOBAL, KEY)? else {
        return Ok(None);
    };
    let mut reader = KeyReader::new(&value);
    Ok(reader.str().map(str::to_owned).zip(reader.u64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_until_its_lease_ends_or_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::default();
        config.storage.path = dir.path().to_owned();
        let s = Services::open(config).unwrap();
        let (a, b) = (Holder::new(), Holder::new());
        let ttl = TTL.as_millis() as u64;
        assert!(a.acquire_at(&s, 1_000).unwrap());
        assert!(
            !b.acquire_at(&s, 1_000 + ttl - 1).unwrap(),
            "A's lease runs"
        );
        assert!(a.acquire_at(&s, 1_000 + ttl - 1).unwrap(), "A renews");
        assert!(
            !b.acquire_at(&s, 1_000 + ttl).unwrap(),
            "renewed: still A's"
        );
        assert!(
            b.acquire_at(&s, 1_000 + 2 * ttl).unwrap(),
            "ended: B takes it"
        );
        assert!(
            !a.acquire_at(&s, 1_000 + 2 * ttl).unwrap(),
            "and A has lost it"
        );
        b.release_at(&s).unwrap();
        assert!(
            a.acquire_at(&s, 1_000 + 2 * ttl).unwrap(),
            "released: A takes it"
        );
        s.shutdown();
    }
}
