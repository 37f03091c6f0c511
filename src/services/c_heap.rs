//! The C heap (glibc's malloc), which RocksDB allocates from (Rust's allocations go through
//! mimalloc). glibc gives each thread that allocates its own arena, up to eight per core, and keeps
//! what is freed in them: after a load, a quarter of Parvis's resident memory was freed memory in
//! arenas of RocksDB's callers. [`limit_arenas`] keeps one arena; [`spawn_trim`] hands the free
//! pages of the heap back to the system (`malloc_trim`), and forces mimalloc's delayed purges at
//! the same time (`mimalloc_collect`): as soon as a burst of work is over (a second of nearly no
//! CPU time), and every ten seconds under a continuous load. Elsewhere than glibc, the first two
//! do nothing. Measured in bench/README.md ("Memory").

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use super::Services;

/// How often the trim worker looks at the process's CPU time.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Under a continuous load, free pages are given back this often.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const TRIM_EVERY: Duration = Duration::from_secs(10);
/// A look that finds less CPU time than this spent since the last is idle: the work since the last
/// trim is over, and what it freed is given back at once.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const IDLE_CPU: Duration = Duration::from_millis(10);

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

    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }

    unsafe extern "C" {
        fn clock_gettime(clock: c_int, ts: *mut Timespec) -> c_int;
    }

    /// `CLOCK_PROCESS_CPUTIME_ID` of glibc's time.h.
    const CLOCK_PROCESS_CPUTIME_ID: c_int = 2;

    /// The CPU time the process has used, all threads together.
    pub fn process_cpu() -> std::time::Duration {
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec into the valid pointer it is given.
        if unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::new(
            ts.tv_sec.max(0) as u64,
            ts.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    }
}

/// When to give free pages back, from the process's CPU time at each look (pure).
#[derive(Debug, Default)]
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
struct Trimmer {
    last_cpu: Duration,
    /// Work was done since the last trim (a look that was not idle).
    worked: bool,
    /// Since the first look that found work after the last trim.
    working_for: Duration,
}

#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
impl Trimmer {
    fn new(cpu: Duration) -> Self {
        Self {
            last_cpu: cpu,
            ..Self::default()
        }
    }

    /// A look, [`LOOK_EVERY`] after the last, finding `cpu`: whether to trim now. Only after work:
    /// when it is over, or every [`TRIM_EVERY`] while it goes on.
    fn look(&mut self, cpu: Duration) -> bool {
        let busy = cpu.saturating_sub(self.last_cpu) >= IDLE_CPU;
        self.last_cpu = cpu;
        if busy && !self.worked {
            self.worked = true;
            self.working_for = Duration::ZERO;
        }
        self.working_for += LOOK_EVERY;
        self.worked && (!busy || self.working_for >= TRIM_EVERY)
    }

    /// A trim was done; `cpu` after it (its own CPU time is no work to trim after).
    fn trimmed(&mut self, cpu: Duration) {
        *self = Self::new(cpu);
    }
}

/// Gives back the pages mimalloc keeps after frees (it waits a few milliseconds before giving
/// them back, so that a busy server does not fault them in again at once): `mi_collect`, forced.
pub fn mimalloc_collect() {
    // SAFETY: mi_collect may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// `mi_option_arena_eager_commit` in mimalloc's `mi_option_e` (v3's `mimalloc.h`; the Rust
/// bindings' constants follow v2's numbering). The test below checks it against the option that
/// mimalloc reads from `MIMALLOC_ARENA_EAGER_COMMIT`.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const ARENA_EAGER_COMMIT_VAR: &std::ffi::CStr = c"MIMALLOC_ARENA_EAGER_COMMIT";

/// mimalloc commits its arenas' memory as it is used rather than at their reservation, unless
/// `MIMALLOC_ARENA_EAGER_COMMIT` says otherwise. Takes effect for arenas reserved afterwards:
/// call before the first allocation (`main.rs` calls it from an ELF constructor). Allocates
/// nothing.
pub fn mimalloc_commit_on_demand() {
    unsafe extern "C" {
        fn getenv(name: *const std::ffi::c_char) -> *mut std::ffi::c_char;
    }
    // SAFETY: getenv reads the environment, which no other thread writes this early; the name is
    // a NUL-terminated string.
    if unsafe { getenv(ARENA_EAGER_COMMIT_VAR.as_ptr()) }.is_null() {
        // SAFETY: mi_option_set only stores the option's value.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
    }
}

/// One arena for the whole process; call before threads start.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::limit_arenas(1);
}

