//! The admin API's view of event reports (`GET /_synapse/admin/v1/event_reports` and
//! `/event_reports/{id}`), with the fields Synapse's admin API documents: the report, the room's
//! current name and canonical alias, the event's sender, and (details only) the event itself.

use ruma::{RoomId, events::StateEventType};
use serde_json::{Value, json};

use super::{Report, ReportKind};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        admin::paging::{Dir, sorted_page},
        rooms::{event_by_id, state_content},
    },
};

/// The filters and page of the list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub from: usize,
    pub limit: usize,
    /// `b` (the default): newest first.
    pub dir: Dir,
    pub room_id: Option<String>,
    /// The reporter.
    pub user_id: Option<String>,
    /// The reported event's sender.
    pub event_sender_user_id: Option<String>,
}

fn room_field(s: &Services, room_id: &RoomId, kind: StateEventType, field: &str) -> Result<Value> {
    Ok(state_content(s, room_id, &kind, "")?
        .and_then(|c| c.get(field).cloned())
        .unwrap_or(Value::Null))
}

/// One report as the list shows it.
fn entry(s: &Services, id: u64, report: &Report) -> Result<Value> {
    let (name, alias) = match &report.room_id {
        Some(room_id) => (
            room_field(s, room_id, StateEventType::RoomName, "name")?,
            room_field(s, room_id, StateEventType::RoomCanonicalAlias, "alias")?,
        ),
        None => (Value::Null, Value::Null),
    };
    Ok(json!({
        "id": id,
        "received_ts": report.received_ts,
        "room_id": report.room_id,
        "name": name,
        "event_id": report.event_id,
        "user_id": report.reporter,
        "reason": report.reason,
        "score": report.score,
        "sender": report.user_id,
        "canonical_alias": alias,
    }))
}

fn matches(report: &Report, q: &ListQuery) -> bool {
    let same =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    same(&q.room_id, report.room_id.as_deref().map(|r| r.as_str()))
        && same(&q.user_id, Some(report.reporter.as_str()))
        && same(
            &q.event_sender_user_id,
            report.user_id.as_deref().map(|u| u.as_str()),
        )
}

/// `GET /event_reports`: `{ event_reports, total, next_token? }`.
pub fn list(s: &Services, q: &ListQuery) -> Result<Value> {
    let reports: Vec<(u64, Report)> = s
        .reports
        .all(ReportKind::Event)?
        .into_iter()
        .filter(|(_, r)| matches(r, q))
        .collect();
    let page = sorted_page(reports, |a, b| a.0.cmp(&b.0), q.dir, q.from, q.limit);
    let entries = page
        .items
        .iter()
        .map(|(id, r)| entry(s, *id, r))
        .collect::<Result<Vec<_>>>()?;
    let mut body = json!({ "event_reports": entries, "total": page.total });
    if let Some(next) = page.next {
        body["next_token"] = json!(next);
    }
    Ok(body)
}

/// `GET /event_reports/{id}`: the entry with the reported event (`event_json`, as stored);
/// `None` when there is no such event report.
pub fn details(s: &Services, id: u64) -> Result<Option<Value>> {
    let Some(report) = s.reports.get(id)?.filter(|r| r.kind == ReportKind::Event) else {
        return Ok(None);
    };
    let mut body = entry(s, id, &report)?;
    let event_json = match &report.event_id {
        Some(event_id) => event_by_id(s, event_id)?
            .map(|e| serde_json::to_value(&e.json).map_err(|e| Error::internal(e.to_string())))
            .transpose()?
            .unwrap_or(Value::Null),
        None => Value::Null,
    };
    body["event_json"] = event_json;
    Ok(Some(body))
}
