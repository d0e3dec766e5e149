//! One client's connection: set up, read and answer frames, watch the
//! client's liveness, tear down.
//!
//! Runs on the client's own thread (`client-<id>`). Reading and decoding
//! happen here; every write goes through the client's [`Outbox`].

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockRef;
use tnlm_core::message::{ErrorBody, Hello, ServerPing};
use tnlm_core::sockopt::Effective;
use tnlm_core::{DecodeError, Decoder, ErrorCode, Frame, VERSION};

use crate::handler::{self, Peer};
use crate::server::{shutdown_notice, Shared};
use crate::writer::{self, encode, Outbox};

/// Size of one `read` from the socket.
const READ_CHUNK: usize = 8 * 1024;
/// After a fatal error, how long to keep reading (and discarding) so the
/// error frame is not destroyed by an RST caused by unread data.
const LINGER_DRAIN: Duration = Duration::from_secs(2);
/// A client silent for this many heartbeat intervals is dropped.
pub(crate) const HEARTBEAT_MISSES: u32 = 3;

/// Serves client `id` until it disconnects or the server shuts down.
pub(crate) fn serve(shared: Arc<Shared>, id: u32, stream: TcpStream, addr: SocketAddr) {
    let peer = Peer { id, addr: tnlm_core::net::canonical(addr) };
    if let Err(err) = serve_inner(&shared, peer, Arc::new(stream)) {
        tracing::warn!(client = id, "connection setup failed: {err}");
    }
}

fn serve_inner(shared: &Shared, peer: Peer, stream: Arc<TcpStream>) -> io::Result<()> {
    configure(shared, peer, &stream)?;
    let (outbox, queue) = writer::outbox(shared.config.queue_len, shared.config.queue_bytes);
    let hello = Hello {
        client_id: peer.id,
        server: shared.config.name.clone(),
        version: VERSION,
        max_payload: shared.config.max_payload,
    };
    // Hello first in the queue, then listed, then the writer starts: the
    // client receives the hello before anything else, and once it has its
    // hello it is already in every `L` list and reachable by `M`.
    let _ = outbox.push(encode(&Frame::indication(hello)));
    let listed = shared.registry.insert(peer.id, peer.addr, outbox.clone(), Arc::clone(&stream));
    let writer = match writer::spawn(peer.id, Arc::clone(&stream), queue) {
        Ok(writer) => writer,
        Err(err) => {
            shared.registry.remove(peer.id);
            return Err(err);
        }
    };
    let reason = if listed {
        tracing::info!(client = peer.id, addr = %peer.addr, "connected");
        Session::new(shared, peer, &stream, &outbox).run()
    } else {
        outbox.shutdown_with(encode(&Frame::indication(shutdown_notice())));
        "server is shutting down".to_string()
    };

    shared.registry.remove(peer.id);
    shared.deliveries.target_gone(peer.id);
    outbox.close();
    let _ = writer.join();
    tracing::info!(client = peer.id, addr = %peer.addr, "disconnected: {reason}");
    Ok(())
}

fn configure(shared: &Shared, peer: Peer, stream: &TcpStream) -> io::Result<()> {
    for warning in shared.config.socket.apply(SockRef::from(stream)) {
        tracing::warn!(client = peer.id, "{warning}");
    }
    stream.set_write_timeout(Some(shared.config.write_timeout))?;
    stream.set_read_timeout(Some(shared.config.tick()))?;
    tracing::debug!(client = peer.id, "socket options: {}", Effective::read(SockRef::from(stream)));
    Ok(())
}

/// The reading side of one connection and its timers.
struct Session<'a> {
    shared: &'a Shared,
    peer: Peer,
    stream: &'a TcpStream,
    outbox: &'a Outbox,
    decoder: Decoder,
    /// When the client last sent anything.
    last_heard: Instant,
    /// When we last pinged it.
    last_ping: Instant,
    /// When the frame now partly buffered started arriving.
    partial_since: Option<Instant>,
    pings: u32,
}

