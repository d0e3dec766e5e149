//! Test helpers: an in-process server and a raw protocol client built only on
//! `tnlm-core`, so the tests see exactly what goes over the wire.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tnlm_core::message::Hello;
use tnlm_core::{DecodeError, Decoder, Frame, Message};
use tnlm_server::{Config, RunningServer, Server};

/// How long any single wait in a test may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A server on 127.0.0.1 with a free port, named `test-server`.
pub fn server() -> RunningServer {
    server_with(|_| {})
}

/// Like [`server`], with the config adjusted by `tweak`.
pub fn server_with(tweak: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config =
        Config { bind: Some("127.0.0.1".parse().unwrap()), port: 0, name: "test-server".into(), ..Config::default() };
    tweak(&mut config);
    Server::bind(config).unwrap().spawn()
}

/// What a raw read produced.
#[derive(Debug)]
pub enum Event {
    Frame(Frame),
    Error(DecodeError),
    Closed,
}

/// A protocol client with no logic of its own.
pub struct RawClient {
    pub stream: TcpStream,
    pub decoder: Decoder,
    pub hello: Option<Hello>,
    next_id: u32,
}

impl RawClient {
    /// Connects and reads the hello.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let mut client = RawClient::connect_silent(addr);
        match client.next_frame().message {
            Message::Hello(hello) => client.hello = Some(hello),
            other => panic!("expected hello first, got {other:?}"),
        }
        client
    }

    /// Connects without reading anything.
    pub fn connect_silent(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        RawClient { stream, decoder: Decoder::new(16 << 20), hello: None, next_id: 1 }
    }

    /// The id the server assigned.
    pub fn id(&self) -> u32 {
        self.hello.as_ref().unwrap().client_id
    }

    /// Sends a request with the next request id; returns that id.
    pub fn send(&mut self, message: impl Into<Message>) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.stream.write_all(&Frame::new(id, message).to_bytes().unwrap()).unwrap();
        id
    }

    /// Sends a request and returns the response (which must echo its id).
    pub fn request(&mut self, message: impl Into<Message>) -> Message {
        let id = self.send(message);
        let frame = self.next_frame();
        assert_eq!(frame.request_id, id, "response must echo the request id: {frame:?}");
        frame.message
    }

    /// Sends a whole frame as given (any class, any id).
    pub fn send_frame(&mut self, frame: Frame) {
        self.stream.write_all(&frame.to_bytes().unwrap()).unwrap();
    }

    /// Writes raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next frame; panics on anything else.
    pub fn next_frame(&mut self) -> Frame {
        match self.next_event() {
            Event::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame, decode error or end of stream (waits at most [`TIMEOUT`]).
    pub fn next_event(&mut self) -> Event {
        let mut chunk = [0u8; 8192];
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => return Event::Frame(frame),
                Ok(None) => {}
                Err(err) => return Event::Error(err),
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Event::Closed,
                Ok(n) => self.decoder.feed(&chunk[..n]),
                Err(err) if err.kind() == ErrorKind::ConnectionReset => return Event::Closed,
                Err(err) => panic!("read failed (timeout?): {err}"),
            }
        }
    }

    /// Reads frames until the server closes; returns them.
    pub fn frames_until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            match self.next_event() {
                Event::Frame(frame) => frames.push(frame),
                Event::Closed => return frames,
                Event::Error(err) => panic!("server sent undecodable bytes: {err}"),
            }
        }
    }
}
