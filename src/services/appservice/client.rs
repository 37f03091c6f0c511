//! Requests to an application service (`{url}/_matrix/app/v1/...`), with its `hs_token` as
//! `Authorization: Bearer`, through `services::outgoing` (the network deny list applies).

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::Appservice;
use crate::{federation::client::TransportError, services::Services};

#[derive(Debug)]
pub enum CallError {
    /// The registration has no `url`.
    NoUrl,
    Transport(TransportError),
    Invalid(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoUrl => write!(f, "the registration has no url"),
            Self::Transport(e) => write!(f, "{e}"),
            Self::Invalid(e) => write!(f, "{e}"),
        }
    }
}

/// Sends `method` `path` (from `/_matrix/app/v1/`, with any query) with a JSON `body`.
pub async fn call(
    s: &Services,
    appservice: &Appservice,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<http::Response<Bytes>, CallError> {
    let url = appservice
        .registration
        .url
        .as_deref()
        .ok_or(CallError::NoUrl)?;
    let uri: http::Uri = format!("{}/_matrix/app/v1/{path}", url.trim_end_matches('/'))
        .parse()
        .map_err(|e| CallError::Invalid(format!("url: {e}")))?;
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let request = http::Request::builder()
        .method(method)
        .uri(target)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", appservice.registration.hs_token),
        )
        .body(
            body.map(|b| serde_json::to_vec(b).unwrap_or_default())
                .unwrap_or_default(),
        )
        .map_err(|e| CallError::Invalid(e.to_string()))?;
    crate::services::outgoing::send(s, &uri, request, timeout)
        .await
        .map_err(CallError::Transport)
}
