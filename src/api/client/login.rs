//! `GET /login` (what this server accepts), `POST /login` (password, login token, application
//! service), logout, `POST /login/get_token` and `POST /refresh`.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    OwnedUserId,
    api::client::session::{
        get_login_token, get_login_types, login, logout, logout_all, refresh_token,
    },
};
use serde_json::Value;

use super::account::{
    PasswordCheck, password_check, uia_password, user_of_identifier, user_of_threepid,
};
use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{
        Services, keys::device_list, sessions::login_tokens::LoginToken, users::TokenLifetimes,
    },
    util::now_ms,
};

type Res<T> = Result<RumaResponse<T>>;

/// Whether login tokens can be made here (and so `m.login.token` is listed): by
/// `POST /login/get_token`, or at the end of a single sign-on.
pub fn login_tokens_offered(s: &Services) -> bool {
    s.config().sessions.login_via_existing_session.enabled || s.sso.enabled()
}

/// `GET /login`: exactly the login types this configuration accepts.
pub async fn login_types(
    State(services): State<Arc<Services>>,
    _: Ruma<get_login_types::v3::Request>,
) -> Res<get_login_types::v3::Response> {
    use ruma::api::client::session::get_login_types::v3::{
        ApplicationServiceLoginType, IdentityProvider, IdentityProviderBrand, LoginType,
        PasswordLoginType, SsoLoginType, TokenLoginType,
    };
    let mut types = Vec::new();
    if services.config().password_config.enabled {
        types.push(LoginType::Password(PasswordLoginType::default()));
    }
    if services.sso.enabled() {
        let providers = services
            .sso
            .providers()
            .iter()
            .map(|p| {
                let mut idp =
                    IdentityProvider::new(p.config.idp_id.clone(), p.config.idp_name.clone());
                idp.icon = p.config.idp_icon.clone().map(Into::into);
                idp.brand = p
                    .config
                    .idp_brand
                    .as_deref()
                    .map(IdentityProviderBrand::from);
                idp
            })
            .collect();
        let mut sso = SsoLoginType::default();
        sso.identity_providers = providers;
        types.push(LoginType::Sso(sso));
    }
    if login_tokens_offered(&services) {
        let mut token = TokenLoginType::new();
        token.get_login_token = services
            .config()
            .sessions
            .login_via_existing_session
            .enabled;
        types.push(LoginType::Token(token));
    }
    types.push(LoginType::ApplicationService(
        ApplicationServiceLoginType::default(),
    ));
    Ok(get_login_types::v3::Response::new(types).into())
}

/// `POST /login`: limited per resolved account (`login:<user id>`, whatever the identifier's
/// spelling) and delayed after failures (`services::login_failures`); the password is verified
/// on the password pool, off the blocking pool. A login token is spent once. Locked accounts get
/// 401 `M_USER_LOCKED`. With `refresh_token: true`, the access token expires
/// (`[sessions] access_token_lifetime`) and a refresh token comes with it.
pub async fn login(
    State(services): State<Arc<Services>>,
    req: Ruma<login::v3::Request>,
) -> Res<login::v3::Response> {
    let json = req.json.unwrap_or_default();
    let device_id = req.body.device_id.clone();
    let display_name = req.body.initial_device_display_name.clone();
    let refreshable = req
        .body
        .refresh_token
        .then(|| services.config().sessions.lifetimes());
    let mut provider_session = None;
    let user = match json.get("type").and_then(Value::as_str) {
        Some(super::appservice::LOGIN_TYPE) => {
            let appservice = req.appservice.clone();
            return services
                .run(move |s| {
                    let user = user_of_identifier(s, &json);
                    let (user, token, device) = super::appservice::login_user(
                        s,
                        appservice.as_deref(),
                        user,
                        device_id,
                        display_name,
                    )?;
                    Ok(login::v3::Response::new(user, token, device).into())
                })
                .await;
        }
        Some("m.login.password") if services.config().password_config.enabled => {
            password_login(&services, &json).await?
        }
        Some("m.login.token") if login_tokens_offered(&services) => {
            let token = token_login(&services, &json).await?;
            if let (Some(idp), Some(session)) = (token.auth_provider, token.provider_session) {
                provider_session = Some((idp, session));
            }
            token.user_id
        }
        _ => return Err(Error::unknown("Unsupported login type")),
    };
    if services.moderation.locked.contains(&user) {
        return Err(Error::user_locked());
    }
    services
        .run(move |s| {
            let issued = device_list::login_with(s, &user, device_id, display_name, refreshable)?;
            // Single sign-on: the provider's back-channel logout ends this device.
            if let Some((idp, session)) = provider_session {
                s.sso
                    .sessions
                    .record(&idp, &session, &user, issued.device_id.as_str())?;
            }
            let mut response =
                login::v3::Response::new(user, issued.access_token, issued.device_id);
            response.refresh_token = issued.refresh_token;
            response.expires_in = issued.expires_in_ms.map(std::time::Duration::from_millis);
            Ok(response.into())
        })
        .await
}

