//! State the browser carries between the steps of a sign-in (which provider, the CSRF state, the
//! nonce, the PKCE verifier, where the client wants to go back): JSON with an expiry, signed with
//! HMAC-SHA256 under a key kept in the database, in an HttpOnly cookie. Nothing is stored per
//! pending sign-in, so unauthenticated requests cannot fill a table, and any process with the
//! database can check it.

use ring::hmac;
use serde::{Serialize, de::DeserializeOwned};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};

use crate::{
    error::Result,
    services::globals::GLOBAL,
    storage::{Batch, Db},
};

const KEY_NAME: &[u8] = b"sso_cookie_key";

pub struct Signer {
    key: hmac::Key,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope<T> {
    /// What the value is for: a value signed for one step is refused by another.
    purpose: String,
    expires_ts: u64,
    value: T,
}

impl Signer {
    /// The key stored in the database (made, once, on first use).
    pub fn load_or_create(db: &Db) -> Result<Self> {
        let secret = match db.get(GLOBAL, KEY_NAME)? {
            Some(secret) if secret.len() == 32 => secret.to_vec(),
            _ => {
                let secret: [u8; 32] = rand::random();
                let mut batch = Batch::new();
                batch.put(GLOBAL, KEY_NAME.to_vec(), secret.to_vec());
                db.write(batch)?;
                secret.to_vec()
            }
        };
        Ok(Self::with_secret(&secret))
    }

    pub fn with_secret(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// `value` for `purpose`, valid until `expires_ts` (ms), as a cookie-safe string.
    pub fn sign<T: Serialize>(&self, purpose: &str, value: &T, expires_ts: u64) -> String {
        let envelope = Envelope {
            purpose: purpose.to_owned(),
            expires_ts,
            value,
        };
        let payload = B64.encode(serde_json::to_vec(&envelope).unwrap_or_default());
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", B64.encode(tag.as_ref()))
    }

    /// The value of a string [`Signer::sign`] made for `purpose`, if its signature holds and it has
    /// not expired at `now`.
    pub fn open<T: DeserializeOwned>(&self, purpose: &str, signed: &str, now: u64) -> Option<T> {
        let (payload, tag) = signed.split_once('.')?;
        let tag = B64.decode(tag).ok()?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).ok()?;
        let envelope: Envelope<T> = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        (envelope.purpose == purpose && envelope.expires_ts > now).then_some(envelope.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unexpired_value_signed_for_the_same_purpose_opens() {
        let signer = Signer::with_secret(b"0123456789abcdef0123456789abcdef");
        let signed = signer.sign("login", &"alice".to_owned(), 1_000);
        assert_eq!(
            signer.open::<String>("login", &signed, 999).as_deref(),
            Some("alice")
        );
        assert!(signer.open::<String>("login", &signed, 1_000).is_none());
        assert!(signer.open::<String>("register", &signed, 0).is_none());
        let other = Signer::with_secret(b"another key, 32 bytes long......");
        assert!(other.open::<String>("login", &signed, 0).is_none());
        let (payload, tag) = signed.split_once('.').unwrap();
        let forged = B64.encode(
            serde_json::to_vec(&serde_json::json!({
                "purpose": "login", "expires_ts": 1_000, "value": "mallory"
            }))
            .unwrap(),
        );
        assert!(
            signer
                .open::<String>("login", &format!("{forged}.{tag}"), 0)
                .is_none()
        );
        assert!(signer.open::<String>("login", payload, 0).is_none());
    }
}
