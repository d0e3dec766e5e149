//! The conformance checker (`tnlm-client --connect HOST:PORT conform`): the
//! cases of docs/PROTOCOL.md, run against any server.
//!
//! Each case opens connections of its own over raw sockets (no receiver
//! thread, no automatic acks), sends exactly the bytes the case needs, and
//! checks what comes back against the section of PROTOCOL.md it names. Every
//! frame from the server is decoded with the payload limit its hello
//! announced and with only the (type, class) pairs a server may send, so a
//! frame that breaks either fails the case it arrives in. Pings from the
//! server are answered wherever they arrive.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tnlm_core::frame::offset;
use tnlm_core::message::{
    Ack, DeliveryStatus, Hello, ListRequest, NameRequest, PingRequest, Pong, SendRequest, TimeRequest, TimeResponse,
    FROM_SERVER,
};
use tnlm_core::proto::client::{pong, reply_to};
use tnlm_core::sockopt::SocketOptions;
use tnlm_core::{Decoder, ErrorCode, Frame, Message, HEADER_LEN, MAX_NAME_LEN, MIN_MAX_PAYLOAD, VERSION};

use crate::cli::{Cli, Target};
use crate::error::{secs, ClientError};
use crate::output::{Output, Record};

/// The largest `max_payload` a hello may announce for the checker to go on:
/// the cases build texts of about that size.
const MAX_CHECKED_PAYLOAD: u32 = crate::connection::MAX_RESPONSE_PAYLOAD;

/// What a case returns: `Err` says what the server did wrong.
type Outcome = Result<(), String>;

/// One case: its name, the PROTOCOL.md section it checks, and the check.
struct Case {
    name: &'static str,
    section: &'static str,
    run: fn(&Checker) -> Outcome,
}

/// The cases that wait for the server's timers (`conform --timers`).
const TIMER_CASES: &[Case] = &[
    Case { name: "server ping answered", section: "Heartbeat and timers", run: server_ping },
    Case { name: "timeout (frame timeout)", section: "Heartbeat and timers", run: frame_timeout },
];

/// Every case, in the order they run.
const CASES: &[Case] = &[
    Case { name: "hello", section: "Hello", run: hello },
    Case { name: "hello before anything", section: "Hello", run: hello_first },
    Case { name: "time", section: "Time, name and list", run: time },
    Case { name: "name", section: "Time, name and list", run: name },
    Case { name: "list of several clients", section: "Time, name and list", run: list },
    Case { name: "request id 0", section: "Request ids", run: request_id_0 },
    Case { name: "ping answered", section: "Heartbeat and timers", run: ping },
    Case { name: "unexpected ack and pong", section: "Heartbeat and timers", run: unexpected_answers },
    Case { name: "delivered", section: "Messages", run: delivered },
    Case { name: "message to oneself", section: "Messages", run: to_oneself },
    Case { name: "empty text", section: "Messages", run: empty_text },
    Case { name: "no_such_client", section: "Messages", run: no_such_client },
    Case { name: "target_gone", section: "Messages", run: target_gone },
    Case { name: "too_large", section: "Messages", run: too_large },
    Case { name: "queue_full", section: "Messages", run: queue_full },
    Case { name: "not_acknowledged", section: "Messages", run: not_acknowledged },
    Case { name: "limits in the hello", section: "Limits", run: limits },
    Case { name: "split frames", section: "Frames", run: split },
    Case { name: "coalesced frames", section: "Frames", run: coalesced },
    Case { name: "bad_magic", section: "Checking a frame, and errors", run: bad_magic },
    Case { name: "unsupported_version", section: "Checking a frame, and errors", run: unsupported_version },
    Case { name: "oversize", section: "Checking a frame, and errors", run: oversize },
    Case { name: "invalid_header", section: "Checking a frame, and errors", run: invalid_header },
    Case { name: "unknown_type", section: "Checking a frame, and errors", run: unknown_type },
    Case { name: "unexpected_frame", section: "Checking a frame, and errors", run: unexpected_frame },
    Case { name: "malformed_payload", section: "Checking a frame, and errors", run: malformed_payload },
    Case { name: "truncated", section: "Checking a frame, and errors", run: truncated },
];

