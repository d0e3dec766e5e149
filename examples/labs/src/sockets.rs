//! What the operating system says about TCP sockets, read by the experiments
//! themselves instead of asking the student to run `netstat`.
//!
//! - Linux: `/proc/net/tcp` and `/proc/net/tcp6` — the same table `netstat`
//!   and `ss` read. Besides the state it has the socket's timer (for TIME_WAIT:
//!   the time left), the unacknowledged bytes and the retransmission count,
//!   and for a listening socket the length of its accept queue.
//!   [`segment_counts`] asks `ss -ti` for the kernel's per-connection
//!   segment counters.
//! - Windows (and elsewhere): the output of `netstat -an -p TCP` (and `TCPv6`),
//!   which has the addresses and the state only.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

/// A TCP state as RFC 793 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// Connected.
    Established,
    /// Active open: SYN sent, waiting for SYN-ACK.
    SynSent,
    /// Passive open: SYN received, SYN-ACK sent.
    SynReceived,
    /// Closed first: FIN sent, not yet acknowledged.
    FinWait1,
    /// Closed first: our FIN acknowledged, waiting for the peer's FIN.
    FinWait2,
    /// Closed first and both FINs done: waiting 2×MSL before forgetting the connection.
    TimeWait,
    /// Gone.
    Closed,
    /// The peer closed first (its FIN arrived); we have not closed yet.
    CloseWait,
    /// The peer closed first, then we did; waiting for the ACK of our FIN.
    LastAck,
    /// A listening socket.
    Listen,
    /// Both sides closed at the same time.
    Closing,
}

impl TcpState {
    /// From the hex code in `/proc/net/tcp` (`include/net/tcp_states.h`).
    fn from_linux(code: u8) -> Option<TcpState> {
        Some(match code {
            0x01 => TcpState::Established,
            0x02 => TcpState::SynSent,
            0x03 => TcpState::SynReceived,
            0x04 => TcpState::FinWait1,
            0x05 => TcpState::FinWait2,
            0x06 => TcpState::TimeWait,
            0x07 => TcpState::Closed,
            0x08 => TcpState::CloseWait,
            0x09 => TcpState::LastAck,
            0x0A => TcpState::Listen,
            0x0B => TcpState::Closing,
            _ => return None,
        })
    }

    /// From the state column of `netstat -an` (Windows spells LISTEN as LISTENING).
    fn from_netstat(name: &str) -> Option<TcpState> {
        Some(match name.to_ascii_uppercase().replace('-', "_").as_str() {
            "ESTABLISHED" | "ESTAB" => TcpState::Established,
            "SYN_SENT" => TcpState::SynSent,
            "SYN_RECEIVED" | "SYN_RECV" => TcpState::SynReceived,
            "FIN_WAIT_1" | "FIN_WAIT1" => TcpState::FinWait1,
            "FIN_WAIT_2" | "FIN_WAIT2" => TcpState::FinWait2,
            "TIME_WAIT" => TcpState::TimeWait,
            "CLOSED" | "CLOSE" => TcpState::Closed,
            "CLOSE_WAIT" => TcpState::CloseWait,
            "LAST_ACK" => TcpState::LastAck,
            "LISTEN" | "LISTENING" => TcpState::Listen,
            "CLOSING" => TcpState::Closing,
            _ => return None,
        })
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynReceived => "SYN_RECEIVED",
            TcpState::FinWait1 => "FIN_WAIT_1",
            TcpState::FinWait2 => "FIN_WAIT_2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Closed => "CLOSED",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
        })
    }
}

/// One row of the OS's TCP socket table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    /// This end.
    pub local: SocketAddr,
    /// The other end (`0.0.0.0:0` for a listener).
    pub remote: SocketAddr,
    /// The TCP state.
    pub state: TcpState,
    /// Linux: time left on the socket's timer (for TIME_WAIT: until it is forgotten).
    pub timer: Option<Duration>,
    /// Linux: bytes sent but not yet acknowledged by the peer.
    pub unacked: Option<u32>,
    /// Linux: for a listener, connections waiting in its accept queue; otherwise
    /// bytes received but not yet read by the program.
    pub rx_queue: Option<u32>,
    /// Linux: retransmissions of the oldest unacknowledged segment so far.
    pub retransmits: Option<u32>,
}

impl Socket {
    /// True if this is one end of the connection between `a` and `b`, seen from `a`.
    pub fn is(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        same(self.local, local) && same(self.remote, remote)
    }
}

