//! Devices of the logged-in user.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    MilliSecondsSinceUnixEpoch, UInt,
    api::client::device::{
        self, delete_device, delete_devices, get_device, get_devices, update_device,
    },
};
use serde_json::Value;

use super::account::uia_password;
use crate::services::keys::device_list;
use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{Services, users},
};

type Res<T> = Result<RumaResponse<T>>;

fn to_api(d: users::Device) -> device::Device {
    let mut out = device::Device::new(d.device_id);
    out.display_name = d.display_name;
    out.last_seen_ip = d.last_seen_ip;
    out.last_seen_ts = d
        .last_seen_ts
        .and_then(|t| UInt::new(t))
        .map(MilliSecondsSinceUnixEpoch);
    out
}

pub async fn list(
    State(services): State<Arc<Services>>,
    req: Ruma<get_devices::v3::Request>,
) -> Res<get_devices::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            Ok(get_devices::v3::Response::new(
                s.users.devices(&user)?.into_iter().map(to_api).collect(),
            )
            .into())
        })
        .await
}

pub async fn get(
    State(services): State<Arc<Services>>,
    req: Ruma<get_device::v3::Request>,
) -> Res<get_device::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let device = s
                .users
                .device(&user, req.body.device_id.as_str())?
                .ok_or_else(|| Error::not_found("Unknown device"))?;
            Ok(get_device::v3::Response::new(to_api(device)).into())
        })
        .await
}

pub async fn update(
    State(services): State<Arc<Services>>,
    req: Ruma<update_device::v3::Request>,
) -> Res<update_device::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            device_list::rename(s, &user, req.body.device_id.as_str(), req.body.display_name)?;
            Ok(update_device::v3::Response::new().into())
        })
        .await
}

fn auth_of(json: &Option<Value>) -> Option<Value> {
    json.as_ref().and_then(|j| j.get("auth")).cloned()
}

pub async fn delete(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_device::v3::Request>,
) -> Res<delete_device::v3::Response> {
    let user = req.user()?.clone();
    let auth = auth_of(&req.json);
    let (owner, device) = (user.clone(), req.body.device_id.clone());
    let exists = services
        .run(move |s| Ok(s.users.device(&owner, device.as_str())?.is_some()))
        .await?;
    if !exists {
        return Err(Error::not_found("Unknown device"));
    }
    uia_password(&services, &user, auth).await?;
    services
        .run(move |s| {
            device_list::remove(s, &user, &[req.body.device_id.as_str()])?;
            Ok(delete_device::v3::Response::new().into())
        })
        .await
}

pub async fn delete_many(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_devices::v3::Request>,
) -> Res<delete_devices::v3::Response> {
    let user = req.user()?.clone();
    let auth = auth_of(&req.json);
    uia_password(&services, &user, auth).await?;
    services
        .run(move |s| {
            let ids: Vec<&str> = req.body.devices.iter().map(|d| d.as_str()).collect();
            device_list::remove(s, &user, &ids)?;
            Ok(delete_devices::v3::Response::new().into())
        })
        .await
}
