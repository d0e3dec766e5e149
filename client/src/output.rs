//! What the client prints: a [`Record`] per result, rendered either as text
//! for people or as one JSON object per line (with a `"type"` field) for
//! scripts, exactly as `DESIGN.md` fixes them.

use std::borrow::Cow;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use tnlm_core::message::{ClientInfo, Delivery, DeliveryStatus, ErrorBody, Forwarded, Hello};
use tnlm_core::Message;

/// One thing to report, in the shape of its JSON object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The server's greeting on connect.
    Hello {
        /// Our client id.
        id: u32,
        /// The server's name.
        server: String,
        /// The server's protocol version.
        version: u8,
        /// The largest payload the server accepts.
        max_payload: u32,
        /// The server's address, `ip:port`.
        addr: String,
    },
    /// A time response.
    Time {
        /// The request id it answers.
        request_id: u32,
        /// RFC 3339 with offset.
        time: String,
    },
    /// A name response.
    Name {
        /// The server's name.
        name: String,
    },
    /// A list response.
    List {
        /// Every connected client.
        clients: Vec<ClientRecord>,
        /// Our own id, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        you: Option<u32>,
    },
    /// The outcome of a send.
    Delivery {
        /// Our own id (the sender), when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<u32>,
        /// The target id.
        to: u32,
        /// Whether the server handed it to the target.
        delivered: bool,
        /// The status name, e.g. `no_such_client`.
        status: &'static str,
        /// The server's explanation.
        reason: String,
    },
    /// A message forwarded from another client.
    Message {
        /// The sender's id.
        from: u32,
        /// The sender's address, `ip:port` (`[ip]:port` for IPv6).
        from_addr: String,
        /// The text, exactly as sent.
        text: String,
    },
    /// The server is shutting down.
    Shutdown {
        /// Why.
        reason: String,
    },
    /// An error frame from the server.
    Error {
        /// The numeric error code.
        code: u16,
        /// Its name, e.g. `unknown_type`.
        name: &'static str,
        /// The server's explanation.
        text: String,
    },
    /// One case of `conform`.
    Conform {
        /// The case's name, e.g. `oversize`.
        case: &'static str,
        /// The section of docs/PROTOCOL.md it checks.
        section: &'static str,
        /// Whether the server passed it.
        passed: bool,
        /// Why it failed (empty when it passed).
        detail: String,
    },
    /// The summary of `conform`.
    ConformSummary {
        /// Cases passed.
        passed: usize,
        /// Cases failed.
        failed: usize,
    },
    /// The summary of `time --repeat`.
    Repeat {
        /// Requests written.
        sent: u32,
        /// The `send()` calls that wrote them: 1, or `sent` with `--sends`.
        writes: u32,
        /// Time responses received.
        received: u32,
        /// Responses that matched an outstanding request id (each counted once).
        matched: u32,
        /// From the write to the last response, in milliseconds.
        elapsed_ms: f64,
    },
}

/// One row of a client list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientRecord {
    /// The client's id.
    pub id: u32,
    /// Its IP address.
    pub ip: IpAddr,
    /// Its TCP port.
    pub port: u16,
    /// When it connected (RFC 3339).
    pub since: String,
}

impl From<&ClientInfo> for ClientRecord {
    fn from(info: &ClientInfo) -> ClientRecord {
        ClientRecord { id: info.id, ip: info.ip, port: info.port, since: info.since.clone() }
    }
}

impl Record {
    /// The record for a server's hello received from `addr`.
    pub fn hello(hello: &Hello, addr: SocketAddr) -> Record {
        Record::Hello {
            id: hello.client_id,
            server: hello.server.clone(),
            version: hello.version,
            max_payload: hello.max_payload,
            addr: addr.to_string(),
        }
    }

    /// The record for a delivery result of a message sent by client `from`.
    pub fn delivery(delivery: &Delivery, from: Option<u32>) -> Record {
        Record::Delivery {
            from,
            to: delivery.to,
            delivered: delivery.status == DeliveryStatus::Delivered,
            status: delivery.status.name(),
            reason: delivery.reason.clone(),
        }
    }

