//! Application services (bridges and bots): the registrations read at start-up (`registration`)
//! and what the rest of the server asks of them: whose namespace a user id or alias is in, and
//! which ids only an application service may take (`M_EXCLUSIVE`).
//!
//! Issue 10 builds the rest on this: `as_token` authentication and masquerading, transactions
//! pushed to each application service from a persisted queue, and the queries.

pub mod client;
pub mod device_lists;
pub mod ephemeral;
pub mod query;
pub mod queue;
pub mod registration;
pub mod sender;
pub mod third_party;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use ruma::{RoomAliasId, UserId};
use serde::Deserialize;
use tokio::sync::Notify;

pub use registration::Appservice;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppservicesConfig {
    /// Registration files (YAML, the format Synapse reads and bridges write), read at start-up.
    pub registration_files: Vec<std::path::PathBuf>,
}

/// The registered application services.
#[derive(Debug, Default)]
pub struct Appservices {
    list: Vec<Appservice>,
    /// Events queued per service (counted at start-up, then kept), bounded by `queue::MAX_QUEUED`.
    queued: Mutex<HashMap<String, u64>>,
    /// Wakes each service's sender (something was queued).
    wakes: HashMap<String, Arc<Notify>>,
    /// Ephemeral events waiting for each service (`ephemeral`), in memory and bounded.
    ephemeral: Mutex<HashMap<String, VecDeque<serde_json::Value>>>,
}

impl Appservices {
    pub fn new(list: Vec<Appservice>) -> Self {
        let wakes = list
            .iter()
            .map(|a| (a.registration.id.clone(), Arc::new(Notify::new())))
            .collect();
        Self {
            list,
            queued: Mutex::default(),
            wakes,
            ephemeral: Mutex::default(),
        }
    }

    /// Counts what each service has queued (at start-up).
    pub fn count_queued(&self, s: &crate::services::Services) -> crate::error::Result<()> {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        for appservice in &self.list {
            let id = &appservice.registration.id;
            queued.insert(id.clone(), queue::count(s, id)?);
        }
        Ok(())
    }

    /// Events queued per service (for the metrics), every registered service listed.
    pub fn queued_counts(&self) -> Vec<(String, u64)> {
        let queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        self.list
            .iter()
            .map(|a| {
                let id = &a.registration.id;
                (id.clone(), queued.get(id).copied().unwrap_or(0))
            })
            .collect()
    }

    /// Takes a place in the service's queue; false when it is full.
    pub(crate) fn reserve(&self, id: &str) -> bool {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        let n = queued.entry(id.to_owned()).or_default();
        if *n >= queue::MAX_QUEUED {
            return false;
        }
        *n += 1;
        true
    }

    pub(crate) fn release(&self, id: &str, n: u64) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = queued.get_mut(id) {
            *count = count.saturating_sub(n);
        }
    }

    /// Wakes the senders of the services (by index in `all`) a commit queued events for.
    pub fn wake(&self, queued: &[usize]) {
        for appservice in queued.iter().filter_map(|i| self.list.get(*i)) {
            self.wake_id(&appservice.registration.id);
        }
    }

    /// Wakes every application service's sender (work queued by another process).
    pub(crate) fn wake_all(&self) {
        for wake in self.wakes.values() {
            wake.notify_one();
        }
    }

    pub(crate) fn wake_id(&self, id: &str) {
        if let Some(wake) = self.wakes.get(id) {
            wake.notify_one();
        }
    }

    pub(crate) fn buffer_ephemeral(&self, id: &str, event: serde_json::Value) {
        let mut all = self.ephemeral.lock().unwrap_or_else(|e| e.into_inner());
        if ephemeral::push_bounded(all.entry(id.to_owned()).or_default(), event) {
            tracing::warn!(
                "application service {id}: {} ephemeral events waiting, the oldest dropped",
                ephemeral::MAX_BUFFERED
            );
        }
    }

    /// The oldest waiting ephemeral events of a service, at most `max`, taken out.
    pub(crate) fn take_ephemeral(&self, id: &str, max: usize) -> Vec<serde_json::Value> {
        let mut all = self.ephemeral.lock().unwrap_or_else(|e| e.into_inner());
        all.get_mut(id).map_or_else(Vec::new, |buffer| {
            let n = buffer.len().min(max);
            buffer.drain(..n).collect()
        })
    }

    pub fn by_id(&self, id: &str) -> Option<&Appservice> {
        self.list.iter().find(|a| a.registration.id == id)
    }

    pub(crate) fn wake_of(&self, id: &str) -> Option<Arc<Notify>> {
        self.wakes.get(id).cloned()
    }

    pub fn all(&self) -> &[Appservice] {
        &self.list
    }

    /// The application service whose `as_token` this is.
    pub fn by_as_token(&self, token: &str) -> Option<&Appservice> {
        self.list.iter().find(|a| a.registration.as_token == token)
    }

    /// The application service whose exclusive user namespace holds `user`, if any.
    pub fn exclusive_user_owner(&self, user: &UserId) -> Option<&Appservice> {
        self.list
            .iter()
            .find(|a| a.users.is_exclusive(user.as_str()))
    }

    /// The application service whose exclusive alias namespace holds `alias`, if any.
    pub fn exclusive_alias_owner(&self, alias: &RoomAliasId) -> Option<&Appservice> {
        self.list
            .iter()
            .find(|a| a.aliases.is_exclusive(alias.as_str()))
    }
}
