//! A user's own settings for a room carried over to its replacement (spec "Room upgrades": "the
//! server should automatically transfer/replicate some of the user's personalized settings such
//! as notifications, tags, etc."): the push rules naming the old room, its tags, and its place in
//! `m.direct`. Done for the upgrader at the upgrade, and for this server's users when they join a
//! room whose create event names a predecessor.

use ruma::{OwnedRoomId, RoomId, UserId, events::StateEventType, push::Ruleset};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    services::{Services, push::rules, rooms},
};

/// When `user` joins `room`: the predecessor named by its create event, if any, gives its settings.
pub fn on_join(s: &Services, user: &UserId, room: &RoomId) -> Result<()> {
    let Some(create) = rooms::state_content(s, room, &StateEventType::RoomCreate, "")? else {
        return Ok(());
    };
    let Some(old) = create
        .get("predecessor")
        .and_then(|p| p.get("room_id"))
        .and_then(Value::as_str)
    else {
        return Ok(());
    };
    let Ok(old) = OwnedRoomId::try_from(old) else {
        return Ok(());
    };
    copy(s, user, &old, room)
}

/// Copies `user`'s push rules, tags and `m.direct` entry of `old` to `new` (what is there already
/// stays: a second call changes nothing).
pub fn copy(s: &Services, user: &UserId, old: &RoomId, new: &RoomId) -> Result<()> {
    let current = serde_json::to_value(&*rules::ruleset(s, user)?)
        .map_err(|e| Error::internal(e.to_string()))?;
    if let Some(copied) = copy_rules(&current, old.as_str(), new.as_str()) {
        let ruleset: Ruleset =
            serde_json::from_value(copied).map_err(|e| Error::internal(e.to_string()))?;
        rules::update(s, user, |r| {
            *r = ruleset;
            Ok(())
        })?;
    }
    if let Some(tags) = s.account_data.get(user, Some(old), "m.tag")?
        && tags
            .get("tags")
            .and_then(Value::as_object)
            .is_some_and(|t| !t.is_empty())
        && s.account_data.get(user, Some(new), "m.tag")?.is_none()
    {
        s.account_data
            .set(&s.globals, user, Some(new), "m.tag", &tags)?;
    }
    if let Some(direct) = s.account_data.get(user, None, "m.direct")?
        && let Some(updated) = copy_direct(&direct, old.as_str(), new.as_str())
    {
        s.account_data
            .set(&s.globals, user, None, "m.direct", &updated)?;
    }
    Ok(())
}

/// The ruleset (as JSON) with a copy, for `new`, of every rule naming `old`: its `room` rule, and
/// `override`/`underride` rules with a `room_id` condition. `None` when there is nothing to copy.
fn copy_rules(ruleset: &Value, old: &str, new: &str) -> Option<Value> {
    let mut out = ruleset.clone();
    let mut changed = false;
    for kind in ["override", "room", "underride"] {
        let Some(list) = out.get_mut(kind).and_then(Value::as_array_mut) else {
            continue;
        };
        let ids: Vec<String> = list
            .iter()
            .filter_map(|r| r["rule_id"].as_str().map(str::to_owned))
            .collect();
        let mut added = Vec::new();
        for rule in list.iter() {
            let id = rule["rule_id"].as_str().unwrap_or_default();
            let names_old = if kind == "room" {
                id == old
            } else {
                rule["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["key"] == "room_id" && c["pattern"] == old)
                })
            };
            if !names_old || id.starts_with('.') {
                continue;
            }
            let new_id = if id.contains(old) {
                id.replace(old, new)
            } else {
                format!("{id}-{new}")
            };
            if ids.contains(&new_id) {
                continue;
            }
            let mut copy = rule.clone();
            copy["rule_id"] = json!(new_id);
            if let Some(conditions) = copy.get_mut("conditions").and_then(Value::as_array_mut) {
                for c in conditions
                    .iter_mut()
                    .filter(|c| c["key"] == "room_id" && c["pattern"] == old)
                {
                    c["pattern"] = json!(new);
                }
            }
            added.push(copy);
        }
        changed |= !added.is_empty();
        // User rules come before the server-default ones of the same kind.
        for (i, rule) in added.into_iter().enumerate() {
            list.insert(i, rule);
        }
    }
    changed.then_some(out)
}

/// `m.direct` with `new` next to `old` in every list naming it; `None` when unchanged.
fn copy_direct(direct: &Value, old: &str, new: &str) -> Option<Value> {
    let mut out = direct.clone();
    let mut changed = false;
    for rooms in out
        .as_object_mut()?
        .values_mut()
        .filter_map(Value::as_array_mut)
    {
        if rooms.iter().any(|r| r == old) && !rooms.iter().any(|r| r == new) {
            rooms.push(json!(new));
            changed = true;
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_naming_the_old_room_are_copied_once() {
        let ruleset = json!({
            "override": [
                { "rule_id": "mute-old", "default": false, "enabled": true, "actions": [],
                  "conditions": [{ "kind": "event_match", "key": "room_id", "pattern": "!old:x" }] },
                { "rule_id": ".m.rule.master", "default": true, "enabled": false, "actions": [], "conditions": [] }
            ],
            "room": [{ "rule_id": "!old:x", "default": false, "enabled": true, "actions": ["notify"] }],
            "underride": []
        });
        let out = copy_rules(&ruleset, "!old:x", "!new:x").unwrap();
        assert_eq!(out["room"][0]["rule_id"], "!new:x");
        assert_eq!(out["room"][1]["rule_id"], "!old:x");
        assert_eq!(out["override"][0]["rule_id"], "mute-old-!new:x");
        assert_eq!(out["override"][0]["conditions"][0]["pattern"], "!new:x");
        assert_eq!(out["override"].as_array().unwrap().len(), 3);
        assert!(
            copy_rules(&out, "!old:x", "!new:x").is_none(),
            "a second copy changes nothing"
        );
        assert!(copy_rules(&ruleset, "!other:x", "!new:x").is_none());
    }

    #[test]
    fn direct_rooms_gain_the_new_room() {
        let direct = json!({ "@bob:x": ["!a:x", "!old:x"], "@carol:x": ["!c:x"] });
        let out = copy_direct(&direct, "!old:x", "!new:x").unwrap();
        assert_eq!(
            out,
            json!({ "@bob:x": ["!a:x", "!old:x", "!new:x"], "@carol:x": ["!c:x"] })
        );
        assert!(copy_direct(&out, "!old:x", "!new:x").is_none());
    }
}
