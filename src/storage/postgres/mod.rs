//! The PostgreSQL engine (`[storage] engine = "postgres"`, spec/scale-out.md): every map in one
//! table `kv (m smallint, k bytea, v bytea, PRIMARY KEY (m, k))` of the configured schema, map
//! names numbered in `maps`. bytea compares byte by byte, shorter first: RocksDB's order.
//!
//! - `get`, `multi_get`: one prepared statement each (`k = ANY($2)` for many keys);
//! - `write`: the batch collapsed to its last operation per key (RocksDB's batch semantics), then
//!   one statement (a `DELETE` in a `WITH` and an `INSERT … ON CONFLICT DO UPDATE`): atomic;
//! - `iter`: keyset pages (16 rows, doubling to 1024), each page its own statement, so a live
//!   iterator holds no connection; prefix scans (`iter_prefix`) bound every page to the prefix's
//!   range, so they never read past it. A scan over several pages is not one snapshot (RocksDB's
//!   iterators are): callers read up to stream positions they hold.
//!
//! Only SQL that PostgreSQL-protocol distributed databases also accept (no advisory locks, no
//! `LISTEN` for correctness). The calls block, as RocksDB's do: the connections are driven by the
//! engine's own small runtime, so a call works from any thread that may block (callers are off
//! the async workers, `Services::run`). Durability: `synchronous_commit` (on by default).

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

mod shared;

use serde::Deserialize;
use tokio_postgres::{Client, NoTls, Statement};

use super::{
    Result, StorageError,
    engine::{Batch, Direction, Engine, KvIter, KvPair, Map, Op, Sequenced, StorageStat},
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// `postgresql://user:password@host:port/database` (or key=value pairs).
    pub url: String,
    /// The schema that holds Parvis's tables (created if missing): one per server.
    pub schema: String,
    /// Connections kept open (queries on one connection are pipelined).
    pub pool_size: usize,
    /// `synchronous_commit`: `on` waits for the WAL flush (a committed write survives a power
    /// loss); `off` survives a crash of Parvis or PostgreSQL, not of the machine.
    pub synchronous_commit: bool,
    /// Several Parvis processes serve this schema (spec/scale-out.md, step 2): commits are
    /// ordered by a lock in the database and announced to the other processes. Set on every
    /// process of the group; a process without it refuses a schema the group uses, and the reverse.
    pub shared: bool,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgresql://parvis@localhost/parvis".to_owned(),
            schema: "parvis".to_owned(),
            pool_size: 4,
            synchronous_commit: true,
            shared: false,
        }
    }
}

impl PostgresConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        let schema_ok = !self.schema.is_empty()
            && self.schema.len() <= 63
            && self
                .schema
                .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && self
                .schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !schema_ok {
            return Err(format!(
                "`storage.postgres.schema`: `{}` must be 1 to 63 of a-z 0-9 _ (not starting with a digit)",
                self.schema
            ));
        }
        if self.pool_size == 0 || self.pool_size > 64 {
            return Err("`storage.postgres.pool_size`: 1 to 64".to_owned());
        }
        self.url
            .parse::<tokio_postgres::Config>()
            .map(|_| ())
            .map_err(|e| format!("`storage.postgres.url`: {e}"))
    }
}

const FIRST_PAGE: i64 = 16;
const LARGEST_PAGE: i64 = 1024;

/// How long opening waits for another process to release the instance lock (a server that has
/// just stopped releases it as its connection closes).
const LOCK_WAIT: &str = "3s";

const SCHEMA_SQL: &str = "
    CREATE TABLE IF NOT EXISTS instance_lock (id int PRIMARY KEY);
    INSERT INTO instance_lock VALUES (1) ON CONFLICT DO NOTHING;
    CREATE TABLE IF NOT EXISTS sequencer (id int PRIMARY KEY);
    INSERT INTO sequencer VALUES (1) ON CONFLICT DO NOTHING;
    CREATE TABLE IF NOT EXISTS maps (id smallint PRIMARY KEY, name text NOT NULL UNIQUE);
    CREATE TABLE IF NOT EXISTS kv (
        m smallint NOT NULL, k bytea NOT NULL, v bytea NOT NULL, PRIMARY KEY (m, k));";

