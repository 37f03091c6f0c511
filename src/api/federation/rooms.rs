//! Membership over federation (resident side): make_join, send_join, make_leave, send_leave.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    extract::{Path, RawQuery, State},
};
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde_json::{Value, json};

use super::auth::FederatedJson;
use crate::{
    error::{Error, Result},
    federation::join::resident,
    services::Services,
};

fn room_event(room: &str, event: &str) -> Result<(OwnedRoomId, OwnedEventId)> {
    Ok((
        OwnedRoomId::try_from(room).map_err(|_| Error::invalid_param("Invalid room id"))?,
        OwnedEventId::try_from(event).map_err(|_| Error::invalid_param("Invalid event id"))?,
    ))
}

fn room_user(room: &str, user: &str) -> Result<(OwnedRoomId, OwnedUserId)> {
    Ok((
        OwnedRoomId::try_from(room).map_err(|_| Error::invalid_param("Invalid room id"))?,
        OwnedUserId::try_from(user).map_err(|_| Error::invalid_param("Invalid user id"))?,
    ))
}

/// The `ver` parameters of a query string (repeated).
pub fn versions(query: Option<&str>) -> Vec<String> {
    let Some(query) = query else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == "ver")
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// The `make_join`/`make_leave`/`make_knock` template for `user` (with the versions the origin supports).
async fn make(
    services: Arc<Services>,
    room: &str,
    user: &str,
    request: FederatedJson,
    membership: &'static str,
    supported: Option<Vec<String>>,
) -> Result<Json<Value>> {
    let (room_id, user) = room_user(room, user)?;
    let origin = request.origin;
    let template = services
        .run(move |s| {
            resident::make_membership(
                s,
                &origin,
                &room_id,
                &user,
                membership,
                supported.as_deref(),
            )
        })
        .await?;
    Ok(Json(template))
}

