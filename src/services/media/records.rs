//! Media metadata in RocksDB: one record per `mxc://` URI, the pending uploads of each user, and
//! the stored thumbnails of each media.

use ruma::{OwnedUserId, ServerName, UserId};
use serde::{Deserialize, Serialize};

use super::render::Method;
use crate::storage::{
    Batch, Db, Map, Result,
    db::encode_json,
    keys::{Key, KeyReader, u64_from},
};

/// server name str ‖ media id str → [`MediaRecord`] JSON.
pub const MEDIA: Map = Map("media");
/// user str ‖ media id str → u64 `unused_expires_at`: created `mxc://` URIs not uploaded yet.
pub const MEDIA_PENDING: Map = Map("media_pending");
/// server name str ‖ media id str ‖ width u64 ‖ height u64 ‖ method str → [`ThumbnailRecord`] JSON.
pub const MEDIA_THUMBNAILS: Map = Map("media_thumbnails");
/// server name str ‖ media id str → u64 ms: when the media was last downloaded or thumbnailed
/// (rewritten at most once an hour per media; media retention reads it).
pub const MEDIA_ACCESS: Map = Map("media_access");
pub const MAPS: &[Map] = &[MEDIA, MEDIA_PENDING, MEDIA_THUMBNAILS, MEDIA_ACCESS];

/// What we know of one `mxc://` URI (ours or another server's, cached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    /// Address of the content in the file store; `None` while an async upload is awaited.
    pub sha256: Option<String>,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub size: u64,
    /// The local user who created it (`None` for other servers' media).
    pub uploader: Option<OwnedUserId>,
    pub created_ts: u64,
    /// For a created URI not uploaded yet: when it stops accepting the upload.
    pub unused_expires_at: Option<u64>,
    /// Created while unauthenticated media was frozen: not served on the legacy endpoints.
    pub authenticated: bool,
    /// The admin who quarantined it: not served (404) while set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_by: Option<String>,
    /// Protected by an admin: never quarantined in bulk, never deleted by media retention.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub safe_from_quarantine: bool,
}

/// A stored thumbnail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThumbnailRecord {
    pub sha256: String,
    pub content_type: String,
    pub size: u64,
    pub width: u32,
    pub height: u32,
}

pub fn media_key(server: &ServerName, media_id: &str) -> Vec<u8> {
    Key::new().str(server.as_str()).str(media_id).build()
}

pub fn pending_key(user: &UserId, media_id: &str) -> Vec<u8> {
    Key::new().str(user.as_str()).str(media_id).build()
}

/// The prefix of `user`'s keys in `MEDIA_PENDING`.
pub fn pending_prefix(user: &UserId) -> Vec<u8> {
    Key::new().str(user.as_str()).build()
}

pub fn thumbnail_key(
    server: &ServerName,
    media_id: &str,
    width: u32,
    height: u32,
    method: Method,
) -> Vec<u8> {
    Key::new()
        .str(server.as_str())
        .str(media_id)
        .u64(width.into())
        .u64(height.into())
        .str(method.as_str())
        .build()
}

pub fn get(db: &Db, server: &ServerName, media_id: &str) -> Result<Option<MediaRecord>> {
    db.get_json(MEDIA, &media_key(server, media_id))
}

pub fn put(batch: &mut Batch, server: &ServerName, media_id: &str, record: &MediaRecord) {
    batch.put(MEDIA, media_key(server, media_id), encode_json(record));
}

pub fn thumbnail(
    db: &Db,
    server: &ServerName,
    media_id: &str,
    width: u32,
    height: u32,
    method: Method,
) -> Result<Option<ThumbnailRecord>> {
    db.get_json(
        MEDIA_THUMBNAILS,
        &thumbnail_key(server, media_id, width, height, method),
    )
}

/// `user`'s pending uploads at `now`: the `unused_expires_at` of those still open, and the media
/// ids of those that expired.
pub fn pending(db: &Db, user: &UserId, now: u64) -> Result<(Vec<u64>, Vec<String>)> {
    let prefix = pending_prefix(user);
    let (mut live, mut expired) = (Vec::new(), Vec::new());
    for item in db.scan_prefix(MEDIA_PENDING, &prefix) {
        let (key, value) = item?;
        let mut reader = KeyReader::new(&key);
        let media_id = reader
            .str()
            .and_then(|_| reader.str())
            .unwrap_or_default()
            .to_owned();
        match u64_from(&value) {
            Some(expires) if expires > now => live.push(expires),
            _ => expired.push(media_id),
        }
    }
    Ok((live, expired))
}
