/*
 * http_client.c - proxy.http's requests: resolve, connect, (TLS), send,
 * read the response, all on the loop.
 *
 *   RESOLVING -> CONNECTING -> [TUNNELING] -> HANDSHAKING (https) -> EXCHANGING -> done
 *
 * Through a parent proxy the call resolves and connects to the parent:
 * plain HTTP goes to it in absolute form, on the parent connections the
 * relay pools too (by the same name and credentials); https first asks it
 * for a tunnel (TUNNELING: our CONNECT and its answer), then runs TLS with
 * the origin inside, so the parent sees nothing of the request.
 *
 * One struct http_call owns its endpoint, its DNS query, its timer and the
 * response being read. finish() reports once and frees; cancel() frees
 * without reporting. A failure found while starting is reported through a
 * zero-delay timer, so the callback never runs inside http_client_start.
 */
#include "http_client.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "body.h"
#include "dns.h"
#include "endpoint.h"
#include "config.h"
#include "http_parse.h"
#include "proxy.h"
#include "tls.h"
#include "upstream_pool.h"

#define HEAD_MAX (64 * 1024)
/* Interim responses skipped before the final one, as the relay allows:
 * a server that sends them without end is not read for the call's whole
 * time. */
#define INTERIM_MAX 100

enum call_state {
    CALL_RESOLVING,
    CALL_CONNECTING,
    CALL_TUNNELING, /* https through a parent: our CONNECT, then its answer */
    CALL_HANDSHAKING,
    CALL_EXCHANGING
};

struct http_call {
    struct proxy *proxy;
    enum call_state state;
    http_client_done *cb;
    void *arg;
    char host[256];
    uint16_t port;
    int https;
    char method[32];
    size_t max_body;
    size_t all_calls_max;      /* see http_client_request */
    size_t counted;            /* of the body, in proxy->http_bodies_held */
    struct buffer request;     /* the whole request, kept for a retry */
    int via_parent;            /* through <parent>, not to host:port directly */
    struct parent_proxy parent;
    struct buffer tunnel;      /* via_parent, https: the CONNECT asking for the tunnel */
    char pool_key[300];        /* where the connection is pooled (plain HTTP), */
    uint16_t pool_port;        /* and with which credentials: the relay's names */
    unsigned char pool_creds[PARENT_CREDENTIALS_ID_LEN];
    int unpooled;              /* no such name could be made: never pooled */
    char reason[450];          /* a failure's words made here, for finish() */
    int pooled;                /* the connection came from the pool */
    int tried_pool;
    int keep;                  /* the response leaves the connection usable */
    int got_bytes;             /* a pooled connection answered something */
    int close_delimited;       /* the body ends where the connection does */
    struct dns_query *dns;
    struct addr_list addrs;
    int next_addr;
    struct endpoint ep;
    ev_timer timer;            /* the call's deadline */
    ev_timer kick;             /* zero delay: the first step, from the loop */
    ev_timer attempt;          /* the address being tried had its share */
    int have_head;
    int interim_count;         /* 1xx responses skipped so far */
    struct body_reader reader;
    struct http_client_response res;
};

static void call_free(struct http_call *c)
{
    c->proxy->http_bodies_held -= c->counted;
    ev_timer_stop(c->proxy->loop, &c->timer);
    ev_timer_stop(c->proxy->loop, &c->kick);
    ev_timer_stop(c->proxy->loop, &c->attempt);
    dns_cancel(c->dns);
    endpoint_close(c->proxy->loop, &c->ep);
    buffer_free(&c->request);
    buffer_free(&c->tunnel);
    headers_free(&c->res.fields);
    buffer_free(&c->res.body);
    free(c);
}

static void finish(struct http_call *c, const char *error)
{
    c->cb(c->arg, error, error ? NULL : &c->res);
    call_free(c);
}

