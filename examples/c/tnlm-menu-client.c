/* tnlm-menu-client.c: the lab's client in C, on the raw socket API.
 *
 *   tnlm-menu-client
 *
 * It shows the lab report's menu of 7 items and reads the choices from the
 * keyboard (or any standard input; the end of the input is item 7, Exit).
 * It speaks TNLM version 1 (docs/PROTOCOL.md) and follows the report's
 * client steps:
 *
 *   a. socket()                         connect_to()
 *   b. the menu of 7 items              print_menu()
 *   c. wait for the user's choice       main()
 *   d. act on it (only 1 and 7 while not connected):
 *      1 connect(), then start the receiving thread     connect_to(), receiver_thread()
 *      2 close, telling the receiving thread and waiting for it   disconnect()
 *      3-6 build a request, send() it, wait for the receiving thread to
 *          hand over the answer, print it                request()
 *      7 disconnect if connected, then exit
 *
 * The receiving thread loops on recv(). A whole response goes into a queue
 * (a mutex and a condition variable) for the main thread, which waits for
 * the answer to its request. Indications are printed the moment they arrive,
 * even while the menu waits for input: a message from another client (the
 * thread acknowledges it at once, so that its sender hears `delivered`), the
 * server's ping (answered with a pong), the server's shutdown notice.
 *
 * Builds: see README.md (cc, c++, mingw, Visual Studio via CMakeLists.txt).
 */
#include "wire.h"

#define ANSWER_TIMEOUT_MS 10000 /* how long to wait for an answer */

/* A frame the receiving thread hands to the main thread. */
struct item {
    struct item *next;
    unsigned char type, klass;
    uint32_t id, length;
    unsigned char *payload;
};

static struct connection {
    int connected;
    socket_t sock;
    uint32_t my_id, max_payload, next_request_id;
    thread_t receiver;
    mutex_t send_lock; /* both threads send: whole frames, one at a time */

    mutex_t lock;  /* guards the queue: */
    cond_t arrived; /* signalled when an item arrives or the connection ends */
    struct item *head, *tail;
    int ended; /* the receiving thread has stopped */
} conn;

static mutex_t print_lock; /* lines from the two threads do not mix */

/* ---- Frames on the socket ------------------------------------------------ */

/* recv() until exactly n bytes have come: TCP may deliver a frame in
 * pieces. Returns 0, or -1 if the connection ended first. */
