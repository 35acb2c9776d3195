/*
 * upstream.c - an upstream connection for the exchange: the session's kept
 * one, a pooled one, or a fresh one (DNS, then a non-blocking connect() to
 * each address in turn); and, once the exchange is over, giving it back.
 *
 * Why non-blocking: a blocking connect() or getaddrinfo() would stop the
 * one thread that serves every client of this worker for as long as a slow
 * server or a dead DNS server takes (seconds). Here the connect() returns at
 * once with EINPROGRESS and the loop tells us when the socket is writable;
 * names go to c-ares, whose sockets the same loop watches.
 *
 * Each step returns what it came to (enum exchange_step, exchange.h): the
 * state to move to, a failure to answer, or nothing yet; session.c acts.
 */
#include "upstream.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl.h"
#include "flows.h"
#include "https.h"
#include "log.h"
#include "message.h"
#include "session.h" /* struct session: the endpoints and the kept connection */
#include "stats.h"
#include "tls.h"
#include "trace.h"
#include "upstream_pool.h"


static const char *connect_error_text(int err)
{
    switch (err) {
    case ECONNREFUSED: return "the upstream refused the connection";
    case ENETUNREACH:
    case EHOSTUNREACH: return "the upstream is unreachable";
    case ETIMEDOUT: return "connecting to the upstream timed out";
    default: return "could not connect to the upstream";
    }
}

/* --trace: "<ip>:<port>" of <a>. */
static const char *address_text(const union addr_any *a, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in4.sin_addr, ip, sizeof ip);
        snprintf(out, len, "%s:%u", ip, ntohs(a->in4.sin_port));
    } else {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof ip);
        snprintf(out, len, "[%s]:%u", ip, ntohs(a->in6.sin6_port));
    }
    return out;
}

/*
 * A request that would loop back into this proxy: to one of its listeners,
 * or to its admin interface, which a client reaches this way only by
 * mistake (curl with http_proxy set, say), the admin token in its query or
 * its headers. So what is kept of it is its method, its URL without the
 * query and its Host: the flow's head is replaced with that (the flow
 * viewer and HAR exports show no more), and the logs show the URL without
 * the query (session_log_exchange).
 */
static enum exchange_step refuse_loop(struct session *s)
{
    struct exchange *x = &s->x;
    const char *query = memchr(x->target, '?', x->target_len);
    size_t shown = query ? (size_t)(query - x->target) : x->target_len;
    const char *path = x->target;
    size_t path_len = shown;
    struct buffer head;

    x->looped_back = 1;
    if (x->flow) {
        if (s->intercepted) {
            /* The head inside a tunnel holds the path only (the URL part
             * has the rest). */
            const char *slash = memchr(x->target + 8, '/', shown > 8 ? shown - 8 : 0);
            path = slash ? slash : "/";
            path_len = slash ? (size_t)(x->target + shown - slash) : 1;
            flows_record_part(x->flow, FLOW_PART_URL, x->target, shown);
        }
        buffer_init(&head);
        if (buffer_printf(&head, "%.*s %.*s HTTP/1.%d\r\nHost: %s%s%s:%u\r\n\r\n",
                          (int)x->method_len, x->method, (int)path_len, path, x->minor,
                          strchr(x->host, ':') ? "[" : "", x->host,
                          strchr(x->host, ':') ? "]" : "", x->port) == 0)
            flows_record_part(x->flow, FLOW_PART_REQ_IN, buffer_peek(&head),
                              buffer_length(&head));
        buffer_free(&head);
    }
    return exchange_fail(x, 508, "the request would loop back to this proxy");
}

/* The connection to the address just tried is up: forward on it, unless
 * it reached this proxy itself (see proxy_is_own_connection). */
static enum exchange_step connected(struct session *s)
{
    struct exchange *x = &s->x;

    /* (Called again for each step of a TLS handshake: checked once.) */
    if (!endpoint_is_tls(&s->upstream) && x->addrs && x->addr_next > 0 &&
        proxy_is_own_connection(s->proxy, s->upstream.fd, &x->addrs->addr[x->addr_next - 1].sa)) {
        TRACE(s, "connected to this proxy's own listener through an address of this machine");
        endpoint_close(s->proxy->loop, &s->upstream);
        return refuse_loop(s);
    }
    return upstream_begin_forwarding(s);
}

/* Tries the resolved addresses in order until a connect() starts. */
static enum exchange_step try_connect(struct session *s)
{
    struct exchange *x = &s->x;
    char text[80];

    while (x->addr_next < x->addrs->count) {
        int i = x->addr_next++;
        const struct sockaddr *addr = &x->addrs->addr[i].sa;
        int one = 1;
        int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1) {
            x->connect_errno = errno;
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        TRACE(s, "connect() to %s (address %d of %d): fresh connection, non-blocking",
              address_text(&x->addrs->addr[i], text, sizeof text), i + 1, x->addrs->count);
        if (connect(fd, addr, x->addrs->len[i]) == 0) {
            endpoint_open(&s->upstream, fd);
            return connected(s);
        }
        if (errno == EINPROGRESS) {
            endpoint_open(&s->upstream, fd);
            x->attempt_started = ev_now(s->proxy->loop);
            return exchange_move(x, SESSION_CONNECTING, "connect() in progress");
        }
        x->connect_errno = errno;
        TRACE(s, "connect() failed at once: %s", strerror(errno));
        close(fd);
    }
    if (x->connect_errno == EMFILE || x->connect_errno == ENFILE)
        /* Ours, not the upstream's: every descriptor is taken (see
         * default_max_connections in config.c). */
        return exchange_fail(x, 503, "the proxy has no file descriptor left for the upstream "
                                     "connection; try again shortly");
    stats_add(STAT_UPSTREAM_CONNECT_ERRORS, 1);
    return exchange_fail(x, 502, connect_error_text(x->connect_errno));
}

