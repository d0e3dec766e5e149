/* tnlm-server.c: the lab's server in C, on the raw socket API.
 *
 *   tnlm-server [--port N] [--bind ADDR] [--name NAME] [--heartbeat SECS]
 *               [--ack-timeout SECS] [--frame-timeout SECS] [--max-clients N]
 *
 * It speaks TNLM version 1 (docs/PROTOCOL.md) and follows the lab report's
 * server steps:
 *
 *   a. socket()            open_listener()
 *   b. bind(), listen()    open_listener()
 *   c. accept() in a loop, add the client to the list, start its thread;
 *      the thread sends the hello, then loops on recv(): T, N, L, M
 *                          main(), new_client(), client_thread(), handle_frame()
 *   d. `quit` on the console: tell every client, wait for every thread
 *                          console_thread(), stop_server()
 *
 * Each client has two threads: its *client thread* reads and answers its
 * requests (the report's sub-thread), and its *writer thread* sends what is
 * queued for it (its outbox). So a client that does not read cannot block
 * anyone else: messages to it wait in its outbox, up to a limit
 * (`queue_full` beyond it).
 *
 * A message from A to B is answered `delivered` only once B has
 * acknowledged it (an `A` frame); `target_gone` if B leaves first,
 * `not_acknowledged` if B stays silent for the ack timeout.
 *
 * Builds: see README.md (cc, c++, mingw, Visual Studio via CMakeLists.txt).
 */
#include "wire.h"

/* ---- Settings ------------------------------------------------------------ */

#define QUEUE_LIMIT (1024 * 1024) /* bytes of messages that may wait for one client */
#define TICK_MS 50                /* how often a client thread looks at its timers */
#define WRITE_TIMEOUT_MS 10000    /* a send() blocked this long drops the client */
#define LINGER_MS 2000            /* after a fatal error: read and discard this long */
#define SHUTDOWN_GRACE_MS 1500    /* after `quit`: clients have this long to close */

static struct settings {
    const char *port;
    const char *bind; /* NULL: every IPv4 address (0.0.0.0) */
    char name[TNLM_MAX_NAME_LEN + 1];
    unsigned heartbeat_ms; /* 0: no heartbeat */
    unsigned ack_timeout_ms;
    unsigned frame_timeout_ms;
    unsigned max_clients; /* more get a too_many_clients error */
    uint32_t max_payload;
} cfg;

/* ---- The client list (under g.lock) --------------------------------------- */

/* A frame waiting in a client's outbox. */
struct outframe {
    struct outframe *next;
    unsigned char *bytes;
    size_t len;
    uint32_t delivery; /* a forwarded message: its delivery id; else 0 */
};

struct client {
    struct client *next; /* in g.clients (ascending ids) or g.departed */
    uint32_t id;
    socket_t sock;
    struct sockaddr_storage addr; /* as the server sees it; IPv4 never as ::ffff:a.b.c.d */
    char addr_text[64];
    uint16_t port;
    char since[32]; /* connection time, RFC 3339 with whole seconds */
    thread_t thread, writer;
    int has_writer;

    mutex_t lock; /* guards the outbox: */
    cond_t wake;  /* signalled when a frame is queued or `closing` is set */
    struct outframe *head, *tail;
    size_t queued; /* bytes of forwarded messages in the outbox */
    int closing;   /* the writer sends what is queued, then ends */
};

/* A forwarded message waiting for its target's acknowledgement. */
struct pending {
    struct pending *next;
    uint32_t delivery, sender, request_id, target;
    unsigned long long deadline; /* now_ms() after which it is not_acknowledged */
    int state;                   /* QUEUED, WRITING (send() under way), WRITTEN */
    int acked;                   /* an ack came while WRITING */
};
enum { QUEUED, WRITING, WRITTEN };

static struct {
    mutex_t lock;
    cond_t departed_cond; /* signalled when a client thread has finished */
    struct client *clients, *departed;
    struct pending *pending;
    unsigned count;   /* clients in the list */
    unsigned threads; /* client threads not yet finished */
    uint32_t next_id, next_delivery;
    int quit_requested, stopping;
    unsigned long long stop_time;
} g;

/* How a client thread ends. */
enum leave_how {
    LEAVE_CLOSED, /* the client closed, or the connection failed */
    LEAVE_FATAL,  /* we sent a fatal error: flush it, then close gently */
    LEAVE_CUT     /* cut off: close now, whatever is queued */
};

/* ---- Times ------------------------------------------------------------------ */

/* The local time as RFC 3339 with a numeric offset: with milliseconds
 * (2026-11-25T19:30:05.123+08:00, for T) or without (for the list's `since`). */
static void format_time(char *out, size_t size, int with_millis) {
    long long secs;
    int millis;
    wall_clock(&secs, &millis);
    time_t t = (time_t)secs;
    struct tm local, utc;
    if (utc_tm(t, &utc) != 0) memset(&utc, 0, sizeof utc);
    if (local_tm(t, &local) != 0) local = utc; /* no zone information: say UTC */
    /* The offset from UTC, in minutes, from the two broken-down times. */
    int days = local.tm_year != utc.tm_year ? (local.tm_year > utc.tm_year ? 1 : -1) : local.tm_yday - utc.tm_yday;
    int offset = (days * 24 + local.tm_hour - utc.tm_hour) * 60 + local.tm_min - utc.tm_min;
    char date[32];
    if (strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &local) == 0) snprintf(date, sizeof date, "?");
    char sign = offset < 0 ? '-' : '+';
    unsigned minutes = (unsigned)(offset < 0 ? -offset : offset), hh = minutes / 60 % 24, mm = minutes % 60;
    if (with_millis) snprintf(out, size, "%.19s.%03u%c%02u:%02u", date, (unsigned)millis % 1000, sign, hh, mm);
    else snprintf(out, size, "%.19s%c%02u:%02u", date, sign, hh, mm);
}