/// A page of a scan: from the cursor (`$2`, compared with `cmp`) in `order`, within the bounds
/// `$4 <= k` and, unless NULL, `k < $5` (a prefix's range).
fn scan_sql(cmp: &str, order: &str) -> String {
    format!(
        "SELECT k, v FROM kv WHERE m = $1 AND k {cmp} $2 AND k >= $4 \
         AND ($5::bytea IS NULL OR k < $5) ORDER BY {order} LIMIT $3"
    )
}

/// The write statement's parameters: deleted (maps, keys), then written (maps, keys, values).
type WriteParams = (Vec<i16>, Vec<Vec<u8>>, Vec<i16>, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// One connection and its prepared statements.
struct Conn {
    client: Client,
    get: Statement,
    multi_get: Statement,
    write: Statement,
    notify: Statement,
    forward_from: Statement,
    forward_after: Statement,
    backward_from: Statement,
    backward_before: Statement,
}

pub struct PgEngine {
    runtime: Option<tokio::runtime::Runtime>,
    /// The connection whose open transaction holds the schema's instance lock (released when
    /// it closes: on drop, or when the process dies).
    _lock: Option<Client>,
    config: PostgresConfig,
    conns: Vec<Mutex<Arc<Conn>>>,
    next: AtomicUsize,
    maps: HashMap<&'static str, i16>,
    /// Requests sent to PostgreSQL (each one round trip), for the metrics.
    requests: AtomicU64,
    /// The connection that runs sequenced commits (`shared` only; opened on first use).
    sequencer: Mutex<Option<Arc<Conn>>>,
}

fn err(e: impl std::fmt::Display + 'static) -> StorageError {
    // The driver's errors say only "db error"; the server's message is in the details.
    let any: &dyn std::any::Any = &e;
    if let Some(db) = any
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.as_db_error())
    {
        return StorageError::Engine(format!("postgres: {} ({})", db.message(), db.code().code()));
    }
    StorageError::Engine(format!("postgres: {e}"))
}

/// Creates the schema and its tables if missing. Processes of a group starting together may race
/// in `CREATE … IF NOT EXISTS` (PostgreSQL checks for the name before it inserts it): the loser
/// of such a race tries again and finds the objects made.
async fn create_schema(client: &Client, schema: &str) -> Result<()> {
    use tokio_postgres::error::SqlState;
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET search_path TO \"{schema}\"; {SCHEMA_SQL}"
    );
    for attempt in 0.. {
        match client.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(e)
                if attempt < 10
                    && [
                        SqlState::UNIQUE_VIOLATION,
                        SqlState::DUPLICATE_SCHEMA,
                        SqlState::DUPLICATE_TABLE,
                        SqlState::DUPLICATE_OBJECT,
                    ]
                    .iter()
                    .any(|code| e.code() == Some(code)) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(err(e)),
        }
    }
    unreachable!("the loop returns")
}

/// The driver's settings from the URL; `pg_stat_activity` names the schema a connection serves,
/// unless the URL names it otherwise.
fn pg_config(config: &PostgresConfig) -> Result<tokio_postgres::Config> {
    let mut pg = config.url.parse::<tokio_postgres::Config>().map_err(err)?;
    if pg.get_application_name().is_none() {
        pg.application_name(format!("parvis {}", config.schema));
    }
    Ok(pg)
}

