//! The big workloads (`--big`): accounts and rooms of the sizes large deployments have.
//!
//! - `big_sync`: the initial /sync of a user in R rooms of M members each, full and with
//!   lazy-loaded members;
//! - `sliding`: simplified sliding sync (MSC4186) of a user in N rooms, first request and an
//!   incremental one carrying one new message;
//! - `huge_room`: one room of K members: the server's resident memory once it is built, and the
//!   latency of a send in it and of a member's incremental /sync seeing that message.
//!
//! Their setup is the costly part (tens of thousands of joins), so it runs many requests at once
//! (`conc`), retries those answered 429, and prints a progress line every 10 seconds.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{Api, User, next_batch, timeline_has_body};
use crate::workloads::{Names, limited, median, pct};
use crate::{Res, bail};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The lazy-loading filter of the big initial sync (inline JSON).
pub const LAZY_FILTER: &str =
    r#"{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":10}}}"#;

/// Progress of a long setup step: a line every 10 seconds, and one at the end.
struct Progress {
    what: String,
    total: usize,
    done: AtomicUsize,
    start: Instant,
    last: Mutex<Instant>,
}

impl Progress {
    fn new(what: impl Into<String>, total: usize) -> Self {
        let what = what.into();
        eprintln!("[versus]   {what}: {total} to do");
        let now = Instant::now();
        Progress {
            what,
            total,
            done: AtomicUsize::new(0),
            start: now,
            last: Mutex::new(now),
        }
    }

    fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if done >= self.total {
            return;
        }
        let mut last = self.last.lock().expect("progress lock");
        if last.elapsed() < Duration::from_secs(10) {
            return;
        }
        *last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64();
        let rate = done as f64 / secs;
        eprintln!(
            "[versus]   {}: {done}/{} ({:.0} %), {rate:.1}/s, about {:.0} s left",
            self.what,
            self.total,
            100.0 * done as f64 / self.total as f64,
            (self.total - done) as f64 / rate
        );
    }

    /// Prints the last line; returns the rate (per second).
    fn finish(&self) -> f64 {
        let secs = self.start.elapsed().as_secs_f64();
        let rate = self.total as f64 / secs;
        eprintln!(
            "[versus]   {}: {} in {secs:.1} s = {rate:.1}/s",
            self.what, self.total
        );
        rate
    }
}

/// Runs `f`, again (after a pause) while the server answers 429, or, when `idempotent`, while the
/// request fails without an answer (a timeout: a join may have been done meanwhile, and is done
/// again harmlessly). Counts the retries in `retries`.
async fn retrying<T, F, Fut>(retries: &AtomicUsize, idempotent: bool, f: F) -> Res<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Res<T>>,
{
    let mut tries = 0u32;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let limited = e.0.contains("HTTP 429");
                let no_answer = !e.0.contains("HTTP ");
                if tries >= 30 || !(limited || (idempotent && no_answer)) {
                    return Err(e);
                }
                tries += 1;
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200 * u64::from(tries.min(10)))).await;
            }
        }
    }
}

/// Registers `n` users `{prefix}{i}`, `conc` at a time (without a password when `password` is
/// `None`).
async fn register_users(
    api: &Api,
    names: &Names,
    prefix: &str,
    n: usize,
    password: Option<&str>,
    conc: usize,
    retries: &AtomicUsize,
) -> Res<Vec<User>> {
    let progress = Progress::new(format!("{prefix}: registrations"), n);
    let users = limited(n, conc, |i| {
        let api = api.clone();
        let name = names.user(&format!("{prefix}{i:05}"));
        let password = password.map(str::to_owned);
        let progress = &progress;
        async move {
            let u = retrying(retries, false, || {
                api.register_with(&name, password.as_deref())
            })
            .await?;
            progress.tick();
            Ok(u)
        }
    })
    .await?;
    progress.finish();
    Ok(users)
}

/// `creator` creates `n` public rooms named `{prefix} {i}`, `conc` at a time; returns their IDs and
/// the rate (rooms/s).
async fn create_rooms(
    api: &Api,
    creator: &User,
    prefix: &str,
    n: usize,
    conc: usize,
    retries: &AtomicUsize,
) -> Res<(Vec<String>, f64)> {
    let progress = Progress::new(format!("{prefix}: room creations"), n);
    let rooms = limited(n, conc, |i| {
        let (api, u) = (api.clone(), creator.clone());
        let progress = &progress;
        async move {
            let name = format!("{prefix} {i}");
            let room = retrying(retries, false, || api.create_room(&u, &name)).await?;
            progress.tick();
            Ok(room)
        }
    })
    .await?;
    let rate = progress.finish();
    Ok((rooms, rate))
}

