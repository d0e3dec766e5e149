//! Socket options and address helpers over real loopback sockets: flags parsed with clap,
//! applied with socket2, read back from the kernel; dual-stack listening and connecting.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use clap::Parser;
use socket2::SockRef;
use tnlm_core::net;
use tnlm_core::requirement::Need;
use tnlm_core::sockopt::{Effective, Keepalive, SocketOptions};
use tnlm_core::{Decoder, Frame};

/// A command line made of nothing but the shared socket options.
#[derive(clap::Parser, Debug)]
struct Cli {
    #[command(flatten)]
    opts: SocketOptions,
}

const BUFFER: usize = 65536;
const TIMEOUT: Duration = Duration::from_secs(10);

fn all_options() -> SocketOptions {
    let cli = Cli::try_parse_from([
        "x",
        "--nodelay",
        "--keepalive",
        "7,3,4",
        "--linger",
        "0",
        "--user-timeout",
        "1500",
        "--recv-buffer",
        "65536",
        "--send-buffer",
        "65536",
    ])
    .unwrap();
    cli.opts
}

/// A connected (client, server) pair on `ip`, or `None` (after [`Need::missing`]) if an
/// IPv6 `ip` cannot be bound; IPv4 loopback is always there.
fn pair(ip: IpAddr) -> Option<(TcpStream, TcpStream)> {
    let listener = match TcpListener::bind(SocketAddr::new(ip, 0)) {
        Ok(listener) => listener,
        Err(err) if ip.is_ipv6() => {
            Need::Ipv6.missing("sockopt over IPv6", format!("cannot bind {ip} ({err})"));
            return None;
        }
        Err(err) => panic!("cannot bind {ip}: {err}"),
    };
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    Some((client, server))
}

/// Linux reports back twice the requested buffer size, capped by `/proc/sys/net/core/*_max`.
#[cfg(target_os = "linux")]
fn linux_buffer_expectation(which: &str, requested: usize) -> Option<usize> {
    let max: usize = std::fs::read_to_string(format!("/proc/sys/net/core/{which}_max")).ok()?.trim().parse().ok()?;
    (requested <= max).then_some(2 * requested)
}

fn assert_effective(stream: &TcpStream, what: &str) {
    let effective = Effective::read(SockRef::from(stream));
    println!("{what}: {effective}");
    assert_eq!(effective.nodelay, Some(true), "{what}");
    assert_eq!(effective.keepalive, Some(true), "{what}");
    assert_eq!(effective.linger, Some(Some(Duration::ZERO)), "{what}");
    for (got, requested) in [(effective.recv_buffer, BUFFER), (effective.send_buffer, BUFFER)] {
        let got = got.unwrap();
        assert!(got >= requested, "{what}: buffer {got} < {requested}");
    }
    let display = effective.to_string();
    assert!(display.contains("nodelay=on") && display.contains("linger=0s"), "{display}");
    #[cfg(target_os = "linux")]
    {
        assert_eq!(effective.keepalive_time, Some(Duration::from_secs(7)), "{what}");
        assert_eq!(effective.keepalive_interval, Some(Duration::from_secs(3)), "{what}");
        assert_eq!(effective.keepalive_retries, Some(4), "{what}");
        assert_eq!(effective.user_timeout, Some(Some(Duration::from_millis(1500))), "{what}");
        if let Some(expected) = linux_buffer_expectation("rmem", BUFFER) {
            assert_eq!(effective.recv_buffer, Some(expected), "{what}");
        }
        if let Some(expected) = linux_buffer_expectation("wmem", BUFFER) {
            assert_eq!(effective.send_buffer, Some(expected), "{what}");
        }
        assert!(
            display.contains("time=7s interval=3s retries=4") && display.contains("user_timeout=1500ms"),
            "{display}"
        );
    }
}

