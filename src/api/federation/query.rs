//! `/_matrix/federation/v1/query/*`: information about local users and rooms for other servers.

use std::sync::Arc;

use axum::{Json, extract::State};
use ruma::api::federation::query::get_profile_information;
use serde_json::{Map, Value};

use super::auth::Federated;
use crate::{
    error::{Error, Result},
    services::Services,
};

/// `GET /_matrix/federation/v1/query/profile?user_id=…[&field=…]`.
pub async fn profile(
    State(services): State<Arc<Services>>,
    request: Federated<get_profile_information::v1::Request>,
) -> Result<Json<Value>> {
    let user = request.body.user_id;
    if user.server_name() != services.globals.server_name() {
        return Err(Error::invalid_param("User is not local to this server"));
    }
    let field = request.body.field.map(|f| f.to_string());
    let lookup = user.clone();
    let profile = services
        .run(move |s| s.users.profile(&lookup))
        .await?
        .ok_or_else(|| Error::not_found("Profile not found"))?;
    let mut body = Map::new();
    if let Some(name) = profile.displayname {
        body.insert("displayname".into(), Value::String(name));
    }
    if let Some(url) = profile.avatar_url {
        body.insert("avatar_url".into(), Value::String(url.to_string()));
    }
    if let Some(field) = field {
        body.retain(|k, _| *k == field);
    }
    Ok(Json(Value::Object(body)))
}

/// `GET /_matrix/federation/v1/query/directory?room_alias=…`.
pub async fn directory(
    State(services): State<Arc<Services>>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
    _request: super::auth::FederatedJson,
) -> Result<Json<Value>> {
    let alias = query
        .get("room_alias")
        .and_then(|a| ruma::OwnedRoomAliasId::try_from(a.as_str()).ok())
        .ok_or_else(|| Error::invalid_param("Invalid room_alias"))?;
    Ok(Json(
        services
            .run(move |s| crate::federation::read::directory(s, &alias))
            .await?,
    ))
}

/// `GET /_matrix/federation/v1/openid/userinfo?access_token=…` (no X-Matrix: the token is the
/// authentication).
pub async fn openid_userinfo(
    State(services): State<Arc<Services>>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>> {
    let token = query
        .get("access_token")
        .cloned()
        .ok_or_else(Error::unknown_token)?;
    Ok(Json(
        services
            .run(move |s| crate::federation::read::openid_userinfo(s, &token))
            .await?,
    ))
}
