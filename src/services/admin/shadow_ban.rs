//! Shadow-banning (Synapse's `/users/{userId}/shadow_ban`): a shadow-banned user's sends, state
//! changes, redactions and invites answer as if they worked (a made-up event id) and change
//! nothing; their typing is ignored. For spammers who would otherwise try again elsewhere. The
//! banned users are a `UserSet` (`Services::shadow_bans`).

use ruma::OwnedEventId;

use crate::storage::Map;

/// user id → empty: a shadow-banned user.
pub const SHADOW_BANNED: Map = Map("shadow_banned_users");

/// An event id for an answer that pretends (the shape of room versions 4 and later).
pub fn made_up_event_id() -> OwnedEventId {
    OwnedEventId::try_from(format!("${}", crate::util::random_string(43)))
        .expect("a valid event id")
}
