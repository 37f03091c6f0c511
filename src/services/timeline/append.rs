//! Building, signing, authorising and appending events created by local users.

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId,
    RoomId, RoomVersionId, UserId,
    events::{StateEventType, TimelineEventType},
    room_version_rules::{EventIdFormatVersion, RoomVersionRules},
    signatures::{hash_and_sign_event, reference_hash},
    state_res,
};
use serde_json::{Value, json};

use std::sync::Arc;

use super::{
    EventMeta, PDUS, ROOMS, StoredEvent, TIMELINE, TXN_IDS, encode_meta, pdu::Pdu, redaction,
    txn_key,
};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{event_by_short, membership::Membership, version},
        state::StateMap,
    },
    storage::keys::Key,
};

/// The largest PDU the spec allows, in bytes of canonical JSON.
pub const MAX_PDU_BYTES: usize = 65_536;

/// What a client asks to send.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: TimelineEventType,
    pub content: Value,
    pub state_key: Option<String>,
    pub redacts: Option<OwnedEventId>,
    /// The `origin_server_ts` an application service asked for (its `ts` query parameter);
    /// `None`: now.
    pub ts: Option<u64>,
}

impl NewEvent {
    /// The same event, at `ts` when given (an application service's timestamp massaging).
    pub fn at(mut self, ts: Option<u64>) -> Self {
        self.ts = ts;
        self
    }

    pub fn state(kind: StateEventType, state_key: impl Into<String>, content: Value) -> Self {
        Self {
            kind: kind.to_string().into(),
            content,
            state_key: Some(state_key.into()),
            redacts: None,
            ts: None,
        }
    }

    pub fn message(kind: TimelineEventType, content: Value) -> Self {
        Self {
            kind,
            content,
            state_key: None,
            redacts: None,
            ts: None,
        }
    }
}

/// The client transaction that produced an event (for idempotency and `unsigned.transaction_id`).
#[derive(Debug, Clone)]
pub struct Txn {
    pub device: String,
    pub txn_id: String,
}

/// Where to append: an existing room, or a new room that this create event starts.
pub enum Target<'a> {
    Room(&'a RoomId),
    NewRoom {
        version: RoomVersionId,
        room_id: Option<OwnedRoomId>,
    },
}

