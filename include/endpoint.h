/*
 * endpoint.h - one socket of a session with its watcher and two buffers.
 *
 * A session has two endpoints, the client and the upstream. Each owns its
 * file descriptor, an ev_io embedded here (its data points back at the
 * session), the bytes read from the peer and not yet used ("in") and the
 * bytes waiting to be written to the peer ("out").
 *
 * How bytes move is the endpoint's transport, a small table of operations
 * (struct endpoint_ops): plain socket calls, or a TLS session (tls.c) that
 * replaces them once a handshake starts. The session and the exchange above
 * read and write through the same calls either way; only the zero-copy
 * splice path needs the plain transport, and says so through can_splice.
 *
 * A TLS read can need the socket to be writable (and a write readable);
 * the endpoint remembers what the transport needs and watches for that
 * instead of what the relay asked, then reports the event the relay asked
 * for. Decrypted bytes TLS holds back (it decrypts whole records) make the
 * endpoint report itself readable without the socket saying so.
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
/* What "in" may hold for a body handed on in pieces that each cost more
 * than their bytes (a chunk hook's call and its write): read in bites up
 * to this, so the pieces are fewer and larger (endpoint_read_bulk). */
#define ENDPOINT_BULK_LIMIT (256 * 1024)
/* One read(2) takes up to this much: large bodies move in few calls. */
#define ENDPOINT_READ_SIZE (64 * 1024)
/* Bytes a splice pipe is asked to hold (the kernel's default is 64 KiB). */
#define ENDPOINT_PIPE_SIZE (256 * 1024)

struct endpoint;
struct tls_conn;

/* A transport. read/write return a count, 0 at EOF (read only), or -1 with
 * errno set (EAGAIN: try again when the endpoint reports the event). */
struct endpoint_ops {
    const char *name;
    ssize_t (*read)(struct endpoint *e, void *buf, size_t len);
    ssize_t (*write)(struct endpoint *e, const void *buf, size_t len);
    /* Ends our sending side (FIN, or close_notify then FIN). */
    void (*shutdown)(struct endpoint *e);
    /* Bytes readable now without the socket (0 for plain sockets). */
    size_t (*pending)(const struct endpoint *e);
    /* Frees the transport's state (the fd is closed by the endpoint). */
    void (*close)(struct endpoint *e);
    int can_splice; /* bytes may bypass the transport through splice(2) */
};

extern const struct endpoint_ops endpoint_plain_ops;

struct endpoint {
    int fd;            /* -1 when closed */
    unsigned read_eof : 1;   /* the peer sent FIN (or reset) */
    unsigned write_shut : 1; /* we sent FIN */
    unsigned failed : 1;     /* a read or write failed hard (reset, EPIPE) */
    unsigned handshaking : 1;   /* a TLS handshake has started and not finished */
    unsigned tls_aborted : 1;   /* the peer ended the connection inside the handshake */
    /* An upstream's TLS stream ended without its close_notify: what came
     * before the EOF may not be all it sent (an attacker can cut a TCP
     * stream; only close_notify is authenticated). */
    unsigned tls_eof_unclean : 1;
    unsigned watched : 1; /* the socket comes from another watcher (the pool) */
    ev_io io;
    int events;        /* what io is currently started for (0: stopped) */
    int wanted;        /* what the relay asked for (EV_READ/EV_WRITE) */
    /* What the transport's last blocked read / write waits for; 0 means
     * the obvious (EV_READ for a read, EV_WRITE for a write). */
    int read_needs, write_needs;
    void (*cb)(struct ev_loop *, ev_io *, int); /* the owner's callback */
    const struct endpoint_ops *ops;
    struct tls_conn *tls;  /* the TLS transport's state, or NULL */
    /* Why the transport failed, for an error answer (NULL: no reason). */
    const char *error;
    struct buffer in;
    struct buffer out;
    /* Zero-copy path (splice(2)): bytes read from this socket wait in a
     * pipe, in kernel memory, until written to the other endpoint's socket;
     * they never enter "in". pipe_rd is -1 while not splicing. */
    int pipe_rd, pipe_wr;
    uint32_t piped;          /* bytes in the pipe */
    uint32_t pipe_size;      /* what the pipe holds (ENDPOINT_PIPE_SIZE, if granted) */
    uint64_t splice_limit;   /* read at most this many more bytes */
};

enum endpoint_io { ENDPOINT_PROGRESS, ENDPOINT_AGAIN, ENDPOINT_EOF, ENDPOINT_ERROR };

void endpoint_init(struct endpoint *e, void (*cb)(struct ev_loop *, ev_io *, int), void *data);

/* Adopts a connected (or connecting) non-blocking socket; clears the
 * flags left by a previous connection. */
void endpoint_open(struct endpoint *e, int fd);

