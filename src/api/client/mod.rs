//! The client-server API routes.

pub mod account;
pub mod account_data;
pub mod account_moderation;
pub mod appservice;
pub mod dehydrated;
pub mod devices;
pub mod directory;
pub mod discovery;
pub mod ephemeral;
pub mod events;
pub mod key_backup;
pub mod keys;
pub mod login;
pub mod media;
pub mod mutual_rooms;
pub mod profile;
pub mod push;
pub mod relations;
pub mod reporting;
pub mod room_summary;
pub mod rooms;
pub mod search;
pub mod sliding_sync;
pub mod spaces;
pub mod sso;
pub mod sso_pages;
pub mod sync;
pub mod third_party;
pub mod threepids;
pub mod timestamp;
pub mod to_device;
pub mod tokens;
pub mod voip;

use http::Method;
use ruma::api::client::{
    account::{
        change_password, deactivate, get_username_availability, register, request_openid_token,
        whoami,
    },
    alias::{create_alias, delete_alias, get_alias},
    config::{
        get_global_account_data, get_room_account_data, set_global_account_data,
        set_room_account_data,
    },
    context::get_context,
    device::{delete_device, delete_devices, get_device, get_devices, update_device},
    directory::{
        get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility,
    },
    discovery::{get_capabilities, get_supported_versions},
    filter::{create_filter, get_filter},
    knock::knock_room,
    membership::{
        ban_user, forget_room, get_member_events, invite_user, join_room_by_id,
        join_room_by_id_or_alias, joined_members, joined_rooms, kick_user, leave_room, unban_user,
    },
    message::{get_message_events, send_message_event},
    presence::{get_presence, set_presence},
    profile::{delete_profile_field, get_profile, get_profile_field, set_profile_field},
    read_marker::set_read_marker,
    receipt::create_receipt,
    redact::redact_event,
    room::{aliases, create_room, get_room_event, upgrade_room},
    search::search_events,
    session::{get_login_token, get_login_types, logout, logout_all, refresh_token},
    space::get_hierarchy,
    state::{get_state_event_for_key, get_state_events, send_state_event},
    sync::sync_events,
    tag::{create_tag, delete_tag, get_tags},
    typing::create_typing_event,
    user_directory::search_users,
};

use super::{AppRouter, RumaRoute};