static int recv_all(socket_t sock, unsigned char *p, size_t n) {
    while (n > 0) {
        int got = (int)recv(sock, (char *)p, (int)n, 0);
        if (got <= 0) return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Reads one frame: the 16-byte header, then exactly `length` bytes.
 * *payload gets a malloc'ed copy (free it). Returns 0 or -1. */
static int read_frame(socket_t sock, uint32_t max_payload, struct item *f) {
    unsigned char h[TNLM_HEADER_LEN];
    if (recv_all(sock, h, sizeof h) != 0) return -1;
    if (memcmp(h + TNLM_OFF_MAGIC, TNLM_MAGIC, 4) != 0 || h[TNLM_OFF_VERSION] != TNLM_VERSION) {
        fprintf(stderr, "error: this is not a TNLM version %d server\n", TNLM_VERSION);
        return -1;
    }
    f->type = h[TNLM_OFF_TYPE];
    f->klass = h[TNLM_OFF_CLASS];
    f->id = get_u32(h + TNLM_OFF_REQUEST_ID);
    f->length = get_u32(h + TNLM_OFF_LENGTH);
    if (f->length > max_payload) {
        fprintf(stderr, "error: a frame of %lu bytes, above the limit\n", (unsigned long)f->length);
        return -1;
    }
    f->payload = (unsigned char *)malloc(f->length ? f->length : 1);
    if (!f->payload) return -1;
    if (recv_all(sock, f->payload, f->length) != 0) {
        free(f->payload);
        return -1;
    }
    return 0;
}

/* Sends one frame (built in o) whole, under the send lock. Returns 0 or -1. */
static int send_frame(struct out *o) {
    out_finish(o);
    int result = -1;
    if (!o->failed) {
        mutex_lock(&conn.send_lock);
        result = send_all(conn.sock, o->bytes, o->len);
        mutex_unlock(&conn.send_lock);
    }
    free(o->bytes);
    return result;
}

/* A frame with an empty payload: a request, an ack, a pong. */
static int send_empty(char type, int klass, uint32_t id) {
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, type, klass, id);
    return send_frame(&o);
}

/* ---- The receiving thread ---------------------------------------------------- */

/* A message from another client: print it. */
static void print_message(const struct item *f) {
    struct in r = in_start(f->payload, f->length);
    char ip[64];
    size_t len;
    unsigned long from = (unsigned long)in_uint(&r, 4);
    in_ip(&r, ip, sizeof ip);
    unsigned port = (unsigned)in_uint(&r, 2);
    const char *text = in_string(&r, &len);
    mutex_lock(&print_lock);
    const char *format = strchr(ip, ':') ? "\n[message from client %lu ([%s]:%u)] " /* IPv6 */
                                         : "\n[message from client %lu (%s:%u)] ";
    printf(format, from, ip, port);
    print_text(stdout, text, len);
    printf("\n");
    fflush(stdout);
    mutex_unlock(&print_lock);
}

/* An indication that is not a message: shutdown notice or error. */
static void print_notice(const struct item *f) {
    struct in r = in_start(f->payload, f->length);
    size_t len;
    unsigned code = f->type == TNLM_TYPE_ERROR ? (unsigned)in_uint(&r, 2) : 0;
    const char *text = in_string(&r, &len);
    mutex_lock(&print_lock);
    if (f->type == TNLM_TYPE_SHUTDOWN) printf("\n[the server is shutting down: ");
    else printf("\n[server error %u (%s): ", code, tnlm_error_name(code));
    print_text(stdout, text, len);
    printf("]\n");
    fflush(stdout);
    mutex_unlock(&print_lock);
}

/* Loops on recv() until the connection ends (the server closed it, or
 * disconnect() shut it down). Answers need the main thread; the rest is
 * dealt with here, at once. */
THREAD_FUNCTION(receiver_thread, arg) {
    (void)arg;
    for (;;) {
        struct item f;
        /* STUDENT-TODO-BEGIN: 客户端 d.1 创建一个接收数据的子线程，循环调用 receive() (read one whole frame: recv() until its 16 header bytes and its payload are in) */
        if (read_frame(conn.sock, conn.max_payload, &f) != 0) break;
        /* STUDENT-TODO-SKELETON
        memset(&f, 0, sizeof f);
        break;
        STUDENT-TODO-END */
        if (f.type == TNLM_TYPE_MESSAGE && f.klass == TNLM_CLASS_INDICATION) {
            /* Acknowledge first: the sender hears `delivered` only after this. */
            if (send_empty(TNLM_TYPE_ACK, TNLM_CLASS_RESPONSE, f.id) != 0)
                fprintf(stderr, "error: cannot send the ack\n");
            print_message(&f);
            free(f.payload);
        } else if (f.type == TNLM_TYPE_PING && f.klass == TNLM_CLASS_INDICATION) {
            if (send_empty(TNLM_TYPE_PING, TNLM_CLASS_RESPONSE, f.id) != 0)
                fprintf(stderr, "error: cannot send the pong\n");
            free(f.payload);
        } else if (f.klass == TNLM_CLASS_INDICATION || (f.type == TNLM_TYPE_ERROR && f.id == 0)) {
            print_notice(&f);
            free(f.payload);
        } else { /* a response: hand it to the main thread */
            /* STUDENT-TODO-BEGIN: 客户端 d.1 如果收到了一个完整的响应数据包，就通过线程间通信（如消息队列）发送给主线程 (put the response into the queue and wake the main thread) */
            struct item *copy = (struct item *)malloc(sizeof *copy);
            if (!copy) {
                free(f.payload);
                continue;
            }
            *copy = f;
            copy->next = NULL;
            mutex_lock(&conn.lock);
            if (conn.tail) conn.tail->next = copy;
            else conn.head = copy;
            conn.tail = copy;
            cond_signal(&conn.arrived);
            mutex_unlock(&conn.lock);
            /* STUDENT-TODO-SKELETON
            free(f.payload);
            STUDENT-TODO-END */
        }
    }
    mutex_lock(&conn.lock);
    conn.ended = 1;
    cond_signal(&conn.arrived);
    mutex_unlock(&conn.lock);
    THREAD_END;
}

/* ---- Connecting and disconnecting ------------------------------------------------- */

/* Item 1: connects to host:port, reads the hello, starts the receiving
 * thread. Returns 0 or -1 (said why). */
static int connect_to(const char *host, const char *port) {
    struct addrinfo hints, *found, *a;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC; /* IPv4 or IPv6, whichever the name gives */
    hints.ai_socktype = SOCK_STREAM;
    int err = getaddrinfo(host, port, &hints, &found);
    if (err != 0) {
        printf("cannot find %s port %s: %s\n", host, port, gai_strerror(err));
        return -1;
    }
    socket_t sock = INVALID_SOCKET;
    for (a = found; a && sock == INVALID_SOCKET; a = a->ai_next) {
        /* STUDENT-TODO-BEGIN: 客户端 a. 调用 socket()，向操作系统申请 socket 句柄；d.1 调用 connect()，等待返回结果并打印 (get a socket, then connect() it) */
        sock = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (sock == INVALID_SOCKET) {
            printf("socket() failed: error %d\n", socket_error());
        } else if (connect(sock, a->ai_addr, (socklen_t)a->ai_addrlen) != 0) {
            printf("connect() failed: error %d\n", socket_error());
            close_socket(sock);
            sock = INVALID_SOCKET;
        }
        /* STUDENT-TODO-END */
    }
    freeaddrinfo(found);
    if (sock == INVALID_SOCKET) {
        printf("cannot connect to %s port %s\n", host, port);
        return -1;
    }

    /* The server speaks first: the hello, or an error (too many clients). */
    struct item hello;
    if (read_frame(sock, TNLM_MIN_MAX_PAYLOAD, &hello) != 0) {
        printf("the server closed the connection before its hello\n");
        close_socket(sock);
        return -1;
    }
    struct in r = in_start(hello.payload, hello.length);
    size_t name_len;
    uint32_t my_id = (uint32_t)in_uint(&r, 4);
    const char *name = in_string(&r, &name_len);
    in_uint(&r, 1); /* the version: the header said 1 */
    uint32_t max_payload = (uint32_t)in_uint(&r, 4);
    if (hello.type != TNLM_TYPE_HELLO || !in_done(&r) || max_payload < TNLM_MIN_MAX_PAYLOAD) {
        if (hello.type == TNLM_TYPE_ERROR) print_notice(&hello);
        else printf("the server's first frame is not a hello\n");
        free(hello.payload);
        close_socket(sock);
        return -1;
    }
    printf("connected to %s port %s: server \"", host, port);
    print_text(stdout, name, name_len);
    printf("\", my id is %lu\n", (unsigned long)my_id);
    free(hello.payload);

    conn.sock = sock;
    conn.my_id = my_id;
    conn.max_payload = max_payload;
    conn.next_request_id = 1;
    conn.ended = 0;
    if (thread_start(&conn.receiver, receiver_thread, NULL) != 0) {
        printf("cannot start the receiving thread\n");
        close_socket(sock);
        return -1;
    }
    conn.connected = 1;
    return 0;
}

/* Item 2: closes the connection. The receiving thread is blocked in recv():
 * shutdown() makes that recv() return 0, the thread ends, we join it, and
 * only then close the socket (closing it under a thread still using it
 * would be a bug: the number may already name another socket). */
static void disconnect(void) {
    /* STUDENT-TODO-BEGIN: 客户端 d.2 调用 close()，并设置连接状态为未连接。通知并等待子线程关闭 (shut the socket down, wait for the receiving thread, close the socket) */
    if (shutdown(conn.sock, SHUT_RDWR) != 0 && !conn.ended) printf("shutdown() failed: error %d\n", socket_error());
    if (thread_join(conn.receiver) != 0) printf("cannot join the receiving thread\n");
    if (close_socket(conn.sock) != 0) printf("closing the socket failed: error %d\n", socket_error());
    /* STUDENT-TODO-END */
    conn.connected = 0;
    while (conn.head) { /* answers nobody waited for */
        struct item *f = conn.head;
        conn.head = f->next;
        free(f->payload);
        free(f);
    }
    conn.tail = NULL;
    printf("disconnected\n");
}

/* ---- Requests --------------------------------------------------------------------- */

/* Sends a request (built in o, its id `id`) and waits for the receiving
 * thread to hand over its answer. Returns the answer (free it with
 * free_item) or NULL, having said why. */
static struct item *request(struct out *o, uint32_t id) {
    /* STUDENT-TODO-BEGIN: 客户端 d.3–6 组装请求数据包，调用 send() 将数据发送给服务器，接着等待接收数据的子线程返回结果 (send the request, then wait on the queue for the answer with its id) */
    if (send_frame(o) != 0) {
        printf("cannot send to the server: error %d\n", socket_error());
        return NULL;
    }
    unsigned long long until = now_ms() + ANSWER_TIMEOUT_MS;
    struct item *answer = NULL;
    mutex_lock(&conn.lock);
    while (!answer) {
        while (conn.head && !answer) { /* an answer to an earlier request that timed out is skipped */
            struct item *f = conn.head;
            conn.head = f->next;
            if (!conn.head) conn.tail = NULL;
            if (f->id == id) answer = f;
            else {
                free(f->payload);
                free(f);
            }
        }
        unsigned long long now = now_ms();
        if (answer || conn.ended || now >= until) break;
        cond_wait_ms(&conn.arrived, &conn.lock, (unsigned)(until - now));
    }
    mutex_unlock(&conn.lock);
    if (!answer) printf(conn.ended ? "the connection has ended\n" : "no answer in time\n");
    return answer;
    /* STUDENT-TODO-SKELETON
    (void)o;
    (void)id;
    return NULL;
    STUDENT-TODO-END */
}

static void free_item(struct item *f) {
    free(f->payload);
    free(f);
}

/* The next request id: 1, 2, 3, ..., never 0. */
static uint32_t next_id(void) {
    uint32_t id = conn.next_request_id++;
    if (id == 0) id = conn.next_request_id++;
    return id;
}

/* An E frame answering our request. */
static int print_error(const struct item *f) {
    if (f->type != TNLM_TYPE_ERROR) return 0;
    print_notice(f);
    return 1;
}

/* Items 3 and 4: the server's time or name (a string in the response). */
static void ask_string(char type, const char *label) {
    uint32_t id = next_id();
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, type, TNLM_CLASS_REQUEST, id);
    struct item *f = request(&o, id);
    if (!f || print_error(f)) {
        if (f) free_item(f);
        return;
    }
    struct in r = in_start(f->payload, f->length);
    size_t len;
    const char *text = in_string(&r, &len);
    mutex_lock(&print_lock);
    printf("%s: ", label);
    print_text(stdout, text, len);
    printf(in_done(&r) ? "\n" : " (malformed answer)\n");
    mutex_unlock(&print_lock);
    free_item(f);
}

