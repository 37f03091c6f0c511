//! The departure check: every `[ldap] departure_check_interval`, each active directory account
//! that is not locked is looked up; one the directory no longer has (removed, or no longer
//! matching the filter or the group) is locked (its sessions stop at once) or deactivated
//! (`on_departure`). A directory that cannot be reached changes nothing.

use std::{sync::Arc, time::Duration};

use ruma::OwnedUserId;
use tokio::{sync::watch, task::JoinHandle};

use super::{OnDeparture, PROVIDER};
use crate::{
    error::Result,
    services::{
        Services,
        sessions::moderation::{self, Action},
    },
};

/// Runs the check until `stop`; nothing when `[ldap]` is off or has no interval.
pub fn spawn(services: Arc<Services>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(every) = services
            .ldap
            .as_ref()
            .and_then(|d| d.config.departure_check_interval)
            .map(|l| Duration::from_millis(l.0.max(1_000)))
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match check_once(&services).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!("ldap: {n} accounts of departed users locked or deactivated")
                }
                Err(e) => tracing::warn!("ldap departure check: {}", e.message),
            }
        }
    })
}

/// One pass; answers how many accounts it locked or deactivated.
pub async fn check_once(services: &Arc<Services>) -> Result<u64> {
    let Some(directory) = services.ldap.as_ref() else {
        return Ok(0);
    };
    let action = directory.config.on_departure;
    let accounts: Vec<OwnedUserId> = services
        .run(move |s| {
            let mut users = Vec::new();
            for (_, user) in s.external_ids.of_provider(PROVIDER)? {
                let active = s.users.is_active(&user)?;
                if active && !(action == OnDeparture::Lock && s.moderation.locked.contains(&user)) {
                    users.push(user);
                }
            }
            Ok(users)
        })
        .await?;
    let mut departed = 0;
    for user in accounts {
        // Stops at the first failure: an unreachable directory says nothing about anyone.
        if directory.still_there(user.localpart()).await? {
            continue;
        }
        services
            .run(move |s| {
                tracing::info!(%user, ?action, "ldap: the user left the directory");
                match action {
                    OnDeparture::Lock => moderation::set(s, Action::Lock, &user, true),
                    OnDeparture::Deactivate => {
                        crate::services::admin::deactivation::deactivate(s, &user)
                    }
                }
            })
            .await?;
        departed += 1;
    }
    Ok(departed)
}
