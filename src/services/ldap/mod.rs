//! LDAP / Active Directory sign-in (`[ldap]`, the ideas of Synapse's LDAP auth provider).
//!
//! Password logins and user-interactive password stages of local users ask the directory first:
//! the user is found by their localpart (search with a service account, or a direct bind with a
//! DN template), must match `filter` and belong to `group_dn` if set, and the password is checked
//! by binding as them. The account is created on the first login and linked to the directory
//! (`external_ids`, provider `ldap`). A user removed from the directory (or no longer matching
//! the filter or the group) cannot log in, and the departure check locks or deactivates them.

pub mod client;
pub mod departures;
pub mod provision;

use std::{path::PathBuf, sync::Arc};

use serde::Deserialize;

use crate::services::retention::lifetime::Lifetime;

/// The external-id provider name of directory accounts.
pub const PROVIDER: &str = "ldap";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    pub enabled: bool,
    /// `ldap://host:389` (plain, or StartTLS with `start_tls`) or `ldaps://host:636`.
    pub uri: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything is sent.
    pub start_tls: bool,
    /// PEM files of the certificate authorities that sign the directory's certificate (besides
    /// the public web roots).
    pub ca_files: Vec<PathBuf>,
    /// Where users are searched (subtree).
    pub base: String,
    /// The service account that searches (unset: anonymous search).
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    /// Direct bind instead of search-then-bind: the user's DN, `{localpart}` replaced (escaped),
    /// e.g. `uid={localpart},ou=people,dc=example,dc=org`.
    pub bind_dn_template: Option<String>,
    pub attributes: LdapAttributes,
    /// An LDAP filter the user's entry must also match, e.g. `(objectClass=inetOrgPerson)` or,
    /// for Active Directory, `(!(userAccountControl:1.2.840.113556.1.4.803:=2))` (not disabled)
    /// and `(memberOf=cn=matrix,ou=groups,dc=example,dc=org)`.
    pub filter: Option<String>,
    /// A group the user must be a member of (its entry lists the user's DN in
    /// `group_member_attribute`): for directories without `memberOf`.
    pub group_dn: Option<String>,
    pub group_member_attribute: String,
    /// Connection and per-operation timeout.
    pub timeout: Lifetime,
    /// How often directory accounts are checked against the directory (unset: never; logins
    /// are always checked). Needs a search (`bind_dn`, or anonymous search).
    pub departure_check_interval: Option<Lifetime>,
    /// What happens to an account whose user left the directory: `lock` (sessions stop at once,
    /// an admin can unlock) or `deactivate`.
    pub on_departure: OnDeparture,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapAttributes {
    /// The attribute that holds the login name (the Matrix localpart): `uid`, or
    /// `sAMAccountName` for Active Directory.
    pub uid: String,
    pub mail: String,
    /// The display name of a new account.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDeparture {
    Lock,
    Deactivate,
}

impl Default for LdapConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            uri: "ldap://127.0.0.1:389".to_owned(),
            start_tls: false,
            ca_files: Vec::new(),
            base: String::new(),
            bind_dn: None,
            bind_password: None,
            bind_dn_template: None,
            attributes: LdapAttributes::default(),
            filter: None,
            group_dn: None,
            group_member_attribute: "member".to_owned(),
            timeout: Lifetime(5_000),
            departure_check_interval: Some(Lifetime(3_600_000)),
            on_departure: OnDeparture::Lock,
        }
    }
}

impl Default for LdapAttributes {
    fn default() -> Self {
        Self {
            uid: "uid".to_owned(),
            mail: "mail".to_owned(),
            name: "cn".to_owned(),
        }
    }
}

/// Directory operations (a login's binds and searches) in flight at once; more wait at most
/// `timeout`, then get 429: a flood of logins cannot open unbounded connections to the directory.
pub const MAX_CONCURRENT: usize = 16;

/// The directory of `[ldap]`, ready to connect (its TLS configuration built once).
pub struct Directory {
    pub config: LdapConfig,
    tls: Arc<rustls::ClientConfig>,
    in_flight: tokio::sync::Semaphore,
}

impl Directory {
    /// None when `[ldap]` is off; an error names the setting that is wrong.
    pub fn from_config(config: &LdapConfig) -> Result<Option<Self>, String> {
        if !config.enabled {
            return Ok(None);
        }
        if !(config.uri.starts_with("ldap://") || config.uri.starts_with("ldaps://")) {
            return Err(format!(
                "ldap.uri: `{}` is not an ldap:// or ldaps:// address",
                config.uri
            ));
        }
        if config.start_tls && config.uri.starts_with("ldaps://") {
            return Err("ldap.start_tls: an ldaps:// address is already TLS".to_owned());
        }
        if config.bind_dn_template.is_none() && config.base.is_empty() {
            return Err("ldap.base: needed to search users (or set bind_dn_template)".to_owned());
        }
        if let Some(template) = &config.bind_dn_template
            && !template.contains("{localpart}")
        {
            return Err("ldap.bind_dn_template: must contain {localpart}".to_owned());
        }
        if config.bind_dn.is_some() != config.bind_password.is_some() {
            return Err("ldap.bind_dn and ldap.bind_password go together".to_owned());
        }
        let tls = crate::federation::tls::verifying_client_config(&config.ca_files)
            .map_err(|e| format!("ldap.ca_files: {e}"))?;
        Ok(Some(Self {
            config: config.clone(),
            tls: Arc::new(tls),
            in_flight: tokio::sync::Semaphore::new(MAX_CONCURRENT),
        }))
    }
}

/// A user's entry, as Parvis uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    /// The login name (the `uid` attribute).
    pub uid: String,
    pub name: Option<String>,
    pub mail: Option<String>,
}

/// What the directory says of a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The password is right: the entry.
    Valid(Entry),
    /// The user is there (and allowed), the password is wrong.
    WrongPassword,
    /// No such user, or not matching the filter or the group.
    NotFound,
}