/* finish() with a failure of the parent proxy, named in the words. */
__attribute__((format(printf, 2, 3))) static void finish_at_parent(struct http_call *c,
                                                                   const char *fmt, ...)
{
    char what[120], where[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    parent_authority(&c->parent, where, sizeof where);
    snprintf(c->reason, sizeof c->reason, "the parent proxy %s %s", where, what);
    finish(c, c->reason);
}

/* Counts what the body grew by since the last look against what every
 * call of the process may hold: many calls at once, each within its
 * max_body, could otherwise hold any amount together. 0, or -1 past it. */
static int count_body(struct http_call *c)
{
    size_t len = buffer_length(&c->res.body);

    if (len > c->counted) {
        c->proxy->http_bodies_held += len - c->counted;
        c->counted = len;
    }
    return c->all_calls_max && c->proxy->http_bodies_held > c->all_calls_max ? -1 : 0;
}

#define ALL_CALLS_FULL \
    "the responses of the proxy.http calls in flight would hold more than --lua-memory"

/* Whether the connection may serve another request: plain HTTP (a TLS
 * session lives in its SSL object, not in the fd), a body that did not
 * end with the connection, no "Connection: close", nothing unread. */
static int reusable(const struct http_call *c)
{
    return !c->https && !c->unpooled && c->keep && !c->ep.read_eof && c->ep.fd >= 0 &&
           buffer_length(&c->ep.in) == 0 && buffer_length(&c->ep.out) == 0;
}

/* The call succeeded: parks a reusable connection in the proxy's pool
 * (which owns it from then on), and reports. */
static void finish_ok(struct http_call *c)
{
    if (reusable(c) && !c->proxy->stopping) {
        endpoint_watch(c->proxy->loop, &c->ep, 0);
        upstream_pool_put(&c->proxy->pool, c->ep.fd, c->pool_key, c->pool_port, c->pool_creds,
                          ev_now(c->proxy->loop));
        c->ep.fd = -1;
    }
    finish(c, NULL);
}

void http_call_cancel(struct http_call *c)
{
    if (c)
        call_free(c);
}

static void on_call_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct http_call *c = w->data;
    (void)loop;
    (void)revents;
    finish(c, "timeout");
}

/* Parses "http://host[:port]/path": host, port, scheme and the path (a
 * pointer into <url>). 0, -1 when it is no such URL, or -2 when it holds
 * a byte that is not visible ASCII (before any fragment). */
static int parse_url(struct http_call *c, const char *url, const char **path)
{
    const char *p, *host, *end;
    size_t hlen;

    /* It goes into the request line and Host as it is: a space, CR, LF or
     * other control byte would let the URL write a request of its own
     * (one whose answer the pooled connection would then give to the
     * next caller), and a byte past 0x7e is one no request target may
     * hold (RFC 9112 3.2, RFC 3986 2.1), which each server would read its
     * own way. The same rule as tx.req.path: the script percent-encodes. */
    for (p = url; *p && *p != '#'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return -2;

    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
        c->port = 80;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        c->https = 1;
        c->port = 443;
    } else {
        return -1;
    }
    end = p + strcspn(p, "/?#");
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            return -1;
        host = p + 1;
        hlen = (size_t)(close - host);
        p = close + 1;
    } else {
        host = p;
        p = memchr(p, ':', (size_t)(end - p)) ? memchr(p, ':', (size_t)(end - p)) : end;
        hlen = (size_t)(p - host);
    }
    if (hlen == 0 || hlen >= sizeof c->host || memchr(host, '@', hlen))
        return -1;
    memcpy(c->host, host, hlen);
    c->host[hlen] = '\0';
    if (p < end) {
        long port;
        char *stop;
        if (*p != ':' || p[1] < '0' || p[1] > '9')
            return -1;
        port = strtol(p + 1, &stop, 10);
        if (stop != end || port < 1 || port > 65535)
            return -1;
        c->port = (uint16_t)port;
    }
    *path = *end == '/' ? end : (*end == '?' ? end : "/");
    return 0;
}

