//! Which state events of a partial-state `send_join` answer are checked and stored with the join,
//! and which wait for the resync. A resident that omits the members still sends every other state
//! event of the room: in a channel that integrations or widgets write to, thousands of them, each
//! with a signature to verify before the client's `/join` can be answered (60 % of the join in
//! bench/federation-results.md). The room is partial anyway until the resync brings its whole state,
//! checked; so only the events the authorization rules, the room's summary and the server's own
//! behaviour read are taken with the join (the `m.room.*` namespace: create, power levels, join
//! rules, members, third-party invites, name, topic, avatar, aliases, encryption, history
//! visibility, guest access, server ACL, tombstone, …), and the others (spaces' children, widgets,
//! calls, integrations' own types) come with the resync like the members the resident left out.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The namespace of the state a partial room is joined with.
const NEEDED_NAMESPACE: &str = "m.room.";

/// The `type` of an event, read without building a tree; an escaped string is not borrowed.
#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

/// Whether a state event of a partial-state `send_join` answer (as raw JSON) is checked and stored
/// with the join (pure). Events without a string `type` are kept: their check refuses them.
pub fn needed_at_join(event: &RawValue) -> bool {
    match serde_json::from_str::<TypeOnly>(event.get()) {
        Ok(TypeOnly { kind }) => taken_with_join(&kind),
        Err(_) => true,
    }
}

/// Whether the state of type `kind` comes with a partial-state join (the members left out
/// aside): a key of it that a partial room lacks is not in the room's full state either (pure).
pub fn taken_with_join(kind: &str) -> bool {
    kind.starts_with(NEEDED_NAMESPACE)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json, value::to_raw_value};

    use super::{needed_at_join as needed, taken_with_join};

    fn needed_at_join(event: &Value) -> bool {
        needed(&to_raw_value(event).unwrap())
    }

    #[test]
    fn the_rooms_own_state_is_taken_with_the_join_and_the_rest_waits() {
        for kind in [
            "m.room.create",
            "m.room.power_levels",
            "m.room.join_rules",
            "m.room.member",
            "m.room.third_party_invite",
            "m.room.name",
            "m.room.encryption",
            "m.room.history_visibility",
            "m.room.server_acl",
        ] {
            assert!(needed_at_join(&json!({ "type": kind })), "{kind}");
        }
        for kind in [
            "m.space.child",
            "im.vector.modular.widgets",
            "org.matrix.msc3401.call.member",
            "com.example.ticket",
            "m.roomish",
        ] {
            assert!(!needed_at_join(&json!({ "type": kind })), "{kind}");
        }
        assert!(needed_at_join(&json!({ "type": 7 })));
        assert!(taken_with_join("m.room.topic") && !taken_with_join("m.space.child"));
        assert!(needed_at_join(&json!({})));
        // Escaped text is read too.
        let raw = |text: &str| serde_json::value::RawValue::from_string(text.to_owned()).unwrap();
        assert!(needed(&raw(r#"{"type":"m.room.n\u0061me"}"#)));
        assert!(!needed(&raw(r#"{"type":"com.ex\u0061mple"}"#)));
    }
}
