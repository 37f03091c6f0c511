//! Commands of the `parvis` binary besides `serve` that need more than a few lines: backup and
//! restore, and the progress display of long jobs.

pub mod backup;
pub mod progress;
