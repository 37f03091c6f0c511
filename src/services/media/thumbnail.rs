//! Thumbnails of a media: generated once per size (the spec's list, see `render::SIZES`) on the
//! blocking pool, stored in the file store and recorded in `media_thumbnails`. For another
//! server's media not cached here, that server's thumbnail is asked first (and stored under the
//! size asked); when it cannot give one, the original is fetched and thumbnailed here.

use std::{sync::Arc, time::Duration};

use http::StatusCode;
use ruma::ServerName;

use super::{
    download::{self, Access, Ask, valid_media_id},
    media_not_found,
    records::{self, MEDIA_THUMBNAILS, ThumbnailRecord},
    remote,
    render::{self, Method, ThumbnailError},
};
use crate::{
    error::{Error, Result},
    services::Services,
    storage::{Batch, db::encode_json},
};

/// A thumbnail to send.
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

/// What a thumbnail request asks for.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub width: u32,
    pub height: u32,
    pub method: Method,
    pub animated: Option<bool>,
}

async fn stored(
    services: &Arc<Services>,
    server: &ServerName,
    media_id: &str,
    (w, h, method): (u32, u32, Method),
) -> Result<Option<Thumbnail>> {
    let (server, id) = (server.to_owned(), media_id.to_owned());
    services
        .run(move |s| {
            let Some(record) = records::thumbnail(s.media.db(), &server, &id, w, h, method)? else {
                return Ok(None);
            };
            let bytes = s
                .media
                .files
                .read(&record.sha256)
                .map_err(|e| Error::internal(format!("reading a thumbnail: {e}")))?;
            Ok(Some(Thumbnail {
                bytes,
                content_type: record.content_type,
            }))
        })
        .await
}

fn store(
    s: &Services,
    server: &ServerName,
    media_id: &str,
    key: (u32, u32, Method),
    bytes: &[u8],
    content_type: &str,
    size: (u32, u32),
) -> Result<()> {
    let _storing = s.media.storing();
    let sha256 = s
        .media
        .files
        .store(bytes)
        .map_err(|e| Error::internal(format!("storing a thumbnail: {e}")))?;
    let record = ThumbnailRecord {
        sha256,
        content_type: content_type.to_owned(),
        size: bytes.len() as u64,
        width: size.0,
        height: size.1,
    };
    let mut batch = Batch::new();
    batch.put(
        MEDIA_THUMBNAILS,
        records::thumbnail_key(server, media_id, key.0, key.1, key.2),
        encode_json(&record),
    );
    s.media.db().write(batch)?;
    Ok(())
}

/// A thumbnail of `mxc://{server}/{media_id}`.
pub async fn thumbnail(
    services: &Arc<Services>,
    server: &ServerName,
    media_id: &str,
    wanted: Wanted,
    ask: Ask,
) -> Result<Thumbnail> {
    let access = ask.access;
    if wanted.width == 0 || wanted.height == 0 {
        return Err(Error::unknown(
            "Thumbnail width and height must be positive",
        ));
    }
    if !valid_media_id(media_id) {
        return Err(media_not_found());
    }
    let local = server == services.globals.server_name();
    if !local
        && access != Access::Federation
        && let Some(thumbnail) = remote_thumbnail(services, server, media_id, wanted, ask).await?
    {
        return Ok(thumbnail);
    }
    let record = download::find(services, server, media_id, ask).await?;
    let size = render::choose_size(wanted.width, wanted.height, wanted.method);
    let key = (size.0, size.1, wanted.method);
    if let Some(thumbnail) = stored(services, server, media_id, key).await? {
        return Ok(thumbnail);
    }
    let _guard = services
        .media
        .work_locks
        .lock(format!(
            "thumbnail {server}/{media_id}/{}x{}/{}",
            key.0,
            key.1,
            key.2.as_str()
        ))
        .await;
    if let Some(thumbnail) = stored(services, server, media_id, key).await? {
        return Ok(thumbnail);
    }
    let sha256 = record.sha256.clone().ok_or_else(super::not_yet_uploaded)?;
    let (server_owned, id) = (server.to_owned(), media_id.to_owned());
    // Rendering is CPU work on the blocking pool: a few at once leave it to database calls.
    let _slot = services
        .media
        .thumbnail_slots
        .acquire()
        .await
        .map_err(|_| Error::internal("thumbnailing stopped"))?;
    let rendered = services
        .run(move |s| {
            let source = s
                .media
                .files
                .read(&sha256)
                .map_err(|e| Error::internal(format!("reading media: {e}")))?;
            let rendered = render::render(
                &source,
                key.0,
                key.1,
                key.2,
                s.media.config.max_thumbnail_pixels,
            )
            .map_err(|e| match e {
                ThumbnailError::NotAnImage => {
                    Error::unknown("Cannot generate thumbnails for the requested content")
                }
                ThumbnailError::TooLarge if local => {
                    Error::too_large("Content is too large to thumbnail")
                }
                ThumbnailError::TooLarge => Error::new(
                    StatusCode::BAD_GATEWAY,
                    "M_TOO_LARGE",
                    "Content is too large to thumbnail",
                ),
            })?;
            store(
                s,
                &server_owned,
                &id,
                key,
                &rendered.bytes,
                rendered.content_type,
                (rendered.width, rendered.height),
            )?;
            Ok(rendered)
        })
        .await?;
    Ok(Thumbnail {
        bytes: rendered.bytes,
        content_type: rendered.content_type.to_owned(),
    })
}

