//! Sessions beyond a plain access token: refreshable access tokens (`[sessions]`), login tokens
//! (`m.login.token`, made by `POST /login/get_token` and by single sign-on), and the accounts an
//! admin locked or suspended.

pub mod login_tokens;
pub mod moderation;
pub mod password_policy;

use serde::Deserialize;

use crate::{
    services::{retention::lifetime::Lifetime, users::TokenLifetimes},
    storage::Map,
};

pub const MAPS: &[Map] = &[
    login_tokens::LOGIN_TOKENS,
    moderation::LOCKED_USERS,
    moderation::SUSPENDED_USERS,
];

/// `[sessions]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// How long an access token works when the client asked for a refresh token (`refresh_token:
    /// true` at login or registration); clients that did not ask get tokens that work until
    /// logout. Synapse's `refreshable_access_token_lifetime`.
    pub access_token_lifetime: Lifetime,
    /// How long a refresh token works if it is not used (None: until used or logged out).
    pub refresh_token_lifetime: Option<Lifetime>,
    /// `POST /_matrix/client/v1/login/get_token`: a signed-in device gives another device a
    /// login token (login with a QR code). Synapse's `login_via_existing_session`.
    pub login_via_existing_session: LoginViaExistingSession,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginViaExistingSession {
    pub enabled: bool,
    /// The signed-in user confirms with user-interactive auth first.
    pub require_ui_auth: bool,
    /// How long the login token works.
    pub token_timeout: Lifetime,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            access_token_lifetime: Lifetime(5 * 60_000),
            refresh_token_lifetime: None,
            login_via_existing_session: LoginViaExistingSession::default(),
        }
    }
}

impl Default for LoginViaExistingSession {
    fn default() -> Self {
        Self {
            enabled: false,
            require_ui_auth: true,
            token_timeout: Lifetime(5 * 60_000),
        }
    }
}

impl SessionsConfig {
    /// The lifetimes of a refreshable session's tokens.
    pub fn lifetimes(&self) -> TokenLifetimes {
        TokenLifetimes {
            access_ms: self.access_token_lifetime.0.max(1),
            refresh_ms: self.refresh_token_lifetime.map(|l| l.0),
        }
    }
}

/// The hourly deletion of expired login tokens and e-mail validation sessions (they never work,
/// but would pile up).
pub fn spawn_sweeps(
    services: std::sync::Arc<crate::services::Services>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let hour = std::time::Duration::from_secs(3600);
    crate::services::periodic::spawn(services, stop, hour, hour, "expired tokens", |s| {
        let now = crate::util::now_ms();
        Ok(s.login_tokens.sweep(now)? + s.threepids.validations.sweep(now)?)
    })
}