pub fn routes(router: AppRouter) -> AppRouter {
    third_party_routes(e2ee_routes(media::routes(push::routes(router))))
        .route(Method::GET, "/_matrix/client/v3/login/sso/redirect", sso::redirect_any)
        .route(Method::GET, "/_matrix/client/r0/login/sso/redirect", sso::redirect_any)
        .route(Method::GET, "/_matrix/client/v3/login/sso/redirect/{idp_id}", sso::redirect_to)
        .route(Method::GET, "/_matrix/client/r0/login/sso/redirect/{idp_id}", sso::redirect_to)
        .route(Method::GET, "/_matrix/client/v3/auth/m.login.sso/fallback/web", sso::uia_fallback)
        .route(Method::GET, "/_matrix/client/r0/auth/m.login.sso/fallback/web", sso::uia_fallback)
        .route(Method::GET, sso::CALLBACK, sso::callback)
        .route(Method::GET, "/_parvis/client/oidc/confirm/{idp_id}", sso::uia_confirm_start)
        .route(Method::POST, "/_parvis/client/oidc/backchannel_logout", sso::backchannel_logout)
        .route(Method::POST, "/_parvis/client/sso/new_account", sso::create_account)
        .route(Method::GET, threepids::VALIDATE_PATH, threepids::validate)
        .route(Method::GET, "/.well-known/matrix/client", discovery::well_known_client)
        .route(Method::GET, "/.well-known/matrix/server", discovery::well_known_server)
        .ruma::<get_supported_versions::Request, _, _>(discovery::versions)
        .ruma::<get_capabilities::v3::Request, _, _>(discovery::capabilities)
        .ruma::<register::v3::Request, _, _>(account::register)
        .ruma::<get_username_availability::v3::Request, _, _>(account::username_available)
        .ruma::<get_login_types::v3::Request, _, _>(login::login_types)
        .ruma::<ruma::api::client::session::login::v3::Request, _, _>(login::login)
        .ruma::<logout::v3::Request, _, _>(login::logout)
        .ruma::<logout_all::v3::Request, _, _>(login::logout_all)
        .ruma::<get_login_token::v1::Request, _, _>(login::get_token)
        .ruma::<refresh_token::v3::Request, _, _>(login::refresh)
        .ruma::<ruma::api::client::admin::is_user_locked::v1::Request, _, _>(account_moderation::is_locked)
        .ruma::<ruma::api::client::admin::lock_user::v1::Request, _, _>(account_moderation::lock)
        .ruma::<ruma::api::client::admin::is_user_suspended::v1::Request, _, _>(account_moderation::is_suspended)
        .ruma::<ruma::api::client::admin::suspend_user::v1::Request, _, _>(account_moderation::suspend)
        .ruma::<whoami::v3::Request, _, _>(account::whoami)
        .ruma::<request_openid_token::v3::Request, _, _>(account::request_openid_token)
        .ruma::<change_password::v3::Request, _, _>(account::change_password)
        .ruma::<deactivate::v3::Request, _, _>(account::deactivate)
        .ruma::<get_devices::v3::Request, _, _>(devices::list)
        .ruma::<get_device::v3::Request, _, _>(devices::get)
        .ruma::<update_device::v3::Request, _, _>(devices::update)
        .ruma::<delete_device::v3::Request, _, _>(devices::delete)
        .ruma::<delete_devices::v3::Request, _, _>(devices::delete_many)
        .ruma::<get_profile::v3::Request, _, _>(profile::get)
        .ruma::<get_profile_field::v3::Request, _, _>(profile::get_field)
        .ruma::<set_profile_field::v3::Request, _, _>(profile::set_field)
        .ruma::<delete_profile_field::v3::Request, _, _>(profile::delete_field)
        .ruma::<create_room::v3::Request, _, _>(rooms::create)
        .ruma::<upgrade_room::v3::Request, _, _>(rooms::upgrade)
        .ruma::<joined_rooms::v3::Request, _, _>(rooms::joined)
        .ruma::<join_room_by_id::v3::Request, _, _>(rooms::join_by_id)
        .ruma::<join_room_by_id_or_alias::v3::Request, _, _>(rooms::join_by_id_or_alias)
        .ruma::<invite_user::v3::Request, _, _>(rooms::invite)
        .ruma::<knock_room::v3::Request, _, _>(rooms::knock)
        .ruma::<leave_room::v3::Request, _, _>(rooms::leave)
        .ruma::<forget_room::v3::Request, _, _>(rooms::forget)
        .ruma::<kick_user::v3::Request, _, _>(rooms::kick)
        .ruma::<ban_user::v3::Request, _, _>(rooms::ban)
        .ruma::<unban_user::v3::Request, _, _>(rooms::unban)
        .ruma::<get_member_events::v3::Request, _, _>(rooms::members)
        .ruma::<get_hierarchy::v1::Request, _, _>(spaces::hierarchy)
        .ruma::<joined_members::v3::Request, _, _>(rooms::joined_members)
        .ruma::<send_message_event::v3::Request, _, _>(events::send_message)
        .ruma::<send_state_event::v3::Request, _, _>(events::send_state)
        .ruma::<get_state_event_for_key::v3::Request, _, _>(events::get_state_event)
        .ruma::<get_state_events::v3::Request, _, _>(events::get_state)
        .ruma::<redact_event::v3::Request, _, _>(events::redact)
        .ruma::<get_message_events::v3::Request, _, _>(events::messages)
        .ruma::<get_context::v3::Request, _, _>(events::context)
        .ruma::<search_events::v3::Request, _, _>(search::search)
        .ruma::<get_room_event::v3::Request, _, _>(events::get_event)
        .ruma::<ruma::api::client::relations::get_relating_events::v1::Request, _, _>(relations::get_relations)
        .ruma::<ruma::api::client::relations::get_relating_events_with_rel_type::v1::Request, _, _>(relations::get_relations_with_rel_type)
        .ruma::<ruma::api::client::relations::get_relating_events_with_rel_type_and_event_type::v1::Request, _, _>(relations::get_relations_with_rel_type_and_event_type)
        .ruma::<ruma::api::client::threads::get_threads::v1::Request, _, _>(relations::get_thread_roots)
        .ruma::<sync_events::v3::Request, _, _>(sync::sync)
        .ruma::<sync_events::v5::Request, _, _>(sliding_sync::sync)
        .ruma::<create_alias::v3::Request, _, _>(directory::create)
        .ruma::<get_alias::v3::Request, _, _>(directory::resolve)
        .ruma::<delete_alias::v3::Request, _, _>(directory::delete)
        .ruma::<aliases::v3::Request, _, _>(directory::list)
        .ruma::<get_room_visibility::v3::Request, _, _>(directory::get_visibility)
        .ruma::<set_room_visibility::v3::Request, _, _>(directory::set_visibility)
        .ruma::<get_public_rooms::v3::Request, _, _>(directory::public_rooms_get)
        .ruma::<get_public_rooms_filtered::v3::Request, _, _>(directory::public_rooms_post)
        .ruma::<search_users::v3::Request, _, _>(directory::search_users)
        .ruma::<get_global_account_data::v3::Request, _, _>(account_data::get_global)
        .ruma::<set_global_account_data::v3::Request, _, _>(account_data::set_global)
        .ruma::<get_room_account_data::v3::Request, _, _>(account_data::get_room)
        .ruma::<set_room_account_data::v3::Request, _, _>(account_data::set_room)
        .ruma::<get_tags::v3::Request, _, _>(account_data::get_tags)
        .ruma::<create_tag::v3::Request, _, _>(account_data::put_tag)
        .ruma::<delete_tag::v3::Request, _, _>(account_data::delete_tag)
        .ruma::<create_filter::v3::Request, _, _>(account_data::create_filter)
        .ruma::<get_filter::v3::Request, _, _>(account_data::get_filter)
        .ruma::<create_typing_event::v3::Request, _, _>(ephemeral::typing)
        .ruma::<create_receipt::v3::Request, _, _>(ephemeral::create_receipt)
        .ruma::<set_read_marker::v3::Request, _, _>(ephemeral::read_markers)
        .ruma::<set_presence::v3::Request, _, _>(ephemeral::set)
        .ruma::<ruma::api::client::room::report_content::v3::Request, _, _>(reporting::report_event)
        .ruma::<ruma::api::client::room::report_room::v3::Request, _, _>(reporting::report_room)
        .ruma::<ruma::api::client::reporting::report_user::v3::Request, _, _>(reporting::report_user)
        .ruma::<ruma::api::client::room::get_event_by_timestamp::v1::Request, _, _>(timestamp::timestamp_to_event)
        .ruma::<ruma::api::client::room::get_summary::v1::Request, _, _>(room_summary::summary)
        .ruma::<ruma::api::client::membership::get_mutual_rooms::v1::Request, _, _>(mutual_rooms::stable)
        .ruma::<ruma::api::client::membership::get_mutual_rooms::unstable::Request, _, _>(mutual_rooms::unstable)
        // The other unstable path of MSC3266 that Synapse serves.
        .route(Method::GET, "/_matrix/client/unstable/im.nheko.summary/summary/{room_id_or_alias}", room_summary::summary)
        .ruma::<get_presence::v3::Request, _, _>(ephemeral::get)
        .route(Method::GET, "/.well-known/matrix/support", discovery::well_known_support)
        .ruma::<ruma::api::client::account::check_registration_token_validity::v1::Request, _, _>(tokens::registration_token_validity)
        .ruma::<ruma::api::client::voip::get_turn_server_info::v3::Request, _, _>(voip::turn_server)
        .ruma::<ruma::api::client::appservice::request_ping::v1::Request, _, _>(appservice::ping)
        .ruma::<ruma::api::client::appservice::set_room_visibility::v3::Request, _, _>(appservice::set_directory_visibility)
}

