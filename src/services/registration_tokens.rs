//! Registration tokens (spec v1.2 `m.login.registration_token`, Synapse's admin API): tokens an
//! admin hands out, each with an optional number of uses and an expiry. A token is valid while
//! `completed + pending < uses_allowed` (when set) and its expiry is in the future. `completed`
//! (registrations that used it) is stored; `pending` is the live registration sessions (UIA) that
//! passed the token stage but have not registered yet, kept in memory and forgotten with their
//! session, so an abandoned registration gives its use back. The static `[registration] tokens`
//! of the configuration stay valid without limit.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    storage::{
        Db, Map,
        db::{decode_json, encode_json},
    },
    util::now_ms,
};

/// token → [`Stored`] JSON.
pub const REGISTRATION_TOKENS: Map = Map("registration_tokens");
pub const MAPS: &[Map] = &[REGISTRATION_TOKENS];

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
    /// UIA session → (token, when it passed the token stage).
    pending: Mutex<HashMap<String, (String, Instant)>>,
}

impl RegistrationTokens {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            pending: Mutex::default(),
        }
    }

    fn pending_of(&self, token: &str) -> u64 {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, (_, at)| at.elapsed() < super::uia::SESSION_LIFETIME);
        pending.values().filter(|(t, _)| t == token).count() as u64
    }

    pub fn get(&self, token: &str) -> Result<Option<Token>> {
        Ok(self
            .db
            .get_json::<Stored>(REGISTRATION_TOKENS, token.as_bytes())?
            .map(|stored| self.shown(stored)))
    }

    fn shown(&self, stored: Stored) -> Token {
        Token {
            pending: self.pending_of(&stored.token),
            token: stored.token,
            uses_allowed: stored.uses_allowed,
            completed: stored.completed,
            expiry_time: stored.expiry_time,
        }
    }

    /// Every token, in token order; `valid` keeps the valid (true) or the invalid (false) ones.
    pub fn list(&self, valid: Option<bool>) -> Result<Vec<Token>> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(REGISTRATION_TOKENS, &[]) {
            let (_, value) = entry?;
            let token = self.shown(decode_json(REGISTRATION_TOKENS, &value)?);
            if valid.is_none_or(|v| is_valid(&token, now_ms()) == v) {
                out.push(token);
            }
        }
        Ok(out)
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
        let _serial = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if self.db.contains(REGISTRATION_TOKENS, token.as_bytes())? {
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
        self.db
            .put(REGISTRATION_TOKENS, token.as_bytes(), encode_json(&stored))?;
        drop(_serial);
        Ok(self.shown(stored))
    }

    /// Changes a token's uses and expiry (`Some(None)` clears one); 404 when unknown.
    pub fn update(
        &self,
        token: &str,
        uses_allowed: Option<Option<u64>>,
        expiry_time: Option<Option<u64>>,
    ) -> Result<Token> {
        let serial = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut stored: Stored = self
            .db
            .get_json(REGISTRATION_TOKENS, token.as_bytes())?
            .ok_or_else(|| Error::not_found(format!("No such registration token: {token}")))?;
        if let Some(uses) = uses_allowed {
            stored.uses_allowed = uses;
        }
        if let Some(expiry) = expiry_time {
            if expiry.is_some_and(|t| t < now_ms()) {
                return Err(Error::invalid_param("expiry_time must not be in the past"));
            }
            stored.expiry_time = expiry;
        }
        self.db
            .put(REGISTRATION_TOKENS, token.as_bytes(), encode_json(&stored))?;
        drop(serial);
        Ok(self.shown(stored))
    }

    pub fn delete(&self, token: &str) -> Result<()> {
        if !self.db.contains(REGISTRATION_TOKENS, token.as_bytes())? {
            return Err(Error::not_found(format!(
                "No such registration token: {token}"
            )));
        }
        Ok(self.db.delete(REGISTRATION_TOKENS, token.as_bytes())?)
    }

    /// Whether a stored token may be used now (the validity endpoint).
    pub fn is_usable(&self, token: &str) -> Result<bool> {
        Ok(self.get(token)?.is_some_and(|t| is_valid(&t, now_ms())))
    }

    /// The UIA token stage: a usable token is reserved for the session (pending) until it
    /// registers or expires. A session that already holds the token passes again.
    pub fn reserve(&self, token: &str, session: &str) -> Result<bool> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, (_, at)| at.elapsed() < super::uia::SESSION_LIFETIME);
        if pending.get(session).is_some_and(|(t, _)| t == token) {
            return Ok(true);
        }
        let Some(stored) = self
            .db
            .get_json::<Stored>(REGISTRATION_TOKENS, token.as_bytes())?
        else {
            return Ok(false);
        };
        let in_use = pending.values().filter(|(t, _)| t == token).count() as u64;
        let now = now_ms();
        let usable = stored.expiry_time.is_none_or(|t| t > now)
            && stored
                .uses_allowed
                .is_none_or(|allowed| stored.completed + in_use < allowed);
        if usable {
            pending.insert(session.to_owned(), (token.to_owned(), Instant::now()));
        }
        Ok(usable)
    }

    /// The session registered: its reserved token counts one more completed use.
    pub fn registered(&self, session: &str) -> Result<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some((token, _)) = pending.remove(session) else {
            return Ok(());
        };
        if let Some(mut stored) = self
            .db
            .get_json::<Stored>(REGISTRATION_TOKENS, token.as_bytes())?
        {
            stored.completed += 1;
            self.db
                .put(REGISTRATION_TOKENS, token.as_bytes(), encode_json(&stored))?;
        }
        Ok(())
    }
}

/// Valid: not expired, and uses left counting the pending ones.
pub fn is_valid(token: &Token, now: u64) -> bool {
    token.expiry_time.is_none_or(|t| t > now)
        && token
            .uses_allowed
            .is_none_or(|allowed| token.completed + token.pending < allowed)
}