/// Joins `(user, room)` pairs, `conc` at a time; `pair(k)` gives the `k`th of `n`. Returns the rate
/// (joins/s).
async fn join_all(
    api: &Api,
    what: &str,
    n: usize,
    conc: usize,
    retries: &AtomicUsize,
    pair: impl Fn(usize) -> (User, String),
) -> Res<f64> {
    let progress = Progress::new(format!("{what}: joins"), n);
    limited(n, conc, |k| {
        let api = api.clone();
        let (u, room) = pair(k);
        let progress = &progress;
        async move {
            retrying(retries, true, || api.join(&u, &room)).await?;
            progress.tick();
            Res::<()>::Ok(())
        }
    })
    .await?;
    Ok(progress.finish())
}

/// How many members (distinct `state_key`s of `m.room.member` events) of `room_id` a sync response
/// lists, in the state and the timeline.
fn members_in_sync(v: &Value, room_id: &str) -> usize {
    let room = &v["rooms"]["join"][room_id];
    let mut keys = BTreeSet::new();
    for part in ["state", "timeline"] {
        for e in room[part]["events"].as_array().into_iter().flatten() {
            if e["type"].as_str() == Some("m.room.member") {
                if let Some(k) = e["state_key"].as_str() {
                    keys.insert(k.to_string());
                }
            }
        }
    }
    keys.len()
}

// ---------------------------------------------------------------------------------------------------

pub struct BigSyncResult {
    pub rooms: usize,
    pub members: usize,
    pub setup_secs: f64,
    pub joins_per_s: f64,
    pub full_first_ms: f64,
    pub full_median_ms: f64,
    pub full_bytes: usize,
    pub lazy_first_ms: f64,
    pub lazy_median_ms: f64,
    pub lazy_bytes: usize,
    /// Members of one room that the lazy-loading sync listed.
    pub lazy_members: usize,
    pub retries: usize,
}

/// A user in `rooms` rooms of `members` members each (the user creates the rooms, `members - 1`
/// other users join every one of them); then the initial `GET /sync?timeout=0`, `reps` times
/// without a filter (full) and `reps` times with `LAZY_FILTER`.
pub async fn big_sync(
    api: &Api,
    names: &Names,
    password: Option<&str>,
    rooms: usize,
    members: usize,
    reps: usize,
    conc: usize,
) -> Res<BigSyncResult> {
    if rooms == 0 || members == 0 {
        bail!("need at least one room and one member");
    }
    let retries = AtomicUsize::new(0);
    let setup = Instant::now();
    let users = register_users(api, names, "bs", members, password, conc, &retries).await?;
    let u = &users[0];
    let (room_ids, _) = create_rooms(api, u, "bs", rooms, conc, &retries).await?;
    // Consecutive joins go to different rooms, so that `conc` rooms grow at once.
    let joins_per_s = join_all(api, "bs", rooms * (members - 1), conc, &retries, |k| {
        (users[1 + k / rooms].clone(), room_ids[k % rooms].clone())
    })
    .await?;
    let setup_secs = setup.elapsed().as_secs_f64();
    eprintln!(
        "[versus]   {rooms} rooms × {members} members built in {setup_secs:.1} s; initial syncs"
    );

    let measure = |filter: Option<&'static str>| {
        let (api, u) = (api.clone(), u.clone());
        let room0 = room_ids[0].clone();
        async move {
            let mut times = Vec::with_capacity(reps);
            let (mut bytes, mut listed) = (0, 0);
            for _ in 0..reps.max(1) {
                let t = Instant::now();
                let (v, len) = api.sync_filtered(&u, None, 0, filter).await?;
                times.push(ms(t.elapsed()));
                bytes = len;
                let joined = v["rooms"]["join"].as_object().map_or(0, |m| m.len());
                if joined != rooms {
                    bail!("the initial sync lists {joined} joined rooms, expected {rooms}");
                }
                listed = members_in_sync(&v, &room0);
                if filter.is_none() && listed != members {
                    bail!("the full initial sync lists {listed} members of a room of {members}");
                }
            }
            Res::Ok((times, bytes, listed))
        }
    };
    let (full, full_bytes, _) = measure(None).await?;
    let (lazy, lazy_bytes, lazy_members) = measure(Some(LAZY_FILTER)).await?;
    Ok(BigSyncResult {
        rooms,
        members,
        setup_secs,
        joins_per_s,
        full_first_ms: full[0],
        full_median_ms: median(&full),
        full_bytes,
        lazy_first_ms: lazy[0],
        lazy_median_ms: median(&lazy),
        lazy_bytes,
        lazy_members,
        retries: retries.load(Ordering::Relaxed),
    })
}

