//! Storing a `/backfill` answer: every PDU checked (format, event id, signatures and hashes, auth
//! against its own auth events and against the state before it), oldest first; the state before
//! an event is the state after its prev events, or the answering server's `state_ids` when we
//! lack them. Each event is one batch: PDU, metadata (position 0, its state snapshots), its
//! place in the backfilled order and, for an `m.room.redaction` whose target we store (backfilled
//! or in the timeline), the target replaced by its redacted form (as the timeline does for live
//! events). Current state, forward extremities and memberships are not touched.

use std::{collections::HashSet, sync::Arc};

use ruma::{
    OwnedEventId, OwnedRoomId, RoomVersionId, ServerName,
    events::{StateEventType, TimelineEventType},
};
use serde_json::value::RawValue;

use super::frontier::known;
use crate::{
    error::{Error, Result},
    federation::incoming::{
        missing::state_from_origin,
        pdu_checks::{CheckedPdu, check_auth_events, check_pdu, event_id_of, parse_object},
        persist::missing_prev_events,
        same_room::{ensure_in_room, ensure_references_in_room},
        state_at,
    },
    services::{
        Services,
        rooms::version,
        timeline::{EVENT_META, EventMeta, PDUS, append::authorise, encode_meta, redaction},
    },
};

/// What a fill did with one answer: the events stored (with their prev events) and those refused.
#[derive(Debug, Default)]
pub struct Outcome {
    pub stored: Vec<(OwnedEventId, Vec<OwnedEventId>)>,
    pub refused: Vec<OwnedEventId>,
}

/// Checks and stores the PDUs `origin` answered; events we already have are skipped.
pub async fn store_answer(
    services: &Arc<Services>,
    origin: &ServerName,
    room_id: &OwnedRoomId,
    version: &RoomVersionId,
    short_room: u64,
    pdus: Vec<Box<RawValue>>,
) -> Result<Outcome> {
    let rules = version::rules(version)?;
    let mut outcome = Outcome::default();
    let mut checked: Vec<CheckedPdu> = Vec::new();
    let mut seen = HashSet::new();
    for raw in pdus {
        let Ok(object) = parse_object(&raw) else {
            continue;
        };
        // An event of another room is not ours to judge (room 12 create events have no room id).
        if object
            .get("room_id")
            .is_some_and(|r| r.as_str() != Some(room_id.as_str()))
        {
            continue;
        }
        let Ok(event_id) = event_id_of(&object, &rules) else {
            continue;
        };
        if !seen.insert(event_id.clone()) {
            continue;
        }
        match check_pdu(services, object, room_id.clone(), version.clone()).await {
            Ok(event) => checked.push(event),
            Err(e) => {
                tracing::info!(
                    "backfilled event {event_id} from {origin} refused: {}",
                    e.message
                );
                outcome.refused.push(event_id);
            }
        }
    }
    let (mut todo, base) = services
        .run(move |s| {
            let todo: Vec<CheckedPdu> = checked
                .into_iter()
                .filter(|e| !known(s, &e.event_id))
                .collect();
            Ok((todo, s.timeline.oldest_backfilled_seq(short_room)?))
        })
        .await?;
    // Oldest first, so that prev and auth events are stored before the events that need them; the
    // oldest gets the largest sequence number.
    todo.sort_by(|a, b| {
        (u64::from(a.pdu.depth), a.pdu.origin_server_ts, &a.event_id).cmp(&(
            u64::from(b.pdu.depth),
            b.pdu.origin_server_ts,
            &b.event_id,
        ))
    });
    let count = todo.len() as u64;
    for (i, event) in todo.into_iter().enumerate() {
        let seq = base + count - i as u64;
        let id = event.event_id.clone();
        let prevs = event.pdu.prev_events.clone();
        let lookup = prevs.clone();
        let missing = services
            .run(move |s| missing_prev_events(s, &lookup))
            .await?;
        let given = if missing.is_empty() {
            None
        } else {
            match state_from_origin(services, origin, room_id, version, &id).await {
                Ok(before) => Some(before),
                Err(e) => {
                    // Not refused: the event stays missing and may be asked again.
                    tracing::info!(
                        "state before backfilled event {id} from {origin}: {}",
                        e.message
                    );
                    continue;
                }
            }
        };
        match services
            .run(move |s| store_one(s, event, short_room, seq, given))
            .await
        {
            Ok(()) => outcome.stored.push((id, prevs)),
            Err(e) => {
                tracing::info!("backfilled event {id} from {origin} refused: {}", e.message);
                outcome.refused.push(id);
            }
        }
    }
    Ok(outcome)
}

