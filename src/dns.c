/*
 * dns.c - c-ares driven by libev.
 *
 * c-ares tells us which sockets it wants watched through its socket-state
 * callback; each gets an ev_io (kept in a small table). One ev_timer follows
 * ares_timeout() so retransmits and timeouts happen without polling.
 *
 * A query is a small heap object owned by this module. The caller holds a
 * pointer only to cancel it: cancelling clears the callback, and the object
 * is freed when c-ares finishes with it. Results that c-ares produces while
 * still inside ares_getaddrinfo() (from /etc/hosts, say) are delivered from
 * a zero-delay timer instead, so callers are never called back re-entrantly.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <ares.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define DNS_MAX_SOCKETS 16

struct dns_socket {
    ev_io io;
    int in_use;
};

struct dns_resolver {
    struct ev_loop *loop;
    ares_channel channel;
    ev_timer timer;
    struct dns_socket sockets[DNS_MAX_SOCKETS];
    struct dns_query *delivering; /* results waiting for their timer */
};

struct dns_query {
    struct dns_resolver *resolver;
    dns_callback *cb; /* NULL once cancelled */
    void *arg;
    uint16_t port;
    int starting;     /* still inside ares_getaddrinfo() */
    int finished;     /* the c-ares callback has run */
    enum dns_status status;
    struct addr_list addrs;
    ev_timer deliver; /* delivers a result that arrived while starting */
    struct dns_query *next_delivering;
};

static void arm_timer(struct dns_resolver *r)
{
    struct timeval tv, *tvp = ares_timeout(r->channel, NULL, &tv);
    ev_timer_stop(r->loop, &r->timer);
    if (tvp) {
        ev_timer_set(&r->timer, (double)tvp->tv_sec + (double)tvp->tv_usec / 1e6, 0.);
        ev_timer_start(r->loop, &r->timer);
    }
}

static void on_dns_socket(struct ev_loop *loop, ev_io *w, int revents)
{
    struct dns_resolver *r = w->data;
    (void)loop;
    ares_process_fd(r->channel, (revents & EV_READ) ? w->fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? w->fd : ARES_SOCKET_BAD);
    arm_timer(r);
}

static void on_dns_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dns_resolver *r = w->data;
    (void)loop;
    (void)revents;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    arm_timer(r);
}

/* c-ares: start, change or stop watching <fd>. */
static void on_socket_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_resolver *r = data;
    struct dns_socket *slot = NULL, *free_slot = NULL;

    for (int i = 0; i < DNS_MAX_SOCKETS; i++) {
        if (r->sockets[i].in_use && r->sockets[i].io.fd == fd)
            slot = &r->sockets[i];
        else if (!r->sockets[i].in_use && !free_slot)
            free_slot = &r->sockets[i];
    }
    if (!readable && !writable) {
        if (slot) {
            ev_io_stop(r->loop, &slot->io);
            slot->in_use = 0;
        }
        return;
    }
    if (!slot) {
        if (!free_slot) {
            log_error("dns: more than %d resolver sockets", DNS_MAX_SOCKETS);
            return; /* the query times out through ares_timeout */
        }
        slot = free_slot;
        slot->in_use = 1;
        ev_io_init(&slot->io, on_dns_socket, fd, 0);
        slot->io.data = r;
    }
    ev_io_stop(r->loop, &slot->io);
    ev_io_set(&slot->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    ev_io_start(r->loop, &slot->io);
}

