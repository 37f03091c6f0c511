//! Other servers' media: `GET /_matrix/federation/v1/media/download|thumbnail/{mediaId}` (signed
//! with X-Matrix; a multipart/mixed answer: a JSON part, then the content or a `Location` to
//! follow), with a fallback to the unauthenticated `GET /_matrix/media/v3/download|thumbnail/…?
//! allow_remote=false` when the peer does not know the federation endpoint (404/400
//! `M_UNRECOGNIZED`). Parsing is pure and unit-tested; ruma reads the multipart body.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use ruma::{
    ServerName, UInt,
    api::{
        IncomingResponse, IncomingResponseExt,
        federation::authenticated_media::{FileOrLocation, get_content, get_content_thumbnail},
    },
    http_headers::ContentDisposition,
};

use super::render::Method;
use crate::{
    error::{Error, Result},
    federation::{
        discovery::{Destination, split_host_port},
        request::{send_raw, send_unparsed, transport_failure},
        resolve::resolve,
        unreachable,
    },
    services::Services,
};

/// Media fetched from another server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub filename: Option<String>,
}

/// What a peer's answer to a federation media request means.
#[derive(Debug)]
pub enum Answer {
    File(Fetched),
    /// The content is at this URL (fetched without authentication).
    Location(String),
    /// The peer does not serve the federation endpoint: try the legacy one.
    Unsupported,
    Failed(Error),
}

/// The two federation media answers (same body).
pub trait MediaAnswer: IncomingResponse {
    fn into_content(self) -> FileOrLocation;
}
impl MediaAnswer for get_content::v1::Response {
    fn into_content(self) -> FileOrLocation {
        self.content
    }
}
impl MediaAnswer for get_content_thumbnail::v1::Response {
    fn into_content(self) -> FileOrLocation {
        self.content
    }
}

fn errcode(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("errcode")?.as_str().map(str::to_owned)
}

/// An error answer of a peer, as our error.
fn remote_error(origin: &ServerName, status: StatusCode, body: &[u8]) -> Error {
    match (status, errcode(body).as_deref()) {
        (StatusCode::NOT_FOUND, _) => {
            Error::not_found(format!("{origin} does not have this media"))
        }
        (StatusCode::GATEWAY_TIMEOUT, Some("M_NOT_YET_UPLOADED")) => super::not_yet_uploaded(),
        (StatusCode::PAYLOAD_TOO_LARGE, _) | (_, Some("M_TOO_LARGE")) => Error::new(
            StatusCode::BAD_GATEWAY,
            "M_TOO_LARGE",
            format!("{origin}: the content is too large"),
        ),
        (StatusCode::BAD_REQUEST, Some(code)) if code != "M_UNRECOGNIZED" => Error::new(
            StatusCode::BAD_REQUEST,
            "M_UNKNOWN",
            format!("{origin} cannot answer this request ({code})"),
        ),
        _ => unreachable(format!("{origin} answered {status} to a media request")),
    }
}

/// Reads a peer's answer to `/_matrix/federation/v1/media/download|thumbnail`.
pub fn read_federation_answer<R: MediaAnswer>(
    origin: &ServerName,
    response: http::Response<Bytes>,
) -> Answer {
    let status = response.status();
    if !status.is_success() {
        let code = errcode(response.body());
        let unsupported = match status {
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                code.is_none() || code.as_deref() == Some("M_UNRECOGNIZED")
            }
            StatusCode::BAD_REQUEST => code.as_deref() == Some("M_UNRECOGNIZED"),
            _ => false,
        };
        if unsupported {
            return Answer::Unsupported;
        }
        return Answer::Failed(remote_error(origin, status, response.body()));
    }
    let (parts, body) = response.into_parts();
    match R::try_from_http_response(http::Response::from_parts(parts, body.as_ref())) {
        Ok(answer) => match answer.into_content() {
            FileOrLocation::File(content) => Answer::File(Fetched {
                bytes: content.file,
                content_type: content.content_type,
                filename: content.content_disposition.and_then(|d| d.filename),
            }),
            FileOrLocation::Location(url) => Answer::Location(url),
            _ => Answer::Failed(unreachable(format!(
                "{origin} gave an unknown kind of media answer"
            ))),
        },
        Err(e) => Answer::Failed(unreachable(format!(
            "{origin} gave a malformed media answer: {e}"
        ))),
    }
}

/// Reads a plain media answer (the legacy endpoints, a followed `Location`): the body, with its
/// `Content-Type` and the filename of its `Content-Disposition`.
pub fn read_plain_answer(origin: &str, response: http::Response<Bytes>) -> Result<Fetched> {
    let status = response.status();
    if !status.is_success() {
        return Err(match status {
            StatusCode::NOT_FOUND => Error::not_found(format!("{origin} does not have this media")),
            _ => unreachable(format!("{origin} answered {status} to a media request")),
        });
    }
    let header =
        |name: http::HeaderName| response.headers().get(name).map(|v| v.as_bytes().to_vec());
    let content_type = header(http::header::CONTENT_TYPE).and_then(|v| String::from_utf8(v).ok());
    let filename = header(http::header::CONTENT_DISPOSITION)
        .and_then(|v| ContentDisposition::try_from(v.as_slice()).ok())
        .and_then(|d| d.filename);
    Ok(Fetched {
        bytes: response.into_body().to_vec(),
        content_type,
        filename,
    })
}

