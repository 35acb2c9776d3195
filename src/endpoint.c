/*
 * endpoint.c - non-blocking reads and writes on one socket, through its
 * transport (plain here; TLS in tls.c).
 *
 * Every call here is made on a non-blocking socket and handles EAGAIN and
 * EINTR where it happens; nothing here ever waits. The watcher's callback
 * is on_endpoint_io, which turns the socket's events into the ones the
 * owner asked for (they differ while TLS needs the other direction) before
 * calling the owner's callback.
 */
#include "endpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- the plain transport ---------------------------------------------- */

/* recv, not read: a socket read that skips the file layer (vfs_read,
 * its checks and notifications), which loopback exchanges feel. */
static ssize_t plain_read(struct endpoint *e, void *buf, size_t len)
{
    ssize_t n;
    do
        n = recv(e->fd, buf, len, 0);
    while (n == -1 && errno == EINTR);
    return n;
}

static ssize_t plain_write(struct endpoint *e, const void *buf, size_t len)
{
    ssize_t n;
    /* send(MSG_NOSIGNAL): a peer that went away must not kill us with
     * SIGPIPE; we learn it from EPIPE instead. */
    do
        n = send(e->fd, buf, len, MSG_NOSIGNAL);
    while (n == -1 && errno == EINTR);
    return n;
}

static void plain_shutdown(struct endpoint *e) { shutdown(e->fd, SHUT_WR); }
static size_t plain_pending(const struct endpoint *e) { (void)e; return 0; }
static void plain_close(struct endpoint *e) { (void)e; }

const struct endpoint_ops endpoint_plain_ops = {
    .name = "plain",
    .read = plain_read,
    .write = plain_write,
    .shutdown = plain_shutdown,
    .pending = plain_pending,
    .close = plain_close,
    .can_splice = 1,
};

/* ---- events ----------------------------------------------------------- */

static int socket_events(const struct endpoint *e, int wanted)
{
    int ev = 0;
    if (wanted & EV_READ)
        ev |= e->read_needs ? e->read_needs : EV_READ;
    if (wanted & EV_WRITE)
        ev |= e->write_needs ? e->write_needs : EV_WRITE;
    return ev;
}

/* The socket is ready for <revents>: tell the owner what that allows. */
static void on_endpoint_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct endpoint *e = (struct endpoint *)(void *)((char *)w - offsetof(struct endpoint, io));
    int mapped = 0;

    if ((e->wanted & EV_READ) && (revents & (e->read_needs ? e->read_needs : EV_READ)))
        mapped |= EV_READ;
    if ((e->wanted & EV_WRITE) && (revents & (e->write_needs ? e->write_needs : EV_WRITE)))
        mapped |= EV_WRITE;
    if ((revents & EV_CUSTOM) && (e->wanted & EV_READ))
        mapped |= EV_READ; /* fed by endpoint_watch: the transport holds bytes */
    if (mapped)
        e->cb(loop, w, mapped);
}

/* A plain connection on <fd> (or none), nothing read, written or watched
 * yet; the buffers and the callback are left as they are. */
static void reset_state(struct endpoint *e, int fd)
{
    e->fd = fd;
    e->events = e->wanted = 0;
    e->read_needs = e->write_needs = 0;
    e->ops = &endpoint_plain_ops;
    e->tls = NULL;
    e->error = NULL;
    e->pipe_rd = e->pipe_wr = -1;
    e->piped = 0;
    e->read_eof = e->write_shut = e->failed = 0;
    e->handshaking = e->tls_aborted = e->tls_eof_unclean = 0;
    e->watched = 0;
}

void endpoint_init(struct endpoint *e, void (*cb)(struct ev_loop *, ev_io *, int), void *data)
{
    reset_state(e, -1);
    buffer_init(&e->in);
    buffer_init(&e->out);
    e->cb = cb;
    ev_init(&e->io, on_endpoint_io);
    e->io.data = data;
}

/* What a read (or splice) that returned <n> <= 0 means: EOF, nothing yet,
 * or a reset (which also ends reading). */
static enum endpoint_io read_ended(struct endpoint *e, ssize_t n)
{
    if (n == 0) {
        e->read_eof = 1;
        return ENDPOINT_EOF;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return ENDPOINT_AGAIN;
    e->read_eof = 1;
    e->failed = 1;
    return ENDPOINT_ERROR;
}

void endpoint_open(struct endpoint *e, int fd)
{
    reset_state(e, fd);
}

void endpoint_open_watched(struct endpoint *e, int fd)
{
    endpoint_open(e, fd);
    e->watched = 1;
}

/* What a read may take before "in" holds <limit> bytes, in *<room>; or
 * why it may take nothing (the peer's end, or a full buffer). */
static enum endpoint_io read_room(const struct endpoint *e, size_t limit, size_t *room)
{
    if (e->fd < 0 || e->read_eof)
        return ENDPOINT_EOF;
    if (buffer_length(&e->in) >= limit)
        return ENDPOINT_AGAIN;
    *room = limit - buffer_length(&e->in);
    return ENDPOINT_PROGRESS;
}

enum endpoint_io endpoint_read(struct endpoint *e, size_t limit)
{
    char stack[ENDPOINT_READ_SIZE];
    size_t room, spare;
    enum endpoint_io why;
    char *p;
    ssize_t n;

