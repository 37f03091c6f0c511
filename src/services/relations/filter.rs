//! The relation fields of a `RoomEventFilter`, which ruma's filter type does not keep: read from
//! the filter's JSON. `related_by_rel_types` / `related_by_senders` (the threads MSC3440, as
//! Synapse serves them) keep only events that other events relate to, by one of these relation
//! types and / or from one of these senders (one relation matching both when both are given);
//! MSC3874's `org.matrix.msc3874.rel_types` / `org.matrix.msc3874.not_rel_types` keep or drop
//! events by their own relation type (a client hiding thread replies from the main timeline).

use serde_json::Value;

use super::query;
use crate::{
    error::{Error, Result},
    services::{Services, timeline::StoredEvent},
    storage::Direction,
};

const REL_TYPES: &str = "org.matrix.msc3874.rel_types";
const NOT_REL_TYPES: &str = "org.matrix.msc3874.not_rel_types";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelationFilter {
    pub related_by_rel_types: Option<Vec<String>>,
    pub related_by_senders: Option<Vec<String>>,
    pub rel_types: Option<Vec<String>>,
    pub not_rel_types: Vec<String>,
}

fn strings(filter: &Value, field: &str) -> Result<Option<Vec<String>>> {
    match filter.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::bad_json(format!("{field} must hold strings")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(Error::bad_json(format!(
            "{field} must be an array of strings"
        ))),
    }
}

impl RelationFilter {
    /// The relation fields of a `RoomEventFilter` given as JSON (400 `M_BAD_JSON` when one is not
    /// an array of strings).
    pub fn from_json(filter: &Value) -> Result<Self> {
        Ok(Self {
            related_by_rel_types: strings(filter, "related_by_rel_types")?,
            related_by_senders: strings(filter, "related_by_senders")?,
            rel_types: strings(filter, REL_TYPES)?,
            not_rel_types: strings(filter, NOT_REL_TYPES)?.unwrap_or_default(),
        })
    }

    /// The relation fields of a filter's `room.timeline` (a /sync filter definition).
    pub fn of_timeline(definition: &Value) -> Result<Self> {
        match definition.get("room").and_then(|room| room.get("timeline")) {
            Some(timeline) => Self::from_json(timeline),
            None => Ok(Self::default()),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `event` passes the relation fields.
    pub fn matches(&self, s: &Services, event: &StoredEvent) -> Result<bool> {
        if self.is_empty() {
            return Ok(true);
        }
        if self.rel_types.is_some() || !self.not_rel_types.is_empty() {
            let own = own_rel_type(event);
            if own
                .as_ref()
                .is_some_and(|own| self.not_rel_types.contains(own))
            {
                return Ok(false);
            }
            if let Some(rel_types) = &self.rel_types
                && !own.as_ref().is_some_and(|own| rel_types.contains(own))
            {
                return Ok(false);
            }
        }
        if self.related_by_rel_types.is_none() && self.related_by_senders.is_none() {
            return Ok(true);
        }
        self.related_by(s, event)
    }

    /// Whether a relation to `event` matches `related_by_rel_types` and `related_by_senders`.
    fn related_by(&self, s: &Services, event: &StoredEvent) -> Result<bool> {
        let sender_ok = |sender: &str| {
            self.related_by_senders
                .as_ref()
                .is_none_or(|senders| senders.iter().any(|s| s == sender))
        };
        let rel_types: Vec<Option<&str>> = match &self.related_by_rel_types {
            Some(rel_types) => rel_types.iter().map(|r| Some(r.as_str())).collect(),
            None => vec![None],
        };
        let mut found = false;
        for rel_type in rel_types {
            let target = event.pdu.event_id.as_str();
            query::each_direct(
                s,
                event.meta.short_room,
                target,
                rel_type,
                u64::MAX,
                Direction::Backward,
                |entry| {
                    found = sender_ok(&entry.sender);
                    Ok(!found)
                },
            )?;
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The `rel_type` of the event's own `m.relates_to`.
fn own_rel_type(event: &StoredEvent) -> Option<String> {
    event
        .pdu
        .content_field("m.relates_to")?
        .get("rel_type")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_read_and_checked() {
        let f = RelationFilter::from_json(&json!({
            "types": ["m.room.message"],
            "related_by_rel_types": ["m.thread"],
            "related_by_senders": ["@a:x"],
            "org.matrix.msc3874.not_rel_types": ["m.thread"],
        }))
        .unwrap();
        assert_eq!(f.related_by_rel_types, Some(vec!["m.thread".to_owned()]));
        assert_eq!(f.related_by_senders, Some(vec!["@a:x".to_owned()]));
        assert_eq!(f.not_rel_types, vec!["m.thread".to_owned()]);
        assert!(
            RelationFilter::from_json(&json!({ "types": ["x"] }))
                .unwrap()
                .is_empty()
        );
        let bad =
            RelationFilter::from_json(&json!({ "related_by_rel_types": "m.thread" })).unwrap_err();
        assert_eq!(bad.errcode, "M_BAD_JSON");
        assert!(RelationFilter::from_json(&json!({ "related_by_senders": [1] })).is_err());
        let def = json!({ "room": { "timeline": { "related_by_rel_types": ["m.annotation"] } } });
        assert_eq!(
            RelationFilter::of_timeline(&def)
                .unwrap()
                .related_by_rel_types,
            Some(vec!["m.annotation".to_owned()])
        );
    }
}
