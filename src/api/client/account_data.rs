//! Account data (global and per room), room tags and filters: each user may touch only their own.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    RoomId, UserId,
    api::client::{
        config::{
            get_global_account_data, get_room_account_data, set_global_account_data,
            set_room_account_data,
        },
        filter::{create_filter, get_filter},
        tag::{create_tag, delete_tag, get_tags},
    },
};
use serde_json::{Value, json};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{Services, timeline::pdu::raw},
};

type Res<T> = Result<RumaResponse<T>>;

pub fn own(caller: &UserId, target: &UserId) -> Result<()> {
    if caller != target {
        return Err(Error::forbidden("You may only access your own data"));
    }
    Ok(())
}

fn object<T>(data: &ruma::serde::Raw<T>) -> Result<Value> {
    match serde_json::from_str::<Value>(data.json().get()) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Error::bad_json("Account data must be a JSON object")),
    }
}

/// Server-managed types that clients may not set through account data.
fn check_settable(kind: &str) -> Result<()> {
    if kind == "m.fully_read" || kind == "m.push_rules" {
        return Err(Error::new(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "M_BAD_JSON",
            format!("Cannot set {kind} through this API"),
        ));
    }
    Ok(())
}

/// Reads the caller's own account data (global with `room` None).
fn read(
    s: &Services,
    caller: &UserId,
    target: &UserId,
    room: Option<&RoomId>,
    kind: &str,
) -> Result<Value> {
    own(caller, target)?;
    s.account_data
        .get(caller, room, kind)?
        .ok_or_else(|| Error::not_found("Account data not found"))
}

/// Writes the caller's own account data, refusing server-managed types and unknown rooms.
fn write<T>(
    s: &Services,
    caller: &UserId,
    target: &UserId,
    room: Option<&RoomId>,
    kind: &str,
    data: &ruma::serde::Raw<T>,
) -> Result<()> {
    own(caller, target)?;
    if let Some(room_id) = room
        && !s.timeline.room_exists(room_id)?
    {
        return Err(Error::not_found("Unknown room"));
    }
    check_settable(kind)?;
    s.account_data
        .set(&s.globals, caller, room, kind, &object(data)?)?;
    Ok(())
}

pub async fn get_global(
    State(services): State<Arc<Services>>,
    req: Ruma<get_global_account_data::v3::Request>,
) -> Res<get_global_account_data::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            let data = read(
                s,
                &caller,
                &req.body.user_id,
                None,
                &req.body.event_type.to_string(),
            )?;
            Ok(get_global_account_data::v3::Response::new(raw(&data)).into())
        })
        .await
}

pub async fn set_global(
    State(services): State<Arc<Services>>,
    req: Ruma<set_global_account_data::v3::Request>,
) -> Res<set_global_account_data::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            write(
                s,
                &caller,
                &req.body.user_id,
                None,
                &req.body.event_type.to_string(),
                &req.body.data,
            )?;
            Ok(set_global_account_data::v3::Response::new().into())
        })
        .await
}

pub async fn get_room(
    State(services): State<Arc<Services>>,
    req: Ruma<get_room_account_data::v3::Request>,
) -> Res<get_room_account_data::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            let data = read(
                s,
                &caller,
                &req.body.user_id,
                Some(&req.body.room_id),
                &req.body.event_type.to_string(),
            )?;
            Ok(get_room_account_data::v3::Response::new(raw(&data)).into())
        })
        .await
}

pub async fn set_room(
    State(services): State<Arc<Services>>,
    req: Ruma<set_room_account_data::v3::Request>,
) -> Res<set_room_account_data::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            let kind = req.body.event_type.to_string();
            write(
                s,
                &caller,
                &req.body.user_id,
                Some(&req.body.room_id),
                &kind,
                &req.body.data,
            )?;
            Ok(set_room_account_data::v3::Response::new().into())
        })
        .await
}

fn tags_of(s: &Services, user: &UserId, room_id: &RoomId) -> Result<Value> {
    Ok(s.account_data
        .get(user, Some(room_id), "m.tag")?
        .unwrap_or_else(|| json!({ "tags": {} })))
}

pub async fn get_tags(
    State(services): State<Arc<Services>>,
    req: Ruma<get_tags::v3::Request>,
) -> Res<get_tags::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            own(&caller, &req.body.user_id)?;
            let content = tags_of(s, &caller, &req.body.room_id)?;
            let tags = serde_json::from_value(content.get("tags").cloned().unwrap_or(json!({})))
                .map_err(|e| Error::internal(e.to_string()))?;
            Ok(get_tags::v3::Response::new(tags).into())
        })
        .await
}

pub async fn put_tag(
    State(services): State<Arc<Services>>,
    req: Ruma<create_tag::v3::Request>,
) -> Res<create_tag::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            own(&caller, &req.body.user_id)?;
            if !s.timeline.room_exists(&req.body.room_id)? {
                return Err(Error::not_found("Unknown room"));
            }
            let mut content = tags_of(s, &caller, &req.body.room_id)?;
            content["tags"][&req.body.tag] = serde_json::to_value(&req.body.tag_info)
                .map_err(|e| Error::internal(e.to_string()))?;
            s.account_data.set(
                &s.globals,
                &caller,
                Some(&req.body.room_id),
                "m.tag",
                &content,
            )?;
            Ok(create_tag::v3::Response::new().into())
        })
        .await
}

pub async fn delete_tag(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_tag::v3::Request>,
) -> Res<delete_tag::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            own(&caller, &req.body.user_id)?;
            let mut content = tags_of(s, &caller, &req.body.room_id)?;
            if let Some(tags) = content.get_mut("tags").and_then(Value::as_object_mut) {
                tags.remove(&req.body.tag);
            }
            s.account_data.set(
                &s.globals,
                &caller,
                Some(&req.body.room_id),
                "m.tag",
                &content,
            )?;
            Ok(delete_tag::v3::Response::new().into())
        })
        .await
}

pub async fn create_filter(
    State(services): State<Arc<Services>>,
    req: Ruma<create_filter::v3::Request>,
) -> Res<create_filter::v3::Response> {
    let caller = req.user()?.clone();
    let json = req.json.clone().unwrap_or(json!({}));
    services
        .run(move |s| {
            own(&caller, &req.body.user_id)?;
            check_filter(&json)?;
            let id = s.filters.create(&caller, &json)?;
            Ok(create_filter::v3::Response::new(id).into())
        })
        .await
}

/// The spec's constraints that ruma's lenient types accept.
fn check_filter(filter: &Value) -> Result<()> {
    if let Some(format) = filter.get("event_format")
        && format
            .as_str()
            .is_none_or(|f| f != "client" && f != "federation")
    {
        return Err(Error::bad_json("event_format must be client or federation"));
    }
    if let Some(fields) = filter.get("event_fields")
        && !fields
            .as_array()
            .is_some_and(|f| f.iter().all(Value::is_string))
    {
        return Err(Error::bad_json("event_fields must be a list of strings"));
    }
    crate::services::relations::filter::RelationFilter::of_timeline(filter)?;
    Ok(())
}

pub async fn get_filter(
    State(services): State<Arc<Services>>,
    req: Ruma<get_filter::v3::Request>,
) -> Res<get_filter::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            own(&caller, &req.body.user_id)?;
            let value = s
                .filters
                .get(&caller, &req.body.filter_id)?
                .ok_or_else(|| Error::not_found("Unknown filter"))?;
            let filter =
                serde_json::from_value(value).map_err(|e| Error::internal(e.to_string()))?;
            Ok(get_filter::v3::Response::new(filter).into())
        })
        .await
}
