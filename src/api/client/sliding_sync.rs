//! Simplified sliding sync (MSC4186): `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`.
//! Computes off the async workers and long-polls on the stream position like /sync.

use std::{sync::Arc, time::Duration};

use axum::extract::State;
use http::StatusCode;
use ruma::api::client::sync::sync_events::v5;

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{
        Services,
        sync::sliding::{SlidingRequest, compute},
    },
};

pub async fn sync(
    State(services): State<Arc<Services>>,
    req: Ruma<v5::Request>,
) -> Result<RumaResponse<v5::Response>> {
    let (user, device) = (req.user()?.clone(), req.device()?.to_string());
    let body = req.body;
    let conn_id = body.conn_id.clone().unwrap_or_default();
    let prev = match body.pos.as_deref() {
        None => {
            services.sliding_sync.reset(&user, &device, &conn_id);
            None
        }
        Some(pos) => Some(
            services
                .sliding_sync
                .sent_at(&user, &device, &conn_id, pos)
                .ok_or_else(|| {
                    Error::new(
                        StatusCode::BAD_REQUEST,
                        "M_UNKNOWN_POS",
                        "Unknown or expired pos",
                    )
                })?,
        ),
    };
    let mut set_presence = Some(body.set_presence.clone());

    let max = Duration::from_millis(services.config().limits.max_sync_timeout_ms);
    let timeout = body.timeout.unwrap_or_default().min(max);
    let deadline = tokio::time::Instant::now() + timeout;
    let request = Arc::new(SlidingRequest {
        user: user.clone(),
        device: device.clone(),
        body,
    });
    let _waiting = services.metrics.sync_waiting("sliding");
    let mut wake = services.globals.subscribe();
    loop {
        wake.mark_unchanged();
        let (req, prev_sent, presence) = (request.clone(), prev.clone(), set_presence.take());
        let (mut response, sent, changed) = services
            .run(move |s| {
                if let Some(presence) = &presence {
                    super::sync::apply_set_presence(s, &req.user, presence)?;
                }
                compute(s, &req, prev_sent.as_deref())
            })
            .await?;
        let now = tokio::time::Instant::now();
        if changed || prev.is_none() || now >= deadline {
            response.pos = services.sliding_sync.record(&user, &device, &conn_id, sent);
            return Ok(response.into());
        }
        // Wake on a new stream position, a typing change or the end of someone's typing.
        let until = crate::services::sync::wake_at(&services, deadline, now);
        tokio::select! {
            result = wake.changed() => {
                if result.is_err() {
                    response.pos = services.sliding_sync.record(&user, &device, &conn_id, sent);
                    return Ok(response.into());
                }
            }
            _ = tokio::time::sleep_until(until) => {}
        }
    }
}
