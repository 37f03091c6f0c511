//! The spec's account moderation for server admins (v1.18, MSC4323):
//! `GET|PUT /_matrix/client/v1/admin/lock/{userId}` and `…/admin/suspend/{userId}`. The caller
//! is checked to be an admin before the target is looked up (no user enumeration).

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    OwnedUserId,
    api::client::admin::{is_user_locked, is_user_suspended, lock_user, suspend_user},
};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{
        Services,
        sessions::moderation::{self, Action},
    },
};

type Res<T> = Result<RumaResponse<T>>;

/// Reads (`change` None) or sets the lock or suspension of `target` for the admin `caller`; the
/// state after the call.
async fn moderate(
    services: &Arc<Services>,
    caller: OwnedUserId,
    target: OwnedUserId,
    action: Action,
    change: Option<bool>,
) -> Result<bool> {
    services
        .run(move |s| {
            let admin = s
                .users
                .account(&caller)?
                .is_some_and(|a| a.admin && !a.deactivated);
            if !admin {
                return Err(Error::forbidden(
                    "Requesting user is not a server administrator",
                ));
            }
            moderation::check_target(s, &caller, &target, change.is_some())?;
            if let Some(on) = change {
                moderation::set(s, action, &target, on)?;
            }
            Ok(moderation::is(s, action, &target))
        })
        .await
}

pub async fn is_locked(
    State(services): State<Arc<Services>>,
    req: Ruma<is_user_locked::v1::Request>,
) -> Res<is_user_locked::v1::Response> {
    let caller = req.user()?.clone();
    let locked = moderate(&services, caller, req.body.user_id, Action::Lock, None).await?;
    Ok(is_user_locked::v1::Response::new(locked).into())
}

pub async fn lock(
    State(services): State<Arc<Services>>,
    req: Ruma<lock_user::v1::Request>,
) -> Res<lock_user::v1::Response> {
    let caller = req.user()?.clone();
    let on = req.body.locked;
    let locked = moderate(&services, caller, req.body.user_id, Action::Lock, Some(on)).await?;
    Ok(lock_user::v1::Response::new(locked).into())
}

pub async fn is_suspended(
    State(services): State<Arc<Services>>,
    req: Ruma<is_user_suspended::v1::Request>,
) -> Res<is_user_suspended::v1::Response> {
    let caller = req.user()?.clone();
    let suspended = moderate(&services, caller, req.body.user_id, Action::Suspend, None).await?;
    Ok(is_user_suspended::v1::Response::new(suspended).into())
}

pub async fn suspend(
    State(services): State<Arc<Services>>,
    req: Ruma<suspend_user::v1::Request>,
) -> Res<suspend_user::v1::Response> {
    let caller = req.user()?.clone();
    let on = req.body.suspended;
    let suspended = moderate(
        &services,
        caller,
        req.body.user_id,
        Action::Suspend,
        Some(on),
    )
    .await?;
    Ok(suspend_user::v1::Response::new(suspended).into())
}
