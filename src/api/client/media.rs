//! The content repository of the client-server API: uploads (`/media/v3/upload`, `/media/v1/create`
//! then `PUT /media/v3/upload/{serverName}/{mediaId}`), downloads and thumbnails on the
//! authenticated `/_matrix/client/v1/media/*` and the legacy `/_matrix/media/v3/*` endpoints, and
//! the media configuration. `preview_url` is not served (404 `M_UNRECOGNIZED`).
// The legacy endpoints are served on purpose (ruma marks their types deprecated).
#![allow(deprecated)]

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{FromRequest, Request, State},
    response::Response,
};
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedUserId, UInt,
    api::{
        IncomingRequest, IncomingRequestExt,
        client::{
            authenticated_media::{
                get_content as auth_get_content,
                get_content_as_filename as auth_get_content_as_filename,
                get_content_thumbnail as auth_get_content_thumbnail,
                get_media_config as auth_get_media_config,
            },
            media::{
                create_content, create_content_async, create_mxc_uri, get_content,
                get_content_as_filename, get_content_thumbnail, get_media_config,
            },
        },
    },
    http_headers::ContentDisposition,
};

use crate::{
    api::ruma_wrapper::{AuthNeed, Ruma, RumaResponse, authenticate, path_args},
    error::{Error, Result},
    services::{
        Services,
        media::{
            download::{self, Access, Ask},
            files::{ReceiveError, Receiver, Staged},
            headers,
            render::Method,
            thumbnail::{self, Wanted},
            upload::{self, Upload},
        },
    },
};

/// An upload request: like `Ruma<T>` (parsed without its body), with the body written to a file
/// of the media store's `tmp/` as it arrives; up to `media.max_upload_bytes` (larger: 413
/// `M_TOO_LARGE`, the file removed, nothing stored).
pub struct MediaUpload<T> {
    pub body: T,
    pub user: OwnedUserId,
    pub file: crate::services::media::files::Staged,
}

impl<T> FromRequest<Arc<Services>> for MediaUpload<T>
where
    T: IncomingRequest + Send + 'static,
{
    type Rejection = Error;

    async fn from_request(req: Request, services: &Arc<Services>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let args = path_args(&mut parts, services).await?;
        let (user, _) = authenticate(services, &parts, AuthNeed::Required).await?;
        let user = user.ok_or_else(Error::missing_token)?;
        if T::RATE_LIMITED {
            services.rate_limiter.check(user.as_str())?;
        }
        let limit = services.config().media.max_upload_bytes;
        let too_large = || Error::too_large(format!("Uploads are limited to {limit} bytes"));
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        // The path, query and headers first (the content is not part of what ruma checks).
        let request =
            T::try_from_http_request(http::Request::from_parts(parts, &[] as &[u8]), &arg_refs)
                .map_err(|e| {
                    use ruma::api::error::{DeserializationError, FromHttpRequestError};
                    match e {
                        FromHttpRequestError::Deserialization(DeserializationError::Ident(e)) => {
                            Error::invalid_param(e.to_string())
                        }
                        FromHttpRequestError::Deserialization(DeserializationError::Query(e)) => {
                            Error::invalid_param(e.to_string())
                        }
                        other => Error::bad_json(other.to_string()),
                    }
                })?;
        let file = receive(services, body, limit).await.map_err(|e| match e {
            ReceiveError::TooLarge => too_large(),
            ReceiveError::Io(e) => Error::internal(format!("receiving an upload: {e}")),
        })?;
        Ok(MediaUpload {
            body: request,
            user,
            file,
        })
    }
}

/// Writes an upload's body to a new file of `tmp/` as it arrives, at most `limit` bytes.
async fn receive(
    services: &Services,
    body: axum::body::Body,
    limit: u64,
) -> Result<Staged, ReceiveError> {
    use futures_util::StreamExt;
    let mut receiver = Receiver::create(services.media.files.temp_path(), limit)
        .await
        .map_err(ReceiveError::Io)?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ReceiveError::Io(std::io::Error::other(e.to_string())))?;
        receiver.write(&chunk).await?;
    }
    receiver.finish().await.map_err(ReceiveError::Io)
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// `POST /_matrix/media/v3/upload`.
pub async fn upload(
    State(services): State<Arc<Services>>,
    req: MediaUpload<create_content::v3::Request>,
) -> Result<RumaResponse<create_content::v3::Response>> {
    let MediaUpload { body, user, file } = req;
    services.moderation.ensure_not_suspended(&user)?;
    let new = Upload {
        file,
        content_type: nonempty(body.content_type),
        filename: nonempty(body.filename),
    };
    let uri = services.run(move |s| upload::upload(s, &user, new)).await?;
    Ok(create_content::v3::Response::new(uri).into())
}

