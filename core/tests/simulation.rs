//! A deterministic simulation of the whole server: core's hub and one
//! connection machine per client, wired to simulated clients through a
//! simulated network, with a virtual clock and a seeded PRNG. No sockets, no
//! threads, no real time: a seed replays exactly.
//!
//! The network splits and coalesces segments, delays them, and bounds each
//! direction by a window (a client that does not read fills it, and the
//! server's writes stall). The clients are honest ones (they answer pings,
//! acknowledge messages, and close on the shutdown notice) and hostile ones:
//! silent, never reading, garbage, lying acks, slowloris, half-closing,
//! resetting. The server is shut down part-way, and cut after its grace.
//!
//! After every step the promises of docs/RELIABILITY.md and docs/PROTOCOL.md
//! are checked (see [`Sim::check`] and [`Client::on_frame`]); a failure
//! prints its seed and the command that replays it.
//!
//! - `cargo test -p tnlm-core --test simulation` runs [`CI_SEEDS`] seeds;
//! - `TNLM_SIM_SEED=N` runs that one seed, printing its steps' summary;
//! - `TNLM_SIM_SECONDS=S` runs random seeds for S seconds and prints how many
//!   (`ci/sim.sh S`).

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tnlm_core::message::{
    Ack, DeliveryStatus, ListRequest, Message, NameRequest, Pong, SendRequest, TimeRequest, FROM_SERVER,
};
use tnlm_core::proto::conn::{Conn, ConnConfig, Io};
use tnlm_core::proto::heartbeat::MISSES;
use tnlm_core::proto::hub::{Hub, HubConfig};
use tnlm_core::proto::queue::OWED_FACTOR;
use tnlm_core::proto::session::{encode_into, SessionConfig};
use tnlm_core::{Decoder, Frame};

/// Seeds the test runs in CI.
const CI_SEEDS: u64 = 10_000;

const MS: Duration = Duration::from_millis(1);
const HEARTBEAT: Duration = Duration::from_millis(400);
const WRITE_TIMEOUT: Duration = Duration::from_millis(600);
const ACK_TIMEOUT: Duration = Duration::from_millis(300);
const FRAME_TIMEOUT: Duration = Duration::from_millis(500);
const QUEUE_BYTES: usize = 8 * 1024;
const QUEUE_TOTAL: usize = 20 * 1024;
/// The server's shutdown grace before it cuts what is left.
const GRACE: Duration = Duration::from_millis(1500);
/// The longest virtual step: every bound below allows one more.
const MAX_STEP: Duration = Duration::from_millis(20);

/// What a simulated client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Asks, answers pings, acknowledges messages, closes on the shutdown notice.
    Honest,
    /// Connects, reads, never sends anything (not even pongs).
    Silent,
    /// Sends requests, never reads.
    NonReader,
    /// Sends a valid request, then bytes that are not TNLM.
    Garbage,
    /// Acknowledges delivery ids it never received, besides honest acks.
    LiarAcks,
    /// Starts a frame and never finishes it.
    Slowloris,
    /// Sends a few requests and messages, then closes its sending side.
    HalfCloser,
    /// Sends a few requests, then resets the connection.
    Resetter,
    /// Asks a lot and reads only a trickle: each step, a few bytes.
    Trickle,
    /// Knows the delivery ids of messages the server has not written yet
    /// (as a client that could predict them would) and acknowledges them
    /// at once; reads nothing.
    Prophet,
}

const KINDS: [Kind; 10] = [
    Kind::Prophet,
    Kind::Trickle,
    Kind::Honest,
    Kind::Silent,
    Kind::NonReader,
    Kind::Garbage,
    Kind::LiarAcks,
    Kind::Slowloris,
    Kind::HalfCloser,
    Kind::Resetter,
];

/// One direction of a connection.
#[derive(Debug, Default)]
struct Pipe {
    /// Segments on the way: when each arrives.
    flight: VecDeque<(Instant, Vec<u8>)>,
    /// Arrived, not read yet.
    arrived: VecDeque<u8>,
    /// The sender shut down its side: end of stream once all has arrived.
    fin: bool,
    /// The sender reset the connection.
    reset: bool,
    /// Bytes in flight and unread together may not exceed this.
    window: usize,
}

