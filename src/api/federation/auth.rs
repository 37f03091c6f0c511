//! `Federated<T>`: the extractor of every authenticated federation endpoint. It checks the
//! X-Matrix signature (origin, destination, method, URI, body) against the origin's keys, then
//! lets ruma parse the request. Every authentication failure is 401 M_UNAUTHORIZED.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use ruma::{
    OwnedServerName,
    api::{IncomingRequest, IncomingRequestExt},
};

use crate::{
    api::ruma_wrapper::path_args,
    error::{Error, Result},
    federation::{now_ms, remote_keys, unauthorized, xmatrix},
    services::Services,
};

/// A federation request from an authenticated server.
pub struct Federated<T> {
    pub origin: OwnedServerName,
    pub body: T,
}

impl<T> FromRequest<Arc<Services>> for Federated<T>
where
    T: IncomingRequest + Send + 'static,
{
    type Rejection = Error;

    async fn from_request(req: Request, services: &Arc<Services>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let args = path_args(&mut parts, services).await?;
        let bytes = federation_body(body, services).await?;

        let (request, origin) =
            authenticate(services, http::Request::from_parts(parts, bytes)).await?;
        let (parts, bytes) = request.into_parts();
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let http_req = http::Request::from_parts(parts, bytes.as_ref());
        let body = T::try_from_http_request(http_req, &arg_refs).map_err(parse_error)?;
        Ok(Federated { origin, body })
    }
}

/// The body of a federation request, up to `federation.max_request_bytes` (a `/send` of 50 PDUs
/// of 64 KiB and 100 EDUs is legal: more than the client API's limit); beyond, 413 M_TOO_LARGE.
async fn federation_body(body: axum::body::Body, services: &Arc<Services>) -> Result<bytes::Bytes> {
    axum::body::to_bytes(body, services.config().federation.max_request_bytes)
        .await
        .map_err(|_| Error::too_large("Request body is too large"))
}

/// Checks the X-Matrix signature of a request; tells the sender the origin is reachable.
async fn authenticate(
    services: &Arc<Services>,
    request: http::Request<bytes::Bytes>,
) -> Result<(http::Request<bytes::Bytes>, OwnedServerName)> {
    let our_name = services.globals.server_name().clone();
    let header = xmatrix::parse_header(request.headers(), &our_name)
        .map_err(|e| unauthorized(e.to_string()))?;
    let now = now_ms();
    let key_id = header.key.to_string();
    let keys = remote_keys::keys_for(services, &header.origin, now, Some(&key_id)).await?;
    let origin = xmatrix::verify_request(&header, &request, &our_name, &keys, now)
        .map_err(|e| unauthorized(e.to_string()))?;
    // A server that reaches us is up: retry what is queued for it now.
    services.federation.sender.peer_back(&origin);
    Ok((request, origin))
}

/// A federation request from an authenticated server, with its body as JSON (`null` when empty).
/// Path and query are read by axum's own extractors placed before it.
pub struct FederatedJson {
    pub origin: OwnedServerName,
    pub body: serde_json::Value,
}

impl FromRequest<Arc<Services>> for FederatedJson {
    type Rejection = Error;

    async fn from_request(req: Request, services: &Arc<Services>) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = federation_body(body, services).await?;
        let (request, origin) =
            authenticate(services, http::Request::from_parts(parts, bytes)).await?;
        let bytes = request.into_body();
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| Error::not_json("Body is not JSON"))?
        };
        Ok(FederatedJson { origin, body })
    }
}

fn parse_error(e: ruma::api::error::FromHttpRequestError) -> Error {
    use ruma::api::error::{DeserializationError, FromHttpRequestError};
    match e {
        FromHttpRequestError::Deserialization(DeserializationError::Ident(e)) => {
            Error::invalid_param(e.to_string())
        }
        FromHttpRequestError::Deserialization(DeserializationError::Query(e)) => {
            Error::invalid_param(e.to_string())
        }
        FromHttpRequestError::MethodMismatch { .. } => Error::method_not_allowed(),
        other => Error::bad_json(other.to_string()),
    }
}
