//! The events each application service is sent, queued in the event's own commit (a crash keeps
//! both or neither) and removed once the service acknowledged the transaction that carried them.
//!
//! A transaction is fixed before its first attempt and recorded (`appservice_txns`): a retry,
//! also after a restart, sends the same events under the same id, as the spec asks, so the
//! service's de-duplication by transaction id never drops an event.

use ruma::{CanonicalJsonObject, UserId};

use super::Appservice;
use crate::{
    error::Result,
    services::{Services, globals::Commit, rooms::membership::Membership},
    storage::{
        Map,
        keys::{Key, KeyReader},
    },
};

/// appservice id str ‖ position u64 → short event u64 (a timeline event), or `d` ‖ user str ‖
/// device str (a to-device message at that position in the device's inbox, MSC4203): what the
/// service has not acknowledged yet.
pub const APPSERVICE_QUEUE: Map = Map("appservice_queue");
/// appservice id str → first position u64 ‖ last position u64: the transaction being sent (its id
/// is its first position).
pub const APPSERVICE_TXNS: Map = Map("appservice_txns");
pub const MAPS: &[Map] = &[APPSERVICE_QUEUE, APPSERVICE_TXNS];

/// Events in one transaction at most.
pub const MAX_TXN_EVENTS: usize = 100;
/// Events queued for one service at most; beyond, new ones are dropped for it (logged): a service
/// that stays down does not fill the disk.
pub const MAX_QUEUED: u64 = 100_000;

fn queue_key(appservice: &str, pos: u64) -> Vec<u8> {
    Key::new().str(appservice).u64(pos).build()
}

/// Whether `appservice` wants the event (spec "Application Service API", pushing events): its
/// users send it or are its membership target, or the room interests it ([`room_interests`]).
pub fn interested(
    s: &Services,
    appservice: &Appservice,
    short_room: u64,
    event: &CanonicalJsonObject,
    members: &mut Option<Vec<ruma::OwnedUserId>>,
) -> Result<bool> {
    let field = |name: &str| event.get(name).and_then(|v| v.as_str());
    let owned = |user: Option<&str>| {
        user.and_then(|u| UserId::parse(u).ok())
            .is_some_and(|u| appservice.owns_user(&u))
    };
    if owned(field("sender"))
        || (field("type") == Some("m.room.member") && owned(field("state_key")))
    {
        return Ok(true);
    }
    match field("room_id").and_then(|r| ruma::RoomId::parse(r).ok()) {
        Some(room_id) => room_interests(s, appservice, short_room, &room_id, members),
        None => Ok(false),
    }
}

/// Whether what happens in a room interests `appservice`: the room's id or one of its local
/// aliases is in its namespaces, or one of its users is joined or invited. `members` keeps the
/// room's members for the room's other services. (With a service registered, an event in a large
/// room costs a scan of its members: a per-room cache of interested services is the next step
/// when that shows in the bench.)
pub fn room_interests(
    s: &Services,
    appservice: &Appservice,
    short_room: u64,
    room_id: &ruma::RoomId,
    members: &mut Option<Vec<ruma::OwnedUserId>>,
) -> Result<bool> {
    if appservice.rooms.matches(room_id.as_str()) {
        return Ok(true);
    }
    if !appservice.aliases.is_empty()
        && s.directory
            .aliases_of(room_id)?
            .iter()
            .any(|a| appservice.aliases.matches(a.as_str()))
    {
        return Ok(true);
    }
    if appservice.users.is_empty() {
        // Only its own user: one lookup rather than the room's members.
        return Ok(matches!(
            s.membership.membership(short_room, &appservice.sender)?,
            Some(Membership::Join | Membership::Invite)
        ));
    }
    if members.is_none() {
        let mut all = s.membership.members(short_room, Membership::Join)?;
        all.extend(s.membership.members(short_room, Membership::Invite)?);
        *members = Some(all);
    }
    Ok(members
        .as_ref()
        .is_some_and(|m| m.iter().any(|u| appservice.owns_user(u))))
}

/// In the commit of a timeline event at `pos`: queues it for every interested service with a
/// URL; returns the services it was queued for (their senders are woken after the commit). A
/// commit that then fails leaves their queue counts one too high until the next start-up
/// (`Appservices::count_queued`): the cap errs on the side of the disk.
pub fn event_committed(
    s: &Services,
    c: &mut Commit,
    short_room: u64,
    pos: u64,
    short_event: u64,
    event: &CanonicalJsonObject,
) -> Result<Vec<usize>> {
    let mut queued = Vec::new();
    let mut members = None;
    for (index, appservice) in s.appservices.all().iter().enumerate() {
        if appservice.registration.url.is_none()
            || !interested(s, appservice, short_room, event, &mut members)?
        {
            continue;
        }
        let id = &appservice.registration.id;
        if !s.appservices.reserve(id) {
            tracing::warn!(
                "application service {id}: {MAX_QUEUED} events queued, event at {pos} dropped for it"
            );
            continue;
        }
        c.batch.put(
            APPSERVICE_QUEUE,
            queue_key(id, pos),
            short_event.to_be_bytes(),
        );
        queued.push(index);
    }
    Ok(queued)
}

/// One queued entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// A timeline event (its short id).
    Event(u64),
    /// A to-device message in this device's inbox (`to_device`), at the entry's position.
    ToDevice { user: String, device: String },
}

