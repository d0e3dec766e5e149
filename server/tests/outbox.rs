//! Frames written to one client from several threads at once stay whole and
//! in order, even when its socket is nearly always full.
//!
//! The outbox's fast path sends a frame from the pushing thread without
//! blocking; when the socket takes only part of it, the rest (the torn tail)
//! must be the next bytes on the wire, whoever writes next: a flusher, another
//! sender's thread, or the client's own thread answering its requests.
//! Senders pipeline bursts (so frames are corked and coalesced), the server's
//! send buffer is tiny (so partial sends are common), and the receiver asks
//! for the time in between (so its own thread writes too). Any interleaving
//! would break the framing (the decoder fails) or the per-sender order.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use common::{server_with, RawClient};
use tnlm_core::message::{Ack, DeliveryStatus, SendRequest, TimeRequest};
use tnlm_core::{Frame, Message};

const SENDERS: u32 = 3;
const PER_SENDER: u32 = 300;

/// The text of message `seq` from sender thread `sender`: its length varies
/// from 1 to ~3 KB, and its content says who sent it and in what order.
fn text(sender: u32, seq: u32) -> String {
    let head = format!("{sender}:{seq}:");
    let fill = (seq * 7919 % 3000) as usize;
    head + &"x".repeat(fill)
}

#[test]
fn frames_from_many_threads_stay_whole_through_a_tiny_send_buffer() {
    let server = server_with(|c| {
        c.socket.send_buffer = Some(4096);
        c.ack_timeout = Duration::from_secs(60);
        c.queue_bytes = 64 << 20;
    });
    let addr = server.local_addr();
    let mut receiver = RawClient::connect(addr);
    let target = receiver.id();

    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            thread::spawn(move || {
                let mut client = RawClient::connect(addr);
                let mut burst = Vec::new();
                for seq in 0..PER_SENDER {
                    Frame::new(seq + 1, SendRequest { to: target, text: text(sender, seq) })
                        .encode_into(&mut burst, 1 << 20)
                        .unwrap();
                }
                client.write_raw(&burst);
                let mut delivered = 0;
                for _ in 0..PER_SENDER {
                    match client.next_frame().message {
                        Message::Delivery(d) if d.status == DeliveryStatus::Delivered => delivered += 1,
                        other => panic!("sender {sender}: {other:?}"),
                    }
                }
                delivered
            })
        })
        .collect();

    let mut next_seq: HashMap<u32, u32> = HashMap::new();
    let mut received = 0;
    let mut times_asked = 0;
    let mut times_answered = 0;
    while received < SENDERS * PER_SENDER {
        let frame = receiver.next_frame();
        match frame.message {
            Message::Forwarded(message) => {
                let mut parts = message.text.splitn(3, ':');
                let sender: u32 = parts.next().unwrap().parse().unwrap();
                let seq: u32 = parts.next().unwrap().parse().unwrap();
                assert_eq!(message.text, text(sender, seq), "text arrived changed");
                let expected = next_seq.entry(sender).or_default();
                assert_eq!(seq, *expected, "sender {sender}'s messages out of order");
                *expected += 1;
                received += 1;
                receiver.send_frame(Frame::new(frame.request_id, Ack));
                if received % 25 == 0 {
                    receiver.send(TimeRequest);
                    times_asked += 1;
                }
            }
            Message::TimeResponse(_) => times_answered += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let delivered: u32 = senders.into_iter().map(|s| s.join().unwrap()).sum();
    assert_eq!(delivered, SENDERS * PER_SENDER);
    while times_answered < times_asked {
        assert!(matches!(receiver.next_frame().message, Message::TimeResponse(_)));
        times_answered += 1;
    }
}
