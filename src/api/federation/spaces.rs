//! `GET /_matrix/federation/v1/hierarchy/{roomId}`: a space and its children for another server.

use std::sync::Arc;

use axum::{Json, extract::State};
use ruma::api::federation::space::get_hierarchy;
use serde_json::{Value, json};

use super::auth::Federated;
use crate::{
    error::{Error, Result},
    services::Services,
};

/// `GET /_matrix/federation/v1/hierarchy/{roomId}?suggested_only=…`.
pub async fn hierarchy(
    State(services): State<Arc<Services>>,
    request: Federated<get_hierarchy::v1::Request>,
) -> Result<Json<Value>> {
    let origin = request.origin;
    let get_hierarchy::v1::Request {
        room_id,
        suggested_only,
        ..
    } = request.body;
    let answer = services
        .run(move |s| crate::federation::hierarchy::answer(s, &origin, &room_id, suggested_only))
        .await?;
    let room = serde_json::to_value(&answer.room).map_err(|e| Error::internal(e.to_string()))?;
    let children =
        serde_json::to_value(&answer.children).map_err(|e| Error::internal(e.to_string()))?;
    Ok(Json(
        json!({ "room": room, "children": children, "inaccessible_children": answer.inaccessible_children }),
    ))
}
