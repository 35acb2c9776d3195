/*
 * proxy.c - listening sockets, accepting clients, signals and shutdown.
 *
 * This is the tutorial's "listen" and "accept" step, done for an event
 * loop: sockets are non-blocking, accept() drains the backlog until EAGAIN,
 * and each client becomes a session (session.c) instead of a thread.
 *
 * Why not a thread per client: a thread costs a stack (megabytes of address
 * space, tens of KiB touched) even while its client sits idle on a
 * keep-alive connection, and threads sharing the pool, the counters and a
 * Lua state would need locks everywhere. One loop per worker keeps an idle
 * client down to a struct session and two small buffers, needs no locks,
 * and gives each worker one Lua state; the workers (workers.c) use the
 * other CPUs.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "access_log.h"
#include "auth.h"
#include "acl.h"
#include "dns.h"
#include "hooks.h"
#include "intercept.h"
#include "log.h"
#include "reload.h"
#include "metrics.h"
#include "stats.h"
#include "session.h"
#include "trace.h"
#include "tls.h"
#include "tls_trust.h"

/* How many connections one readiness event may accept. One, as nginx does
 * by default: the listener is watched level-triggered, so while more
 * clients wait it is reported again on the next turn of the loop, together
 * with everything else that is ready. Accepting until EAGAIN would cost a
 * failing accept4 on nearly every wakeup, and a flood of new clients could
 * not starve the ones already being served either way. */
#define ACCEPT_BATCH 1
/* How long to wait before accepting again when out of file descriptors. */
#define ACCEPT_RETRY_DELAY 0.5
/* Idle clients one new client may close to make room for itself at
 * --max-connections (take_slot_making_room). */
#define RECLAIM_MAX 8
/* How long in-flight exchanges may take to finish after SIGTERM. */
#define DRAIN_LIMIT 10.0
/* Refused clients this loop keeps long enough to answer 403 or 503; past
 * that, a refused client's connection is closed at once. Fewer when the
 * descriptors are short (proxy_fit_descriptors). */
#define REFUSED_SESSIONS_MAX 64
/* Idle upstream connections kept: in all (fewer when the descriptors are
 * short), per host and port, and for how long (never longer than
 * --idle-timeout). */
#define POOL_MAX_TOTAL 512
#define POOL_MAX_PER_HOST 128
#define POOL_IDLE_LIMIT 15.0
/* Idle upstream connections that sessions may hold between requests, so
 * many idle clients cannot tie up as many upstream connections. */
#define KEPT_UPSTREAMS_MAX 256

static void format_address(const struct sockaddr *sa, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(out, len, "%s:%u", ip, ntohs(sin->sin_port));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        snprintf(out, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    }
}

void proxy_client_address(const struct sockaddr *addr, char *ip, size_t ip_len, int *port)
{
    if (addr->sa_family == AF_INET) {
        /* Every accepted client's address is written out, and glibc's
         * inet_ntop formats IPv4 through sprintf: four small numbers by
         * hand cost a tenth of that. */
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)addr;
        const unsigned char *b = (const unsigned char *)&sin->sin_addr;
        char *out = ip;
        for (int i = 0; i < 4; i++) {
            unsigned v = b[i];
            if (v >= 100)
                *out++ = (char)('0' + v / 100);
            if (v >= 10)
                *out++ = (char)('0' + v / 10 % 10);
            *out++ = (char)('0' + v % 10);
            *out++ = i < 3 ? '.' : '\0';
        }
        (void)ip_len; /* "255.255.255.255" and its NUL fit in INET6_ADDRSTRLEN */
        *port = ntohs(sin->sin_port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)addr;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, (socklen_t)ip_len);
        *port = ntohs(sin6->sin6_port);
    }
}

static void listeners_watch(struct proxy *p, int on)
{
    for (int i = 0; i < p->listener_count; i++) {
        if (on)
            ev_io_start(p->loop, &p->listeners[i].io);
        else
            ev_io_stop(p->loop, &p->listeners[i].io);
    }
}

/* A refused client (not in --allow, or over --max-connections) is counted
 * apart: it must not take one of the slots --max-connections keeps for
 * the clients allowed in, however many a refused address opens. */
static void count_session(struct proxy *p, int delta, int refused)
{
    p->session_count += delta;
    if (delta > 0)
        stats_add(STAT_CONNECTIONS_ACCEPTED, delta);
    stats_add(STAT_CONNECTIONS_OPEN, delta);
    if (refused)
        p->refused_count += delta;
    else if (p->shared_sessions && delta < 0) /* an arrival took its slot in take_slot */
        __atomic_add_fetch(&p->shared_sessions[p->shared_slot], delta, __ATOMIC_RELAXED);
}

