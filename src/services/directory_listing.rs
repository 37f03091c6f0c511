//! The public room directory as a client or another server sees it: one summary per published room,
//! largest first, filtered by a search term, paginated by offset tokens.

use ruma::{
    OwnedRoomId, UInt,
    directory::{PublicRoomsChunk, RoomNetwork},
    events::StateEventType,
};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{self, membership::Membership},
    },
};

/// One page of the directory.
pub struct PublicRoomsPage {
    pub chunk: Vec<PublicRoomsChunk>,
    pub next_batch: Option<String>,
    pub prev_batch: Option<String>,
    pub total: Option<UInt>,
}

fn chunk_of(s: &Services, room_id: &OwnedRoomId) -> Result<PublicRoomsChunk> {
    let short = rooms::short_room(s, room_id)?;
    let joined = s.membership.members(short, Membership::Join)?.len() as u64;
    let mut chunk: PublicRoomsChunk = ruma::directory::PublicRoomsChunkInit {
        num_joined_members: UInt::new(joined).unwrap_or_default(),
        room_id: room_id.clone(),
        world_readable: false,
        guest_can_join: false,
    }
    .into();
    let text = |kind: StateEventType, field: &str| -> Result<Option<String>> {
        Ok(rooms::state_content(s, room_id, &kind, "")?
            .and_then(|c| c.get(field).and_then(Value::as_str).map(str::to_owned)))
    };
    chunk.name = text(StateEventType::RoomName, "name")?;
    chunk.topic = text(StateEventType::RoomTopic, "topic")?;
    chunk.canonical_alias =
        text(StateEventType::RoomCanonicalAlias, "alias")?.and_then(|a| a.try_into().ok());
    chunk.avatar_url = text(StateEventType::RoomAvatar, "url")?.map(Into::into);
    chunk.world_readable = text(StateEventType::RoomHistoryVisibility, "history_visibility")?
        .as_deref()
        == Some("world_readable");
    chunk.guest_can_join =
        text(StateEventType::RoomGuestAccess, "guest_access")?.as_deref() == Some("can_join");
    if let Some(rule) = text(StateEventType::RoomJoinRules, "join_rule")? {
        chunk.join_rule = rule.as_str().into();
    }
    Ok(chunk)
}

/// The directory, largest rooms first, filtered by a search term, paginated by offset tokens.
pub fn public_rooms(
    s: &Services,
    limit: Option<UInt>,
    since: Option<&str>,
    term: Option<&str>,
) -> Result<PublicRoomsPage> {
    public_rooms_of(s, &RoomNetwork::Matrix, limit, since, term)
}

/// The directory of `network`: Matrix's (the rooms users published), one third-party network
/// instance's (`<service id>|<network id>`, published by its application service), or all.
pub fn public_rooms_of(
    s: &Services,
    network: &RoomNetwork,
    limit: Option<UInt>,
    since: Option<&str>,
    term: Option<&str>,
) -> Result<PublicRoomsPage> {
    let listed = match network {
        RoomNetwork::Matrix => s.directory.public_rooms()?,
        RoomNetwork::ThirdParty(instance) => s.directory.network_rooms(Some(instance))?,
        _ => {
            let mut all = s.directory.public_rooms()?;
            for room in s.directory.network_rooms(None)? {
                if !all.contains(&room) {
                    all.push(room);
                }
            }
            all
        }
    };
    let mut chunks = Vec::new();
    for room_id in listed {
        let chunk = chunk_of(s, &room_id)?;
        if let Some(term) = term.map(str::to_lowercase).filter(|t| !t.is_empty()) {
            let hay = [
                chunk.name.as_deref(),
                chunk.topic.as_deref(),
                chunk.canonical_alias.as_ref().map(|a| a.as_str()),
            ];
            if !hay
                .iter()
                .flatten()
                .any(|h| h.to_lowercase().contains(&term))
            {
                continue;
            }
        }
        chunks.push(chunk);
    }
    chunks.sort_by(|a, b| {
        b.num_joined_members
            .cmp(&a.num_joined_members)
            .then_with(|| a.room_id.cmp(&b.room_id))
    });
    let total = chunks.len();
    let offset: usize = match since {
        Some(token) => token
            .strip_prefix('n')
            .or(token.strip_prefix('p'))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::invalid_param("Invalid since token"))?,
        None => 0,
    };
    let limit = limit.map_or(total, |l| u64::from(l) as usize).max(1);
    Ok(PublicRoomsPage {
        chunk: chunks.into_iter().skip(offset).take(limit).collect(),
        next_batch: (offset + limit < total).then(|| format!("n{}", offset + limit)),
        prev_batch: (offset > 0).then(|| format!("p{}", offset.saturating_sub(limit))),
        total: UInt::new(total as u64),
    })
}
