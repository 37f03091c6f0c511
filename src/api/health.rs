//! `GET /health` on the client and the federation listener (as Synapse serves it, for load
//! balancers and orchestrators): 200 `OK` (text) once a read of the database through the
//! blocking pool answers, 503 otherwise; so a server whose database work is stuck is reported.

use std::sync::Arc;

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use http::StatusCode;

use crate::services::Services;

pub async fn health(State(services): State<Arc<Services>>) -> Response {
    let read = services
        .run(|s| {
            Ok(s.globals
                .db
                .get(crate::services::globals::GLOBAL, b"stream_pos")?)
        })
        .await;
    match read {
        Ok(_) => (StatusCode::OK, "OK").into_response(),
        Err(e) => {
            tracing::warn!("health check failed: {}", e.message);
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}
