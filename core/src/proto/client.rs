//! One connection as a client sees it, without I/O: decoding what the server
//! sends, the hello, the frames the protocol makes a client answer by itself
//! (pongs to the server's pings, acks for forwarded messages), the client's
//! own heartbeat, and why the connection ended.
//!
//! The driver (the client's receiver thread) reads the socket and hands what
//! it read to [`ClientSession::receive`], takes [`ClientEvent`]s out with
//! [`poll_event`](ClientSession::poll_event), writes
//! [`transmit`](ClientSession::transmit) (pongs, acks, heartbeat pings), and
//! sleeps in its read until [`next_deadline`](ClientSession::next_deadline).
//! Requests are the application's: it numbers them with the connection's
//! [`RequestIds`], which the heartbeat's pings draw from too.
//!
//! Every reply a client owes the server is decided here, in one place
//! ([`reply_to`]); the conformance checker and the load generator, which
//! keep their own raw sockets, use the same rule.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::error::DecodeError;
use crate::frame::Frame;
use crate::message::{Ack, Forwarded, Hello, Message, PingRequest, Pong};
use crate::proto::heartbeat::{Due, Heartbeat, MISSES};
use crate::proto::session::encode_into;
use crate::Decoder;

/// The request ids of one connection: 1, 2, 3, …, skipping 0 when they wrap.
/// The application's requests and the heartbeat's pings draw from the same
/// counter, so every request a client sends has a distinct, non-zero id.
/// Shared by the thread that sends requests and the one that pings.
#[derive(Debug)]
pub struct RequestIds(AtomicU32);

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds(AtomicU32::new(1))
    }
}

impl RequestIds {
    /// The next id (never 0).
    pub fn next(&self) -> u32 {
        loop {
            let id = self.0.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }
}

/// The frame a client owes the server for `frame` by the protocol itself,
/// whatever the application does: a pong for a ping (echoing its id), an
/// ack for a forwarded message (echoing its delivery id). `None` for
/// anything else. (Whether a forwarded message is acknowledged at all is the
/// application's choice: see [`ClientSession::poll_event`].)
pub fn reply_to(frame: &Frame) -> Option<Frame> {
    match frame.message {
        Message::ServerPing(_) => Some(pong(frame.request_id)),
        Message::Forwarded(_) => Some(ack(frame.request_id)),
        _ => None,
    }
}

/// The answer to the server's heartbeat ping `ping_id`: a pong echoing it.
pub fn pong(ping_id: u32) -> Frame {
    Frame::new(ping_id, Pong)
}

/// The acknowledgement of forwarded message `delivery_id` (the request id
/// of its `M` indication).
pub fn ack(delivery_id: u32) -> Frame {
    Frame::new(delivery_id, Ack)
}

/// What a client session needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Largest payload accepted from the server.
    pub max_payload: u32,
    /// Ping a silent server after this much silence, give up after
    /// [`MISSES`] times it (`None`: no heartbeat).
    pub heartbeat: Option<Duration>,
}

/// Something the application must know about.
#[derive(Debug)]
pub enum ClientEvent {
    /// A frame for the application: the hello, a response, an error, a
    /// forwarded message (already acknowledged), the shutdown notice.
    Frame(Frame),
    /// A forwarded message the application had no room for: it is *not*
    /// acknowledged, so its sender will hear `not_acknowledged`.
    Refused(Frame),
    /// A frame that could not be decoded was skipped; the stream goes on.
    Skipped(DecodeError),
}

/// Why a client session ended.
#[derive(Debug)]
pub enum Ended {
    /// The server closed the connection cleanly.
    Eof,
    /// The server's stream could not be decoded (or ended mid-frame).
    Decode(DecodeError),
    /// The server was silent for this long: at least [`MISSES`] heartbeats.
    Silent(Duration),
}

