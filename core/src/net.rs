//! Address and socket helpers shared by both binaries: dual-stack listening,
//! connecting with options applied before the handshake, and canonical
//! (IPv4-as-IPv4) peer addresses.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::sockopt::{SocketOptions, Warning};

/// How many pending connections the kernel queues before `accept`.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Shows an IPv4 peer of a dual-stack `[::]` listener (`::ffff:a.b.c.d`) as plain IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// A listener on `addr`. On `[::]` it also accepts IPv4 (dual-stack) where the
/// OS allows; otherwise it warns and serves IPv6 only. SO_REUSEADDR is set on
/// Unix (so a restarted server can bind while old connections sit in
/// TIME_WAIT) and never on Windows, where it would let another process take
/// over the port.
pub fn listen(addr: SocketAddr, options: &SocketOptions) -> io::Result<(TcpListener, Vec<Warning>)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    let mut warnings = Vec::new();
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        if let Err(err) = socket.set_only_v6(false) {
            warnings.push(Warning::new(
                "listen",
                err.kind(),
                format!("dual-stack not available, serving IPv6 only: {err}"),
            ));
        }
    }
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    options.apply_buffers(SockRef::from(&socket), &mut |what, result| {
        if let Err(err) = result {
            warnings.push(Warning::new(what, err.kind(), format!("{what} not applied to the listener: {err}")));
        }
    });
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok((socket.into(), warnings))
}

/// Binds `[::]:port` dual-stack, falling back to `0.0.0.0:port` on hosts without IPv6.
pub fn listen_any(port: u16, options: &SocketOptions) -> io::Result<(TcpListener, Vec<Warning>)> {
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    listen(v6, options).or_else(|err| {
        if matches!(err.kind(), io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied) {
            return Err(err); // IPv6 works; the port is the problem
        }
        let (listener, mut warnings) = listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port), options)?;
        warnings.push(Warning::new("listen", err.kind(), format!("IPv6 unavailable ({err}), listening on IPv4 only")));
        Ok((listener, warnings))
    })
}

/// Where to connect to reach a listener bound to `local` (used to wake a
/// blocking `accept` at shutdown): the loopback address for an unspecified bind.
pub fn reachable(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// Connects to `target` (`host:port`, `[ipv6]:port`, `[ipv6%zone]:port`), trying each
/// resolved address in turn, with the socket options applied before the handshake.
///
/// `timeout` bounds the whole attempt, not each address: every address gets an equal
/// share of the time still left, so a host whose first addresses are unreachable still
/// gets its later ones tried, and N unreachable addresses take `timeout`, not N times it.
/// The error is the last address's.
pub fn connect(target: &str, options: &SocketOptions, timeout: Duration) -> io::Result<(TcpStream, Vec<Warning>)> {
    let deadline = Instant::now() + timeout;
    connect_any(target, &resolve(target)?, options, deadline)
}

/// Resolves `target`. A bracketed host goes to the resolver without its brackets, which
/// is how a zone given by name (`[fe80::1%eth0]:4579`) resolves: std parses numeric
/// zones only.
fn resolve(target: &str) -> io::Result<Vec<SocketAddr>> {
    let bracketed = target.strip_prefix('[').and_then(|rest| rest.rsplit_once("]:"));
    if let Some((host, port)) = bracketed {
        if let Ok(port) = port.parse::<u16>() {
            return Ok((host, port).to_socket_addrs()?.collect());
        }
    }
    Ok(target.to_socket_addrs()?.collect())
}

/// Tries `addrs` (resolved from `target`) in order until `deadline`, each with an
/// equal share of the time left.
fn connect_any(
    target: &str,
    addrs: &[SocketAddr],
    options: &SocketOptions,
    deadline: Instant,
) -> io::Result<(TcpStream, Vec<Warning>)> {
    let mut last_err = None;
    for (index, &addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let share = left / u32::try_from(addrs.len() - index).unwrap_or(u32::MAX);
        match connect_addr(addr, options, share.max(Duration::from_millis(1))) {
            Ok(connected) => return Ok(connected),
            Err(err) => last_err = Some(err),
        }
    }
    Err(last_err.unwrap_or_else(|| match addrs {
        [] => io::Error::new(io::ErrorKind::NotFound, format!("{target} resolved to no address")),
        _ => io::Error::new(io::ErrorKind::TimedOut, format!("no connection to {target} in time")),
    }))
}

fn connect_addr(addr: SocketAddr, options: &SocketOptions, timeout: Duration) -> io::Result<(TcpStream, Vec<Warning>)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    let warnings = options.apply(SockRef::from(&socket));
    if let Err(err) = socket.connect_timeout(&addr.into(), timeout) {
        if !made_then_closed(&socket, &err) {
            return Err(err);
        }
    }
    Ok((socket.into(), warnings))
}

