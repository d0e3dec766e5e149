//! One connection to a TNLM server.
//!
//! [`Connection::open`] connects (socket options applied before the handshake),
//! starts a receiver thread named `tnlm-receiver` and waits for the server's
//! hello. The receiver thread owns the read side: it reads up to 8 KiB at a
//! time, feeds core's [`ClientSession`] (which decodes, answers pings,
//! acknowledges messages and runs the heartbeat) and passes every whole frame
//! on as an [`Event`], ending with [`Event::Closed`] and the reason. The caller's thread
//! owns the write side: [`Connection::send`] and [`Connection::send_batch`]
//! number the requests 1, 2, 3, … and [`wait_response`] matches the answers by
//! request id, handing indications that arrive meanwhile to a callback.
//!
//! Events go either to a private channel ([`Inbox`], for the commands) or to a
//! caller-provided sink (the menu merges them with stdin lines in one channel);
//! anything that can wait for the next event implements [`EventSource`].
//!
//! # A consumer that stops taking events
//!
//! The receiver acknowledges a forwarded message (which makes the server tell
//! the sender `delivered`) and queues it for the caller. If the caller stops
//! taking events from the [`Inbox`] (`tnlm-client listen | slow_program`, a
//! paused terminal, a library user that never calls
//! [`next_event`](EventSource::next_event)) while others keep sending, the
//! queue would grow without bound and senders would be told `delivered` for
//! messages nobody reads. So the forwarded messages waiting in an `Inbox` are
//! bounded by [`MAX_QUEUED_MESSAGE_BYTES`]: a message that does not fit is
//! neither acknowledged nor queued but dropped, and the server answers its
//! sender `not_acknowledged` after its ack timeout, which is the truth. The
//! receiver logs a warning at the first drop and each time the number of drops
//! doubles. Messages are accepted again as soon as the caller has taken
//! enough. Responses to the caller's own requests, errors, the hello and the
//! shutdown notice are never dropped: they are bounded by the caller's own
//! requests. A caller-provided sink ([`Connection::open_with`]) gets the same
//! bound by reporting what it takes ([`QueuedMessages`]).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use socket2::SockRef;
use tnlm_core::message::{Forwarded, Hello, PingRequest};
use tnlm_core::proto::client::{ClientConfig, ClientEvent, ClientSession, Ended, RequestIds};
use tnlm_core::sockopt::{Effective, SocketOptions};
use tnlm_core::{Class, DecodeError, Frame, Message, DEFAULT_MAX_PAYLOAD, VERSION};

use crate::error::ClientError;
pub use crate::error::CloseReason;
use crate::output::printable;

/// How many bytes the receiver thread asks for per `read`.
const READ_BUFFER: usize = 8 * 1024;

/// The largest payload accepted from the server. Larger than the request
/// limit because an `L` response grows with the number of clients (about 50
/// bytes each: 10,000 clients make ~500 KB); still a fixed bound.
pub const MAX_RESPONSE_PAYLOAD: u32 = 16 * 1024 * 1024;

/// The most bytes of forwarded messages that may wait in an [`Inbox`], not
/// yet taken by [`next_event`](EventSource::next_event). Each message counts
/// its text plus the size of the [`Event`] that carries it. A message that
/// would go past this is dropped unacknowledged, so its sender learns
/// `not_acknowledged`; one message is always accepted into an empty queue,
/// whatever its size. See [the module docs](self#a-consumer-that-stops-taking-events).
pub const MAX_QUEUED_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How to open a connection: socket options, the timeout for the handshake
/// and each response, and the optional application heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Socket options applied before the TCP handshake.
    pub socket: SocketOptions,
    /// Connect, hello and response timeout.
    pub timeout: Duration,
    /// Ping the server after this much silence; give up after three times
    /// this much without a sign of life. `None`: no heartbeat.
    pub heartbeat: Option<Duration>,
}

impl Settings {
    /// Settings with the given socket options and timeout, and no heartbeat.
    pub fn new(socket: &SocketOptions, timeout: Duration) -> Settings {
        Settings { socket: socket.clone(), timeout, heartbeat: None }
    }
}

