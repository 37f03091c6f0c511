//! The admin HTTP API: a subset of Synapse's `/_synapse/admin/...` on the client listener
//! (documented in `spec/admin-api.md`). Every route needs the access token of a server admin.
//! Handlers are thin: the work is in `services::admin`.

pub mod extract;
pub mod rooms;
pub mod users;

use axum::routing::{get, post};

use super::AppRouter;

pub fn routes(router: AppRouter) -> AppRouter {
    const V1: &str = "/_synapse/admin/v1";
    const V2: &str = "/_synapse/admin/v2";
    router
        .route(&format!("{V1}/server_version"), get(users::server_version))
        .route(&format!("{V2}/users"), get(users::list))
        .route(&format!("{V2}/users/{{user_id}}"), get(users::get_user).put(users::put_user))
        .route(&format!("{V1}/deactivate/{{user_id}}"), post(users::deactivate))
        .route(&format!("{V1}/reset_password/{{user_id}}"), post(users::reset_password))
        .route(&format!("{V1}/users/{{user_id}}/admin"), get(users::get_admin).put(users::set_admin))
        .route(&format!("{V1}/whois/{{user_id}}"), get(users::whois))
        .route(&format!("{V2}/users/{{user_id}}/devices"), get(users::devices))
        .route(
            &format!("{V2}/users/{{user_id}}/devices/{{device_id}}"),
            get(users::device).put(users::rename_device).delete(users::delete_device),
        )
        .route(&format!("{V1}/users/{{user_id}}/joined_rooms"), get(users::joined_rooms))
        .route(&format!("{V1}/rooms"), get(rooms::list))
        .route(&format!("{V1}/rooms/{{room_id}}"), get(rooms::details))
        .route(&format!("{V1}/rooms/{{room_id}}/members"), get(rooms::members))
        .route(&format!("{V1}/rooms/{{room_id}}/state"), get(rooms::state))
        .route(&format!("{V1}/join/{{room}}"), post(rooms::join))
        .route(&format!("{V2}/rooms/{{room_id}}"), axum::routing::delete(rooms::delete))
        .route(&format!("{V2}/rooms/{{room_id}}/delete_status"), get(rooms::delete_status_of_room))
        .route(&format!("{V2}/rooms/delete_status/{{delete_id}}"), get(rooms::delete_status))
}
