//! Each socket option on its own, applied to a loopback connection and read
//! back, checked against what docs/PLATFORMS.md says this platform does.
//!
//! Every case prints one row (`cargo test -p tnlm-core --test platform --
//! --nocapture`), which is how the table in docs/PLATFORMS.md was observed on
//! Linux, and under Wine by ci/windows.sh. Warnings are checked by option and
//! kind only: the OS's error text differs between Linux, Windows and Wine.
#![allow(clippy::unwrap_used)]

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use clap::Parser;
use socket2::SockRef;
use tnlm_core::net;
use tnlm_core::sockopt::{Effective, SocketOptions, Warning};

#[derive(clap::Parser, Debug)]
struct Cli {
    #[command(flatten)]
    opts: SocketOptions,
}

const BUFFER: usize = 65536;

/// True when running under Wine, which sets `WINECONFIGDIR` in every process it starts.
fn under_wine() -> bool {
    cfg!(windows) && std::env::var_os("WINECONFIGDIR").is_some()
}

fn platform() -> &'static str {
    if under_wine() {
        "wine"
    } else {
        std::env::consts::OS
    }
}

/// Applies `flags` alone to the client side of a fresh loopback connection and
/// returns the warnings and what the OS reports back.
fn apply(flags: &[&str]) -> (Vec<Warning>, Effective) {
    let opts = Cli::try_parse_from(std::iter::once("x").chain(flags.iter().copied())).unwrap().opts;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _server = listener.accept().unwrap();
    let warnings = opts.apply(SockRef::from(&client));
    let effective = Effective::read(SockRef::from(&client));
    let shown: Vec<String> = warnings.iter().map(|w| format!("{} {:?}", w.option, w.kind)).collect();
    println!("{:<7} {:<26} read back: {effective}; warnings: {shown:?}", platform(), flags.join(" "));
    for warning in &warnings {
        println!("{:<7} {:<26}   warning text: {warning}", "", "");
    }
    (warnings, effective)
}

/// The one warning of a partly supported option: the platform lacks a part of it.
fn assert_unsupported(warnings: &[Warning], option: &str) {
    assert!(
        matches!(warnings, [w] if w.option == option && w.kind == ErrorKind::Unsupported && w.is_unsupported()),
        "expected one Unsupported warning for {option}, got {warnings:?}"
    );
}

