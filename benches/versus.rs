//! `cargo bench --bench versus`: the same workloads against Synapse and Parvis on loopback.
//!
//! See bench/README.md. Options after `--` (or as `VERSUS_*` environment variables), `--help` lists them.

#[path = "versus/big.rs"]
mod big;
#[path = "versus/client.rs"]
mod client;
#[path = "versus/engine_calls.rs"]
mod engine_calls;
#[path = "versus/server.rs"]
mod server;
#[path = "versus/workloads.rs"]
mod workloads;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use client::Api;
use server::{Kind, ServerProc};
use workloads::Names;

// ---------------------------------------------------------------------------------------------------
// Errors

/// A plain error message; anything `Display` converts into it with `?`.
pub struct Error(pub String);

impl<E: std::fmt::Display> From<E> for Error {
    fn from(e: E) -> Self {
        Error(e.to_string())
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Res<T> = Result<T, Error>;

#[macro_export]
macro_rules! err {
    ($($t:tt)*) => { $crate::Error(format!($($t)*)) };
}

#[macro_export]
macro_rules! bail {
    ($($t:tt)*) => { return Err($crate::err!($($t)*)) };
}

// ---------------------------------------------------------------------------------------------------
// Options

const USAGE: &str = "\
usage: cargo bench --bench versus -- [OPTIONS]

Every option can also be given as an environment variable VERSUS_<NAME> (e.g. VERSUS_ONLY=synapse,
VERSUS_SEQ_PARVIS=5000); command-line options win.

  --only parvis|postgres|group|synapse  run one server only (postgres: Parvis on PostgreSQL;
                             group: 2 Parvis processes on one PostgreSQL schema)
  --parvis-bin PATH          Parvis binary (default: the one cargo built for this bench)
  --parvis-env KEY=VALUE     extra environment variable for Parvis (repeatable)
  --postgres URL             PostgreSQL for the columns \"Parvis on PostgreSQL\" and \"Parvis, 2 processes
                             on PostgreSQL\" (default $PARVIS_TEST_PG; bench/run.sh starts a throwaway
                             one); unset: those columns are not run
  --calls-reps N             requests of each kind whose engine calls are counted (default 20; 0 to skip)
  --synapse-venv PATH        virtualenv for Synapse (default $HOME/.cache/parvis-bench-synapse-venv)
  --seq-parvis N             sequential sends against Parvis            (default 2000)
  --seq-synapse N            sequential sends against Synapse           (default 500)
  --seq-warmup N             unmeasured sends before them               (default 20)
  --flood-sends N            sends measured during a login flood        (default 200; 0 to skip)
  --flood-tasks N            tasks sending wrong-password logins        (default 50)
  --conc-users N             concurrent senders                         (default 50)
  --conc-secs S              how long they send                         (default 10)
  --conc-max N               at most this many sends per sender         (default 100000)
  --wake-parvis N            long-poll wake-ups measured on Parvis      (default 200)
  --wake-synapse N           long-poll wake-ups measured on Synapse     (default 50)
  --wake-settle-ms MS        pause between issuing the long-poll and the send (default 50)
  --sync-rooms N             rooms of the initial-sync user             (default 100)
  --sync-msgs N              messages per such room                     (default 3)
  --sync-reps N              initial syncs timed                        (default 5)
  --threads-parvis N         events of the thread-list room on Parvis   (default 100000; 0 to skip)
  --threads-synapse N        events of the thread-list room on Synapse  (default 2000; 0 to skip)
  --threads-reps N           thread lists timed                         (default 20)
  --idle-secs S              idle time before the memory readings       (default 2)
  --workload-timeout S       bound on each workload                     (default 900)
  --out PATH                 Markdown results file (default bench/results.md; 'none' to skip)
  --skip-standard            skip the standard workloads (sequential sends … thread list, memory after
                             the load); start-up and idle memory are still measured: with --big, only
                             the big workloads run

Big workloads (off unless --big; each size 0 skips that workload on that server):
  --big                      run them (VERSUS_BIG=1)
  --big-rooms-parvis N       rooms of the big initial-sync user, Parvis  (default 300)
  --big-rooms-synapse N      the same, Synapse                           (default 120)
  --big-members-parvis N     members of each of those rooms, Parvis      (default 300)
  --big-members-synapse N    the same, Synapse                           (default 120)
  --big-reps N               initial syncs timed, full and lazy each     (default 5)
  --many-rooms-parvis N      rooms of the sliding-sync user, Parvis      (default 5000)
  --many-rooms-synapse N     the same, Synapse                           (default 5000)
  --many-reps N              sliding syncs timed, first and incremental  (default 5)
  --huge-members-parvis N    members of the huge room, Parvis            (default 10000)
  --huge-members-synapse N   the same, Synapse                           (default 5000)
  --huge-sends N             sends (each with a member's /sync) timed    (default 100)
  --big-concurrency N        setup requests in flight at once            (default 16)
  --big-timeout S            bound on each big workload                  (default 3600)
";

struct Opts {
    only: Option<Kind>,
    parvis_bin: PathBuf,
    parvis_env: Vec<(String, String)>,
    postgres: Option<String>,
    calls_reps: usize,
    synapse_venv: PathBuf,
    seq_parvis: usize,
    seq_synapse: usize,
    seq_warmup: usize,
    flood_sends: usize,
    flood_tasks: usize,
    conc_users: usize,
    conc_secs: f64,
    conc_max: usize,
    wake_parvis: usize,
    wake_synapse: usize,
    wake_settle_ms: u64,
    sync_rooms: usize,
    sync_msgs: usize,
    sync_reps: usize,
    threads_parvis: usize,
    threads_synapse: usize,
    threads_reps: usize,
    idle_secs: f64,
    workload_timeout: f64,
    out: Option<PathBuf>,
    skip_standard: bool,
    big: bool,
    big_rooms_parvis: usize,
    big_rooms_synapse: usize,
    big_members_parvis: usize,
    big_members_synapse: usize,
    big_reps: usize,
    many_rooms_parvis: usize,
    many_rooms_synapse: usize,
    many_reps: usize,
    huge_members_parvis: usize,
    huge_members_synapse: usize,
    huge_sends: usize,
    big_concurrency: usize,
    big_timeout: f64,
}

/// Switches: given alone on the command line (`--big`), or with a value (`--big=0`, `VERSUS_BIG=1`).
const SWITCHES: &[&str] = &["big", "skip-standard"];

fn parse_opts() -> Res<Opts> {
    // Gather `name -> value` pairs: environment first, then the command line.
    let mut kv: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in std::env::vars() {
        if let Some(name) = k.strip_prefix("VERSUS_") {
            kv.entry(name.to_ascii_lowercase().replace('_', "-"))
                .or_default()
                .push(v);
        }
    }
    let mut args = std::env::args().skip(1);
    let mut from_cli: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            // cargo bench appends --bench; libtest-style filters are not used.
            "--bench" | "--nocapture" => continue,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            _ => {}
        }
        let Some(name) = a.strip_prefix("--") else {
            bail!("unexpected argument {a:?}\n\n{USAGE}")
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None if SWITCHES.contains(&name) => (name.to_string(), "1".to_string()),
            None => (
                name.to_string(),
                args.next().ok_or_else(|| err!("--{name} needs a value"))?,
            ),
        };
        from_cli.entry(name).or_default().push(value);
    }
    for (k, v) in from_cli {
        kv.insert(k, v);
    }
    let known = [
        "only",
        "parvis-bin",
        "parvis-env",
        "postgres",
        "calls-reps",
        "synapse-venv",
        "seq-parvis",
        "seq-synapse",
        "seq-warmup",
        "flood-sends",
        "flood-tasks",
        "conc-users",
        "conc-secs",
        "conc-max",
        "wake-parvis",
        "wake-synapse",
        "wake-settle-ms",
        "sync-rooms",
        "sync-msgs",
        "sync-reps",
        "threads-parvis",
        "threads-synapse",
        "threads-reps",
        "idle-secs",
        "workload-timeout",
        "out",
        "skip-standard",
        "big",
        "big-rooms-parvis",
        "big-rooms-synapse",
        "big-members-parvis",
        "big-members-synapse",
        "big-reps",
        "many-rooms-parvis",
        "many-rooms-synapse",
        "many-reps",
        "huge-members-parvis",
        "huge-members-synapse",
        "huge-sends",
        "big-concurrency",
        "big-timeout",
    ];
    if let Some(k) = kv.keys().find(|k| !known.contains(&k.as_str())) {
        bail!("unknown option --{k}\n\n{USAGE}");
    }
    let last = |k: &str| kv.get(k).and_then(|v| v.last().cloned());
    fn num<T: std::str::FromStr>(v: Option<String>, k: &str, d: T) -> Res<T> {
        match v {
            None => Ok(d),
            Some(s) => s.parse().map_err(|_| err!("--{k}: cannot parse {s:?}")),
        }
    }
    fn switch(v: Option<String>, k: &str) -> Res<bool> {
        match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("0") | Some("false") | Some("no") | Some("off") => Ok(false),
            Some("1") | Some("true") | Some("yes") | Some("on") => Ok(true),
            Some(s) => bail!("--{k}: expected 1/0, true/false, yes/no or on/off, got {s:?}"),
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let only = match last("only").as_deref() {
        None | Some("") | Some("both") => None,
        Some("parvis") => Some(Kind::Parvis),
        Some("postgres") => Some(Kind::ParvisPg),
        Some("group") => Some(Kind::ParvisGroup),
        Some("synapse") => Some(Kind::Synapse),
        Some(o) => bail!("--only: expected parvis, postgres, group or synapse, got {o:?}"),
    };
    let mut parvis_env = Vec::new();
    for pair in kv.get("parvis-env").into_iter().flatten() {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| err!("--parvis-env: expected KEY=VALUE, got {pair:?}"))?;
        parvis_env.push((k.to_string(), v.to_string()));
    }
    let out = match last("out").as_deref() {
        None => Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/results.md")),
        Some("none") | Some("") => None,
        Some(p) => Some(PathBuf::from(p)),
    };
    Ok(Opts {
        only,
        parvis_bin: last("parvis-bin").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_parvis")),
            PathBuf::from,
        ),
        parvis_env,
        postgres: last("postgres")
            .or_else(|| std::env::var("PARVIS_TEST_PG").ok())
            .filter(|url| !url.is_empty()),
        calls_reps: num(last("calls-reps"), "calls-reps", 20)?,
        synapse_venv: last("synapse-venv").map_or_else(
            || PathBuf::from(&home).join(".cache/parvis-bench-synapse-venv"),
            PathBuf::from,
        ),
        seq_parvis: num(last("seq-parvis"), "seq-parvis", 2000)?,
        seq_synapse: num(last("seq-synapse"), "seq-synapse", 500)?,
        seq_warmup: num(last("seq-warmup"), "seq-warmup", 20)?,
        flood_sends: num(last("flood-sends"), "flood-sends", 200)?,
        flood_tasks: num(last("flood-tasks"), "flood-tasks", 50)?,
        conc_users: num(last("conc-users"), "conc-users", 50)?,
        conc_secs: num(last("conc-secs"), "conc-secs", 10.0)?,
        conc_max: num(last("conc-max"), "conc-max", 100_000)?,
        wake_parvis: num(last("wake-parvis"), "wake-parvis", 200)?,
        wake_synapse: num(last("wake-synapse"), "wake-synapse", 50)?,
        wake_settle_ms: num(last("wake-settle-ms"), "wake-settle-ms", 50)?,
        sync_rooms: num(last("sync-rooms"), "sync-rooms", 100)?,
        sync_msgs: num(last("sync-msgs"), "sync-msgs", 3)?,
        sync_reps: num(last("sync-reps"), "sync-reps", 5)?,
        threads_parvis: num(last("threads-parvis"), "threads-parvis", 100_000)?,
        threads_synapse: num(last("threads-synapse"), "threads-synapse", 2000)?,
        threads_reps: num(last("threads-reps"), "threads-reps", 20)?,
        idle_secs: num(last("idle-secs"), "idle-secs", 2.0)?,
        workload_timeout: num(last("workload-timeout"), "workload-timeout", 900.0)?,
        out,
        skip_standard: switch(last("skip-standard"), "skip-standard")?,
        big: switch(last("big"), "big")?,
        big_rooms_parvis: num(last("big-rooms-parvis"), "big-rooms-parvis", 300)?,
        big_rooms_synapse: num(last("big-rooms-synapse"), "big-rooms-synapse", 120)?,
        big_members_parvis: num(last("big-members-parvis"), "big-members-parvis", 300)?,
        big_members_synapse: num(last("big-members-synapse"), "big-members-synapse", 120)?,
        big_reps: num(last("big-reps"), "big-reps", 5)?,
        many_rooms_parvis: num(last("many-rooms-parvis"), "many-rooms-parvis", 5000)?,
        many_rooms_synapse: num(last("many-rooms-synapse"), "many-rooms-synapse", 5000)?,
        many_reps: num(last("many-reps"), "many-reps", 5)?,
        huge_members_parvis: num(last("huge-members-parvis"), "huge-members-parvis", 10_000)?,
        huge_members_synapse: num(last("huge-members-synapse"), "huge-members-synapse", 5000)?,
        huge_sends: num(last("huge-sends"), "huge-sends", 100)?,
        big_concurrency: num(last("big-concurrency"), "big-concurrency", 16)?,
        big_timeout: num(last("big-timeout"), "big-timeout", 3600.0)?,
    })
}