/// Builds, signs and authorises an event from `sender`, then appends it: one atomic batch.
pub fn append_local(
    s: &Services,
    target: Target<'_>,
    sender: &UserId,
    new: NewEvent,
    txn: Option<Txn>,
) -> Result<(OwnedEventId, OwnedRoomId)> {
    let (version, existing_room) = match &target {
        Target::Room(room_id) => {
            let version = s
                .timeline
                .room_version(room_id)?
                .ok_or_else(|| Error::not_found("Unknown room"))?;
            (version, Some(*room_id))
        }
        Target::NewRoom { version, .. } => (version.clone(), None),
    };
    let rules = version::rules(&version)?;
    let lock = existing_room.map(|r| s.timeline.room_lock(r));
    let _guard = lock
        .as_ref()
        .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));

    // An identical transaction was already processed while we waited for the lock.
    if let (Some(txn), Some(room)) = (&txn, existing_room)
        && let Some(event_id) =
            s.timeline
                .txn_event(sender.as_str(), &txn.device, room, &txn.txn_id)?
    {
        return Ok((event_id, room.to_owned()));
    }
    if let Some(room) = existing_room {
        crate::services::relations::validate::check_local(
            s,
            room,
            sender,
            new.kind.to_string().as_str(),
            &new.content,
        )?;
    }

    // Processes of a group may append to the room meanwhile: build again on what they wrote.
    for attempt in 1.. {
        let Built {
            object,
            prev,
            short_room,
            before,
            room_id_field,
        } = build_fields(s, &target, &rules, existing_room, sender, &new)?;
        let (object, event_id, room_id) = sign_built(s, &rules, object, room_id_field)?;

        let pdu = Pdu::from_canonical(&object, &event_id, &room_id)?;
        let persisted = persist(
            s,
            Persist {
                room_id: room_id.clone(),
                version: version.clone(),
                short_room,
                object,
                event_id: event_id.clone(),
                pdu,
                state_before: before,
                replaces: prev.iter().map(|e| e.short).collect(),
                current: Current::After,
                txn: txn.clone().map(|t| (sender.to_owned(), t)),
                soft_failed: false,
                forward: Forward::AllExcept(None),
                // Built on the current state and the first extremities.
                prepared_on: Some(RoomHead {
                    snapshot: before,
                    extremities: prev.iter().map(|e| e.short).collect(),
                    compared: MAX_PREV_EVENTS,
                }),
            },
        );
        match persisted {
            Ok(_) => return Ok((event_id, room_id)),
            Err(e) if is_room_changed(&e) && attempt < BUILD_ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

/// Hashes and signs built fields with our key; returns the event, its id and its room id.
pub fn sign_built(
    s: &Services,
    rules: &RoomVersionRules,
    mut object: CanonicalJsonObject,
    room_id_field: Option<OwnedRoomId>,
) -> Result<(CanonicalJsonObject, OwnedEventId, OwnedRoomId)> {
    let server_name = s.globals.server_name();
    hash_and_sign_event(
        server_name.as_str(),
        &s.globals.keypair,
        &mut object,
        &rules.redaction,
    )
    .map_err(|e| match e {
        ruma::signatures::JsonError::PduTooLarge => Error::too_large("Event is too large"),
        other => Error::bad_json(other.to_string()),
    })?;
    let event_bytes = serde_json::to_vec(&object).map_err(|e| Error::internal(e.to_string()))?;
    if event_bytes.len() > MAX_PDU_BYTES {
        return Err(Error::too_large("Event is larger than 65536 bytes"));
    }
    let event_id: OwnedEventId = match object.get("event_id").and_then(|v| v.as_str()) {
        Some(id) => id.try_into().map_err(|_| Error::internal("bad event id"))?,
        None => {
            let hash =
                reference_hash(&object, rules).map_err(|e| Error::too_large(e.to_string()))?;
            format!("${hash}")
                .try_into()
                .map_err(|_| Error::internal("bad event id"))?
        }
    };
    let room_id: OwnedRoomId = match room_id_field {
        Some(r) => r,
        None => format!("!{}", &event_id.as_str()[1..])
            .try_into()
            .map_err(|_| Error::internal("bad room id"))?,
    };
    Ok((object, event_id, room_id))
}

/// An event's fields before hashing and signing.
pub struct Built {
    pub object: CanonicalJsonObject,
    /// The forward extremities it references.
    pub prev: Vec<Arc<StoredEvent>>,
    pub short_room: u64,
    /// Snapshot of the state it is built on (the room's current state).
    pub before: u64,
    pub room_id_field: Option<OwnedRoomId>,
}

/// Fills in an event's fields: prev_events and depth from the forward extremities, auth_events
/// from the current state, timestamps, ids by room version. Used for local events and for the
/// templates of `make_join`/`make_leave`.
pub fn build_fields(
    s: &Services,
    target: &Target<'_>,
    rules: &RoomVersionRules,
    existing_room: Option<&RoomId>,
    sender: &UserId,
    new: &NewEvent,
) -> Result<Built> {
    let short_room = match existing_room {
        Some(room_id) => s
            .short
            .room(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?,
        None => 0,
    };
    let before = if short_room == 0 {
        0
    } else {
        s.state.current_snapshot(short_room)?
    };
    let state = s.state.load(before)?;

    let content_raw = serde_json::value::to_raw_value(&new.content)
        .map_err(|e| Error::bad_json(e.to_string()))?;
    let mut object = CanonicalJsonObject::new();

    // prev_events and depth.
    let mut prev = Vec::new();
    let mut depth = 0u64;
    if let Some(room_id) = existing_room {
        for short in s
            .timeline
            .extremities(short_room)?
            .into_iter()
            .take(MAX_PREV_EVENTS)
        {
            let event = event_by_short(s, short, room_id)?
                .ok_or_else(|| Error::internal("missing extremity"))?;
            depth = depth.max(u64::from(event.pdu.depth));
            prev.push(event);
        }
    }
    depth += 1;

    // auth_events, selected from the current state.
    let auth_types = state_res::auth_types_for_event(
        &new.kind,
        sender,
        new.state_key.as_deref(),
        &content_raw,
        &rules.authorization,
    )
    .map_err(Error::bad_json)?;
    let mut auth = Vec::new();
    if let Some(room_id) = existing_room {
        for (kind, state_key) in auth_types {
            if let Some(short) = lookup(s, &state, &kind, &state_key)? {
                auth.push(
                    event_by_short(s, short, room_id)?
                        .ok_or_else(|| Error::internal("missing auth event"))?,
                );
            }
        }
    }

    let room_id_field = match (target, existing_room) {
        (_, Some(room)) => Some(room.to_owned()),
        (Target::NewRoom { room_id, .. }, None) => room_id.clone(),
        _ => None,
    };
    let refs = |events: &[Arc<StoredEvent>]| -> CanonicalJsonValue {
        CanonicalJsonValue::Array(
            events
                .iter()
                .map(|e| event_reference(&rules, &e.pdu.event_id, &e.json))
                .collect(),
        )
    };
    object.insert("auth_events".into(), refs(&auth));
    object.insert("prev_events".into(), refs(&prev));
    object.insert("content".into(), to_canonical(&new.content)?);
    object.insert(
        "depth".into(),
        CanonicalJsonValue::Integer((depth as i64).try_into().unwrap_or_default()),
    );
    // A v12 room id is the hash of its create event: two create events of the same user in the same
    // millisecond must differ, so create events get strictly increasing timestamps.
    let ts = match target {
        Target::NewRoom { .. } => s.timeline.unique_create_ts(),
        Target::Room(_) => new.ts.unwrap_or_else(crate::util::now_ms),
    };
    object.insert(
        "origin_server_ts".into(),
        CanonicalJsonValue::Integer(ruma::Int::try_from(ts).unwrap_or_default()),
    );
    object.insert(
        "sender".into(),
        CanonicalJsonValue::String(sender.to_string()),
    );
    object.insert(
        "type".into(),
        CanonicalJsonValue::String(new.kind.to_string()),
    );
    if let Some(state_key) = &new.state_key {
        object.insert(
            "state_key".into(),
            CanonicalJsonValue::String(state_key.clone()),
        );
    }
    if let Some(redacts) = &new.redacts
        && !rules.redaction.content_field_redacts
    {
        object.insert(
            "redacts".into(),
            CanonicalJsonValue::String(redacts.to_string()),
        );
    }
    if let Some(room_id) = &room_id_field {
        object.insert(
            "room_id".into(),
            CanonicalJsonValue::String(room_id.to_string()),
        );
    }
    let server_name = sender.server_name();
    if matches!(rules.event_id_format, EventIdFormatVersion::V1) {
        let local: String = crate::util::random_string(18);
        object.insert(
            "event_id".into(),
            CanonicalJsonValue::String(format!("${local}:{server_name}")),
        );
        object.insert(
            "origin".into(),
            CanonicalJsonValue::String(server_name.to_string()),
        );
    }
    Ok(Built {
        object,
        prev,
        short_room,
        before,
        room_id_field,
    })
}

/// How the room's current state changes with a persisted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Current {
    /// The state after the event becomes the current state (it extends every forward extremity).
    After,
    /// The current state is left as it is (the caller resolves it afterwards).
    Keep,
}

/// To which servers a persisted event is queued.
#[derive(Debug, Clone)]
pub enum Forward {
    /// None (received over `/send`: its origin sends it to everyone).
    None,
    /// Every other server in the room, except this one (the server that gave us the event).
    AllExcept(Option<ruma::OwnedServerName>),
}

/// A signed PDU, local or remote, ready to be authorised and appended.
pub struct Persist {
    pub room_id: OwnedRoomId,
    pub version: RoomVersionId,
    /// 0 for the create event of a new room.
    pub short_room: u64,
    pub object: CanonicalJsonObject,
    pub event_id: OwnedEventId,
    pub pdu: Pdu,
    /// Snapshot of the state before the event.
    pub state_before: u64,
    /// Short ids of the forward extremities the event replaces.
    pub replaces: Vec<u64>,
    pub current: Current,
    pub txn: Option<(ruma::OwnedUserId, Txn)>,
    /// Stored, but kept out of the timeline, the extremities and the current state.
    pub soft_failed: bool,
    pub forward: Forward,
    /// The room's current state and forward extremities the event was prepared on (a local
    /// event built on them, a remote one placed against them): when several processes share the
    /// database, the commit checks that they have not changed since, and fails with
    /// [`room_changed`] if they have (the caller prepares the event again).
    pub prepared_on: Option<RoomHead>,
}

/// What a room's head was when an event was prepared: its current state snapshot and its
/// forward extremities (the first `compared` of them are compared again at the commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHead {
    pub snapshot: u64,
    pub extremities: Vec<u64>,
    pub compared: usize,
}

impl RoomHead {
    /// The room's head now, all its extremities compared.
    pub fn read(s: &Services, short_room: u64) -> Result<Self> {
        Ok(Self {
            snapshot: s.state.current_snapshot(short_room)?,
            extremities: s.timeline.extremities(short_room)?,
            compared: usize::MAX,
        })
    }

    /// Fails with [`room_changed`] when the room's head moved since (read under the database's
    /// commit lock, where every other process's commit is visible).
    pub fn check_unchanged(&self, s: &Services, short_room: u64) -> Result<()> {
        let now: Vec<u64> = s
            .timeline
            .extremities(short_room)?
            .into_iter()
            .take(self.compared)
            .collect();
        if s.state.current_snapshot(short_room)? != self.snapshot || now != self.extremities {
            return Err(room_changed());
        }
        Ok(())
    }
}

/// The forward extremities a local event names as `prev_events`, at most.
const MAX_PREV_EVENTS: usize = 20;

const ROOM_CHANGED: &str = "the room changed while the event was built";

/// Another process appended to the room after the event was built on its state.
pub(crate) fn room_changed() -> Error {
    Error::new(http::StatusCode::CONFLICT, "M_UNKNOWN", ROOM_CHANGED)
}

pub(crate) fn is_room_changed(e: &Error) -> bool {
    e.status == http::StatusCode::CONFLICT && e.message == ROOM_CHANGED
}

/// Builds an event again this many times when other processes keep appending to its room.
pub(crate) const BUILD_ATTEMPTS: usize = 20;

/// Authorises a PDU against the state before it and appends it, in one atomic batch: the PDU, its
/// metadata, the timeline entry, the state snapshot, the extremities, the transaction id, the
/// membership index, the redaction of its target and the federation queue entries. The path of
/// both local and remote events. Returns the short event id and the stream position.
pub fn persist(s: &Services, p: Persist) -> Result<(u64, u64)> {
    let rules = version::rules(&p.version)?;
    let state = s.state.load(p.state_before)?;
    authorise(s, &rules, &p.pdu, &state)?;
    let Persist {
        room_id,
        version,
        short_room,
        object,
        event_id,
        pdu,
        state_before: before,
        replaces,
        current,
        txn,
        soft_failed,
        forward,
        prepared_on,
    } = p;
    let check_unchanged = prepared_on.filter(|_| short_room != 0 && s.globals.shared());
    let event_bytes = serde_json::to_vec(&object).map_err(|e| Error::internal(e.to_string()))?;
    let local = pdu.sender.server_name() == s.config().server_name;
    let retention_changed = pdu.state_key.as_deref() == Some("")
        && pdu.kind == TimelineEventType::from("m.room.retention");

    let redaction_effect =
        if pdu.kind == TimelineEventType::RoomRedaction && !soft_failed && short_room != 0 {
            redaction::effect(s, &rules, short_room, &pdu, &state)?
        } else {
            redaction::Effect::None
        };

    let membership_change = if pdu.kind == TimelineEventType::RoomMember && !soft_failed {
        let target = pdu.state_key.as_deref().and_then(|k| UserId::parse(k).ok());
        let membership = pdu.membership().as_deref().and_then(Membership::parse);
        target.zip(membership)
    } else {
        None
    };
    // Push rules run before the commit; what they change is written in the event's batch, at its
    // position (an event that cannot be evaluated is still sent).
    let mut push_staged = if soft_failed || short_room == 0 {
        None
    } else {
        let meta = EventMeta {
            short_room,
            pos: 0,
            state_before: before,
            state_after: before,
        };
        let event = Arc::new(StoredEvent {
            short: 0,
            meta,
            pdu: pdu.clone(),
            json: object.clone(),
        });
        match crate::services::push::evaluate::evaluate_event(s, event) {
            Ok(evaluated) if !evaluated.notified.is_empty() => Some(
                crate::services::push::evaluate::PushStage::new(s, evaluated)?,
            ),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("push evaluation of {event_id} failed: {e}");
                None
            }
        }
    };
    let destinations = match (&forward, soft_failed, short_room) {
        (Forward::AllExcept(except), false, short) if short != 0 => {
            crate::federation::sender::destinations_for(s, short, &pdu, except.as_deref())?
        }
        _ => Vec::new(),
    };

    let mut remembered = false;
    let (short_event, pos, redacted_target, push_queued, (appservice_queued, command_queued)) = s
        .globals
        .commit(|c| {
            // Under the database's commit lock, every other process's commit is visible.
            if let Some(head) = &check_unchanged {
                head.check_unchanged(s, short_room)?;
            }
            let short_room = if short_room == 0 {
                c.batch
                    .put(ROOMS, room_id.as_bytes(), version.as_str().as_bytes());
                s.short.create_room(c, &room_id)
            } else {
                short_room
            };
            let known = s.short.event(&event_id)?;
            let short_event = match known {
                Some(short) => short,
                None => s.short.create_event(c, &event_id),
            };
            let pos = if soft_failed { 0 } else { c.next_pos() };
            if retention_changed && !soft_failed {
                c.invalidate(crate::services::cluster::Invalidation::RoomRetention { short_room });
            }
            let after = match &pdu.state_key {
                Some(state_key) => {
                    let kind = StateEventType::from(pdu.kind.to_string());
                    let key = s.short.get_or_create_statekey(c, &kind, state_key)?;
                    s.state.create(c, before, &[(key, short_event)])?.0
                }
                None => before,
            };
            let meta = EventMeta {
                short_room,
                pos,
                state_before: before,
                state_after: after,
            };
            // Redactions that came before the event apply to it now, when allowed (`None`:
            // stored as received). A local event is new: nothing can have named it before.
            let changed_form = if pdu.sender.server_name() == s.globals.server_name() {
                None
            } else {
                let stored = redaction::on_arrival(
                    s,
                    c,
                    &rules,
                    short_room,
                    &event_id,
                    &pdu.sender,
                    object.clone(),
                )?;
                (stored != object).then_some(stored)
            };
            let as_received = changed_form.is_none();
            let event_bytes = match &changed_form {
                None => event_bytes.clone(),
                Some(stored) => {
                    serde_json::to_vec(stored).map_err(|e| Error::internal(e.to_string()))?
                }
            };
            c.batch.put(PDUS, short_event.to_be_bytes(), event_bytes);
            c.batch.put(
                super::EVENT_META,
                short_event.to_be_bytes(),
                encode_meta(&meta),
            );
            if soft_failed {
                return Ok((short_event, pos, None, false, (Vec::new(), false)));
            }
            // Every member's /sync reads the new event next: it is in the event cache as soon as
            // its position is served (unless a redaction that came before changed its stored form).
            if as_received {
                remembered = true;
                let event = Arc::new(StoredEvent {
                    short: short_event,
                    meta,
                    pdu: pdu.clone(),
                    json: object.clone(),
                });
                c.after_write(move || s.timeline.remember(event, known.is_some()));
            }
            if current == Current::After {
                s.state.set_current(c, short_room, after);
            }
            c.batch.put(
                TIMELINE,
                Key::new().u64(short_room).u64(pos).build(),
                short_event.to_be_bytes(),
            );
            c.stream_changed(crate::services::stream_changes::StreamChange::Timeline(
                short_room,
            ));
            if pdu.kind == TimelineEventType::RoomMember {
                c.stream_changed(crate::services::stream_changes::StreamChange::MemberEvent(
                    short_room,
                ));
            }
            s.timeline
                .replace_extremities(c, short_room, &replaces, short_event)?;
            // The room's last bump record, and sliding sync's remembered bumps follow the appends
            // (alone on the database; a group's processes read the records, see `sliding::bumps`).
            let kind = pdu.kind.to_string();
            crate::services::sync::sliding::bumps::event_committed(c, short_room, pos, &kind);
            if !s.globals.shared() {
                let bumps = crate::services::sync::sliding::bumps::is_bump_type(&kind);
                c.after_write(move || s.sliding_sync.bumps.appended(short_room, pos, bumps));
            }
            if let Some((sender, txn)) = &txn {
                c.batch.put(
                    TXN_IDS,
                    txn_key(sender.as_str(), &txn.device, &room_id, &txn.txn_id),
                    event_id.as_bytes(),
                );
                c.batch.put(
                    super::EVENT_TXN,
                    short_event.to_be_bytes(),
                    Key::new().str(&txn.device).str(&txn.txn_id).build(),
                );
            }
            if let Some((user, membership)) = &membership_change {
                s.membership
                    .record(c, user, &room_id, short_room, *membership, pos, short_event);
            }
            let redacted_target = redaction::write_effect(
                s,
                c,
                redaction_effect,
                short_event,
                (&object, &event_id, &room_id),
                &rules,
            )?;
            for destination in &destinations {
                s.federation.sender.queue_pdu(c, destination, &event_id);
            }
            let push_queued = match &mut push_staged {
                Some(p) => p.write(s, c, short_event, pos, |_, _| pos)?,
                None => false,
            };
            let stored = changed_form.as_ref().unwrap_or(&object);
            crate::services::search::event_committed(c, short_room, pos, short_event, stored);
            crate::services::relations::event_committed(
                s,
                c,
                short_room,
                crate::services::relations::ord::main(pos),
                short_event,
                stored,
            )?;
            crate::services::time_index::event_committed(
                c,
                short_room,
                short_event,
                pdu.origin_server_ts,
            );
            let appservice_queued = crate::services::appservice::queue::event_committed(
                s,
                c,
                short_room,
                pos,
                short_event,
                stored,
            )?;
            let command_queued = crate::services::webhooks::bot::event_committed(
                s,
                c,
                short_room,
                pos,
                short_event,
                stored,
            )?;
            Ok((
                short_event,
                pos,
                redacted_target,
                push_queued,
                (appservice_queued, command_queued),
            ))
        })?
        .0;
    s.appservices.wake(&appservice_queued);
    if command_queued {
        s.webhooks.commands_wake.notify_one();
    }
    if let Some(staged) = push_staged {
        staged.committed();
    }
    if push_queued {
        s.push.deliver_wake.notify_one();
    }
    if let Some(target_short) = redacted_target {
        s.timeline.forget_cached(target_short);
    }
    if !remembered {
        // Soft-failed, or stored in another form than built (a redaction that came first): the
        // cache must not hold an older form; re-read when next asked.
        s.timeline.forget_cached(short_event);
    }
    if short_room == 0 {
        // A new room's version; nothing else ever changes a stored one.
        s.timeline.remember_version(&room_id, &version);
    }
    if membership_change.is_some() {
        s.federation
            .sender
            .membership_changed(s.short.room(&room_id)?.unwrap_or(short_room));
    }
    for destination in &destinations {
        s.federation.sender.wake(destination);
    }
    if retention_changed {
        s.retention
            .forget(s.short.room(&room_id)?.unwrap_or(short_room));
    }
    s.metrics.event_persisted(local);
    Ok((short_event, pos))
}

