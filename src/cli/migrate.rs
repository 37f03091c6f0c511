//! `parvis migrate --from rocksdb:DIR --to postgres:URL` (or the other way): copies every map of
//! a stopped server's database into an empty database of the other engine, then reads the copy
//! back and compares it with the source (entry count and a digest per map). Media files stay
//! where they are (the data folder); the signing key, accounts, rooms and stream positions are in
//! the database and travel with it.

use std::{path::PathBuf, sync::Arc, time::Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::progress::ProgressView;
use crate::{
    config::Config,
    services::{all_maps, jobs::Progress},
    storage::{
        Batch, Direction, Engine, Map,
        postgres::{PgEngine, PostgresConfig},
        rocks::RocksEngine,
    },
};

/// A batch is written when it holds this many entries or bytes.
const BATCH_ENTRIES: usize = 2_000;
const BATCH_BYTES: usize = 8 << 20;

/// One side of a migration, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `rocksdb:DIR`: a RocksDB data folder.
    Rocksdb(PathBuf),
    /// `postgres:URL`: a PostgreSQL database (the schema comes from `--schema` or the configuration).
    Postgres(String),
}

impl std::str::FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("rocksdb", dir)) if !dir.is_empty() => Ok(Self::Rocksdb(dir.into())),
            Some(("postgres", url)) if !url.is_empty() => Ok(Self::Postgres(url.to_owned())),
            _ => Err(format!(
                "{s:?}: expected rocksdb:DIR or postgres:URL (postgres:postgresql://user@host/db)"
            )),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rocksdb(dir) => write!(f, "RocksDB in {}", dir.display()),
            Self::Postgres(url) => write!(f, "PostgreSQL at {}", redact_password(url)),
        }
    }
}

/// The URL without its password, for messages.
fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if scheme + 3 < at => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Opens one side. A RocksDB source must hold a database (opening would create one otherwise);
/// PostgreSQL uses the configured schema, pool and durability unless `schema` is given.
fn open(
    location: &Location,
    config: &Config,
    schema: Option<&str>,
    must_exist: bool,
) -> Result<Arc<dyn Engine>, String> {
    let maps = all_maps();
    let opened: Arc<dyn Engine> = match location {
        Location::Rocksdb(dir) => {
            if must_exist && !dir.join("CURRENT").exists() {
                return Err(format!("no RocksDB database in {}", dir.display()));
            }
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            RocksEngine::open(
                dir,
                &maps,
                config.storage.cache_mb,
                config.storage.write_buffer_mb,
                config.storage.sync_writes,
            )
            .map_err(|e| format!("{location}: {e} (is a server running on it?)"))?
        }
        Location::Postgres(url) => {
            let pg = PostgresConfig {
                url: url.clone(),
                schema: schema
                    .map_or_else(|| config.storage.postgres.schema.clone(), str::to_owned),
                ..config.storage.postgres.clone()
            };
            PgEngine::open(&pg, &maps)
                .map_err(|e| format!("{location}, schema {}: {e}", pg.schema))?
        }
    };
    Ok(opened)
}

/// The first map of `engine` that holds an entry.
fn first_non_empty(engine: &dyn Engine, maps: &[Map]) -> Result<Option<Map>, String> {
    for &map in maps {
        if let Some(entry) = engine.iter(map, b"", Direction::Forward).next() {
            entry.map_err(|e| e.to_string())?;
            return Ok(Some(map));
        }
    }
    Ok(None)
}

/// What one pass over a map saw.
#[derive(Default, PartialEq, Eq)]
struct MapSummary {
    entries: u64,
    bytes: u64,
    digest: [u8; 32],
}

/// Reads every entry of `map` in key order, handing each to `each`; the summary of what was read.
fn scan(
    engine: &dyn Engine,
    map: Map,
    mut each: impl FnMut(&[u8], &[u8]) -> Result<(), String>,
) -> Result<MapSummary, String> {
    let mut hasher = Sha256::new();
    let mut summary = MapSummary::default();
    for entry in engine.iter(map, b"", Direction::Forward) {
        let (key, value) = entry.map_err(|e| format!("reading {}: {e}", map.0))?;
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(&key);
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(&value);
        summary.entries += 1;
        summary.bytes += (key.len() + value.len()) as u64;
        each(&key, &value)?;
    }
    summary.digest = hasher.finalize().into();
    Ok(summary)
}

