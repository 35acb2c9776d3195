/*
 * endpoint.h - one socket of a session with its watcher and two buffers.
 *
 * A session has two endpoints, the client and the upstream. Each owns its
 * file descriptor, an ev_io embedded here (its data points back at the
 * session), the bytes read from the peer and not yet used ("in") and the
 * bytes waiting to be written to the peer ("out").
 *
 * Backpressure lives in two numbers: an endpoint reads only while "in" holds
 * less than ENDPOINT_IN_LIMIT, and the relay moves bytes into an "out" only
 * while it holds less than ENDPOINT_OUT_LIMIT. So each direction holds at
 * most about 2 x 128 KiB however slow the reader is.
 */
#ifndef LUAPROXY_ENDPOINT_H
#define LUAPROXY_ENDPOINT_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

#include "buffer.h"

#define ENDPOINT_IN_LIMIT (128 * 1024)
#define ENDPOINT_OUT_LIMIT (128 * 1024)
/* One read(2) takes up to this much: large bodies move in few calls. */
#define ENDPOINT_READ_SIZE (64 * 1024)
/* Bytes a splice pipe holds (the kernel's default pipe size). */
#define ENDPOINT_PIPE_SIZE (64 * 1024)

struct endpoint {
    int fd;            /* -1 when closed */
    ev_io io;
    int events;        /* what io is currently started for (0: stopped) */
    struct buffer in;
    struct buffer out;
    /* Zero-copy path (splice(2)): bytes read from this socket wait in a
     * pipe, in kernel memory, until written to the other endpoint's socket;
     * they never enter "in". pipe_rd is -1 while not splicing. */
    int pipe_rd, pipe_wr;
    size_t piped;            /* bytes in the pipe */
    uint64_t splice_limit;   /* read at most this many more bytes */
    unsigned read_eof : 1;   /* the peer sent FIN (or reset) */
    unsigned write_shut : 1; /* we sent FIN */
    unsigned failed : 1;     /* a read or write failed hard (reset, EPIPE) */
};

enum endpoint_io { ENDPOINT_PROGRESS, ENDPOINT_AGAIN, ENDPOINT_EOF, ENDPOINT_ERROR };

void endpoint_init(struct endpoint *e, void (*cb)(struct ev_loop *, ev_io *, int), void *data);

/* Adopts a connected (or connecting) non-blocking socket; clears the
 * flags left by a previous connection. */
void endpoint_open(struct endpoint *e, int fd);

/* Reads what is available into "in" while it holds less than <limit>. Sets read_eof
 * on EOF and failed (with read_eof) on a reset. */
enum endpoint_io endpoint_read(struct endpoint *e, size_t limit);

/* Writes as much of "out" as the socket takes. ENDPOINT_ERROR (and failed)
 * when the peer is gone. An emptied buffer keeps its memory: a body in
 * flight reuses it; the session returns it once the connection is idle. */
enum endpoint_io endpoint_flush(struct endpoint *e);

/* Starts reading this socket through a pipe, at most <limit> bytes (a
 * body's length; UINT64_MAX for until EOF). "in" must be empty. 0 or -1. */
int endpoint_splice_start(struct endpoint *e, uint64_t limit);
/* Ends splicing; the pipe must be empty. */
void endpoint_splice_stop(struct endpoint *e);
static inline int endpoint_splicing(const struct endpoint *e) { return e->pipe_rd >= 0; }
/* Socket to pipe, while the pipe has room and the limit allows. Sets
 * read_eof on EOF. */
enum endpoint_io endpoint_splice_read(struct endpoint *e);
/* <from>'s pipe to <to>'s socket; *<n> gets the bytes written. On
 * ENDPOINT_ERROR <to> is marked failed. <to>'s "out" must be empty. */
enum endpoint_io endpoint_splice_write(struct endpoint *from, struct endpoint *to, size_t *n);

/* Starts/stops the watcher so it covers exactly <events>. */
void endpoint_watch(struct ev_loop *loop, struct endpoint *e, int events);

/* Half-closes our sending side once (shutdown SHUT_WR). */
void endpoint_shutdown_write(struct endpoint *e);

/* Stops the watcher, closes the fd and frees both buffers. Safe to call
 * twice. */
void endpoint_close(struct ev_loop *loop, struct endpoint *e);

#endif
