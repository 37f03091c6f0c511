//! The C heap (glibc's malloc), which RocksDB allocates from (Rust's allocations go through
//! mimalloc). glibc gives each thread that allocates its own arena, up to eight per core, and keeps
//! what is freed in them: after a load, a quarter of Parvis's resident memory was freed memory in
//! arenas of RocksDB's callers. [`limit_arenas`] keeps one arena; [`spawn_trim`] hands the free
//! pages of the heap back to the system every few seconds (`malloc_trim`), and forces mimalloc's
//! delayed purges at the same time (`mimalloc_collect`). Elsewhere than glibc, the first two do
//! nothing. Measured in bench/README.md ("Memory").

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use super::Services;

/// How often free pages of the C heap are given back.
const TRIM_EVERY: Duration = Duration::from_secs(10);

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;

    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
        fn malloc_trim(pad: usize) -> c_int;
    }

    /// `M_ARENA_MAX` of glibc's malloc.h.
    const M_ARENA_MAX: c_int = -8;

    pub fn limit_arenas(n: c_int) {
        // SAFETY: mallopt only changes a malloc parameter; it is safe to call at any time.
        unsafe {
            mallopt(M_ARENA_MAX, n);
        }
    }

    pub fn trim() -> bool {
        // SAFETY: malloc_trim takes the arenas' locks itself.
        unsafe { malloc_trim(0) == 1 }
    }
}

/// Gives back the pages mimalloc keeps after frees (it waits a few milliseconds before giving
/// them back, so that a busy server does not fault them in again at once): `mi_collect`, forced.
pub fn mimalloc_collect() {
    // SAFETY: mi_collect may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// One arena for the whole process; call before threads start.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::limit_arenas(1);
}

/// Gives the C heap's free pages back to the system every [`TRIM_EVERY`] until `stop`.
pub fn spawn_trim(services: Arc<Services>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(TRIM_EVERY) => {}
            }
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            let _ = services
                .run(|_| {
                    mimalloc_collect();
                    Ok(glibc::trim())
                })
                .await;
            #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
            let _ = &services;
        }
    })
}
