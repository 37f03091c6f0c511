//! Device changes of local users (login, rename, removal, password change with logout,
//! deactivation) written in one batch with what they cause: the user's entry in the stream of
//! changed device lists (`changes`) and one `m.device_list_update` per device for every server
//! sharing a room with the user (`federation::sender::e2ee`). A crash never leaves a device
//! change that /sync's `device_lists` or the other servers do not learn about.

use ruma::{OwnedDeviceId, OwnedServerName, UserId};

use super::changes;
use crate::{
    error::Result,
    federation::sender::e2ee::{DeviceUpdate, servers_sharing_a_room, stage_device_list_updates},
    services::{
        Services,
        globals::Commit,
        users::{Device, IssuedTokens, TokenLifetimes},
    },
};

/// Runs `f` in one commit and adds, in the same batch, the user's device list change and the
/// EDUs of the updates `f` returns; then wakes the senders of the servers told.
pub fn commit_change<'s, R>(
    s: &'s Services,
    user: &UserId,
    f: impl FnOnce(&mut Commit<'s>) -> Result<(R, Vec<DeviceUpdate>)>,
) -> Result<R> {
    // Read before the commit lock is taken (a scan of the user's rooms).
    let servers: Vec<OwnedServerName> = servers_sharing_a_room(s, user)?;
    let (result, _) = s.globals.commit(|c| {
        let (result, updates) = f(c)?;
        stage_updates(s, c, user, &servers, &updates)?;
        Ok(result)
    })?;
    for server in &servers {
        s.federation.sender.wake(server);
    }
    Ok(result)
}

/// Stages the change record and the EDUs of `updates` (nothing when there are none).
pub fn stage_updates(
    s: &Services,
    c: &mut Commit,
    user: &UserId,
    servers: &[OwnedServerName],
    updates: &[DeviceUpdate],
) -> Result<()> {
    if updates.is_empty() {
        return Ok(());
    }
    changes::mark_changed(&s.globals.db, c, user)?;
    stage_device_list_updates(s, c, user, servers, updates)
}

fn forget_after_write<'s>(
    s: &'s Services,
    c: &mut Commit<'s>,
    devices: &[Device],
) -> Vec<DeviceUpdate> {
    let tokens: Vec<String> = devices.iter().map(|d| d.access_token.clone()).collect();
    c.after_write(move || s.users.forget_tokens(&tokens));
    devices
        .iter()
        .map(|d| DeviceUpdate::removed(d.device_id.clone()))
        .collect()
}

/// A login (or registration) creates or replaces a device: its id and new access token.
pub fn login(
    s: &Services,
    user: &UserId,
    device_id: Option<OwnedDeviceId>,
    display_name: Option<String>,
) -> Result<(OwnedDeviceId, String)> {
    let issued = login_with(s, user, device_id, display_name, None)?;
    Ok((issued.device_id, issued.access_token))
}

/// [`login`], with an expiring access token and a refresh token when `refreshable`.
pub fn login_with(
    s: &Services,
    user: &UserId,
    device_id: Option<OwnedDeviceId>,
    display_name: Option<String>,
    refreshable: Option<TokenLifetimes>,
) -> Result<IssuedTokens> {
    commit_change(s, user, |c| {
        let (device, replaced) =
            s.users
                .login_device_ops(&mut c.batch, user, device_id, display_name, refreshable)?;
        if let Some(old) = replaced {
            c.after_write(move || s.users.forget_tokens(&[old]));
        }
        let update = DeviceUpdate::stored(s, user, &device.device_id, device.display_name.clone())?;
        let issued = IssuedTokens {
            refresh_token: device.refresh.as_ref().map(|r| r.token.clone()),
            expires_in_ms: refreshable.map(|l| l.access_ms),
            device_id: device.device_id,
            access_token: device.access_token,
        };
        Ok((issued, vec![update]))
    })
}

/// `PUT /devices/{deviceId}`.
pub fn rename(s: &Services, user: &UserId, device_id: &str, name: Option<String>) -> Result<()> {
    commit_change(s, user, |c| {
        let device = s
            .users
            .set_device_name_ops(&mut c.batch, user, device_id, name)?;
        let update = DeviceUpdate::stored(s, user, &device.device_id, device.display_name.clone())?;
        Ok(((), vec![update]))
    })
}

/// Logout, `DELETE /devices/{deviceId}`, `/delete_devices`, `/logout/all`: the devices that
/// existed are removed with their tokens, keys and messages.
pub fn remove(s: &Services, user: &UserId, device_ids: &[&str]) -> Result<()> {
    commit_change(s, user, |c| {
        let removed = s.users.remove_devices_ops(&mut c.batch, user, device_ids)?;
        Ok(((), forget_after_write(s, c, &removed)))
    })
}

/// A password change (the hash made beforehand on the password pool, never under the commit
/// lock); with `logout_others`, every other device is removed in the same batch.
pub fn set_password(
    s: &Services,
    user: &UserId,
    hash: String,
    logout_others: Option<Option<&str>>,
) -> Result<()> {
    commit_change(s, user, |c| {
        let removed = s
            .users
            .set_password_ops(&mut c.batch, user, hash, logout_others)?;
        Ok(((), forget_after_write(s, c, &removed)))
    })
}

/// Account deactivation: every device goes.
pub fn deactivate(s: &Services, user: &UserId) -> Result<()> {
    commit_change(s, user, |c| {
        let removed = s.users.deactivate_ops(&mut c.batch, user)?;
        Ok(((), forget_after_write(s, c, &removed)))
    })?;
    // Its e-mail addresses are freed (another account may take them; password resets stop).
    s.threepids.remove_all(user)
}
