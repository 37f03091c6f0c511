//! Sending and reading room events: send, state, redact, /messages, /context, /event, /state.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    OwnedEventId, RoomId, UserId,
    api::{
        Direction as ApiDirection,
        client::{
            context::get_context,
            filter::RoomEventFilter,
            message::{get_message_events, send_message_event},
            redact::redact_event,
            room::get_room_event,
            state::{get_state_event_for_key, get_state_events, send_state_event},
        },
    },
    events::{StateEventType, TimelineEventType},
};
use serde_json::{Value, json};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{
        Services,
        admin::shadow_ban::made_up_event_id,
        relations::filter::RelationFilter,
        rooms::{self, event_by_id, event_by_short},
        sync::filter::room_event_matches,
        timeline::{
            StoredEvent,
            append::{NewEvent, Target, Txn, append_local},
            order::{Place, Walker, beyond},
            pdu::{ClientFormat, raw},
            visibility::{may_read_room, user_can_see},
        },
    },
    storage::Direction,
};

type Res<T> = Result<RumaResponse<T>>;

fn content_of<T>(body: &ruma::serde::Raw<T>) -> Result<Value> {
    match serde_json::from_str::<Value>(body.json().get()) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Error::bad_json("Event content must be a JSON object")),
    }
}

/// Sends with transaction-id idempotency per device.
fn send_with_txn(
    s: &Services,
    room_id: &RoomId,
    user: &UserId,
    device: &str,
    txn_id: &str,
    event: NewEvent,
) -> Result<OwnedEventId> {
    // A transaction already processed gives its event: `append_local` looks under the room's
    // lock, first thing (a look before the lock too was one more read for every send).
    let txn = Txn {
        device: device.to_owned(),
        txn_id: txn_id.to_owned(),
    };
    Ok(append_local(s, Target::Room(room_id), user, event, Some(txn))?.0)
}

/// The `ts` an application service gives a `/send` or `/state` request (timestamp massaging:
/// the event's `origin_server_ts`); ignored from ordinary users, as the spec reserves it.
fn appservice_ts<T>(req: &Ruma<T>) -> Result<Option<u64>> {
    if req.appservice.is_none() {
        return Ok(None);
    }
    req.query_param("ts")
        .map(|ts| {
            ts.parse::<u64>()
                .map_err(|_| Error::invalid_param("ts must be a timestamp in milliseconds"))
        })
        .transpose()
}

fn require_joined(s: &Services, room_id: &RoomId, user: &UserId) -> Result<u64> {
    let short = rooms::short_room(s, room_id).map_err(|_| Error::forbidden("Unknown room"))?;
    if !s.membership.is_joined(short, user)? {
        return Err(Error::forbidden("You are not joined to this room"));
    }
    Ok(short)
}

pub async fn send_message(
    State(services): State<Arc<Services>>,
    req: Ruma<send_message_event::v3::Request>,
) -> Res<send_message_event::v3::Response> {
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    services.moderation.ensure_not_suspended(&user)?;
    let ts = appservice_ts(&req)?;
    // The device's /sync shows the event after this answer (services::sends_in_flight).
    let _running = services.sends_in_flight.start(&user, device.as_str());
    services
        .run(move |s| {
            let body = req.body;
            let content = content_of(&body.body)?;
            require_joined(s, &body.room_id, &user)?;
            if s.shadow_bans.contains(&user) {
                return Ok(send_message_event::v3::Response::new(made_up_event_id()).into());
            }
            let kind = TimelineEventType::from(body.event_type.to_string());
            if kind == TimelineEventType::RoomRedaction {
                return Err(Error::bad_json("Use the /redact endpoint to redact events"));
            }
            let event = NewEvent::message(kind, content).at(ts);
            let event_id = send_with_txn(
                s,
                &body.room_id,
                &user,
                device.as_str(),
                body.txn_id.as_str(),
                event,
            )?;
            Ok(send_message_event::v3::Response::new(event_id).into())
        })
        .await
}

