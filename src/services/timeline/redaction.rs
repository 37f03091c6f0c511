//! Applying redactions. The authorization rules of room versions 3 and later accept any
//! redaction; the spec then lets a server apply one only when its sender is of the target's
//! sender's server, or has the `redact` power level in the state before the redaction. A redaction
//! that may not be applied is stored like any event, and its target keeps its content. A
//! redaction whose target we do not have yet is remembered (`pending_redactions`) and applied,
//! under the same rule, in the batch that stores the target when it arrives.

use ruma::{
    CanonicalJsonObject, EventId, OwnedEventId, RoomId, UserId, events::StateEventType,
    room_version_rules::RoomVersionRules,
};

use super::{
    PDUS, StoredEvent, Timeline,
    pdu::{ClientFormat, Pdu, client_event},
};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        globals::Commit,
        rooms::{event_by_short, power},
        state::StateMap,
    },
    storage::{
        Map,
        keys::{Key, KeyReader},
    },
};

/// target event id str ‖ short of the redaction → (): redactions received before their target.
pub const PENDING_REDACTIONS: Map = Map("pending_redactions");
pub const MAPS: &[Map] = &[PENDING_REDACTIONS];

/// What persisting a redaction does to its target.
pub enum Effect {
    /// The target is stored in the same room and may be redacted: its short id and stored form.
    Apply(u64, CanonicalJsonObject),
    /// The target is not stored yet: remembered until it arrives.
    Pending(OwnedEventId),
    /// The target is of another room, or the redaction may not be applied to it.
    None,
}

/// Whether `redaction` may be applied to an event sent by `target_sender`: same server, or the
/// redaction's sender has the `redact` level in `state_before` (the state before the redaction).
pub fn may_apply(
    s: &Services,
    rules: &RoomVersionRules,
    room_id: &RoomId,
    redaction: &Pdu,
    target_sender: &UserId,
    state_before: &StateMap,
) -> Result<bool> {
    if redaction.sender.server_name() == target_sender.server_name() {
        return Ok(true);
    }
    let lookup =
        |kind: &StateEventType, state_key: &str| -> Result<Option<std::sync::Arc<StoredEvent>>> {
            let Some(key) = s.short.statekey(kind, state_key)? else {
                return Ok(None);
            };
            let Some(short) = state_before.get(&key) else {
                return Ok(None);
            };
            event_by_short(s, *short, room_id)
        };
    Ok(power::user_level_in(rules, &redaction.sender, &lookup)?
        >= power::action_level_in("redact", &lookup)?)
}

/// What the redaction `pdu`, persisted in `short_room` on the state `state_before`, does.
pub fn effect(
    s: &Services,
    rules: &RoomVersionRules,
    short_room: u64,
    pdu: &Pdu,
    state_before: &StateMap,
) -> Result<Effect> {
    // A state event of this type is not a redaction.
    let Some(target) = pdu.redacted_event().filter(|_| pdu.state_key.is_none()) else {
        return Ok(Effect::None);
    };
    let stored = match s.short.event(&target)? {
        Some(short) => s.timeline.meta(short)?.map(|meta| (short, meta)),
        None => None,
    };
    let Some((short, meta)) = stored else {
        return Ok(Effect::Pending(target));
    };
    if meta.short_room != short_room {
        return Ok(Effect::None);
    }
    let Some(json) = s.timeline.json(short)? else {
        return Ok(Effect::Pending(target));
    };
    let Some(sender) = json
        .get("sender")
        .and_then(|v| v.as_str())
        .and_then(|u| UserId::parse(u).ok())
    else {
        return Ok(Effect::None);
    };
    Ok(
        if may_apply(s, rules, &pdu.room_id, pdu, &sender, state_before)? {
            Effect::Apply(short, json)
        } else {
            Effect::None
        },
    )
}

