//! `[password_config]` (Synapse's section): whether passwords log in at all, whether the local
//! database's hashes are checked (off: only LDAP), and the policy new passwords must meet
//! (400 `M_WEAK_PASSWORD` otherwise).

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Off: no password logins or password registrations (single sign-on only); `/login`
    /// does not list `m.login.password` and `m.change_password` is off.
    pub enabled: bool,
    /// Off: the hashes in Parvis's own database are never checked (passwords are checked by
    /// the directory, `[ldap]`, only).
    pub localdb_enabled: bool,
    pub policy: PasswordPolicy,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            localdb_enabled: true,
            policy: PasswordPolicy::default(),
        }
    }
}

/// What a new password (registration, password change, reset) must contain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    /// Off: any non-empty password.
    pub enabled: bool,
    pub minimum_length: usize,
    pub require_digit: bool,
    pub require_symbol: bool,
    pub require_lowercase: bool,
    pub require_uppercase: bool,
}

impl PasswordPolicy {
    /// 400 `M_WEAK_PASSWORD` naming what is missing.
    pub fn check(&self, password: &str) -> Result<()> {
        if password.is_empty() {
            return Err(Error::weak_password("The password is empty"));
        }
        if !self.enabled {
            return Ok(());
        }
        let mut missing = Vec::new();
        if password.chars().count() < self.minimum_length {
            missing.push(format!("at least {} characters", self.minimum_length));
        }
        let rules: [(bool, &str, fn(char) -> bool); 4] = [
            (self.require_digit, "a digit", |c| c.is_ascii_digit()),
            (self.require_symbol, "a symbol", |c| {
                !c.is_alphanumeric() && !c.is_whitespace()
            }),
            (
                self.require_lowercase,
                "a lowercase letter",
                char::is_lowercase,
            ),
            (
                self.require_uppercase,
                "an uppercase letter",
                char::is_uppercase,
            ),
        ];
        for (required, what, test) in rules {
            if required && !password.chars().any(test) {
                missing.push(what.to_owned());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::weak_password(format!(
            "The password needs {}",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> PasswordPolicy {
        PasswordPolicy {
            enabled: true,
            minimum_length: 10,
            require_digit: true,
            require_symbol: true,
            require_lowercase: true,
            require_uppercase: true,
        }
    }

    #[test]
    fn each_rule_is_enforced_and_named() {
        let policy = strict();
        assert!(policy.check("Correct-horse-9").is_ok());
        for (weak, named) in [
            ("Co-9", "10 characters"),
            ("Correct-horse-x", "a digit"),
            ("Correcthorse99", "a symbol"),
            ("CORRECT-HORSE-9", "a lowercase"),
            ("correct-horse-9", "an uppercase"),
        ] {
            let e = policy.check(weak).unwrap_err();
            assert_eq!(e.errcode, "M_WEAK_PASSWORD");
            assert!(e.message.contains(named), "{weak}: {}", e.message);
        }
    }

    #[test]
    fn off_accepts_anything_but_empty() {
        let policy = PasswordPolicy::default();
        assert!(policy.check("a").is_ok());
        assert!(policy.check("").is_err());
    }
}
