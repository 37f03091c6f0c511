//! Dehydrated devices (MSC3814): `…/dehydrated_device` (put, get, delete) and its to-device events.

use std::sync::Arc;

use axum::extract::State;
use ruma::api::client::dehydrated_device::{
    delete_dehydrated_device, get_dehydrated_device, get_events, put_dehydrated_device,
};
use serde_json::Value;

use super::keys::json_of;
use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::Result,
    services::{Services, dehydrated_devices, keys::device_keys::Upload, timeline::pdu::raw},
};

type Res<T> = Result<RumaResponse<T>>;

pub async fn put(
    State(services): State<Arc<Services>>,
    req: Ruma<put_dehydrated_device::unstable::Request>,
) -> Res<put_dehydrated_device::unstable::Response> {
    let user = req.user()?.clone();
    let body = req.body;
    let upload = Upload {
        device_keys: Some(json_of(&body.device_keys)?),
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
    let data: Value = json_of(&body.device_data)?;
    let device = body.device_id;
    services
        .run(move |s| {
            dehydrated_devices::put(
                s,
                &user,
                &device,
                body.initial_device_display_name,
                data,
                upload,
            )?;
            Ok(put_dehydrated_device::unstable::Response::new(device).into())
        })
        .await
}

pub async fn get(
    State(services): State<Arc<Services>>,
    req: Ruma<get_dehydrated_device::unstable::Request>,
) -> Res<get_dehydrated_device::unstable::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let record = dehydrated_devices::get(s, &user)?
                .ok_or_else(|| crate::error::Error::not_found("No dehydrated device"))?;
            Ok(get_dehydrated_device::unstable::Response::new(
                record.device_id,
                raw(&record.device_data),
            )
            .into())
        })
        .await
}

pub async fn delete(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_dehydrated_device::unstable::Request>,
) -> Res<delete_dehydrated_device::unstable::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            Ok(
                delete_dehydrated_device::unstable::Response::new(dehydrated_devices::delete(
                    s, &user,
                )?)
                .into(),
            )
        })
        .await
}

pub async fn events(
    State(services): State<Arc<Services>>,
    req: Ruma<get_events::unstable::Request>,
) -> Res<get_events::unstable::Response> {
    let user = req.user()?.clone();
    let (device, next_batch) = (req.body.device_id, req.body.next_batch);
    services
        .run(move |s| {
            let (events, next) =
                dehydrated_devices::events(s, &user, &device, next_batch.as_deref())?;
            let mut response = get_events::unstable::Response::new(
                events
                    .iter()
                    .map(raw::<ruma::events::AnyToDeviceEvent>)
                    .collect(),
            );
            response.next_batch = next;
            Ok(response.into())
        })
        .await
}
