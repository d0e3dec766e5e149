/* platform.h: the little that differs between Linux (POSIX sockets, pthreads)
 * and Windows (Winsock, _beginthreadex), so that the lab's programs read the
 * same on both. Everything here is a thin name over one system call.
 *
 *   sockets   socket_t, INVALID_SOCKET, close_socket(), socket_error(),
 *             wait_readable() (poll / WSAPoll), SHUT_WR / SHUT_RDWR
 *   threads   thread_t, THREAD_FUNCTION(name, arg), THREAD_END,
 *             thread_start(), thread_join()
 *   locks     mutex_t, mutex_*(); cond_t, cond_*() (condition variables)
 *   time      now_ms() (monotonic), wall_clock() (seconds + milliseconds)
 *   console   read_line() (UTF-8 from the keyboard, on Windows too)
 *
 * The same code builds as C11 and as C++17 (Visual Studio compiles .cpp).
 */
#ifndef TNLM_PLATFORM_H
#define TNLM_PLATFORM_H

/* Feature switches: before the first system header. */
#ifdef _WIN32
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0600 /* Vista or later: inet_ntop, WSAPoll, condition variables */
#endif
#ifndef _WINSOCK_DEPRECATED_NO_WARNINGS
#define _WINSOCK_DEPRECATED_NO_WARNINGS /* Visual Studio: inet_addr and friends stay usable */
#endif
#ifndef _CRT_SECURE_NO_WARNINGS
#define _CRT_SECURE_NO_WARNINGS /* Visual Studio: the standard C functions are fine */
#endif
#elif !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* getaddrinfo, poll, clock_gettime, gethostname */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _WIN32
/* ------------------------------------------------------------ Windows -- */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <process.h> /* _beginthreadex */

typedef SOCKET socket_t;
#define close_socket closesocket
#define SHUT_WR SD_SEND
#define SHUT_RDWR SD_BOTH
/* The error of the last failed socket call. */
static inline int socket_error(void) { return WSAGetLastError(); }

typedef HANDLE thread_t;
#define THREAD_FUNCTION(name, arg) static unsigned __stdcall name(void *arg)
#define THREAD_END return 0
typedef unsigned(__stdcall *thread_function)(void *);
/* Starts fn(arg) on a new thread. Returns 0 on success. */
static inline int thread_start(thread_t *t, thread_function fn, void *arg) {
    uintptr_t handle = _beginthreadex(NULL, 0, fn, arg, 0, NULL);
    if (handle == 0) return -1;
    *t = (HANDLE)handle;
    return 0;
}
/* Waits for the thread to end and frees it. Returns 0 on success. */
static inline int thread_join(thread_t t) {
    if (WaitForSingleObject(t, INFINITE) != WAIT_OBJECT_0) return -1;
    return CloseHandle(t) ? 0 : -1;
}

typedef CRITICAL_SECTION mutex_t;
static inline void mutex_init(mutex_t *m) { InitializeCriticalSection(m); }
static inline void mutex_lock(mutex_t *m) { EnterCriticalSection(m); }
static inline void mutex_unlock(mutex_t *m) { LeaveCriticalSection(m); }
static inline void mutex_destroy(mutex_t *m) { DeleteCriticalSection(m); }

typedef CONDITION_VARIABLE cond_t;
static inline void cond_init(cond_t *c) { InitializeConditionVariable(c); }
static inline void cond_wait(cond_t *c, mutex_t *m) { SleepConditionVariableCS(c, m, INFINITE); }
/* Waits at most ms milliseconds (the caller re-checks its condition). */
static inline void cond_wait_ms(cond_t *c, mutex_t *m, unsigned ms) { SleepConditionVariableCS(c, m, ms); }
static inline void cond_signal(cond_t *c) { WakeConditionVariable(c); }
static inline void cond_broadcast(cond_t *c) { WakeAllConditionVariable(c); }
static inline void cond_destroy(cond_t *c) { (void)c; /* nothing to free */ }

/* Milliseconds from an arbitrary start, never going back. */
static inline unsigned long long now_ms(void) { return GetTickCount64(); }
/* The time of day: seconds since 1970 and the milliseconds. */
static inline void wall_clock(long long *secs, int *millis) {
    FILETIME ft;
    GetSystemTimeAsFileTime(&ft); /* 100 ns units since 1601 */
    unsigned long long t = ((unsigned long long)ft.dwHighDateTime << 32 | ft.dwLowDateTime) / 10000;
    t -= 11644473600000ULL; /* 1601 -> 1970 */
    *secs = (long long)(t / 1000);
    *millis = (int)(t % 1000);
}
static inline int local_tm(time_t t, struct tm *out) { return localtime_s(out, &t) == 0 ? 0 : -1; }
static inline int utc_tm(time_t t, struct tm *out) { return gmtime_s(out, &t) == 0 ? 0 : -1; }