async fn connect(config: &PostgresConfig) -> Result<Conn> {
    let (client, connection) = pg_config(config)?.connect(NoTls).await.map_err(err)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection ended");
        }
    });
    let schema = &config.schema;
    let commit = if config.synchronous_commit {
        "on"
    } else {
        "off"
    };
    client
        .batch_execute(&format!("SET synchronous_commit TO {commit};"))
        .await
        .map_err(err)?;
    create_schema(&client, schema).await?;
    let prepare = |sql: &'static str| client.prepare(sql);
    Ok(Conn {
        get: prepare("SELECT v FROM kv WHERE m = $1 AND k = $2").await.map_err(err)?,
        multi_get: prepare("SELECT k, v FROM kv WHERE m = $1 AND k = ANY($2)")
            .await
            .map_err(err)?,
        write: prepare(
            "WITH gone AS (DELETE FROM kv USING unnest($1::smallint[], $2::bytea[]) AS d(m, k) \
             WHERE kv.m = d.m AND kv.k = d.k) \
             INSERT INTO kv (m, k, v) SELECT * FROM unnest($3::smallint[], $4::bytea[], $5::bytea[]) \
             ON CONFLICT (m, k) DO UPDATE SET v = excluded.v",
        )
        .await
        .map_err(err)?,
        notify: prepare("SELECT pg_notify($1, $2)").await.map_err(err)?,
        forward_from: client.prepare(&scan_sql(">=", "k")).await.map_err(err)?,
        forward_after: client.prepare(&scan_sql(">", "k")).await.map_err(err)?,
        backward_from: client.prepare(&scan_sql("<=", "k DESC")).await.map_err(err)?,
        backward_before: client.prepare(&scan_sql("<", "k DESC")).await.map_err(err)?,
        client,
    })
}

/// Who may use the schema: a connection that holds the `instance_lock` row in an open
/// transaction, `FOR UPDATE` for a process alone on its schema, `FOR SHARE` for the processes of
/// a group (`shared`), which do not exclude each other but exclude a lone process. A process
/// refused gets an error naming the reason after [`LOCK_WAIT`].
async fn lock(config: &PostgresConfig) -> Result<Client> {
    let conn = connect(config).await?;
    let mode = if config.shared { "SHARE" } else { "UPDATE" };
    let locked = conn
        .client
        .batch_execute(&format!(
            "SET lock_timeout = '{LOCK_WAIT}'; BEGIN; \
             SELECT id FROM instance_lock WHERE id = 1 FOR {mode};"
        ))
        .await;
    match locked {
        Ok(()) => Ok(conn.client),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            Err(err(if config.shared {
                format!(
                    "schema `{}` is in use by a Parvis process that is not part of a group \
                     (stop it, or set `storage.postgres.shared` on it too)",
                    config.schema
                )
            } else {
                format!(
                    "schema `{}` is in use by another Parvis process (stop it first, or set \
                     `storage.postgres.shared` on every process of a group)",
                    config.schema
                )
            }))
        }
        Err(e) => Err(err(e)),
    }
}

/// Numbers every map (new names get the next free number; several processes opening at once
/// retry on a clash).
async fn number_maps(conn: &Conn, maps: &[Map]) -> Result<HashMap<&'static str, i16>> {
    for map in maps {
        for attempt in 0.. {
            let added = conn
                .client
                .execute(
                    "INSERT INTO maps (id, name) SELECT COALESCE(MAX(id), 0) + 1, $1 FROM maps \
                     ON CONFLICT (name) DO NOTHING",
                    &[&map.0],
                )
                .await;
            match added {
                Ok(_) => break,
                Err(_) if attempt < 5 => continue,
                Err(e) => return Err(err(e)),
            }
        }
    }
    let rows = conn
        .client
        .query("SELECT id, name FROM maps", &[])
        .await
        .map_err(err)?;
    let numbers: HashMap<String, i16> = rows
        .iter()
        .map(|r| (r.get::<_, String>(1), r.get::<_, i16>(0)))
        .collect();
    maps.iter()
        .map(|m| {
            numbers
                .get(m.0)
                .map(|id| (m.0, *id))
                .ok_or_else(|| err(format!("map {} was not numbered", m.0)))
        })
        .collect()
}

