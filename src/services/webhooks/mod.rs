//! Incoming webhooks: a secret URL per webhook, `POST`ed to by ticketing, CRM, CI and monitoring
//! tools in Slack's format (or plain JSON, form or text), each post becoming an `m.room.message`
//! from the webhook's own account of this server (spec/webhooks.md).
//!
//! - `manage`: creating, listing and revoking a room's webhooks (who may, and the webhook's user);
//! - `post`: one POST to a webhook URL, checked, rendered (`render`) and appended;
//! - `bot`: the integration user (`@integrations`), which answers `!webhook` commands in rooms;
//! - `render`: the payload formats, pure.

pub mod bot;
pub mod manage;
pub mod post;
pub mod render;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    error::{Error, Result},
    services::ratelimit::RateLimiter,
    storage::{Batch, Db, Map, db::encode_json},
};

/// Keys, by their first byte: `h` 0x00 hook id → [`Hook`] as JSON; `r` 0x00 room id 0x00 hook id
/// → () for the room's active hooks; `d` 0x00 user id → the room id of the integration user's
/// direct chat with that user.
pub const WEBHOOKS: Map = Map("webhooks");
/// Commands for the integration user, queued in the commit of the event that carries them:
/// stream position (u64 BE) → short event id (u64 BE).
pub const WEBHOOK_COMMANDS: Map = Map("webhook_commands");
pub const MAPS: &[Map] = &[WEBHOOKS, WEBHOOK_COMMANDS];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Whether webhooks are served (the REST API, the hook URLs and the integration user).
    pub enabled: bool,
    /// The localpart of the integration user that answers `!webhook` commands.
    pub integration_user: String,
    /// The largest body a webhook accepts, in bytes (larger: 413 `M_TOO_LARGE`).
    pub max_body_bytes: usize,
    /// Posts each webhook may make per minute, on average.
    pub posts_per_minute: f64,
    /// Posts a webhook may make at once before the per-minute rate applies.
    pub burst: f64,
    /// Active webhooks one room may have.
    pub max_per_room: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            integration_user: "integrations".to_owned(),
            max_body_bytes: 256 * 1024,
            posts_per_minute: 60.0,
            burst: 10.0,
            max_per_room: 50,
        }
    }
}

/// One webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    pub id: String,
    pub room_id: OwnedRoomId,
    pub name: String,
    /// The account its posts come from.
    pub user_id: OwnedUserId,
    /// SHA-256 of the secret of its URL, hex (the secret itself is shown once, at creation).
    pub secret_sha256: String,
    pub created_by: OwnedUserId,
    pub created_ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ts: Option<u64>,
}