/* ---- The outbox: frames queued for a client's writer thread ---------------- */

enum { PUSH_OK, PUSH_FULL, PUSH_GONE };

/* Queues the frame built in o (taking its bytes) for c. A forwarded message
 * (delivery != 0) is refused PUSH_FULL when c's outbox holds QUEUE_LIMIT
 * bytes of messages already; anything is refused PUSH_GONE once c leaves. */
static int push(struct client *c, struct out *o, uint32_t delivery) {
    out_finish(o);
    struct outframe *f = o->failed ? NULL : (struct outframe *)malloc(sizeof *f);
    if (!f) {
        free(o->bytes);
        fprintf(stderr, "out of memory: a frame for client %lu is lost\n", (unsigned long)c->id);
        return PUSH_FULL;
    }
    f->next = NULL;
    f->bytes = o->bytes;
    f->len = o->len;
    f->delivery = delivery;
    int result = PUSH_OK;
    mutex_lock(&c->lock);
    if (c->closing) result = PUSH_GONE;
    else if (delivery && c->queued + f->len > QUEUE_LIMIT) result = PUSH_FULL;
    if (result == PUSH_OK) {
        if (c->tail) c->tail->next = f;
        else c->head = f;
        c->tail = f;
        if (delivery) c->queued += f->len;
        cond_signal(&c->wake);
    }
    mutex_unlock(&c->lock);
    if (result != PUSH_OK) {
        free(f->bytes);
        free(f);
    }
    return result;
}

/* Queues an E frame for c: an error code and a text. */
static void send_error(struct client *c, unsigned code, uint32_t id, const char *text) {
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, TNLM_TYPE_ERROR, TNLM_CLASS_RESPONSE, id);
    out_uint(&o, code, 2);
    out_string(&o, text, strlen(text));
    push(c, &o, 0);
}

/* Queues an M response for c: what became of its message to `to`. */
static void send_receipt(struct client *c, uint32_t request_id, uint32_t to, unsigned status, const char *reason) {
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, TNLM_TYPE_MESSAGE, TNLM_CLASS_RESPONSE, request_id);
    out_uint(&o, to, 4);
    out_uint(&o, status, 2);
    out_string(&o, reason, strlen(reason));
    push(c, &o, 0);
}

/* ---- Deliveries: forwarded messages and their receipts (under g.lock) ------ */

static struct client *find_client(uint32_t id) {
    for (struct client *c = g.clients; c; c = c->next)
        if (c->id == id) return c;
    return NULL;
}

/* Takes the pending delivery *pp off the list and tells its sender `status`. */
static void settle(struct pending **pp, unsigned status, const char *reason) {
    struct pending *p = *pp;
    *pp = p->next;
    struct client *sender = find_client(p->sender);
    if (sender) send_receipt(sender, p->request_id, p->target, status, reason);
    free(p);
}

static struct pending **find_pending(uint32_t delivery) {
    struct pending **pp = &g.pending;
    while (*pp && (*pp)->delivery != delivery) pp = &(*pp)->next;
    return pp;
}

/* c leaves: messages to c that it has not acknowledged are target_gone
 * (one it acknowledged while our send() was still returning is delivered);
 * messages from c are forgotten (nobody is left to tell). */
static void settle_departed(struct client *c) {
    struct pending **pp = &g.pending;
    while (*pp) {
        if ((*pp)->target == c->id && (*pp)->acked) settle(pp, TNLM_STATUS_DELIVERED, "ok");
        else if ((*pp)->target == c->id)
            settle(pp, TNLM_STATUS_TARGET_GONE, "the target disconnected before acknowledging");
        else if ((*pp)->sender == c->id) {
            struct pending *p = *pp;
            *pp = p->next;
            free(p);
        } else pp = &(*pp)->next;
    }
}

/* The writer thread is sending (state WRITING) or has sent (WRITTEN) the
 * message with this delivery id. */
static void delivery_progress(uint32_t delivery, int state) {
    mutex_lock(&g.lock);
    struct pending **pp = find_pending(delivery);
    if (*pp) {
        (*pp)->state = state;
        if (state == WRITTEN && (*pp)->acked) settle(pp, TNLM_STATUS_DELIVERED, "ok");
    }
    mutex_unlock(&g.lock);
}

/* ---- The writer thread: sends c's outbox ------------------------------------ */

THREAD_FUNCTION(writer_thread, arg) {
    struct client *c = (struct client *)arg;
    int broken = 0;
    for (;;) {
        mutex_lock(&c->lock);
        while (!c->head && !c->closing) cond_wait(&c->wake, &c->lock);
        struct outframe *f = c->head;
        if (f) {
            c->head = f->next;
            if (!c->head) c->tail = NULL;
            if (f->delivery) c->queued -= f->len;
        }
        mutex_unlock(&c->lock);
        if (!f) break; /* closing, and nothing left to send */

        if (f->delivery) delivery_progress(f->delivery, WRITING);
        int sent = !broken && send_all(c->sock, f->bytes, f->len) == 0;
        if (f->delivery && sent) delivery_progress(f->delivery, WRITTEN);
        if (!sent && !broken) {
            /* Gone, or not reading for WRITE_TIMEOUT_MS: wake the client
             * thread (its recv() returns) so that it ends the connection. */
            broken = 1;
            shutdown(c->sock, SHUT_RDWR);
        }
        free(f->bytes);
        free(f);
    }
    THREAD_END;
}

/* ---- Answering requests ------------------------------------------------------ */

