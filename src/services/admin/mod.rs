//! The work behind the admin API (`src/api/admin/`): listing users and rooms, deactivating
//! accounts, joining users to rooms, blocking and deleting rooms.

pub mod admin_join;
pub mod deactivation;
pub mod make_admin;
pub mod paging;
pub mod purge_history;
pub mod room_block;
pub mod room_deletion;
pub mod room_list;
pub mod shadow_ban;
pub mod user_list;
pub mod user_set;

use crate::storage::Map;

pub const MAPS: &[Map] = &[
    room_deletion::ROOM_DELETIONS,
    room_block::BLOCKED_ROOMS,
    shadow_ban::SHADOW_BANNED,
    deactivation::ERASED_USERS,
    crate::services::ratelimit::OVERRIDES,
];
