//! What the admin API and media retention do to media: information, a user's or a room's media,
//! quarantine (not served while quarantined), protection, deletion (records, thumbnails and the
//! files nothing else names), the remote cache purge, per-user statistics, and the last-access
//! times retention counts from.
//!
//! Files are shared by content (sha256): a file is removed only when no media record and no
//! thumbnail names it any more, checked while `Media::removing` keeps new records from being
//! written against it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use ruma::{OwnedServerName, RoomId, ServerName, UserId};
use serde_json::{Value, json};

use super::records::{self, MEDIA, MEDIA_ACCESS, MEDIA_PENDING, MEDIA_THUMBNAILS, MediaRecord};
use crate::{
    error::{Error, Result},
    services::Services,
    storage::{
        Batch,
        db::decode_json,
        keys::{Key, KeyReader, u64_from},
    },
    util::now_ms,
};

/// A media's last access is rewritten at most this often.
const ACCESS_RESOLUTION_MS: u64 = 3_600_000;

/// Records that the media was read now (at most once an hour each).
pub fn touch(s: &Services, server: &ServerName, media_id: &str) -> Result<()> {
    let key = records::media_key(server, media_id);
    let now = now_ms();
    let last = s
        .media
        .db()
        .get(MEDIA_ACCESS, &key)?
        .and_then(|b| u64_from(&b));
    if last.is_none_or(|t| t + ACCESS_RESOLUTION_MS <= now) {
        s.media.db().put(MEDIA_ACCESS, key, now.to_be_bytes())?;
    }
    Ok(())
}

pub fn last_access(s: &Services, server: &ServerName, media_id: &str) -> Result<Option<u64>> {
    Ok(s.media
        .db()
        .get(MEDIA_ACCESS, &records::media_key(server, media_id))?
        .and_then(|b| u64_from(&b)))
}

/// Every record of `server`'s media (our own when it is this server): (media id, record).
pub fn records_of_server(s: &Services, server: &ServerName) -> Result<Vec<(String, MediaRecord)>> {
    let prefix = Key::new().str(server.as_str()).build();
    let mut out = Vec::new();
    for entry in s.media.db().scan_prefix(MEDIA, &prefix) {
        let (key, value) = entry?;
        let id = KeyReader::new(&key[prefix.len()..])
            .str()
            .unwrap_or_default()
            .to_owned();
        out.push((id, decode_json(MEDIA, &value)?));
    }
    Ok(out)
}

/// Every media record: (server, media id, record).
pub fn all_records(s: &Services) -> Result<Vec<(OwnedServerName, String, MediaRecord)>> {
    let mut out = Vec::new();
    for entry in s.media.db().scan_prefix(MEDIA, &[]) {
        let (key, value) = entry?;
        let mut reader = KeyReader::new(&key);
        let (Some(server), Some(id)) = (reader.str(), reader.str()) else {
            continue;
        };
        let Ok(server) = OwnedServerName::try_from(server) else {
            continue;
        };
        out.push((server, id.to_owned(), decode_json(MEDIA, &value)?));
    }
    Ok(out)
}

/// Synapse's `media_info` shape.
pub fn describe(
    s: &Services,
    server: &ServerName,
    media_id: &str,
    record: &MediaRecord,
) -> Result<Value> {
    Ok(json!({
        "media_origin": server,
        "media_id": media_id,
        "user_id": record.uploader,
        "media_type": record.content_type,
        "media_length": record.size,
        "upload_name": record.filename,
        "created_ts": record.created_ts,
        "last_access_ts": last_access(s, server, media_id)?,
        "quarantined_by": record.quarantined_by,
        "safe_from_quarantine": record.safe_from_quarantine,
    }))
}

/// A user's uploads (local media they created), oldest first.
pub fn uploads_of(s: &Services, user: &UserId) -> Result<Vec<(String, MediaRecord)>> {
    let mut out: Vec<_> = records_of_server(s, &s.config().server_name)?
        .into_iter()
        .filter(|(_, r)| r.uploader.as_deref() == Some(user))
        .collect();
    out.sort_by_key(|(id, r)| (r.created_ts, id.clone()));
    Ok(out)
}

