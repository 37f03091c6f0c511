//! `parvis make-admin @user:server`: marks an existing local account as a server admin, on the
//! database of a stopped server (RocksDB's lock refuses a running one).

use ruma::OwnedUserId;

use crate::{
    config::Config,
    error::{Error, Result},
    services::Services,
};

/// Opens the database named by `config`, makes `user` an admin, and closes it.
pub fn make_admin(config: Config, user: &str) -> Result<OwnedUserId> {
    let user = OwnedUserId::try_from(user)
        .map_err(|_| Error::invalid_param(format!("`{user}` is not a user id (@name:server)")))?;
    if user.server_name() != config.server_name {
        return Err(Error::invalid_param(format!(
            "{user} is not a user of this server ({})",
            config.server_name
        )));
    }
    let services = Services::open(config).map_err(|e| {
        Error::internal(format!(
            "{} (is the server still running? stop it first)",
            e.message
        ))
    })?;
    let result = match services.users.account(&user) {
        Ok(None) => Err(Error::not_found(format!("{user} has no account"))),
        Ok(Some(account)) if account.deactivated => {
            Err(Error::forbidden(format!("{user} is deactivated")))
        }
        Ok(Some(_)) => services.users.set_profile(&user, |a| a.admin = true),
        Err(e) => Err(e),
    };
    services.shutdown();
    result.map(|()| user)
}
