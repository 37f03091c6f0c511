//! The process's own figures, read from `/proc/self` at each scrape (Linux): resident and virtual
//! memory, CPU time, open file descriptors, threads. Missing files give no figures.

/// Clock ticks per second of `/proc/self/stat`'s CPU times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Default, Clone)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub threads: u64,
}

impl ProcessStats {
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces), which ends with ')'.
        let after = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // Numbering of proc(5), minus the first two: utime 14, stime 15, num_threads 20,
        // vsize 23, rss 24 (pages).
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        let page = 4096;
        Some(Self {
            resident_bytes: field(24)? * page,
            virtual_bytes: field(23)?,
            cpu_seconds: (field(14)? + field(15)?) as f64 / TICKS_PER_SECOND,
            open_fds: std::fs::read_dir("/proc/self/fd")
                .map(|d| d.count() as u64)
                .unwrap_or(0),
            threads: field(20)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_of_this_process() {
        let stats = super::ProcessStats::read().expect("Linux /proc");
        assert!(stats.resident_bytes > 1 << 20, "{stats:?}");
        assert!(stats.virtual_bytes >= stats.resident_bytes, "{stats:?}");
        assert!(stats.threads >= 1 && stats.open_fds >= 3, "{stats:?}");
    }
}