struct dns_resolver *dns_resolver_new(struct ev_loop *loop, double timeout, char *err,
                                      size_t err_len)
{
    struct ares_options opts;
    struct dns_resolver *r;
    int status;

    status = ares_library_init(ARES_LIB_INIT_ALL);
    if (status != ARES_SUCCESS) {
        snprintf(err, err_len, "c-ares init: %s", ares_strerror(status));
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    r->loop = loop;
    memset(&opts, 0, sizeof opts);
    opts.sock_state_cb = on_socket_state;
    opts.sock_state_cb_data = r;
    /* Each try gets a third of the budget, so a dead server is given up on
     * well inside the connect timeout. */
    opts.timeout = (int)(timeout * 1000 / 3);
    if (opts.timeout < 100)
        opts.timeout = 100;
    opts.tries = 2;
    status = ares_init_options(&r->channel, &opts,
                               ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (status != ARES_SUCCESS) {
        snprintf(err, err_len, "c-ares init: %s", ares_strerror(status));
        free(r);
        return NULL;
    }
    ev_timer_init(&r->timer, on_dns_timer, 0., 0.);
    r->timer.data = r;
    return r;
}

void dns_resolver_free(struct dns_resolver *r)
{
    if (!r)
        return;
    /* ares_destroy() runs every pending callback with ARES_EDESTRUCTION,
     * which frees the queries. */
    ares_destroy(r->channel);
    while (r->delivering) {
        struct dns_query *q = r->delivering;
        r->delivering = q->next_delivering;
        ev_timer_stop(r->loop, &q->deliver);
        free(q);
    }
    ev_timer_stop(r->loop, &r->timer);
    for (int i = 0; i < DNS_MAX_SOCKETS; i++)
        if (r->sockets[i].in_use)
            ev_io_stop(r->loop, &r->sockets[i].io);
    free(r);
    ares_library_cleanup();
}

const char *dns_status_name(enum dns_status status)
{
    switch (status) {
    case DNS_OK: return "ok";
    case DNS_NOT_FOUND: return "not found";
    case DNS_TIMEOUT: return "timed out";
    }
    return "?";
}

static void query_deliver(struct dns_query *q)
{
    if (q->cb)
        q->cb(q->arg, q->status, &q->addrs);
    free(q);
}

static void on_deliver(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dns_query *q = w->data;
    struct dns_query **pp = &q->resolver->delivering;
    (void)loop;
    (void)revents;
    while (*pp != q)
        pp = &(*pp)->next_delivering;
    *pp = q->next_delivering;
    query_deliver(q);
}

static void copy_addresses(struct dns_query *q, const struct ares_addrinfo *res)
{
    /* Take IPv4 and IPv6 answers alternately is overkill here; keep the
     * resolver's order, which already follows RFC 6724 sorting. */
    for (const struct ares_addrinfo_node *n = res ? res->nodes : NULL;
         n && q->addrs.count < ADDR_LIST_MAX; n = n->ai_next) {
        if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
            n->ai_addrlen > sizeof(union addr_any))
            continue;
        int i = q->addrs.count++;
        memcpy(&q->addrs.addr[i], n->ai_addr, n->ai_addrlen);
        q->addrs.len[i] = n->ai_addrlen;
        if (n->ai_family == AF_INET)
            q->addrs.addr[i].in4.sin_port = htons(q->port);
        else
            q->addrs.addr[i].in6.sin6_port = htons(q->port);
    }
}

/* The lookup of <q> ended with c-ares' <status>, its addresses copied:
 * the callback runs now, or from the loop if dns_resolve() has not yet
 * returned. */
static void query_finish(struct dns_query *q, int status)
{
    q->finished = 1;
    if (q->addrs.count == 0)
        q->status = status == ARES_ETIMEOUT ? DNS_TIMEOUT : DNS_NOT_FOUND;
    if (q->starting) {
        ev_timer_init(&q->deliver, on_deliver, 0., 0.);
        q->deliver.data = q;
        ev_timer_start(q->resolver->loop, &q->deliver);
        q->next_delivering = q->resolver->delivering;
        q->resolver->delivering = q;
        return;
    }
    query_deliver(q);
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct dns_query *q = arg;
    (void)timeouts;

    if (status == ARES_SUCCESS)
        copy_addresses(q, res);
    if (res)
        ares_freeaddrinfo(res);
    if (status == ARES_EDESTRUCTION) {
        free(q); /* the resolver is going away: nobody is waiting */
        return;
    }
    query_finish(q, status);
}

/* Adds the addresses of <family> /etc/hosts gives <name> to <q>. */
static void hosts_file_addresses(struct dns_query *q, const char *name, int family)
{
    struct hostent *he = NULL;

    if (ares_gethostbyname_file(q->resolver->channel, name, family, &he) != ARES_SUCCESS || !he)
        return;
    for (char **a = he->h_addr_list; *a && q->addrs.count < ADDR_LIST_MAX; a++) {
        union addr_any *out = &q->addrs.addr[q->addrs.count];
        memset(out, 0, sizeof *out);
        if (family == AF_INET && he->h_length == 4) {
            out->in4.sin_family = AF_INET;
            out->in4.sin_port = htons(q->port);
            memcpy(&out->in4.sin_addr, *a, 4);
            q->addrs.len[q->addrs.count++] = sizeof out->in4;
        } else if (family == AF_INET6 && he->h_length == 16) {
            out->in6.sin6_family = AF_INET6;
            out->in6.sin6_port = htons(q->port);
            memcpy(&out->in6.sin6_addr, *a, 16);
            q->addrs.len[q->addrs.count++] = sizeof out->in6;
        }
    }
    ares_free_hostent(he);
}

/* A trailing dot makes a name absolute ("localhost.", "example.com."),
 * and the DNS takes it so; but c-ares looks the name up in /etc/hosts as
 * it is spelt, dot and all, where no entry has one: a name that lives
 * only there failed with the dot. It is looked up there without it; what
 * is not found goes on to the DNS spelt as the client spelt it (still
 * absolute, so no search domain is tried first). 1 if found. */
static int hosts_file_absolute(struct dns_query *q, const char *host, size_t len)
{
    char name[256];

    if (len < 2 || len >= sizeof name || host[len - 1] != '.' || host[len - 2] == '.')
        return 0;
    memcpy(name, host, len - 1);
    name[len - 1] = '\0';
    hosts_file_addresses(q, name, AF_INET6);
    hosts_file_addresses(q, name, AF_INET);
    return q->addrs.count > 0;
}

struct dns_query *dns_resolve(struct dns_resolver *r, const char *host, uint16_t port,
                              dns_callback *cb, void *arg)
{
    struct ares_addrinfo_hints hints;
    struct dns_query *q = calloc(1, sizeof *q);
    size_t len = strlen(host);
    /* without the dot of an absolute name ("x.invalid.") */
    size_t bare = len > 1 && host[len - 1] == '.' ? len - 1 : len;

    if (!q)
        return NULL;
    q->resolver = r;
    q->cb = cb;
    q->arg = arg;
    q->port = port;
    q->starting = 1;
    /* RFC 6761: ".invalid" never resolves; answer without asking anyone. */
    if ((bare >= 8 && strncasecmp(host + bare - 8, ".invalid", 8) == 0) ||
        (bare == 7 && strncasecmp(host, "invalid", 7) == 0)) {
        on_addrinfo(q, ARES_ENOTFOUND, 0, NULL);
        q->starting = 0;
        return q;
    }
    if (hosts_file_absolute(q, host, len)) {
        query_finish(q, ARES_SUCCESS);
        q->starting = 0;
        return q;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(r->channel, host, NULL, &hints, on_addrinfo, q);
    q->starting = 0;
    if (!q->finished)
        arm_timer(r);
    return q;
}

void dns_cancel(struct dns_query *q)
{
    if (q)
        q->cb = NULL;
}

int dns_parse_numeric(const char *host, uint16_t port, struct addr_list *out)
{
    struct sockaddr_in *sin = &out->addr[0].in4;
    struct sockaddr_in6 *sin6 = &out->addr[0].in6;

    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        out->len[0] = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        out->len[0] = sizeof *sin6;
    } else {
        return 0;
    }
    out->count = 1;
    return 1;
}