/* Methods a client may send again when a connection fails before the
 * answer (RFC 9110 9.2.2): only these go on a pooled connection. */
static int idempotent(const char *method)
{
    static const char *const methods[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(method, methods[i]) == 0)
            return 1;
    return 0;
}

static void on_call_io(struct ev_loop *loop, ev_io *w, int revents);
static void try_connect(struct http_call *c);

/* An address literal needs no lookup: connecting starts here, from the
 * loop, so even a refused connection is reported after the start. */
static void on_call_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    try_connect(w->data);
}

static void on_resolved(void *arg, enum dns_status status, const struct addr_list *addrs)
{
    struct http_call *c = arg;
    c->dns = NULL;
    if (status != DNS_OK)
        return finish(c, dns_status_name(status));
    c->addrs = *addrs;
    c->next_addr = 0;
    try_connect(c);
}

/* The address being tried had its share of the call's time (see
 * try_connect): on to the next. */
static void on_call_attempt(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct http_call *c = w->data;
    (void)loop;
    (void)revents;
    if (c->state == CALL_CONNECTING)
        try_connect(c);
}

/* Connects to the next address; from the loop only. An address that never
 * answers (a firewall dropping the SYN, IPv6 without a route) is given
 * up, when others follow it, once it has had an equal share of the time
 * the call has left, as the relay does (upstream_attempt_deadline). */
static void try_connect(struct http_call *c)
{
    /* Plain HTTP first tries a connection the proxy keeps to the same
     * place (relayed traffic parks them there too): no connect at all. */
    if (!c->https && !c->unpooled && !c->tried_pool && idempotent(c->method)) {
        int fd = upstream_pool_take(&c->proxy->pool, c->pool_key, c->pool_port, c->pool_creds);
        c->tried_pool = 1;
        if (fd >= 0) {
            endpoint_open_watched(&c->ep, fd);
            c->pooled = 1;
            c->state = CALL_EXCHANGING;
            if (buffer_append(&c->ep.out, buffer_peek(&c->request), buffer_length(&c->request)) != 0)
                return finish(c, "out of memory");
            endpoint_watch(c->proxy->loop, &c->ep, EV_READ | EV_WRITE);
            return;
        }
    }
    while (c->next_addr < c->addrs.count) {
        int i = c->next_addr++;
        int fd = socket(c->addrs.addr[i].sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        0);
        if (fd < 0)
            continue;
        if (connect(fd, &c->addrs.addr[i].sa, c->addrs.len[i]) != 0 && errno != EINPROGRESS) {
            close(fd);
            continue;
        }
        endpoint_close(c->proxy->loop, &c->ep);
        endpoint_open(&c->ep, fd);
        c->state = CALL_CONNECTING;
        endpoint_watch(c->proxy->loop, &c->ep, EV_WRITE);
        ev_timer_stop(c->proxy->loop, &c->attempt);
        if (c->next_addr < c->addrs.count) {
            ev_tstamp left = ev_timer_remaining(c->proxy->loop, &c->timer);
            ev_timer_set(&c->attempt, left / (c->addrs.count - c->next_addr + 1), 0.);
            ev_timer_start(c->proxy->loop, &c->attempt);
        }
        return;
    }
    finish(c, "connection refused");
}

/* A pooled connection the server closed before answering (it gave up
 * the idle connection as the request went out): once more on a new one.
 * 1 when the call goes on that way. */
static int retry_fresh(struct http_call *c)
{
    if (!c->pooled || c->have_head || buffer_length(&c->ep.in))
        return 0;
    c->pooled = 0;
    endpoint_close(c->proxy->loop, &c->ep);
    c->next_addr = 0;
    try_connect(c);
    return 1;
}

/* The response so far: head (skipping 1xx), then the body. 1 when the
 * call is over (finish was called), else 0. */