/* One of the --max-connections slots for a client let in: 1, or 0 at the
 * cap. With workers the count is shared, and the slot is taken before the
 * total is read: two workers that looked first and took after could both
 * take the last one (and with N workers, N - 1 too many). Taking first,
 * two at once may both give theirs back; the cap holds either way. */
static int take_slot(struct proxy *p)
{
    int *mine;

    if (!p->shared_sessions)
        return proxy_connection_count(p) < p->cfg->max_connections;
    mine = &p->shared_sessions[p->shared_slot];
    __atomic_add_fetch(mine, 1, __ATOMIC_SEQ_CST);
    if (proxy_connection_count(p) <= p->cfg->max_connections)
        return 1;
    __atomic_sub_fetch(mine, 1, __ATOMIC_SEQ_CST);
    return 0;
}

/*
 * At the cap: closes this worker's clients idle waiting for a request, as
 * many as it takes for the new client to have a slot (session_idle.h says
 * which go first), so it is served instead of answered 503: a connection
 * waiting for a request that may never come is worth less than a client
 * with a request in hand. Returns 1 with a slot taken, 0 without: too few
 * of this worker's clients are idle.
 *
 * At the cap that is one. After a reload lowered --max-connections below
 * the count it is more, and one new client closes up to RECLAIM_MAX: each
 * close is a session freed and a peek or so (session_idle_closable), so a
 * lowered limit is worked down over the next few new clients rather than
 * by one of them closing hundreds in a single turn of the loop while the
 * others wait. Those it closes are closed even when they are too few to
 * let the new client in: they were over the new limit, which is what the
 * reload asked for, and the next new client needs fewer.
 *
 * Only this worker's clients: with workers the count is shared, but a
 * worker cannot close another's connections. So a worker whose clients
 * are all busy answers 503 even while another worker holds idle ones;
 * and between the closes and take_slot another worker may take the slots
 * that were freed, which is a 503 too, as before.
 */
static int take_slot_making_room(struct proxy *p)
{
    struct session *idle[RECLAIM_MAX];
    int want, n;

    if (take_slot(p))
        return 1;
    /* With the new client, the count must not pass the limit. */
    want = proxy_connection_count(p) + 1 - p->cfg->max_connections;
    want = want < 1 ? 1 : want > RECLAIM_MAX ? RECLAIM_MAX : want;
    n = session_idle_closable(&p->idle, ev_now(p->loop), idle, want);
    for (int i = 0; i < n; i++)
        session_reclaim(idle[i]); /* frees it: on_session_gone gives its slot back */
    return n > 0 && take_slot(p);
}

static void give_slot_back(struct proxy *p)
{
    if (p->shared_sessions)
        __atomic_sub_fetch(&p->shared_sessions[p->shared_slot], 1, __ATOMIC_SEQ_CST);
}

/* A session reports here, through the pointer given to session_start, that
 * it is being freed: the proxy owns the list and the counts. */
static void on_session_gone(struct proxy *p, struct session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        p->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    count_session(p, -1, s->reject_status != 0);
    if (p->fresh == s)
        p->fresh = NULL;
    if (p->stopping && p->session_count == 0)
        ev_break(p->loop, EVBREAK_ALL);
}

/*
 * Reads the request of the client accepted last, without waiting for epoll
 * to report it (which would cost an epoll_wait per connection). It runs
 * once the events already pending in this turn of the loop have, as it has
 * the lowest priority: a new client does not go before those that were
 * ready first (a client that just closed, say, whose upstream connection
 * the new one may reuse). When the request has not arrived, the read finds
 * nothing and the watcher waits as usual.
 */
static void on_fresh_client(struct ev_loop *loop, ev_idle *w, int revents)
{
    struct proxy *p = w->data;
    (void)revents;
    if (p->fresh)
        ev_feed_event(loop, &p->fresh->client.io, EV_READ);
    p->fresh = NULL;
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct proxy *p = w->data;
    (void)loop;
    (void)revents;
    if (!p->stopping)
        listeners_watch(p, 1);
}

