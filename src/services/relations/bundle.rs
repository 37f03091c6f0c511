//! Bundled aggregations (`unsigned.m.relations`) of the events served to clients: `m.thread`
//! (latest reply with its own aggregations, reply count, whether the viewer took part),
//! `m.replace` (the latest valid edit, whole; the original content is left as it is, spec v1.7+)
//! and `m.reference` (the ids of the referencing events). Each read is a point lookup or a scan
//! of one target's entries of one relation type.

use ruma::UserId;
use serde_json::{Map, Value, json};

use super::{query, threads};
use crate::{
    error::Result,
    services::{
        Services,
        rooms::event_by_short,
        timeline::{StoredEvent, pdu::ClientFormat, visibility::user_can_see},
    },
    storage::Direction,
};

/// The event as a client sees it, with its bundled aggregations for `user` (and
/// `unsigned.transaction_id` when `device` sent it).
pub fn to_client(
    s: &Services,
    event: &StoredEvent,
    format: ClientFormat,
    user: &UserId,
    device: Option<&str>,
) -> Result<Value> {
    // An erased sender's events reach readers who were not in the room then in redacted form.
    if s.erased_users.contains(&event.pdu.sender)
        && event.pdu.sender != user
        && !crate::services::timeline::visibility::joined_at(s, user, event)?
    {
        return pruned(s, event, format);
    }
    let mut value = event.to_client(&s.timeline, format, device.map(|d| (user, d)))?;
    if let Some(relations) = aggregations(s, event, format, user, true)? {
        attach(&mut value, relations);
    }
    Ok(value)
}

/// The event redacted by its room version's rules, as a client sees it.
fn pruned(s: &Services, event: &StoredEvent, format: ClientFormat) -> Result<Value> {
    let version = s
        .timeline
        .room_version(&event.pdu.room_id)?
        .ok_or_else(|| crate::error::Error::internal("a room without a version"))?;
    let rules = crate::services::rooms::version::rules(&version)?;
    let redacted = ruma::canonical_json::redact(event.json.clone(), &rules.redaction, None)
        .map_err(|e| crate::error::Error::internal(e.to_string()))?;
    let unsigned = crate::services::timeline::append::unsigned_for(&redacted, None);
    Ok(crate::services::timeline::pdu::client_event(
        &redacted,
        &event.pdu.event_id,
        &event.pdu.room_id,
        format,
        unsigned,
    ))
}

fn attach(value: &mut Value, relations: Map<String, Value>) {
    if let Value::Object(object) = value {
        let unsigned = object.entry("unsigned").or_insert_with(|| json!({}));
        if let Value::Object(unsigned) = unsigned {
            unsigned.insert("m.relations".into(), Value::Object(relations));
        }
    }
}

fn is_redacted(event: &StoredEvent) -> bool {
    matches!(event.json.get("unsigned"), Some(ruma::CanonicalJsonValue::Object(u)) if u.contains_key("redacted_because"))
}

/// The aggregations of `event`, or `None` when nothing relates to it; `with_thread` is false for
/// a thread's latest event (a reply is not itself a thread root).
pub fn aggregations(
    s: &Services,
    event: &StoredEvent,
    format: ClientFormat,
    user: &UserId,
    with_thread: bool,
) -> Result<Option<Map<String, Value>>> {
    let room = event.meta.short_room;
    let id = event.pdu.event_id.as_str();
    let local = event.pdu.sender.server_name() == s.globals.server_name();
    if s.globals
        .stream_changes
        .surely_without_relations(id, event.meta.pos, local)
    {
        return Ok(None);
    }
    let mut out = Map::new();
    if with_thread
        && let Some(meta) = threads::meta(s, room, id)?
        && let Some(latest) = latest_visible_reply(s, event, meta.latest_short, user)?
    {
        let mut latest_json = latest.to_client(&s.timeline, format, None)?;
        if let Some(relations) = aggregations(s, &latest, format, user, false)? {
            attach(&mut latest_json, relations);
        }
        out.insert(
            "m.thread".into(),
            json!({
                "latest_event": latest_json,
                "count": meta.count,
                "current_user_participated": threads::participated(s, room, event, user)?,
            }),
        );
    }
    if let Some(edit) = latest_edit(s, event)? {
        out.insert(
            "m.replace".into(),
            edit.to_client(&s.timeline, format, None)?,
        );
    }
    let mut references = Vec::new();
    query::each_direct(
        s,
        room,
        id,
        Some("m.reference"),
        0,
        Direction::Forward,
        |entry| {
            references.push(json!({ "event_id": s.short.event_id(entry.short)?.to_string() }));
            Ok(true)
        },
    )?;
    if !references.is_empty() {
        out.insert("m.reference".into(), json!({ "chunk": references }));
    }
    Ok((!out.is_empty()).then_some(out))
}