/// A frame goes through, then the abortive close (linger 0) resets the peer.
fn exchange_then_abort(client: TcpStream, mut server: TcpStream) {
    let frame = Frame::new(42, tnlm_core::message::SendRequest { to: 1, text: "über loopback".into() });
    (&client).write_all(&frame.to_bytes().unwrap()).unwrap();
    server.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut decoder = Decoder::default();
    let mut buf = [0u8; 64];
    let got = loop {
        let n = server.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the frame arrived");
        decoder.feed(&buf[..n]);
        if let Some(frame) = decoder.next_frame().unwrap() {
            break frame;
        }
    };
    assert_eq!(got, frame);
    drop(client);
    let after_close = server.read(&mut buf);
    #[cfg(target_os = "linux")]
    assert_eq!(
        after_close.as_ref().map_err(std::io::Error::kind).err(),
        Some(std::io::ErrorKind::ConnectionReset),
        "linger 0 should reset the connection, got {after_close:?}"
    );
    #[cfg(not(target_os = "linux"))]
    println!("read after abortive close: {after_close:?}");
}

fn apply_and_check(ip: IpAddr) {
    let Some((client, server)) = pair(ip) else {
        return;
    };
    let warnings = all_options().apply(SockRef::from(&client));
    #[cfg(target_os = "linux")]
    assert!(warnings.is_empty(), "{warnings:?}");
    #[cfg(not(target_os = "linux"))]
    for warning in &warnings {
        println!("warning on this platform: {warning}");
    }
    assert_effective(&client, &format!("client on {ip}"));
    exchange_then_abort(client, server);
}

#[test]
fn clap_parses_every_flag() {
    let opts = all_options();
    assert_eq!(
        opts,
        SocketOptions {
            nodelay: true,
            keepalive: Some(Keepalive {
                time: Duration::from_secs(7),
                interval: Some(Duration::from_secs(3)),
                retries: Some(4),
            }),
            linger: Some(0),
            user_timeout: Some(1500),
            recv_buffer: Some(BUFFER),
            send_buffer: Some(BUFFER),
        }
    );
    assert_eq!(Cli::try_parse_from(["x"]).unwrap().opts, SocketOptions::default());
    let short = Cli::try_parse_from(["x", "--keepalive=10"]).unwrap().opts.keepalive.unwrap();
    assert_eq!((short.time, short.interval, short.retries), (Duration::from_secs(10), None, None));
    let two = Cli::try_parse_from(["x", "--keepalive", " 10 , 2 "]).unwrap().opts.keepalive.unwrap();
    assert_eq!((two.time, two.interval, two.retries), (Duration::from_secs(10), Some(Duration::from_secs(2)), None));
}