static void on_listener_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct proxy *p = w->data;
    (void)revents;

    for (int i = 0; i < ACCEPT_BATCH && !p->stopping; i++) {
        struct sockaddr_storage addr;
        socklen_t addr_len = sizeof addr;
        int fd = accept4(w->fd, (struct sockaddr *)&addr, &addr_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: pending clients wait in the backlog
                 * until sessions close, rather than spinning here. */
                log_warn("accept: %s; pausing new connections", strerror(errno));
                listeners_watch(p, 0);
                ev_timer_set(&p->accept_retry, ACCEPT_RETRY_DELAY, 0.);
                ev_timer_start(p->loop, &p->accept_retry);
            }
            return; /* EAGAIN: the backlog is empty */
        }

        int reject = 0;
        if (!acl_match(p->cfg->allow, p->cfg->allow_count, (struct sockaddr *)&addr))
            reject = 403;
        else if (!take_slot_making_room(p))
            reject = 503;
        /* Rejected clients still get a (small) session, so they can be
         * told why in a proper response instead of a bare reset. Beyond a
         * margin even that is refused. */
        if (reject && p->refused_count >= p->refused_max) {
            close(fd);
            continue;
        }
        struct session *s = session_start(p, fd, (struct sockaddr *)&addr, addr_len, reject,
                                          on_session_gone);
        if (!s) {
            if (!reject)
                give_slot_back(p);
            continue;
        }
        TRACE(s, "accepted %s:%d; allow-list: %s", s->client_ip, s->client_port,
              reject == 403   ? "not allowed (--allow): the first request gets 403"
              : reject == 503 ? "allowed, but at --max-connections: the first request gets 503"
                              : "allowed");
        s->next = p->sessions;
        if (p->sessions)
            p->sessions->prev = s;
        p->sessions = s;
        count_session(p, +1, reject != 0);
        /* A client connects to send its request, which has nearly always
         * arrived by the time the connection is accepted: read it in this
         * turn of the loop instead of asking epoll first. */
        p->fresh = s;
        ev_feed_event(loop, &p->fresh_read, EV_CUSTOM);
    }
}

double proxy_pool_idle_timeout(const struct config *cfg)
{
    return cfg->idle_timeout < POOL_IDLE_LIMIT ? cfg->idle_timeout : POOL_IDLE_LIMIT;
}

uint16_t proxy_address_port(const struct sockaddr_storage *addr)
{
    return ntohs(addr->ss_family == AF_INET ? ((const struct sockaddr_in *)addr)->sin_port
                                            : ((const struct sockaddr_in6 *)addr)->sin6_port);
}

/* Whether a socket already listens on <addr> (of <len> bytes). The proxy's
 * own sockets share their port through SO_REUSEPORT, which would also let
 * a second luaproxy started on the same address take a share of the
 * connections without a word. A socket bound without SO_REUSEPORT cannot
 * share a port that a socket listens on, so its bind tells. */
static int address_in_use(const struct sockaddr_storage *addr, socklen_t len)
{
    int one = 1;
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return 0; /* the real socket's error will say what is wrong */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    int in_use = bind(fd, (const struct sockaddr *)addr, len) == -1 && errno == EADDRINUSE;
    close(fd);
    return in_use;
}

