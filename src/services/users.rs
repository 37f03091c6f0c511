//! Accounts, devices, access tokens and profiles of local users.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use ruma::{MilliSecondsSinceUnixEpoch, OwnedDeviceId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    services::password_pool::PasswordPool,
    storage::{
        Batch, Db, Map,
        db::{decode_json, encode_json},
        keys::{Key, KeyReader},
    },
    util::random_string,
};

/// user id → [`Account`].
pub const ACCOUNTS: Map = Map("accounts");
/// user, device → [`Device`].
pub const DEVICES: Map = Map("devices");
/// access token → user, device.
pub const TOKENS: Map = Map("access_tokens");
/// OpenID token → [`OpenIdToken`].
pub const OPENID_TOKENS: Map = Map("openid_tokens");
/// refresh token → user, device (the device's [`Refresh`] says whether it is still the current one).
pub const REFRESH_TOKENS: Map = Map("refresh_tokens");
pub const MAPS: &[Map] = &[ACCOUNTS, DEVICES, TOKENS, OPENID_TOKENS, REFRESH_TOKENS];

/// Lifetime of an OpenID token (`request_token`), in milliseconds.
pub const OPENID_TOKEN_LIFETIME_MS: u64 = 3_600_000;

/// An OpenID token: whom it names, until when (ms since the epoch).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenIdToken {
    pub user_id: OwnedUserId,
    pub expires_ts: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Account {
    pub password_hash: Option<String>,
    #[serde(default)]
    pub deactivated: bool,
    pub created_ts: u64,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    /// A server admin (the admin API, `src/api/admin/`); set by `parvis make-admin` or the API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    pub device_id: OwnedDeviceId,
    pub display_name: Option<String>,
    pub access_token: String,
    pub last_seen_ts: Option<u64>,
    pub last_seen_ip: Option<String>,
    /// Set when the login asked for a refresh token: the access token then expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
}

/// The refreshable side of a device's session (`refresh_token: true` at login or registration).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refresh {
    pub token: String,
    /// When the access token stops working (ms since the epoch).
    pub access_expires_ts: u64,
    /// When the refresh token stops working (None: only a refresh or a logout ends it).
    pub expires_ts: Option<u64>,
}

/// How long the tokens of a refreshable session live (`[sessions]`).
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    pub access_ms: u64,
    pub refresh_ms: Option<u64>,
}

/// Whom an access token names, and until when it works (None: until logout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub user: OwnedUserId,
    pub device: OwnedDeviceId,
    pub expires_ts: Option<u64>,
}

/// A device's new tokens after a login or a refresh.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub device_id: OwnedDeviceId,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Milliseconds until the access token expires.
    pub expires_in_ms: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
}

pub struct Users {
    db: Db,
    /// Password hashing and verification: a few dedicated threads with a bounded queue
    /// (`limits.password_hash_threads`, `limits.password_hash_queue`).
    passwords: Arc<PasswordPool>,
    /// Held across "is the name free?" and the account's write: two registrations of one name
    /// cannot both succeed.
    creating: Mutex<()>,
    tokens: RwLock<TokenCache>,
    /// No token cache: several processes share the database.
    uncached: bool,
    /// The one-time key counts of devices, forgotten here whenever devices are created or removed.
    pub key_counts: crate::services::keys::one_time::CountsCache,
}

/// Access tokens found in the database. `generation` grows on every forget: a lookup that read
/// the database before a forget does not put what it read into the cache after it (the token
/// may have been deleted in between).
#[derive(Default)]
struct TokenCache {
    found: HashMap<String, TokenOwner>,
    generation: u64,
}

/// Entries of the token cache; beyond it, it starts over (a lookup is one RocksDB read).
const TOKEN_CACHE_CAP: usize = 100_000;

pub(crate) fn device_key(user: &UserId, device: &str) -> Vec<u8> {
    Key::new().str(user.as_str()).str(device).build()
}

/// The value of an access token's entry: the device, then the expiry of a refreshable session.
fn token_value(user: &UserId, device: &Device) -> Vec<u8> {
    let key = Key::new().str(user.as_str()).str(device.device_id.as_str());
    match &device.refresh {
        Some(refresh) => key.u64(refresh.access_expires_ts).build(),
        None => key.build(),
    }
}

