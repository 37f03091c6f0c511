//! Receiving room events and EDUs from other servers.

pub mod e2ee_edus;
pub mod edus;
pub mod missing;
pub mod partial_auth;
pub mod pdu_checks;
pub mod persist;
pub mod same_room;
pub mod state_at;
pub mod transaction;
pub mod txn_expiry;