enum exchange_step upstream_connect_done(struct session *s)
{
    int err = 0;
    socklen_t len = sizeof err;

    /* A TLS handshake runs on a connection whose connect is done: an error
     * on its socket now (a reset) is the handshake's to report, and
     * reading it here would take it from the TLS layer, which must first
     * read what the upstream sent before it (an alert saying why). */
    if (endpoint_is_tls(&s->upstream))
        return connected(s);
    if (getsockopt(s->upstream.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return STEP_WAIT; /* spurious wakeup */
    TRACE(s, err ? "the socket is writable: connect() finished, with an error"
                 : "the socket is writable: connected in %.3f ms",
          (ev_time() - s->x.connect_started) * 1000.0);
    if (err != 0) {
        s->x.connect_errno = err;
        TRACE(s, "connect() failed: %s", strerror(err));
        endpoint_close(s->proxy->loop, &s->upstream);
        return try_connect(s);
    }
    return connected(s);
}

/*
 * Each address gets an equal share of what is left of --connect-timeout:
 * one that never answers (a firewall that drops SYNs, an IPv6 address
 * without a route) would otherwise use all of it, and the addresses after
 * it, which may well answer, would never be tried.
 */
ev_tstamp upstream_attempt_deadline(const struct session *s, ev_tstamp overall)
{
    const struct exchange *x = &s->x;
    int left;

    if (!x->addrs || x->addr_next <= 0 || x->addr_next >= x->addrs->count ||
        s->upstream.fd < 0 || endpoint_is_tls(&s->upstream))
        return overall;
    left = x->addrs->count - x->addr_next + 1; /* this one and those after it */
    return x->attempt_started + (overall - x->attempt_started) / left;
}

enum exchange_step upstream_connect_next(struct session *s)
{
    char text[80];

    TRACE(s, "no answer from %s within its share of the connect timeout: the next address",
          address_text(&s->x.addrs->addr[s->x.addr_next - 1], text, sizeof text));
    s->x.connect_errno = ETIMEDOUT;
    endpoint_close(s->proxy->loop, &s->upstream);
    return try_connect(s);
}

/*
 * Whether this exchange may reach <addr>. This machine's loopback and
 * link-local addresses are its own business: services bound to 127.0.0.1
 * because nothing else should reach them (databases, admin consoles), and
 * the cloud's instance metadata at 169.254.169.254, which hands out
 * credentials. A client on this machine reaches them anyway; one on
 * another machine would reach them only through the proxy, so it may not,
 * whoever chose the address (the client, a script, a name that resolves
 * there), unless --allow-local-destinations. A parent proxy is the
 * operator's choice and is not checked; the target behind it is, as far
 * as its spelling tells (target_via_parent_reachable).
 */
static int may_reach(const struct session *s, const struct sockaddr *addr)
{
    return s->client_local || s->x.parent || s->proxy->cfg->allow_local_destinations ||
           !acl_is_machine_local(addr);
}

static enum exchange_step refuse_machine_local(struct session *s)
{
    TRACE(s, "refused: the destination is this machine's own loopback or link-local address, "
             "and the client is on another machine (--allow-local-destinations)");
    return exchange_fail(&s->x, 403, "the destination is an address only this machine may "
                                     "reach (loopback or link-local); the proxy serves it to "
                                     "local clients only (--allow-local-destinations)");
}

/* Through a parent the proxy resolves nothing and sees no address: the
 * parent does, and connects from its own machine, which is often this one
 * (a Squid or a cntlm on loopback), or a machine whose loopback and
 * metadata address are no more this client's business. A target spelt as
 * such an address, or as localhost, is held to may_reach's rule; a name
 * that merely resolves there is the parent's to refuse. */
static int target_via_parent_reachable(const struct session *s)
{
    return s->client_local || s->proxy->cfg->allow_local_destinations ||
           !acl_host_is_machine_local(s->x.host);
}

/* A pooled connection that <s> may use: one to a machine-local address
 * could have been parked by a local client or a script's proxy.http. */
static int pooled_reachable(const struct session *s, int fd)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;

    if (s->client_local || s->proxy->cfg->allow_local_destinations)
        return 1;
    return getpeername(fd, (struct sockaddr *)&peer, &len) == 0 &&
           may_reach(s, (const struct sockaddr *)&peer);
}

/* The addresses are known: refuse loops and what the client may not
 * reach, then connect. */
static enum exchange_step addresses_ready(struct session *s)
{
    struct exchange *x = &s->x;
    for (int i = 0; i < x->addrs->count; i++) {
        if (proxy_is_own_address(s->proxy, &x->addrs->addr[i].sa))
            return refuse_loop(s);
        /* Any one such address refuses the name: trying only the others
         * would still let a name that points both ways pick its moment. */
        if (!may_reach(s, &x->addrs->addr[i].sa))
            return refuse_machine_local(s);
    }
    x->addr_next = 0;
    return try_connect(s);
}

enum exchange_step upstream_dns_answer(struct session *s, enum dns_status status,
                                       const struct addr_list *addrs)
{
    s->x.dns = NULL;
    stats_add(STAT_DNS_LOOKUPS, 1);
    stats_add(STAT_DNS_MICROSECONDS,
              (int64_t)((ev_now(s->proxy->loop) - s->x.connect_started) * 1e6));
    flows_record_time(s->x.flow, FLOW_T_DNS, ev_now(s->proxy->loop));
    if (trace_enabled) {
        char text[80] = "";
        if (status == DNS_OK)
            address_text(&addrs->addr[0], text, sizeof text);
        TRACE(s, "DNS answer after %.3f ms: %s%s%s (%d address%s)",
              (ev_time() - s->x.connect_started) * 1000.0, dns_status_name(status),
              text[0] ? ", first " : "", text, status == DNS_OK ? addrs->count : 0,
              status == DNS_OK && addrs->count == 1 ? "" : "es");
    }
    /* c-ares's tries together last the connect timeout (dns.c), so its
     * own timeout ends the lookup at about the moment the session's timer
     * would answer 504 for it (session.c): which of the two runs first
     * must not decide the status. A lookup out of time is a 504 either
     * way, as --connect-timeout covers DNS and connect, and says the same
     * (UPSTREAM_LOOKUP_TIMED_OUT); a name that does not resolve is a 502. */
    if (status == DNS_TIMEOUT) {
        stats_add(STAT_UPSTREAM_TIMEOUTS, 1);
        return exchange_fail(&s->x, 504, UPSTREAM_LOOKUP_TIMED_OUT);
    }
    if (status != DNS_OK)
        return exchange_fail(&s->x, 502, "the upstream's name could not be resolved");
    if (!s->x.addrs && !(s->x.addrs = malloc(sizeof *s->x.addrs)))
        return exchange_fail(&s->x, 500, "out of memory");
    *s->x.addrs = *addrs;
    return addresses_ready(s);
}

/* The Proxy-Authorization for the parent: the credentials of its URL
 * (--upstream, or tx.upstream.proxy), which a script cannot override;
 * else the one a script set on the request, if any; else none. None on
 * a TRACE the parent reads in plain: its final recipient answers with the
 * request it received as the body (the parent itself at Max-Forwards: 0,
 * from any client), and a client must not put credentials in one (RFC
 * 9110 9.3.8). Inside TLS with the origin the parent sees only the
 * CONNECT, which carries them as usual. */
static const char *parent_auth(const struct exchange *x)
{
    if (!x->upstream_tls && x->fwd_method_len == 5 && memcmp(x->fwd_method, "TRACE", 5) == 0)
        return NULL;
    if (x->parent->auth[0])
        return x->parent->auth;
    return x->script_proxy_auth;
}

/* Where this exchange connects: the parent proxy or the upstream. <key>
 * names the connection for reuse; a parent's connections carry a prefix a
 * host name cannot have, so they never mix with direct ones to the same
 * address (one speaks absolute-form, the other origin-form). <creds> gets
 * the identity of the credentials it carries to a parent (zeros for
 * none): a connection or tunnel to the parent is the user's who opened
 * it, and a parent may well authorise a connection once (a tunnel always),
 * so it is reused for those credentials only. 0, or -1 when the connection
 * cannot be named: <key_len> cannot hold the whole name (cut short, it
 * could name another connection too) or the credentials' digest failed;
 * then it is neither reused nor kept. */
static int connect_target(const struct exchange *x, char *key, size_t key_len,
                          unsigned char creds[PARENT_CREDENTIALS_ID_LEN], const char **host,
                          uint16_t *port)
{
    if (x->parent) {
        /* A TLS connection through the parent is a tunnel to one origin:
         * its key names that origin too. */
        int n = x->upstream_tls ? snprintf(key, key_len, "parent-tls!%s:%u!%s", x->host, x->port,
                                           x->parent->host)
                                : (parent_pool_name(x->parent, key, key_len) == 0 ? 0 : -1);
        *host = x->parent->host;
        *port = x->parent->port;
        if (parent_credentials_id(parent_auth(x), creds) != 0)
            return -1;
        return n >= 0 && (size_t)n < key_len ? 0 : -1;
    }
    size_t len = strnlen(x->host, key_len); /* no printf: every exchange comes here */
    *host = x->host;
    *port = x->port;
    memset(creds, 0, PARENT_CREDENTIALS_ID_LEN);
    if (len == key_len)
        return -1;
    memcpy(key, x->host, len + 1);
    return 0;
}

/* Whether the request's body is to be collected whole for a script
 * (tx.req.buffer_body) and its length already says it is past what the
 * script may collect. */
static int too_long_to_collect(const struct session *s)
{
    const struct exchange *x = &s->x;
    return x->req_framing.kind == HTTP_BODY_LENGTH &&
           x->req_framing.length > s->proxy->cfg->max_body_buffer &&
           hooks_filters_request(s) && hooks_collects_request(s);
}

enum exchange_step upstream_start(struct session *s)
{
    struct exchange *x = &s->x;
    char key[sizeof s->upstream_host];
    unsigned char creds[PARENT_CREDENTIALS_ID_LEN];
    const char *host;
    uint16_t port;
    int fd;
    int named;

