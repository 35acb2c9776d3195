/*
 * proxy.h - one event loop's worth of proxy: listeners, sessions, resolver.
 *
 * Everything mutable lives in struct proxy (one per loop), never in globals,
 * so several loops can run side by side. The proxy owns the listening
 * sockets, the list of live sessions, the DNS resolver, the access log and
 * the signal watchers; sessions reach it through their back pointer.
 */
#ifndef LUAPROXY_PROXY_H
#define LUAPROXY_PROXY_H

#include <ev.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "session_idle.h"
#include "upstream_pool.h"

struct session;
struct dns_resolver;
struct access_log;
struct hooks;
struct tls;
struct intercept;
struct flows;

struct listener {
    int fd;
    ev_io io;
    struct sockaddr_storage addr; /* the bound address, with the real port */
    socklen_t addr_len;
};

struct proxy {
    struct ev_loop *loop;
    const struct config *cfg;
    struct config *cfg_owned; /* cfg after a reload (freed with the proxy) */
    struct listener listeners[CONFIG_MAX_LISTEN];
    int listener_count;
    ev_timer accept_retry;    /* re-enables accepting after EMFILE */
    /* The client accepted last, whose request is read once the events
     * already pending have run (see on_fresh_client); NULL when none. */
    struct session *fresh;
    ev_idle fresh_read;       /* never started: only fed, at the lowest priority */
    struct dns_resolver *resolver;
    struct upstream_pool pool; /* idle upstream connections for reuse */
    int kept_upstreams;        /* idle upstream connections held by sessions */
    size_t http_bodies_held;   /* response bodies of proxy.http calls in flight */
    size_t collected_held;     /* request bodies being collected (buffer_body) */
    struct access_log *access_log;
    struct hooks *hooks;      /* NULL when no script is loaded */
    struct auth *auth;        /* --auth-file's users and checking threads, or NULL */
    struct tls *tls;          /* TLS contexts and the CA (tls.h) */
    struct intercept *intercept; /* clients passing through after a refusal */
    struct session *sessions; /* doubly linked list of live sessions */
    /* Of those, the clients idle waiting for a request, longest idle
     * first: at --max-connections a new client closes one or more
     * (session_idle.h). */
    struct session_idle_list idle;
    int session_count;        /* this loop's sessions */
    int refused_count;        /* of which clients only told why they are refused */
    int refused_max;          /* of those, at most this many at once (fit_descriptors) */
    /* Every worker's count of sessions, one slot each (shared memory), or
     * NULL. A slot per worker, not one total: a worker that dies takes its
     * connections with it, and the supervisor clears its slot. */
    int *shared_sessions;
    int shared_slots, shared_slot; /* how many; this worker's */
    uint64_t next_exchange_id;
    uint64_t next_session_id;
    int id_step;              /* workers: ids interleave, so each is unique */
    int stopping;             /* SIGTERM seen: draining */
    ev_signal sigint, sigterm, sighup;
    ev_timer drain_timer;     /* bounds the drain after SIGTERM */
    /* The admin listener's address (admin.h), refused as an upstream like
     * our own listeners; admin_addr_len 0 when there is none. */
    struct sockaddr_storage admin_addr;
    socklen_t admin_addr_len;
    struct flows *flows;      /* the flow recorder (flows.h), or NULL */
    struct reload *reload;    /* SIGHUP's work (reload.c), made at the first one */
};

/* Sets up the loop's services and listens: on the sockets in <listen_fds>
 * (one per configured address, made by the parent of the workers), or on
 * sockets bound here when it is NULL. <shared_sessions> holds <slots>
 * counts of clients, this loop's at <slot>, which together make
 * --max-connections' count (NULL: this loop alone). 0, or -1 with a
 * message in <err>. */
int proxy_init(struct proxy *p, struct ev_loop *loop, const struct config *cfg,
               const int *listen_fds, int *shared_sessions, int slots, int slot, char *err,
               size_t err_len);

/* Makes a non-blocking listening socket for <la> (bound to <port> instead
 * of la's when non-zero), with SO_REUSEPORT so workers can share the
 * address. Without <port>, an address something already listens on is
 * refused. Returns the fd, with the bound address in <bound>, or -1. */
int proxy_listen_socket(const struct listen_addr *la, uint16_t port,
                        struct sockaddr_storage *bound, socklen_t *bound_len, char *err,
                        size_t err_len);
/* Logs "listening on <addr>": for <addr>, and for every listener of <p>.
 * Logged once --pid-file is written (see workers.c), so that a service
 * manager that takes the line for readiness finds the file. */
void proxy_log_listening(const struct sockaddr *addr);
void proxy_log_listeners(const struct proxy *p);
/* The port of an IPv4 or IPv6 address, in host order. */
uint16_t proxy_address_port(const struct sockaddr_storage *addr);
/* How long a parked upstream connection may stay idle under <cfg>:
 * --idle-timeout, but never past 15 s (upstream_pool.h). */
double proxy_pool_idle_timeout(const struct config *cfg);

/* The address at the other end of socket <fd> as "ip:port" ("[ip]:port"
 * for IPv6). 0, or -1. */
int proxy_peer_address(int fd, char *out, size_t len);
/* The IP address of <addr> as text into <ip> (at least INET6_ADDRSTRLEN
 * bytes), and its port into *<port>. */
void proxy_client_address(const struct sockaddr *addr, char *ip, size_t ip_len, int *port);

/* Shares the descriptors left after the clients' between refused clients
 * and the pool, for the current --max-connections (at start and after a
 * reload). */
void proxy_fit_descriptors(struct proxy *p);

/* Worker <index> of <count>: exchange ids become index+1, index+1+count... */
void proxy_set_worker(struct proxy *p, int index, int count);
uint64_t proxy_next_exchange_id(struct proxy *p);
/* Connection ids ("c12"), interleaved across workers the same way. */
uint64_t proxy_next_session_id(struct proxy *p);

/* Whether a session may hold its idle upstream connection between
 * requests (bounded; otherwise it goes to the shared pool). */
int proxy_may_keep_upstream(const struct proxy *p);

/* Clients being served now (by all workers when they share a count). */
int proxy_connection_count(const struct proxy *p);
/* Runs the loop until the proxy has stopped. */
void proxy_run(struct proxy *p);
/* Begins a graceful stop, as SIGTERM does: no new connections, the
 * exchanges in flight finish (bounded), then proxy_run returns. <why>
 * starts the log line ("signal 15"). A second call does nothing. */
void proxy_stop(struct proxy *p, const char *why);
void proxy_free(struct proxy *p);

/* Whether connecting to <addr> would reach one of our own listeners. */
int proxy_is_own_address(const struct proxy *p, const struct sockaddr *addr);
/* Whether the connection <fd>, made to <peer>, reached one of our own
 * wildcard listeners (0.0.0.0, ::) through an address of this machine
 * that proxy_is_own_address cannot know, such as a LAN address: a
 * connection to this machine has the same address at both ends. */
int proxy_is_own_connection(const struct proxy *p, int fd, const struct sockaddr *peer);

#endif