    if ((why = read_room(e, limit, &room)) != ENDPOINT_PROGRESS)
        return why;
    if (room > ENDPOINT_READ_SIZE)
        room = ENDPOINT_READ_SIZE;
    /* Read straight into the buffer when it already has the space (a body
     * streaming through); otherwise into the stack and keep only what came,
     * so a small request on an idle connection costs a small allocation. */
    spare = e->in.data ? e->in.cap - e->in.end : 0;
    p = spare >= room ? e->in.data + e->in.end : stack;
    n = e->ops->read(e, p, room);
    if (n > 0) {
        if (p != stack)
            buffer_commit(&e->in, (size_t)n);
        else if (buffer_append(&e->in, stack, (size_t)n) != 0) {
            e->failed = 1;
            return ENDPOINT_ERROR;
        }
        return ENDPOINT_PROGRESS;
    }
    return read_ended(e, n);
}

enum endpoint_io endpoint_read_bulk(struct endpoint *e, size_t limit)
{
    size_t room;
    enum endpoint_io why;
    char *p;
    ssize_t n;

    if ((why = read_room(e, limit, &room)) != ENDPOINT_PROGRESS)
        return why;
    p = buffer_reserve(&e->in, room);
    if (!p) {
        e->failed = 1;
        return ENDPOINT_ERROR;
    }
    n = e->ops->read(e, p, room);
    if (n > 0) {
        buffer_commit(&e->in, (size_t)n);
        return ENDPOINT_PROGRESS;
    }
    return read_ended(e, n);
}

size_t endpoint_write_now(struct endpoint *e, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {0};
    ssize_t n;

    if (e->fd < 0 || e->failed || e->ops != &endpoint_plain_ops || buffer_length(&e->out) > 0)
        return 0;
    msg.msg_iov = (struct iovec *)(uintptr_t)iov;
    msg.msg_iovlen = (size_t)iovcnt;
    /* One call: a short write means the socket is full, and a second one
     * would only find EAGAIN. */
    do
        n = sendmsg(e->fd, &msg, MSG_NOSIGNAL);
    while (n == -1 && errno == EINTR);
    if (n >= 0)
        return (size_t)n;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        e->failed = 1;
    return 0;
}

/* Writes "out" until it is empty or the socket takes no more. <last>: the
 * last bytes on a plain socket, sent with MSG_MORE, which holds back a
 * final part smaller than a segment until the FIN that follows. */
static enum endpoint_io flush_out(struct endpoint *e, int last)
{
    int wrote = 0;

    while (buffer_length(&e->out) > 0) {
        ssize_t n;
        if (e->fd < 0 || e->failed)
            return ENDPOINT_ERROR;
        if (last) {
            do
                n = send(e->fd, buffer_peek(&e->out), buffer_length(&e->out),
                         MSG_NOSIGNAL | MSG_MORE);
            while (n == -1 && errno == EINTR);
        } else {
            n = e->ops->write(e, buffer_peek(&e->out), buffer_length(&e->out));
        }
        if (n > 0) {
            buffer_consume(&e->out, (size_t)n);
            wrote = 1;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return wrote ? ENDPOINT_PROGRESS : ENDPOINT_AGAIN;
        e->failed = 1;
        return ENDPOINT_ERROR;
    }
    return wrote ? ENDPOINT_PROGRESS : ENDPOINT_AGAIN;
}

enum endpoint_io endpoint_flush(struct endpoint *e)
{
    return flush_out(e, 0);
}

enum endpoint_io endpoint_flush_final(struct endpoint *e, int close_follows)
{
    enum endpoint_io r;