/// A server silent for this many heartbeat intervals is given up on (the
/// same heartbeat as the server's: [`tnlm_core::proto::heartbeat`]).
pub use tnlm_core::proto::heartbeat::MISSES as HEARTBEAT_MISSES;

/// The write side of the socket, shared by the caller's thread (requests) and
/// the receiver thread (pongs and acks). The lock keeps every frame whole:
/// two threads' frames never interleave on the wire.
#[derive(Debug)]
struct WriteHalf {
    stream: TcpStream,
    lock: std::sync::Mutex<()>,
}

impl WriteHalf {
    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        (&self.stream).write_all(bytes)
    }
}

/// What the receiver thread reports.
#[derive(Debug)]
pub enum Event {
    /// A whole frame from the server.
    Frame(Frame),
    /// A frame that could not be decoded but was skipped; the stream goes on.
    Skipped(DecodeError),
    /// The connection ended; always the last event.
    Closed(CloseReason),
}

/// Where the receiver thread delivers events. It returns `false` once nobody
/// listens any more, and the thread then stops.
pub type Sink = Box<dyn FnMut(Event) -> bool + Send>;

/// Anything that can wait for the next event of one connection.
pub trait EventSource {
    /// The next event, or `None` when `deadline` passes first (`None` deadline:
    /// wait as long as it takes) or no more events can come.
    fn next_event(&mut self, deadline: Option<Instant>) -> Option<Event>;
}

/// The bytes of forwarded messages a connection's receiver has queued for
/// its consumer and the consumer has not taken yet, bounded by
/// [`MAX_QUEUED_MESSAGE_BYTES`]. The receiver counts a message in before it
/// queues it; the consumer calls [`taken`](Self::taken) for each event it
/// takes. Shared by both sides (clones count the same bytes).
#[derive(Debug, Clone, Default)]
pub struct QueuedMessages(Arc<AtomicUsize>);

impl QueuedMessages {
    /// Counts `event` out of the queue (only forwarded messages count).
    pub fn taken(&self, event: &Event) {
        if let Event::Frame(Frame { message: Message::Forwarded(message), .. }) = event {
            // The receiver counted it before queueing it (and the channel orders the two).
            self.0.fetch_sub(queued_cost(message), Ordering::Relaxed);
        }
    }
}

/// The private event channel of a connection opened with [`Connection::open`].
/// The forwarded messages waiting in it are bounded by [`MAX_QUEUED_MESSAGE_BYTES`].
#[derive(Debug)]
pub struct Inbox {
    events: Receiver<Event>,
    queued: QueuedMessages,
}

impl EventSource for Inbox {
    fn next_event(&mut self, deadline: Option<Instant>) -> Option<Event> {
        let event = match deadline {
            Some(deadline) => self.events.recv_deadline(deadline).ok(),
            None => self.events.recv().ok(),
        }?;
        self.queued.taken(&event);
        Some(event)
    }
}

/// What one forwarded message counts against [`MAX_QUEUED_MESSAGE_BYTES`]
/// while it waits in an [`Inbox`].
fn queued_cost(message: &Forwarded) -> usize {
    message.text.len() + std::mem::size_of::<Event>()
}

/// An open connection; see the [module docs](self), which also say what
/// happens to forwarded messages while nobody takes events
/// ([`MAX_QUEUED_MESSAGE_BYTES`]).
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    writer: Arc<WriteHalf>,
    /// `--linger 0`: close with an RST.
    abortive: bool,
    receiver: Option<JoinHandle<()>>,
    closing: Arc<AtomicBool>,
    /// Set by the receiver once it has acknowledged a forwarded message.
    acknowledged: Arc<AtomicBool>,
    hello: Hello,
    peer: SocketAddr,
    local: SocketAddr,
    /// Request ids, shared with the receiver thread's heartbeat pings.
    ids: Arc<RequestIds>,
}

