//! The storage engines behave alike: RocksDB always, and PostgreSQL when `PARVIS_TEST_PG` names
//! one (`scripts/with-postgres.sh`, run by `scripts/test.sh`). Byte order with `0xFF`-terminated
//! keys, scans both ways that start between keys and cross page boundaries, the last operation
//! on a key winning within a batch, empty and 1 MB values, `multi_get`; crashes in the middle of
//! a batch (the writing process killed on both engines, PostgreSQL's backend killed) leave whole
//! batches only.

use std::sync::Arc;

use parvis::storage::{
    Batch, Db, Direction, Engine, Map, postgres::PgEngine, postgres::PostgresConfig,
    rocks::RocksEngine,
};

const A: Map = Map("conformance_a");
const B: Map = Map("conformance_b");

/// Every engine to test, each on an empty database.
fn engines() -> Vec<(&'static str, Arc<dyn Engine>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let rocks: Arc<dyn Engine> = RocksEngine::open(dir.path(), &[A, B], 8, 8, false).unwrap();
    let mut engines = vec![("rocksdb", rocks, Some(dir))];
    if let Ok(url) = std::env::var("PARVIS_TEST_PG") {
        let config = PostgresConfig {
            url,
            schema: format!("conformance_{}", rand_suffix()),
            pool_size: 2,
            synchronous_commit: true,
            ..PostgresConfig::default()
        };
        let pg: Arc<dyn Engine> = PgEngine::open(&config, &[A, B]).unwrap();
        engines.push(("postgres", pg, None));
    }
    engines
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}_{}", nanos, std::process::id())
}

fn keys(db: &Db, map: Map, from: &[u8], direction: Direction) -> Vec<Vec<u8>> {
    db.scan_from(map, b"", from, direction)
        .map(|e| e.unwrap().0.to_vec())
        .collect()
}

#[test]
fn keys_are_in_byte_order_and_scans_start_between_keys() {
    for (name, engine, _dir) in engines() {
        let db = Db::new(engine);
        let mut batch = Batch::new();
        // A string key ends with 0xFF (storage/keys.rs): "a" ‖ 0xFF sorts after "ab" ‖ 0xFF, and a
        // shorter key before the longer keys it starts.
        for key in [
            &b"a\xff"[..],
            b"a\xffb\xff",
            b"ab\xff",
            b"b",
            b"",
            b"\xff\xff",
        ] {
            batch.put(A, key.to_vec(), b"v".to_vec());
        }
        batch.put(B, b"a\xff".to_vec(), b"other map".to_vec());
        db.write(batch).unwrap();
        let all = keys(&db, A, b"", Direction::Forward);
        let want: Vec<Vec<u8>> = [
            &b""[..],
            b"ab\xff",
            b"a\xff",
            b"a\xffb\xff",
            b"b",
            b"\xff\xff",
        ]
        .iter()
        .map(|k| k.to_vec())
        .collect();
        assert_eq!(all, want, "{name}: forward order");
        // Backward from a key between two: the last key <= it.
        let back = keys(&db, A, b"a\xffa", Direction::Backward);
        let want_back = vec![b"a\xff".to_vec(), b"ab\xff".to_vec(), b"".to_vec()];
        assert_eq!(back, want_back, "{name}: backward between keys");
        // Forward from between two keys: the first key >= it.
        let fwd = keys(&db, A, b"a\xffc", Direction::Forward);
        assert_eq!(
            fwd,
            vec![b"b".to_vec(), b"\xff\xff".to_vec()],
            "{name}: forward between keys"
        );
        // A prefix scan stops at the prefix and never shows the other map.
        let prefixed: Vec<_> = db.scan_prefix(A, b"a\xff").map(|e| e.unwrap()).collect();
        assert_eq!(prefixed.len(), 2, "{name}: prefix scan");
        // Backward within a prefix, from past its last key: its keys only, last first.
        let back_in: Vec<Vec<u8>> = db
            .scan_from(A, b"a\xff", b"a\xff\xff", Direction::Backward)
            .map(|e| e.unwrap().0.to_vec())
            .collect();
        assert_eq!(
            back_in,
            vec![b"a\xffb\xff".to_vec(), b"a\xff".to_vec()],
            "{name}: backward prefix"
        );
        assert_eq!(
            db.get(B, b"a\xff").unwrap().unwrap(),
            b"other map",
            "{name}"
        );
    }
}

