//! Periodic maintenance: a task that runs a piece of blocking work after a first delay, then at an
//! interval, until the server stops, and logs what it did (media retention, the erasing of
//! redacted originals).

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use super::Services;
use crate::error::Result;

/// Runs `work` (which answers how many things it removed) on the blocking pool after `first`,
/// then every `every`, until `stop`; `what` names it in the log.
pub fn spawn(
    services: Arc<Services>,
    mut stop: watch::Receiver<bool>,
    first: Duration,
    every: Duration,
    what: &'static str,
    work: fn(&Services) -> Result<u64>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = first;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match services.run(work).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("{what}: {n} removed"),
                Err(e) => tracing::warn!("{what}: {}", e.message),
            }
            wait = every;
        }
    })
}