/// Writes what `effect` decided into the redaction's batch (the redaction is `short_redaction`,
/// its JSON `redaction`): the target redacted and its search postings removed, or the pending
/// entry. Returns the short id of a redacted target, whose cached form must be forgotten.
pub fn write_effect(
    s: &Services,
    c: &mut Commit,
    effect: Effect,
    short_redaction: u64,
    redaction: (&CanonicalJsonObject, &EventId, &RoomId),
    rules: &RoomVersionRules,
) -> Result<Option<u64>> {
    match effect {
        Effect::Apply(target, json) => {
            let (object, event_id, room_id) = redaction;
            let because = client_event(
                object,
                event_id,
                room_id,
                ClientFormat::Room,
                Default::default(),
            );
            crate::services::search::event_redacted(s, c, target, &json)?;
            crate::services::relations::event_redacted(s, c, target)?;
            super::redacted_originals::keep(s, c, target, &json)?;
            redact_stored(c, target, json, because, rules)?;
            c.invalidate(crate::services::cluster::Invalidation::Event { short: target });
            Ok(Some(target))
        }
        Effect::Pending(target) => {
            c.batch.put(
                PENDING_REDACTIONS,
                Key::new().str(target.as_str()).u64(short_redaction).build(),
                Vec::new(),
            );
            Ok(None)
        }
        Effect::None => Ok(None),
    }
}

/// The form an arriving event is stored in: redacted when a redaction received before it, in
/// the same room, may be applied to it; the pending entries are deleted in `c` either way.
pub fn on_arrival(
    s: &Services,
    c: &mut Commit,
    rules: &RoomVersionRules,
    short_room: u64,
    event_id: &EventId,
    sender: &UserId,
    object: CanonicalJsonObject,
) -> Result<CanonicalJsonObject> {
    let pending = s.timeline.pending_redactions(event_id)?;
    let mut object = object;
    for short in pending {
        c.batch.delete(
            PENDING_REDACTIONS,
            Key::new().str(event_id.as_str()).u64(short).build(),
        );
        let Some(meta) = s.timeline.meta(short)? else {
            continue;
        };
        if meta.short_room != short_room || meta.pos == 0 && meta.state_before == 0 {
            continue;
        }
        let room_id = s.short.room_id(short_room)?;
        let Some(redaction) = event_by_short(s, short, &room_id)? else {
            continue;
        };
        let state_before = s.state.load(meta.state_before)?;
        if !may_apply(s, rules, &room_id, &redaction.pdu, sender, &state_before)? {
            continue;
        }
        let because = client_event(
            &redaction.json,
            &redaction.pdu.event_id,
            &room_id,
            ClientFormat::Room,
            Default::default(),
        );
        object = redacted(object, because, rules)?;
    }
    Ok(object)
}

impl Timeline {
    /// The short ids of the stored redactions of `target` that arrived before it.
    pub fn pending_redactions(&self, target: &EventId) -> Result<Vec<u64>> {
        let prefix = Key::new().str(target.as_str()).build();
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(PENDING_REDACTIONS, &prefix) {
            let (key, _) = entry?;
            let mut reader = KeyReader::new(&key);
            reader.str();
            out.push(
                reader
                    .u64()
                    .ok_or_else(|| Error::internal("corrupt pending redaction"))?,
            );
        }
        Ok(out)
    }
}

/// `json` redacted, with `redaction` (client format) as its `redacted_because`.
fn redacted(
    json: CanonicalJsonObject,
    redaction: serde_json::Value,
    rules: &RoomVersionRules,
) -> Result<CanonicalJsonObject> {
    let redaction = match ruma::CanonicalJsonValue::try_from(redaction) {
        Ok(ruma::CanonicalJsonValue::Object(o)) => o,
        _ => return Err(Error::internal("redaction is not an object")),
    };
    let because = ruma::canonical_json::RedactedBecause::from_json(redaction);
    ruma::canonical_json::redact(json, &rules.redaction, Some(because))
        .map_err(|e| Error::internal(e.to_string()))
}

/// Replaces a stored event by its redacted form, in the same batch as the redaction.
pub(crate) fn redact_stored(
    c: &mut Commit,
    short: u64,
    json: CanonicalJsonObject,
    redaction: serde_json::Value,
    rules: &RoomVersionRules,
) -> Result<()> {
    let bytes = serde_json::to_vec(&redacted(json, redaction, rules)?)
        .map_err(|e| Error::internal(e.to_string()))?;
    c.batch.put(PDUS, short.to_be_bytes(), bytes);
    Ok(())
}