/// The account a password login names, once the password is verified.
async fn password_login(services: &Arc<Services>, json: &Value) -> Result<OwnedUserId> {
    // An e-mail address (m.id.thirdparty) names the account that has it.
    let user = match user_of_threepid(services, json).await? {
        Some(user) => Some(user),
        None => user_of_identifier(services, json),
    }
    .ok_or_else(|| Error::forbidden("Invalid username or password"))?;
    services.rate_limiter.check(&format!("login:{user}"))?;
    services.login_failures.check(&user)?;
    let password = json
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match password_check(services, &user, password).await? {
        PasswordCheck::Valid => {}
        PasswordCheck::Deactivated => return Err(Error::user_deactivated()),
        PasswordCheck::Invalid => {
            services.login_failures.failed(&user);
            return Err(Error::forbidden("Invalid username or password"));
        }
    }
    services.login_failures.succeeded(&user);
    Ok(user)
}

/// The login token of a token login, spent (it never works twice); unknown, spent or expired:
/// 403 `M_FORBIDDEN`.
async fn token_login(services: &Arc<Services>, json: &Value) -> Result<LoginToken> {
    let token = json
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::missing_param("token is required"))?
        .to_owned();
    services
        .run(move |s| {
            let found = s
                .login_tokens
                .spend(&token, now_ms())?
                .ok_or_else(|| Error::forbidden("Invalid or expired login token"))?;
            if !s.users.is_active(&found.user_id)? {
                return Err(Error::user_deactivated());
            }
            Ok(found)
        })
        .await
}

pub async fn logout(
    State(services): State<Arc<Services>>,
    req: Ruma<logout::v3::Request>,
) -> Res<logout::v3::Response> {
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    services
        .run(move |s| {
            device_list::remove(s, &user, &[device.as_str()])?;
            Ok(logout::v3::Response::new().into())
        })
        .await
}

pub async fn logout_all(
    State(services): State<Arc<Services>>,
    req: Ruma<logout_all::v3::Request>,
) -> Res<logout_all::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let devices = s.users.devices(&user)?;
            let ids: Vec<&str> = devices.iter().map(|d| d.device_id.as_str()).collect();
            device_list::remove(s, &user, &ids)?;
            Ok(logout_all::v3::Response::new().into())
        })
        .await
}

/// `POST /_matrix/client/v1/login/get_token` (login with another device): a single-use login
/// token for the caller, after user-interactive auth (`require_ui_auth`). 404 `M_UNRECOGNIZED`
/// unless `[sessions.login_via_existing_session] enabled`.
pub async fn get_token(
    State(services): State<Arc<Services>>,
    req: Ruma<get_login_token::v1::Request>,
) -> Res<get_login_token::v1::Response> {
    let config = services
        .config()
        .sessions
        .login_via_existing_session
        .clone();
    if !config.enabled {
        return Err(Error::unrecognized(
            "Login via an existing session is not enabled on this server",
        ));
    }
    let user = req.user()?.clone();
    if config.require_ui_auth {
        let auth = req.json.as_ref().and_then(|j| j.get("auth")).cloned();
        uia_password(&services, &user, auth).await?;
    }
    let lifetime = config.token_timeout.0;
    services
        .run(move |s| {
            let token = s.login_tokens.create(&user, None, lifetime, now_ms())?;
            Ok(get_login_token::v1::Response::new(
                std::time::Duration::from_millis(lifetime),
                token,
            )
            .into())
        })
        .await
}

/// `POST /refresh`: a new access token and refresh token for the refresh token's device; the
/// old access token stops working at once. Unknown, spent or expired: 401 `M_UNKNOWN_TOKEN`
/// (without `soft_logout`: the client must log in again).
pub async fn refresh(
    State(services): State<Arc<Services>>,
    req: Ruma<refresh_token::v3::Request>,
) -> Res<refresh_token::v3::Response> {
    let token = req.body.refresh_token;
    if token.is_empty() {
        return Err(Error::missing_param("refresh_token is empty"));
    }
    let lifetimes: TokenLifetimes = services.config().sessions.lifetimes();
    let issued = services
        .run(move |s| s.users.refresh(&s.globals, &token, lifetimes, now_ms()))
        .await?
        .ok_or_else(|| {
            Error::new(
                http::StatusCode::UNAUTHORIZED,
                "M_UNKNOWN_TOKEN",
                "Unknown or expired refresh token",
            )
            .with("soft_logout", Value::Bool(false))
        })?;
    let mut response = refresh_token::v3::Response::new(issued.access_token);
    response.refresh_token = issued.refresh_token;
    response.expires_in_ms = issued.expires_in_ms.map(std::time::Duration::from_millis);
    Ok(response.into())
}
