//! Third-party networks served by application services (spec: client-server "Third-party
//! networks", application service "Third-party networks"): the client's `/thirdparty/*` lookups
//! are asked of the services whose registration lists the protocol, as
//! `GET {url}/_matrix/app/v1/thirdparty/...`, and their answers merged.
//!
//! A service that fails, times out (10 s) or answers something that is not the spec's shape is
//! left out of the answer (logged); the others still count.

use std::{collections::BTreeMap, time::Duration};

use ruma::thirdparty::{Location, Protocol, User};
use serde::de::DeserializeOwned;

use super::{Appservice, client};
use crate::services::Services;
use crate::util::encode_segment;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A query string of `fields` (empty: none).
pub fn query_of<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let pairs: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v)))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// The services with a URL that serve `protocol`, or any protocol when `None`.
fn serving<'a>(s: &'a Services, protocol: Option<&'a str>) -> impl Iterator<Item = &'a Appservice> {
    s.appservices.all().iter().filter(move |a| {
        a.registration.url.is_some()
            && a.registration
                .protocols
                .as_ref()
                .is_some_and(|p| protocol.is_none_or(|want| p.iter().any(|q| q == want)))
    })
}

/// Whether a registered service serves `protocol`.
pub fn is_served(s: &Services, protocol: &str) -> bool {
    serving(s, Some(protocol)).next().is_some()
}

/// Asks one service `path`; its answer when it is a 2xx of the expected shape.
async fn ask<T: DeserializeOwned>(s: &Services, appservice: &Appservice, path: &str) -> Option<T> {
    let id = &appservice.registration.id;
    match client::call(s, appservice, http::Method::GET, path, None, TIMEOUT).await {
        Ok(answer) if answer.status().is_success() => {
            match serde_json::from_slice::<T>(answer.body()) {
                Ok(value) => Some(value),
                Err(e) => {
                    tracing::info!("application service {id}: bad answer to {path}: {e}");
                    None
                }
            }
        }
        Ok(answer) => {
            tracing::debug!("application service {id}: {path}: {}", answer.status());
            None
        }
        Err(e) => {
            tracing::info!("application service {id}: {path} failed: {e}");
            None
        }
    }
}

/// `protocol` as the services that serve it describe it: the first answer's fields, the
/// instances of all, each with an `instance_id` of `<service id>|<network id>`.
pub async fn protocol(s: &Services, protocol: &str) -> Option<Protocol> {
    let mut merged: Option<Protocol> = None;
    for appservice in serving(s, Some(protocol)) {
        let path = format!("thirdparty/protocol/{}", encode_segment(protocol));
        let Some(mut found) = ask::<Protocol>(s, appservice, &path).await else {
            continue;
        };
        for instance in &mut found.instances {
            instance.instance_id = Some(instance_id(appservice, &instance.network_id));
        }
        match &mut merged {
            None => merged = Some(found),
            Some(first) => first.instances.extend(found.instances),
        }
    }
    merged
}

/// The id clients give back for an instance (`third_party_instance_id` of the room directory).
pub fn instance_id(appservice: &Appservice, network_id: &str) -> String {
    format!("{}|{network_id}", appservice.registration.id)
}

/// Every protocol of the registered services that answers.
pub async fn protocols(s: &Services) -> BTreeMap<String, Protocol> {
    let mut names: Vec<String> = serving(s, None)
        .flat_map(|a| a.registration.protocols.clone().unwrap_or_default())
        .collect();
    names.sort();
    names.dedup();
    let mut all = BTreeMap::new();
    for name in names {
        if let Some(found) = protocol(s, &name).await {
            all.insert(name, found);
        }
    }
    all
}

/// Portals: of `protocol` matching `query` (its fields), or of any protocol for `?alias=`.
pub async fn locations(s: &Services, protocol: Option<&str>, query: &str) -> Vec<Location> {
    let path = match protocol {
        Some(p) => format!("thirdparty/location/{}{query}", encode_segment(p)),
        None => format!("thirdparty/location{query}"),
    };
    gather(s, protocol, &path).await
}

/// Third-party users: of `protocol` matching `query`, or of any protocol for `?userid=`.
pub async fn users(s: &Services, protocol: Option<&str>, query: &str) -> Vec<User> {
    let path = match protocol {
        Some(p) => format!("thirdparty/user/{}{query}", encode_segment(p)),
        None => format!("thirdparty/user{query}"),
    };
    gather(s, protocol, &path).await
}

async fn gather<T: DeserializeOwned>(s: &Services, protocol: Option<&str>, path: &str) -> Vec<T> {
    let mut all = Vec::new();
    for appservice in serving(s, protocol) {
        if let Some(found) = ask::<Vec<T>>(s, appservice, path).await {
            all.extend(found);
        }
    }
    all
}
