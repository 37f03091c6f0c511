//! Deactivating an account from the admin API: the same as the user's own deactivation (leave
//! every room, then the account and every device in one batch), without the password stage.

use ruma::UserId;

use crate::{
    error::{Error, Result},
    services::{Services, keys::device_keys as e2ee, rooms::membership::Membership},
};

pub fn deactivate(s: &Services, user: &UserId) -> Result<()> {
    if !s.users.exists(user)? {
        return Err(Error::not_found("User not found"));
    }
    // Leave every room first, so other members see the departure.
    for room in s.membership.rooms_of(user)? {
        if matches!(room.membership, Membership::Join | Membership::Invite | Membership::Knock) {
            crate::services::rooms::set_membership(s, &room.room_id, user, user, "leave", None, None)?;
        }
    }
    let before = e2ee::device_ids(s, user)?;
    s.users.deactivate(user)?;
    e2ee::removed_since(s, user, &before)
}