static int read_response(struct http_call *c)
{
    enum http_error err = HTTP_ERR_NONE;

    while (!c->have_head) {
        struct http_head head;
        struct http_framing framing;
        ssize_t n;

        memset(&head, 0, sizeof head);
        n = http_parse_response(buffer_peek(&c->ep.in), buffer_length(&c->ep.in), &head, &err);
        if (n == -2) {
            if (buffer_length(&c->ep.in) >= HEAD_MAX) {
                finish(c, "response head too large");
                return 1;
            }
            if (c->ep.read_eof) {
                if (retry_fresh(c))
                    return 1;
                finish(c, "connection closed before the response");
                return 1;
            }
            return 0;
        }
        if (n < 0) {
            finish(c, "invalid response");
            return 1;
        }
        /* A call never asks to upgrade (Connection is the proxy's): a 101
         * means what follows is another protocol, not a response to read,
         * as the relay takes it too. */
        if (head.status == 101) {
            finish(c, "the server switched protocols without being asked");
            return 1;
        }
        if (head.status >= 100 && head.status < 200) {
            if (++c->interim_count > INTERIM_MAX) {
                finish(c, "too many interim (1xx) responses");
                return 1;
            }
            buffer_consume(&c->ep.in, (size_t)n);
            continue;
        }
        if (http_response_framing(&head, c->method, strlen(c->method), &framing, &err) != 0) {
            finish(c, "invalid response");
            return 1;
        }
        if (framing.kind == HTTP_BODY_LENGTH && framing.length > c->max_body) {
            finish(c, "response body larger than max_body"); /* why read it? */
            return 1;
        }
        c->res.status = head.status;
        /* HTTP/1.0 has no persistent connections unless asked for (and
         * the proxy does not ask): its server may close once it has
         * answered, or ignore a second request. */
        c->keep = head.version_minor >= 1 && framing.kind != HTTP_BODY_CLOSE &&
                  !http_has_token(&head, "Connection", "close");
        for (size_t i = 0; i < head.field_count; i++)
            if (headers_add(&c->res.fields, head.fields[i].name, head.fields[i].name_len,
                            head.fields[i].value, head.fields[i].value_len) != 0) {
                finish(c, "out of memory");
                return 1;
            }
        buffer_consume(&c->ep.in, (size_t)n);
        body_reader_init(&c->reader, &framing);
        c->close_delimited = framing.kind == HTTP_BODY_CLOSE;
        c->have_head = 1;
    }
    for (;;) {
        uint64_t moved = 0;
        /* Such a body is whole only if the server ended its TLS stream
         * with close_notify: a bare EOF may be a cut (RFC 9112 9.8), and
         * a script must not take a part for the whole. */
        int ended = c->ep.read_eof;
        if (ended && c->close_delimited && c->ep.tls_eof_unclean) {
            if (buffer_length(&c->ep.in) == 0) {
                finish(c, "the server's TLS connection ended without close_notify: the body "
                          "may be cut short");
                return 1;
            }
            ended = 0;
        }
        enum body_pump_result r = body_pump(&c->reader, &c->ep.in, ended, &c->res.body,
                                            c->max_body + 1, HTTP_BODY_CLOSE, NULL, NULL, &moved,
                                            &err);
        switch (r) {
        case BODY_PUMP_DONE:
            finish_ok(c);
            return 1;
        case BODY_PUMP_PROGRESS:
        case BODY_PUMP_IDLE:
            if (buffer_length(&c->res.body) > c->max_body) {
                finish(c, "response body larger than max_body");
                return 1;
            }
            if (count_body(c) != 0) {
                finish(c, ALL_CALLS_FULL);
                return 1;
            }
            if (r == BODY_PUMP_PROGRESS)
                continue;
            return 0;
        case BODY_PUMP_INVALID:
        case BODY_PUMP_FILTER_FAILED:
        case BODY_PUMP_PAUSED: /* no filter here */
            finish(c, "invalid response body");
            return 1;
        case BODY_PUMP_TRUNCATED:
            finish(c, "connection closed in the middle of the response");
            return 1;
        }
    }
}

