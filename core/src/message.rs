//! Every TNLM message as a Rust type, and the table that ties each one to its
//! type code, class and payload layout.
//!
//! The table in `messages!` is the single place where a message is defined:
//! the enum [`Message`], its header mapping, its payload codec and the
//! [`schema`](crate::schema) description all come from it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_repr::{Deserialize_repr, Serialize_repr};

use crate::codec;
use crate::error::ErrorCode;
use crate::header::{Class, TypeCode};
use crate::layout::{Describe, Field, Wire};

/// `T` request: what time is it on the server? (empty payload)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRequest;

/// `N` request: what is the server's name? (empty payload)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRequest;

/// `L` request: which clients are connected? (empty payload)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRequest;

/// `M` request: forward `text` to the client with id `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    /// The target client's id, as shown by `L`.
    pub to: u32,
    /// The text to forward (UTF-8, any characters).
    pub text: String,
}

/// `T` response: the server's local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeResponse {
    /// RFC 3339 with the server's UTC offset, e.g. `2026-11-25T12:00:00.123+08:00`.
    /// Sent as text, not as an integer, so no clock epoch or time zone is implied.
    pub time: String,
}

/// `N` response: the server's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameResponse {
    /// The host name, or the name given with `--name`.
    pub name: String,
}

/// One connected client, as listed in an `L` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Server-assigned id, unique within one server run.
    pub id: u32,
    /// The client's IP address as the server sees it (IPv4 shown as IPv4).
    pub ip: IpAddr,
    /// The client's TCP source port.
    pub port: u16,
    /// When it connected, RFC 3339 with the server's UTC offset.
    pub since: String,
}

impl ClientInfo {
    /// Bytes this entry takes in an `L` response: 4 (id) + 4 (family) + 4 or
    /// 16 (address) + 2 (port) + 8 (string length) + the `since` text.
    pub fn encoded_len(&self) -> usize {
        let address = if self.ip.is_ipv4() { 4 } else { 16 };
        4 + 4 + address + 2 + 8 + self.since.len()
    }
}

/// `L` response: the connected clients, in ascending id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    /// The clients.
    pub clients: Vec<ClientInfo>,
}

impl ListResponse {
    /// The response a server sends: `clients` (in ascending id order) up to
    /// the last one that still fits in a payload of `max_payload` bytes, so
    /// the frame never exceeds the limit announced in the hello. With the
    /// 64 KiB default that is at least 1,110 clients (59-byte IPv6 entries).
    pub fn fitting(clients: impl IntoIterator<Item = ClientInfo>, max_payload: u32) -> ListResponse {
        let mut room = (max_payload as usize).saturating_sub(8); // the u64 count
        let clients = clients
            .into_iter()
            .take_while(|client| match room.checked_sub(client.encoded_len()) {
                Some(left) => {
                    room = left;
                    true
                }
                None => false,
            })
            .collect();
        ListResponse { clients }
    }
}

/// The outcome of an `M` request.
///
/// The numeric values are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize_repr, Deserialize_repr)]
#[repr(u16)]
pub enum DeliveryStatus {
    /// The target's client acknowledged it: it has the message.
    Delivered = 0,
    /// No client with that id is connected (or ever was).
    NoSuchClient = 1,
    /// The target disconnected before the message could be handed over.
    TargetGone = 2,
    /// The target is not reading and its outbound queue is full.
    QueueFull = 3,
    /// The forwarded message (text plus sender details) would exceed the payload limit.
    TooLarge = 4,
    /// The target did not acknowledge the message within the server's ack timeout
    /// (e.g. its cable was pulled): it may or may not have arrived.
    NotAcknowledged = 5,
}

impl DeliveryStatus {
    /// Every status, in numeric order.
    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Delivered,
        DeliveryStatus::NoSuchClient,
        DeliveryStatus::TargetGone,
        DeliveryStatus::QueueFull,
        DeliveryStatus::TooLarge,
        DeliveryStatus::NotAcknowledged,
    ];

    /// A stable snake_case name (JSON output, dissector).
    pub fn name(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::NoSuchClient => "no_such_client",
            DeliveryStatus::TargetGone => "target_gone",
            DeliveryStatus::QueueFull => "queue_full",
            DeliveryStatus::TooLarge => "too_large",
            DeliveryStatus::NotAcknowledged => "not_acknowledged",
        }
    }

    /// The numeric value on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }
}