#[test]
fn clap_rejects_bad_values_with_errors_not_panics() {
    use clap::error::ErrorKind;
    let cases: &[(&[&str], &str)] = &[
        (&["--keepalive", "0"], "keepalive"),
        (&["--keepalive", "a,b"], "keepalive"),
        (&["--keepalive", "5,0"], "keepalive"),
        (&["--keepalive", "1,2,3,4"], "keepalive"),
        (&["--keepalive", ""], "keepalive"),
        (&["--keepalive"], "keepalive"),
        (&["--linger", "-1"], "-1"),
        (&["--linger=-1"], "linger"),
        (&["--linger", "4294967296"], "linger"),
        (&["--user-timeout", "soon"], "user-timeout"),
        (&["--recv-buffer", "-5"], "-5"),
        (&["--send-buffer", "1k"], "send-buffer"),
        (&["--recv-buffer", "0"], "recv-buffer"),
        (&["--recv-buffer", "4294967296"], "2147483647"),
        (&["--send-buffer", "2147483648"], "2147483647"),
        (&["--send-buffer", "18446744073709551616"], "send-buffer"),
        (&["--nodelay=yes"], "nodelay"),
    ];
    for (args, mentions) in cases {
        let argv = std::iter::once("x").chain(args.iter().copied());
        let err = match Cli::try_parse_from(argv) {
            Ok(cli) => panic!("{args:?} was accepted as {:?}", cli.opts),
            Err(err) => err,
        };
        assert!(
            !matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion),
            "{args:?}: {:?}",
            err.kind()
        );
        let text = err.to_string();
        assert!(text.contains(mentions), "{args:?}: error does not mention {mentions:?}:\n{text}");
    }
    let err = Cli::try_parse_from(["x", "--keepalive", "0"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ValueValidation);
    assert!(err.to_string().contains("TIME"), "{err}");
    let err = Cli::try_parse_from(["x", "--keepalive", "a,b"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ValueValidation);

    let help = Cli::try_parse_from(["x", "--help"]).unwrap_err();
    assert_eq!(help.kind(), ErrorKind::DisplayHelp);
    let help = help.to_string();
    for flag in
        ["Socket options", "--nodelay", "--keepalive", "--linger", "--user-timeout", "--recv-buffer", "--send-buffer"]
    {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}

/// The OS keeps a buffer size in a C `int`: a larger value would silently become another
/// size (4294967296 → 0), so clap refuses it; the largest `int` is accepted.
#[test]
fn buffer_sizes_stop_at_the_largest_c_int() {
    let largest = i32::MAX.to_string();
    let cli = Cli::try_parse_from(["x", "--recv-buffer", &largest, "--send-buffer", "1"]).unwrap();
    assert_eq!((cli.opts.recv_buffer, cli.opts.send_buffer), (Some(i32::MAX as usize), Some(1)));
    let err = Cli::try_parse_from(["x", "--recv-buffer", "4294967296"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    assert!(err.to_string().contains("1..=2147483647"), "{err}");
}

#[test]
fn options_apply_and_read_back_over_ipv4() {
    apply_and_check(IpAddr::V4(Ipv4Addr::LOCALHOST));
}

#[test]
fn options_apply_and_read_back_over_ipv6() {
    apply_and_check(IpAddr::V6(Ipv6Addr::LOCALHOST));
}

#[test]
fn default_options_change_nothing() {
    let Some((client, _server)) = pair(IpAddr::V4(Ipv4Addr::LOCALHOST)) else {
        return;
    };
    let before = Effective::read(SockRef::from(&client));
    let warnings = SocketOptions::default().apply(SockRef::from(&client));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(Effective::read(SockRef::from(&client)), before);
    assert_eq!(before.linger, Some(None), "linger is off by default");
}

#[test]
fn listen_any_accepts_ipv4_and_ipv6_clients() {
    let opts = SocketOptions { recv_buffer: Some(BUFFER), ..SocketOptions::default() };
    let (listener, warnings) = net::listen_any(0, &opts).unwrap();
    let local = listener.local_addr().unwrap();
    assert!(local.ip().is_unspecified(), "{local}");
    let port = local.port();
    assert_ne!(port, 0);
    let dual_stack = local.is_ipv6() && warnings.is_empty();
    if !dual_stack {
        Need::Ipv6
            .missing("listen_any_accepts_ipv4_and_ipv6_clients", format!("not dual-stack ({local}, {warnings:?})"));
    }
    #[cfg(target_os = "linux")]
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(net::reachable(local).port(), port);
    assert!(net::reachable(local).ip().is_loopback());

    // IPv4 client: the dual-stack listener sees ::ffff:127.0.0.1, canonical() makes it plain V4.
    let v4 = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    let (accepted, peer) = listener.accept().unwrap();
    let canonical = net::canonical(peer);
    assert_eq!(canonical, v4.local_addr().unwrap(), "peer {peer}");
    assert!(matches!(canonical, SocketAddr::V4(_)), "{canonical}");
    assert_eq!(canonical.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    if dual_stack {
        assert_eq!(peer.ip(), IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()));
    }
    // The listener's buffer size was set before listen() and is inherited.
    #[cfg(target_os = "linux")]
    assert!(Effective::read(SockRef::from(&accepted)).recv_buffer.unwrap() >= BUFFER);
    drop((v4, accepted));

    // IPv6 client.
    if dual_stack {
        match TcpStream::connect((Ipv6Addr::LOCALHOST, port)) {
            Ok(v6) => {
                let (_accepted, peer) = listener.accept().unwrap();
                assert_eq!(peer, v6.local_addr().unwrap());
                assert_eq!(net::canonical(peer), peer, "a real IPv6 peer stays IPv6");
                assert_eq!(peer.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
            }
            Err(err) => Need::Ipv6
                .missing("listen_any_accepts_ipv4_and_ipv6_clients", format!("cannot connect to [::1]:{port} ({err})")),
        }
    }
}

#[test]
fn canonical_and_reachable_addresses() {
    let mapped = SocketAddr::new(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()), 7);
    assert_eq!(net::canonical(mapped), "192.0.2.1:7".parse().unwrap());
    for plain in ["192.0.2.1:7", "[2001:db8::1]:7", "[::1]:7", "127.0.0.1:7"] {
        let addr: SocketAddr = plain.parse().unwrap();
        assert_eq!(net::canonical(addr), addr);
    }
    assert_eq!(net::reachable("0.0.0.0:9".parse().unwrap()), "127.0.0.1:9".parse().unwrap());
    assert_eq!(net::reachable("[::]:9".parse().unwrap()), "[::1]:9".parse().unwrap());
    assert_eq!(net::reachable("192.0.2.1:9".parse().unwrap()), "192.0.2.1:9".parse().unwrap());
}

#[test]
fn connect_applies_options() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (client, warnings) = net::connect(&format!("127.0.0.1:{port}"), &all_options(), TIMEOUT).unwrap();
    #[cfg(target_os = "linux")]
    assert!(warnings.is_empty(), "{warnings:?}");
    #[cfg(not(target_os = "linux"))]
    println!("warnings: {warnings:?}");
    let (server, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert_effective(&client, "net::connect");
    exchange_then_abort(client, server);
}

#[test]
fn connect_over_ipv6_and_by_name() {
    // IPv6 literal.
    match TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
        Ok(listener) => {
            let port = listener.local_addr().unwrap().port();
            let (client, _) = net::connect(&format!("[::1]:{port}"), &SocketOptions::default(), TIMEOUT).unwrap();
            assert_eq!(listener.accept().unwrap().1, client.local_addr().unwrap());
        }
        Err(err) => Need::Ipv6.missing("connect_over_ipv6_and_by_name", format!("cannot bind [::1] ({err})")),
    }
    // "localhost" may resolve to ::1 first: connect must go on to 127.0.0.1.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = format!("localhost:{port}");
    let resolves_to_v4 = target.to_socket_addrs().is_ok_and(|mut addrs| addrs.any(|a| a.ip() == Ipv4Addr::LOCALHOST));
    if resolves_to_v4 {
        let (client, _) = net::connect(&target, &SocketOptions::default(), TIMEOUT).unwrap();
        assert_eq!(listener.accept().unwrap().1, client.local_addr().unwrap());
    } else {
        println!("skipping connect by name: localhost does not resolve to 127.0.0.1 here");
    }
}

#[test]
fn connect_failures_are_errors() {
    // A port nobody listens on: bind one, then close it.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    let err = net::connect(&format!("127.0.0.1:{port}"), &all_options(), TIMEOUT).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // No port at all.
    assert!(net::connect("127.0.0.1", &SocketOptions::default(), TIMEOUT).is_err());
}

#[test]
fn listen_on_a_specific_address() {
    let (listener, warnings) = net::listen((Ipv4Addr::LOCALHOST, 0).into(), &SocketOptions::default()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let local = listener.local_addr().unwrap();
    assert_eq!(local.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    let client = TcpStream::connect(local).unwrap();
    assert_eq!(listener.accept().unwrap().1, client.local_addr().unwrap());
    // SO_REUSEADDR does not let a second listener take a port in use.
    assert!(net::listen(local, &SocketOptions::default()).is_err());
}
