//! What the server does with each frame a client sends: the protocol logic.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local, SecondsFormat};
use tnlm_core::message::{
    Delivery, DeliveryStatus, ErrorBody, Forwarded, ListResponse, NameResponse, Pong, SendRequest, Shutdown,
    TimeResponse,
};
use tnlm_core::{ErrorCode, Frame, Message};

use crate::outbox::Outbox;
use crate::queue::PushError;
use crate::shared::Shared;

/// The client a frame came from, as the server knows it (never as the
/// client claims).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    /// Server-assigned id.
    pub id: u32,
    /// Address of the connection.
    pub addr: SocketAddr,
}

/// Handles one frame from `peer` and returns the immediate reply, if any.
/// An `M` request is answered later, when its delivery settles (see
/// [`crate::deliveries`]); pongs and acks need no reply. Takes the frame by
/// value so a message's text moves into the forwarded frame uncopied.
pub(crate) fn answer(shared: &Shared, peer: Peer, outbox: &Outbox, frame: Frame) -> Option<Message> {
    if shared.config.log_requests {
        log_request(shared, peer, &frame.message);
    }
    let reply: Message = match frame.message {
        Message::TimeRequest(_) => TimeResponse { time: local_time() }.into(),
        Message::NameRequest(_) => NameResponse { name: shared.config.name.clone() }.into(),
        Message::ListRequest(_) => ListResponse::fitting(shared.registry.list(), shared.config.max_payload).into(),
        Message::PingRequest(_) => Pong.into(),
        Message::SendRequest(request) => return forward(shared, peer, outbox, frame.request_id, request),
        Message::Pong(_) => return None,
        Message::Ack(_) => {
            let id = frame.request_id;
            // An ack may overtake the count of what was written: the writer
            // can be preempted between its `send` and counting it. Before
            // calling the ack a lie, let any write in progress finish.
            let acknowledged = shared.deliveries.acknowledge(peer.id, id, outbox.written()) || {
                outbox.wait_for_writer();
                shared.deliveries.acknowledge(peer.id, id, outbox.written())
            };
            if !acknowledged {
                tracing::debug!(client = peer.id, "ack #{id} for no delivery it has received");
            }
            return None;
        }
        // The session's decoder accepts only `message::FROM_CLIENT`, so this
        // arm is a safety net: it answers as the decoder would.
        other => {
            let (type_code, class) = other.kind();
            ErrorBody {
                code: ErrorCode::UnexpectedFrame,
                text: format!("a client sends requests, pongs and acks, not a {} {}", type_code.name(), class.name()),
            }
            .into()
        }
    };
    Some(reply)
}

/// With `--log-requests`: one info line per request a student would
/// screenshot (`client 2 asked for the time`). Pings, pongs and acks are the
/// protocol's own housekeeping and stay at debug level.
fn log_request(shared: &Shared, peer: Peer, message: &Message) {
    let id = peer.id;
    match message {
        Message::TimeRequest(_) => tracing::info!("client {id} asked for the time"),
        Message::NameRequest(_) => tracing::info!("client {id} asked for the server's name"),
        Message::ListRequest(_) => {
            tracing::info!("client {id} asked for the client list ({} connected)", shared.registry.len());
        }
        Message::SendRequest(request) => tracing::info!(
            "client {id} asked to send a message to client {} ({} bytes)",
            request.to,
            request.text.len()
        ),
        _ => {}
    }
}

/// Queues `request.text` for the target as an `M` indication and registers
/// the delivery; answers at once only when it cannot even be queued.
/// Returns `None` when the answer will come from the delivery's settlement.
fn forward(shared: &Shared, peer: Peer, outbox: &Outbox, request_id: u32, request: SendRequest) -> Option<Message> {
    let to = request.to;
    let refuse = |status: DeliveryStatus, reason: String| {
        if shared.config.log_requests {
            tracing::info!("client {}'s message to client {to}: {} ({reason})", peer.id, status.name());
        }
        Some(Delivery { to, status, reason }.into())
    };
    let Some(target) = shared.registry.outbox(to) else {
        return refuse(DeliveryStatus::NoSuchClient, format!("no client with id {to} is connected"));
    };
    let delivery = shared.deliveries.begin(outbox.clone(), peer.id, request_id, to);
    // Room for the header, the sender fields and the text: one allocation.
    let mut bytes = Vec::with_capacity(tnlm_core::HEADER_LEN + 64 + request.text.len());
    let indication = Frame::new(
        delivery,
        Forwarded { from: peer.id, from_ip: peer.addr.ip(), from_port: peer.addr.port(), text: request.text },
    );
    let (status, reason) = match indication.encode_into(&mut bytes, shared.config.max_payload) {
        Err(err) => (DeliveryStatus::TooLarge, format!("message too large to forward: {err}")),
        Ok(()) => match target.try_push(bytes, |end| shared.deliveries.queued(delivery, end)) {
            Ok(()) => return None,
            Err(PushError::Full) => {
                (DeliveryStatus::QueueFull, format!("client {to} is not reading; its queue is full"))
            }
            Err(PushError::Gone) => (DeliveryStatus::TargetGone, format!("client {to} has disconnected")),
        },
    };
    if shared.deliveries.cancel(delivery) {
        refuse(status, reason)
    } else {
        None // already answered by the delivery book
    }
}

/// The answer to a time request: the server's local time, RFC 3339 with
/// milliseconds and its UTC offset. Reading the zone and formatting (chrono)
/// was ~16 % of the server's CPU at 800k time requests/s (docs/BENCHMARKS.md),
/// so each thread keeps its last answer and formats anew only when the
/// millisecond has changed.
fn local_time() -> String {
    thread_local! {
        static LAST: RefCell<(u128, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let millis = now.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis());
    LAST.with_borrow_mut(|(last, text)| {
        if *last != millis || text.is_empty() {
            *text = DateTime::<Local>::from(now).to_rfc3339_opts(SecondsFormat::Millis, false);
            *last = millis;
        }
        text.clone()
    })
}

/// The notice every client gets when the server stops.
pub(crate) fn shutdown_notice() -> Shutdown {
    Shutdown { reason: "server is shutting down".into() }
}
