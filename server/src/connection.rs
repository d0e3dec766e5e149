//! One client's connection: set up, read and answer requests, tear down.
//!
//! Runs on the client's own thread (`client-<id>`). Reading and decoding
//! happen here; every write goes through the client's [`Outbox`].

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use socket2::SockRef;
use tnlm_core::message::{ErrorBody, Hello};

use crate::server::shutdown_notice;
use tnlm_core::sockopt::Effective;
use tnlm_core::{DecodeError, Decoder, Frame, VERSION};

use crate::handler::{self, Peer};
use crate::server::Shared;
use crate::writer::{self, Outbox};

/// Size of one `read` from the socket.
const READ_CHUNK: usize = 8 * 1024;
/// After a fatal error, how long to keep reading (and discarding) so the
/// error frame is not destroyed by an RST caused by unread data.
const LINGER_DRAIN: Duration = Duration::from_secs(2);

/// Serves client `id` until it disconnects or the server shuts down.
pub(crate) fn serve(shared: Arc<Shared>, id: u32, stream: TcpStream, addr: SocketAddr) {
    let peer = Peer { id, addr: tnlm_core::net::canonical(addr) };
    if let Err(err) = serve_inner(&shared, peer, stream) {
        tracing::warn!(client = id, "connection setup failed: {err}");
    }
}

fn serve_inner(shared: &Shared, peer: Peer, stream: TcpStream) -> io::Result<()> {
    configure(shared, peer, &stream)?;
    let (for_writer, for_registry) = (stream.try_clone()?, stream.try_clone()?);
    let (outbox, queue) = writer::outbox(shared.config.queue_len);
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
    let listed = shared.registry.insert(peer.id, peer.addr, outbox.clone(), for_registry);
    let writer = match writer::spawn(peer.id, for_writer, queue) {
        Ok(writer) => writer,
        Err(err) => {
            shared.registry.remove(peer.id);
            return Err(err);
        }
    };
    let reason = if listed {
        tracing::info!(client = peer.id, addr = %peer.addr, "connected");
        read_requests(shared, peer, &stream, &outbox)
    } else {
        outbox.shutdown_with(encode(&Frame::indication(shutdown_notice())));
        "server is shutting down".to_string()
    };

    shared.registry.remove(peer.id);
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
    tracing::debug!(client = peer.id, "socket options: {}", Effective::read(SockRef::from(stream)));
    Ok(())
}

/// Reads and answers requests until the connection ends; returns why it ended.
fn read_requests(shared: &Shared, peer: Peer, mut stream: &TcpStream, outbox: &Outbox) -> String {
    let mut decoder = Decoder::new(shared.config.max_payload);
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return format!("read error: {err}"),
        };
        decoder.feed(&chunk[..n]);
        if let Err(fatal) = answer_frames(shared, peer, &mut decoder, outbox) {
            close_after_error(stream, outbox);
            return format!("closed after protocol error: {fatal}");
        }
    }
    match decoder.finish() {
        Ok(()) => "closed by client".to_string(),
        Err(err) => {
            let _ = outbox.push(error_frame(&err));
            format!("closed by client mid-frame: {err}")
        }
    }
}

/// Answers every whole frame in the decoder. Returns the error when the
/// stream's framing is lost (the caller closes the connection).
fn answer_frames(shared: &Shared, peer: Peer, decoder: &mut Decoder, outbox: &Outbox) -> Result<(), DecodeError> {
    loop {
        let reply = match decoder.next_frame() {
            Ok(Some(frame)) => {
                tracing::debug!(client = peer.id, "{}", frame.summary());
                let answer = handler::answer(shared, peer, &frame);
                encode(&Frame::new(frame.request_id, answer))
            }
            Ok(None) => return Ok(()),
            Err(err) => {
                tracing::warn!(client = peer.id, "bad input: {err}");
                let bytes = error_frame(&err);
                if err.is_fatal() {
                    let _ = outbox.push(bytes);
                    return Err(err);
                }
                bytes
            }
        };
        if outbox.push(reply).is_err() {
            return Ok(()); // the writer is gone; the next read will fail too
        }
    }
}

/// After a fatal error: let the writer send what is queued (ending with the
/// error frame) and a FIN, and discard input for a moment so that unread
/// data does not turn our close into an RST that would destroy the error frame.
fn close_after_error(mut stream: &TcpStream, outbox: &Outbox) {
    outbox.close();
    let _ = stream.set_read_timeout(Some(LINGER_DRAIN));
    let mut sink = [0u8; READ_CHUNK];
    let mut budget = 1 << 20;
    while budget > 0 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => budget -= n.min(budget),
        }
    }
}

/// The error frame reporting `err` (echoing the request id when known).
fn error_frame(err: &DecodeError) -> Vec<u8> {
    let body = ErrorBody { code: err.code(), text: err.to_string() };
    encode(&Frame::new(err.request_id(), body))
}

/// Encodes a frame the server built itself. Only a payload over 4 GiB could
/// fail (client text is size-checked when forwarded); then nothing is sent.
fn encode(frame: &Frame) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    if let Err(err) = frame.encode_into(&mut bytes, u32::MAX) {
        tracing::error!("cannot encode {}: {err}", frame.summary());
    }
    bytes
}