impl Hook {
    /// Whether `secret` is this hook's, compared in constant time.
    pub fn secret_matches(&self, secret: &str) -> bool {
        let given = sha256_hex(secret);
        given.len() == self.secret_sha256.len()
            && given
                .bytes()
                .zip(self.secret_sha256.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// The path of its URL, with `secret`.
    pub fn path(&self, secret: &str) -> String {
        format!("/_parvis/hooks/{}/{secret}", self.id)
    }
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hook_key(id: &str) -> Vec<u8> {
    [b"h\0", id.as_bytes()].concat()
}

fn room_prefix(room_id: &RoomId) -> Vec<u8> {
    [b"r\0", room_id.as_bytes(), b"\0"].concat()
}

fn dm_key(user: &UserId) -> Vec<u8> {
    [b"d\0", user.as_bytes()].concat()
}

pub struct Webhooks {
    db: Db,
    config: WebhooksConfig,
    /// Posts per hook.
    limiter: RateLimiter,
    /// Wakes the integration user's command worker.
    pub commands_wake: tokio::sync::Notify,
    /// Commands queued for it (counted at start-up, then kept), bounded by
    /// `bot::MAX_QUEUED_COMMANDS`.
    pub commands_queued: std::sync::atomic::AtomicUsize,
    /// Held by this process's creations and revocations (names are unique per room; across
    /// processes, `Db::read_then_write` adds the database's commit lock).
    changes: std::sync::Mutex<()>,
}

impl Webhooks {
    pub fn new(db: Db, config: &WebhooksConfig) -> Self {
        let limits = crate::config::RateLimitConfig {
            enabled: true,
            per_second: config.posts_per_minute / 60.0,
            burst: config.burst.max(1.0),
            ..Default::default()
        };
        Self {
            db,
            config: config.clone(),
            limiter: RateLimiter::new(&limits),
            commands_wake: Default::default(),
            commands_queued: Default::default(),
            changes: Default::default(),
        }
    }

    pub fn config(&self) -> &WebhooksConfig {
        &self.config
    }

    pub fn hook(&self, id: &str) -> Result<Option<Hook>> {
        Ok(self
            .db
            .get(WEBHOOKS, &hook_key(id))?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// The room's active hooks, oldest first.
    pub fn of_room(&self, room_id: &RoomId) -> Result<Vec<Hook>> {
        let mut hooks = Vec::new();
        let prefix = room_prefix(room_id);
        for entry in self.db.scan_prefix(WEBHOOKS, &prefix) {
            let (key, _) = entry?;
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if let Some(hook) = self.hook(&id)? {
                hooks.push(hook);
            }
        }
        hooks.sort_by(|a, b| a.created_ts.cmp(&b.created_ts).then(a.id.cmp(&b.id)));
        Ok(hooks)
    }

    /// Checks `hook` against its room's active hooks (a name once per room, at most
    /// `max_per_room`) and stores it (the record and the room's index), in one step per room
    /// across processes (`Db::read_then_write` on the room's prefix).
    fn claim(&self, hook: &Hook) -> Result<()> {
        let room = room_prefix(&hook.room_id);
        self.db
            .read_then_write(&self.changes, WEBHOOKS, &room, |_| {
                let existing = self.of_room(&hook.room_id)?;
                if existing.iter().any(|h| h.name == hook.name) {
                    return Err(Error::invalid_param(format!(
                        "This room already has a webhook named {}",
                        hook.name
                    )));
                }
                if existing.len() >= self.config.max_per_room {
                    return Err(Error::forbidden(format!(
                        "This room has {} webhooks, the most it may have",
                        existing.len()
                    )));
                }
                let mut batch = Batch::new();
                batch.put(WEBHOOKS, hook_key(&hook.id), encode_json(hook));
                batch.put(
                    WEBHOOKS,
                    [room.as_slice(), hook.id.as_bytes()].concat(),
                    Vec::new(),
                );
                Ok(((), batch))
            })
    }

    /// Revokes the room's active hook with this id or name, in one step per room across
    /// processes: the record stays, marked revoked (its URL stays dead), and leaves the room's
    /// list. 404 when the room has no such active hook.
    fn release(&self, room_id: &RoomId, id_or_name: &str, now: u64) -> Result<Hook> {
        let room = room_prefix(room_id);
        self.db
            .read_then_write(&self.changes, WEBHOOKS, &room, |_| {
                let hook = self
                    .of_room(room_id)?
                    .into_iter()
                    .find(|h| h.id == id_or_name || h.name == id_or_name.trim())
                    .ok_or_else(|| Error::not_found("This room has no such webhook"))?;
                let mut revoked = hook.clone();
                revoked.revoked_ts = Some(now);
                let mut batch = Batch::new();
                batch.put(WEBHOOKS, hook_key(&hook.id), encode_json(&revoked));
                batch.delete(WEBHOOKS, [room.as_slice(), hook.id.as_bytes()].concat());
                Ok((hook, batch))
            })
    }

    /// Takes one post from `hook`'s allowance, or 429 `M_LIMIT_EXCEEDED`.
    pub fn check_rate(&self, hook: &str) -> Result<()> {
        self.limiter.check(hook)
    }

    pub fn dm_room(&self, user: &UserId) -> Result<Option<OwnedRoomId>> {
        Ok(self
            .db
            .get(WEBHOOKS, &dm_key(user))?
            .and_then(|v| OwnedRoomId::try_from(String::from_utf8_lossy(&v).as_ref()).ok()))
    }

    pub fn set_dm_room(&self, user: &UserId, room: &RoomId) -> Result<()> {
        Ok(self.db.put(WEBHOOKS, dm_key(user), room.as_bytes())?)
    }
}

/// A webhook name: 1 to 100 characters once trimmed, no control characters.
pub fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid_param(
            "A webhook name is 1 to 100 characters, without control characters",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_example_configuration_shows_the_defaults() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/parvis.example.toml");
        let none = Vec::<(String, String)>::new;
        let example = Config::load(Some(&path), none()).unwrap().webhooks;
        let default = Config::load(None, none()).unwrap().webhooks;
        assert_eq!(format!("{example:?}"), format!("{default:?}"));
    }

    #[test]
    fn secrets_match_only_themselves() {
        let hook = Hook {
            id: "abc".into(),
            room_id: ruma::owned_room_id!("!r:x"),
            name: "n".into(),
            user_id: ruma::owned_user_id!("@webhook_abc:x"),
            secret_sha256: sha256_hex("s3cret"),
            created_by: ruma::owned_user_id!("@a:x"),
            created_ts: 0,
            revoked_ts: None,
        };
        assert!(hook.secret_matches("s3cret"));
        assert!(!hook.secret_matches("s3cre"));
        assert!(!hook.secret_matches(""));
        assert_eq!(check_name("  CI  ").unwrap(), "CI");
        assert!(check_name(" ").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"x".repeat(101)).is_err());
    }
}
