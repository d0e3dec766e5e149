//! One client connection as the server sees it, without I/O: framing, error
//! replies, the heartbeat and the frame timeout.
//!
//! The driver (a connection thread, or an event loop's worker) owns the
//! socket and does four things with a [`Session`]:
//! 1. hands it what a read returned, with [`receive`](Session::receive);
//! 2. takes [`Event`]s out with [`poll_event`](Session::poll_event) until it
//!    returns `None`: well-formed frames to act on (and to answer with
//!    [`reply`](Session::reply)), bad frames already answered, or the end;
//! 3. writes [`transmit`](Session::transmit) (every byte the session owes
//!    the peer, in order) to the socket;
//! 4. calls [`handle_timeout`](Session::handle_timeout) once
//!    [`next_deadline`](Session::next_deadline) has passed, and
//!    [`end_of_stream`](Session::end_of_stream) when the peer closes.
//!
//! The session never reads a clock: `now` comes with every call, so the
//! unit tests below drive every timer with a made-up clock. What a frame
//! *means* (the time, the list, forwarding a message) is the driver's
//! business; the session only knows the protocol's shape.

use std::time::{Duration, Instant};

use crate::error::{DecodeError, ErrorCode};
use crate::frame::Frame;
use crate::message::{ErrorBody, Message, ServerPing};
use crate::proto::heartbeat::{Due, Heartbeat};
use crate::Decoder;

/// What a session needs to know: the server's limits and timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest payload accepted from the peer.
    pub max_payload: u32,
    /// How long a frame may take to arrive once its first byte has.
    pub frame_timeout: Duration,
    /// Ping after this much silence, give up after [`MISSES`](crate::proto::heartbeat::MISSES)
    /// times it (`None`: never).
    pub heartbeat: Option<Duration>,
}

/// Something the driver must act on.
#[derive(Debug)]
pub enum Event {
    /// A well-formed frame the peer may send (a request, a pong, an ack).
    Frame(Frame),
    /// A frame was skipped and its error frame is already in
    /// [`transmit`](Session::transmit); the stream goes on. For the
    /// driver's (rate-limited) log.
    Rejected(DecodeError),
    /// The session is over: write what is owed, then close as [`Ending`] says.
    End(Ending),
}

/// How a session ends, and what the peer is still owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// Why, for the log.
    pub reason: String,
    /// A last frame (an encoded error) to write before the FIN.
    pub farewell: Option<Vec<u8>>,
    /// Read and discard the peer's input for a moment before closing, so
    /// the close does not turn into an RST that destroys the farewell.
    pub drain: bool,
    /// The peer ended its input cleanly and may have closed only its
    /// sending side: it is still owed the receipts of the messages it sent.
    pub owed_receipts: bool,
    /// The error code the farewell carries, if any.
    pub code: Option<ErrorCode>,
}

impl Ending {
    /// An ending with nothing more to say to the peer.
    pub fn quiet(reason: impl Into<String>) -> Ending {
        Ending { reason: reason.into(), farewell: None, drain: false, owed_receipts: false, code: None }
    }

    /// Ends with an error frame (`code`, echoing `request_id`), then the FIN.
    pub fn after_error(request_id: u32, code: ErrorCode, text: &str) -> Ending {
        Ending {
            farewell: Some(error_frame(request_id, code, text)),
            code: Some(code),
            ..Ending::quiet(format!("closed after {}: {text}", code.name()))
        }
    }
}

/// One connection's protocol state. See the [module docs](self).
#[derive(Debug)]
pub struct Session {
    decoder: Decoder,
    frame_timeout: Duration,
    heartbeat: Option<Heartbeat>,
    /// When the frame now partly buffered started arriving.
    partial_since: Option<Instant>,
    /// When the last bytes arrived, and whether a frame has been completed
    /// from them (a new partial frame then starts its clock there).
    last_receive: Instant,
    completed: bool,
    /// Request id of the last server ping.
    pings: u32,
    transmit: Vec<u8>,
    ended: bool,
}