/// Copies `from` into `to` (which must be empty), verifies the copy, and says what was copied.
pub fn migrate(
    config: &Config,
    from: &Location,
    to: &Location,
    schema: Option<&str>,
) -> Result<Value, String> {
    if from == to {
        return Err("--from and --to name the same database".into());
    }
    let started = Instant::now();
    let maps = all_maps();
    let source = open(from, config, schema, true)?;
    let target = open(to, config, schema, false)?;
    if first_non_empty(source.as_ref(), &maps)?.is_none() {
        return Err(format!("{from} holds nothing to migrate"));
    }
    if let Some(map) = first_non_empty(target.as_ref(), &maps)? {
        return Err(format!(
            "{to} is not empty ({} holds data): migrate into an empty database or schema",
            map.0
        ));
    }

    let mut view = ProgressView::new();
    let mut progress = Progress {
        step: "count".into(),
        done: 0,
        total: maps.len() as u64,
    };
    let mut totals = Vec::with_capacity(maps.len());
    for &map in &maps {
        totals.push(scan(source.as_ref(), map, |_, _| Ok(()))?.entries);
        progress.done += 1;
        view.update(&progress);
    }
    let entries: u64 = totals.iter().sum();

    progress = Progress {
        step: "copy".into(),
        done: 0,
        total: entries,
    };
    let mut copied = Vec::with_capacity(maps.len());
    for &map in &maps {
        let mut batch = Batch::new();
        let mut batch_bytes = 0;
        let summary = scan(source.as_ref(), map, |key, value| {
            batch.put(map, key, value);
            batch_bytes += key.len() + value.len();
            progress.done += 1;
            if batch.ops.len() >= BATCH_ENTRIES || batch_bytes >= BATCH_BYTES {
                target
                    .write(std::mem::take(&mut batch))
                    .map_err(|e| format!("writing {}: {e}", map.0))?;
                batch_bytes = 0;
                view.update(&progress);
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            target
                .write(batch)
                .map_err(|e| format!("writing {}: {e}", map.0))?;
        }
        view.update(&progress);
        copied.push(summary);
    }

    progress = Progress {
        step: "verify".into(),
        done: 0,
        total: entries,
    };
    for (&map, source_summary) in maps.iter().zip(&copied) {
        let target_summary = scan(target.as_ref(), map, |_, _| {
            progress.done += 1;
            Ok(())
        })?;
        view.update(&progress);
        if target_summary != *source_summary {
            return Err(format!(
                "the copy of {} differs from the source ({} entries read back, {} copied)",
                map.0, target_summary.entries, source_summary.entries
            ));
        }
    }
    view.finish();
    target.flush().map_err(|e| e.to_string())?;

    let bytes: u64 = copied.iter().map(|s| s.bytes).sum();
    Ok(json!({
        "from": from.to_string(),
        "to": to.to_string(),
        "maps": copied.iter().filter(|s| s.entries > 0).count(),
        "entries": entries,
        "bytes": bytes,
        "verified": true,
        "seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_hide_passwords() {
        assert_eq!(
            "rocksdb:/var/lib/parvis".parse::<Location>(),
            Ok(Location::Rocksdb("/var/lib/parvis".into()))
        );
        let pg: Location = "postgres:postgresql://parvis:secret@db/parvis"
            .parse()
            .unwrap();
        assert_eq!(
            pg,
            Location::Postgres("postgresql://parvis:secret@db/parvis".into())
        );
        assert_eq!(
            pg.to_string(),
            "PostgreSQL at postgresql://parvis:***@db/parvis"
        );
        assert!("sqlite:x".parse::<Location>().is_err());
        assert!("rocksdb:".parse::<Location>().is_err());
        assert!("/var/lib/parvis".parse::<Location>().is_err());
    }
}