/// How long one case may take, in `--timeout`s: a case expects a few
/// answers, each within `--timeout`, and the server's pings extend none of
/// them.
const CASE_LIMIT_IN_TIMEOUTS: u32 = 6;

/// Runs every case (with `timers`, also the timer cases) against `target`,
/// prints one line per case and the summary (always, also when cases time
/// out); fails with exit code 1 if any case failed, and with exit code 3
/// ("could not test") at once when the first connection is refused, silent
/// or not TNLM.
pub fn run(cli: &Cli, target: &Target, timers: bool) -> Result<(), ClientError> {
    let timeout = cli.timeout();
    let checker = Checker {
        target: target.to_string(),
        timeout,
        case_deadline: Cell::new(Instant::now()),
        ids_seen: RefCell::new(HashSet::new()),
    };
    let output = Output { json: cli.json };
    checker.start_case(timeout * CASE_LIMIT_IN_TIMEOUTS);
    if let Err(problem) = checker.open() {
        output.print(&Record::ConformSummary { passed: 0, failed: 0 });
        return Err(ClientError::CannotTest(format!("{target} is not a TNLM server that can be tested: {problem}")));
    }
    let cases: Vec<&Case> = CASES.iter().chain(TIMER_CASES.iter().filter(|_| timers)).collect();
    let mut failed = 0;
    for case in &cases {
        checker.start_case(timeout * CASE_LIMIT_IN_TIMEOUTS);
        let result = (case.run)(&checker);
        failed += usize::from(result.is_err());
        let (passed, detail) = match result {
            Ok(()) => (true, String::new()),
            Err(detail) => (false, detail),
        };
        output.print(&Record::Conform { case: case.name, section: case.section, passed, detail });
    }
    output.print(&Record::ConformSummary { passed: cases.len() - failed, failed });
    match failed {
        0 => Ok(()),
        _ => Err(ClientError::Failed(format!("{failed} of {} conformance cases failed", cases.len()))),
    }
}

/// Where the server is and how long to wait for each answer.
struct Checker {
    target: String,
    timeout: Duration,
    /// When the case running now must end, whatever the server sends.
    case_deadline: Cell<Instant>,
    /// Every client id a hello of this run has given.
    ids_seen: RefCell<HashSet<u32>>,
}

impl Checker {
    /// A case starts: it may take at most `limit`.
    fn start_case(&self, limit: Duration) {
        self.case_deadline.set(Instant::now() + limit);
    }

    /// A connection that has read its hello.
    fn open(&self) -> Result<Raw, String> {
        let mut raw = self.open_silent()?;
        let frame = raw.next_frame()?;
        match frame.message {
            Message::Hello(hello) if !(MIN_MAX_PAYLOAD..=MAX_CHECKED_PAYLOAD).contains(&hello.max_payload) => {
                Err(format!(
                    "the hello announces max_payload {}, outside {MIN_MAX_PAYLOAD}..={MAX_CHECKED_PAYLOAD}",
                    hello.max_payload
                ))
            }
            Message::Hello(hello) if !self.ids_seen.borrow_mut().insert(hello.client_id) => Err(format!(
                "client id {} was given to an earlier connection of this run: ids are never reused",
                hello.client_id
            )),
            Message::Hello(hello) => {
                raw.decoder.set_max_payload(hello.max_payload);
                raw.hello = hello;
                Ok(raw)
            }
            other => Err(format!("expected the hello first, got {}", describe(&other))),
        }
    }

    /// A connection that has read nothing yet.
    fn open_silent(&self) -> Result<Raw, String> {
        let options = SocketOptions { nodelay: true, ..SocketOptions::default() };
        let (stream, _) = tnlm_core::net::connect(&self.target, &options, self.timeout)
            .map_err(|err| format!("cannot connect to {}: {err}", self.target))?;
        stream.set_read_timeout(Some(self.timeout)).map_err(|err| err.to_string())?;
        stream.set_write_timeout(Some(self.timeout)).map_err(|err| err.to_string())?;
        // Until the hello names the limit: the smallest a server may announce,
        // in which its hello always fits (PROTOCOL.md, "Limits").
        let decoder = Decoder::new(MIN_MAX_PAYLOAD).accepting(FROM_SERVER);
        let hello = Hello { client_id: 0, server: String::new(), version: 0, max_payload: 0 };
        let (timeout, case_deadline) = (self.timeout, self.case_deadline.get());
        Ok(Raw { stream, decoder, hello, next_id: 1, answer_pings: true, timeout, case_deadline, sent_to: Vec::new() })
    }
}

