//! Third-party identifiers (e-mail addresses) of accounts, and the validation sessions that prove
//! a user receives mail at an address (spec: `requestToken`, then the link in the mail).
//!
//! - `user_threepids`: user ‖ medium ‖ address → JSON `{added_at, validated_at}`;
//! - `threepid_owners`: medium ‖ address → user (login by e-mail, password resets, "in use");
//!   both written in one batch.
//! - Validation sessions: `validation.rs`.

pub mod validation;

use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    storage::{
        Batch, Db, Map,
        keys::{Key, KeyReader},
    },
};

pub const USER_THREEPIDS: Map = Map("user_threepids");
pub const THREEPID_OWNERS: Map = Map("threepid_owners");
pub const MAPS: &[Map] = &[
    USER_THREEPIDS,
    THREEPID_OWNERS,
    validation::VALIDATIONS,
    validation::VALIDATION_KEYS,
];

pub const EMAIL: &str = "email";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threepid {
    pub medium: String,
    pub address: String,
    pub added_at: u64,
    pub validated_at: u64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    added_at: u64,
    validated_at: u64,
}

/// An e-mail address as stored and compared: trimmed and lower-cased (as Synapse), checked to
/// be one address (a mailbox lettre accepts, no display name, at most 254 bytes). None: not an
/// address.
pub fn canonical_email(address: &str) -> Option<String> {
    let address = address.trim().to_lowercase();
    let (local, domain) = address.rsplit_once('@')?;
    let plain = !local.is_empty()
        && !domain.is_empty()
        && address.len() <= 254
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c));
    (plain && address.parse::<lettre::Address>().is_ok()).then_some(address)
}

pub struct Threepids {
    db: Db,
    pub validations: validation::Validations,
}

impl Threepids {
    pub fn new(db: Db) -> Self {
        Self {
            validations: validation::Validations::new(db.clone()),
            db,
        }
    }

    /// The account that has `address`.
    pub fn owner(&self, medium: &str, address: &str) -> Result<Option<OwnedUserId>> {
        let key = Key::new().str(medium).str(address).build();
        Ok(self
            .db
            .get(THREEPID_OWNERS, &key)?
            .and_then(|v| OwnedUserId::try_from(String::from_utf8(v).ok()?).ok()))
    }

    /// Adds `address` to `user` (validated at `validated_at`); 400 `M_THREEPID_IN_USE` when
    /// another account has it. The caller holds the validation session, spent in the same batch.
    pub fn add(
        &self,
        user: &UserId,
        medium: &str,
        address: &str,
        validated_at: u64,
        now: u64,
        mut batch: Batch,
    ) -> Result<()> {
        match self.owner(medium, address)? {
            Some(owner) if owner != user => return Err(in_use()),
            _ => {}
        }
        batch.put(
            USER_THREEPIDS,
            Key::new()
                .str(user.as_str())
                .str(medium)
                .str(address)
                .build(),
            serde_json::to_vec(&Stored {
                added_at: now,
                validated_at,
            })
            .unwrap_or_default(),
        );
        batch.put(
            THREEPID_OWNERS,
            Key::new().str(medium).str(address).build(),
            user.as_bytes().to_vec(),
        );
        self.db.write(batch)?;
        Ok(())
    }

    /// Removes `address` from `user`; answers whether the account had it.
    pub fn remove(&self, user: &UserId, medium: &str, address: &str) -> Result<bool> {
        let key = Key::new()
            .str(user.as_str())
            .str(medium)
            .str(address)
            .build();
        if self.db.get(USER_THREEPIDS, &key)?.is_none() {
            return Ok(false);
        }
        let mut batch = Batch::new();
        batch.delete(USER_THREEPIDS, key);
        if self.owner(medium, address)?.as_deref() == Some(user) {
            batch.delete(THREEPID_OWNERS, Key::new().str(medium).str(address).build());
        }
        self.db.write(batch)?;
        Ok(true)
    }

    /// Every identifier of `user`.
    pub fn of_user(&self, user: &UserId) -> Result<Vec<Threepid>> {
        let prefix = Key::new().str(user.as_str()).build();
        let mut found = Vec::new();
        for entry in self.db.scan_prefix(USER_THREEPIDS, &prefix) {
            let (key, value) = entry?;
            let mut reader = KeyReader::new(&key[prefix.len()..]);
            let (Some(medium), Some(address)) = (reader.str(), reader.str()) else {
                continue;
            };
            let Ok(stored) = serde_json::from_slice::<Stored>(&value) else {
                continue;
            };
            found.push(Threepid {
                medium: medium.to_owned(),
                address: address.to_owned(),
                added_at: stored.added_at,
                validated_at: stored.validated_at,
            });
        }
        Ok(found)
    }

    /// Removes every identifier of `user` (deactivation frees the addresses).
    pub fn remove_all(&self, user: &UserId) -> Result<()> {
        for t in self.of_user(user)? {
            self.remove(user, &t.medium, &t.address)?;
        }
        Ok(())
    }
}

pub fn in_use() -> Error {
    Error::new(
        http::StatusCode::BAD_REQUEST,
        "M_THREEPID_IN_USE",
        "This address is already used by an account",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lower_cased_and_checked() {
        assert_eq!(
            canonical_email(" Alice@Example.ORG ").as_deref(),
            Some("alice@example.org")
        );
        for bad in [
            "",
            "alice",
            "@example.org",
            "alice@",
            "a b@example.org",
            "a@b@c",
            "x@y>\r\nBcc: z@w",
        ] {
            assert_eq!(canonical_email(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_address_belongs_to_one_account() {
        let (_dir, db) = crate::storage::test_db(MAPS);
        let threepids = Threepids::new(db);
        let alice: OwnedUserId = "@alice:example.org".try_into().unwrap();
        let bob: OwnedUserId = "@bob:example.org".try_into().unwrap();
        threepids
            .add(&alice, EMAIL, "a@example.org", 1, 2, Batch::new())
            .unwrap();
        assert_eq!(
            threepids.owner(EMAIL, "a@example.org").unwrap(),
            Some(alice.clone())
        );
        let err = threepids
            .add(&bob, EMAIL, "a@example.org", 1, 2, Batch::new())
            .unwrap_err();
        assert_eq!(err.errcode, "M_THREEPID_IN_USE");
        assert_eq!(threepids.of_user(&alice).unwrap().len(), 1);
        assert!(!threepids.remove(&bob, EMAIL, "a@example.org").unwrap());
        assert!(threepids.remove(&alice, EMAIL, "a@example.org").unwrap());
        assert_eq!(threepids.owner(EMAIL, "a@example.org").unwrap(), None);
        threepids
            .add(&bob, EMAIL, "a@example.org", 1, 2, Batch::new())
            .unwrap();
    }
}