#[test]
fn nodelay() {
    let (warnings, effective) = apply(&["--nodelay"]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(effective.nodelay, Some(true));
}

#[test]
fn keepalive_time_alone() {
    let (warnings, effective) = apply(&["--keepalive", "7"]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(effective.keepalive, Some(true));
    if cfg!(target_os = "linux") {
        assert_eq!(effective.keepalive_time, Some(Duration::from_secs(7)));
        assert_eq!(effective.keepalive_retries.map(|n| n > 0), Some(true), "OS default retries");
    }
    if cfg!(windows) {
        // Set together with the default 1 s interval; socket2 cannot read either back.
        assert_eq!((effective.keepalive_time, effective.keepalive_interval), (None, None));
    }
}

#[test]
fn keepalive_time_and_interval() {
    let (warnings, effective) = apply(&["--keepalive", "7,3"]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(effective.keepalive, Some(true));
    if cfg!(target_os = "linux") {
        assert_eq!(effective.keepalive_time, Some(Duration::from_secs(7)));
        assert_eq!(effective.keepalive_interval, Some(Duration::from_secs(3)));
    }
}

#[test]
fn keepalive_with_retries() {
    let (warnings, effective) = apply(&["--keepalive", "7,3,4"]);
    assert_eq!(effective.keepalive, Some(true), "keepalive stays on whatever happens to retries");
    if cfg!(target_os = "linux") {
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(effective.keepalive_retries, Some(4));
    }
    if under_wine() {
        // Wine 8.0 has no TCP_KEEPCNT (WSAENOPROTOOPT); time and interval were applied first.
        assert_unsupported(&warnings, "--keepalive");
        assert!(warnings[0].text.contains("retries unsupported"), "{}", warnings[0]);
    } else if cfg!(windows) && !warnings.is_empty() {
        // Windows before 10 1703 lacks TCP_KEEPCNT; later ones apply it.
        assert_unsupported(&warnings, "--keepalive");
    }
}

#[test]
fn linger() {
    for (secs, expected) in [("0", Duration::ZERO), ("5", Duration::from_secs(5))] {
        let (warnings, effective) = apply(&["--linger", secs]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(effective.linger, Some(Some(expected)));
    }
}

#[test]
fn user_timeout() {
    let (warnings, effective) = apply(&["--user-timeout", "1500"]);
    if cfg!(target_os = "linux") {
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(effective.user_timeout, Some(Some(Duration::from_millis(1500))));
    } else {
        assert_unsupported(&warnings, "--user-timeout");
        assert_eq!(effective.user_timeout, None, "nothing to read back");
    }
}

#[test]
fn buffers() {
    let text = BUFFER.to_string();
    let (warnings, effective) = apply(&["--recv-buffer", &text, "--send-buffer", &text]);
    assert!(warnings.is_empty(), "{warnings:?}");
    for (which, got) in [("rmem", effective.recv_buffer), ("wmem", effective.send_buffer)] {
        assert!(buffer_applied(which, BUFFER, got), "{which}: read back {got:?}");
    }
}

#[test]
fn listener_reuses_addresses_on_unix_only() {
    let (listener, warnings) = net::listen((Ipv4Addr::LOCALHOST, 0).into(), &SocketOptions::default()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let reuse = SockRef::from(&listener).reuse_address().unwrap();
    println!("{:<7} listener SO_REUSEADDR: {reuse}", platform());
    assert_eq!(reuse, cfg!(unix), "SO_REUSEADDR is set on Unix and never on Windows");
    // Either way, a second listener cannot take the port: an error of kind AddrInUse.
    let local = listener.local_addr().unwrap();
    let err = net::listen(local, &SocketOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
}

/// True when a buffer of `set` bytes was applied, judged by what the OS
/// reports back (`which`: `rmem` or `wmem`).
fn buffer_applied(which: &str, set: usize, got: Option<usize>) -> bool {
    if cfg!(target_os = "linux") {
        // Linux doubles the value (room for its bookkeeping), after capping it at net.core.*mem_max.
        let max = std::fs::read_to_string(format!("/proc/sys/net/core/{which}_max")).unwrap();
        got == Some(2 * set.min(max.trim().parse().unwrap()))
    } else if cfg!(windows) {
        got == Some(set) // Windows (and Wine) report back what was set
    } else {
        got.is_some()
    }
}

#[test]
fn listener_options_take_effect_or_are_warned_about_by_name() {
    // Buffer sizes are set on the listener before listen(), so that accepted
    // connections inherit them; dual-stack is asked for on [::]. 48 KiB is not
    // half of a Linux default (128 KiB receive, 16 KiB send): an unapplied size shows.
    const SIZE: usize = 48 * 1024;
    let opts = SocketOptions { recv_buffer: Some(SIZE), send_buffer: Some(SIZE), ..SocketOptions::default() };
    let (listener, warnings) = net::listen_any(0, &opts).unwrap();
    let local = listener.local_addr().unwrap();
    println!("{:<7} listen_any: {local} {warnings:?}", platform());
    let warned = |option: &str| warnings.iter().any(|w| w.option == option);
    let socket = SockRef::from(&listener);
    // Each one either took effect or has a warning naming it; never both, never neither.
    let dual_stack = local.is_ipv6() && !socket.only_v6().unwrap();
    assert_ne!(dual_stack, warned("listen"), "dual-stack {dual_stack} on {local}: {warnings:?}");
    let effective = Effective::read(socket);
    for (which, option, got) in
        [("rmem", "--recv-buffer", effective.recv_buffer), ("wmem", "--send-buffer", effective.send_buffer)]
    {
        assert_ne!(
            buffer_applied(which, SIZE, got),
            warned(option),
            "{option}: read back {got:?}, warnings {warnings:?}"
        );
    }
    assert!(warnings.iter().all(|w| ["listen", "--recv-buffer", "--send-buffer"].contains(&w.option)), "{warnings:?}");
}

#[test]
fn refused_connection_is_an_error_kind_not_a_text() {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let err = net::connect(&addr.to_string(), &SocketOptions::default(), Duration::from_secs(10)).unwrap_err();
    println!("{:<7} connection refused: kind {:?}, os error {:?}", platform(), err.kind(), err.raw_os_error());
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}