pub async fn send_state(
    State(services): State<Arc<Services>>,
    req: Ruma<send_state_event::v3::Request>,
) -> Res<send_state_event::v3::Response> {
    let user = req.user()?.clone();
    services.moderation.ensure_not_suspended(&user)?;
    let ts = appservice_ts(&req)?;
    services
        .run(move |s| {
            let body = req.body;
            let content = content_of(&body.body)?;
            require_joined(s, &body.room_id, &user)?;
            // A redaction is never a state event: sent this way it would dodge the redaction rules.
            if body.event_type.to_string() == TimelineEventType::RoomRedaction.to_string() {
                return Err(Error::bad_json("Use the /redact endpoint to redact events"));
            }
            check_state_content(s, &body.room_id, &body.event_type, &content)?;
            if s.shadow_bans.contains(&user) {
                return Ok(send_state_event::v3::Response::new(made_up_event_id()).into());
            }
            // Re-sending the current state unchanged is a no-op that returns the existing event.
            if let Some(current) =
                rooms::state_event(s, &body.room_id, &body.event_type, &body.state_key)?
                && current.pdu.sender == user
                && current.pdu.content_value() == content
            {
                return Ok(
                    send_state_event::v3::Response::new(current.pdu.event_id.clone()).into(),
                );
            }
            let event =
                NewEvent::state(body.event_type.clone(), body.state_key.clone(), content).at(ts);
            let event_id = rooms::send(s, &body.room_id, &user, event)?;
            Ok(send_state_event::v3::Response::new(event_id).into())
        })
        .await
}

/// Checks the client-server rules for some state events before they are built.
fn check_state_content(
    s: &Services,
    room_id: &RoomId,
    kind: &StateEventType,
    content: &Value,
) -> Result<()> {
    match kind {
        StateEventType::RoomCanonicalAlias => {
            let aliases = content.get("alias").into_iter().chain(
                content
                    .get("alt_aliases")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            );
            for alias in aliases {
                let alias = alias
                    .as_str()
                    .and_then(|a| ruma::OwnedRoomAliasId::try_from(a).ok())
                    .ok_or_else(|| Error::invalid_param("Invalid alias"))?;
                match s.directory.resolve(&alias)? {
                    Some(record) if record.room_id == room_id => {}
                    _ => {
                        return Err(Error::new(
                            http::StatusCode::BAD_REQUEST,
                            "M_BAD_ALIAS",
                            "Alias does not point to this room",
                        ));
                    }
                }
            }
        }
        // A tombstone sends clients to another room (sytest: "Cannot send tombstone event that
        // points to the same room").
        StateEventType::RoomTombstone => {
            if content.get("replacement_room").and_then(Value::as_str) == Some(room_id.as_str()) {
                return Err(Error::bad_json("A tombstone cannot point to its own room"));
            }
        }
        _ => {}
    }
    Ok(())
}

pub async fn get_state_event(
    State(services): State<Arc<Services>>,
    req: Ruma<get_state_event_for_key::v3::Request>,
) -> Res<get_state_event_for_key::v3::Response> {
    let user = req.user()?.clone();
    // A member left out of a partial state (a room joined with partial state), or state of a
    // type that waits for the full state, is known after it.
    if req.body.event_type == StateEventType::RoomMember
        || !crate::federation::join::deferred_state::taken_with_join(
            &req.body.event_type.to_string(),
        )
    {
        super::rooms::wait_for_full_state_unless_known(
            &services,
            &req.body.room_id,
            Some((req.body.event_type.clone(), req.body.state_key.clone())),
        )
        .await?;
    }
    services
        .run(move |s| {
            let body = req.body;
            let short = rooms::short_room(s, &body.room_id)
                .map_err(|_| Error::forbidden("Unknown room"))?;
            let event = match s.membership.user_room(&user, &body.room_id)? {
                Some(r) if r.membership == crate::services::rooms::membership::Membership::Join => {
                    rooms::state_event(s, &body.room_id, &body.event_type, &body.state_key)?
                }
                Some(r)
                    if matches!(
                        r.membership,
                        crate::services::rooms::membership::Membership::Leave
                            | crate::services::rooms::membership::Membership::Ban
                    ) =>
                {
                    let meta = s
                        .timeline
                        .meta(r.short_event)?
                        .ok_or_else(|| Error::internal("missing event"))?;
                    let state = s.state.load(meta.state_after)?;
                    match s
                        .short
                        .statekey(&body.event_type, &body.state_key)?
                        .and_then(|k| state.get(&k).copied())
                    {
                        Some(e) => event_by_short(s, e, &body.room_id)?,
                        None => None,
                    }
                }
                _ if may_read_room(s, &user, short)? => {
                    rooms::state_event(s, &body.room_id, &body.event_type, &body.state_key)?
                }
                _ => return Err(Error::forbidden("You are not a member of this room")),
            };
            let event = event.ok_or_else(|| Error::not_found("State event not found"))?;
            let full = matches!(
                body.format,
                ruma::api::client::state::get_state_event_for_key::v3::StateEventFormat::Event
            );
            let value = if full {
                event.to_client(&s.timeline, ClientFormat::Room, None)?
            } else {
                event.pdu.content_value()
            };
            let raw = serde_json::value::to_raw_value(&value)
                .map_err(|e| Error::internal(e.to_string()))?;
            Ok(get_state_event_for_key::v3::Response::new(raw).into())
        })
        .await
}

