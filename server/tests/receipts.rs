//! Receipts stay truthful against a lying target, and a client that closes
//! only its sending side still gets every receipt it is owed.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{server_with, RawClient};
use tnlm_core::message::*;
use tnlm_core::{Frame, Message};

/// Encodes `count` messages of `size` bytes to `to`, request ids from `first`.
fn messages(to: u32, first: u32, count: u32, size: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for id in first..first + count {
        Frame::new(id, SendRequest { to, text: "x".repeat(size) }).encode_into(&mut bytes, 1 << 20).unwrap();
    }
    bytes
}

#[test]
fn acks_for_indications_not_yet_written_never_make_a_message_delivered() {
    let server = server_with(|c| {
        // Long enough that every ack is handled before any delivery expires.
        c.ack_timeout = Duration::from_secs(3);
        c.socket.send_buffer = Some(4096);
    });
    let addr = server.local_addr();
    let mut liar = RawClient::connect_small_window(addr);
    let liar_id = {
        let Message::ListResponse(list) = RawClient::connect(addr).request(ListRequest) else { panic!() };
        list.clients.iter().map(|c| c.id).min().unwrap()
    };
    // A flood fills the liar's windows, so what follows waits in the server's queue …
    let mut flood = RawClient::connect(addr);
    flood.write_raw(&messages(liar_id, 1, 40, 8 * 1024));
    liar.stream.peek(&mut [0u8; 1]).unwrap();
    // … where ten more messages wait, from another sender.
    let mut sender = RawClient::connect(addr);
    sender.write_raw(&messages(liar_id, 1, 10, 16));
    // Make sure they were handled (queued) before the lies: a round trip after them.
    assert!(matches!(sender.request(NameRequest), Message::NameResponse(_)));
    // The liar acknowledges every id it could guess, and ids it cannot know,
    // then pings: once it sees the pong, the server has handled every ack.
    let mut acks = Vec::new();
    for id in (1..=20_000u32).chain([u32::MAX, u32::MAX - 1]) {
        Frame::new(id, Ack).encode_into(&mut acks, 1 << 20).unwrap();
    }
    liar.write_raw(&acks);
    let ping = liar.send(PingRequest);
    // Only now does it read: everything queued for it is written, then the pong.
    loop {
        let frame = liar.next_frame();
        if frame.request_id == ping && matches!(frame.message, Message::Pong(_)) {
            break;
        }
    }
    // The ten receipts: none may say delivered.
    let mut statuses = BTreeMap::<&str, u32>::new();
    while statuses.values().sum::<u32>() < 10 {
        let frame = sender.next_frame();
        let Message::Delivery(delivery) = frame.message else { panic!("{frame:?}") };
        *statuses.entry(delivery.status.name()).or_default() += 1;
    }
    eprintln!("10 messages queued behind a full window, 20,002 forged acks: {statuses:?}");
    assert_eq!(statuses.get("delivered"), None, "{statuses:?}");
}

#[test]
fn an_honest_target_still_gets_its_messages_delivered() {
    let server = server_with(|c| c.ack_timeout = Duration::from_secs(5));
    let addr = server.local_addr();
    let mut target = RawClient::connect(addr);
    let target_id = target.id();
    let mut sender = RawClient::connect(addr);
    sender.write_raw(&messages(target_id, 1, 200, 100));
    for _ in 0..200 {
        let indication = target.next_frame();
        assert!(matches!(indication.message, Message::Forwarded(_)), "{indication:?}");
        target.send_frame(Frame::new(indication.request_id, Ack));
    }
    for _ in 0..200 {
        let Message::Delivery(delivery) = sender.next_frame().message else { panic!() };
        assert_eq!(delivery.status, DeliveryStatus::Delivered, "{delivery:?}");
    }
}

#[test]
fn a_half_closed_client_gets_every_answer_it_is_owed_then_the_close() {
    let server = server_with(|c| c.ack_timeout = Duration::from_millis(500));
    let addr = server.local_addr();
    let mut silent = RawClient::connect(addr); // never acknowledges
    let silent_id = silent.id();
    let mut acker = RawClient::connect(addr);
    let acker_id = acker.id();
    let mut client = RawClient::connect(addr);
    let mut bytes = Vec::new();
    Frame::new(1, TimeRequest).encode_into(&mut bytes, 1 << 20).unwrap();
    Frame::new(2, SendRequest { to: silent_id, text: "you there?".into() }).encode_into(&mut bytes, 1 << 20).unwrap();
    Frame::new(3, SendRequest { to: acker_id, text: "hello".into() }).encode_into(&mut bytes, 1 << 20).unwrap();
    Frame::new(4, SendRequest { to: 999_999, text: "nobody".into() }).encode_into(&mut bytes, 1 << 20).unwrap();
    client.write_raw(&bytes);
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    // The acker acknowledges only after the client has hung up its side.
    let indication = acker.next_frame();
    let _ = silent.next_frame();
    acker.send_frame(Frame::new(indication.request_id, Ack));
    let frames = client.frames_until_closed();
    let answers: BTreeMap<u32, String> = frames
        .iter()
        .map(|f| {
            let what = match &f.message {
                Message::TimeResponse(_) => "time".to_string(),
                Message::Delivery(d) => d.status.name().to_string(),
                other => format!("{other:?}"),
            };
            (f.request_id, what)
        })
        .collect();
    eprintln!("half-closed client's answers: {answers:?}");
    let expected: BTreeMap<u32, String> =
        [(1, "time"), (2, "not_acknowledged"), (3, "delivered"), (4, "no_such_client")]
            .into_iter()
            .map(|(id, what)| (id, what.to_string()))
            .collect();
    assert_eq!(answers, expected, "{frames:?}");
}
