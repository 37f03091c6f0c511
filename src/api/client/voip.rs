//! `GET /voip/turnServer`: TURN credentials for calls (`services::voip`).

use std::{sync::Arc, time::Duration};

use axum::{Json, extract::State, response::IntoResponse};
use ruma::api::client::voip::get_turn_server_info;
use serde_json::json;

use crate::{api::ruma_wrapper::Ruma, error::Result, services::Services};

/// The user's credentials; `{}` (as Synapse) when no TURN server is configured.
pub async fn turn_server(
    State(services): State<Arc<Services>>,
    req: Ruma<get_turn_server_info::v3::Request>,
) -> Result<axum::response::Response> {
    let user = req.user()?;
    let now = crate::util::now_ms() / 1000;
    Ok(
        match crate::services::voip::credentials(&services.config().voip, user.as_str(), now) {
            Some(c) => {
                let response = get_turn_server_info::v3::Response::new(
                    c.username,
                    c.password,
                    c.uris,
                    Duration::from_secs(c.ttl_secs),
                );
                crate::api::ruma_wrapper::RumaResponse(response).into_response()
            }
            None => Json(json!({})).into_response(),
        },
    )
}
