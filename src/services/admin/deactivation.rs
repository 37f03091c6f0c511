//! Deactivating an account from the admin API: the same as the user's own deactivation (leave
//! every room, then the account and every device in one batch), without the password stage.

use ruma::UserId;

use crate::{
    error::{Error, Result},
    services::{Services, rooms::membership::Membership},
};

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