pub async fn get_state(
    State(services): State<Arc<Services>>,
    req: Ruma<get_state_events::v3::Request>,
) -> Res<get_state_events::v3::Response> {
    let user = req.user()?.clone();
    super::rooms::wait_for_full_state(&services, &req.body.room_id).await?;
    services
        .run(move |s| {
            let room_id = &req.body.room_id;
            let short =
                rooms::short_room(s, room_id).map_err(|_| Error::forbidden("Unknown room"))?;
            let state = match s.membership.user_room(&user, room_id)? {
                Some(r)
                    if matches!(
                        r.membership,
                        crate::services::rooms::membership::Membership::Leave
                            | crate::services::rooms::membership::Membership::Ban
                    ) =>
                {
                    let meta = s
                        .timeline
                        .meta(r.short_event)?
                        .ok_or_else(|| Error::internal("missing event"))?;
                    s.state.load(meta.state_after)?
                }
                _ if may_read_room(s, &user, short)? => s.state.current_state(short)?,
                _ => return Err(Error::forbidden("You are not a member of this room")),
            };
            let mut events = Vec::with_capacity(state.len());
            for short_event in state.values() {
                if let Some(event) = event_by_short(s, *short_event, room_id)? {
                    events.push(raw(&event.to_client(
                        &s.timeline,
                        ClientFormat::Room,
                        None,
                    )?));
                }
            }
            Ok(get_state_events::v3::Response::new(events).into())
        })
        .await
}

pub async fn redact(
    State(services): State<Arc<Services>>,
    req: Ruma<redact_event::v3::Request>,
) -> Res<redact_event::v3::Response> {
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    let _running = services.sends_in_flight.start(&user, device.as_str());
    services
        .run(move |s| {
            let body = req.body;
            require_joined(s, &body.room_id, &user)?;
            if s.shadow_bans.contains(&user) {
                return Ok(redact_event::v3::Response::new(made_up_event_id()).into());
            }
            if let Some(event_id) = s.timeline.txn_event(
                user.as_str(),
                device.as_str(),
                &body.room_id,
                body.txn_id.as_str(),
            )? {
                return Ok(redact_event::v3::Response::new(event_id).into());
            }
            let target = event_by_id(s, &body.event_id)?
                .filter(|e| e.pdu.room_id == body.room_id)
                .ok_or_else(|| Error::not_found("Event not found"))?;
            if target.pdu.sender != user {
                // A suspended user may redact only their own events.
                s.moderation.ensure_not_suspended(&user)?;
            }
            if target.pdu.sender != user
                && !crate::services::rooms::power::can(s, &body.room_id, &user, "redact")?
            {
                return Err(Error::forbidden("You may not redact other users' events"));
            }
            let version = s
                .timeline
                .room_version(&body.room_id)?
                .ok_or_else(|| Error::not_found("Unknown room"))?;
            let rules = crate::services::rooms::version::rules(&version)?;
            let mut content = json!({});
            if let Some(reason) = &body.reason {
                content["reason"] = json!(reason);
            }
            if rules.redaction.content_field_redacts {
                content["redacts"] = json!(body.event_id);
            }
            let event = NewEvent {
                kind: TimelineEventType::RoomRedaction,
                content,
                state_key: None,
                redacts: Some(body.event_id.clone()),
                ts: None,
            };
            let event_id = send_with_txn(
                s,
                &body.room_id,
                &user,
                device.as_str(),
                body.txn_id.as_str(),
                event,
            )?;
            Ok(redact_event::v3::Response::new(event_id).into())
        })
        .await
}

