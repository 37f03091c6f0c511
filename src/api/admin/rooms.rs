//! Room routes of the admin API: list, details, members, state, joining a user, deletion and its
//! status.

use std::sync::Arc;

use axum::{Json, extract::State};
use ruma::OwnedUserId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Admin, Args, Body, Params};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        admin::{
            admin_join,
            paging::{Dir, parse_limit, parse_offset},
            room_block, room_deletion,
            room_list::{self, RoomOrder, RoomQuery},
        },
        rooms::membership::Membership,
        timeline::pdu::ClientFormat,
    },
};

type Answer = Result<Json<Value>>;

fn room_not_found() -> Error {
    Error::not_found("Room not found")
}

pub async fn list(State(services): State<Arc<Services>>, _: Admin, params: Params) -> Answer {
    let q = RoomQuery {
        from: parse_offset(params.get("from"), "from")?.unwrap_or(0),
        limit: parse_limit(params.get("limit"))?,
        order_by: RoomOrder::parse(params.get("order_by"))?,
        dir: Dir::parse(params.get("dir"))?,
        search_term: params.get("search_term").map(str::to_owned),
    };
    services
        .run(move |s| {
            let mut rooms = Vec::new();
            for room_id in room_list::all_room_ids(s)? {
                rooms.extend(room_list::summary(s, &room_id)?);
            }
            let page = room_list::list(rooms, &q);
            let mut body =
                json!({ "rooms": page.items, "offset": q.from, "total_rooms": page.total });
            if let Some(next) = page.next {
                body["next_batch"] = json!(next);
            }
            if let Some(prev) = page.prev {
                body["prev_batch"] = json!(prev);
            }
            Ok(Json(body))
        })
        .await
}

pub async fn details(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let room_id = args.room(0)?;
    services
        .run(move |s| {
            let summary = room_list::summary(s, &room_id)?.ok_or_else(room_not_found)?;
            Ok(Json(
                serde_json::to_value(summary).map_err(|e| Error::internal(e.to_string()))?,
            ))
        })
        .await
}

pub async fn members(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let room_id = args.room(0)?;
    services
        .run(move |s| {
            let short = s.short.room(&room_id)?.ok_or_else(room_not_found)?;
            let members = s.membership.members(short, Membership::Join)?;
            Ok(Json(json!({ "total": members.len(), "members": members })))
        })
        .await
}

pub async fn state(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let room_id = args.room(0)?;
    services
        .run(move |s| {
            let short = s.short.room(&room_id)?.ok_or_else(room_not_found)?;
            let mut events = Vec::new();
            for event in s.state.current_state(short)?.values() {
                if let Some(event) = crate::services::rooms::event_by_short(s, *event, &room_id)? {
                    events.push(event.to_client(&s.timeline, ClientFormat::Room, None)?);
                }
            }
            Ok(Json(json!({ "state": events })))
        })
        .await
}

#[derive(Deserialize)]
pub struct Join {
    user_id: OwnedUserId,
}

pub async fn join(
    State(services): State<Arc<Services>>,
    Admin(admin): Admin,
    args: Args,
    Body(body): Body<Join>,
) -> Answer {
    let target = args.string(0)?;
    services
        .run(move |s| {
            let room_id = admin_join::resolve(s, &target)?;
            admin_join::join(s, &admin, &body.user_id, &room_id)?;
            Ok(Json(json!({ "room_id": room_id })))
        })
        .await
}

#[derive(Deserialize)]
pub struct Delete {
    #[serde(default)]
    block: bool,
    #[serde(default)]
    purge: bool,
    #[serde(default)]
    force_purge: bool,
    new_room_user_id: Option<OwnedUserId>,
}

/// Deletes a room (see `services::admin::room_deletion`); the work is done when the answer comes.
pub async fn delete(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
    Body(body): Body<Delete>,
) -> Answer {
    let room_id = args.room(0)?;
    if body.purge || body.force_purge {
        return Err(Error::invalid_param(
            "purge is not supported: the room's events are kept",
        ));
    }
    if body.block {
        return Err(Error::invalid_param("block is not supported"));
    }
    if body.new_room_user_id.is_some() {
        return Err(Error::invalid_param("new_room_user_id is not supported"));
    }
    services
        .run(move |s| {
            let deletion = room_deletion::delete_room(s, &room_id)?;
            Ok(Json(json!({ "delete_id": deletion.delete_id })))
        })
        .await
}

pub async fn delete_status_of_room(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
) -> Answer {
    let room_id = args.room(0)?;
    services
        .run(move |s| {
            let results = room_deletion::deletions_of(s, &room_id)?;
            if results.is_empty() {
                return Err(Error::not_found(format!(
                    "No delete task for room_id {room_id}"
                )));
            }
            Ok(Json(json!({ "results": results })))
        })
        .await
}

pub async fn delete_status(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let delete_id = args.string(0)?;
    services
        .run(move |s| {
            let deletion = room_deletion::deletion(s, &delete_id)?
                .ok_or_else(|| Error::not_found("delete id not found"))?;
            Ok(Json(
                serde_json::to_value(deletion).map_err(|e| Error::internal(e.to_string()))?,
            ))
        })
        .await
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/block`: `{"block": true, "user_id": <who>}` or
/// `{"block": false}`.
pub async fn get_block(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let room_id = args.room(0)?;
    services
        .run(move |s| {
            Ok(Json(match room_block::blocked(s, &room_id)? {
                Some(block) => json!({ "block": true, "user_id": block.user_id }),
                None => json!({ "block": false }),
            }))
        })
        .await
}

#[derive(Deserialize)]
pub struct BlockBody {
    block: bool,
}

/// `PUT /_synapse/admin/v1/rooms/{roomId}/block` `{"block": bool}`.
pub async fn set_block(
    State(services): State<Arc<Services>>,
    Admin(admin): Admin,
    args: Args,
    Body(body): Body<BlockBody>,
) -> Answer {
    let room_id = args.room(0)?;
    services
        .run(move |s| {
            room_block::set_blocked(s, &room_id, &admin, body.block)?;
            Ok(Json(json!({ "block": body.block })))
        })
        .await
}