/// What the server did next.
#[derive(Debug)]
enum Next {
    Frame(Frame),
    Closed,
}

/// One raw connection to the server.
struct Raw {
    stream: TcpStream,
    decoder: Decoder,
    hello: Hello,
    next_id: u32,
    /// Answer the server's pings in [`next`](Self::next) (and never show them).
    answer_pings: bool,
    /// How long each expected answer may take.
    timeout: Duration,
    /// When the case this connection belongs to must end.
    case_deadline: Instant,
    /// The `M` requests sent: (request id, target), to check each response's `to`.
    sent_to: Vec<(u32, u32)>,
}

impl Raw {
    fn write(&mut self, bytes: &[u8]) -> Outcome {
        self.stream.write_all(bytes).map_err(|err| format!("write failed: {err}"))
    }

    /// A fresh request id: 1, 2, 3, …
    fn next_request_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// Sends `message` as a request with the next request id; returns the id.
    fn send(&mut self, message: impl Into<Message>) -> Result<u32, String> {
        let id = self.next_request_id();
        let message = message.into();
        if let Message::SendRequest(request) = &message {
            self.sent_to.push((id, request.to));
        }
        self.write(&encode(Frame::new(id, message)))?;
        Ok(id)
    }

    /// The next frame or the end of the stream, answering the server's pings
    /// on the way. A frame that does not decode is a failure, and so is
    /// waiting longer than `--timeout` for it: pings answered meanwhile do
    /// not extend the wait (a server that pings more often than that would
    /// otherwise keep the checker waiting for ever), nor may it pass the
    /// case's own limit.
    fn next(&mut self) -> Result<Next, String> {
        let deadline = (Instant::now() + self.timeout).min(self.case_deadline);
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame @ Frame { message: Message::ServerPing(_), .. })) if self.answer_pings => {
                    if let Some(pong) = reply_to(&frame) {
                        self.write(&encode(pong))?;
                    }
                    continue;
                }
                Ok(Some(frame)) => return Ok(Next::Frame(frame)),
                Ok(None) => {}
                Err(err) => return Err(format!("the server sent a bad frame: {err}")),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no answer in time (--timeout {})", secs(self.timeout)));
            }
            self.stream.set_read_timeout(Some(left)).map_err(|err| err.to_string())?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(Next::Closed),
                Ok(n) => self.decoder.feed(&chunk[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return Ok(Next::Closed),
                Err(err) if tnlm_core::net::is_socket_timeout(&err) => {}
                Err(err) => return Err(format!("read failed: {err}")),
            }
        }
    }

    /// The next frame; the connection closing is a failure.
    fn next_frame(&mut self) -> Result<Frame, String> {
        match self.next()? {
            Next::Frame(frame) => Ok(frame),
            Next::Closed => Err("the server closed the connection".into()),
        }
    }

    /// The next frame, which must answer request `id`.
    fn response(&mut self, id: u32) -> Result<Message, String> {
        let frame = self.next_frame()?;
        if frame.request_id != id {
            return Err(format!("expected the answer to request #{id}, got {}", summary(&frame)));
        }
        Ok(frame.message)
    }

    /// Sends `message` and returns the answer.
    fn request(&mut self, message: impl Into<Message>) -> Result<Message, String> {
        let id = self.send(message)?;
        self.response(id)
    }

    /// The status of the `M` response to request `id`.
    /// Its `to` must be the target the request named (PROTOCOL.md, "Messages").
    fn delivery(&mut self, id: u32) -> Result<DeliveryStatus, String> {
        let to = self.sent_to.iter().find(|(sent, _)| *sent == id).map(|(_, to)| *to);
        match self.response(id)? {
            Message::Delivery(delivery) if to.is_some_and(|to| to != delivery.to) => Err(format!(
                "the M response to request #{id} names client {} as its target; the request named {}",
                delivery.to,
                to.unwrap_or_default()
            )),
            Message::Delivery(delivery) => Ok(delivery.status),
            other => Err(format!("expected an M response, got {}", describe(&other))),
        }
    }

    /// Reads a forwarded message (`M` indication) and returns its delivery id and text.
    fn forwarded(&mut self) -> Result<(u32, String), String> {
        let frame = self.next_frame()?;
        match frame.message {
            Message::Forwarded(message) if frame.request_id != 0 => Ok((frame.request_id, message.text)),
            Message::Forwarded(_) => Err("a forwarded message with delivery id 0".into()),
            other => Err(format!("expected a forwarded message, got {}", describe(&other))),
        }
    }

    /// Checks the connection is still served: a `T` request is answered.
    fn still_served(&mut self) -> Outcome {
        match self.request(TimeRequest)? {
            Message::TimeResponse(_) => Ok(()),
            other => Err(format!("the connection should go on, but a T request got {}", describe(&other))),
        }
    }

    /// Checks the server closes the connection without another frame.
    fn closed(&mut self) -> Outcome {
        match self.next()? {
            Next::Closed => Ok(()),
            Next::Frame(frame) => Err(format!("expected the connection to close, got {}", summary(&frame))),
        }
    }
}

