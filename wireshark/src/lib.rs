//! # tnlm-wireshark — the TNLM Wireshark dissector, generated from `tnlm-core`
//!
//! [`generate`] renders `wireshark/tnlm.lua`: a Lua dissector for Wireshark 4.0 (Lua 5.2)
//! through 4.4+ (Lua 5.4). Every protocol constant in it — magic, version, header layout,
//! type codes and names, classes, payload layouts, delivery status and error code tables,
//! default port and payload limit — is taken from [`tnlm_core`] at generation time, so the
//! dissector cannot drift from the encoder (core's own tests check its schema against the
//! real encoder, and this crate's tests check the dissector against both).
//!
//! The generated file has two parts:
//! 1. data tables rendered here from [`tnlm_core::schema`] (fields, messages, codes);
//! 2. a fixed engine (`src/engine.lua`) that walks those tables. It holds no protocol
//!    constant of its own, only the vocabulary of the schema (`Wire` kinds, header names).
//!
//! Presentation choices that are not protocol facts live here: field labels (derived from
//! the field names), the Info column summary of each payload, and expert info texts.

pub mod install;

use std::collections::BTreeMap;
use std::fmt::Write;

use tnlm_core::message::DeliveryStatus;
use tnlm_core::schema::{self, Field, Sender, Wire};
use tnlm_core::{Class, ErrorCode, TypeCode};

/// The engine: hand-written Lua that interprets the generated tables.
const ENGINE: &str = include_str!("engine.lua");

/// The path of the committed dissector, relative to the workspace root.
pub const LUA_PATH: &str = "wireshark/tnlm.lua";

/// The command that regenerates [`LUA_PATH`].
pub const REGENERATE: &str = "cargo run -p tnlm-wireshark";

/// Names of the header fields the engine relies on (they come from `schema::HEADER`).
const HEADER_NAMES: [&str; 7] = ["magic", "version", "type", "class", "reserved", "request_id", "length"];

/// The Info column (and tree) summary of each payload, after `<letter> <class>[ #id]`.
/// `{field}` is replaced by that field's display value (a list shows its element count).
/// Every non-empty payload in the catalog must have one (a test checks).
const SUMMARIES: &[(&str, &str)] = &[
    ("SendRequest", " to {to}: {text}"),
    ("TimeResponse", ": {time}"),
    ("NameResponse", ": {name}"),
    ("ListResponse", ": {clients}"),
    ("Delivery", ": {status} to {to} ({reason})"),
    ("Forwarded", " from {from}: {text}"),
    ("Hello", ": client {client_id} on {server}, version {version}, max payload {max_payload}"),
    ("Shutdown", ": {reason}"),
    ("ErrorBody", ": {code}: {text}"),
    // List elements, by the element name of `Wire::List`.
    ("client", " {id}: {ip} port {port}, since {since}"),
];

/// Expert info: the engine's role name, the error code it corresponds to (whose name
/// becomes the abbreviation `tnlm.expert.<name>`), group, severity and summary.
const EXPERTS: &[(&str, Option<ErrorCode>, &str, &str, &str)] = &[
    ("bad_magic", Some(ErrorCode::BadMagic), "MALFORMED", "ERROR", "Bad magic: not the start of a TNLM frame"),
    ("unsupported_version", Some(ErrorCode::UnsupportedVersion), "PROTOCOL", "ERROR", "Unsupported protocol version"),
    ("oversize", Some(ErrorCode::Oversize), "MALFORMED", "ERROR", "Payload length exceeds the maximum payload"),
    ("malformed", Some(ErrorCode::MalformedPayload), "MALFORMED", "ERROR", "Payload does not decode"),
    ("unknown_type", Some(ErrorCode::UnknownType), "PROTOCOL", "WARN", "Unknown type code or class"),
    ("unexpected", Some(ErrorCode::UnexpectedFrame), "PROTOCOL", "WARN", "Known type and class that name no message"),
    ("reserved", Some(ErrorCode::InvalidHeader), "PROTOCOL", "WARN", "Reserved header byte is not zero"),
    ("error_frame", None, "RESPONSE_CODE", "NOTE", "Error frame"),
    ("undelivered", None, "RESPONSE_CODE", "NOTE", "Message not delivered"),
    ("unknown_code", None, "RESPONSE_CODE", "NOTE", "Unknown status or error code (from a newer peer?)"),
    ("no_response", None, "SEQUENCE", "WARN", "No answer in this capture"),
];