/// `M` response: whether the message reached the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The target id from the request.
    pub to: u32,
    /// Delivered, or why not.
    pub status: DeliveryStatus,
    /// A human-readable explanation.
    pub reason: String,
}

/// `M` indication: a message forwarded from another client.
///
/// The sender's id and address are filled in by the server from the
/// connection itself, so no client can speak for another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    /// The sender's id.
    pub from: u32,
    /// The sender's IP address as the server sees it.
    pub from_ip: IpAddr,
    /// The sender's TCP source port.
    pub from_port: u16,
    /// The text, as sent.
    pub text: String,
}

/// `H` indication: sent by the server first on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The id the server assigned to this client.
    pub client_id: u32,
    /// The server's name (same as an `N` response).
    pub server: String,
    /// The protocol version the server speaks.
    pub version: u8,
    /// The largest payload the server accepts, and the largest it sends
    /// (never below [`MIN_MAX_PAYLOAD`](crate::MIN_MAX_PAYLOAD)).
    pub max_payload: u32,
}

/// `S` indication: the server is shutting down and will close the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shutdown {
    /// Why, in words.
    pub reason: String,
}

/// `E` response: what was wrong with a frame. Its request id echoes the
/// offending request's, or is 0 when the header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What kind of error.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub text: String,
}

/// `P` request: a client's heartbeat ping; the server answers with a [`Pong`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingRequest;

/// `P` indication: the server's heartbeat ping; the client answers with a
/// [`Pong`] carrying the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerPing;

/// `P` response: the answer to a ping, in either direction (same id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong;

/// `A` response: a client confirms it received the forwarded message (`M`
/// indication) whose id this frame echoes. Only then does the sender hear
/// `delivered`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack;