/* One client entry of a list response. */
static void read_entry(struct in *r, uint32_t *id, char *ip, size_t ip_size, unsigned *port, const char **since,
                       size_t *since_len) {
    *id = (uint32_t)in_uint(r, 4);
    in_ip(r, ip, ip_size);
    *port = (unsigned)in_uint(r, 2);
    *since = in_string(r, since_len);
}

/* Item 5: the client list, as a table. */
static void ask_list(void) {
    uint32_t id = next_id();
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, TNLM_TYPE_LIST, TNLM_CLASS_REQUEST, id);
    struct item *f = request(&o, id);
    if (!f || print_error(f)) {
        if (f) free_item(f);
        return;
    }
    struct in r = in_start(f->payload, f->length);
    uint64_t count = in_uint(&r, 8);
    mutex_lock(&print_lock);
    printf("%lu client(s) connected:\n%6s  %-15s  %5s  %s\n", (unsigned long)count, "ID", "IP", "PORT", "SINCE");
    for (uint64_t i = 0; i < count && r.ok; i++) {
        uint32_t client;
        char ip[64];
        unsigned port;
        const char *since;
        size_t since_len;
        read_entry(&r, &client, ip, sizeof ip, &port, &since, &since_len);
        if (!r.ok) break;
        printf("%6lu  %-15s  %5u  ", (unsigned long)client, ip, port);
        print_text(stdout, since, since_len);
        printf(client == conn.my_id ? "  (you)\n" : "\n");
    }
    if (!in_done(&r)) printf("(malformed list)\n");
    mutex_unlock(&print_lock);
    free_item(f);
}