/// `POST /_matrix/media/v1/create`.
pub async fn create(
    State(services): State<Arc<Services>>,
    req: Ruma<create_mxc_uri::v1::Request>,
) -> Result<RumaResponse<create_mxc_uri::v1::Response>> {
    let user = req.user()?.clone();
    services.moderation.ensure_not_suspended(&user)?;
    let (uri, expires) = services.run(move |s| upload::create(s, &user)).await?;
    let mut response = create_mxc_uri::v1::Response::new(uri);
    response.unused_expires_at = UInt::new(expires).map(MilliSecondsSinceUnixEpoch);
    Ok(response.into())
}

/// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`.
pub async fn upload_created(
    State(services): State<Arc<Services>>,
    req: MediaUpload<create_content_async::v3::Request>,
) -> Result<axum::Json<serde_json::Value>> {
    let MediaUpload { body, user, file } = req;
    services.moderation.ensure_not_suspended(&user)?;
    let (server, media_id) = (body.server_name, body.media_id);
    let new = Upload {
        file,
        content_type: nonempty(body.content_type),
        filename: nonempty(body.filename),
    };
    services
        .run(move |s| upload::upload_created(s, &user, &server, &media_id, new))
        .await?;
    // ruma's `create_content_async::v3::Response` has no constructor: its body is `{}`.
    Ok(axum::Json(serde_json::json!({})))
}

/// A download or thumbnail answer with the safe headers.
pub fn media_response(
    bytes: Vec<u8>,
    content_type: Option<&str>,
    disposition: &ContentDisposition,
) -> Response {
    let mut response = Response::new(Body::from(bytes));
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        headers::content_type_header(content_type),
    );
    if let Ok(value) = http::HeaderValue::from_str(&disposition.to_string()) {
        h.insert(http::header::CONTENT_DISPOSITION, value);
    }
    for (name, value) in headers::SECURITY_HEADERS {
        h.insert(*name, http::HeaderValue::from_static(value));
    }
    response
}

async fn download(
    services: &Arc<Services>,
    server: &ruma::ServerName,
    media_id: &str,
    filename: Option<String>,
    ask: Ask,
) -> Result<Response> {
    let (record, bytes) = download::content(services, server, media_id, ask).await?;
    let filename = nonempty(filename).or(record.filename);
    let disposition = headers::disposition(record.content_type.as_deref(), filename.as_deref());
    Ok(media_response(
        bytes,
        record.content_type.as_deref(),
        &disposition,
    ))
}

fn authenticated(timeout: std::time::Duration) -> Ask {
    Ask {
        access: Access::Authenticated,
        allow_remote: true,
        timeout,
    }
}

