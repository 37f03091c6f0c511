//! Third-party networks (bridges): their lookups are asked of the application services that list
//! the protocol (`services::appservice::third_party`). Third-party identifiers (e-mail addresses)
//! are `api::client::threepids`.

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use ruma::api::client::thirdparty::{
    get_location_for_protocol, get_location_for_room_alias, get_protocol, get_protocols,
    get_user_for_protocol, get_user_for_user_id,
};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{Services, appservice::third_party},
};

type Res<T> = Result<RumaResponse<T>>;

/// The third-party protocols of the registered application services, as they describe them.
pub async fn protocols(
    State(services): State<Arc<Services>>,
    req: Ruma<get_protocols::v3::Request>,
) -> Res<get_protocols::v3::Response> {
    req.user()?;
    Ok(get_protocols::v3::Response::new(third_party::protocols(&services).await).into())
}

fn unknown_protocol(protocol: &str) -> Error {
    Error::not_found(format!(
        "No application service serves the protocol {protocol}"
    ))
}

pub async fn protocol(
    State(services): State<Arc<Services>>,
    req: Ruma<get_protocol::v3::Request>,
) -> Res<get_protocol::v3::Response> {
    req.user()?;
    let found = third_party::protocol(&services, &req.body.protocol)
        .await
        .ok_or_else(|| unknown_protocol(&req.body.protocol))?;
    Ok(get_protocol::v3::Response::new(found).into())
}

fn fields_query(fields: &BTreeMap<String, String>) -> String {
    third_party::query_of(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

pub async fn locations_of_protocol(
    State(services): State<Arc<Services>>,
    req: Ruma<get_location_for_protocol::v3::Request>,
) -> Res<get_location_for_protocol::v3::Response> {
    req.user()?;
    let protocol = &req.body.protocol;
    if !third_party::is_served(&services, protocol) {
        return Err(unknown_protocol(protocol));
    }
    let query = fields_query(&req.body.fields);
    let found = third_party::locations(&services, Some(protocol), &query).await;
    Ok(get_location_for_protocol::v3::Response::new(found).into())
}

pub async fn users_of_protocol(
    State(services): State<Arc<Services>>,
    req: Ruma<get_user_for_protocol::v3::Request>,
) -> Res<get_user_for_protocol::v3::Response> {
    req.user()?;
    let protocol = &req.body.protocol;
    if !third_party::is_served(&services, protocol) {
        return Err(unknown_protocol(protocol));
    }
    let query = fields_query(&req.body.fields);
    let found = third_party::users(&services, Some(protocol), &query).await;
    Ok(get_user_for_protocol::v3::Response::new(found).into())
}

/// The portals of a room alias, in every protocol.
pub async fn locations_of_alias(
    State(services): State<Arc<Services>>,
    req: Ruma<get_location_for_room_alias::v3::Request>,
) -> Res<get_location_for_room_alias::v3::Response> {
    req.user()?;
    let query = third_party::query_of([("alias", req.body.alias.as_str())]);
    let found = third_party::locations(&services, None, &query).await;
    Ok(get_location_for_room_alias::v3::Response::new(found).into())
}

/// The third-party users a Matrix user stands for, in every protocol.
pub async fn users_of_user_id(
    State(services): State<Arc<Services>>,
    req: Ruma<get_user_for_user_id::v3::Request>,
) -> Res<get_user_for_user_id::v3::Response> {
    req.user()?;
    let query = third_party::query_of([("userid", req.body.userid.as_str())]);
    let found = third_party::users(&services, None, &query).await;
    Ok(get_user_for_user_id::v3::Response::new(found).into())
}