/// Fields the dissector computes rather than reads (Wireshark shows them in brackets):
/// key (filter without `tnlm.`), kind, base or frame type, label and blurb.
const GENERATED_FIELDS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "response_in",
        "framenum",
        "base.NONE, frametype.RESPONSE",
        "Response in",
        "The frame with the answer to this request (or server ping or forwarded message)",
    ),
    (
        "request_in",
        "framenum",
        "base.NONE, frametype.REQUEST",
        "Request in",
        "The frame with the request (or server ping or forwarded message) this answers",
    ),
    ("response_time", "relative_time", "", "Response time", "Time from the request to this answer"),
    ("conn.client_id", "uint32", "base.DEC", "Connection's client ID", "This connection's client id, from its hello"),
    (
        "conn.server",
        "string",
        "base.UNICODE",
        "Connection's server",
        "The server name this connection's hello announced",
    ),
    ("trace", "none", "", "Message trace", "A message followed from its M request to the delivery response"),
    (
        "trace.key",
        "string",
        "base.UNICODE",
        "Trace key",
        "The sender's client id, a dot, its request id, @, the server's address and port (e.g. 1.3@127.0.0.1:4579): the same on every frame of one message's trace",
    ),
    ("trace.request_in", "framenum", "base.NONE, frametype.REQUEST", "M request in", "The sender's M request"),
    (
        "trace.indication_in",
        "framenum",
        "base.NONE, frametype.NONE",
        "M indication in",
        "The M indication that forwarded the message to its target",
    ),
    (
        "trace.delivery_id",
        "uint32",
        "base.DEC",
        "Delivery ID",
        "The id of the forwarded message (the M indication's request id)",
    ),
    ("trace.ack_in", "framenum", "base.NONE, frametype.ACK", "Ack in", "The target's A ack"),
    (
        "trace.response_in",
        "framenum",
        "base.NONE, frametype.RESPONSE",
        "Delivery response in",
        "The M response that told the sender the outcome",
    ),
    ("trace.forward_time", "relative_time", "", "Forward time", "Time from the M request to the M indication"),
    ("trace.time", "relative_time", "", "Delivery time", "End to end: time from the M request to its M response"),
];

/// One `ProtoField` of the dissector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuaField {
    /// The display filter name, e.g. `tnlm.msg.text`.
    pub abbrev: String,
    /// The label shown in the tree, e.g. `Text`.
    pub label: String,
    /// The Wireshark field type, e.g. `uint32` (the `ProtoField` constructor's name).
    pub kind: &'static str,
    /// A one-line description (the field's blurb).
    pub blurb: String,
    /// The Lua constructor call.
    lua: String,
}

/// Every field the dissector registers, in registration order, one per filter name.
///
/// Fields of several payloads that share a `filter` in the schema become one field; they
/// must agree on the wire type (a test checks, and this function panics otherwise).
pub fn fields() -> Vec<LuaField> {
    let mut out = Fields::default();
    for h in schema::HEADER {
        let abbrev = format!("tnlm.{}", h.name);
        let label = label(h.name);
        let blurb = h.meaning.replace('`', "");
        let (kind, args) = match (h.name, h.size) {
            ("magic", _) => ("string", "base.ASCII".to_string()),
            ("type", _) => ("char", "base.HEX, TYPE_NAMES".to_string()),
            ("class", _) => ("uint8", "base.DEC, CLASS_NAMES".to_string()),
            ("reserved", 1) => ("uint8", "base.HEX".to_string()),
            (_, 1) => ("uint8", "base.DEC".to_string()),
            (_, 2) => ("uint16", "base.DEC".to_string()),
            (_, 4) => ("uint32", "base.DEC".to_string()),
            (name, size) => panic!("header field {name} has unsupported size {size}"),
        };
        out.push(h.name, &abbrev, &label, kind, &args, &blurb);
    }
    out.push("header", "tnlm.header", "Header", "none", "", "The fixed header");
    out.push("payload", "tnlm.payload", "Payload", "none", "", "The bincode payload");
    out.push("data", "tnlm.data", "Data", "bytes", "", "Bytes that could not be interpreted");
    out.push(
        "string.length",
        "tnlm.string.length",
        "Length",
        "uint64",
        "base.DEC",
        &Wire::String.describe().replace(" + UTF-8 bytes", ": the byte length of the string that follows"),
    );
    for m in schema::catalog() {
        out.payload_fields(m.fields);
    }
    for (key, kind, base, label, blurb) in GENERATED_FIELDS {
        out.push(key, &format!("tnlm.{key}"), label, kind, base, blurb);
    }
    out.list
}

