//! What the server answers to each request: the protocol logic, free of I/O.

use std::net::SocketAddr;

use chrono::{Local, SecondsFormat};
use tnlm_core::message::{
    Delivery, DeliveryStatus, ErrorBody, Forwarded, ListResponse, NameResponse, SendRequest, TimeResponse,
};
use tnlm_core::{ErrorCode, Frame, Message};

use crate::server::Shared;
use crate::writer::PushError;

/// The client a request came from, as the server knows it (never as the
/// client claims).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    /// Server-assigned id.
    pub id: u32,
    /// Address of the connection.
    pub addr: SocketAddr,
}

/// The reply to one request from `peer`.
pub(crate) fn answer(shared: &Shared, peer: Peer, frame: &Frame) -> Message {
    match &frame.message {
        Message::TimeRequest(_) => {
            TimeResponse { time: Local::now().to_rfc3339_opts(SecondsFormat::Millis, false) }.into()
        }
        Message::NameRequest(_) => NameResponse { name: shared.config.name.clone() }.into(),
        Message::ListRequest(_) => ListResponse { clients: shared.registry.list() }.into(),
        Message::SendRequest(request) => forward(shared, peer, request).into(),
        other => {
            let (type_code, class) = other.kind();
            ErrorBody {
                code: ErrorCode::UnexpectedFrame,
                text: format!("a client may only send requests, not a {} {}", type_code.name(), class.name()),
            }
            .into()
        }
    }
}

/// Hands `request.text` to the target's outbox and says how that went.
fn forward(shared: &Shared, peer: Peer, request: &SendRequest) -> Delivery {
    let outcome = |status: DeliveryStatus, reason: String| Delivery { to: request.to, status, reason };
    let Some(outbox) = shared.registry.outbox(request.to) else {
        return outcome(DeliveryStatus::NoSuchClient, format!("no client with id {} is connected", request.to));
    };
    let indication = Frame::indication(Forwarded {
        from: peer.id,
        from_ip: peer.addr.ip(),
        from_port: peer.addr.port(),
        text: request.text.clone(),
    });
    let mut bytes = Vec::new();
    if let Err(err) = indication.encode_into(&mut bytes, shared.config.max_payload) {
        return outcome(DeliveryStatus::TooLarge, format!("message too large to forward: {err}"));
    }
    match outbox.try_push(bytes) {
        Ok(()) => outcome(DeliveryStatus::Delivered, format!("handed to client {}", request.to)),
        Err(PushError::Full) => {
            outcome(DeliveryStatus::QueueFull, format!("client {} is not reading; its queue is full", request.to))
        }
        Err(PushError::Gone) => outcome(DeliveryStatus::TargetGone, format!("client {} has disconnected", request.to)),
    }
}