impl Connection {
    /// Connects to `target` (`host:port`), waits up to `timeout` for the TCP
    /// handshake and then for the server's hello. Events arrive in the
    /// returned [`Inbox`]; forwarded messages beyond
    /// [`MAX_QUEUED_MESSAGE_BYTES`] waiting in it are dropped unacknowledged.
    pub fn open(target: &str, settings: &Settings) -> Result<(Connection, Inbox), ClientError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let queued = QueuedMessages::default();
        let mut inbox = Inbox { events: rx, queued: queued.clone() };
        let sink: Sink = Box::new(move |event| tx.send(event).is_ok());
        let connection = Connection::open_with(target, settings, sink, &mut inbox, queued)?;
        Ok((connection, inbox))
    }

    /// Like [`open`](Self::open), but events go to `sink`, and the hello is
    /// awaited through `source` (which must see what `sink` is given). The
    /// sink's owner calls [`QueuedMessages::taken`] on `queued` for every
    /// event it takes, so that forwarded messages beyond
    /// [`MAX_QUEUED_MESSAGE_BYTES`] waiting for it are dropped unacknowledged.
    pub fn open_with(
        target: &str,
        settings: &Settings,
        sink: Sink,
        source: &mut impl EventSource,
        queued: QueuedMessages,
    ) -> Result<Connection, ClientError> {
        let (options, timeout) = (&settings.socket, settings.timeout);
        let deadline = Instant::now() + timeout;
        let connect_error = |source| ClientError::Connect { target: target.to_string(), source };
        let (stream, warnings) = tnlm_core::net::connect(target, options, timeout).map_err(connect_error)?;
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!("socket options in effect: {}", Effective::read(SockRef::from(&stream)));
        }
        stream.set_write_timeout(Some(timeout)).map_err(connect_error)?;
        let peer = stream.peer_addr().map(tnlm_core::net::canonical).map_err(connect_error)?;
        let local = stream.local_addr().map(tnlm_core::net::canonical).map_err(connect_error)?;
        let closing = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicBool::new(false));
        let ids = Arc::new(RequestIds::default());
        let writer =
            Arc::new(WriteHalf { stream: stream.try_clone().map_err(connect_error)?, lock: Default::default() });
        let receiver = ReceiverThread {
            stream: stream.try_clone().map_err(connect_error)?,
            writer: Arc::clone(&writer),
            closing: Arc::clone(&closing),
            acknowledged: Arc::clone(&acknowledged),
            session: ClientSession::new(
                ClientConfig { max_payload: MAX_RESPONSE_PAYLOAD, heartbeat: settings.heartbeat },
                Instant::now(),
            ),
            ids: Arc::clone(&ids),
            sink,
            admission: Admission { queued, dropped: 0, dropping: false },
            read_timeout: None,
        };
        let receiver = receiver.spawn().map_err(connect_error)?;
        let mut connection = Connection {
            stream,
            writer,
            abortive: options.linger == Some(0),
            receiver: Some(receiver),
            closing,
            acknowledged,
            hello: placeholder_hello(),
            peer,
            local,
            ids,
        };
        match await_hello(source, deadline) {
            Ok(hello) => {
                tracing::debug!(id = hello.client_id, server = %hello.server, "connected to {peer} from {local}");
                connection.hello = hello;
                Ok(connection)
            }
            Err(problem) => {
                connection.shutdown();
                Err(ClientError::Handshake { target: target.to_string(), problem })
            }
        }
    }

    /// The server's hello: our id, its name and protocol version.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The id the server assigned to this client.
    pub fn id(&self) -> u32 {
        self.hello.client_id
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// This end's address (as the server lists it, on loopback).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Sends one request and returns its request id.
    pub fn send(&mut self, message: impl Into<Message>) -> Result<u32, ClientError> {
        let ids = self.send_batch([message.into()])?;
        Ok(ids[0])
    }

    /// Encodes every message into one buffer and writes it with a single
    /// `write_all`: the frames leave back to back, with no pause between them.
    /// Returns their request ids in order.
    pub fn send_batch(&mut self, messages: impl IntoIterator<Item = Message>) -> Result<Vec<u32>, ClientError> {
        let mut buffer = Vec::new();
        let mut ids = Vec::new();
        for message in messages {
            let id = self.next_request_id();
            Frame::new(id, message).encode_into(&mut buffer, self.hello.max_payload)?;
            ids.push(id);
        }
        self.writer.write(&buffer).map_err(ClientError::Send)?;
        tracing::trace!(frames = ids.len(), bytes = buffer.len(), "sent");
        Ok(ids)
    }

    /// True when closing will send an RST (`--linger 0`) after acks for
    /// forwarded messages: the RST may destroy the last of them before the
    /// server has read them.
    pub fn close_may_lose_acks(&self) -> bool {
        self.abortive && self.acknowledged.load(Ordering::SeqCst)
    }

    /// Call before [`close`](Self::close). When the close would be abortive
    /// (`--linger 0`) after acks were sent, sends one ping and waits (up to
    /// `timeout`) for its answer: the server answers in order, so it has then
    /// read everything sent before, the last acks included. Otherwise the RST
    /// could overtake them, and a message this client received would be
    /// reported `target_gone` to its sender. Indications arriving meanwhile
    /// go to `on_indication`. Failures are only logged: the connection is
    /// closing anyway.
    pub fn settle(&mut self, source: &mut impl EventSource, timeout: Duration, on_indication: impl FnMut(&Frame)) {
        if !self.close_may_lose_acks() {
            return;
        }
        let Ok(id) = self.send(PingRequest) else { return };
        if let Err(err) = wait_response(source, id, Instant::now() + timeout, on_indication) {
            tracing::debug!("no answer to the ping before closing: {err:?}");
        }
    }

    /// Shuts the socket down and waits for the receiver thread to finish.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(receiver) = self.receiver.take() else {
            return;
        };
        self.closing.store(true, Ordering::SeqCst);
        // Waking the receiver with a full shutdown would send a FIN, which
        // defeats `--linger 0` (an abortive close: RST, no TIME_WAIT). On Unix,
        // shutting down only the read side wakes it too, and the socket's last
        // close then sends the RST.
        let how = if self.abortive && cfg!(unix) { Shutdown::Read } else { Shutdown::Both };
        if let Err(err) = self.stream.shutdown(how) {
            tracing::debug!("shutdown: {err}");
        }
        if receiver.join().is_err() {
            tracing::error!("the receiver thread panicked");
        }
    }

    fn next_request_id(&mut self) -> u32 {
        self.ids.next()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Why [`wait_response`] returned without a response.
#[derive(Debug)]
pub enum WaitError {
    /// The deadline passed.
    Timeout,
    /// The connection ended first.
    Closed(CloseReason),
    /// The response arrived but could not be decoded.
    Undecodable(DecodeError),
}

impl WaitError {
    /// The user-facing error for a wait on a `what` request that gave up after `timeout`.
    pub fn into_client_error(self, what: &'static str, timeout: Duration) -> ClientError {
        match self {
            WaitError::Timeout => ClientError::Timeout { what, timeout },
            WaitError::Closed(reason) => ClientError::Closed(reason),
            WaitError::Undecodable(err) => {
                ClientError::Failed(format!("the server's answer to the {what} request was undecodable: {err}"))
            }
        }
    }
}

/// Waits until `deadline` for the response to `request_id` and returns it
/// (an error frame with that id, or with id 0, counts as the response).
/// Indications that arrive meanwhile go to `on_indication`; stray responses
/// (to requests already given up on) are logged and dropped.
pub fn wait_response(
    source: &mut impl EventSource,
    request_id: u32,
    deadline: Instant,
    mut on_indication: impl FnMut(&Frame),
) -> Result<Frame, WaitError> {
    loop {
        match source.next_event(Some(deadline)) {
            None => return Err(WaitError::Timeout),
            Some(Event::Closed(reason)) => return Err(WaitError::Closed(reason)),
            Some(Event::Skipped(err)) if err.request_id() == request_id => return Err(WaitError::Undecodable(err)),
            Some(Event::Skipped(err)) => tracing::warn!("skipped an undecodable frame: {err}"),
            Some(Event::Frame(frame)) if is_indication(&frame) => on_indication(&frame),
            Some(Event::Frame(frame)) if answers(&frame, request_id) => return Ok(frame),
            Some(Event::Frame(frame)) => tracing::debug!("ignoring stray {}", frame.summary()),
        }
    }
}

/// True for frames the server pushes unasked.
pub fn is_indication(frame: &Frame) -> bool {
    frame.message.kind().1 == Class::Indication
}

fn answers(frame: &Frame, request_id: u32) -> bool {
    frame.request_id == request_id || (frame.request_id == 0 && matches!(frame.message, Message::Error(_)))
}

/// Stands in until the real hello has arrived (never visible to callers).
fn placeholder_hello() -> Hello {
    Hello { client_id: 0, server: String::new(), version: VERSION, max_payload: DEFAULT_MAX_PAYLOAD }
}

/// Waits for the hello the server sends first on every connection.
fn await_hello(source: &mut impl EventSource, deadline: Instant) -> Result<Hello, String> {
    let frame = match source.next_event(Some(deadline)) {
        None => return Err("the server sent no hello in time".into()),
        Some(Event::Closed(reason)) => return Err(format!("the connection closed before the hello: {reason}")),
        Some(Event::Skipped(err)) => return Err(format!("its first frame was undecodable: {err}")),
        Some(Event::Frame(frame)) => frame,
    };
    match frame.message {
        Message::Hello(hello) => {
            if hello.version != VERSION {
                tracing::warn!("the server speaks protocol version {}, this client {VERSION}", hello.version);
            }
            Ok(hello)
        }
        Message::Error(body) => Err(format!("the server refused: {} ({})", printable(&body.text), body.code.name())),
        Message::Shutdown(notice) => Err(format!("the server is shutting down: {}", printable(&notice.reason))),
        _ => Err(format!("it sent {} instead of a hello", frame.summary())),
    }
}

/// The receiver thread's state: it owns the read side of the socket and the
/// connection's [`ClientSession`] (core's client side of the protocol:
/// decoding, pongs, acks, the heartbeat), and writes what the session owes.
///
/// A forwarded message is admitted (and only then acknowledged) if its
/// [`queued_cost`] fits: see the [module docs](self#a-consumer-that-stops-taking-events).
struct ReceiverThread {
    stream: TcpStream,
    writer: Arc<WriteHalf>,
    closing: Arc<AtomicBool>,
    /// See [`Connection::close_may_lose_acks`].
    acknowledged: Arc<AtomicBool>,
    session: ClientSession,
    /// Where the heartbeat's ping ids come from (the connection's request ids).
    ids: Arc<RequestIds>,
    sink: Sink,
    admission: Admission,
    /// The socket's read timeout now.
    read_timeout: Option<Duration>,
}

/// The bound on forwarded messages waiting for the consumer.
struct Admission {
    /// Bytes of forwarded messages queued and not yet taken.
    queued: QueuedMessages,
    /// Forwarded messages dropped so far because the queue was full.
    dropped: u64,
    /// The last forwarded message was dropped.
    dropping: bool,
}

/// Why the receive loop stopped.
enum Stop {
    Closed(CloseReason),
    NobodyListens,
}

impl ReceiverThread {
    fn spawn(self) -> io::Result<JoinHandle<()>> {
        thread::Builder::new().name("tnlm-receiver".into()).spawn(move || self.run())
    }

    /// Read, decode, answer pings and acknowledge messages, deliver, until the stream ends.
    fn run(mut self) {
        if let Stop::Closed(reason) = self.read_until_stop() {
            tracing::debug!("receiver stops: {reason}");
            (self.sink)(Event::Closed(reason));
        }
    }

    fn read_until_stop(&mut self) -> Stop {
        let mut buffer = vec![0u8; READ_BUFFER];
        loop {
            self.rearm();
            match self.stream.read(&mut buffer) {
                Ok(0) => return Stop::Closed(self.end_of_stream()),
                Ok(n) => {
                    self.session.receive(&buffer[..n], Instant::now());
                    if let Err(stop) = self.deliver_frames() {
                        return stop;
                    }
                }
                Err(err) if tnlm_core::net::is_socket_timeout(&err) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) if self.closing.load(Ordering::SeqCst) => return Stop::Closed(CloseReason::Local),
                Err(err) => return Stop::Closed(CloseReason::Io(err)),
            }
            if let Err(ended) = self.session.handle_timeout(Instant::now(), &self.ids) {
                let _ = self.stream.shutdown(Shutdown::Both);
                return Stop::Closed(close_reason(ended));
            }
            self.flush();
        }
    }

    /// Sets the read timeout to the session's next deadline (the heartbeat),
    /// so the thread sleeps until a ping is due instead of polling; no
    /// timeout without a heartbeat.
    fn rearm(&mut self) {
        let wanted = self
            .session
            .next_deadline()
            .map(|at| at.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)));
        if wanted != self.read_timeout {
            if let Err(err) = self.stream.set_read_timeout(wanted) {
                tracing::debug!("cannot set the read timeout: {err}");
            }
            self.read_timeout = wanted;
        }
    }

    /// Passes on every event of what was received, writing at once what the
    /// session answered (a pong, an ack): the receiver, not the user,
    /// answers the server's pings and acknowledges each forwarded message as
    /// soon as it has arrived whole and has room in the queue, so the
    /// sender's `delivered` is the truth even while the user is busy. A
    /// message without room is dropped unanswered.
    fn deliver_frames(&mut self) -> Result<(), Stop> {
        loop {
            let admission = &mut self.admission;
            let event = match self.session.poll_event(|message| admission.admit(message)) {
                Ok(None) => return Ok(()),
                Ok(Some(ClientEvent::Frame(frame))) => {
                    tracing::trace!("received {}", frame.summary());
                    Event::Frame(frame)
                }
                Ok(Some(ClientEvent::Refused(_))) => continue,
                Ok(Some(ClientEvent::Skipped(err))) => Event::Skipped(err),
                Err(ended) => return Err(Stop::Closed(close_reason(ended))),
            };
            self.flush();
            if !(self.sink)(event) {
                return Err(Stop::NobodyListens);
            }
        }
    }

    /// Writes what the session owes the server (pongs, acks, pings).
    fn flush(&mut self) {
        let owed = self.session.transmit();
        if owed.is_empty() {
            return;
        }
        if let Err(err) = self.writer.write(owed) {
            tracing::debug!("could not send {} bytes of pongs, acks or pings: {err}", owed.len());
        }
        owed.clear();
        if self.session.has_acknowledged() {
            self.acknowledged.store(true, Ordering::SeqCst);
        }
    }

    fn end_of_stream(&self) -> CloseReason {
        if self.closing.load(Ordering::SeqCst) {
            return CloseReason::Local;
        }
        close_reason(self.session.end_of_stream())
    }
}