int proxy_listen_socket(const struct listen_addr *la, uint16_t port,
                        struct sockaddr_storage *bound, socklen_t *bound_len, char *err,
                        size_t err_len)
{
    /* The first socket of an address (a later worker's shares its port):
     * refused if something listens there already. Port 0 needs no look,
     * the kernel picks a free one. */
    if (port == 0 && proxy_address_port(&la->addr) != 0 &&
        address_in_use(&la->addr, la->addr_len)) {
        snprintf(err, err_len, "cannot listen on %s: %s (something listens there already)",
                 la->text, strerror(EADDRINUSE));
        return -1;
    }

    struct sockaddr_storage addr = la->addr;
    int one = 1;
    int fd = socket(la->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        snprintf(err, err_len, "socket for %s: %s", la->text, strerror(errno));
        return -1;
    }
    if (port != 0) {
        if (addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&addr)->sin_port = htons(port);
        else
            ((struct sockaddr_in6 *)&addr)->sin6_port = htons(port);
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* Workers each bind their own socket to the same address; the kernel
     * spreads new connections across them. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (la->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    /* Accepted sockets inherit TCP_NODELAY from the listener (Linux copies
     * it into each new connection), which saves a setsockopt per client:
     * responses go out as soon as they are written, not after the client's
     * delayed ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&addr, la->addr_len) == -1) {
        snprintf(err, err_len, "cannot listen on %s: %s", la->text, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 511) == -1) {
        snprintf(err, err_len, "listen on %s: %s", la->text, strerror(errno));
        close(fd);
        return -1;
    }
    *bound_len = sizeof *bound;
    getsockname(fd, (struct sockaddr *)bound, bound_len);
    return fd;
}

int proxy_peer_address(int fd, char *out, size_t len)
{
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof addr;
    if (getpeername(fd, (struct sockaddr *)&addr, &addr_len) != 0)
        return -1;
    format_address((struct sockaddr *)&addr, out, len);
    return 0;
}

void proxy_log_listening(const struct sockaddr *addr)
{
    char text[80];
    format_address(addr, text, sizeof text);
    log_info("listening on %s", text);
}

void proxy_log_listeners(const struct proxy *p)
{
    for (int i = 0; i < p->listener_count; i++)
        proxy_log_listening((const struct sockaddr *)&p->listeners[i].addr);
}

/* Watches listening socket <fd> (made here when <fd> is -1). The caller
 * says where it listens (proxy_log_listeners), once --pid-file is
 * written: a service manager may take that line for readiness. */
static int open_listener(struct proxy *p, const struct listen_addr *la, int fd, char *err,
                         size_t err_len)
{
    struct listener *l = &p->listeners[p->listener_count];

    if (fd < 0) {
        fd = proxy_listen_socket(la, 0, &l->addr, &l->addr_len, err, err_len);
        if (fd < 0)
            return -1;
    } else {
        l->addr_len = sizeof l->addr;
        getsockname(fd, (struct sockaddr *)&l->addr, &l->addr_len);
    }
    l->fd = fd;
    ev_io_init(&l->io, on_listener_readable, fd, EV_READ);
    l->io.data = p;
    ev_io_start(p->loop, &l->io);
    p->listener_count++;
    return 0;
}

static void close_listeners(struct proxy *p)
{
    for (int i = 0; i < p->listener_count; i++) {
        ev_io_stop(p->loop, &p->listeners[i].io);
        close(p->listeners[i].fd);
    }
    p->listener_count = 0;
    ev_timer_stop(p->loop, &p->accept_retry);
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct proxy *p = w->data;
    (void)revents;
    log_warn("shutdown: %d connection(s) still busy after %.0f s; closing them",
             p->session_count, DRAIN_LIMIT);
    /* Aborted, not just freed: each exchange cut short still ends as any
     * other does, logged (access log, flows) and with its on_done. */
    for (struct session *s = p->sessions, *next; s; s = next) {
        next = s->next;
        session_abort(s, "closed: the proxy stopped before it ended");
    }
    while (p->sessions)
        session_free(p->sessions); /* none should be left; freed all the same */
    ev_break(loop, EVBREAK_ALL);
}

/* SIGINT/SIGTERM (or a worker's supervisor gone): stop accepting, close
 * idle connections, let the busy ones finish their exchange (bounded by
 * DRAIN_LIMIT), then leave the loop. */
void proxy_stop(struct proxy *p, const char *why)
{
    struct ev_loop *loop = p->loop;
    if (p->stopping)
        return;
    p->stopping = 1;
    log_info("%s: no new connections; finishing %d in flight", why, p->session_count);
    close_listeners(p);
    upstream_pool_free(&p->pool);
    for (struct session *s = p->sessions, *next; s; s = next) {
        next = s->next;
        session_stop(s);
    }
    if (p->session_count == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    ev_timer_set(&p->drain_timer, DRAIN_LIMIT, 0.);
    ev_timer_start(loop, &p->drain_timer);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    char why[32];
    (void)loop;
    (void)revents;
    snprintf(why, sizeof why, "signal %d", w->signum);
    proxy_stop(w->data, why);
}

/* The descriptors left after the clients' (config_fds: the spare) go to
 * the refused clients waiting for their answer (up to half: a client is
 * better told why than left with a reset) and the pool (up to a quarter);
 * the rest is for splice pipes and the scripts' calls, which fall back or
 * fail on their own when none is left. */
void proxy_fit_descriptors(struct proxy *p)
{
    struct config_fds fds;
    config_fd_budget(p->cfg, &fds);
    long spare = fds.spare > 0 ? fds.spare : 0;
    p->refused_max = spare / 2 < REFUSED_SESSIONS_MAX ? (int)(spare / 2) : REFUSED_SESSIONS_MAX;
    p->pool.max_total = spare / 4 < POOL_MAX_TOTAL ? (int)(spare / 4) : POOL_MAX_TOTAL;
}


void proxy_set_worker(struct proxy *p, int index, int count)
{
    p->next_exchange_id = p->next_session_id = (uint64_t)index + 1;
    p->id_step = count;
}

uint64_t proxy_next_session_id(struct proxy *p)
{
    uint64_t id = p->next_session_id;
    p->next_session_id += (uint64_t)p->id_step;
    return id;
}

uint64_t proxy_next_exchange_id(struct proxy *p)
{
    uint64_t id = p->next_exchange_id;
    p->next_exchange_id += (uint64_t)p->id_step;
    return id;
}

int proxy_may_keep_upstream(const struct proxy *p)
{
    return !p->stopping && p->kept_upstreams < KEPT_UPSTREAMS_MAX;
}

int proxy_connection_count(const struct proxy *p)
{
    int total = 0;
    if (!p->shared_sessions)
        return p->session_count - p->refused_count;
    for (int i = 0; i < p->shared_slots; i++)
        total += __atomic_load_n(&p->shared_sessions[i], __ATOMIC_RELAXED);
    return total;
}

/* Whether <addr> reaches listening address <l>. */
static int reaches(const struct sockaddr *l, const struct sockaddr *addr)
{
    if (l->sa_family != addr->sa_family)
        return 0;
    if (l->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)addr;
        const struct sockaddr_in *b = (const struct sockaddr_in *)(const void *)l;
        uint32_t ip = ntohl(a->sin_addr.s_addr);
        if (a->sin_port != b->sin_port)
            return 0;
        /* A wildcard listener is reached through any local address; we
         * can only tell for loopback and the unspecified address. */
        return a->sin_addr.s_addr == b->sin_addr.s_addr || ip == 0 ||
               (b->sin_addr.s_addr == htonl(INADDR_ANY) && (ip >> 24) == 127);
    }
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)addr;
    const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)(const void *)l;
    if (a->sin6_port != b->sin6_port)
        return 0;
    return memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0 ||
           IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr) ||
           (IN6_IS_ADDR_UNSPECIFIED(&b->sin6_addr) && IN6_IS_ADDR_LOOPBACK(&a->sin6_addr));
}