/// For another server's media not cached here: a stored thumbnail of the size asked, or that
/// server's thumbnail (stored). `None`: the original is to be fetched and thumbnailed here.
async fn remote_thumbnail(
    services: &Arc<Services>,
    server: &ServerName,
    media_id: &str,
    wanted: Wanted,
    ask: Ask,
) -> Result<Option<Thumbnail>> {
    let Ask {
        access,
        allow_remote,
        timeout,
    } = ask;
    let (server_owned, id) = (server.to_owned(), media_id.to_owned());
    let cached = services
        .run(move |s| Ok(records::get(s.media.db(), &server_owned, &id)?))
        .await?;
    if cached.is_some() {
        return Ok(None);
    }
    let media = &services.media;
    if !allow_remote
        || !media.config.fetch_remote
        || (access == Access::Legacy && media.config.freeze_legacy)
    {
        return Err(media_not_found());
    }
    let key = (wanted.width, wanted.height, wanted.method);
    if let Some(thumbnail) = stored(services, server, media_id, key).await? {
        return Ok(Some(thumbnail));
    }
    let _guard = media
        .work_locks
        .lock(format!(
            "remote thumbnail {server}/{media_id}/{}x{}/{}",
            key.0,
            key.1,
            key.2.as_str()
        ))
        .await;
    if let Some(thumbnail) = stored(services, server, media_id, key).await? {
        return Ok(Some(thumbnail));
    }
    let wait = timeout.min(Duration::from_millis(media.config.max_download_wait_ms));
    match remote::fetch_thumbnail(services, server, media_id, key, wanted.animated, wait).await {
        Ok(fetched) => {
            // Thumbnails are served inline: only image types we would show inline are kept.
            let Some(content_type) = fetched
                .content_type
                .filter(|ct| ct.starts_with("image/") && super::headers::is_inline(Some(ct)))
            else {
                tracing::debug!(
                    "{server} gave a thumbnail of another type for {media_id}: thumbnailing the original"
                );
                return Ok(None);
            };
            let (server_owned, id, ct) =
                (server.to_owned(), media_id.to_owned(), content_type.clone());
            let bytes = services
                .run(move |s| {
                    store(
                        s,
                        &server_owned,
                        &id,
                        key,
                        &fetched.bytes,
                        &ct,
                        (key.0, key.1),
                    )?;
                    Ok(fetched.bytes)
                })
                .await?;
            Ok(Some(Thumbnail {
                bytes,
                content_type,
            }))
        }
        Err(e) if e.status == StatusCode::NOT_FOUND || e.errcode == "M_NOT_YET_UPLOADED" => Err(e),
        Err(e) => {
            tracing::debug!(
                "no thumbnail from {server} for {media_id} ({e}): thumbnailing the original"
            );
            Ok(None)
        }
    }
}
