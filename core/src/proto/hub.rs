//! What spans connections, without I/O: who is connected, the deliveries
//! book, every client's queue and the budget of all queues, and what each
//! request means.
//!
//! One [`Hub`] per server. Each connection's [`Conn`](crate::proto::conn::Conn)
//! feeds it what its client asked (a request, an ack, its departure), and the
//! server feeds it the rest (a newcomer, the time, shutdown). It answers in
//! values:
//! - the answer to a request, appended to the asking connection's output;
//! - frames for *other* clients (a forwarded message, a receipt, the
//!   shutdown notice), put in their [`Queue`]s, and a wake-up for each such
//!   client, taken with [`poll_wake`](Hub::poll_wake): the driver tells that
//!   client's connection, which takes the frames out when its socket can take
//!   them ([`take_batch`](Hub::take_batch));
//! - its next deadline (an unacknowledged message's ack timeout).
//!
//! It never reads a socket or the monotonic clock (`now` comes with each
//! call), takes no lock and starts no thread: the server's engines hold it
//! behind one lock; the deterministic simulation calls it directly. The one
//! thing it reads from outside is the wall clock for `T` answers and a
//! client's connection time, through [`HubConfig::wall_clock`].

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local, SecondsFormat};

use crate::error::ErrorCode;
use crate::frame::Frame;
use crate::message::{
    ClientInfo, Delivery, DeliveryStatus, ErrorBody, Forwarded, Hello, ListResponse, Message, NameResponse, Pong,
    SendRequest, Shutdown, TimeResponse,
};
use crate::proto::deliveries::{Book, Settled};
use crate::proto::queue::{Budget, Origin, PushError, Queue};
use crate::proto::session::{encode_into, error_frame};
use crate::VERSION;

/// What the hub needs to know: the server's name, limits and timers.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The answer to `N` requests, also sent in the hello.
    pub name: String,
    /// Largest payload a client may send; no frame the hub makes is larger.
    pub max_payload: u32,
    /// Most clients listed at once (`--max-clients`).
    pub max_clients: usize,
    /// Bytes of messages from others that may wait for one client (`--queue-bytes`).
    pub queue_bytes: usize,
    /// Bytes that may wait in all queues together (`--queue-total`).
    pub queue_total: usize,
    /// How long a forwarded message waits for its target's ack (`--ack-timeout`).
    pub ack_timeout: Duration,
    /// Log each request and each message's outcome at info level (`--log-requests`).
    pub log_requests: bool,
    /// Reads the wall clock, for `T` answers and connection times. A
    /// simulation passes a fixed one.
    pub wall_clock: fn() -> SystemTime,
    /// The key that makes delivery ids unpredictable; `None`: a random one.
    /// A simulation passes its seed, so a run replays exactly.
    pub delivery_key: Option<u64>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            name: "tnlm-server".into(),
            max_payload: crate::DEFAULT_MAX_PAYLOAD,
            max_clients: 10_000,
            queue_bytes: 1024 * 1024,
            queue_total: 256 * 1024 * 1024,
            ack_timeout: Duration::from_secs(5),
            log_requests: false,
            wall_clock: SystemTime::now,
            delivery_key: None,
        }
    }
}

/// Why a newcomer could not be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server is shutting down.
    Closed,
    /// `max_clients` clients are listed already.
    Full(usize),
    /// The OS would not give the server what one more client needs (the
    /// thread engine could not start a thread).
    Exhausted,
    /// The server is at its open-file limit (`ulimit -n`).
    OutOfDescriptors,
}

impl Refusal {
    /// The frame a refused newcomer is told why with, before the FIN.
    pub fn frame(self) -> Vec<u8> {
        let text = match self {
            Refusal::Closed => return encoded(&Frame::indication(shutdown_notice())),
            Refusal::Full(max) => {
                format!("the server already serves its maximum of {max} clients; try again later")
            }
            Refusal::Exhausted => {
                "the server cannot take more clients now (it could not start a thread); try again later".into()
            }
            Refusal::OutOfDescriptors => "the server has no file descriptor left for another client (its \
                                          open-file limit, ulimit -n); try again later"
                .into(),
        };
        error_frame(0, ErrorCode::TooManyClients, &text)
    }
}