fn encode(frame: Frame) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Only the limit checks below may make a frame too large; u32::MAX never refuses.
    let _ = frame.encode_into(&mut bytes, u32::MAX);
    bytes
}

fn summary(frame: &Frame) -> String {
    format!("{} ({})", frame.summary(), describe(&frame.message))
}

fn describe(message: &Message) -> String {
    match message {
        Message::Error(body) => format!("error {}: {}", body.code.name(), body.text),
        Message::Delivery(delivery) => format!("delivery status {}", delivery.status.name()),
        other => other.payload_name().to_string(),
    }
}

/// Fails with `what` unless `ok`.
fn ensure(ok: bool, what: impl FnOnce() -> String) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

// ---- Hello, time, name, list --------------------------------------------

fn hello(checker: &Checker) -> Outcome {
    let first = checker.open()?;
    let second = checker.open()?;
    let hello = &first.hello;
    ensure(hello.version == VERSION, || format!("version {} in the hello", hello.version))?;
    ensure(hello.client_id != 0, || "client id 0 in the hello".into())?;
    ensure(second.hello.client_id > hello.client_id, || {
        format!("the next client got id {} after {}: ids are never reused", second.hello.client_id, hello.client_id)
    })?;
    ensure(hello.server.len() <= MAX_NAME_LEN, || format!("a name of {} bytes", hello.server.len()))
}

/// A request written before the hello has been read is answered, but only
/// after the hello: nothing comes before it.
fn hello_first(checker: &Checker) -> Outcome {
    let mut raw = checker.open_silent()?;
    let id = raw.send(TimeRequest)?;
    let first = raw.next_frame()?;
    ensure(matches!(first.message, Message::Hello(_)), || {
        format!("the first frame must be the hello, was {}", summary(&first))
    })?;
    match raw.response(id)? {
        Message::TimeResponse(_) => Ok(()),
        other => Err(format!("a T request sent before the hello was read got {}", describe(&other))),
    }
}

