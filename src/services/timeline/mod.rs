//! The timeline: stored PDUs, their metadata, each room's events in stream order, forward
//! extremities and transaction ids.

pub mod append;
pub mod backfilled;
pub mod client_json;
pub mod federation_json;
pub mod order;
pub mod pdu;
pub mod purge;
pub mod redacted_originals;
pub mod redaction;
#[cfg(test)]
mod vectors;
pub mod visibility;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use ruma::{CanonicalJsonObject, EventId, OwnedEventId, OwnedRoomId, RoomId, RoomVersionId};

use self::pdu::Pdu;
use crate::{
    error::{Error, Result},
    storage::{
        Db, Direction, Map,
        keys::{Key, KeyReader, u64_from},
    },
};

/// short event → the signed PDU as canonical JSON.
pub const PDUS: Map = Map("pdus");
/// short event → short room, position, state snapshot before, after.
pub const EVENT_META: Map = Map("event_meta");
/// short room, position → short event.
pub const TIMELINE: Map = Map("timeline");
/// short room → the room's forward extremities, as concatenated u64 short event ids. One value
/// per room, overwritten: a key per extremity would leave a tombstone per event to skip on every scan.
pub const EXTREMITIES: Map = Map("forward_extremities");
/// user, device, room, transaction id → event id (a transaction is scoped to a device and room).
pub const TXN_IDS: Map = Map("txn_ids");
/// room id → room version.
pub const ROOMS: Map = Map("rooms");
/// short event → device, transaction id of the local send that created it.
pub const EVENT_TXN: Map = Map("event_txn");
pub const MAPS: &[Map] = &[
    PDUS,
    EVENT_META,
    TIMELINE,
    EXTREMITIES,
    TXN_IDS,
    ROOMS,
    EVENT_TXN,
];

#[derive(Debug, Clone, Copy)]
pub struct EventMeta {
    pub short_room: u64,
    pub pos: u64,
    pub state_before: u64,
    pub state_after: u64,
}

impl EventMeta {
    fn encode(&self) -> Vec<u8> {
        [
            self.short_room,
            self.pos,
            self.state_before,
            self.state_after,
        ]
        .iter()
        .flat_map(|n| n.to_be_bytes())
        .collect()
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let n = |i: usize| bytes.get(i * 8..i * 8 + 8).and_then(u64_from);
        Ok(Self {
            short_room: n(0).ok_or_else(|| Error::internal("corrupt event meta"))?,
            pos: n(1).unwrap_or(0),
            state_before: n(2).unwrap_or(0),
            state_after: n(3).unwrap_or(0),
        })
    }
}

/// A stored event with everything needed to serve it.
#[derive(Clone)]
pub struct StoredEvent {
    pub short: u64,
    pub meta: EventMeta,
    pub pdu: Pdu,
    pub json: CanonicalJsonObject,
}

/// Recently read events, parsed: the state events that every authorization check reads, and the
/// recent messages that /sync serves. Bounded; cleared when full.
const EVENT_CACHE_ENTRIES: usize = 2048;

pub struct Timeline {
    db: Db,
    events: Mutex<HashMap<u64, Arc<StoredEvent>>>,
    /// Counts `forget_cached` calls: a reader that read an event from the database before a
    /// redaction was written must not put that old form in the cache after the redaction forgot it.
    forgotten: std::sync::atomic::AtomicU64,
    room_locks: Mutex<HashMap<OwnedRoomId, Arc<Mutex<()>>>>,
    versions: RwLock<HashMap<OwnedRoomId, RoomVersionId>>,
    last_create_ts: std::sync::atomic::AtomicU64,
}

