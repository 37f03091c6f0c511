//! Profiles of other servers' users: `GET /_matrix/federation/v1/query/profile` on their server.

use std::sync::Arc;

use ruma::UserId;
use serde_json::{Map, Value};

use crate::{
    error::{Error, Result},
    federation::request::call,
    services::Services,
    util::encode_segment,
};

/// The profile of a remote user (`field` restricts it to one field).
pub async fn remote_profile(
    services: &Arc<Services>,
    user: &UserId,
    field: Option<&str>,
) -> Result<Map<String, Value>> {
    let mut path = format!(
        "/_matrix/federation/v1/query/profile?user_id={}",
        encode_segment(user.as_str())
    );
    if let Some(field) = field {
        path.push_str(&format!("&field={}", encode_segment(field)));
    }
    match call(services, user.server_name(), http::Method::GET, &path, None).await? {
        Value::Object(map) => Ok(map.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        _ => Err(Error::not_found("Profile not found")),
    }
}