fn lookup(
    s: &Services,
    state: &StateMap,
    kind: &StateEventType,
    state_key: &str,
) -> Result<Option<u64>> {
    Ok(s.short
        .statekey(kind, state_key)?
        .and_then(|k| state.get(&k).copied()))
}

/// Applies the authorization rules against `state` (the state before the event).
pub fn authorise(
    s: &Services,
    rules: &RoomVersionRules,
    pdu: &Pdu,
    state: &StateMap,
) -> Result<()> {
    if pdu.kind == TimelineEventType::RoomCreate {
        return state_res::check_state_independent_auth_rules::<Pdu>(
            &rules.authorization,
            pdu,
            |_| None,
        )
        .map_err(|e| Error::bad_json(format!("invalid create event: {e}")));
    }
    let fetch = |kind: &StateEventType, state_key: &str| -> Option<Arc<StoredEvent>> {
        match lookup(s, state, kind, state_key).ok()? {
            Some(short) => event_by_short(s, short, &pdu.room_id).ok()?,
            // A room joined with partial state lacks most members: the event's own auth event
            // stands in for them until the full state arrives (and the event is checked again).
            None => {
                crate::services::partial_state::auth_event_while_partial(s, pdu, kind, state_key)
                    .ok()?
            }
        }
    };
    state_res::check_state_dependent_auth_rules(&rules.authorization, pdu, fetch)
        .map_err(|e| Error::forbidden(format!("Event is not authorised: {e}")))
}