fn legacy(allow_remote: bool, timeout: std::time::Duration) -> Ask {
    Ask {
        access: Access::Legacy,
        allow_remote,
        timeout,
    }
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`.
pub async fn get_content(
    State(services): State<Arc<Services>>,
    req: Ruma<auth_get_content::v1::Request>,
) -> Result<Response> {
    let b = req.body;
    download(
        &services,
        &b.server_name,
        &b.media_id,
        None,
        authenticated(b.timeout_ms),
    )
    .await
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}`.
pub async fn get_content_as_filename(
    State(services): State<Arc<Services>>,
    req: Ruma<auth_get_content_as_filename::v1::Request>,
) -> Result<Response> {
    let b = req.body;
    download(
        &services,
        &b.server_name,
        &b.media_id,
        Some(b.filename),
        authenticated(b.timeout_ms),
    )
    .await
}

/// `GET /_matrix/media/v3/download/{serverName}/{mediaId}` (legacy, unauthenticated).
pub async fn legacy_get_content(
    State(services): State<Arc<Services>>,
    req: Ruma<get_content::v3::Request>,
) -> Result<Response> {
    let b = req.body;
    download(
        &services,
        &b.server_name,
        &b.media_id,
        None,
        legacy(b.allow_remote, b.timeout_ms),
    )
    .await
}

/// `GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}` (legacy, unauthenticated).
pub async fn legacy_get_content_as_filename(
    State(services): State<Arc<Services>>,
    req: Ruma<get_content_as_filename::v3::Request>,
) -> Result<Response> {
    let b = req.body;
    download(
        &services,
        &b.server_name,
        &b.media_id,
        Some(b.filename),
        legacy(b.allow_remote, b.timeout_ms),
    )
    .await
}

fn dimension(value: UInt) -> u32 {
    u32::try_from(u64::from(value)).unwrap_or(u32::MAX)
}

async fn thumbnail_response(
    services: &Arc<Services>,
    server: &ruma::ServerName,
    media_id: &str,
    wanted: Wanted,
    ask: Ask,
) -> Result<Response> {
    let thumbnail = thumbnail::thumbnail(services, server, media_id, wanted, ask).await?;
    let disposition = headers::thumbnail_disposition(&thumbnail.content_type);
    Ok(media_response(
        thumbnail.bytes,
        Some(&thumbnail.content_type),
        &disposition,
    ))
}

/// `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`.
pub async fn get_thumbnail(
    State(services): State<Arc<Services>>,
    req: Ruma<auth_get_content_thumbnail::v1::Request>,
) -> Result<Response> {
    let b = req.body;
    let wanted = Wanted {
        width: dimension(b.width),
        height: dimension(b.height),
        method: Method::from_ruma(b.method.as_ref()),
        animated: b.animated,
    };
    thumbnail_response(
        &services,
        &b.server_name,
        &b.media_id,
        wanted,
        authenticated(b.timeout_ms),
    )
    .await
}

/// `GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}` (legacy, unauthenticated).
pub async fn legacy_get_thumbnail(
    State(services): State<Arc<Services>>,
    req: Ruma<get_content_thumbnail::v3::Request>,
) -> Result<Response> {
    let b = req.body;
    let wanted = Wanted {
        width: dimension(b.width),
        height: dimension(b.height),
        method: Method::from_ruma(b.method.as_ref()),
        animated: b.animated,
    };
    thumbnail_response(
        &services,
        &b.server_name,
        &b.media_id,
        wanted,
        legacy(b.allow_remote, b.timeout_ms),
    )
    .await
}

fn upload_size(services: &Services) -> UInt {
    UInt::new(services.config().media.max_upload_bytes).unwrap_or(UInt::MAX)
}

/// `GET /_matrix/client/v1/media/config`.
pub async fn config(
    State(services): State<Arc<Services>>,
    _req: Ruma<auth_get_media_config::v1::Request>,
) -> RumaResponse<auth_get_media_config::v1::Response> {
    auth_get_media_config::v1::Response::new(upload_size(&services)).into()
}

/// `GET /_matrix/media/v3/config`.
pub async fn legacy_config(
    State(services): State<Arc<Services>>,
    _req: Ruma<get_media_config::v3::Request>,
) -> RumaResponse<get_media_config::v3::Response> {
    get_media_config::v3::Response::new(upload_size(&services)).into()
}

/// Registers the media routes.
pub fn routes(router: crate::api::AppRouter) -> crate::api::AppRouter {
    use crate::api::RumaRoute;
    router
        .ruma::<create_content::v3::Request, _, _>(upload)
        .ruma::<create_mxc_uri::v1::Request, _, _>(create)
        .ruma::<create_content_async::v3::Request, _, _>(upload_created)
        .ruma::<auth_get_content::v1::Request, _, _>(get_content)
        .ruma::<auth_get_content_as_filename::v1::Request, _, _>(get_content_as_filename)
        .ruma::<auth_get_content_thumbnail::v1::Request, _, _>(get_thumbnail)
        .ruma::<auth_get_media_config::v1::Request, _, _>(config)
        .ruma::<get_content::v3::Request, _, _>(legacy_get_content)
        .ruma::<get_content_as_filename::v3::Request, _, _>(legacy_get_content_as_filename)
        .ruma::<get_content_thumbnail::v3::Request, _, _>(legacy_get_thumbnail)
        .ruma::<get_media_config::v3::Request, _, _>(legacy_config)
}