// ---------------------------------------------------------------------------------------------------
// Figures

#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

struct Fig {
    key: &'static str,
    label: &'static str,
    better: Better,
    decimals: usize,
}

const FIGS: &[Fig] = &[
    Fig {
        key: "startup",
        label: "start → first /versions (ms)",
        better: Better::Lower,
        decimals: 0,
    },
    Fig {
        key: "rss_idle",
        label: "resident memory, idle after start (MiB)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "seq_rate",
        label: "sequential sends (messages/s)",
        better: Better::Higher,
        decimals: 1,
    },
    Fig {
        key: "seq_p50",
        label: "sequential send latency p50 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "seq_p99",
        label: "sequential send latency p99 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "flood_p50",
        label: "send latency during a login flood p50 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "flood_p99",
        label: "send latency during a login flood p99 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "conc_rate",
        label: "concurrent senders, total (events/s)",
        better: Better::Higher,
        decimals: 1,
    },
    Fig {
        key: "conc_p50",
        label: "concurrent send latency p50 (ms)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "conc_p99",
        label: "concurrent send latency p99 (ms)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "conc_cpu",
        label: "server CPU per concurrent send (µs)",
        better: Better::Lower,
        decimals: 0,
    },
    Fig {
        key: "conc_notified_rate",
        label: "concurrent sends with their notifications counted (events/s)",
        better: Better::Higher,
        decimals: 1,
    },
    Fig {
        key: "conc_notified_cpu",
        label: "server CPU per concurrent send, notifications included (µs)",
        better: Better::Lower,
        decimals: 0,
    },
    Fig {
        key: "wake_p50",
        label: "long-poll wake-up latency p50 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "wake_p99",
        label: "long-poll wake-up latency p99 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "isync_first",
        label: "initial sync, N rooms, first (ms)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "isync_median",
        label: "initial sync, N rooms, median (ms)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "threads_fill",
        label: "thread room filled (8 senders, 7 members notified), events/s",
        better: Better::Higher,
        decimals: 0,
    },
    Fig {
        key: "threads_median",
        label: "thread list, first 20 threads of a room of N events, median (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "threads_p99",
        label: "thread list, first 20 threads of a room of N events, p99 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "calls_send",
        label: "engine calls per message send",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "calls_state",
        label: "engine calls per state event",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "calls_isync",
        label: "engine calls per initial /sync (10 rooms)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "calls_incr",
        label: "engine calls per incremental /sync (one new message)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "trips_send",
        label: "PostgreSQL round trips per message send",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "trips_state",
        label: "PostgreSQL round trips per state event",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "trips_isync",
        label: "PostgreSQL round trips per initial /sync (10 rooms)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "trips_incr",
        label: "PostgreSQL round trips per incremental /sync (one new message)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "rss_after",
        label: "resident memory after the load (MiB)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "rss_peak",
        label: "peak resident memory (MiB)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "big_setup_rate",
        label: "{big} built: joins/s ({conc} at once)",
        better: Better::Higher,
        decimals: 1,
    },
    Fig {
        key: "big_full_first",
        label: "initial /sync of a user in {big}, full, first (ms)",
        better: Better::Lower,
        decimals: 0,
    },
    Fig {
        key: "big_full_median",
        label: "initial /sync of a user in {big}, full, median (ms)",
        better: Better::Lower,
        decimals: 0,
    },
    Fig {
        key: "big_full_kib",
        label: "initial /sync of a user in {big}, full, response (KiB)",
        better: Better::Lower,
        decimals: 0,
    },
    Fig {
        key: "big_lazy_first",
        label: "initial /sync of a user in {big}, lazy-loaded members, first (ms)",
        better: Better::Lower,
        decimals: 0,
    },
    Fig {
        key: "big_lazy_median",
        label: "initial /sync of a user in {big}, lazy-loaded members, median (ms)",
        better: Better::Lower,
        decimals: 0,
    },
    Fig {
        key: "big_lazy_kib",
        label: "initial /sync of a user in {big}, lazy-loaded members, response (KiB)",
        better: Better::Lower,
        decimals: 0,
    },
    Fig {
        key: "ss_setup_rate",
        label: "{many} created by one user: rooms/s ({conc} at once)",
        better: Better::Higher,
        decimals: 1,
    },
    Fig {
        key: "ss_first",
        label: "sliding sync of a user in {many}, first request, first (ms)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "ss_initial_median",
        label: "sliding sync of a user in {many}, first request, median (ms)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "ss_incr_median",
        label: "sliding sync of a user in {many}, next request with one new message, median (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "huge_setup_rate",
        label: "room of {huge} built: joins/s ({conc} at once)",
        better: Better::Higher,
        decimals: 1,
    },
    Fig {
        key: "huge_rss",
        label: "resident memory once a room of {huge} is built (MiB)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "huge_rss_growth",
        label: "resident memory growth while building it (MiB)",
        better: Better::Lower,
        decimals: 1,
    },
    Fig {
        key: "huge_send_p50",
        label: "send latency in a room of {huge}, p50 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "huge_send_p99",
        label: "send latency in a room of {huge}, p99 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "huge_sync_p50",
        label: "incremental /sync of a member seeing that message, p50 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Fig {
        key: "huge_sync_p99",
        label: "incremental /sync of a member seeing that message, p99 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
];

#[derive(Default)]
struct Results {
    values: BTreeMap<&'static str, f64>,
    notes: Vec<String>,
}

impl Results {
    fn set(&mut self, key: &'static str, v: f64) {
        debug_assert!(FIGS.iter().any(|f| f.key == key), "unknown figure {key}");
        if v.is_finite() {
            self.values.insert(key, v);
        }
    }
    fn note(&mut self, who: Kind, s: impl Into<String>) {
        let s = s.into();
        eprintln!("[versus] {}: {s}", who.name());
        self.notes.push(format!("{}: {s}", who.name()));
    }
}

/// The size when both servers have the same, else `"{synapse} (Synapse) / {parvis} (Parvis)"`.
fn sizes(synapse: String, parvis: String) -> String {
    if synapse == parvis {
        parvis
    } else {
        format!("{synapse} (Synapse) / {parvis} (Parvis)")
    }
}

/// The sizes of the big workload that a figure comes from, for Synapse and Parvis (`None` for the
/// other figures).
fn big_sizes(key: &str, o: &Opts) -> Option<((usize, usize), (usize, usize))> {
    if key.starts_with("big_") {
        Some((
            (o.big_rooms_synapse, o.big_members_synapse),
            (o.big_rooms_parvis, o.big_members_parvis),
        ))
    } else if key.starts_with("ss_") {
        Some(((o.many_rooms_synapse, 0), (o.many_rooms_parvis, 0)))
    } else if key.starts_with("huge_") {
        Some(((o.huge_members_synapse, 0), (o.huge_members_parvis, 0)))
    } else {
        None
    }
}

fn label(f: &Fig, o: &Opts) -> String {
    f.label
        .replace(
            "{big}",
            &if (o.big_rooms_synapse, o.big_members_synapse)
                == (o.big_rooms_parvis, o.big_members_parvis)
            {
                format!(
                    "{} rooms × {} members",
                    o.big_rooms_parvis, o.big_members_parvis
                )
            } else {
                let s = format!("{} × {}", o.big_rooms_synapse, o.big_members_synapse);
                let p = format!("{} × {}", o.big_rooms_parvis, o.big_members_parvis);
                format!("{} rooms × members", sizes(s, p))
            },
        )
        .replace(
            "{many}",
            &format!(
                "{} rooms",
                sizes(
                    o.many_rooms_synapse.to_string(),
                    o.many_rooms_parvis.to_string()
                )
            ),
        )
        .replace(
            "{huge}",
            &format!(
                "{} members",
                sizes(
                    o.huge_members_synapse.to_string(),
                    o.huge_members_parvis.to_string()
                )
            ),
        )
        .replace("{conc}", &o.big_concurrency.to_string())
        .replace("N rooms", &format!("{} rooms", o.sync_rooms))
        .replace(
            "N events",
            &format!(
                "{} (Synapse) / {} (Parvis) events",
                o.threads_synapse, o.threads_parvis
            ),
        )
        .replace(
            "concurrent senders,",
            &format!("{} concurrent senders,", o.conc_users),
        )
}

fn ratio(f: &Fig, s: Option<f64>, p: Option<f64>) -> Option<f64> {
    let (s, p) = (s?, p?);
    let r = match f.better {
        Better::Higher => p / s,
        Better::Lower => s / p,
    };
    r.is_finite().then_some(r)
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        None => "—".into(),
        Some(r) if r >= 100.0 => format!("{r:.0}×"),
        Some(r) if r >= 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.2}×"),
    }
}