/// Gives the free pages of both heaps back to the system when a burst of work is over, and every
/// [`TRIM_EVERY`] under a continuous load (see [`Trimmer`]), until `stop`.
pub fn spawn_trim(services: Arc<Services>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        let mut trimmer = Trimmer::new(glibc::process_cpu());
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            if trimmer.look(glibc::process_cpu()) {
                let _ = services
                    .run(|_| {
                        mimalloc_collect();
                        Ok(glibc::trim())
                    })
                    .await;
                trimmer.trimmed(glibc::process_cpu());
            }
            #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
            let _ = &services;
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{IDLE_CPU, Trimmer};

    const BUSY: Duration = Duration::from_millis(500);

    /// Set in the probe's environment: the test runs as the probe.
    const PROBE: &str = "PARVIS_TEST_MIMALLOC_PROBE";

    fn eager_commit() -> std::ffi::c_long {
        // SAFETY: reads an option's value.
        unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_ARENA_EAGER_COMMIT) }
    }

    /// The option index is the one mimalloc reads from `MIMALLOC_ARENA_EAGER_COMMIT` (checked in a
    /// copy of this test process started with it set, as mimalloc reads its environment when the
    /// process starts), a value there is kept, and without it the option becomes 0.
    #[test]
    fn the_arena_commit_option_is_mimallocs_and_the_environment_overrides_it() {
        if std::env::var_os(PROBE).is_some() {
            assert_eq!(eager_commit(), 3, "the environment's value");
            super::mimalloc_commit_on_demand();
            assert_eq!(eager_commit(), 3, "kept");
            return;
        }
        let name = "services::c_heap::tests::the_arena_commit_option_is_mimallocs_and_the_environment_overrides_it";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1"])
            .env(PROBE, "1")
            // Not a value mimalloc uses: no other option holds it by default.
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "3")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "probe: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
            assert_ne!(eager_commit(), 0, "mimalloc's default");
            super::mimalloc_commit_on_demand();
            assert_eq!(eager_commit(), 0);
        }
    }

    /// The process's CPU time, and the trimmer looking at it.
    struct Process {
        cpu: Duration,
        trimmer: Trimmer,
    }

    impl Process {
        fn new() -> Self {
            let cpu = Duration::from_secs(3);
            Self {
                cpu,
                trimmer: Trimmer::new(cpu),
            }
        }

        /// A second in which `spent` CPU time was used: whether it ends with a trim.
        fn second(&mut self, spent: Duration) -> bool {
            self.cpu += spent;
            let trim = self.trimmer.look(self.cpu);
            if trim {
                self.trimmer.trimmed(self.cpu);
            }
            trim
        }
    }

    #[test]
    fn free_pages_go_back_when_a_burst_is_over_and_every_ten_seconds_under_load() {
        let mut p = Process::new();
        // Idle from the start: nothing to give back.
        assert!((0..30).all(|_| !p.second(Duration::from_millis(1))));
        // A burst of three seconds, then the first idle second trims, once.
        assert!((0..3).all(|_| !p.second(BUSY)));
        assert!(p.second(Duration::ZERO));
        assert!(!p.second(Duration::ZERO));
        // Under a continuous load: every ten seconds.
        let trims: Vec<usize> = (1..=25).filter(|_| p.second(BUSY)).collect();
        assert_eq!(trims, vec![10, 20]);
        // Just under the idle threshold is idle.
        let mut p = Process::new();
        assert!(!p.second(IDLE_CPU));
        assert!(p.second(IDLE_CPU - Duration::from_micros(1)));
    }
}
