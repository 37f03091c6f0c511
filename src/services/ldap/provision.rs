//! The local account of a directory user: created on their first login (display name from the
//! directory, no local password), linked to the directory (`external_ids`, provider `ldap`).

use ruma::UserId;

use super::{Entry, PROVIDER};
use crate::{
    error::{Error, Result},
    services::Services,
};

/// Makes sure `user` has an account linked to the directory after a successful directory login;
/// answers whether the account is active (an account deactivated here stays deactivated).
pub fn account_for(s: &Services, user: &UserId, entry: &Entry) -> Result<bool> {
    if user.server_name() != s.globals.server_name() {
        return Err(Error::forbidden("Not a local user"));
    }
    let active = match s.users.account(user)? {
        Some(account) => !account.deactivated,
        None => {
            if s.appservices.exclusive_user_owner(user).is_some() {
                return Err(Error::forbidden(
                    "This user id is reserved by an application service",
                ));
            }
            let name = entry.name.clone().filter(|n| !n.trim().is_empty());
            match s.users.create_hashed(user, None, |a| {
                if let Some(name) = name {
                    a.displayname = Some(name);
                }
            }) {
                Ok(()) => tracing::info!(%user, dn = %entry.dn, "ldap: account created"),
                // A concurrent first login made it.
                Err(e) if e.errcode == "M_USER_IN_USE" => {}
                Err(e) => return Err(e),
            }
            true
        }
    };
    // Linked after the account is written: a crash in between leaves an account the next
    // directory login links (the account exists, so this line runs again).
    let external_id = user.localpart();
    if s.external_ids.user(PROVIDER, external_id)?.as_deref() != Some(user) {
        s.external_ids.link(PROVIDER, external_id, user)?;
    }
    Ok(active)
}

/// Whether `user`'s account came from the directory.
pub fn is_directory_account(s: &Services, user: &UserId) -> Result<bool> {
    Ok(s.external_ids.user(PROVIDER, user.localpart())?.as_deref() == Some(user))
}
