//! `PUT /sendToDevice/{eventType}/{txnId}`.

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use ruma::api::client::to_device::send_event_to_device;

use super::keys::json_of;
use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::Result,
    services::{Services, to_device},
};

pub async fn send(
    State(services): State<Arc<Services>>,
    req: Ruma<send_event_to_device::v3::Request>,
) -> Result<RumaResponse<send_event_to_device::v3::Response>> {
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    let body = req.body;
    let mut messages: to_device::Messages = BTreeMap::new();
    for (target, devices) in &body.messages {
        let entry = messages.entry(target.clone()).or_default();
        for (device, content) in devices {
            entry.insert(device.to_string(), json_of(content)?);
        }
    }
    let (event_type, txn) = (body.event_type.to_string(), body.txn_id.to_string());
    services
        .run(move |s| {
            to_device::send(s, &user, device.as_str(), &event_type, &txn, &messages)?;
            Ok(send_event_to_device::v3::Response::new().into())
        })
        .await
}
