//! A redacted relating event leaves every aggregation: its index entries are deleted in the
//! redaction's batch, and its thread's summary is updated.

use super::{ANNOTATIONS, RELATION_OF, RELATIONS, RELATIONS_BY_TYPE, index, threads};
use crate::{
    error::{Error, Result},
    services::{Services, globals::Commit},
};

pub fn remove(s: &Services, c: &mut Commit, short: u64) -> Result<()> {
    let Some(bytes) = s.globals.db.get(RELATION_OF, &short.to_be_bytes())? else {
        return Ok(());
    };
    let indexed =
        index::decode_indexed(&bytes).ok_or_else(|| Error::internal("corrupt relation_of"))?;
    let (room, ord, r) = (indexed.room, indexed.ord, &indexed.relation);
    c.stream_changed(crate::services::stream_changes::StreamChange::RelationTo(
        r.target.as_str().into(),
    ));
    c.batch.delete(RELATION_OF, short.to_be_bytes());
    c.batch
        .delete(RELATIONS, index::relations_key(room, &r.target, ord, short));
    c.batch.delete(
        RELATIONS_BY_TYPE,
        index::by_type_key(room, &r.target, &r.rel_type, ord, short),
    );
    if r.rel_type == "m.annotation" {
        let mut key = index::annotation_prefix(room, &r.target, &r.kind, &r.sender, &r.key);
        key.extend_from_slice(&short.to_be_bytes());
        c.batch.delete(ANNOTATIONS, key);
    }
    if r.rel_type == "m.thread" {
        threads::reply_removed(s, c, room, &r.target, &r.sender, short)?;
    }
    Ok(())
}