/// The payload types in which each filter appears (list elements count as their list's).
fn users() -> BTreeMap<&'static str, Vec<&'static str>> {
    fn walk(payload: &'static str, fields: &[Field], out: &mut BTreeMap<&'static str, Vec<&'static str>>) {
        for f in fields {
            let users = out.entry(f.filter).or_default();
            if !users.contains(&payload) {
                users.push(payload);
            }
            if let Wire::List(_, item) = f.wire {
                walk(payload, item, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    for m in schema::catalog() {
        walk(m.payload, m.fields, &mut out);
    }
    out
}

#[derive(Default)]
struct Fields {
    list: Vec<LuaField>,
    keys: BTreeMap<String, usize>,
}

impl Fields {
    /// Adds a field; `base` and `names` (a value string table) only for integer kinds.
    fn push(&mut self, key: &str, abbrev: &str, label: &str, kind: &'static str, base: &str, blurb: &str) {
        let (a, l, b) = (lua_str(abbrev), lua_str(label), lua_str(blurb));
        let (base, names) = base.split_once(", ").unwrap_or((base, "nil"));
        let lua = match kind {
            "none" | "ipv4" | "ipv6" | "relative_time" => format!("ProtoField.{kind}({a}, {l}, {b})"),
            "bytes" => format!("ProtoField.bytes({a}, {l}, nil, {b})"),
            "string" => format!("ProtoField.string({a}, {l}, {base}, {b})"),
            _ => format!("ProtoField.{kind}({a}, {l}, {base}, {names}, nil, {b})"),
        };
        let field =
            LuaField { abbrev: abbrev.to_string(), label: label.to_string(), kind, blurb: blurb.to_string(), lua };
        match self.keys.get(key) {
            Some(&at) => assert_eq!(
                self.list[at], field,
                "fields sharing the filter `{abbrev}` must have the same wire type and name"
            ),
            None => {
                self.keys.insert(key.to_string(), self.list.len());
                self.list.push(field);
            }
        }
    }

    fn payload_fields(&mut self, fields: &[Field]) {
        let users = users();
        for f in fields {
            let abbrev = format!("tnlm.{}", f.filter);
            let label = label(f.name);
            let used_in = users.get(f.filter).map_or_else(String::new, |u| u.join(", "));
            let blurb = format!("{}; in {used_in}", f.wire.describe().replace('`', ""));
            match f.wire {
                Wire::U8 => self.push(f.filter, &abbrev, &label, "uint8", "base.DEC", &blurb),
                Wire::U16 => self.push(f.filter, &abbrev, &label, "uint16", "base.DEC", &blurb),
                Wire::U32 => self.push(f.filter, &abbrev, &label, "uint32", "base.DEC", &blurb),
                Wire::String => self.push(f.filter, &abbrev, &label, "string", "base.UNICODE", &blurb),
                Wire::DeliveryStatus => {
                    self.push(f.filter, &abbrev, &label, "uint16", "base.DEC, STATUS_NAMES", &blurb)
                }
                Wire::ErrorCode => self.push(f.filter, &abbrev, &label, "uint16", "base.DEC, ERROR_NAMES", &blurb),
                Wire::IpAddr => {
                    let (v4, v6) = (&schema::IP_FAMILIES[0], &schema::IP_FAMILIES[1]);
                    let v4_blurb = format!("{} address (family {}); in {used_in}", v4.1, v4.0);
                    self.push(f.filter, &abbrev, &label, "ipv4", "", &v4_blurb);
                    let v6_blurb = format!("{} address (family {}); in {used_in}", v6.1, v6.0);
                    let (v6_key, v6_abbrev, v6_label) =
                        (format!("{}v6", f.filter), format!("{abbrev}v6"), format!("{label}v6"));
                    self.push(&v6_key, &v6_abbrev, &v6_label, "ipv6", "", &v6_blurb);
                    let family = format!("{}.family", f.filter);
                    let family_label = format!("{label} family");
                    let family_abbrev = format!("{abbrev}.family");
                    self.push(&family, &family_abbrev, &family_label, "uint32", "base.DEC, IP_FAMILY_NAMES", &blurb);
                }
                Wire::List(item, item_fields) => {
                    self.push(f.filter, &abbrev, &label, "uint64", "base.DEC", &blurb);
                    let item_blurb = format!("One {item} entry (a subtree); in {used_in}");
                    self.push(item, &format!("tnlm.{item}"), &label_of_item(item), "none", "", &item_blurb);
                    self.payload_fields(item_fields);
                }
            }
        }
    }
}

/// A field label from its snake_case name: `from_ip` becomes `From IP`.
fn label(name: &str) -> String {
    let words: Vec<String> = name
        .split('_')
        .enumerate()
        .map(|(n, word)| match word {
            "ip" => "IP".to_string(),
            "id" => "ID".to_string(),
            _ if n == 0 => capitalize(word),
            _ => word.to_string(),
        })
        .collect();
    words.join(" ")
}

fn label_of_item(item: &str) -> String {
    capitalize(item)
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// A Lua string literal (double-quoted) for any text; non-ASCII bytes pass through.
fn lua_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\{:03}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn summary_template(name: &str) -> Option<&'static str> {
    SUMMARIES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Compiles a summary template into a Lua function of the display values table `v`.
fn compile_summary(owner: &str, template: &str, fields: &[Field]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(lua_str(&rest[..open]));
        }
        let close = rest[open..].find('}').map(|c| open + c);
        let close = close.unwrap_or_else(|| panic!("summary of {owner}: unclosed `{{` in {template:?}"));
        let name = &rest[open + 1..close];
        assert!(
            fields.iter().any(|f| f.name == name),
            "summary of {owner} names `{name}`, which is not one of its fields"
        );
        parts.push(format!("v[{}]", lua_str(name)));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(lua_str(rest));
    }
    format!("function(v) return {} end", parts.join(" .. "))
}

/// The Lua table describing `fields` for the engine (one entry per field, in wire order).
fn render_fields(out: &mut String, fields: &[Field], indent: usize) {
    let pad = " ".repeat(indent);
    out.push_str("{\n");
    for f in fields {
        let name = lua_str(f.name);
        let key = lua_str(f.filter);
        match f.wire {
            Wire::U8 | Wire::U16 | Wire::U32 | Wire::DeliveryStatus | Wire::ErrorCode => {
                let (wire, size) = match f.wire {
                    Wire::U8 => ("uint", 1),
                    Wire::U16 => ("uint", 2),
                    Wire::U32 => ("uint", 4),
                    Wire::DeliveryStatus => ("status", 2),
                    _ => ("error", 2),
                };
                debug_assert_eq!(f.wire.fixed_size(), Some(size));
                let _ = writeln!(out, "{pad}  {{ name = {name}, wire = \"{wire}\", size = {size}, f = F[{key}] }},");
            }
            Wire::String => {
                let _ = writeln!(out, "{pad}  {{ name = {name}, wire = \"string\", f = F[{key}] }},");
            }
            Wire::IpAddr => {
                let v6 = lua_str(&format!("{}v6", f.filter));
                let family = lua_str(&format!("{}.family", f.filter));
                let _ = writeln!(
                    out,
                    "{pad}  {{ name = {name}, wire = \"ip\", f = F[{key}], f6 = F[{v6}], family = F[{family}] }},"
                );
            }
            Wire::List(item, item_fields) => {
                let summary =
                    summary_template(item).map_or_else(|| "nil".to_string(), |t| compile_summary(item, t, item_fields));
                let min_size: usize = item_fields.iter().map(|f| min_size(f.wire)).sum();
                assert!(min_size > 0, "list element {item} can be empty; the dissector needs a lower bound");
                let _ = write!(
                    out,
                    "{pad}  {{ name = {name}, wire = \"list\", f = F[{key}], item = F[{}], label = {}, min_size = {min_size},\n{pad}    summary = {summary},\n{pad}    fields = ",
                    lua_str(item),
                    lua_str(&label_of_item(item)),
                );
                render_fields(out, item_fields, indent + 4);
                let _ = writeln!(out, "{pad}  }},");
            }
        }
    }
    let _ = write!(out, "{pad}}}");
}

/// The fewest bytes a value of this wire type takes.
fn min_size(wire: Wire) -> usize {
    match wire {
        Wire::String | Wire::List(..) => 8,
        Wire::IpAddr => 4 + schema::IP_FAMILIES.iter().map(|f| f.2).min().unwrap_or(4),
        other => other.fixed_size().unwrap_or(1),
    }
}

/// A message kind as the engine keys it: `type * 4 + class`.
fn kind(type_code: TypeCode, class: Class) -> u32 {
    u32::from(type_code as u8) * 4 + u32::from(class as u8)
}

fn kind_comment((type_code, class): (TypeCode, Class)) -> String {
    format!("{} {}", type_code.letter(), class.name())
}

fn sender_index(sender: Sender) -> u8 {
    match sender {
        Sender::Client => 0,
        Sender::Server => 1,
    }
}

/// The name of `payload`'s field `name`; panics when the catalog has no such field
/// (the engine's tracking reads it).
fn field_of(type_code: TypeCode, class: Class, name: &'static str) -> String {
    let message = schema::lookup(type_code, class).unwrap_or_else(|| panic!("no {type_code:?} {class:?} message"));
    assert!(
        message.fields.iter().any(|f| f.name == name),
        "{} has no field `{name}`; the dissector's tracking needs it",
        message.payload
    );
    lua_str(name)
}

/// Who asks and who answers (tnlm_core::schema::EXCHANGES), and the roles the message
/// trace follows, as Lua tables keyed by kind (`type * 4 + class`).
fn render_exchanges(out: &mut String) {
    let _ = writeln!(
        out,
        "-- Senders, and the wording of code kinds in expert info.\nlocal SENDER = {{ client = {}, server = {} }}",
        sender_index(Sender::Client),
        sender_index(Sender::Server)
    );
    out.push_str("local CODE_KINDS = { status = \"delivery status\", error = \"error code\" }\n\n");
    out.push_str("-- Exchanges (tnlm_core::schema::EXCHANGES), keyed by kind = type * 4 + class.\n");
    out.push_str("-- ASKS[kind]: who sends this frame that expects an answer.\nlocal ASKS = {\n");
    for e in schema::EXCHANGES {
        let (t, c) = e.ask;
        let _ = writeln!(out, "  [{}] = {}, -- {}", kind(t, c), sender_index(e.opener), kind_comment(e.ask));
    }
    out.push_str("}\n-- ANSWERS[kind]: the asks (by kind) this frame answers; any_request: every client request.\n");
    out.push_str("local ANSWERS = {}\n");
    let mut answers: BTreeMap<u32, (String, Vec<u32>, Vec<Sender>)> = BTreeMap::new();
    for e in schema::EXCHANGES {
        let entry =
            answers.entry(kind(e.answer.0, e.answer.1)).or_insert_with(|| (kind_comment(e.answer), vec![], vec![]));
        entry.1.push(kind(e.ask.0, e.ask.1));
        entry.2.push(e.opener);
    }
    let error_kind = kind(schema::ERROR_ANSWERS.0, schema::ERROR_ANSWERS.1);
    answers
        .entry(error_kind)
        .or_insert_with(|| (kind_comment(schema::ERROR_ANSWERS), vec![], vec![]))
        .2
        .push(Sender::Client);
    let mut senders = String::new();
    for (answer, (comment, asks, openers)) in &answers {
        let mut items: Vec<String> = asks.iter().map(|a| format!("[{a}] = true")).collect();
        if *answer == error_kind {
            items.push("any_request = true".to_string());
        }
        let _ = writeln!(out, "ANSWERS[{answer}] = {{ {} }} -- {comment}", items.join(", "));
        // The answer comes from the other side than its asks; nil when they differ.
        let first = openers[0];
        if openers.iter().all(|o| *o == first) {
            let answerer = if first == Sender::Client { Sender::Server } else { Sender::Client };
            let _ = writeln!(senders, "  [{answer}] = {}, -- {comment}", sender_index(answerer));
        }
    }
    out.push_str("-- ANSWER_SENDER[kind]: who sends this answer (absent: either side, the port tells).\n");
    let _ = writeln!(out, "local ANSWER_SENDER = {{\n{senders}}}");
    let (hello, request, indication, ack) = (
        (TypeCode::Hello, Class::Indication),
        (TypeCode::Message, Class::Request),
        (TypeCode::Message, Class::Indication),
        (TypeCode::Ack, Class::Response),
    );
    assert!(schema::EXCHANGES.iter().any(|e| e.ask == request), "M requests must be answered");
    assert!(schema::EXCHANGES.iter().any(|e| e.ask == indication && e.answer == ack), "A must answer M indications");
    out.push_str("-- The message trace: an M request, the M indication forwarding it, the A ack, the M response.\n");
    let _ = writeln!(
        out,
        "local TRACE = {{\n  hello = {}, client_id = {}, server = {},\n  request = {}, to = {}, text = {},\n  indication = {}, from = {}, ack = {},\n}}\n",
        kind(hello.0, hello.1),
        field_of(hello.0, hello.1, "client_id"),
        field_of(hello.0, hello.1, "server"),
        kind(request.0, request.1),
        field_of(request.0, request.1, "to"),
        field_of(request.0, request.1, "text"),
        kind(indication.0, indication.1),
        field_of(indication.0, indication.1, "from"),
        kind(ack.0, ack.1),
    );
    let _ = field_of(indication.0, indication.1, "text");
}

/// Renders the complete Lua dissector.
pub fn generate() -> String {
    let header_names: Vec<&str> = schema::HEADER.iter().map(|h| h.name).collect();
    assert_eq!(header_names, HEADER_NAMES, "the engine expects these header fields; update engine.lua");

    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- tnlm.lua: Wireshark dissector for TNLM (\"Time, Name, List, Message\"), protocol version {}.",
        tnlm_core::VERSION
    );
    out.push_str(
        "--\n\
         -- GENERATED FILE, DO NOT EDIT. It is rendered from tnlm-core's schema by\n",
    );
    let _ = writeln!(out, "--   {REGENERATE}");
    out.push_str(
        "-- (sources: core/src/{frame,message,schema,error}.rs and wireshark/src/).\n\
         --\n\
         -- Works with Wireshark 4.0 (Lua 5.2) through 4.4+ (Lua 5.4). Install: copy this file to\n\
         -- your personal Lua plugins folder, or run `tshark -X lua_script:tnlm.lua ...`.\n\
         -- See wireshark/README.md for the filter fields.\n\n",
    );

    // Constants.
    out.push_str("local tnlm = Proto(\"tnlm\", \"TNLM Protocol\")\n\n");
    out.push_str("-- Protocol constants (tnlm_core::frame).\n");
    out.push_str("local K = {\n");
    let _ = writeln!(out, "  magic = {},", lua_str(std::str::from_utf8(&tnlm_core::MAGIC).unwrap_or("TNLM")));
    let _ = writeln!(out, "  version = {},", tnlm_core::VERSION);
    let _ = writeln!(out, "  header_len = {},", tnlm_core::HEADER_LEN);
    let _ = writeln!(out, "  default_port = {},", tnlm_core::DEFAULT_PORT);
    let _ = writeln!(out, "  default_max_payload = {},", tnlm_core::DEFAULT_MAX_PAYLOAD);
    let _ = writeln!(out, "  status_delivered = {},", DeliveryStatus::Delivered.code());
    out.push_str("}\n\n");

    out.push_str("-- The fixed header (tnlm_core::schema::HEADER), in wire order.\nlocal HEADER = {\n");
    for h in schema::HEADER {
        let kind = if h.name == "magic" { "string" } else { "uint" };
        let _ = writeln!(
            out,
            "  {{ name = {}, offset = {}, size = {}, kind = \"{kind}\" }},",
            lua_str(h.name),
            h.offset,
            h.size
        );
    }
    out.push_str("}\n\n");

    out.push_str("-- Type codes (tnlm_core::TypeCode): byte -> name.\nlocal TYPE_NAMES = {\n");
    for t in TypeCode::ALL {
        let _ = writeln!(out, "  [0x{:02X}] = {}, -- '{}'", t as u8, lua_str(t.name()), t.letter());
    }
    out.push_str("}\n\n-- Classes (tnlm_core::Class): byte -> name, and name -> byte.\nlocal CLASS_NAMES = {\n");
    for c in Class::ALL {
        let _ = writeln!(out, "  [{}] = {},", c as u8, lua_str(c.name()));
    }
    out.push_str("}\nlocal CLASS = {\n");
    for c in Class::ALL {
        let _ = writeln!(out, "  {} = {},", c.name(), c as u8);
    }
    out.push_str("}\n\n-- Delivery status codes (tnlm_core::message::DeliveryStatus).\nlocal STATUS_NAMES = {\n");
    for s in DeliveryStatus::ALL {
        let _ = writeln!(out, "  [{}] = {},", s.code(), lua_str(s.name()));
    }
    out.push_str("}\n\n-- Error codes (tnlm_core::ErrorCode).\nlocal ERROR_NAMES = {\n");
    for e in ErrorCode::ALL {
        let _ = writeln!(out, "  [{}] = {},", e.code(), lua_str(e.name()));
    }
    out.push_str("}\n\n-- IP address families (tnlm_core::schema::IP_FAMILIES): variant -> name, and sizes.\n");
    out.push_str("local IP_FAMILY_NAMES = {\n");
    for (variant, name, _) in schema::IP_FAMILIES {
        let _ = writeln!(out, "  [{variant}] = {},", lua_str(name));
    }
    out.push_str("}\nlocal IP_FAMILY_SIZES = {\n");
    for (variant, _, size) in schema::IP_FAMILIES {
        let _ = writeln!(out, "  [{variant}] = {size},");
    }
    out.push_str("}\n\n");

    // Fields.
    out.push_str("-- Fields: F[<filter without \"tnlm.\">] (tnlm_core::schema filters).\nlocal F = {}\n");
    let all = fields();
    for f in &all {
        let key = f.abbrev.trim_start_matches("tnlm.");
        let _ = writeln!(out, "F[{}] = {}", lua_str(key), f.lua);
    }
    out.push_str("tnlm.fields = {\n");
    for f in &all {
        let _ = writeln!(out, "  F[{}],", lua_str(f.abbrev.trim_start_matches("tnlm.")));
    }
    out.push_str("}\n\n");

    // Expert info.
    out.push_str("-- Expert info, by role.\nlocal EXPERT = {\n");
    for (role, code, group, severity, text) in EXPERTS {
        let abbrev = format!("tnlm.expert.{}", code.map_or(*role, ErrorCode::name));
        let _ = writeln!(
            out,
            "  {role} = ProtoExpert.new({}, {}, expert.group.{group}, expert.severity.{severity}),",
            lua_str(&abbrev),
            lua_str(text)
        );
    }
    out.push_str("}\ntnlm.experts = {\n");
    for (role, ..) in EXPERTS {
        let _ = writeln!(out, "  EXPERT.{role},");
    }
    out.push_str("}\n\n");

    render_exchanges(&mut out);

    // Messages.
    out.push_str("-- Messages (tnlm_core::schema::catalog): MESSAGES[type byte][class byte].\nlocal MESSAGES = {}\n");
    for t in TypeCode::ALL {
        let _ = writeln!(out, "MESSAGES[0x{:02X}] = {{}} -- {}", t as u8, t.name());
    }
    for m in schema::catalog() {
        let summary =
            summary_template(m.payload).map_or_else(|| "nil".to_string(), |t| compile_summary(m.payload, t, m.fields));
        let _ = write!(
            out,
            "MESSAGES[0x{:02X}][{}] = {{ payload = {}, summary = {summary},\n  fields = ",
            m.type_code as u8,
            m.class as u8,
            lua_str(m.payload)
        );
        render_fields(&mut out, m.fields, 2);
        out.push_str(" }\n");
    }
    out.push('\n');
    out.push_str(ENGINE);
    out
}

/// The path of the committed coloring rules, relative to the workspace root.
pub const COLORFILTERS_PATH: &str = "wireshark/tnlm.colorfilters";

/// Coloring rules for Wireshark (*View → Coloring Rules… → Import*), in Wireshark's
/// `colorfilters` format: `@name@filter@[background][foreground]`, 16-bit RGB.
/// The filters name the dissector's fields and core's codes, so they stay valid.
pub fn colorfilters() -> String {
    let error = TypeCode::Error.letter();
    let delivered = DeliveryStatus::Delivered.code();
    let indication = Class::Indication as u8;
    let black = "[0,0,0]";
    let rules = [
        ("TNLM error", format!("tnlm.type == '{error}'"), "[65535,50372,50372]"),
        ("TNLM failed delivery", format!("tnlm.status && tnlm.status != {delivered}"), "[65535,55512,40092]"),
        ("TNLM unanswered", "tnlm.expert.no_response".to_string(), "[65535,62965,40092]"),
        ("TNLM indication", format!("tnlm.class == {indication}"), "[50372,59110,65535]"),
    ];
    let mut out = String::from(
        "# Coloring rules for TNLM, generated by `cargo run -p tnlm-wireshark` from tnlm-core.\n\
         # Import: View > Coloring Rules... > Import..., pick this file, OK. Rules above win.\n",
    );
    for (name, filter, background) in rules {
        let _ = writeln!(out, "@{name}@{filter}@{background}{black}");
    }
    out
}

/// The Markdown table of filter fields for `wireshark/README.md`.
pub fn fields_markdown() -> String {
    let mut out = String::from("| filter | type | label | description |\n| --- | --- | --- | --- |\n");
    for f in fields() {
        let _ = writeln!(out, "| `{}` | {} | {} | {} |", f.abbrev, f.kind, f.label, f.blurb);
    }
    out
}

/// Where the field table starts in `wireshark/README.md`.
pub const README_BEGIN: &str = "<!-- BEGIN GENERATED: tnlm_wireshark::fields_markdown -->\n";
/// Where the field table ends in `wireshark/README.md`.
pub const README_END: &str = "<!-- END GENERATED -->";

/// `readme` with the text between [`README_BEGIN`] and [`README_END`] replaced by
/// [`fields_markdown`], or `None` if the markers are missing.
pub fn splice_readme(readme: &str) -> Option<String> {
    let (head, rest) = readme.split_once(README_BEGIN)?;
    let (_, tail) = rest.split_once(README_END)?;
    Some(format!("{head}{README_BEGIN}{}{README_END}{tail}", fields_markdown()))
}

/// The Payload types that have an Info summary (for tests).
pub fn summarized() -> impl Iterator<Item = &'static str> {
    SUMMARIES.iter().map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_well() {
        assert_eq!(label("from_ip"), "From IP");
        assert_eq!(label("client_id"), "Client ID");
        assert_eq!(label("max_payload"), "Max payload");
        assert_eq!(label("text"), "Text");
    }

    #[test]
    fn lua_strings_escape() {
        assert_eq!(lua_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\001\"");
        assert_eq!(lua_str("héllo"), "\"héllo\"");
    }

    #[test]
    fn summaries_compile() {
        let f = [Field { name: "to", filter: "msg.to", wire: Wire::U32 }];
        assert_eq!(compile_summary("x", " to {to}!", &f), "function(v) return \" to \" .. v[\"to\"] .. \"!\" end");
    }

    #[test]
    #[should_panic(expected = "not one of its fields")]
    fn summary_with_unknown_field_panics() {
        compile_summary("x", "{nope}", &[]);
    }
}
