//! `parvis rebuild-search` (server stopped): deletes the search index and indexes every stored
//! event again, with progress. The running server keeps its index current by itself (and indexes
//! at start what an older version stored); this is for an index an operator wants rebuilt.

use serde_json::{Value, json};

use super::progress::ProgressView;
use crate::{
    config::Config,
    services::{
        Services,
        jobs::Progress,
        search::rebuild::{BATCH, clear, step},
        timeline::EVENT_META,
    },
};

pub fn rebuild(config: &Config) -> Result<Value, String> {
    if !config.has_database() {
        return Err(format!("no database in {}", config.storage.path.display()));
    }
    let services = Services::open(config.clone()).map_err(|e| {
        format!(
            "cannot open the database ({}): stop the server first",
            e.message
        )
    })?;
    let result = run(&services).map_err(|e| e.message);
    services.shutdown();
    result
}

fn run(s: &Services) -> crate::error::Result<Value> {
    let mut total = 0u64;
    for entry in s.globals.db.scan_prefix(EVENT_META, &[]) {
        entry?;
        total += 1;
    }
    let mut view = ProgressView::new();
    view.update(&Progress::new("clearing", 0, 1));
    clear(s)?;
    view.update(&Progress::new("clearing", 1, 1));
    let mut done = 0u64;
    view.update(&Progress::new("events", 0, total));
    while !step(s)? {
        done = (done + BATCH as u64).min(total);
        view.update(&Progress::new("events", done, total));
    }
    view.update(&Progress::new("events", total, total));
    view.finish();
    Ok(json!({ "events": total }))
}