/// What a walk found: the events, the gap past the last event looked at, whether the walk ended
/// (at `to` or at an end of the room's order) and whether it ended at the oldest end.
pub(crate) struct Page {
    pub events: Vec<Arc<StoredEvent>>,
    pub cursor: Place,
    pub exhausted: bool,
    pub at_oldest: bool,
}

/// Walks a room's order (backfilled events, then the timeline) from a gap, keeping events the
/// viewer may see (all, for the admin API's `None`) that match the filter.
pub(crate) fn paginate(
    s: &Services,
    viewer: Option<&UserId>,
    room_id: &RoomId,
    short_room: u64,
    from: Place,
    direction: Direction,
    limit: usize,
    stop: Option<Place>,
    filter: &RoomEventFilter,
    relations: &RelationFilter,
) -> Result<Page> {
    let mut page = Page {
        events: Vec::new(),
        cursor: from,
        exhausted: false,
        at_oldest: false,
    };
    let mut walker = Walker::new(short_room, from, direction);
    'outer: while page.events.len() < limit {
        let batch = walker.next_batch(&s.timeline, 64)?;
        if batch.is_empty() {
            page.exhausted = true;
            page.at_oldest = direction == Direction::Backward;
            break;
        }
        for step in &batch {
            if let Some(stop) = stop
                && beyond(step.rank, stop, direction)
            {
                page.exhausted = true;
                break 'outer;
            }
            page.cursor = step.after;
            let Some(event) = event_by_short(s, step.short, room_id)? else {
                continue;
            };
            let visible = match viewer {
                Some(user) => user_can_see(s, user, &event)?,
                None => true,
            };
            if !room_event_matches(
                filter,
                &event.pdu.kind.to_string(),
                Some(&event.pdu.sender),
                None,
            ) || !relations.matches(s, &event)?
                || !visible
            {
                continue;
            }
            page.events.push(event);
            if page.events.len() == limit {
                break 'outer;
            }
        }
    }
    Ok(page)
}

/// The relation fields of the request's `filter` (a `RoomEventFilter` as JSON), which ruma's
/// filter type does not keep.
fn relation_filter<T>(req: &Ruma<T>) -> Result<RelationFilter> {
    match req.query_param("filter") {
        Some(json) => match serde_json::from_str::<Value>(&json) {
            Ok(value) => RelationFilter::from_json(&value),
            // ruma read the filter: a value it took but that is not JSON is a filter id, which
            // /messages does not take.
            Err(_) => Ok(RelationFilter::default()),
        },
        None => Ok(RelationFilter::default()),
    }
}

/// The gaps just before and just after an event in its room's order.
fn place_of(s: &Services, event: &StoredEvent) -> Result<(Place, Place)> {
    if event.meta.pos == 0
        && let Some((_, seq)) = s.timeline.backfilled_seq(event.short)?
    {
        return Ok((Place::Back(seq), Place::Back(seq - 1)));
    }
    Ok((
        Place::Main(event.meta.pos.saturating_sub(1)),
        Place::Main(event.meta.pos),
    ))
}

/// Backfill rounds one /messages request may wait for.
const BACKFILL_ROUNDS: usize = 3;

fn lazy_member_state(
    s: &Services,
    room_id: &RoomId,
    events: &[Arc<StoredEvent>],
    filter: &RoomEventFilter,
) -> Result<Vec<ruma::serde::Raw<ruma::events::AnyStateEvent>>> {
    if !crate::services::sync::filter::lazy_members(filter) {
        return Ok(Vec::new());
    }
    let senders: std::collections::BTreeSet<_> =
        events.iter().map(|e| e.pdu.sender.clone()).collect();
    let mut out = Vec::new();
    for sender in senders {
        if let Some(member) =
            rooms::state_event(s, room_id, &StateEventType::RoomMember, sender.as_str())?
        {
            out.push(raw(&member.to_client(
                &s.timeline,
                ClientFormat::Room,
                None,
            )?));
        }
    }
    Ok(out)
}