/// What a request means when it needs nothing that spans connections: the
/// time, the server's name, a pong for a client's ping (and a client's
/// pong, which needs nothing). A connection answers these itself, without
/// the hub's lock ([`Conn::receive`](crate::proto::conn::Conn::receive));
/// [`Hub::handle`] answers them the same way. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Answers(Arc<HubConfig>);

/// Whether [`Answers::answer`] could answer a frame alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alone {
    /// Answered (or nothing was owed).
    Answered,
    /// The frame needs the hub: [`Hub::handle`].
    NeedsHub,
}

impl Answers {
    /// Answers `frame` from client `from` into `reply` if it needs nothing
    /// that spans connections.
    pub fn answer(&self, from: u32, frame: &Frame, reply: &mut Vec<u8>) -> Alone {
        let config = &self.0;
        let answer: Message = match frame.message {
            Message::TimeRequest(_) => TimeResponse { time: local_time((config.wall_clock)()) }.into(),
            Message::NameRequest(_) => NameResponse { name: config.name.clone() }.into(),
            Message::PingRequest(_) => Pong.into(),
            Message::Pong(_) => return Alone::Answered,
            _ => return Alone::NeedsHub,
        };
        if config.log_requests {
            log_request(from, &frame.message, 0);
        }
        encode_into(reply, &Frame::new(frame.request_id, answer));
        Alone::Answered
    }
}

/// What the connection of a client must act on, besides frames to take.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    /// Server shutdown: FIN once everything queued is written.
    pub fin_after: bool,
    /// Cut the connection now (shutdown's grace is over).
    pub cut: bool,
}

/// One client the hub knows: listed, or leaving until its connection ends.
#[derive(Debug)]
struct Client {
    addr: SocketAddr,
    /// When it connected, RFC 3339 with the server's UTC offset (as listed).
    since: String,
    listed: bool,
    queue: Queue,
    signals: Signals,
    /// A wake-up for it is waiting in `wakes` or with its driver.
    notified: bool,
}

/// Everything that spans connections. See the [module docs](self).
#[derive(Debug)]
pub struct Hub {
    config: Arc<HubConfig>,
    /// The next client id: 1, 2, 3, …, never reused; `None` once all are used.
    next_id: Option<u32>,
    clients: BTreeMap<u32, Client>,
    listed: usize,
    book: Book<()>,
    budget: Budget,
    /// Shutdown has begun: no newcomers.
    closed: bool,
    /// Shutdown's grace is over: every connection, and any that leaves from
    /// now on, is cut.
    cutting: bool,
    wakes: VecDeque<u32>,
}

