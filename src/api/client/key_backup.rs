//! `/room_keys/version` and `/room_keys/keys`: server-side key backup.

use std::{collections::BTreeMap, sync::Arc};

use axum::{Json, extract::State};
use ruma::api::client::backup::{
    add_backup_keys, add_backup_keys_for_room, add_backup_keys_for_session, create_backup_version,
    delete_backup_keys, delete_backup_keys_for_room, delete_backup_keys_for_session,
    delete_backup_version, get_backup_info, get_backup_keys, get_backup_keys_for_room,
    get_backup_keys_for_session, get_latest_backup_info, update_backup_version,
};
use serde_json::{Value, json};

use super::keys::json_of;
use crate::{
    api::ruma_wrapper::Ruma,
    error::{Error, Result},
    services::{Services, key_backup},
};

type Answer = Result<Json<Value>>;

fn body_of<T>(req: &Ruma<T>) -> Value {
    req.json.clone().unwrap_or(Value::Null)
}

fn etag_count((etag, count): (String, u64)) -> Json<Value> {
    Json(json!({ "etag": etag, "count": count }))
}

pub async fn create_version(
    State(services): State<Arc<Services>>,
    req: Ruma<create_backup_version::v3::Request>,
) -> Answer {
    let (user, body) = (req.user()?.clone(), body_of(&req));
    let version = services
        .run(move |s| key_backup::create(s, &user, &body))
        .await?;
    Ok(Json(json!({ "version": version.to_string() })))
}

pub async fn latest_version(
    State(services): State<Arc<Services>>,
    req: Ruma<get_latest_backup_info::v3::Request>,
) -> Answer {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let (n, record) = key_backup::latest(s, &user)?
                .ok_or_else(|| Error::not_found("No current backup version"))?;
            Ok(Json(key_backup::info(n, &record)?))
        })
        .await
}

pub async fn get_version(
    State(services): State<Arc<Services>>,
    req: Ruma<get_backup_info::v3::Request>,
) -> Answer {
    let (user, version) = (req.user()?.clone(), req.body.version);
    services
        .run(move |s| {
            let (n, record) = key_backup::get_version(s, &user, &version)?;
            Ok(Json(key_backup::info(n, &record)?))
        })
        .await
}

pub async fn update_version(
    State(services): State<Arc<Services>>,
    req: Ruma<update_backup_version::v3::Request>,
) -> Answer {
    let (user, body) = (req.user()?.clone(), body_of(&req));
    let version = req.body.version;
    services
        .run(move |s| key_backup::update(s, &user, &version, &body))
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_version(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_backup_version::v3::Request>,
) -> Answer {
    let (user, version) = (req.user()?.clone(), req.body.version);
    services
        .run(move |s| key_backup::delete_version(s, &user, &version))
        .await?;
    Ok(Json(json!({})))
}

pub async fn put_all(
    State(services): State<Arc<Services>>,
    req: Ruma<add_backup_keys::v3::Request>,
) -> Answer {
    let user = req.user()?.clone();
    let mut keys = key_backup::RoomKeys::new();
    for (room, backup) in &req.body.rooms {
        let sessions = keys.entry(room.to_string()).or_default();
        for (session, data) in &backup.sessions {
            sessions.insert(session.clone(), json_of(data)?);
        }
    }
    let version = req.body.version;
    Ok(etag_count(
        services
            .run(move |s| key_backup::put_keys(s, &user, &version, &keys))
            .await?,
    ))
}

pub async fn put_room(
    State(services): State<Arc<Services>>,
    req: Ruma<add_backup_keys_for_room::v3::Request>,
) -> Answer {
    let user = req.user()?.clone();
    let mut sessions = BTreeMap::new();
    for (session, data) in &req.body.sessions {
        sessions.insert(session.clone(), json_of(data)?);
    }
    let keys = BTreeMap::from([(req.body.room_id.to_string(), sessions)]);
    let version = req.body.version;
    Ok(etag_count(
        services
            .run(move |s| key_backup::put_keys(s, &user, &version, &keys))
            .await?,
    ))
}

pub async fn put_session(
    State(services): State<Arc<Services>>,
    req: Ruma<add_backup_keys_for_session::v3::Request>,
) -> Answer {
    let user = req.user()?.clone();
    let data: Value = json_of(&req.body.session_data)?;
    let keys = BTreeMap::from([(
        req.body.room_id.to_string(),
        BTreeMap::from([(req.body.session_id.clone(), data)]),
    )]);
    let version = req.body.version;
    Ok(etag_count(
        services
            .run(move |s| key_backup::put_keys(s, &user, &version, &keys))
            .await?,
    ))
}

pub async fn get_all(
    State(services): State<Arc<Services>>,
    req: Ruma<get_backup_keys::v3::Request>,
) -> Answer {
    let (user, version) = (req.user()?.clone(), req.body.version);
    let keys = services
        .run(move |s| key_backup::get_keys(s, &user, &version, None, None))
        .await?;
    let rooms: serde_json::Map<String, Value> = keys
        .into_iter()
        .map(|(room, sessions)| (room, json!({ "sessions": sessions })))
        .collect();
    Ok(Json(json!({ "rooms": rooms })))
}

pub async fn get_room(
    State(services): State<Arc<Services>>,
    req: Ruma<get_backup_keys_for_room::v3::Request>,
) -> Answer {
    let (user, version, room) = (
        req.user()?.clone(),
        req.body.version,
        req.body.room_id.to_string(),
    );
    let lookup = room.clone();
    let mut keys = services
        .run(move |s| key_backup::get_keys(s, &user, &version, Some(&lookup), None))
        .await?;
    Ok(Json(
        json!({ "sessions": keys.remove(&room).unwrap_or_default() }),
    ))
}

pub async fn get_session(
    State(services): State<Arc<Services>>,
    req: Ruma<get_backup_keys_for_session::v3::Request>,
) -> Answer {
    let (user, version, room, session) = (
        req.user()?.clone(),
        req.body.version,
        req.body.room_id.to_string(),
        req.body.session_id,
    );
    let (r, sess) = (room.clone(), session.clone());
    let mut keys = services
        .run(move |s| key_backup::get_keys(s, &user, &version, Some(&r), Some(&sess)))
        .await?;
    let data = keys
        .remove(&room)
        .and_then(|mut sessions| sessions.remove(&session))
        .ok_or_else(|| Error::not_found("No key for this session"))?;
    Ok(Json(data))
}

pub async fn delete_all(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_backup_keys::v3::Request>,
) -> Answer {
    let (user, version) = (req.user()?.clone(), req.body.version);
    Ok(etag_count(
        services
            .run(move |s| key_backup::delete_keys(s, &user, &version, None, None))
            .await?,
    ))
}

pub async fn delete_room(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_backup_keys_for_room::v3::Request>,
) -> Answer {
    let (user, version, room) = (
        req.user()?.clone(),
        req.body.version,
        req.body.room_id.to_string(),
    );
    Ok(etag_count(
        services
            .run(move |s| key_backup::delete_keys(s, &user, &version, Some(&room), None))
            .await?,
    ))
}

pub async fn delete_session(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_backup_keys_for_session::v3::Request>,
) -> Answer {
    let (user, version, room, session) = (
        req.user()?.clone(),
        req.body.version,
        req.body.room_id.to_string(),
        req.body.session_id,
    );
    Ok(etag_count(
        services
            .run(move |s| key_backup::delete_keys(s, &user, &version, Some(&room), Some(&session)))
            .await?,
    ))
}