    /// The record for a forwarded message.
    pub fn forwarded(message: &Forwarded) -> Record {
        Record::Message {
            from: message.from,
            from_addr: SocketAddr::new(message.from_ip, message.from_port).to_string(),
            text: message.text.clone(),
        }
    }

    /// The record for an error frame.
    pub fn error(body: &ErrorBody) -> Record {
        Record::Error { code: body.code.code(), name: body.code.name(), text: body.text.clone() }
    }

    /// The summary of a burst of `sent` time requests.
    pub fn repeat(sent: u32, writes: u32, received: u32, matched: u32, elapsed: Duration) -> Record {
        let elapsed_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
        Record::Repeat { sent, writes, received, matched, elapsed_ms }
    }

    /// The record for any message the server sends (`None` for requests,
    /// which a server never sends). `you`, our own id, marks our row in a list
    /// and is the `from` of a delivery result.
    pub fn from_message(request_id: u32, message: &Message, you: Option<u32>) -> Option<Record> {
        Some(match message {
            Message::TimeResponse(r) => Record::Time { request_id, time: r.time.clone() },
            Message::NameResponse(r) => Record::Name { name: r.name.clone() },
            Message::ListResponse(r) => Record::List { clients: r.clients.iter().map(Into::into).collect(), you },
            Message::Delivery(d) => Record::delivery(d, you),
            Message::Forwarded(f) => Record::forwarded(f),
            Message::Shutdown(s) => Record::Shutdown { reason: s.reason.clone() },
            Message::Error(e) => Record::error(e),
            Message::Hello(h) => Record::Hello {
                id: h.client_id,
                server: h.server.clone(),
                version: h.version,
                max_payload: h.max_payload,
                addr: String::new(),
            },
            // Requests are never sent by a server; pings, pongs and acks are
            // heartbeat and receipt plumbing, answered by the receiver thread.
            Message::TimeRequest(_)
            | Message::NameRequest(_)
            | Message::ListRequest(_)
            | Message::SendRequest(_)
            | Message::PingRequest(_)
            | Message::ServerPing(_)
            | Message::Pong(_)
            | Message::Ack(_) => return None,
        })
    }

    /// The record as text for people (may span several lines, no trailing newline).
    /// Text from the network goes through [`printable`], so it cannot steer the terminal.
    pub fn human(&self) -> String {
        match self {
            Record::Hello { id, server, version, addr, .. } => {
                format!("connected to {addr} (server {server:?}, protocol v{version}); you are client {id}")
            }
            Record::Time { time, .. } => format!("server time: {}", printable(time)),
            Record::Name { name } => format!("server name: {}", printable(name)),
            Record::List { clients, you } => list_table(clients, *you),
            Record::Delivery { to, delivered: true, .. } => format!("message delivered to client {to}"),
            Record::Delivery { to, status, reason, .. } => {
                format!("message not delivered to client {to}: {} ({status})", printable(reason))
            }
            Record::Message { from, from_addr, text } => {
                format!("[message from {from} ({from_addr})] {}", printable(text))
            }
            Record::Shutdown { reason } => format!("[the server is shutting down: {}]", printable(reason)),
            Record::Error { code, name, text } => format!("server error {code} ({name}): {}", printable(text)),
            Record::Conform { case, section, passed: true, .. } => format!("ok    {case:<28} PROTOCOL.md: {section}"),
            Record::Conform { case, section, passed: false, detail } => {
                format!("FAIL  {case:<28} PROTOCOL.md: {section}: {}", printable(detail))
            }
            Record::ConformSummary { passed, failed } => format!("{passed} passed, {failed} failed"),
            Record::Repeat { sent, writes, received, matched, elapsed_ms } => {
                let calls = if *writes == 1 { "call" } else { "calls" };
                format!(
                    "received {received}/{sent} responses ({matched} matched) in {elapsed_ms:.1} ms; \
                     {sent} requests written in {writes} send() {calls}"
                )
            }
        }
    }