pub async fn messages(
    State(services): State<Arc<Services>>,
    req: Ruma<get_message_events::v3::Request>,
) -> Res<get_message_events::v3::Response> {
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    let relations = Arc::new(relation_filter(&req)?);
    let body = Arc::new(req.body);
    let (check_user, check_body) = (user.clone(), body.clone());
    let (short, from, stop) = services
        .run(move |s| {
            let (user, body) = (&check_user, &check_body);
            let short = rooms::short_room(s, &body.room_id)
                .map_err(|_| Error::forbidden("Unknown room"))?;
            let membership = s
                .membership
                .user_room(user, &body.room_id)?
                .filter(|m| !m.forgotten);
            if membership.is_none() && !may_read_room(s, user, short)? {
                return Err(Error::forbidden("You are not a member of this room"));
            }
            let from = match &body.from {
                Some(token) => Place::parse(token)?,
                None => match body.dir {
                    ApiDirection::Backward => Place::Main(s.globals.current_pos()),
                    ApiDirection::Forward => Place::Back(u64::MAX),
                },
            };
            let stop = body.to.as_deref().map(Place::parse).transpose()?;
            Ok((short, from, stop))
        })
        .await?;
    let direction = match body.dir {
        ApiDirection::Backward => Direction::Backward,
        ApiDirection::Forward => Direction::Forward,
    };
    let limit = u64::from(body.limit).clamp(1, 1000) as usize;
    let mut rounds = 0;
    loop {
        let (walk_user, walk_body, walk_relations) =
            (user.clone(), body.clone(), relations.clone());
        let page = services
            .run(move |s| {
                paginate(
                    s,
                    Some(&walk_user),
                    &walk_body.room_id,
                    short,
                    from,
                    direction,
                    limit,
                    stop,
                    &walk_body.filter,
                    &walk_relations,
                )
            })
            .await?;
        // Our history ends before the client's wish: older events may be on other servers.
        if page.at_oldest
            && page.events.len() < limit
            && rounds < BACKFILL_ROUNDS
            && crate::federation::backfill::fill(&services, &body.room_id)
                .await
                .unwrap_or_else(|e| {
                    tracing::info!("backfill of {}: {}", body.room_id, e.message);
                    false
                })
        {
            rounds += 1;
            continue;
        }
        let (user, device, body) = (user.clone(), device.clone(), body.clone());
        return services
            .run(move |s| {
                let mut response = get_message_events::v3::Response::new();
                response.start = from.encode();
                if !page.exhausted || !page.events.is_empty() && direction == Direction::Forward {
                    response.end = Some(page.cursor.encode());
                }
                response.state = lazy_member_state(s, &body.room_id, &page.events, &body.filter)?;
                response.chunk = page
                    .events
                    .iter()
                    .map(|e| {
                        Ok(raw(&crate::services::relations::bundle::to_client(
                            s,
                            e,
                            ClientFormat::Room,
                            &user,
                            Some(device.as_str()),
                        )?))
                    })
                    .collect::<Result<_>>()?;
                Ok(response.into())
            })
            .await;
    }
}

pub async fn context(
    State(services): State<Arc<Services>>,
    req: Ruma<get_context::v3::Request>,
) -> Result<crate::api::always_sent::Filled<get_context::v3::Response>> {
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    let relations = relation_filter(&req)?;
    services
        .run(move |s| {
            let body = req.body;
            let room_id = &body.room_id;
            let short =
                rooms::short_room(s, room_id).map_err(|_| Error::forbidden("Unknown room"))?;
            let event = event_by_id(s, &body.event_id)?
                .filter(|e| e.pdu.room_id == *room_id)
                .ok_or_else(|| Error::not_found("Event not found"))?;
            // Expired under the room's retention policy: gone, for everyone.
            if crate::services::retention::expired(s, &event, crate::util::now_ms())? {
                return Err(Error::not_found("Event not found"));
            }
            if !user_can_see(s, &user, &event)? {
                return Err(Error::forbidden("You may not see this event"));
            }
            let limit = u64::from(body.limit).min(100) as usize;
            let before_limit = limit / 2;
            let after_limit = limit - before_limit;
            let (gap_before, gap_after) = place_of(s, &event)?;
            let before = paginate(
                s,
                Some(&user),
                room_id,
                short,
                gap_before,
                Direction::Backward,
                before_limit,
                None,
                &body.filter,
                &relations,
            )?;
            let after = paginate(
                s,
                Some(&user),
                room_id,
                short,
                gap_after,
                Direction::Forward,
                after_limit,
                None,
                &body.filter,
                &relations,
            )?;
            let format = |e: &Arc<StoredEvent>| -> Result<_> {
                Ok(raw(&crate::services::relations::bundle::to_client(
                    s,
                    e,
                    ClientFormat::Room,
                    &user,
                    Some(device.as_str()),
                )?))
            };
            let mut response = get_context::v3::Response::new();
            response.start = Some(
                if before.events.is_empty() {
                    gap_before
                } else {
                    before.cursor
                }
                .encode(),
            );
            response.end = Some(
                if after.events.is_empty() {
                    gap_after
                } else {
                    after.cursor
                }
                .encode(),
            );
            let (before, after) = (before.events, after.events);
            response.event = Some(format(&event)?);
            response.events_before = before.iter().map(format).collect::<Result<_>>()?;
            response.events_after = after.iter().map(format).collect::<Result<_>>()?;
            let state = s.state.load(event.meta.state_after)?;
            let lazy = crate::services::sync::filter::lazy_members(&body.filter);
            let senders: std::collections::BTreeSet<String> = before
                .iter()
                .chain(after.iter())
                .chain(std::iter::once(&event))
                .map(|e| e.pdu.sender.to_string())
                .collect();
            for (key, short_event) in state.iter() {
                if lazy {
                    let (kind, state_key) = s.short.statekey_of(*key)?;
                    if kind == StateEventType::RoomMember && !senders.contains(&state_key) {
                        continue;
                    }
                }
                if let Some(e) = event_by_short(s, *short_event, room_id)? {
                    response.state.push(raw(&e.to_client(
                        &s.timeline,
                        ClientFormat::Room,
                        None,
                    )?));
                }
            }
            Ok(crate::api::always_sent::Filled::new(
                response,
                crate::api::always_sent::context,
            ))
        })
        .await
}

