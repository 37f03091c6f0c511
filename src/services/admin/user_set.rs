//! A set of users an admin names (shadow-banned, erased, locked, suspended): few, so held in
//! memory (loaded at start) and kept in a column family. A change is a commit that records an
//! invalidation, so the other processes of a group change their copy before they serve its
//! position.

use std::{collections::HashSet, sync::RwLock};

use ruma::{OwnedUserId, UserId};

use crate::{
    error::Result,
    services::{cluster::Invalidation, globals::Globals},
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

    /// The map that keeps this set.
    pub fn map(&self) -> Map {
        self.map
    }

    /// Adds or removes, in the database and in memory (and, through the commit's invalidation,
    /// in the memory of the other processes of a group). The copy in memory changes after the
    /// batch is written, under the commit lock (so in commit order), and no lock of this set is
    /// held while committing: catching up with another process's commit holds the catch-up lock
    /// and then takes this set's (`apply`), and a commit takes the catch-up lock after its write,
    /// so holding this set's lock across a commit deadlocked two requests (seen in the cluster
    /// test: an admin's lock while the process caught up).
    pub fn set(&self, globals: &Globals, user: &UserId, member: bool) -> Result<()> {
        globals.commit(|c| {
            if member {
                c.batch.put(self.map, user.as_bytes(), Vec::new());
            } else {
                c.batch.delete(self.map, user.as_bytes());
            }
            c.invalidate(Invalidation::UserSet {
                map: self.map.0.to_owned(),
                user: user.to_owned(),
                member,
            });
            let user = user.to_owned();
            c.after_write(move || self.apply(&user, member));
            Ok(())
        })?;
        Ok(())
    }

    /// Changes the copy in memory only (what another process wrote).
    pub fn apply(&self, user: &UserId, member: bool) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if member {
            users.insert(user.to_owned());
        } else {
            users.remove(user);
        }
    }
}
