//! Commands of the `parvis` binary besides `serve` that need more than a few lines: backup and
//! restore, exports, migration between engines, the search index rebuild, the client of the control socket, and the progress display of long jobs.

pub mod backup;
pub mod control;
pub mod export;
pub mod migrate;
pub mod progress;
pub mod search;
