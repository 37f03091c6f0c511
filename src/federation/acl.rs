//! Room server ACLs (`m.room.server_acl`): a server the room's current ACL denies is refused on
//! every federation path that names the room (its PDUs, its room EDUs, membership and reading).

use ruma::{
    RoomId, ServerName,
    events::{StateEventType, room::server_acl::RoomServerAclEventContent},
};

use crate::{
    error::{Error, Result},
    services::{Services, rooms::state_content},
};

/// Whether `server` may take part in the room (true without an ACL or with an unreadable one).
pub fn allowed(s: &Services, room_id: &RoomId, server: &ServerName) -> Result<bool> {
    if server == s.globals.server_name() {
        return Ok(true);
    }
    let Some(content) = state_content(s, room_id, &StateEventType::RoomServerAcl, "")? else {
        return Ok(true);
    };
    Ok(
        match serde_json::from_value::<RoomServerAclEventContent>(content) {
            Ok(acl) => acl.is_allowed(server),
            Err(_) => true,
        },
    )
}

/// 403 M_FORBIDDEN when the room's ACL denies `server`.
pub fn check(s: &Services, room_id: &RoomId, server: &ServerName) -> Result<()> {
    if allowed(s, room_id, server)? {
        Ok(())
    } else {
        Err(Error::forbidden(format!(
            "{server} is denied by the room's server ACL"
        )))
    }
}

#[cfg(test)]
mod tests {
    use ruma::events::room::server_acl::RoomServerAclEventContent;

    #[test]
    fn deny_wins_over_allow_and_ip_literals_follow_their_switch() {
        let acl: RoomServerAclEventContent =
            serde_json::from_value(serde_json::json!({ "allow": ["*"], "deny": ["*.evil.example"], "allow_ip_literals": false })).unwrap();
        assert!(acl.is_allowed(ruma::server_name!("good.example")));
        assert!(!acl.is_allowed(ruma::server_name!("a.evil.example")));
        assert!(!acl.is_allowed(ruma::server_name!("127.0.0.1:8448")));
    }
}
