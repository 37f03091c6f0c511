//! Validation sessions: `requestToken` stores one (the address, the client's secret, a random
//! token, what it is for) and mails a link with the token; the link marks it validated; the
//! request that uses it (adding the address, registering, resetting a password) spends it.
//!
//! - `threepid_validations`: sid → JSON [`Session`];
//! - `threepid_validation_keys`: client secret ‖ medium ‖ address → sid (a retry with the same
//!   `send_attempt` gets the same session and no second mail, as the spec asks).
//!
//! Expired sessions are swept hourly.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    error::{Error, Result},
    storage::{
        Batch, Db, Map,
        db::{decode_json, encode_json},
        keys::Key,
    },
    util::random_string,
};

pub const VALIDATIONS: Map = Map("threepid_validations");
pub const VALIDATION_KEYS: Map = Map("threepid_validation_keys");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Registration,
    Add,
    PasswordReset,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub medium: String,
    pub address: String,
    pub client_secret: String,
    pub token: String,
    pub send_attempt: u64,
    pub purpose: Purpose,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated_at: Option<u64>,
    /// Ms since the epoch: the link works until then; once validated, the session can be used
    /// until then (moved to validation time + the lifetime).
    pub expires_ts: u64,
}

/// What `request` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Requested {
    /// A new token: mail it.
    Send { sid: String, token: String },
    /// The same `send_attempt` again: same session, no mail.
    Again { sid: String },
}

pub struct Validations {
    db: Db,
    /// Held across the read-modify-write of a session.
    writing: Mutex<()>,
}

/// The spec's `client_secret`: `[0-9a-zA-Z.=_-]`, 1 to 255 characters.
pub fn check_client_secret(secret: &str) -> Result<()> {
    let valid = !secret.is_empty()
        && secret.len() <= 255
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".=_-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_param(
            "client_secret must be 1 to 255 of [0-9a-zA-Z.=_-]",
        ))
    }
}

