//! TURN server credentials for VoIP calls (`GET /voip/turnServer`): either a fixed username and
//! password, or time-limited ones from a secret shared with the TURN server (the "TURN REST API"
//! scheme coturn's `use-auth-secret` checks: the username is `expiry:user_id`, the password the
//! base64 HMAC-SHA1 of the username under the secret).

use base64::Engine;
use ring::hmac;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoipConfig {
    /// TURN URIs given to clients (`turn:turn.example.org:3478?transport=udp`, …). Empty: no TURN
    /// server; `/voip/turnServer` answers `{}` and clients fall back to STUN or direct routes.
    pub turn_uris: Vec<String>,
    /// The secret shared with the TURN server (coturn `static-auth-secret`): each user gets
    /// credentials valid for `turn_user_lifetime_secs`.
    pub turn_shared_secret: Option<String>,
    /// Fixed credentials, when no shared secret is set.
    pub turn_username: Option<String>,
    pub turn_password: Option<String>,
    /// How long credentials from the shared secret are valid, in seconds.
    pub turn_user_lifetime_secs: u64,
}

impl Default for VoipConfig {
    fn default() -> Self {
        Self {
            turn_uris: Vec::new(),
            turn_shared_secret: None,
            turn_username: None,
            turn_password: None,
            turn_user_lifetime_secs: 86_400,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    pub username: String,
    pub password: String,
    pub uris: Vec<String>,
    pub ttl_secs: u64,
}

/// The credentials of `user_id` at `now_secs` (Unix time), or `None` when no TURN server is
/// configured (no URIs, or neither a secret nor fixed credentials).
pub fn credentials(config: &VoipConfig, user_id: &str, now_secs: u64) -> Option<TurnCredentials> {
    if config.turn_uris.is_empty() {
        return None;
    }
    let ttl_secs = config.turn_user_lifetime_secs;
    let (username, password) = match (
        &config.turn_shared_secret,
        &config.turn_username,
        &config.turn_password,
    ) {
        (Some(secret), _, _) => {
            let username = format!("{}:{user_id}", now_secs + ttl_secs);
            let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
            let tag = hmac::sign(&key, username.as_bytes());
            (
                username,
                base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
            )
        }
        (None, Some(username), Some(password)) => (username.clone(), password.clone()),
        _ => return None,
    };
    Some(TurnCredentials {
        username,
        password,
        uris: config.turn_uris.clone(),
        ttl_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_secret_credentials_follow_the_turn_rest_scheme() {
        let config = VoipConfig {
            turn_uris: vec!["turn:turn.example.org:3478?transport=udp".into()],
            turn_shared_secret: Some("north".into()),
            turn_user_lifetime_secs: 3600,
            ..Default::default()
        };
        let c = credentials(&config, "@alice:example.org", 1_000_000).unwrap();
        assert_eq!(c.username, "1003600:@alice:example.org");
        // HMAC-SHA1("north", "1003600:@alice:example.org"), base64: 20 bytes → 28 characters.
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"north");
        assert!(
            hmac::verify(
                &key,
                c.username.as_bytes(),
                &base64::engine::general_purpose::STANDARD
                    .decode(&c.password)
                    .unwrap()
            )
            .is_ok()
        );
        assert_eq!(c.password.len(), 28);
        assert_eq!(c.ttl_secs, 3600);
    }

    #[test]
    fn fixed_credentials_or_none() {
        let mut config = VoipConfig {
            turn_uris: vec!["turn:t.example.org".into()],
            ..Default::default()
        };
        assert_eq!(credentials(&config, "@a:x", 0), None);
        config.turn_username = Some("u".into());
        config.turn_password = Some("p".into());
        let c = credentials(&config, "@a:x", 0).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        config.turn_uris.clear();
        assert_eq!(credentials(&config, "@a:x", 0), None);
    }
}
