//! Routes of the federation listener (TLS): `/_matrix/key/*` and `/_matrix/federation/*`.
//! Thin handlers; the work is in `crate::federation`.

pub mod auth;
pub mod keys;
pub mod query;

use std::sync::Arc;

use axum::{
    Json, Router,
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::{error::Error, services::Services};

/// The router of the federation listener.
pub fn router(services: Arc<Services>) -> Router {
    Router::new()
        .route("/_matrix/key/v2/server", get(keys::server_keys))
        .route("/_matrix/key/v2/server/{key_id}", get(keys::server_keys))
        .route("/_matrix/key/v2/query/{server_name}", get(keys::query))
        .route("/_matrix/key/v2/query", post(keys::query_batch))
        .route("/_matrix/federation/v1/version", get(version))
        .route("/_matrix/federation/v1/query/profile", get(query::profile))
        .fallback(|| async { Error::unrecognized("Unrecognized request") })
        .method_not_allowed_fallback(|| async { Error::method_not_allowed() })
        .with_state(services)
}

/// `GET /_matrix/federation/v1/version`.
async fn version() -> Json<Value> {
    Json(json!({ "server": { "name": "Parvis", "version": env!("CARGO_PKG_VERSION") } }))
}
