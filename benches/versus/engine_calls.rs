//! Engine calls per request (Parvis only): the counting engine's metrics (`parvis_storage_*_total`,
//! and `parvis_postgres_requests_total` on PostgreSQL) read before and after each kind of request,
//! on an otherwise idle server. A scrape's own calls (it counts the push queue) are measured first
//! and taken off.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::client::{Api, enc, next_batch};
use crate::workloads::{Names, PASSWORD};
use crate::{Res, bail, err};

/// Engine calls (gets, batched gets, write batches, scans) and PostgreSQL round trips, summed.
#[derive(Clone, Copy, Default)]
struct Counts {
    calls: f64,
    round_trips: Option<f64>,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            calls: self.calls - o.calls,
            round_trips: self.round_trips.zip(o.round_trips).map(|(a, b)| a - b),
        }
    }
}

impl std::ops::Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            calls: self.calls + o.calls,
            round_trips: self.round_trips.zip(o.round_trips).map(|(a, b)| a + b),
        }
    }
}

/// Per request: (engine calls, PostgreSQL round trips when on PostgreSQL).
pub type PerRequest = (f64, Option<f64>);

pub struct EngineCallsResult {
    pub send: PerRequest,
    pub state: PerRequest,
    pub initial_sync: PerRequest,
    pub incremental_sync: PerRequest,
}

/// Reads the counters of every process of the server (summed).
struct Scraper {
    http: reqwest::Client,
    urls: Vec<String>,
    /// What one scrape itself costs.
    own: Counts,
}

impl Scraper {
    async fn read(&self) -> Res<Counts> {
        let mut total = Counts {
            calls: 0.0,
            round_trips: None,
        };
        for url in &self.urls {
            let one = self.read_one(url).await?;
            total.calls += one.calls;
            total.round_trips = match (total.round_trips, one.round_trips) {
                (None, r) | (r, None) => r,
                (Some(a), Some(b)) => Some(a + b),
            };
        }
        Ok(total)
    }

    async fn read_one(&self, url: &str) -> Res<Counts> {
        let text = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| err!("GET {url}: {e}"))?
            .text()
            .await?;
        let mut counts = Counts::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.split_once(' ') else {
                continue;
            };
            let value: f64 = value.trim().parse().unwrap_or(0.0);
            match name {
                "parvis_storage_gets_total"
                | "parvis_storage_multi_gets_total"
                | "parvis_storage_writes_total"
                | "parvis_storage_scans_total" => counts.calls += value,
                "parvis_postgres_requests_total" => counts.round_trips = Some(value),
                _ => {}
            }
        }
        if counts.calls == 0.0 {
            bail!("{url} serves no parvis_storage_* counters");
        }
        Ok(counts)
    }

    /// Calls made between `before` and now, less the scrape that reads them.
    async fn since(&self, before: Counts) -> Res<Counts> {
        Ok(self.read().await? - before - self.own)
    }
}

fn per(total: Counts, n: usize) -> PerRequest {
    let n = n.max(1) as f64;
    (total.calls / n, total.round_trips.map(|r| r / n))
}

/// One user in `rooms` rooms of a few messages (and a second member), then: `reps` message sends,
/// `reps` state events, `reps` initial /syncs and `reps` incremental /syncs after one new message.
pub async fn engine_calls(
    api: &Api,
    names: &Names,
    metrics_ports: &[u16],
    rooms: usize,
    reps: usize,
) -> Res<EngineCallsResult> {
    let mut scraper = Scraper {
        http: reqwest::Client::builder().no_proxy().build()?,
        urls: metrics_ports
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}/metrics"))
            .collect(),
        own: Counts::default(),
    };
    let u = api.register(&names.user("calls"), PASSWORD).await?;
    let other = api.register(&names.user("calls_other"), PASSWORD).await?;
    let mut room_ids = Vec::new();
    for r in 0..rooms.max(1) {
        let room = api.create_room(&u, &format!("calls {r}")).await?;
        api.join(&other, &room).await?;
        for m in 0..3 {
            api.send_text(&other, &room, &format!("c{r}-{m}"), "setting up")
                .await?;
        }
        room_ids.push(room);
    }
    let room = room_ids[0].clone();
    // Let background work of the set-up (push counts, receipts, caches) settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut own = Counts::default();
    for _ in 0..5 {
        let before = scraper.read().await?;
        own = scraper.read().await? - before;
    }
    scraper.own = own;

    let before = scraper.read().await?;
    for i in 0..reps {
        api.send_text(&u, &room, &format!("calls-send-{i}"), "counted")
            .await?;
    }
    let send = per(scraper.since(before).await?, reps);

    let before = scraper.read().await?;
    for i in 0..reps {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.topic/",
            enc(&room)
        );
        let body = json!({ "topic": format!("topic {i}") });
        api.call(Method::PUT, &path, Some(&u.token), Some(&body), timeout())
            .await?;
    }
    let state = per(scraper.since(before).await?, reps);

    let before = scraper.read().await?;
    let mut token = String::new();
    for _ in 0..reps {
        token = next_batch(&api.sync(&other, None, 0).await?.0);
    }
    let initial_sync = per(scraper.since(before).await?, reps);

    let mut total = Counts {
        round_trips: own.round_trips.map(|_| 0.0),
        ..Counts::default()
    };
    for i in 0..reps {
        api.send_text(&u, &room, &format!("calls-incr-{i}"), "counted")
            .await?;
        let before = scraper.read().await?;
        token = next_batch(&api.sync(&other, Some(&token), 0).await?.0);
        total = total + scraper.since(before).await?;
    }
    let incremental_sync = per(total, reps);
    Ok(EngineCallsResult {
        send,
        state,
        initial_sync,
        incremental_sync,
    })
}

fn timeout() -> Duration {
    Duration::from_secs(60)
}
