//! Application services (bridges and bots): the registrations read at start-up (`registration`)
//! and what the rest of the server asks of them: whose namespace a user id or alias is in, and
//! which ids only an application service may take (`M_EXCLUSIVE`).
//!
//! Issue 10 builds the rest on this: `as_token` authentication and masquerading, transactions
//! pushed to each application service from a persisted queue, and the queries.

pub mod registration;

use ruma::{RoomAliasId, UserId};
use serde::Deserialize;

pub use registration::Appservice;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppservicesConfig {
    /// Registration files (YAML, the format Synapse reads and bridges write), read at start-up.
    pub registration_files: Vec<std::path::PathBuf>,
}

/// The registered application services.
#[derive(Debug, Default)]
pub struct Appservices {
    list: Vec<Appservice>,
}

impl Appservices {
    pub fn new(list: Vec<Appservice>) -> Self {
        Self { list }
    }

    pub fn all(&self) -> &[Appservice] {
        &self.list
    }

    /// The application service whose `as_token` this is.
    pub fn by_as_token(&self, token: &str) -> Option<&Appservice> {
        self.list.iter().find(|a| a.registration.as_token == token)
    }

    /// The application service whose exclusive user namespace holds `user`, if any.
    pub fn exclusive_user_owner(&self, user: &UserId) -> Option<&Appservice> {
        self.list
            .iter()
            .find(|a| a.users.is_exclusive(user.as_str()))
    }

    /// The application service whose exclusive alias namespace holds `alias`, if any.
    pub fn exclusive_alias_owner(&self, alias: &RoomAliasId) -> Option<&Appservice> {
        self.list
            .iter()
            .find(|a| a.aliases.is_exclusive(alias.as_str()))
    }
}