impl Pipe {
    fn room(&self) -> usize {
        let used = self.arrived.len() + self.flight.iter().map(|(_, s)| s.len()).sum::<usize>();
        self.window.saturating_sub(used)
    }

    /// Sends `bytes` as one or more segments, each delayed at random (in order).
    fn send(&mut self, bytes: &[u8], now: Instant, rng: &mut fastrand::Rng) {
        let mut rest = bytes;
        let mut at = self.flight.back().map_or(now, |(t, _)| *t).max(now);
        while !rest.is_empty() {
            let n = rng.usize(1..=rest.len().min(1500));
            at += MS * rng.u32(0..3);
            self.flight.push_back((at, rest[..n].to_vec()));
            rest = &rest[n..];
        }
    }

    fn deliver(&mut self, now: Instant) {
        while self.flight.front().is_some_and(|(at, _)| *at <= now) {
            let (_, segment) = self.flight.pop_front().unwrap();
            self.arrived.extend(segment);
        }
    }

    /// True once the receiver has read everything and the sender's FIN arrived.
    fn at_end(&self) -> bool {
        self.fin && self.flight.is_empty() && self.arrived.is_empty()
    }

    fn read(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.arrived.len());
        self.arrived.drain(..n).collect()
    }
}

/// A request a client is owed an answer to.
#[derive(Debug, Clone)]
enum Asked {
    Simple,
    Message { to: u32, text: String },
}

/// One simulated client.
#[derive(Debug)]
struct Client {
    kind: Kind,
    id: Option<u32>,
    decoder: Decoder,
    next_request: u32,
    outstanding: HashMap<u32, Asked>,
    /// Texts of messages it has received whole, and their delivery ids.
    received: HashMap<String, u32>,
    /// Delivery ids it acknowledged.
    acked: HashSet<u32>,
    /// It has closed its sending side, or reset.
    closed: bool,
    /// The server ended the stream (FIN or cut).
    ended: bool,
    /// It got a `shutdown` notice or an error frame: it may not be answered further.
    excused: bool,
    sent: usize,
}

/// One connection: the server's machine, the client, the two directions.
#[derive(Debug)]
struct Link {
    conn: Option<Conn>,
    client: Client,
    c2s: Pipe,
    s2c: Pipe,
    /// The server shut down both directions (cut).
    cut: bool,
    /// Since when the server has owed output without a break.
    owed_since: Option<Instant>,
    /// When the server last received anything from the client.
    last_heard: Instant,
    /// Everything the server has written to the client, decoded: which
    /// message indications its transport has taken whole, text → delivery id.
    wire: Decoder,
    on_wire: HashMap<String, u32>,
    id: u32,
    opened: Instant,
}

struct Sim {
    rng: fastrand::Rng,
    start: Instant,
    now: Instant,
    hub: Hub,
    links: Vec<Link>,
    texts: u64,
    shutdown_at: Instant,
    shut_down: bool,
    cut: bool,
    violations: Vec<String>,
    steps: u64,
}

