//! The TNLM codec of the bench: requests are encoded once by core's
//! [`Frame`] and copied with only the request id patched at core's
//! [`offset::REQUEST_ID`]; answers are recognised from core's [`Header`] view
//! (plus, for hellos and receipts, one fixed field of the payload), without
//! decoding or allocating. Only error and shutdown frames, which end a run or
//! count as errors, go through core's [`Decoder`].

use tnlm_core::frame::offset;
use tnlm_core::proto::client;
use tnlm_core::{Class, Decoder, Frame, Header, Message, TypeCode, HEADER_LEN, MAGIC, VERSION};

use super::incoming::{Incoming, SendBack};
use crate::connection::MAX_RESPONSE_PAYLOAD;

/// Where a hello's payload holds the client id: its first field, a u32 (LE).
const HELLO_CLIENT_ID_AT: usize = 0;
/// Where a receipt's payload holds the delivery status: after `to` (a u32),
/// a u16 (LE) that is 0 for `delivered`.
const DELIVERY_STATUS_AT: usize = 4;

/// `message` encoded as a frame with request id 1 (a template for
/// [`set_request_id`]).
pub(super) fn frame(message: impl Into<Message>) -> Vec<u8> {
    frame_with_id(1, message)
}

/// `message` encoded as a frame with request id `id`.
#[inline]
pub(super) fn frame_with_id(id: u32, message: impl Into<Message>) -> Vec<u8> {
    Frame::new(id, message).to_bytes().unwrap_or_default()
}

/// The pong that answers heartbeat ping `id` (core's rule for every client).
#[inline]
pub(super) fn pong(id: u32) -> Vec<u8> {
    client::pong(id).to_bytes().unwrap_or_default()
}

/// The acknowledgement of forwarded message `id` (core's rule for every client).
#[inline]
pub(super) fn ack(id: u32) -> Vec<u8> {
    client::ack(id).to_bytes().unwrap_or_default()
}

/// Overwrites the request id in the header of the encoded frame that starts at `at` in `out`.
#[inline]
pub(super) fn set_request_id(out: &mut [u8], at: usize, id: u32) {
    let field = at + offset::REQUEST_ID;
    out[field..field + 4].copy_from_slice(&id.to_le_bytes());
}

/// The next TNLM frame in `bytes` and its length, judged by its header; `None`
/// until it is whole.
#[inline]
pub(super) fn next(bytes: &[u8]) -> Result<Option<(Incoming, usize)>, String> {
    let Some(head) = bytes.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    if !head.starts_with(&MAGIC) {
        return Err("the server's stream lost its framing (bad magic)".into());
    }
    let header = Header::read(head);
    if header.version != VERSION || header.length > MAX_RESPONSE_PAYLOAD {
        return Err(format!("unexpected header from the server: {header:?}"));
    }
    let total = HEADER_LEN + header.length as usize;
    let Some(frame) = bytes.get(..total) else {
        return Ok(None);
    };
    Ok(Some((meaning(&header, frame), total)))
}

/// What the whole frame `frame`, whose header is `header`, means to the generator.
#[inline]
fn meaning(header: &Header, frame: &[u8]) -> Incoming {
    let payload = &frame[HEADER_LEN..];
    let id = header.request_id;
    match (TypeCode::from_byte(header.type_code), Class::from_byte(header.class)) {
        (Some(TypeCode::Hello), Some(Class::Indication)) => Incoming::Hello(u32_at(payload, HELLO_CLIENT_ID_AT)),
        (Some(TypeCode::Time | TypeCode::List), Some(Class::Response)) => Incoming::Answer { id: Some(id), ok: true },
        (Some(TypeCode::Message), Some(Class::Response)) => {
            let delivered = payload.get(DELIVERY_STATUS_AT..DELIVERY_STATUS_AT + 2) == Some(&[0, 0]);
            Incoming::Answer { id: Some(id), ok: delivered }
        }
        (Some(TypeCode::Message), Some(Class::Indication)) => Incoming::Relayed { ack: SendBack::TnlmAck(id) },
        (Some(TypeCode::Ping), Some(Class::Indication)) => Incoming::Ping(id),
        (Some(TypeCode::Shutdown | TypeCode::Error), _) => refusal(frame),
        _ => Incoming::Other,
    }
}

/// The little-endian u32 at `at` in `payload`, 0 if the payload is too short.
fn u32_at(payload: &[u8], at: usize) -> u32 {
    payload.get(at..at + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// An error or shutdown frame, decoded in full: an error answer to one
/// request, or the server refusing the connection or shutting down.
#[cold]
fn refusal(frame: &[u8]) -> Incoming {
    let mut decoder = Decoder::new(MAX_RESPONSE_PAYLOAD);
    decoder.feed(frame);
    match decoder.next_frame() {
        Ok(Some(Frame { message: Message::Error(body), request_id })) if request_id != 0 => {
            tracing::warn!("error answer: {} ({})", body.text, body.code.name());
            Incoming::Answer { id: Some(request_id), ok: false }
        }
        Ok(Some(Frame { message: Message::Error(body), .. })) => {
            Incoming::Refused(format!("{} ({})", body.text, body.code.name()))
        }
        Ok(Some(Frame { message: Message::Shutdown(notice), .. })) => {
            Incoming::Refused(format!("the server is shutting down: {}", notice.reason))
        }
        _ => Incoming::Refused("an undecodable error frame".into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tnlm_core::message::{Delivery, DeliveryStatus, Hello, TimeResponse};

    #[test]
    fn tnlm_answers_are_recognised_from_the_header() {
        let mut bytes = frame_with_id(7, TimeResponse { time: "t".into() });
        let whole = bytes.len();
        bytes.extend_from_slice(&bytes.clone()[..5]);
        let (incoming, used) = next(&bytes).unwrap().unwrap();
        assert!(matches!(incoming, Incoming::Answer { id: Some(7), ok: true }) && used == whole);
        assert!(next(&bytes[whole..]).unwrap().is_none());
    }

    #[test]
    fn the_request_id_is_patched_where_core_reads_it() {
        let mut bytes = frame(tnlm_core::message::TimeRequest);
        set_request_id(&mut bytes, 0, 0xdead_beef);
        assert_eq!(Header::read(bytes.first_chunk().unwrap()).request_id, 0xdead_beef);
    }

    /// The two payload fields read without decoding sit where core's encoding puts them.
    #[test]
    fn hello_ids_and_receipt_statuses_are_read_where_core_writes_them() {
        let hello = Hello { client_id: 0x0102_0304, server: "s".into(), version: VERSION, max_payload: 1024 };
        let (incoming, _) = next(&frame_with_id(0, hello)).unwrap().unwrap();
        assert!(matches!(incoming, Incoming::Hello(0x0102_0304)));
        for status in [DeliveryStatus::Delivered, DeliveryStatus::NoSuchClient, DeliveryStatus::QueueFull] {
            let receipt = Delivery { to: 9, status, reason: String::new() };
            let (incoming, _) = next(&frame_with_id(3, receipt)).unwrap().unwrap();
            let delivered = status == DeliveryStatus::Delivered;
            assert!(matches!(incoming, Incoming::Answer { id: Some(3), ok } if ok == delivered));
        }
    }
}