/// `GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=…`.
pub async fn make_join(
    State(services): State<Arc<Services>>,
    Path((room, user)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: FederatedJson,
) -> Result<Json<Value>> {
    make(
        services,
        &room,
        &user,
        request,
        "join",
        Some(versions(query.as_deref())),
    )
    .await
}

/// `GET /_matrix/federation/v1/make_leave/{roomId}/{userId}`.
pub async fn make_leave(
    State(services): State<Arc<Services>>,
    Path((room, user)): Path<(String, String)>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    make(services, &room, &user, request, "leave", None).await
}

/// `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}?omit_members=…` (with
/// `omit_members=true`, member events are left out as `resident::join_answer` says).
pub async fn send_join_v2(
    State(services): State<Arc<Services>>,
    Path((room, event)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: FederatedJson,
) -> Result<Json<Box<serde_json::value::RawValue>>> {
    let (room_id, event_id) = room_event(&room, &event)?;
    let omit_members = omit_members(query.as_deref())?;
    let id = resident::send_membership(
        &services,
        &request.origin,
        &room_id,
        &event_id,
        &request.body,
        "join",
    )
    .await?;
    Ok(Json(
        services
            .run_heavy(move |s| resident::join_answer(s, &room_id, &id, omit_members))
            .await?,
    ))
}

/// The `omit_members` query parameter of `send_join` v2 (`true` or `false`, default false).
pub fn omit_members(query: Option<&str>) -> Result<bool> {
    let mut omit = false;
    for (key, value) in query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
    {
        if key == "omit_members" {
            omit = match value {
                "true" => true,
                "false" => false,
                _ => return Err(Error::invalid_param("omit_members must be true or false")),
            };
        }
    }
    Ok(omit)
}

/// `PUT /_matrix/federation/v1/send_join/{roomId}/{eventId}`: the same, as `[200, {…}]`.
pub async fn send_join_v1(
    State(services): State<Arc<Services>>,
    Path((room, event)): Path<(String, String)>,
    request: FederatedJson,
) -> Result<Json<(u16, Box<serde_json::value::RawValue>)>> {
    let (room_id, event_id) = room_event(&room, &event)?;
    let id = resident::send_membership(
        &services,
        &request.origin,
        &room_id,
        &event_id,
        &request.body,
        "join",
    )
    .await?;
    let answer = services
        .run_heavy(move |s| resident::join_answer(s, &room_id, &id, false))
        .await?;
    Ok(Json((200, answer)))
}

/// `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}`.
pub async fn send_leave_v2(
    State(services): State<Arc<Services>>,
    Path((room, event)): Path<(String, String)>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let (room_id, event_id) = room_event(&room, &event)?;
    resident::send_membership(
        &services,
        &request.origin,
        &room_id,
        &event_id,
        &request.body,
        "leave",
    )
    .await?;
    Ok(Json(json!({})))
}

/// `PUT /_matrix/federation/v1/send_leave/{roomId}/{eventId}`.
pub async fn send_leave_v1(
    State(services): State<Arc<Services>>,
    Path((room, event)): Path<(String, String)>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let (room_id, event_id) = room_event(&room, &event)?;
    resident::send_membership(
        &services,
        &request.origin,
        &room_id,
        &event_id,
        &request.body,
        "leave",
    )
    .await?;
    Ok(Json(json!([200, {}])))
}

/// `PUT /_matrix/federation/v1/send/{txnId}`.
pub async fn send_transaction(
    State(services): State<Arc<Services>>,
    Path(txn_id): Path<String>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let answer = crate::federation::incoming::transaction::handle(
        &services,
        &request.origin,
        &txn_id,
        &request.body,
    )
    .await?;
    Ok(Json(answer))
}

/// `GET /_matrix/federation/v1/state_ids/{roomId}?event_id=…`.
pub async fn state_ids(
    State(services): State<Arc<Services>>,
    Path(room): Path<String>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let (room_id, event_id) = room_event(&room, query.get("event_id").map_or("", String::as_str))?;
    let origin = request.origin;
    Ok(Json(
        services
            .run_heavy(move |s| crate::federation::read::state_ids(s, &origin, &room_id, &event_id))
            .await?,
    ))
}

/// `GET /_matrix/federation/v1/state/{roomId}?event_id=…`.
pub async fn state(
    State(services): State<Arc<Services>>,
    Path(room): Path<String>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    request: FederatedJson,
) -> Result<Json<Box<serde_json::value::RawValue>>> {
    let (room_id, event_id) = room_event(&room, query.get("event_id").map_or("", String::as_str))?;
    let origin = request.origin;
    Ok(Json(
        services
            .run_heavy(move |s| crate::federation::read::state(s, &origin, &room_id, &event_id))
            .await?,
    ))
}

/// `GET /_matrix/federation/v1/event/{eventId}`.
pub async fn event(
    State(services): State<Arc<Services>>,
    Path(event): Path<String>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let event_id = OwnedEventId::try_from(event.as_str())
        .map_err(|_| Error::invalid_param("Invalid event id"))?;
    let origin = request.origin;
    Ok(Json(
        services
            .run(move |s| crate::federation::read::event(s, &origin, &event_id))
            .await?,
    ))
}

/// `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`.
pub async fn event_auth(
    State(services): State<Arc<Services>>,
    Path((room, event)): Path<(String, String)>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let (room_id, event_id) = room_event(&room, &event)?;
    let origin = request.origin;
    Ok(Json(
        services
            .run_heavy(move |s| {
                crate::federation::read::event_auth(s, &origin, &room_id, &event_id)
            })
            .await?,
    ))
}

/// `GET /_matrix/federation/v1/backfill/{roomId}?v=…&limit=…`.
pub async fn backfill(
    State(services): State<Arc<Services>>,
    Path(room): Path<String>,
    RawQuery(query): RawQuery,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let room_id = OwnedRoomId::try_from(room.as_str())
        .map_err(|_| Error::invalid_param("Invalid room id"))?;
    let mut from = Vec::new();
    let mut limit = 10usize;
    for (k, v) in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
    {
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned();
        match k {
            "v" => from.push(
                OwnedEventId::try_from(v).map_err(|_| Error::invalid_param("Invalid event id"))?,
            ),
            "limit" => {
                limit = v
                    .parse()
                    .map_err(|_| Error::invalid_param("Invalid limit"))?
            }
            _ => {}
        }
    }
    let origin = request.origin;
    Ok(Json(
        services
            .run(move |s| crate::federation::read::backfill(s, &origin, &room_id, from, limit))
            .await?,
    ))
}

/// `POST /_matrix/federation/v1/get_missing_events/{roomId}`.
pub async fn get_missing_events(
    State(services): State<Arc<Services>>,
    Path(room): Path<String>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let room_id = OwnedRoomId::try_from(room.as_str())
        .map_err(|_| Error::invalid_param("Invalid room id"))?;
    let ids = |field: &str| -> Vec<OwnedEventId> {
        request
            .body
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().and_then(|s| OwnedEventId::try_from(s).ok()))
            .collect()
    };
    let (earliest, latest) = (ids("earliest_events"), ids("latest_events"));
    let limit = request
        .body
        .get("limit")
        .and_then(Value::as_u64)
        .unwrap_or(10) as usize;
    let min_depth = request
        .body
        .get("min_depth")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let origin = request.origin;
    Ok(Json(
        services
            .run(move |s| {
                crate::federation::read::missing_events(
                    s, &origin, &room_id, earliest, latest, limit, min_depth,
                )
            })
            .await?,
    ))
}

/// `GET /_matrix/federation/v1/make_knock/{roomId}/{userId}?ver=…`.
pub async fn make_knock(
    State(services): State<Arc<Services>>,
    Path((room, user)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: FederatedJson,
) -> Result<Json<Value>> {
    make(
        services,
        &room,
        &user,
        request,
        "knock",
        Some(versions(query.as_deref())),
    )
    .await
}

/// `PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}`.
pub async fn send_knock(
    State(services): State<Arc<Services>>,
    Path((room, event)): Path<(String, String)>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let (room_id, event_id) = room_event(&room, &event)?;
    let id = resident::send_membership(
        &services,
        &request.origin,
        &room_id,
        &event_id,
        &request.body,
        "knock",
    )
    .await?;
    Ok(Json(
        services
            .run(move |s| resident::knock_answer(s, &room_id, &id))
            .await?,
    ))
}

/// `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`.
pub async fn invite_v2(
    State(services): State<Arc<Services>>,
    Path((room, event)): Path<(String, String)>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let (room_id, event_id) = room_event(&room, &event)?;
    Ok(Json(
        crate::federation::invite::receive_invite(
            &services,
            &request.origin,
            &room_id,
            &event_id,
            &request.body,
        )
        .await?,
    ))
}

/// `PUT /_matrix/federation/v1/invite/{roomId}/{eventId}` (the body is the event; `[200, {event}]`).
pub async fn invite_v1(
    State(services): State<Arc<Services>>,
    Path((room, event)): Path<(String, String)>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let (room_id, event_id) = room_event(&room, &event)?;
    Ok(Json(
        crate::federation::invite::receive_invite_v1(
            &services,
            &request.origin,
            &room_id,
            &event_id,
            &request.body,
        )
        .await?,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeated_ver_parameters_are_all_read() {
        assert_eq!(
            super::versions(Some("ver=10&ver=11&x=1&ver=org.example%2Fv")),
            vec!["10", "11", "org.example/v"]
        );
        assert!(super::versions(None).is_empty());
    }
}

/// `GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=…&dir=f|b`.
pub async fn timestamp_to_event(
    State(services): State<Arc<Services>>,
    Path(room): Path<String>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let room_id = OwnedRoomId::try_from(room.as_str())
        .map_err(|_| Error::invalid_param("Invalid room id"))?;
    let ts: u64 = query
        .get("ts")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Error::invalid_param("Invalid ts"))?;
    let forward = match query.get("dir").map(String::as_str) {
        Some("f") => true,
        Some("b") => false,
        _ => return Err(Error::invalid_param("dir must be f or b")),
    };
    let origin = request.origin;
    Ok(Json(
        services
            .run(move |s| {
                crate::federation::read::timestamp_to_event(s, &origin, &room_id, ts, forward)
            })
            .await?,
    ))
}

/// `GET /_matrix/federation/v1/user/devices/{userId}`.
pub async fn user_devices(
    State(services): State<Arc<Services>>,
    Path(user): Path<String>,
    _request: FederatedJson,
) -> Result<Json<Value>> {
    let user = OwnedUserId::try_from(user.as_str())
        .map_err(|_| Error::invalid_param("Invalid user id"))?;
    Ok(Json(
        services
            .run(move |s| crate::federation::read::user_devices(s, &user))
            .await?,
    ))
}

/// `GET /_matrix/federation/v1/publicRooms?limit=…&since=…`.
pub async fn public_rooms_get(
    State(services): State<Arc<Services>>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    _request: FederatedJson,
) -> Result<Json<Value>> {
    let limit = query.get("limit").and_then(|l| l.parse().ok());
    let since = query.get("since").cloned();
    Ok(Json(
        services
            .run(move |s| crate::federation::read::public_rooms(s, limit, since.as_deref(), None))
            .await?,
    ))
}

/// `POST /_matrix/federation/v1/publicRooms` (`limit`, `since`, `filter.generic_search_term`).
pub async fn public_rooms_post(
    State(services): State<Arc<Services>>,
    request: FederatedJson,
) -> Result<Json<Value>> {
    let body = request.body;
    let limit = body.get("limit").and_then(Value::as_u64);
    let since = body.get("since").and_then(Value::as_str).map(str::to_owned);
    let term = body
        .pointer("/filter/generic_search_term")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Json(
        services
            .run(move |s| {
                crate::federation::read::public_rooms(s, limit, since.as_deref(), term.as_deref())
            })
            .await?,
    ))
}
