//! Power levels across a room upgrade: the old room's levels as the new room takes them, the
//! upgrader's temporary power while the state is copied, and the old room's levels raised so
//! that ordinary members can no longer talk or invite there.

use serde_json::{Map, Value, json};

/// The fields that hold one level.
const LEVEL_FIELDS: &[&str] = &[
    "ban",
    "kick",
    "redact",
    "invite",
    "events_default",
    "state_default",
    "users_default",
];
/// The fields that map names to levels.
const LEVEL_MAPS: &[&str] = &["users", "events", "notifications"];

/// A level as an integer; room versions before 10 also allow integers in strings.
fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The levels content with every level an integer (what room versions from 10 on require):
/// numeric strings become integers, values that are not levels are left out.
pub fn normalise(content: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(fields) = content.as_object() else {
        return out;
    };
    for (key, value) in fields {
        if LEVEL_FIELDS.contains(&key.as_str()) {
            if let Some(level) = int(value) {
                out.insert(key.clone(), json!(level));
            }
        } else if LEVEL_MAPS.contains(&key.as_str()) {
            let map: Map<String, Value> = value
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| int(v).map(|l| (k.clone(), json!(l))))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(key.clone(), Value::Object(map));
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    out
}

fn level(levels: &Map<String, Value>, key: &str, default: i64) -> i64 {
    levels.get(key).and_then(int).unwrap_or(default)
}

/// Leaves the room's creators out of `users` (room versions that give creators unlimited power
/// refuse levels naming them).
pub fn without_users(levels: &mut Map<String, Value>, users: &[&str]) {
    if let Some(Value::Object(map)) = levels.get_mut("users") {
        map.retain(|k, _| !users.contains(&k.as_str()));
    }
}

/// The levels with `user` raised to the highest level any state event, a ban or an invite needs,
/// so that the upgrader can copy every piece of state, the bans and send the invites before the
/// room's real levels are restored. `None` when the user already has that power.
pub fn raised_for(levels: &Map<String, Value>, user: &str) -> Option<Map<String, Value>> {
    let events = levels.get("events").and_then(Value::as_object);
    let needed = [
        level(levels, "state_default", 50),
        level(levels, "ban", 50),
        level(levels, "invite", 0),
    ]
    .into_iter()
    .chain(events.into_iter().flat_map(|m| m.values().filter_map(int)))
    .max()
    .unwrap_or(50);
    let current = levels
        .get("users")
        .and_then(|u| u.get(user))
        .and_then(int)
        .unwrap_or(level(levels, "users_default", 0));
    if current >= needed {
        return None;
    }
    let mut raised = levels.clone();
    let users = raised.entry("users").or_insert_with(|| json!({}));
    if !users.is_object() {
        *users = json!({});
    }
    users[user] = json!(needed);
    Some(raised)
}

/// The old room's levels after the upgrade: sending ordinary events and inviting need at least
/// moderator level (50), and more than the default user level. `None` when already so.
pub fn restricted(levels: &Map<String, Value>) -> Option<Map<String, Value>> {
    let wanted = (level(levels, "users_default", 0) + 1).max(50);
    let mut out = levels.clone();
    let mut changed = false;
    for (key, default) in [("events_default", 0), ("invite", 0)] {
        if level(levels, key, default) < wanted {
            out.insert(key.into(), json!(wanted));
            changed = true;
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn numeric_strings_become_integers_and_junk_is_dropped() {
        let levels = normalise(&json!({
            "ban": "60", "kick": 40, "redact": "x", "users": { "@a:x": "100", "@b:x": [] },
            "events": { "m.room.name": " 70" }, "notifications": { "room": 20 }, "custom": "kept"
        }));
        assert_eq!(
            Value::Object(levels),
            json!({
                "ban": 60, "kick": 40, "users": { "@a:x": 100 }, "events": { "m.room.name": 70 },
                "notifications": { "room": 20 }, "custom": "kept"
            })
        );
    }

    #[test]
    fn the_upgrader_is_raised_to_the_highest_state_level_only_when_below_it() {
        let levels = obj(
            json!({ "users": { "@a:x": 50 }, "events": { "m.room.name": 80, "m.room.tombstone": 100 }, "state_default": 50 }),
        );
        let raised = raised_for(&levels, "@a:x").unwrap();
        assert_eq!(raised["users"]["@a:x"], 100);
        assert_eq!(raised["events"], levels["events"]);
        assert!(raised_for(&obj(json!({ "users": { "@a:x": 100 } })), "@a:x").is_none());
        // users_default counts for a user not named.
        assert!(
            raised_for(
                &obj(json!({ "users_default": 60, "state_default": 60 })),
                "@a:x"
            )
            .is_none()
        );
        assert_eq!(
            raised_for(&obj(json!({})), "@a:x").unwrap()["users"]["@a:x"],
            50
        );
    }

    #[test]
    fn creators_are_left_out_of_users() {
        let mut levels = obj(json!({ "users": { "@a:x": 100, "@b:x": 50, "@c:x": 100 } }));
        without_users(&mut levels, &["@a:x", "@c:x"]);
        assert_eq!(levels["users"], json!({ "@b:x": 50 }));
    }

    #[test]
    fn old_room_levels_stop_ordinary_messages_and_invites() {
        let out = restricted(&obj(json!({ "events_default": 0, "invite": 0 }))).unwrap();
        assert_eq!(
            (out["events_default"].clone(), out["invite"].clone()),
            (json!(50), json!(50))
        );
        let out = restricted(&obj(json!({ "users_default": 80, "events_default": 0 }))).unwrap();
        assert_eq!(
            (out["events_default"].clone(), out["invite"].clone()),
            (json!(81), json!(81))
        );
        assert!(restricted(&obj(json!({ "events_default": 60, "invite": 75 }))).is_none());
    }
}
