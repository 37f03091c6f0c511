//! Links between local accounts and their identity in an outside system (the LDAP directory, an
//! OpenID provider): Synapse's `user_external_ids`. Written in one batch both ways.

use ruma::{OwnedUserId, UserId};

use crate::{
    error::Result,
    storage::{
        Batch, Db, Map,
        keys::{Key, KeyReader},
    },
};

/// auth provider str ‖ external id str → user id.
pub const EXTERNAL_IDS: Map = Map("user_external_ids");
/// user str ‖ auth provider str → external id.
pub const EXTERNAL_IDS_OF_USER: Map = Map("external_ids_of_user");
pub const MAPS: &[Map] = &[EXTERNAL_IDS, EXTERNAL_IDS_OF_USER];

/// One link of an account: `{auth_provider, external_id}` (as Synapse's admin API shows it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExternalId {
    pub auth_provider: String,
    pub external_id: String,
}

pub struct ExternalIds {
    db: Db,
}

impl ExternalIds {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The account linked to `external_id` of `provider`.
    pub fn user(&self, provider: &str, external_id: &str) -> Result<Option<OwnedUserId>> {
        let key = Key::new().str(provider).str(external_id).build();
        Ok(self
            .db
            .get(EXTERNAL_IDS, &key)?
            .and_then(|v| OwnedUserId::try_from(String::from_utf8(v).ok()?).ok()))
    }

    /// Links `user` to `external_id` of `provider` (replacing the user's previous link there).
    pub fn link(&self, provider: &str, external_id: &str, user: &UserId) -> Result<()> {
        let mut batch = Batch::new();
        if let Some(old) = self.of_user_at(user, provider)? {
            batch.delete(EXTERNAL_IDS, Key::new().str(provider).str(&old).build());
        }
        batch.put(
            EXTERNAL_IDS,
            Key::new().str(provider).str(external_id).build(),
            user.as_bytes().to_vec(),
        );
        batch.put(
            EXTERNAL_IDS_OF_USER,
            Key::new().str(user.as_str()).str(provider).build(),
            external_id.as_bytes().to_vec(),
        );
        self.db.write(batch)?;
        Ok(())
    }

    fn of_user_at(&self, user: &UserId, provider: &str) -> Result<Option<String>> {
        let key = Key::new().str(user.as_str()).str(provider).build();
        Ok(self
            .db
            .get(EXTERNAL_IDS_OF_USER, &key)?
            .and_then(|v| String::from_utf8(v).ok()))
    }

    /// Every link of `user`.
    pub fn of_user(&self, user: &UserId) -> Result<Vec<ExternalId>> {
        let prefix = Key::new().str(user.as_str()).build();
        let mut found = Vec::new();
        for entry in self.db.scan_prefix(EXTERNAL_IDS_OF_USER, &prefix) {
            let (key, value) = entry?;
            let mut reader = KeyReader::new(&key[prefix.len()..]);
            if let (Some(provider), Ok(external_id)) =
                (reader.str(), String::from_utf8(value.into_vec()))
            {
                found.push(ExternalId {
                    auth_provider: provider.to_owned(),
                    external_id,
                });
            }
        }
        Ok(found)
    }

    /// Every (external id, user) of `provider`.
    pub fn of_provider(&self, provider: &str) -> Result<Vec<(String, OwnedUserId)>> {
        let prefix = Key::new().str(provider).build();
        let mut found = Vec::new();
        for entry in self.db.scan_prefix(EXTERNAL_IDS, &prefix) {
            let (key, value) = entry?;
            let mut reader = KeyReader::new(&key[prefix.len()..]);
            let user = String::from_utf8(value.into_vec())
                .ok()
                .and_then(|u| OwnedUserId::try_from(u).ok());
            if let (Some(id), Some(user)) = (reader.str(), user) {
                found.push((id.to_owned(), user));
            }
        }
        Ok(found)
    }
}
