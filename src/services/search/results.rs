//! A search request from start to answer: the rooms searched, the candidates in order, the checks
//! each must pass (filter, keys, history visibility), the page after `next_batch`, and what the
//! answer holds (events, rank, context, state, groups, highlights, count).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ruma::{
    OwnedRoomId, OwnedUserId, UInt, UserId,
    api::client::{
        filter::{RoomEventFilter, UrlFilter},
        search::search_events::v3::{
            Criteria, GroupingKey, OrderBy as ApiOrderBy, ResultGroup, ResultGroupMap,
            ResultRoomEvents, SearchKeys, SearchResult,
        },
    },
};

use super::{
    context,
    index::search_key,
    order::{BatchToken, OrderBy},
    query::{Budget, Candidate, Scope, room_candidates},
    tokenize::query_words,
};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{event_by_short, membership::Membership},
        sync::filter::room_event_matches,
        timeline::{
            StoredEvent,
            pdu::{ClientFormat, raw},
            visibility::user_can_see,
        },
    },
};

/// Results per page when the filter gives no `limit`, and the most a page holds.
pub const DEFAULT_LIMIT: u64 = 10;
pub const MAX_LIMIT: u64 = 100;

/// What the request asks, checked.
pub struct Search<'a> {
    pub user: &'a UserId,
    pub device: &'a str,
    pub criteria: &'a Criteria,
    pub next_batch: Option<&'a str>,
    /// Whether the request had an `event_context` (ruma fills in defaults when it had none).
    pub with_context: bool,
}

fn order_of(criteria: &Criteria) -> Result<OrderBy> {
    match &criteria.order_by {
        None | Some(ApiOrderBy::Rank) => Ok(OrderBy::Rank),
        Some(ApiOrderBy::Recent) => Ok(OrderBy::Recent),
        Some(other) => Err(Error::invalid_param(format!(
            "Unknown order_by: {}",
            other.as_str()
        ))),
    }
}

fn keys_of(criteria: &Criteria) -> Result<BTreeSet<String>> {
    let Some(keys) = &criteria.keys else {
        return Ok(["content.body", "content.name", "content.topic"]
            .map(str::to_owned)
            .into());
    };
    keys.iter()
        .map(|key| match key {
            SearchKeys::ContentBody | SearchKeys::ContentName | SearchKeys::ContentTopic => {
                Ok(key.as_str().to_owned())
            }
            other => Err(Error::invalid_param(format!(
                "Unknown search key: {}",
                other.as_str()
            ))),
        })
        .collect()
}

fn grouping_keys(criteria: &Criteria) -> Result<Vec<GroupingKey>> {
    criteria
        .groupings
        .group_by
        .iter()
        .filter_map(|g| g.key.clone())
        .map(|key| match key {
            GroupingKey::RoomId | GroupingKey::Sender => Ok(key),
            other => Err(Error::invalid_param(format!(
                "Unknown grouping key: {}",
                other.as_str()
            ))),
        })
        .collect()
}

/// The rooms the user is or was in, with the last position searchable in each.
fn scopes(s: &Services, user: &UserId, filter: &RoomEventFilter) -> Result<Vec<Scope>> {
    let mut out = Vec::new();
    for room in s.membership.rooms_of(user)? {
        if room.forgotten || !room_allowed(filter, &room.room_id) {
            continue;
        }
        let up_to = match room.membership {
            Membership::Join => u64::MAX,
            Membership::Leave | Membership::Ban => room.pos,
            Membership::Invite | Membership::Knock => continue,
        };
        let Some(short_room) = s.short.room(&room.room_id)? else {
            continue;
        };
        out.push(Scope { short_room, up_to });
    }
    Ok(out)
}

/// The filter's `rooms` and `not_rooms`.
fn room_allowed(filter: &RoomEventFilter, room: &ruma::RoomId) -> bool {
    !filter.not_rooms.iter().any(|r| r == room)
        && filter
            .rooms
            .as_ref()
            .is_none_or(|rs| rs.iter().any(|r| r == room))
}

/// Whether an event passes the filter (senders, types, contains_url) and the searched keys.
fn passes(event: &StoredEvent, filter: &RoomEventFilter, keys: &BTreeSet<String>) -> bool {
    let kind = event.pdu.kind.to_string();
    if !search_key(&kind).is_some_and(|k| keys.contains(&k)) {
        return false;
    }
    if !room_event_matches(
        filter,
        &kind,
        Some(&event.pdu.sender),
        Some(&event.pdu.room_id),
    ) {
        return false;
    }
    let has_url = event
        .pdu
        .content_field("url")
        .is_some_and(|v| v.is_string());
    match filter.url_filter {
        Some(UrlFilter::EventsWithUrl) => has_url,
        Some(UrlFilter::EventsWithoutUrl) => !has_url,
        _ => true,
    }
}

