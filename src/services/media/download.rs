//! Finding the content of an `mxc://` URI: our own media (waiting up to `timeout_ms` for an
//! upload that has not happened yet), other servers' media from the cache or fetched over
//! federation and cached. Legacy (unauthenticated) requests see only media created before the
//! freeze; federation requests see only our own media.

use std::{sync::Arc, time::Duration};

use ruma::ServerName;
use tokio::time::Instant;

use super::{
    media_not_found, not_yet_uploaded,
    records::{self, MediaRecord},
    remote::{self, Fetched},
};
use crate::{
    error::{Error, Result},
    services::Services,
    storage::Batch,
    util::now_ms,
};

/// How often a download waiting for an upload looks again in a group of processes.
const GROUP_LOOK_AGAIN: Duration = Duration::from_millis(250);

/// Which family of endpoints asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `/_matrix/client/v1/media/*` (a user's access token).
    Authenticated,
    /// `/_matrix/media/v3/*` (no authentication; frozen media is not found).
    Legacy,
    /// `/_matrix/federation/v1/media/*` (another server: our own media only).
    Federation,
}

/// Who asks, and how long they wait.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub access: Access,
    /// Whether another server's media not cached here may be fetched (`allow_remote`).
    pub allow_remote: bool,
    /// `timeout_ms`: how long to wait for an upload not done yet (capped by the configuration).
    pub timeout: Duration,
}

/// A media id as the spec allows them (`[A-Za-z0-9_-]+`): anything else is not found.
pub fn valid_media_id(media_id: &str) -> bool {
    !media_id.is_empty()
        && media_id.len() <= 255
        && media_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The record and the bytes of `mxc://{server}/{media_id}`.
pub async fn content(
    services: &Arc<Services>,
    server: &ServerName,
    media_id: &str,
    ask: Ask,
) -> Result<(MediaRecord, Vec<u8>)> {
    let record = find(services, server, media_id, ask).await?;
    let sha256 = record.sha256.clone().ok_or_else(not_yet_uploaded)?;
    let bytes = services
        .run(move |s| {
            s.media
                .files
                .read(&sha256)
                .map_err(|e| Error::internal(format!("reading media {sha256}: {e}")))
        })
        .await?;
    Ok((record, bytes))
}

/// The record of an uploaded (or cached) media, fetching other servers' media when needed.
pub async fn find(
    services: &Arc<Services>,
    server: &ServerName,
    media_id: &str,
    ask: Ask,
) -> Result<MediaRecord> {
    let Ask {
        access,
        allow_remote,
        timeout,
    } = ask;
    if !valid_media_id(media_id) {
        return Err(media_not_found());
    }
    let local = server == services.globals.server_name();
    if !local && access == Access::Federation {
        return Err(media_not_found());
    }
    let wait = timeout.min(Duration::from_millis(
        services.media.config.max_download_wait_ms,
    ));
    let deadline = Instant::now() + wait;
    let mut uploads = services.media.uploaded.subscribe();
    loop {
        // Marked seen before reading, so an upload finishing after the read wakes the wait.
        uploads.borrow_and_update();
        let (server_owned, id) = (server.to_owned(), media_id.to_owned());
        let record = services
            .run(move |s| {
                let record = records::get(s.media.db(), &server_owned, &id)?;
                if record
                    .as_ref()
                    .is_some_and(|r| r.sha256.is_some() && r.quarantined_by.is_none())
                {
                    // Read now (media retention counts from the last access).
                    super::admin::touch(s, &server_owned, &id)?;
                }
                Ok(record)
            })
            .await?;
        match record {
            Some(record) if access == Access::Legacy && record.authenticated => {
                return Err(media_not_found());
            }
            Some(record) if record.quarantined_by.is_some() => return Err(media_not_found()),
            Some(record) if record.sha256.is_some() => return Ok(record),
            Some(record) => {
                if record.unused_expires_at.is_some_and(|t| t <= now_ms()) {
                    return Err(media_not_found());
                }
                // Created, not uploaded yet: wait for an upload (any), then look again. In a
                // group of processes the upload may reach another process, which cannot wake
                // this one: it looks again every `GROUP_LOOK_AGAIN` too.
                if Instant::now() >= deadline {
                    return Err(not_yet_uploaded());
                }
                let until = if services.globals.shared() {
                    deadline.min(Instant::now() + GROUP_LOOK_AGAIN)
                } else {
                    deadline
                };
                let _ = tokio::time::timeout_at(until, uploads.changed()).await;
            }
            None if local => return Err(media_not_found()),
            None => {
                let media = &services.media;
                if !allow_remote
                    || !media.config.fetch_remote
                    || (access == Access::Legacy && media.config.freeze_legacy)
                {
                    return Err(media_not_found());
                }
                return fetch_remote(services, server, media_id, wait).await;
            }
        }
    }
}

/// Fetches another server's media once (concurrent requests wait for the first) and caches it.
async fn fetch_remote(
    services: &Arc<Services>,
    server: &ServerName,
    media_id: &str,
    timeout: Duration,
) -> Result<MediaRecord> {
    let _guard = services
        .media
        .work_locks
        .lock(format!("fetch {server}/{media_id}"))
        .await;
    let (server_owned, id) = (server.to_owned(), media_id.to_owned());
    if let Some(record) = services
        .run(move |s| Ok(records::get(s.media.db(), &server_owned, &id)?))
        .await?
        && record.sha256.is_some()
    {
        return Ok(record);
    }
    let fetched = remote::fetch_content(services, server, media_id, timeout).await?;
    let (server_owned, id) = (server.to_owned(), media_id.to_owned());
    services
        .run(move |s| store_remote(s, &server_owned, &id, fetched))
        .await
}

/// Caches another server's media (the file, then its record).
pub fn store_remote(
    s: &Services,
    server: &ServerName,
    media_id: &str,
    fetched: Fetched,
) -> Result<MediaRecord> {
    let media = &s.media;
    let _storing = media.storing();
    let sha256 = media
        .files
        .store(&fetched.bytes)
        .map_err(|e| Error::internal(format!("storing media: {e}")))?;
    let record = MediaRecord {
        sha256: Some(sha256),
        content_type: fetched.content_type,
        filename: fetched.filename,
        size: fetched.bytes.len() as u64,
        uploader: None,
        created_ts: now_ms(),
        unused_expires_at: None,
        authenticated: media.config.freeze_legacy,
        quarantined_by: None,
        safe_from_quarantine: false,
    };
    let mut batch = Batch::new();
    records::put(&mut batch, server, media_id, &record);
    media.db().write(batch)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::valid_media_id;

    #[test]
    fn media_ids_are_checked() {
        assert!(valid_media_id("AbC_12-x"));
        assert!(!valid_media_id(""));
        assert!(!valid_media_id("../x"));
        assert!(!valid_media_id("a b"));
        assert!(!valid_media_id(&"a".repeat(256)));
    }
}
