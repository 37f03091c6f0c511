//! A set of users an admin names (shadow-banned, erased): few, so held in memory (loaded at start)
//! and kept in a column family.

use std::{collections::HashSet, sync::RwLock};

use ruma::{OwnedUserId, UserId};

use crate::{
    error::Result,
    storage::{Db, Map},
};

pub struct UserSet {
    map: Map,
    users: RwLock<HashSet<OwnedUserId>>,
}

impl UserSet {
    pub fn load(db: &Db, map: Map) -> Result<Self> {
        let mut users = HashSet::new();
        for entry in db.scan_prefix(map, &[]) {
            let (key, _) = entry?;
            if let Ok(user) = OwnedUserId::try_from(String::from_utf8_lossy(&key).as_ref()) {
                users.insert(user);
            }
        }
        Ok(Self {
            map,
            users: RwLock::new(users),
        })
    }

    pub fn contains(&self, user: &UserId) -> bool {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(user)
    }

    /// Adds or removes, in the database and in memory.
    pub fn set(&self, db: &Db, user: &UserId, member: bool) -> Result<()> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if member {
            db.put(self.map, user.as_bytes(), Vec::new())?;
            users.insert(user.to_owned());
        } else {
            db.delete(self.map, user.as_bytes())?;
            users.remove(user);
        }
        Ok(())
    }
}
