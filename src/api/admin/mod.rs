//! The admin HTTP API: a subset of Synapse's `/_synapse/admin/...` on the client listener
//! (documented in `spec/admin-api.md`). Every route needs the access token of a server admin.
//! Handlers are thin: the work is in `services::admin`.

pub mod extract;
pub mod jobs;
pub mod media;
pub mod reports;
pub mod rooms;
pub mod users;

use http::Method;

use super::AppRouter;

pub fn routes(router: AppRouter) -> AppRouter {
    const V1: &str = "/_synapse/admin/v1";
    const V2: &str = "/_synapse/admin/v2";
    const PARVIS: &str = "/_parvis/admin/v1";
    router
        .route(
            Method::POST,
            &format!("{PARVIS}/backup"),
            jobs::start_backup,
        )
        .route(Method::GET, &format!("{PARVIS}/jobs"), jobs::list)
        .route(Method::GET, &format!("{PARVIS}/jobs/{{job_id}}"), jobs::get)
        .route(
            Method::POST,
            &format!("{PARVIS}/rooms/{{room_id}}/export"),
            jobs::export_room,
        )
        .route(
            Method::POST,
            &format!("{PARVIS}/users/{{user_id}}/export"),
            jobs::export_user,
        )
        .route(
            Method::GET,
            &format!("{PARVIS}/exports/{{job_id}}"),
            jobs::download,
        )
        .route(
            Method::GET,
            &format!("{V1}/server_version"),
            users::server_version,
        )
        .route(Method::GET, &format!("{V2}/users"), users::list)
        .route(
            Method::GET,
            &format!("{V2}/users/{{user_id}}"),
            users::get_user,
        )
        .route(
            Method::PUT,
            &format!("{V2}/users/{{user_id}}"),
            users::put_user,
        )
        .route(
            Method::POST,
            &format!("{V1}/deactivate/{{user_id}}"),
            users::deactivate,
        )
        .route(
            Method::POST,
            &format!("{V1}/reset_password/{{user_id}}"),
            users::reset_password,
        )
        .route(
            Method::GET,
            &format!("{V1}/users/{{user_id}}/admin"),
            users::get_admin,
        )
        .route(
            Method::PUT,
            &format!("{V1}/users/{{user_id}}/admin"),
            users::set_admin,
        )
        .route(
            Method::GET,
            &format!("{V1}/whois/{{user_id}}"),
            users::whois,
        )
        // The client-server API's whois (spec `GET /admin/whois/{userId}`), for server admins.
        .route(
            Method::GET,
            "/_matrix/client/v3/admin/whois/{user_id}",
            users::whois,
        )
        .route(
            Method::GET,
            &format!("{V2}/users/{{user_id}}/devices"),
            users::devices,
        )
        .route(
            Method::GET,
            &format!("{V2}/users/{{user_id}}/devices/{{device_id}}"),
            users::device,
        )
        .route(
            Method::PUT,
            &format!("{V2}/users/{{user_id}}/devices/{{device_id}}"),
            users::rename_device,
        )
        .route(
            Method::DELETE,
            &format!("{V2}/users/{{user_id}}/devices/{{device_id}}"),
            users::delete_device,
        )
        .route(
            Method::GET,
            &format!("{V1}/users/{{user_id}}/joined_rooms"),
            users::joined_rooms,
        )
        .route(Method::GET, &format!("{V1}/rooms"), rooms::list)
        .route(
            Method::GET,
            &format!("{V1}/rooms/{{room_id}}"),
            rooms::details,
        )
        .route(
            Method::GET,
            &format!("{V1}/rooms/{{room_id}}/members"),
            rooms::members,
        )
        .route(
            Method::GET,
            &format!("{V1}/rooms/{{room_id}}/state"),
            rooms::state,
        )
        .route(
            Method::GET,
            &format!("{V1}/rooms/{{room_id}}/block"),
            rooms::get_block,
        )
        .route(
            Method::PUT,
            &format!("{V1}/rooms/{{room_id}}/block"),
            rooms::set_block,
        )
        .route(Method::POST, &format!("{V1}/join/{{room}}"), rooms::join)
        .route(
            Method::DELETE,
            &format!("{V2}/rooms/{{room_id}}"),
            rooms::delete,
        )
        .route(
            Method::DELETE,
            &format!("{V1}/rooms/{{room_id}}"),
            rooms::delete_v1,
        )
        .route(
            Method::POST,
            &format!("{V1}/purge_history/{{room_id}}"),
            rooms::purge_history,
        )
        .route(
            Method::POST,
            &format!("{V1}/purge_history/{{room_id}}/{{event_id}}"),
            rooms::purge_history,
        )
        .route(
            Method::GET,
            &format!("{V1}/purge_history_status/{{purge_id}}"),
            rooms::purge_history_status,
        )
        .route(
            Method::GET,
            &format!("{V2}/rooms/{{room_id}}/delete_status"),
            rooms::delete_status_of_room,
        )
        .route(
            Method::GET,
            &format!("{V2}/rooms/delete_status/{{delete_id}}"),
            rooms::delete_status,
        )
        .route(
            Method::GET,
            &format!("{V1}/media/{{server_name}}/{{media_id}}"),
            media::info,
        )
        .route(
            Method::DELETE,
            &format!("{V1}/media/{{server_name}}/{{media_id}}"),
            media::delete_one,
        )
        .route(
            Method::POST,
            &format!("{V1}/media/delete"),
            media::delete_before,
        )
        .route(
            Method::POST,
            &format!("{V1}/media/quarantine/{{server_name}}/{{media_id}}"),
            media::quarantine,
        )
        .route(
            Method::POST,
            &format!("{V1}/media/unquarantine/{{server_name}}/{{media_id}}"),
            media::unquarantine,
        )
        .route(
            Method::POST,
            &format!("{V1}/room/{{room_id}}/media/quarantine"),
            media::quarantine_room,
        )
        .route(
            Method::POST,
            &format!("{V1}/user/{{user_id}}/media/quarantine"),
            media::quarantine_user,
        )
        .route(
            Method::POST,
            &format!("{V1}/media/protect/{{media_id}}"),
            media::protect,
        )
        .route(
            Method::POST,
            &format!("{V1}/media/unprotect/{{media_id}}"),
            media::unprotect,
        )
        .route(
            Method::POST,
            &format!("{V1}/purge_media_cache"),
            media::purge_cache,
        )
        .route(
            Method::GET,
            &format!("{V1}/room/{{room_id}}/media"),
            media::room_media,
        )
        .route(
            Method::GET,
            &format!("{V1}/users/{{user_id}}/media"),
            media::user_media,
        )
        .route(
            Method::GET,
            &format!("/_synapse/admin/v3/users/{{user_id}}/media"),
            media::user_media,
        )
        .route(
            Method::DELETE,
            &format!("{V1}/users/{{user_id}}/media"),
            media::delete_user_media,
        )
        .route(
            Method::GET,
            &format!("{V1}/statistics/users/media"),
            media::usage,
        )
        .route(Method::GET, &format!("{V1}/event_reports"), reports::list)
        .route(
            Method::GET,
            &format!("{V1}/event_reports/{{report_id}}"),
            reports::details,
        )
        .route(
            Method::DELETE,
            &format!("{V1}/event_reports/{{report_id}}"),
            reports::delete,
        )
}