impl Timeline {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            events: Default::default(),
            forgotten: Default::default(),
            room_locks: Default::default(),
            versions: Default::default(),
            last_create_ts: Default::default(),
        }
    }

    /// Serialises the building of events in one room.
    pub fn room_lock(&self, room_id: &RoomId) -> Arc<Mutex<()>> {
        self.room_locks
            .lock()
            .unwrap()
            .entry(room_id.to_owned())
            .or_default()
            .clone()
    }

    pub fn room_version(&self, room_id: &RoomId) -> Result<Option<RoomVersionId>> {
        if let Some(v) = self.versions.read().unwrap().get(room_id) {
            return Ok(Some(v.clone()));
        }
        let Some(bytes) = self.db.get(ROOMS, room_id.as_bytes())? else {
            return Ok(None);
        };
        let version = RoomVersionId::try_from(String::from_utf8_lossy(&bytes).as_ref())
            .map_err(|_| Error::internal("corrupt room version"))?;
        self.versions
            .write()
            .unwrap()
            .insert(room_id.to_owned(), version.clone());
        Ok(Some(version))
    }

    pub fn room_exists(&self, room_id: &RoomId) -> Result<bool> {
        Ok(self.room_version(room_id)?.is_some())
    }

    pub(crate) fn remember_version(&self, room_id: &RoomId, version: &RoomVersionId) {
        self.versions
            .write()
            .unwrap()
            .insert(room_id.to_owned(), version.clone());
    }

    pub fn meta(&self, short: u64) -> Result<Option<EventMeta>> {
        self.db
            .get(EVENT_META, &short.to_be_bytes())?
            .map(|b| EventMeta::decode(&b))
            .transpose()
    }

    /// The short room of a stored event (outliers included).
    pub fn room_of(&self, short: u64) -> Result<Option<u64>> {
        Ok(self.meta(short)?.map(|m| m.short_room))
    }

    pub fn json(&self, short: u64) -> Result<Option<CanonicalJsonObject>> {
        let Some(bytes) = self.db.get(PDUS, &short.to_be_bytes())? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| Error::internal("corrupt stored PDU"))
    }

    /// The cached event of a short id (`Some(None)`: cached, but of another room); `None` when it
    /// is not cached.
    pub fn cached(&self, short: u64, room_id: &RoomId) -> Option<Option<Arc<StoredEvent>>> {
        let cache = self.events.lock().unwrap();
        cache
            .get(&short)
            .map(|event| (event.pdu.room_id == room_id).then(|| event.clone()))
    }

    /// Loads an event by its short id, with its event id and room id; `None` when the stored event
    /// is of another room (an event is never relabelled).
    pub fn load(
        &self,
        short: u64,
        event_id: &EventId,
        room_id: &RoomId,
    ) -> Result<Option<Arc<StoredEvent>>> {
        use std::sync::atomic::Ordering;
        let epoch = {
            let cache = self.events.lock().unwrap();
            if let Some(event) = cache.get(&short) {
                // Never served under another room than its own.
                return Ok((event.pdu.room_id == room_id).then(|| event.clone()));
            }
            self.forgotten.load(Ordering::Acquire)
        };
        let (Some(meta), Some(json)) = (self.meta(short)?, self.json(short)?) else {
            return Ok(None);
        };
        if !pdu::json_in_room(&json, event_id, room_id) {
            return Ok(None);
        }
        let pdu = Pdu::from_canonical(&json, event_id, room_id)?;
        let event = Arc::new(StoredEvent {
            short,
            meta,
            pdu,
            json,
        });
        let mut cache = self.events.lock().unwrap();
        if self.forgotten.load(Ordering::Acquire) != epoch {
            // A redaction was written meanwhile: what was read may be the old form.
            return Ok(Some(event));
        }
        if cache.len() >= EVENT_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(short, event.clone());
        Ok(Some(event))
    }

    /// Reads many events of one room at once (`wanted`: short id and event id, none of them
    /// cached: see `rooms::events_by_short`), with one read of each map (a room's whole state for
    /// an initial /sync). What is read is not cached: a bulk read would push out the events that
    /// are read again and again.
    pub fn load_many(
        &self,
        wanted: &[(u64, OwnedEventId)],
        room_id: &RoomId,
    ) -> Result<Vec<Option<Arc<StoredEvent>>>> {
        let mut out: Vec<Option<Arc<StoredEvent>>> = vec![None; wanted.len()];
        if wanted.is_empty() {
            return Ok(out);
        }
        let keys: Vec<Vec<u8>> = wanted
            .iter()
            .map(|(short, _)| short.to_be_bytes().to_vec())
            .collect();
        let metas = self.db.multi_get(EVENT_META, &keys)?;
        let jsons = self.db.multi_get(PDUS, &keys)?;
        for (i, (meta, json)) in metas.into_iter().zip(jsons).enumerate() {
            let (Some(meta), Some(json)) = (meta, json) else {
                continue;
            };
            let (short, event_id) = &wanted[i];
            let meta = EventMeta::decode(&meta)?;
            let json: CanonicalJsonObject =
                serde_json::from_slice(&json).map_err(|_| Error::internal("corrupt stored PDU"))?;
            if !pdu::json_in_room(&json, event_id, room_id) {
                continue;
            }
            let pdu = Pdu::from_canonical(&json, event_id, room_id)?;
            out[i] = Some(Arc::new(StoredEvent {
                short: *short,
                meta,
                pdu,
                json,
            }));
        }
        Ok(out)
    }

    /// The federation form of many events of one room, their stored JSON as it is (see
    /// [`federation_json`]); `None` where one is unknown or of another room. Nothing is cached.
    pub fn federation_many(
        &self,
        wanted: &[(u64, OwnedEventId)],
        room_id: &RoomId,
    ) -> Result<Vec<Option<federation_json::FederationPdu>>> {
        let keys: Vec<Vec<u8>> = wanted
            .iter()
            .map(|(short, _)| short.to_be_bytes().to_vec())
            .collect();
        self.db
            .multi_get(PDUS, &keys)?
            .into_iter()
            .zip(wanted)
            .map(|(json, (_, event_id))| match json {
                Some(json) => federation_json::from_stored(&json, event_id, room_id),
                None => Ok(None),
            })
            .collect()
    }

    /// The client form of many events of one room, written straight from their stored JSON (see
    /// [`client_json`]); `None` where one is unknown or of another room. Nothing is cached.
    pub fn client_many(
        &self,
        wanted: &[(u64, OwnedEventId)],
        room_id: &RoomId,
        format: pdu::ClientFormat,
    ) -> Result<Vec<Option<Box<serde_json::value::RawValue>>>> {
        let keys: Vec<Vec<u8>> = wanted
            .iter()
            .map(|(short, _)| short.to_be_bytes().to_vec())
            .collect();
        let now = crate::util::now_ms();
        self.db
            .multi_get(PDUS, &keys)?
            .into_iter()
            .zip(wanted)
            .map(|(json, (_, event_id))| match json {
                Some(json) => {
                    client_json::client_event_from_stored(&json, event_id, room_id, format, now)
                }
                None => Ok(None),
            })
            .collect()
    }

    /// A timestamp for a create event: now, or one more than the last one handed out.
    pub fn unique_create_ts(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let now = crate::util::now_ms();
        let previous = self
            .last_create_ts
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        now.max(previous + 1)
    }

    /// Puts an event just written in the cache: called after its batch is written, before its
    /// position is served. `had_older_form`: its short id existed before this commit (something
    /// named it before it arrived, e.g. a redaction); like [`Timeline::forget_cached`], it stops a
    /// reader that read the id before the commit from caching what it read. An event stored in
    /// any form, outliers included, is never appended again (`append_remote`: a duplicate), so
    /// the cache never holds an older form of an appended event.
    pub(crate) fn remember(&self, event: Arc<StoredEvent>, had_older_form: bool) {
        let mut cache = self.events.lock().unwrap();
        if had_older_form {
            self.forgotten
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        if cache.len() >= EVENT_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(event.short, event);
    }

    /// Drops a cached event whose stored form changed (redaction).
    pub(crate) fn forget_cached(&self, short: u64) {
        let mut cache = self.events.lock().unwrap();
        self.forgotten
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        cache.remove(&short);
    }

    /// Short ids of a room's events after position `after` (exclusive), in stream order, or
    /// before position `before` (inclusive) in reverse order.
    pub fn scan(
        &self,
        short_room: u64,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>> {
        let prefix = Key::new().u64(short_room).build();
        let start = match direction {
            Direction::Forward => from.saturating_add(1),
            Direction::Backward => from,
        };
        let from_key = Key::new().u64(short_room).u64(start).build();
        let mut out = Vec::new();
        for entry in self
            .db
            .scan_from(TIMELINE, &prefix, &from_key, direction)
            .take(limit)
        {
            let (key, value) = entry?;
            out.push(Self::timeline_entry(&key, &value)?);
        }
        Ok(out)
    }

    /// Up to `limit` (position, short event) entries of a room's timeline with positions in
    /// `(after, upto]`, newest first: the scan stops at `after` (an incremental /sync of a room
    /// without new events reads no entry).
    pub fn scan_back_after(
        &self,
        short_room: u64,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let low = Key::new()
            .u64(short_room)
            .u64(after.saturating_add(1))
            .build();
        let high = Key::new().u64(short_room).u64(upto).build();
        let mut out = Vec::new();
        for entry in self
            .db
            .scan_range(TIMELINE, low, None, &high, Direction::Backward)
            .take(limit)
        {
            let (key, value) = entry?;
            out.push(Self::timeline_entry(&key, &value)?);
        }
        Ok(out)
    }

    fn timeline_entry(key: &[u8], value: &[u8]) -> Result<(u64, u64)> {
        let pos = KeyReader::new(&key[8..])
            .u64()
            .ok_or_else(|| Error::internal("corrupt timeline key"))?;
        let short = u64_from(value).ok_or_else(|| Error::internal("corrupt timeline value"))?;
        Ok((pos, short))
    }

    pub fn extremities(&self, short_room: u64) -> Result<Vec<u64>> {
        let Some(value) = self.db.get(EXTREMITIES, &short_room.to_be_bytes())? else {
            return Ok(Vec::new());
        };
        if value.len() % 8 != 0 {
            return Err(Error::internal("corrupt forward extremities"));
        }
        Ok(value.chunks_exact(8).filter_map(u64_from).collect())
    }

    /// Writes the room's extremities in `commit`: `added` replaces the extremities in `replaced`.
    pub(crate) fn replace_extremities(
        &self,
        commit: &mut crate::services::globals::Commit,
        short_room: u64,
        replaced: &[u64],
        added: u64,
    ) -> Result<()> {
        let mut extremities = self.extremities(short_room)?;
        extremities.retain(|e| !replaced.contains(e) && *e != added);
        extremities.push(added);
        let value: Vec<u8> = extremities.iter().flat_map(|e| e.to_be_bytes()).collect();
        commit
            .batch
            .put(EXTREMITIES, short_room.to_be_bytes(), value);
        Ok(())
    }

    pub fn txn_event(
        &self,
        user: &str,
        device: &str,
        room: &RoomId,
        txn: &str,
    ) -> Result<Option<OwnedEventId>> {
        let key = txn_key(user, device, room, txn);
        Ok(self
            .db
            .get(TXN_IDS, &key)?
            .and_then(|b| OwnedEventId::try_from(String::from_utf8_lossy(&b).as_ref()).ok()))
    }
}

impl Timeline {
    /// The (device, transaction id) that created a local event.
    pub fn event_txn(&self, short: u64) -> Result<Option<(String, String)>> {
        Ok(self.db.get(EVENT_TXN, &short.to_be_bytes())?.and_then(|b| {
            let mut r = KeyReader::new(&b);
            Some((r.str()?.to_owned(), r.str()?.to_owned()))
        }))
    }
}

pub fn txn_key(user: &str, device: &str, room: &RoomId, txn: &str) -> Vec<u8> {
    Key::new()
        .str(user)
        .str(device)
        .str(room.as_str())
        .str(txn)
        .build()
}

pub(crate) fn encode_meta(meta: &EventMeta) -> Vec<u8> {
    meta.encode()
}

/// A stored event is authorised and resolved as its PDU.
impl ruma::state_res::Event for StoredEvent {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        ruma::state_res::Event::event_id(&self.pdu)
    }
    fn room_id(&self) -> Option<&RoomId> {
        ruma::state_res::Event::room_id(&self.pdu)
    }
    fn sender(&self) -> &ruma::UserId {
        ruma::state_res::Event::sender(&self.pdu)
    }
    fn origin_server_ts(&self) -> ruma::MilliSecondsSinceUnixEpoch {
        self.pdu.origin_server_ts
    }
    fn event_type(&self) -> &ruma::events::TimelineEventType {
        &self.pdu.kind
    }
    fn content(&self) -> &serde_json::value::RawValue {
        &self.pdu.content
    }
    fn state_key(&self) -> Option<&str> {
        self.pdu.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.pdu.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.pdu.auth_events.iter())
    }
    fn redacts(&self) -> Option<&Self::Id> {
        self.pdu.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        false
    }
}

impl StoredEvent {
    /// The event as a client sees it; `viewer` gets `transaction_id` on events their device sent.
    pub fn to_client(
        &self,
        timeline: &Timeline,
        format: pdu::ClientFormat,
        viewer: Option<(&ruma::UserId, &str)>,
    ) -> Result<serde_json::Value> {
        let txn = match viewer {
            Some((user, device)) if user == self.pdu.sender => timeline
                .event_txn(self.short)?
                .filter(|(d, _)| d == device)
                .map(|(_, txn)| txn),
            _ => None,
        };
        let unsigned = append::unsigned_for(&self.json, txn.as_deref());
        Ok(pdu::client_event(
            &self.json,
            &self.pdu.event_id,
            &self.pdu.room_id,
            format,
            unsigned,
        ))
    }
}
