//! Outgoing federation requests: resolve the destination, sign with X-Matrix, send over TLS.

use bytes::Bytes;
use ruma::{
    ServerName,
    api::{
        IncomingResponseExt, OutgoingRequest, OutgoingRequestExt,
        auth_scheme::{AuthScheme, NoAuthentication},
        federation::authentication::{ServerSignatures, XMatrixSigningInput},
        path_builder::SinglePath,
    },
    signatures::Ed25519KeyPair,
};

use super::{resolve::resolve, unreachable, xmatrix};
use crate::{
    error::{Error, Result},
    services::Services,
};

/// The authentication of a ruma federation endpoint, as we send it.
pub trait FederationAuth: AuthScheme {
    fn input<'a>(
        origin: &ServerName,
        destination: &ServerName,
        keypair: &'a Ed25519KeyPair,
    ) -> Self::Input<'a>;
}

impl FederationAuth for NoAuthentication {
    fn input<'a>(_: &ServerName, _: &ServerName, _: &'a Ed25519KeyPair) -> Self::Input<'a> {}
}

impl FederationAuth for ServerSignatures {
    fn input<'a>(
        origin: &ServerName,
        destination: &ServerName,
        keypair: &'a Ed25519KeyPair,
    ) -> Self::Input<'a> {
        XMatrixSigningInput::new(origin.to_owned(), destination.to_owned(), keypair)
    }
}

/// Sends a raw request (URI: path and query; body: JSON or empty) to `destination`, signed with
/// X-Matrix when `sign`. Answers of any status are returned.
pub async fn send_raw(
    services: &Services,
    destination: &ServerName,
    mut request: http::Request<Vec<u8>>,
    sign: bool,
) -> Result<http::Response<Bytes>> {
    if !services.config().federation.enabled {
        return Err(Error::forbidden("Federation is disabled on this server"));
    }
    if sign {
        let origin = services.globals.server_name();
        xmatrix::sign_request(&mut request, origin, destination, &services.globals.keypair)
            .map_err(|e| Error::internal(format!("signing a request: {e}")))?;
    }
    let dest = resolve(services, destination)
        .await
        .map_err(|e| transport_failure(destination.as_str(), &e))?;
    services
        .federation
        .transport
        .send(&dest, request)
        .await
        .map_err(|e| transport_failure(destination.as_str(), &e))
}

/// The error a client sees when another server (or an identity server, a media location) cannot
/// be reached: a generic message naming only what was asked. The transport's details (addresses,
/// TLS and connection errors) go to the log, never to clients.
pub fn transport_failure(what: &str, error: &super::client::TransportError) -> Error {
    tracing::info!("federation: {what}: {error}");
    unreachable(format!("{what} could not be reached"))
}

/// Sends a ruma federation request (signed when the endpoint requires it) and returns the answer
/// as it came, whatever its status.
pub async fn send_unparsed<T>(
    services: &Services,
    destination: &ServerName,
    request: T,
) -> Result<http::Response<Bytes>>
where
    T: OutgoingRequest<PathBuilder = SinglePath>,
    T::Authentication: FederationAuth,
{
    let origin = services.globals.server_name();
    let input = <T::Authentication as FederationAuth>::input(
        origin,
        destination,
        &services.globals.keypair,
    );
    let http_request = request
        .try_into_http_request::<Vec<u8>>(&format!("https://{destination}"), input, ())
        .map_err(|e| Error::internal(format!("building a federation request: {e}")))?;
    send_raw(services, destination, http_request, false).await
}

/// Sends a ruma federation request to `destination` (signed when the endpoint requires it).
pub async fn send<T>(
    services: &Services,
    destination: &ServerName,
    request: T,
) -> Result<T::IncomingResponse>
where
    T: OutgoingRequest<PathBuilder = SinglePath>,
    T::Authentication: FederationAuth,
{
    let response = send_unparsed(services, destination, request).await?;
    let (parts, body) = response.into_parts();
    let status = parts.status;
    T::IncomingResponse::try_from_http_response(http::Response::from_parts(parts, body.as_ref()))
        .map_err(|e| unreachable(format!("{destination} answered {status}: {e}")))
}

