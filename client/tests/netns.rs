//! The lab report's pulled cable, for real: a client in a network namespace of
//! the test's own is cut off (its link goes down, so no FIN or RST can reach
//! the server) and killed. We measure how long the server keeps the ghost in
//! its list under each detection mechanism, and check that a message sent to
//! the ghost meanwhile is never reported delivered.
//!
//! Needs root and `ip` (iproute2); elsewhere each test prints why it skips.
//! All traffic stays on a veth pair between this machine and a namespace the
//! test creates (10.77.N.0/24) and deletes again.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::Client;
use tnlm_client::connection::{wait_response, Settings};
use tnlm_client::Connection;
use tnlm_core::message::{DeliveryStatus, ListRequest, SendRequest};
use tnlm_core::requirement::Need;
use tnlm_core::sockopt::{Keepalive, SocketOptions};
use tnlm_core::Message;
use tnlm_server::{Config, RunningServer, Server};

/// What the OS may add to a detection bound on a loaded 2-core machine
/// (scheduling the server's threads, the kernel's timer granularity); the
/// tests assert docs/RELIABILITY.md's bound plus this, and the page says so.
const ALLOWANCE: f64 = 0.3;

/// A namespace with one end of a veth pair; the other end stays on the host.
struct Netns {
    name: String,
    host_if: String,
    client_if: String,
    host_ip: IpAddr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Netns {
    /// Creates `tnlm-<pid>-<n>` with 10.77.<n>.2 inside and 10.77.<n>.1 on the host.
    fn create() -> Result<Netns, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id() % 200;
        let net = Netns {
            name: format!("tnlm-{}-{n}", std::process::id()),
            host_if: format!("tnlmh{n}"),
            client_if: format!("tnlmc{n}"),
            host_ip: format!("10.77.{n}.1").parse().unwrap(),
        };
        ip(&["netns", "add", &net.name])?;
        let setup = || -> Result<(), String> {
            ip(&["link", "add", &net.host_if, "type", "veth", "peer", "name", &net.client_if])?;
            ip(&["link", "set", &net.client_if, "netns", &net.name])?;
            ip(&["addr", "add", &format!("10.77.{n}.1/24"), "dev", &net.host_if])?;
            ip(&["link", "set", &net.host_if, "up"])?;
            ip(&["-n", &net.name, "addr", "add", &format!("10.77.{n}.2/24"), "dev", &net.client_if])?;
            ip(&["-n", &net.name, "link", "set", &net.client_if, "up"])?;
            ip(&["-n", &net.name, "link", "set", "lo", "up"])
        };
        setup().map(|()| net)
    }

