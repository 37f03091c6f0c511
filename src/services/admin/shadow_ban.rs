//! Shadow-banning (Synapse's `/users/{userId}/shadow_ban`): a shadow-banned user's sends, state
//! changes, redactions and invites answer as if they worked (a made-up event id) and change
//! nothing; their typing is ignored. For spammers who would otherwise try again elsewhere. The
//! banned users are few (an admin names each): kept in memory, loaded at start.

use std::{collections::HashSet, sync::RwLock};

use ruma::{OwnedEventId, OwnedUserId, UserId};

use crate::{
    error::Result,
    storage::{Db, Map},
};

/// user id → empty: a shadow-banned user.
pub const SHADOW_BANNED: Map = Map("shadow_banned_users");

pub struct ShadowBans {
    users: RwLock<HashSet<OwnedUserId>>,
}

impl ShadowBans {
    pub fn load(db: &Db) -> Result<Self> {
        let mut users = HashSet::new();
        for entry in db.scan_prefix(SHADOW_BANNED, &[]) {
            let (key, _) = entry?;
            if let Ok(user) = OwnedUserId::try_from(String::from_utf8_lossy(&key).as_ref()) {
                users.insert(user);
            }
        }
        Ok(Self {
            users: RwLock::new(users),
        })
    }

    pub fn is_banned(&self, user: &UserId) -> bool {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(user)
    }

    /// Bans or unbans, in the database and in memory.
    pub fn set(&self, db: &Db, user: &UserId, banned: bool) -> Result<()> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if banned {
            db.put(SHADOW_BANNED, user.as_bytes(), Vec::new())?;
            users.insert(user.to_owned());
        } else {
            db.delete(SHADOW_BANNED, user.as_bytes())?;
            users.remove(user);
        }
        Ok(())
    }
}

/// An event id for an answer that pretends (the shape of room versions 4 and later).
pub fn made_up_event_id() -> OwnedEventId {
    OwnedEventId::try_from(format!("${}", crate::util::random_string(43)))
        .expect("a valid event id")
}
