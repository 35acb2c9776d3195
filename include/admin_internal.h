/*
 * admin_internal.h - the admin listener's connection and listener records,
 * shared by admin.c (connections, requests) and admin_reply.c (answers,
 * streams, event streams). Not for the route handlers: they use admin.h.
 */
#ifndef LUAPROXY_ADMIN_INTERNAL_H
#define LUAPROXY_ADMIN_INTERNAL_H

#include <ev.h>
#include <stdint.h>
#include <sys/socket.h>

#include "acl.h"
#include "admin.h"
#include "buffer.h"
#include "config.h"

#define ADMIN_HEAD_MAX (16 * 1024)
#define ADMIN_BODY_MAX (64 * 1024)
#define ADMIN_ROUTE_MAX 48
#define ADMIN_IDLE_TIMEOUT 60.0
/* A connection closed after an error answer is read a little longer: a
 * close() with unread bytes sends a reset, which can destroy the answer
 * before the client has read it (RFC 9112 9.6). Bounded in time and bytes. */
#define ADMIN_LINGER_TIMEOUT 2.0
#define ADMIN_LINGER_MAX (1024 * 1024)
/* An event stream that has this much unsent is a reader that stopped. */
#define ADMIN_EVENTS_BACKLOG (4 * 1024 * 1024)
/* A comment line on idle streams, so proxies and browsers keep them. */
#define ADMIN_EVENTS_PING 15.0

struct admin_route_entry {
    char method[8];
    char path[64];
    admin_handler *handler;
    void *arg;
    int flags;
};

struct admin_conn {
    struct admin *admin;
    struct admin_conn *prev, *next;
    int fd;
    ev_io io;
    ev_timer timer;
    ev_tstamp last_activity;
    ev_tstamp head_started; /* when the request now being read began, or 0 */
    struct buffer in, out;
    char local_ip[64];
    char extra[256];   /* header lines for the next reply */
    uint64_t id;
    int held;          /* a handler answers later */
    int events;        /* an event stream */
    int close_after;   /* close once "out" is written */
    int closed;        /* freed at the end of the callback */
    int in_callback;
    int answered;      /* the current request has its answer */
    int head_only;     /* the current request is a HEAD: no body in its answer */
    int lingering;     /* answer sent, write side shut: reading to the end */
    int read_eof;      /* the client shut its sending half: no more requests */
    int http10;        /* the current request is HTTP/1.0: it knows no chunks */
    int trusted;       /* a request on it carried the token */
    size_t discarded;  /* bytes read and dropped while lingering */
    /* A streamed answer being made (admin_stream_start), or NULL. While it
     * is, no further request is read: they wait in "in", pipelined. */
    const struct admin_stream_ops *stream;
    void *stream_state;
    int stream_chunked;
    struct buffer part; /* the producer's latest part, before framing */
};

struct admin {
    /* Copied from the configuration, which a reload may free. */
    struct cidr allow[CONFIG_MAX_ALLOW];
    int allow_count;
    struct ev_loop *loop;
    int fd;
    ev_io io;
    ev_timer ping;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char host[64];     /* the bound IP, as text */
    char token[129];
    int token_given;   /* the operator's (--admin-token): not logged */
    double head_timeout; /* --header-timeout: to send a request, from its first byte */
    struct admin_route_entry routes[ADMIN_ROUTE_MAX];
    int route_count;
    struct admin_conn *conns;
    int conn_count;
    uint64_t next_id;
};

/* Writes what "out" holds that the socket takes now, and updates what the
 * connection is watched for; closes it on a write error. */
void admin_conn_flush(struct admin_conn *c);
/* Marks for closing; freed now unless inside the connection's callback. */
void admin_conn_close(struct admin_conn *c);

/* Hands a stream's state back to its owner; safe to call when there is
 * none. */
void admin_stream_end(struct admin_conn *c);
/* The socket took what it could: asks for the next part if less than a
 * part waits, frames it, sends it. Runs once per "writable" at most, so a
 * long answer gives the loop back between parts, and not at all while the
 * client does not read, so nothing piles up. */
void admin_stream_pump(struct admin_conn *c);
/* The timer of ADMIN_EVENTS_PING: a comment line on idle event streams. */
void admin_on_ping(struct ev_loop *loop, ev_timer *w, int revents);

#endif