/// Replies looked at, newest first, for one the viewer may see when they may not see the latest.
const VISIBLE_REPLY_SEARCH: usize = 50;

/// The thread's latest reply that `user` may see (history visibility: a member who left does not
/// see replies sent after they left): the latest one, or else the newest visible among the
/// [`VISIBLE_REPLY_SEARCH`] newest; `None` when none is.
fn latest_visible_reply(
    s: &Services,
    root: &StoredEvent,
    latest_short: u64,
    user: &UserId,
) -> Result<Option<std::sync::Arc<StoredEvent>>> {
    let room_id = &root.pdu.room_id;
    if let Some(latest) = event_by_short(s, latest_short, room_id)?
        && user_can_see(s, user, &latest)?
    {
        return Ok(Some(latest));
    }
    let mut found = None;
    let mut looked = 0;
    query::each_direct(
        s,
        root.meta.short_room,
        root.pdu.event_id.as_str(),
        Some("m.thread"),
        u64::MAX,
        Direction::Backward,
        |entry| {
            looked += 1;
            if let Some(reply) = event_by_short(s, entry.short, room_id)?
                && user_can_see(s, user, &reply)?
            {
                found = Some(reply);
                return Ok(false);
            }
            Ok(looked < VISIBLE_REPLY_SEARCH)
        },
    )?;
    Ok(found)
}

/// The edit that applies to `original` (spec "Validity of replacement events"): same sender,
/// same type, neither a state event, the original not itself an edit, `m.new_content` present
/// (unless encrypted); the latest by `origin_server_ts`, then by event id. None when the
/// original is redacted.
pub fn latest_edit(
    s: &Services,
    original: &StoredEvent,
) -> Result<Option<std::sync::Arc<StoredEvent>>> {
    if original.pdu.state_key.is_some() || is_redacted(original) {
        return Ok(None);
    }
    if original
        .pdu
        .content_field("m.relates_to")
        .and_then(|r| r.get("rel_type").cloned())
        == Some(json!("m.replace"))
    {
        return Ok(None);
    }
    let mut best: Option<std::sync::Arc<StoredEvent>> = None;
    let kind = original.pdu.kind.to_string();
    query::each_direct(
        s,
        original.meta.short_room,
        original.pdu.event_id.as_str(),
        Some("m.replace"),
        0,
        Direction::Forward,
        |entry| {
            if entry.kind != kind {
                return Ok(true);
            }
            let Some(edit) = event_by_short(s, entry.short, &original.pdu.room_id)? else {
                return Ok(true);
            };
            let valid = edit.pdu.sender == original.pdu.sender
                && edit.pdu.state_key.is_none()
                && (kind == "m.room.encrypted"
                    || edit
                        .pdu
                        .content_field("m.new_content")
                        .is_some_and(|c| c.is_object()));
            if !valid {
                return Ok(true);
            }
            let newer = match &best {
                None => true,
                Some(b) => {
                    (edit.pdu.origin_server_ts, &edit.pdu.event_id)
                        > (b.pdu.origin_server_ts, &b.pdu.event_id)
                }
            };
            if newer {
                best = Some(edit);
            }
            Ok(true)
        },
    )?;
    Ok(best)
}
