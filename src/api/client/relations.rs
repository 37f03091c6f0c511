//! Relations and threads: `/relations/{eventId}[/{relType}[/{eventType}]]` and `/threads`.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    OwnedEventId, OwnedRoomId, OwnedUserId, UInt,
    api::{
        Direction as ApiDirection,
        client::{
            relations::{
                get_relating_events, get_relating_events_with_rel_type,
                get_relating_events_with_rel_type_and_event_type,
            },
            threads::get_threads::{self, v1::IncludeThreads},
        },
    },
};
use serde_json::Value;

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{
        Services,
        relations::{bundle, ord, query, threads},
        rooms::{self, event_by_id},
        timeline::{
            order::Place,
            pdu::{ClientFormat, raw},
            visibility::user_can_see,
        },
    },
    storage::Direction,
};

type Res<T> = Result<RumaResponse<T>>;

/// Default and largest page of `/relations` and `/threads`.
const DEFAULT_LIMIT: usize = 5;
const MAX_LIMIT: usize = 100;

struct Asked {
    user: OwnedUserId,
    device: String,
    room_id: OwnedRoomId,
    event_id: OwnedEventId,
    rel_type: Option<String>,
    event_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    dir: ApiDirection,
    limit: Option<UInt>,
    recurse: bool,
}

struct Answer {
    chunk: Vec<Value>,
    next_batch: Option<String>,
    prev_batch: Option<String>,
    recursion_depth: Option<UInt>,
}

fn limit_of(limit: Option<UInt>) -> usize {
    limit
        .map_or(DEFAULT_LIMIT, |l| {
            usize::try_from(u64::from(l)).unwrap_or(MAX_LIMIT)
        })
        .clamp(1, MAX_LIMIT)
}

fn gap(token: Option<&str>) -> Result<Option<u64>> {
    token.map(|t| Place::parse(t).map(ord::gap_of)).transpose()
}

fn relations(s: &Services, a: Asked) -> Result<Answer> {
    let short_room =
        rooms::short_room(s, &a.room_id).map_err(|_| Error::not_found("Event not found"))?;
    let parent = event_by_id(s, &a.event_id)?
        .filter(|e| e.pdu.room_id == a.room_id)
        .ok_or_else(|| Error::not_found("Event not found"))?;
    if !user_can_see(s, &a.user, &parent)? {
        return Err(Error::not_found("Event not found"));
    }
    let direction = match a.dir {
        ApiDirection::Backward => Direction::Backward,
        ApiDirection::Forward => Direction::Forward,
    };
    let q = query::Query {
        target: a.event_id.as_str(),
        rel_type: a.rel_type.as_deref(),
        event_type: a.event_type.as_deref(),
        from: gap(a.from.as_deref())?,
        to: gap(a.to.as_deref())?,
        direction,
        limit: limit_of(a.limit),
        recurse: a.recurse,
    };
    let page = query::page(s, &a.user, short_room, &a.room_id, &q)?;
    let chunk = page
        .events
        .iter()
        .map(|e| bundle::to_client(s, e, ClientFormat::Room, &a.user, Some(&a.device)))
        .collect::<Result<_>>()?;
    Ok(Answer {
        chunk,
        next_batch: page.next.map(|g| ord::place_of(g).encode()),
        prev_batch: a.from.clone(),
        recursion_depth: a.recurse.then(|| UInt::from(query::RECURSION_DEPTH as u32)),
    })
}

macro_rules! relations_handler {
    ($name:ident, $module:ident, $rel:expr, $kind:expr) => {
        pub async fn $name(
            State(services): State<Arc<Services>>,
            req: Ruma<$module::v1::Request>,
        ) -> Res<$module::v1::Response> {
            let (user, device) = (req.user()?.clone(), req.device()?.clone());
            let body = req.body;
            let asked = Asked {
                user,
                device: device.to_string(),
                rel_type: ($rel)(&body),
                event_type: ($kind)(&body),
                room_id: body.room_id,
                event_id: body.event_id,
                from: body.from,
                to: body.to,
                dir: body.dir,
                limit: body.limit,
                recurse: body.recurse,
            };
            let answer = services.run(move |s| relations(s, asked)).await?;
            let mut response = $module::v1::Response::new(answer.chunk.iter().map(raw).collect());
            response.next_batch = answer.next_batch;
            response.prev_batch = answer.prev_batch;
            response.recursion_depth = answer.recursion_depth;
            Ok(response.into())
        }
    };
}

relations_handler!(
    get_relations,
    get_relating_events,
    |_: &get_relating_events::v1::Request| None,
    |_: &get_relating_events::v1::Request| None
);
relations_handler!(
    get_relations_with_rel_type,
    get_relating_events_with_rel_type,
    |b: &get_relating_events_with_rel_type::v1::Request| Some(b.rel_type.to_string()),
    |_: &get_relating_events_with_rel_type::v1::Request| None
);
relations_handler!(
    get_relations_with_rel_type_and_event_type,
    get_relating_events_with_rel_type_and_event_type,
    |b: &get_relating_events_with_rel_type_and_event_type::v1::Request| Some(
        b.rel_type.to_string()
    ),
    |b: &get_relating_events_with_rel_type_and_event_type::v1::Request| Some(
        b.event_type.to_string()
    )
);

/// `from`/`next_batch` of `/threads`: `t<ord>`, the threads whose latest activity is below it.
fn parse_thread_token(token: &str) -> Result<u64> {
    token
        .strip_prefix('t')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::invalid_param("Unknown pagination token"))
}

pub async fn get_thread_roots(
    State(services): State<Arc<Services>>,
    req: Ruma<get_threads::v1::Request>,
) -> Res<get_threads::v1::Response> {
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    let body = req.body;
    services
        .run(move |s| {
            let short_room = rooms::short_room(s, &body.room_id)
                .map_err(|_| Error::forbidden("You are not allowed to view this room"))?;
            let member = s.membership.user_room(&user, &body.room_id)?.is_some();
            if !member && !rooms::is_world_readable(s, short_room)? {
                return Err(Error::forbidden("You are not allowed to view this room"));
            }
            let from = body.from.as_deref().map(parse_thread_token).transpose()?;
            let participated = matches!(body.include, IncludeThreads::Participated);
            let (roots, next) = threads::list(
                s,
                short_room,
                &user,
                participated,
                from,
                limit_of(body.limit),
            )?;
            let chunk = roots
                .iter()
                .map(|e| {
                    Ok(raw(&bundle::to_client(
                        s,
                        e,
                        ClientFormat::Room,
                        &user,
                        Some(device.as_str()),
                    )?))
                })
                .collect::<Result<_>>()?;
            let mut response = get_threads::v1::Response::new(chunk);
            response.next_batch = next.map(|ord| format!("t{ord}"));
            Ok(response.into())
        })
        .await
}
