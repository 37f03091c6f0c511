//! Prometheus metrics: what the server counts as it works (requests and their latency per route,
//! events persisted, federation send failures, /sync long-polls waiting) and what is read at
//! each scrape (queue depths, RocksDB's memory and compactions, the process's memory and CPU).
//! Served in the text exposition format on `[metrics] listen` (`api/metrics.rs`); every name is
//! listed in `spec/metrics.md`.

pub mod process;
pub mod snapshot;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use serde::Deserialize;

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the metrics listener (`GET /_synapse/metrics` and `GET /metrics`); unset: off.
    /// Plain HTTP without authentication: keep it on a private address.
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `client` or `federation`.
    pub listener: &'static str,
    /// The route's template (`/_matrix/client/v3/rooms/{room_id}/send/...`), or `unmatched`.
    pub route: String,
    pub method: String,
    pub code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub listener: &'static str,
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginLabels {
    /// `local` (sent by a user of this server) or `remote` (received over federation).
    pub origin: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabels {
    pub destination: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// `sync` (`/v3/sync`) or `sliding` (`/unstable/org.matrix.simplified_msc3575/sync`).
    pub kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request latency buckets, in seconds: 0.5 ms to about 65 s.
fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 18,
    ))
}

/// The metrics the server updates as it works. Cheap to update (atomics behind a read lock).
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<RouteLabels>,
    events_persisted: Family<OriginLabels, Counter>,
    federation_send_failures: Family<DestinationLabels, Counter>,
    sync_waiters: Family<SyncLabels, Gauge>,
    started: std::time::SystemTime,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            events_persisted: Family::default(),
            federation_send_failures: Family::default(),
            sync_waiters: Family::default(),
            started: std::time::SystemTime::now(),
        }
    }
}

/// Counts a long-poll as waiting until dropped.
pub struct Waiting(Gauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn request(
        &self,
        listener: &'static str,
        route: &str,
        method: &str,
        code: u16,
        seconds: f64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                listener,
                route: route.to_owned(),
                method: method.to_owned(),
                code,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels {
                listener,
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    pub fn event_persisted(&self, local: bool) {
        let origin = if local { "local" } else { "remote" };
        self.events_persisted
            .get_or_create(&OriginLabels { origin })
            .inc();
    }

    pub fn federation_send_failed(&self, destination: &str) {
        self.federation_send_failures
            .get_or_create(&DestinationLabels {
                destination: destination.to_owned(),
            })
            .inc();
    }

    /// A /sync long-poll starts; it counts until the returned guard is dropped.
    pub fn sync_waiting(&self, kind: &'static str) -> Waiting {
        let gauge = self
            .sync_waiters
            .get_or_create(&SyncLabels { kind })
            .clone();
        gauge.inc();
        Waiting(gauge)
    }

    pub fn started(&self) -> std::time::SystemTime {
        self.started
    }

    /// Registers the metrics updated as the server works.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "parvis_http_requests",
            "HTTP requests answered, per listener, route template, method and status code",
            self.requests.clone(),
        );
        registry.register(
            "parvis_http_request_duration_seconds",
            "Time from a request's arrival to its answer's headers, per listener and route",
            self.request_seconds.clone(),
        );
        registry.register(
            "parvis_events_persisted",
            "Events persisted to rooms, sent by local users or received from other servers",
            self.events_persisted.clone(),
        );
        registry.register(
            "parvis_federation_send_failures",
            "Federation transactions that failed (and will be retried), per destination",
            self.federation_send_failures.clone(),
        );
        registry.register(
            "parvis_sync_waiters",
            "Sync requests in progress (long-polls waiting for news included)",
            self.sync_waiters.clone(),
        );
    }
}

/// The exposition text of every metric (blocking: the snapshot reads the database).
pub fn render(s: &super::Services) -> crate::error::Result<String> {
    let mut registry = Registry::default();
    s.metrics.register(&mut registry);
    registry.register_collector(Box::new(snapshot::Snapshot::take(s)?));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .map_err(|e| crate::error::Error::internal(format!("encoding metrics: {e}")))?;
    Ok(out)
}