fn frame_bytes(frame: Frame) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, &frame);
    out
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = fastrand::Rng::with_seed(seed);
        let start = Instant::now();
        let config = HubConfig {
            name: "sim".into(),
            max_clients: rng.usize(3..=8),
            queue_bytes: QUEUE_BYTES,
            queue_total: QUEUE_TOTAL,
            ack_timeout: ACK_TIMEOUT,
            wall_clock: || SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            delivery_key: Some(seed),
            ..HubConfig::default()
        };
        let shutdown_at = start + MS * rng.u32(1500..4000);
        Sim {
            rng,
            start,
            now: start,
            hub: Hub::new(config),
            links: Vec::new(),
            texts: 0,
            shutdown_at,
            shut_down: false,
            cut: false,
            violations: Vec::new(),
            steps: 0,
        }
    }

    fn conn_config() -> ConnConfig {
        ConnConfig {
            session: SessionConfig { max_payload: 65_536, frame_timeout: FRAME_TIMEOUT, heartbeat: Some(HEARTBEAT) },
            write_timeout: WRITE_TIMEOUT,
        }
    }

    fn violation(&mut self, what: String) {
        if self.violations.len() < 20 {
            let at = self.now - self.start;
            self.violations.push(format!("at {at:?}: {what}"));
        }
    }

    /// Runs the simulation to its end; returns the violations and the steps taken.
    fn run(mut self) -> (Vec<String>, u64) {
        let end = self.shutdown_at + GRACE + Duration::from_millis(500);
        while self.now < end {
            self.step();
            if !self.violations.is_empty() {
                break;
            }
        }
        if self.violations.is_empty() {
            self.final_checks();
        }
        (self.violations, self.steps)
    }

    fn step(&mut self) {
        self.steps += 1;
        self.now += MS * self.rng.u32(1..=MAX_STEP.as_millis() as u32);
        if self.links.len() < 10 && self.now < self.shutdown_at && self.rng.u8(0..20) == 0 {
            self.connect();
        }
        if !self.shut_down && self.now >= self.shutdown_at {
            self.shut_down = true;
            self.hub.shutdown();
        }
        if self.shut_down && !self.cut && self.now >= self.shutdown_at + GRACE && self.hub.known() > 0 {
            self.cut = true;
            self.hub.cut_all();
        }
        if self.hub.next_deadline().is_some_and(|at| at <= self.now) {
            self.hub.handle_timeout(self.now);
        }
        let order: Vec<usize> = {
            let mut order: Vec<usize> = (0..self.links.len()).collect();
            self.rng.shuffle(&mut order);
            order
        };
        for index in order {
            self.serve(index);
            self.wakes();
            self.act(index);
        }
        self.check();
    }

    fn connect(&mut self) {
        let Some(id) = self.hub.next_id() else { return };
        let kind = if self.rng.bool() { Kind::Honest } else { KINDS[self.rng.usize(..KINDS.len())] };
        let addr = SocketAddr::from(([127, 0, 0, 1], 40_000 + id as u16));
        let conn = Conn::accept(id, addr, Sim::conn_config(), &mut self.hub, self.now);
        let window = self.rng.usize(2_000..40_000);
        let client = Client {
            kind,
            id: None,
            decoder: Decoder::new(u32::MAX).accepting(FROM_SERVER),
            next_request: 1,
            outstanding: HashMap::new(),
            received: HashMap::new(),
            acked: HashSet::new(),
            closed: false,
            ended: false,
            excused: false,
            sent: 0,
        };
        self.links.push(Link {
            conn: Some(conn),
            client,
            c2s: Pipe { window: 1 << 20, ..Pipe::default() },
            s2c: Pipe { window, ..Pipe::default() },
            cut: false,
            owed_since: None,
            last_heard: self.now,
            wire: Decoder::new(u32::MAX).accepting(FROM_SERVER),
            on_wire: HashMap::new(),
            id,
            opened: self.now,
        });
        self.wakes();
    }

    /// Delivers the hub's wake-ups to their connections.
    fn wakes(&mut self) {
        while let Some(id) = self.hub.poll_wake() {
            if let Some(link) = self.links.iter_mut().find(|l| l.id == id) {
                if let Some(conn) = &mut link.conn {
                    conn.woken(&mut self.hub, self.now);
                }
            }
        }
    }

    /// The server's driver for one connection: reads, writes, timers, the end.
    fn serve(&mut self, index: usize) {
        let now = self.now;
        let link = &mut self.links[index];
        link.c2s.deliver(now);
        let Some(conn) = &mut link.conn else { return };
        let hub = &mut self.hub;
        // Read what arrived, in random chunks, while the machine wants input.
        while conn.wants_input() && !link.cut {
            if link.c2s.reset {
                conn.read_failed("connection reset by peer", hub);
                break;
            }
            if link.c2s.arrived.is_empty() {
                if link.c2s.at_end() {
                    conn.end_of_stream(hub, now);
                }
                break;
            }
            let chunk = link.c2s.read(self.rng.usize(1..=4096));
            link.last_heard = now;
            conn.receive_with_hub(&chunk, hub, now);
        }
        if conn.next_deadline().is_some_and(|at| at <= now) {
            conn.handle_timeout(hub, now);
        }
        // Write what is owed, as far as the window allows.
        while !conn.transmit().is_empty() && !link.cut {
            let room = link.s2c.room();
            if room == 0 {
                break;
            }
            let n = conn.transmit().len().min(room).min(self.rng.usize(1..=16_384));
            let bytes = conn.transmit()[..n].to_vec();
            link.s2c.send(&bytes, now, &mut self.rng);
            link.wire.feed(&bytes);
            while let Ok(Some(frame)) = link.wire.next_frame() {
                if let Message::Forwarded(message) = frame.message {
                    let key = message.text.split(' ').next().unwrap_or_default().to_string();
                    link.on_wire.insert(key, frame.request_id);
                }
            }
            if n == conn.transmit().len() {
                // All that was owed is taken: the write deadline starts anew.
                link.owed_since = None;
            }
            conn.written_with_hub(n, hub, now);
        }
        while let Some(io) = conn.poll_io() {
            link.s2c.fin = true;
            if io == Io::ShutdownBoth {
                link.cut = true;
            }
        }
        link.owed_since = if conn.transmit().is_empty() { None } else { Some(link.owed_since.unwrap_or(now)) };
        if conn.is_done() {
            link.s2c.fin = true;
            let conn = link.conn.take().unwrap();
            conn.finish(hub);
            let id = link.id;
            if hub.knows(id) || hub.involves(id) {
                self.violation(format!("client {id} has gone but the hub still holds something of it"));
            }
        }
    }

    /// The client's turn: read, answer, ask.
    fn act(&mut self, index: usize) {
        let now = self.now;
        let link = &mut self.links[index];
        link.s2c.deliver(now);
        if link.client.kind == Kind::Prophet {
            if let Some(conn) = &link.conn {
                let mut ahead = link.wire.clone();
                ahead.feed(conn.transmit());
                while let Ok(Some(frame)) = ahead.next_frame() {
                    if matches!(frame.message, Message::Forwarded(_)) {
                        let lie = frame_bytes(Frame::new(frame.request_id, Ack));
                        link.c2s.send(&lie, now, &mut self.rng);
                    }
                }
            }
        } else if link.client.kind != Kind::NonReader {
            let most = if link.client.kind == Kind::Trickle { self.rng.usize(0..64) } else { usize::MAX };
            let bytes = link.s2c.read(most);
            link.client.decoder.feed(&bytes);
            loop {
                match self.links[index].client.decoder.next_frame() {
                    Ok(Some(frame)) => {
                        if let Err(what) = self.on_frame(index, frame) {
                            self.violation(what);
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        let id = self.links[index].id;
                        self.violation(format!("client {id} got a frame it cannot decode: {err}"));
                        return;
                    }
                }
            }
            let link = &mut self.links[index];
            if link.s2c.at_end() && !link.client.ended {
                link.client.ended = true;
                if !link.client.closed {
                    link.client.closed = true;
                    link.c2s.fin = true;
                }
                self.on_end(index);
            }
        }
        self.ask(index);
    }

    /// What a client does with a frame from the server; `Err` for a broken promise.
    fn on_frame(&mut self, index: usize, frame: Frame) -> Result<(), String> {
        let link = &mut self.links[index];
        let id = link.id;
        let client = &mut link.client;
        let reply = |bytes: Vec<u8>, pipe: &mut Pipe, now, rng: &mut fastrand::Rng| pipe.send(&bytes, now, rng);
        match frame.message {
            Message::Hello(hello) => client.id = Some(hello.client_id),
            Message::ServerPing(_) if !matches!(client.kind, Kind::Silent) && !client.closed => {
                reply(frame_bytes(Frame::new(frame.request_id, Pong)), &mut link.c2s, self.now, &mut self.rng);
            }
            Message::Forwarded(message) => {
                let key = message.text.split(' ').next().unwrap_or_default().to_string();
                client.received.insert(key, frame.request_id);
                if !matches!(client.kind, Kind::Silent) && !client.closed {
                    client.acked.insert(frame.request_id);
                    reply(frame_bytes(Frame::new(frame.request_id, Ack)), &mut link.c2s, self.now, &mut self.rng);
                }
            }
            Message::Shutdown(_) => {
                client.excused = true;
                if client.kind == Kind::Honest && !client.closed {
                    client.closed = true;
                    link.c2s.fin = true;
                }
            }
            Message::Error(_) => client.excused = true,
            Message::Delivery(delivery) => {
                let Some(Asked::Message { to, text }) = client.outstanding.remove(&frame.request_id) else {
                    return Err(format!("client {id} got a receipt for request #{} it is not owed", frame.request_id));
                };
                if delivery.to != to {
                    return Err(format!("client {id}'s receipt names client {} instead of {to}", delivery.to));
                }
                if delivery.status == DeliveryStatus::Delivered {
                    let text = text.split(' ').next().unwrap_or_default().to_string();
                    let target = self.links.iter().find(|l| l.id == to);
                    let written = target.and_then(|t| t.on_wire.get(&text));
                    if written.is_none() {
                        return Err(format!(
                            "client {id} heard `delivered` for {text:?} to client {to}, which the server never wrote whole"
                        ));
                    }
                    let honest = target.is_some_and(|t| {
                        t.client.kind == Kind::Prophet || written.is_some_and(|d| t.client.acked.contains(d))
                    });
                    if !honest {
                        return Err(format!(
                            "client {id} heard `delivered` for {text:?} to client {to}, which never acknowledged it"
                        ));
                    }
                }
            }
            Message::TimeResponse(_) | Message::NameResponse(_) | Message::ListResponse(_) | Message::Pong(_)
                if client.outstanding.remove(&frame.request_id).is_none() =>
            {
                return Err(format!(
                    "client {id} got a second answer, or one it never asked for: #{}",
                    frame.request_id
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The server ended the client's stream: whatever it is still owed must be excused.
    fn on_end(&mut self, index: usize) {
        let link = &self.links[index];
        let owed = link.client.outstanding.len();
        let honest = matches!(link.client.kind, Kind::Honest | Kind::HalfCloser);
        if honest && owed > 0 && !link.cut && !link.client.excused {
            let id = link.id;
            self.violation(format!("client {id}'s stream ended with {owed} request(s) unanswered and no reason"));
        }
    }

    /// Sends the client's next bytes, as its kind does.
    fn ask(&mut self, index: usize) {
        let now = self.now;
        let clients = self.links.len() as u32 + 1;
        let link = &mut self.links[index];
        let client = &mut link.client;
        if client.closed || client.id.is_none() && client.kind != Kind::Garbage {
            return;
        }
        let roll = self.rng.u8(0..10);
        match client.kind {
            Kind::Silent => return,
            Kind::Slowloris => {
                if client.sent == 0 {
                    let bytes = frame_bytes(Frame::new(1, TimeRequest));
                    link.c2s.send(&bytes[..7], now, &mut self.rng);
                    client.sent = 1;
                }
                return;
            }
            Kind::Garbage if client.sent > 2 => {
                link.c2s.send(b"GET / HTTP/1.1\r\n\r\n", now, &mut self.rng);
                client.closed = true;
                return;
            }
            Kind::Resetter if client.sent > 3 => {
                link.c2s.reset = true;
                client.closed = true;
                return;
            }
            Kind::HalfCloser if client.sent > 5 => {
                link.c2s.fin = true;
                client.closed = true;
                return;
            }
            Kind::LiarAcks if roll == 0 => {
                let lie = self.rng.u32(..);
                link.c2s.send(&frame_bytes(Frame::new(lie, Ack)), now, &mut self.rng);
            }
            _ => {}
        }
        if roll > 3 && client.kind != Kind::Trickle {
            return;
        }
        let request_id = client.next_request;
        client.next_request += 1;
        client.sent += 1;
        let (message, asked): (Message, Asked) = match self.rng.u8(0..6) {
            0 => (TimeRequest.into(), Asked::Simple),
            1 => (NameRequest.into(), Asked::Simple),
            2 => (ListRequest.into(), Asked::Simple),
            _ => {
                self.texts += 1;
                let to = self.rng.u32(1..=clients);
                let text = format!("m{} {}", self.texts, "x".repeat(self.rng.usize(0..3000)));
                (SendRequest { to, text: text.clone() }.into(), Asked::Message { to, text })
            }
        };
        client.outstanding.insert(request_id, asked);
        link.c2s.send(&frame_bytes(Frame::new(request_id, message)), now, &mut self.rng);
    }

    /// The promises that hold after every step.
    fn check(&mut self) {
        let now = self.now;
        let config = self.hub.config().clone();
        let mut queued = 0;
        let mut broken = Vec::new();
        for link in &self.links {
            let id = link.id;
            let bytes = self.hub.queued_bytes(id);
            queued += bytes;
            if bytes > config.queue_bytes * OWED_FACTOR + 1024 {
                broken.push(format!("client {id} has {bytes} bytes queued, over its bound"));
            }
            let Some(conn) = &link.conn else { continue };
            // A client silent for three heartbeats is unlisted (its
            // session ended); two steps of slack for the virtual clock.
            let silent = now.saturating_duration_since(link.last_heard.max(link.opened));
            if self.hub.is_listed(id) && silent > HEARTBEAT * MISSES + 2 * MAX_STEP {
                broken.push(format!("client {id} silent for {silent:?} is still listed"));
            }
            // A client that does not take its output is cut within the write timeout.
            if let Some(since) = link.owed_since {
                if now.saturating_duration_since(since) > WRITE_TIMEOUT + 2 * MAX_STEP && !conn.is_done() {
                    broken.push(format!("client {id} owed output since {:?} and is still served", since - self.start));
                }
            }
        }
        if self.hub.budget().used() != queued {
            broken.push(format!("the budget counts {} bytes, the queues hold {queued}", self.hub.budget().used()));
        }
        // Messages from others are admitted within --queue-total; only
        // receipts (one per message in flight, each under 256 bytes) and
        // the shutdown notices may go past it.
        let receipts: usize = self.links.iter().map(|l| l.client.outstanding.len()).sum();
        let bound = config.queue_total + 256 * receipts + 64 * self.links.len();
        if self.hub.budget().used() > bound {
            broken.push(format!("{} bytes queued in all, over {bound}", self.hub.budget().used()));
        }
        if self.cut && now > self.shutdown_at + GRACE + 4 * MAX_STEP {
            if let Some(link) = self.links.iter().find(|l| l.conn.is_some()) {
                broken.push(format!("client {} is still served after shutdown's grace", link.id));
            }
        }
        for what in broken {
            self.violation(what);
        }
    }

    fn final_checks(&mut self) {
        if self.hub.known() > 0 || self.hub.in_flight() > 0 || self.hub.budget().used() > 0 {
            let (known, in_flight) = (self.hub.known(), self.hub.in_flight());
            self.violation(format!("after shutdown the hub holds {known} client(s) and {in_flight} message(s)"));
        }
        if let Some(link) = self.links.iter().find(|l| l.conn.is_some()) {
            self.violation(format!("client {} is still served after shutdown", link.id));
        }
    }
}

/// Runs seed `seed`; panics with its violations and the replay command.
fn run_seed(seed: u64) -> u64 {
    let (violations, steps) = Sim::new(seed).run();
    if !violations.is_empty() {
        panic!(
            "simulation seed {seed} broke a promise:\n  {}\nreplay: TNLM_SIM_SEED={seed} cargo test -p tnlm-core --test simulation -- --nocapture",
            violations.join("\n  ")
        );
    }
    steps
}

#[test]
fn every_promise_holds_on_every_seed() {
    if let Ok(seed) = std::env::var("TNLM_SIM_SEED") {
        let seed: u64 = seed.parse().expect("TNLM_SIM_SEED: a number");
        let steps = run_seed(seed);
        println!("seed {seed}: {steps} steps, every promise held");
        return;
    }
    let started = Instant::now();
    if let Ok(seconds) = std::env::var("TNLM_SIM_SECONDS") {
        let seconds: f64 = seconds.parse().expect("TNLM_SIM_SECONDS: a number");
        let base = fastrand::u64(..);
        let mut seeds = 0u64;
        while started.elapsed().as_secs_f64() < seconds {
            run_seed(base.wrapping_add(seeds));
            seeds += 1;
        }
        println!("{seeds} seeds");
        return;
    }
    for seed in 0..CI_SEEDS {
        run_seed(seed);
    }
    let elapsed = started.elapsed();
    println!(
        "{CI_SEEDS} seeds in {:.1} s ({:.0} seeds/s)",
        elapsed.as_secs_f64(),
        CI_SEEDS as f64 / elapsed.as_secs_f64()
    );
}