    /* TLS has its own last words (close_notify): the owner shuts it. */
    if (e->ops != &endpoint_plain_ops)
        return endpoint_flush(e);
    r = flush_out(e, 1);
    /* All out: the FIN goes with the last part (or the close sends it). */
    if (r == ENDPOINT_PROGRESS && buffer_length(&e->out) == 0 && !close_follows)
        endpoint_shutdown_write(e);
    return r;
}

void endpoint_end_for_close(struct endpoint *e)
{
    if (e->ops != &endpoint_plain_ops)
        endpoint_shutdown_write(e);
}

void endpoint_abort(struct endpoint *e)
{
    struct linger now = {.l_onoff = 1, .l_linger = 0};

    if (e->fd >= 0)
        (void)setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
    /* Failed: no close_notify, and a TLS session not offered for
     * resumption (tls_close). */
    e->failed = 1;
}

size_t endpoint_unsent(const struct endpoint *e)
{
    int n = 0;

    if (e->fd < 0 || ioctl(e->fd, SIOCOUTQNSD, &n) != 0 || n < 0)
        return 0;
    return (size_t)n;
}

void endpoint_watch(struct ev_loop *loop, struct endpoint *e, int events)
{
    int ev;

    if (e->fd < 0)
        return;
    e->wanted = events;
    ev = socket_events(e, events);
    if (ev != e->events) {
        if (e->events)
            ev_io_stop(loop, &e->io);
        e->events = ev;
        if (ev) {
            ev_io_set(&e->io, e->fd, ev);
            if (e->watched)
                ENDPOINT_SAME_FILE(&e->io);
            e->watched = 0;
            ev_io_start(loop, &e->io);
        }
    }
    /* Bytes the transport already decrypted will never make the socket
     * readable: run the callback from the loop instead (not from here, so
     * the caller's stack is not re-entered). */
    if ((events & EV_READ) && e->ops->pending(e) > 0)
        ev_feed_event(loop, &e->io, EV_CUSTOM);
}

void endpoint_shutdown_write(struct endpoint *e)
{
    if (e->fd >= 0 && !e->write_shut) {
        e->ops->shutdown(e);
        e->write_shut = 1;
    }
}

int endpoint_splice_start(struct endpoint *e, uint64_t limit)
{
    int fds[2];
    if (!e->ops->can_splice)
        return -1;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
        return -1;
    e->pipe_rd = fds[0];
    e->pipe_wr = fds[1];
    e->piped = 0;
    /* A bigger pipe moves a big body in fewer, larger splices. The kernel
     * may refuse (the user's pipe memory is over its soft limit): the
     * pipe then keeps the size it has. */
    int size = fcntl(fds[1], F_SETPIPE_SZ, ENDPOINT_PIPE_SIZE);
    if (size < 0)
        size = fcntl(fds[1], F_GETPIPE_SZ);
    e->pipe_size = size > 0 ? (uint32_t)size : 4096;
    e->splice_limit = limit;
    return 0;
}

void endpoint_splice_stop(struct endpoint *e)
{
    if (e->pipe_rd >= 0) {
        close(e->pipe_rd);
        close(e->pipe_wr);
    }
    e->pipe_rd = e->pipe_wr = -1;
    e->piped = 0;
}

enum endpoint_io endpoint_splice_read(struct endpoint *e)
{
    size_t room = e->pipe_size - e->piped;
    ssize_t n;

    if (e->fd < 0 || e->read_eof)
        return ENDPOINT_EOF;
    if ((uint64_t)room > e->splice_limit)
        room = (size_t)e->splice_limit;
    if (room == 0)
        return ENDPOINT_AGAIN;
    do
        n = splice(e->fd, NULL, e->pipe_wr, NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n == -1 && errno == EINTR);
    if (n > 0) {
        e->piped += (uint32_t)n;
        e->splice_limit -= (uint64_t)n;
        return ENDPOINT_PROGRESS;
    }
    return read_ended(e, n);
}

enum endpoint_io endpoint_splice_write(struct endpoint *from, struct endpoint *to, size_t *n)
{
    size_t total = 0;

    while (from->piped > 0) {
        ssize_t w;
        if (to->fd < 0 || to->failed)
            break;
        w = splice(from->pipe_rd, NULL, to->fd, NULL, from->piped,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (w > 0) {
            from->piped -= (uint32_t)w;
            total += (size_t)w;
            continue;
        }
        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        to->failed = 1;
        *n = total;
        return ENDPOINT_ERROR;
    }
    *n = total;
    return total ? ENDPOINT_PROGRESS : ENDPOINT_AGAIN;
}

void endpoint_close(struct ev_loop *loop, struct endpoint *e)
{
    endpoint_splice_stop(e);
    ev_clear_pending(loop, &e->io); /* an event fed for this endpoint dies with it */
    e->ops->close(e);
    e->ops = &endpoint_plain_ops;
    e->tls = NULL;
    if (e->fd >= 0) {
        if (e->events)
            ev_io_stop(loop, &e->io);
        e->events = e->wanted = 0;
        e->read_needs = e->write_needs = 0;
        close(e->fd);
        e->fd = -1;
    }
    buffer_free(&e->in);
    buffer_free(&e->out);
}
