//! Evaluation of room events for push: for every local member of the room other than the sender,
//! ruma's `Ruleset::get_actions` with the room's context (member count, the user's display name,
//! power levels). A new event is evaluated before its commit (`timeline::append::persist`), and
//! what it does is written in the event's own batch, at the event's own stream position: the
//! users' notifications, unread entries and counts, and the delivery queue items for their http
//! pushers. A reader never sees a message without its counts. Events committed by an older
//! version with a `push_pending` entry are evaluated once after start-up (`process_pending`).

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use ruma::{
    OwnedUserId, UInt, UserId,
    events::{
        StateEventType, TimelineEventType,
        room::power_levels::{RoomPowerLevels, RoomPowerLevelsEventContent, RoomPowerLevelsSource},
    },
    push::{Action, FlattenedJson, PushConditionPowerLevelsCtx, PushConditionRoomCtx, Ruleset},
};
use serde_json::Value;

use super::{
    PUSH_NOTIFICATIONS, PUSH_PENDING, PUSH_UNREAD,
    counts::{CountsCache, Entry, RoomCounts, ThreadCounts},
    counts_store::{stage_room, stage_thread},
    notifications, queue,
    read::totals,
    rules,
};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        globals::Commit,
        rooms::{event_by_short, version},
        state::StateMap,
        timeline::{
            StoredEvent,
            pdu::{ClientFormat, raw},
        },
    },
    storage::keys::{Key, u64_from},
};

/// Events evaluated per call (the evaluator calls again while there are more).
pub const BATCH: usize = 64;

/// Evaluates up to [`BATCH`] pending events (left by an older version), oldest first, each in
/// one batch with the deletion of its entry; returns how many it took.
pub fn process_pending(s: &Services) -> Result<usize> {
    let pending: Vec<(u64, u64)> = s
        .push
        .db
        .scan_prefix(PUSH_PENDING, &[])
        .take(BATCH)
        .map(|entry| {
            let (key, value) = entry?;
            Ok((u64_from(&key).unwrap_or(0), u64_from(&value).unwrap_or(0)))
        })
        .collect::<Result<_>>()?;
    for (pos, short_event) in &pending {
        let evaluated = evaluate(s, *short_event).unwrap_or_else(|e| {
            // An event that cannot be evaluated must not block the ones after it.
            tracing::warn!("push evaluation of event {short_event} failed: {e}");
            None
        });
        let mut staged = match evaluated {
            Some(evaluated) => Some(PushStage::new(s, evaluated)?),
            None => None,
        };
        let queued = s
            .globals
            .commit(|c| {
                c.batch.delete(PUSH_PENDING, pos.to_be_bytes());
                match &mut staged {
                    // The counts change at a new position, so /sync shows them.
                    Some(staged) => staged.write(s, c, *short_event, *pos, |c, staged| {
                        if staged.changes_counts() {
                            c.next_pos()
                        } else {
                            *pos
                        }
                    }),
                    None => Ok(false),
                }
            })?
            .0;
        if let Some(staged) = staged {
            staged.committed();
        }
        if queued {
            s.push.deliver_wake.notify_one();
        }
    }
    Ok(pending.len())
}

/// A user an event notifies, with the actions of the rule that matched.
pub struct Notified {
    pub user: OwnedUserId,
    pub actions: Vec<Action>,
}

/// The event and what it does for each local user.
pub struct Evaluated {
    pub event: Arc<StoredEvent>,
    pub notified: Vec<Notified>,
}

/// Evaluates a stored event (see `evaluate_event`).
pub fn evaluate(s: &Services, short_event: u64) -> Result<Option<Evaluated>> {
    let Some(meta) = s.timeline.meta(short_event)? else {
        return Ok(None);
    };
    if meta.pos == 0 {
        return Ok(None);
    }
    let room_id = s.short.room_id(meta.short_room)?;
    let Some(event) = event_by_short(s, short_event, &room_id)? else {
        return Ok(None);
    };
    evaluate_event(s, event).map(Some)
}