/// Sets or clears a media's quarantine. Another server's media we have no record of gets one
/// (without content), so it is never fetched. Answers whether anything changed.
pub fn set_quarantined(
    s: &Services,
    server: &ServerName,
    media_id: &str,
    by: Option<&UserId>,
) -> Result<bool> {
    let record = match records::get(s.media.db(), server, media_id)? {
        Some(record) => record,
        None if by.is_some() && server != s.config().server_name => MediaRecord {
            sha256: None,
            content_type: None,
            filename: None,
            size: 0,
            uploader: None,
            created_ts: now_ms(),
            unused_expires_at: None,
            authenticated: true,
            quarantined_by: None,
            safe_from_quarantine: false,
        },
        None => return Err(Error::not_found("Unknown media")),
    };
    if by.is_some() && record.safe_from_quarantine {
        return Ok(false);
    }
    let quarantined_by = by.map(|u| u.to_string());
    if record.quarantined_by == quarantined_by {
        return Ok(false);
    }
    let mut batch = Batch::new();
    records::put(
        &mut batch,
        server,
        media_id,
        &MediaRecord {
            quarantined_by,
            ..record
        },
    );
    s.media.db().write(batch)?;
    Ok(true)
}

/// Protects (or unprotects) one of our media from quarantine and retention.
pub fn set_protected(s: &Services, media_id: &str, protected: bool) -> Result<()> {
    let server = s.config().server_name.clone();
    let record = records::get(s.media.db(), &server, media_id)?
        .ok_or_else(|| Error::not_found("Unknown media"))?;
    let mut batch = Batch::new();
    records::put(
        &mut batch,
        &server,
        media_id,
        &MediaRecord {
            safe_from_quarantine: protected,
            ..record
        },
    );
    Ok(s.media.db().write(batch)?)
}

/// The `mxc://` URIs the room's events (and state) reference, split into ours and others'.
pub fn room_media(s: &Services, room_id: &RoomId) -> Result<(Vec<String>, Vec<String>)> {
    let short_room = s
        .short
        .room(room_id)?
        .ok_or_else(|| Error::not_found("Room not found"))?;
    let mut uris = BTreeSet::new();
    let shorts = s.timeline.scan(
        short_room,
        0,
        crate::storage::Direction::Forward,
        usize::MAX,
    )?;
    for (_, short) in shorts {
        if let Some(event) = crate::services::rooms::event_by_short(s, short, room_id)? {
            crate::services::export::room::collect_mxc(&event.pdu.content_value(), &mut uris);
        }
    }
    let ours = format!("mxc://{}/", s.config().server_name);
    Ok(uris.into_iter().partition(|u| u.starts_with(&ours)))
}

fn split_mxc(uri: &str) -> Option<(OwnedServerName, String)> {
    let (server, id) = uri.strip_prefix("mxc://")?.split_once('/')?;
    Some((OwnedServerName::try_from(server).ok()?, id.to_owned()))
}

/// Quarantines every media the room references (protected ones excepted); answers how many.
pub fn quarantine_room(s: &Services, room_id: &RoomId, by: &UserId) -> Result<u64> {
    let (local, remote) = room_media(s, room_id)?;
    let mut n = 0;
    for (server, id) in local.iter().chain(&remote).filter_map(|u| split_mxc(u)) {
        if super::download::valid_media_id(&id) && set_quarantined(s, &server, &id, Some(by))? {
            n += 1;
        }
    }
    Ok(n)
}

/// Quarantines every upload of the user (protected ones excepted); answers how many.
pub fn quarantine_user(s: &Services, user: &UserId, by: &UserId) -> Result<u64> {
    let server = s.config().server_name.clone();
    let mut n = 0;
    for (id, _) in uploads_of(s, user)? {
        if set_quarantined(s, &server, &id, Some(by))? {
            n += 1;
        }
    }
    Ok(n)
}

