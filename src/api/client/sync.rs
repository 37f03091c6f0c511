//! /sync: computes changes off the async workers and long-polls on the stream position.

use std::{borrow::Cow, collections::BTreeMap, sync::Arc, time::Duration};

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use ruma::api::OutgoingResponseExt;
use ruma::{
    UserId,
    api::client::{
        filter::FilterDefinition,
        sync::sync_events::{
            self,
            v3::{Filter, State as RoomState, Timeline},
        },
    },
    presence::PresenceState,
};
use serde_json::{Value, value::RawValue};

use crate::{
    api::ruma_wrapper::Ruma,
    error::{Error, Result},
    services::{
        Services,
        relations::filter::RelationFilter,
        sends_in_flight::MAX_WAIT,
        sync::{SyncRequest, SyncToken, compute},
    },
};

pub async fn sync(
    State(services): State<Arc<Services>>,
    req: Ruma<sync_events::v3::Request>,
) -> Result<Response> {
    Ok(complete_rooms(compute_sync(services, req).await?))
}

/// Every joined and left room carries a `state` object, empty or not, as clients expect (ruma
/// leaves an empty one out). Only a response that lacks one is patched, and then without parsing
/// the events: they pass through as raw JSON.
fn complete_rooms(response: sync_events::v3::Response) -> Response {
    let incomplete = |state: &RoomState, timeline: &Timeline| {
        matches!(state, RoomState::Before(s) if s.is_empty()) || timeline.is_empty()
    };
    let patch = response
        .rooms
        .join
        .values()
        .any(|r| incomplete(&r.state, &r.timeline))
        || response
            .rooms
            .leave
            .values()
            .any(|r| incomplete(&r.state, &r.timeline));
    let http = match response.try_into_http_response::<Vec<u8>>() {
        Ok(http) => http,
        Err(e) => return Error::internal(e.to_string()).into_response(),
    };
    let (parts, body) = http.into_parts();
    let body = if patch {
        match with_empty_sections(&body) {
            Ok(body) => body,
            Err(e) => return Error::internal(format!("sync response: {e}")).into_response(),
        }
    } else {
        body
    };
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// `body` with an empty `state` and `timeline` added to each joined and left room that lacks one.
fn with_empty_sections(body: &[u8]) -> serde_json::Result<Vec<u8>> {
    type Object<'a> = BTreeMap<String, Cow<'a, RawValue>>;
    fn parse(json: &str) -> serde_json::Result<Object<'_>> {
        let map: BTreeMap<String, &RawValue> = serde_json::from_str(json)?;
        Ok(map
            .into_iter()
            .map(|(k, v)| (k, Cow::Borrowed(v)))
            .collect())
    }
    let body = std::str::from_utf8(body).map_err(serde::de::Error::custom)?;
    let empty_state: &RawValue = serde_json::from_str(r#"{"events":[]}"#)?;
    let empty_timeline: &RawValue = serde_json::from_str(r#"{"events":[],"limited":false}"#)?;
    let mut top = parse(body)?;
    let Some(rooms) = top.get("rooms") else {
        return Ok(body.as_bytes().to_vec());
    };
    let mut rooms = parse(rooms.get())?;
    for section in ["join", "leave"] {
        let Some(raw) = rooms.get(section) else {
            continue;
        };
        let mut by_room: BTreeMap<String, Object> = BTreeMap::new();
        for (room_id, room) in serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get())? {
            let mut room = parse(room.get())?;
            room.entry("state".into())
                .or_insert(Cow::Borrowed(empty_state));
            room.entry("timeline".into())
                .or_insert(Cow::Borrowed(empty_timeline));
            by_room.insert(room_id, room);
        }
        let patched = serde_json::value::to_raw_value(&by_room)?;
        rooms.insert(section.into(), Cow::Owned(patched));
    }
    top.insert(
        "rooms".into(),
        Cow::Owned(serde_json::value::to_raw_value(&rooms)?),
    );
    serde_json::to_vec(&top)
}

async fn compute_sync(
    services: Arc<Services>,
    req: Ruma<sync_events::v3::Request>,
) -> Result<sync_events::v3::Response> {
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    let inline_filter = req.query_param("filter");
    let body = req.body;
    let since = body.since.as_deref().map(SyncToken::parse).transpose()?;
    // In a group, catch up with the stored position first (one read): the answer then holds
    // every commit made before the request on any process (the client's own sends through
    // another process among them), and a token from another process is never ahead of us.
    if services.globals.shared() {
        services.run(|s| s.globals.catch_up()).await?;
    }
    let to_device_since = body
        .since
        .as_deref()
        .map(crate::services::sync::e2ee::to_device_mark)
        .transpose()?
        .flatten();
    // The relation fields of the timeline filter are read from its JSON (ruma's type drops them).
    let (filter, relations) = match body.filter {
        None => (FilterDefinition::default(), RelationFilter::default()),
        Some(Filter::FilterDefinition(def)) => {
            let value = inline_filter.and_then(|json| serde_json::from_str::<Value>(&json).ok());
            let relations = value
                .as_ref()
                .map(RelationFilter::of_timeline)
                .transpose()?
                .unwrap_or_default();
            (def, relations)
        }
        Some(Filter::FilterId(id)) => {
            let user = user.clone();
            services
                .run(move |s| {
                    let value = s
                        .filters
                        .get(&user, &id)?
                        .ok_or_else(|| Error::not_found("Unknown filter"))?;
                    let relations = RelationFilter::of_timeline(&value)?;
                    let filter = serde_json::from_value::<FilterDefinition>(value)
                        .map_err(|e| Error::bad_json(e.to_string()))?;
                    Ok((filter, relations))
                })
                .await?
        }
        Some(_) => (FilterDefinition::default(), RelationFilter::default()),
    };
    let mut set_presence = Some(body.set_presence);

    let max = Duration::from_millis(services.config().limits.max_sync_timeout_ms);
    let timeout = body.timeout.unwrap_or_default().min(max);
    let deadline = tokio::time::Instant::now() + timeout;
    let request = Arc::new(SyncRequest {
        user,
        device: device.to_string(),
        since,
        to_device_since,
        full_state: body.full_state,
        filter,
        relations,
    });
    let _waiting = services.metrics.sync_waiting("sync");
    let mut wake = services.globals.subscribe();
    loop {
        wake.mark_unchanged();
        // The device's own sends are answered before their events show here.
        services
            .sends_in_flight
            .settled(&request.user, &request.device, MAX_WAIT)
            .await;
        let (req, presence) = (request.clone(), set_presence.take());
        let (response, changed) = services
            .run(move |s| {
                if let Some(presence) = &presence {
                    apply_set_presence(s, &req.user, presence)?;
                }
                compute(s, &req)
            })
            .await?;
        let now = tokio::time::Instant::now();
        if changed
            || since.is_none()
            || now >= deadline
            || since.is_some_and(|t| {
                SyncToken::parse(&response.next_batch).is_ok_and(|n| n.pos < t.pos)
            })
        {
            // A send of the device that committed while this answer was computed is answered first.
            services
                .sends_in_flight
                .settled(&request.user, &request.device, MAX_WAIT)
                .await;
            return Ok(response);
        }
        // Wake on a new stream position, a typing change or the end of someone's typing.
        let until = crate::services::sync::wake_at(&services, deadline, now);
        tokio::select! {
            result = wake.changed() => { if result.is_err() { return Ok(response); } }
            _ = tokio::time::sleep_until(until) => {}
        }
    }
}

/// Applies a sync request's `set_presence` (offline: nothing; unavailable; anything else: online),
/// in the closure of the request's first computation (one blocking-pool handoff for both).
pub(crate) fn apply_set_presence(s: &Services, user: &UserId, state: &PresenceState) -> Result<()> {
    let presence = match state {
        PresenceState::Offline => return Ok(()),
        PresenceState::Unavailable => "unavailable",
        _ => "online",
    };
    crate::federation::sender::edus::presence_from_sync(s, user, presence)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::with_empty_sections;

    #[test]
    fn rooms_without_state_or_timeline_get_empty_ones_and_the_rest_passes_through() {
        let body = json!({
            "next_batch": "s1",
            "account_data": {"events": [{"type": "a", "content": {"k": "\u{e9}\"\\"}}]},
            "rooms": {
                "join": {
                    "!a:x": {"timeline": {"events": [{"type": "m.room.message"}], "limited": true}},
                    "!b:x": {"state": {"events": [{"type": "m.room.member"}]},
                             "timeline": {"events": [], "limited": false, "prev_batch": "p"}},
                },
                "leave": {"!c:x": {}},
                "invite": {"!d:x": {"invite_state": {"events": []}}},
            },
        });
        let out: Value = serde_json::from_slice(
            &with_empty_sections(&serde_json::to_vec(&body).unwrap()).unwrap(),
        )
        .unwrap();
        let mut expected = body.clone();
        expected["rooms"]["join"]["!a:x"]["state"] = json!({"events": []});
        expected["rooms"]["leave"]["!c:x"] = json!({
            "state": {"events": []}, "timeline": {"events": [], "limited": false},
        });
        assert_eq!(out, expected);
        // Without rooms, the body is unchanged.
        let bare = serde_json::to_vec(&json!({"next_batch": "s2"})).unwrap();
        assert_eq!(with_empty_sections(&bare).unwrap(), bare);
    }
}
