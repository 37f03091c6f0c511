//! The workloads. Each one sets up its own users and rooms (untimed), then measures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use tokio::sync::Barrier;

use crate::client::{Api, User, next_batch, timeline_has_body};
use crate::{Res, bail, err};

/// Nearest-rank percentile of an ascending slice.
pub fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    pct(&s, 0.5)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A per-run prefix for user names, so runs never collide.
pub struct Names {
    pub tag: String,
}

impl Names {
    pub fn user(&self, what: &str) -> String {
        format!("{}_{what}", self.tag)
    }
}

pub const PASSWORD: &str = "versus-bench-password-1";

/// Runs `f(i)` for `i in 0..n` with at most `limit` in flight; fails on the first error.
pub async fn limited<T, F, Fut>(n: usize, limit: usize, f: F) -> Res<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Res<T>>,
{
    let results: Vec<(usize, Res<T>)> = stream::iter(0..n)
        .map(|i| {
            let fut = f(i);
            async move { (i, fut.await) }
        })
        .buffer_unordered(limit.max(1))
        .collect()
        .await;
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for (i, r) in results {
        out[i] = Some(r?);
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every index ran"))
        .collect())
}

pub async fn register_many(api: &Api, names: &Names, prefix: &str, n: usize) -> Res<Vec<User>> {
    limited(n, 4, |i| {
        let api = api.clone();
        let name = names.user(&format!("{prefix}{i:03}"));
        async move { api.register(&name, PASSWORD).await }
    })
    .await
}

// ---------------------------------------------------------------------------------------------------

pub struct SeqResult {
    pub n: usize,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One user, one room, `n` sends one after another (after `warmup` unmeasured ones).
pub async fn sequential(api: &Api, names: &Names, n: usize, warmup: usize) -> Res<SeqResult> {
    let u = api.register(&names.user("seq"), PASSWORD).await?;
    let room = api.create_room(&u, "sequential").await?;
    for i in 0..warmup {
        api.send_text(&u, &room, &format!("seqw{i}"), &format!("warm-up {i}"))
            .await?;
    }
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        api.send_text(
            &u,
            &room,
            &format!("seq{i}"),
            &format!("sequential message {i}"),
        )
        .await?;
        lat.push(ms(t.elapsed()));
    }
    let total = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(SeqResult {
        n,
        per_sec: n as f64 / total,
        p50_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
    })
}

// ---------------------------------------------------------------------------------------------------

pub struct FloodResult {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Login attempts answered during the measurement: 403 (verified), 429 (refused), other.
    pub logins: (usize, usize, usize),
}