static void answer_time(struct client *c, uint32_t id) {
    /* STUDENT-TODO-BEGIN: 服务端 c.1 请求类型为获取时间：调用 time() 获取本地时间，然后将时间数据组装进响应数据包，调用 send() 发给客户端 (T: put the local time into a response) */
    char now[40];
    format_time(now, sizeof now, 1);
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, TNLM_TYPE_TIME, TNLM_CLASS_RESPONSE, id);
    out_string(&o, now, strlen(now));
    push(c, &o, 0);
    /* STUDENT-TODO-SKELETON
    (void)c;
    (void)id;
    STUDENT-TODO-END */
}

static void answer_name(struct client *c, uint32_t id) {
    /* STUDENT-TODO-BEGIN: 服务端 c.2 请求类型为获取名字：将服务器的名字组装进响应数据包，调用 send() 发给客户端 (N: put the server's name into a response) */
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, TNLM_TYPE_NAME, TNLM_CLASS_RESPONSE, id);
    out_string(&o, cfg.name, strlen(cfg.name));
    push(c, &o, 0);
    /* STUDENT-TODO-SKELETON
    (void)c;
    (void)id;
    STUDENT-TODO-END */
}

static void answer_list(struct client *c, uint32_t id) {
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, TNLM_TYPE_LIST, TNLM_CLASS_RESPONSE, id);
    uint64_t count = 0;
    out_uint(&o, count, 8); /* written again below, once known */
    /* STUDENT-TODO-BEGIN: 服务端 c.3 请求类型为获取客户端列表：读取客户端列表数据，将编号、IP 地址、端口等数据组装进响应数据包，调用 send() 发给客户端 (L: every client's id, address, port and connection time, under the list's lock) */
    mutex_lock(&g.lock);
    for (struct client *k = g.clients; k; k = k->next) {
        size_t before = o.len;
        out_uint(&o, k->id, 4);
        out_ip(&o, (const struct sockaddr *)&k->addr);
        out_uint(&o, k->port, 2);
        out_string(&o, k->since, strlen(k->since));
        if (o.len - TNLM_HEADER_LEN > cfg.max_payload) { /* no room for more: the lowest ids fit */
            o.len = before;
            break;
        }
        count++;
    }
    mutex_unlock(&g.lock);
    /* STUDENT-TODO-SKELETON
    (void)g.clients;
    STUDENT-TODO-END */
    if (!o.failed) /* the count, u64 little-endian, right after the header */
        for (int i = 0; i < 8; i++) o.bytes[TNLM_HEADER_LEN + i] = (unsigned char)(count >> (8 * i));
    push(c, &o, 0);
}

/* M: forward the text to client `to` as an M indication with a fresh
 * delivery id; the sender's receipt comes when the target acknowledges. */
static void forward(struct client *c, uint32_t request_id, uint32_t to, const char *text, size_t len) {
    char reason[128];
    mutex_lock(&g.lock);
    /* STUDENT-TODO-BEGIN: 服务端 c.4 请求类型为发送消息：根据编号读取客户端列表数据，如果编号不存在，将错误代码和出错描述信息组装进响应数据包发回源客户端；如果编号存在并且状态是已连接，则将要转发的消息组装进指示数据包，发给接收客户端 (M: look the target up; unknown: no_such_client; else queue an M indication for it) */
    struct client *target = g.stopping ? NULL : find_client(to);
    if (!target) {
        snprintf(reason, sizeof reason, "no client with id %lu is connected", (unsigned long)to);
        send_receipt(c, request_id, to, g.stopping ? TNLM_STATUS_TARGET_GONE : TNLM_STATUS_NO_SUCH_CLIENT, reason);
        mutex_unlock(&g.lock);
        return;
    }
    uint32_t delivery = g.next_delivery++;
    if (delivery == 0) delivery = g.next_delivery++; /* never 0 */
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, TNLM_TYPE_MESSAGE, TNLM_CLASS_INDICATION, delivery);
    out_uint(&o, c->id, 4); /* from: the server's own knowledge, never the client's word */
    out_ip(&o, (const struct sockaddr *)&c->addr);
    out_uint(&o, c->port, 2);
    out_string(&o, text, len);
    size_t payload = out_finish(&o);
    int pushed = PUSH_FULL;
    if (!o.failed && payload > cfg.max_payload) {
        snprintf(reason, sizeof reason, "message too large to forward: %lu bytes, the limit is %lu",
                 (unsigned long)payload, (unsigned long)cfg.max_payload);
        send_receipt(c, request_id, to, TNLM_STATUS_TOO_LARGE, reason);
        free(o.bytes);
        mutex_unlock(&g.lock);
        return;
    }
    struct pending *p = (struct pending *)malloc(sizeof *p);
    if (p) {
        p->delivery = delivery;
        p->sender = c->id;
        p->request_id = request_id;
        p->target = to;
        p->deadline = now_ms() + cfg.ack_timeout_ms;
        p->state = QUEUED;
        p->acked = 0;
        p->next = g.pending;
        g.pending = p;
        pushed = push(target, &o, delivery);
    } else free(o.bytes);
    if (pushed != PUSH_OK) {
        if (p) {
            g.pending = p->next;
            free(p);
        }
        snprintf(reason, sizeof reason, pushed == PUSH_GONE ? "client %lu has disconnected"
                                                             : "client %lu is not reading; its queue is full",
                 (unsigned long)to);
        send_receipt(c, request_id, to, pushed == PUSH_GONE ? TNLM_STATUS_TARGET_GONE : TNLM_STATUS_QUEUE_FULL,
                     reason);
    }
    /* STUDENT-TODO-SKELETON
    (void)c;
    (void)request_id;
    (void)to;
    (void)text;
    (void)len;
    (void)reason;
    STUDENT-TODO-END */
    mutex_unlock(&g.lock);
}

/* A: client c acknowledges the message with this delivery id. Only a
 * message to c, and one whose sending has begun, counts. */