/// Deletes media records with their thumbnails and last-access times, then the files nothing
/// names any more; answers the deleted media ids.
pub fn delete(s: &Services, media: &[(OwnedServerName, String)]) -> Result<Vec<String>> {
    if media.is_empty() {
        return Ok(Vec::new());
    }
    let _removing = s.media.removing();
    let mut batch = Batch::new();
    let mut files = HashSet::new();
    let mut deleted = Vec::new();
    for (server, id) in media {
        let Some(record) = records::get(s.media.db(), server, id)? else {
            continue;
        };
        let key = records::media_key(server, id);
        batch.delete(MEDIA, key.clone());
        batch.delete(MEDIA_ACCESS, key.clone());
        if let Some(uploader) = &record.uploader {
            batch.delete(MEDIA_PENDING, records::pending_key(uploader, id));
        }
        files.extend(record.sha256);
        for entry in s.media.db().scan_prefix(MEDIA_THUMBNAILS, &key) {
            let (thumb_key, value) = entry?;
            let thumb: records::ThumbnailRecord = decode_json(MEDIA_THUMBNAILS, &value)?;
            files.insert(thumb.sha256);
            batch.delete(MEDIA_THUMBNAILS, thumb_key.to_vec());
        }
        deleted.push(id.clone());
    }
    s.media.db().write(batch)?;
    // The files no record names any more.
    for entry in s.media.db().scan_prefix(MEDIA, &[]) {
        let (_, value) = entry?;
        let record: MediaRecord = decode_json(MEDIA, &value)?;
        if let Some(sha256) = record.sha256 {
            files.remove(&sha256);
        }
    }
    for entry in s.media.db().scan_prefix(MEDIA_THUMBNAILS, &[]) {
        let (_, value) = entry?;
        let thumb: records::ThumbnailRecord = decode_json(MEDIA_THUMBNAILS, &value)?;
        files.remove(&thumb.sha256);
    }
    for sha256 in files {
        if let Ok(path) = s.media.files.path_of(&sha256)
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(Error::internal(format!("removing {}: {e}", path.display())));
        }
    }
    Ok(deleted)
}

/// Media used as a local user's avatar (kept by `keep_profiles`).
fn avatars(s: &Services) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for entry in s
        .globals
        .db
        .scan_prefix(crate::services::users::ACCOUNTS, &[])
    {
        let (_, value) = entry?;
        if let Ok(account) = serde_json::from_slice::<crate::services::users::Account>(&value)
            && let Some(url) = account.avatar_url
        {
            out.insert(url);
        }
    }
    Ok(out)
}

/// `POST /_synapse/admin/v1/media/delete`: our media created before `before_ts`, larger than
/// `size_gt` bytes, not protected, and (with `keep_profiles`) not a user's avatar.
pub fn delete_local_before(
    s: &Services,
    before_ts: u64,
    size_gt: u64,
    keep_profiles: bool,
) -> Result<Vec<String>> {
    let server = s.config().server_name.clone();
    let kept = if keep_profiles {
        avatars(s)?
    } else {
        HashSet::new()
    };
    let chosen: Vec<_> = records_of_server(s, &server)?
        .into_iter()
        .filter(|(id, r)| {
            r.created_ts < before_ts
                && r.size > size_gt
                && !r.safe_from_quarantine
                && !kept.contains(&format!("mxc://{server}/{id}"))
        })
        .map(|(id, _)| (server.clone(), id))
        .collect();
    delete(s, &chosen)
}

/// `POST /_synapse/admin/v1/purge_media_cache`: other servers' media last read (or cached)
/// before `before_ts`; quarantine stubs stay. Answers how many were deleted.
pub fn purge_remote_cache(s: &Services, before_ts: u64) -> Result<u64> {
    let ours = s.config().server_name.clone();
    let mut chosen = Vec::new();
    for (server, id, record) in all_records(s)? {
        if server == ours || record.quarantined_by.is_some() {
            continue;
        }
        let last = last_access(s, &server, &id)?.unwrap_or(record.created_ts);
        if last.max(record.created_ts) < before_ts {
            chosen.push((server, id));
        }
    }
    Ok(delete(s, &chosen)?.len() as u64)
}

/// Per local uploader: (user, media count, bytes).
pub fn usage_by_user(s: &Services) -> Result<Vec<(ruma::OwnedUserId, u64, u64)>> {
    let mut by_user: BTreeMap<ruma::OwnedUserId, (u64, u64)> = BTreeMap::new();
    for (_, record) in records_of_server(s, &s.config().server_name)? {
        if let Some(user) = record.uploader {
            let entry = by_user.entry(user).or_default();
            entry.0 += 1;
            entry.1 += record.size;
        }
    }
    Ok(by_user
        .into_iter()
        .map(|(user, (count, bytes))| (user, count, bytes))
        .collect())
}
