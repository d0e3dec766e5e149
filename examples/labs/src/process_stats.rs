//! What the operating system says about a process (its threads, memory, open
//! files, context switches) and the limits that bound how many clients it can
//! hold. Read from `/proc` on Linux; elsewhere every reading is `None`, and
//! the experiments say so.

/// One process at one moment, from `/proc/<pid>/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Its threads (`Threads:` in `status`).
    pub threads: u64,
    /// Resident memory in KiB (`VmRSS:` in `status`).
    pub rss_kib: u64,
    /// Open file descriptors (entries of `fd/`).
    pub files: u64,
    /// Memory map areas (lines of `maps`); `vm.max_map_count` bounds them.
    pub maps: u64,
    /// Voluntary and involuntary context switches of its live threads,
    /// summed over `task/*/status` (a thread that has ended takes its count along).
    pub switches: u64,
}

/// The limits that bound how many clients a server process can hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// The process's soft `RLIMIT_NOFILE` ("Max open files" in `limits`).
    pub open_files: Option<u64>,
    /// `vm.max_map_count`: memory map areas per process.
    pub max_map_count: Option<u64>,
    /// Threads the whole machine may run: the smaller of `kernel.pid_max`
    /// and `kernel.threads-max`.
    pub tasks: Option<u64>,
    /// Threads running on the machine now (`/proc/loadavg`).
    pub tasks_in_use: Option<u64>,
    /// Memory available for new allocations, in KiB (`MemAvailable:` in `/proc/meminfo`).
    pub mem_available_kib: Option<u64>,
}

/// Reads process `pid` now (`None` off Linux, or if it is gone).
pub fn sample(pid: u32) -> Option<Sample> {
    #[cfg(target_os = "linux")]
    return linux::sample(pid);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Reads the limits that apply to process `pid` (all `None` off Linux).
pub fn limits(pid: u32) -> Limits {
    #[cfg(target_os = "linux")]
    return linux::limits(pid);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        Limits::default()
    }
}

/// Raises this process's soft limit of open files to its hard limit (child
/// processes inherit it) and returns the new soft limit; `None` where there
/// is no such limit (Windows) or it cannot be read.
pub fn raise_open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        let (soft, hard) = rlimit::Resource::NOFILE.get().ok()?;
        if soft < hard && rlimit::Resource::NOFILE.set(hard, hard).is_ok() {
            return Some(hard);
        }
        Some(soft)
    }
    #[cfg(not(unix))]
    None
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs;

    use super::{Limits, Sample};

    pub(super) fn sample(pid: u32) -> Option<Sample> {
        let dir = format!("/proc/{pid}");
        let status = fs::read_to_string(format!("{dir}/status")).ok()?;
        let mut switches = 0;
        for task in fs::read_dir(format!("{dir}/task")).ok()?.flatten() {
            // A thread may end between the listing and the read: it then counts nothing.
            if let Ok(status) = fs::read_to_string(task.path().join("status")) {
                switches += field(&status, "voluntary_ctxt_switches:").unwrap_or(0)
                    + field(&status, "nonvoluntary_ctxt_switches:").unwrap_or(0);
            }
        }
        Some(Sample {
            threads: field(&status, "Threads:")?,
            rss_kib: field(&status, "VmRSS:")?,
            files: fs::read_dir(format!("{dir}/fd")).ok()?.count() as u64,
            maps: fs::read_to_string(format!("{dir}/maps")).ok()?.lines().count() as u64,
            switches,
        })
    }

    pub(super) fn limits(pid: u32) -> Limits {
        let sysctl = |name: &str| fs::read_to_string(format!("/proc/sys/{name}")).ok()?.trim().parse::<u64>().ok();
        let tasks = match (sysctl("kernel/pid_max"), sysctl("kernel/threads-max")) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Limits {
            open_files: open_files(pid),
            max_map_count: sysctl("vm/max_map_count"),
            tasks,
            tasks_in_use: tasks_in_use(),
            mem_available_kib: fs::read_to_string("/proc/meminfo").ok().and_then(|m| field(&m, "MemAvailable:")),
        }
    }

    /// The first number after `name` on its line (`VmRSS:   1234 kB` → 1234).
    fn field(text: &str, name: &str) -> Option<u64> {
        let line = text.lines().find_map(|line| line.strip_prefix(name))?;
        line.split_whitespace().next()?.parse().ok()
    }

    /// The soft limit from `Max open files   20000   20000   files`.
    fn open_files(pid: u32) -> Option<u64> {
        let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
        field(&limits, "Max open files")
    }

    /// The fourth field of `/proc/loadavg`, `running/total`: the total.
    fn tasks_in_use() -> Option<u64> {
        let loadavg = fs::read_to_string("/proc/loadavg").ok()?;
        loadavg.split_whitespace().nth(3)?.split('/').nth(1)?.parse().ok()
    }
}
