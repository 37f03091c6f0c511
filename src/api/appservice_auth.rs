//! Requests made with an application service's `as_token` (spec: Application Service API,
//! "Identity assertion"): the service acts as its own user, or as the user the `user_id` query
//! parameter names, which must be in its user namespace (403 `M_FORBIDDEN` outside) and registered.
//! Such requests have no device of their own: they act under one fixed device id per service,
//! `appservice:<id>` (transaction ids are kept apart per service), unless the `device_id` query
//! parameter names one of the user's devices (MSC4326 device masquerading; 400
//! `M_UNKNOWN_DEVICE` for a device the user does not have).

use std::sync::Arc;

use ruma::{OwnedDeviceId, OwnedUserId, UserId};

use crate::{
    error::{Error, Result},
    services::{Services, appservice::Appservice},
};

/// Who an application service's request acts as.
pub struct Acting {
    pub user: OwnedUserId,
    pub device: OwnedDeviceId,
    pub appservice: String,
    /// Whether the request is exempt from rate limits (`rate_limited: false`).
    pub unlimited: bool,
}

/// The device id requests of `appservice` act under.
pub fn device_of(appservice: &Appservice) -> OwnedDeviceId {
    OwnedDeviceId::from(format!("appservice:{}", appservice.registration.id))
}

/// The user and device `appservice`'s request acts as; `user_id` is the query parameter. On
/// endpoints whose access token is optional (`POST /register`: frameworks name the user they
/// are about to create) the user need not be registered yet.
pub async fn acting(
    services: &Arc<Services>,
    appservice: &Appservice,
    user_id: Option<String>,
    device_id: Option<String>,
    require_registered: bool,
) -> Result<Acting> {
    let user = match user_id {
        None => appservice.sender.clone(),
        Some(raw) => {
            let user = UserId::parse(&raw)
                .map_err(|_| Error::invalid_param(format!("user_id `{raw}` is not a user id")))?;
            if !appservice.owns_user(&user) || user.server_name() != services.globals.server_name()
            {
                return Err(Error::forbidden(
                    "Application service cannot masquerade as this user",
                ));
            }
            if require_registered && user != appservice.sender {
                let check = user.clone();
                if !services.run(move |s| s.users.exists(&check)).await? {
                    return Err(Error::forbidden(
                        "Application service has not registered this user",
                    ));
                }
            }
            user
        }
    };
    let device = match device_id {
        None => device_of(appservice),
        Some(device) => {
            let (owner, wanted) = (user.clone(), device.clone());
            if !services
                .run(move |s| Ok(s.users.device(&owner, &wanted)?.is_some()))
                .await?
            {
                return Err(Error::new(
                    http::StatusCode::BAD_REQUEST,
                    "M_UNKNOWN_DEVICE",
                    format!("{user} has no device {device}"),
                ));
            }
            OwnedDeviceId::from(device)
        }
    };
    Ok(Acting {
        user,
        device,
        appservice: appservice.registration.id.clone(),
        unlimited: appservice.registration.rate_limited == Some(false),
    })
}

/// Creates the application services' own users that do not exist yet (at start-up).
pub fn ensure_sender_users(s: &Services) -> Result<()> {
    for appservice in s.appservices.all() {
        if s.users.ensure_exists(&appservice.sender)? {
            tracing::info!(
                "created {}, the user of application service {}",
                appservice.sender,
                appservice.registration.id
            );
        }
    }
    Ok(())
}
