//! The NATS codec of the bench: the client's side of the NATS text protocol
//! (`CONNECT`, `SUB`, `PUB`, `PING`, `PONG`), and the server's operations
//! (`INFO`, `MSG`, `PING`, `PONG`, `+OK`, `-ERR`) framed by their control
//! line and, for `MSG`, the byte count it gives, without copying.
//!
//! Every connection says `CONNECT` (not verbose: no `+OK` after each
//! command), its subscription if it has one, and `PING`; the server handles a
//! connection's commands in order, so its `PONG` means the subscription is in
//! place: that `PONG` is the greeting. The subjects of pair `a` (A's global
//! connection index) are `tnlm-bench.a` and so on, so pairs never share one.

use std::io::Write as _;
use std::ops::Range;

use super::conn::Role;
use super::incoming::{Incoming, SendBack};
use super::kind::Kind;

/// A client's ping, the `time` request: the server answers `PONG`.
pub(super) const PING: &[u8] = b"PING\r\n";
/// The answer to the server's heartbeat `PING`.
pub(super) const PONG: &[u8] = b"PONG\r\n";

/// Subscription id of a responder's request subject (`message`).
const SID_REQUESTS: &str = "1";
/// Subscription id of a requester's reply subject (`message`): a `MSG` on it
/// is the answer to a request.
const SID_REPLIES: &str = "2";
/// Subscription id of a plain subscriber (`publish`).
const SID_PUBLISHED: &str = "3";

/// The longest control line accepted from the server (an `INFO` line is the
/// longest, well under 4 KiB on a single server).
const MAX_LINE: usize = 64 * 1024;
/// The largest `MSG` payload accepted: NATS's default `max_payload`, 1 MiB
/// (the bench publishes at most 60,000 bytes).
const MAX_PAYLOAD: usize = 1024 * 1024;

/// The subject responder B of pair `a` subscribes to (`message`).
fn request_subject(a: usize) -> String {
    format!("tnlm-bench.{a}.request")
}

/// The subject requester A of pair `a` gets its replies on (`message`).
fn reply_subject(a: usize) -> String {
    format!("tnlm-bench.{a}.reply")
}

/// The subject subscriber B of pair `a` listens to (`publish`).
fn published_subject(a: usize) -> String {
    format!("tnlm-bench.{a}")
}

/// What connection `global` writes first: `CONNECT`, the subscription its
/// role in a run of `kind` calls for, and the `PING` whose `PONG` greets it.
pub(super) fn greeting(kind: Kind, role: Role, global: usize) -> Vec<u8> {
    let mut out = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"name\":\"tnlm-bench\",\"lang\":\"rust\",\"version\":\"{}\"}}\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes();
    let subscription = match (kind, role) {
        (Kind::Message, Role::Requester) => Some((reply_subject(global), SID_REPLIES)),
        (Kind::Message, Role::Receiver) => Some((request_subject(global - 1), SID_REQUESTS)),
        (Kind::Publish, Role::Receiver) => Some((published_subject(global - 1), SID_PUBLISHED)),
        _ => None,
    };
    if let Some((subject, sid)) = subscription {
        out.extend_from_slice(format!("SUB {subject} {sid}\r\n").as_bytes());
    }
    out.extend_from_slice(PING);
    out
}

/// The request of requester `a` in a run of `kind`, carrying `text`:
/// `message` publishes to B's request subject with A's reply subject,
/// `publish` to B's subject without one, and anything else is a `PING`.
pub(super) fn request(kind: Kind, text: &str, a: usize) -> Vec<u8> {
    let mut out = Vec::new();
    match kind {
        Kind::Message => publish(&mut out, request_subject(a).as_bytes(), Some(reply_subject(a).as_bytes()), text),
        Kind::Publish => publish(&mut out, published_subject(a).as_bytes(), None, text),
        _ => out.extend_from_slice(PING),
    }
    out
}

