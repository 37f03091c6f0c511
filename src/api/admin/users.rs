//! User routes of the admin API: list, query, create or modify, deactivate, reset password, the
//! admin flag, whois, devices and joined rooms.

use std::sync::Arc;

use axum::{Json, extract::State, response::IntoResponse};
use http::StatusCode;
use ruma::{OwnedUserId, UserId, profile::ProfileFieldName};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Admin, Args, Body, Params};
use crate::{
    api::client::{account::validate_localpart, profile::update_profile},
    error::{Error, Result},
    services::{
        Services,
        admin::{
            deactivation,
            paging::{Dir, parse_limit, parse_offset},
            user_list::{self, UserOrder, UserQuery},
        },
        keys::device_keys as e2ee,
        sessions::moderation::{self, Action},
        users::Device,
    },
};

type Answer = Result<Json<Value>>;

/// The longest password accepted (as the client API's registration).
const MAX_PASSWORD_LENGTH: usize = 512;

fn local(s: &Services, user: &UserId) -> Result<()> {
    if user.server_name() != s.globals.server_name() {
        return Err(Error::invalid_param(
            "This endpoint can only be used with local users",
        ));
    }
    Ok(())
}

fn check_password(password: &str) -> Result<()> {
    if password.is_empty() || password.len() > MAX_PASSWORD_LENGTH {
        return Err(Error::invalid_param(format!(
            "The password must be 1 to {MAX_PASSWORD_LENGTH} bytes long"
        )));
    }
    Ok(())
}

fn not_found() -> Error {
    Error::not_found("User not found")
}

pub async fn server_version(_: Admin) -> Answer {
    Ok(Json(
        json!({ "server_version": concat!("Parvis ", env!("CARGO_PKG_VERSION")) }),
    ))
}

pub async fn list(State(services): State<Arc<Services>>, _: Admin, params: Params) -> Answer {
    let q = UserQuery {
        from: parse_offset(params.get("from"), "from")?.unwrap_or(0),
        limit: parse_limit(params.get("limit"))?,
        name: params.get("name").map(str::to_owned),
        user_id: params.get("user_id").map(str::to_owned),
        deactivated: params.bool("deactivated")?.unwrap_or(false),
        admins: params.bool("admins")?,
        order_by: UserOrder::parse(params.get("order_by"))?,
        dir: Dir::parse(params.get("dir"))?,
    };
    // Parvis has no guest accounts: `guests` is checked and changes nothing.
    params.bool("guests")?;
    services
        .run(move |s| {
            let page = user_list::list(s.users.all()?, &q);
            let users: Vec<Value> = page
                .items
                .iter()
                .map(|(u, a)| user_list::user_json(s, u, a))
                .collect();
            let mut body = json!({ "users": users, "total": page.total });
            if let Some(next) = page.next {
                body["next_token"] = json!(next.to_string());
            }
            Ok(Json(body))
        })
        .await
}

pub async fn get_user(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            local(s, &user)?;
            let account = s.users.account(&user)?.ok_or_else(not_found)?;
            Ok(Json(user_list::user_json(s, &user, &account)))
        })
        .await
}

#[derive(Deserialize)]
pub struct PutUser {
    password: Option<String>,
    #[serde(default = "yes")]
    logout_devices: bool,
    displayname: Option<String>,
    avatar_url: Option<String>,
    admin: Option<bool>,
    deactivated: Option<bool>,
    /// Locks or unlocks the account (401 `M_USER_LOCKED` on its requests).
    locked: Option<bool>,
}

fn yes() -> bool {
    true
}