/// Third-party identifiers and networks (`third_party`).
fn third_party_routes(router: AppRouter) -> AppRouter {
    use ruma::api::client::{account as a, thirdparty as t};
    router
        .ruma::<a::get_3pids::v3::Request, _, _>(threepids::list)
        .ruma::<a::add_3pid::v3::Request, _, _>(threepids::add)
        .ruma::<a::bind_3pid::v3::Request, _, _>(threepids::bind)
        .ruma::<a::delete_3pid::v3::Request, _, _>(threepids::delete)
        .ruma::<a::unbind_3pid::v3::Request, _, _>(threepids::unbind)
        .ruma::<a::request_registration_token_via_email::v3::Request, _, _>(
            threepids::registration_email,
        )
        .ruma::<a::request_registration_token_via_msisdn::v3::Request, _, _>(
            threepids::registration_msisdn,
        )
        .ruma::<a::request_3pid_management_token_via_email::v3::Request, _, _>(
            threepids::management_email,
        )
        .ruma::<a::request_3pid_management_token_via_msisdn::v3::Request, _, _>(
            threepids::management_msisdn,
        )
        .ruma::<a::request_password_change_token_via_email::v3::Request, _, _>(
            threepids::password_email,
        )
        .ruma::<a::request_password_change_token_via_msisdn::v3::Request, _, _>(
            threepids::password_msisdn,
        )
        .ruma::<t::get_protocols::v3::Request, _, _>(third_party::protocols)
        .ruma::<t::get_protocol::v3::Request, _, _>(third_party::protocol)
        .ruma::<t::get_location_for_protocol::v3::Request, _, _>(third_party::locations_of_protocol)
        .ruma::<t::get_user_for_protocol::v3::Request, _, _>(third_party::users_of_protocol)
        .ruma::<t::get_location_for_room_alias::v3::Request, _, _>(third_party::locations_of_alias)
        .ruma::<t::get_user_for_user_id::v3::Request, _, _>(third_party::users_of_user_id)
}