/// Declares every message once: its enum variant, payload type, type code and class.
macro_rules! messages {
    ($($variant:ident($payload:ident) = $type_code:ident / $class:ident;)*) => {
        /// Any TNLM message; the variant determines the header's type code and class.
        ///
        /// It serializes (e.g. to JSON) as just its payload.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(untagged)]
        pub enum Message {
            $(
                #[doc = concat!("A [`", stringify!($payload), "`].")]
                $variant($payload),
            )*
        }

        $(
            impl From<$payload> for Message {
                fn from(payload: $payload) -> Message {
                    Message::$variant(payload)
                }
            }
        )*

        impl Message {
            /// The header's type code and class for this message.
            pub fn kind(&self) -> (TypeCode, Class) {
                match self {
                    $(Message::$variant(_) => (TypeCode::$type_code, Class::$class),)*
                }
            }

            /// Appends the bincode payload to `out`, limited to `limit` bytes.
            pub(crate) fn encode_payload(&self, out: &mut Vec<u8>, limit: u64) -> bincode::Result<()> {
                match self {
                    $(Message::$variant(payload) => codec::encode_into(out, payload, limit),)*
                }
            }

            /// Decodes the payload of a frame whose header named `type_code` and
            /// `class`; `None` when that pair names no message.
            pub(crate) fn decode_payload(
                type_code: TypeCode,
                class: Class,
                payload: &[u8],
            ) -> Option<bincode::Result<Message>> {
                match (type_code, class) {
                    $(
                        (TypeCode::$type_code, Class::$class) =>
                            Some(codec::decode::<$payload>(payload).map(Message::$variant)),
                    )*
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }

        /// One row per message: type code, class, payload name and layout.
        pub const CATALOG: &[crate::layout::MessageSchema] = &[
            $(
                crate::layout::MessageSchema {
                    type_code: TypeCode::$type_code,
                    class: Class::$class,
                    payload: stringify!($payload),
                    fields: <$payload as Describe>::FIELDS,
                },
            )*
        ];
    };
}

messages! {
    TimeRequest(TimeRequest) = Time / Request;
    NameRequest(NameRequest) = Name / Request;
    ListRequest(ListRequest) = List / Request;
    SendRequest(SendRequest) = Message / Request;
    TimeResponse(TimeResponse) = Time / Response;
    NameResponse(NameResponse) = Name / Response;
    ListResponse(ListResponse) = List / Response;
    Delivery(Delivery) = Message / Response;
    Forwarded(Forwarded) = Message / Indication;
    Hello(Hello) = Hello / Indication;
    Shutdown(Shutdown) = Shutdown / Indication;
    Error(ErrorBody) = Error / Response;
    PingRequest(PingRequest) = Ping / Request;
    ServerPing(ServerPing) = Ping / Indication;
    Pong(Pong) = Ping / Response;
    Ack(Ack) = Ack / Response;
}

/// The (type, class) pairs a client may send: the requests `T`, `N`, `L`, `M`
/// and `P`, and the responses `P` (pong) and `A` (ack). A server decodes with
/// this set ([`Decoder::accepting`](crate::Decoder::accepting)), so anything
/// else of known type and class is `unexpected_frame`.
pub const FROM_CLIENT: &[(TypeCode, Class)] = &[
    (TypeCode::Time, Class::Request),
    (TypeCode::Name, Class::Request),
    (TypeCode::List, Class::Request),
    (TypeCode::Message, Class::Request),
    (TypeCode::Ping, Class::Request),
    (TypeCode::Ping, Class::Response),
    (TypeCode::Ack, Class::Response),
];

/// The (type, class) pairs a server may send: every response and indication
/// of the Messages table (a `P` response answers a client's ping).
pub const FROM_SERVER: &[(TypeCode, Class)] = &[
    (TypeCode::Time, Class::Response),
    (TypeCode::Name, Class::Response),
    (TypeCode::List, Class::Response),
    (TypeCode::Message, Class::Response),
    (TypeCode::Message, Class::Indication),
    (TypeCode::Hello, Class::Indication),
    (TypeCode::Shutdown, Class::Indication),
    (TypeCode::Error, Class::Response),
    (TypeCode::Ping, Class::Indication),
    (TypeCode::Ping, Class::Response),
];

/// Every (type, class) pair of the Messages table, in either direction.
pub const ANY_DIRECTION: &[(TypeCode, Class)] = &catalog_pairs();

const fn catalog_pairs() -> [(TypeCode, Class); CATALOG.len()] {
    let mut pairs = [(TypeCode::Time, Class::Request); CATALOG.len()];
    let mut i = 0;
    while i < CATALOG.len() {
        pairs[i] = (CATALOG[i].type_code, CATALOG[i].class);
        i += 1;
    }
    pairs
}

impl Message {
    /// The name of this message's payload type, e.g. `TimeResponse`.
    pub fn payload_name(&self) -> &'static str {
        let (type_code, class) = self.kind();
        CATALOG.iter().find(|m| m.type_code == type_code && m.class == class).map_or("?", |m| m.payload)
    }
}

/// Payload layouts, field by field, in the order bincode writes them.
mod layouts {
    use super::*;

    macro_rules! describe {
        ($payload:ident { $($name:literal as $filter:literal : $wire:expr),* $(,)? }) => {
            impl Describe for $payload {
                const FIELDS: &'static [Field] = &[$(Field { name: $name, filter: $filter, wire: $wire }),*];
            }
        };
    }

    describe!(TimeRequest {});
    describe!(NameRequest {});
    describe!(ListRequest {});
    describe!(SendRequest { "to" as "msg.to": Wire::U32, "text" as "msg.text": Wire::String });
    describe!(TimeResponse { "time" as "time": Wire::String });
    describe!(NameResponse { "name" as "name": Wire::String });
    describe!(ClientInfo {
        "id" as "client.id": Wire::U32,
        "ip" as "client.ip": Wire::IpAddr,
        "port" as "client.port": Wire::U16,
        "since" as "client.since": Wire::String,
    });
    describe!(ListResponse { "clients" as "clients": Wire::List("client", <ClientInfo as Describe>::FIELDS) });
    describe!(Delivery { "to" as "msg.to": Wire::U32, "status" as "status": Wire::DeliveryStatus, "reason" as "reason": Wire::String });
    describe!(Forwarded {
        "from" as "msg.from": Wire::U32,
        "from_ip" as "msg.from_ip": Wire::IpAddr,
        "from_port" as "msg.from_port": Wire::U16,
        "text" as "msg.text": Wire::String,
    });
    describe!(Hello {
        "client_id" as "hello.client_id": Wire::U32,
        "server" as "hello.server": Wire::String,
        "version" as "hello.version": Wire::U8,
        "max_payload" as "hello.max_payload": Wire::U32,
    });
    describe!(Shutdown { "reason" as "shutdown.reason": Wire::String });
    describe!(PingRequest {});
    describe!(ServerPing {});
    describe!(Pong {});
    describe!(Ack {});
    describe!(ErrorBody { "code" as "error.code": Wire::ErrorCode, "text" as "error.text": Wire::String });
}