/// `flooders` tasks send wrong-password logins for one account in a loop while one other user
/// sends `n` messages one after another: the latency of those sends (compare with `sequential`).
pub async fn sends_during_login_flood(
    api: &Api,
    names: &Names,
    n: usize,
    flooders: usize,
) -> Res<FloodResult> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let victim = api.register(&names.user("floodvictim"), PASSWORD).await?;
    let u = api.register(&names.user("floodsender"), PASSWORD).await?;
    let room = api.create_room(&u, "flood").await?;
    api.send_text(&u, &room, "floodw", "warm-up").await?;
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ]);
    let body = serde_json::json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": victim.user_id },
        "password": "wrong password",
    });
    let mut tasks = Vec::new();
    for _ in 0..flooders {
        let (api, stop, counts, body) = (api.clone(), stop.clone(), counts.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let answer = api
                    .call_raw(
                        reqwest::Method::POST,
                        "/_matrix/client/v3/login",
                        None,
                        Some(&body),
                        Duration::from_secs(30),
                    )
                    .await;
                let slot = match answer.map(|a| a.0.as_u16()) {
                    Ok(403) => 0,
                    Ok(429) => 1,
                    _ => 2,
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // The flood fills the server's queues first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let mut lat = Vec::with_capacity(n);
    let mut failed = None;
    for i in 0..n {
        let t = Instant::now();
        if let Err(e) = api
            .send_text(
                &u,
                &room,
                &format!("flood{i}"),
                &format!("message during a flood {i}"),
            )
            .await
        {
            failed = Some(e);
            break;
        }
        lat.push(ms(t.elapsed()));
    }
    let after: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    lat.sort_by(f64::total_cmp);
    Ok(FloodResult {
        n,
        p50_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
        logins: (
            after[0] - before[0],
            after[1] - before[1],
            after[2] - before[2],
        ),
    })
}

// ---------------------------------------------------------------------------------------------------

pub struct ConcResult {
    pub users: usize,
    pub sent: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub secs: f64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Server CPU time per successful send, in microseconds.
    pub server_cpu_us_per_event: Option<f64>,
    /// Server and load-client CPU use during the run, as a share of one core.
    pub server_cores: Option<f64>,
    pub client_cores: Option<f64>,
    /// From the start until a member's `/notifications` lists the message sent after the last
    /// sender finished: the sends with all the push work they cause (a server that evaluates push
    /// rules after answering the send still has it to do when the senders stop).
    pub notified_secs: Option<f64>,
    /// Server CPU time per send until then, in microseconds.
    pub server_cpu_us_notified: Option<f64>,
}

/// `users` users joined to one public room, each sending in a loop for `duration` (or `max_each`
/// messages), all at once.
pub async fn concurrent(
    api: &Api,
    names: &Names,
    server_pid: u32,
    users: usize,
    duration: Duration,
    max_each: usize,
) -> Res<ConcResult> {
    if users == 0 {
        bail!("need at least one concurrent user");
    }
    let us = register_many(api, names, "conc", users).await?;
    let room = api.create_room(&us[0], "concurrent").await?;
    limited(users - 1, 4, |i| {
        let (api, u, room) = (api.clone(), us[i + 1].clone(), room.clone());
        async move { api.join(&u, &room).await }
    })
    .await?;
    // One unmeasured message each: opens the keep-alive connections and warms up.
    limited(users, users, |i| {
        let (api, u, room) = (api.clone(), us[i].clone(), room.clone());
        async move {
            api.send_text(&u, &room, &format!("cw{i}"), "warm-up")
                .await
                .map(|_| ())
        }
    })
    .await?;

    let barrier = Arc::new(Barrier::new(users + 1));
    let mut tasks = Vec::with_capacity(users);
    for (i, u) in us.iter().enumerate() {
        let (api, u, room, barrier) = (api.clone(), u.clone(), room.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let start = Instant::now();
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            let mut k = 0usize;
            while k < max_each && start.elapsed() < duration {
                let t = Instant::now();
                match api
                    .send_text(
                        &u,
                        &room,
                        &format!("c{i}-{k}"),
                        &format!("user {i} message {k}"),
                    )
                    .await
                {
                    Ok(_) => lat.push(ms(t.elapsed())),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e.0);
                        if errors > 100 {
                            break;
                        }
                    }
                }
                k += 1;
            }
            (lat, errors, first_error)
        }));
    }
    let cpu0 = (
        crate::server::cpu_secs(&server_pid.to_string()),
        crate::server::cpu_secs("self"),
    );
    barrier.wait().await;
    let t0 = Instant::now();
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (l, e, fe) = t.await.map_err(|e| err!("sender task: {e}"))?;
        lat.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = (
        crate::server::cpu_secs(&server_pid.to_string()),
        crate::server::cpu_secs("self"),
    );
    // One more message, then wait until another member's notifications list it: every message
    // before it has been through the push rules by then.
    let last = api
        .send_text(&us[0], &room, "c-last", "last message")
        .await?;
    let watcher = &us[users.min(2) - 1];
    let mut notified_secs = None;
    while t0.elapsed() < duration * 30 + Duration::from_secs(60) {
        let v = api
            .call(
                reqwest::Method::GET,
                "/_matrix/client/v3/notifications?limit=1",
                Some(&watcher.token),
                None,
                Duration::from_secs(30),
            )
            .await?;
        if v["notifications"][0]["event"]["event_id"].as_str() == Some(last.as_str()) {
            notified_secs = Some(t0.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu2 = crate::server::cpu_secs(&server_pid.to_string());
    lat.sort_by(f64::total_cmp);
    let sent = lat.len();
    let server_cpu = cpu0.0.zip(cpu1.0).map(|(a, b)| b - a);
    let client_cpu = cpu0.1.zip(cpu1.1).map(|(a, b)| b - a);
    Ok(ConcResult {
        users,
        sent,
        errors,
        first_error,
        secs,
        per_sec: sent as f64 / secs,
        p50_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
        server_cpu_us_per_event: server_cpu
            .filter(|_| sent > 0)
            .map(|c| c * 1e6 / sent as f64),
        server_cores: server_cpu.map(|c| c / secs),
        client_cores: client_cpu.map(|c| c / secs),
        notified_secs: if users > 1 { notified_secs } else { None },
        server_cpu_us_notified: cpu0
            .0
            .zip(cpu2)
            .filter(|_| users > 1 && notified_secs.is_some())
            .map(|(a, b)| (b - a) * 1e6 / (sent + 1) as f64),
    })
}

// ---------------------------------------------------------------------------------------------------

pub struct WakeResult {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Long-polls that returned before the message was there (woken by something else) and were re-issued.
    pub early_wakeups: usize,
}

/// User B long-polls `/sync?since=…&timeout=30000`; user A sends a message. Latency: from just before
/// the send is issued until B holds a sync response with that message (re-polling if B is woken by
/// something else first).
pub async fn wakeup(
    api: &Api,
    names: &Names,
    n: usize,
    warmup: usize,
    settle: Duration,
) -> Res<WakeResult> {
    let a = api.register(&names.user("wake_a"), PASSWORD).await?;
    let b = api.register(&names.user("wake_b"), PASSWORD).await?;
    let room = api.create_room(&a, "wake-up").await?;
    api.join(&b, &room).await?;
    let (v, _) = api.sync(&b, None, 0).await?;
    let mut since = next_batch(&v);
    let mut lat = Vec::with_capacity(n);
    let mut early = 0usize;
    for i in 0..(warmup + n) {
        let marker = format!("wake-{}-{i}", names.tag);
        let poll = |since: String| {
            let (api, b) = (api.clone(), b.clone());
            tokio::spawn(async move { api.sync(&b, Some(&since), 30_000).await })
        };
        // Start the long-poll and give it time to park on the server.
        let mut h = poll(since.clone());
        tokio::time::sleep(settle).await;
        let mut spurious = 0;
        while h.is_finished() {
            let (v, _) = (&mut h).await.map_err(|e| err!("sync task: {e}"))??;
            since = next_batch(&v);
            spurious += 1;
            if spurious > 20 {
                bail!("the long-poll /sync keeps returning at once (since={since})");
            }
            h = poll(since.clone());
            tokio::time::sleep(settle).await;
        }
        let t0 = Instant::now();
        let send = {
            let (api, a, room, marker) = (api.clone(), a.clone(), room.clone(), marker.clone());
            tokio::spawn(
                async move { api.send_text(&a, &room, &format!("wake{i}"), &marker).await },
            )
        };
        let deadline = tokio::time::Instant::from_std(t0 + Duration::from_secs(20));
        let elapsed = loop {
            let (v, _) = tokio::time::timeout_at(deadline, &mut h)
                .await
                .map_err(|_| err!("message {i} did not reach the long-polling user within 20 s"))?
                .map_err(|e| err!("sync task: {e}"))??;
            let got = timeline_has_body(&v, &room, &marker);
            since = next_batch(&v);
            if got {
                break t0.elapsed();
            }
            early += 1;
            h = poll(since.clone());
        };
        send.await.map_err(|e| err!("send task: {e}"))??;
        if i >= warmup {
            lat.push(ms(elapsed));
        }
    }
    lat.sort_by(f64::total_cmp);
    Ok(WakeResult {
        n,
        p50_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
        early_wakeups: early,
    })
}

// ---------------------------------------------------------------------------------------------------

pub struct InitialSyncResult {
    pub rooms: usize,
    pub first_ms: f64,
    pub median_ms: f64,
    pub bytes: usize,
}

/// A user in `rooms` rooms with `msgs` messages each; `GET /sync` without `since`, `reps` times.
pub async fn initial_sync(
    api: &Api,
    names: &Names,
    rooms: usize,
    msgs: usize,
    reps: usize,
) -> Res<InitialSyncResult> {
    let u = api.register(&names.user("isync"), PASSWORD).await?;
    // One after another: one user creating rooms does not do it in parallel.
    limited(rooms, 1, |r| {
        let (api, u) = (api.clone(), u.clone());
        async move {
            let room = api.create_room(&u, &format!("room {r}")).await?;
            for m in 0..msgs {
                api.send_text(
                    &u,
                    &room,
                    &format!("is{r}-{m}"),
                    &format!("message {m} in room {r}"),
                )
                .await?;
            }
            Res::<()>::Ok(())
        }
    })
    .await?;
    let mut times = Vec::with_capacity(reps);
    let mut bytes = 0;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let (v, len) = api.sync(&u, None, 0).await?;
        times.push(ms(t.elapsed()));
        bytes = len;
        let joined = v["rooms"]["join"].as_object().map_or(0, |m| m.len());
        if joined < rooms {
            bail!("the initial sync lists {joined} joined rooms, but the user created {rooms}");
        }
    }
    Ok(InitialSyncResult {
        rooms,
        first_ms: times[0],
        median_ms: median(&times),
        bytes,
    })
}

// ---------------------------------------------------------------------------------------------------

pub struct ThreadListResult {
    pub events: usize,
    pub threads: usize,
    pub median_ms: f64,
    pub p99_ms: f64,
    /// Events sent per second while the room was filled (each notifying the 7 other members).
    pub fill_per_s: f64,
}

/// One room of `events` messages, one in 50 a thread root and the others replies spread over the
/// roots (8 senders at once; the rate is reported); then `GET /rooms/{roomId}/threads?limit=20`, `reps` times:
/// the first page of the thread list, latest activity first.
pub async fn thread_list(
    api: &Api,
    names: &Names,
    events: usize,
    reps: usize,
) -> Res<ThreadListResult> {
    let us = register_many(api, names, "thr", 8).await?;
    let room = api.create_room(&us[0], "threads").await?;
    limited(us.len() - 1, 4, |i| {
        let (api, u, room) = (api.clone(), us[i + 1].clone(), room.clone());
        async move { api.join(&u, &room).await }
    })
    .await?;
    let threads = (events / 50).max(1);
    let fill = Instant::now();
    let roots = limited(threads, 8, |i| {
        let (api, u, room) = (api.clone(), us[i % us.len()].clone(), room.clone());
        async move {
            api.send_text(&u, &room, &format!("root{i}"), &format!("thread {i}"))
                .await
        }
    })
    .await?;
    let replies = events.saturating_sub(threads);
    limited(replies, 8, |k| {
        let (api, u, room) = (api.clone(), us[k % us.len()].clone(), room.clone());
        let root = roots[(k * 7919) % roots.len()].clone();
        async move {
            let body = serde_json::json!({
                "msgtype": "m.text", "body": format!("reply {k}"),
                "m.relates_to": { "rel_type": "m.thread", "event_id": root, "is_falling_back": true },
            });
            let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/reply{k}", crate::client::enc(&room));
            api.call(reqwest::Method::PUT, &path, Some(&u.token), Some(&body), Duration::from_secs(60)).await.map(|_| ())
        }
    })
    .await?;
    let fill_per_s = events as f64 / fill.elapsed().as_secs_f64();
    let path = format!(
        "/_matrix/client/v1/rooms/{}/threads?limit=20",
        crate::client::enc(&room)
    );
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let v = api
            .call(
                reqwest::Method::GET,
                &path,
                Some(&us[0].token),
                None,
                Duration::from_secs(60),
            )
            .await?;
        times.push(ms(t.elapsed()));
        let listed = v["chunk"].as_array().map_or(0, Vec::len);
        if listed != 20.min(threads) {
            bail!(
                "the thread list has {listed} threads, expected {}",
                20.min(threads)
            );
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(ThreadListResult {
        events,
        threads,
        median_ms: median(&times),
        p99_ms: pct(&times, 0.99),
        fill_per_s,
    })
}
