/* tnlm.h: the TNLM protocol, version 1, for C programs.
 *
 * GENERATED from the Rust crate tnlm-core (core/src/c_header.rs); do not edit.
 * Regenerate with: TNLM_BLESS=1 cargo test -p tnlm-core --test c_header
 * The protocol itself is explained in docs/PROTOCOL.md.
 *
 * Every integer on the wire is little-endian. A frame is a 16-byte header
 * followed by `length` bytes of payload. In a payload, a string is a u64
 * byte count followed by that many bytes of UTF-8 (no terminating 0), an IP
 * address is a u32 family (0 = IPv4, 1 = IPv6) followed by 4 or 16 bytes,
 * and a list is a u64 count followed by that many entries.
 */
#ifndef TNLM_H
#define TNLM_H

/* Constants */
#define TNLM_MAGIC "TNLM" /* the first 4 bytes of every frame */
#define TNLM_VERSION 1                       /* the protocol version this header describes */
#define TNLM_HEADER_LEN 16                   /* bytes in a frame header */
#define TNLM_DEFAULT_PORT 4579               /* a server's default TCP port */
#define TNLM_DEFAULT_MAX_PAYLOAD 65536       /* a server's default payload limit */
#define TNLM_MIN_MAX_PAYLOAD 1024            /* the smallest max_payload a hello announces; no server frame exceeds the announced one */
#define TNLM_MAX_NAME_LEN 255                /* the longest server name, in bytes */

/* Header: byte offsets of its fields */
#define TNLM_OFF_MAGIC 0                     /* 4 bytes */
#define TNLM_OFF_VERSION 4                   /* u8 */
#define TNLM_OFF_TYPE 5                      /* u8 */
#define TNLM_OFF_CLASS 6                     /* u8 */
#define TNLM_OFF_RESERVED 7                  /* u8 */
#define TNLM_OFF_REQUEST_ID 8                /* u32 */
#define TNLM_OFF_LENGTH 12                   /* u32 */

/* Frame types (ASCII letters) and classes */
#define TNLM_TYPE_TIME 'T'
#define TNLM_TYPE_NAME 'N'
#define TNLM_TYPE_LIST 'L'
#define TNLM_TYPE_MESSAGE 'M'
#define TNLM_TYPE_HELLO 'H'
#define TNLM_TYPE_SHUTDOWN 'S'
#define TNLM_TYPE_ERROR 'E'
#define TNLM_TYPE_PING 'P'
#define TNLM_TYPE_ACK 'A'
#define TNLM_CLASS_REQUEST 0
#define TNLM_CLASS_RESPONSE 1
#define TNLM_CLASS_INDICATION 2

/* Payload layouts, field by field in wire order. TNLM_<PAYLOAD>_<FIELD> is the
 * byte offset of a field, given while the fields before it have a fixed size. */

/* TimeRequest = 'T' request: empty payload */

/* NameRequest = 'N' request: empty payload */

/* ListRequest = 'L' request: empty payload */

/* SendRequest = 'M' request: to (u32), text (string) */
#define TNLM_SEND_REQUEST_TO 0               /* u32 LE */
#define TNLM_SEND_REQUEST_TEXT 4             /* u64 LE length + UTF-8 bytes */

/* TimeResponse = 'T' response: time (string) */
#define TNLM_TIME_RESPONSE_TIME 0            /* u64 LE length + UTF-8 bytes */

/* NameResponse = 'N' response: name (string) */
#define TNLM_NAME_RESPONSE_NAME 0            /* u64 LE length + UTF-8 bytes */

/* ListResponse = 'L' response: clients (list of client) */
#define TNLM_LIST_RESPONSE_CLIENTS 0         /* u64 LE count + that many `client` entries */
/* one `client` entry of LIST_RESPONSE: id (u32), ip (ip), port (u16), since (string) */
#define TNLM_CLIENT_ID 0                     /* u32 LE */
#define TNLM_CLIENT_IP 4                     /* u32 LE family (0 = IPv4, 1 = IPv6) + 4 or 16 bytes */

