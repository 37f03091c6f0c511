//! What an event's `m.relates_to` says, and the writing of its index entries.

use ruma::{CanonicalJsonObject, CanonicalJsonValue};

use super::{ANNOTATIONS, RELATION_OF, RELATIONS, RELATIONS_BY_TYPE, threads};
use crate::{
    error::Result,
    services::{Services, globals::Commit},
    storage::keys::{Key, KeyReader},
};

/// A relation made by an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub rel_type: String,
    pub target: String,
    /// The annotation key (`m.annotation`), empty otherwise.
    pub key: String,
    pub kind: String,
    pub sender: String,
}

/// The relation of a stored event (canonical JSON): `content.m.relates_to` with both a
/// `rel_type` and an `event_id` (a reply alone, `m.in_reply_to`, is not a relation).
pub fn relation_of(event: &CanonicalJsonObject) -> Option<Relation> {
    let text = |v: Option<&CanonicalJsonValue>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let CanonicalJsonValue::Object(content) = event.get("content")? else {
        return None;
    };
    let CanonicalJsonValue::Object(relates) = content.get("m.relates_to")? else {
        return None;
    };
    let rel_type = text(relates.get("rel_type"))?;
    let target = text(relates.get("event_id"))?;
    if rel_type.is_empty() || !target.starts_with('$') {
        return None;
    }
    Some(Relation {
        key: text(relates.get("key")).unwrap_or_default(),
        rel_type,
        target,
        kind: text(event.get("type"))?,
        sender: text(event.get("sender"))?,
    })
}

/// The relation of event content a client sends (JSON): rel_type, target, key.
pub fn relation_of_content(
    content: &serde_json::Value,
) -> Option<(String, String, Option<String>)> {
    let relates = content.get("m.relates_to")?;
    let rel_type = relates.get("rel_type")?.as_str()?.to_owned();
    let target = relates.get("event_id")?.as_str()?.to_owned();
    Some((
        rel_type,
        target,
        relates
            .get("key")
            .and_then(|k| k.as_str())
            .map(str::to_owned),
    ))
}

pub fn relations_key(room: u64, target: &str, ord: u64, short: u64) -> Vec<u8> {
    Key::new().u64(room).str(target).u64(ord).u64(short).build()
}

pub fn by_type_key(room: u64, target: &str, rel_type: &str, ord: u64, short: u64) -> Vec<u8> {
    Key::new()
        .u64(room)
        .str(target)
        .str(rel_type)
        .u64(ord)
        .u64(short)
        .build()
}

pub fn annotation_prefix(room: u64, target: &str, kind: &str, sender: &str, key: &str) -> Vec<u8> {
    Key::new()
        .u64(room)
        .str(target)
        .str(kind)
        .str(sender)
        .str(key)
        .build()
}

/// A relating event as stored in `RELATION_OF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    pub room: u64,
    pub ord: u64,
    pub relation: Relation,
}

pub fn encode_indexed(room: u64, ord: u64, r: &Relation) -> Vec<u8> {
    Key::new()
        .u64(room)
        .str(&r.target)
        .str(&r.rel_type)
        .u64(ord)
        .str(&r.kind)
        .str(&r.sender)
        .str(&r.key)
        .build()
}

pub fn decode_indexed(bytes: &[u8]) -> Option<Indexed> {
    let mut reader = KeyReader::new(bytes);
    let room = reader.u64()?;
    let target = reader.str()?.to_owned();
    let rel_type = reader.str()?.to_owned();
    let ord = reader.u64()?;
    let kind = reader.str()?.to_owned();
    let sender = reader.str()?.to_owned();
    let key = reader.str()?.to_owned();
    Some(Indexed {
        room,
        ord,
        relation: Relation {
            rel_type,
            target,
            key,
            kind,
            sender,
        },
    })
}