/* Waits until sock has something to read (or has closed), at most ms
 * milliseconds. Returns 1 if readable, 0 on timeout, -1 on error. */
static inline int wait_readable(socket_t sock, int ms) {
    WSAPOLLFD p;
    p.fd = sock;
    p.events = POLLRDNORM;
    p.revents = 0;
    int n = WSAPoll(&p, 1, ms);
    return n < 0 ? -1 : n > 0;
}

/* Winsock must be started before the first socket call. */
static inline int sockets_start(void) {
    WSADATA wsa;
    SetConsoleOutputCP(CP_UTF8); /* we print UTF-8 (as `chcp 65001` would) */
    return WSAStartup(MAKEWORD(2, 2), &wsa) == 0 ? 0 : -1;
}
static inline void sockets_stop(void) { WSACleanup(); }

/* Reads one line of standard input as UTF-8, like fgets. A console hands
 * out UTF-16 (ReadConsoleW), so that 你好 typed in any code page arrives as
 * UTF-8, the protocol's encoding; a pipe or a file is read as it is. */
static inline char *read_line(char *line, size_t size) {
    HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
    DWORD mode, got = 0, most = (DWORD)((size - 1) / 3); /* a UTF-16 unit makes at most 3 bytes */
    wchar_t wide[1024];
    if (in == INVALID_HANDLE_VALUE || !GetConsoleMode(in, &mode)) return fgets(line, (int)size, stdin);
    if (most > 1023) most = 1023;
    if (most == 0 || !ReadConsoleW(in, wide, most, &got, NULL) || got == 0) return NULL;
    int n = WideCharToMultiByte(CP_UTF8, 0, wide, (int)got, line, (int)size - 1, NULL, NULL);
    if (n <= 0) return NULL;
    line[n] = '\0';
    return line;
}

#else
/* -------------------------------------------------------- Linux, POSIX -- */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h> /* struct timeval */
#include <time.h>
#include <unistd.h>

typedef int socket_t;
#define INVALID_SOCKET (-1)
#define SOCKET_ERROR (-1)
#define close_socket close
static inline int socket_error(void) { return errno; }

typedef pthread_t thread_t;
#define THREAD_FUNCTION(name, arg) static void *name(void *arg)
#define THREAD_END return NULL
typedef void *(*thread_function)(void *);
static inline int thread_start(thread_t *t, thread_function fn, void *arg) {
    return pthread_create(t, NULL, fn, arg) == 0 ? 0 : -1;
}
static inline int thread_join(thread_t t) { return pthread_join(t, NULL) == 0 ? 0 : -1; }

typedef pthread_mutex_t mutex_t;
static inline void mutex_init(mutex_t *m) { pthread_mutex_init(m, NULL); }
static inline void mutex_lock(mutex_t *m) { pthread_mutex_lock(m); }
static inline void mutex_unlock(mutex_t *m) { pthread_mutex_unlock(m); }
static inline void mutex_destroy(mutex_t *m) { pthread_mutex_destroy(m); }

typedef pthread_cond_t cond_t;
static inline void cond_init(cond_t *c) { pthread_cond_init(c, NULL); }
static inline void cond_wait(cond_t *c, mutex_t *m) { pthread_cond_wait(c, m); }
static inline void cond_wait_ms(cond_t *c, mutex_t *m, unsigned ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(c, m, &until); /* a timeout is fine: the caller re-checks */
}
static inline void cond_signal(cond_t *c) { pthread_cond_signal(c); }
static inline void cond_broadcast(cond_t *c) { pthread_cond_broadcast(c); }
static inline void cond_destroy(cond_t *c) { pthread_cond_destroy(c); }

static inline unsigned long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000ULL + (unsigned long long)(t.tv_nsec / 1000000L);
}
static inline void wall_clock(long long *secs, int *millis) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    *secs = (long long)t.tv_sec;
    *millis = (int)(t.tv_nsec / 1000000L);
}
static inline int local_tm(time_t t, struct tm *out) { return localtime_r(&t, out) ? 0 : -1; }
static inline int utc_tm(time_t t, struct tm *out) { return gmtime_r(&t, out) ? 0 : -1; }

static inline int wait_readable(socket_t sock, int ms) {
    struct pollfd p;
    p.fd = sock;
    p.events = POLLIN;
    p.revents = 0;
    int n = poll(&p, 1, ms);
    if (n < 0 && errno == EINTR) return 0;
    return n < 0 ? -1 : n > 0;
}

static inline int sockets_start(void) {
    /* A send() to a peer that has gone must fail with EPIPE, not kill us. */
    return signal(SIGPIPE, SIG_IGN) == SIG_ERR ? -1 : 0;
}
static inline void sockets_stop(void) {}

/* Reads one line of standard input, like fgets (the terminal sends UTF-8). */
static inline char *read_line(char *line, size_t size) { return fgets(line, (int)size, stdin); }
#endif

#endif /* TNLM_PLATFORM_H */