/// One connection's client side. See the [module docs](self).
#[derive(Debug)]
pub struct ClientSession {
    decoder: Decoder,
    heartbeat: Option<Heartbeat>,
    /// Ids of our heartbeat pings not yet answered, the latest [`MISSES`].
    unanswered: Vec<u32>,
    hello: Option<Hello>,
    transmit: Vec<u8>,
    /// A forwarded message has been acknowledged.
    acknowledged: bool,
}

impl ClientSession {
    /// A session starting `now` (a sign of life for the heartbeat).
    pub fn new(config: ClientConfig, now: Instant) -> ClientSession {
        ClientSession {
            decoder: Decoder::new(config.max_payload),
            heartbeat: config.heartbeat.map(|interval| Heartbeat::new(interval, now)),
            unanswered: Vec::new(),
            hello: None,
            transmit: Vec::new(),
            acknowledged: false,
        }
    }

    /// Bytes arrived from the server at `now`.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        if let Some(heartbeat) = &mut self.heartbeat {
            heartbeat.heard(now);
        }
        self.decoder.feed(bytes);
    }

    /// The next event from what was received, answering on the way what the
    /// protocol makes a client answer (into [`transmit`](Self::transmit)).
    /// `admit` decides whether the application takes a forwarded message:
    /// only then is it acknowledged. `Err` once the stream cannot go on.
    pub fn poll_event(&mut self, mut admit: impl FnMut(&Forwarded) -> bool) -> Result<Option<ClientEvent>, Ended> {
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(None) => return Ok(None),
                Ok(Some(frame)) => frame,
                Err(err) if err.is_fatal() => return Err(Ended::Decode(err)),
                Err(err) => return Ok(Some(ClientEvent::Skipped(err))),
            };
            match &frame.message {
                Message::ServerPing(_) => {}
                Message::Pong(_) if self.is_our_ping(frame.request_id) => continue,
                Message::Forwarded(message) if !admit(message) => return Ok(Some(ClientEvent::Refused(frame))),
                Message::Forwarded(_) => self.acknowledged = true,
                Message::Hello(hello) if self.hello.is_none() => self.hello = Some(hello.clone()),
                _ => return Ok(Some(ClientEvent::Frame(frame))),
            }
            if let Some(reply) = reply_to(&frame) {
                encode_into(&mut self.transmit, &reply);
            }
            if !matches!(frame.message, Message::ServerPing(_)) {
                return Ok(Some(ClientEvent::Frame(frame)));
            }
        }
    }

    /// The bytes owed to the server (pongs, acks, pings), in order; the
    /// driver writes them and clears what was written.
    pub fn transmit(&mut self) -> &mut Vec<u8> {
        &mut self.transmit
    }

    /// The server's hello, once it has come.
    pub fn hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    /// True once a forwarded message has been acknowledged (an abortive
    /// close could then overtake the ack).
    pub fn has_acknowledged(&self) -> bool {
        self.acknowledged
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to
    /// do (a ping, or giving up); `None` without a heartbeat.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heartbeat.as_ref().map(Heartbeat::next_deadline)
    }

    /// Runs the heartbeat at `now`: pings a silent server (with an id from
    /// `ids`), or ends the session when it has been silent too long.
    pub fn handle_timeout(&mut self, now: Instant, ids: &RequestIds) -> Result<(), Ended> {
        let Some(heartbeat) = &mut self.heartbeat else { return Ok(()) };
        match heartbeat.poll(now) {
            Due::Nothing => Ok(()),
            Due::GiveUp { silent } => Err(Ended::Silent(silent)),
            Due::Ping => {
                let id = ids.next();
                if self.unanswered.len() == MISSES as usize {
                    self.unanswered.remove(0);
                }
                self.unanswered.push(id);
                encode_into(&mut self.transmit, &Frame::new(id, PingRequest));
                Ok(())
            }
        }
    }

    /// The server closed its sending side: why the session ended.
    pub fn end_of_stream(&self) -> Ended {
        match self.decoder.finish() {
            Ok(()) => Ended::Eof,
            Err(err) => Ended::Decode(err),
        }
    }

    /// True (and forgotten) if `id` is one of our unanswered heartbeat pings.
    fn is_our_ping(&mut self, id: u32) -> bool {
        let before = self.unanswered.len();
        self.unanswered.retain(|&ping| ping != id);
        self.unanswered.len() != before
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::message::{ServerPing, TimeResponse};
    use crate::proto::hub::encoded;

    const SEC: Duration = Duration::from_secs(1);

    fn session(heartbeat: Option<Duration>, now: Instant) -> ClientSession {
        ClientSession::new(ClientConfig { max_payload: 1 << 20, heartbeat }, now)
    }

    fn sent(session: &mut ClientSession) -> Vec<Frame> {
        let mut decoder = Decoder::new(u32::MAX);
        decoder.feed(&std::mem::take(session.transmit()));
        std::iter::from_fn(|| decoder.next_frame().unwrap()).collect()
    }

    fn forwarded(id: u32, text: &str) -> Vec<u8> {
        let message = Forwarded { from: 1, from_ip: [127, 0, 0, 1].into(), from_port: 1, text: text.into() };
        encoded(&Frame::new(id, message))
    }

    #[test]
    fn pings_are_answered_and_not_passed_on_messages_are_acknowledged_and_passed_on() {
        let now = Instant::now();
        let mut client = session(None, now);
        let mut bytes = encoded(&Frame::new(7, ServerPing));
        bytes.extend(forwarded(42, "hi"));
        bytes.extend(encoded(&Frame::new(3, TimeResponse { time: "t".into() })));
        client.receive(&bytes, now);
        let Ok(Some(ClientEvent::Frame(message))) = client.poll_event(|_| true) else { panic!() };
        assert_eq!(message.request_id, 42);
        let Ok(Some(ClientEvent::Frame(time))) = client.poll_event(|_| true) else { panic!() };
        assert_eq!(time.request_id, 3);
        assert!(matches!(client.poll_event(|_| true), Ok(None)));
        let replies: Vec<(u32, bool)> =
            sent(&mut client).iter().map(|f| (f.request_id, matches!(f.message, Message::Pong(_)))).collect();
        assert_eq!(replies, [(7, true), (42, false)], "a pong for the ping, an ack for the message, in order");
        assert!(client.has_acknowledged());
    }

    #[test]
    fn a_message_without_room_is_refused_unacknowledged() {
        let now = Instant::now();
        let mut client = session(None, now);
        client.receive(&forwarded(9, "no room"), now);
        assert!(matches!(client.poll_event(|_| false), Ok(Some(ClientEvent::Refused(_)))));
        assert!(client.transmit().is_empty() && !client.has_acknowledged());
    }

    #[test]
    fn a_silent_server_is_pinged_with_the_connections_ids_then_given_up() {
        let start = Instant::now();
        let ids = RequestIds::default();
        assert_eq!(ids.next(), 1, "the application's first request");
        let mut client = session(Some(SEC), start);
        assert_eq!(client.next_deadline(), Some(start + SEC));
        client.handle_timeout(start + SEC, &ids).unwrap();
        let pings = sent(&mut client);
        assert!(matches!(pings[..], [Frame { request_id: 2, message: Message::PingRequest(_) }]));
        client.receive(&encoded(&Frame::new(2, Pong)), start + SEC + SEC / 2);
        assert!(matches!(client.poll_event(|_| true), Ok(None)), "the answer to our own ping is consumed");
        client.handle_timeout(start + 2 * SEC + SEC / 2, &ids).unwrap();
        client.handle_timeout(start + 3 * SEC + SEC / 2, &ids).unwrap();
        let Err(Ended::Silent(silent)) = client.handle_timeout(start + 4 * SEC + SEC / 2, &ids) else { panic!() };
        assert_eq!(silent, 3 * SEC);
    }

    #[test]
    fn the_end_says_whether_a_frame_was_cut() {
        let now = Instant::now();
        let mut client = session(None, now);
        assert!(matches!(client.end_of_stream(), Ended::Eof));
        client.receive(&forwarded(1, "cut")[..10], now);
        assert!(matches!(client.end_of_stream(), Ended::Decode(_)));
    }
}
