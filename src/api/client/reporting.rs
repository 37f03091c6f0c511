//! Reporting content to the server's admins: an event, a room, a user (`services/reports`).

use std::sync::Arc;

use axum::extract::State;
use ruma::api::client::{
    reporting::report_user,
    room::{report_content, report_room},
};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{Services, reports::submit},
};

type Res<T> = Result<RumaResponse<T>>;

/// `POST /rooms/{roomId}/report/{eventId}`: `reason` and (older spec versions, Synapse) `score`.
pub async fn report_event(
    State(services): State<Arc<Services>>,
    req: Ruma<report_content::v3::Request>,
) -> Res<report_content::v3::Response> {
    let user = req.user()?.clone();
    let score = submit::parse_score(req.json.as_ref())?;
    let body = req.body;
    services
        .run(move |s| {
            submit::report_event(s, &user, &body.room_id, &body.event_id, body.reason, score)?;
            Ok(report_content::v3::Response::new().into())
        })
        .await
}

/// `POST /rooms/{roomId}/report`: `reason` is required (it may be empty).
pub async fn report_room(
    State(services): State<Arc<Services>>,
    req: Ruma<report_room::v3::Request>,
) -> Res<report_room::v3::Response> {
    let user = req.user()?.clone();
    if !req
        .json
        .as_ref()
        .and_then(|b| b.get("reason"))
        .is_some_and(|r| r.is_string())
    {
        return Err(Error::bad_json("reason is required and must be a string"));
    }
    let body = req.body;
    services
        .run(move |s| {
            submit::report_room(s, &user, &body.room_id, body.reason)?;
            Ok(report_room::v3::Response::new().into())
        })
        .await
}

/// `POST /users/{userId}/report`: `reason` is required (it may be empty).
pub async fn report_user(
    State(services): State<Arc<Services>>,
    req: Ruma<report_user::v3::Request>,
) -> Res<report_user::v3::Response> {
    let user = req.user()?.clone();
    let body = req.body;
    services
        .run(move |s| {
            submit::report_user(s, &user, &body.user_id, body.reason)?;
            Ok(report_user::v3::Response::new().into())
        })
        .await
}