/* https through a parent: its answer to our CONNECT. 1 once the tunnel
 * is open, 0 to wait for more, -1 when the call is over (finished). */
static int read_tunnel_answer(struct http_call *c)
{
    for (;;) {
        struct http_head head;
        enum http_error err = HTTP_ERR_NONE;
        ssize_t n;

        memset(&head, 0, sizeof head);
        n = http_parse_response(buffer_peek(&c->ep.in), buffer_length(&c->ep.in), &head, &err);
        if (n == -2) {
            if (buffer_length(&c->ep.in) >= HEAD_MAX) {
                finish_at_parent(c, "answered the CONNECT with too large a head");
                return -1;
            }
            if (c->ep.read_eof) {
                finish_at_parent(c, "closed the connection without answering the CONNECT");
                return -1;
            }
            return 0;
        }
        if (n < 0) {
            finish_at_parent(c, "answered the CONNECT with an invalid response");
            return -1;
        }
        buffer_consume(&c->ep.in, (size_t)n);
        if (head.status >= 100 && head.status < 200 && head.status != 101) {
            if (++c->interim_count > INTERIM_MAX) {
                finish_at_parent(c, "answered the CONNECT with more than %d interim responses",
                                 INTERIM_MAX);
                return -1;
            }
            continue;
        }
        if (head.status < 200 || head.status > 299) {
            finish_at_parent(c, "answered the CONNECT with %d", head.status);
            return -1;
        }
        /* TLS with the origin speaks first from our side: bytes already
         * here cannot be the origin's, and TLS would seem to vouch for
         * them. */
        if (buffer_length(&c->ep.in) > 0 || buffer_length(&c->ep.out) > 0) {
            finish_at_parent(c, "sent bytes of its own after its answer to the CONNECT");
            return -1;
        }
        c->interim_count = 0;
        return 1;
    }
}

/* TUNNELING: sends the CONNECT, reads the answer, and starts TLS with the
 * origin once the tunnel is open. 0 when the call goes on (in the
 * handshake, or waiting for the parent), -1 when it is over. */
static int open_tunnel(struct http_call *c)
{
    enum endpoint_io r;
    int open;

    if (endpoint_flush(&c->ep) == ENDPOINT_ERROR) {
        finish_at_parent(c, "closed the connection while we sent the CONNECT");
        return -1;
    }
    do {
        r = endpoint_read(&c->ep, HEAD_MAX);
        open = read_tunnel_answer(c);
        if (open < 0)
            return -1;
        if (open == 0 && r == ENDPOINT_ERROR) {
            finish_at_parent(c, "closed the connection without answering the CONNECT");
            return -1;
        }
    } while (open == 0 && r == ENDPOINT_PROGRESS);
    if (!open) {
        endpoint_watch(c->proxy->loop, &c->ep,
                       buffer_length(&c->ep.out) ? EV_READ | EV_WRITE : EV_READ);
        return 0;
    }
    if (!c->proxy->tls || tls_connect(&c->ep, c->proxy->tls, c->host, c->port, NULL) != 0) {
        finish(c, "cannot start TLS");
        return -1;
    }
    c->state = CALL_HANDSHAKING;
    return 0;
}

