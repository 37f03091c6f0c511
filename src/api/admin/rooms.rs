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
            purge_history, room_block, room_deletion,
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
    /// Synapse's default: purge.
    #[serde(default = "yes")]
    purge: bool,
    #[serde(default)]
    force_purge: bool,
    new_room_user_id: Option<OwnedUserId>,
}

fn yes() -> bool {
    true
}

impl Delete {
    fn options(&self) -> Result<room_deletion::Options> {
        if self.new_room_user_id.is_some() {
            return Err(Error::invalid_param("new_room_user_id is not supported"));
        }
        Ok(room_deletion::Options {
            block: self.block,
            purge: self.purge || self.force_purge,
        })
    }
}

/// `DELETE /_synapse/admin/v2/rooms/{roomId}`: shuts the room down at once and answers its
/// `delete_id`; the purge (when asked, the default) goes on in the background, the status saying
/// `purging` until it ends.
pub async fn delete(
    State(services): State<Arc<Services>>,
    Admin(admin): Admin,
    args: Args,
    Body(body): Body<Delete>,
) -> Answer {
    let room_id = args.room(0)?;
    let options = body.options()?;
    let background = services.clone();
    let delete_id = services
        .run(move |s| {
            let deletion = room_deletion::delete_room(s, &room_id, &admin, options)?;
            if deletion.status == "purging" {
                // A background job too (kind `room_deletion`), listed with the others.
                let delete_id = deletion.delete_id.clone();
                let params = json!({ "room_id": deletion.room_id, "delete_id": delete_id });
                crate::services::jobs::run_in_background(
                    &background,
                    room_deletion::JOB_KIND,
                    admin.as_str(),
                    Some(params),
                    None,
                    move |s, _, _| {
                        room_deletion::purge_deleted(s, &delete_id)?;
                        Ok(json!({ "delete_id": delete_id }))
                    },
                )?;
            }
            Ok(deletion.delete_id)
        })
        .await?;
    Ok(Json(json!({ "delete_id": delete_id })))
}

/// `DELETE /_synapse/admin/v1/rooms/{roomId}`: the same, answered when everything (the purge
/// too) is done, with what the shutdown did.
pub async fn delete_v1(
    State(services): State<Arc<Services>>,
    Admin(admin): Admin,
    args: Args,
    Body(body): Body<Delete>,
) -> Answer {
    let room_id = args.room(0)?;
    let options = body.options()?;
    services
        .run(move |s| {
            let deletion = room_deletion::delete_room(s, &room_id, &admin, options)?;
            if deletion.status == "purging" {
                room_deletion::purge_deleted(s, &deletion.delete_id)?;
            }
            serde_json::to_value(&deletion.shutdown_room)
                .map(Json)
                .map_err(|e| Error::internal(e.to_string()))
        })
        .await
}

#[derive(Deserialize)]
pub struct PurgeHistory {
    #[serde(default)]
    delete_local_events: bool,
    purge_up_to_event_id: Option<ruma::OwnedEventId>,
    purge_up_to_ts: Option<u64>,
}

/// `POST /_synapse/admin/v1/purge_history/{roomId}[/{eventId}]`: `{"purge_id"}`; the purge runs in
/// the background (`services::admin::purge_history`).
pub async fn purge_history(
    State(services): State<Arc<Services>>,
    Admin(admin): Admin,
    args: Args,
    Body(body): Body<PurgeHistory>,
) -> Answer {
    let room_id = args.room(0)?;
    let in_path = match args.0.get(1) {
        Some(raw) => Some(
            ruma::OwnedEventId::try_from(raw.as_str())
                .map_err(|_| Error::invalid_param(format!("{raw} is not a valid event id")))?,
        ),
        None => None,
    };
    let up_to_event = in_path.or(body.purge_up_to_event_id);
    let background = services.clone();
    let purge_id = services
        .run(move |s| {
            let (short_room, scope) = purge_history::scope_of(
                s,
                &room_id,
                up_to_event.as_deref(),
                body.purge_up_to_ts,
                body.delete_local_events,
            )?;
            purge_history::start(&background, admin.as_str(), &room_id, short_room, scope)
                .map(|job| job.job_id)
        })
        .await?;
    Ok(Json(json!({ "purge_id": purge_id })))
}

/// `GET /_synapse/admin/v1/purge_history_status/{purgeId}`.
pub async fn purge_history_status(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
) -> Answer {
    let purge_id = args.string(0)?;
    services
        .run(move |s| purge_history::status(s, &purge_id).map(Json))
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
