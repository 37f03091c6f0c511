//! Registration, login, logout, whoami, password change, deactivation and OpenID tokens.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    OwnedUserId, UserId,
    api::client::account::{
        change_password, deactivate, get_username_availability, register, request_openid_token,
        whoami,
    },
};
use serde_json::{Value, json};

use crate::services::{keys::device_list, password_pool};
use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{
        Services,
        threepids::{
            EMAIL, canonical_email,
            validation::{Purpose, Session as ValidationSession},
        },
    },
};

type Res<T> = Result<RumaResponse<T>>;

/// Checks a requested localpart: lowercase, the spec's characters, and the length limit.
/// Refuses a user id an application service holds exclusively (400 `M_EXCLUSIVE`): only that
/// application service may register it.
pub(super) fn not_reserved(s: &Services, user: &UserId) -> Result<()> {
    match s.appservices.exclusive_user_owner(user) {
        Some(_) => Err(Error::exclusive(
            "This user id is reserved by an application service",
        )),
        None => Ok(()),
    }
}

pub fn validate_localpart(s: &Services, localpart: &str) -> Result<OwnedUserId> {
    let valid = !localpart.is_empty()
        && localpart.bytes().all(
            |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+'),
        );
    if !valid {
        return Err(Error::invalid_username(
            "User ID may only contain a-z, 0-9, and .=_-/+",
        ));
    }
    let user = UserId::parse(format!("@{localpart}:{}", s.globals.server_name()))
        .map_err(|_| Error::invalid_username("Invalid user ID"))?;
    if user.as_str().len() > 255 {
        return Err(Error::invalid_username("User ID is too long"));
    }
    Ok(user)
}

/// The user-interactive auth stage of a validated e-mail address.
pub const EMAIL_STAGE: &str = "m.login.email.identity";

/// The validated session an `m.login.email.identity` stage names (`threepid_creds: {sid,
/// client_secret}`) for `purpose`: (sid, client secret, session). 401 `M_THREEPID_AUTH_FAILED`
/// when it is unknown, not validated (the link was not opened), expired or for something else.
pub fn validated_email(
    s: &Services,
    auth: &Value,
    purpose: Purpose,
) -> Result<(String, String, ValidationSession)> {
    let creds = auth
        .get("threepid_creds")
        .or_else(|| auth.get("threepidCreds"))
        .ok_or_else(|| Error::missing_param("threepid_creds is required"))?;
    let field = |name: &str| {
        creds
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (sid, secret) = (field("sid"), field("client_secret"));
    let session = s
        .threepids
        .validations
        .validated(&sid, &secret, purpose, crate::util::now_ms())?
        .ok_or_else(super::threepids::threepid_auth_failed)?;
    Ok((sid, secret, session))
}

/// Adds the address of the validated session `creds` (`{sid, client_secret}`) to `user` and
/// spends the session, in one batch.
fn add_validated_email(s: &Services, user: &UserId, creds: &Value, purpose: Purpose) -> Result<()> {
    let field = |name: &str| creds.get(name).and_then(Value::as_str).unwrap_or_default();
    let now = crate::util::now_ms();
    let session = s
        .threepids
        .validations
        .validated(field("sid"), field("client_secret"), purpose, now)?
        .ok_or_else(super::threepids::threepid_auth_failed)?;
    let mut batch = crate::storage::Batch::new();
    s.threepids
        .validations
        .spend(field("sid"), &session, &mut batch);
    s.threepids.add(
        user,
        &session.medium,
        &session.address,
        session.validated_at.unwrap_or(now),
        now,
        batch,
    )
}

/// The account an `m.id.thirdparty` identifier (or the legacy `medium`/`address`) names: the
/// owner of the address.
pub async fn user_of_threepid(
    services: &Arc<Services>,
    body: &Value,
) -> Result<Option<OwnedUserId>> {
    let id = body
        .get("identifier")
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("m.id.thirdparty"))
        .unwrap_or(body);
    let (Some(medium), Some(address)) = (
        id.get("medium").and_then(Value::as_str),
        id.get("address").and_then(Value::as_str),
    ) else {
        return Ok(None);
    };
    if medium != EMAIL {
        return Ok(None);
    }
    let Some(address) = canonical_email(address) else {
        return Ok(None);
    };
    services
        .run(move |s| s.threepids.owner(EMAIL, &address))
        .await
}