/// Runs a search; the answer's `room_events`.
pub fn search(s: &Services, req: &Search<'_>) -> Result<ResultRoomEvents> {
    let criteria = req.criteria;
    let order = order_of(criteria)?;
    let keys = keys_of(criteria)?;
    let groupings = grouping_keys(criteria)?;
    let token = req
        .next_batch
        .map(|t| BatchToken::parse(t, order))
        .transpose()?;
    let filter = &criteria.filter;
    let limit = filter
        .limit
        .map_or(DEFAULT_LIMIT, u64::from)
        .clamp(1, MAX_LIMIT) as usize;
    let words = query_words(&criteria.search_term);

    let mut answer = ResultRoomEvents::new();
    answer.count = Some(UInt::MIN);
    if words.is_empty() {
        return Ok(answer);
    }

    let mut budget = Budget::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    for scope in scopes(s, req.user, filter)? {
        candidates.extend(room_candidates(s, scope, &words, &mut budget)?);
        if budget.exhausted() {
            break;
        }
    }
    candidates.sort_by(|a, b| order.compare(&a.key, &b.key));

    // Every candidate is checked, so that `count` is the number of results over all pages.
    let mut room_ids: HashMap<u64, OwnedRoomId> = HashMap::new();
    let mut accepted: Vec<(Candidate, std::sync::Arc<StoredEvent>)> = Vec::new();
    for candidate in candidates {
        let room_id = match room_ids.get(&candidate.short_room) {
            Some(r) => r.clone(),
            None => {
                let r = s.short.room_id(candidate.short_room)?;
                room_ids.insert(candidate.short_room, r.clone());
                r
            }
        };
        let Some(event) = event_by_short(s, candidate.short_event, &room_id)? else {
            continue;
        };
        if event.meta.pos != candidate.key.pos
            || !passes(&event, filter, &keys)
            || !user_can_see(s, req.user, &event)?
        {
            continue;
        }
        accepted.push((candidate, event));
    }
    answer.count = Some(UInt::try_from(accepted.len() as u64).unwrap_or(UInt::MAX));

    let remaining: Vec<_> = accepted
        .iter()
        .filter(|(c, _)| token.is_none_or(|t| t.is_before(&c.key)))
        .collect();
    let page = &remaining[..remaining.len().min(limit)];
    let next_batch = (remaining.len() > page.len())
        .then(|| {
            page.last()
                .map(|(c, _)| BatchToken { order, last: c.key }.encode())
        })
        .flatten();

    let mut highlights = BTreeSet::new();
    for (candidate, event) in page {
        highlights.extend(candidate.matched.iter().cloned());
        let mut result = SearchResult::new();
        result.rank = Some(candidate.key.rank as f64);
        result.result = Some(raw(&crate::services::relations::bundle::to_client(
            s,
            &event,
            ClientFormat::Room,
            req.user,
            Some(req.device),
        )?));
        if req.with_context {
            let ec = &criteria.event_context;
            result.context = context::around(
                s,
                req.user,
                req.device,
                event,
                u64::from(ec.before_limit) as usize,
                u64::from(ec.after_limit) as usize,
                ec.include_profile,
            )?;
        }
        answer.results.push(result);
    }
    answer.highlights = highlights.into_iter().collect();
    if criteria.include_state == Some(true) {
        answer.state = room_states(
            s,
            req.user,
            page.iter().map(|(_, e)| e.pdu.room_id.clone()).collect(),
        )?;
    }
    for key in groupings {
        answer.groups.insert(group(
            &key,
            page.iter().map(|(_, e)| e.as_ref()),
            next_batch.as_deref(),
        ));
    }
    answer.next_batch = next_batch;
    Ok(answer)
}

/// The page's results grouped by room or sender; `order` numbers the groups by first appearance.
fn group<'e>(
    key: &GroupingKey,
    events: impl Iterator<Item = &'e StoredEvent>,
    next_batch: Option<&str>,
) -> ResultGroupMap {
    let mut rooms: BTreeMap<OwnedRoomId, ResultGroup> = BTreeMap::new();
    let mut senders: BTreeMap<OwnedUserId, ResultGroup> = BTreeMap::new();
    let mut seen = 0u32;
    let mut add = |group: &mut ResultGroup, event: &StoredEvent| {
        if group.order.is_none() {
            seen += 1;
            group.order = Some(seen.into());
            group.next_batch = next_batch.map(str::to_owned);
        }
        group.results.push(event.pdu.event_id.clone());
    };
    for event in events {
        match key {
            GroupingKey::Sender => add(senders.entry(event.pdu.sender.clone()).or_default(), event),
            _ => add(rooms.entry(event.pdu.room_id.clone()).or_default(), event),
        }
    }
    match key {
        GroupingKey::Sender => ResultGroupMap::Sender(senders),
        _ => ResultGroupMap::RoomId(rooms),
    }
}

/// `include_state`: the current state of each room of the page the user is in; the state at
/// their leave for a room they left.
fn room_states(
    s: &Services,
    user: &UserId,
    rooms: BTreeSet<OwnedRoomId>,
) -> Result<BTreeMap<OwnedRoomId, Vec<ruma::serde::Raw<ruma::events::AnyStateEvent>>>> {
    let mut out = BTreeMap::new();
    for room_id in rooms {
        let Some(short_room) = s.short.room(&room_id)? else {
            continue;
        };
        let state = match s.membership.user_room(user, &room_id)? {
            Some(m) if m.membership == Membership::Join => s.state.current_state(short_room)?,
            Some(m) => match s.timeline.meta(m.short_event)? {
                Some(meta) => s.state.load(meta.state_after)?,
                None => continue,
            },
            None => continue,
        };
        let mut events = Vec::new();
        for short in state.values() {
            if let Some(e) = event_by_short(s, *short, &room_id)? {
                events.push(raw(&e.to_client(&s.timeline, ClientFormat::Room, None)?));
            }
        }
        out.insert(room_id, events);
    }
    Ok(out)
}
