//! The originals of redacted events, kept `[retention] redaction_retention_period` (Synapse's
//! key, 7 days by default; 0 keeps none) for server admins and room moderators (MSC2815's
//! `include_unredacted_content` on `GET /rooms/{roomId}/event/{eventId}`), then erased by an hourly
//! sweep. A redaction stores the original in its own batch; a purge deletes it with the event.
//! A redaction received before its target (applied on arrival) keeps no original.

use std::{sync::Arc, time::Duration};

use ruma::CanonicalJsonObject;

use crate::{
    error::{Error, Result},
    services::{Services, globals::Commit},
    storage::{Batch, Map, keys::KeyReader},
    util::now_ms,
};

/// short event u64 → redacted ms u64 ‖ the original canonical JSON.
pub const REDACTED_ORIGINALS: Map = Map("redacted_originals");
pub const MAPS: &[Map] = &[REDACTED_ORIGINALS];

const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
const FIRST_SWEEP: Duration = Duration::from_secs(60);

fn period_ms(s: &Services) -> u64 {
    s.config().retention.redaction_retention_period.0
}

/// In a redaction's commit: keeps the original of the redacted `short` (when the period is not 0).
pub fn keep(
    s: &Services,
    c: &mut Commit,
    short: u64,
    original: &CanonicalJsonObject,
) -> Result<()> {
    if period_ms(s) == 0 {
        return Ok(());
    }
    let mut value = now_ms().to_be_bytes().to_vec();
    value.extend(serde_json::to_vec(original).map_err(|e| Error::internal(e.to_string()))?);
    c.batch.put(REDACTED_ORIGINALS, short.to_be_bytes(), value);
    Ok(())
}

/// The original of a redacted event, while it is kept.
pub fn get(s: &Services, short: u64) -> Result<Option<CanonicalJsonObject>> {
    let Some(bytes) = s.globals.db.get(REDACTED_ORIGINALS, &short.to_be_bytes())? else {
        return Ok(None);
    };
    let Some(redacted_ms) = KeyReader::new(&bytes).u64() else {
        return Err(Error::internal("corrupt redacted original"));
    };
    if redacted_ms.saturating_add(period_ms(s)) < now_ms() {
        return Ok(None);
    }
    serde_json::from_slice(&bytes[8..])
        .map(Some)
        .map_err(|e| Error::internal(format!("corrupt redacted original: {e}")))
}

/// Deletes the original of `short` in `batch` (a purge).
pub fn forget(batch: &mut Batch, short: u64) {
    batch.delete(REDACTED_ORIGINALS, short.to_be_bytes());
}

/// Erases the originals older than the period; answers how many.
pub fn sweep(s: &Services) -> Result<u64> {
    let oldest_kept = now_ms().saturating_sub(period_ms(s));
    let mut batch = Batch::new();
    let mut n = 0;
    for entry in s.globals.db.scan_prefix(REDACTED_ORIGINALS, &[]) {
        let (key, value) = entry?;
        if KeyReader::new(&value).u64().is_none_or(|t| t < oldest_kept) {
            batch.delete(REDACTED_ORIGINALS, key.to_vec());
            n += 1;
        }
    }
    s.globals.db.write(batch)?;
    Ok(n)
}

/// The hourly sweep.
pub fn spawn(
    services: Arc<Services>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    crate::services::periodic::spawn(
        services,
        stop,
        FIRST_SWEEP,
        SWEEP_INTERVAL,
        "originals of redacted events",
        sweep,
    )
}
