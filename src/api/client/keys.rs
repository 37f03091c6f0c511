//! `/keys/*`: upload, query, claim and changes of end-to-end keys, and cross-signing uploads.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::{Json, extract::State};
use ruma::{
    OwnedDeviceId, OwnedUserId,
    api::client::keys::{
        claim_keys, get_key_changes, get_keys, upload_keys, upload_signatures, upload_signing_keys,
    },
    serde::Raw,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::account::uia_password;
use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    federation::keys_client,
    services::{
        Services,
        keys::{claim, cross_signing, device_keys, query},
        sync::{SyncToken, e2ee::device_lists},
    },
};

/// The time a client may give remote servers when it names none (the spec's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn json_of<T: DeserializeOwned, X>(raw: &Raw<X>) -> Result<T> {
    serde_json::from_str(raw.json().get()).map_err(|e| Error::bad_json(e.to_string()))
}

/// `POST /keys/upload`.
pub async fn upload(
    State(services): State<Arc<Services>>,
    req: Ruma<upload_keys::v3::Request>,
) -> Result<RumaResponse<upload_keys::v3::Response>> {
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    let body = req.body;
    let upload = device_keys::Upload {
        device_keys: body.device_keys.as_ref().map(json_of).transpose()?,
        one_time_keys: body
            .one_time_keys
            .iter()
            .map(|(id, k)| Ok((id.to_string(), json_of(k)?)))
            .collect::<Result<_>>()?,
        fallback_keys: body
            .fallback_keys
            .iter()
            .map(|(id, k)| Ok((id.to_string(), json_of(k)?)))
            .collect::<Result<_>>()?,
    };
    services
        .run(move |s| {
            Ok(
                upload_keys::v3::Response::new(device_keys::upload(s, &user, &device, upload)?)
                    .into(),
            )
        })
        .await
}

fn object(map: BTreeMap<OwnedUserId, Value>) -> Value {
    Value::Object(map.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// `POST /keys/query`: local users from the database, others from their servers.
pub async fn query(
    State(services): State<Arc<Services>>,
    req: Ruma<get_keys::v3::Request>,
) -> Result<Json<Value>> {
    let user = req.user()?.clone();
    let timeout = req.body.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let ours = services.globals.server_name().clone();
    let (mut local, mut remote) = (BTreeMap::new(), BTreeMap::new());
    for (u, devices) in req.body.device_keys {
        let devices: Vec<String> = devices.into_iter().map(|d| d.to_string()).collect();
        if u.server_name() == ours {
            local.insert(u, devices)
        } else {
            remote.insert(u, devices)
        };
    }
    let requester = user.clone();
    let mut answer = services
        .run(move |s| query::local(s, &local, Some(&requester)))
        .await?;
    let (far, failures) = if remote.is_empty() {
        Default::default()
    } else {
        keys_client::query(&services, &user, remote, timeout).await
    };
    answer.device_keys.extend(far.device_keys);
    answer.master_keys.extend(far.master_keys);
    answer.self_signing_keys.extend(far.self_signing_keys);
    let device_keys: Map<String, Value> = answer
        .device_keys
        .into_iter()
        .map(|(u, d)| (u.to_string(), Value::Object(d.into_iter().collect())))
        .collect();
    Ok(Json(json!({
        "device_keys": device_keys,
        "master_keys": object(answer.master_keys),
        "self_signing_keys": object(answer.self_signing_keys),
        "user_signing_keys": object(answer.user_signing_keys),
        "failures": failures,
    })))
}

/// `POST /keys/claim`.
pub async fn claim(
    State(services): State<Arc<Services>>,
    req: Ruma<claim_keys::v3::Request>,
) -> Result<Json<Value>> {
    req.user()?;
    let timeout = req.body.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let ours = services.globals.server_name().clone();
    let (mut local, mut remote): (BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>, _) =
        (BTreeMap::new(), BTreeMap::new());
    for (u, devices) in req.body.one_time_keys {
        let devices = devices
            .into_iter()
            .map(|(d, alg)| (d, alg.to_string()))
            .collect();
        if u.server_name() == ours {
            local.insert(u, devices)
        } else {
            remote.insert(u, devices)
        };
    }
    let mut claimed = services.run(move |s| claim::claim_local(s, &local)).await?;
    let (far, failures) = if remote.is_empty() {
        Default::default()
    } else {
        keys_client::claim(&services, remote, timeout).await
    };
    claimed.extend(far);
    Ok(Json(
        json!({ "one_time_keys": claimed, "failures": failures }),
    ))
}

/// `GET /keys/changes?from=…&to=…`.
pub async fn changes(
    State(services): State<Arc<Services>>,
    req: Ruma<get_key_changes::v3::Request>,
) -> Result<RumaResponse<get_key_changes::v3::Response>> {
    let user = req.user()?.clone();
    let from = SyncToken::parse(&req.body.from)?.pos;
    let to = SyncToken::parse(&req.body.to)?.pos;
    services
        .run(move |s| {
            let (changed, left) = device_lists(s, &user, from, to.max(from))?;
            Ok(get_key_changes::v3::Response::new(changed, left).into())
        })
        .await
}

/// `POST /keys/device_signing/upload`: user-interactive authentication (password) unless the
/// user has no master key yet or the upload repeats the stored keys.
pub async fn upload_signing(
    State(services): State<Arc<Services>>,
    req: Ruma<upload_signing_keys::v3::Request>,
) -> Result<RumaResponse<upload_signing_keys::v3::Response>> {
    let user = req.user()?.clone();
    let auth = req.json.as_ref().and_then(|j| j.get("auth")).cloned();
    let body = req.body;
    let master = body.master_key.as_ref().map(json_of).transpose()?;
    let self_signing = body.self_signing_key.as_ref().map(json_of).transpose()?;
    let user_signing = body.user_signing_key.as_ref().map(json_of).transpose()?;
    // Replacing an existing master key needs the password (UIA), verified off the blocking pool.
    let (owner, uploaded) = (
        user.clone(),
        [master.clone(), self_signing.clone(), user_signing.clone()],
    );
    let needs_auth = services
        .run(move |s| {
            let uploaded: Vec<(&str, &ruma::CanonicalJsonObject)> = [
                cross_signing::MASTER,
                cross_signing::SELF_SIGNING,
                cross_signing::USER_SIGNING,
            ]
            .into_iter()
            .zip(uploaded.iter())
            .filter_map(|(k, v)| Some((k, v.as_ref()?)))
            .collect();
            let has_master = cross_signing::get(s, &owner, cross_signing::MASTER)?.is_some();
            Ok(has_master && !cross_signing::is_repeat(s, &owner, &uploaded)?)
        })
        .await?;
    if needs_auth {
        uia_password(&services, &user, auth).await?;
    }
    services
        .run(move |s| {
            cross_signing::upload_keys(s, &user, master, self_signing, user_signing)?;
            Ok(upload_signing_keys::v3::Response::new().into())
        })
        .await
}

/// `POST /keys/signatures/upload`.
pub async fn upload_signatures(
    State(services): State<Arc<Services>>,
    req: Ruma<upload_signatures::v3::Request>,
) -> Result<Json<Value>> {
    let user = req.user()?.clone();
    let signed: BTreeMap<OwnedUserId, BTreeMap<String, Value>> = req
        .json
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::bad_json(e.to_string()))?
        .unwrap_or_default();
    let failures = services
        .run(move |s| cross_signing::upload_signatures(s, &user, signed))
        .await?;
    Ok(Json(json!({ "failures": failures })))
}
