//! Registration tokens (spec v1.2 `m.login.registration_token`, Synapse's admin API): tokens an
//! admin hands out, each with an optional number of uses and an expiry. A token is valid while
//! `completed + pending < uses_allowed` (when set) and its expiry is in the future. `completed`
//! (registrations that used it) is stored; `pending` is the live registration sessions (UIA) that
//! passed the token stage but have not registered yet, stored too (a session's stages may reach
//! different processes of a group) and forgotten when the session's lifetime ends, so an
//! abandoned registration gives its use back. Every change of a token's uses is a
//! check-then-write on the token's key (`Db::read_then_write`): one at a time, across processes.
//! The static `[registration] tokens` of the configuration stay valid without limit.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    storage::{
        Batch, Db, Map,
        db::{decode_json, encode_json},
        keys::u64_from,
    },
    util::now_ms,
};

/// token → [`Stored`] JSON.
pub const REGISTRATION_TOKENS: Map = Map("registration_tokens");
/// Sessions holding a use of a token: token 0x00 session → when it passed the stage (ms, u64 BE).
pub const REGISTRATION_TOKEN_PENDING: Map = Map("registration_token_pending");
/// The token a session holds: session → token.
pub const REGISTRATION_TOKEN_SESSIONS: Map = Map("registration_token_sessions");
pub const MAPS: &[Map] = &[
    REGISTRATION_TOKENS,
    REGISTRATION_TOKEN_PENDING,
    REGISTRATION_TOKEN_SESSIONS,
];

fn pending_prefix(token: &str) -> Vec<u8> {
    [token.as_bytes(), b"\0"].concat()
}

fn pending_key(token: &str, session: &str) -> Vec<u8> {
    [token.as_bytes(), b"\0", session.as_bytes()].concat()
}

/// How long a session holds its use of a token: the lifetime of a UIA session.
fn hold_ms() -> u64 {
    super::uia::SESSION_LIFETIME.as_millis() as u64
}

/// Longest token, and the characters a token may hold (Synapse's rules).
pub const MAX_LENGTH: usize = 64;

pub fn is_valid_token_text(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_LENGTH
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub token: String,
    pub uses_allowed: Option<u64>,
    pub expiry_time: Option<u64>,
    pub completed: u64,
}

/// A token as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Token {
    pub token: String,
    pub uses_allowed: Option<u64>,
    pub pending: u64,
    pub completed: u64,
    pub expiry_time: Option<u64>,
}

pub struct RegistrationTokens {
    db: Db,
    /// Held by every change of a token in this process (`Db::read_then_write`).
    changing: Mutex<()>,
}

/// The sessions holding a use of a token: those within their lifetime, and those past it.
#[derive(Default)]
struct Holders {
    live: Vec<String>,
    expired: Vec<String>,
}

