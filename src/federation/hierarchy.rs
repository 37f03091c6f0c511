//! Space hierarchies over federation: answering `GET /_matrix/federation/v1/hierarchy/{roomId}`
//! for a space we are in (its summary with its child events, the summaries of the children the
//! requesting server may see, the ids of those it may not), and asking another server for a
//! room we are not in.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ruma::{
    OwnedRoomId, OwnedServerName, RoomId, ServerName, api::federation::space::get_hierarchy,
};

use crate::{
    error::{Error, Result},
    federation::request::send,
    services::{
        Services,
        rooms::hierarchy::{SpaceSummary, Viewer, local_summary, may_see},
    },
};

/// The answer for `origin`: 404 `M_NOT_FOUND` when we are not in the room or `origin` may not see it.
pub fn answer(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    suggested_only: bool,
) -> Result<get_hierarchy::v1::Response> {
    let not_found =
        || Error::not_found("The room is not known here, or may not be seen by your server");
    let root = local_summary(s, room_id)?.ok_or_else(not_found)?;
    crate::federation::acl::check(s, room_id, origin)?;
    if !may_see(s, &root.summary, Viewer::Server(origin))? {
        return Err(not_found());
    }
    let mut children = Vec::new();
    let mut inaccessible = Vec::new();
    for link in root
        .children
        .iter()
        .filter(|l| l.suggested || !suggested_only)
    {
        let Some(child) = local_summary(s, &link.room_id)? else {
            continue;
        };
        if may_see(s, &child.summary, Viewer::Server(origin))? {
            children.push(child.summary);
        } else {
            inaccessible.push(link.room_id.clone());
        }
    }
    let mut response = get_hierarchy::v1::Response::new(
        ruma::api::federation::space::SpaceHierarchyParentSummary::new(
            root.summary,
            root.children_state,
        ),
    );
    response.children = children;
    response.inaccessible_children = inaccessible;
    Ok(response)
}

/// How long another server's answer is reused, and how many answers are kept.
const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_ENTRIES: usize = 1024;

/// Other servers' recent answers, by room and `suggested_only` (the spec asks requesting servers
/// to cache them; a client paginating a space asks again for every page).
#[derive(Default)]
pub struct AnswerCache {
    answers: Mutex<HashMap<(OwnedRoomId, bool), (Instant, Arc<RemoteAnswer>)>>,
}

impl AnswerCache {
    fn get(&self, room_id: &RoomId, suggested_only: bool) -> Option<Arc<RemoteAnswer>> {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers
            .get(&(room_id.to_owned(), suggested_only))
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, a)| a.clone())
    }

    fn put(&self, room_id: &RoomId, suggested_only: bool, answer: Arc<RemoteAnswer>) {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= CACHE_ENTRIES {
            answers.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            if answers.len() >= CACHE_ENTRIES {
                answers.clear();
            }
        }
        answers.insert(
            (room_id.to_owned(), suggested_only),
            (Instant::now(), answer),
        );
    }
}

/// What another server told us about a space or room we are not in.
#[derive(Debug, Clone)]
pub struct RemoteAnswer {
    pub room: SpaceSummary,
    /// Summaries of its children (without their own children).
    pub children: Vec<ruma::room::RoomSummary>,
    pub inaccessible: Vec<OwnedRoomId>,
}

/// Asks `via` in turn for the hierarchy of `room_id` (a recent answer is reused); `None` when none
/// answers.
pub async fn ask(
    services: &Arc<Services>,
    room_id: &RoomId,
    via: &[OwnedServerName],
    suggested_only: bool,
) -> Option<Arc<RemoteAnswer>> {
    let cache = &services.federation.hierarchy_cache;
    if let Some(answer) = cache.get(room_id, suggested_only) {
        return Some(answer);
    }
    for server in via.iter().filter(|s| *s != services.globals.server_name()) {
        let mut request = get_hierarchy::v1::Request::new(room_id.to_owned());
        request.suggested_only = suggested_only;
        match send(services, server, request).await {
            Ok(response) if response.room.summary.room_id == room_id => {
                let answer = Arc::new(remote_answer(response));
                cache.put(room_id, suggested_only, answer.clone());
                return Some(answer);
            }
            Ok(_) => tracing::info!("hierarchy of {room_id} from {server}: another room answered"),
            Err(e) => tracing::info!(
                "hierarchy of {room_id} from {server}: {} {}",
                e.errcode,
                e.message
            ),
        }
    }
    None
}

/// The links of a remote answer's child events, ordered as ours.
fn remote_answer(response: get_hierarchy::v1::Response) -> RemoteAnswer {
    let mut links = Vec::new();
    for raw in &response.room.children_state {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(raw.json().get()) else {
            continue;
        };
        let (Some(state_key), Some(content)) = (
            value.get("state_key").and_then(|v| v.as_str()),
            value.get("content"),
        ) else {
            continue;
        };
        let ts = value
            .get("origin_server_ts")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if let Some(link) = crate::services::rooms::hierarchy::child_link(state_key, content, ts) {
            links.push(link);
        }
    }
    crate::services::rooms::hierarchy::sort_children(&mut links);
    let room = SpaceSummary {
        summary: response.room.summary,
        children_state: response.room.children_state,
        children: links,
    };
    RemoteAnswer {
        room,
        children: response.children,
        inaccessible: response.inaccessible_children,
    }
}
