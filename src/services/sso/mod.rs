//! Single sign-on with OpenID Connect (`[sso]`, spec/auth.md): the providers, the signed state a
//! sign-in carries, the mapping of claims to accounts, and back-channel logout. The HTTP side
//! (redirects, callback, pages) is `api::client::sso`.

pub mod backchannel;
pub mod claims;
pub mod config;
pub mod provider;
pub mod sessions;
pub mod signed;

use crate::{error::Result, storage::Db};

pub use config::SsoConfig;

pub const MAPS: &[crate::storage::Map] = &[sessions::OIDC_SESSIONS];

pub struct Sso {
    pub config: SsoConfig,
    providers: Vec<provider::Provider>,
    pub signer: signed::Signer,
    pub sessions: sessions::OidcSessions,
}

impl Sso {
    pub fn open(config: &SsoConfig, db: &Db) -> Result<Self> {
        Ok(Self {
            config: config.clone(),
            providers: config
                .oidc_providers
                .iter()
                .cloned()
                .map(provider::Provider::new)
                .collect(),
            signer: signed::Signer::load_or_create(db)?,
            sessions: sessions::OidcSessions::new(db.clone()),
        })
    }

    /// Whether any provider is configured (and so `m.login.sso` is offered).
    pub fn enabled(&self) -> bool {
        !self.providers.is_empty()
    }

    pub fn providers(&self) -> &[provider::Provider] {
        &self.providers
    }

    pub fn provider(&self, idp_id: &str) -> Option<&provider::Provider> {
        self.providers.iter().find(|p| p.config.idp_id == idp_id)
    }

    /// Whether `url` starts with one of `client_whitelist`'s prefixes.
    pub fn whitelisted(&self, url: &str) -> bool {
        self.config
            .client_whitelist
            .iter()
            .any(|prefix| !prefix.is_empty() && url.starts_with(prefix.as_str()))
    }
}
