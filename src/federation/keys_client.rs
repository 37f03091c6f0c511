//! Other servers' users in `/keys/query` and `/keys/claim`: `user/keys/query` and
//! `user/keys/claim` per server, concurrently, each within the client's `timeout` (a server that
//! fails or is too slow is named in `failures`). Users sharing a room with the requester are
//! answered from the cached device list while it is current, fetched with `user/devices` when it
//! is missing or stale.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures_util::{StreamExt, stream};
use ruma::{
    OneTimeKeyAlgorithm, OwnedDeviceId, OwnedServerName, OwnedUserId,
    api::federation::{
        device::get_devices,
        keys::{claim_keys, get_keys},
    },
};
use serde_json::{Value, json};

use super::request::send;
use crate::{
    error::{Error, Result},
    services::{
        Services,
        keys::{
            claim::Claimed,
            query::KeysAnswer,
            remote_cache::{self, RemoteDevice, RemoteDeviceList},
        },
        sync::shares_room,
    },
};

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Adds a cached list to an answer (only the devices asked for, all when none).
fn answer_from_list(
    answer: &mut KeysAnswer,
    user: &OwnedUserId,
    devices: &[String],
    list: &RemoteDeviceList,
) {
    let keys = answer.device_keys.entry(user.clone()).or_default();
    for (id, device) in &list.devices {
        if (devices.is_empty() || devices.contains(id))
            && let Some(k) = &device.keys
        {
            keys.insert(id.clone(), k.clone());
        }
    }
    if let Some(m) = &list.master_key {
        answer.master_keys.insert(user.clone(), m.clone());
    }
    if let Some(k) = &list.self_signing_key {
        answer.self_signing_keys.insert(user.clone(), k.clone());
    }
}

/// Fetches a user's device list with `user/devices` and caches it.
pub async fn fetch_device_list(
    services: &Arc<Services>,
    user: &OwnedUserId,
) -> Result<RemoteDeviceList> {
    let response = send(
        services,
        user.server_name(),
        get_devices::v1::Request::new(user.clone()),
    )
    .await?;
    let list = RemoteDeviceList {
        stream_id: response.stream_id.into(),
        stale: false,
        devices: response
            .devices
            .iter()
            .map(|d| {
                // A device that uploaded no keys comes with an empty object.
                let keys = Some(to_value(&d.keys)).filter(|k| k.get("keys").is_some());
                (
                    d.device_id.to_string(),
                    RemoteDevice {
                        keys,
                        display_name: d.device_display_name.clone(),
                    },
                )
            })
            .collect(),
        master_key: response.master_key.as_ref().map(to_value),
        self_signing_key: response.self_signing_key.as_ref().map(to_value),
    };
    let (user, stored) = (user.clone(), list.clone());
    services
        .run(move |s| remote_cache::store(s, &user, &stored))
        .await?;
    Ok(list)
}

