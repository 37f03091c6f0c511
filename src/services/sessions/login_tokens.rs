//! Login tokens (`m.login.token`): short-lived, single-use tokens that log a user in on a new
//! device. `POST /login/get_token` makes them for a signed-in user; single sign-on makes one at
//! the end of the identity provider's flow.

use std::sync::Mutex;

use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    error::Result,
    storage::{
        Batch, Db, Map,
        db::{decode_json, encode_json},
    },
    util::random_string,
};

/// login token → [`LoginToken`].
pub const LOGIN_TOKENS: Map = Map("login_tokens");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginToken {
    pub user_id: OwnedUserId,
    /// Ms since the epoch after which the token no longer works.
    pub expires_ts: u64,
    /// The identity provider that signed the user in (single sign-on), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_provider: Option<String>,
    /// The provider's session (subject and `sid`), recorded with the device the token signs in,
    /// so that the provider's back-channel logout ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_session: Option<crate::services::sso::sessions::ProviderSession>,
}

pub struct LoginTokens {
    db: Db,
    /// Held across the read and the delete of a use: a token logs in once (in a group of
    /// processes, the database's commit lock is held too: `Db::read_then_write`).
    spending: Mutex<()>,
}

impl LoginTokens {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            spending: Mutex::new(()),
        }
    }

    /// A new token for `user`, valid `lifetime_ms` from `now`.
    pub fn create(
        &self,
        user: &UserId,
        auth_provider: Option<(String, crate::services::sso::sessions::ProviderSession)>,
        lifetime_ms: u64,
        now: u64,
    ) -> Result<String> {
        let token = random_string(32);
        let value = LoginToken {
            user_id: user.to_owned(),
            expires_ts: now.saturating_add(lifetime_ms),
            provider_session: auth_provider.as_ref().map(|(_, session)| session.clone()),
            auth_provider: auth_provider.map(|(idp, _)| idp),
        };
        self.db
            .put(LOGIN_TOKENS, token.as_bytes(), encode_json(&value))?;
        Ok(token)
    }

    /// Spends a token: whom it names, if it exists and has not expired at `now`. It is deleted
    /// either way, so it never works twice.
    pub fn spend(&self, token: &str, now: u64) -> Result<Option<LoginToken>> {
        let key = token.as_bytes();
        let found = self
            .db
            .read_then_write(&self.spending, LOGIN_TOKENS, key, |stored| {
                let mut batch = Batch::new();
                if stored.is_some() {
                    batch.delete(LOGIN_TOKENS, key);
                }
                Ok::<_, crate::error::Error>((stored, batch))
            })?;
        let Some(found) = found else {
            return Ok(None);
        };
        let found: LoginToken = decode_json(LOGIN_TOKENS, &found)?;
        Ok((found.expires_ts > now).then_some(found))
    }

    /// Deletes the tokens that expired before `now` (they never work, but would pile up);
    /// answers how many.
    pub fn sweep(&self, now: u64) -> Result<u64> {
        let mut batch = Batch::new();
        let mut removed = 0;
        for entry in self.db.scan_prefix(LOGIN_TOKENS, &[]) {
            let (key, value) = entry?;
            let expired = decode_json::<LoginToken>(LOGIN_TOKENS, &value)
                .map_or(true, |t| t.expires_ts <= now);
            if expired {
                batch.delete(LOGIN_TOKENS, key);
                removed += 1;
            }
        }
        if removed > 0 {
            self.db.write(batch)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> (tempfile::TempDir, LoginTokens) {
        let (dir, db) = crate::storage::test_db(&[LOGIN_TOKENS]);
        (dir, LoginTokens::new(db))
    }

    #[test]
    fn a_token_logs_in_once_and_not_after_it_expires() {
        let (_dir, tokens) = tokens();
        let alice: OwnedUserId = "@alice:example.org".try_into().unwrap();
        let once = tokens.create(&alice, None, 1_000, 10).unwrap();
        assert_eq!(tokens.spend(&once, 500).unwrap().unwrap().user_id, alice);
        assert!(tokens.spend(&once, 500).unwrap().is_none());
        let late = tokens.create(&alice, None, 1_000, 10).unwrap();
        assert!(tokens.spend(&late, 1_010).unwrap().is_none());
        assert!(tokens.spend("never-issued", 0).unwrap().is_none());
    }

    #[test]
    fn the_sweep_removes_expired_tokens_only() {
        let (_dir, tokens) = tokens();
        let alice: OwnedUserId = "@alice:example.org".try_into().unwrap();
        tokens.create(&alice, None, 100, 0).unwrap();
        let live = tokens.create(&alice, None, 10_000, 0).unwrap();
        assert_eq!(tokens.sweep(5_000).unwrap(), 1);
        assert!(tokens.spend(&live, 5_000).unwrap().is_some());
    }
}