/// Sends a signed JSON request (path with its query, already percent-encoded) and returns the
/// status and the JSON answer (`null` when the answer is not JSON).
pub async fn send_json(
    services: &Services,
    destination: &ServerName,
    method: http::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(http::StatusCode, serde_json::Value)> {
    let response = send_json_raw(services, destination, method, path, body).await?;
    let status = response.status();
    let value = serde_json::from_slice(response.body()).unwrap_or(serde_json::Value::Null);
    Ok((status, value))
}

/// Sends a signed JSON request (as `send_json`) and returns the answer as it came.
async fn send_json_raw(
    services: &Services,
    destination: &ServerName,
    method: http::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<http::Response<Bytes>> {
    let bytes = match body {
        Some(b) => serde_json::to_vec(b).map_err(|e| Error::internal(e.to_string()))?,
        None => Vec::new(),
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("https://{destination}{path}"));
    if body.is_some() {
        builder = builder.header(http::header::CONTENT_TYPE, "application/json");
    }
    let request = builder
        .body(bytes)
        .map_err(|e| Error::internal(e.to_string()))?;
    send_raw(services, destination, request, true).await
}

/// `call` that returns the answer's body unparsed (for answers of megabytes, read off the async
/// workers by the caller).
pub async fn call_bytes(
    services: &Services,
    destination: &ServerName,
    method: http::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<Bytes> {
    let response = send_json_raw(services, destination, method, path, body).await?;
    let status = response.status();
    if status.is_success() {
        return Ok(response.into_body());
    }
    let value = serde_json::from_slice(response.body()).unwrap_or(serde_json::Value::Null);
    Err(answer_error(destination, status, &value))
}

/// `send_json` that expects 200 and turns other answers into errors carrying the remote errcode.
pub async fn call(
    services: &Services,
    destination: &ServerName,
    method: http::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value> {
    let (status, value) = send_json(services, destination, method, path, body).await?;
    if status.is_success() {
        return Ok(value);
    }
    Err(answer_error(destination, status, &value))
}

/// The error a peer answered (its errcode when we know it, else M_UNKNOWN; 5xx become 502).
/// Characters of a peer's `error` text passed on to a client.
const MAX_PEER_ERROR_CHARS: usize = 200;

pub fn answer_error(
    destination: &ServerName,
    status: http::StatusCode,
    value: &serde_json::Value,
) -> Error {
    let errcode = match value
        .get("errcode")
        .and_then(|v| v.as_str())
        .unwrap_or("M_UNKNOWN")
    {
        "M_FORBIDDEN" => "M_FORBIDDEN",
        "M_NOT_FOUND" => "M_NOT_FOUND",
        "M_INCOMPATIBLE_ROOM_VERSION" => "M_INCOMPATIBLE_ROOM_VERSION",
        "M_UNSUPPORTED_ROOM_VERSION" => "M_UNSUPPORTED_ROOM_VERSION",
        "M_BAD_JSON" => "M_BAD_JSON",
        "M_INVALID_PARAM" => "M_INVALID_PARAM",
        "M_LIMIT_EXCEEDED" => "M_LIMIT_EXCEEDED",
        "M_UNRECOGNIZED" => "M_UNRECOGNIZED",
        "M_UNABLE_TO_AUTHORISE_JOIN" => "M_UNABLE_TO_AUTHORISE_JOIN",
        "M_UNABLE_TO_GRANT_JOIN" => "M_UNABLE_TO_GRANT_JOIN",
        _ => "M_UNKNOWN",
    };
    // The peer's text reaches our client: bounded, without control characters.
    let error: String = value
        .get("error")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_PEER_ERROR_CHARS)
        .collect();
    let status = if status.is_server_error() {
        http::StatusCode::BAD_GATEWAY
    } else {
        status
    };
    Error::new(status, errcode, format!("{destination}: {error}"))
}
