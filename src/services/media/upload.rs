//! Uploads: `POST /media/v3/upload` (file and URI at once), `POST /media/v1/create` (a URI whose
//! content comes later) and `PUT /media/v3/upload/{serverName}/{mediaId}` (that content: only its
//! creator, once, before it expires). The content arrives as a file of `tmp/` written while it was
//! received (`files::Receiver`, never whole in memory); it is moved into place, durable, before
//! its record is committed.
//! Blocking: run through `Services::run`.

use ruma::{OwnedMxcUri, ServerName, UserId};

use super::{
    Media, cannot_overwrite,
    records::{self, MEDIA, MEDIA_PENDING, MediaRecord},
};
use crate::{
    error::{Error, Result},
    services::Services,
    storage::{Batch, db::decode_json},
    util::{now_ms, random_string},
};

/// Length of the media ids we hand out.
const MEDIA_ID_LEN: usize = 24;

/// The content of an upload.
pub struct Upload {
    pub file: super::files::Staged,
    pub content_type: Option<String>,
    pub filename: Option<String>,
}

fn mxc(server: &ServerName, media_id: &str) -> OwnedMxcUri {
    OwnedMxcUri::from(format!("mxc://{server}/{media_id}"))
}

impl Media {
    fn check_size(&self, len: u64) -> Result<()> {
        if len > self.config.max_upload_bytes {
            return Err(Error::too_large(format!(
                "Uploads are limited to {} bytes",
                self.config.max_upload_bytes
            )));
        }
        Ok(())
    }

    fn store_file(&self, file: &super::files::Staged) -> Result<String> {
        self.files
            .store_staged(file)
            .map_err(|e| Error::internal(format!("storing media: {e}")))
    }
}

/// Stores an upload under a new `mxc://` URI of ours.
pub fn upload(s: &Services, user: &UserId, upload: Upload) -> Result<OwnedMxcUri> {
    let media = &s.media;
    media.check_size(upload.file.size)?;
    let _storing = media.storing();
    let sha256 = media.store_file(&upload.file)?;
    let media_id = random_string(MEDIA_ID_LEN);
    let server = s.globals.server_name();
    let record = MediaRecord {
        sha256: Some(sha256),
        content_type: upload.content_type,
        filename: upload.filename,
        size: upload.file.size,
        uploader: Some(user.to_owned()),
        created_ts: now_ms(),
        unused_expires_at: None,
        authenticated: media.config.freeze_legacy,
        quarantined_by: None,
        safe_from_quarantine: false,
    };
    let mut batch = Batch::new();
    records::put(&mut batch, server, &media_id, &record);
    media.db().write(batch)?;
    Ok(mxc(server, &media_id))
}

/// Creates an `mxc://` URI for a later upload; returns it with its `unused_expires_at`.
/// `M_LIMIT_EXCEEDED` when the user already has `max_pending_uploads` pending.
pub fn create(s: &Services, user: &UserId) -> Result<(OwnedMxcUri, u64)> {
    let media = &s.media;
    let server = s.globals.server_name();
    let now = now_ms();
    let media_id = random_string(MEDIA_ID_LEN);
    let expires = now + media.config.unused_expiry_secs * 1000;
    // Counted and written in one step, one at a time across processes (the user's pending
    // uploads are bounded for the whole homeserver).
    let user_key = records::pending_prefix(user);
    media
        .db()
        .read_then_write(&media.upload_lock, MEDIA_PENDING, &user_key, |_| {
            let (live, expired) = records::pending(media.db(), user, now)?;
            if live.len() >= media.config.max_pending_uploads {
                let first_free = live.iter().min().copied().unwrap_or(now);
                return Err(Error::limit_exceeded(first_free.saturating_sub(now).max(1)));
            }
            let record = MediaRecord {
                sha256: None,
                content_type: None,
                filename: None,
                size: 0,
                uploader: Some(user.to_owned()),
                created_ts: now,
                unused_expires_at: Some(expires),
                authenticated: media.config.freeze_legacy,
                quarantined_by: None,
                safe_from_quarantine: false,
            };
            let mut batch = Batch::new();
            // Expired URIs of the user are forgotten.
            for old in &expired {
                batch.delete(MEDIA_PENDING, records::pending_key(user, old));
                batch.delete(MEDIA, records::media_key(server, old));
            }
            records::put(&mut batch, server, &media_id, &record);
            batch.put(
                MEDIA_PENDING,
                records::pending_key(user, &media_id),
                expires.to_be_bytes().to_vec(),
            );
            Ok(((), batch))
        })?;
    Ok((mxc(server, &media_id), expires))
}

/// Uploads the content of a URI made by [`create`]: `M_NOT_FOUND` for a URI we did not create
/// or that expired, `M_FORBIDDEN` for another user, `M_CANNOT_OVERWRITE_MEDIA` the second time.
pub fn upload_created(
    s: &Services,
    user: &UserId,
    server: &ServerName,
    media_id: &str,
    upload: Upload,
) -> Result<()> {
    let media = &s.media;
    let check = |record: Option<MediaRecord>| -> Result<MediaRecord> {
        let record = record
            .filter(|_| server == s.globals.server_name())
            .ok_or_else(|| Error::not_found("Unknown media ID"))?;
        if record.uploader.as_deref() != Some(user) {
            return Err(Error::forbidden(
                "This media ID was created by another user",
            ));
        }
        if record.sha256.is_some() {
            return Err(cannot_overwrite());
        }
        if record.unused_expires_at.is_some_and(|t| t <= now_ms()) {
            return Err(Error::not_found("This media ID has expired"));
        }
        Ok(record)
    };
    // Refuse early (before writing the file), then again under the lock.
    check(records::get(media.db(), server, media_id)?)?;
    media.check_size(upload.file.size)?;
    let _storing = media.storing();
    let sha256 = media.store_file(&upload.file)?;
    // Checked again and filled in one step, one at a time across processes (one upload per
    // URI).
    let key = records::media_key(server, media_id);
    media
        .db()
        .read_then_write(&media.upload_lock, MEDIA, &key, |value| {
            let stored = value
                .map(|v| decode_json::<MediaRecord>(MEDIA, &v))
                .transpose()?;
            let record = MediaRecord {
                sha256: Some(sha256),
                content_type: upload.content_type,
                filename: upload.filename,
                size: upload.file.size,
                unused_expires_at: None,
                ..check(stored)?
            };
            let mut batch = Batch::new();
            records::put(&mut batch, server, media_id, &record);
            batch.delete(MEDIA_PENDING, records::pending_key(user, media_id));
            Ok::<_, Error>(((), batch))
        })?;
    media.notify_uploaded();
    Ok(())
}
