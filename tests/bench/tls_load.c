/*
 * tls_load.c - load generator for the HTTPS interception scenarios of
 * make bench (wrk cannot speak TLS through a CONNECT).
 *
 *   tls_load MODE PROXY_PORT HOST PORT PATH CONNS SECONDS
 *
 * MODE:
 *   plain  GET http://HOST:PORT/PATH through the proxy, keep-alive
 *   ka     CONNECT HOST:PORT, TLS (SNI HOST), then keep-alive GETs inside
 *   new    per request: connect, CONNECT, a full TLS handshake (no
 *          resumption), one GET, close
 *
 * CONNS threads, each with one connection, blocking I/O (a 10 s timeout on
 * every socket), for SECONDS. The proxy's certificate is not verified: the
 * client's cost is the same for every proxy measured, and the verification
 * of the proxy itself is what the specs test. Prints one line:
 *
 *   TLSLOAD requests=N bytes=B errors=E seconds=S
 *
 * Responses must carry Content-Length (the bench origin, nginx, sends it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum mode { MODE_PLAIN, MODE_KA, MODE_NEW };

static enum mode mode;
static int proxy_port, target_port;
static const char *host, *path;
static double deadline;
static SSL_CTX *ctx;
static atomic_ullong total_requests, total_bytes, total_errors;

struct conn {
    int fd;
    SSL *ssl;
    char buf[65536];
    size_t have, off;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void conn_close(struct conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
    c->have = c->off = 0;
}

static int raw_write(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w;
        if (c->ssl) {
            size_t done = 0;
            if (SSL_write_ex(c->ssl, p, n, &done) != 1)
                return -1;
            w = (ssize_t)done;
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w <= 0)
                return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Refills the buffer; 0 on EOF or error. */
static size_t fill(struct conn *c)
{
    size_t got = 0;
    if (c->off == c->have)
        c->off = c->have = 0;
    if (c->ssl) {
        if (SSL_read_ex(c->ssl, c->buf + c->have, sizeof c->buf - c->have, &got) != 1)
            return 0;
    } else {
        ssize_t r = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
        if (r <= 0)
            return 0;
        got = (size_t)r;
    }
    c->have += got;
    return got;
}

/* Reads one response head; returns its Content-Length (0 when absent for
 * a 200 to CONNECT), -1 on error. <status> gets the status code. */
static long read_head(struct conn *c, int *status)
{
    for (;;) {
        char *start = c->buf + c->off;
        char *end = memmem(start, c->have - c->off, "\r\n\r\n", 4);
        if (end) {
            long len = 0;
            char *cl;
            *end = '\0';
            if (sscanf(start, "HTTP/1.%*d %d", status) != 1)
                return -1;
            cl = strcasestr(start, "\ncontent-length:");
            if (cl)
                len = strtol(cl + 16, NULL, 10);
            c->off = (size_t)(end + 4 - c->buf);
            return len;
        }
        if (c->off > 0) {
            memmove(c->buf, c->buf + c->off, c->have - c->off);
            c->have -= c->off;
            c->off = 0;
        }
        if (c->have == sizeof c->buf || fill(c) == 0)
            return -1;
    }
}

static int skip_body(struct conn *c, long len)
{
    while (len > 0) {
        size_t avail = c->have - c->off;
        if (avail == 0) {
            if (fill(c) == 0)
                return -1;
            continue;
        }
        if ((long)avail > len)
            avail = (size_t)len;
        c->off += avail;
        len -= (long)avail;
    }
    return 0;
}

static int open_conn(struct conn *c)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)proxy_port)};
    struct timeval tv = {.tv_sec = 10};
    char req[512];
    int one = 1, status = 0;

    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(c->fd, (struct sockaddr *)&sin, sizeof sin) != 0)
        return -1;
    if (mode == MODE_PLAIN)
        return 0;
    snprintf(req, sizeof req, "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n", host, target_port,
             host, target_port);
    if (raw_write(c, req, strlen(req)) != 0 || read_head(c, &status) < 0 || status != 200 ||
        c->off != c->have)
        return -1;
    c->off = c->have = 0;
    c->ssl = SSL_new(ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) || !SSL_set_tlsext_host_name(c->ssl, host) ||
        SSL_connect(c->ssl) != 1)
        return -1;
    return 0;
}

static void *worker(void *arg)
{
    struct conn c = {.fd = -1};
    char req[1024];
    unsigned long long requests = 0, bytes = 0, errors = 0;
    (void)arg;

    if (mode == MODE_PLAIN)
        snprintf(req, sizeof req, "GET http://%s:%d%s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", host,
                 target_port, path, host, target_port);
    else
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", path, host,
                 target_port, mode == MODE_NEW ? "Connection: close\r\n" : "");
    while (now() < deadline) {
        int status = 0;
        long len;
        if (c.fd < 0 && open_conn(&c) != 0) {
            errors++;
            ERR_clear_error();
            conn_close(&c);
            usleep(10000);
            continue;
        }
        if (raw_write(&c, req, strlen(req)) != 0 || (len = read_head(&c, &status)) < 0 ||
            status != 200 || skip_body(&c, len) != 0) {
            errors++;
            ERR_clear_error();
            conn_close(&c);
            continue;
        }
        requests++;
        bytes += (unsigned long long)len;
        if (mode == MODE_NEW)
            conn_close(&c);
    }
    conn_close(&c);
    atomic_fetch_add(&total_requests, requests);
    atomic_fetch_add(&total_bytes, bytes);
    atomic_fetch_add(&total_errors, errors);
    return NULL;
}

int main(int argc, char **argv)
{
    int conns;
    double seconds, started;
    pthread_t *threads;

    if (argc != 8) {
        fprintf(stderr, "usage: tls_load plain|ka|new PROXY_PORT HOST PORT PATH CONNS SECONDS\n");
        return 2;
    }
    mode = strcmp(argv[1], "plain") == 0 ? MODE_PLAIN : strcmp(argv[1], "ka") == 0 ? MODE_KA : MODE_NEW;
    proxy_port = atoi(argv[2]);
    host = argv[3];
    target_port = atoi(argv[4]);
    path = argv[5];
    conns = atoi(argv[6]);
    seconds = atof(argv[7]);
    if (conns < 1 || conns > 1024 || seconds <= 0)
        return 2;
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* "new" measures full handshakes: nothing is resumed. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
    threads = calloc((size_t)conns, sizeof *threads);
    started = now();
    deadline = started + seconds;
    for (int i = 0; i < conns; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < conns; i++)
        pthread_join(threads[i], NULL);
    printf("TLSLOAD requests=%llu bytes=%llu errors=%llu seconds=%.3f\n",
           (unsigned long long)total_requests, (unsigned long long)total_bytes,
           (unsigned long long)total_errors, now() - started);
    free(threads);
    SSL_CTX_free(ctx);
    return 0;
}
