/* tnlm-c-client: a TNLM client in C11, written from docs/PROTOCOL.md.
 *
 *   tnlm-c-client HOST:PORT time
 *   tnlm-c-client HOST:PORT name
 *   tnlm-c-client HOST:PORT list
 *   tnlm-c-client HOST:PORT send ID TEXT
 *
 * It connects, reads the server's hello, sends one request and prints the
 * answer the way tnlm-client does. Exit code 0 on success, 1 when the
 * request failed (not delivered, an error from the server, a lost
 * connection), 2 for a bad command line.
 *
 * TCP is a byte stream: one frame may arrive in several pieces, several
 * frames in one piece. So we never assume that one recv() is one frame: we
 * read exactly 16 header bytes, then exactly `length` payload bytes.
 *
 * Builds on Linux (POSIX sockets) and Windows (Winsock):
 *   cc -std=c11 -Wall -Wextra -Werror -o tnlm-c-client tnlm-c-client.c
 *   x86_64-w64-mingw32-gcc -std=c11 -Wall -Wextra -Werror -o tnlm-c-client.exe tnlm-c-client.c -lws2_32 -lshell32
 */
#ifdef _WIN32
#define _WIN32_WINNT 0x0600 /* Vista or later: inet_ntop */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <shellapi.h> /* CommandLineToArgvW */
typedef SOCKET socket_t;
#define close_socket closesocket
#else
#define _POSIX_C_SOURCE 200112L /* getaddrinfo */
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
typedef int socket_t;
#define INVALID_SOCKET (-1)
#define close_socket close
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tnlm.h" /* constants and offsets, generated from the Rust code */

/* ---- Bytes on the wire: little-endian integers ---------------------- */

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A payload being read field by field. `ok` turns 0 if a field runs past
 * the end, and stays 0: check it once after reading. */
struct reader {
    const unsigned char *p;
    size_t len, at;
    int ok;
};

static const unsigned char *take(struct reader *r, size_t n) {
    if (!r->ok || n > r->len - r->at) {
        r->ok = 0;
        return NULL;
    }
    r->at += n;
    return r->p + r->at - n;
}