#[test]
fn scans_cross_pages_both_ways() {
    for (name, engine, _dir) in engines() {
        let db = Db::new(engine);
        let mut batch = Batch::new();
        for i in 0u32..3000 {
            batch.put(A, i.to_be_bytes().to_vec(), i.to_le_bytes().to_vec());
        }
        db.write(batch).unwrap();
        let forward: Vec<u32> = db
            .scan_from(A, b"", &100u32.to_be_bytes(), Direction::Forward)
            .map(|e| u32::from_be_bytes(e.unwrap().0[..].try_into().unwrap()))
            .collect();
        assert_eq!(forward, (100..3000).collect::<Vec<_>>(), "{name}: forward");
        let backward: Vec<u32> = db
            .scan_from(A, b"", &2500u32.to_be_bytes(), Direction::Backward)
            .map(|e| u32::from_be_bytes(e.unwrap().0[..].try_into().unwrap()))
            .collect();
        assert_eq!(
            backward,
            (0..=2500).rev().collect::<Vec<_>>(),
            "{name}: backward"
        );
        // A scan that stops early reads no further (a `take` on the iterator).
        let first: Vec<_> = db.scan_prefix(A, b"").take(3).map(|e| e.unwrap()).collect();
        assert_eq!(first.len(), 3, "{name}");
    }
}

/// An engine with only the required methods over RocksDB: the trait's own `iter_range` and
/// `iter_prefix`, held to the same answers as the engines' bounded scans.
struct DefaultScans(Arc<dyn Engine>);

impl Engine for DefaultScans {
    fn get(&self, map: Map, key: &[u8]) -> parvis::storage::Result<Option<Vec<u8>>> {
        self.0.get(map, key)
    }
    fn write(&self, batch: Batch) -> parvis::storage::Result<()> {
        self.0.write(batch)
    }
    fn iter(
        &self,
        map: Map,
        from: &[u8],
        direction: Direction,
    ) -> parvis::storage::engine::KvIter<'_> {
        self.0.iter(map, from, direction)
    }
    fn flush(&self) -> parvis::storage::Result<()> {
        self.0.flush()
    }
}

