//! Parvis, a Matrix homeserver.
//!
//! Layers: `api` (HTTP routing, thin handlers) → `services` (rooms, timeline, state, sync, …) →
//! `storage` (the key-value interface and its RocksDB engine).

pub mod api;
pub mod cli;
pub mod config;
pub mod error;
pub mod federation;
pub mod server;
pub mod services;
pub mod storage;
pub mod util;