static uint64_t read_uint(struct reader *r, int bytes) {
    const unsigned char *p = take(r, (size_t)bytes);
    uint64_t v = 0;
    for (int i = bytes - 1; p && i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* A string: u64 byte count, then the bytes. Returns them (not 0-terminated). */
static const char *read_string(struct reader *r, size_t *len) {
    uint64_t n = read_uint(r, 8);
    const char *s = n <= r->len ? (const char *)take(r, (size_t)n) : NULL;
    if (!s) {
        r->ok = 0;
        *len = 0;
        return "";
    }
    *len = (size_t)n;
    return s;
}

/* An IP address: u32 family, then 4 or 16 bytes; written as text to `out`. */
static void read_ip(struct reader *r, char *out, size_t size) {
    uint32_t family = (uint32_t)read_uint(r, 4);
    const unsigned char *addr = take(r, family == TNLM_FAMILY_IPV4 ? 4 : 16);
    if (!addr || family > TNLM_FAMILY_IPV6 ||
        !inet_ntop(family == TNLM_FAMILY_IPV4 ? AF_INET : AF_INET6, addr, out, (socklen_t)size)) {
        r->ok = 0;
        snprintf(out, size, "?");
    }
}

/* Prints text from the network with control characters escaped, as
 * tnlm-client does, so a message cannot steer the terminal. */
static void print_text(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\u{%x}", c);
        else putchar(c);
    }
}

/* ---- Frames ------------------------------------------------------------- */

struct frame {
    unsigned char type, klass; /* not `class`: a C++ keyword */
    uint32_t id, length;
    unsigned char *payload; /* points into the connection's buffer */
};

struct conn {
    socket_t sock;
    unsigned char *buf; /* 16 + max_payload bytes: the largest frame the server sends */
    uint32_t max_payload;
};

/* Receives exactly n bytes, however the network splits them. */
static int recv_all(socket_t sock, unsigned char *p, size_t n) {
    while (n > 0) {
        int got = (int)recv(sock, (char *)p, (int)n, 0);
        if (got <= 0) return -1; /* closed or failed */
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

static int send_all(socket_t sock, const unsigned char *p, size_t n) {
    while (n > 0) {
        int sent = (int)send(sock, (const char *)p, (int)n, 0);
        if (sent <= 0) return -1;
        p += sent;
        n -= (size_t)sent;
    }
    return 0;
}

/* Reads one whole frame. Returns 0, or -1 with a message on stderr. */
static int read_frame(struct conn *c, struct frame *f) {
    unsigned char *h = c->buf;
    if (recv_all(c->sock, h, TNLM_HEADER_LEN) != 0) {
        fprintf(stderr, "error: the server closed the connection\n");
        return -1;
    }
    f->type = h[TNLM_OFF_TYPE];
    f->klass = h[TNLM_OFF_CLASS];
    f->id = get_u32(h + TNLM_OFF_REQUEST_ID);
    f->length = get_u32(h + TNLM_OFF_LENGTH);
    f->payload = h + TNLM_HEADER_LEN;
    if (memcmp(h + TNLM_OFF_MAGIC, TNLM_MAGIC, 4) != 0 || h[TNLM_OFF_VERSION] != TNLM_VERSION) {
        fprintf(stderr, "error: not a TNLM version %d server\n", TNLM_VERSION);
        return -1;
    }
    if (f->length > c->max_payload) {
        fprintf(stderr, "error: a frame of %lu bytes, above the server's limit\n", (unsigned long)f->length);
        return -1;
    }
    if (recv_all(c->sock, f->payload, f->length) != 0) {
        fprintf(stderr, "error: the connection closed in the middle of a frame\n");
        return -1;
    }
    return 0;
}

/* Sends one frame: header, then `len` payload bytes. */
static int write_frame(struct conn *c, char type, int klass, uint32_t id, const unsigned char *payload,
                       size_t len) {
    unsigned char h[TNLM_HEADER_LEN] = {0};
    memcpy(h + TNLM_OFF_MAGIC, TNLM_MAGIC, 4);
    h[TNLM_OFF_VERSION] = TNLM_VERSION;
    h[TNLM_OFF_TYPE] = (unsigned char)type;
    h[TNLM_OFF_CLASS] = (unsigned char)klass;
    put_u32(h + TNLM_OFF_REQUEST_ID, id);
    put_u32(h + TNLM_OFF_LENGTH, (uint32_t)len);
    if (send_all(c->sock, h, sizeof h) != 0 || send_all(c->sock, payload, len) != 0) {
        fprintf(stderr, "error: cannot send to the server\n");
        return -1;
    }
    return 0;
}

/* ---- Connecting ----------------------------------------------------------- */

/* Connects to HOST:PORT ([::1]:4579 for IPv6). Returns INVALID_SOCKET on failure. */
static socket_t connect_to(const char *target) {
    char host[256];
    const char *colon = strrchr(target, ':');
    if (!colon || colon == target || (size_t)(colon - target) >= sizeof host) return INVALID_SOCKET;
    const char *start = target, *end = colon;
    if (*start == '[' && end[-1] == ']') { /* [IPv6]:port */
        start++;
        end--;
    }
    memcpy(host, start, (size_t)(end - start));
    host[end - start] = '\0';

    struct addrinfo hints, *found, *a;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &found) != 0) return INVALID_SOCKET;
    socket_t sock = INVALID_SOCKET;
    for (a = found; a && sock == INVALID_SOCKET; a = a->ai_next) {
        sock = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (sock != INVALID_SOCKET && connect(sock, a->ai_addr, (socklen_t)a->ai_addrlen) != 0) {
            close_socket(sock);
            sock = INVALID_SOCKET;
        }
    }
    freeaddrinfo(found);
    return sock;
}

/* Reads the hello (the server's first frame) and sizes the buffer from it. */
static int read_hello(struct conn *c, uint32_t *my_id) {
    struct frame f;
    if (read_frame(c, &f) != 0) return -1;
    struct reader r = {f.payload, f.length, 0, 1};
    if (f.type == TNLM_TYPE_ERROR) { /* e.g. too_many_clients, instead of the hello */
        unsigned code = (unsigned)read_uint(&r, 2);
        size_t len;
        const char *text = read_string(&r, &len);
        fprintf(stderr, "error: the server refused: %.*s (%s)\n", (int)len, text, tnlm_error_name(code));
        return -1;
    }
    if (f.type != TNLM_TYPE_HELLO) {
        fprintf(stderr, "error: the server's first frame is not a hello\n");
        return -1;
    }
    size_t name_len;
    *my_id = (uint32_t)read_uint(&r, 4);
    read_string(&r, &name_len);
    read_uint(&r, 1); /* version */
    uint32_t max_payload = (uint32_t)read_uint(&r, 4);
    if (!r.ok || max_payload < TNLM_MIN_MAX_PAYLOAD) {
        fprintf(stderr, "error: malformed hello\n");
        return -1;
    }
    unsigned char *bigger = (unsigned char *)realloc(c->buf, TNLM_HEADER_LEN + (size_t)max_payload);
    if (!bigger) {
        fprintf(stderr, "error: no memory for frames of %lu bytes\n", (unsigned long)max_payload);
        return -1;
    }
    c->buf = bigger;
    c->max_payload = max_payload;
    return 0;
}

/* ---- Printing the answers ------------------------------------------------- */

struct client_row {
    uint32_t id;
    char ip[64];
    unsigned port;
    const char *since;
    size_t since_len;
};

static void read_client(struct reader *r, struct client_row *row) {
    row->id = (uint32_t)read_uint(r, 4);
    read_ip(r, row->ip, sizeof row->ip);
    row->port = (unsigned)read_uint(r, 2);
    row->since = read_string(r, &row->since_len);
}

/* The client list as a table, our own row marked "(you)". Two passes over
 * the payload: the first measures the columns, the second prints. */
static int print_list(const struct frame *f, uint32_t my_id) {
    struct reader r = {f->payload, f->length, 0, 1};
    uint64_t count = read_uint(&r, 8);
    size_t start = r.at, ip_width = 2, since_width = 5;
    struct client_row row;
    for (uint64_t i = 0; i < count && r.ok; i++) {
        read_client(&r, &row);
        if (strlen(row.ip) > ip_width) ip_width = strlen(row.ip);
        if (row.since_len > since_width) since_width = row.since_len;
    }
    if (!r.ok || r.at != r.len) {
        fprintf(stderr, "error: malformed list\n");
        return 1;
    }
    if (count == 1) printf("1 client connected:\n");
    else printf("%lu clients connected:\n", (unsigned long)count);
    printf("%6s  %-*s  %5s  SINCE\n", "ID", (int)ip_width, "IP", "PORT");
    r.at = start;
    for (uint64_t i = 0; i < count; i++) {
        read_client(&r, &row);
        printf("%6lu  %-*s  %5u  ", (unsigned long)row.id, (int)ip_width, row.ip, row.port);
        print_text(row.since, row.since_len);
        if (row.id == my_id) printf("%*s  (you)", (int)(since_width - row.since_len), "");
        printf("\n");
    }
    return 0;
}

/* Prints the response to our request; returns the exit code. */
static int print_response(const struct frame *f, uint32_t my_id) {
    struct reader r = {f->payload, f->length, 0, 1};
    size_t len;
    const char *text;
    switch (f->type) {
    case TNLM_TYPE_TIME:
        text = read_string(&r, &len);
        printf("server time: ");
        print_text(text, len);
        printf("\n");
        return r.ok ? 0 : 1;
    case TNLM_TYPE_NAME:
        text = read_string(&r, &len);
        printf("server name: ");
        print_text(text, len);
        printf("\n");
        return r.ok ? 0 : 1;
    case TNLM_TYPE_LIST:
        return print_list(f, my_id);
    case TNLM_TYPE_MESSAGE: {
        unsigned long to = (unsigned long)read_uint(&r, 4);
        unsigned status = (unsigned)read_uint(&r, 2);
        text = read_string(&r, &len);
        if (r.ok && status == TNLM_STATUS_DELIVERED) {
            printf("message delivered to client %lu\n", to);
            return 0;
        }
        printf("message not delivered to client %lu: ", to);
        print_text(text, len);
        printf(" (%s)\n", tnlm_status_name(status));
        return 1;
    }
    case TNLM_TYPE_ERROR: {
        unsigned code = (unsigned)read_uint(&r, 2);
        text = read_string(&r, &len);
        printf("server error %u (%s): ", code, tnlm_error_name(code));
        print_text(text, len);
        printf("\n");
        return 1;
    }
    default:
        fprintf(stderr, "error: unexpected answer of type '%c'\n", f->type);
        return 1;
    }
}

/* ---- The request and its answer ------------------------------------------ */

/* Waits for the answer to request `id`. On the way it answers the server's
 * heartbeat pings and acknowledges (and prints) messages from other clients:
 * the protocol expects a client to do both at any time. */
static int await_answer(struct conn *c, uint32_t id, uint32_t my_id) {
    struct frame f;
    while (read_frame(c, &f) == 0) {
        if (f.type == TNLM_TYPE_PING && f.klass == TNLM_CLASS_INDICATION) {
            if (write_frame(c, TNLM_TYPE_PING, TNLM_CLASS_RESPONSE, f.id, NULL, 0) != 0) return 1;
        } else if (f.type == TNLM_TYPE_MESSAGE && f.klass == TNLM_CLASS_INDICATION) {
            struct reader r = {f.payload, f.length, 0, 1};
            char ip[64];
            size_t len;
            unsigned long from = (unsigned long)read_uint(&r, 4);
            read_ip(&r, ip, sizeof ip);
            unsigned port = (unsigned)read_uint(&r, 2);
            const char *text = read_string(&r, &len);
            printf(strchr(ip, ':') ? "[message from %lu ([%s]:%u)] " : "[message from %lu (%s:%u)] ", from, ip, port);
            print_text(text, len);
            printf("\n");
            if (write_frame(c, TNLM_TYPE_ACK, TNLM_CLASS_RESPONSE, f.id, NULL, 0) != 0) return 1;
        } else if (f.type == TNLM_TYPE_SHUTDOWN) {
            printf("[the server is shutting down]\n");
            return 1;
        } else if (f.id == id || (f.type == TNLM_TYPE_ERROR && f.id == 0)) {
            return print_response(&f, my_id);
        }
        /* Anything else (a pong, an answer to no request of ours) is skipped. */
    }
    return 1;
}

static int usage(void) {
    fprintf(stderr, "usage: tnlm-c-client HOST:PORT time|name|list|send ID TEXT\n");
    return 2;
}

/* The request's payload: empty, except for `send ID TEXT` (a SendRequest:
 * to as u32, then text as u64 length + bytes). Sets *len; NULL on a bad command line. */
static unsigned char *build_request(int argc, char **argv, char *type, size_t *len) {
    const char *command = argv[2];
    *len = 0;
    if (argc == 3 && strcmp(command, "time") == 0) *type = TNLM_TYPE_TIME;
    else if (argc == 3 && strcmp(command, "name") == 0) *type = TNLM_TYPE_NAME;
    else if (argc == 3 && strcmp(command, "list") == 0) *type = TNLM_TYPE_LIST;
    else if (argc == 5 && strcmp(command, "send") == 0) *type = TNLM_TYPE_MESSAGE;
    else return NULL;
    size_t text_len = *type == TNLM_TYPE_MESSAGE ? strlen(argv[4]) : 0;
    unsigned char *payload = (unsigned char *)malloc(TNLM_SEND_REQUEST_TEXT + 8 + text_len);
    if (!payload || *type != TNLM_TYPE_MESSAGE) return payload;
    char *end;
    unsigned long to = strtoul(argv[3], &end, 10);
    if (*end != '\0' || end == argv[3] || to > 0xFFFFFFFFul) {
        free(payload);
        return NULL;
    }
    put_u32(payload + TNLM_SEND_REQUEST_TO, (uint32_t)to);
    put_u32(payload + TNLM_SEND_REQUEST_TEXT, (uint32_t)text_len); /* the u64's low half */
    put_u32(payload + TNLM_SEND_REQUEST_TEXT + 4, 0);              /* and its high half */
    memcpy(payload + TNLM_SEND_REQUEST_TEXT + 8, argv[4], text_len);
    *len = TNLM_SEND_REQUEST_TEXT + 8 + text_len;
    return payload;
}

#ifdef _WIN32
/* Windows hands main() its arguments in the ANSI code page, which cannot hold
 * most text (你好). Take them from the UTF-16 command line and convert them to
 * UTF-8, the encoding TNLM uses, as on Linux. */
static char **utf8_arguments(int *argc) {
    wchar_t **wide = CommandLineToArgvW(GetCommandLineW(), argc);
    char **argv = (char **)calloc((size_t)*argc + 1, sizeof *argv);
    for (int i = 0; wide && argv && i < *argc; i++) {
        int size = WideCharToMultiByte(CP_UTF8, 0, wide[i], -1, NULL, 0, NULL, NULL);
        argv[i] = (char *)malloc((size_t)size);
        if (argv[i]) WideCharToMultiByte(CP_UTF8, 0, wide[i], -1, argv[i], size, NULL, NULL);
        else return NULL;
    }
    return wide ? argv : NULL;
}
#endif

int main(int argc, char **argv) {
#ifdef _WIN32
    argv = utf8_arguments(&argc);
    if (!argv) return 1;
    SetConsoleOutputCP(CP_UTF8); /* we print UTF-8 */
#endif
    char type;
    size_t payload_len;
    unsigned char *payload = argc >= 3 ? build_request(argc, argv, &type, &payload_len) : NULL;
    if (!payload) return usage();

#ifdef _WIN32
    WSADATA wsa;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) return 1;
#endif
    /* The hello fits in TNLM_MIN_MAX_PAYLOAD; read_hello then grows the buffer. */
    struct conn c = {connect_to(argv[1]), (unsigned char *)malloc(TNLM_HEADER_LEN + TNLM_MIN_MAX_PAYLOAD), TNLM_MIN_MAX_PAYLOAD};
    if (c.sock == INVALID_SOCKET || !c.buf) {
        fprintf(stderr, "error: cannot connect to %s\n", argv[1]);
        return 1;
    }
    uint32_t my_id, request_id = 1;
    int code = 1;
    if (read_hello(&c, &my_id) != 0) {
        /* already reported */
    } else if (payload_len > c.max_payload) {
        fprintf(stderr, "error: the text is too long for this server (%lu bytes at most)\n",
                (unsigned long)(c.max_payload - TNLM_SEND_REQUEST_TEXT - 8));
    } else if (write_frame(&c, type, TNLM_CLASS_REQUEST, request_id, payload, payload_len) == 0) {
        code = await_answer(&c, request_id, my_id);
    }
    close_socket(c.sock);
    free(c.buf);
    free(payload);
#ifdef _WIN32
    WSACleanup();
#endif
    return code;
}
