//! `GET /_matrix/client/v1/rooms/{roomId}/hierarchy`: a depth-first walk of a space tree from
//! the room given, each room summarised from our own state when we are in it, else asked of the
//! servers in its `m.space.child` event's `via` (federation `hierarchy`); only rooms the user may
//! see are listed and followed. Pages are offsets into the walk, which is done again for each page.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use axum::extract::State;
use ruma::{
    OwnedRoomId, OwnedServerName, OwnedUserId,
    api::client::space::{SpaceHierarchyRoomsChunk, get_hierarchy},
    room::{RoomSummary, RoomType},
};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    federation::hierarchy::ask,
    services::{
        Services,
        rooms::hierarchy::{SpaceSummary, Viewer, local_summary, may_see},
    },
};

type Res<T> = Result<RumaResponse<T>>;

/// Rooms per page when the client gives no `limit`, and the most it may ask.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// The deepest walk (the default when the client gives no `max_depth`).
const MAX_DEPTH: usize = 10;

/// A pagination token: the rooms already given, and the parameters that may not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub skip: usize,
    pub max_depth: Option<u64>,
    pub suggested_only: bool,
}

impl PageToken {
    pub fn encode(&self) -> String {
        let depth = self
            .max_depth
            .map_or_else(|| "-".to_owned(), |d| d.to_string());
        format!("h{}_{depth}_{}", self.skip, u8::from(self.suggested_only))
    }

    pub fn parse(token: &str) -> Option<Self> {
        let mut parts = token.strip_prefix('h')?.split('_');
        let skip = parts.next()?.parse().ok()?;
        let max_depth = match parts.next()? {
            "-" => None,
            d => Some(d.parse().ok()?),
        };
        let suggested_only = match parts.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        parts.next().is_none().then_some(Self {
            skip,
            max_depth,
            suggested_only,
        })
    }
}

pub async fn hierarchy(
    State(services): State<Arc<Services>>,
    req: Ruma<get_hierarchy::v1::Request>,
) -> Res<get_hierarchy::v1::Response> {
    let user = req.user()?.clone();
    let body = req.body;
    let limit = match body.limit.map(u64::from) {
        Some(0) => return Err(Error::invalid_param("limit must be greater than zero")),
        Some(l) => (l as usize).min(MAX_LIMIT),
        None => DEFAULT_LIMIT,
    };
    let requested_depth = body.max_depth.map(u64::from);
    let max_depth = requested_depth.map_or(MAX_DEPTH, |d| (d as usize).min(MAX_DEPTH));
    let skip = match &body.from {
        None => 0,
        Some(from) => {
            let token = PageToken::parse(from)
                .ok_or_else(|| Error::invalid_param("Unknown pagination token"))?;
            if token.max_depth != requested_depth || token.suggested_only != body.suggested_only {
                return Err(Error::invalid_param(
                    "max_depth and suggested_only cannot change between pages",
                ));
            }
            token.skip
        }
    };
    let rooms = walk(
        &services,
        &user,
        &body.room_id,
        max_depth,
        body.suggested_only,
        skip + limit + 1,
    )
    .await?;
    let more = rooms.len() > skip + limit;
    let mut response = get_hierarchy::v1::Response::new();
    response.rooms = rooms.into_iter().skip(skip).take(limit).collect();
    if more {
        response.next_batch = Some(
            PageToken {
                skip: skip + limit,
                max_depth: requested_depth,
                suggested_only: body.suggested_only,
            }
            .encode(),
        );
    }
    Ok(response.into())
}

/// The first `want` rooms of the walk from `root`, depth first, children in the spec's order.
async fn walk(
    services: &Arc<Services>,
    user: &OwnedUserId,
    root: &OwnedRoomId,
    max_depth: usize,
    suggested_only: bool,
    want: usize,
) -> Result<Vec<SpaceHierarchyRoomsChunk>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    // What remote servers told us: summaries of children, and children we may not see.
    let mut learnt: HashMap<OwnedRoomId, RoomSummary> = HashMap::new();
    let mut inaccessible: HashSet<OwnedRoomId> = HashSet::new();
    let root_via: Vec<OwnedServerName> = root
        .server_name()
        .map(ToOwned::to_owned)
        .into_iter()
        .collect();
    let mut stack = vec![(root.clone(), 0usize, root_via)];
    while let Some((room_id, depth, via)) = stack.pop() {
        if out.len() >= want {
            break;
        }
        if inaccessible.contains(&room_id) || !seen.insert(room_id.clone()) {
            continue;
        }
        let is_root = depth == 0;
        let r = room_id.clone();
        let space = match services.run(move |s| local_summary(s, &r)).await? {
            Some(space) => Some(space),
            None => {
                let bare = |summary: &RoomSummary| SpaceSummary {
                    summary: summary.clone(),
                    children_state: Vec::new(),
                    children: Vec::new(),
                };
                match learnt.get(&room_id) {
                    // A room a remote answer summarised, with no children to follow.
                    Some(summary)
                        if summary.room_type != Some(RoomType::Space) || depth >= max_depth =>
                    {
                        Some(bare(summary))
                    }
                    _ => match ask(services, &room_id, &via, suggested_only).await {
                        Some(answer) => {
                            for child in &answer.children {
                                learnt.insert(child.room_id.clone(), child.clone());
                            }
                            inaccessible.extend(answer.inaccessible.iter().cloned());
                            Some(answer.room.clone())
                        }
                        None => learnt.get(&room_id).map(bare),
                    },
                }
            }
        };
        let Some(space) = space else {
            if is_root {
                return Err(Error::not_found("Unknown room"));
            }
            continue;
        };
        let (summary, u) = (space.summary.clone(), user.clone());
        if !services
            .run(move |s| may_see(s, &summary, Viewer::User(&u)))
            .await?
        {
            if is_root {
                return Err(Error::forbidden("You may not see this room"));
            }
            continue;
        }
        let is_space = space.is_space();
        let follow: Vec<_> = if is_space && depth < max_depth {
            space
                .children
                .iter()
                .filter(|l| l.suggested || !suggested_only)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let children_state = if is_space {
            space.children_state
        } else {
            Vec::new()
        };
        out.push(SpaceHierarchyRoomsChunk::new(space.summary, children_state));
        for link in follow.into_iter().rev() {
            stack.push((link.room_id, depth + 1, link.via));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::PageToken;

    #[test]
    fn page_tokens_round_trip_and_refuse_garbage() {
        for token in [
            PageToken {
                skip: 3,
                max_depth: Some(2),
                suggested_only: true,
            },
            PageToken {
                skip: 0,
                max_depth: None,
                suggested_only: false,
            },
        ] {
            assert_eq!(PageToken::parse(&token.encode()), Some(token));
        }
        for bad in ["", "h", "x1_-_0", "h1_-_2", "h1_-_0_9", "h-1_-_0", "h1_a_0"] {
            assert_eq!(PageToken::parse(bad), None, "{bad}");
        }
    }
}