impl Queued {
    fn encode(&self) -> Vec<u8> {
        match self {
            Self::Event(short) => short.to_be_bytes().to_vec(),
            Self::ToDevice { user, device } => {
                [b"d".as_slice(), &Key::new().str(user).str(device).build()].concat()
            }
        }
    }

    fn decode(value: &[u8]) -> Option<Self> {
        match value.split_first() {
            Some((b'd', rest)) if value.len() != 8 => {
                let mut r = KeyReader::new(rest);
                Some(Self::ToDevice {
                    user: r.str()?.to_owned(),
                    device: r.str()?.to_owned(),
                })
            }
            _ => crate::storage::keys::u64_from(value).map(Self::Event),
        }
    }
}

/// In the commit of a to-device message for a local `user`'s `device` at `pos`: queues it for
/// every service with a URL that takes to-device messages and holds the user exclusively (or as
/// its own user); returns those services (woken after the commit). Such a message then leaves
/// the device's inbox when the service acknowledges it.
pub fn to_device_committed(
    s: &Services,
    c: &mut Commit,
    user: &UserId,
    device: &str,
    pos: u64,
) -> Vec<usize> {
    let mut queued = Vec::new();
    for (index, appservice) in s.appservices.all().iter().enumerate() {
        if appservice.registration.url.is_none()
            || !appservice.push_to_device
            || !(user == appservice.sender || appservice.users.is_exclusive(user.as_str()))
        {
            continue;
        }
        let id = &appservice.registration.id;
        if !s.appservices.reserve(id) {
            tracing::warn!(
                "application service {id}: {MAX_QUEUED} entries queued, to-device message at {pos} not pushed"
            );
            continue;
        }
        let entry = Queued::ToDevice {
            user: user.as_str().to_owned(),
            device: device.to_owned(),
        };
        c.batch
            .put(APPSERVICE_QUEUE, queue_key(id, pos), entry.encode());
        queued.push(index);
    }
    queued
}

/// The transaction to send next: the recorded one, or else a new one of the oldest queued events
/// (recorded in the same call). `None`: nothing is queued.
pub fn next_txn(s: &Services, appservice: &str) -> Result<Option<(u64, Vec<(u64, Queued)>)>> {
    let prefix = Key::new().str(appservice).build();
    let recorded = s.globals.db.get(APPSERVICE_TXNS, &prefix)?.and_then(|v| {
        let mut r = KeyReader::new(&v);
        Some((r.u64()?, r.u64()?))
    });
    let mut events = Vec::new();
    let start = match recorded {
        Some((first, _)) => queue_key(appservice, first),
        None => prefix.clone(),
    };
    for entry in s.globals.db.scan_from(
        APPSERVICE_QUEUE,
        &prefix,
        &start,
        crate::storage::Direction::Forward,
    ) {
        let (key, value) = entry?;
        let Some(pos) = KeyReader::new(&key[prefix.len()..]).u64() else {
            continue;
        };
        if recorded.is_some_and(|(_, last)| pos > last)
            || (recorded.is_none() && events.len() == MAX_TXN_EVENTS)
        {
            break;
        }
        events.push((pos, Queued::decode(&value).unwrap_or(Queued::Event(0))));
    }
    let Some(&(first, _)) = events.first() else {
        if recorded.is_some() {
            s.globals.db.write({
                let mut b = crate::storage::Batch::new();
                b.delete(APPSERVICE_TXNS, prefix);
                b
            })?;
        }
        return Ok(None);
    };
    if recorded.is_none() {
        let last = events.last().map_or(first, |e| e.0);
        s.globals.db.put(
            APPSERVICE_TXNS,
            prefix,
            Key::new().u64(first).u64(last).build(),
        )?;
    }
    Ok(Some((first, events)))
}

/// The service acknowledged the transaction: its entries, its to-device messages (out of their
/// devices' inboxes) and its record are removed, in one batch.
pub fn acknowledged(s: &Services, appservice: &str, events: &[(u64, Queued)]) -> Result<()> {
    let mut batch = crate::storage::Batch::new();
    for (pos, entry) in events {
        batch.delete(APPSERVICE_QUEUE, queue_key(appservice, *pos));
        if let Queued::ToDevice { user, device } = entry {
            batch.delete(
                crate::services::to_device::TO_DEVICE,
                crate::services::to_device::message_key(user, device, *pos),
            );
        }
    }
    batch.delete(APPSERVICE_TXNS, Key::new().str(appservice).build());
    s.globals.db.write(batch)?;
    s.appservices.release(appservice, events.len() as u64);
    Ok(())
}

/// Events queued for `appservice` (counted at start-up).
pub fn count(s: &Services, appservice: &str) -> Result<u64> {
    let prefix = Key::new().str(appservice).build();
    let mut n = 0;
    for entry in s.globals.db.scan_prefix(APPSERVICE_QUEUE, &prefix) {
        entry?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::Queued;

    #[test]
    fn entries_read_back_as_written() {
        for entry in [
            Queued::Event(7),
            Queued::Event(u64::from_be_bytes(*b"d1234567")),
            Queued::ToDevice {
                user: "@_irc_bob:x".into(),
                device: "ABC".into(),
            },
        ] {
            assert_eq!(Queued::decode(&entry.encode()), Some(entry));
        }
    }
}