    /// Pulls the cable: the client's side of the link goes down.
    fn cut(&self) {
        ip(&["-n", &self.name, "link", "set", &self.client_if, "down"]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// The namespace, or `None` after printing why this machine cannot make one.
fn netns_or_skip(test: &str) -> Option<Netns> {
    match Netns::create() {
        Ok(net) => Some(net),
        Err(why) => {
            Need::Netns.missing(test, format!("cannot create a network namespace (needs root and iproute2): {why}"));
            None
        }
    }
}

fn server_on(net: &Netns, tweak: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config = Config { bind: Some(net.host_ip), port: 0, name: "netns".into(), ..Config::default() };
    tweak(&mut config);
    Server::bind(config).unwrap().spawn()
}

/// A client in the namespace that connects and listens; returns it and its id.
fn ghost(net: &Netns, server: &RunningServer) -> (Client, u32) {
    let target = server.local_addr().to_string();
    let mut client = Client::spawn_in_netns(&net.name, &["--connect", &target, "--json", "listen"]);
    let hello = client.wait_json("hello");
    let id = u32::try_from(hello["id"].as_u64().unwrap()).unwrap();
    (client, id)
}

/// Sends `text` to `to` from a fresh local client and returns the delivery status.
fn send_to(server: &RunningServer, to: u32) -> DeliveryStatus {
    let settings = Settings::new(&SocketOptions::default(), Duration::from_secs(60));
    let (mut connection, mut inbox) = Connection::open(&server.local_addr().to_string(), &settings).unwrap();
    let id = connection.send(SendRequest { to, text: "are you still there?".into() }).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let frame = wait_response(&mut inbox, id, deadline, |_| {}).unwrap();
    let Message::Delivery(delivery) = frame.message else { panic!("{frame:?}") };
    delivery.status
}

/// Cuts the ghost off and kills it, optionally messages it, then measures how
/// long the server lists it. Returns (seconds until gone, delivery status).
fn pull_the_cable(net: &Netns, server: &RunningServer, message_it: bool) -> (f64, Option<DeliveryStatus>) {
    let (mut client, id) = ghost(net, server);
    assert!(server.clients().iter().any(|c| c.id == id), "the ghost is listed while connected");
    net.cut();
    let cut = Instant::now();
    client.kill();
    let status = message_it.then(|| send_to(server, id));
    assert!(server.wait_client_gone(id, Duration::from_secs(60)), "client {id} was never dropped");
    let gone = cut.elapsed().as_secs_f64();
    let settings = Settings::new(&SocketOptions::default(), Duration::from_secs(10));
    let (mut connection, mut inbox) = Connection::open(&server.local_addr().to_string(), &settings).unwrap();
    let request = connection.send(ListRequest).unwrap();
    let frame = wait_response(&mut inbox, request, Instant::now() + Duration::from_secs(10), |_| {}).unwrap();
    let Message::ListResponse(list) = frame.message else { panic!() };
    assert!(list.clients.iter().all(|c| c.id != id), "the ghost is still listed: {list:?}");
    (gone, status)
}

#[test]
fn heartbeat_drops_a_pulled_cable_within_three_intervals() {
    let Some(net) = netns_or_skip("heartbeat_drops_a_pulled_cable_within_three_intervals") else { return };
    let server = server_on(&net, |c| {
        c.heartbeat = Some(Duration::from_secs(1));
        c.ack_timeout = Duration::from_millis(1500);
    });
    let (gone, status) = pull_the_cable(&net, &server, true);
    // 3 × SECS + min(SECS / 8, 1 s) after the last sign of life, which came before the cut.
    let bound = 3.0 + 1.0 / 8.0 + ALLOWANCE;
    eprintln!(
        "--heartbeat 1: ghost listed for {gone:.2} s after the cut (bound {bound:.3} s); message to it: {status:?}"
    );
    assert!(gone <= bound, "took {gone:.2} s");
    assert_ne!(status, Some(DeliveryStatus::Delivered), "a message to the ghost was reported delivered");
}

#[test]
fn keepalive_alone_drops_an_idle_ghost_after_time_plus_interval_times_retries() {
    let Some(net) = netns_or_skip("keepalive_alone_drops_an_idle_ghost_after_time_plus_interval_times_retries") else {
        return;
    };
    let keepalive =
        Keepalive { time: Duration::from_secs(1), interval: Some(Duration::from_secs(1)), retries: Some(2) };
    let server = server_on(&net, |c| {
        c.heartbeat = None;
        c.socket.keepalive = Some(keepalive);
    });
    let (gone, _) = pull_the_cable(&net, &server, false);
    // TIME + INTERVAL × RETRIES after the last traffic, which came before the cut.
    let bound = 1.0 + 1.0 * 2.0 + ALLOWANCE;
    eprintln!("--keepalive 1,1,2 (no heartbeat): idle ghost listed for {gone:.2} s after the cut (bound {bound:.2} s)");
    assert!(gone <= bound, "took {gone:.2} s");
}

#[test]
fn user_timeout_drops_a_ghost_with_unacknowledged_data() {
    let Some(net) = netns_or_skip("user_timeout_drops_a_ghost_with_unacknowledged_data") else { return };
    let server = server_on(&net, |c| {
        c.heartbeat = None;
        c.ack_timeout = Duration::from_millis(500);
        c.socket.user_timeout = Some(2000);
    });
    let (gone, status) = pull_the_cable(&net, &server, true);
    // MS after the oldest unacknowledged byte: the message, sent just after the cut.
    let bound = 2.0 + ALLOWANCE;
    eprintln!(
        "--user-timeout 2000 (no heartbeat): ghost with unacked data listed for {gone:.2} s (bound {bound:.2} s); \
         message: {status:?}"
    );
    assert!(gone <= bound, "took {gone:.2} s");
    assert_eq!(status, Some(DeliveryStatus::NotAcknowledged));
}

#[test]
fn without_any_detection_the_ghost_stays_but_messages_are_not_acknowledged() {
    let Some(net) = netns_or_skip("without_any_detection_the_ghost_stays_but_messages_are_not_acknowledged") else {
        return;
    };
    let server = server_on(&net, |c| {
        c.heartbeat = None;
        c.ack_timeout = Duration::from_millis(500);
    });
    let (mut client, id) = ghost(&net, &server);
    net.cut();
    client.kill();
    assert_eq!(send_to(&server, id), DeliveryStatus::NotAcknowledged, "the lab report's false receipt");
    assert!(!server.wait_client_gone(id, Duration::from_secs(2)), "nothing should have noticed the ghost");
    eprintln!("no heartbeat, no keepalive: ghost {id} still listed 2 s after the cut (as in the lab report)");
    let _ = SocketAddr::new(net.host_ip, 0);
}