impl Hub {
    /// An empty hub.
    pub fn new(config: HubConfig) -> Hub {
        let book = match config.delivery_key {
            Some(key) => Book::with_key(config.ack_timeout, key),
            None => Book::new(config.ack_timeout),
        };
        Hub {
            budget: Budget::new(config.queue_total),
            config: Arc::new(config),
            next_id: Some(1),
            clients: BTreeMap::new(),
            listed: 0,
            book,
            closed: false,
            cutting: false,
            wakes: VecDeque::new(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The answers a connection may give without the hub.
    pub fn answers(&self) -> Answers {
        Answers(Arc::clone(&self.config))
    }

    /// Takes the next client id (1, 2, 3, …; never reused, so a message to a
    /// client that left can never reach a newcomer); `None` once every
    /// 32-bit id has been handed out (the server must be restarted).
    pub fn next_id(&mut self) -> Option<u32> {
        let id = self.next_id?;
        self.next_id = id.checked_add(1);
        Some(id)
    }

    /// Lists client `id` (from [`next_id`](Self::next_id)), connected from
    /// `addr`, and returns the hello it gets first; or why it cannot be
    /// listed (then the hub keeps nothing of it: the driver sends
    /// [`Refusal::frame`] and closes).
    pub fn join(&mut self, id: u32, addr: SocketAddr) -> Result<Vec<u8>, Refusal> {
        if self.closed {
            return Err(Refusal::Closed);
        }
        if self.listed >= self.config.max_clients {
            return Err(Refusal::Full(self.config.max_clients));
        }
        let since = DateTime::<Local>::from((self.config.wall_clock)()).to_rfc3339_opts(SecondsFormat::Secs, false);
        let client =
            Client { addr, since, listed: true, queue: Queue::default(), signals: Signals::default(), notified: false };
        self.clients.insert(id, client);
        self.listed += 1;
        let hello = Hello {
            client_id: id,
            server: self.config.name.clone(),
            version: VERSION,
            max_payload: self.config.max_payload,
        };
        Ok(encoded(&Frame::indication(hello)))
    }

    /// Acts on `frame` from client `from`, whose connection has completely
    /// written `written` bytes of its queue so far (what its acks are
    /// checked against). Appends the immediate answer, if any, to `reply`;
    /// an `M` request is answered later, when its delivery settles, unless
    /// it cannot even be queued. Takes the frame by value so a message's
    /// text moves into the forwarded frame uncopied.
    pub fn handle(&mut self, from: u32, frame: Frame, written: u64, now: Instant, reply: &mut Vec<u8>) {
        if self.answers().answer(from, &frame, reply) == Alone::Answered {
            return;
        }
        if self.config.log_requests {
            log_request(from, &frame.message, self.listed);
        }
        let request_id = frame.request_id;
        let answer: Message = match frame.message {
            Message::ListRequest(_) => ListResponse::fitting(self.clients(), self.config.max_payload).into(),
            Message::SendRequest(request) => match self.forward(from, request_id, request, now) {
                Some(refused) => refused.into(),
                None => return,
            },
            Message::Ack(_) => {
                self.acknowledge(from, request_id, written);
                return;
            }
            // A connection's decoder accepts only what a client may send,
            // so this arm is a safety net: it answers as the decoder would.
            other => {
                let (type_code, class) = other.kind();
                let text =
                    format!("a client sends requests, pongs and acks, not a {} {}", type_code.name(), class.name());
                ErrorBody { code: ErrorCode::UnexpectedFrame, text }.into()
            }
        };
        encode_into(reply, &Frame::new(request_id, answer));
    }

    /// Client `id` is leaving (its session ended): nobody can list or
    /// address it from now on, and every message waiting for its ack fails
    /// `target_gone`. Answers it is owed (receipts) are still queued for it
    /// until [`close_queue`](Self::close_queue).
    pub fn leave(&mut self, id: u32) {
        let Some(client) = self.clients.get_mut(&id) else { return };
        if client.listed {
            client.listed = false;
            self.listed -= 1;
        }
        client.queue.refuse_messages();
        if self.cutting {
            client.signals.cut = true;
            self.wake(id);
        }
        let gone = self.book.target_gone(id);
        self.settle(gone);
    }

    /// True while a message client `id` sent waits for its outcome (it is
    /// owed a receipt).
    pub fn owes_receipts(&self, id: u32) -> bool {
        self.book.any_from(id)
    }

    /// Client `id` takes nothing more into its queue (its last words are
    /// next); what waits can still be taken.
    pub fn close_queue(&mut self, id: u32) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.queue.close();
        }
    }

    /// The next batch of frames queued for client `id` and the queue offset
    /// it ends at. Frames stay queued, and counted against the limits,
    /// until its connection can take them.
    pub fn take_batch(&mut self, id: u32) -> Option<(Vec<u8>, u64)> {
        self.clients.get_mut(&id)?.queue.take_batch(&mut self.budget)
    }

    /// Client `id`'s connection, woken: what it was woken for (besides
    /// frames to take). Re-arms its wake-up.
    pub fn signals(&mut self, id: u32) -> Signals {
        match self.clients.get_mut(&id) {
            Some(client) => {
                client.notified = false;
                client.signals
            }
            None => Signals { fin_after: false, cut: true },
        }
    }

    /// Client `id`'s connection has ended: the hub forgets it, what still
    /// waits in its queue, and the messages it sent that are still in flight.
    pub fn forget(&mut self, id: u32) {
        self.leave(id);
        if let Some(mut client) = self.clients.remove(&id) {
            client.queue.clear(&mut self.budget);
        }
        self.book.forget_sender(id);
    }

    /// Runs the ack timeouts due at `now`: those messages end `not_acknowledged`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired = self.book.expire(now);
        self.settle(expired);
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.book.next_deadline()
    }

