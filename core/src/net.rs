//! Address and socket helpers shared by both binaries: dual-stack listening,
//! connecting with options applied before the handshake, and canonical
//! (IPv4-as-IPv4) peer addresses.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

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

/// Connects to `target` (`host:port`), trying each resolved address in turn,
/// with the socket options applied before the handshake.
pub fn connect(target: &str, options: &SocketOptions, timeout: Duration) -> io::Result<(TcpStream, Vec<Warning>)> {
    let mut last_err = io::Error::new(io::ErrorKind::NotFound, format!("{target} resolved to no address"));
    for addr in target.to_socket_addrs()? {
        match connect_addr(addr, options, timeout) {
            Ok(connected) => return Ok(connected),
            Err(err) => last_err = err,
        }
    }
    Err(last_err)
}

fn connect_addr(addr: SocketAddr, options: &SocketOptions, timeout: Duration) -> io::Result<(TcpStream, Vec<Warning>)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    let warnings = options.apply(SockRef::from(&socket));
    socket.connect_timeout(&addr.into(), timeout)?;
    Ok((socket.into(), warnings))
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