    /* Refused before anything is looked up or connected: not asked for
     * with a 100 Continue, nor read up to the cap first. */
    if (!x->is_connect && too_long_to_collect(s)) {
        exchange_no_keep(x, "the request body is larger than the script may collect: it is "
                            "never read");
        return exchange_fail(x, 413, "the request body is larger than the script may collect");
    }
    named = connect_target(x, key, sizeof key, creds, &host, &port) == 0;
    x->connect_started = ev_now(s->proxy->loop);
    flows_record_time(x->flow, FLOW_T_UPSTREAM, x->connect_started);
    if (x->script_proxy_auth && (!x->parent || x->parent->auth[0]))
        TRACE(s, "the Proxy-Authorization a script set is not sent: %s",
              x->parent ? "the parent proxy's URL has credentials of its own"
                        : "it is for a parent proxy, and this request goes direct");
    if (x->is_connect && https_should_intercept(s))
        return https_begin_tunnel(s);
    if (x->is_connect && https_is_ca_page(x->host))
        return https_refuse_ca_tunnel(s); /* never to the internet's luaproxy.ca */
    if (x->parent && !target_via_parent_reachable(s))
        return refuse_machine_local(s);
    if (s->upstream_idle && upstream_idle_spoke(s)) {
        TRACE(s, "the connection this session kept spoke out of turn (closed, or sent bytes "
                 "nobody asked for): closed, not reused");
        endpoint_close(s->proxy->loop, &s->upstream);
        s->upstream_idle = 0;
        s->proxy->kept_upstreams--;
    }
    if (s->upstream_idle) {
        if (named && !x->is_connect && !x->is_upgrade && !x->no_pool && s->upstream_port == port &&
            s->upstream_idle_tls == x->upstream_tls && strcasecmp(s->upstream_host, key) == 0 &&
            memcmp(s->upstream_creds, creds, sizeof creds) == 0 &&
            (!s->upstream_idle_lifted || pooled_reachable(s, s->upstream.fd))) {
            s->upstream_idle = 0;
            s->proxy->kept_upstreams--;
            x->reused = 1;
            TRACE(s, "connection to %s:%u: the one this session kept from its last exchange "
                     "(no DNS, no connect)", host, port);
            return upstream_begin_forwarding(s);
        }
        upstream_release_idle(s);
    }
    if (named && !x->is_connect && !x->is_upgrade && !x->no_pool && !x->upstream_tls &&
        (fd = upstream_pool_take(&s->proxy->pool, key, port, creds)) >= 0) {
        if (!pooled_reachable(s, fd)) {
            close(fd);
            return refuse_machine_local(s);
        }
        endpoint_open_watched(&s->upstream, fd);
        x->reused = 1;
        TRACE(s, "connection to %s:%u: taken from the pool (no DNS, no connect)", host, port);
        return upstream_begin_forwarding(s);
    }
    if (!x->addrs && !(x->addrs = malloc(sizeof *x->addrs)))
        return exchange_fail(x, 500, "out of memory");
    if (dns_parse_numeric(host, port, x->addrs)) {
        TRACE(s, "%s is an IP address: no DNS", host);
        return addresses_ready(s); /* a literal address never touches the resolver */
    }
    TRACE(s, "DNS question: %s (port %u), asked without blocking (c-ares)", host, port);
    /* The answer always comes later, through s->events->dns_answer: the
     * move to SESSION_RESOLVING is made before any answer can arrive. */
    x->dns = dns_resolve(s->proxy->resolver, host, port, s->events->dns_answer, s);
    if (!x->dns)
        return exchange_fail(x, 502, "out of memory");
    return exchange_move(x, SESSION_RESOLVING, "asking the resolver");
}

/*
 * Keeps the head just written for a parent (<head>, <len>) as the flow's
 * forwarded request, with the value of the Proxy-Authorization the proxy
 * added (<auth>) replaced by its scheme and "(hidden)". Those are the
 * parent's credentials: its URL's, from the configuration, or a user's a
 * script made; the flow viewer shows what a client sent, but a password
 * the proxy holds for the parent is nobody's to read there, nor in a flow
 * copied from the API into a bug report. The client's own field was
 * dropped and a script's taken out of the fields (hooks_readback.c), so
 * the one line that carries <auth> is the proxy's.
 */
static void record_parent_head(struct flow *flow, const char *head, size_t len, const char *auth)
{
    static const char name[] = "\r\nProxy-Authorization: ";
    size_t name_len = sizeof name - 1, auth_len = strlen(auth);
    const char *at = NULL, *scheme_end = memchr(auth, ' ', auth_len);
    size_t scheme_len = scheme_end ? (size_t)(scheme_end - auth) : auth_len;
    struct buffer kept;

    for (const char *p = head; (p = memmem(p, len - (size_t)(p - head), name, name_len));
         p += name_len) {
        size_t left = len - (size_t)(p - head) - name_len;
        if (left >= auth_len + 2 && memcmp(p + name_len, auth, auth_len) == 0 &&
            memcmp(p + name_len + auth_len, "\r\n", 2) == 0) {
            at = p + name_len;
            break;
        }
    }
    if (!at) {
        flows_record_part(flow, FLOW_PART_REQ_OUT, head, len);
        return;
    }
    buffer_init(&kept);
    if (buffer_append(&kept, head, (size_t)(at - head)) == 0 &&
        buffer_append(&kept, auth, scheme_len) == 0 &&
        buffer_append_str(&kept, " (hidden)") == 0 &&
        buffer_append(&kept, at + auth_len, len - (size_t)(at + auth_len - head)) == 0)
        flows_record_part(flow, FLOW_PART_REQ_OUT, buffer_peek(&kept), buffer_length(&kept));
    buffer_free(&kept);
}

/* The CONNECT that asks the parent for a tunnel to the exchange's host,
 * with <auth> as its Proxy-Authorization when given. It carries the
 * request's Via (the client's, with ours appended), as a forwarded request
 * does: without it, proxies set as each other's parent passed a CONNECT
 * back and forth with no hop to count (exchange.c, looks_like_loop) until
 * both ran out of descriptors. 0, or -1 when out of memory. */
static int write_parent_connect(struct session *s, const char *auth)
{
    struct exchange *x = &s->x;
    struct buffer *out = &s->upstream.out;
    char target[300];
    int vias = 0;

    snprintf(target, sizeof target, strchr(x->host, ':') ? "[%s]:%u" : "%s:%u", x->host,
             x->port);
    if (buffer_printf(out, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target) != 0)
        return -1;
    for (int at = headers_find(&x->req_headers, "Via", 3, 0); at >= 0;
         at = headers_find(&x->req_headers, "Via", 3, (size_t)at + 1)) {
        size_t len;
        const char *v = headers_value(&x->req_headers, (size_t)at, &len);
        if (buffer_append_str(out, "Via: ") || buffer_append(out, v, len) ||
            buffer_append(out, "\r\n", 2))
            return -1;
        vias++;
    }
    if (!vias && buffer_append_str(out, "Via: " MESSAGE_VIA "\r\n"))
        return -1;
    if (auth && buffer_printf(out, "Proxy-Authorization: %s\r\n", auth))
        return -1;
    return buffer_append(out, "\r\n", 2);
}

/* Writes the request head for the upstream with the body framing <kind>
 * (<length>, and whether the client sent a Content-Length). Through a
 * parent: absolute-form, unless TLS runs end to end in a tunnel the parent
 * opened (then the request is the origin's own). 0, or -1. */
static int write_request_head(struct session *s, enum http_body_kind kind, uint64_t length,
                              int had_length)
{
    struct exchange *x = &s->x;
    char origin[300];
    size_t before = buffer_length(&s->upstream.out);
    /* OPTIONS for a whole server (the client wrote no path, and no script
     * named another): the last proxy asks the server with "*", one before
     * it passes the URL on without a path (RFC 9112 3.2.4). Scripts and
     * logs see "/", as for any URL without a path. */
    int server_wide = x->server_wide && x->fwd_path_len == 1 && x->fwd_method_len == 7 &&
                      memcmp(x->fwd_method, "OPTIONS", 7) == 0;
    const char *path = server_wide ? (x->parent && !x->upstream_tls ? "" : "*") : x->fwd_path;
    size_t path_len = server_wide ? strlen(path) : x->fwd_path_len;
    int rc;

    if (x->parent && !x->upstream_tls) {
        int n = snprintf(origin, sizeof origin,
                         strchr(x->host, ':') ? (x->port == 80 ? "http://[%s]" : "http://[%s]:%u")
                         : x->port == 80    ? "http://%s"
                                            : "http://%s:%u",
                         x->host, x->port);
        /* In absolute form the request names its server twice: the URL
         * and Host must agree, or the parent and the server behind it may
         * each act on a different one. The URL (the target, or where
         * before_connect sent it) wins, as it does in a client's request
         * (RFC 9112 3.2.2, which a parent follows too). */
        const char *authority = origin + sizeof "http://" - 1, *host = NULL;
        size_t alen = (size_t)n - (sizeof "http://" - 1), hlen = 0;
        int at = headers_find(&x->req_headers, "Host", 4, 0);
        if (at >= 0)
            host = headers_value(&x->req_headers, (size_t)at, &hlen);
        if (!host || !http_token_eq(host, hlen, authority)) {
            TRACE(s, "Host set to the URL's authority %s: through a parent the two must agree",
                  authority);
            if (headers_set(&x->req_headers, "Host", 4, authority, alen) != 0)
                return -1;
        }
        x->parent_auth_sent = parent_auth(x) != NULL;
        rc = message_write_proxy_request(&s->upstream.out, origin, parent_auth(x),
                                         x->fwd_method, x->fwd_method_len, path, path_len,
                                         &x->req_headers, kind, length, had_length, x->is_upgrade);
    } else {
        rc = message_write_request(&s->upstream.out, x->fwd_method, x->fwd_method_len, path,
                                   path_len, &x->req_headers, kind, length, had_length,
                                   x->is_upgrade);
    }
    if (rc == 0 && x->flow && x->parent && !x->upstream_tls && parent_auth(x))
        record_parent_head(x->flow, buffer_peek(&s->upstream.out) + before,
                           buffer_length(&s->upstream.out) - before, parent_auth(x));
    else if (rc == 0)
        flows_record_appended(x->flow, FLOW_PART_REQ_OUT, buffer_peek(&s->upstream.out),
                              buffer_length(&s->upstream.out), before);
    return rc;
}

/* Whether the request asks for "100 Continue" before sending its body. */
static int expects_continue(const struct exchange *x)
{
    ssize_t at = headers_find(&x->req_headers, "Expect", 6, 0);
    size_t len;
    const char *value;
    if (at < 0)
        return 0;
    value = headers_value(&x->req_headers, (size_t)at, &len);
    return http_token_eq(value, len, "100-continue");
}

/* body_direct's send: a large piece from on_request_chunk goes to the
 * upstream without passing through its output buffer. */
static size_t send_to_upstream(void *arg, const struct iovec *iov, int iovcnt)
{
    struct session *s = arg;
    size_t n = endpoint_write_now(&s->upstream, iov, iovcnt);
    if (n > 0)
        s->last_activity = ev_now(s->proxy->loop);
    return n;
}

/* Decides how the request body goes up, once the request hooks are done:
 *
 *   no on_request_chunk (or filter_body = false)  as it came
 *   on_request_chunk                              chunked, piece by piece
 *   on_request_chunk with tx.req.buffer_body      collected whole, then one
 *                                                 hook call, then sent with a
 *                                                 Content-Length
 *
 * A collected body cannot wait for the upstream's "100 Continue" (the head
 * goes up only after the body): the proxy says it to the client itself.
 * STEP_PROGRESS, or STEP_FAIL. */
static enum exchange_step plan_request_body(struct session *s)
{
    struct exchange *x = &s->x;

