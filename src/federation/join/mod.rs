//! Joins and leaves over federation: as the resident server (`resident`: make_join, send_join,
//! make_leave, send_leave).

pub mod outliers;
pub mod remote;
pub mod resident;