/// Appends `PUB subject [reply] n` and the `n` bytes of `payload` to `out`.
#[inline]
pub(super) fn publish(out: &mut Vec<u8>, subject: &[u8], reply: Option<&[u8]>, payload: impl AsRef<[u8]>) {
    let payload = payload.as_ref();
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject);
    if let Some(reply) = reply {
        out.push(b' ');
        out.extend_from_slice(reply);
    }
    let _ = write!(out, " {}\r\n", payload.len()); // writing to a Vec cannot fail
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// The next operation from the server in `bytes` and its length; `None` until
/// it is whole. `-ERR` ends the run with the server's words (the server closes
/// the connection after most of them).
#[inline]
pub(super) fn next(bytes: &[u8]) -> Result<Option<(Incoming, usize)>, String> {
    let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
        if bytes.len() > MAX_LINE {
            return Err(format!("a NATS control line longer than {MAX_LINE} bytes"));
        }
        return Ok(None);
    };
    let line = &bytes[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let after = newline + 1;
    let op = fields(line).next().map_or(&b""[..], |op| &line[op]);
    let incoming = if op.eq_ignore_ascii_case(b"MSG") {
        return message(bytes, line, after);
    } else if op.eq_ignore_ascii_case(b"PONG") {
        Incoming::Hello(0) // the greeting, then the answer to each PING
    } else if op.eq_ignore_ascii_case(b"PING") {
        Incoming::Ping(0)
    } else if op.eq_ignore_ascii_case(b"+OK") || op.eq_ignore_ascii_case(b"INFO") {
        Incoming::Other
    } else if op.eq_ignore_ascii_case(b"-ERR") {
        let words = String::from_utf8_lossy(&line[op.len()..]);
        Incoming::Refused(format!("the NATS server says {}", words.trim().trim_matches('\'')))
    } else {
        return Err(format!("not a NATS operation: {}", shown(line)));
    };
    Ok(Some((incoming, after)))
}

/// A `MSG subject sid [reply] n` line `line` at the start of `bytes`, whose
/// payload starts at `at`: a reply (on the replies' subscription), a request
/// to answer (it names a reply subject), or a published message.
fn message(bytes: &[u8], line: &[u8], at: usize) -> Result<Option<(Incoming, usize)>, String> {
    let bad = || format!("a malformed NATS MSG line: {}", shown(line));
    let mut fields = fields(line).skip(1);
    let (Some(_subject), Some(sid), Some(third)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(bad());
    };
    let (reply, size) = match (fields.next(), fields.next()) {
        (None, _) => (None, third),
        (Some(size), None) => (Some(third), size),
        (Some(_), Some(_)) => return Err(bad()),
    };
    let size: usize = std::str::from_utf8(&line[size]).ok().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    if size > MAX_PAYLOAD {
        return Err(format!("a NATS MSG of {size} bytes, over the {MAX_PAYLOAD} the bench accepts"));
    }
    let end = at + size;
    let Some(tail) = bytes.get(end..end + 2) else {
        return Ok(None);
    };
    if tail != b"\r\n" {
        return Err(format!("a NATS MSG whose {size} bytes are not followed by CRLF: {}", shown(line)));
    }
    let incoming = match reply {
        _ if &line[sid] == SID_REPLIES.as_bytes() => Incoming::Answer { id: None, ok: true },
        Some(subject) => Incoming::Relayed { ack: SendBack::NatsReply { subject, payload: at..end } },
        None => Incoming::Relayed { ack: SendBack::Nothing },
    };
    Ok(Some((incoming, end + 2)))
}

/// The ranges of the space- or tab-separated fields of `line`.
fn fields(line: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let blank = |b: u8| b == b' ' || b == b'\t';
    let mut at = 0;
    std::iter::from_fn(move || {
        while line.get(at).is_some_and(|&b| blank(b)) {
            at += 1;
        }
        let start = at;
        while line.get(at).is_some_and(|&b| !blank(b)) {
            at += 1;
        }
        (at > start).then_some(start..at)
    })
}