    x->req_filter = x->req_framing.kind != HTTP_BODY_NONE && hooks_filters_request(s);
    x->req_collect = x->req_filter && hooks_collects_request(s);
    if (x->req_collect) {
        if (expects_continue(x)) {
            headers_remove(&x->req_headers, "Expect", 6);
            if (x->minor >= 1 &&
                buffer_append_str(&s->client.out, "HTTP/1.1 100 Continue\r\n\r\n") != 0)
                return exchange_fail(x, 502, "out of memory");
        }
    } else if (x->req_filter) {
        x->req_out_kind = HTTP_BODY_CHUNKED;
        x->hook.req_direct = (struct body_direct){&s->upstream.out, send_to_upstream, s};
        x->req_body.batch = &x->req_batch;
    }
    return STEP_PROGRESS;
}

static int unread_in_socket(int fd);

/* Queues the head of a collected request, with the length of what the
 * hooks made of its body, then that body. */
static enum exchange_step send_collected(struct session *s)
{
    struct exchange *x = &s->x;
    struct buffer *body = hooks_collected(s);

    if (write_request_head(s, HTTP_BODY_LENGTH, buffer_length(body), 1) != 0 ||
        buffer_append(&s->upstream.out, buffer_peek(body), buffer_length(body)) != 0)
        return exchange_fail(x, 502, "out of memory");
    flows_record_body(x->flow, 0, 0, buffer_peek(body), buffer_length(body));
    buffer_free(body);
    return STEP_PROGRESS;
}

/* tx.req.buffer_body: the whole body went through on_request_chunk; the
 * head goes up now, with the length of what the hooks made of it.
 *
 * Nothing has gone up on the connection yet, and collecting may have
 * taken longer than the upstream keeps a silent connection open (a kept
 * one often only seconds): one it gave up on meanwhile (closed, or
 * said something, such as a 408, to a request it never got) is replaced
 * by a fresh one, whatever the method, since the request was never sent. */
enum exchange_step upstream_send_collected_request(struct session *s)
{
    struct exchange *x = &s->x;

