//! `Federated<T>`: the extractor of every authenticated federation endpoint. It checks the
//! X-Matrix signature (origin, destination, method, URI, body) against the origin's keys, then
//! lets ruma parse the request. Every authentication failure is 401 M_UNAUTHORIZED.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use ruma::{
    OwnedServerName,
    api::{IncomingRequest, IncomingRequestExt},
};

use crate::{
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
        let path_params = RawPathParams::from_request_parts(&mut parts, services)
            .await
            .map_err(|_| Error::invalid_param("Invalid path parameter"))?;
        let args: Vec<String> = path_params.iter().map(|(_, v)| v.to_owned()).collect();
        let limit = services.config().limits.max_request_bytes;
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| Error::too_large("Request body is too large"))?;

        let our_name = services.globals.server_name().clone();
        let header = xmatrix::parse_header(&parts.headers, &our_name).map_err(|e| unauthorized(e.to_string()))?;
        let now = now_ms();
        let key_id = header.key.to_string();
        let keys = remote_keys::keys_for(services, &header.origin, now, Some(&key_id)).await?;
        let request = http::Request::from_parts(parts, bytes);
        let origin = xmatrix::verify_request(&header, &request, &our_name, &keys, now)
            .map_err(|e| unauthorized(e.to_string()))?;

        let (parts, bytes) = request.into_parts();
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let http_req = http::Request::from_parts(parts, bytes.as_ref());
        let body = T::try_from_http_request(http_req, &arg_refs).map_err(parse_error)?;
        Ok(Federated { origin, body })
    }
}

fn parse_error(e: ruma::api::error::FromHttpRequestError) -> Error {
    use ruma::api::error::{DeserializationError, FromHttpRequestError};
    match e {
        FromHttpRequestError::Deserialization(DeserializationError::Ident(e)) => Error::invalid_param(e.to_string()),
        FromHttpRequestError::Deserialization(DeserializationError::Query(e)) => Error::invalid_param(e.to_string()),
        FromHttpRequestError::MethodMismatch { .. } => Error::method_not_allowed(),
        other => Error::bad_json(other.to_string()),
    }
}
