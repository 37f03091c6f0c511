//! `export-room`: a room's whole history, its state, its members over time, the media it
//! references and a readable transcript, in one tar archive:
//!
//! - `room.json`: the room id, version, name, topic, the counts, when and where it was exported;
//! - `events.jsonl`: every stored event in timeline order (the backfilled history first, oldest
//!   first, then the timeline), one client-format event per line, redacted ones as they are stored
//!   (with `unsigned.redacted_because`), edits, reactions and thread replies as their own events;
//! - `state.json`: the current state events;
//! - `members.jsonl`: each membership change (`ts`, `event_id`, `user_id`, `membership`,
//!   `displayname`, `sender`), in order;
//! - `media/<server>/<mediaId>` and `media.json` (each referenced `mxc://` URI with its file, type
//!   and size, or `missing` when this server has no copy);
//! - `transcript.html`: see `transcript.rs`.

use std::{
    collections::{BTreeSet, HashMap},
    io::Write,
    path::{Path, PathBuf},
};

use ruma::RoomId;
use serde_json::{Value, json};

use super::{
    archive::{Archive, Scratch},
    io_error,
    transcript::{MediaLink, Transcript},
};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        jobs::Progress,
        rooms::event_by_short,
        timeline::{
            append::unsigned_for,
            pdu::{ClientFormat, client_event},
        },
    },
    storage::Direction,
};

/// Images up to this size are embedded in the transcript; larger ones are linked.
const INLINE_IMAGE_BYTES: u64 = 2 << 20;

/// A stored event of the room in client format (without the reader-dependent `age`).
pub fn client_form(event: &crate::services::timeline::StoredEvent, room_id: &RoomId) -> Value {
    let mut unsigned = unsigned_for(&event.json, None);
    unsigned.remove("age");
    client_event(
        &event.json,
        &event.pdu.event_id,
        room_id,
        ClientFormat::Room,
        unsigned,
    )
}

/// The room's events, oldest first: the backfilled history (largest sequence first), then the
/// timeline.
fn event_order(s: &Services, short_room: u64) -> Result<Vec<u64>> {
    let mut order: Vec<u64> = s
        .timeline
        .scan_backfilled(short_room, u64::MAX, Direction::Backward, usize::MAX)?
        .into_iter()
        .map(|(_, short)| short)
        .collect();
    order.extend(
        s.timeline
            .scan(short_room, 0, Direction::Forward, usize::MAX)?
            .into_iter()
            .map(|(_, short)| short),
    );
    Ok(order)
}

/// Every `mxc://` URI in `value` (content, recursively).
pub fn collect_mxc(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) if s.starts_with("mxc://") => {
            out.insert(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| collect_mxc(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_mxc(v, out)),
        _ => {}
    }
}

/// A medium this server has a copy of.
pub struct StoredMedium {
    pub path: PathBuf,
    pub content_type: String,
    pub size: u64,
    pub filename: Option<String>,
}

/// Looks up `mxc://server/id` in the media store.
pub fn stored_medium(s: &Services, mxc: &str) -> Result<Option<(String, StoredMedium)>> {
    let Some((server, media_id)) = mxc.trim_start_matches("mxc://").split_once('/') else {
        return Ok(None);
    };
    let Ok(server_name) = <&ruma::ServerName>::try_from(server) else {
        return Ok(None);
    };
    let safe = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:[]".contains(c))
            && part != ".."
    };
    if !safe(server) || !safe(media_id) {
        return Ok(None);
    }
    let Some(record) = crate::services::media::records::get(s.media.db(), server_name, media_id)?
    else {
        return Ok(None);
    };
    let Some(sha256) = record.sha256 else {
        return Ok(None);
    };
    let path = s.media.files.path_of(&sha256).map_err(io_error)?;
    if !path.is_file() {
        return Ok(None);
    }
    Ok(Some((
        format!("media/{server}/{media_id}"),
        StoredMedium {
            path,
            content_type: record
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: record.size,
            filename: record.filename,
        },
    )))
}

