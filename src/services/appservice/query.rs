//! Asking application services about ids in their namespaces that do not exist here yet (spec
//! "Querying"): `GET {url}/_matrix/app/v1/rooms/{roomAlias}` before a local alias is reported
//! unknown, `GET {url}/_matrix/app/v1/users/{userId}` before a local user is. A 2xx answer means
//! the service created it (the caller looks again); anything else, or no answer in 10 s, means
//! it did not.

use std::{sync::Arc, time::Duration};

use ruma::{RoomAliasId, UserId};

use super::{Appservice, client, registration::Namespace};
use crate::util::encode_segment;
use crate::{error::Result, services::Services};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Before a local user that does not exist is reported unknown (a profile, an invite): asks the
/// services whose user namespace holds it, which may create it.
pub async fn ask_if_unknown(services: &Arc<Services>, user: &UserId) -> Result<()> {
    if user.server_name() != services.globals.server_name()
        || !services
            .appservices
            .all()
            .iter()
            .any(|a| a.registration.url.is_some() && a.users.matches(user.as_str()))
    {
        return Ok(());
    }
    let asked = user.to_owned();
    if !services.run(move |s| s.users.exists(&asked)).await? {
        ask_for_user(services, user).await;
    }
    Ok(())
}

/// Asks the services whose alias namespace holds `alias`; true when one created it.
pub async fn ask_for_alias(s: &Services, alias: &RoomAliasId) -> bool {
    ask(s, alias.as_str(), "rooms", |a| &a.aliases).await
}

/// Asks the services whose user namespace holds `user`; true when one created it.
pub async fn ask_for_user(s: &Services, user: &UserId) -> bool {
    ask(s, user.as_str(), "users", |a| &a.users).await
}

/// `GET {url}/_matrix/app/v1/{kind}/{id}` of each service whose namespace (`namespace`) holds `id`,
/// until one answers 2xx.
async fn ask(
    s: &Services,
    id: &str,
    kind: &str,
    namespace: impl Fn(&Appservice) -> &Namespace,
) -> bool {
    for appservice in s.appservices.all() {
        if appservice.registration.url.is_none() || !namespace(appservice).matches(id) {
            continue;
        }
        let path = format!("{kind}/{}", encode_segment(id));
        match client::call(s, appservice, http::Method::GET, &path, None, TIMEOUT).await {
            Ok(answer) if answer.status().is_success() => return true,
            Ok(answer) => tracing::debug!(
                "application service {}: {id} unknown ({})",
                appservice.registration.id,
                answer.status()
            ),
            Err(e) => tracing::info!(
                "application service {}: query for {id} failed: {e}",
                appservice.registration.id
            ),
        }
    }
    false
}
