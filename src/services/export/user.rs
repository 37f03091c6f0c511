//! `export-user`: what Synapse's `export-data` gives, in one tar archive:
//!
//! - `user.json`: the account (id, creation time, admin flag, deactivated), its profile;
//! - `devices.json`: the devices (id, name, last seen), without tokens;
//! - `account_data.json`: global and per-room account data;
//! - `rooms/<roomId>/events.jsonl`: for each room the user is or was in, the events they may see
//!   (history visibility, up to a leave), in timeline order, and `rooms/<roomId>/membership.json`;
//! - `media/…` and `media.json`: the media the user uploaded.

use std::{collections::BTreeSet, io::Write, path::Path};

use ruma::UserId;
use serde_json::{Value, json};

use super::{
    archive::{Archive, Scratch},
    io_error,
    room::{add_media, client_form},
};
use crate::{
    error::{Error, Result},
    services::{
        Services, jobs::Progress, rooms::event_by_short, timeline::visibility::user_can_see,
    },
    storage::Direction,
};

pub fn export_user(
    s: &Services,
    user: &UserId,
    out: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Value> {
    let account = s
        .users
        .account(user)?
        .ok_or_else(|| Error::not_found("User not found"))?;
    let mut archive = Archive::create(out).map_err(io_error)?;
    let pretty = |v: &Value| serde_json::to_vec_pretty(v).unwrap_or_default();
    let profile = s.users.profile(user)?.unwrap_or_default();
    let about = json!({
        "user_id": user, "created_ts": account.created_ts, "admin": account.admin,
        "deactivated": account.deactivated, "displayname": profile.displayname,
        "avatar_url": profile.avatar_url, "exported_ts": crate::util::now_ms(),
    });
    archive
        .add("user.json", &pretty(&about))
        .map_err(io_error)?;
    let devices: Vec<Value> = s
        .users
        .devices(user)?
        .into_iter()
        .map(|d| {
            json!({ "device_id": d.device_id, "display_name": d.display_name,
                    "last_seen_ts": d.last_seen_ts, "last_seen_ip": d.last_seen_ip })
        })
        .collect();
    archive
        .add("devices.json", &pretty(&Value::Array(devices)))
        .map_err(io_error)?;
    let mut global = serde_json::Map::new();
    let mut rooms_data = serde_json::Map::new();
    for entry in s.account_data.changes_since(user, 0)? {
        match entry.room {
            None => {
                global.insert(entry.kind, entry.content);
            }
            Some(room) => {
                rooms_data
                    .entry(room.to_string())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|m| m.insert(entry.kind, entry.content));
            }
        }
    }
    archive
        .add(
            "account_data.json",
            &pretty(&json!({ "global": global, "rooms": rooms_data })),
        )
        .map_err(io_error)?;

    let rooms = s.membership.rooms_of(user)?;
    let mut events_total = 0u64;
    for (i, room) in rooms.iter().enumerate() {
        let Some(short_room) = s.short.room(&room.room_id)? else {
            continue;
        };
        let folder = format!("rooms/{}", room.room_id);
        let mut events = Scratch::beside(out, "room").map_err(io_error)?;
        for (_, short) in s
            .timeline
            .scan(short_room, 0, Direction::Forward, usize::MAX)?
        {
            let Some(event) = event_by_short(s, short, &room.room_id)? else {
                continue;
            };
            if !user_can_see(s, user, &event)? {
                continue;
            }
            serde_json::to_writer(&mut events.writer, &client_form(&event, &room.room_id))
                .map_err(|e| Error::internal(e.to_string()))?;
            events.writer.write_all(b"\n").map_err(io_error)?;
            events_total += 1;
        }
        events.writer.flush().map_err(io_error)?;
        archive
            .add_file(&format!("{folder}/events.jsonl"), &events.path)
            .map_err(io_error)?;
        archive
            .add(
                &format!("{folder}/membership.json"),
                &pretty(&json!({ "membership": room.membership.as_str() })),
            )
            .map_err(io_error)?;
        progress(Progress::new("rooms", i as u64 + 1, rooms.len() as u64));
    }

    let server = s.config().server_name.clone();
    let uploads: BTreeSet<String> = crate::services::media::admin::uploads_of(s, user)?
        .into_iter()
        .map(|(media_id, _)| format!("mxc://{server}/{media_id}"))
        .collect();
    let (index, stored) = add_media(s, &mut archive, &uploads, progress)?;
    archive
        .add("media.json", &pretty(&Value::Array(index)))
        .map_err(io_error)?;
    let bytes = archive.finish().map_err(io_error)?;
    Ok(json!({
        "file": out, "bytes": bytes, "rooms": rooms.len(), "events": events_total,
        "media": stored.len(),
    }))
}