/// End-to-end encryption: keys, cross-signing, to-device messages, key backup, dehydrated devices.
fn e2ee_routes(router: AppRouter) -> AppRouter {
    use ruma::api::client::{
        backup as b, dehydrated_device as d, keys as k, to_device::send_event_to_device,
    };
    router
        .ruma::<d::put_dehydrated_device::unstable::Request, _, _>(dehydrated::put)
        .ruma::<d::get_dehydrated_device::unstable::Request, _, _>(dehydrated::get)
        .ruma::<d::delete_dehydrated_device::unstable::Request, _, _>(dehydrated::delete)
        .ruma::<d::get_events::unstable::Request, _, _>(dehydrated::events)
        .ruma::<k::upload_keys::v3::Request, _, _>(keys::upload)
        .ruma::<k::get_keys::v3::Request, _, _>(keys::query)
        .ruma::<k::claim_keys::v3::Request, _, _>(keys::claim)
        .ruma::<k::get_key_changes::v3::Request, _, _>(keys::changes)
        .ruma::<k::upload_signing_keys::v3::Request, _, _>(keys::upload_signing)
        .ruma::<k::upload_signatures::v3::Request, _, _>(keys::upload_signatures)
        .ruma::<send_event_to_device::v3::Request, _, _>(to_device::send)
        .ruma::<b::create_backup_version::v3::Request, _, _>(key_backup::create_version)
        .ruma::<b::get_latest_backup_info::v3::Request, _, _>(key_backup::latest_version)
        .ruma::<b::get_backup_info::v3::Request, _, _>(key_backup::get_version)
        .ruma::<b::update_backup_version::v3::Request, _, _>(key_backup::update_version)
        .ruma::<b::delete_backup_version::v3::Request, _, _>(key_backup::delete_version)
        .ruma::<b::add_backup_keys::v3::Request, _, _>(key_backup::put_all)
        .ruma::<b::add_backup_keys_for_room::v3::Request, _, _>(key_backup::put_room)
        .ruma::<b::add_backup_keys_for_session::v3::Request, _, _>(key_backup::put_session)
        .ruma::<b::get_backup_keys::v3::Request, _, _>(key_backup::get_all)
        .ruma::<b::get_backup_keys_for_room::v3::Request, _, _>(key_backup::get_room)
        .ruma::<b::get_backup_keys_for_session::v3::Request, _, _>(key_backup::get_session)
        .ruma::<b::delete_backup_keys::v3::Request, _, _>(key_backup::delete_all)
        .ruma::<b::delete_backup_keys_for_room::v3::Request, _, _>(key_backup::delete_room)
        .ruma::<b::delete_backup_keys_for_session::v3::Request, _, _>(key_backup::delete_session)
}