// ---------------------------------------------------------------------------------------------------

pub struct SlidingResult {
    pub rooms: usize,
    pub setup_secs: f64,
    pub creations_per_s: f64,
    pub first_ms: f64,
    pub initial_median_ms: f64,
    pub initial_bytes: usize,
    pub incr_median_ms: f64,
    pub incr_p99_ms: f64,
    /// Incremental requests that came back without the message and were issued again (time kept
    /// running).
    pub early: usize,
    pub retries: usize,
}

/// The sliding sync request body: one list of the 20 most recent rooms.
pub fn sliding_body() -> Value {
    json!({
        "lists": {
            "all": {
                "ranges": [[0, 19]],
                "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
                "timeline_limit": 1,
            }
        }
    })
}

/// A user who created `rooms` rooms; then `reps` first sliding sync requests (without `pos`), and
/// `reps` times: a new message in the room at the bottom of the list, then the request with the
/// last `pos`, which must carry it.
pub async fn sliding(
    api: &Api,
    names: &Names,
    password: Option<&str>,
    rooms: usize,
    reps: usize,
    conc: usize,
) -> Res<SlidingResult> {
    if rooms == 0 {
        bail!("need at least one room");
    }
    let retries = AtomicUsize::new(0);
    let setup = Instant::now();
    let u = register_users(api, names, "ss", 1, password, 1, &retries)
        .await?
        .remove(0);
    let (room_ids, creations_per_s) = create_rooms(api, &u, "ss", rooms, conc, &retries).await?;
    let setup_secs = setup.elapsed().as_secs_f64();
    eprintln!("[versus]   {rooms} rooms built in {setup_secs:.1} s; sliding syncs");
    let body = sliding_body();
    let window = rooms.min(20);
    let mut initial = Vec::with_capacity(reps);
    let (mut pos, mut initial_bytes) = (String::new(), 0);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let (v, len) = api.sliding_sync(&u, None, 0, &body).await?;
        initial.push(ms(t.elapsed()));
        initial_bytes = len;
        let count = v["lists"]["all"]["count"].as_u64().unwrap_or(0) as usize;
        let listed = v["rooms"].as_object().map_or(0, |m| m.len());
        if count != rooms || listed != window {
            bail!(
                "the first sliding sync counts {count} rooms and returns {listed}, expected {rooms} and {window}"
            );
        }
        pos = v["pos"].as_str().unwrap_or_default().to_string();
    }
    let mut incr = Vec::with_capacity(reps);
    let mut early = 0;
    for i in 0..reps.max(1) {
        // The rooms created first are at the bottom of the list: the message brings one to the top.
        let room = &room_ids[i % rooms];
        let marker = format!("sliding-{}-{i}", names.tag);
        api.send_text(&u, room, &format!("ss{i}"), &marker).await?;
        let t = Instant::now();
        loop {
            let (v, _) = api.sliding_sync(&u, Some(&pos), 10_000, &body).await?;
            pos = v["pos"].as_str().unwrap_or_default().to_string();
            let got = v["rooms"][room.as_str()]["timeline"]
                .as_array()
                .is_some_and(|evs| {
                    evs.iter()
                        .any(|e| e["content"]["body"].as_str() == Some(marker.as_str()))
                });
            if got {
                break;
            }
            early += 1;
            if t.elapsed() > Duration::from_secs(20) {
                bail!("the incremental sliding sync did not return the new message within 20 s");
            }
        }
        incr.push(ms(t.elapsed()));
    }
    let mut sorted = incr.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(SlidingResult {
        rooms,
        setup_secs,
        creations_per_s,
        first_ms: initial[0],
        initial_median_ms: median(&initial),
        initial_bytes,
        incr_median_ms: median(&incr),
        incr_p99_ms: pct(&sorted, 0.99),
        early,
        retries: retries.load(Ordering::Relaxed),
    })
}