/// An unsigned GET of `path_and_query` on `destination`'s federation address.
async fn get_unsigned(
    services: &Services,
    destination: &ServerName,
    path_and_query: &str,
) -> Result<http::Response<Bytes>> {
    let request = http::Request::get(format!("https://{destination}{path_and_query}"))
        .body(Vec::new())
        .map_err(|e| Error::internal(e.to_string()))?;
    send_raw(services, destination, request, false).await
}

/// Whether a `Location` on `location_host` may be followed for media of `server`: only on the
/// host of the server name or of the address its requests go to (a peer cannot send us to
/// another host, such as a service of our own network) (pure).
pub fn location_host_allowed(
    location_host: &str,
    server: &ServerName,
    destination_host: &str,
) -> bool {
    let location_host = location_host.trim_start_matches('[').trim_end_matches(']');
    let server_host = split_host_port(server.as_str()).map_or(server.as_str(), |(host, _)| host);
    [server_host, destination_host]
        .iter()
        .any(|host| host.eq_ignore_ascii_case(location_host))
}

/// Follows a `Location` of a federation media answer (HTTPS only, same host only).
async fn follow(services: &Services, server: &ServerName, url: &str) -> Result<Fetched> {
    let refused = |why: &str| {
        tracing::info!("media of {server}: location {url} not followed: {why}");
        unreachable(format!(
            "{server} answered a media location that is not followed"
        ))
    };
    let uri: http::Uri = url.parse().map_err(|_| refused("not a URL"))?;
    let (Some("https"), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(refused("not an https URL"));
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let server_destination = resolve(services, server)
        .await
        .map_err(|e| transport_failure(server.as_str(), &e))?;
    if !location_host_allowed(&host, server, &server_destination.host) {
        return Err(refused("another host"));
    }
    let destination = Destination {
        host: host.clone(),
        port: authority.port_u16().unwrap_or(443),
        host_header: authority.as_str().to_owned(),
        tls_name: host,
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| Error::internal(e.to_string()))?;
    let response = services
        .federation
        .transport
        .send(&destination, request)
        .await
        .map_err(|e| transport_failure(server.as_str(), &e))?;
    read_plain_answer(authority.as_str(), response)
}

async fn resolve_answer(
    services: &Services,
    server: &ServerName,
    answer: Answer,
    legacy_path: impl FnOnce() -> String,
) -> Result<Fetched> {
    match answer {
        Answer::File(fetched) => Ok(fetched),
        Answer::Location(url) => follow(services, server, &url).await,
        Answer::Unsupported => {
            let response = get_unsigned(services, server, &legacy_path()).await?;
            read_plain_answer(server.as_str(), response)
        }
        Answer::Failed(e) => Err(e),
    }
}

/// The content of `mxc://{server}/{media_id}`, from `server`.
pub async fn fetch_content(
    services: &Services,
    server: &ServerName,
    media_id: &str,
    timeout: Duration,
) -> Result<Fetched> {
    let mut request = get_content::v1::Request::new(media_id.to_owned());
    request.timeout_ms = timeout;
    let response = send_unparsed(services, server, request).await?;
    let answer = read_federation_answer::<get_content::v1::Response>(server, response);
    resolve_answer(services, server, answer, || {
        format!(
            "/_matrix/media/v3/download/{}/{}?allow_remote=false&timeout_ms={}",
            crate::util::encode_segment(server.as_str()),
            crate::util::encode_segment(media_id),
            timeout.as_millis()
        )
    })
    .await
}

/// A thumbnail of `mxc://{server}/{media_id}` made by `server`.
pub async fn fetch_thumbnail(
    services: &Services,
    server: &ServerName,
    media_id: &str,
    (width, height, method): (u32, u32, Method),
    animated: Option<bool>,
    timeout: Duration,
) -> Result<Fetched> {
    let mut request = get_content_thumbnail::v1::Request::new(
        media_id.to_owned(),
        UInt::from(width),
        UInt::from(height),
    );
    request.method = Some(method.to_ruma());
    request.animated = animated;
    request.timeout_ms = timeout;
    let response = send_unparsed(services, server, request).await?;
    let answer = read_federation_answer::<get_content_thumbnail::v1::Response>(server, response);
    resolve_answer(services, server, answer, || {
        format!(
            "/_matrix/media/v3/thumbnail/{}/{}?width={width}&height={height}&method={}&allow_remote=false&timeout_ms={}",
            crate::util::encode_segment(server.as_str()),
            crate::util::encode_segment(media_id),
            method.as_str(),
            timeout.as_millis()
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, content_type: &str, body: &[u8]) -> http::Response<Bytes> {
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Bytes::copy_from_slice(body))
            .unwrap()
    }

    fn origin() -> &'static ServerName {
        <&ServerName>::try_from("remote.example").unwrap()
    }

    #[test]
    fn a_multipart_answer_gives_the_file_its_type_and_name() {
        // As Synapse writes it: a JSON part, then the file with its headers.
        let body = b"\r\n--6b3f\r\nContent-Type: application/json\r\n\r\n{}\r\n--6b3f\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=\"cat pic.png\"\r\n\r\n\x89PNG\r\n\x1a\nbytes\r\n--6b3f--\r\n";
        let answer = read_federation_answer::<get_content::v1::Response>(
            origin(),
            response(200, "multipart/mixed; boundary=6b3f", body),
        );
        let Answer::File(fetched) = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(fetched.bytes, b"\x89PNG\r\n\x1a\nbytes");
        assert_eq!(fetched.content_type.as_deref(), Some("image/png"));
        assert_eq!(fetched.filename.as_deref(), Some("cat pic.png"));
    }

    #[test]
    fn a_location_part_is_followed() {
        let body = b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nLocation: https://cdn.example/m/1\r\n\r\n\r\n--b--";
        let answer = read_federation_answer::<get_content_thumbnail::v1::Response>(
            origin(),
            response(200, "multipart/mixed; boundary=b", body),
        );
        assert!(
            matches!(answer, Answer::Location(ref url) if url == "https://cdn.example/m/1"),
            "{answer:?}"
        );
    }

    #[test]
    fn locations_are_followed_only_on_the_servers_own_host() {
        let server = <&ServerName>::try_from("remote.example:8448").unwrap();
        assert!(location_host_allowed(
            "remote.example",
            server,
            "fed.remote.example"
        ));
        assert!(location_host_allowed(
            "REMOTE.example",
            server,
            "fed.remote.example"
        ));
        assert!(location_host_allowed(
            "fed.remote.example",
            server,
            "fed.remote.example"
        ));
        assert!(!location_host_allowed(
            "cdn.example",
            server,
            "fed.remote.example"
        ));
        assert!(!location_host_allowed(
            "127.0.0.1",
            server,
            "fed.remote.example"
        ));
        assert!(!location_host_allowed(
            "169.254.169.254",
            server,
            "fed.remote.example"
        ));
        let literal = <&ServerName>::try_from("[::1]:8448").unwrap();
        assert!(location_host_allowed("[::1]", literal, "::1"));
        assert!(!location_host_allowed("localhost", literal, "::1"));
    }

    #[test]
    fn unknown_endpoints_fall_back_and_other_errors_do_not() {
        let unrecognized = br#"{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}"#;
        let read = |status, body: &[u8]| {
            read_federation_answer::<get_content::v1::Response>(
                origin(),
                response(status, "application/json", body),
            )
        };
        assert!(matches!(read(404, unrecognized), Answer::Unsupported));
        assert!(matches!(read(400, unrecognized), Answer::Unsupported));
        assert!(matches!(read(404, b"<html>no</html>"), Answer::Unsupported));
        let Answer::Failed(e) = read(404, br#"{"errcode":"M_NOT_FOUND","error":"no"}"#) else {
            panic!()
        };
        assert_eq!(
            (e.status, e.errcode),
            (StatusCode::NOT_FOUND, "M_NOT_FOUND")
        );
        let Answer::Failed(e) = read(504, br#"{"errcode":"M_NOT_YET_UPLOADED","error":"later"}"#)
        else {
            panic!()
        };
        assert_eq!(e.errcode, "M_NOT_YET_UPLOADED");
        assert!(matches!(read(500, b"{}"), Answer::Failed(_)));
        // Not multipart at all.
        let answer = read_federation_answer::<get_content::v1::Response>(
            origin(),
            response(200, "image/png", b"png"),
        );
        assert!(matches!(answer, Answer::Failed(_)), "{answer:?}");
    }

    #[test]
    fn a_plain_answer_gives_its_headers() {
        let mut answer = response(200, "text/plain", b"hello");
        answer.headers_mut().insert(
            http::header::CONTENT_DISPOSITION,
            "attachment; filename*=utf-8''r%C3%A9.txt".parse().unwrap(),
        );
        let fetched = read_plain_answer("remote.example", answer).unwrap();
        assert_eq!(
            fetched,
            Fetched {
                bytes: b"hello".to_vec(),
                content_type: Some("text/plain".into()),
                filename: Some("ré.txt".into())
            }
        );
        assert_eq!(
            read_plain_answer("r", response(404, "application/json", b"{}"))
                .unwrap_err()
                .errcode,
            "M_NOT_FOUND"
        );
    }
}
