//! Account locking and suspension by an admin (spec v1.18 `/_matrix/client/v1/admin/lock|suspend`,
//! MSC3823, and Synapse's admin routes).
//!
//! - A **locked** account gets 401 `M_USER_LOCKED` (with `soft_logout`) on every authenticated
//!   request but logout, and cannot log in; its devices stay, so unlocking restores them.
//! - A **suspended** account can read, leave rooms, decline invites, redact its own events and
//!   manage its devices, but gets 403 `M_USER_SUSPENDED` when it creates rooms, sends events,
//!   joins, knocks, invites, changes its profile, uploads media or creates aliases.
//!
//! Both are sets of users held in memory (few) and kept in a column family each.

use ruma::UserId;

use crate::{
    error::{Error, Result},
    services::{Services, admin::user_set::UserSet},
    storage::{Db, Map},
};

/// user id → empty: a locked account.
pub const LOCKED_USERS: Map = Map("locked_users");
/// user id → empty: a suspended account.
pub const SUSPENDED_USERS: Map = Map("suspended_users");

pub struct Moderation {
    pub locked: UserSet,
    pub suspended: UserSet,
}

/// What an admin changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Lock,
    Suspend,
}

impl Moderation {
    pub fn load(db: &Db) -> Result<Self> {
        Ok(Self {
            locked: UserSet::load(db, LOCKED_USERS)?,
            suspended: UserSet::load(db, SUSPENDED_USERS)?,
        })
    }

    fn set_of(&self, action: Action) -> &UserSet {
        match action {
            Action::Lock => &self.locked,
            Action::Suspend => &self.suspended,
        }
    }

    /// 403 `M_USER_SUSPENDED` when `user` is suspended.
    pub fn ensure_not_suspended(&self, user: &UserId) -> Result<()> {
        if self.suspended.contains(user) {
            return Err(Error::user_suspended());
        }
        Ok(())
    }
}

/// Checks what the spec's admin endpoints require of their target, after the caller was found to
/// be an admin: a local user (400 `M_INVALID_PARAM`), existing and active (404), not another
/// admin (403), and, to change it, not the caller itself (403).
pub fn check_target(s: &Services, caller: &UserId, target: &UserId, changing: bool) -> Result<()> {
    if target.server_name() != s.globals.server_name() {
        return Err(Error::invalid_param(
            "User does not belong to the local server",
        ));
    }
    let account = s
        .users
        .account(target)?
        .filter(|a| !a.deactivated)
        .ok_or_else(|| Error::not_found("User not found"))?;
    if changing && target == caller {
        return Err(Error::forbidden("You cannot lock or suspend yourself"));
    }
    if account.admin && target != caller {
        return Err(Error::forbidden(
            "The target user is a server administrator",
        ));
    }
    Ok(())
}

/// Whether `user` is locked or suspended.
pub fn is(s: &Services, action: Action, user: &UserId) -> bool {
    s.moderation.set_of(action).contains(user)
}

/// Locks or unlocks, suspends or unsuspends `user`.
pub fn set(s: &Services, action: Action, user: &UserId, on: bool) -> Result<()> {
    s.moderation.set_of(action).set(&s.globals, user, on)?;
    tracing::info!(%user, ?action, on, "account moderation");
    Ok(())
}