/// Authorises one event against its auth events and the state before it, and writes it with its
/// place `seq` in one batch.
fn store_one(
    s: &Services,
    event: CheckedPdu,
    short_room: u64,
    seq: u64,
    given_before: Option<u64>,
) -> Result<()> {
    let CheckedPdu {
        event_id,
        room_id,
        version,
        object,
        pdu,
    } = event;
    let rules = version::rules(&version)?;
    let lock = s.timeline.room_lock(&room_id);
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    if known(s, &event_id) {
        return Ok(());
    }
    ensure_references_in_room(s, short_room, &pdu)?;
    check_auth_events(s, &pdu, &rules)?;
    let before = match given_before {
        Some(before) => before,
        None => state_at::state_before(s, &room_id, &rules, &pdu.prev_events)?,
    };
    let state_before = s.state.load(before)?;
    authorise(s, &rules, &pdu, &state_before)?;
    let existing = s.short.event(&event_id)?;
    // An outlier of another room is not placed in this one.
    ensure_in_room(s, short_room, [&*event_id], "backfilled event")?;
    let has_pdu = match existing {
        Some(short) => s.timeline.json(short)?.is_some(),
        None => false,
    };
    let bytes = serde_json::to_vec(&object).map_err(|e| Error::internal(e.to_string()))?;
    let state_key = pdu
        .state_key
        .clone()
        .map(|k| (StateEventType::from(pdu.kind.to_string()), k));
    // A redaction redacts its stored target in its own batch when the redaction rules allow it
    // (an outlier redaction, already stored, did not: it does now).
    let redaction_effect = if pdu.kind == TimelineEventType::RoomRedaction {
        redaction::effect(s, &rules, short_room, &pdu, &state_before)?
    } else {
        redaction::Effect::None
    };
    let ((short, redacted_target), _) = s.globals.commit(|c| {
        let short = match existing {
            Some(short) => short,
            None => s.short.create_event(c, &event_id),
        };
        // An outlier (from the join's state) keeps its stored form.
        if !has_pdu {
            c.batch.put(PDUS, short.to_be_bytes(), bytes);
        }
        let after = match &state_key {
            Some((kind, key)) => {
                let key = s.short.get_or_create_statekey(c, kind, key)?;
                s.state.create(c, before, &[(key, short)])?.0
            }
            None => before,
        };
        let meta = EventMeta {
            short_room,
            pos: 0,
            state_before: before,
            state_after: after,
        };
        c.batch
            .put(EVENT_META, short.to_be_bytes(), encode_meta(&meta));
        s.timeline.put_backfilled(c, short_room, seq, short);
        crate::services::time_index::event_committed(c, short_room, short, pdu.origin_server_ts);
        // Redactions that came before it apply to it now, when allowed.
        if !has_pdu {
            let stored = redaction::on_arrival(
                s,
                c,
                &rules,
                short_room,
                &event_id,
                &pdu.sender,
                object.clone(),
            )?;
            if stored != object {
                c.batch.put(
                    PDUS,
                    short.to_be_bytes(),
                    serde_json::to_vec(&stored).map_err(|e| Error::internal(e.to_string()))?,
                );
            }
            crate::services::relations::event_committed(
                s,
                c,
                short_room,
                crate::services::relations::ord::back(seq),
                short,
                &stored,
            )?;
        }
        let redacted_target = redaction::write_effect(
            s,
            c,
            redaction_effect,
            short,
            (&object, &event_id, &room_id),
            &rules,
        )?;
        Ok((short, redacted_target))
    })?;
    if let Some(target) = redacted_target {
        s.timeline.forget_cached(target);
    }
    s.timeline.forget_cached(short);
    Ok(())
}
