/* wire.h: bytes on the wire, shared by the lab's server and client.
 *
 *   - little-endian integers (get_u32, ...);
 *   - struct out: a frame being built, field after field (out_*);
 *   - struct in: a payload being read, field after field (in_*);
 *   - send_all(): send() until every byte is out (send may take fewer).
 *
 * The layout itself (offsets, letters, codes) comes from tnlm.h, which is
 * generated from the Rust code, so the C and the Rust agree by construction.
 */
#ifndef TNLM_WIRE_H
#define TNLM_WIRE_H

#include "platform.h"
#include "tnlm.h"

/* ---- Little-endian integers --------------------------------------------- */

static inline uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* ---- Building a frame: struct out ----------------------------------------
 * out_frame() writes the 16-byte header with length 0; out_* append payload
 * fields; out_finish() writes the payload length into the header. If memory
 * runs out, `failed` turns 1 and stays 1: check it once at the end. */

struct out {
    unsigned char *bytes;
    size_t len, cap;
    int failed;
};

static inline void out_bytes(struct out *o, const void *p, size_t n) {
    if (o->failed) return;
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap < o->len + n) cap *= 2;
        unsigned char *bigger = (unsigned char *)realloc(o->bytes, cap);
        if (!bigger) {
            o->failed = 1;
            return;
        }
        o->bytes = bigger;
        o->cap = cap;
    }
    if (n) memcpy(o->bytes + o->len, p, n);
    o->len += n;
}
/* An unsigned integer of `size` bytes (1, 2, 4 or 8), little-endian. */
static inline void out_uint(struct out *o, uint64_t v, int size) {
    unsigned char b[8];
    for (int i = 0; i < size; i++) b[i] = (unsigned char)(v >> (8 * i));
    out_bytes(o, b, (size_t)size);
}
/* A string: u64 byte count, then the UTF-8 bytes, no terminating 0. */
static inline void out_string(struct out *o, const char *s, size_t n) {
    out_uint(o, n, 8);
    out_bytes(o, s, n);
}
/* An IP address: u32 family (0 = IPv4, 1 = IPv6), then 4 or 16 bytes. */
static inline void out_ip(struct out *o, const struct sockaddr *addr) {
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)addr;
        out_uint(o, TNLM_FAMILY_IPV4, 4);
        out_bytes(o, &v4->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)addr;
        out_uint(o, TNLM_FAMILY_IPV6, 4);
        out_bytes(o, &v6->sin6_addr, 16);
    }
}
/* Starts a frame: magic, version, type, class, reserved 0, request id, length 0. */
static inline void out_frame(struct out *o, char type, int klass, uint32_t request_id) {
    unsigned char h[TNLM_HEADER_LEN];
    memset(h, 0, sizeof h);
    memcpy(h + TNLM_OFF_MAGIC, TNLM_MAGIC, 4);
    h[TNLM_OFF_VERSION] = TNLM_VERSION;
    h[TNLM_OFF_TYPE] = (unsigned char)type;
    h[TNLM_OFF_CLASS] = (unsigned char)klass;
    put_u32(h + TNLM_OFF_REQUEST_ID, request_id);
    out_bytes(o, h, sizeof h);
}
/* Writes the payload length into the header; returns the payload length. */
static inline size_t out_finish(struct out *o) {
    if (o->failed || o->len < TNLM_HEADER_LEN) return 0;
    size_t payload = o->len - TNLM_HEADER_LEN;
    put_u32(o->bytes + TNLM_OFF_LENGTH, (uint32_t)payload);
    return payload;
}

/* ---- Reading a payload: struct in ----------------------------------------
 * `ok` turns 0 when a field runs past the end, and stays 0: check it (and
 * that every byte was used, in_done()) once after reading. */

struct in {
    const unsigned char *p;
    size_t len, at;
    int ok;
};

static inline struct in in_start(const unsigned char *p, size_t len) {
    struct in r;
    r.p = p;
    r.len = len;
    r.at = 0;
    r.ok = 1;
    return r;
}
static inline const unsigned char *in_take(struct in *r, size_t n) {
    if (!r->ok || n > r->len - r->at) {
        r->ok = 0;
        return NULL;
    }
    r->at += n;
    return r->p + r->at - n;
}
static inline uint64_t in_uint(struct in *r, int size) {
    const unsigned char *p = in_take(r, (size_t)size);
    uint64_t v = 0;
    for (int i = size - 1; p && i >= 0; i--) v = v << 8 | p[i];
    return v;
}
/* Is s[0..n) valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF)? */
static inline int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], cp, more;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) more = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) more = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) more = 3, cp = c & 0x07;
        else return 0;
        if (n - i - 1 < more) return 0;
        for (unsigned k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (more == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
        if (more == 3 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
        i += more + 1;
    }
    return 1;
}
/* A string: returns its bytes (not 0-terminated) and sets *n; "" on error.
 * Text that is not UTF-8 makes the payload malformed. */
static inline const char *in_string(struct in *r, size_t *n) {
    uint64_t len = in_uint(r, 8);
    const unsigned char *s = len <= r->len ? in_take(r, (size_t)len) : NULL;
    if (!s || !utf8_valid(s, (size_t)len)) {
        r->ok = 0;
        *n = 0;
        return "";
    }
    *n = (size_t)len;
    return (const char *)s;
}
/* An IP address, written as text (e.g. 127.0.0.1 or ::1) into out. */
static inline void in_ip(struct in *r, char *out, size_t size) {
    uint32_t family = (uint32_t)in_uint(r, 4);
    const unsigned char *addr = in_take(r, family == TNLM_FAMILY_IPV4 ? 4 : 16);
    if (!addr || family > TNLM_FAMILY_IPV6 ||
        !inet_ntop(family == TNLM_FAMILY_IPV4 ? AF_INET : AF_INET6, (void *)addr, out, (socklen_t)size)) {
        r->ok = 0;
        snprintf(out, size, "?");
    }
}
/* Were all fields there, and no byte left over? */
static inline int in_done(const struct in *r) { return r->ok && r->at == r->len; }

/* ---- Sending ------------------------------------------------------------- */

/* send() may send fewer bytes than asked (a full socket buffer, a signal):
 * call it again for the rest. Returns 0 once all n bytes are out, -1 if the
 * connection failed. */
static inline int send_all(socket_t sock, const unsigned char *p, size_t n) {
    while (n > 0) {
        int chunk = n > 1 << 30 ? 1 << 30 : (int)n;
        int sent = (int)send(sock, (const char *)p, chunk, 0);
        if (sent == SOCKET_ERROR || sent == 0) return -1;
        p += sent;
        n -= (size_t)sent;
    }
    return 0;
}

/* Prints text from the network with control characters escaped, so that a
 * message cannot steer the terminal. */
static inline void print_text(FILE *to, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", to);
        else if (c == '\t') fputs("\\t", to);
        else if (c == '\r') fputs("\\r", to);
        else if (c < 0x20 || c == 0x7f) fprintf(to, "\\u{%x}", c);
        else fputc(c, to);
    }
}

#endif /* TNLM_WIRE_H */