static void acknowledge(struct client *c, uint32_t delivery) {
    mutex_lock(&g.lock);
    struct pending **pp = find_pending(delivery);
    if (*pp && (*pp)->target == c->id) {
        if ((*pp)->state == WRITTEN) settle(pp, TNLM_STATUS_DELIVERED, "ok");
        else if ((*pp)->state == WRITING) (*pp)->acked = 1; /* settled when the send() returns */
    }
    mutex_unlock(&g.lock);
}

/* Messages from c whose target has not acknowledged in time. */
static void expire_deliveries(struct client *c, unsigned long long now) {
    char reason[96];
    snprintf(reason, sizeof reason, "no acknowledgement within %u ms", cfg.ack_timeout_ms);
    mutex_lock(&g.lock);
    struct pending **pp = &g.pending;
    while (*pp) {
        if ((*pp)->sender == c->id && now >= (*pp)->deadline) settle(pp, TNLM_STATUS_NOT_ACKNOWLEDGED, reason);
        else pp = &(*pp)->next;
    }
    mutex_unlock(&g.lock);
}

/* One whole frame from c, checked in PROTOCOL.md's order (steps 4 to 7;
 * steps 1 to 3 are in read_frames). A bad frame gets an error and is
 * skipped; the connection goes on. */
static void handle_frame(struct client *c, const unsigned char *h, const unsigned char *payload, uint32_t length) {
    unsigned char type = h[TNLM_OFF_TYPE], klass = h[TNLM_OFF_CLASS];
    uint32_t id = get_u32(h + TNLM_OFF_REQUEST_ID);
    if (h[TNLM_OFF_RESERVED] != 0) {
        send_error(c, TNLM_ERROR_INVALID_HEADER, id, "the reserved byte is not 0");
        return;
    }
    if (type == 0 || !strchr("TNLMHSEPA", type) || klass > TNLM_CLASS_INDICATION)
        {
        send_error(c, TNLM_ERROR_UNKNOWN_TYPE, id, "unknown frame type or class");
        return;
    }
    int client_may_send = (klass == TNLM_CLASS_REQUEST && strchr("TNLMP", type)) ||
                          (klass == TNLM_CLASS_RESPONSE && (type == TNLM_TYPE_PING || type == TNLM_TYPE_ACK));
    if (!client_may_send) {
        send_error(c, TNLM_ERROR_UNEXPECTED_FRAME, id, "a client does not send this frame");
        return;
    }
    if (type != TNLM_TYPE_MESSAGE && length != 0)
        {
        send_error(c, TNLM_ERROR_MALFORMED_PAYLOAD, id, "this frame has an empty payload");
        return;
    }

    switch (type) {
    case TNLM_TYPE_TIME: answer_time(c, id); break;
    case TNLM_TYPE_NAME: answer_name(c, id); break;
    case TNLM_TYPE_LIST: answer_list(c, id); break;
    case TNLM_TYPE_MESSAGE: {
        struct in r = in_start(payload, length);
        uint32_t to = (uint32_t)in_uint(&r, 4);
        size_t len;
        const char *text = in_string(&r, &len);
        if (!in_done(&r)) {
        send_error(c, TNLM_ERROR_MALFORMED_PAYLOAD, id, "not a SendRequest (to, UTF-8 text)");
        return;
    }
        forward(c, id, to, text, len);
        break;
    }
    case TNLM_TYPE_PING:
        if (klass == TNLM_CLASS_REQUEST) { /* a ping from the client: pong, same id */
            struct out o;
            memset(&o, 0, sizeof o);
            out_frame(&o, TNLM_TYPE_PING, TNLM_CLASS_RESPONSE, id);
            push(c, &o, 0);
        } /* else a pong to our ping: being here was the sign of life */
        break;
    case TNLM_TYPE_ACK: acknowledge(c, id); break;
    }
}

/* Takes every whole frame out of buf[0..*have), checking the header as it
 * arrives: magic byte by byte, then version and length once 16 bytes are in.
 * Returns LEAVE_FATAL after a fatal error (queued), else 0. A frame ends
 * where its length says: one recv() may hold part of a frame or several. */
static int read_frames(struct client *c, unsigned char *buf, size_t *have, unsigned long long now,
                       unsigned long long *frame_start) {
    while (*have > 0) {
        size_t n = *have;
        if (memcmp(buf, TNLM_MAGIC, n < 4 ? n : 4) != 0) {
            send_error(c, TNLM_ERROR_BAD_MAGIC, 0, "the stream does not start with TNLM");
            return LEAVE_FATAL;
        }
        if (n < TNLM_HEADER_LEN) return 0; /* the rest of the header is still on its way */
        uint32_t id = get_u32(buf + TNLM_OFF_REQUEST_ID), length = get_u32(buf + TNLM_OFF_LENGTH);
        if (buf[TNLM_OFF_VERSION] != TNLM_VERSION) {
            send_error(c, TNLM_ERROR_UNSUPPORTED_VERSION, 0, "this server speaks TNLM version 1");
            return LEAVE_FATAL;
        }
        if (length > cfg.max_payload) {
            send_error(c, TNLM_ERROR_OVERSIZE, id, "the frame is larger than max_payload");
            return LEAVE_FATAL;
        }
        if (n < TNLM_HEADER_LEN + (size_t)length) return 0; /* the rest of the payload is on its way */
        handle_frame(c, buf, buf + TNLM_HEADER_LEN, length);
        size_t used = TNLM_HEADER_LEN + (size_t)length;
        memmove(buf, buf + used, n - used);
        *have = n - used;
        *frame_start = now; /* the frame clock restarts whenever a frame completes */
    }
    return 0;
}

/* ---- Leaving ---------------------------------------------------------------- */

/* Ends c's connection: off the list, its undelivered messages settled, its
 * writer joined, its socket closed; then onto g.departed for main to join. */
