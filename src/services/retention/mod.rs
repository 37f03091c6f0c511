//! Retention (MSC1763, as Synapse implements it): rooms say how long their events are kept
//! (`m.room.retention`), the server has a default policy and an allowed range, and purge jobs
//! delete what expired. Clients never see an expired event, even before a job purged it: every
//! read path asks [`expired`] through `timeline::visibility::user_can_see`. State events never
//! expire, so rooms keep working. What a purge does to an event: `timeline::purge`. The jobs:
//! [`worker`].
//! Documented in spec/retention.md.

pub mod lifetime;
pub mod policy;
pub mod worker;

use std::{collections::HashMap, sync::Mutex};

use ruma::events::StateEventType;
use serde::Deserialize;

use self::{
    lifetime::Lifetime,
    policy::{Allowed, Policy},
};
use crate::{
    error::Result,
    services::{Services, timeline::StoredEvent},
};

/// The job kind of purges (they resume after a restart).
pub const JOB_KIND: &str = "retention_purge";

/// Rooms whose policy is remembered at once (the memo is emptied when full).
const MAX_REMEMBERED: usize = 10_000;

/// `[retention]` (Synapse's `retention` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Off: `m.room.retention` is stored like any state event and nothing expires.
    pub enabled: bool,
    /// The policy of rooms without `m.room.retention` (and the `max_lifetime` of rooms whose
    /// event has none).
    pub default_policy: Policy,
    /// Room lifetimes below this are raised to it.
    pub allowed_lifetime_min: Option<Lifetime>,
    /// Room lifetimes above this are lowered to it.
    pub allowed_lifetime_max: Option<Lifetime>,
    /// Each job purges the rooms whose max lifetime is in its range, every `interval`. None:
    /// one job for every room, daily.
    pub purge_jobs: Vec<PurgeJobConfig>,
    /// How long the original of a redacted event is kept for admins and moderators (MSC2815),
    /// whether or not `enabled`; 0: not kept. Synapse's `redaction_retention_period`.
    pub redaction_retention_period: Lifetime,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            default_policy: Policy::default(),
            allowed_lifetime_min: None,
            allowed_lifetime_max: None,
            purge_jobs: Vec::new(),
            redaction_retention_period: Lifetime(7 * 86_400_000),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeJobConfig {
    /// Rooms whose max lifetime is above this (unset: no lower bound).
    #[serde(default)]
    pub shortest_max_lifetime: Option<Lifetime>,
    /// Rooms whose max lifetime is at most this (unset: no upper bound).
    #[serde(default)]
    pub longest_max_lifetime: Option<Lifetime>,
    pub interval: Lifetime,
}

impl PurgeJobConfig {
    pub fn covers(&self, max_lifetime: Lifetime) -> bool {
        self.shortest_max_lifetime.is_none_or(|s| max_lifetime > s)
            && self.longest_max_lifetime.is_none_or(|l| max_lifetime <= l)
    }
}

impl RetentionConfig {
    pub fn jobs(&self) -> Vec<PurgeJobConfig> {
        if self.purge_jobs.is_empty() {
            vec![PurgeJobConfig {
                shortest_max_lifetime: None,
                longest_max_lifetime: None,
                interval: Lifetime(86_400_000),
            }]
        } else {
            self.purge_jobs.clone()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if let (Some(min), Some(max)) = (self.allowed_lifetime_min, self.allowed_lifetime_max)
            && min > max
        {
            return Err(
                "`retention.allowed_lifetime_min`: must not be above allowed_lifetime_max".into(),
            );
        }
        if self.purge_jobs.iter().any(|j| j.interval.0 < 1_000) {
            return Err("`retention.purge_jobs`: interval must be at least 1s".into());
        }
        Ok(())
    }
}

/// The retention settings and a memo of each room's effective max lifetime.
pub struct Retention {
    config: RetentionConfig,
    remembered: Mutex<HashMap<u64, Option<Lifetime>>>,
}

impl Retention {
    pub fn new(config: &RetentionConfig) -> Self {
        Self {
            config: config.clone(),
            remembered: Mutex::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    pub fn config(&self) -> &RetentionConfig {
        &self.config
    }

    /// Forgets a room's remembered policy (its `m.room.retention` changed).
    pub fn forget(&self, short_room: u64) {
        self.remembered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&short_room);
    }

    fn remembered(&self, short_room: u64) -> Option<Option<Lifetime>> {
        self.remembered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&short_room)
            .copied()
    }

    fn remember(&self, short_room: u64, max: Option<Lifetime>) {
        let mut all = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() >= MAX_REMEMBERED {
            all.clear();
        }
        all.insert(short_room, max);
    }
}

/// The room's effective max lifetime (None: its events never expire, or retention is off).
pub fn max_lifetime(s: &Services, short_room: u64) -> Result<Option<Lifetime>> {
    let retention = &s.retention;
    if !retention.enabled() {
        return Ok(None);
    }
    if let Some(known) = retention.remembered(short_room) {
        return Ok(known);
    }
    let room_id = s.short.room_id(short_room)?;
    let room = crate::services::rooms::state_content(
        s,
        &room_id,
        &StateEventType::from("m.room.retention"),
        "",
    )?
    .map(|content| Policy::from_content(&content));
    let config = retention.config();
    let max = policy::effective_max_lifetime(
        room,
        config.default_policy,
        Allowed {
            min: config.allowed_lifetime_min,
            max: config.allowed_lifetime_max,
        },
    );
    retention.remember(short_room, max);
    Ok(max)
}

/// Whether `event` expired: a non-state event older than its room's max lifetime.
pub fn expired(s: &Services, event: &StoredEvent, now_ms: u64) -> Result<bool> {
    if !s.retention.enabled() || event.pdu.state_key.is_some() {
        return Ok(false);
    }
    let Some(max) = max_lifetime(s, event.meta.short_room)? else {
        return Ok(false);
    };
    let ts: u64 = event.pdu.origin_server_ts.get().into();
    Ok(ts.saturating_add(max.0) < now_ms)
}