#[test]
fn range_scans_stay_in_their_bounds_from_inside_and_outside_both_ways() {
    let mut all = engines();
    let dir = tempfile::tempdir().unwrap();
    let plain: Arc<dyn Engine> = RocksEngine::open(dir.path(), &[A, B], 8, 8, false).unwrap();
    all.push(("default scans", Arc::new(DefaultScans(plain)), Some(dir)));
    for (name, engine, _dir) in all {
        let db = Db::new(engine);
        // Keys 10, 12, …, 48 (one byte), then 20..=30 deleted (deleted keys past a bound must
        // not leak through or stop a scan early).
        let mut batch = Batch::new();
        for k in (10u8..50).step_by(2) {
            batch.put(A, vec![k], vec![k]);
        }
        db.write(batch).unwrap();
        let mut batch = Batch::new();
        for k in (20u8..=30).step_by(2) {
            batch.delete(A, vec![k]);
        }
        db.write(batch).unwrap();
        let live: Vec<u8> = (10u8..50)
            .step_by(2)
            .filter(|k| !(20..=30).contains(k))
            .collect();
        for low in [0u8, 10, 11, 19, 25, 32, 49, 60] {
            for high in [
                None,
                Some(0u8),
                Some(12),
                Some(25),
                Some(33),
                Some(48),
                Some(70),
            ] {
                for from in [0u8, 11, 16, 26, 40, 48, 80] {
                    for direction in [Direction::Forward, Direction::Backward] {
                        let got: Vec<u8> = db
                            .scan_range(A, vec![low], high.map(|h| vec![h]), &[from], direction)
                            .map(|e| e.unwrap().0[0])
                            .collect();
                        let in_range = |k: &&u8| **k >= low && high.is_none_or(|h| **k < h);
                        let want: Vec<u8> = match direction {
                            Direction::Forward => live
                                .iter()
                                .filter(in_range)
                                .filter(|k| **k >= from)
                                .copied()
                                .collect(),
                            Direction::Backward => live
                                .iter()
                                .rev()
                                .filter(in_range)
                                .filter(|k| **k <= from)
                                .copied()
                                .collect(),
                        };
                        assert_eq!(
                            got, want,
                            "{name}: [{low}, {high:?}) from {from} {direction:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_last_operation_on_a_key_wins_within_a_batch() {
    for (name, engine, _dir) in engines() {
        let db = Db::new(engine);
        db.put(A, b"kept".to_vec(), b"old".to_vec()).unwrap();
        db.put(A, b"deleted".to_vec(), b"old".to_vec()).unwrap();
        let mut batch = Batch::new();
        batch.put(A, b"new".to_vec(), b"1".to_vec());
        batch.delete(A, b"new".to_vec());
        batch.delete(A, b"kept".to_vec());
        batch.put(A, b"kept".to_vec(), b"2".to_vec());
        batch.put(A, b"deleted".to_vec(), b"3".to_vec());
        batch.delete(A, b"deleted".to_vec());
        batch.put(A, b"twice".to_vec(), b"first".to_vec());
        batch.put(A, b"twice".to_vec(), b"second".to_vec());
        db.write(batch).unwrap();
        assert_eq!(db.get(A, b"new").unwrap(), None, "{name}: put then delete");
        assert_eq!(
            db.get(A, b"kept").unwrap().as_deref(),
            Some(&b"2"[..]),
            "{name}: delete then put"
        );
        assert_eq!(db.get(A, b"deleted").unwrap(), None, "{name}");
        assert_eq!(
            db.get(A, b"twice").unwrap().as_deref(),
            Some(&b"second"[..]),
            "{name}"
        );
    }
}

#[test]
fn empty_and_large_values_and_multi_get() {
    for (name, engine, _dir) in engines() {
        let db = Db::new(engine);
        let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
        let mut batch = Batch::new();
        batch.put(A, b"empty".to_vec(), Vec::new());
        batch.put(A, b"big".to_vec(), big.clone());
        db.write(batch).unwrap();
        assert_eq!(
            db.get(A, b"empty").unwrap(),
            Some(Vec::new()),
            "{name}: empty value"
        );
        assert!(db.contains(A, b"empty").unwrap(), "{name}");
        assert_eq!(
            db.get(A, b"big").unwrap(),
            Some(big.clone()),
            "{name}: 1 MB value"
        );
        let got = db
            .multi_get(
                A,
                &[b"big".to_vec(), b"missing".to_vec(), b"empty".to_vec()],
            )
            .unwrap();
        assert_eq!(
            got,
            vec![Some(big), None, Some(Vec::new())],
            "{name}: multi_get"
        );
        assert_eq!(db.multi_get(A, &[]).unwrap(), Vec::<Option<Vec<u8>>>::new());
    }
}

#[test]
fn data_survives_reopening() {
    // RocksDB: the same folder; PostgreSQL: the same schema, map numbers kept.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::new(RocksEngine::open(dir.path(), &[A, B], 8, 8, false).unwrap());
        db.put(B, b"k".to_vec(), b"v".to_vec()).unwrap();
    }
    let db = Db::new(RocksEngine::open(dir.path(), &[B, A], 8, 8, false).unwrap());
    assert_eq!(db.get(B, b"k").unwrap().as_deref(), Some(&b"v"[..]));
    if let Ok(url) = std::env::var("PARVIS_TEST_PG") {
        let config = PostgresConfig {
            url,
            schema: format!("reopen_{}", rand_suffix()),
            pool_size: 1,
            synchronous_commit: true,
            ..PostgresConfig::default()
        };
        {
            let db = Db::new(PgEngine::open(&config, &[A, B]).unwrap());
            db.put(B, b"k".to_vec(), b"v".to_vec()).unwrap();
        }
        // Declared in another order, with a new map: the old ones keep their numbers.
        const C: Map = Map("conformance_c");
        let db = Db::new(PgEngine::open(&config, &[C, B, A]).unwrap());
        assert_eq!(db.get(B, b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(db.get(A, b"k").unwrap(), None);
        assert_eq!(db.get(C, b"k").unwrap(), None);
    }
}

/// Batches of a crash test: each has [`CRASH_BATCH`] keys `<generation>/<n>`.
const CRASH_BATCH: usize = 500;

fn crash_batch(generation: u32) -> Batch {
    let mut batch = Batch::new();
    for n in 0..CRASH_BATCH {
        batch.put(A, format!("{generation:08}/{n:04}"), vec![b'x'; 200]);
    }
    batch
}

/// The keys of each generation found: every one must be whole (all of its keys or none).
fn assert_whole_batches(name: &str, db: &Db) -> usize {
    let mut per_generation = std::collections::BTreeMap::<String, usize>::new();
    for entry in db.scan_prefix(A, b"") {
        let (key, _) = entry.unwrap();
        let key = String::from_utf8(key.to_vec()).unwrap();
        let (generation, _) = key.split_once('/').unwrap();
        *per_generation.entry(generation.to_owned()).or_default() += 1;
    }
    for (generation, count) in &per_generation {
        assert_eq!(
            *count, CRASH_BATCH,
            "{name}: batch {generation} is cut ({count} of {CRASH_BATCH} keys)"
        );
    }
    per_generation.len()
}

/// The writer of [`a_process_killed_while_writing_leaves_only_whole_batches`], run in a child
/// process: batches in a loop until killed.
#[test]
#[ignore = "the child process of a crash test"]
fn crash_child_writer() {
    let Ok(engine) = std::env::var("CRASH_CHILD_ENGINE") else {
        return;
    };
    let where_ = std::env::var("CRASH_CHILD_AT").unwrap();
    let engine: Arc<dyn Engine> = match engine.as_str() {
        "rocksdb" => RocksEngine::open(where_.as_ref(), &[A, B], 8, 8, false).unwrap(),
        _ => PgEngine::open(&pg_config(&where_), &[A, B]).unwrap(),
    };
    let db = Db::new(engine);
    for generation in 0.. {
        db.write(crash_batch(generation)).unwrap();
        if generation == 3 {
            println!("WRITING");
        }
    }
}

fn pg_config(schema: &str) -> PostgresConfig {
    PostgresConfig {
        url: std::env::var("PARVIS_TEST_PG").unwrap(),
        schema: schema.to_owned(),
        pool_size: 2,
        synchronous_commit: true,
        ..PostgresConfig::default()
    }
}

#[test]
fn a_process_killed_while_writing_leaves_only_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut targets = vec![("rocksdb", dir.path().to_string_lossy().into_owned())];
    if std::env::var("PARVIS_TEST_PG").is_ok() {
        targets.push(("postgres", format!("crash_{}", rand_suffix())));
    }
    for (name, at) in targets {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["crash_child_writer", "--exact", "--ignored", "--nocapture"])
            .env("CRASH_CHILD_ENGINE", name)
            .env("CRASH_CHILD_AT", &at)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(
            lines.any(|line| line.unwrap().contains("WRITING")),
            "{name}: the writer started"
        );
        // Let it write a while longer, then SIGKILL it in the middle of whatever batch it writes.
        std::thread::sleep(std::time::Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        let engine: Arc<dyn Engine> = match name {
            "rocksdb" => RocksEngine::open(dir.path(), &[A, B], 8, 8, false).unwrap(),
            _ => PgEngine::open(&pg_config(&at), &[A, B]).unwrap(),
        };
        let whole = assert_whole_batches(name, &Db::new(engine));
        assert!(whole > 4, "{name}: {whole} batches written before the kill");
    }
}

/// PostgreSQL's side of a crash: the backend running a batch's statement is terminated while
/// it runs. The call fails, nothing of the batch (puts and a delete) is stored, and the engine
/// goes on with a new connection.
#[test]
fn a_backend_killed_during_a_batch_leaves_nothing_of_it() {
    let Ok(url) = std::env::var("PARVIS_TEST_PG") else {
        eprintln!("PARVIS_TEST_PG is not set: PostgreSQL's crash test does not run");
        return;
    };
    let schema = format!("kill_{}", rand_suffix());
    let db = Db::new(PgEngine::open(&pg_config(&schema), &[A, B]).unwrap());
    db.put(B, b"before".to_vec(), b"kept".to_vec()).unwrap();
    let mut batch = Batch::new();
    batch.delete(B, b"before".to_vec());
    // Big enough that its INSERT runs for a good while after it shows as active.
    for n in 0..200_000u32 {
        batch.put(A, format!("{n:08}"), vec![b'y'; 400]);
    }
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || db.write(batch))
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let killed = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(60) {
            let rows = client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND state = 'active' AND query LIKE 'WITH gone%'",
                    &[&format!("parvis {schema}")],
                )
                .await
                .unwrap();
            if rows.iter().any(|r| r.get::<_, bool>(0)) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        false
    });
    assert!(killed, "the batch's statement was seen running");
    assert!(
        writer.join().unwrap().is_err(),
        "the write of a killed backend fails"
    );
    assert_eq!(db.get(B, b"before").unwrap().as_deref(), Some(&b"kept"[..]));
    assert_eq!(db.scan_prefix(A, b"").count(), 0, "no row of the batch");
    db.put(A, b"after".to_vec(), b"works".to_vec()).unwrap();
    assert_eq!(db.get(A, b"after").unwrap().as_deref(), Some(&b"works"[..]));
}