impl PgEngine {
    pub fn open(config: &PostgresConfig, maps: &[Map]) -> Result<Arc<Self>> {
        config.check().map_err(StorageError::Engine)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("parvis-postgres")
            .enable_all()
            .build()
            .map_err(err)?;
        let mut engine = Self {
            runtime: Some(runtime),
            _lock: None,
            config: config.clone(),
            conns: Vec::new(),
            next: AtomicUsize::new(0),
            maps: HashMap::new(),
            requests: AtomicU64::new(0),
            sequencer: Mutex::new(None),
        };
        let (config_for, maps_for) = (config.clone(), maps.to_vec());
        let lock_config = config.clone();
        engine._lock = Some(engine.block(async move { lock(&lock_config).await })??);
        let (conns, numbers) = engine.block(async move {
            let mut conns = Vec::new();
            for _ in 0..config_for.pool_size {
                conns.push(connect(&config_for).await?);
            }
            let numbers = number_maps(&conns[0], &maps_for).await?;
            Ok::<_, StorageError>((conns, numbers))
        })??;
        engine.conns = conns.into_iter().map(|c| Mutex::new(Arc::new(c))).collect();
        engine.maps = numbers;
        Ok(Arc::new(engine))
    }

    /// Runs `work` on the engine's runtime and waits for it (from any thread that may block).
    fn block<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| err("the engine is closed"))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv().map_err(|_| err("the engine's runtime stopped"))
    }

    /// A connection, in turn; one that closed (PostgreSQL restarted) is opened again.
    fn conn(&self) -> Result<Arc<Conn>> {
        let slot = &self.conns[self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len()];
        let current = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !current.client.is_closed() {
            return Ok(current);
        }
        let config = self.config.clone();
        let fresh = Arc::new(self.block(async move { connect(&config).await })??);
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    fn id(&self, map: Map) -> i16 {
        *self
            .maps
            .get(map.0)
            .unwrap_or_else(|| panic!("map {} was not declared when the engine opened", map.0))
    }

    /// A batch as the write statement's parameters: collapsed to the last operation per key
    /// (RocksDB's batch semantics; `ON CONFLICT DO UPDATE` cannot touch a row twice either), then
    /// the deleted keys and the written rows. None: nothing to write.
    fn write_params(&self, batch: Batch) -> Option<WriteParams> {
        let mut last: HashMap<(i16, Vec<u8>), Option<Vec<u8>>> = HashMap::new();
        for op in batch.ops {
            match op {
                Op::Put(map, key, value) => last.insert((self.id(map), key), Some(value)),
                Op::Delete(map, key) => last.insert((self.id(map), key), None),
            };
        }
        let (mut del_m, mut del_k) = (Vec::<i16>::new(), Vec::<Vec<u8>>::new());
        let (mut put_m, mut put_k, mut put_v) = (Vec::<i16>::new(), Vec::new(), Vec::new());
        for ((m, k), v) in last {
            match v {
                Some(v) => {
                    put_m.push(m);
                    put_k.push(k);
                    put_v.push(v);
                }
                None => {
                    del_m.push(m);
                    del_k.push(k);
                }
            }
        }
        (!del_m.is_empty() || !put_m.is_empty()).then_some((del_m, del_k, put_m, put_k, put_v))
    }

    /// One page of a scan.
    fn page(&self, scan: &Scan<'_>, cursor: Vec<u8>) -> Result<Vec<KvPair>> {
        let (map, inclusive, direction, limit) =
            (scan.map, scan.inclusive, scan.direction, scan.limit);
        let (low, high) = (scan.low.clone(), scan.high.clone());
        let conn = self.conn()?;
        self.block(async move {
            let statement = match (direction, inclusive) {
                (Direction::Forward, true) => &conn.forward_from,
                (Direction::Forward, false) => &conn.forward_after,
                (Direction::Backward, true) => &conn.backward_from,
                (Direction::Backward, false) => &conn.backward_before,
            };
            let rows = conn
                .client
                .query(statement, &[&map, &cursor, &limit, &low, &high])
                .await
                .map_err(err)?;
            Ok(rows
                .iter()
                .map(|r| {
                    let (k, v): (Vec<u8>, Vec<u8>) = (r.get(0), r.get(1));
                    (k.into_boxed_slice(), v.into_boxed_slice())
                })
                .collect())
        })?
    }
}