/// Creates (201) or modifies (200) a local account; answers with the account.
pub async fn put_user(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
    Body(body): Body<PutUser>,
) -> Result<impl IntoResponse> {
    let user = args.user(0)?;
    services
        .run(move |s| {
            local(s, &user)?;
            if let Some(password) = &body.password {
                check_password(password)?;
            }
            let status = match s.users.account(&user)? {
                None => {
                    if validate_localpart(s, user.localpart())? != user {
                        return Err(Error::invalid_username(
                            "User ID may only contain a-z, 0-9, and .=_-/+",
                        ));
                    }
                    let deactivated = body.deactivated.unwrap_or(false);
                    let password = body.password.as_deref().filter(|_| !deactivated);
                    s.users.create_with(&user, password, |a| {
                        if let Some(name) = body.displayname.clone() {
                            a.displayname = Some(name);
                        }
                        a.avatar_url = body.avatar_url.clone();
                        a.admin = body.admin.unwrap_or(false);
                        a.deactivated = deactivated;
                    })?;
                    StatusCode::CREATED
                }
                Some(account) => {
                    let deactivate = body.deactivated == Some(true) && !account.deactivated;
                    let reactivate = body.deactivated == Some(false) && account.deactivated;
                    if reactivate && body.password.is_none() {
                        return Err(Error::missing_param(
                            "Must provide a password to re-activate an account",
                        ));
                    }
                    let password = body.password.as_deref().filter(|_| !deactivate);
                    let before = e2ee::device_ids(s, &user)?;
                    s.users.modify(&user, password, body.logout_devices, |a| {
                        if let Some(name) = body.displayname.clone() {
                            a.displayname = Some(name);
                        }
                        if let Some(url) = body.avatar_url.clone() {
                            a.avatar_url = Some(url);
                        }
                        if let Some(admin) = body.admin {
                            a.admin = admin;
                        }
                        if reactivate {
                            a.deactivated = false;
                        }
                    })?;
                    e2ee::removed_since(s, &user, &before)?;
                    if deactivate {
                        deactivation::deactivate(s, &user)?;
                    } else {
                        // A new display name or avatar goes into the user's member events, as
                        // the client API's profile change does.
                        if let Some(name) = body.displayname.clone() {
                            update_profile(s, &user, &ProfileFieldName::DisplayName, Some(name))?;
                        }
                        if let Some(url) = body.avatar_url.clone() {
                            update_profile(s, &user, &ProfileFieldName::AvatarUrl, Some(url))?;
                        }
                    }
                    StatusCode::OK
                }
            };
            if let Some(locked) = body.locked {
                moderation::set(s, Action::Lock, &user, locked)?;
            }
            let account = s.users.account(&user)?.ok_or_else(not_found)?;
            Ok((status, Json(user_list::user_json(s, &user, &account))))
        })
        .await
}

#[derive(Deserialize)]
pub struct Deactivate {
    #[serde(default)]
    erase: bool,
}

pub async fn deactivate(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
    Body(body): Body<Deactivate>,
) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            local(s, &user)?;
            deactivation::deactivate_and_erase(s, &user, body.erase)?;
            Ok(Json(json!({ "id_server_unbind_result": "no-support" })))
        })
        .await
}

#[derive(Deserialize)]
pub struct ResetPassword {
    new_password: String,
    #[serde(default = "yes")]
    logout_devices: bool,
}

pub async fn reset_password(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
    Body(body): Body<ResetPassword>,
) -> Answer {
    let user = args.user(0)?;
    check_password(&body.new_password)?;
    services
        .run(move |s| {
            local(s, &user)?;
            if !s.users.is_active(&user)? {
                return Err(not_found());
            }
            let before = e2ee::device_ids(s, &user)?;
            s.users
                .modify(&user, Some(&body.new_password), body.logout_devices, |_| {})?;
            e2ee::removed_since(s, &user, &before)?;
            Ok(Json(json!({})))
        })
        .await
}

pub async fn get_admin(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            local(s, &user)?;
            let account = s.users.account(&user)?.ok_or_else(not_found)?;
            Ok(Json(json!({ "admin": account.admin })))
        })
        .await
}

#[derive(Deserialize)]
pub struct SetAdmin {
    admin: bool,
}

pub async fn set_admin(
    State(services): State<Arc<Services>>,
    Admin(me): Admin,
    args: Args,
    Body(body): Body<SetAdmin>,
) -> Answer {
    let user = args.user(0)?;
    if user == me && !body.admin {
        return Err(Error::unknown("You may not demote yourself"));
    }
    services
        .run(move |s| {
            local(s, &user)?;
            if !s.users.exists(&user)? {
                return Err(not_found());
            }
            s.users.set_profile(&user, |a| a.admin = body.admin)?;
            Ok(Json(json!({})))
        })
        .await
}

fn device_json(user: &UserId, d: &Device) -> Value {
    json!({
        "device_id": d.device_id,
        "display_name": d.display_name,
        "last_seen_ip": d.last_seen_ip,
        "last_seen_ts": d.last_seen_ts,
        "last_seen_user_agent": null,
        "user_id": user,
    })
}

/// Devices of an existing local user (404 for an unknown one).
fn devices_of(s: &Services, user: &UserId) -> Result<Vec<Device>> {
    local(s, user)?;
    if !s.users.exists(user)? {
        return Err(not_found());
    }
    s.users.devices(user)
}