/// Addresses equal up to IPv4-mapped IPv6 (`::ffff:127.0.0.1` is `127.0.0.1`).
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// The whole TCP socket table of this machine (this network namespace).
pub fn table() -> Result<Vec<Socket>, String> {
    if cfg!(target_os = "linux") {
        let mut sockets = parse_proc(&read("/proc/net/tcp")?, false)?;
        if let Ok(v6) = std::fs::read_to_string("/proc/net/tcp6") {
            sockets.extend(parse_proc(&v6, true)?);
        }
        Ok(sockets)
    } else {
        let mut sockets = Vec::new();
        for protocol in ["TCP", "TCPv6"] {
            let out = Command::new("netstat")
                .args(["-an", "-p", protocol])
                .output()
                .map_err(|e| format!("cannot run netstat: {e}"))?;
            sockets.extend(parse_netstat(&String::from_utf8_lossy(&out.stdout)));
        }
        Ok(sockets)
    }
}

/// Where the table comes from, for printing.
pub fn source() -> &'static str {
    if cfg!(target_os = "linux") {
        "/proc/net/tcp"
    } else {
        "netstat -an"
    }
}

/// The table's rows for the connection `local` → `remote` (seen from `local`).
pub fn find(local: SocketAddr, remote: SocketAddr) -> Result<Option<Socket>, String> {
    Ok(table()?.into_iter().find(|s| s.is(local, remote)))
}

/// Both ends of the connection between `a` and `b` (for a connection on this machine).
pub fn both_ends(a: SocketAddr, b: SocketAddr) -> Result<(Option<Socket>, Option<Socket>), String> {
    let table = table()?;
    let end = |local, remote| table.iter().find(|s| s.is(local, remote)).cloned();
    Ok((end(a, b), end(b, a)))
}

/// Every socket whose local or remote port is `port`, listener first.
pub fn on_port(port: u16) -> Result<Vec<Socket>, String> {
    let mut rows: Vec<Socket> =
        table()?.into_iter().filter(|s| s.local.port() == port || s.remote.port() == port).collect();
    rows.sort_by_key(|s| (s.state != TcpState::Listen, s.local.port() != port, s.local.port(), s.remote.port()));
    Ok(rows)
}

/// Prints rows like `netstat -an` does, with the Linux extras when known.
pub fn print(rows: &[Socket], indent: &str) {
    println!("{indent}{:<24} {:<24} {:<12} extra", "local address", "remote address", "state");
    for row in rows {
        let mut extra = Vec::new();
        if let (TcpState::Listen, Some(queued)) = (row.state, row.rx_queue) {
            extra.push(format!("accept queue {queued}"));
        }
        if let (TcpState::TimeWait, Some(left)) = (row.state, row.timer) {
            extra.push(format!("{:.1} s left", left.as_secs_f64()));
        }
        if let Some(unacked) = row.unacked.filter(|&n| n > 0 && row.state != TcpState::Listen) {
            extra.push(format!("{unacked} bytes unacknowledged"));
        }
        if let Some(retransmits) = row.retransmits.filter(|&n| n > 0) {
            extra.push(format!("{retransmits} retransmissions"));
        }
        let state = row.state.to_string();
        println!(
            "{indent}{:<24} {:<24} {:<12} {}",
            row.local.to_string(),
            row.remote.to_string(),
            state,
            extra.join(", ")
        );
    }
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// Clock ticks per second in `/proc` timers (USER_HZ, 100 on every Linux port).
const USER_HZ: u64 = 100;

/// Parses `/proc/net/tcp` (or `tcp6`):
/// `sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …`.
fn parse_proc(text: &str, v6: bool) -> Result<Vec<Socket>, String> {
    let mut sockets = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 7 {
            continue;
        }
        let bad = || format!("unexpected line in /proc/net/tcp: {line}");
        let local = proc_addr(fields[1], v6).ok_or_else(bad)?;
        let remote = proc_addr(fields[2], v6).ok_or_else(bad)?;
        let state = u8::from_str_radix(fields[3], 16).ok().and_then(TcpState::from_linux).ok_or_else(bad)?;
        let (tx, rx) = fields[4].split_once(':').ok_or_else(bad)?;
        let (timer_active, when) = fields[5].split_once(':').ok_or_else(bad)?;
        let when = u64::from_str_radix(when, 16).unwrap_or(0);
        sockets.push(Socket {
            local,
            remote,
            state,
            timer: (timer_active != "00").then(|| Duration::from_millis(when * 1000 / USER_HZ)),
            unacked: u32::from_str_radix(tx, 16).ok(),
            rx_queue: u32::from_str_radix(rx, 16).ok(),
            retransmits: u32::from_str_radix(fields[6], 16).ok(),
        });
    }
    Ok(sockets)
}

