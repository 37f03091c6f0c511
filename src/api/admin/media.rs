//! Media routes of the admin API (Synapse's paths and shapes): information, a user's media,
//! deletion (one, by date and size, a user's), quarantine (one, a room's, a user's) and its
//! undoing, protection, the remote cache purge, a room's media, per-user statistics. The work:
//! `services::media::admin`.

use std::sync::Arc;

use axum::{Json, extract::State};
use ruma::OwnedServerName;
use serde_json::{Value, json};

use super::extract::{Admin, Args, Params};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        admin::paging::{Dir, parse_limit, parse_offset, sorted_page},
        media::{admin, download::valid_media_id},
    },
};

type Answer = Result<Json<Value>>;

fn server_arg(args: &Args, i: usize) -> Result<OwnedServerName> {
    let raw = args.string(i)?;
    OwnedServerName::try_from(raw.as_str())
        .map_err(|_| Error::invalid_param(format!("{raw} is not a server name")))
}

fn media_arg(args: &Args, i: usize) -> Result<String> {
    let id = args.string(i)?;
    if !valid_media_id(&id) {
        return Err(Error::invalid_param(format!("{id} is not a media id")));
    }
    Ok(id)
}

fn number(params: &Params, name: &str) -> Result<Option<u64>> {
    params
        .0
        .get(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| Error::invalid_param(format!("{name} must be a non-negative integer")))
        })
        .transpose()
}

fn boolean(params: &Params, name: &str, default: bool) -> Result<bool> {
    match params.0.get(name).map(String::as_str) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(Error::invalid_param(format!(
            "{name} must be true or false, not {other}"
        ))),
    }
}

/// `GET /_synapse/admin/v1/media/{serverName}/{mediaId}`: `{"media_info": {...}}`.
pub async fn info(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let (server, id) = (server_arg(&args, 0)?, media_arg(&args, 1)?);
    services
        .run(move |s| {
            let record = crate::services::media::records::get(s.media.db(), &server, &id)?
                .ok_or_else(|| Error::not_found("Unknown media"))?;
            Ok(Json(
                json!({ "media_info": admin::describe(s, &server, &id, &record)? }),
            ))
        })
        .await
}

/// `DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}`: one of our media.
pub async fn delete_one(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let (server, id) = (server_arg(&args, 0)?, media_arg(&args, 1)?);
    services
        .run(move |s| {
            if server != s.config().server_name {
                return Err(Error::invalid_param("Can only delete local media"));
            }
            let deleted = admin::delete(s, &[(server, id)])?;
            if deleted.is_empty() {
                return Err(Error::not_found("Unknown media"));
            }
            Ok(Json(json!({ "deleted_media": deleted, "total": 1 })))
        })
        .await
}

/// `POST /_synapse/admin/v1/media/delete?before_ts=&size_gt=&keep_profiles=`.
pub async fn delete_before(
    State(services): State<Arc<Services>>,
    _: Admin,
    params: Params,
) -> Answer {
    let before_ts = number(&params, "before_ts")?
        .ok_or_else(|| Error::missing_param("before_ts is required"))?;
    let size_gt = number(&params, "size_gt")?.unwrap_or(0);
    let keep_profiles = boolean(&params, "keep_profiles", true)?;
    services
        .run(move |s| {
            let deleted = admin::delete_local_before(s, before_ts, size_gt, keep_profiles)?;
            Ok(Json(
                json!({ "total": deleted.len(), "deleted_media": deleted }),
            ))
        })
        .await
}

/// `POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}` and `…/unquarantine/…`.
pub async fn quarantine(
    State(services): State<Arc<Services>>,
    Admin(admin_id): Admin,
    args: Args,
) -> Answer {
    set_quarantine(services, Some(admin_id), args).await
}

pub async fn unquarantine(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    set_quarantine(services, None, args).await
}

async fn set_quarantine(
    services: Arc<Services>,
    by: Option<ruma::OwnedUserId>,
    args: Args,
) -> Answer {
    let (server, id) = (server_arg(&args, 0)?, media_arg(&args, 1)?);
    services
        .run(move |s| {
            admin::set_quarantined(s, &server, &id, by.as_deref())?;
            Ok(Json(json!({})))
        })
        .await
}

/// `POST /_synapse/admin/v1/room/{roomId}/media/quarantine`: `{"num_quarantined"}`.
pub async fn quarantine_room(
    State(services): State<Arc<Services>>,
    Admin(admin_id): Admin,
    args: Args,
) -> Answer {
    let room_id = args.room(0)?;
    services
        .run(move |s| {
            let n = admin::quarantine_room(s, &room_id, &admin_id)?;
            Ok(Json(json!({ "num_quarantined": n })))
        })
        .await
}

/// `POST /_synapse/admin/v1/user/{userId}/media/quarantine`: `{"num_quarantined"}`.
pub async fn quarantine_user(
    State(services): State<Arc<Services>>,
    Admin(admin_id): Admin,
    args: Args,
) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            let n = admin::quarantine_user(s, &user, &admin_id)?;
            Ok(Json(json!({ "num_quarantined": n })))
        })
        .await
}

/// `POST /_synapse/admin/v1/media/protect/{mediaId}` and `…/unprotect/…` (our media).
pub async fn protect(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    set_protected(services, args, true).await
}

pub async fn unprotect(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    set_protected(services, args, false).await
}

async fn set_protected(services: Arc<Services>, args: Args, protected: bool) -> Answer {
    let id = media_arg(&args, 0)?;
    services
        .run(move |s| {
            admin::set_protected(s, &id, protected)?;
            Ok(Json(json!({})))
        })
        .await
}

