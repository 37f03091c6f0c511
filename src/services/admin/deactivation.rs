//! Deactivating an account from the admin API: the same as the user's own deactivation (leave
//! every room, then the account and every device in one batch), without the password stage.

use ruma::UserId;

use crate::{
    error::{Error, Result},
    services::{Services, rooms::membership::Membership},
};

/// user id → empty: a user deactivated with `erase` (their events are served redacted to readers
/// who were not in the room when they were sent; `relations::bundle::to_client`).
pub const ERASED_USERS: crate::storage::Map = crate::storage::Map("erased_users");

/// Deactivates, and with `erase` marks the user erased.
pub fn deactivate_and_erase(s: &Services, user: &UserId, erase: bool) -> Result<()> {
    deactivate(s, user)?;
    if erase {
        s.erased_users.set(&s.globals, user, true)?;
    }
    Ok(())
}

pub fn deactivate(s: &Services, user: &UserId) -> Result<()> {
    if !s.users.exists(user)? {
        return Err(Error::not_found("User not found"));
    }
    // Leave every room first, so other members see the departure.
    for room in s.membership.rooms_of(user)? {
        if matches!(
            room.membership,
            Membership::Join | Membership::Invite | Membership::Knock
        ) {
            crate::services::rooms::set_membership(
                s,
                &room.room_id,
                user,
                user,
                "leave",
                None,
                None,
            )?;
        }
    }
    // The account, its devices and their device list updates: one batch.
    crate::services::keys::device_list::deactivate(s, user)
}