/* Item 6: a message to another client; prints whether it arrived. */
static void send_message(uint32_t to, const char *text) {
    size_t len = strlen(text);
    if (!utf8_valid((const unsigned char *)text, len)) {
        printf("the text is not UTF-8 (on Windows, run `chcp 65001` first)\n");
        return;
    }
    uint32_t id = next_id();
    struct out o;
    memset(&o, 0, sizeof o);
    out_frame(&o, TNLM_TYPE_MESSAGE, TNLM_CLASS_REQUEST, id);
    out_uint(&o, to, 4);
    out_string(&o, text, len);
    if (o.len - TNLM_HEADER_LEN > conn.max_payload) {
        printf("the text is too long for this server\n");
        free(o.bytes);
        return;
    }
    struct item *f = request(&o, id);
    if (!f || print_error(f)) {
        if (f) free_item(f);
        return;
    }
    struct in r = in_start(f->payload, f->length);
    unsigned long target = (unsigned long)in_uint(&r, 4);
    unsigned status = (unsigned)in_uint(&r, 2);
    size_t reason_len;
    const char *reason = in_string(&r, &reason_len);
    mutex_lock(&print_lock);
    if (in_done(&r) && status == TNLM_STATUS_DELIVERED) printf("message delivered to client %lu\n", target);
    else {
        printf("message not delivered to client %lu: ", target);
        print_text(stdout, reason, reason_len);
        printf(" (%s)\n", tnlm_status_name(status));
    }
    mutex_unlock(&print_lock);
    free_item(f);
}