impl<'a> Session<'a> {
    fn new(shared: &'a Shared, peer: Peer, stream: &'a TcpStream, outbox: &'a Outbox) -> Session<'a> {
        let now = Instant::now();
        let decoder = Decoder::new(shared.config.max_payload);
        Session {
            shared,
            peer,
            stream,
            outbox,
            decoder,
            last_heard: now,
            last_ping: now,
            partial_since: None,
            pings: 0,
        }
    }

    /// Reads and answers frames until the connection ends; returns why it ended.
    fn run(mut self) -> String {
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return self.end_of_stream(),
                Ok(n) => {
                    if let Err(fatal) = self.received(&chunk[..n]) {
                        return self.close_after_error(&fatal.to_string(), fatal.code());
                    }
                }
                Err(err) if is_timeout(&err) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return format!("read error: {err}"),
            }
            if let Some((text, code)) = self.check_timers() {
                return self.close_after_error(&text, code);
            }
        }
    }

    /// Feeds received bytes to the decoder and handles every whole frame.
    /// Returns the error when the stream's framing is lost.
    fn received(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let now = Instant::now();
        self.last_heard = now;
        self.decoder.feed(bytes);
        let mut completed = false;
        loop {
            let reply = match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    completed = true;
                    tracing::debug!(client = self.peer.id, "{}", frame.summary());
                    match handler::handle(self.shared, self.peer, self.outbox, &frame) {
                        Some(reply) => handler::reply_bytes(frame.request_id, reply),
                        None => continue,
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(client = self.peer.id, "bad input: {err}");
                    if err.is_fatal() {
                        return Err(err);
                    }
                    completed = true;
                    error_frame(err.request_id(), err.code(), &err.to_string())
                }
            };
            if self.outbox.push(reply).is_err() {
                break; // the writer is gone; the next read fails too
            }
        }
        self.partial_since = match (self.decoder.buffered(), self.partial_since) {
            (0, _) => None,
            (_, Some(since)) if !completed => Some(since),
            _ => Some(now),
        };
        Ok(())
    }

    /// Heartbeat and frame timers; `Some` when the client must be dropped.
    fn check_timers(&mut self) -> Option<(String, ErrorCode)> {
        let now = Instant::now();
        let config = &self.shared.config;
        if let Some(since) = self.partial_since {
            if now - since >= config.frame_timeout {
                let text = format!("a frame took longer than {:?} to arrive", config.frame_timeout);
                return Some((text, ErrorCode::Timeout));
            }
        }
        let interval = config.heartbeat?;
        let silent = now - self.last_heard;
        if silent >= interval * HEARTBEAT_MISSES {
            let text = format!("no sign of life for {silent:.1?} (heartbeat every {interval:?})");
            return Some((text, ErrorCode::Timeout));
        }
        if silent >= interval && now - self.last_ping >= interval {
            self.pings = self.pings.wrapping_add(1).max(1);
            self.last_ping = now;
            let _ = self.outbox.try_push(encode(&Frame::new(self.pings, ServerPing)));
        }
        None
    }

    fn end_of_stream(&mut self) -> String {
        match self.decoder.finish() {
            Ok(()) => "closed by client".to_string(),
            Err(err) => {
                let _ = self.outbox.push(error_frame(0, err.code(), &err.to_string()));
                format!("closed by client mid-frame: {err}")
            }
        }
    }

    /// Sends an error frame, then closes: the writer sends what is queued
    /// (ending with the error) and a FIN, while we discard input for a moment
    /// so that unread data does not turn our close into an RST that would
    /// destroy the error frame.
    fn close_after_error(&mut self, text: &str, code: ErrorCode) -> String {
        let _ = self.outbox.push(error_frame(0, code, text));
        self.outbox.close();
        let _ = self.stream.set_read_timeout(Some(LINGER_DRAIN));
        let mut sink = [0u8; READ_CHUNK];
        let mut budget: usize = 1 << 20;
        while budget > 0 {
            match self.stream.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => budget = budget.saturating_sub(n),
            }
        }
        format!("closed after {}: {text}", code.name())
    }
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// An error frame echoing `request_id` (0 when the header could not be read).
fn error_frame(request_id: u32, code: ErrorCode, text: &str) -> Vec<u8> {
    encode(&Frame::new(request_id, ErrorBody { code, text: text.to_string() }))
}