fn fmt_val(f: &Fig, v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.*}", f.decimals))
}

fn rows(
    o: &Opts,
    s: &Results,
    p: &Results,
    pg: &Results,
    group: &Results,
) -> Vec<[String; COLUMNS]> {
    FIGS.iter()
        .filter(|f| {
            [s, p, pg, group]
                .iter()
                .any(|r| r.values.contains_key(f.key))
        })
        .map(|f| {
            let (sv, pv, pgv, gv) = (
                s.values.get(f.key).copied(),
                p.values.get(f.key).copied(),
                pg.values.get(f.key).copied(),
                group.values.get(f.key).copied(),
            );
            [
                label(f, o),
                fmt_val(f, sv),
                fmt_val(f, pv),
                fmt_val(f, pgv),
                fmt_val(f, gv),
                // Figures of the big workloads compare only at the same sizes.
                fmt_ratio(
                    ratio(f, sv, pv).filter(|_| big_sizes(f.key, o).is_none_or(|(s, p)| s == p)),
                ),
            ]
        })
        .collect()
}

const COLUMNS: usize = 6;
const HEADER: [&str; COLUMNS] = [
    "figure",
    "Synapse",
    "Parvis",
    "Parvis on PostgreSQL",
    "Parvis, 2 processes on PostgreSQL",
    "Parvis vs Synapse",
];
const RATIO_NOTE: &str = "Ratio: Parvis (on RocksDB) relative to Synapse, oriented so that > 1 means Parvis is better (more throughput, \
     or less time or memory); < 1 means Synapse is better.";