impl Session {
    /// A session starting `now` (a sign of life for the heartbeat), decoding
    /// only what a client may send.
    pub fn new(config: &SessionConfig, now: Instant) -> Session {
        Session {
            decoder: Decoder::new(config.max_payload).accepting(crate::message::FROM_CLIENT),
            frame_timeout: config.frame_timeout,
            heartbeat: config.heartbeat.map(|interval| Heartbeat::new(interval, now)),
            partial_since: None,
            last_receive: now,
            completed: false,
            pings: 0,
            transmit: Vec::new(),
            ended: false,
        }
    }

    /// Bytes arrived at `now` (any number: one byte, ten frames).
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        if let Some(heartbeat) = &mut self.heartbeat {
            heartbeat.heard(now);
        }
        self.decoder.feed(bytes);
        self.last_receive = now;
        self.completed = false;
    }

    /// The connection's clocks start anew at `now`: its hello has just been
    /// completely written, so a silent client is given up on three heartbeat
    /// intervals after it could have read the hello, not before.
    pub fn restart_clocks(&mut self, now: Instant) {
        if let Some(heartbeat) = &mut self.heartbeat {
            *heartbeat = Heartbeat::new(heartbeat.interval(), now);
        }
    }

    /// The next thing to act on from what was received; `None` when more
    /// bytes are needed (or the session has ended).
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        match self.decoder.next_frame() {
            Ok(Some(frame)) => {
                self.completed = true;
                Some(Event::Frame(frame))
            }
            Ok(None) => {
                self.partial_since = match (self.decoder.buffered(), self.partial_since) {
                    (0, _) => None,
                    (_, Some(since)) if !self.completed => Some(since),
                    _ => Some(self.last_receive),
                };
                None
            }
            Err(err) if err.is_fatal() => {
                // The peer is alive and talking nonsense: drain its input so
                // the close does not become an RST.
                let ending = Ending::after_error(err.request_id(), err.code(), &err.to_string());
                Some(self.end(Ending { drain: true, ..ending }))
            }
            Err(err) => {
                self.completed = true;
                self.transmit.extend_from_slice(&error_frame(err.request_id(), err.code(), &err.to_string()));
                Some(Event::Rejected(err))
            }
        }
    }

    /// Queues `message` as the answer to request `request_id`.
    pub fn reply(&mut self, request_id: u32, message: impl Into<Message>) {
        encode_into(&mut self.transmit, &Frame::new(request_id, message));
    }

    /// The bytes owed to the peer, in order. The driver writes them and
    /// removes what the socket took (e.g. `drain(..n)` or `clear()`).
    pub fn transmit(&mut self) -> &mut Vec<u8> {
        &mut self.transmit
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to
    /// do: a ping, a silent peer or a stalled frame. `None`: no timer runs.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let frame = self.partial_since.map(|since| since + self.frame_timeout);
        let heartbeat = self.heartbeat.as_ref().map(Heartbeat::next_deadline);
        match (frame, heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the timers due at `now`: queues a ping to a silent peer, or ends
    /// the session when a frame stalls or the peer stays silent too long.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Ending> {
        if self.ended {
            return None;
        }
        if let Some(since) = self.partial_since {
            if now.saturating_duration_since(since) >= self.frame_timeout {
                let text = format!("a frame took longer than {:?} to arrive", self.frame_timeout);
                return Some(self.finish(Ending::after_error(0, ErrorCode::Timeout, &text)));
            }
        }
        let heartbeat = self.heartbeat.as_mut()?;
        match heartbeat.poll(now) {
            Due::Nothing => None,
            Due::GiveUp { silent } => {
                let text = format!("no sign of life for {silent:.1?} (heartbeat every {:?})", heartbeat.interval());
                Some(self.finish(Ending::after_error(0, ErrorCode::Timeout, &text)))
            }
            Due::Ping => {
                self.pings = self.pings.wrapping_add(1).max(1);
                encode_into(&mut self.transmit, &Frame::new(self.pings, ServerPing));
                None
            }
        }
    }

    /// The peer closed its sending side (a read returned 0).
    pub fn end_of_stream(&mut self) -> Ending {
        let ending = match self.decoder.finish() {
            Ok(()) => Ending { owed_receipts: true, ..Ending::quiet("closed by client") },
            Err(err) => Ending {
                farewell: Some(error_frame(err.request_id(), err.code(), &err.to_string())),
                code: Some(err.code()),
                ..Ending::quiet(format!("closed by client mid-frame: {err}"))
            },
        };
        self.finish(ending)
    }

    /// True once the session has ended.
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    fn end(&mut self, ending: Ending) -> Event {
        Event::End(self.finish(ending))
    }

    fn finish(&mut self, ending: Ending) -> Ending {
        self.ended = true;
        ending
    }
}