    /// Shutdown begins: no newcomers; messages in flight end `target_gone`
    /// (their receipts queued first), then every listed client gets the
    /// shutdown notice, after which its connection sends FIN.
    pub fn shutdown(&mut self) {
        self.closed = true;
        let all = self.book.stop();
        self.settle(all);
        let notice = encoded(&Frame::indication(shutdown_notice()));
        let listed: Vec<u32> = self.clients.iter().filter(|(_, c)| c.listed).map(|(id, _)| *id).collect();
        for id in listed {
            let Some(client) = self.clients.get_mut(&id) else { continue };
            if client.queue.admit(notice.clone(), Origin::Notice, 0, &mut self.budget).is_ok() {
                client.signals.fin_after = true;
                self.wake(id);
            }
        }
    }

    /// Shutdown's grace is over: every connection left, listed or leaving,
    /// is to be cut now, and so is any that leaves later.
    pub fn cut_all(&mut self) {
        self.cutting = true;
        let ids: Vec<u32> = self.clients.keys().copied().collect();
        for id in ids {
            if let Some(client) = self.clients.get_mut(&id) {
                client.signals.cut = true;
            }
            self.wake(id);
        }
    }

    /// The next client whose connection must look at the hub (frames
    /// queued for it, or a signal); each is listed once until its
    /// connection takes its [`signals`](Self::signals).
    pub fn poll_wake(&mut self) -> Option<u32> {
        self.wakes.pop_front()
    }

