//! What a user may report, as the spec says: an event of a room they are joined to and may see
//! (anything else is 404 `M_NOT_FOUND`, the same answer whether the event exists or not), a room
//! this server knows, a user this server knows. Bad input changes nothing.

use ruma::{EventId, RoomId, UserId};

use super::{Report, ReportKind};
use crate::{
    error::{Error, Result},
    services::{Services, rooms::event_by_id, timeline::visibility::user_can_see},
};

/// The longest reason kept (longer ones are refused: 400 `M_BAD_JSON`, as a too-long field).
pub const MAX_REASON_CHARS: usize = 5000;

fn check_reason(reason: Option<&str>) -> Result<()> {
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(Error::bad_json(format!(
            "reason must be at most {MAX_REASON_CHARS} characters"
        )));
    }
    Ok(())
}

/// The optional `score` of an event report: an integer from -100 to 0 (400 `M_INVALID_PARAM`
/// otherwise, as Synapse).
pub fn parse_score(body: Option<&serde_json::Value>) -> Result<Option<i64>> {
    match body.and_then(|b| b.get("score")) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if (-100..=0).contains(&n) => Ok(Some(n)),
            _ => Err(Error::invalid_param(
                "score must be an integer in range [-100, 0]",
            )),
        },
    }
}

pub fn report_event(
    s: &Services,
    reporter: &UserId,
    room_id: &RoomId,
    event_id: &EventId,
    reason: Option<String>,
    score: Option<i64>,
) -> Result<u64> {
    check_reason(reason.as_deref())?;
    let not_found =
        || Error::not_found("The event was not found or you are not joined to the room.");
    let short_room = s.short.room(room_id)?.ok_or_else(not_found)?;
    if !s.membership.is_joined(short_room, reporter)? {
        return Err(not_found());
    }
    let event = event_by_id(s, event_id)?
        .filter(|e| e.pdu.room_id.as_str() == room_id.as_str())
        .ok_or_else(not_found)?;
    if !user_can_see(s, reporter, &event)? {
        return Err(not_found());
    }
    s.reports.add(&Report {
        kind: ReportKind::Event,
        received_ts: crate::util::now_ms(),
        reporter: reporter.to_owned(),
        reason,
        score,
        room_id: Some(room_id.to_owned()),
        event_id: Some(event_id.to_owned()),
        user_id: Some(event.pdu.sender.clone()),
    })
}

pub fn report_room(
    s: &Services,
    reporter: &UserId,
    room_id: &RoomId,
    reason: String,
) -> Result<u64> {
    check_reason(Some(&reason))?;
    if s.short.room(room_id)?.is_none() {
        return Err(Error::not_found("The room was not found."));
    }
    s.reports.add(&Report {
        kind: ReportKind::Room,
        received_ts: crate::util::now_ms(),
        reporter: reporter.to_owned(),
        reason: Some(reason),
        score: None,
        room_id: Some(room_id.to_owned()),
        event_id: None,
        user_id: None,
    })
}

/// A user of ours with an account, or a user of another server that is or was in a room we know.
pub fn report_user(
    s: &Services,
    reporter: &UserId,
    target: &UserId,
    reason: String,
) -> Result<u64> {
    check_reason(Some(&reason))?;
    let known = if target.server_name() == s.globals.server_name() {
        s.users.exists(target)?
    } else {
        !s.membership.rooms_of(target)?.is_empty()
    };
    if !known {
        return Err(Error::not_found("The user was not found."));
    }
    s.reports.add(&Report {
        kind: ReportKind::User,
        received_ts: crate::util::now_ms(),
        reporter: reporter.to_owned(),
        reason: Some(reason),
        score: None,
        room_id: None,
        event_id: None,
        user_id: Some(target.to_owned()),
    })
}