static void leave(struct client *c, int how) {
    mutex_lock(&g.lock);
    for (struct client **pc = &g.clients; *pc; pc = &(*pc)->next)
        if (*pc == c) {
            *pc = c->next;
            g.count--;
            break;
        }
    settle_departed(c);
    mutex_unlock(&g.lock);

    mutex_lock(&c->lock);
    c->closing = 1;
    cond_signal(&c->wake);
    mutex_unlock(&c->lock);
    if (how == LEAVE_CUT) shutdown(c->sock, SHUT_RDWR); /* a blocked send() returns at once */
    if (c->has_writer && thread_join(c->writer) != 0)
        fprintf(stderr, "cannot join client %lu's writer\n", (unsigned long)c->id);
    if (how == LEAVE_FATAL) {
        /* Our error frame is sent. Close our side and read what the client
         * still sends for a while: closing with unread data would send an RST,
         * which can destroy the error frame before the client reads it. */
        char scrap[4096];
        unsigned long long until = now_ms() + LINGER_MS;
        shutdown(c->sock, SHUT_WR);
        while (now_ms() < until && wait_readable(c->sock, (int)(until - now_ms())) > 0 &&
               recv(c->sock, scrap, sizeof scrap, 0) > 0) {
        }
    }
    if (close_socket(c->sock) != 0) fprintf(stderr, "closing client %lu's socket failed\n", (unsigned long)c->id);
    fprintf(stderr, "client %lu (%s) disconnected\n", (unsigned long)c->id, c->addr_text);

    mutex_lock(&g.lock);
    c->next = g.departed;
    g.departed = c;
    g.threads--;
    cond_signal(&g.departed_cond);
    mutex_unlock(&g.lock);
}

/* ---- The client thread (step c's sub-thread) ---------------------------------- */

THREAD_FUNCTION(client_thread, arg) {
    struct client *c = (struct client *)arg;
    size_t cap = TNLM_HEADER_LEN + (size_t)cfg.max_payload, have = 0;
    unsigned char *buf = (unsigned char *)malloc(cap);
    if (!buf || thread_start(&c->writer, writer_thread, c) != 0) {
        fprintf(stderr, "client %lu: no memory or thread for it\n", (unsigned long)c->id);
        free(buf);
        leave(c, LEAVE_CUT);
        THREAD_END;
    }
    c->has_writer = 1; /* its first frame, the hello, is already queued */

    unsigned long long now = now_ms(), last_heard = now, next_ping = now + cfg.heartbeat_ms, frame_start = now;
    uint32_t ping_id = 0;
    int how = LEAVE_CLOSED;
    for (;;) {
        int ready = wait_readable(c->sock, TICK_MS);
        now = now_ms();
        if (ready < 0) break;
        if (ready > 0) {
            int got;
            /* STUDENT-TODO-BEGIN: 服务端 c. 循环调用 receive()，如果收到了一个完整的请求数据包，根据请求类型做相应的动作 (recv() what has arrived, after the `have` bytes already in buf: a frame may come in pieces, or several at once) */
            got = (int)recv(c->sock, (char *)buf + have, (int)(cap - have), 0);
            /* STUDENT-TODO-SKELETON
            got = 0;
            STUDENT-TODO-END */
            if (got <= 0) { /* 0: the client closed its side; < 0: the connection failed */
                if (got == 0 && have > 0) {
                    uint32_t id = have >= TNLM_HEADER_LEN ? get_u32(buf + TNLM_OFF_REQUEST_ID) : 0;
                    send_error(c, TNLM_ERROR_TRUNCATED, id, "the connection ended in the middle of a frame");
                    how = LEAVE_FATAL;
                }
                break;
            }
            if (have == 0) frame_start = now;
            have += (size_t)got;
            last_heard = now; /* any byte is a sign of life */
            next_ping = now + cfg.heartbeat_ms;
            how = read_frames(c, buf, &have, now, &frame_start);
            if (how != LEAVE_CLOSED) break;
        }

        /* Timers. */
        mutex_lock(&g.lock);
        int cut = g.stopping && now >= g.stop_time + SHUTDOWN_GRACE_MS;
        mutex_unlock(&g.lock);
        if (cut) {
            how = LEAVE_CUT; /* told of the shutdown, still connected */
            break;
        }
        if (have > 0 && now - frame_start >= cfg.frame_timeout_ms) {
            send_error(c, TNLM_ERROR_TIMEOUT, 0, "the rest of the frame did not come in time");
            how = LEAVE_FATAL;
            break;
        }
        if (cfg.heartbeat_ms && now - last_heard >= 3ULL * cfg.heartbeat_ms) {
            send_error(c, TNLM_ERROR_TIMEOUT, 0, "no sign of life for three heartbeat intervals");
            how = LEAVE_FATAL;
            break;
        }
        if (cfg.heartbeat_ms && now >= next_ping) { /* silent for an interval: ping it */
            struct out o;
            memset(&o, 0, sizeof o);
            if (++ping_id == 0) ping_id = 1;
            out_frame(&o, TNLM_TYPE_PING, TNLM_CLASS_INDICATION, ping_id);
            push(c, &o, 0);
            next_ping += cfg.heartbeat_ms;
        }
        expire_deliveries(c, now);
    }
    leave(c, how);
    free(buf);
    THREAD_END;
}

/* ---- Accepting clients (step c) -------------------------------------------------- */

/* Refuses a connection: an E frame instead of the hello, then close. */
static void refuse(socket_t sock, const char *why) {
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, TNLM_TYPE_ERROR, TNLM_CLASS_RESPONSE, 0);
    out_uint(&o, TNLM_ERROR_TOO_MANY_CLIENTS, 2);
    out_string(&o, why, strlen(why));
    out_finish(&o);
    if (o.failed || send_all(sock, o.bytes, o.len) != 0) fprintf(stderr, "could not tell a client: %s\n", why);
    free(o.bytes);
    close_socket(sock);
}