/// Writes the index entries of `short`'s relation into `c` (nothing when already indexed).
pub fn write(
    s: &Services,
    c: &mut Commit,
    room: u64,
    ord: u64,
    short: u64,
    r: &Relation,
) -> Result<()> {
    let db = &s.globals.db;
    if db.contains(RELATION_OF, &short.to_be_bytes())? {
        return Ok(());
    }
    c.stream_changed(crate::services::stream_changes::StreamChange::RelationTo(
        r.target.as_str().into(),
    ));
    c.batch.put(
        RELATION_OF,
        short.to_be_bytes(),
        encode_indexed(room, ord, r),
    );
    c.batch.put(
        RELATIONS,
        relations_key(room, &r.target, ord, short),
        Key::new()
            .str(&r.rel_type)
            .str(&r.kind)
            .str(&r.sender)
            .build(),
    );
    c.batch.put(
        RELATIONS_BY_TYPE,
        by_type_key(room, &r.target, &r.rel_type, ord, short),
        Key::new().str(&r.kind).str(&r.sender).build(),
    );
    if r.rel_type == "m.annotation" {
        let mut key = annotation_prefix(room, &r.target, &r.kind, &r.sender, &r.key);
        key.extend_from_slice(&short.to_be_bytes());
        c.batch.put(ANNOTATIONS, key, Vec::new());
    }
    if r.rel_type == "m.thread" {
        threads::reply_added(s, c, room, &r.target, &r.sender, ord, short)?;
    }
    Ok(())
}

/// Decodes a `RELATIONS` entry: (ord, short event, rel_type, type, sender); `prefix_len` is the
/// length of the room ‖ target prefix.
pub fn decode_relations_entry(
    key: &[u8],
    value: &[u8],
    prefix_len: usize,
) -> Option<(u64, u64, String, String, String)> {
    let mut reader = KeyReader::new(key.get(prefix_len..)?);
    let (ord, short) = (reader.u64()?, reader.u64()?);
    let mut value = KeyReader::new(value);
    Some((
        ord,
        short,
        value.str()?.to_owned(),
        value.str()?.to_owned(),
        value.str()?.to_owned(),
    ))
}

/// Decodes a `RELATIONS_BY_TYPE` entry: (ord, short event, type, sender).
pub fn decode_by_type_entry(
    key: &[u8],
    value: &[u8],
    prefix_len: usize,
) -> Option<(u64, u64, String, String)> {
    let mut reader = KeyReader::new(key.get(prefix_len..)?);
    let (ord, short) = (reader.u64()?, reader.u64()?);
    let mut value = KeyReader::new(value);
    Some((ord, short, value.str()?.to_owned(), value.str()?.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(content: serde_json::Value) -> CanonicalJsonObject {
        let value =
            serde_json::json!({ "type": "m.reaction", "sender": "@a:x", "content": content });
        match CanonicalJsonValue::try_from(value).unwrap() {
            CanonicalJsonValue::Object(o) => o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn relations_are_read_from_relates_to() {
        let r = relation_of(&event(serde_json::json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": "$t", "key": "👍" } }))).unwrap();
        assert_eq!(
            (
                r.rel_type.as_str(),
                r.target.as_str(),
                r.key.as_str(),
                r.kind.as_str(),
                r.sender.as_str()
            ),
            ("m.annotation", "$t", "👍", "m.reaction", "@a:x")
        );
        // A reply is not a relation; neither is a relation without a type or a proper target.
        assert!(
            relation_of(&event(
                serde_json::json!({ "m.relates_to": { "m.in_reply_to": { "event_id": "$t" } } })
            ))
            .is_none()
        );
        assert!(
            relation_of(&event(
                serde_json::json!({ "m.relates_to": { "event_id": "$t" } })
            ))
            .is_none()
        );
        assert!(
            relation_of(&event(
                serde_json::json!({ "m.relates_to": { "rel_type": "m.thread", "event_id": "t" } })
            ))
            .is_none()
        );
        assert!(relation_of(&event(serde_json::json!({ "body": "x" }))).is_none());
    }

    #[test]
    fn indexed_round_trips() {
        let r = Relation {
            rel_type: "m.thread".into(),
            target: "$root".into(),
            key: String::new(),
            kind: "m.room.message".into(),
            sender: "@b:y".into(),
        };
        let decoded = decode_indexed(&encode_indexed(7, 99, &r)).unwrap();
        assert_eq!(
            decoded,
            Indexed {
                room: 7,
                ord: 99,
                relation: r
            }
        );
    }
}
