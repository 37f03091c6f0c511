//! `POST /_matrix/federation/v1/user/keys/query` and `user/keys/claim`: end-to-end keys of local
//! users for other servers (users of other servers are left out).

use std::{collections::BTreeMap, sync::Arc};

use axum::{Json, extract::State};
use ruma::{
    OwnedDeviceId, OwnedUserId,
    api::federation::keys::{claim_keys, get_keys},
};
use serde_json::{Map, Value, json};

use super::auth::Federated;
use crate::{
    error::Result,
    services::{
        Services,
        keys::{claim, query},
    },
};

pub async fn query_keys(
    State(services): State<Arc<Services>>,
    request: Federated<get_keys::v1::Request>,
) -> Result<Json<Value>> {
    let wanted: BTreeMap<OwnedUserId, Vec<String>> = request
        .body
        .device_keys
        .into_iter()
        .map(|(u, devices)| (u, devices.into_iter().map(|d| d.to_string()).collect()))
        .collect();
    let answer = services
        .run(move |s| query::local(s, &wanted, None))
        .await?;
    let device_keys: Map<String, Value> = answer
        .device_keys
        .into_iter()
        .map(|(u, d)| (u.to_string(), Value::Object(d.into_iter().collect())))
        .collect();
    Ok(Json(json!({
        "device_keys": device_keys,
        "master_keys": answer.master_keys,
        "self_signing_keys": answer.self_signing_keys,
    })))
}

pub async fn claim_keys(
    State(services): State<Arc<Services>>,
    request: Federated<claim_keys::v1::Request>,
) -> Result<Json<Value>> {
    let ours = services.globals.server_name().clone();
    let wanted: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>> = request
        .body
        .one_time_keys
        .into_iter()
        .filter(|(u, _)| u.server_name() == ours)
        .map(|(u, devices)| {
            (
                u,
                devices
                    .into_iter()
                    .map(|(d, alg)| (d, alg.to_string()))
                    .collect(),
            )
        })
        .collect();
    let claimed = services
        .run(move |s| claim::claim_local(s, &wanted))
        .await?;
    Ok(Json(json!({ "one_time_keys": claimed })))
}
