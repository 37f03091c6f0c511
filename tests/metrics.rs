//! Prometheus metrics (issue 11): the `[metrics] listen` listener serves the exposition text,
//! which parses and counts what happened (requests per route, events persisted, sync waiters);
//! every metric the Grafana dashboard (`contrib/grafana/parvis.json`) queries is served.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{TestServer, enc};
use serde_json::{Value, json};

/// One sample: its name, its labels, its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The exposition text: (metric families with their type, samples). Panics on a line that is
/// not of the format.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels end with }");
                let mut map = BTreeMap::new();
                for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    map.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (name, map)
            }
            None => (series, BTreeMap::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    (types, samples)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .reduce(|a, b| a + b)
}

async fn scrape(base: &str) -> String {
    let res = reqwest::get(format!("{base}/_synapse/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    res.text().await.unwrap()
}

/// The metric names a PromQL expression uses (`parvis_…` and `process_…`).
fn queried_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts_word && (expr[i..].starts_with("parvis_") || expr[i..].starts_with("process_")) {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(expr.len(), |n| i + n);
            out.insert(expr[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Whether a queried name is served: a family itself, or a counter's `_total`, or a histogram's
/// `_bucket`/`_sum`/`_count`.
fn served(types: &BTreeMap<String, String>, name: &str) -> bool {
    if types.contains_key(name) {
        return true;
    }
    let with = |suffix: &str, kind: &str| {
        name.strip_suffix(suffix)
            .is_some_and(|family| types.get(family).is_some_and(|k| k == kind))
    };
    with("_total", "counter")
        || with("_bucket", "histogram")
        || with("_sum", "histogram")
        || with("_count", "histogram")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_parsed_and_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    // Off by default.
    let server = TestServer::start(dir.path()).await;
    assert!(server.server.as_ref().unwrap().metrics_addr.is_none());
    server.stop().await;

    let mut config = common::config(dir.path());
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = TestServer::start_with(config).await;
    let metrics = format!(
        "http://{}",
        server.server.as_ref().unwrap().metrics_addr.unwrap()
    );
    let (_, token) = server.register("alice").await;
    let room = server.create_room(&token, json!({})).await;
    for n in 0..5 {
        server
            .send_text(&token, &room, &format!("t{n}"), "hello")
            .await;
    }
    let since = server
        .get("/_matrix/client/v3/sync?timeout=0", &token)
        .await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();

    // An EDU for a server that does not answer: queued, and its transactions fail.
    let services = common::federation::services(&server);
    let nowhere: ruma::OwnedServerName = "127.0.0.1:1".try_into().unwrap();
    parvis::federation::sender::queue::queue_edu(
        &services,
        &[nowhere],
        json!({ "edu_type": "m.typing", "content": {} }),
    )
    .unwrap();
    common::federation::eventually("a failed transaction is counted", || {
        let metrics = metrics.clone();
        async move {
            let (_, samples) = parse(&scrape(&metrics).await);
            let labels = [("destination", "127.0.0.1:1")];
            let failures = value(&samples, "parvis_federation_send_failures_total", &labels);
            let queued = value(&samples, "parvis_federation_queue_items", &labels);
            (failures >= Some(1.0) && queued == Some(1.0)).then_some(())
        }
    })
    .await;

    // A long-poll waits while the metrics are read.
    let waiting = {
        let (base, token, since) = (server.base.clone(), token.clone(), since.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!(
                    "{base}/_matrix/client/v3/sync?timeout=10000&since={}",
                    enc(&since)
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let text = common::federation::eventually("the sync waits", || {
        let metrics = metrics.clone();
        async move {
            let text = scrape(&metrics).await;
            let (_, samples) = parse(&text);
            (value(&samples, "parvis_sync_waiters", &[("kind", "sync")]) == Some(1.0))
                .then_some(text)
        }
    })
    .await;
    let (types, samples) = parse(&text);
    let persisted = value(
        &samples,
        "parvis_events_persisted_total",
        &[("origin", "local")],
    )
    .unwrap();
    // The room's creation events and the five messages.
    assert!(persisted >= 10.0, "{persisted}");
    let send_route = "/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}";
    let sends = value(
        &samples,
        "parvis_http_requests_total",
        &[("listener", "client"), ("method", "PUT"), ("code", "200")],
    );
    assert!(sends.is_some_and(|n| n >= 5.0), "{sends:?}");
    let routes: BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.name == "parvis_http_requests_total")
        .filter_map(|s| s.labels.get("route").map(String::as_str))
        .collect();
    assert!(
        routes.iter().any(|r| r.contains("/send/")),
        "no send route among {routes:?} (expected like {send_route})"
    );
    // Histograms: the +Inf bucket equals the count.
    let register = [
        ("listener", "client"),
        ("route", "/_matrix/client/v3/register"),
    ];
    let count = value(
        &samples,
        "parvis_http_request_duration_seconds_count",
        &register,
    );
    let mut inf = register.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(
        value(
            &samples,
            "parvis_http_request_duration_seconds_bucket",
            &inf
        ),
        count
    );
    assert!(count.is_some_and(|n| n >= 2.0), "{count:?}");
    assert_eq!(
        types
            .get("parvis_http_request_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert!(value(&samples, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(value(&samples, "process_cpu_seconds_total", &[]).unwrap() > 0.0);
    if !common::on_postgres() {
        assert!(value(&samples, "parvis_rocksdb_memtable_bytes", &[]).unwrap() > 0.0);
    } else {
        assert!(value(&samples, "parvis_postgres_requests_total", &[]).unwrap() > 0.0);
    }
    // The counting engine: the requests so far read, wrote and scanned.
    for name in [
        "parvis_storage_gets_total",
        "parvis_storage_writes_total",
        "parvis_storage_scans_total",
        "parvis_storage_scanned_entries_total",
    ] {
        assert!(value(&samples, name, &[]).unwrap() > 0.0, "{name}");
    }
    assert_eq!(
        types.get("parvis_storage_writes").map(String::as_str),
        Some("counter")
    );
    assert_eq!(value(&samples, "parvis_push_queue_items", &[]), Some(0.0));
    assert_eq!(
        value(
            &samples,
            "parvis_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );

    // The long-poll ends with a new message and stops counting.
    server.send_text(&token, &room, "wake", "wake up").await;
    let answer = waiting.await.unwrap();
    assert!(answer["rooms"]["join"][&room].is_object(), "{answer}");
    let (_, samples) = parse(&scrape(&metrics).await);
    assert_eq!(
        value(&samples, "parvis_sync_waiters", &[("kind", "sync")]),
        Some(0.0)
    );

    // Every metric of the dashboard is served.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contrib/grafana/parvis.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queried.extend(queried_names(target["expr"].as_str().unwrap()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"].as_str() {
            queried.extend(queried_names(query));
        }
    }
    assert!(queried.len() >= 15, "{queried:?}");
    // RocksDB's own figures are not served by the PostgreSQL engine (PostgreSQL has its own).
    let engine_specific = |n: &String| common::on_postgres() && n.starts_with("parvis_rocksdb_");
    let missing: Vec<_> = queried
        .iter()
        .filter(|n| !served(&types, n) && !engine_specific(n))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics that are not served: {missing:?}"
    );
    server.stop().await;
}
