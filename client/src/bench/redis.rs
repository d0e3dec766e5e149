//! The Redis codec of the bench: commands as RESP arrays of bulk strings, and
//! answers framed by their RESP length prefixes without being parsed further
//! than the generator needs.

use super::incoming::{Incoming, SendBack};

/// The Redis channel of pair `a` (A's global connection index).
pub(super) fn channel(a: usize) -> String {
    format!("tnlm-bench:{a}")
}

/// A Redis command as a RESP array of bulk strings.
pub(super) fn command(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n{part}\r\n", part.len()).as_bytes());
    }
    out
}

/// The next RESP value in `bytes` and its length; `None` until it is whole.
#[inline]
pub(super) fn next(bytes: &[u8]) -> Result<Option<(Incoming, usize)>, String> {
    let Some(end) = value_end(bytes, 0)? else {
        return Ok(None);
    };
    let value = &bytes[..end];
    let incoming = match value[0] {
        b'+' => Incoming::Hello(0), // +PONG: the greeting, then the answer to each PING
        b':' => Incoming::Answer { id: None, ok: value != b":0\r\n" }, // PUBLISH: receivers reached
        b'-' => Incoming::Answer { id: None, ok: false },
        b'*' => push(value),
        _ => Incoming::Other,
    };
    Ok(Some((incoming, end)))
}

/// What an array (a subscriber's push) means: a published message or the
/// subscribe confirmation.
fn push(value: &[u8]) -> Incoming {
    let body = &value[value.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1)..];
    if body.starts_with(b"$7\r\nmessage\r\n") {
        Incoming::Relayed { ack: SendBack::Nothing }
    } else if body.starts_with(b"$9\r\nsubscribe\r\n") {
        Incoming::Hello(0)
    } else {
        Incoming::Other
    }
}

/// Where the RESP value starting at `at` ends; `None` if it is not whole yet.
fn value_end(bytes: &[u8], at: usize) -> Result<Option<usize>, String> {
    match bytes.get(at) {
        None => return Ok(None),
        Some(b'+' | b'-' | b':' | b'$' | b'*') => {}
        Some(other) => return Err(format!("not a RESP value (starts with byte {other})")),
    }
    let Some(line) = bytes.get(at..).and_then(|rest| rest.windows(2).position(|w| w == b"\r\n")) else {
        return Ok(None);
    };
    let line_end = at + line;
    let after = line_end + 2;
    let number = || -> Result<i64, String> {
        std::str::from_utf8(&bytes[at + 1..line_end])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "unparsable RESP length".to_string())
    };
    match bytes[at] {
        b'+' | b'-' | b':' => Ok(Some(after)),
        b'$' => {
            let n = number()?;
            if n < 0 {
                return Ok(Some(after));
            }
            let end = after + n as usize + 2;
            Ok((bytes.len() >= end).then_some(end))
        }
        b'*' => {
            let mut pos = after;
            for _ in 0..number()?.max(0) {
                match value_end(bytes, pos)? {
                    Some(end) => pos = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(pos))
        }
        _ => Ok(None), // checked above
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resp_values_are_framed_whole_or_not_at_all() {
        let push = b"*3\r\n$7\r\nmessage\r\n$4\r\nch:1\r\n$2\r\nhi\r\n";
        for cut in 0..push.len() {
            assert!(next(&push[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let (incoming, used) = next(push).unwrap().unwrap();
        assert!(matches!(incoming, Incoming::Relayed { ack: SendBack::Nothing }) && used == push.len());
        assert!(matches!(next(b":0\r\n").unwrap().unwrap().0, Incoming::Answer { ok: false, .. }));
        assert!(next(b"?").is_err());
    }
}