/// True when a failed `connect_timeout` in fact connected and the peer closed at
/// once (a server that accepts and hangs up). Windows' `WSAPoll` then reports
/// only `POLLHUP` with no socket error, which socket2 turns into an error without
/// an OS code; the socket still has its peer, and the first read will see the
/// close, so the caller can report what really happened.
fn made_then_closed(socket: &Socket, err: &io::Error) -> bool {
    err.raw_os_error().is_none() && err.kind() != io::ErrorKind::TimedOut && socket.peer_addr().is_ok()
}

/// True when a read or write on a socket with a timeout (`SO_RCVTIMEO`,
/// `SO_SNDTIMEO`) gave up because that timeout passed: the connection may be
/// fine, it was just quiet (or not reading).
///
/// On Unix such a timeout is `EAGAIN` ([`io::ErrorKind::WouldBlock`]), while
/// `ETIMEDOUT` ([`io::ErrorKind::TimedOut`]) means the *connection* timed out
/// (keepalive probes unanswered, `TCP_USER_TIMEOUT`) and must not be mistaken
/// for a quiet tick. Windows reports its socket timeouts as `WSAETIMEDOUT`.
#[cfg(unix)]
pub fn is_socket_timeout(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

/// See the Unix version: on Windows a socket timeout is `WSAETIMEDOUT`.
#[cfg(not(unix))]
pub fn is_socket_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A listener on 127.0.0.1 whose accept queue is full (backlog 0, one connection
    /// queued), so Linux drops further SYNs: a connect to it hangs until its timeout.
    #[cfg(target_os = "linux")]
    fn black_hole() -> (Socket, TcpStream, SocketAddr) {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).unwrap();
        socket.listen(0).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let queued = TcpStream::connect(addr).unwrap();
        (socket, queued, addr)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn unreachable_addresses_share_one_timeout() {
        let holes = [black_hole(), black_hole(), black_hole()];
        let addrs: Vec<SocketAddr> = holes.iter().map(|hole| hole.2).collect();
        let timeout = Duration::from_secs(1);
        let start = Instant::now();
        let err = connect_any("holes", &addrs, &SocketOptions::default(), start + timeout).unwrap_err();
        let elapsed = start.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        // Each address got a third; one timeout per address would take 3 s.
        assert!(elapsed >= timeout - Duration::from_millis(50), "{elapsed:?}");
        assert!(elapsed < timeout * 2, "{elapsed:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_unreachable_first_address_leaves_time_for_the_next() {
        let hole = black_hole();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addrs = [hole.2, listener.local_addr().unwrap()];
        let deadline = Instant::now() + Duration::from_secs(2);
        let (stream, _) = connect_any("two", &addrs, &SocketOptions::default(), deadline).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), addrs[1]);
    }

    #[test]
    fn bracketed_hosts_resolve_with_their_zone() {
        let port = |addrs: Vec<SocketAddr>| addrs.iter().map(SocketAddr::port).collect::<Vec<_>>();
        assert_eq!(resolve("[::1]:4579").unwrap(), ["[::1]:4579".parse().unwrap()]);
        assert_eq!(port(resolve("127.0.0.1:9").unwrap()), [9]);
        // A link-local address names its interface; std alone parses only numbers there.
        #[cfg(target_os = "linux")]
        {
            let addrs = resolve("[fe80::1%lo]:4579").unwrap();
            let Some(SocketAddr::V6(v6)) = addrs.first() else { panic!("{addrs:?}") };
            assert_eq!((v6.ip().to_string(), v6.port()), ("fe80::1".to_string(), 4579));
            assert_ne!(v6.scope_id(), 0, "the zone became the interface index");
        }
        assert!(resolve("[::1]").is_err(), "no port");
    }

    #[test]
    fn no_address_or_no_time_left_are_errors() {
        let none = connect_any("nowhere", &[], &SocketOptions::default(), Instant::now() + Duration::from_secs(1));
        assert_eq!(none.unwrap_err().kind(), io::ErrorKind::NotFound);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let late = connect_any("late", &[listener.local_addr().unwrap()], &SocketOptions::default(), Instant::now());
        assert_eq!(late.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