/// An encoded error frame echoing `request_id` (0 when the header could not be read).
pub fn error_frame(request_id: u32, code: ErrorCode, text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(crate::HEADER_LEN + 8 + text.len());
    encode_into(&mut bytes, &Frame::new(request_id, ErrorBody { code, text: text.to_string() }));
    bytes
}

/// Appends a frame this side built itself to `out`. Only a payload over
/// 4 GiB could fail (text from a client is size-checked before it is
/// forwarded); then nothing is appended and the failure is logged.
pub fn encode_into(out: &mut Vec<u8>, frame: &Frame) {
    if let Err(err) = frame.encode_into(out, u32::MAX) {
        tracing::error!("cannot encode {}: {err}", frame.summary());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::message::{Ack, Pong, SendRequest, TimeRequest, TimeResponse};
    use crate::proto::heartbeat::MISSES;

    const SEC: Duration = Duration::from_secs(1);

    fn config() -> SessionConfig {
        SessionConfig { max_payload: 1024, frame_timeout: 2 * SEC, heartbeat: Some(10 * SEC) }
    }

    fn bytes(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(&mut out, frame);
        out
    }

    /// Every frame in `out`, decoded as a client would.
    fn sent(session: &mut Session) -> Vec<Frame> {
        let mut decoder = Decoder::new(u32::MAX);
        decoder.feed(&std::mem::take(session.transmit()));
        std::iter::from_fn(|| decoder.next_frame().unwrap()).collect()
    }

    fn events(session: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| session.poll_event()).collect()
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_arrive_and_replies_go_in_order() {
        let start = Instant::now();
        let mut session = Session::new(&config(), start);
        let mut stream = bytes(&Frame::new(1, TimeRequest));
        stream.extend(bytes(&Frame::new(2, TimeRequest)));
        for (i, byte) in stream.iter().enumerate() {
            session.receive(&[*byte], start);
            for event in events(&mut session) {
                let Event::Frame(frame) = event else { panic!("{event:?}") };
                assert!(i == 15 || i == 31, "a frame completed at byte {i}");
                session.reply(frame.request_id, TimeResponse { time: format!("t{}", frame.request_id) });
            }
        }
        let answers: Vec<u32> = sent(&mut session).iter().map(|f| f.request_id).collect();
        assert_eq!(answers, [1, 2]);
        assert_eq!(session.next_deadline(), Some(start + 10 * SEC), "only the heartbeat runs");
    }

    #[test]
    fn a_bad_frame_is_answered_with_its_error_and_the_stream_goes_on() {
        let start = Instant::now();
        let mut session = Session::new(&config(), start);
        let mut stream = bytes(&Frame::new(7, TimeResponse { time: "no".into() })); // servers send these
        stream.extend(bytes(&Frame::new(8, Pong)));
        session.receive(&stream, start);
        let events = events(&mut session);
        assert!(matches!(&events[0], Event::Rejected(DecodeError::UnexpectedFrame { request_id: 7, .. })));
        assert!(matches!(&events[1], Event::Frame(Frame { request_id: 8, .. })));
        let errors = sent(&mut session);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].request_id, 7, "the error echoes the bad frame's id");
        assert!(matches!(&errors[0].message, Message::Error(e) if e.code == ErrorCode::UnexpectedFrame));
    }

    #[test]
    fn lost_framing_ends_the_session_with_the_error_and_a_drain() {
        let start = Instant::now();
        let mut session = Session::new(&config(), start);
        session.receive(b"GET / HTTP/1.1\r\n\r\n", start);
        let Some(Event::End(ending)) = session.poll_event() else { panic!() };
        assert_eq!(ending.code, Some(ErrorCode::BadMagic));
        assert!(ending.drain && !ending.owed_receipts && ending.farewell.is_some());
        assert!(session.poll_event().is_none(), "an ended session has nothing more");
        assert_eq!(session.next_deadline(), None);
        session.receive(&bytes(&Frame::new(1, TimeRequest)), start);
        assert!(session.poll_event().is_none(), "nor after more bytes");
    }

    #[test]
    fn an_oversize_header_ends_the_session_echoing_its_request_id() {
        let start = Instant::now();
        let mut session = Session::new(&config(), start);
        let mut frame = bytes(&Frame::new(42, TimeRequest));
        frame[12..16].copy_from_slice(&5000u32.to_be_bytes());
        session.receive(&frame[..16], start);
        let Some(Event::End(ending)) = session.poll_event() else { panic!() };
        assert_eq!(ending.code, Some(ErrorCode::Oversize));
        let mut decoder = Decoder::new(u32::MAX);
        decoder.feed(ending.farewell.as_deref().unwrap());
        assert_eq!(decoder.next_frame().unwrap().unwrap().request_id, 42);
    }

    /// The code of the error frame a session answers `bytes` with, and
    /// whether the session goes on after it.
    fn answer_to(bytes: &[u8]) -> (ErrorCode, bool) {
        let start = Instant::now();
        let mut session = Session::new(&config(), start);
        session.receive(bytes, start);
        match session.poll_event() {
            Some(Event::Rejected(err)) => {
                let sent = sent(&mut session);
                let Message::Error(body) = &sent[0].message else { panic!("{sent:?}") };
                assert_eq!(body.code, err.code());
                (body.code, true)
            }
            Some(Event::End(ending)) => (ending.code.unwrap(), false),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_decode_error_is_answered_with_its_code_and_only_lost_framing_ends_the_session() {
        let request = bytes(&Frame::new(5, TimeRequest));
        let with = |offset: usize, byte: u8| {
            let mut frame = request.clone();
            frame[offset] = byte;
            frame
        };
        let mut malformed = bytes(&Frame::new(5, SendRequest { to: 1, text: "hi".into() }));
        let last = malformed.len() - 1;
        malformed[last] = 0xff; // not UTF-8
        let mut oversize = request.clone();
        oversize[12..16].copy_from_slice(&4096u32.to_le_bytes());
        let cases: [(&[u8], ErrorCode, bool); 7] = [
            (b"HTTP/1.1 200 OK\r\n\r\n", ErrorCode::BadMagic, false),
            (&with(4, 2), ErrorCode::UnsupportedVersion, false),
            (&oversize, ErrorCode::Oversize, false),
            (&with(7, 1), ErrorCode::InvalidHeader, true),
            (&with(5, b'Z'), ErrorCode::UnknownType, true),
            (&with(6, 1), ErrorCode::UnexpectedFrame, true), // a T response, from a client
            (&malformed, ErrorCode::MalformedPayload, true),
        ];
        for (input, code, goes_on) in cases {
            assert_eq!(answer_to(input), (code, goes_on), "{code:?}");
        }
        // The other two codes a session sends: `truncated` and `timeout`,
        // tested above; `too_many_clients` is the server's, not a session's.
    }

    #[test]
    fn a_stalled_frame_times_out_from_its_first_byte() {
        let start = Instant::now();
        let mut session = Session::new(&config(), start);
        let frame = bytes(&Frame::new(1, TimeRequest));
        session.receive(&frame[..5], start + SEC);
        assert!(events(&mut session).is_empty());
        assert_eq!(session.next_deadline(), Some(start + 3 * SEC), "2 s after the first byte");
        session.receive(&frame[5..9], start + 2 * SEC);
        assert!(events(&mut session).is_empty());
        assert_eq!(session.next_deadline(), Some(start + 3 * SEC), "more bytes of the same frame: same clock");
        assert_eq!(session.handle_timeout(start + 3 * SEC - Duration::from_millis(1)), None);
        let ending = session.handle_timeout(start + 3 * SEC).unwrap();
        assert_eq!(ending.code, Some(ErrorCode::Timeout));
        assert!(ending.reason.contains("a frame took longer than 2s"), "{ending:?}");
    }

    #[test]
    fn a_frame_completed_restarts_the_clock_for_the_next_partial_one() {
        let start = Instant::now();
        let mut session = Session::new(&config(), start);
        let mut stream = bytes(&Frame::new(1, TimeRequest));
        session.receive(&stream[..10], start);
        assert!(events(&mut session).is_empty());
        stream.extend(bytes(&Frame::new(2, TimeRequest)));
        session.receive(&stream[10..20], start + SEC);
        assert_eq!(events(&mut session).len(), 1);
        assert_eq!(session.next_deadline(), Some(start + 3 * SEC), "the second frame started at 1 s");
        session.receive(&stream[20..], start + SEC);
        assert_eq!(events(&mut session).len(), 1);
        assert_eq!(session.next_deadline(), Some(start + 11 * SEC), "nothing partial: the heartbeat");
    }

    #[test]
    fn a_silent_peer_is_pinged_then_given_up() {
        let start = Instant::now();
        let mut session = Session::new(&config(), start);
        assert_eq!(session.handle_timeout(start + 10 * SEC), None);
        let pings = sent(&mut session);
        assert!(matches!(pings[..], [Frame { request_id: 1, message: Message::ServerPing(_) }]));
        assert_eq!(session.handle_timeout(start + 20 * SEC), None);
        assert_eq!(sent(&mut session)[0].request_id, 2, "each ping has its own id");
        let ending = session.handle_timeout(start + 10 * SEC * MISSES).unwrap();
        assert_eq!(ending.code, Some(ErrorCode::Timeout));
        assert!(ending.reason.contains("no sign of life for 30.0s"), "{ending:?}");
    }

    #[test]
    fn anything_received_is_a_sign_of_life() {
        let start = Instant::now();
        let mut session = Session::new(&config(), start);
        session.receive(&bytes(&Frame::new(9, Ack)), start + 25 * SEC);
        assert!(matches!(session.poll_event(), Some(Event::Frame(_))));
        assert_eq!(session.handle_timeout(start + 30 * SEC), None);
        assert!(session.transmit().is_empty(), "heard 5 s ago: no ping");
        assert_eq!(session.next_deadline(), Some(start + 35 * SEC));
    }

    #[test]
    fn without_a_heartbeat_an_idle_session_has_no_deadline() {
        let start = Instant::now();
        let mut session = Session::new(&SessionConfig { heartbeat: None, ..config() }, start);
        assert_eq!(session.next_deadline(), None);
        assert_eq!(session.handle_timeout(start + 1000 * SEC), None);
    }

    #[test]
    fn a_clean_end_of_stream_is_owed_its_receipts_a_cut_frame_gets_truncated() {
        let start = Instant::now();
        let mut clean = Session::new(&config(), start);
        let ending = clean.end_of_stream();
        assert!(ending.owed_receipts && ending.farewell.is_none() && ending.code.is_none());
        assert!(clean.has_ended() && clean.next_deadline().is_none());

        let mut cut = Session::new(&config(), start);
        cut.receive(&bytes(&Frame::new(3, SendRequest { to: 1, text: "hi".into() }))[..17], start);
        assert!(events(&mut cut).is_empty());
        let ending = cut.end_of_stream();
        assert_eq!(ending.code, Some(ErrorCode::Truncated));
        assert!(!ending.owed_receipts);
        let mut decoder = Decoder::new(u32::MAX);
        decoder.feed(ending.farewell.as_deref().unwrap());
        assert_eq!(decoder.next_frame().unwrap().unwrap().request_id, 3, "the whole header had come");
    }
}
