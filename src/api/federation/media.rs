//! The content repository for other servers: `GET /_matrix/federation/v1/media/download/{mediaId}`
//! and `/thumbnail/{mediaId}` (X-Matrix), answered as multipart/mixed (ruma writes the body: an
//! empty JSON metadata part, then the content with its type and disposition). Our own media only.

use std::sync::Arc;

use axum::extract::State;
use ruma::api::federation::authenticated_media::{
    Content, ContentMetadata, FileOrLocation, get_content, get_content_thumbnail,
};

use super::auth::Federated;
use crate::{
    api::ruma_wrapper::RumaResponse,
    error::Result,
    services::{
        Services,
        media::{
            download::{self, Access, Ask},
            headers,
            render::Method,
            thumbnail::{self, Wanted},
        },
    },
};

fn ask(timeout: std::time::Duration) -> Ask {
    Ask {
        access: Access::Federation,
        allow_remote: false,
        timeout,
    }
}

/// `GET /_matrix/federation/v1/media/download/{mediaId}`.
pub async fn download(
    State(services): State<Arc<Services>>,
    req: Federated<get_content::v1::Request>,
) -> Result<RumaResponse<get_content::v1::Response>> {
    let server = services.globals.server_name().clone();
    let (record, bytes) = download::content(
        &services,
        &server,
        &req.body.media_id,
        ask(req.body.timeout_ms),
    )
    .await?;
    let disposition =
        headers::disposition(record.content_type.as_deref(), record.filename.as_deref());
    let content_type = headers::content_type_header(record.content_type.as_deref())
        .to_str()
        .unwrap_or("application/octet-stream")
        .to_owned();
    let content = Content::new(bytes, content_type, disposition);
    Ok(
        get_content::v1::Response::new(ContentMetadata::new(), FileOrLocation::File(content))
            .into(),
    )
}

/// `GET /_matrix/federation/v1/media/thumbnail/{mediaId}`.
pub async fn thumbnail(
    State(services): State<Arc<Services>>,
    req: Federated<get_content_thumbnail::v1::Request>,
) -> Result<RumaResponse<get_content_thumbnail::v1::Response>> {
    let server = services.globals.server_name().clone();
    let b = req.body;
    let wanted = Wanted {
        width: u32::try_from(u64::from(b.width)).unwrap_or(u32::MAX),
        height: u32::try_from(u64::from(b.height)).unwrap_or(u32::MAX),
        method: Method::from_ruma(b.method.as_ref()),
        animated: b.animated,
    };
    let thumbnail =
        thumbnail::thumbnail(&services, &server, &b.media_id, wanted, ask(b.timeout_ms)).await?;
    let disposition = headers::thumbnail_disposition(&thumbnail.content_type);
    let content = Content::new(thumbnail.bytes, thumbnail.content_type, disposition);
    Ok(get_content_thumbnail::v1::Response::new(
        ContentMetadata::new(),
        FileOrLocation::File(content),
    )
    .into())
}