/// Runs the push rules of every local member (and the local invitee of an invite) but the sender
/// for `event` (its `meta` gives the room and the state before it; its position is not read).
pub fn evaluate_event(s: &Services, event: Arc<StoredEvent>) -> Result<Evaluated> {
    let meta = event.meta;
    let room_id = event.pdu.room_id.clone();
    let ours = s.globals.server_name();
    let joined = s.membership.joined(meta.short_room)?;
    let mut users: BTreeSet<OwnedUserId> = joined
        .iter()
        .filter(|u| u.server_name() == ours && **u != event.pdu.sender)
        .cloned()
        .collect();
    if event.pdu.kind == TimelineEventType::RoomMember
        && event.pdu.membership().as_deref() == Some("invite")
        && let Some(target) = event
            .pdu
            .state_key
            .as_deref()
            .and_then(|k| UserId::parse(k).ok())
        && target.server_name() == ours
        && target != event.pdu.sender
    {
        users.insert(target);
    }
    if users.is_empty() {
        return Ok(Evaluated {
            event,
            notified: Vec::new(),
        });
    }

    let state = s.state.load(meta.state_before)?;
    let power_levels = power_levels(s, &room_id, &state)?;
    let json = event.to_client(&s.timeline, ClientFormat::Room, None)?;
    // The event is flattened once for all its users (ruma's `get_actions` would flatten it for each).
    let flat = FlattenedJson::from_raw(&raw::<Value>(&json));
    let has_body = flat.get_str("content.body").is_some();
    // Who the event names: a user it does not name gets from the server defaults what any other
    // such user gets (`rules::defaults_depend_only_on_the_id`), evaluated once.
    let lowered = raw::<Value>(&json).json().get().to_lowercase();
    let mut unnamed_default: Option<Option<Vec<Action>>> = None;
    let member_count = UInt::new(joined.len() as u64).unwrap_or_default();
    let mut notified = Vec::new();
    for user in users {
        let ruleset = match rules::rules_of(s, &user)? {
            rules::Rules::Default => {
                let shared = s.push.share_default_rules && !names(&lowered, &user);
                if shared && let Some(actions) = &unnamed_default {
                    if let Some(actions) = actions {
                        notified.push(Notified {
                            user,
                            actions: actions.clone(),
                        });
                    }
                    continue;
                }
                let ruleset = Ruleset::server_default(&user);
                // The defaults read no display name.
                let ctx = room_ctx(&room_id, member_count, user, String::new(), &power_levels);
                let actions = first_match(&ruleset, &flat, &ctx)?
                    .filter(|a| a.iter().any(Action::should_notify))
                    .map(<[Action]>::to_vec);
                if shared {
                    unnamed_default = Some(actions.clone());
                }
                if let Some(actions) = actions {
                    notified.push(Notified {
                        user: ctx.user_id,
                        actions,
                    });
                }
                continue;
            }
            rules::Rules::Custom(ruleset) => ruleset,
        };
        // Only `contains_display_name` reads the display name, and only in a body.
        let name = if has_body {
            display_name(s, &room_id, &state, &user)?
        } else {
            String::new()
        };
        let ctx = room_ctx(&room_id, member_count, user, name, &power_levels);
        if let Some(actions) = first_match(&ruleset, &flat, &ctx)?
            && actions.iter().any(Action::should_notify)
        {
            notified.push(Notified {
                user: ctx.user_id,
                actions: actions.to_vec(),
            });
        }
    }
    Ok(Evaluated { event, notified })
}

fn room_ctx(
    room_id: &ruma::RoomId,
    member_count: UInt,
    user: OwnedUserId,
    name: String,
    power_levels: &Option<PushConditionPowerLevelsCtx>,
) -> PushConditionRoomCtx {
    let ctx = PushConditionRoomCtx::new(room_id.to_owned(), member_count, user, name);
    match power_levels {
        Some(pl) => ctx.with_power_levels(pl.clone()),
        None => ctx,
    }
}