/// A new refreshable session's tokens, from `now`.
fn new_refresh(lifetimes: TokenLifetimes, now: u64) -> Refresh {
    Refresh {
        token: random_string(32),
        access_expires_ts: now.saturating_add(lifetimes.access_ms),
        expires_ts: lifetimes.refresh_ms.map(|ms| now.saturating_add(ms)),
    }
}

impl Users {
    pub fn new(db: Db, passwords: PasswordPool) -> Self {
        Self {
            db,
            passwords: Arc::new(passwords),
            creating: Mutex::new(()),
            tokens: Default::default(),
            uncached: false,
            key_counts: Default::default(),
        }
    }

    /// Access tokens are read from the database on every lookup (processes of a group).
    pub fn without_token_cache(mut self, uncached: bool) -> Self {
        self.uncached = uncached;
        if uncached {
            self.key_counts = crate::services::keys::one_time::CountsCache::off();
        }
        self
    }

    /// The password pool (async hashing and verification, off tokio's blocking pool).
    pub fn passwords(&self) -> Arc<PasswordPool> {
        self.passwords.clone()
    }

    /// A new OpenID token for `user`, valid [`OPENID_TOKEN_LIFETIME_MS`] from `now`.
    pub fn create_openid_token(&self, user: &UserId, now: u64) -> Result<String> {
        let token = random_string(32);
        let value = OpenIdToken {
            user_id: user.to_owned(),
            expires_ts: now + OPENID_TOKEN_LIFETIME_MS,
        };
        self.db
            .put(OPENID_TOKENS, token.as_bytes(), encode_json(&value))?;
        Ok(token)
    }

    /// The user an OpenID token names, if it exists and has not expired at `now` (an expired token
    /// found is deleted).
    pub fn openid_user(&self, token: &str, now: u64) -> Result<Option<OwnedUserId>> {
        let Some(found) = self
            .db
            .get_json::<OpenIdToken>(OPENID_TOKENS, token.as_bytes())?
        else {
            return Ok(None);
        };
        if found.expires_ts <= now {
            let mut batch = Batch::new();
            batch.delete(OPENID_TOKENS, token.as_bytes());
            self.db.write(batch)?;
            return Ok(None);
        }
        Ok(Some(found.user_id))
    }

    /// Hashes on the password pool, blocking the calling thread: for the admin API only (client
    /// paths hash with [`PasswordPool::hash`] before they run on the blocking pool).
    pub(crate) fn hash(&self, password: &str) -> Result<String> {
        self.passwords.hash_blocking(password)
    }

    pub fn account(&self, user: &UserId) -> Result<Option<Account>> {
        Ok(self.db.get_json(ACCOUNTS, user.as_bytes())?)
    }

    pub fn exists(&self, user: &UserId) -> Result<bool> {
        Ok(self.db.contains(ACCOUNTS, user.as_bytes())?)
    }

    pub fn is_active(&self, user: &UserId) -> Result<bool> {
        Ok(self.account(user)?.is_some_and(|a| !a.deactivated))
    }

    fn save(&self, batch: &mut Batch, user: &UserId, account: &Account) {
        batch.put(ACCOUNTS, user.as_bytes(), encode_json(account));
    }

    /// Creates an account (the caller checked the name is free) and, if wanted, a first device.
    pub fn create(&self, user: &UserId, password: Option<&str>) -> Result<()> {
        self.create_with(user, password, |_| {})
    }

    /// Creates an account as [`Users::create`] does, with `fill` applied before the one write.
    pub fn create_with(
        &self,
        user: &UserId,
        password: Option<&str>,
        fill: impl FnOnce(&mut Account),
    ) -> Result<()> {
        let hash = password.map(|p| self.hash(p)).transpose()?;
        self.create_hashed(user, hash, fill)
    }

    /// Creates an account with a password hash made beforehand; 400 `M_USER_IN_USE` if the name
    /// is taken (checked and written under one lock: of concurrent registrations, one wins; in a
    /// group of processes, the database's commit lock).
    pub fn create_hashed(
        &self,
        user: &UserId,
        password_hash: Option<String>,
        fill: impl FnOnce(&mut Account),
    ) -> Result<()> {
        let mut account = Account {
            password_hash,
            deactivated: false,
            created_ts: MilliSecondsSinceUnixEpoch::now().get().into(),
            displayname: Some(user.localpart().to_owned()),
            avatar_url: None,
            admin: false,
        };
        fill(&mut account);
        self.db
            .read_then_write(&self.creating, ACCOUNTS, user.as_bytes(), |stored| {
                if stored.is_some() {
                    return Err(Error::user_in_use());
                }
                let mut batch = Batch::new();
                self.save(&mut batch, user, &account);
                Ok(((), batch))
            })
    }

