//! Asking application services about ids in their namespaces that do not exist here yet (spec
//! "Querying"): `GET {url}/_matrix/app/v1/rooms/{roomAlias}` before a local alias is reported
//! unknown, `GET {url}/_matrix/app/v1/users/{userId}` before a local user is. A 2xx answer means
//! the service created it (the caller looks again); anything else, or no answer in 10 s, means
//! it did not.

use std::time::Duration;

use ruma::{RoomAliasId, UserId};

use super::client;
use crate::services::Services;

const TIMEOUT: Duration = Duration::from_secs(10);

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Asks the services whose alias namespace holds `alias`; true when one created it.
pub async fn ask_for_alias(s: &Services, alias: &RoomAliasId) -> bool {
    for appservice in s.appservices.all() {
        if appservice.registration.url.is_none() || !appservice.aliases.matches(alias.as_str()) {
            continue;
        }
        let path = format!("rooms/{}", enc(alias.as_str()));
        match client::call(s, appservice, http::Method::GET, &path, None, TIMEOUT).await {
            Ok(answer) if answer.status().is_success() => return true,
            Ok(answer) => tracing::debug!(
                "application service {}: {alias} unknown ({})",
                appservice.registration.id,
                answer.status()
            ),
            Err(e) => tracing::info!(
                "application service {}: alias query for {alias} failed: {e}",
                appservice.registration.id
            ),
        }
    }
    false
}

/// Asks the services whose user namespace holds `user`; true when one created it.
pub async fn ask_for_user(s: &Services, user: &UserId) -> bool {
    for appservice in s.appservices.all() {
        if appservice.registration.url.is_none() || !appservice.users.matches(user.as_str()) {
            continue;
        }
        let path = format!("users/{}", enc(user.as_str()));
        match client::call(s, appservice, http::Method::GET, &path, None, TIMEOUT).await {
            Ok(answer) if answer.status().is_success() => return true,
            Ok(answer) => tracing::debug!(
                "application service {}: {user} unknown ({})",
                appservice.registration.id,
                answer.status()
            ),
            Err(e) => tracing::info!(
                "application service {}: user query for {user} failed: {e}",
                appservice.registration.id
            ),
        }
    }
    false
}