static void free_client(struct client *c) {
    while (c->head) {
        struct outframe *f = c->head;
        c->head = f->next;
        free(f->bytes);
        free(f);
    }
    mutex_destroy(&c->lock);
    cond_destroy(&c->wake);
    free(c);
}

/* A new connection: a list entry with the next id, the hello queued, and
 * its thread started. The accepted socket is handed to that thread. */
static void new_client(socket_t sock, const struct sockaddr_storage *addr) {
    struct client *c = (struct client *)calloc(1, sizeof(struct client));
    if (!c) {
        refuse(sock, "the server is out of memory");
        return;
    }
    c->sock = sock;
    c->addr = *addr;
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        c->port = ntohs(v6->sin6_port);
        if (memcmp(&v6->sin6_addr, mapped, 12) == 0) { /* an IPv4 client of a dual-stack socket */
            struct sockaddr_in v4;
            memset(&v4, 0, sizeof v4);
            v4.sin_family = AF_INET;
            v4.sin_port = v6->sin6_port;
            memcpy(&v4.sin_addr, (const unsigned char *)&v6->sin6_addr + 12, 4);
            memset(&c->addr, 0, sizeof c->addr);
            memcpy(&c->addr, &v4, sizeof v4);
        }
    } else c->port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
    const void *ip = c->addr.ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)&c->addr)->sin_addr
                                                  : (const void *)&((const struct sockaddr_in6 *)&c->addr)->sin6_addr;
    if (!inet_ntop(c->addr.ss_family, (void *)ip, c->addr_text, sizeof c->addr_text))
        snprintf(c->addr_text, sizeof c->addr_text, "?");
    format_time(c->since, sizeof c->since, 0);
    mutex_init(&c->lock);
    cond_init(&c->wake);

    /* Small frames go out at once, and a client that stops reading does
     * not block its writer thread for ever. */
    int one = 1;
    if (setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one) != 0)
        fprintf(stderr, "TCP_NODELAY: error %d\n", socket_error());
#ifdef _WIN32
    DWORD write_timeout = WRITE_TIMEOUT_MS;
#else
    struct timeval write_timeout;
    write_timeout.tv_sec = WRITE_TIMEOUT_MS / 1000;
    write_timeout.tv_usec = 0;
#endif
    if (setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, (const char *)&write_timeout, sizeof write_timeout) != 0)
        fprintf(stderr, "SO_SNDTIMEO: error %d\n", socket_error());

    mutex_lock(&g.lock);
    if (g.count >= cfg.max_clients) {
        mutex_unlock(&g.lock);
        free_client(c);
        refuse(sock, "the server has as many clients as it takes");
        return;
    }
    c->id = g.next_id++;
    /* The hello goes first: queued before anyone can find this client. */
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, TNLM_TYPE_HELLO, TNLM_CLASS_INDICATION, 0);
    out_uint(&o, c->id, 4);
    out_string(&o, cfg.name, strlen(cfg.name));
    out_uint(&o, TNLM_VERSION, 1);
    out_uint(&o, cfg.max_payload, 4);
    push(c, &o, 0);
    /* The list is kept in ascending id order: append at the end. */
    struct client **tail = &g.clients;
    while (*tail) tail = &(*tail)->next;
    *tail = c;
    g.count++;
    g.threads++; /* counted before it starts: it may finish at once */
    mutex_unlock(&g.lock);
    fprintf(stderr, "client %lu connected from %s port %u\n", (unsigned long)c->id, c->addr_text, (unsigned)c->port);

    /* STUDENT-TODO-BEGIN: 服务端 c. 然后创建一个子线程后继续调用 accept()（刚获得的句柄要传递给子线程，子线程内部要使用该句柄发送和接收数据） (start the client's thread, handing it the client and its socket) */
    if (thread_start(&c->thread, client_thread, c) == 0) return;
    /* STUDENT-TODO-SKELETON
    (void)client_thread;
    STUDENT-TODO-END */
    /* No thread: undo, and tell the client. */
    mutex_lock(&g.lock);
    for (struct client **pc = &g.clients; *pc; pc = &(*pc)->next)
        if (*pc == c) {
            *pc = c->next;
            g.count--;
            break;
        }
    g.threads--;
    settle_departed(c);
    mutex_unlock(&g.lock);
    fprintf(stderr, "client %lu: cannot start its thread\n", (unsigned long)c->id);
    free_client(c);
    refuse(sock, "the server cannot start a thread for one more client");
}

/* Joins the threads of clients that have left, and frees them. */
static void join_departed(void) {
    mutex_lock(&g.lock);
    struct client *c = g.departed;
    g.departed = NULL;
    mutex_unlock(&g.lock);
    while (c) {
        struct client *next = c->next;
        if (thread_join(c->thread) != 0) fprintf(stderr, "cannot join client %lu's thread\n", (unsigned long)c->id);
        free_client(c);
        c = next;
    }
}

/* ---- The console (step d) -------------------------------------------------------- */

/* Reads commands: `quit` stops the server, `list` shows the clients. */
THREAD_FUNCTION(console_thread, arg) {
    (void)arg;
    char line[256];
    while (read_line(line, sizeof line)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strcmp(line, "quit") == 0 || strcmp(line, "exit") == 0) {
            mutex_lock(&g.lock);
            g.quit_requested = 1;
            mutex_unlock(&g.lock);
            THREAD_END;
        } else if (strcmp(line, "list") == 0) {
            mutex_lock(&g.lock);
            printf("%u client(s) connected\n", g.count);
            for (struct client *c = g.clients; c; c = c->next)
                printf("%6lu  %s  %u  %s\n", (unsigned long)c->id, c->addr_text, (unsigned)c->port, c->since);
            fflush(stdout);
            mutex_unlock(&g.lock);
        } else if (line[0]) fprintf(stderr, "unknown command \"%s\"; commands: list, quit\n", line);
    }
    fprintf(stderr, "end of standard input: still serving (stop with Ctrl-C)\n");
    THREAD_END;
}

