//! Aliases, the public room directory and the user directory.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    RoomId, UserId,
    api::client::{
        alias::{create_alias, delete_alias, get_alias},
        directory::{
            get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility,
        },
        room::{Visibility, aliases},
        user_directory::search_users,
    },
};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{
        Services,
        directory_listing::public_rooms,
        rooms::{self, membership::Membership, power},
        timeline::visibility::may_read_room,
    },
};

type Res<T> = Result<RumaResponse<T>>;

pub async fn create(
    State(services): State<Arc<Services>>,
    req: Ruma<create_alias::v3::Request>,
) -> Res<create_alias::v3::Response> {
    let user = req.user()?.clone();
    services.moderation.ensure_not_suspended(&user)?;
    services
        .run(move |s| {
            let alias = &req.body.room_alias;
            if alias.server_name() != s.globals.server_name() {
                return Err(Error::invalid_param("Alias must be on this server"));
            }
            if let Some(owner) = s.appservices.exclusive_alias_owner(alias)
                && !owner.owns_user(&user)
            {
                return Err(Error::exclusive(
                    "This alias is reserved by an application service",
                ));
            }
            if !s.timeline.room_exists(&req.body.room_id)? {
                return Err(Error::not_found("Unknown room"));
            }
            if !is_joined(s, &req.body.room_id, &user)? {
                return Err(Error::forbidden(
                    "You must be in the room to create an alias for it",
                ));
            }
            s.directory.set_alias(alias, &req.body.room_id, &user)?;
            Ok(create_alias::v3::Response::new().into())
        })
        .await
}

fn is_joined(s: &Services, room_id: &RoomId, user: &UserId) -> Result<bool> {
    let short = rooms::short_room(s, room_id).map_err(|_| Error::not_found("Unknown room"))?;
    s.membership.is_joined(short, user)
}

/// A room's aliases and directory listing are edited by its joined members with the power to send
/// `m.room.canonical_alias` (a power level alone, kept after leaving, is not enough).
fn may_edit_listing(s: &Services, room_id: &RoomId, user: &UserId) -> Result<bool> {
    Ok(is_joined(s, room_id, user)?
        && power::can_send_state(s, room_id, user, "m.room.canonical_alias")?)
}

pub async fn resolve(
    State(services): State<Arc<Services>>,
    req: Ruma<get_alias::v3::Request>,
) -> Res<get_alias::v3::Response> {
    if req.body.room_alias.server_name() != services.globals.server_name() {
        let (room_id, servers) =
            crate::federation::join::remote::resolve_remote_alias(&services, &req.body.room_alias)
                .await?;
        return Ok(get_alias::v3::Response::new(room_id, servers).into());
    }
    let room_id = local_alias_room(&services, &req.body.room_alias)
        .await?
        .ok_or_else(|| Error::not_found("Room alias not found"))?;
    Ok(get_alias::v3::Response::new(room_id, vec![services.globals.server_name().clone()]).into())
}

/// The room of a local alias; an unknown one in an application service's alias namespace is
/// first asked of that service, which may create it (`services::appservice::query`).
pub async fn local_alias_room(
    services: &Arc<Services>,
    alias: &ruma::RoomAliasId,
) -> Result<Option<ruma::OwnedRoomId>> {
    let lookup = |alias: ruma::OwnedRoomAliasId| {
        services.run(move |s| Ok(s.directory.resolve(&alias)?.map(|r| r.room_id)))
    };
    if let Some(room_id) = lookup(alias.to_owned()).await? {
        return Ok(Some(room_id));
    }
    if !crate::services::appservice::query::ask_for_alias(services, alias).await {
        return Ok(None);
    }
    lookup(alias.to_owned()).await
}

pub async fn delete(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_alias::v3::Request>,
) -> Res<delete_alias::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let record = s
                .directory
                .resolve(&req.body.room_alias)?
                .ok_or_else(|| Error::not_found("Room alias not found"))?;
            if record.creator != user && !may_edit_listing(s, &record.room_id, &user)? {
                return Err(Error::forbidden("You may not delete this alias"));
            }
            s.directory.remove_alias(&req.body.room_alias)?;
            Ok(delete_alias::v3::Response::new().into())
        })
        .await
}

pub async fn list(
    State(services): State<Arc<Services>>,
    req: Ruma<aliases::v3::Request>,
) -> Res<aliases::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let short = rooms::short_room(s, &req.body.room_id)
                .map_err(|_| Error::forbidden("Unknown room"))?;
            if !may_read_room(s, &user, short)? {
                return Err(Error::forbidden("You are not a member of this room"));
            }
            Ok(aliases::v3::Response::new(s.directory.aliases_of(&req.body.room_id)?).into())
        })
        .await
}

pub async fn get_visibility(
    State(services): State<Arc<Services>>,
    req: Ruma<get_room_visibility::v3::Request>,
) -> Res<get_room_visibility::v3::Response> {
    services
        .run(move |s| {
            if !s.timeline.room_exists(&req.body.room_id)? {
                return Err(Error::not_found("Unknown room"));
            }
            let public = s.directory.is_public(&req.body.room_id)?;
            Ok(get_room_visibility::v3::Response::new(if public {
                Visibility::Public
            } else {
                Visibility::Private
            })
            .into())
        })
        .await
}

pub async fn set_visibility(
    State(services): State<Arc<Services>>,
    req: Ruma<set_room_visibility::v3::Request>,
) -> Res<set_room_visibility::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            if !s.timeline.room_exists(&req.body.room_id)? {
                return Err(Error::not_found("Unknown room"));
            }
            if !may_edit_listing(s, &req.body.room_id, &user)? {
                return Err(Error::forbidden(
                    "You may not change this room's visibility",
                ));
            }
            let public = req.body.visibility == Visibility::Public;
            if public && !s.config().rooms.allow_publish {
                return Err(Error::forbidden("Publishing rooms is disabled"));
            }
            s.directory.set_public(&req.body.room_id, public)?;
            Ok(set_room_visibility::v3::Response::new().into())
        })
        .await
}