/// Whether the event (its JSON, lowercased) may name `user`: it holds their ID, in any case. A
/// rule can only match on a user's ID if the event holds it (`event_match` is a case-insensitive
/// glob, `event_property_contains` an equality); an ID with glob or JSON-escaped characters is
/// always taken as named.
fn names(lowered: &str, user: &UserId) -> bool {
    let id = user.as_str();
    if id.contains(['*', '?', '"', '\\']) {
        return true;
    }
    // IDs are ASCII.
    if id.bytes().any(|b| b.is_ascii_uppercase()) {
        lowered.contains(&id.to_ascii_lowercase())
    } else {
        lowered.contains(id)
    }
}

/// The actions of the first rule of `ruleset` that applies to `event` (as `Ruleset::get_actions`,
/// on an event flattened once).
fn first_match<'r>(
    ruleset: &'r Ruleset,
    event: &FlattenedJson,
    ctx: &PushConditionRoomCtx,
) -> Result<Option<&'r [Action]>> {
    if event
        .get_str("sender")
        .is_some_and(|sender| sender == ctx.user_id)
    {
        return Ok(None);
    }
    for rule in ruleset {
        match now_or_never(rule.applies(event, ctx)) {
            Some(true) => return Ok(Some(rule.actions())),
            Some(false) => {}
            None => return Err(Error::internal("push rule evaluation did not complete")),
        }
    }
    Ok(None)
}

/// Polls a future that never waits (ruma's rule matching awaits nothing without MSC4306).
fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fn state_event(
    s: &Services,
    room_id: &ruma::RoomId,
    state: &StateMap,
    kind: &StateEventType,
    key: &str,
) -> Result<Option<Arc<StoredEvent>>> {
    let Some(short_key) = s.short.statekey(kind, key)? else {
        return Ok(None);
    };
    let Some(short) = state.get(&short_key) else {
        return Ok(None);
    };
    event_by_short(s, *short, room_id)
}

/// The user's display name in the room (their member event), or their localpart.
fn display_name(
    s: &Services,
    room_id: &ruma::RoomId,
    state: &StateMap,
    user: &UserId,
) -> Result<String> {
    let member = state_event(
        s,
        room_id,
        state,
        &StateEventType::RoomMember,
        user.as_str(),
    )?;
    Ok(member
        .and_then(|m| m.pdu.content_field("displayname"))
        .and_then(|d| d.as_str().map(str::to_owned))
        .unwrap_or_else(|| user.localpart().to_owned()))
}

/// The room's power levels as the push conditions read them (creators of v12 rooms included).
fn power_levels(
    s: &Services,
    room_id: &ruma::RoomId,
    state: &StateMap,
) -> Result<Option<PushConditionPowerLevelsCtx>> {
    let Some(version) = s.timeline.room_version(room_id)? else {
        return Ok(None);
    };
    let rules = version::rules(&version)?;
    let create = state_event(s, room_id, state, &StateEventType::RoomCreate, "")?;
    let mut creators: Vec<OwnedUserId> = Vec::new();
    if rules.authorization.explicitly_privilege_room_creators
        && let Some(create) = &create
    {
        creators.push(create.pdu.sender.clone());
        for extra in create
            .pdu
            .content_field("additional_creators")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
        {
            if let Some(user) = extra.as_str().and_then(|u| OwnedUserId::try_from(u).ok()) {
                creators.push(user);
            }
        }
    }
    let source = match state_event(s, room_id, state, &StateEventType::RoomPowerLevels, "")? {
        Some(event) => {
            match serde_json::from_str::<RoomPowerLevelsEventContent>(event.pdu.content.get()) {
                Ok(content) => RoomPowerLevelsSource::Original(content),
                Err(_) => return Ok(None),
            }
        }
        None => {
            // Without power levels the creator has 100 (before v12, where creators are privileged).
            if !rules.authorization.explicitly_privilege_room_creators
                && let Some(create) = &create
            {
                creators.push(create.pdu.sender.clone());
            }
            RoomPowerLevelsSource::None
        }
    };
    let levels = RoomPowerLevels::new(source, &rules.authorization, creators);
    Ok(Some(levels.into()))
}

