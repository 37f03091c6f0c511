//! Third-party invites: `PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId}` (from the
//! invitee's server) and `PUT /_matrix/federation/v1/3pid/onbind` (from an identity server).

use std::sync::Arc;

use axum::{Json, extract::State};
use ruma::api::federation::thirdparty::exchange_invite;
use serde_json::{Value, json};

use super::auth::Federated;
use crate::{
    error::{Error, Result},
    services::Services,
};

/// `PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId}`.
pub async fn exchange(
    State(services): State<Arc<Services>>,
    request: Federated<exchange_invite::v1::Request>,
) -> Result<Json<Value>> {
    let origin = request.origin;
    let exchange_invite::v1::Request {
        room_id,
        kind,
        sender,
        state_key,
        content,
        ..
    } = request.body;
    if kind != ruma::events::StateEventType::RoomMember {
        return Err(Error::bad_json("The event must be an m.room.member event"));
    }
    let room = room_id.clone();
    services
        .run(move |s| crate::federation::acl::check(s, &room, &origin))
        .await?;
    let content: Value = serde_json::from_str(content.json().get())
        .map_err(|_| Error::bad_json("Invalid content"))?;
    crate::federation::third_party_invite::exchange(&services, room_id, sender, state_key, content)
        .await?;
    Ok(Json(json!({})))
}

/// `PUT /_matrix/federation/v1/3pid/onbind` (no server signature: identity servers call it).
pub async fn on_bind(
    State(services): State<Arc<Services>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>> {
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| Error::not_json("The body is not JSON"))?;
    crate::federation::third_party_invite::on_bind(&services, &body).await?;
    Ok(Json(json!({})))
}