fn same_secret(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

impl Validations {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            writing: Mutex::new(()),
        }
    }

    fn get(&self, sid: &str) -> Result<Option<Session>> {
        Ok(self.db.get_json::<Session>(VALIDATIONS, sid.as_bytes())?)
    }

    /// Starts the session of (`client_secret`, `address`), or continues it: a higher
    /// `send_attempt` (or another purpose) gets a new token, the same one gets nothing new.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        client_secret: &str,
        medium: &str,
        address: &str,
        send_attempt: u64,
        purpose: Purpose,
        next_link: Option<String>,
        lifetime_ms: u64,
        now: u64,
    ) -> Result<Requested> {
        let key = Key::new()
            .str(client_secret)
            .str(medium)
            .str(address)
            .build();
        // Checked and written with no other request of the same (secret, address) in between,
        // in this process or another of its group.
        self.db
            .read_then_write(&self.writing, VALIDATION_KEYS, &key.clone(), |stored| {
                let existing = match stored {
                    Some(sid) => {
                        let sid = String::from_utf8(sid).unwrap_or_default();
                        self.get(&sid)?
                            .filter(|s| s.expires_ts > now)
                            .map(|s| (sid, s))
                    }
                    None => None,
                };
                if let Some((sid, session)) = &existing
                    && session.send_attempt >= send_attempt
                    && session.purpose == purpose
                {
                    return Ok((Requested::Again { sid: sid.clone() }, Batch::new()));
                }
                let sid = existing
                    .map(|(sid, _)| sid)
                    .unwrap_or_else(|| random_string(24));
                let token = random_string(32);
                let session = Session {
                    medium: medium.to_owned(),
                    address: address.to_owned(),
                    client_secret: client_secret.to_owned(),
                    token: token.clone(),
                    send_attempt,
                    purpose,
                    next_link,
                    validated_at: None,
                    expires_ts: now.saturating_add(lifetime_ms),
                };
                let mut batch = Batch::new();
                batch.put(VALIDATIONS, sid.as_bytes().to_vec(), encode_json(&session));
                batch.put(VALIDATION_KEYS, key, sid.as_bytes().to_vec());
                Ok((Requested::Send { sid, token }, batch))
            })
    }

    /// The link in the mail: marks the session validated when the secret and token match and it
    /// has not expired; answers it (None: no such session, wrong secret or token, expired).
    pub fn validate(
        &self,
        sid: &str,
        client_secret: &str,
        token: &str,
        lifetime_ms: u64,
        now: u64,
    ) -> Result<Option<Session>> {
        self.db
            .read_then_write(&self.writing, VALIDATIONS, sid.as_bytes(), |stored| {
                let mut batch = Batch::new();
                let Some(stored) = stored else {
                    return Ok((None, batch));
                };
                let mut session: Session = decode_json(VALIDATIONS, &stored)?;
                if session.expires_ts <= now
                    || !same_secret(&session.client_secret, client_secret)
                    || !same_secret(&session.token, token)
                {
                    return Ok((None, batch));
                }
                if session.validated_at.is_none() {
                    session.validated_at = Some(now);
                    session.expires_ts = now.saturating_add(lifetime_ms);
                    batch.put(VALIDATIONS, sid.as_bytes(), encode_json(&session));
                }
                Ok((Some(session), batch))
            })
    }

    /// A validated, unexpired session for `purpose` whose secret is `client_secret`.
    pub fn validated(
        &self,
        sid: &str,
        client_secret: &str,
        purpose: Purpose,
        now: u64,
    ) -> Result<Option<Session>> {
        Ok(self.get(sid)?.filter(|s| {
            s.validated_at.is_some()
                && s.expires_ts > now
                && s.purpose == purpose
                && same_secret(&s.client_secret, client_secret)
        }))
    }

    /// Adds the deletion of a used session to `batch` (written with what it was used for).
    pub fn spend(&self, sid: &str, session: &Session, batch: &mut Batch) {
        batch.delete(VALIDATIONS, sid.as_bytes().to_vec());
        batch.delete(
            VALIDATION_KEYS,
            Key::new()
                .str(&session.client_secret)
                .str(&session.medium)
                .str(&session.address)
                .build(),
        );
    }

    /// Deletes the sessions that expired before `now`; answers how many.
    pub fn sweep(&self, now: u64) -> Result<u64> {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = Batch::new();
        let mut removed = 0;
        for entry in self.db.scan_prefix(VALIDATIONS, &[]) {
            let (sid, value) = entry?;
            match decode_json::<Session>(VALIDATIONS, &value) {
                Ok(session) if session.expires_ts > now => {}
                Ok(session) => {
                    self.spend(&String::from_utf8_lossy(&sid), &session, &mut batch);
                    removed += 1;
                }
                Err(_) => {
                    batch.delete(VALIDATIONS, sid.to_vec());
                    removed += 1;
                }
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

    fn validations() -> (tempfile::TempDir, Validations) {
        let (dir, db) = crate::storage::test_db(&[VALIDATIONS, VALIDATION_KEYS]);
        (dir, Validations::new(db))
    }

    #[test]
    fn a_session_is_validated_by_its_token_and_used_for_its_purpose_only() {
        let (_dir, v) = validations();
        let Requested::Send { sid, token } = v
            .request(
                "secret",
                "email",
                "a@example.org",
                1,
                Purpose::Add,
                None,
                1_000,
                0,
            )
            .unwrap()
        else {
            panic!("a first request sends")
        };
        // The same attempt again: the same session, no new mail.
        assert_eq!(
            v.request(
                "secret",
                "email",
                "a@example.org",
                1,
                Purpose::Add,
                None,
                1_000,
                10
            )
            .unwrap(),
            Requested::Again { sid: sid.clone() }
        );
        assert!(
            v.validated(&sid, "secret", Purpose::Add, 20)
                .unwrap()
                .is_none(),
            "not yet validated"
        );
        assert!(
            v.validate(&sid, "secret", "wrong", 1_000, 20)
                .unwrap()
                .is_none()
        );
        assert!(
            v.validate(&sid, "other", &token, 1_000, 20)
                .unwrap()
                .is_none()
        );
        assert!(
            v.validate(&sid, "secret", &token, 1_000, 20)
                .unwrap()
                .is_some()
        );
        assert!(
            v.validated(&sid, "secret", Purpose::Add, 30)
                .unwrap()
                .is_some()
        );
        assert!(
            v.validated(&sid, "secret", Purpose::PasswordReset, 30)
                .unwrap()
                .is_none()
        );
        assert!(
            v.validated(&sid, "other", Purpose::Add, 30)
                .unwrap()
                .is_none()
        );
        assert!(
            v.validated(&sid, "secret", Purpose::Add, 1_020)
                .unwrap()
                .is_none(),
            "expired"
        );
        // A new attempt: a new token, the old one no longer works.
        let Requested::Send {
            sid: again,
            token: new,
        } = v
            .request(
                "secret",
                "email",
                "a@example.org",
                2,
                Purpose::Add,
                None,
                1_000,
                40,
            )
            .unwrap()
        else {
            panic!("a new attempt sends")
        };
        assert_eq!(again, sid);
        assert_ne!(new, token);
    }

    #[test]
    fn expired_sessions_are_swept_and_secrets_are_checked() {
        let (_dir, v) = validations();
        v.request(
            "s1",
            "email",
            "a@example.org",
            1,
            Purpose::Add,
            None,
            100,
            0,
        )
        .unwrap();
        v.request(
            "s2",
            "email",
            "b@example.org",
            1,
            Purpose::Add,
            None,
            10_000,
            0,
        )
        .unwrap();
        assert_eq!(v.sweep(5_000).unwrap(), 1);
        assert!(check_client_secret("abc.DEF=_-9").is_ok());
        assert!(check_client_secret("").is_err());
        assert!(check_client_secret("a b").is_err());
        assert!(check_client_secret(&"a".repeat(256)).is_err());
    }
}