/// The thread of an event: the root of its `m.thread` relation.
pub fn thread_of(event: &StoredEvent) -> Option<String> {
    let relates = event.pdu.content_field("m.relates_to")?;
    (relates.get("rel_type")?.as_str()? == "m.thread")
        .then(|| relates.get("event_id")?.as_str().map(str::to_owned))?
}

/// What an evaluated event writes, read under the counts lock, which it holds until it is
/// written (no count changes meanwhile): each notified user's counts with the event counted, and
/// the delivery queue items (with the badge: every unread notification of the user).
pub struct Staged<'a> {
    event: Arc<StoredEvent>,
    users: Vec<StagedUser>,
    items: Vec<queue::Item>,
    cache: std::sync::MutexGuard<'a, CountsCache>,
    /// The position the counts were written at (`write`).
    counts_pos: std::cell::Cell<u64>,
    /// Every notified user's counts were written (`write`: an event evaluated after its commit).
    all_stored: std::cell::Cell<bool>,
}

struct StagedUser {
    user: OwnedUserId,
    actions: Vec<Action>,
    entry: Entry,
    /// The counts with the event counted (`None`: the event was already read), and its thread's.
    counts: Option<(RoomCounts, Option<ThreadCounts>)>,
    /// The counts are written, not only the entry (`CountsCache::get_for_notification`, or a
    /// thread's).
    store: bool,
}

/// Push work of an event: staged before its commit (one process), or inside it (a group of
/// processes: the counts are read under the database's commit lock, since another process may
/// have changed them a moment ago). The counts lock is taken before the commit either way.
pub enum PushStage<'a> {
    Staged(Staged<'a>),
    InCommit(Option<(Evaluated, std::sync::MutexGuard<'a, CountsCache>)>),
}

impl<'a> PushStage<'a> {
    pub fn new(s: &'a Services, evaluated: Evaluated) -> Result<Self> {
        let cache = s.push.counts_lock.lock().unwrap_or_else(|e| e.into_inner());
        Ok(if s.push.stage_in_commit {
            PushStage::InCommit(Some((evaluated, cache)))
        } else {
            PushStage::Staged(stage_locked(s, &evaluated, cache)?)
        })
    }

    /// Inside the commit: stages (in a group) and writes as [`Staged::write`] does.
    pub fn write(
        &mut self,
        s: &'a Services,
        c: &mut Commit,
        short_event: u64,
        event_pos: u64,
        counts_pos: impl FnOnce(&mut Commit, &Staged) -> u64,
    ) -> Result<bool> {
        if let PushStage::InCommit(deferred) = self
            && let Some((evaluated, cache)) = deferred.take()
        {
            *self = PushStage::Staged(stage_locked(s, &evaluated, cache)?);
        }
        match self {
            PushStage::Staged(staged) => {
                let counts_pos = counts_pos(c, staged);
                Ok(staged.write(c, short_event, event_pos, counts_pos))
            }
            PushStage::InCommit(_) => Ok(false),
        }
    }

    /// After the commit succeeded (see [`Staged::committed`]).
    pub fn committed(self) {
        if let PushStage::Staged(staged) = self {
            staged.committed();
        }
    }
}

/// Reads what `evaluated` changes, under the counts lock (kept in the result).
pub fn stage<'a>(s: &'a Services, evaluated: &Evaluated) -> Result<Staged<'a>> {
    let cache = s.push.counts_lock.lock().unwrap_or_else(|e| e.into_inner());
    stage_locked(s, evaluated, cache)
}