/// The reference to an event in `prev_events`/`auth_events`, by room version.
fn event_reference(
    rules: &RoomVersionRules,
    id: &OwnedEventId,
    json: &CanonicalJsonObject,
) -> CanonicalJsonValue {
    if matches!(rules.event_id_format, EventIdFormatVersion::V1) {
        let hashes = json
            .get("hashes")
            .cloned()
            .unwrap_or(CanonicalJsonValue::Object(Default::default()));
        CanonicalJsonValue::Array(vec![CanonicalJsonValue::String(id.to_string()), hashes])
    } else {
        CanonicalJsonValue::String(id.to_string())
    }
}

fn to_canonical(value: &Value) -> Result<CanonicalJsonValue> {
    CanonicalJsonValue::try_from(value.clone())
        .map_err(|e| Error::bad_json(format!("content is not canonical JSON: {e}")))
}

/// `unsigned` for a client: age, transaction id for the sending device, redacted_because.
pub fn unsigned_for(
    json: &CanonicalJsonObject,
    txn_id: Option<&str>,
) -> serde_json::Map<String, Value> {
    let mut unsigned = serde_json::Map::new();
    if let Some(CanonicalJsonValue::Object(stored)) = json.get("unsigned") {
        for (k, v) in stored {
            unsigned.insert(k.clone(), super::pdu::canonical_to_value(v));
        }
    }
    if let Some(ts) = json.get("origin_server_ts").and_then(|v| v.as_integer()) {
        let age = MilliSecondsSinceUnixEpoch::now()
            .get()
            .saturating_sub(ruma::UInt::try_from(i64::from(ts)).unwrap_or_default());
        unsigned.insert("age".into(), json!(u64::from(age)));
    }
    if let Some(txn) = txn_id {
        unsigned.insert("transaction_id".into(), json!(txn));
    }
    unsigned
}
