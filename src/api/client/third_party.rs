//! Third-party identifiers (email addresses, phone numbers) and third-party networks (bridges).
//!
//! Parvis keeps no third-party identifiers: accounts are made and recovered with passwords (and
//! company sign-in later), no email or SMS is sent, and `/capabilities` says `m.3pid_changes` is
//! off. So a user's list is empty, adding or binding one is refused (403), removing one finds
//! nothing to remove, and the token requests answer with the spec's errors for an address this
//! server will not bind. Third-party networks are served by application services: their lookups
//! are asked of the services that list the protocol (`services::appservice::third_party`).

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use http::StatusCode;
use ruma::api::client::{
    account::{
        ThirdPartyIdRemovalStatus, add_3pid, bind_3pid, delete_3pid, get_3pids,
        request_3pid_management_token_via_email, request_3pid_management_token_via_msisdn,
        request_password_change_token_via_email, request_password_change_token_via_msisdn,
        request_registration_token_via_email, request_registration_token_via_msisdn, unbind_3pid,
    },
    thirdparty::{
        get_location_for_protocol, get_location_for_room_alias, get_protocol, get_protocols,
        get_user_for_protocol, get_user_for_user_id,
    },
};

use crate::{
    api::{
        always_sent::{self, Filled},
        ruma_wrapper::{Ruma, RumaResponse},
    },
    error::{Error, Result},
    services::{Services, appservice::third_party},
};

type Res<T> = Result<RumaResponse<T>>;

fn changes_disabled() -> Error {
    Error::forbidden(
        "Third-party identifiers cannot be added to accounts on this server (m.3pid_changes is off)",
    )
}

fn denied() -> Error {
    Error::new(
        StatusCode::FORBIDDEN,
        "M_THREEPID_DENIED",
        "This server does not bind third-party identifiers to accounts",
    )
}

fn not_found() -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "M_THREEPID_NOT_FOUND",
        "No account has this third-party identifier",
    )
}

/// `GET /account/3pid`: the user's identifiers (none are kept).
pub async fn list(req: Ruma<get_3pids::v3::Request>) -> Result<Filled<get_3pids::v3::Response>> {
    req.user()?;
    Ok(Filled::new(
        get_3pids::v3::Response::new(Vec::new()),
        always_sent::threepids,
    ))
}

pub async fn add(req: Ruma<add_3pid::v3::Request>) -> Res<add_3pid::v3::Response> {
    req.user()?;
    Err(changes_disabled())
}

pub async fn bind(req: Ruma<bind_3pid::v3::Request>) -> Res<bind_3pid::v3::Response> {
    req.user()?;
    Err(changes_disabled())
}

/// Removing an identifier the account does not have: nothing to remove, no identity server told.
pub async fn delete(req: Ruma<delete_3pid::v3::Request>) -> Res<delete_3pid::v3::Response> {
    req.user()?;
    Ok(delete_3pid::v3::Response::new(ThirdPartyIdRemovalStatus::NoSupport).into())
}

pub async fn unbind(req: Ruma<unbind_3pid::v3::Request>) -> Res<unbind_3pid::v3::Response> {
    req.user()?;
    Ok(unbind_3pid::v3::Response::new(ThirdPartyIdRemovalStatus::NoSupport).into())
}

pub async fn registration_email(
    _: Ruma<request_registration_token_via_email::v3::Request>,
) -> Res<request_registration_token_via_email::v3::Response> {
    Err(denied())
}

pub async fn registration_msisdn(
    _: Ruma<request_registration_token_via_msisdn::v3::Request>,
) -> Res<request_registration_token_via_msisdn::v3::Response> {
    Err(denied())
}

pub async fn management_email(
    _: Ruma<request_3pid_management_token_via_email::v3::Request>,
) -> Res<request_3pid_management_token_via_email::v3::Response> {
    Err(denied())
}

pub async fn management_msisdn(
    _: Ruma<request_3pid_management_token_via_msisdn::v3::Request>,
) -> Res<request_3pid_management_token_via_msisdn::v3::Response> {
    Err(denied())
}

/// A password reset by email or SMS: no account has an address to send it to.
pub async fn password_email(
    _: Ruma<request_password_change_token_via_email::v3::Request>,
) -> Res<request_password_change_token_via_email::v3::Response> {
    Err(not_found())
}

pub async fn password_msisdn(
    _: Ruma<request_password_change_token_via_msisdn::v3::Request>,
) -> Res<request_password_change_token_via_msisdn::v3::Response> {
    Err(not_found())
}

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