/// The server a `?server=` asks for, when it is another one (our own name: our list).
fn remote_server(
    services: &Services,
    server: Option<ruma::OwnedServerName>,
) -> Option<ruma::OwnedServerName> {
    server.filter(|s| s != services.globals.server_name())
}

/// The user of the request's access token (header or `access_token` query parameter): the
/// `GET /publicRooms` route needs none, but asking another server on a user's behalf does (as
/// Synapse): none 401 `M_MISSING_TOKEN`, an unknown one 401 `M_UNKNOWN_TOKEN`.
async fn require_user(
    services: &Arc<Services>,
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> Result<()> {
    let from_header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let from_query = query.and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("access_token="))
            .map(|t| {
                percent_encoding::percent_decode_str(t)
                    .decode_utf8_lossy()
                    .into_owned()
            })
    });
    let token = from_header
        .or(from_query)
        .ok_or_else(Error::missing_token)?;
    crate::api::ruma_wrapper::token_owner(services, token, "")
        .await
        .map(|_| ())
}

pub async fn public_rooms_get(
    State(services): State<Arc<Services>>,
    headers: http::HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    req: Ruma<get_public_rooms::v3::Request>,
) -> Res<get_public_rooms::v3::Response> {
    if let Some(server) = remote_server(&services, req.body.server.clone()) {
        require_user(&services, &headers, query.as_deref()).await?;
        let mut request = ruma::api::federation::directory::get_public_rooms::v1::Request::new();
        request.limit = req.body.limit;
        request.since = req.body.since.clone();
        let r = crate::federation::public_rooms::get(&services, &server, request).await?;
        let mut response = get_public_rooms::v3::Response::new(r.chunk);
        response.next_batch = r.next_batch;
        response.prev_batch = r.prev_batch;
        response.total_room_count_estimate = r.total_room_count_estimate;
        return Ok(response.into());
    }
    services
        .run(move |s| {
            let page = public_rooms(s, req.body.limit, req.body.since.as_deref(), None)?;
            let mut response = get_public_rooms::v3::Response::new(page.chunk);
            response.next_batch = page.next_batch;
            response.prev_batch = page.prev_batch;
            response.total_room_count_estimate = page.total;
            Ok(response.into())
        })
        .await
}

pub async fn public_rooms_post(
    State(services): State<Arc<Services>>,
    req: Ruma<get_public_rooms_filtered::v3::Request>,
) -> Res<get_public_rooms_filtered::v3::Response> {
    if let Some(server) = remote_server(&services, req.body.server.clone()) {
        let mut request =
            ruma::api::federation::directory::get_public_rooms_filtered::v1::Request::new();
        request.limit = req.body.limit;
        request.since = req.body.since.clone();
        request.filter = req.body.filter.clone();
        request.room_network = req.body.room_network.clone();
        let r = crate::federation::public_rooms::post(&services, &server, request).await?;
        let mut response = get_public_rooms_filtered::v3::Response::new();
        response.chunk = r.chunk;
        response.next_batch = r.next_batch;
        response.prev_batch = r.prev_batch;
        response.total_room_count_estimate = r.total_room_count_estimate;
        return Ok(response.into());
    }
    services
        .run(move |s| {
            let r = crate::services::directory_listing::public_rooms_of(
                s,
                &req.body.room_network,
                req.body.limit,
                req.body.since.as_deref(),
                req.body.filter.generic_search_term.as_deref(),
            )?;
            let mut response = get_public_rooms_filtered::v3::Response::new();
            response.chunk = r.chunk;
            response.next_batch = r.next_batch;
            response.prev_batch = r.prev_batch;
            response.total_room_count_estimate = r.total;
            Ok(response.into())
        })
        .await
}

/// Users who share a room with the searcher or are in a public room, matching the term.
pub async fn search_users(
    State(services): State<Arc<Services>>,
    req: Ruma<search_users::v3::Request>,
) -> Res<search_users::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let term = req.body.search_term.to_lowercase();
            let limit = u64::from(req.body.limit).clamp(1, 1000) as usize;
            let mut visible_rooms: Vec<u64> = Vec::new();
            for room in s.membership.rooms_of(&user)? {
                if room.membership == Membership::Join {
                    visible_rooms.push(rooms::short_room(s, &room.room_id)?);
                }
            }
            for room_id in s.directory.public_rooms()? {
                visible_rooms.push(rooms::short_room(s, &room_id)?);
            }
            let mut results = Vec::new();
            let mut limited = false;
            for (candidate, account) in s.users.all()? {
                if account.deactivated {
                    continue;
                }
                let name = account.displayname.clone().unwrap_or_default();
                if !candidate.as_str().to_lowercase().contains(&term)
                    && !name.to_lowercase().contains(&term)
                {
                    continue;
                }
                let shares = candidate == user
                    || visible_rooms
                        .iter()
                        .any(|r| s.membership.is_joined(*r, &candidate).unwrap_or(false));
                if !shares {
                    continue;
                }
                if results.len() == limit {
                    limited = true;
                    break;
                }
                let mut entry = search_users::v3::User::new(candidate);
                entry.display_name = account.displayname;
                entry.avatar_url = account.avatar_url.map(Into::into);
                results.push(entry);
            }
            let response = search_users::v3::Response::new(results, limited);
            Ok(response.into())
        })
        .await
}