    /// Every listed client, in id order, as an `L` response lists them.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.clients
            .iter()
            .filter(|(_, client)| client.listed)
            .map(|(&id, client)| ClientInfo {
                id,
                ip: client.addr.ip(),
                port: client.addr.port(),
                since: client.since.clone(),
            })
            .collect()
    }

    /// How many clients are listed.
    pub fn len(&self) -> usize {
        self.listed
    }

    /// True when no client is listed.
    pub fn is_empty(&self) -> bool {
        self.listed == 0
    }

    /// True while client `id` is listed.
    pub fn is_listed(&self, id: u32) -> bool {
        self.clients.get(&id).is_some_and(|client| client.listed)
    }

    /// True while the hub holds anything of client `id` (listed or leaving).
    pub fn knows(&self, id: u32) -> bool {
        self.clients.contains_key(&id)
    }

    /// How many clients it holds anything of, listed or leaving.
    pub fn known(&self) -> usize {
        self.clients.len()
    }

    /// Bytes waiting in client `id`'s queue.
    pub fn queued_bytes(&self, id: u32) -> usize {
        self.clients.get(&id).map_or(0, |client| client.queue.bytes())
    }

    /// The budget of all queues together.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// True while a message to or from client `id` waits for its outcome.
    pub fn involves(&self, id: u32) -> bool {
        self.book.any_from(id) || self.book.any_to(id)
    }

    /// How many messages wait for their outcome.
    pub fn in_flight(&self) -> usize {
        self.book.len()
    }

    /// Queues `request.text` for its target as an `M` indication and begins
    /// its delivery; returns the answer only when it cannot even be queued.
    fn forward(&mut self, from: u32, request_id: u32, request: SendRequest, now: Instant) -> Option<Delivery> {
        let to = request.to;
        let refused = |status: DeliveryStatus, reason: String| Some(Delivery { to, status, reason });
        let Some(sender) = self.clients.get(&from).map(|client| client.addr) else {
            return refused(DeliveryStatus::TargetGone, "the sender is not connected".into());
        };
        if !self.is_listed(to) {
            return self.log_outcome(
                from,
                refused(DeliveryStatus::NoSuchClient, format!("no client with id {to} is connected")),
            );
        }
        let delivery = self.book.begin((), from, request_id, to, now);
        // Room for the header, the sender fields and the text: one allocation.
        let mut bytes = Vec::with_capacity(crate::HEADER_LEN + 64 + request.text.len());
        let indication = Frame::new(
            delivery,
            Forwarded { from, from_ip: sender.ip(), from_port: sender.port(), text: request.text },
        );
        let pushed = match indication.encode_into(&mut bytes, self.config.max_payload) {
            Err(err) => Err((DeliveryStatus::TooLarge, format!("message too large to forward: {err}"))),
            Ok(()) => self.push(to, bytes, Origin::Others).map_err(|err| match err {
                PushError::Full => {
                    (DeliveryStatus::QueueFull, format!("client {to} is not reading; its queue is full"))
                }
                PushError::Gone => (DeliveryStatus::TargetGone, format!("client {to} has disconnected")),
            }),
        };
        match pushed {
            Ok(end) => {
                self.book.queued(delivery, end);
                None
            }
            Err((status, reason)) => {
                self.book.cancel(delivery);
                self.log_outcome(from, refused(status, reason))
            }
        }
    }

    /// An ack from `from` for delivery `id`; ignored (a lie, or late) unless
    /// the indication was addressed to `from` and completely written to it.
    fn acknowledge(&mut self, from: u32, id: u32, written: u64) {
        match self.book.acknowledge(from, id, written) {
            Some(settled) => self.settle(vec![settled]),
            None => tracing::debug!(client = from, "ack #{id} for no delivery it has received"),
        }
    }

    /// Queues the receipt of each settled delivery for its sender.
    fn settle(&mut self, settled: Vec<Settled<()>>) {
        for Settled { pending, status, reason } in settled {
            let (from, to) = (pending.sender_id, pending.target);
            if self.config.log_requests {
                tracing::info!("client {from}'s message to client {to}: {} ({reason})", status.name());
            }
            let receipt = encoded(&Frame::new(pending.request_id, Delivery { to, status, reason }));
            // Never blocks anyone: a sender whose queue is full of receipts
            // is not reading and will be cut off as a slow consumer anyway.
            if self.push(from, receipt, Origin::Owed).is_err() {
                tracing::debug!("the sender of request #{} is gone or stuck; receipt dropped", pending.request_id);
            }
        }
    }

    /// Queues `frame` for client `to` and wakes its connection.
    fn push(&mut self, to: u32, frame: Vec<u8>, origin: Origin) -> Result<u64, PushError> {
        let client = self.clients.get_mut(&to).ok_or(PushError::Gone)?;
        let end = client.queue.admit(frame, origin, self.config.queue_bytes, &mut self.budget)?;
        self.wake(to);
        Ok(end)
    }

    fn wake(&mut self, id: u32) {
        if let Some(client) = self.clients.get_mut(&id) {
            if !client.notified {
                client.notified = true;
                self.wakes.push_back(id);
            }
        }
    }

    fn log_outcome(&self, from: u32, answer: Option<Delivery>) -> Option<Delivery> {
        if let (true, Some(delivery)) = (self.config.log_requests, &answer) {
            let (to, status, reason) = (delivery.to, delivery.status.name(), &delivery.reason);
            tracing::info!("client {from}'s message to client {to}: {status} ({reason})");
        }
        answer
    }
}