fn text_table(rows: &[[String; COLUMNS]]) -> String {
    let mut w = HEADER.map(|h| h.chars().count());
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let pad = |s: &str, n: usize, right: bool| {
        let fill = " ".repeat(n - s.chars().count());
        if right {
            format!("{fill}{s}")
        } else {
            format!("{s}{fill}")
        }
    };
    let mut out = String::new();
    let line = |cells: [&str; COLUMNS]| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| pad(c, w[i], i > 0))
            .collect();
        format!("{}\n", padded.join("  "))
    };
    out += &line(HEADER);
    out += &format!(
        "{}\n",
        "-".repeat(w.iter().sum::<usize>() + 2 * (COLUMNS - 1))
    );
    for r in rows {
        out += &line(r.each_ref().map(String::as_str));
    }
    out
}

fn markdown_table(rows: &[[String; COLUMNS]]) -> String {
    let mut out = format!(
        "| {} |\n|---|{}\n",
        HEADER.join(" | "),
        "---:|".repeat(COLUMNS - 1)
    );
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// Machine information

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn machine_info() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, v)| v.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or("? GiB".into(), |k| {
            format!("{:.1} GiB", k / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} CPUs available, {mem} RAM, Linux {}",
        kernel.trim()
    )
}

/// The 1-minute load average: anything well above 0 means the machine was not idle.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// `postgres --version` of the cluster's binaries (Debian's `pg_config` or `psql`).
fn postgres_version() -> Option<String> {
    let out = std::process::Command::new("psql")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace().nth(2).map(str::to_owned)
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------------------------------------------
// Running one server

async fn wait_ready(api: &Api, proc: &mut ServerProc, t0: Instant) -> Res<Duration> {
    let limit = Duration::from_secs(120);
    loop {
        if api.versions_ok().await {
            return Ok(t0.elapsed());
        }
        if let Some(status) = proc.exit_status() {
            bail!(
                "exited during start-up ({status}); log:\n{}",
                proc.log_tail(40)
            );
        }
        if t0.elapsed() > limit {
            bail!(
                "no answer to /versions within {limit:?}; log:\n{}",
                proc.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn bounded<T>(
    limit_secs: f64,
    what: &str,
    fut: impl std::future::Future<Output = Res<T>>,
) -> Res<T> {
    let limit = Duration::from_secs_f64(limit_secs);
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(|e| err!("{what}: {}", e.0)),
        Err(_) => bail!("{what}: not finished within {limit:?}"),
    }
}

async fn bench_server(kind: Kind, o: &Opts, synapse_venv_ok: bool) -> Results {
    let mut res = Results::default();
    let no_postgres = "not run: no PostgreSQL (--postgres URL, or bench/run.sh, which starts one)";
    let prepared = match kind {
        Kind::Synapse if !synapse_venv_ok => {
            res.note(kind, "not run: Synapse could not be installed");
            return res;
        }
        Kind::Synapse => server::prepare_synapse(&o.synapse_venv).map(|p| vec![p]),
        Kind::Parvis => server::prepare_parvis(&o.parvis_bin, &o.parvis_env, None).map(|p| vec![p]),
        Kind::ParvisPg => match &o.postgres {
            Some(url) => {
                server::prepare_parvis(&o.parvis_bin, &o.parvis_env, Some(url)).map(|p| vec![p])
            }
            None => {
                res.note(kind, no_postgres);
                return res;
            }
        },
        Kind::ParvisGroup => match &o.postgres {
            Some(url) => server::prepare_parvis_group(&o.parvis_bin, &o.parvis_env, url)
                .map(|p| p.into_iter().collect()),
            None => {
                res.note(kind, no_postgres);
                return res;
            }
        },
    };
    let prepared: Vec<server::Prepared> = match prepared {
        Ok(p) => p,
        Err(e) => {
            res.note(kind, format!("not run: {}", e.0));
            return res;
        }
    };
    let bases: Vec<String> = prepared.iter().map(server::Prepared::base_url).collect();
    let api = match Api::new_many(bases.clone()) {
        Ok(a) => a,
        Err(e) => {
            res.note(kind, format!("HTTP client: {}", e.0));
            return res;
        }
    };
    eprintln!("[versus] {}: starting on {}", kind.name(), bases.join(", "));
    let metrics_ports: Vec<u16> = prepared.iter().filter_map(|p| p.metrics_port).collect();
    let t0 = Instant::now();
    let mut procs = Vec::new();
    for p in prepared {
        match p.spawn() {
            Ok(p) => procs.push(p),
            Err(e) => {
                res.note(kind, e.0);
                return res;
            }
        }
    }
    // Ready when every process answers (the start-up figure: the last of them).
    for (proc, base) in procs.iter_mut().zip(&bases) {
        let one = match Api::new(base.clone()) {
            Ok(a) => a,
            Err(e) => {
                res.note(kind, format!("HTTP client: {}", e.0));
                return res;
            }
        };
        match wait_ready(&one, proc, t0).await {
            Ok(d) => res.set("startup", d.as_secs_f64() * 1000.0),
            Err(e) => {
                res.note(kind, format!("start-up failed: {}", e.0));
                return res;
            }
        }
    }
    let (proc, others) = procs.split_first_mut().expect("one process at least");
    // Resident memory of all the processes.
    let rss = |proc: &server::ServerProc, others: &[server::ServerProc], peak: bool| {
        let one = |p: &server::ServerProc| if peak { p.peak_rss_mib() } else { p.rss_mib() };
        others
            .iter()
            .try_fold(one(proc)?, |sum, p| Some(sum + one(p)?))
    };
    tokio::time::sleep(Duration::from_secs_f64(o.idle_secs)).await;
    if let Some(m) = rss(proc, others, false) {
        res.set("rss_idle", m);
    }

    let names = Names {
        tag: format!(
            "v{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ),
    };
    let (seq_n, wake_n) = match kind {
        Kind::Synapse => (o.seq_synapse, o.wake_synapse),
        Kind::Parvis | Kind::ParvisPg | Kind::ParvisGroup => (o.seq_parvis, o.wake_parvis),
    };

    // Each workload: run it, record its figures or the error, and stop if the server has died.
    macro_rules! workload {
        ($name:expr, $fut:expr, |$r:ident| $record:block) => {
            workload!(o.workload_timeout; $name, $fut, |$r| $record)
        };
        ($limit:expr; $name:expr, $fut:expr, |$r:ident| $record:block) => {{
            eprintln!("[versus] {}: {}", kind.name(), $name);
            let t = Instant::now();
            match bounded($limit, $name, $fut).await {
                Ok($r) => {
                    $record;
                    eprintln!(
                        "[versus] {}: {} done in {:.1} s",
                        kind.name(),
                        $name,
                        t.elapsed().as_secs_f64()
                    );
                }
                Err(e) => res.note(kind, e.0),
            }
            if let Some(status) = proc.exit_status() {
                res.note(
                    kind,
                    format!("server exited ({status}); log:\n{}", proc.log_tail(40)),
                );
                return res;
            }
        }};
    }

    // `--skip-standard`: only the start-up, the idle memory and (with `--big`) the big workloads.
    let standard = !o.skip_standard;
    if standard && seq_n > 0 {
        workload!(
            "sequential sends",
            workloads::sequential(&api, &names, seq_n, o.seq_warmup),
            |r| {
                res.set("seq_rate", r.per_sec);
                res.set("seq_p50", r.p50_ms);
                res.set("seq_p99", r.p99_ms);
                eprintln!(
                    "[versus]   {} sends: {:.1}/s, p50 {:.2} ms, p99 {:.2} ms",
                    r.n, r.per_sec, r.p50_ms, r.p99_ms
                );
            }
        );
    }
    if standard && o.flood_sends > 0 {
        workload!(
            "sends during a login flood",
            workloads::sends_during_login_flood(&api, &names, o.flood_sends, o.flood_tasks),
            |r| {
                res.set("flood_p50", r.p50_ms);
                res.set("flood_p99", r.p99_ms);
                let (verified, refused, other) = r.logins;
                eprintln!(
                    "[versus]   {} sends: p50 {:.2} ms, p99 {:.2} ms; logins meanwhile: {verified} verified (403), {refused} refused (429), {other} other",
                    r.n, r.p50_ms, r.p99_ms
                );
                res.notes.push(format!(
                    "{}: login flood ({} tasks): during {} sends, {verified} wrong-password logins answered 403, {refused} answered 429, {other} other",
                    kind.name(),
                    o.flood_tasks,
                    r.n
                ));
            }
        );
    }
    if standard && o.conc_users > 0 && o.conc_secs > 0.0 {
        let dur = Duration::from_secs_f64(o.conc_secs);
        workload!(
            "concurrent senders",
            workloads::concurrent(&api, &names, proc.pid, o.conc_users, dur, o.conc_max),
            |r| {
                res.set("conc_rate", r.per_sec);
                res.set("conc_p50", r.p50_ms);
                res.set("conc_p99", r.p99_ms);
                if let Some(c) = r.server_cpu_us_per_event {
                    res.set("conc_cpu", c);
                }
                if let Some(t) = r.notified_secs {
                    res.set("conc_notified_rate", (r.sent + 1) as f64 / t);
                    eprintln!("[versus]   every notification counted {t:.1} s after the start");
                }
                if let Some(c) = r.server_cpu_us_notified {
                    res.set("conc_notified_cpu", c);
                }
                let cores = |c: Option<f64>| c.map_or("?".into(), |c| format!("{c:.2}"));
                eprintln!(
                    "[versus]   {} users: {} sent in {:.1} s = {:.1}/s; CPU cores used: server {}, load client {}",
                    r.users,
                    r.sent,
                    r.secs,
                    r.per_sec,
                    cores(r.server_cores),
                    cores(r.client_cores)
                );
                res.notes.push(format!(
                    "{}: concurrent senders: {} sends in {:.1} s; CPU cores busy: server {}, load client {}",
                    kind.name(),
                    r.sent,
                    r.secs,
                    cores(r.server_cores),
                    cores(r.client_cores)
                ));
                if r.errors > 0 {
                    res.note(
                        kind,
                        format!(
                            "concurrent senders: {} failed sends, first: {}",
                            r.errors,
                            r.first_error.unwrap_or_default()
                        ),
                    );
                }
            }
        );
    }
    if standard && wake_n > 0 {
        let settle = Duration::from_millis(o.wake_settle_ms);
        workload!(
            "long-poll wake-up",
            workloads::wakeup(&api, &names, wake_n, 3, settle),
            |r| {
                res.set("wake_p50", r.p50_ms);
                res.set("wake_p99", r.p99_ms);
                eprintln!(
                    "[versus]   {} wake-ups: p50 {:.2} ms, p99 {:.2} ms",
                    r.n, r.p50_ms, r.p99_ms
                );
                if r.early_wakeups > 0 {
                    res.note(
                    kind,
                    format!("long-poll: {} early returns without the message (re-polled, time kept running)", r.early_wakeups),
                );
                }
            }
        );
    }
    if standard && !metrics_ports.is_empty() && o.calls_reps > 0 {
        workload!(
            "engine calls per request",
            engine_calls::engine_calls(&api, &names, &metrics_ports, 10, o.calls_reps),
            |r| {
                for (fig, trips, (calls, round_trips)) in [
                    ("calls_send", "trips_send", r.send),
                    ("calls_state", "trips_state", r.state),
                    ("calls_isync", "trips_isync", r.initial_sync),
                    ("calls_incr", "trips_incr", r.incremental_sync),
                ] {
                    res.set(fig, calls);
                    if let Some(t) = round_trips {
                        res.set(trips, t);
                    }
                }
                eprintln!(
                    "[versus]   engine calls: send {:.1}, state {:.1}, initial sync {:.1}, incremental sync {:.1}",
                    r.send.0, r.state.0, r.initial_sync.0, r.incremental_sync.0
                );
            }
        );
    }
    if standard && o.sync_rooms > 0 {
        workload!(
            "initial sync",
            workloads::initial_sync(&api, &names, o.sync_rooms, o.sync_msgs, o.sync_reps),
            |r| {
                res.set("isync_first", r.first_ms);
                res.set("isync_median", r.median_ms);
                eprintln!(
                    "[versus]   {} rooms: first {:.1} ms, median {:.1} ms, {} KiB",
                    r.rooms,
                    r.first_ms,
                    r.median_ms,
                    r.bytes / 1024
                );
                res.notes.push(format!(
                    "{}: initial sync response: {} KiB",
                    kind.name(),
                    r.bytes / 1024
                ));
            }
        );
    }

    let thread_events = match kind {
        Kind::Parvis | Kind::ParvisPg | Kind::ParvisGroup => o.threads_parvis,
        Kind::Synapse => o.threads_synapse,
    };
    if standard && thread_events > 0 {
        workload!(
            "thread list",
            workloads::thread_list(&api, &names, thread_events, o.threads_reps),
            |r| {
                res.set("threads_median", r.median_ms);
                res.set("threads_p99", r.p99_ms);
                res.set("threads_fill", r.fill_per_s);
                eprintln!(
                    "[versus]   {} events, {} threads filled at {:.0} events/s: first page median {:.2} ms, p99 {:.2} ms",
                    r.events, r.threads, r.fill_per_s, r.median_ms, r.p99_ms
                );
            }
        );
    }

    if standard {
        tokio::time::sleep(Duration::from_secs_f64(o.idle_secs)).await;
        if let Some(m) = rss(proc, others, false) {
            res.set("rss_after", m);
        }
        if let Some(m) = rss(proc, others, true) {
            res.set("rss_peak", m);
        }
    }

    // The big workloads, after the readings above so that they do not change them; the huge room
    // first, so that its memory reading carries little of the other two. On Synapse and Parvis on
    // RocksDB; on a PostgreSQL column only when `--only` picks it.
    if o.big && (matches!(kind, Kind::Synapse | Kind::Parvis) || o.only == Some(kind)) {
        let parvis = kind != Kind::Synapse;
        let pick = |p: usize, s: usize| if parvis { p } else { s };
        // Synapse refuses a registration without a password (bcrypt at 4 rounds is cheap); Parvis
        // takes one, and skips its Argon2id hash (none of these accounts logs in).
        let password = (!parvis).then_some(workloads::PASSWORD);
        let conc = o.big_concurrency.max(1);
        let pids: Vec<u32> = std::iter::once(proc.pid)
            .chain(others.iter().map(|p| p.pid))
            .collect();
        let huge = pick(o.huge_members_parvis, o.huge_members_synapse);
        if huge > 0 {
            let idle = Duration::from_secs_f64(o.idle_secs);
            workload!(o.big_timeout;
                "huge room",
                big::huge_room(&api, &names, password, &pids, huge, o.huge_sends, conc, idle),
                |r| {
                    if let Some(m) = r.rss_after {
                        res.set("huge_rss", m);
                        if let Some(b) = r.rss_before {
                            res.set("huge_rss_growth", m - b);
                        }
                    }
                    res.set("huge_setup_rate", r.joins_per_s);
                    res.set("huge_send_p50", r.send_p50_ms);
                    res.set("huge_send_p99", r.send_p99_ms);
                    res.set("huge_sync_p50", r.sync_p50_ms);
                    res.set("huge_sync_p99", r.sync_p99_ms);
                    eprintln!(
                        "[versus]   {} members (built in {:.0} s, {:.1} joins/s): {} sends p50 {:.2} ms, p99 {:.2} ms; member's /sync p50 {:.2} ms, p99 {:.2} ms",
                        r.members, r.setup_secs, r.joins_per_s, r.sends, r.send_p50_ms, r.send_p99_ms, r.sync_p50_ms, r.sync_p99_ms
                    );
                    res.notes.push(format!(
                        "{}: room of {} members built in {:.0} s ({} requests at once, {} retried after 429 or a timeout)",
                        kind.name(), r.members, r.setup_secs, conc, r.retries
                    ));
                    if r.early > 0 {
                        res.note(kind, format!("huge room: {} incremental syncs returned without the message (re-polled, time kept running)", r.early));
                    }
                }
            );
        }
        let (rooms, members) = (
            pick(o.big_rooms_parvis, o.big_rooms_synapse),
            pick(o.big_members_parvis, o.big_members_synapse),
        );
        if rooms > 0 && members > 0 {
            workload!(o.big_timeout;
                "big initial sync",
                big::big_sync(&api, &names, password, rooms, members, o.big_reps, conc),
                |r| {
                    res.set("big_setup_rate", r.joins_per_s);
                    res.set("big_full_first", r.full_first_ms);
                    res.set("big_full_median", r.full_median_ms);
                    res.set("big_full_kib", r.full_bytes as f64 / 1024.0);
                    res.set("big_lazy_first", r.lazy_first_ms);
                    res.set("big_lazy_median", r.lazy_median_ms);
                    res.set("big_lazy_kib", r.lazy_bytes as f64 / 1024.0);
                    eprintln!(
                        "[versus]   {} rooms × {} members (built in {:.0} s, {:.1} joins/s): full first {:.0} ms, median {:.0} ms, {} KiB; lazy first {:.0} ms, median {:.0} ms, {} KiB ({} members of a room listed)",
                        r.rooms, r.members, r.setup_secs, r.joins_per_s,
                        r.full_first_ms, r.full_median_ms, r.full_bytes / 1024,
                        r.lazy_first_ms, r.lazy_median_ms, r.lazy_bytes / 1024, r.lazy_members
                    );
                    res.notes.push(format!(
                        "{}: {} rooms × {} members built in {:.0} s ({} requests at once, {} retried after 429 or a timeout); the lazy-loading sync listed {} members of a room",
                        kind.name(), r.rooms, r.members, r.setup_secs, conc, r.retries, r.lazy_members
                    ));
                }
            );
        }
        let many = pick(o.many_rooms_parvis, o.many_rooms_synapse);
        if many > 0 {
            workload!(o.big_timeout;
                "sliding sync",
                big::sliding(&api, &names, password, many, o.many_reps, conc),
                |r| {
                    res.set("ss_setup_rate", r.creations_per_s);
                    res.set("ss_first", r.first_ms);
                    res.set("ss_initial_median", r.initial_median_ms);
                    res.set("ss_incr_median", r.incr_median_ms);
                    eprintln!(
                        "[versus]   {} rooms (built in {:.0} s, {:.1} rooms/s): first request {:.1} ms, median {:.1} ms, {} KiB; next request with a new message median {:.2} ms, p99 {:.2} ms",
                        r.rooms, r.setup_secs, r.creations_per_s, r.first_ms, r.initial_median_ms,
                        r.initial_bytes / 1024, r.incr_median_ms, r.incr_p99_ms
                    );
                    res.notes.push(format!(
                        "{}: {} rooms created in {:.0} s ({} requests at once, {} retried after 429); first sliding sync response {} KiB",
                        kind.name(), r.rooms, r.setup_secs, conc, r.retries, r.initial_bytes / 1024
                    ));
                    if r.early > 0 {
                        res.note(kind, format!("sliding sync: {} incremental requests returned without the message (issued again, time kept running)", r.early));
                    }
                }
            );
        }
    }
    eprintln!("[versus] {}: stopping", kind.name());
    proc.stop();
    for p in others.iter_mut() {
        p.stop();
    }
    res
}

// ---------------------------------------------------------------------------------------------------

async fn run(o: Opts) -> Res<()> {
    let want = |k: Kind| o.only.is_none_or(|x| x == k);
    let load_before = load_average();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    if load_before.parse::<f64>().is_ok_and(|l| l > 0.5 * cores) {
        eprintln!(
            "[versus] warning: load average {load_before} on {cores} CPUs: the machine is busy, figures will be noisy"
        );
    }
    let mut synapse_version = None;
    let mut python_version = String::new();
    if want(Kind::Synapse) {
        match server::ensure_synapse(&o.synapse_venv) {
            Ok((v, p)) => {
                synapse_version = Some(v);
                python_version = p;
            }
            Err(e) => eprintln!("[versus] Synapse: {}", e.0),
        }
    }
    let mut synapse = Results::default();
    let mut parvis = Results::default();
    let mut parvis_pg = Results::default();
    if want(Kind::Synapse) {
        synapse = bench_server(Kind::Synapse, &o, synapse_version.is_some()).await;
    }
    if want(Kind::Parvis) {
        parvis = bench_server(Kind::Parvis, &o, false).await;
    }
    if want(Kind::ParvisPg) {
        parvis_pg = bench_server(Kind::ParvisPg, &o, false).await;
    }
    let mut parvis_group = Results::default();
    if want(Kind::ParvisGroup) {
        parvis_group = bench_server(Kind::ParvisGroup, &o, false).await;
    }

    let rows = rows(&o, &synapse, &parvis, &parvis_pg, &parvis_group);
    let default_bin = o.parvis_bin == PathBuf::from(env!("CARGO_BIN_EXE_parvis"));
    let profile = match (default_bin, cfg!(debug_assertions)) {
        (true, true) => "debug build: figures not representative".to_string(),
        (true, false) => "release build".to_string(),
        (false, _) => format!("binary {}", o.parvis_bin.display()),
    };
    println!();
    print!("{}", text_table(&rows));
    println!("{RATIO_NOTE}");
    let mut notes: Vec<String> = synapse
        .notes
        .iter()
        .chain(parvis.notes.iter())
        .chain(parvis_pg.notes.iter())
        .chain(parvis_group.notes.iter())
        .cloned()
        .collect();
    if o.only.is_some() {
        notes.push(format!(
            "Only {} was run (--only).",
            o.only.map_or("", |k| k.name())
        ));
    }
    if o.skip_standard {
        notes.push("The standard workloads were skipped (--skip-standard).".into());
    }
    if cfg!(debug_assertions) {
        notes.push(if default_bin && (want(Kind::Parvis) || want(Kind::ParvisPg) || want(Kind::ParvisGroup)) {
            "The bench and Parvis were built in debug mode: figures are not representative.".into()
        } else {
            "The load client was built in debug mode: it may be slower than the servers it drives."
                .into()
        });
    }
    if !notes.is_empty() {
        println!("\nNotes:");
        for n in &notes {
            println!("- {}", n.replace('\n', "\n    "));
        }
    }

    if let Some(path) = &o.out {
        let mut md = String::new();
        let _ = writeln!(md, "# Parvis vs Synapse\n");
        let _ = writeln!(
            md,
            "Measured {} by `cargo bench --bench versus` (see bench/README.md).\n",
            utc_now()
        );
        let _ = writeln!(
            md,
            "- Machine: {}; load average before the run: {load_before}",
            machine_info()
        );
        let _ = writeln!(
            md,
            "- Parvis: {} ({profile}), RocksDB, rate limits off",
            git_commit().map_or("commit unknown".into(), |c| format!("commit {c}"))
        );
        if want(Kind::ParvisPg) && o.postgres.is_some() {
            let _ = writeln!(
                md,
                "- Parvis on PostgreSQL: the same binary, PostgreSQL {} on the same machine (loopback TCP), \
                 a fresh schema, pool of 4, `synchronous_commit` off (the durability of RocksDB's default \
                 `sync_writes = false`)",
                postgres_version().unwrap_or_else(|| "(version unknown)".into())
            );
        }
        if want(Kind::ParvisGroup) && o.postgres.is_some() {
            let _ = writeln!(
                md,
                "- Parvis, 2 processes on PostgreSQL: two processes of the same binary on one fresh schema \
                 (`[storage.postgres] shared = true`), the load client sending each request to the next \
                 process in turn (a round-robin balancer); memory is the sum of both, the concurrent \
                 senders' CPU figure is the first process's only; on 2 cores this measures the group's \
                 overhead and correctness, not a speed-up"
            );
        }
        if want(Kind::Synapse) {
            let _ = writeln!(
                md,
                "- Synapse: {} on SQLite, {}, rate limits raised, logging at WARNING",
                synapse_version.as_deref().unwrap_or("not installed"),
                python_version
            );
        }
        let _ = writeln!(
            md,
            "- Workloads{}: sequential sends N = {} (Synapse) / {} (Parvis); {} concurrent senders for {} s; \
             long-poll wake-ups {} (Synapse) / {} (Parvis); initial sync of a user in {} rooms × {} messages, \
             {} times; all over HTTP/1.1 keep-alive on 127.0.0.1, one machine",
            if o.skip_standard {
                " (not run: --skip-standard)"
            } else {
                ""
            },
            o.seq_synapse,
            o.seq_parvis,
            o.conc_users,
            o.conc_secs,
            o.wake_synapse,
            o.wake_parvis,
            o.sync_rooms,
            o.sync_msgs,
            o.sync_reps
        );
        if o.big {
            let _ = writeln!(
                md,
                "- Big workloads (`--big`; setup with {} requests at once): initial /sync of a user in \
                 {} rooms × members, {} times full and {} times with lazy-loaded members; sliding sync of \
                 a user in {} rooms, {} times; a room of {} members, {} sends each followed by a member's \
                 incremental /sync. A ratio is given only where both servers ran the same sizes",
                o.big_concurrency,
                sizes(
                    format!("{} × {}", o.big_rooms_synapse, o.big_members_synapse),
                    format!("{} × {}", o.big_rooms_parvis, o.big_members_parvis)
                ),
                o.big_reps,
                o.big_reps,
                sizes(
                    o.many_rooms_synapse.to_string(),
                    o.many_rooms_parvis.to_string()
                ),
                o.many_reps,
                sizes(
                    o.huge_members_synapse.to_string(),
                    o.huge_members_parvis.to_string()
                ),
                o.huge_sends
            );
        }
        let _ = writeln!(md);
        md += &markdown_table(&rows);
        let _ = writeln!(md, "\n{RATIO_NOTE}");
        let short: Vec<String> = notes
            .iter()
            .map(|n| n.lines().next().unwrap_or_default().to_string())
            .collect();
        if !short.is_empty() {
            let _ = writeln!(md, "\nNotes:\n");
            for n in short {
                let _ = writeln!(md, "- {n}");
            }
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, md).map_err(|e| err!("writing {}: {e}", path.display()))?;
        println!("\nWrote {}", path.display());
    }
    if (want(Kind::Synapse) && synapse.values.is_empty())
        || (want(Kind::Parvis) && parvis.values.is_empty())
        || (want(Kind::ParvisPg) && o.postgres.is_some() && parvis_pg.values.is_empty())
        || (want(Kind::ParvisGroup) && o.postgres.is_some() && parvis_group.values.is_empty())
    {
        bail!("a server produced no figures (see the notes above)");
    }
    Ok(())
}

/// Runs the bench; on Ctrl-C or SIGTERM the `run` future is dropped, and with it the server guards, which
/// stop the servers.
async fn run_until_signal(opts: Opts) -> Res<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = run(opts) => r,
        _ = tokio::signal::ctrl_c() => Err(err!("interrupted")),
        _ = term.recv() => Err(err!("terminated")),
    }
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("versus: {}", e.0);
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(run_until_signal(opts));
    drop(rt);
    if let Err(e) = result {
        eprintln!("versus: {}", e.0);
        std::process::exit(1);
    }
}