fn stage_locked<'a>(
    s: &'a Services,
    evaluated: &Evaluated,
    mut cache: std::sync::MutexGuard<'a, CountsCache>,
) -> Result<Staged<'a>> {
    cache.begin();
    let event = evaluated.event.clone();
    let short_room = event.meta.short_room;
    let thread = thread_of(&event);
    let users: Vec<&UserId> = evaluated.notified.iter().map(|n| &*n.user).collect();
    cache.prefetch(s, &users, short_room, thread.as_deref())?;
    // A new event has no position yet: it comes after every read marker.
    let event_pos = if event.meta.pos == 0 {
        u64::MAX
    } else {
        event.meta.pos
    };
    let mut users = Vec::new();
    let mut items = Vec::new();
    for Notified { user, actions } in &evaluated.notified {
        let highlight = actions.iter().any(Action::is_highlight);
        let entry = Entry {
            highlight,
            call: event.pdu.kind == TimelineEventType::CallInvite,
            thread: thread.clone(),
        };
        let (mut counts, must_store) = cache.get_for_notification(s, user, short_room)?;
        let mut thread_counts = match &thread {
            Some(root) => Some(cache.thread(s, user, short_room, root)?),
            None => None,
        };
        let store = thread.is_some() || must_store;
        let counted = counts.add(event_pos, &entry, thread_counts.as_mut());
        if counted {
            items.extend(queue::items_for(s, user, &event, actions, || {
                totals(s, user, &HashMap::from([(short_room, counts)]))
            })?);
        }
        users.push(StagedUser {
            user: user.clone(),
            actions: actions.clone(),
            entry,
            counts: counted.then_some((counts, thread_counts)),
            store,
        });
    }
    Ok(Staged {
        event,
        users,
        items,
        cache,
        counts_pos: Default::default(),
        all_stored: Default::default(),
    })
}

impl Staged<'_> {
    /// Whether writing changes a user's counts.
    pub fn changes_counts(&self) -> bool {
        self.users.iter().any(|u| u.counts.is_some())
    }

    /// Writes into `c` the notifications and unread entries of the event (`short_event`) at
    /// `event_pos`, the counts marked changed at `counts_pos` (of the users whose stored value
    /// is to hold them; of all when the event's entries come before `counts_pos`), and the queue
    /// items; true when items were queued (the delivery worker is to be woken after the commit).
    pub fn write(&self, c: &mut Commit, short_event: u64, event_pos: u64, counts_pos: u64) -> bool {
        self.counts_pos.set(counts_pos);
        // Entries before the stored position would not be read back (`counts_store::with_unstored`).
        let all_stored = counts_pos != event_pos;
        self.all_stored.set(all_stored);
        let ts = crate::util::now_ms();
        let short_room = self.event.meta.short_room;
        for StagedUser {
            user,
            actions,
            entry,
            counts,
            store,
        } in &self.users
        {
            c.batch.put(
                PUSH_NOTIFICATIONS,
                Key::new().str(user.as_str()).u64(event_pos).build(),
                notifications::encode(short_event, ts, actions),
            );
            if let Some((counts, thread)) = counts {
                c.batch.put(
                    PUSH_UNREAD,
                    Key::new()
                        .str(user.as_str())
                        .u64(short_room)
                        .u64(event_pos)
                        .build(),
                    entry.encode(),
                );
                if *store || all_stored {
                    let counts = RoomCounts {
                        pos: counts_pos,
                        ..*counts
                    };
                    stage_room(c, user, short_room, &counts);
                    if let (Some(root), Some(thread)) = (&entry.thread, thread) {
                        stage_thread(c, user, short_room, root, thread, counts.read_all);
                    }
                }
            }
        }
        if self.changes_counts() {
            c.stream_changed(crate::services::stream_changes::StreamChange::Counts(
                short_room,
            ));
        }
        queue::enqueue(c, &self.items);
        !self.items.is_empty()
    }

    /// After the commit that `write` filled succeeded: the counts it wrote become the cached ones.
    pub fn committed(mut self) {
        let short_room = self.event.meta.short_room;
        let pos = self.counts_pos.get();
        let all_stored = self.all_stored.get();
        for StagedUser {
            user,
            counts,
            entry,
            store,
            ..
        } in std::mem::take(&mut self.users)
        {
            if let Some((counts, thread)) = counts {
                let thread = entry.thread.as_deref().zip(thread);
                self.cache.put(
                    &user,
                    short_room,
                    RoomCounts { pos, ..counts },
                    thread,
                    store || all_stored,
                );
            }
        }
    }
}