/// `0100007F:1A2B` → 127.0.0.1:6699. The address is printed as 32-bit words
/// in the kernel's byte order, the port in hex as a number.
fn proc_addr(text: &str, v6: bool) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for word in 0..addr.len() / 8 {
        let value = u32::from_str_radix(addr.get(word * 8..word * 8 + 8)?, 16).ok()?;
        bytes.extend_from_slice(&value.to_ne_bytes());
    }
    let ip = if v6 {
        let bytes: [u8; 16] = bytes.try_into().ok()?;
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        let bytes: [u8; 4] = bytes.try_into().ok()?;
        IpAddr::V4(Ipv4Addr::from(bytes))
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses `netstat -an` lines such as `  TCP    127.0.0.1:4579   127.0.0.1:50000   ESTABLISHED`
/// (Windows; IPv6 addresses are in brackets there).
fn parse_netstat(text: &str) -> Vec<Socket> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 4 || !fields[0].eq_ignore_ascii_case("tcp") {
                return None;
            }
            Some(Socket {
                local: fields[1].parse().ok()?,
                remote: fields[2].parse().ok()?,
                state: TcpState::from_netstat(fields[3])?,
                timer: None,
                unacked: None,
                rx_queue: None,
                retransmits: None,
            })
        })
        .collect()
}

/// Segments carrying data that the kernel counted for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCounts {
    /// Data segments this end sent.
    pub data_out: u64,
    /// Data segments this end received.
    pub data_in: u64,
}

/// The kernel's data-segment counters of the connection `local` → `remote`
/// (`ss -ti`: `data_segs_out`, `data_segs_in`); `None` where `ss` is missing
/// (not Linux) or does not show them.
pub fn segment_counts(local: SocketAddr, remote: SocketAddr) -> Option<SegmentCounts> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let out =
        Command::new("ss").args(["-tinH", "src", &local.to_string(), "dst", &remote.to_string()]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let counter = |name: &str| {
        text.split_whitespace().find_map(|token| token.strip_prefix(name).and_then(|n| n.parse::<u64>().ok()))
    };
    Some(SegmentCounts { data_out: counter("data_segs_out:").unwrap_or(0), data_in: counter("data_segs_in:")? })
}

/// One connection as `ss -tino` shows it: besides the state, the timer that
/// is running and how often it has fired — what a student reads to see a
/// socket retrying with growing intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsView {
    /// The TCP state.
    pub state: TcpState,
    /// The running timer's kind: `on` (retransmission), `persist` (probe:
    /// here a FIN that could not even leave), `keepalive`, `timewait`.
    pub timer: Option<String>,
    /// Time until that timer fires.
    pub due_in: Option<Duration>,
    /// How many times it has fired so far (retransmissions or probes).
    pub fired: u32,
    /// The exponential backoff: each retry waits 2^backoff × the base timeout.
    pub backoff: u32,
    /// Bytes queued but not sent yet (1 for a FIN that has no route out).
    pub not_sent: u32,
}

impl fmt::Display for SsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.state)?;
        if self.not_sent > 0 {
            write!(f, ", {} byte(s) not sent yet", self.not_sent)?;
        }
        let due = |d: &Duration| format!("{:.2} s", d.as_secs_f64());
        match (&self.timer, &self.due_in) {
            (Some(timer), Some(left)) if timer != "timewait" => {
                let next = due(left);
                write!(f, ", timer {timer} fired {} time(s), backoff {}, next in {next}", self.fired, self.backoff)
            }
            (Some(_), Some(left)) => write!(f, ", {} left", due(left)),
            _ => Ok(()),
        }
    }
}

/// The connection whose local port is `port`, seen by `ss -tino` run in the
/// network namespace `netns` (or in this one for `None`). `Ok(None)`: the OS
/// has no such socket (any more).
pub fn ss_view(netns: Option<&str>, port: u16) -> Result<Option<SsView>, String> {
    let filter = format!("sport = :{port}");
    let mut args: Vec<&str> = Vec::new();
    if let Some(name) = netns {
        args.extend(["ip", "netns", "exec", name]);
    }
    args.extend(["ss", "-tinoH", "state", "all", &filter]);
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(parse_ss(&String::from_utf8_lossy(&out.stdout)))
}