/// With `--log-requests`: one info line per request a student would
/// screenshot (`client 2 asked for the time`); `listed` is how many clients
/// are connected (for `L`). Pings, pongs and acks are the protocol's own
/// housekeeping and stay at debug level.
fn log_request(id: u32, message: &Message, listed: usize) {
    match message {
        Message::TimeRequest(_) => tracing::info!("client {id} asked for the time"),
        Message::NameRequest(_) => tracing::info!("client {id} asked for the server's name"),
        Message::ListRequest(_) => tracing::info!("client {id} asked for the client list ({listed} connected)"),
        Message::SendRequest(request) => tracing::info!(
            "client {id} asked to send a message to client {} ({} bytes)",
            request.to,
            request.text.len()
        ),
        _ => {}
    }
}

/// The notice every client gets when the server stops.
pub fn shutdown_notice() -> Shutdown {
    Shutdown { reason: "server is shutting down".into() }
}

/// Encodes a frame this side built itself (see [`encode_into`]).
pub fn encoded(frame: &Frame) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    encode_into(&mut bytes, frame);
    bytes
}

/// `wall` as a `T` answer: local time, RFC 3339 with milliseconds and the UTC
/// offset. Reading the zone and formatting was ~16 % of the server's CPU at
/// 800k time requests/s (docs/BENCHMARKS.md), so each thread keeps its last
/// answer and formats anew only when the millisecond has changed.
fn local_time(wall: SystemTime) -> String {
    thread_local! {
        static LAST: RefCell<(u128, String)> = const { RefCell::new((0, String::new())) };
    }
    let millis = wall.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis());
    LAST.with_borrow_mut(|(last, text)| {
        if *last != millis || text.is_empty() {
            *text = DateTime::<Local>::from(wall).to_rfc3339_opts(SecondsFormat::Millis, false);
            *last = millis;
        }
        text.clone()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::message::{Ack, ListRequest, TimeRequest};
    use crate::Decoder;

    const SEC: Duration = Duration::from_secs(1);

    fn config() -> HubConfig {
        HubConfig { queue_bytes: 1_000, queue_total: 1_500, delivery_key: Some(7), ..HubConfig::default() }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A hub with `n` clients listed (ids 1..=n).
    fn hub_with(n: u32) -> Hub {
        let mut hub = Hub::new(config());
        for _ in 0..n {
            let id = hub.next_id().unwrap();
            hub.join(id, addr(40_000 + id as u16)).unwrap();
        }
        hub
    }

    fn frames(bytes: &[u8]) -> Vec<Frame> {
        let mut decoder = Decoder::new(u32::MAX);
        decoder.feed(bytes);
        std::iter::from_fn(|| decoder.next_frame().unwrap()).collect()
    }

    /// Everything queued for `id`, decoded, and the offset it ends at.
    fn drain(hub: &mut Hub, id: u32) -> (Vec<Frame>, u64) {
        let mut all = Vec::new();
        let mut end = 0;
        while let Some((batch, at)) = hub.take_batch(id) {
            all.extend(batch);
            end = at;
        }
        (frames(&all), end)
    }

    fn ask(hub: &mut Hub, from: u32, frame: Frame, written: u64, now: Instant) -> Vec<Frame> {
        let mut reply = Vec::new();
        hub.handle(from, frame, written, now, &mut reply);
        frames(&reply)
    }

    fn receipt(frame: &Frame) -> (u32, DeliveryStatus) {
        let Message::Delivery(delivery) = &frame.message else { panic!("{frame:?}") };
        (frame.request_id, delivery.status)
    }

    #[test]
    fn ids_count_up_from_one_and_are_never_reused_even_at_the_end() {
        let mut hub = Hub::new(config());
        assert_eq!((hub.next_id(), hub.next_id()), (Some(1), Some(2)));
        hub.next_id = Some(u32::MAX);
        assert_eq!(hub.next_id(), Some(u32::MAX));
        assert_eq!(hub.next_id(), None, "ids must not wrap to 0, 1, … (they would reach live clients)");
    }

    #[test]
    fn newcomers_get_a_hello_and_are_listed_until_the_limit_or_shutdown() {
        let mut hub = Hub::new(HubConfig { max_clients: 1, ..config() });
        let hello = frames(&hub.join(1, addr(1)).unwrap());
        assert!(matches!(&hello[0].message, Message::Hello(h) if h.client_id == 1 && h.version == VERSION));
        assert_eq!(hub.join(2, addr(2)), Err(Refusal::Full(1)));
        hub.shutdown();
        hub.leave(1);
        assert_eq!(hub.join(3, addr(3)), Err(Refusal::Closed));
        assert!(matches!(&frames(&Refusal::Closed.frame())[0].message, Message::Shutdown(_)));
    }

    #[test]
    fn time_name_and_list_are_answered_at_once_echoing_the_request_id() {
        let mut hub = hub_with(3);
        let now = Instant::now();
        let time = ask(&mut hub, 1, Frame::new(5, TimeRequest), 0, now);
        assert!(matches!(&time[..], [Frame { request_id: 5, message: Message::TimeResponse(_) }]));
        hub.leave(2);
        let list = ask(&mut hub, 1, Frame::new(6, ListRequest), 0, now);
        let Message::ListResponse(list) = &list[0].message else { panic!() };
        let ids: Vec<u32> = list.clients.iter().map(|c| c.id).collect();
        assert_eq!(ids, [1, 3], "a leaving client is not listed");
    }

    #[test]
    fn a_message_is_delivered_only_after_an_ack_for_a_completely_written_indication() {
        let mut hub = hub_with(2);
        let now = Instant::now();
        let send = Frame::new(9, SendRequest { to: 2, text: "hi".into() });
        assert!(ask(&mut hub, 1, send, 0, now).is_empty(), "answered when it settles");
        assert_eq!(hub.poll_wake(), Some(2));
        assert_eq!(hub.poll_wake(), None);
        let (forwarded, end) = drain(&mut hub, 2);
        let Message::Forwarded(message) = &forwarded[0].message else { panic!() };
        assert_eq!((message.from, message.text.as_str()), (1, "hi"));
        let delivery = forwarded[0].request_id;
        assert!(ask(&mut hub, 2, Frame::new(delivery, Ack), end - 1, now).is_empty());
        assert_eq!(hub.in_flight(), 1, "an ack before the indication is written is a lie");
        assert!(ask(&mut hub, 3, Frame::new(delivery, Ack), end, now).is_empty());
        assert_eq!(hub.in_flight(), 1, "nor can another client acknowledge it");
        ask(&mut hub, 2, Frame::new(delivery, Ack), end, now);
        assert_eq!(hub.poll_wake(), Some(1));
        assert_eq!(receipt(&drain(&mut hub, 1).0[0]), (9, DeliveryStatus::Delivered));
    }

    #[test]
    fn messages_that_cannot_be_queued_are_answered_at_once() {
        let mut hub = hub_with(3);
        let now = Instant::now();
        let send = |to: u32, len: usize| Frame::new(1, SendRequest { to, text: "x".repeat(len) });
        assert_eq!(receipt(&ask(&mut hub, 1, send(7, 1), 0, now)[0]), (1, DeliveryStatus::NoSuchClient));
        assert!(ask(&mut hub, 1, send(2, 900), 0, now).is_empty());
        assert_eq!(receipt(&ask(&mut hub, 1, send(2, 900), 0, now)[0]), (1, DeliveryStatus::QueueFull), "queue-bytes");
        assert!(ask(&mut hub, 1, send(3, 500), 0, now).is_empty());
        assert_eq!(receipt(&ask(&mut hub, 1, send(3, 100), 0, now)[0]), (1, DeliveryStatus::QueueFull), "queue-total");
        assert_eq!(hub.in_flight(), 2);
        let big = Frame::new(1, SendRequest { to: 2, text: "x".repeat(70_000) });
        assert_eq!(receipt(&ask(&mut hub, 1, big, 0, now)[0]), (1, DeliveryStatus::TooLarge));
        assert!(hub.budget().used() <= hub.budget().limit());
    }

    #[test]
    fn a_leaving_target_fails_its_messages_and_unacknowledged_ones_expire() {
        let mut hub = hub_with(3);
        let start = Instant::now();
        ask(&mut hub, 1, Frame::new(1, SendRequest { to: 2, text: "a".into() }), 0, start);
        ask(&mut hub, 1, Frame::new(2, SendRequest { to: 3, text: "b".into() }), 0, start + SEC);
        assert!(hub.owes_receipts(1));
        hub.leave(2);
        assert_eq!(receipt(&drain(&mut hub, 1).0[0]), (1, DeliveryStatus::TargetGone));
        assert_eq!(hub.next_deadline(), Some(start + 6 * SEC));
        hub.handle_timeout(start + 6 * SEC);
        assert_eq!(receipt(&drain(&mut hub, 1).0[0]), (2, DeliveryStatus::NotAcknowledged));
        assert!(!hub.owes_receipts(1));
        assert_eq!(hub.next_deadline(), None);
    }

    #[test]
    fn a_forgotten_client_leaves_nothing_behind() {
        let mut hub = hub_with(3);
        let now = Instant::now();
        ask(&mut hub, 1, Frame::new(1, SendRequest { to: 2, text: "to 2".into() }), 0, now);
        ask(&mut hub, 2, Frame::new(1, SendRequest { to: 3, text: "from 2".into() }), 0, now);
        hub.forget(2);
        assert!(!hub.knows(2));
        assert_eq!(hub.in_flight(), 0, "to 2: failed; from 2: forgotten");
        assert_eq!(hub.budget().used(), hub.queued_bytes(1) + hub.queued_bytes(3));
    }

    #[test]
    fn shutdown_answers_messages_in_flight_before_the_notice_then_cuts() {
        let mut hub = hub_with(2);
        ask(&mut hub, 1, Frame::new(4, SendRequest { to: 2, text: "late".into() }), 0, Instant::now());
        while let Some(id) = hub.poll_wake() {
            hub.signals(id);
        }
        hub.shutdown();
        let woken: Vec<u32> = std::iter::from_fn(|| hub.poll_wake()).collect();
        assert_eq!(woken, [1, 2]);
        assert_eq!(hub.signals(1), Signals { fin_after: true, cut: false });
        let (to_sender, _) = drain(&mut hub, 1);
        assert_eq!(receipt(&to_sender[0]), (4, DeliveryStatus::TargetGone));
        assert!(matches!(to_sender[1].message, Message::Shutdown(_)), "the receipt comes first");
        hub.cut_all();
        assert!(hub.signals(2).cut);
    }

    #[test]
    fn a_client_is_woken_once_until_it_looks() {
        let mut hub = hub_with(2);
        let now = Instant::now();
        for n in 0..3 {
            ask(&mut hub, 1, Frame::new(n, SendRequest { to: 2, text: "x".into() }), 0, now);
        }
        assert_eq!(std::iter::from_fn(|| hub.poll_wake()).collect::<Vec<_>>(), [2]);
        hub.signals(2);
        ask(&mut hub, 1, Frame::new(9, SendRequest { to: 2, text: "x".into() }), 0, now);
        assert_eq!(hub.poll_wake(), Some(2));
    }
}