impl Drop for PgEngine {
    fn drop(&mut self) {
        // Dropping a runtime may block: not allowed on an async worker, where this can happen.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A scan: keyset pages, fetched as the caller reads on.
struct Scan<'a> {
    engine: &'a PgEngine,
    map: i16,
    direction: Direction,
    cursor: Vec<u8>,
    inclusive: bool,
    limit: i64,
    /// Keys at least `low` and, if set, below `high`.
    low: Vec<u8>,
    high: Option<Vec<u8>>,
    buffered: VecDeque<KvPair>,
    done: bool,
}

impl Iterator for Scan<'_> {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffered.is_empty() && !self.done {
            let cursor = std::mem::take(&mut self.cursor);
            match self.engine.page(self, cursor) {
                Ok(rows) => {
                    self.done = (rows.len() as i64) < self.limit;
                    if let Some((last, _)) = rows.last() {
                        self.cursor = last.to_vec();
                    }
                    self.inclusive = false;
                    self.limit = (self.limit * 2).min(LARGEST_PAGE);
                    self.buffered = rows.into();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.buffered.pop_front().map(Ok)
    }
}

impl Engine for PgEngine {
    fn get(&self, map: Map, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let (id, key, conn) = (self.id(map), key.to_vec(), self.conn()?);
        self.block(async move {
            let row = conn
                .client
                .query_opt(&conn.get, &[&id, &key])
                .await
                .map_err(err)?;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
        })?
    }

    fn multi_get(&self, map: Map, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (id, wanted, conn) = (self.id(map), keys.to_vec(), self.conn()?);
        let found: HashMap<Vec<u8>, Vec<u8>> = self.block(async move {
            let rows = conn
                .client
                .query(&conn.multi_get, &[&id, &wanted])
                .await
                .map_err(err)?;
            Ok::<_, StorageError>(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })??;
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    fn write(&self, batch: Batch) -> Result<()> {
        let Some(params) = self.write_params(batch) else {
            return Ok(());
        };
        let conn = self.conn()?;
        self.block(async move {
            let (del_m, del_k, put_m, put_k, put_v) = params;
            conn.client
                .execute(&conn.write, &[&del_m, &del_k, &put_m, &put_k, &put_v])
                .await
                .map(|_| ())
                .map_err(err)
        })?
    }

    fn iter(&self, map: Map, from: &[u8], direction: Direction) -> KvIter<'_> {
        self.iter_range(map, Vec::new(), None, from, direction)
    }

    fn iter_range(
        &self,
        map: Map,
        low: Vec<u8>,
        high: Option<Vec<u8>>,
        from: &[u8],
        direction: Direction,
    ) -> KvIter<'_> {
        Box::new(Scan {
            engine: self,
            map: self.id(map),
            direction,
            cursor: from.to_vec(),
            inclusive: true,
            limit: FIRST_PAGE,
            low,
            high,
            buffered: VecDeque::new(),
            done: false,
        })
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn sequence(&self, map: Map, keys: &[&[u8]]) -> Result<Option<Box<dyn Sequenced + '_>>> {
        self.begin_sequenced(map, keys)
    }

    fn watch_commits(&self, on_commit: Arc<dyn Fn() + Send + Sync>) -> Result<()> {
        self.watch(on_commit)
    }

    fn stats(&self) -> Vec<StorageStat> {
        vec![StorageStat {
            name: "parvis_postgres_requests",
            help: "Requests sent to PostgreSQL, each one round trip (a query, a batch's statement, a page of a scan)",
            value: self.requests.load(Ordering::Relaxed),
            counter: true,
        }]
    }
}