/// The start of `line` for an error message: at most 80 bytes, as text.
fn shown(line: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(&line[..line.len().min(80)]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Reads every whole operation of `bytes`, as the worker does.
    fn all(bytes: &[u8]) -> Vec<Incoming> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((incoming, used)) = next(&bytes[at..]).unwrap() {
            out.push(incoming);
            at += used;
        }
        assert_eq!(at, bytes.len(), "everything was whole");
        out
    }

    #[test]
    fn a_msg_is_framed_whole_or_not_at_all() {
        let msg = b"MSG tnlm-bench.0.request 1 tnlm-bench.0.reply 5\r\nhe\r\no\r\n";
        for cut in 0..msg.len() {
            assert!(next(&msg[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let (incoming, used) = next(msg).unwrap().unwrap();
        assert_eq!(used, msg.len());
        let Incoming::Relayed { ack: SendBack::NatsReply { subject, payload } } = incoming else {
            panic!("not a request to answer");
        };
        assert_eq!((&msg[subject.clone()], &msg[payload.clone()]), (&b"tnlm-bench.0.reply"[..], &b"he\r\no"[..]));
        // The responder's answer: the payload published back to the reply subject.
        let mut answer = Vec::new();
        publish(&mut answer, &msg[subject], None, &msg[payload]);
        assert_eq!(answer, b"PUB tnlm-bench.0.reply 5\r\nhe\r\no\r\n");
    }

    #[test]
    fn coalesced_operations_are_read_one_by_one() {
        let bytes = b"INFO {\"max_payload\":1048576}\r\nPONG\r\n+OK\r\nMSG a 2 3\r\nabc\r\nMSG b\t3  0\r\n\r\nPING\r\n";
        let read = all(bytes);
        assert!(matches!(
            read[..],
            [
                Incoming::Other,
                Incoming::Hello(0),
                Incoming::Other,
                Incoming::Answer { id: None, ok: true },
                Incoming::Relayed { ack: SendBack::Nothing },
                Incoming::Ping(0),
            ]
        ));
    }

    #[test]
    fn err_ends_the_run_with_the_servers_words() {
        let (incoming, _) = next(b"-ERR 'Maximum Payload Violation'\r\n").unwrap().unwrap();
        assert!(matches!(incoming, Incoming::Refused(why) if why.ends_with("says Maximum Payload Violation")));
    }

    #[test]
    fn bad_input_is_an_error_not_a_wait() {
        for bad in [
            &b"HELLO\r\n"[..],
            b"MSG a 1\r\n",
            b"MSG a 1 b c 2\r\n",
            b"MSG a 1 -3\r\n",
            b"MSG a 1 99999999999\r\n",
            b"MSG a 1 2\r\nabcd\r\n",
            b"HMSG a 1 2 2\r\n\r\n\r\n",
        ] {
            assert!(next(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(next(&vec![b'x'; MAX_LINE + 1]).is_err(), "an endless line");
        assert!(next(&vec![b'x'; MAX_LINE]).unwrap().is_none(), "a long line may still end");
    }

    #[test]
    fn each_role_subscribes_to_its_pairs_subject_before_its_ping() {
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        let requester = text(greeting(Kind::Message, Role::Requester, 4));
        assert!(requester.starts_with("CONNECT {\"verbose\":false,\"pedantic\":false"), "{requester}");
        assert!(requester.ends_with("\r\nSUB tnlm-bench.4.reply 2\r\nPING\r\n"), "{requester}");
        assert!(text(greeting(Kind::Message, Role::Receiver, 5)).ends_with("SUB tnlm-bench.4.request 1\r\nPING\r\n"));
        assert!(text(greeting(Kind::Publish, Role::Receiver, 5)).ends_with("SUB tnlm-bench.4 3\r\nPING\r\n"));
        assert!(text(greeting(Kind::Time, Role::Requester, 0)).ends_with("}\r\nPING\r\n"));
        assert_eq!(text(request(Kind::Message, "hi", 4)), "PUB tnlm-bench.4.request tnlm-bench.4.reply 2\r\nhi\r\n");
        assert_eq!(text(request(Kind::Publish, "hi", 4)), "PUB tnlm-bench.4 2\r\nhi\r\n");
        assert_eq!(request(Kind::Time, "hi", 0), PING);
    }
}
