//! CPU accounting: the CPU time the generator, the server (`--server-pid`) and
//! the whole machine used during a run, from /proc (Linux; `None` elsewhere),
//! so a run shows which side was the bottleneck and what else competed for the
//! cores.

/// CPU times read at the start of a run; [`used_since`](Self::used_since)
/// reads them again and gives the differences.
#[derive(Debug, Clone, Copy)]
pub(super) struct CpuClock {
    /// The server's process id, if given.
    server_pid: Option<u32>,
    /// This process's CPU seconds.
    own: Option<f64>,
    /// The server's CPU seconds.
    server: Option<f64>,
    /// Every process's CPU seconds.
    machine: Option<f64>,
}

/// CPU seconds used during a run.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CpuUsed {
    /// By this generator.
    pub(super) own: Option<f64>,
    /// By the `--server-pid` process.
    pub(super) server: Option<f64>,
    /// By every process on the machine.
    pub(super) machine: Option<f64>,
}

impl CpuClock {
    /// Reads the CPU times now (the processes', then the machine's).
    pub(super) fn start(server_pid: Option<u32>) -> CpuClock {
        let own = cpu_seconds("self");
        let server = server_pid.and_then(|pid| cpu_seconds(&pid.to_string()));
        CpuClock { server_pid, own, server, machine: machine_busy_seconds() }
    }

    /// The CPU time used since [`start`](Self::start) (read in the reverse
    /// order, so the machine's window lies within the processes').
    pub(super) fn used_since(&self) -> CpuUsed {
        let since = |after: Option<f64>, before: Option<f64>| after.zip(before).map(|(after, before)| after - before);
        let machine = since(machine_busy_seconds(), self.machine);
        let own = since(cpu_seconds("self"), self.own);
        let server = since(self.server_pid.and_then(|pid| cpu_seconds(&pid.to_string())), self.server);
        CpuUsed { own, server, machine }
    }
}

/// User + system CPU time of process `pid` (`self` for this one), from
/// `/proc/<pid>/stat` (Linux; `None` elsewhere). The kernel reports it in
/// USER_HZ ticks, which are 1/100 s on Linux.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at "state".
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU time all processes have used since boot (user, nice, system, irq,
/// softirq, steal), from the first line of `/proc/stat`, in seconds (USER_HZ
/// = 100). `None` off Linux.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| ticks.get(i)).sum();
    Some(busy / 100.0)
}