    if (s->upstream.fd < 0 || s->upstream.read_eof || s->upstream.failed ||
        buffer_length(&s->upstream.in) > 0 ||
        (!endpoint_is_tls(&s->upstream) && unread_in_socket(s->upstream.fd))) {
        TRACE(s, "the upstream connection was given up while the body was collected: the "
                 "request goes on a fresh one");
        endpoint_close(s->proxy->loop, &s->upstream);
        endpoint_open(&s->upstream, -1);
        x->reused = 0;
        x->no_pool = 1;
        x->parent_connected = 0;
        x->parent_tunnel = 0;
        flows_record_retry(x->flow, ev_now(s->proxy->loop));
        return upstream_start(s); /* upstream_begin_forwarding sends it */
    }
    return send_collected(s);
}

/* The upstream accepted the connection. */
enum exchange_step upstream_begin_forwarding(struct session *s)
{
    struct exchange *x = &s->x;
    size_t before = buffer_length(&s->upstream.out);
    enum exchange_step step;

    s->last_activity = ev_now(s->proxy->loop);
    flows_record_time(x->flow, FLOW_T_DNS, x->connect_started); /* no lookup was needed */
    flows_record_time(x->flow, FLOW_T_CONNECT, s->last_activity);
    /* The marks above still say when sending could begin; the flag tells
     * the viewer and the HAR that no lookup or connect happened. */
    if (x->reused)
        flows_record_flag(x->flow, FLOW_F_REUSED);
    /* A kept connection that already speaks TLS is past this: its tunnel
     * is open and the origin is at the other end of it. (A CONNECT written
     * there would go to the origin, credentials and all.) */
    if ((x->is_connect || x->upstream_tls) && x->parent && !x->parent_connected &&
        !endpoint_is_tls(&s->upstream)) {
        /* Ask the parent for the tunnel; its answer decides ours, or opens
         * the way for TLS with the origin (response_parse_head). */
        if (write_parent_connect(s, parent_auth(x)) != 0)
            return exchange_fail(x, 502, "out of memory");
        x->parent_auth_sent = parent_auth(x) != NULL;
        x->parent_tunnel = 1;
        if (x->is_connect)
            x->req_body_done = 1;
        return exchange_move(x, SESSION_EXCHANGE, "connected to the parent: CONNECT sent");
    }
    if (x->is_connect) {
        before = buffer_length(&s->client.out);
        if (buffer_append_str(&s->client.out, "HTTP/1.1 200 Connection Established\r\n\r\n"))
            return exchange_fail(x, 502, "out of memory");
        flows_record_flag(x->flow, FLOW_F_TUNNEL);
        flows_record_appended(x->flow, FLOW_PART_RES_OUT, buffer_peek(&s->client.out),
                              buffer_length(&s->client.out), before);
        x->status = 200;
        x->response_started = 1;
        x->req_body_done = 1;
        TRACE(s, "CONNECT answered: 200 Connection Established; from now on bytes both ways");
        return exchange_move(x, SESSION_TUNNEL, "connected: 200 to the CONNECT");
    }
    /* https: the TLS handshake with the upstream is part of connecting
     * (bounded by the connect timeout); a refused certificate is a 502
     * naming the reason. */
    if (x->upstream_tls && !endpoint_is_tls(&s->upstream) &&
        tls_connect(&s->upstream, s->proxy->tls, x->host, x->port, s) != 0)
        return exchange_fail(x, 502, "could not start TLS with the upstream");
    if (s->upstream.handshaking) {
        enum endpoint_io r = tls_handshake(&s->upstream);
        if (r == ENDPOINT_AGAIN)
            return exchange_move(x, SESSION_CONNECTING, "TLS handshake with the upstream");
        /* The endpoint's error text goes with its TLS state, which is
         * freed when the upstream is detached, before the exchange is
         * logged and recorded: the cause is a copy. */
        if (r == ENDPOINT_ERROR)
            return exchange_fail(x, 502, s->upstream.error
                                             ? exchange_cause(x, "the TLS handshake with the "
                                                                 "upstream failed",
                                                              "%s", s->upstream.error)
                                             : "the TLS handshake with the upstream failed");
    }
    if (x->upstream_tls)
        flows_record_time(x->flow, FLOW_T_TLS, ev_now(s->proxy->loop));
    step = plan_request_body(s);
    if (exchange_step_is_outcome(step))
        return step;
    if (!x->req_collect &&
        write_request_head(s, x->req_out_kind, x->req_framing.length, x->req_had_length) != 0)
        return exchange_fail(x, 502, "out of memory");
    if (x->req_collect && x->req_body_done) {
        /* A body collected whole while the first connection was given up
         * (upstream_send_collected_request): it goes on this fresh one
         * now, whatever the server says first (only once). */
        step = send_collected(s);
        if (exchange_step_is_outcome(step))
            return step;
    }
    if (x->req_body_done)
        flows_record_time(x->flow, FLOW_T_SENT, s->last_activity);
    TRACE(s, "request head queued upstream: %zu bytes, %.*s %.*s HTTP/1.1 (%s), body %s",
          buffer_length(&s->upstream.out) - before, (int)x->fwd_method_len, x->fwd_method,
          (int)(x->fwd_path_len > 200 ? 200 : x->fwd_path_len), x->fwd_path,
          x->parent && !x->upstream_tls ? "absolute-form, to the parent proxy" : "origin-form",
          x->req_collect ? "collected first" : body_kind_name(x->req_out_kind));
    return exchange_move(x, SESSION_EXCHANGE, "connected: request head queued");
}

void upstream_abandon(struct session *s)
{
    struct exchange *x = &s->x;

    if (x->dns) {
        TRACE(s, "the DNS question in flight is cancelled: its answer is no longer wanted");
        dns_cancel(x->dns);
        x->dns = NULL;
    }
    if (s->upstream_idle || s->upstream.fd < 0)
        return;
    TRACE(s, "upstream connection closed: %s",
          s->state == SESSION_CONNECTING ? "the connect (or TLS handshake) in progress is "
                                           "abandoned"
                                         : "the request body stops halfway: it cannot be reused");
    x->upstream_reusable = 0;
    endpoint_close(s->proxy->loop, &s->upstream);
    endpoint_open(&s->upstream, -1);
}

/* Whether the connection <s> keeps became readable in this turn of the
 * loop, its event not yet handled: the upstream closed it or sent bytes
 * nobody asked for, and a request sent on it now would take those bytes
 * for its answer. The event waits in libev's queue when another socket's
 * event (this client's next request) came first in the same turn. Costs
 * no system call. */
int upstream_idle_spoke(const struct session *s)
{
    return ev_is_pending(&s->upstream.io);
}

void upstream_release_idle(struct session *s)
{
    if (!s->upstream_idle)
        return;
    s->upstream_idle = 0;
    s->proxy->kept_upstreams--;
    /* A TLS connection's state lives in its SSL object, not in the fd:
     * it cannot be handed to the pool of sockets. One whose socket became
     * readable in this turn of the loop (upstream_idle_spoke) would be
     * watched afresh by the pool, which would not know it spoke. */
    if (s->proxy->stopping || s->upstream_idle_tls || upstream_idle_spoke(s)) {
        endpoint_close(s->proxy->loop, &s->upstream);
        return;
    }
    endpoint_watch(s->proxy->loop, &s->upstream, 0);
    TRACE(s, "the upstream connection the session kept: parked in the pool for other clients");
    upstream_pool_put(&s->proxy->pool, s->upstream.fd, s->upstream_host, s->upstream_port,
                      s->upstream_creds, s->upstream_idle_since);
    s->upstream.fd = -1;
    endpoint_close(s->proxy->loop, &s->upstream);
}

/* Whether bytes wait in <fd>'s socket. A body spliced to the client was
 * moved straight from the socket, exactly its length, so whatever the
 * upstream sent past it is still there, not in the input buffer the check
 * below looks at; reused, the connection would give those bytes to the
 * next request as its answer. One system call, only after a splice. */
static int unread_in_socket(int fd)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n != 0 && !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

void upstream_detach(struct session *s)
{
    struct exchange *x = &s->x;
    struct endpoint *u = &s->upstream;
    const char *host;
    int named;

    /* Still kept from an earlier exchange: this one never reached
     * upstream_start (the proxy or a script answered it), so the kept
     * connection is not its to close. It stays for the next request. */
    if (s->upstream_idle)
        return;
    /* (Named while it is not kept, these fields mean nothing yet.) */
    named = connect_target(x, s->upstream_host, sizeof s->upstream_host, s->upstream_creds,
                           &host, &s->upstream_port) == 0;
    if (u->fd >= 0 && x->upstream_reusable && x->res_state == RESPONSE_DONE &&
        !endpoint_splicing(u) && !(x->res_spliced > 0 && unread_in_socket(u->fd)) &&
        x->req_body_done && s->state != SESSION_TUNNEL && !u->read_eof && !u->failed &&
        buffer_length(&u->in) == 0 && buffer_length(&u->out) == 0 && !s->proxy->stopping &&
        named) {
        /* Keep it with the session: a kept-alive client's next request
         * most likely goes to the same place. */
        buffer_free(&u->in);
        buffer_free(&u->out);
        s->upstream_idle = 1;
        s->upstream_idle_tls = endpoint_is_tls(u);
        s->upstream_idle_lifted = !s->client_local && s->proxy->cfg->allow_local_destinations;
        s->upstream_idle_since = ev_now(s->proxy->loop);
        s->proxy->kept_upstreams++;
        if (!x->keep_alive || !proxy_may_keep_upstream(s->proxy)) {
            TRACE(s, "upstream connection parked in the pool: clean, and %s",
                  !x->keep_alive ? "the client connection ends" : "sessions keep enough already");
            upstream_release_idle(s);
        } else {
            TRACE(s, "upstream connection kept by the session: clean, and the next request "
                     "likely goes to the same place");
        }
        return;
    }
    if (u->fd >= 0)
        TRACE(s, "upstream connection closed: %s",
              x->tunneled                    ? "it carried a tunnel"
              : !x->upstream_reusable        ? "the response said so (close, HTTP/1.0 or "
                                               "close-delimited)"
              : x->res_state != RESPONSE_DONE ? "the response did not complete"
              : !x->req_body_done            ? "the request body was not all sent"
              : s->state == SESSION_TUNNEL   ? "it carried a tunnel"
              : u->read_eof || u->failed     ? "the upstream closed it"
              : s->proxy->stopping           ? "the proxy is stopping"
              : !named                       ? "it cannot be named for reuse"
                                             : "bytes left unread or unsent");
    endpoint_close(s->proxy->loop, u);
}

/* A reused connection may have been closed by the upstream just as we sent
 * on it. A request that is safe to repeat and got no byte of answer goes
 * again on a fresh connection (RFC 9112 9.3.1). */
int upstream_may_retry(const struct session *s)
{
    const struct exchange *x = &s->x;
    static const char *const idempotent[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};

    if (!x->reused || x->req_framing.kind != HTTP_BODY_NONE ||
        buffer_length(&s->upstream.in) > 0)
        return 0;
    for (size_t i = 0; i < sizeof idempotent / sizeof idempotent[0]; i++)
        if (strlen(idempotent[i]) == x->fwd_method_len &&
            memcmp(idempotent[i], x->fwd_method, x->fwd_method_len) == 0)
            return 1;
    return 0;
}

enum exchange_step upstream_retry_fresh(struct session *s)
{
    struct exchange *x = &s->x;

    TRACE(s, "the reused connection was closed before any answer: retrying %.*s on a fresh one",
          (int)x->fwd_method_len, x->fwd_method);
    endpoint_close(s->proxy->loop, &s->upstream);
    x->reused = 0;
    x->no_pool = 1;
    flows_record_retry(x->flow, ev_now(s->proxy->loop));
    return upstream_start(s);
}
