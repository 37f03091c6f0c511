//! Talking to the directory: connect (ldaps, or StartTLS, with the configured authorities), bind,
//! find a user, check their group, and bind as them to check a password. Every value put into a
//! filter or a DN is escaped; an empty password is refused before any bind (an empty simple bind
//! is an anonymous bind, which servers accept).

use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, dn_escape, ldap_escape};

use super::{Directory, Entry, Outcome};
use crate::error::{Error, Result};

/// LDAP result code of a failed bind (wrong password, or no such DN).
const INVALID_CREDENTIALS: u32 = 49;
/// LDAP result code of a search whose base does not exist.
const NO_SUCH_OBJECT: u32 = 32;

fn unavailable(e: impl std::fmt::Display) -> Error {
    tracing::warn!("ldap: {e}");
    Error::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "M_UNKNOWN",
        "The directory cannot be reached",
    )
}

impl Directory {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout.0.max(1))
    }

    /// A place among the [`super::MAX_CONCURRENT`] operations in flight (429 after `timeout`).
    async fn admitted(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        match tokio::time::timeout(self.timeout(), self.in_flight.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::limit_exceeded(self.config.timeout.0)),
        }
    }

    async fn connect(&self) -> Result<Ldap> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_starttls(self.config.start_tls)
            .set_config(self.tls.clone());
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.config.uri)
            .await
            .map_err(unavailable)?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// Binds; Ok(false) for wrong credentials.
    async fn bind(&self, ldap: &mut Ldap, dn: &str, password: &str) -> Result<bool> {
        let result = ldap
            .with_timeout(self.timeout())
            .simple_bind(dn, password)
            .await
            .map_err(unavailable)?;
        match result.rc {
            0 => Ok(true),
            INVALID_CREDENTIALS => Ok(false),
            _ => Err(unavailable(format!("bind as {dn}: {result}"))),
        }
    }

    /// Binds with the service account (or stays anonymous without one).
    async fn bind_service(&self, ldap: &mut Ldap) -> Result<()> {
        if let (Some(dn), Some(password)) = (&self.config.bind_dn, &self.config.bind_password)
            && !self.bind(ldap, dn, password).await?
        {
            return Err(unavailable(format!("the service account {dn} cannot bind")));
        }
        Ok(())
    }

    /// The entries under `base` (scope) matching `filter`; none when the base does not exist.
    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
    ) -> Result<Vec<SearchEntry>> {
        let a = &self.config.attributes;
        let attrs = [a.uid.as_str(), a.name.as_str(), a.mail.as_str()];
        let result = ldap
            .with_timeout(self.timeout())
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(unavailable)?;
        match result.1.rc {
            0 => Ok(result.0.into_iter().map(SearchEntry::construct).collect()),
            NO_SUCH_OBJECT => Ok(Vec::new()),
            _ => Err(unavailable(format!(
                "search {filter} in {base}: {}",
                result.1
            ))),
        }
    }

    /// `(&(uid=<localpart>)<filter>)`, the localpart escaped.
    fn user_filter(&self, localpart: &str) -> String {
        format!(
            "(&({}={}){})",
            self.config.attributes.uid,
            ldap_escape(localpart),
            self.config.filter.as_deref().unwrap_or_default()
        )
    }

    fn entry(&self, found: SearchEntry, localpart: &str) -> Entry {
        let first = |name: &str| {
            found
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first().cloned())
        };
        let a = &self.config.attributes;
        Entry {
            uid: first(&a.uid).unwrap_or_else(|| localpart.to_owned()),
            name: first(&a.name),
            mail: first(&a.mail),
            dn: found.dn,
        }
    }

    /// The user's entry if it exists, matches the filter and is in the group (read with the
    /// connection's current bind).
    async fn find(&self, ldap: &mut Ldap, localpart: &str) -> Result<Option<Entry>> {
        let mut found = match &self.config.bind_dn_template {
            Some(template) => {
                let dn = template.replace("{localpart}", &dn_escape(localpart));
                let filter = format!(
                    "(&(objectClass=*){})",
                    self.config.filter.as_deref().unwrap_or_default()
                );
                self.search(ldap, &dn, Scope::Base, &filter).await?
            }
            None => {
                let filter = self.user_filter(localpart);
                self.search(ldap, &self.config.base, Scope::Subtree, &filter)
                    .await?
            }
        };
        if found.len() != 1 {
            if found.len() > 1 {
                tracing::warn!("ldap: {} entries for {localpart}: refused", found.len());
            }
            return Ok(None);
        }
        let entry = self.entry(found.remove(0), localpart);
        if let Some(group) = &self.config.group_dn {
            let filter = format!(
                "({}={})",
                self.config.group_member_attribute,
                ldap_escape(&entry.dn)
            );
            if self
                .search(ldap, group, Scope::Base, &filter)
                .await?
                .is_empty()
            {
                return Ok(None);
            }
        }
        Ok(Some(entry))
    }

    /// Checks `password` of `localpart` against the directory.
    pub async fn authenticate(&self, localpart: &str, password: &str) -> Result<Outcome> {
        if password.is_empty() {
            return Ok(Outcome::WrongPassword);
        }
        let _admitted = self.admitted().await?;
        let mut ldap = self.connect().await?;
        let outcome = match &self.config.bind_dn_template {
            // Direct bind: the user's own bind reads their entry (and the group) afterwards.
            Some(template) => {
                let dn = template.replace("{localpart}", &dn_escape(localpart));
                if !self.bind(&mut ldap, &dn, password).await? {
                    Outcome::WrongPassword
                } else {
                    match self.find(&mut ldap, localpart).await? {
                        Some(entry) => Outcome::Valid(entry),
                        None => Outcome::NotFound,
                    }
                }
            }
            None => {
                self.bind_service(&mut ldap).await?;
                match self.find(&mut ldap, localpart).await? {
                    None => Outcome::NotFound,
                    Some(entry) => {
                        if self.bind(&mut ldap, &entry.dn, password).await? {
                            Outcome::Valid(entry)
                        } else {
                            Outcome::WrongPassword
                        }
                    }
                }
            }
        };
        let _ = ldap.unbind().await;
        Ok(outcome)
    }

    /// Whether `localpart` is (still) in the directory, as a login would find them: for the
    /// departure check. Needs a search (service account or anonymous).
    pub async fn still_there(&self, localpart: &str) -> Result<bool> {
        let _admitted = self.admitted().await?;
        let mut ldap = self.connect().await?;
        self.bind_service(&mut ldap).await?;
        let found = self.find(&mut ldap, localpart).await?.is_some();
        let _ = ldap.unbind().await;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Directory, LdapConfig, MAX_CONCURRENT};
    use crate::services::retention::lifetime::Lifetime;

    fn directory() -> Directory {
        let config = LdapConfig {
            enabled: true,
            // Nothing listens there: only the admission is exercised.
            uri: "ldap://127.0.0.1:9".to_owned(),
            base: "dc=example,dc=org".to_owned(),
            timeout: Lifetime(50),
            ..LdapConfig::default()
        };
        Directory::from_config(&config).unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_full_directory_queue_answers_429_without_connecting() {
        let directory = directory();
        let _all = directory
            .in_flight
            .acquire_many(MAX_CONCURRENT as u32)
            .await
            .unwrap();
        let refused = directory.authenticate("alice", "pw").await.unwrap_err();
        assert_eq!(refused.errcode, "M_LIMIT_EXCEEDED");
        assert_eq!(refused.status, http::StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn an_empty_password_never_reaches_the_directory() {
        let directory = directory();
        // Nothing listens at the address: a bind attempt would fail with 503.
        assert_eq!(
            directory.authenticate("alice", "").await.unwrap(),
            super::Outcome::WrongPassword
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused_at_start() {
        for (change, named) in [
            (
                (|c: &mut LdapConfig| c.uri = "http://dc".into()) as fn(&mut LdapConfig),
                "ldap.uri",
            ),
            (|c| c.bind_dn = Some("cn=x".into()), "bind_password"),
            (|c| c.bind_dn_template = Some("uid=x".into()), "{localpart}"),
            (
                |c| {
                    c.uri = "ldaps://dc".into();
                    c.start_tls = true;
                },
                "start_tls",
            ),
        ] {
            let mut config = LdapConfig {
                enabled: true,
                base: "dc=example,dc=org".to_owned(),
                ..LdapConfig::default()
            };
            change(&mut config);
            let error = Directory::from_config(&config).err().unwrap();
            assert!(error.contains(named), "{error}");
        }
    }
}
