//! Event report routes of the admin API: list, details, deletion (`services/reports`).

use std::sync::Arc;

use axum::{Json, extract::State};
use serde_json::{Value, json};

use super::extract::{Admin, Args, Params};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        admin::paging::{Dir, parse_limit, parse_offset},
        reports::admin_view::{self, ListQuery},
    },
};

type Answer = Result<Json<Value>>;

fn report_id(args: &Args) -> Result<u64> {
    args.string(0)?.parse::<u64>().map_err(|_| {
        Error::invalid_param(
            "The report_id parameter must be a string representing a positive integer.",
        )
    })
}

fn not_found() -> Error {
    Error::not_found("Event report not found")
}

/// `GET /_synapse/admin/v1/event_reports`: `from`, `limit`, `dir` (`b`, newest first, by
/// default), `room_id`, `user_id` (the reporter), `event_sender_user_id`.
pub async fn list(State(services): State<Arc<Services>>, _: Admin, params: Params) -> Answer {
    let q = ListQuery {
        from: parse_offset(params.get("from"), "from")?.unwrap_or(0),
        limit: parse_limit(params.get("limit"))?,
        dir: match params.get("dir") {
            None => Dir::Backward,
            other => Dir::parse(other)?,
        },
        room_id: params.get("room_id").map(str::to_owned),
        user_id: params.get("user_id").map(str::to_owned),
        event_sender_user_id: params.get("event_sender_user_id").map(str::to_owned),
    };
    services
        .run(move |s| Ok(Json(admin_view::list(s, &q)?)))
        .await
}

pub async fn details(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let id = report_id(&args)?;
    services
        .run(move |s| Ok(Json(admin_view::details(s, id)?.ok_or_else(not_found)?)))
        .await
}

pub async fn delete(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let id = report_id(&args)?;
    services
        .run(move |s| {
            let is_event_report = s
                .reports
                .get(id)?
                .is_some_and(|r| r.kind == crate::services::reports::ReportKind::Event);
            if !is_event_report || !s.reports.delete(id)? {
                return Err(not_found());
            }
            Ok(Json(json!({})))
        })
        .await
}