static void on_call_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct http_call *c = w->data;
    (void)revents;

    if (c->state == CALL_CONNECTING) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(c->ep.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
            try_connect(c);
            return;
        }
        ev_timer_stop(loop, &c->attempt);
        if (c->https && c->via_parent) {
            c->state = CALL_TUNNELING;
            buffer_swap(&c->ep.out, &c->tunnel);
        } else if (c->https) {
            if (!c->proxy->tls || tls_connect(&c->ep, c->proxy->tls, c->host, c->port, NULL) != 0)
                return finish(c, "cannot start TLS");
            c->state = CALL_HANDSHAKING;
        } else {
            c->state = CALL_EXCHANGING;
            buffer_swap(&c->ep.out, &c->request);
        }
    }
    if (c->state == CALL_TUNNELING && (open_tunnel(c) != 0 || c->state == CALL_TUNNELING))
        return;
    if (c->state == CALL_HANDSHAKING) {
        enum endpoint_io r = tls_handshake(&c->ep);
        if (r == ENDPOINT_AGAIN) {
            /* the endpoint turns this into what the handshake needs */
            endpoint_watch(loop, &c->ep, EV_READ);
            return;
        }
        if (r == ENDPOINT_ERROR)
            return finish(c, c->ep.error ? c->ep.error : "TLS handshake failed");
        /* The request goes out only inside the finished TLS session. */
        c->state = CALL_EXCHANGING;
        buffer_swap(&c->ep.out, &c->request);
    }
    if (endpoint_flush(&c->ep) == ENDPOINT_ERROR) {
        if (!retry_fresh(c))
            finish(c, "connection lost while sending");
        return;
    }
    for (;;) {
        enum endpoint_io r = endpoint_read(&c->ep, ENDPOINT_IN_LIMIT);
        if (read_response(c))
            return;
        if (r == ENDPOINT_ERROR) {
            if (!retry_fresh(c))
                finish(c, "connection lost");
            return;
        }
        if (r != ENDPOINT_PROGRESS)
            break;
    }
    endpoint_watch(loop, &c->ep, buffer_length(&c->ep.out) ? EV_READ | EV_WRITE : EV_READ);
}

/* Direct, or through which parent (see http_client_request), and the
 * name the connection is pooled under: a parent's is the relay's
 * (parent_pool_name), with the identity of the credentials it carries,
 * so the two share connections to the parent as they share direct ones. */
static void choose_route(struct http_call *c, const struct http_client_request *rq)
{
    const struct config *cfg = c->proxy->cfg;

    if (rq->parent) {
        c->parent = *rq->parent;
        c->via_parent = 1;
    } else if (!rq->direct && cfg->has_upstream &&
               !parent_bypassed(cfg->upstream_bypass, cfg->upstream_bypass_count, c->host)) {
        c->parent = cfg->upstream;
        c->via_parent = 1;
    }
    if (!c->via_parent) {
        snprintf(c->pool_key, sizeof c->pool_key, "%s", c->host);
        c->pool_port = c->port;
        return; /* no credentials: pool_creds stays zeros */
    }
    c->pool_port = c->parent.port;
    if (parent_pool_name(&c->parent, c->pool_key, sizeof c->pool_key) != 0 ||
        parent_credentials_id(c->parent.auth[0] && strcmp(c->method, "TRACE") != 0
                                  ? c->parent.auth : NULL,
                              c->pool_creds) != 0)
        c->unpooled = 1;
}