    /// The record as one line of JSON. Every control character in a string is escaped
    /// (`\u001b`, `\u007f`, `\u009b`), not only the ones JSON requires (below U+0020).
    pub fn json(&self) -> String {
        let mut line = Vec::new();
        let written = self.serialize(&mut serde_json::Serializer::with_formatter(&mut line, EscapeControls));
        match written.map(|()| String::from_utf8(line)) {
            Ok(Ok(line)) => line,
            Ok(Err(err)) => json_error(&err),
            Err(err) => json_error(&err),
        }
    }
}

/// The JSON line printed when a record cannot be (should not happen).
fn json_error(err: &dyn std::fmt::Display) -> String {
    serde_json::json!({ "type": "error", "code": 0, "text": format!("cannot print as JSON: {err}") }).to_string()
}

/// serde_json's compact output, with DEL and the C1 controls escaped too: serde_json
/// escapes only what JSON requires (C0), and a terminal may act on the others.
struct EscapeControls;

impl serde_json::ser::Formatter for EscapeControls {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, writer: &mut W, fragment: &str) -> std::io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices().filter(|(_, c)| c.is_control()) {
            writer.write_all(&fragment.as_bytes()[start..at])?;
            write!(writer, "\\u{:04x}", u32::from(c))?;
            start = at + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// `text` with every control character escaped (`\n`, `\t`, `\r`, others as `\u{1b}`),
/// for printing text that came from the network to a terminal: another client's
/// message must not be able to move the cursor, recolour or retitle the terminal,
/// or fake lines of output. (JSON output is escaped by serde_json instead.)
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    use std::fmt::Write as _;
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        let _ = match c {
            '\n' => escaped.write_str("\\n"),
            '\t' => escaped.write_str("\\t"),
            '\r' => escaped.write_str("\\r"),
            c if c.is_control() => write!(escaped, "\\u{{{:x}}}", u32::from(c)),
            c => escaped.write_char(c),
        };
    }
    Cow::Owned(escaped)
}

/// A table of clients: id, ip, port, since, with "(you)" on our own row.
fn list_table(clients: &[ClientRecord], you: Option<u32>) -> String {
    let ip_width = clients.iter().map(|c| c.ip.to_string().len()).max().unwrap_or(0).max(2);
    let since_width = clients.iter().map(|c| printable(&c.since).len()).max().unwrap_or(0).max(5);
    let count = match clients.len() {
        1 => "1 client connected:".to_string(),
        n => format!("{n} clients connected:"),
    };
    let header = format!("{:>6}  {:<ip_width$}  {:>5}  SINCE", "ID", "IP", "PORT");
    let mut lines = vec![count, header];
    for c in clients {
        let mark = if Some(c.id) == you { "  (you)" } else { "" };
        let row = format!(
            "{:>6}  {:<ip_width$}  {:>5}  {:<since_width$}{mark}",
            c.id,
            c.ip.to_string(),
            c.port,
            printable(&c.since)
        );
        lines.push(row.trim_end().to_string());
    }
    lines.join("\n")
}

/// Renders records as text or JSON and writes them to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// One JSON object per line instead of text.
    pub json: bool,
}

impl Output {
    /// The record as this output prints it (no trailing newline).
    pub fn render(&self, record: &Record) -> String {
        if self.json {
            record.json()
        } else {
            record.human()
        }
    }

    /// Prints the record on stdout and flushes, so a reader sees it at once.
    /// Write errors (a closed pipe) are ignored: there is no one to tell.
    pub fn print(&self, record: &Record) {
        print_line(&self.render(record));
    }
}

