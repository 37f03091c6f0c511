//! The order in which a client sees its own sends. A `PUT /send` (or `/redact`) commits the event,
//! which wakes the long-polling `/sync` of the sending device; that sync could answer before the
//! PUT does, and matrix-js-sdk then loses track of the local echo of a thread reply (a "failed"
//! send of a stored message, a redacted reply still counted). So the sends of each device are
//! counted while their handler runs, and that device's `/sync` waits for them to finish (at most
//! [`MAX_WAIT`]) before it computes its answer and again before it sends it (a send may commit while
//! the answer is computed). Other devices and users never wait.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use ruma::{OwnedUserId, UserId};
use tokio::sync::Notify;

/// The longest a /sync waits for its own device's sends.
pub const MAX_WAIT: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct SendsInFlight {
    /// (user, device) → sends whose handler has not returned. Entries are removed at zero.
    running: Mutex<HashMap<(OwnedUserId, String), usize>>,
    finished: Notify,
}

/// Counts one send while it lives.
pub struct Running<'a> {
    owner: &'a SendsInFlight,
    key: (OwnedUserId, String),
}

impl SendsInFlight {
    pub fn start(&self, user: &UserId, device: &str) -> Running<'_> {
        let key = (user.to_owned(), device.to_owned());
        *self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default() += 1;
        Running { owner: self, key }
    }

    fn is_running(&self, user: &UserId, device: &str) -> bool {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        !running.is_empty() && running.contains_key(&(user.to_owned(), device.to_owned()))
    }

    /// Waits until no send of the device is running (at most `max`).
    pub async fn settled(&self, user: &UserId, device: &str, max: Duration) {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let finished = self.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            if !self.is_running(user, device) {
                return;
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut running = self.owner.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = running.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.key);
            }
        }
        drop(running);
        self.owner.finished.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sync_waits_for_its_own_devices_sends_only() {
        let sends = std::sync::Arc::new(SendsInFlight::default());
        let alice = UserId::parse("@alice:x").unwrap();
        let running = sends.start(&alice, "PHONE");
        assert!(sends.is_running(&alice, "PHONE"));
        // Another device does not wait.
        tokio::time::timeout(
            Duration::from_millis(50),
            sends.settled(&alice, "LAPTOP", MAX_WAIT),
        )
        .await
        .unwrap();
        // The sending device waits until the send finishes.
        let waiter = {
            let sends = sends.clone();
            let alice = alice.clone();
            tokio::spawn(async move {
                let start = tokio::time::Instant::now();
                sends.settled(&alice, "PHONE", Duration::from_secs(5)).await;
                start.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiter.is_finished());
        drop(running);
        let waited = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(waited >= Duration::from_millis(30));
        assert!(!sends.is_running(&alice, "PHONE"));
        // A send that never finishes holds the sync back only up to the bound.
        let _stuck = sends.start(&alice, "PHONE");
        tokio::time::timeout(
            Duration::from_secs(1),
            sends.settled(&alice, "PHONE", Duration::from_millis(20)),
        )
        .await
        .unwrap();
    }
}
