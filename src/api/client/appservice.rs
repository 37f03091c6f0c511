//! What application services do with their `as_token`: register and log in their users
//! (`m.login.application_service`), ping themselves through the server, and the appservice room
//! directory of their third-party networks.

use ruma::api::client::appservice::{request_ping, set_room_visibility};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::Services,
};

fn not_an_appservice() -> Error {
    Error::forbidden("The access token does not belong to an application service")
}

/// `POST /_matrix/client/v1/appservice/{appserviceId}/ping` (spec v1.7): the service asks the
/// server to reach it (`POST {url}/_matrix/app/v1/ping` with the `transaction_id`) and learns how
/// long that took; or why it failed: 400 `M_URL_NOT_SET`, 502 `M_BAD_STATUS` (with the service's
/// `status` and `body`), 504 `M_CONNECTION_TIMEOUT`, 502 `M_CONNECTION_FAILED`.
pub async fn ping(
    axum::extract::State(services): axum::extract::State<std::sync::Arc<Services>>,
    req: Ruma<request_ping::v1::Request>,
) -> Result<RumaResponse<request_ping::v1::Response>> {
    use crate::{federation::client::TransportError, services::appservice::client::CallError};
    req.user()?;
    let id = req.body.appservice_id.as_str();
    let appservice = match req.appservice.as_deref() {
        Some(caller) if caller == id => services
            .appservices
            .by_id(id)
            .ok_or_else(not_an_appservice)?,
        _ => return Err(not_an_appservice()),
    };
    let mut body = serde_json::json!({});
    if let Some(txn) = &req.body.transaction_id {
        body["transaction_id"] = serde_json::json!(txn);
    }
    let start = std::time::Instant::now();
    let answer = crate::services::appservice::client::call(
        &services,
        appservice,
        http::Method::POST,
        "ping",
        Some(&body),
        PING_TIMEOUT,
    )
    .await;
    match answer {
        Ok(answer) if answer.status().is_success() => {
            Ok(request_ping::v1::Response::new(start.elapsed()).into())
        }
        Ok(answer) => Err(Error::new(
            http::StatusCode::BAD_GATEWAY,
            "M_BAD_STATUS",
            "The application service answered with an error",
        )
        .with("status", serde_json::json!(answer.status().as_u16()))
        .with(
            "body",
            serde_json::json!(
                String::from_utf8_lossy(answer.body())
                    .chars()
                    .take(1000)
                    .collect::<String>()
            ),
        )),
        Err(CallError::NoUrl) => Err(Error::new(
            http::StatusCode::BAD_REQUEST,
            "M_URL_NOT_SET",
            "The application service has no url",
        )),
        Err(CallError::Transport(TransportError::Timeout(_))) => Err(Error::new(
            http::StatusCode::GATEWAY_TIMEOUT,
            "M_CONNECTION_TIMEOUT",
            "The application service did not answer in time",
        )),
        Err(e) => Err(Error::new(
            http::StatusCode::BAD_GATEWAY,
            "M_CONNECTION_FAILED",
            format!("The application service could not be reached: {e}"),
        )),
    }
}

/// How long a ping waits for the service.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}`: an application
/// service publishes (or withdraws) a room in the directory of one of its networks, which clients
/// list with `third_party_instance_id` `<service id>|<network id>` (or `include_all_networks`).
pub async fn set_directory_visibility(
    axum::extract::State(services): axum::extract::State<std::sync::Arc<Services>>,
    req: Ruma<set_room_visibility::v3::Request>,
) -> Result<RumaResponse<set_room_visibility::v3::Response>> {
    req.user()?;
    let appservice = req
        .appservice
        .as_deref()
        .and_then(|id| services.appservices.by_id(id))
        .ok_or_else(not_an_appservice)?;
    let instance =
        crate::services::appservice::third_party::instance_id(appservice, &req.body.network_id);
    let public = req.body.visibility == ruma::api::client::room::Visibility::Public;
    services
        .run(move |s| {
            if !s.timeline.room_exists(&req.body.room_id)? {
                return Err(Error::not_found("Unknown room"));
            }
            s.directory
                .set_network_public(&instance, &req.body.room_id, public)?;
            Ok(set_room_visibility::v3::Response::new().into())
        })
        .await
}

/// The login and registration type of application services.
pub const LOGIN_TYPE: &str = "m.login.application_service";

fn appservice_token_needed() -> Error {
    Error::new(
        http::StatusCode::UNAUTHORIZED,
        "M_MISSING_TOKEN",
        "m.login.application_service needs an application service's as_token",
    )
}

fn appservice_named<'a>(
    s: &'a Services,
    id: Option<&str>,
) -> Result<&'a crate::services::appservice::Appservice> {
    id.and_then(|id| s.appservices.all().iter().find(|a| a.registration.id == id))
        .ok_or_else(appservice_token_needed)
}

/// `POST /register` with `type: m.login.application_service`: the application service creates one
/// of its users (no UIA, no password); 400 `M_EXCLUSIVE` outside its user namespace.
pub fn register_user(
    s: &Services,
    appservice: Option<&str>,
    username: Option<&str>,
    device: Option<ruma::OwnedDeviceId>,
    display_name: Option<String>,
    inhibit_login: bool,
) -> Result<serde_json::Value> {
    let appservice = appservice_named(s, appservice)?;
    let username = username.ok_or_else(|| Error::missing_param("username is required"))?;
    let user = super::account::validate_localpart(s, &username.to_lowercase())?;
    if !appservice.owns_user(&user) {
        return Err(Error::exclusive(
            "This user id is outside the application service's namespace",
        ));
    }
    if s.users.exists(&user)? {
        return Err(Error::user_in_use());
    }
    s.users.create(&user, None)?;
    let mut response = serde_json::json!({ "user_id": user });
    if !inhibit_login {
        let (device, token) =
            crate::services::keys::device_list::login(s, &user, device, display_name)?;
        response["device_id"] = serde_json::json!(device);
        response["access_token"] = serde_json::json!(token);
    }
    Ok(response)
}

/// `POST /login` with `type: m.login.application_service`: a device and access token for one of
/// the application service's users (403 outside its namespace or for an unknown user).
pub fn login_user(
    s: &Services,
    appservice: Option<&str>,
    user: Option<ruma::OwnedUserId>,
    device: Option<ruma::OwnedDeviceId>,
    display_name: Option<String>,
) -> Result<(ruma::OwnedUserId, String, ruma::OwnedDeviceId)> {
    let appservice = appservice_named(s, appservice)?;
    let user = user.ok_or_else(|| Error::forbidden("Unknown user"))?;
    if !appservice.owns_user(&user) {
        return Err(Error::forbidden(
            "This user is outside the application service's namespace",
        ));
    }
    if !s.users.exists(&user)? {
        return Err(Error::forbidden("Unknown user"));
    }
    let (device, token) =
        crate::services::keys::device_list::login(s, &user, device, display_name)?;
    Ok((user, token, device))
}