pub async fn whois(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            let connections: Vec<Value> = devices_of(s, &user)?
                .iter()
                .map(|d| json!({ "device_id": d.device_id, "ip": d.last_seen_ip, "last_seen": d.last_seen_ts, "user_agent": null }))
                .collect();
            Ok(Json(json!({ "user_id": user, "devices": { "": { "sessions": [{ "connections": connections }] } } })))
        })
        .await
}

pub async fn devices(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            let devices: Vec<Value> = devices_of(s, &user)?
                .iter()
                .map(|d| device_json(&user, d))
                .collect();
            Ok(Json(json!({ "total": devices.len(), "devices": devices })))
        })
        .await
}

pub async fn device(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let (user, device) = (args.user(0)?, args.string(1)?);
    services
        .run(move |s| {
            devices_of(s, &user)?;
            let found = s
                .users
                .device(&user, &device)?
                .ok_or_else(|| Error::not_found("Device not found"))?;
            Ok(Json(device_json(&user, &found)))
        })
        .await
}

#[derive(Deserialize)]
pub struct RenameDevice {
    display_name: Option<String>,
}

pub async fn rename_device(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
    Body(body): Body<RenameDevice>,
) -> Answer {
    let (user, device) = (args.user(0)?, args.string(1)?);
    services
        .run(move |s| {
            devices_of(s, &user)?;
            s.users
                .set_device_name(&user, &device, body.display_name)
                .map_err(|_| Error::not_found("Device not found"))?;
            Ok(Json(json!({})))
        })
        .await
}

/// Deletes a device with its token and keys; an unknown device is already gone (200).
pub async fn delete_device(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let (user, device) = (args.user(0)?, args.string(1)?);
    services
        .run(move |s| {
            devices_of(s, &user)?;
            if s.users.device(&user, &device)?.is_some() {
                crate::services::keys::device_list::remove(s, &user, &[device.as_str()])?;
            }
            Ok(Json(json!({})))
        })
        .await
}

pub async fn joined_rooms(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let user: OwnedUserId = args.user(0)?;
    services
        .run(move |s| {
            let rooms = s.membership.joined_room_ids(&user)?;
            Ok(Json(json!({ "total": rooms.len(), "joined_rooms": rooms })))
        })
        .await
}

#[derive(Deserialize)]
pub struct ServerNotice {
    user_id: OwnedUserId,
    content: serde_json::Map<String, Value>,
    #[serde(default = "message_type", rename = "type")]
    kind: String,
    state_key: Option<String>,
}

fn message_type() -> String {
    "m.room.message".into()
}

/// `POST /_synapse/admin/v1/send_server_notice` and `PUT …/send_server_notice/{txnId}`
/// (`services::server_notices`): `{"event_id"}`.
pub async fn send_server_notice(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
    Body(body): Body<ServerNotice>,
) -> Answer {
    let txn = args.0.first().cloned();
    services
        .run(move |s| {
            let event_id = crate::services::server_notices::send(
                s,
                &body.user_id,
                &body.kind,
                body.state_key,
                body.content,
                txn,
            )?;
            Ok(Json(json!({ "event_id": event_id })))
        })
        .await
}

/// `GET /_synapse/admin/v1/users/{userId}/accountdata`:
/// `{"account_data": {"global": {type: content}, "rooms": {roomId: {type: content}}}}`.
pub async fn account_data(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            existing_local(s, &user)?;
            let (mut global, mut rooms) = (serde_json::Map::new(), serde_json::Map::new());
            for entry in s.account_data.changes_since(&user, 0)? {
                match entry.room {
                    None => {
                        global.insert(entry.kind, entry.content);
                    }
                    Some(room) => {
                        if let Value::Object(of_room) =
                            rooms.entry(room.to_string()).or_insert_with(|| json!({}))
                        {
                            of_room.insert(entry.kind, entry.content);
                        }
                    }
                }
            }
            Ok(Json(
                json!({ "account_data": { "global": global, "rooms": rooms } }),
            ))
        })
        .await
}

/// `GET /_synapse/admin/v1/users/{userId}/pushers`: `{"pushers": [...], "total"}`.
pub async fn pushers(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            existing_local(s, &user)?;
            let pushers: Vec<Value> = s
                .push
                .pushers()
                .list(&user)?
                .into_iter()
                .filter_map(|p| serde_json::to_value(p.pusher).ok())
                .collect();
            Ok(Json(json!({ "total": pushers.len(), "pushers": pushers })))
        })
        .await
}