/* ---- The menu ------------------------------------------------------------------------ */

static void print_menu(void) {
    mutex_lock(&print_lock);
    printf("\nPlease input the operation number:\n"
           "+-------+----------------------+\n"
           "| Input | Function             |\n"
           "+-------+----------------------+\n"
           "| 1     | Connect to a server. |\n"
           "| 2     | Close the connect.   |\n"
           "| 3     | Get the server time. |\n"
           "| 4     | Get the server name. |\n"
           "| 5     | Get the client list. |\n"
           "| 6     | Send a message.      |\n"
           "| 7     | Exit.                |\n"
           "+-------+----------------------+\n"
           "> ");
    fflush(stdout);
    mutex_unlock(&print_lock);
}

/* Reads one line from standard input, without its line end, after printing
 * `prompt`. Returns 0, or -1 at the end of the input. */
static int ask(const char *prompt, char *line, size_t size) {
    mutex_lock(&print_lock);
    fputs(prompt, stdout);
    fflush(stdout);
    mutex_unlock(&print_lock);
    if (!read_line(line, size)) return -1;
    line[strcspn(line, "\r\n")] = '\0';
    return 0;
}

int main(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        printf("usage: tnlm-menu-client\n\n"
               "The TNLM lab client in C: a menu of 7 items, read from standard input.\n"
               "Item 1 asks for the server's address and port (default 4579).\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    if (sockets_start() != 0) {
        fprintf(stderr, "error: cannot start the socket library\n");
        return 1;
    }
    mutex_init(&print_lock);
    mutex_init(&conn.send_lock);
    mutex_init(&conn.lock);
    cond_init(&conn.arrived);

    char choice[64], host[256], port[32], to[32], text[4096];
    setvbuf(stdout, NULL, _IONBF, 0); /* every line at once, also into a pipe */
    for (;;) {
        mutex_lock(&conn.lock);
        int ended = conn.connected && conn.ended;
        mutex_unlock(&conn.lock);
        if (ended) { /* the server closed the connection */
            printf("the connection has ended\n");
            disconnect();
        }
        print_menu();
        if (ask("", choice, sizeof choice) != 0) strcpy(choice, "7"); /* end of input: exit */
        int item = atoi(choice);
        if (item >= 2 && item <= 6 && !conn.connected) {
            printf("not connected: choose 1 to connect first\n");
            continue;
        }
        switch (item) {
        case 1:
            if (conn.connected) printf("already connected: choose 2 to disconnect first\n");
            else if (ask("server IP address: ", host, sizeof host) == 0 && ask("port [4579]: ", port, sizeof port) == 0)
                connect_to(host, port[0] ? port : "4579");
            break;
        case 2: disconnect(); break;
        case 3: ask_string(TNLM_TYPE_TIME, "server time"); break;
        case 4: ask_string(TNLM_TYPE_NAME, "server name"); break;
        case 5: ask_list(); break;
        case 6: {
            char *end;
            if (ask("client id: ", to, sizeof to) != 0 || ask("message: ", text, sizeof text) != 0) break;
            unsigned long id = strtoul(to, &end, 10);
            if (end == to || *end || id > 0xFFFFFFFFUL) printf("not a client id: %s\n", to);
            else send_message((uint32_t)id, text);
            break;
        }
        case 7:
            if (conn.connected) disconnect();
            printf("bye\n");
            cond_destroy(&conn.arrived);
            mutex_destroy(&conn.lock);
            mutex_destroy(&conn.send_lock);
            mutex_destroy(&print_lock);
            sockets_stop();
            return 0;
        default: printf("please choose 1 to 7\n");
        }
    }
}