/// MSC2815: the original of a redacted `event` for a server admin or a user who may redact others'
/// events in its room (None: the event is not redacted). 403 `M_FORBIDDEN` for others; 404
/// `M_UNREDACTED_CONTENT_DELETED` once the original is no longer kept.
fn unredacted_form(s: &Services, user: &UserId, event: &StoredEvent) -> Result<Option<Value>> {
    let Some(because) = event
        .json
        .get("unsigned")
        .and_then(|u| match u {
            ruma::CanonicalJsonValue::Object(o) => o.get("redacted_because"),
            _ => None,
        })
        .map(crate::services::timeline::pdu::canonical_to_value)
    else {
        return Ok(None);
    };
    let admin = s.users.account(user)?.is_some_and(|a| a.admin);
    if !admin && !rooms::power::can(s, &event.pdu.room_id, user, "redact")? {
        return Err(Error::forbidden(
            "Only moderators and server admins may see redacted content",
        ));
    }
    let original =
        crate::services::timeline::redacted_originals::get(s, event.short)?.ok_or_else(|| {
            Error::new(
                http::StatusCode::NOT_FOUND,
                "M_UNREDACTED_CONTENT_DELETED",
                "The original content of this event is no longer kept",
            )
        })?;
    let mut unsigned = serde_json::Map::new();
    unsigned.insert("redacted_because".into(), because);
    Ok(Some(crate::services::timeline::pdu::client_event(
        &original,
        &event.pdu.event_id,
        &event.pdu.room_id,
        ClientFormat::Room,
        unsigned,
    )))
}

pub async fn get_event(
    State(services): State<Arc<Services>>,
    req: Ruma<get_room_event::v3::Request>,
) -> Res<get_room_event::v3::Response> {
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    // MSC2815: the original of a redacted event, for server admins and room moderators.
    let unredacted = [
        "include_unredacted_content",
        "fi.mau.msc2815.include_unredacted_content",
    ]
    .iter()
    .any(|name| req.query_param(name).as_deref() == Some("true"));
    services
        .run(move |s| {
            let event = event_by_id(s, &req.body.event_id)?
                .filter(|e| e.pdu.room_id == req.body.room_id)
                .ok_or_else(|| Error::not_found("Event not found"))?;
            if !user_can_see(s, &user, &event)? {
                return Err(Error::not_found("Event not found"));
            }
            if unredacted && let Some(value) = unredacted_form(s, &user, &event)? {
                return Ok(get_room_event::v3::Response::new(raw(&value)).into());
            }
            let value = crate::services::relations::bundle::to_client(
                s,
                &event,
                ClientFormat::Room,
                &user,
                Some(device.as_str()),
            )?;
            Ok(get_room_event::v3::Response::new(raw(&value)).into())
        })
        .await
}