async fn query_server(
    services: &Arc<Services>,
    requester: &OwnedUserId,
    server: &OwnedServerName,
    users: BTreeMap<OwnedUserId, Vec<String>>,
) -> Result<KeysAnswer> {
    let mut answer = KeysAnswer::default();
    let (req, wanted) = (requester.clone(), users.clone());
    // Which users share a room with the requester, and their cached lists.
    let cached: Vec<(OwnedUserId, bool, Option<RemoteDeviceList>)> = services
        .run(move |s| {
            wanted
                .keys()
                .map(|u| {
                    Ok((
                        u.clone(),
                        shares_room(s, &req, u)?,
                        remote_cache::get(s, u)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()
        })
        .await?;
    let mut ask: BTreeMap<OwnedUserId, Vec<OwnedDeviceId>> = BTreeMap::new();
    for (user, shared, list) in cached {
        let devices = &users[&user];
        match (shared, list) {
            (true, Some(list)) if !list.stale => {
                answer_from_list(&mut answer, &user, devices, &list)
            }
            (true, _) => {
                let list = fetch_device_list(services, &user).await?;
                answer_from_list(&mut answer, &user, devices, &list);
            }
            (false, _) => {
                ask.insert(
                    user,
                    devices
                        .iter()
                        .map(|d| OwnedDeviceId::from(d.as_str()))
                        .collect(),
                );
            }
        }
    }
    if !ask.is_empty() {
        let response = send(services, server, get_keys::v1::Request::new(ask)).await?;
        for (user, devices) in response.device_keys {
            // A server answers only for its own users.
            if user.server_name() != server {
                continue;
            }
            let entry = answer.device_keys.entry(user).or_default();
            for (id, keys) in devices {
                entry.insert(id.to_string(), to_value(&keys));
            }
        }
        for (user, key) in response
            .master_keys
            .into_iter()
            .filter(|(u, _)| u.server_name() == server)
        {
            answer.master_keys.insert(user, to_value(&key));
        }
        for (user, key) in response
            .self_signing_keys
            .into_iter()
            .filter(|(u, _)| u.server_name() == server)
        {
            answer.self_signing_keys.insert(user, to_value(&key));
        }
    }
    Ok(answer)
}

/// Servers one `/keys/query` or `/keys/claim` asks at once (each within the call's timeout).
const SERVERS_AT_ONCE: usize = 16;

/// Queries other servers' users; the merged answer and the failures by server.
pub async fn query(
    services: &Arc<Services>,
    requester: &OwnedUserId,
    wanted: BTreeMap<OwnedUserId, Vec<String>>,
    timeout: Duration,
) -> (KeysAnswer, BTreeMap<String, Value>) {
    let mut by_server: BTreeMap<OwnedServerName, BTreeMap<OwnedUserId, Vec<String>>> =
        BTreeMap::new();
    for (user, devices) in wanted {
        by_server
            .entry(user.server_name().to_owned())
            .or_default()
            .insert(user, devices);
    }
    let calls = by_server.into_iter().map(|(server, users)| async move {
        let result =
            tokio::time::timeout(timeout, query_server(services, requester, &server, users)).await;
        (
            server,
            result
                .map_err(|_| Error::internal("timed out"))
                .and_then(|r| r),
        )
    });
    let mut answer = KeysAnswer::default();
    let mut failures = BTreeMap::new();
    for (server, result) in stream::iter(calls)
        .buffer_unordered(SERVERS_AT_ONCE)
        .collect::<Vec<_>>()
        .await
    {
        match result {
            Ok(part) => {
                answer.device_keys.extend(part.device_keys);
                answer.master_keys.extend(part.master_keys);
                answer.self_signing_keys.extend(part.self_signing_keys);
            }
            Err(e) => {
                tracing::info!("keys/query to {server} failed: {e}");
                failures.insert(
                    server.to_string(),
                    json!({ "errcode": e.errcode, "error": e.message }),
                );
            }
        }
    }
    (answer, failures)
}

/// Claims one-time keys of other servers' devices; the keys and the failures by server.
pub async fn claim(
    services: &Arc<Services>,
    wanted: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>,
    timeout: Duration,
) -> (Claimed, BTreeMap<String, Value>) {
    let mut by_server: BTreeMap<OwnedServerName, claim_keys::v1::OneTimeKeyClaims> =
        BTreeMap::new();
    for (user, devices) in wanted {
        let devices = devices
            .into_iter()
            .map(|(d, alg)| (d, OneTimeKeyAlgorithm::from(alg.as_str())))
            .collect();
        by_server
            .entry(user.server_name().to_owned())
            .or_default()
            .insert(user, devices);
    }
    let calls = by_server.into_iter().map(|(server, claims)| async move {
        let result = tokio::time::timeout(
            timeout,
            send(services, &server, claim_keys::v1::Request::new(claims)),
        )
        .await;
        (
            server,
            result
                .map_err(|_| Error::internal("timed out"))
                .and_then(|r| r),
        )
    });
    let mut claimed: Claimed = BTreeMap::new();
    let mut failures = BTreeMap::new();
    for (server, result) in stream::iter(calls)
        .buffer_unordered(SERVERS_AT_ONCE)
        .collect::<Vec<_>>()
        .await
    {
        match result {
            Ok(response) => {
                for (user, devices) in response
                    .one_time_keys
                    .into_iter()
                    .filter(|(u, _)| u.server_name() == server)
                {
                    let entry = claimed.entry(user).or_default();
                    for (device, keys) in devices {
                        entry.insert(
                            device,
                            keys.into_iter()
                                .map(|(id, k)| (id.to_string(), to_value(&k)))
                                .collect(),
                        );
                    }
                }
            }
            Err(e) => {
                tracing::info!("keys/claim to {server} failed: {e}");
                failures.insert(
                    server.to_string(),
                    json!({ "errcode": e.errcode, "error": e.message }),
                );
            }
        }
    }
    (claimed, failures)
}