impl Admission {
    /// Counts `message` as queued if it fits within [`MAX_QUEUED_MESSAGE_BYTES`]
    /// (or the queue is empty) and returns `true`; otherwise counts and
    /// reports a drop and returns `false`. One atomic operation when it fits.
    fn admit(&mut self, message: &Forwarded) -> bool {
        let queued = &self.queued.0;
        let cost = queued_cost(message);
        let before = queued.fetch_add(cost, Ordering::Relaxed);
        if before == 0 || before + cost <= MAX_QUEUED_MESSAGE_BYTES {
            if self.dropping {
                self.dropping = false;
                tracing::info!(dropped = self.dropped, "the inbox has room again; accepting forwarded messages");
            }
            return true;
        }
        queued.fetch_sub(cost, Ordering::Relaxed);
        self.dropping = true;
        self.dropped += 1;
        if self.dropped.is_power_of_two() {
            tracing::warn!(
                "events are not being taken: {before} bytes of forwarded messages wait (limit \
                 {MAX_QUEUED_MESSAGE_BYTES}); dropped {} unacknowledged so far, the latest from client {}, \
                 whose sender will get not_acknowledged",
                self.dropped,
                message.from
            );
        }
        false
    }
}

/// How the connection ended, in the client's words.
fn close_reason(ended: Ended) -> CloseReason {
    match ended {
        Ended::Eof => CloseReason::Eof,
        Ended::Decode(err) => CloseReason::Decode(err),
        Ended::Silent(silent) => CloseReason::HeartbeatTimeout(silent),
    }
}