/* Delivery = 'M' response: to (u32), status (u16), reason (string) */
#define TNLM_DELIVERY_TO 0                   /* u32 LE */
#define TNLM_DELIVERY_STATUS 4               /* u16 LE delivery status */
#define TNLM_DELIVERY_REASON 6               /* u64 LE length + UTF-8 bytes */

/* Forwarded = 'M' indication: from (u32), from_ip (ip), from_port (u16), text (string) */
#define TNLM_FORWARDED_FROM 0                /* u32 LE */
#define TNLM_FORWARDED_FROM_IP 4             /* u32 LE family (0 = IPv4, 1 = IPv6) + 4 or 16 bytes */

/* Hello = 'H' indication: client_id (u32), server (string), version (u8), max_payload (u32) */
#define TNLM_HELLO_CLIENT_ID 0               /* u32 LE */
#define TNLM_HELLO_SERVER 4                  /* u64 LE length + UTF-8 bytes */

/* Shutdown = 'S' indication: reason (string) */
#define TNLM_SHUTDOWN_REASON 0               /* u64 LE length + UTF-8 bytes */

/* ErrorBody = 'E' response: code (u16), text (string) */
#define TNLM_ERROR_BODY_CODE 0               /* u16 LE error code */
#define TNLM_ERROR_BODY_TEXT 2               /* u64 LE length + UTF-8 bytes */

/* PingRequest = 'P' request: empty payload */

/* ServerPing = 'P' indication: empty payload */

/* Pong = 'P' response: empty payload */

/* Ack = 'A' response: empty payload */

/* IP address families */
#define TNLM_FAMILY_IPV4 0                   /* then 4 bytes */
#define TNLM_FAMILY_IPV6 1                   /* then 16 bytes */

/* Delivery statuses (u16, in an M response) */
#define TNLM_STATUS_DELIVERED 0
#define TNLM_STATUS_NO_SUCH_CLIENT 1
#define TNLM_STATUS_TARGET_GONE 2
#define TNLM_STATUS_QUEUE_FULL 3
#define TNLM_STATUS_TOO_LARGE 4
#define TNLM_STATUS_NOT_ACKNOWLEDGED 5

/* Error codes (u16, in an E frame) */
#define TNLM_ERROR_BAD_MAGIC 1               /* closed: the framing is lost */
#define TNLM_ERROR_UNSUPPORTED_VERSION 2     /* closed: the framing is lost */
#define TNLM_ERROR_OVERSIZE 3                /* closed: the framing is lost */
#define TNLM_ERROR_MALFORMED_PAYLOAD 4       /* goes on: the bad frame was skipped */
#define TNLM_ERROR_UNKNOWN_TYPE 5            /* goes on: the bad frame was skipped */
#define TNLM_ERROR_INVALID_HEADER 6          /* goes on: the bad frame was skipped */
#define TNLM_ERROR_UNEXPECTED_FRAME 7        /* goes on: the bad frame was skipped */
#define TNLM_ERROR_TRUNCATED 8               /* closed: the framing is lost */
#define TNLM_ERROR_TOO_MANY_CLIENTS 9        /* closed */
#define TNLM_ERROR_TIMEOUT 10                /* closed */
#define TNLM_ERROR_SLOW_CONSUMER 11          /* reserved, not sent: a slow consumer is cut off without a word (it does not read) */

static inline const char *tnlm_status_name(unsigned code) {
    switch (code) {
    case 0: return "delivered";
    case 1: return "no_such_client";
    case 2: return "target_gone";
    case 3: return "queue_full";
    case 4: return "too_large";
    case 5: return "not_acknowledged";
    default: return "unknown";
    }
}

static inline const char *tnlm_error_name(unsigned code) {
    switch (code) {
    case 1: return "bad_magic";
    case 2: return "unsupported_version";
    case 3: return "oversize";
    case 4: return "malformed_payload";
    case 5: return "unknown_type";
    case 6: return "invalid_header";
    case 7: return "unexpected_frame";
    case 8: return "truncated";
    case 9: return "too_many_clients";
    case 10: return "timeout";
    case 11: return "slow_consumer";
    default: return "unknown";
    }
}

#endif /* TNLM_H */
