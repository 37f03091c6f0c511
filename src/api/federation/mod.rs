//! Routes of the federation listener (TLS): `/_matrix/key/*` and `/_matrix/federation/*`.
//! Thin handlers; the work is in `crate::federation`.

pub mod auth;
pub mod keys;
pub mod keys_user;
pub mod media;
pub mod query;
pub mod rooms;
pub mod spaces;
pub mod third_party;

use std::sync::Arc;

use axum::{
    Json, Router,
    routing::{get, post, put},
};
use serde_json::{Value, json};

use crate::{error::Error, services::Services};

/// The router of the federation listener.
pub fn router(services: Arc<Services>) -> Router {
    Router::new()
        .route("/_matrix/key/v2/server", get(keys::server_keys))
        .route("/_matrix/key/v2/server/{key_id}", get(keys::server_keys))
        .route("/_matrix/key/v2/query/{server_name}", get(keys::query))
        .route("/_matrix/key/v2/query", post(keys::query_batch))
        .route("/_matrix/federation/v1/version", get(version))
        .route("/health", get(crate::api::health::health))
        .route("/_matrix/federation/v1/query/profile", get(query::profile))
        .route(
            "/_matrix/federation/v1/query/directory",
            get(query::directory),
        )
        .route(
            "/_matrix/federation/v1/openid/userinfo",
            get(query::openid_userinfo),
        )
        .route(
            "/_matrix/federation/v1/send/{txn_id}",
            put(rooms::send_transaction),
        )
        .route(
            "/_matrix/federation/v1/make_join/{room_id}/{user_id}",
            get(rooms::make_join),
        )
        .route(
            "/_matrix/federation/v1/make_leave/{room_id}/{user_id}",
            get(rooms::make_leave),
        )
        .route(
            "/_matrix/federation/v1/send_join/{room_id}/{event_id}",
            put(rooms::send_join_v1),
        )
        .route(
            "/_matrix/federation/v2/send_join/{room_id}/{event_id}",
            put(rooms::send_join_v2),
        )
        .route(
            "/_matrix/federation/v1/send_leave/{room_id}/{event_id}",
            put(rooms::send_leave_v1),
        )
        .route(
            "/_matrix/federation/v2/send_leave/{room_id}/{event_id}",
            put(rooms::send_leave_v2),
        )
        .route(
            "/_matrix/federation/v2/invite/{room_id}/{event_id}",
            put(rooms::invite_v2),
        )
        .route(
            "/_matrix/federation/v1/invite/{room_id}/{event_id}",
            put(rooms::invite_v1),
        )
        .route(
            "/_matrix/federation/v1/hierarchy/{room_id}",
            get(spaces::hierarchy),
        )
        .route(
            "/_matrix/federation/v1/exchange_third_party_invite/{room_id}",
            put(third_party::exchange),
        )
        .route(
            "/_matrix/federation/v1/3pid/onbind",
            put(third_party::on_bind),
        )
        .route(
            "/_matrix/federation/v1/make_knock/{room_id}/{user_id}",
            get(rooms::make_knock),
        )
        .route(
            "/_matrix/federation/v1/send_knock/{room_id}/{event_id}",
            put(rooms::send_knock),
        )
        .route(
            "/_matrix/federation/v1/state_ids/{room_id}",
            get(rooms::state_ids),
        )
        .route("/_matrix/federation/v1/state/{room_id}", get(rooms::state))
        .route("/_matrix/federation/v1/event/{event_id}", get(rooms::event))
        .route(
            "/_matrix/federation/v1/event_auth/{room_id}/{event_id}",
            get(rooms::event_auth),
        )
        .route(
            "/_matrix/federation/v1/backfill/{room_id}",
            get(rooms::backfill),
        )
        .route(
            "/_matrix/federation/v1/get_missing_events/{room_id}",
            post(rooms::get_missing_events),
        )
        .route(
            "/_matrix/federation/v1/timestamp_to_event/{room_id}",
            get(rooms::timestamp_to_event),
        )
        .route(
            "/_matrix/federation/v1/user/devices/{user_id}",
            get(rooms::user_devices),
        )
        .route(
            "/_matrix/federation/v1/media/download/{media_id}",
            get(media::download),
        )
        .route(
            "/_matrix/federation/v1/media/thumbnail/{media_id}",
            get(media::thumbnail),
        )
        .route(
            "/_matrix/federation/v1/user/keys/query",
            post(keys_user::query_keys),
        )
        .route(
            "/_matrix/federation/v1/user/keys/claim",
            post(keys_user::claim_keys),
        )
        .route(
            "/_matrix/federation/v1/publicRooms",
            get(rooms::public_rooms_get).post(rooms::public_rooms_post),
        )
        .fallback(|| async { Error::unrecognized("Unrecognized request") })
        .method_not_allowed_fallback(|| async { Error::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(
            services.clone(),
            crate::api::metrics::record_federation,
        ))
        .layer(axum::middleware::from_fn(
            crate::api::panic_guard::catch_panic,
        ))
        .with_state(services)
}

/// `GET /_matrix/federation/v1/version`.
async fn version() -> Json<Value> {
    Json(json!({ "server": { "name": "Parvis", "version": env!("CARGO_PKG_VERSION") } }))
}
