//! Figures read at each scrape: queue depths (federation per destination, application services,
//! push), RocksDB's memory and compactions, the process, the build. Taken on the blocking pool.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use super::process::ProcessStats;
use crate::{error::Result, services::Services, storage::engine::StorageStat};

/// Push queue entries counted at most (a scrape's work stays bounded).
const MAX_COUNTED: u64 = 1_000_000;

#[derive(Debug)]
pub struct Snapshot {
    federation_queue: Vec<(String, u64)>,
    appservice_queue: Vec<(String, u64)>,
    push_queue: u64,
    storage: Vec<StorageStat>,
    process: Option<ProcessStats>,
    start_time: f64,
}

impl Snapshot {
    pub fn take(s: &Services) -> Result<Self> {
        Ok(Self {
            federation_queue: s
                .federation
                .sender
                .depth_per_destination()?
                .into_iter()
                .map(|(d, n)| (d.to_string(), n))
                .collect(),
            appservice_queue: s.appservices.queued_counts(),
            push_queue: crate::services::push::queue::count(s, MAX_COUNTED)?,
            storage: s.globals.db.stats(),
            process: ProcessStats::read(),
            start_time: s
                .metrics
                .started()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
        })
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

fn gauge_per(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(String, u64)],
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (key, value) in values {
        let labels = [(label, key.as_str())];
        ConstGauge::new(*value as i64).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut encoder;
        gauge_per(
            e,
            "parvis_federation_queue_items",
            "PDUs and EDUs queued for a destination, not acknowledged yet",
            "destination",
            &self.federation_queue,
        )?;
        gauge_per(
            e,
            "parvis_appservice_queue_items",
            "Events queued for an application service, not acknowledged yet",
            "appservice",
            &self.appservice_queue,
        )?;
        gauge(
            e,
            "parvis_push_queue_items",
            "Notifications waiting to be sent to push gateways",
            self.push_queue as i64,
        )?;
        for stat in &self.storage {
            if stat.counter {
                counter(e, stat.name, stat.help, stat.value)?;
            } else {
                gauge(e, stat.name, stat.help, stat.value as i64)?;
            }
        }
        if let Some(p) = &self.process {
            gauge(
                e,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.resident_bytes as i64,
            )?;
            gauge(
                e,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                p.virtual_bytes as i64,
            )?;
            let metric = e.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(p.cpu_seconds).encode(metric)?;
            gauge(
                e,
                "process_open_fds",
                "Number of open file descriptors",
                p.open_fds as i64,
            )?;
            gauge(
                e,
                "process_threads",
                "Number of OS threads",
                p.threads as i64,
            )?;
        }
        let metric = e.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.start_time).encode(metric)?;
        let mut metric = e.encode_descriptor(
            "parvis_build_info",
            "The running version (always 1)",
            None,
            MetricType::Gauge,
        )?;
        let labels = [("version", env!("CARGO_PKG_VERSION"))];
        ConstGauge::new(1i64).encode(metric.encode_family(&labels)?)
    }
}
