/*
 * upstream_pool.h - idle upstream connections kept for reuse.
 *
 * After a response that leaves the upstream connection in a clean state
 * (complete, not close-delimited, no "Connection: close", nothing left
 * unread), the connection is parked here under its host and port instead of
 * being closed; the next request to the same place skips DNS and the TCP
 * handshake. A connection to a parent proxy is parked under the identity of
 * the credentials it was used with too (parent_credentials_id), and only a
 * request with the same ones takes it. Parked connections are watched: one that the upstream closes
 * (or that receives stray bytes) is dropped at once, and none stays longer
 * than the idle timeout. The pool is bounded in total and per host.
 */
#ifndef LUAPROXY_UPSTREAM_POOL_H
#define LUAPROXY_UPSTREAM_POOL_H

#include <ev.h>
#include <stdint.h>

#include "parent.h"

struct pooled_conn;

struct upstream_pool {
    struct ev_loop *loop;
    struct pooled_conn *head; /* most recently parked first */
    int count;
    int max_total;
    int max_per_host;
    double idle_timeout;
    ev_timer sweep;           /* fires when the oldest connection expires */
};

void upstream_pool_init(struct upstream_pool *pool, struct ev_loop *loop, int max_total,
                        int max_per_host, double idle_timeout);
/* A new idle timeout (a reload's --idle-timeout): parked connections go by
 * it from now on, those already past it at once. */
void upstream_pool_set_idle_timeout(struct upstream_pool *pool, double idle_timeout);
/* Closes every parked connection. */
void upstream_pool_free(struct upstream_pool *pool);

/* Takes a parked connection to <host>:<port> used with the credentials
 * <creds> (PARENT_CREDENTIALS_ID_LEN bytes; NULL for none), or returns -1. */
int upstream_pool_take(struct upstream_pool *pool, const char *host, uint16_t port,
                       const unsigned char *creds);

/* Parks connected socket <fd>, used with <creds> (as for taking), idle
 * since <last_used> (ownership passes to the pool, which closes it when
 * full). It is closed once it has been idle for idle_timeout counted from
 * <last_used>, not from the parking: a connection a session held for a
 * while does not start a fresh clock. */
void upstream_pool_put(struct upstream_pool *pool, int fd, const char *host, uint16_t port,
                       const unsigned char *creds, ev_tstamp last_used);

#endif