/// Adds the media of `mxcs` to the archive; returns their index and what the transcript links.
pub fn add_media(
    s: &Services,
    archive: &mut Archive,
    mxcs: &BTreeSet<String>,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Vec<Value>, HashMap<String, (String, StoredMedium)>)> {
    let mut index = Vec::new();
    let mut stored = HashMap::new();
    for (j, mxc) in mxcs.iter().enumerate() {
        match stored_medium(s, mxc)? {
            Some((name, medium)) => {
                archive.add_file(&name, &medium.path).map_err(io_error)?;
                index.push(json!({
                    "mxc": mxc, "file": name, "content_type": medium.content_type,
                    "size": medium.size, "filename": medium.filename,
                }));
                stored.insert(mxc.clone(), (name, medium));
            }
            None => index.push(json!({ "mxc": mxc, "missing": true })),
        }
        progress(Progress::new("media", j as u64 + 1, mxcs.len() as u64));
    }
    Ok((index, stored))
}

pub fn export_room(
    s: &Services,
    room_id: &RoomId,
    out: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Value> {
    let short_room = s
        .short
        .room(room_id)?
        .ok_or_else(|| Error::not_found("Room not found"))?;
    let version = s.timeline.room_version(room_id)?;
    let order = event_order(s, short_room)?;
    let total = order.len() as u64;
    let mut archive = Archive::create(out).map_err(io_error)?;
    let mut events = Scratch::beside(out, "events").map_err(io_error)?;
    let mut members = String::new();
    let mut transcript = Transcript::new(room_id.as_str());
    let mut mxcs = BTreeSet::new();
    let mut written = 0u64;
    progress(Progress::new("events", 0, total));
    for (i, short) in order.iter().enumerate() {
        if let Some(event) = event_by_short(s, *short, room_id)? {
            let client = client_form(&event, room_id);
            serde_json::to_writer(&mut events.writer, &client)
                .map_err(|e| Error::internal(e.to_string()))?;
            events.writer.write_all(b"\n").map_err(io_error)?;
            written += 1;
            collect_mxc(&client["content"], &mut mxcs);
            if client["type"] == "m.room.member" {
                let line = json!({
                    "ts": client["origin_server_ts"], "event_id": client["event_id"],
                    "user_id": client["state_key"], "membership": client["content"]["membership"],
                    "displayname": client["content"]["displayname"], "sender": client["sender"],
                });
                members.push_str(&line.to_string());
                members.push('\n');
            }
            transcript.add(&client);
        }
        if i % 200 == 199 || i + 1 == order.len() {
            progress(Progress::new("events", i as u64 + 1, total));
        }
    }
    events.writer.flush().map_err(io_error)?;
    archive
        .add_file("events.jsonl", &events.path)
        .map_err(io_error)?;
    let mut state = Vec::new();
    for short in s.state.current_state(short_room)?.values() {
        if let Some(event) = event_by_short(s, *short, room_id)? {
            state.push(client_form(&event, room_id));
        }
    }
    let pretty = |v: &Value| serde_json::to_vec_pretty(v).unwrap_or_default();
    archive
        .add("state.json", &pretty(&Value::Array(state)))
        .map_err(io_error)?;
    archive
        .add("members.jsonl", members.as_bytes())
        .map_err(io_error)?;
    let (media_index, stored) = add_media(s, &mut archive, &mxcs, progress)?;
    archive
        .add("media.json", &pretty(&Value::Array(media_index)))
        .map_err(io_error)?;
    let now = crate::util::now_ms();
    let server = s.config().server_name.to_string();
    let html = transcript.render(&server, now, &|mxc| {
        let (name, medium) = stored.get(mxc)?;
        if medium.size <= INLINE_IMAGE_BYTES && medium.content_type.starts_with("image/") {
            if let Ok(bytes) = std::fs::read(&medium.path) {
                return Some(MediaLink::Inline(medium.content_type.clone(), bytes));
            }
        }
        Some(MediaLink::File(name.clone()))
    });
    archive
        .add("transcript.html", html.as_bytes())
        .map_err(io_error)?;
    let (messages, thread_replies) = transcript.counts();
    let about = json!({
        "room_id": room_id, "room_version": version, "server": server, "exported_ts": now,
        "events": written, "messages": messages, "thread_replies": thread_replies,
        "media": stored.len(), "media_missing": mxcs.len() - stored.len(),
    });
    archive
        .add("room.json", &pretty(&about))
        .map_err(io_error)?;
    drop(events);
    let bytes = archive.finish().map_err(io_error)?;
    Ok(json!({
        "file": out, "bytes": bytes, "events": written, "messages": messages,
        "media": stored.len(),
    }))
}