/// `POST /_synapse/admin/v1/purge_media_cache?before_ts=`: `{"deleted"}`.
pub async fn purge_cache(
    State(services): State<Arc<Services>>,
    _: Admin,
    params: Params,
) -> Answer {
    let before_ts = number(&params, "before_ts")?
        .ok_or_else(|| Error::missing_param("before_ts is required"))?;
    services
        .run(move |s| {
            Ok(Json(
                json!({ "deleted": admin::purge_remote_cache(s, before_ts)? }),
            ))
        })
        .await
}

/// `GET /_synapse/admin/v1/room/{roomId}/media`: `{"local": [mxc], "remote": [mxc]}`.
pub async fn room_media(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let room_id = args.room(0)?;
    services
        .run(move |s| {
            let (local, remote) = admin::room_media(s, &room_id)?;
            Ok(Json(json!({ "local": local, "remote": remote })))
        })
        .await
}

/// `GET /_synapse/admin/v1|v3/users/{userId}/media`: the user's uploads, paged
/// (`from`, `limit`, `order_by`, `dir`), `{"media", "total", "next_token"}`.
pub async fn user_media(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
    params: Params,
) -> Answer {
    let user = args.user(0)?;
    let from = parse_offset(params.0.get("from").map(String::as_str), "from")?.unwrap_or(0);
    let limit = parse_limit(params.0.get("limit").map(String::as_str))?;
    let dir = Dir::parse(params.0.get("dir").map(String::as_str))?;
    let order = params
        .0
        .get("order_by")
        .cloned()
        .unwrap_or_else(|| "created_ts".into());
    services
        .run(move |s| {
            if s.users.account(&user)?.is_none() {
                return Err(Error::not_found("Unknown user"));
            }
            let server = s.config().server_name.clone();
            let mut items = Vec::new();
            for (id, record) in admin::uploads_of(s, &user)? {
                items.push(admin::describe(s, &server, &id, &record)?);
            }
            let key = |v: &Value| v[order.as_str()].clone();
            if !matches!(
                order.as_str(),
                "media_id"
                    | "upload_name"
                    | "created_ts"
                    | "last_access_ts"
                    | "media_length"
                    | "media_type"
                    | "quarantined_by"
                    | "safe_from_quarantine"
            ) {
                return Err(Error::invalid_param(format!("Unknown order_by: {order}")));
            }
            let page = sorted_page(
                items,
                |a, b| {
                    compare(&key(a), &key(b)).then_with(|| compare(&a["media_id"], &b["media_id"]))
                },
                dir,
                from,
                limit,
            );
            let mut body = json!({ "media": page.items, "total": page.total });
            if let Some(next) = page.next {
                body["next_token"] = json!(next);
            }
            Ok(Json(body))
        })
        .await
}

/// `DELETE /_synapse/admin/v1/users/{userId}/media`: every upload of the user.
pub async fn delete_user_media(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
) -> Answer {
    let user = args.user(0)?;
    services
        .run(move |s| {
            let server = s.config().server_name.clone();
            let chosen: Vec<_> = admin::uploads_of(s, &user)?
                .into_iter()
                .map(|(id, _)| (server.clone(), id))
                .collect();
            let deleted = admin::delete(s, &chosen)?;
            Ok(Json(
                json!({ "total": deleted.len(), "deleted_media": deleted }),
            ))
        })
        .await
}

/// `GET /_synapse/admin/v1/statistics/users/media`: per uploader, `media_count` and
/// `media_length`, paged and sorted (`order_by` `user_id`, `displayname`, `media_length` (the
/// default), `media_count`; `search_term` on the user id or display name).
pub async fn usage(State(services): State<Arc<Services>>, _: Admin, params: Params) -> Answer {
    let from = parse_offset(params.0.get("from").map(String::as_str), "from")?.unwrap_or(0);
    let limit = parse_limit(params.0.get("limit").map(String::as_str))?;
    let dir = Dir::parse(params.0.get("dir").map(String::as_str))?;
    let order = params
        .0
        .get("order_by")
        .cloned()
        .unwrap_or_else(|| "media_length".into());
    if !matches!(
        order.as_str(),
        "user_id" | "displayname" | "media_length" | "media_count"
    ) {
        return Err(Error::invalid_param(format!("Unknown order_by: {order}")));
    }
    let search = params.0.get("search_term").cloned();
    services
        .run(move |s| {
            let mut users = Vec::new();
            for (user, count, bytes) in admin::usage_by_user(s)? {
                let displayname = s.users.profile(&user)?.and_then(|p| p.displayname);
                let hit = search.as_deref().is_none_or(|term| {
                    user.as_str().contains(term)
                        || displayname.as_deref().is_some_and(|d| d.contains(term))
                });
                if hit {
                    users.push(json!({ "user_id": user, "displayname": displayname,
                                       "media_count": count, "media_length": bytes }));
                }
            }
            let page = sorted_page(
                users,
                |a, b| {
                    compare(&a[order.as_str()], &b[order.as_str()])
                        .then_with(|| compare(&a["user_id"], &b["user_id"]))
                },
                dir,
                from,
                limit,
            );
            let mut body = json!({ "users": page.items, "total": page.total });
            if let Some(next) = page.next {
                body["next_token"] = json!(next);
            }
            Ok(Json(body))
        })
        .await
}

/// Orders JSON values: null first, numbers by value, strings by text, booleans false first.
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}
