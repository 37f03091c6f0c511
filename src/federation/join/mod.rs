//! Joins and leaves over federation: as the resident server (`resident`: make_join, send_join,
//! make_leave, send_leave), as the joining server (`remote`), and the full state of rooms joined
//! with partial state fetched after the join (`resync`; what waits for it: `deferred_state`).

pub mod deferred_state;
pub mod events_answer;
pub mod outliers;
pub mod remote;
pub mod resident;
pub mod resync;
