//! Media retention (`[media] local_media_lifetime`, `remote_media_lifetime`, as Synapse's
//! `media_retention`): hourly, media not read (downloaded or thumbnailed; or created, when never
//! read) for longer than its lifetime is deleted, with its thumbnails and the files nothing else
//! names. Protected media and quarantine records stay.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use super::admin;
use crate::{error::Result, services::Services, util::now_ms};

const INTERVAL: Duration = Duration::from_secs(3600);
/// The first check comes this long after start.
const FIRST_CHECK: Duration = Duration::from_secs(60);

pub fn spawn(services: Arc<Services>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let config = &services.media.config;
    if config.local_media_lifetime.is_none() && config.remote_media_lifetime.is_none() {
        return tokio::spawn(async {});
    }
    crate::services::periodic::spawn(
        services,
        stop,
        FIRST_CHECK,
        INTERVAL,
        "media retention",
        expire,
    )
}

/// Deletes the media past their lifetime; answers how many.
pub fn expire(s: &Services) -> Result<u64> {
    let config = &s.media.config;
    let ours = s.config().server_name.clone();
    let now = now_ms();
    let mut chosen = Vec::new();
    for (server, id, record) in admin::all_records(s)? {
        let lifetime = if server == ours {
            config.local_media_lifetime
        } else {
            config.remote_media_lifetime
        };
        let Some(lifetime) = lifetime else {
            continue;
        };
        if record.safe_from_quarantine || record.quarantined_by.is_some() || record.sha256.is_none()
        {
            continue;
        }
        let last = admin::last_access(s, &server, &id)?
            .unwrap_or(record.created_ts)
            .max(record.created_ts);
        if last.saturating_add(lifetime.0) < now {
            chosen.push((server, id));
        }
    }
    Ok(admin::delete(s, &chosen)?.len() as u64)
}