/* An IPv4-mapped IPv6 address (::ffff:127.0.0.1) connects over IPv4 to
 * the IPv4 address inside: returns that address (in <v4>), else <addr>. */
static const struct sockaddr *unmapped(const struct sockaddr *addr, struct sockaddr_in *v4)
{
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)addr;

    if (addr->sa_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
        return addr;
    memset(v4, 0, sizeof *v4);
    v4->sin_family = AF_INET;
    v4->sin_port = a->sin6_port;
    memcpy(&v4->sin_addr, &a->sin6_addr.s6_addr[12], 4);
    return (const struct sockaddr *)(const void *)v4;
}

int proxy_is_own_address(const struct proxy *p, const struct sockaddr *addr)
{
    struct sockaddr_in v4, l4;

    addr = unmapped(addr, &v4);
    for (int i = 0; i < p->listener_count; i++)
        if (reaches(unmapped((const struct sockaddr *)&p->listeners[i].addr, &l4), addr))
            return 1;
    return p->admin_addr_len > 0 &&
           reaches(unmapped((const struct sockaddr *)&p->admin_addr, &l4), addr);
}

/* Whether <l> is a wildcard listener (0.0.0.0 or ::) on <addr>'s family
 * and port. */
static int wildcard_on(const struct sockaddr *l, const struct sockaddr *addr)
{
    if (l->sa_family != addr->sa_family)
        return 0;
    if (l->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)addr;
        const struct sockaddr_in *b = (const struct sockaddr_in *)(const void *)l;
        return a->sin_port == b->sin_port && b->sin_addr.s_addr == htonl(INADDR_ANY);
    }
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)addr;
    const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)(const void *)l;
    return a->sin6_port == b->sin6_port && IN6_IS_ADDR_UNSPECIFIED(&b->sin6_addr);
}

/* Whether <a> and <b> are the same IP address (ports aside). */
static int same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return 0;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr, 16) == 0;
}