    /// Creates an account for a server's own user (no password) unless it exists: of processes
    /// of a group starting together, one creates it. Answers whether this call created it.
    pub fn ensure_exists(&self, user: &UserId) -> Result<bool> {
        if self.exists(user)? {
            return Ok(false);
        }
        match self.create(user, None) {
            Ok(()) => Ok(true),
            Err(e) if e.errcode == "M_USER_IN_USE" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets a new password; with `logout_except`, every other device is logged out in the same batch.
    pub fn set_password(
        &self,
        user: &UserId,
        password: &str,
        logout_others: Option<Option<&str>>,
    ) -> Result<()> {
        let hash = self.hash(password)?;
        let mut batch = Batch::new();
        let dropped = self.set_password_ops(&mut batch, user, hash, logout_others)?;
        self.db.write(batch)?;
        self.forget_tokens(
            &dropped
                .into_iter()
                .map(|d| d.access_token)
                .collect::<Vec<_>>(),
        );
        Ok(())
    }

    /// [`Self::set_password`] in `batch` (with a hash made by [`Self::hash`]); the devices logged out.
    pub fn set_password_ops(
        &self,
        batch: &mut Batch,
        user: &UserId,
        password_hash: String,
        logout_others: Option<Option<&str>>,
    ) -> Result<Vec<Device>> {
        let mut account = self
            .account(user)?
            .ok_or_else(|| Error::not_found("Unknown user"))?;
        account.password_hash = Some(password_hash);
        self.save(batch, user, &account);
        let mut dropped = Vec::new();
        if let Some(keep) = logout_others {
            for device in self.devices(user)? {
                if Some(device.device_id.as_str()) != keep {
                    self.remove_device_ops(batch, user, &device)?;
                    dropped.push(device);
                }
            }
        }
        Ok(dropped)
    }

    /// Changes an account in one batch: a new password (with `logout_all`, every device and its
    /// token go in the same batch) and whatever `update` sets.
    pub fn modify(
        &self,
        user: &UserId,
        password: Option<&str>,
        logout_all: bool,
        update: impl FnOnce(&mut Account),
    ) -> Result<()> {
        let mut account = self
            .account(user)?
            .ok_or_else(|| Error::not_found("Unknown user"))?;
        if let Some(password) = password {
            account.password_hash = Some(self.hash(password)?);
        }
        update(&mut account);
        let mut batch = Batch::new();
        self.save(&mut batch, user, &account);
        let mut dropped = Vec::new();
        if password.is_some() && logout_all {
            for device in self.devices(user)? {
                self.remove_device_ops(&mut batch, user, &device)?;
                dropped.push(device.access_token);
            }
        }
        self.db.write(batch)?;
        self.forget_tokens(&dropped);
        Ok(())
    }

    pub fn deactivate(&self, user: &UserId) -> Result<()> {
        let mut batch = Batch::new();
        let devices = self.deactivate_ops(&mut batch, user)?;
        self.db.write(batch)?;
        self.forget_tokens(
            &devices
                .into_iter()
                .map(|d| d.access_token)
                .collect::<Vec<_>>(),
        );
        Ok(())
    }

    /// [`Self::deactivate`] in `batch`; the devices removed.
    pub fn deactivate_ops(&self, batch: &mut Batch, user: &UserId) -> Result<Vec<Device>> {
        let mut account = self
            .account(user)?
            .ok_or_else(|| Error::not_found("Unknown user"))?;
        account.deactivated = true;
        account.password_hash = None;
        account.displayname = None;
        account.avatar_url = None;
        self.save(batch, user, &account);
        let devices = self.devices(user)?;
        for device in &devices {
            self.remove_device_ops(batch, user, device)?;
        }
        Ok(devices)
    }

    /// Creates (or replaces the token of) a device; returns its id and a new access token.
    pub fn login_device(
        &self,
        user: &UserId,
        device_id: Option<OwnedDeviceId>,
        display_name: Option<String>,
    ) -> Result<(OwnedDeviceId, String)> {
        let mut batch = Batch::new();
        let (device, replaced) =
            self.login_device_ops(&mut batch, user, device_id, display_name, None)?;
        self.db.write(batch)?;
        if let Some(old) = replaced {
            self.forget_tokens(&[old]);
        }
        Ok((device.device_id, device.access_token))
    }

    /// [`Self::login_device`] in `batch`: the device, and the access token it replaces (to forget).
    /// With `refreshable`, the access token expires and a refresh token comes with it.
    pub fn login_device_ops(
        &self,
        batch: &mut Batch,
        user: &UserId,
        device_id: Option<OwnedDeviceId>,
        display_name: Option<String>,
        refreshable: Option<TokenLifetimes>,
    ) -> Result<(Device, Option<String>)> {
        let device_id = device_id.unwrap_or_else(|| random_string(10).to_uppercase().into());
        self.key_counts.forget_all();
        let previous = self.device(user, device_id.as_str())?;
        if let Some(old) = &previous {
            Self::delete_tokens_ops(batch, old);
        }
        let now: u64 = MilliSecondsSinceUnixEpoch::now().get().into();
        let device = Device {
            device_id: device_id.clone(),
            display_name: display_name.or(previous.as_ref().and_then(|d| d.display_name.clone())),
            access_token: random_string(32),
            last_seen_ts: Some(now),
            last_seen_ip: None,
            refresh: refreshable.map(|lifetimes| new_refresh(lifetimes, now)),
        };
        self.put_tokens_ops(batch, user, &device);
        Ok((device, previous.map(|d| d.access_token)))
    }

    /// Writes a device with its access token (and refresh token) entries.
    fn put_tokens_ops(&self, batch: &mut Batch, user: &UserId, device: &Device) {
        let key = device_key(user, device.device_id.as_str());
        batch.put(DEVICES, key.clone(), encode_json(device));
        batch.put(
            TOKENS,
            device.access_token.as_bytes(),
            token_value(user, device),
        );
        if let Some(refresh) = &device.refresh {
            batch.put(REFRESH_TOKENS, refresh.token.as_bytes(), key);
        }
    }

    /// Deletes a device's access token and refresh token entries.
    fn delete_tokens_ops(batch: &mut Batch, device: &Device) {
        batch.delete(TOKENS, device.access_token.as_bytes());
        if let Some(refresh) = &device.refresh {
            batch.delete(REFRESH_TOKENS, refresh.token.as_bytes());
        }
    }

    /// `POST /refresh`: spends `refresh_token` for a new access token and a new refresh token of
    /// the same device, in one commit; the old access token stops working at once, in every
    /// process of a group. None: the token is unknown, already spent, or expired. The read and
    /// the write are under the commit lock (the database's in a group): a refresh token is spent
    /// once.
    pub fn refresh(
        &self,
        globals: &crate::services::globals::Globals,
        refresh_token: &str,
        lifetimes: TokenLifetimes,
        now: u64,
    ) -> Result<Option<IssuedTokens>> {
        let (issued, _) = globals.commit(|c| {
            let Some(key) = self.db.get(REFRESH_TOKENS, refresh_token.as_bytes())? else {
                return Ok(None);
            };
            let mut reader = KeyReader::new(&key);
            let Some((user, device_id)) = reader.str().zip(reader.str()) else {
                return Ok(None);
            };
            let Ok(user) = OwnedUserId::try_from(user) else {
                return Ok(None);
            };
            let Some(mut device) = self.device(&user, device_id)? else {
                return Ok(None);
            };
            let current = device
                .refresh
                .as_ref()
                .filter(|r| r.token == refresh_token && r.expires_ts.is_none_or(|ts| ts > now));
            if current.is_none() {
                return Ok(None);
            }
            Self::delete_tokens_ops(&mut c.batch, &device);
            let old_token = std::mem::replace(&mut device.access_token, random_string(32));
            device.refresh = Some(new_refresh(lifetimes, now));
            self.put_tokens_ops(&mut c.batch, &user, &device);
            c.after_write(move || self.forget_tokens(&[old_token]));
            Ok(Some(IssuedTokens {
                device_id: device.device_id,
                access_token: device.access_token,
                refresh_token: device.refresh.map(|r| r.token),
                expires_in_ms: Some(lifetimes.access_ms),
            }))
        })?;
        Ok(issued)
    }

    /// The user and device of an access token, and when it expires.
    pub fn find_token(&self, token: &str) -> Result<Option<TokenOwner>> {
        if self.uncached {
            // In a group of processes, another one may have deleted the token a moment ago.
            return self.stored_token(token);
        }
        let generation = {
            let cache = self.tokens.read().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = cache.found.get(token) {
                return Ok(Some(found.clone()));
            }
            cache.generation
        };
        let found = self.stored_token(token)?;
        self.cache_token(token, &found, generation);
        Ok(found)
    }

    /// The owner of an access token when the cache holds it (no storage read: the request's
    /// task can ask without handing off to the blocking pool). None when it must be read.
    pub fn cached_token(&self, token: &str) -> Option<TokenOwner> {
        if self.uncached {
            return None;
        }
        let cache = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        cache.found.get(token).cloned()
    }

    /// The user and device of an access token in the database.
    fn stored_token(&self, token: &str) -> Result<Option<TokenOwner>> {
        let Some(value) = self.db.get(TOKENS, token.as_bytes())? else {
            return Ok(None);
        };
        let mut reader = KeyReader::new(&value);
        let Some((user, device)) = reader.str().zip(reader.str()) else {
            return Ok(None);
        };
        Ok(OwnedUserId::try_from(user).ok().map(|user| TokenOwner {
            user,
            device: OwnedDeviceId::from(device),
            expires_ts: reader.u64(),
        }))
    }

    /// Caches what [`Self::stored_token`] read, unless a token was forgotten since `generation`
    /// (the read may predate a logout's delete, whose forget already ran).
    fn cache_token(&self, token: &str, found: &Option<TokenOwner>, generation: u64) {
        let Some(found) = found else { return };
        let mut cache = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        if cache.generation != generation {
            return;
        }
        if cache.found.len() >= TOKEN_CACHE_CAP {
            cache.found.clear();
        }
        cache.found.insert(token.to_owned(), found.clone());
    }

    /// Drops tokens from the cache; called after the write that deleted them.
    pub(crate) fn forget_tokens(&self, tokens: &[String]) {
        let mut cache = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        cache.generation += 1;
        for t in tokens {
            cache.found.remove(t);
        }
    }

    pub fn device(&self, user: &UserId, device_id: &str) -> Result<Option<Device>> {
        Ok(self.db.get_json(DEVICES, &device_key(user, device_id))?)
    }

    pub fn devices(&self, user: &UserId) -> Result<Vec<Device>> {
        let prefix = Key::new().str(user.as_str()).build();
        self.db
            .scan_prefix(DEVICES, &prefix)
            .map(|e| {
                let (_, v) = e?;
                Ok(decode_json(DEVICES, &v)?)
            })
            .collect()
    }

    pub fn set_device_name(
        &self,
        user: &UserId,
        device_id: &str,
        name: Option<String>,
    ) -> Result<()> {
        let mut batch = Batch::new();
        self.set_device_name_ops(&mut batch, user, device_id, name)?;
        Ok(self.db.write(batch)?)
    }

    /// [`Self::set_device_name`] in `batch`; the renamed device.
    pub fn set_device_name_ops(
        &self,
        batch: &mut Batch,
        user: &UserId,
        device_id: &str,
        name: Option<String>,
    ) -> Result<Device> {
        let mut device = self
            .device(user, device_id)?
            .ok_or_else(|| Error::not_found("Unknown device"))?;
        device.display_name = name;
        batch.put(DEVICES, device_key(user, device_id), encode_json(&device));
        Ok(device)
    }

    /// The deletion of a device, its access token, the pushers it created and its end-to-end keys.
    fn remove_device_ops(&self, batch: &mut Batch, user: &UserId, device: &Device) -> Result<()> {
        self.key_counts.forget_all();
        batch.delete(DEVICES, device_key(user, device.device_id.as_str()));
        Self::delete_tokens_ops(batch, device);
        crate::services::push::pushers::delete_for_device(
            &self.db,
            batch,
            user,
            device.device_id.as_str(),
        )?;
        // Its end-to-end keys and undelivered to-device messages go with it.
        crate::services::keys::device_removed_ops(
            &self.db,
            batch,
            user.as_str(),
            device.device_id.as_str(),
        )
    }

    /// Removes devices (and their tokens) in one batch.
    pub fn remove_devices(&self, user: &UserId, device_ids: &[&str]) -> Result<()> {
        let mut batch = Batch::new();
        let removed = self.remove_devices_ops(&mut batch, user, device_ids)?;
        self.db.write(batch)?;
        self.forget_tokens(
            &removed
                .into_iter()
                .map(|d| d.access_token)
                .collect::<Vec<_>>(),
        );
        Ok(())
    }

    /// [`Self::remove_devices`] in `batch`; the devices that existed (their tokens to forget).
    pub fn remove_devices_ops(
        &self,
        batch: &mut Batch,
        user: &UserId,
        device_ids: &[&str],
    ) -> Result<Vec<Device>> {
        let mut removed = Vec::new();
        for id in device_ids {
            if let Some(device) = self.device(user, id)? {
                self.remove_device_ops(batch, user, &device)?;
                removed.push(device);
            }
        }
        Ok(removed)
    }

    pub fn profile(&self, user: &UserId) -> Result<Option<Profile>> {
        Ok(self
            .account(user)?
            .filter(|a| !a.deactivated)
            .map(|a| Profile {
                displayname: a.displayname,
                avatar_url: a.avatar_url,
            }))
    }

    pub fn set_profile(&self, user: &UserId, update: impl FnOnce(&mut Account)) -> Result<()> {
        let mut account = self
            .account(user)?
            .ok_or_else(|| Error::not_found("Unknown user"))?;
        update(&mut account);
        let mut batch = Batch::new();
        self.save(&mut batch, user, &account);
        Ok(self.db.write(batch)?)
    }

    /// Every local account (for the user directory).
    pub fn all(&self) -> Result<Vec<(OwnedUserId, Account)>> {
        self.db
            .scan_prefix(ACCOUNTS, &[])
            .map(|e| {
                let (k, v) = e?;
                let user = OwnedUserId::try_from(String::from_utf8_lossy(&k).as_ref())
                    .map_err(|_| Error::internal("corrupt account key"))?;
                Ok((user, decode_json(ACCOUNTS, &v)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::rocks::RocksEngine;

    fn users() -> (tempfile::TempDir, Users) {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            RocksEngine::open(dir.path(), &crate::services::all_maps(), 8, 8, false).unwrap();
        (dir, Users::new(Db::new(engine), PasswordPool::new(1, 1)))
    }

    /// A token lookup reads the database, a logout deletes the token and forgets it, then the
    /// lookup fills the cache with what it read: the token must not stay valid.
    #[test]
    fn a_lookup_that_read_before_a_logout_does_not_cache_the_token() {
        let (_dir, users) = users();
        let user: OwnedUserId = "@alice:example.org".try_into().unwrap();
        users.create_hashed(&user, None, |_| {}).unwrap();
        let (device, token) = users.login_device(&user, None, None).unwrap();

        let generation = users.tokens.read().unwrap().generation;
        let read = users.stored_token(&token).unwrap();
        assert!(read.is_some());
        users.remove_devices(&user, &[device.as_str()]).unwrap();
        users.cache_token(&token, &read, generation);

        assert_eq!(users.find_token(&token).unwrap(), None);
        // Without a logout in between, the token is cached and found.
        let (_, other) = users.login_device(&user, None, None).unwrap();
        assert!(users.find_token(&other).unwrap().is_some());
        assert!(users.tokens.read().unwrap().found.contains_key(&other));
    }

    #[test]
    fn a_taken_name_is_refused() {
        let (_dir, users) = users();
        let user: OwnedUserId = "@alice:example.org".try_into().unwrap();
        users
            .create_hashed(&user, Some("first".into()), |_| {})
            .unwrap();
        assert_eq!(
            users
                .create_hashed(&user, Some("second".into()), |_| {})
                .unwrap_err()
                .errcode,
            "M_USER_IN_USE"
        );
        assert_eq!(
            users
                .account(&user)
                .unwrap()
                .unwrap()
                .password_hash
                .as_deref(),
            Some("first")
        );
    }
}