/* The same for a socket libev watches already, through another watcher that
 * was just stopped (a parked upstream connection): the first watch then
 * skips libev's re-registration of the descriptor (see endpoint_watch). */
void endpoint_open_watched(struct endpoint *e, int fd);

/* libev re-registers the descriptor of a watcher given one with ev_io_set,
 * in case it was closed and its number reused by another file; with epoll
 * that is a failing EPOLL_CTL_ADD (EEXIST) when it was not. For a socket
 * that moves from one watcher to another while open (to and from the pool
 * of upstream connections) the caller may skip it with this, right after
 * ev_io_init or ev_io_set. Never for a new socket. */
#define ENDPOINT_SAME_FILE(w) ((w)->events &= ~EV__IOFDSET)

/* Reads what is available into "in" while it holds less than <limit>. Sets read_eof
 * on EOF and failed (with read_eof) on a reset. */
enum endpoint_io endpoint_read(struct endpoint *e, size_t limit);
/* endpoint_read in one bite of up to <limit> - what "in" holds, read
 * straight into "in": for a body that is handed on in pieces, where fewer,
 * larger pieces cost less than many. */
enum endpoint_io endpoint_read_bulk(struct endpoint *e, size_t limit);

struct iovec;

/* Writes <iov> straight to the socket, skipping "out", as far as the socket
 * takes it now; returns the bytes written. Only on a plain socket with
 * nothing queued in "out" (else 0: the caller queues the bytes). A failure
 * marks the endpoint failed and returns what went before it; the owner
 * learns of it at its next flush. */
size_t endpoint_write_now(struct endpoint *e, const struct iovec *iov, int iovcnt);

/* Writes as much of "out" as the socket takes. ENDPOINT_ERROR (and failed)
 * when the peer is gone. An emptied buffer keeps its memory: a body in
 * flight reuses it; the session returns it once the connection is idle. */
enum endpoint_io endpoint_flush(struct endpoint *e);
/* endpoint_flush for the last bytes the connection will carry: once "out"
 * is empty the sending side is half-closed too, and on a plain socket the
 * FIN leaves in the same packet as the last bytes instead of one of its
 * own. Nothing may be written after it. With <close_follows> the owner
 * closes the socket as soon as "out" is empty, and the close sends that
 * FIN: no shutdown is made (see endpoint_end_for_close). */
enum endpoint_io endpoint_flush_final(struct endpoint *e, int close_follows);
/* Ends the stream for a close that follows at once: a plain socket's
 * close() sends the FIN itself; TLS still sends its close_notify. */
void endpoint_end_for_close(struct endpoint *e);
/* Makes the close that follows at once a reset (SO_LINGER with no time)
 * instead of a FIN, and without TLS's close_notify: the way to tell a
 * peer that what it got is not all there is, when nothing in the message
 * can say so. */
void endpoint_abort(struct endpoint *e);
/* How many bytes written to <e> the kernel still holds, not yet sent
 * (SIOCOUTQNSD): what a reset would throw away. 0 when it cannot tell. */
size_t endpoint_unsent(const struct endpoint *e);

/* Starts reading this socket through a pipe, at most <limit> bytes (a
 * body's length; UINT64_MAX for until EOF). "in" must be empty. 0 or -1. */
int endpoint_splice_start(struct endpoint *e, uint64_t limit);
/* Ends splicing; the pipe must be empty. */
void endpoint_splice_stop(struct endpoint *e);
static inline int endpoint_splicing(const struct endpoint *e) { return e->pipe_rd >= 0; }
/* Whether bytes between <a> and <b> may take the splice path. */
static inline int endpoint_can_splice(const struct endpoint *a, const struct endpoint *b)
{
    return a->ops->can_splice && b->ops->can_splice;
}
static inline int endpoint_is_tls(const struct endpoint *e) { return e->tls != NULL; }
/* Socket to pipe, while the pipe has room and the limit allows. Sets
 * read_eof on EOF. */
enum endpoint_io endpoint_splice_read(struct endpoint *e);
/* <from>'s pipe to <to>'s socket; *<n> gets the bytes written. On
 * ENDPOINT_ERROR <to> is marked failed. <to>'s "out" must be empty. */
enum endpoint_io endpoint_splice_write(struct endpoint *from, struct endpoint *to, size_t *n);

/* Starts/stops the watcher so the owner's callback hears about exactly
 * <events> (EV_READ, EV_WRITE). When the transport holds readable bytes and
 * EV_READ is asked for, the callback is run from the loop without waiting
 * for the socket. */
void endpoint_watch(struct ev_loop *loop, struct endpoint *e, int events);

/* Half-closes our sending side once (shutdown SHUT_WR). */
void endpoint_shutdown_write(struct endpoint *e);

/* Stops the watcher, frees the transport, closes the fd and frees both
 * buffers. Safe to call twice. */
void endpoint_close(struct ev_loop *loop, struct endpoint *e);

#endif