fn existing_local(s: &Services, user: &UserId) -> Result<()> {
    local(s, user)?;
    if s.users.account(user)?.is_none() {
        return Err(Error::not_found("User not found"));
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct LoginAs {
    valid_until_ms: Option<u64>,
}

/// `POST /_synapse/admin/v1/users/{userId}/login`: an access token of the user, on a new device
/// named after the admin (so the user sees it in their device list); `{"access_token"}`.
/// `valid_until_ms` (expiring tokens) is not supported: 400.
pub async fn login_as(
    State(services): State<Arc<Services>>,
    Admin(admin): Admin,
    args: Args,
    Body(body): Body<LoginAs>,
) -> Answer {
    let user = args.user(0)?;
    if body.valid_until_ms.is_some() {
        return Err(Error::invalid_param(
            "valid_until_ms is not supported: access tokens do not expire",
        ));
    }
    services
        .run(move |s| {
            existing_local(s, &user)?;
            if !s.users.is_active(&user)? {
                return Err(Error::invalid_param("The user is deactivated"));
            }
            let (_, token) = crate::services::keys::device_list::login(
                s,
                &user,
                None,
                Some(format!("Logged in by the admin {admin}")),
            )?;
            Ok(Json(json!({ "access_token": token })))
        })
        .await
}

/// `POST|DELETE /_synapse/admin/v1/users/{userId}/shadow_ban`: `{}`.
#[derive(Deserialize)]
pub struct Suspend {
    suspend: bool,
}

/// `PUT /_synapse/admin/v1/suspend/{userId}` `{"suspend": bool}` (Synapse's route for MSC3823).
pub async fn suspend(
    State(services): State<Arc<Services>>,
    Admin(caller): Admin,
    args: Args,
    Body(body): Body<Suspend>,
) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            moderation::check_target(s, &caller, &user, true)?;
            moderation::set(s, Action::Suspend, &user, body.suspend)?;
            Ok(Json(
                json!({ format!("user_{user}_suspended"): body.suspend }),
            ))
        })
        .await
}

pub async fn shadow_ban(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    set_shadow_ban(services, args, true).await
}

pub async fn unshadow_ban(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    set_shadow_ban(services, args, false).await
}

async fn set_shadow_ban(services: Arc<Services>, args: Args, banned: bool) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            existing_local(s, &user)?;
            s.shadow_bans.set(&s.globals, &user, banned)?;
            Ok(Json(json!({})))
        })
        .await
}

/// `GET /_synapse/admin/v1/users/{userId}/override_ratelimit`: `{}` or the override.
pub async fn get_ratelimit(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            existing_local(s, &user)?;
            Ok(Json(match s.rate_limiter.override_of(user.as_str()) {
                Some(limits) => json!(limits),
                None => json!({}),
            }))
        })
        .await
}

#[derive(Deserialize)]
pub struct RatelimitBody {
    #[serde(default)]
    messages_per_second: Option<Value>,
    #[serde(default)]
    burst_count: Option<Value>,
}

/// `POST /_synapse/admin/v1/users/{userId}/override_ratelimit` `{messages_per_second?,
/// burst_count?}` (non-negative integers, 0 by default; 0 per second: unlimited): the override.
pub async fn set_ratelimit(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
    Body(body): Body<RatelimitBody>,
) -> Answer {
    let user = args.user(0)?;
    let count = |value: Option<Value>, name: &str| match value {
        None => Ok(0),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| Error::invalid_param(format!("{name} must be a non-negative integer"))),
    };
    let limits = crate::services::ratelimit::Override {
        messages_per_second: count(body.messages_per_second, "messages_per_second")?,
        burst_count: count(body.burst_count, "burst_count")?,
    };
    services
        .run(move |s| {
            existing_local(s, &user)?;
            s.rate_limiter
                .set_override(&s.globals.db, user.as_str(), Some(limits))?;
            Ok(Json(json!(limits)))
        })
        .await
}

/// `DELETE /_synapse/admin/v1/users/{userId}/override_ratelimit`: `{}`.
pub async fn delete_ratelimit(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            existing_local(s, &user)?;
            s.rate_limiter
                .set_override(&s.globals.db, user.as_str(), None)?;
            Ok(Json(json!({})))
        })
        .await
}