// ---------------------------------------------------------------------------------------------------

pub struct HugeResult {
    pub members: usize,
    pub setup_secs: f64,
    pub joins_per_s: f64,
    /// Resident memory (MiB, summed over the processes) before the setup and once the room is built.
    pub rss_before: Option<f64>,
    pub rss_after: Option<f64>,
    pub sends: usize,
    pub send_p50_ms: f64,
    pub send_p99_ms: f64,
    pub sync_p50_ms: f64,
    pub sync_p99_ms: f64,
    /// Incremental syncs that came back without the message and were issued again.
    pub early: usize,
    pub retries: usize,
}

fn rss_sum(pids: &[u32]) -> Option<f64> {
    pids.iter()
        .try_fold(0.0, |sum, &p| Some(sum + crate::server::rss_mib_of(p)?))
}

/// One room of `members` members (one creates it, the others join); `idle` later, the servers'
/// resident memory; then `sends` times (after 3 unmeasured): the creator sends a message, and
/// another member's incremental `GET /sync?since=…&timeout=0` must carry it (if it does not, the
/// member long-polls again with the clock running).
#[allow(clippy::too_many_arguments)]
pub async fn huge_room(
    api: &Api,
    names: &Names,
    password: Option<&str>,
    pids: &[u32],
    members: usize,
    sends: usize,
    conc: usize,
    idle: Duration,
) -> Res<HugeResult> {
    if members == 0 {
        bail!("need at least one member");
    }
    let retries = AtomicUsize::new(0);
    let rss_before = rss_sum(pids);
    let setup = Instant::now();
    let users = register_users(api, names, "hr", members, password, conc, &retries).await?;
    let (rooms, _) = create_rooms(api, &users[0], "hr", 1, 1, &retries).await?;
    let room = rooms[0].clone();
    let joins_per_s = join_all(api, "hr", members - 1, conc, &retries, |k| {
        (users[1 + k].clone(), room.clone())
    })
    .await?;
    let setup_secs = setup.elapsed().as_secs_f64();
    tokio::time::sleep(idle).await;
    let rss_after = rss_sum(pids);
    eprintln!(
        "[versus]   room of {members} members built in {setup_secs:.1} s; resident memory {} MiB; sends",
        rss_after.map_or("?".into(), |m| format!("{m:.1}"))
    );

    let sender = &users[0];
    let watcher = &users[members.min(2) - 1];
    // The watcher's position (a lazy-loading sync: the room's whole state is not the point).
    let filter = r#"{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":1}}}"#;
    let (v, _) = api.sync_filtered(watcher, None, 0, Some(filter)).await?;
    let mut since = next_batch(&v);
    let warmup = 3;
    let (mut send_lat, mut sync_lat) = (Vec::with_capacity(sends), Vec::with_capacity(sends));
    let mut early = 0;
    for i in 0..(warmup + sends) {
        let marker = format!("huge-{}-{i}", names.tag);
        let t = Instant::now();
        api.send_text(sender, &room, &format!("hr{i}"), &marker)
            .await?;
        let send = ms(t.elapsed());
        let t = Instant::now();
        let mut timeout = 0;
        loop {
            let (v, _) = api.sync(watcher, Some(&since), timeout).await?;
            since = next_batch(&v);
            if timeline_has_body(&v, &room, &marker) {
                break;
            }
            early += 1;
            timeout = 10_000;
            if t.elapsed() > Duration::from_secs(30) {
                bail!("message {i} did not reach the member's /sync within 30 s");
            }
        }
        if i >= warmup {
            send_lat.push(send);
            sync_lat.push(ms(t.elapsed()));
        }
    }
    send_lat.sort_by(f64::total_cmp);
    sync_lat.sort_by(f64::total_cmp);
    Ok(HugeResult {
        members,
        setup_secs,
        joins_per_s,
        rss_before,
        rss_after,
        sends,
        send_p50_ms: pct(&send_lat, 0.5),
        send_p99_ms: pct(&send_lat, 0.99),
        sync_p50_ms: pct(&sync_lat, 0.5),
        sync_p99_ms: pct(&sync_lat, 0.99),
        early,
        retries: retries.load(Ordering::Relaxed),
    })
}
