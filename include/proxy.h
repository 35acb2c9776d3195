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
#include "upstream_pool.h"

struct session;
struct dns_resolver;
struct access_log;
struct hooks;

struct listener {
    int fd;
    ev_io io;
    struct sockaddr_storage addr; /* the bound address, with the real port */
    socklen_t addr_len;
};

struct proxy {
    struct ev_loop *loop;
    const struct config *cfg;
    struct listener listeners[CONFIG_MAX_LISTEN];
    int listener_count;
    ev_timer accept_retry;    /* re-enables accepting after EMFILE */
    struct dns_resolver *resolver;
    struct upstream_pool pool; /* idle upstream connections for reuse */
    struct access_log *access_log;
    struct hooks *hooks;      /* NULL when no script is loaded */
    struct session *sessions; /* doubly linked list of live sessions */
    int session_count;
    uint64_t next_exchange_id;
    int stopping;             /* SIGTERM seen: draining */
    ev_signal sigint, sigterm, sighup;
    ev_timer drain_timer;     /* bounds the drain after SIGTERM */
};

/* Binds every listener and sets up the loop's services. 0, or -1 with a
 * message in <err>. */
int proxy_init(struct proxy *p, struct ev_loop *loop, const struct config *cfg, char *err,
               size_t err_len);
/* Runs the loop until the proxy has stopped. */
void proxy_run(struct proxy *p);
void proxy_free(struct proxy *p);

/* Called by a session as it is freed. */
void proxy_session_gone(struct proxy *p);

/* Whether connecting to <addr> would reach one of our own listeners. */
int proxy_is_own_address(const struct proxy *p, const struct sockaddr *addr);

#endif