/// A time as `ss` prints a timer: `432ms`, `6.460ms` (6.46 s), `12sec`, `2min`.
fn parse_ss_time(text: &str) -> Option<Duration> {
    if let Some(minutes) = text.strip_suffix("min") {
        return Some(Duration::from_secs(60 * minutes.parse::<u64>().ok()?));
    }
    if let Some(seconds) = text.strip_suffix("sec") {
        return Some(Duration::from_secs(seconds.parse().ok()?));
    }
    let millis = text.strip_suffix("ms")?;
    match millis.split_once('.') {
        Some((s, ms)) => Some(Duration::from_secs(s.parse().ok()?) + Duration::from_millis(ms.parse().ok()?)),
        None => Some(Duration::from_millis(millis.parse().ok()?)),
    }
}

/// Reads the first socket of `ss -tinoH` output (its line and the info line after it).
fn parse_ss(text: &str) -> Option<SsView> {
    let state = TcpState::from_netstat(text.split_whitespace().next()?)?;
    let field = |name: &str| text.split_whitespace().find_map(|token| token.strip_prefix(name));
    let number = |name: &str| field(name).and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
    // timer:(persist,432ms,2)
    let timer: Vec<&str> = field("timer:(").map(|t| t.trim_end_matches(')').split(',').collect()).unwrap_or_default();
    Some(SsView {
        state,
        timer: timer.first().map(|s| s.to_string()),
        due_in: timer.get(1).and_then(|t| parse_ss_time(t)),
        fired: timer.get(2).and_then(|n| n.parse().ok()).unwrap_or(0),
        backoff: number("backoff:"),
        not_sent: number("notsent:"),
    })
}

/// Linux's range of ephemeral ports (`net.ipv4.ip_local_port_range`).
pub fn ephemeral_range() -> Option<(u16, u16)> {
    if cfg!(target_os = "linux") {
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        let mut parts = text.split_whitespace().map(|p| p.parse::<u16>());
        Some((parts.next()?.ok()?, parts.next()?.ok()?))
    } else if cfg!(windows) && std::env::var_os("WINECONFIGDIR").is_none() {
        // The IANA dynamic range, Windows' default. Not under Wine (which sets
        // WINECONFIGDIR): there the host's kernel picks the port from its own range.
        Some((49152, 65535))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ss_lines_are_read_with_their_timer_and_backoff() {
        let text = "FIN-WAIT-1 0 1 10.79.3.2:36148 10.79.3.1:4581 timer:(persist,1.072ms,3)\n\t ts sack cubic rto:204 backoff:3 rtt:0.083/0.041 notsent:1 minrtt:0.083\n";
        let view = parse_ss(text).unwrap();
        assert_eq!(view.state, TcpState::FinWait1);
        assert_eq!((view.timer.as_deref(), view.due_in), (Some("persist"), Some(Duration::from_millis(1072))));
        assert_eq!((view.fired, view.backoff, view.not_sent), (3, 3, 1));
        let waiting = parse_ss("TIME-WAIT 0 0 10.79.1.2:35516 10.79.1.1:4580 timer:(timewait,59sec,0)\n").unwrap();
        assert_eq!(waiting.to_string(), "TIME_WAIT, 59.00 s left");
        assert_eq!(parse_ss_time("024ms"), Some(Duration::from_millis(24)));
        assert_eq!(parse_ss_time("2min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_ss(""), None);
    }

    #[test]
    fn proc_lines_parse() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
             0: 0100007F:11E3 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   \
             1: 0100007F:C350 0100007F:11E3 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0\n";
        let rows = parse_proc(text, false).unwrap();
        assert_eq!(rows[0].local, "127.0.0.1:4579".parse().unwrap());
        assert_eq!((rows[0].state, rows[0].rx_queue), (TcpState::Listen, Some(3)));
        assert_eq!(rows[1].state, TcpState::TimeWait);
        assert_eq!(rows[1].remote.port(), 4579);
        assert_eq!(rows[1].timer, Some(Duration::from_secs(60)));
    }

    #[test]
    fn windows_netstat_lines_parse() {
        let text = "\nActive Connections\n\n  Proto  Local Address          Foreign Address        State\n  \
                    TCP    0.0.0.0:4579           0.0.0.0:0              LISTENING\n  \
                    TCP    10.180.176.105:61766   10.180.176.119:4579    TIME_WAIT\n  \
                    TCP    [::1]:4579             [::1]:50001            ESTABLISHED\n";
        let rows = parse_netstat(text);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].state, TcpState::Listen);
        assert_eq!(rows[1].state, TcpState::TimeWait);
        assert_eq!(rows[2].remote, "[::1]:50001".parse().unwrap());
    }
}