/// Prints one line on stdout and flushes; errors such as a closed pipe are ignored.
pub fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::Ipv6Addr;
    use tnlm_core::message::ListResponse;

    #[test]
    fn json_objects_have_the_documented_fields() {
        let time = Record::Time { request_id: 7, time: "2026-01-01T00:00:00+08:00".into() };
        let value: serde_json::Value = serde_json::from_str(&time.json()).unwrap();
        assert_eq!(value, serde_json::json!({"type":"time","request_id":7,"time":"2026-01-01T00:00:00+08:00"}));
        let delivery =
            Record::delivery(&Delivery { to: 9, status: DeliveryStatus::NoSuchClient, reason: "no".into() }, Some(4));
        let value: serde_json::Value = serde_json::from_str(&delivery.json()).unwrap();
        assert_eq!(value["type"], "delivery");
        assert_eq!(value["delivered"], false);
        assert_eq!(value["status"], "no_such_client");
        assert_eq!(value["from"], 4);
    }

    #[test]
    fn ipv6_senders_are_bracketed() {
        let f = Forwarded { from: 2, from_ip: Ipv6Addr::LOCALHOST.into(), from_port: 5, text: "a\"b\n你好".into() };
        let record = Record::forwarded(&f);
        let value: serde_json::Value = serde_json::from_str(&record.json()).unwrap();
        assert_eq!(value["from_addr"], "[::1]:5");
        assert_eq!(value["text"], "a\"b\n你好");
        assert_eq!(record.human(), "[message from 2 ([::1]:5)] a\"b\\n你好");
    }

    #[test]
    fn control_characters_from_the_network_are_escaped_for_people() {
        let hostile = "\u{1b}]0;owned\u{7}\u{1b}[2J\rfake\tline\nmessage delivered to client 9\u{9b}31m\u{7f}";
        let f = Forwarded { from: 2, from_ip: "127.0.0.1".parse().unwrap(), from_port: 5, text: hostile.into() };
        let record = Record::forwarded(&f);
        let shown = record.human();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(
            shown,
            "[message from 2 (127.0.0.1:5)] \\u{1b}]0;owned\\u{7}\\u{1b}[2J\\rfake\\tline\\nmessage delivered to \
             client 9\\u{9b}31m\\u{7f}"
        );
        // JSON keeps the text exactly, escaped the JSON way (DEL and C1 too).
        let value: serde_json::Value = serde_json::from_str(&record.json()).unwrap();
        assert_eq!(value["text"], hostile);
        assert!(!record.json().chars().any(char::is_control), "{:?}", record.json());
        assert!(record.json().contains(r"\u001b]0;owned\u0007") && record.json().contains(r"\u009b31m\u007f"));
        // Everything else the server sends is text from the network too.
        for record in [
            Record::Name { name: "evil\u{1b}[31m".into() },
            Record::Time { request_id: 1, time: "t\u{1b}[2J".into() },
            Record::Shutdown { reason: "bye\u{1b}c".into() },
            Record::Error { code: 1, name: "x", text: "e\u{1b}[A".into() },
            Record::delivery(
                &Delivery { to: 1, status: DeliveryStatus::NoSuchClient, reason: "r\u{1b}[K".into() },
                None,
            ),
        ] {
            let shown = record.human();
            assert!(!shown.contains('\u{1b}') && shown.contains("\\u{1b}"), "{shown:?}");
        }
        assert_eq!(printable("plain 你好 \\ text"), "plain 你好 \\ text");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn list_table_marks_you() {
        let info = |id, port| ClientInfo { id, ip: "127.0.0.1".parse().unwrap(), port, since: "t".into() };
        let message = Message::ListResponse(ListResponse { clients: vec![info(1, 50000), info(2, 50001)] });
        let record = Record::from_message(3, &message, Some(2)).unwrap();
        let text = record.human();
        assert!(text.starts_with("2 clients connected:"), "{text}");
        assert!(text.lines().nth(3).unwrap().ends_with("(you)"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&record.json()).unwrap();
        assert_eq!(value["clients"][1], serde_json::json!({"id":2,"ip":"127.0.0.1","port":50001,"since":"t"}));
    }
}
