//! `parvis backup --out DIR` and `parvis restore --from DIR`.
//!
//! A backup of a running server is made by the server itself (RocksDB's lock keeps other processes
//! out of its database): the command asks it through the control socket (`api::control`) and shows
//! the progress it reports. When no server runs, the command opens the database and backs it up.

use std::{os::unix::net::UnixStream, path::Path};

use serde_json::{Value, json};

use super::progress::ProgressView;
use crate::{
    config::Config,
    services::backup,
    storage::{Db, rocks::RocksEngine},
};

/// Backs up the server's data folder into `out`; answers the finished job (or what was copied).
pub fn backup(config: &Config, out: &Path) -> Result<Value, String> {
    let out = std::path::absolute(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let socket = config.storage.path.join(crate::api::control::SOCKET);
    match UnixStream::connect(&socket) {
        Ok(stream) => super::control::ask(stream, &json!({ "command": "backup", "out": out })),
        Err(_) => without_a_server(config, &out),
    }
}

fn without_a_server(config: &Config, out: &Path) -> Result<Value, String> {
    let data = &config.storage.path;
    if !data.join("CURRENT").exists() {
        return Err(format!("no database in {}", data.display()));
    }
    let engine = RocksEngine::open(
        data,
        &crate::services::all_maps(),
        config.storage.cache_mb,
        config.storage.write_buffer_mb,
        config.storage.sync_writes,
    )
    .map_err(|e| {
        format!(
            "cannot open the database in {} ({e}); a server that holds it answers on {}",
            data.display(),
            crate::api::control::SOCKET
        )
    })?;
    let db = Db::new(engine);
    let mut view = ProgressView::new();
    let media = config.storage.media_dir();
    let result = backup::backup(&db, data, &media, out, 0, &mut |p| view.update(&p));
    view.finish();
    result.map_err(|e| e.message)
}

/// Restores the latest backup in `from` into the configured (new) data folder.
pub fn restore(config: &Config, from: &Path) -> Result<Value, String> {
    let mut view = ProgressView::new();
    let result = backup::restore(
        from,
        &config.storage.path,
        &config.storage.media_dir(),
        &mut |p| view.update(&p),
    );
    view.finish();
    result.map_err(|e| e.message)
}