impl RegistrationTokens {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            changing: Mutex::new(()),
        }
    }

    fn holders(&self, token: &str, now: u64) -> Result<Holders> {
        let prefix = pending_prefix(token);
        let mut holders = Holders::default();
        for entry in self.db.scan_prefix(REGISTRATION_TOKEN_PENDING, &prefix) {
            let (key, value) = entry?;
            let session = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if u64_from(&value).unwrap_or(0) + hold_ms() > now {
                holders.live.push(session);
            } else {
                holders.expired.push(session);
            }
        }
        Ok(holders)
    }

    pub fn get(&self, token: &str) -> Result<Option<Token>> {
        self.db
            .get_json::<Stored>(REGISTRATION_TOKENS, token.as_bytes())?
            .map(|stored| self.shown(stored))
            .transpose()
    }

    fn shown(&self, stored: Stored) -> Result<Token> {
        Ok(Token {
            pending: self.holders(&stored.token, now_ms())?.live.len() as u64,
            token: stored.token,
            uses_allowed: stored.uses_allowed,
            completed: stored.completed,
            expiry_time: stored.expiry_time,
        })
    }

    /// Every token, in token order; `valid` keeps the valid (true) or the invalid (false) ones.
    pub fn list(&self, valid: Option<bool>) -> Result<Vec<Token>> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(REGISTRATION_TOKENS, &[]) {
            let (_, value) = entry?;
            let token = self.shown(decode_json(REGISTRATION_TOKENS, &value)?)?;
            if valid.is_none_or(|v| is_valid(&token, now_ms()) == v) {
                out.push(token);
            }
        }
        Ok(out)
    }

    /// Reads the token's record and writes what `change` makes of it, one change of the token
    /// at a time across processes.
    fn change<R>(
        &self,
        token: &str,
        change: impl FnOnce(Option<Stored>) -> Result<(R, Batch)>,
    ) -> Result<R> {
        self.db.read_then_write(
            &self.changing,
            REGISTRATION_TOKENS,
            token.as_bytes(),
            |value| {
                let stored = value
                    .map(|v| decode_json::<Stored>(REGISTRATION_TOKENS, &v))
                    .transpose()?;
                change(stored)
            },
        )
    }

    /// Creates a token (`None`: a random one of `length` characters); 400 when it exists.
    pub fn create(
        &self,
        token: Option<String>,
        length: usize,
        uses_allowed: Option<u64>,
        expiry_time: Option<u64>,
    ) -> Result<Token> {
        let token = token.unwrap_or_else(|| crate::util::random_string(length));
        if !is_valid_token_text(&token) {
            return Err(Error::invalid_param(
                "token must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '~', '-'",
            ));
        }
        if expiry_time.is_some_and(|t| t < now_ms()) {
            return Err(Error::invalid_param("expiry_time must not be in the past"));
        }
        let stored = self.change(&token, |existing| {
            if existing.is_some() {
                return Err(Error::invalid_param(format!(
                    "Token already exists: {token}"
                )));
            }
            let stored = Stored {
                token: token.clone(),
                uses_allowed,
                expiry_time,
                completed: 0,
            };
            let mut batch = Batch::new();
            batch.put(REGISTRATION_TOKENS, token.as_bytes(), encode_json(&stored));
            Ok((stored, batch))
        })?;
        self.shown(stored)
    }

    /// Changes a token's uses and expiry (`Some(None)` clears one); 404 when unknown.
    pub fn update(
        &self,
        token: &str,
        uses_allowed: Option<Option<u64>>,
        expiry_time: Option<Option<u64>>,
    ) -> Result<Token> {
        if let Some(Some(t)) = expiry_time
            && t < now_ms()
        {
            return Err(Error::invalid_param("expiry_time must not be in the past"));
        }
        let stored = self.change(token, |stored| {
            let mut stored = stored
                .ok_or_else(|| Error::not_found(format!("No such registration token: {token}")))?;
            if let Some(uses) = uses_allowed {
                stored.uses_allowed = uses;
            }
            if let Some(expiry) = expiry_time {
                stored.expiry_time = expiry;
            }
            let mut batch = Batch::new();
            batch.put(REGISTRATION_TOKENS, token.as_bytes(), encode_json(&stored));
            Ok((stored, batch))
        })?;
        self.shown(stored)
    }

    /// Deletes a token and the uses sessions hold of it; 404 when unknown.
    pub fn delete(&self, token: &str) -> Result<()> {
        self.change(token, |stored| {
            if stored.is_none() {
                return Err(Error::not_found(format!(
                    "No such registration token: {token}"
                )));
            }
            let mut batch = Batch::new();
            batch.delete(REGISTRATION_TOKENS, token.as_bytes());
            let holders = self.holders(token, now_ms())?;
            for session in holders.live.iter().chain(&holders.expired) {
                batch.delete(REGISTRATION_TOKEN_PENDING, pending_key(token, &session));
                batch.delete(REGISTRATION_TOKEN_SESSIONS, session.as_bytes());
            }
            Ok(((), batch))
        })
    }

    /// Whether a stored token may be used now (the validity endpoint).
    pub fn is_usable(&self, token: &str) -> Result<bool> {
        Ok(self.get(token)?.is_some_and(|t| is_valid(&t, now_ms())))
    }

    /// The UIA token stage: a usable token is reserved for the session (pending) until it
    /// registers or its lifetime ends. A session that already holds the token passes again.
    /// The expired reservations of the token are swept on the way.
    pub fn reserve(&self, token: &str, session: &str) -> Result<bool> {
        if session.is_empty() || !is_valid_token_text(token) {
            return Ok(false);
        }
        self.change(token, |stored| {
            let mut batch = Batch::new();
            let Some(stored) = stored else {
                return Ok((false, batch));
            };
            let now = now_ms();
            let holders = self.holders(token, now)?;
            for expired in &holders.expired {
                batch.delete(REGISTRATION_TOKEN_PENDING, pending_key(token, expired));
                batch.delete(REGISTRATION_TOKEN_SESSIONS, expired.as_bytes());
            }
            if holders.live.iter().any(|held_by| held_by == session) {
                return Ok((true, batch));
            }
            let in_use = holders.live.len() as u64;
            let usable = stored.expiry_time.is_none_or(|t| t > now)
                && stored
                    .uses_allowed
                    .is_none_or(|allowed| stored.completed + in_use < allowed);
            if usable {
                batch.put(
                    REGISTRATION_TOKEN_PENDING,
                    pending_key(token, session),
                    now.to_be_bytes().to_vec(),
                );
                batch.put(
                    REGISTRATION_TOKEN_SESSIONS,
                    session.as_bytes(),
                    token.as_bytes().to_vec(),
                );
            }
            Ok((usable, batch))
        })
    }

    /// The session registered: its reserved token counts one more completed use.
    pub fn registered(&self, session: &str) -> Result<()> {
        let Some(token) = self
            .db
            .get(REGISTRATION_TOKEN_SESSIONS, session.as_bytes())?
        else {
            return Ok(());
        };
        let token = String::from_utf8_lossy(&token).into_owned();
        self.change(&token, |stored| {
            let mut batch = Batch::new();
            let key = pending_key(&token, session);
            // Counted once: a second registration of the session finds no reservation.
            if !self.db.contains(REGISTRATION_TOKEN_PENDING, &key)? {
                return Ok(((), batch));
            }
            batch.delete(REGISTRATION_TOKEN_PENDING, key);
            batch.delete(REGISTRATION_TOKEN_SESSIONS, session.as_bytes());
            if let Some(mut stored) = stored {
                stored.completed += 1;
                batch.put(REGISTRATION_TOKENS, token.as_bytes(), encode_json(&stored));
            }
            Ok(((), batch))
        })
    }
}

/// Valid: not expired, and uses left counting the pending ones.
pub fn is_valid(token: &Token, now: u64) -> bool {
    token.expiry_time.is_none_or(|t| t > now)
        && token
            .uses_allowed
            .is_none_or(|allowed| token.completed + token.pending < allowed)
}