/* Step d: every client is told (messages waiting for an ack are answered
 * target_gone first, then an S frame), and every client thread is joined:
 * clients that have not closed within SHUTDOWN_GRACE_MS are cut off. */
static void stop_server(void) {
    mutex_lock(&g.lock);
    g.stopping = 1;
    g.stop_time = now_ms();
    /* STUDENT-TODO-BEGIN: 服务端 d. 主线程还负责检测退出指令，检测到后即通知并等待各子线程退出 (tell every client, then wait for every client thread) */
    while (g.pending) settle(&g.pending, TNLM_STATUS_TARGET_GONE, "the server is shutting down");
    const char *reason = "server is shutting down";
    for (struct client *c = g.clients; c; c = c->next) {
        struct out o;
        memset(&o, 0, sizeof o);
        out_frame(&o, TNLM_TYPE_SHUTDOWN, TNLM_CLASS_INDICATION, 0);
        out_string(&o, reason, strlen(reason));
        push(c, &o, 0);
    }
    while (g.threads > 0) cond_wait(&g.departed_cond, &g.lock);
    /* STUDENT-TODO-END */
    mutex_unlock(&g.lock);
    join_departed();
}

/* ---- Steps a and b: the listening socket ------------------------------------------ */

static socket_t open_listener(void) {
    struct addrinfo hints, *found;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = cfg.bind ? AF_UNSPEC : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    int err = getaddrinfo(cfg.bind, cfg.port, &hints, &found);
    if (err != 0) {
        const char *host = cfg.bind ? cfg.bind : "0.0.0.0";
        fprintf(stderr, "error: bad address %s port %s: %s\n", host, cfg.port, gai_strerror(err));
        return INVALID_SOCKET;
    }
    socket_t sock = INVALID_SOCKET;
    /* STUDENT-TODO-BEGIN: 服务端 a. 运行初始化，调用 socket()，向操作系统申请 socket 句柄 (ask the operating system for a socket) */
    sock = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
    if (sock == INVALID_SOCKET) {
        fprintf(stderr, "error: socket() failed: error %d\n", socket_error());
        freeaddrinfo(found);
        return INVALID_SOCKET;
    }
    /* STUDENT-TODO-END */
    int yes = 1, no = 0;
#ifndef _WIN32 /* restart at once on the same port (on Windows this would let others share it) */
    if (setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, (const char *)&yes, sizeof yes) != 0)
        fprintf(stderr, "SO_REUSEADDR: error %d\n", socket_error());
#endif
    (void)yes;
    if (found->ai_family == AF_INET6 && /* [::] takes IPv4 clients too */
        setsockopt(sock, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&no, sizeof no) != 0)
        fprintf(stderr, "IPV6_V6ONLY: error %d\n", socket_error());
    /* STUDENT-TODO-BEGIN: 服务端 b. 调用 bind()，绑定监听端口，接着调用 listen()，设置连接等待队列长度 (bind the port, then listen with a backlog) */
    if (bind(sock, found->ai_addr, (socklen_t)found->ai_addrlen) != 0) {
        fprintf(stderr, "error: bind() to port %s failed: error %d (is the port in use?)\n", cfg.port, socket_error());
        close_socket(sock);
        freeaddrinfo(found);
        return INVALID_SOCKET;
    }
    if (listen(sock, 64) != 0) {
        fprintf(stderr, "error: listen() failed: error %d\n", socket_error());
        close_socket(sock);
        freeaddrinfo(found);
        return INVALID_SOCKET;
    }
    /* STUDENT-TODO-END */
    freeaddrinfo(found);
    return sock;
}

/* Prints `listening on ADDR:PORT` with the port the system chose for --port 0. */
static int print_listening(socket_t sock) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    char text[64];
    if (getsockname(sock, (struct sockaddr *)&addr, &len) != 0) return -1;
    int v6 = addr.ss_family == AF_INET6;
    const void *ip = v6 ? (const void *)&((struct sockaddr_in6 *)&addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)&addr)->sin_addr;
    unsigned port = ntohs(v6 ? ((struct sockaddr_in6 *)&addr)->sin6_port : ((struct sockaddr_in *)&addr)->sin_port);
    if (!inet_ntop(addr.ss_family, (void *)ip, text, sizeof text)) return -1;
    printf(v6 ? "listening on [%s]:%u\n" : "listening on %s:%u\n", text, port);
    return fflush(stdout) == 0 ? 0 : -1;
}

/* ---- The command line ----------------------------------------------------------- */

static int usage(FILE *to) {
    fprintf(to,
            "usage: tnlm-server [--port N] [--bind ADDR] [--name NAME] [--heartbeat SECS]\n"
            "                   [--ack-timeout SECS] [--frame-timeout SECS] [--max-clients N]\n"
            "\n"
            "The TNLM lab server in C (docs/PROTOCOL.md). Type `quit` to stop it: every\n"
            "client is told, every thread joined; `list` shows the connected clients.\n"
            "\n"
            "  --port N             TCP port (default 4579; 0 picks a free one)\n"
            "  --bind ADDR          address to listen on (default 0.0.0.0; :: for IPv6 too)\n"
            "  --name NAME          the name answered to N requests (default: the host name)\n"
            "  --heartbeat SECS     ping a client silent this long, drop it after 3x (default 30; 0 = off)\n"
            "  --ack-timeout SECS   a message not acknowledged this long is not_acknowledged (default 5)\n"
            "  --frame-timeout SECS a half-sent frame not finished this long is a timeout (default 10)\n"
            "  --max-clients N      clients beyond N get a too_many_clients error (default 10000)\n");
    return to == stdout ? 0 : 2;
}