/// Resolves the `identifier`/`user` of a login or UIA body to a local user id.
pub fn user_of_identifier(s: &Services, body: &Value) -> Option<OwnedUserId> {
    let id = body
        .get("identifier")
        .filter(|i| {
            i.get("type")
                .and_then(Value::as_str)
                .is_none_or(|t| t == "m.id.user")
        })
        .and_then(|i| i.get("user"))
        .or_else(|| body.get("user"))
        .and_then(Value::as_str)?;
    if id.starts_with('@') {
        UserId::parse(id.to_lowercase()).ok()
    } else {
        UserId::parse(format!(
            "@{}:{}",
            id.to_lowercase(),
            s.globals.server_name()
        ))
        .ok()
    }
}

/// User-interactive confirmation of a signed-in user (device deletion, password change,
/// cross-signing reset, login tokens): `m.login.password` when passwords are on, `m.login.sso`
/// when the user is linked to a configured identity provider (the fallback page completes it,
/// `api::client::sso`). 403 when neither applies.
pub async fn uia_password(
    services: &Arc<Services>,
    user: &UserId,
    auth: Option<Value>,
) -> Result<()> {
    let attempt = auth.as_ref().filter(|a| {
        a.get("type").and_then(Value::as_str) == Some("m.login.password")
            && a.get("session").is_some()
    });
    let passwords = services.config().password_config.enabled;
    let sso = {
        let user = user.to_owned();
        services
            .run(move |s| super::sso::confirmable_by_sso(s, &user))
            .await?
    };
    let mut flows = Vec::new();
    if passwords {
        flows.push(vec!["m.login.password"]);
    }
    if sso {
        flows.push(vec!["m.login.sso"]);
    }
    if flows.is_empty() {
        return Err(Error::forbidden(
            "Password confirmation is disabled on this server ([password_config] enabled = false)",
        ));
    }
    let verified: Result<bool> = match attempt {
        None => Ok(false),
        Some(_) if !passwords => Ok(false),
        Some(a) if user_of_identifier(services, a).is_some_and(|c| c != user) => Err(
            Error::forbidden("The identifier does not match the authenticated user"),
        ),
        Some(a) => {
            services.login_failures.check(user)?;
            let password = a
                .get("password")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let valid = password_check(services, user, password).await? == PasswordCheck::Valid;
            if valid {
                services.login_failures.succeeded(user);
            } else {
                services.login_failures.failed(user);
            }
            Ok(valid)
        }
    };
    let user = user.to_owned();
    services
        .run(move |s| {
            s.uia
                .check(Some(&user), auth.as_ref(), &flows, json!({}), |stage, _| {
                    match stage {
                        "m.login.password" => verified,
                        // Completed only by the fallback page, never by the request itself.
                        _ => Ok(false),
                    }
                })
        })
        .await
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum PasswordCheck {
    Valid,
    Invalid,
    Deactivated,
}

/// Checks `password` of the local user `user`: with `[ldap]`, the directory first (a directory
/// user is authenticated by it alone, and gets an account on their first login); then, for the
/// others, the local hash (unless `[password_config] localdb_enabled = false`). When the directory
/// cannot be reached, directory accounts get 503 and local accounts are still checked.
pub(super) async fn password_check(
    services: &Arc<Services>,
    user: &UserId,
    password: String,
) -> Result<PasswordCheck> {
    use crate::services::ldap::{Outcome, provision};
    let Some(directory) = services
        .ldap
        .as_ref()
        .filter(|_| user.server_name() == services.globals.server_name())
    else {
        return local_password_check(services, user, password).await;
    };
    let outcome = directory.authenticate(user.localpart(), &password).await;
    let owned = user.to_owned();
    let from_directory = move |s: &Services| provision::is_directory_account(s, &owned);
    match outcome {
        Ok(Outcome::Valid(entry)) => {
            let user = user.to_owned();
            let active = services
                .run(move |s| provision::account_for(s, &user, &entry))
                .await?;
            Ok(if active {
                PasswordCheck::Valid
            } else {
                PasswordCheck::Deactivated
            })
        }
        Ok(Outcome::WrongPassword) => Ok(PasswordCheck::Invalid),
        Ok(Outcome::NotFound) => {
            // Gone from the directory (or out of its filter or group): no way in.
            if services.run(from_directory).await? {
                return Ok(PasswordCheck::Invalid);
            }
            local_password_check(services, user, password).await
        }
        Err(e) => {
            if services.run(from_directory).await? {
                return Err(e);
            }
            local_password_check(services, user, password).await
        }
    }
}

/// Checks `password` against the local account `user`, all on the password pool (the account
/// read too: a flood of logins touches neither the blocking pool nor the async workers; 429 when
/// the pool is full). With `[password_config] localdb_enabled = false` the local hash is never
/// checked.
async fn local_password_check(
    services: &Arc<Services>,
    user: &UserId,
    password: String,
) -> Result<PasswordCheck> {
    let (this, user) = (services.clone(), user.to_owned());
    let localdb = services.config().password_config.localdb_enabled;
    services
        .users
        .passwords()
        .run(move || {
            let Some(account) = this.users.account(&user)? else {
                return Ok(PasswordCheck::Invalid);
            };
            if account.deactivated {
                return Ok(PasswordCheck::Deactivated);
            }
            let Some(hash) = account.password_hash.filter(|_| localdb) else {
                return Ok(PasswordCheck::Invalid);
            };
            Ok(if password_pool::verify_now(&password, &hash)? {
                PasswordCheck::Valid
            } else {
                PasswordCheck::Invalid
            })
        })?
        .await?
}

fn auth_of(json: &Option<Value>) -> Option<Value> {
    json.as_ref().and_then(|j| j.get("auth")).cloned()
}

/// Answers with a plain JSON body: ruma's response type writes `"device_id": null` when
/// `inhibit_login` leaves it out. The checks and UIA run first, then the password is hashed on
/// the password pool, then the account is created (400 `M_USER_IN_USE` if another registration
/// of the name won meanwhile: the check and the write are atomic in `Users::create_hashed`).
pub async fn register(
    State(services): State<Arc<Services>>,
    req: Ruma<register::v3::Request>,
) -> Result<axum::Json<Value>> {
    let auth = auth_of(&req.json);
    // The UIA session, whose registration token (if any) counts one use once the account exists.
    let session = auth
        .as_ref()
        .and_then(|a| a.get("session"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let body = req.body;
    let password = body.password.clone();
    let (device_id, display_name, inhibit_login) = (
        body.device_id.clone(),
        body.initial_device_display_name.clone(),
        body.inhibit_login,
    );
    let refreshable = body
        .refresh_token
        .then(|| services.config().sessions.lifetimes());
    if req
        .json
        .as_ref()
        .and_then(|j| j.get("type"))
        .and_then(Value::as_str)
        == Some(super::appservice::LOGIN_TYPE)
    {
        let appservice = req.appservice.clone();
        let username = body.username.clone();
        return services
            .run(move |s| {
                let answer = super::appservice::register_user(
                    s,
                    appservice.as_deref(),
                    username.as_deref(),
                    device_id,
                    display_name,
                    inhibit_login,
                )?;
                Ok(axum::Json(answer))
            })
            .await;
    }
    let user = services
        .run(move |s| {
            let config = &s.config().registration;
            if !config.enabled {
                return Err(Error::forbidden("Registration is disabled"));
            }
            if body.kind == ruma::api::client::account::register::RegistrationKind::Guest {
                return Err(Error::new(
                    http::StatusCode::FORBIDDEN,
                    "M_GUEST_ACCESS_FORBIDDEN",
                    "Guest access is disabled",
                ));
            }
            let user = match &body.username {
                Some(name) => {
                    let user = validate_localpart(s, &name.to_lowercase())?;
                    not_reserved(s, &user)?;
                    user
                }
                None => loop {
                    let candidate =
                        validate_localpart(s, &crate::util::random_string(10).to_lowercase())?;
                    if !s.users.exists(&candidate)? && not_reserved(s, &candidate).is_ok() {
                        break candidate;
                    }
                },
            };
            if s.users.exists(&user)? {
                return Err(Error::user_in_use());
            }
            let passwords = &s.config().password_config;
            if let Some(password) = &body.password {
                if !passwords.enabled {
                    return Err(Error::forbidden(
                        "Registration with a password is disabled on this server",
                    ));
                }
                passwords.policy.check(password)?;
            }
            let mut required = Vec::new();
            if !config.tokens.is_empty() || config.requires_token {
                required.push("m.login.registration_token");
            }
            if config.require_email {
                required.push(EMAIL_STAGE);
            }
            let flows = match (required.is_empty(), s.mailer.is_some()) {
                (false, _) => vec![required],
                // An address is welcome but not needed: a flow without it, and one with it.
                (true, true) => vec![vec!["m.login.dummy"], vec![EMAIL_STAGE]],
                (true, false) => vec![vec!["m.login.dummy"]],
            };
            let found =
                s.uia
                    .check_with_data(None, auth.as_ref(), &flows, json!({}), |stage, auth| {
                        match stage {
                            EMAIL_STAGE => {
                                let creds = validated_email(s, auth, Purpose::Registration)?;
                                if s.threepids.owner(EMAIL, &creds.2.address)?.is_some() {
                                    return Err(crate::services::threepids::in_use());
                                }
                                if let Some(session) = auth.get("session").and_then(Value::as_str) {
                                    s.uia.remember(
                                        session,
                                        "email",
                                        json!({ "sid": creds.0, "client_secret": creds.1 }),
                                    )?;
                                }
                                Ok(true)
                            }
                            "m.login.dummy" => Ok(true),
                            "m.login.registration_token" => {
                                let token = auth
                                    .get("token")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default();
                                let session = auth
                                    .get("session")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default();
                                Ok(config.tokens.iter().any(|t| t == token)
                                    || s.registration_tokens.reserve(token, session)?)
                            }
                            _ => Ok(false),
                        }
                    })?;
            Ok((user, found.get("email").cloned()))
        })
        .await?;
    let (user, email) = user;
    let hash = match password {
        Some(password) => Some(services.users.passwords().hash(password).await?),
        None => None,
    };
    services
        .run(move |s| {
            s.users.create_hashed(&user, hash, |_| {})?;
            if let Some(session) = &session {
                s.registration_tokens.registered(session)?;
            }
            // The address the registration validated is the account's. Written after the
            // account (whose creation is its own atomic check-and-write): a crash in between
            // leaves the account without the address and the session unspent, and the user adds
            // it again from their settings.
            if let Some(email) = &email {
                add_validated_email(s, &user, email, Purpose::Registration)?;
            }
            let mut response = json!({ "user_id": user });
            if !inhibit_login {
                let issued =
                    device_list::login_with(s, &user, device_id, display_name, refreshable)?;
                response["device_id"] = json!(issued.device_id);
                response["access_token"] = json!(issued.access_token);
                if let Some(refresh) = issued.refresh_token {
                    response["refresh_token"] = json!(refresh);
                }
                if let Some(ms) = issued.expires_in_ms {
                    response["expires_in_ms"] = json!(ms);
                }
            }
            Ok(axum::Json(response))
        })
        .await
}

pub async fn username_available(
    State(services): State<Arc<Services>>,
    req: Ruma<get_username_availability::v3::Request>,
) -> Res<get_username_availability::v3::Response> {
    services
        .run(move |s| {
            let user = validate_localpart(s, &req.body.username.to_lowercase())?;
            not_reserved(s, &user)?;
            if s.users.exists(&user)? {
                return Err(Error::user_in_use());
            }
            Ok(get_username_availability::v3::Response::new(true).into())
        })
        .await
}

pub async fn whoami(req: Ruma<whoami::v3::Request>) -> Res<whoami::v3::Response> {
    let mut response = whoami::v3::Response::new(req.user()?.clone(), false);
    response.device_id = req.device.clone();
    Ok(response.into())
}

pub async fn change_password(
    State(services): State<Arc<Services>>,
    req: Ruma<change_password::v3::Request>,
) -> Res<change_password::v3::Response> {
    let auth = auth_of(&req.json);
    if req.user.is_none() && services.mailer.is_some() {
        return reset_password(&services, auth, req.body).await;
    }
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    let body = req.body;
    let passwords = &services.config().password_config;
    if !passwords.enabled {
        return Err(Error::forbidden(
            "Password changes are disabled on this server",
        ));
    }
    passwords.policy.check(&body.new_password)?;
    uia_password(&services, &user, auth).await?;
    // Hashing is slow: on the password pool, never under the commit lock.
    let hash = services.users.passwords().hash(body.new_password).await?;
    let logout_devices = body.logout_devices;
    services
        .run(move |s| {
            let logout = logout_devices.then_some(Some(device.as_str()));
            device_list::set_password(s, &user, hash, logout)?;
            Ok(change_password::v3::Response::new().into())
        })
        .await
}

/// A forgotten password (`POST /account/password` without an access token): the
/// `m.login.email.identity` stage with a session of `/account/password/email/requestToken`
/// whose link was opened names the account; its password changes, and with `logout_devices`
/// (the default) every session ends.
async fn reset_password(
    services: &Arc<Services>,
    auth: Option<Value>,
    body: change_password::v3::Request,
) -> Res<change_password::v3::Response> {
    let passwords = &services.config().password_config;
    if !passwords.enabled {
        return Err(Error::forbidden(
            "Password changes are disabled on this server",
        ));
    }
    passwords.policy.check(&body.new_password)?;
    let found = services
        .run(move |s| {
            s.uia.check_with_data(
                None,
                auth.as_ref(),
                &[vec![EMAIL_STAGE]],
                json!({}),
                |_, auth| {
                    let (sid, secret, session) = validated_email(s, auth, Purpose::PasswordReset)?;
                    // The owner when the reset was asked: an address moved since names no one.
                    let owner = s
                        .threepids
                        .owner(&session.medium, &session.address)?
                        .ok_or_else(super::threepids::threepid_auth_failed)?;
                    if let Some(uia) = auth.get("session").and_then(Value::as_str) {
                        s.uia.remember(
                            uia,
                            "reset",
                            json!({ "sid": sid, "client_secret": secret, "user": owner }),
                        )?;
                    }
                    Ok(true)
                },
            )
        })
        .await?;
    let reset = found
        .get("reset")
        .cloned()
        .ok_or_else(super::threepids::threepid_auth_failed)?;
    let user: OwnedUserId = reset
        .get("user")
        .and_then(Value::as_str)
        .and_then(|u| UserId::parse(u).ok())
        .ok_or_else(super::threepids::threepid_auth_failed)?;
    let hash = services.users.passwords().hash(body.new_password).await?;
    let logout_devices = body.logout_devices;
    services
        .run(move |s| {
            // Spent first: a link resets a password once.
            let field = |name: &str| reset.get(name).and_then(Value::as_str).unwrap_or_default();
            let session = s
                .threepids
                .validations
                .validated(
                    field("sid"),
                    field("client_secret"),
                    Purpose::PasswordReset,
                    crate::util::now_ms(),
                )?
                .ok_or_else(super::threepids::threepid_auth_failed)?;
            let mut batch = crate::storage::Batch::new();
            s.threepids
                .validations
                .spend(field("sid"), &session, &mut batch);
            s.globals.db.write(batch)?;
            device_list::set_password(s, &user, hash, logout_devices.then_some(None))?;
            tracing::info!(%user, "password reset by e-mail");
            Ok(change_password::v3::Response::new().into())
        })
        .await
}

pub async fn deactivate(
    State(services): State<Arc<Services>>,
    req: Ruma<deactivate::v3::Request>,
) -> Res<deactivate::v3::Response> {
    let auth = auth_of(&req.json);
    let user = req.user()?.clone();
    let erase = req.body.erase;
    uia_password(&services, &user, auth).await?;
    services
        .run(move |s| {
            // Leave every room first, so other members see the departure.
            for room in s.membership.rooms_of(&user)? {
                use crate::services::rooms::membership::Membership;
                if matches!(
                    room.membership,
                    Membership::Join | Membership::Invite | Membership::Knock
                ) {
                    let _ = crate::services::rooms::set_membership(
                        s,
                        &room.room_id,
                        &user,
                        &user,
                        "leave",
                        None,
                        None,
                    );
                }
            }
            device_list::deactivate(s, &user)?;
            if erase {
                s.erased_users.set(&s.globals, &user, true)?;
            }
            Ok(deactivate::v3::Response::new(
                ruma::api::client::account::ThirdPartyIdRemovalStatus::NoSupport,
            )
            .into())
        })
        .await
}

/// `POST /_matrix/client/v3/user/{userId}/openid/request_token`: a token another server can check
/// with our federation `openid/userinfo` (only for oneself: 403 otherwise).
pub async fn request_openid_token(
    State(services): State<Arc<Services>>,
    req: Ruma<request_openid_token::v3::Request>,
) -> Res<request_openid_token::v3::Response> {
    let caller = req.user()?.clone();
    if caller != req.body.user_id {
        return Err(Error::forbidden("You may only request tokens for yourself"));
    }
    services
        .run(move |s| {
            let token = s
                .users
                .create_openid_token(&caller, crate::util::now_ms())?;
            Ok(request_openid_token::v3::Response::new(
                token,
                ruma::authentication::TokenType::Bearer,
                s.globals.server_name().to_owned(),
                std::time::Duration::from_millis(crate::services::users::OPENID_TOKEN_LIFETIME_MS),
            )
            .into())
        })
        .await
}