fn time(checker: &Checker) -> Outcome {
    let mut client = checker.open()?;
    match client.request(TimeRequest)? {
        Message::TimeResponse(TimeResponse { time }) => {
            ensure(is_time_with_millis(&time), || format!("{time:?} is not like 2026-11-25T19:30:05.123+08:00"))
        }
        other => Err(format!("a T request got {}", describe(&other))),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmm+HH:MM` (or `-HH:MM`): 29 bytes, numeric offset.
fn is_time_with_millis(time: &str) -> bool {
    let pattern = b"dddd-dd-ddTdd:dd:dd.ddd+dd:dd";
    time.len() == pattern.len()
        && time.bytes().zip(pattern).all(|(c, &p)| match p {
            b'd' => c.is_ascii_digit(),
            b'+' => c == b'+' || c == b'-',
            _ => c == p,
        })
}

fn name(checker: &Checker) -> Outcome {
    let mut client = checker.open()?;
    match client.request(NameRequest)? {
        Message::NameResponse(response) => ensure(response.name == client.hello.server, || {
            format!("name {:?}, but the hello said {:?}", response.name, client.hello.server)
        }),
        other => Err(format!("an N request got {}", describe(&other))),
    }
}

fn list(checker: &Checker) -> Outcome {
    let mut clients = [checker.open()?, checker.open()?, checker.open()?];
    // Asked by the newest: every client connected before it is listed.
    let Message::ListResponse(list) = clients[2].request(ListRequest)? else {
        return Err("an L request got no L response".into());
    };
    let ids: Vec<u32> = list.clients.iter().map(|c| c.id).collect();
    ensure(ids.windows(2).all(|pair| pair[0] < pair[1]), || format!("ids not in ascending order: {ids:?}"))?;
    for client in &clients {
        let id = client.hello.client_id;
        let Some(entry) = list.clients.iter().find(|c| c.id == id) else {
            return Err(format!("client {id} (one of ours) is not listed"));
        };
        let others = list.clients.iter().filter(|c| (c.ip, c.port) == (entry.ip, entry.port)).count();
        ensure(others == 1, || format!("client {id}'s address is listed {others} times"))?;
        ensure(entry.since.len() == 25, || format!("`since` {:?} is not like 2026-11-25T12:00:00+00:00", entry.since))?;
    }
    Ok(())
}

// ---- Request ids, heartbeat ---------------------------------------------

fn request_id_0(checker: &Checker) -> Outcome {
    let mut client = checker.open()?;
    client.write(&encode(Frame::new(0, NameRequest)))?;
    match client.response(0)? {
        Message::NameResponse(_) => Ok(()),
        other => Err(format!("an N request with id 0 got {}", describe(&other))),
    }
}

fn ping(checker: &Checker) -> Outcome {
    let mut client = checker.open()?;
    match client.request(PingRequest)? {
        Message::Pong(_) => Ok(()),
        other => Err(format!("a P request got {}", describe(&other))),
    }
}

fn unexpected_answers(checker: &Checker) -> Outcome {
    let mut client = checker.open()?;
    client.write(&encode(Frame::new(999_999, Ack)))?;
    client.write(&encode(Frame::new(999_998, Pong)))?;
    client.still_served()
}

// ---- Messages --------------------------------------------------------------

/// A sends `text` to B, B acknowledges: A must hear `delivered`.
fn deliver(a: &mut Raw, b: &mut Raw, text: &str) -> Outcome {
    let id = a.send(SendRequest { to: b.hello.client_id, text: text.into() })?;
    let frame = b.next_frame()?;
    let Message::Forwarded(message) = &frame.message else {
        return Err(format!("the target got {} instead of the message", summary(&frame)));
    };
    ensure(message.from == a.hello.client_id, || {
        format!("sender given as {}, is {}", message.from, a.hello.client_id)
    })?;
    ensure(message.text == text, || format!("text {:?} arrived as {:?}", text, message.text))?;
    ensure(frame.request_id != 0, || "a forwarded message with delivery id 0".into())?;
    b.write(&encode(Frame::new(frame.request_id, Ack)))?;
    let status = a.delivery(id)?;
    ensure(status == DeliveryStatus::Delivered, || format!("acknowledged, yet the sender heard {}", status.name()))
}

fn delivered(checker: &Checker) -> Outcome {
    let (mut a, mut b) = (checker.open()?, checker.open()?);
    let id = a.send(SendRequest { to: b.hello.client_id, text: "Hello world! 你好 #1".into() })?;
    let frame = b.next_frame()?;
    let Message::Forwarded(message) = &frame.message else {
        return Err(format!("the target got {} instead of the message", summary(&frame)));
    };
    b.write(&encode(Frame::new(frame.request_id, Ack)))?;
    expect_status(a.delivery(id)?, DeliveryStatus::Delivered)?;
    // The sender's address is the server's view of A's connection, as listed.
    let from = SocketAddr::new(message.from_ip, message.from_port);
    let listed = listed_address(&mut a)?;
    ensure(from == listed, || format!("the sender's address is given as {from}, the list says {listed}"))
}

/// This client's address in the server's list (what the server sees: behind
/// a NAT or a proxy, not our socket's address).
fn listed_address(client: &mut Raw) -> Result<SocketAddr, String> {
    let Message::ListResponse(list) = client.request(ListRequest)? else {
        return Err("an L request got no L response".into());
    };
    let id = client.hello.client_id;
    let entry = list.clients.iter().find(|c| c.id == id).ok_or_else(|| format!("client {id} is not listed"))?;
    Ok(SocketAddr::new(entry.ip, entry.port))
}

fn to_oneself(checker: &Checker) -> Outcome {
    let mut client = checker.open()?;
    let id = client.send(SendRequest { to: client.hello.client_id, text: "to me".into() })?;
    let (delivery, text) = client.forwarded()?;
    ensure(text == "to me", || format!("text arrived as {text:?}"))?;
    client.write(&encode(Frame::new(delivery, Ack)))?;
    expect_status(client.delivery(id)?, DeliveryStatus::Delivered)
}

fn empty_text(checker: &Checker) -> Outcome {
    let (mut a, mut b) = (checker.open()?, checker.open()?);
    deliver(&mut a, &mut b, "")
}

fn expect_status(got: DeliveryStatus, wanted: DeliveryStatus) -> Outcome {
    ensure(got == wanted, || format!("expected {}, got {}", wanted.name(), got.name()))
}

fn no_such_client(checker: &Checker) -> Outcome {
    let mut a = checker.open()?;
    let id = a.send(SendRequest { to: u32::MAX, text: "anyone?".into() })?;
    expect_status(a.delivery(id)?, DeliveryStatus::NoSuchClient)
}

fn target_gone(checker: &Checker) -> Outcome {
    let (mut a, mut b) = (checker.open()?, checker.open()?);
    let id = a.send(SendRequest { to: b.hello.client_id, text: "bye".into() })?;
    b.forwarded()?;
    b.stream.shutdown(Shutdown::Both).map_err(|err| err.to_string())?;
    expect_status(a.delivery(id)?, DeliveryStatus::TargetGone)
}

/// Overhead of a forwarded message from `sender` (as the server sees it)
/// beyond its text: from (4), address (4-byte family + 4 or 16), port (2),
/// text length (8).
fn forward_overhead(sender: SocketAddr) -> usize {
    if sender.is_ipv4() {
        22
    } else {
        34
    }
}

fn too_large(checker: &Checker) -> Outcome {
    let (mut a, b) = (checker.open()?, checker.open()?);
    let text = "x".repeat(a.hello.max_payload as usize - forward_overhead(listed_address(&mut a)?) + 1);
    let id = a.send(SendRequest { to: b.hello.client_id, text })?;
    expect_status(a.delivery(id)?, DeliveryStatus::TooLarge)
}

/// B never reads; A sends large messages, each followed by a `T` request,
/// until one is refused `queue_full` (answered before the `T` response).
/// Earlier messages may meanwhile be answered `not_acknowledged`.
fn queue_full(checker: &Checker) -> Outcome {
    const BUDGET: usize = 256 << 20;
    let (mut a, b) = (checker.open()?, checker.open()?);
    let size = a.hello.max_payload as usize - forward_overhead(listed_address(&mut a)?);
    let text = "q".repeat(size);
    let first = a.next_id;
    for _ in 0..BUDGET / size {
        a.send(SendRequest { to: b.hello.client_id, text: text.clone() })?;
        let time = a.send(TimeRequest)?;
        loop {
            let frame = a.next_frame()?;
            let ours = (first..time).contains(&frame.request_id);
            match frame.message {
                Message::Delivery(d) if ours && d.status == DeliveryStatus::QueueFull => return Ok(()),
                Message::Delivery(d) if ours && d.status == DeliveryStatus::NotAcknowledged => {}
                Message::TimeResponse(_) if frame.request_id == time => break,
                _ => return Err(format!("unexpected {}", summary(&frame))),
            }
        }
    }
    drop(b);
    Err(format!("{} MiB sent to a client that does not read, and no queue_full", BUDGET >> 20))
}

fn not_acknowledged(checker: &Checker) -> Outcome {
    let (mut a, mut b) = (checker.open()?, checker.open()?);
    let id = a.send(SendRequest { to: b.hello.client_id, text: "never acked".into() })?;
    b.forwarded()?;
    let status = a.delivery(id)?; // after the server's ack timeout
    drop(b);
    expect_status(status, DeliveryStatus::NotAcknowledged)
}

// ---- Limits, frames ------------------------------------------------------

fn limits(checker: &Checker) -> Outcome {
    let (mut a, mut b) = (checker.open()?, checker.open()?);
    let max = a.hello.max_payload as usize;
    ensure(max >= MIN_MAX_PAYLOAD as usize, || format!("max_payload {max} is below {MIN_MAX_PAYLOAD}"))?;
    // The largest deliverable text, then a request of exactly max_payload bytes.
    let largest = "L".repeat(max - forward_overhead(listed_address(&mut a)?));
    deliver(&mut a, &mut b, &largest)?;
    let id = a.send(SendRequest { to: b.hello.client_id, text: "x".repeat(max - 12) })?;
    expect_status(a.delivery(id)?, DeliveryStatus::TooLarge)
}

fn split(checker: &Checker) -> Outcome {
    let mut client = checker.open()?;
    let me = client.hello.client_id;
    let id = client.next_request_id();
    for byte in encode(Frame::new(id, NameRequest)) {
        client.write(&[byte])?;
    }
    ensure(matches!(client.response(id)?, Message::NameResponse(_)), || "no N response".into())?;
    // A message in three pieces: inside the header, at its end, inside the text.
    let id = client.next_request_id();
    let bytes = encode(Frame::new(id, SendRequest { to: me, text: "in pieces".into() }));
    for piece in [&bytes[..7], &bytes[7..HEADER_LEN], &bytes[HEADER_LEN..HEADER_LEN + 14], &bytes[HEADER_LEN + 14..]] {
        client.write(piece)?;
    }
    let (delivery, text) = client.forwarded()?;
    ensure(text == "in pieces", || format!("text arrived as {text:?}"))?;
    client.write(&encode(Frame::new(delivery, Ack)))?;
    expect_status(client.delivery(id)?, DeliveryStatus::Delivered)
}

fn coalesced(checker: &Checker) -> Outcome {
    let mut client = checker.open()?;
    let mut bytes = Vec::new();
    for id in 1..=100u32 {
        let message: Message = if id.is_multiple_of(2) { TimeRequest.into() } else { NameRequest.into() };
        bytes.extend(encode(Frame::new(id, message)));
    }
    client.write(&bytes)?;
    let mut seen = [false; 101];
    for _ in 0..100 {
        let frame = client.next_frame()?;
        let id = frame.request_id as usize;
        let right = match frame.message {
            Message::TimeResponse(_) => id.is_multiple_of(2),
            Message::NameResponse(_) => !id.is_multiple_of(2),
            _ => false,
        };
        ensure(right && (1..=100).contains(&id) && !seen[id], || format!("unexpected {}", summary(&frame)))?;
        seen[id] = true;
    }
    Ok(())
}

// ---- Timers (`--timers`) -------------------------------------------------

/// A silent client is pinged (non-zero id) and stays served once it answers.
fn server_ping(checker: &Checker) -> Outcome {
    let mut client = checker.open()?;
    client.answer_pings = false;
    let frame = client.next_frame()?;
    let Frame { request_id, message: Message::ServerPing(_) } = frame else {
        return Err(format!("expected the server's ping, got {}", summary(&frame)));
    };
    ensure(request_id != 0, || "a ping with id 0".into())?;
    client.write(&encode(pong(request_id)))?;
    client.answer_pings = true;
    client.still_served()
}

/// Half a frame, then silence: an `E` frame `timeout` (id 0), then the close.
/// Pings are not answered: a pong would land inside the half-sent frame.
fn frame_timeout(checker: &Checker) -> Outcome {
    let mut client = checker.open()?;
    client.answer_pings = false;
    client.write(&encode(Frame::new(47, TimeRequest))[..7])?;
    loop {
        let frame = client.next_frame()?;
        match &frame.message {
            Message::ServerPing(_) => continue,
            Message::Error(body) if body.code == ErrorCode::Timeout && frame.request_id == 0 => return client.closed(),
            _ => return Err(format!("expected error timeout with id 0, got {}", summary(&frame))),
        }
    }
}

// ---- Errors --------------------------------------------------------------

/// What an error case sends: a `T` request with id `id`, edited.
fn edited_request(id: u32, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = encode(Frame::new(id, TimeRequest));
    edit(&mut bytes);
    bytes
}

/// Sends `bytes` (then ends its side of the stream, if `half_close`), and
/// expects an `E` frame with `code` echoing `id`; then, if the code is fatal,
/// the connection to close, else a `T` request to be answered.
fn error_case(checker: &Checker, bytes: &[u8], half_close: bool, code: ErrorCode, id: u32) -> Outcome {
    let mut client = checker.open()?;
    client.write(bytes)?;
    if half_close {
        client.stream.shutdown(Shutdown::Write).map_err(|err| err.to_string())?;
    }
    let frame = client.next_frame()?;
    let Message::Error(body) = &frame.message else {
        return Err(format!("expected error {}, got {}", code.name(), summary(&frame)));
    };
    ensure(body.code == code, || format!("expected error {}, got {}", code.name(), body.code.name()))?;
    ensure(frame.request_id == id, || format!("the error should carry request id {id}, has {}", frame.request_id))?;
    if code.is_fatal() || half_close {
        client.closed()
    } else {
        client.still_served()
    }
}

fn bad_magic(checker: &Checker) -> Outcome {
    error_case(checker, &edited_request(5, |b| b[0] = b'X'), false, ErrorCode::BadMagic, 0)
}

fn unsupported_version(checker: &Checker) -> Outcome {
    let bytes = edited_request(5, |b| b[offset::VERSION] = 2);
    error_case(checker, &bytes, false, ErrorCode::UnsupportedVersion, 0)
}

fn oversize(checker: &Checker) -> Outcome {
    let bytes = edited_request(41, |b| b[offset::LENGTH..offset::LENGTH + 4].copy_from_slice(&u32::MAX.to_le_bytes()));
    error_case(checker, &bytes, false, ErrorCode::Oversize, 41)
}

fn invalid_header(checker: &Checker) -> Outcome {
    let bytes = edited_request(42, |b| b[offset::RESERVED] = 1);
    error_case(checker, &bytes, false, ErrorCode::InvalidHeader, 42)
}

fn unknown_type(checker: &Checker) -> Outcome {
    error_case(checker, &edited_request(43, |b| b[offset::TYPE] = b'Z'), false, ErrorCode::UnknownType, 43)
}

fn unexpected_frame(checker: &Checker) -> Outcome {
    // A T response from a client, with a payload that would not even decode:
    // the direction is checked first.
    let bytes = edited_request(44, |b| {
        b[offset::CLASS] = 1;
        b[offset::LENGTH] = 1;
        b.push(0xFF);
    });
    error_case(checker, &bytes, false, ErrorCode::UnexpectedFrame, 44)
}

fn malformed_payload(checker: &Checker) -> Outcome {
    let mut bytes = encode(Frame::new(45, SendRequest { to: 1, text: "ok".into() }));
    let last = bytes.len() - 1;
    bytes[last] = 0xFF; // not UTF-8
    error_case(checker, &bytes, false, ErrorCode::MalformedPayload, 45)
}

fn truncated(checker: &Checker) -> Outcome {
    let bytes = encode(Frame::new(46, SendRequest { to: 1, text: "cut short".into() }));
    error_case(checker, &bytes[..bytes.len() - 3], true, ErrorCode::Truncated, 46)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_pattern_wants_millis_and_a_numeric_offset() {
        assert!(is_time_with_millis("2026-11-25T19:30:05.123+08:00"));
        assert!(is_time_with_millis("2026-11-25T19:30:05.123-03:30"));
        assert!(!is_time_with_millis("2026-11-25T19:30:05.123Z"));
        assert!(!is_time_with_millis("2026-11-25T19:30:05+08:00"));
    }
}