/* Seconds (a decimal number, e.g. 2 or 0.5) as milliseconds; -1 if bad. */
static long parse_secs(const char *text, int zero_ok) {
    char *end;
    double secs = strtod(text, &end);
    if (end == text || *end || !(secs >= 0 && secs <= 86400) || (!zero_ok && secs * 1000 < 1)) return -1;
    return (long)(secs * 1000 + 0.5);
}

static int parse_args(int argc, char **argv) {
    cfg.port = "4579";
    cfg.heartbeat_ms = 30000;
    cfg.ack_timeout_ms = 5000;
    cfg.frame_timeout_ms = 10000;
    cfg.max_clients = 10000;
    cfg.max_payload = TNLM_DEFAULT_MAX_PAYLOAD;
    if (gethostname(cfg.name, sizeof cfg.name) != 0) snprintf(cfg.name, sizeof cfg.name, "tnlm-c-server");
    cfg.name[sizeof cfg.name - 1] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) return usage(stdout) - 1;
        if (!value) {
            fprintf(stderr, "error: unknown option or missing value: %s\n", opt);
            return usage(stderr);
        }
        long ms = 0;
        char *end;
        i++;
        if (strcmp(opt, "--port") == 0 || strcmp(opt, "-p") == 0) {
            unsigned long port = strtoul(value, &end, 10);
            if (end == value || *end || port > 65535) {
                fprintf(stderr, "error: --port wants 0 to 65535, not %s\n", value);
                return 2;
            }
            cfg.port = value;
        } else if (strcmp(opt, "--bind") == 0) {
            cfg.bind = value;
        } else if (strcmp(opt, "--name") == 0) {
            if (strlen(value) > TNLM_MAX_NAME_LEN || !utf8_valid((const unsigned char *)value, strlen(value))) {
                fprintf(stderr, "error: --name wants at most %d bytes of UTF-8\n", TNLM_MAX_NAME_LEN);
                return 2;
            }
            snprintf(cfg.name, sizeof cfg.name, "%s", value);
        } else if (strcmp(opt, "--heartbeat") == 0 && (ms = parse_secs(value, 1)) >= 0) {
            cfg.heartbeat_ms = (unsigned)ms;
        } else if (strcmp(opt, "--ack-timeout") == 0 && (ms = parse_secs(value, 0)) > 0) {
            cfg.ack_timeout_ms = (unsigned)ms;
        } else if (strcmp(opt, "--frame-timeout") == 0 && (ms = parse_secs(value, 0)) > 0) {
            cfg.frame_timeout_ms = (unsigned)ms;
        } else if (strcmp(opt, "--max-clients") == 0) {
            unsigned long n = strtoul(value, &end, 10);
            if (end == value || *end || n < 1 || n > 1000000) {
                fprintf(stderr, "error: --max-clients wants 1 to 1000000, not %s\n", value);
                return 2;
            }
            cfg.max_clients = (unsigned)n;
        } else {
            fprintf(stderr, "error: bad option or value: %s %s\n", opt, value);
            return usage(stderr);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (sockets_start() != 0) { /* first: on Windows, even gethostname() needs it */
        fprintf(stderr, "error: cannot start the socket library\n");
        return 1;
    }
    int code = parse_args(argc, argv);
    if (code != 0) {
        sockets_stop();
        return code < 0 ? 0 : code; /* -1: --help was printed */
    }
    mutex_init(&g.lock);
    cond_init(&g.departed_cond);
    g.next_id = 1;
    g.next_delivery = 1;

    socket_t listener = open_listener(); /* steps a and b */
    if (listener == INVALID_SOCKET || print_listening(listener) != 0) {
        sockets_stop();
        return 1;
    }
    thread_t console;
    int has_console = thread_start(&console, console_thread, NULL) == 0;
    if (!has_console) fprintf(stderr, "cannot read commands from the console (no thread)\n");
    fprintf(stderr, "TNLM lab server \"%s\"; type `quit` to stop, `list` for the clients\n", cfg.name);

    /* Step c: accept connections until `quit`. The wait has a timeout so
     * that the loop also sees the quit command and joins finished threads. */
    for (;;) {
        mutex_lock(&g.lock);
        int quit = g.quit_requested;
        mutex_unlock(&g.lock);
        if (quit) break;
        join_departed();
        int ready = wait_readable(listener, 100);
        if (ready < 0) {
            fprintf(stderr, "error: waiting for connections failed: error %d\n", socket_error());
            break;
        }
        if (ready == 0) continue;
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        socket_t sock;
        /* STUDENT-TODO-BEGIN: 服务端 c. 主线程循环调用 accept()，直到返回一个有效的 socket 句柄 (accept the connection: a new socket for this client) */
        sock = accept(listener, (struct sockaddr *)&addr, &len);
        /* STUDENT-TODO-SKELETON
        (void)len;
        sock = INVALID_SOCKET;
        STUDENT-TODO-END */
        if (sock == INVALID_SOCKET) {
            fprintf(stderr, "accept() failed: error %d\n", socket_error());
            continue;
        }
        new_client(sock, &addr); /* a list entry, and its thread */
    }

    /* Step d. */
    fprintf(stderr, "stopping: telling every client\n");
    if (close_socket(listener) != 0) fprintf(stderr, "closing the listening socket failed\n");
    stop_server();
    if (has_console && thread_join(console) != 0) fprintf(stderr, "cannot join the console thread\n");
    cond_destroy(&g.departed_cond);
    mutex_destroy(&g.lock);
    sockets_stop();
    fprintf(stderr, "stopped\n");
    return 0;
}