int proxy_is_own_connection(const struct proxy *p, int fd, const struct sockaddr *peer)
{
    struct sockaddr_storage local = {0};
    socklen_t len = sizeof local;
    struct sockaddr_in v4, l4, m4 = {0};
    int wildcard = 0;

    peer = unmapped(peer, &v4);
    for (int i = 0; i < p->listener_count && !wildcard; i++)
        wildcard = wildcard_on(unmapped((const struct sockaddr *)&p->listeners[i].addr, &l4),
                               peer);
    if (!wildcard && p->admin_addr_len > 0)
        wildcard = wildcard_on(unmapped((const struct sockaddr *)&p->admin_addr, &l4), peer);
    /* Only then is the one system call worth making. */
    if (!wildcard || getsockname(fd, (struct sockaddr *)&local, &len) != 0)
        return 0;
    return same_ip(unmapped((const struct sockaddr *)&local, &m4), peer);
}

int proxy_init(struct proxy *p, struct ev_loop *loop, const struct config *cfg,
               const int *listen_fds, int *shared_sessions, int slots, int slot, char *err,
               size_t err_len)
{
    memset(p, 0, sizeof *p);
    p->loop = loop;
    p->cfg = cfg;
    p->shared_sessions = shared_sessions;
    p->shared_slots = slots;
    p->shared_slot = slot;
    p->next_exchange_id = p->next_session_id = 1;
    p->id_step = 1;
    ev_timer_init(&p->accept_retry, on_accept_retry, 0., 0.);
    p->accept_retry.data = p;
    ev_idle_init(&p->fresh_read, on_fresh_client);
    ev_set_priority(&p->fresh_read, EV_MINPRI);
    p->fresh_read.data = p;
    ev_timer_init(&p->drain_timer, on_drain_timeout, 0., 0.);
    p->drain_timer.data = p;

    if (cfg->access_log) {
        p->access_log = access_log_open(cfg->access_log, cfg->log_format, err, err_len);
        if (!p->access_log)
            goto fail;
    }
    upstream_pool_init(&p->pool, loop, POOL_MAX_TOTAL, POOL_MAX_PER_HOST,
                       proxy_pool_idle_timeout(cfg));
    proxy_fit_descriptors(p);
    p->resolver = dns_resolver_new(loop, cfg->connect_timeout, err, err_len);
    if (!p->resolver)
        goto fail;
    if (cfg->auth_file && !(p->auth = auth_open(cfg->auth_file, loop, err, err_len)))
        goto fail;
    p->tls = tls_new(cfg, err, err_len);
    if (!p->tls)
        goto fail;
    p->intercept = intercept_new(cfg->passthrough_ttl);
    if (!p->intercept) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    if (hooks_load(p, err, err_len) != 0)
        goto fail;
    for (int i = 0; i < cfg->listen_count; i++)
        if (open_listener(p, &cfg->listen[i], listen_fds ? listen_fds[i] : -1, err, err_len) != 0)
            goto fail;

    ev_signal_init(&p->sigint, on_stop_signal, SIGINT);
    ev_signal_init(&p->sigterm, on_stop_signal, SIGTERM);
    ev_signal_init(&p->sighup, reload_on_signal, SIGHUP);
    p->sigint.data = p->sigterm.data = p->sighup.data = p;
    /* A worker leaves SIGINT to its supervisor: a terminal's Ctrl-C goes
     * to the whole process group, and the supervisor must see the workers
     * stop because it said so, not restart them. */
    if (!shared_sessions)
        ev_signal_start(loop, &p->sigint);
    ev_signal_start(loop, &p->sigterm);
    ev_signal_start(loop, &p->sighup);
    return 0;

fail:
    proxy_free(p);
    return -1;
}

void proxy_run(struct proxy *p)
{
    ev_run(p->loop, 0);
}

void proxy_free(struct proxy *p)
{
    while (p->sessions)
        session_free(p->sessions);
    close_listeners(p);
    ev_clear_pending(p->loop, &p->fresh_read);
    ev_timer_stop(p->loop, &p->drain_timer);
    ev_signal_stop(p->loop, &p->sigint);
    ev_signal_stop(p->loop, &p->sigterm);
    ev_signal_stop(p->loop, &p->sighup);
    reload_free(p); /* waits for a load in progress, and drops it */
    hooks_detached_free(p);
    hooks_free(p);
    auth_free(p->auth); /* after the sessions: none waits on a check now */
    p->auth = NULL;
    upstream_pool_free(&p->pool);
    dns_resolver_free(p->resolver);
    p->resolver = NULL;
    tls_free(p->tls);
    p->tls = NULL;
    intercept_free(p->intercept);
    p->intercept = NULL;
    access_log_close(p->access_log);
    p->access_log = NULL;
    p->cfg = NULL;
    if (p->cfg_owned)
        tls_trust_release(p->cfg_owned);
    free(p->cfg_owned);
    p->cfg_owned = NULL;
}
