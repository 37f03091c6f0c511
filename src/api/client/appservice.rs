//! What application services do with their `as_token`: register and log in their users
//! (`m.login.application_service`), and the endpoints only they call — ping and the appservice
//! room directory, which answer 403 until their halves (pushing to the service, its directory)
//! are built (issue 10).

use ruma::api::client::appservice::{request_ping, set_room_visibility};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::Services,
};

fn not_an_appservice() -> Error {
    Error::forbidden("The access token does not belong to an application service")
}

/// `POST /_matrix/client/v1/appservice/{appserviceId}/ping`.
pub async fn ping(
    req: Ruma<request_ping::v1::Request>,
) -> Result<RumaResponse<request_ping::v1::Response>> {
    req.user()?;
    Err(not_an_appservice())
}

/// `PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}`.
pub async fn set_directory_visibility(
    req: Ruma<set_room_visibility::v3::Request>,
) -> Result<RumaResponse<set_room_visibility::v3::Response>> {
    req.user()?;
    Err(not_an_appservice())
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