struct http_call *http_client_start(struct proxy *p, const struct http_client_request *rq,
                                    http_client_done *cb, void *arg, char *err, size_t err_len)
{
    struct http_call *c = calloc(1, sizeof *c);
    const char *path, *connect_host;
    char authority[300]; /* host[:port], as Host and an absolute URL name it */
    uint16_t connect_port;
    int numeric, plain_via_parent, v6, bad_url;

    if (!c) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    c->proxy = p;
    c->cb = cb;
    c->arg = arg;
    c->max_body = rq->max_body < SIZE_MAX ? rq->max_body : SIZE_MAX - 1; /* + 1 below */
    c->all_calls_max = rq->all_calls_max;
    headers_init(&c->res.fields);
    endpoint_init(&c->ep, on_call_io, c);
    ev_init(&c->timer, on_call_timer);
    c->timer.data = c;
    ev_init(&c->kick, on_call_kick);
    c->kick.data = c;
    ev_init(&c->attempt, on_call_attempt);
    c->attempt.data = c;
    if (strlen(rq->method) >= sizeof c->method ||
        http_token_span(rq->method, strlen(rq->method)) != strlen(rq->method) || !rq->method[0]) {
        snprintf(err, err_len, "invalid method");
        goto fail;
    }
    snprintf(c->method, sizeof c->method, "%s", rq->method);
    bad_url = parse_url(c, rq->url, &path);
    if (bad_url != 0) {
        snprintf(err, err_len, "%s",
                 bad_url == -2 ? "invalid url: only visible ASCII goes in a request "
                                 "(percent-encode spaces, control and non-ASCII bytes)"
                               : "invalid url (http://host[:port]/path or https://...)");
        goto fail;
    }
    if (c->https && !p->tls) {
        snprintf(err, err_len, "https not supported");
        goto fail;
    }
    choose_route(c, rq);
    /* The request: ours in full, Host and framing included. Through a
     * parent, plain HTTP names its server in absolute form (and carries
     * the parent's credentials, but not on a TRACE, which the parent may
     * answer with the request it received: RFC 9110 9.3.8). */
    plain_via_parent = c->via_parent && !c->https;
    v6 = strchr(c->host, ':') != NULL;
    snprintf(authority, sizeof authority, "%s%s%s", v6 ? "[" : "", c->host, v6 ? "]" : "");
    if ((c->https ? c->port != 443 : c->port != 80))
        snprintf(authority + strlen(authority), sizeof authority - strlen(authority), ":%u", c->port);
    if (buffer_printf(&c->request, "%s %s%s%s%.*s HTTP/1.1\r\nHost: %s\r\n", c->method,
                      plain_via_parent ? "http://" : "", plain_via_parent ? authority : "",
                      *path == '?' ? "/" : "", (int)strcspn(path, "#"), path, authority) ||
        (plain_via_parent && c->parent.auth[0] && strcmp(c->method, "TRACE") != 0 &&
         buffer_printf(&c->request, "Proxy-Authorization: %s\r\n", c->parent.auth)) ||
        /* https: one connection per call (no pool for TLS sessions) */
        (c->https && buffer_append_str(&c->request, "Connection: close\r\n")) ||
        (rq->fields && headers_write(rq->fields, &c->request)) ||
        (rq->body && buffer_printf(&c->request, "Content-Length: %zu\r\n", rq->body_len)) ||
        buffer_append_str(&c->request, "\r\n") ||
        (rq->body && buffer_append(&c->request, rq->body, rq->body_len))) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    if (c->https && c->via_parent &&
        buffer_printf(&c->tunnel, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n%s%s%s\r\n",
                      v6 ? "[" : "", c->host, v6 ? "]" : "", c->port, v6 ? "[" : "", c->host,
                      v6 ? "]" : "", c->port, c->parent.auth[0] ? "Proxy-Authorization: " : "",
                      c->parent.auth, c->parent.auth[0] ? "\r\n" : "")) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    connect_host = c->via_parent ? c->parent.host : c->host;
    connect_port = c->via_parent ? c->parent.port : c->port;
    ev_timer_set(&c->timer, rq->timeout, 0.);
    ev_timer_start(p->loop, &c->timer);
    numeric = dns_parse_numeric(connect_host, connect_port, &c->addrs);
    c->state = CALL_RESOLVING;
    if (numeric) {
        c->next_addr = 0;
        ev_timer_set(&c->kick, 0., 0.);
        ev_timer_start(p->loop, &c->kick);
    } else {
        c->dns = dns_resolve(p->resolver, connect_host, connect_port, on_resolved, c);
        if (!c->dns) {
            snprintf(err, err_len, "out of memory");
            goto fail;
        }
    }
    return c;
fail:
    call_free(c);
    return NULL;
}
