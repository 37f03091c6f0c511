//! `DELETE /_synapse/admin/v1|v2/rooms/{roomId}`: with `block`, the room is blocked first (no local
//! join, knock or invite again); every local member leaves (one leave event each, sent as
//! themselves), then the room's local aliases and its directory listing go, with the record of the
//! deletion, in one batch. With `purge` (Synapse's default), every non-state event of the room is
//! then purged (`timeline::purge`: content, search postings, relations, notifications), the
//! record saying `purging` until it is done.

use ruma::{OwnedRoomAliasId, OwnedUserId, RoomId};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    services::{
        Services,
        directory::{ALIASES, PUBLIC_ROOMS, ROOM_ALIASES},
        rooms::{self, membership::Membership},
    },
    storage::{
        Batch, Map,
        db::{decode_json, encode_json},
        keys::Key,
    },
    util::random_string,
};

/// The job kind of a deletion's purge.
pub const JOB_KIND: &str = "room_deletion";

/// delete id → [`Deletion`].
pub const ROOM_DELETIONS: Map = Map("admin_room_deletions");

/// What a deletion did (answered by `delete_status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deletion {
    pub delete_id: String,
    pub room_id: ruma::OwnedRoomId,
    /// `complete`, or `failed` when a member could not be made to leave.
    pub status: String,
    pub error: Option<String>,
    pub shutdown_room: ShutdownResult,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShutdownResult {
    pub kicked_users: Vec<OwnedUserId>,
    pub failed_to_kick_users: Vec<OwnedUserId>,
    pub local_aliases: Vec<OwnedRoomAliasId>,
    pub new_room_id: Option<String>,
}

/// What a deletion does besides the shutdown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub block: bool,
    pub purge: bool,
}

/// Deletes a room as the module says, up to the purge ([`purge_deleted`]); returns the record
/// (also stored).
pub fn delete_room(
    s: &Services,
    room_id: &RoomId,
    admin: &ruma::UserId,
    options: Options,
) -> Result<Deletion> {
    let Some(short) = s.short.room(room_id)? else {
        return Err(Error::not_found("Room not found"));
    };
    if options.block {
        super::room_block::set_blocked(s, room_id, admin, true)?;
    }
    let server = s.globals.server_name();
    let mut result = ShutdownResult::default();
    let mut errors = Vec::new();
    for wanted in [Membership::Join, Membership::Invite, Membership::Knock] {
        for user in s.membership.members(short, wanted)? {
            if user.server_name() != server {
                continue;
            }
            match rooms::set_membership(
                s,
                room_id,
                &user,
                &user,
                "leave",
                Some("This room has been shut down"),
                None,
            ) {
                Ok(_) => result.kicked_users.push(user),
                Err(e) => {
                    errors.push(format!("{user}: {}", e.message));
                    result.failed_to_kick_users.push(user);
                }
            }
        }
    }
    let mut batch = Batch::new();
    for alias in s.directory.aliases_of(room_id)? {
        batch.delete(ALIASES, alias.as_bytes());
        batch.delete(
            ROOM_ALIASES,
            Key::new().str(room_id.as_str()).str(alias.as_str()).build(),
        );
        result.local_aliases.push(alias);
    }
    batch.delete(PUBLIC_ROOMS, room_id.as_bytes());
    let deletion = Deletion {
        delete_id: random_string(16),
        room_id: room_id.to_owned(),
        status: if !errors.is_empty() {
            "failed"
        } else if options.purge {
            "purging"
        } else {
            "complete"
        }
        .to_owned(),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
        shutdown_room: result,
    };
    batch.put(
        ROOM_DELETIONS,
        deletion.delete_id.as_bytes(),
        encode_json(&deletion),
    );
    s.globals.db.write(batch)?;
    Ok(deletion)
}

/// Purges the deleted room's events and marks its record `complete` (or `failed`).
pub fn purge_deleted(s: &Services, delete_id: &str) -> Result<()> {
    let mut deletion = deletion(s, delete_id)?
        .ok_or_else(|| Error::internal(format!("no deletion {delete_id}")))?;
    let short_room = s
        .short
        .room(&deletion.room_id)?
        .ok_or_else(|| Error::internal("a deleted room without a short id"))?;
    let scope = crate::services::timeline::purge::Scope {
        before_ts: u64::MAX,
        keep_graph_ends: false,
        local_events: true,
    };
    match crate::services::timeline::purge::purge(s, short_room, scope, &|| false) {
        Ok(_) => deletion.status = "complete".into(),
        Err(e) => {
            deletion.status = "failed".into();
            deletion.error = Some(e.message);
        }
    }
    s.globals.db.put(
        ROOM_DELETIONS,
        deletion.delete_id.as_bytes(),
        encode_json(&deletion),
    )?;
    Ok(())
}

/// Every recorded deletion of `room_id`.
pub fn deletions_of(s: &Services, room_id: &RoomId) -> Result<Vec<Deletion>> {
    let mut out = Vec::new();
    for entry in s.globals.db.scan_prefix(ROOM_DELETIONS, &[]) {
        let (_, value) = entry?;
        let deletion: Deletion = decode_json(ROOM_DELETIONS, &value)?;
        if deletion.room_id == room_id {
            out.push(deletion);
        }
    }
    Ok(out)
}

/// The deletion of that id.
pub fn deletion(s: &Services, delete_id: &str) -> Result<Option<Deletion>> {
    Ok(s.globals
        .db
        .get_json(ROOM_DELETIONS, delete_id.as_bytes())?)
}
