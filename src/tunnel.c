/*
 * tunnel.c - SESSION_TUNNEL: after a CONNECT (200) or an upgrade (101) the
 * proxy no longer reads HTTP; it moves bytes both ways, through the buffers
 * or, once they are empty, through splice(2) pipes, and passes a half-close
 * on so each side sees the other's EOF while data still flows back. When
 * both ways are done it reports STEP_CLOSE and session.c ends the exchange
 * and the connection.
 *
 * A side that ends abnormally (a reset, a failed write, an upstream's TLS
 * stream that ends without close_notify) is not passed on as a half-close:
 * a FIN or a close_notify would tell the other peer the stream ended
 * whole. The bytes that came before still go on; then both connections
 * are closed with a reset (endpoint_abort), so the other peer sees the cut,
 * unless bytes for it still wait unsent in the kernel, which a reset would
 * throw away: then a plain close sends them first (tunnel_pump).
 */
#include "exchange.h"

#include "flows.h"
#include "session.h"

/* Moves bytes from <from> to <to> while <to> has room, counting in <m>
 * how they moved. */
static size_t move_bytes(struct buffer *from, struct buffer *to, struct tunnel_moves *m)
{
    size_t len = buffer_length(from), room;

    if (len == 0 || buffer_length(to) >= ENDPOINT_OUT_LIMIT)
        return 0;
    if (buffer_length(to) == 0) {
        buffer_swap(from, to); /* no copy when the whole buffer moves */
        m->swapped += len;
        return len;
    }
    room = ENDPOINT_OUT_LIMIT - buffer_length(to);
    if (len > room)
        len = room;
    if (buffer_append(to, buffer_peek(from), len) != 0)
        return 0;
    buffer_consume(from, len);
    m->copied += len;
    return len;
}

/* Why <e>'s side of the tunnel ended abnormally, or NULL while it has not
 * (it is open, or it ended cleanly: a FIN, or a close_notify over TLS).
 * Over TLS only the close_notify vouches for the end: a bare TCP EOF may
 * be someone cutting the stream (tls_eof_unclean, set for an upstream). */
static const char *ended_abnormally(const struct session *s, const struct endpoint *e)
{
    int client = e == &s->client;

    if (e->failed)
        return client ? "the tunnel was reset by the client" /* or a write to it failed */
                      : "the tunnel was reset by the upstream";
    if (e->read_eof && e->tls_eof_unclean) /* only an upstream's is noted */
        return "the tunnel was cut by the upstream: its TLS stream ended without close_notify";
    return NULL;
}

/* One direction of a tunnel, <from> to <to>: through the buffers, or
 * through <from>'s splice pipe once both buffers are empty. Passes a
 * half-close on once everything before it has been written, unless
 * <from> ended abnormally (<cut>): tunnel_pump resets <to> instead. */
static int tunnel_direction(struct endpoint *from, struct endpoint *to, int cut,
                            uint64_t *count, struct tunnel_moves *moves, struct flow *flow,
                            int to_upstream, double now)
{
    int progress = 0;
    size_t n = 0;

    if (to->failed)
        return 0; /* nothing more reaches it: the tunnel is ending */
    if (!endpoint_splicing(from)) {
        n = move_bytes(&from->in, &to->out, moves);
        *count += n;
        progress = n > 0;
        /* The bytes just moved are the last n of <to>'s output. */
        if (n > 0 && flow)
            flows_record_tunnel(flow, to_upstream,
                                buffer_peek(&to->out) + buffer_length(&to->out) - n, n, now);
        if (buffer_length(&from->in) == 0 && buffer_length(&to->out) == 0 && !from->read_eof &&
            endpoint_can_splice(from, to) && !flows_wants_tunnel(flow) &&
            endpoint_splice_start(from, UINT64_MAX) == 0)
            progress = 1;
    } else if (from->piped > 0 && buffer_length(&to->out) == 0) {
        endpoint_splice_write(from, to, &n); /* a failure marks <to> failed */
        *count += n;
        moves->spliced += n;
        flows_record_unseen(flow, n);
        progress = n > 0;
    }
    if (from->read_eof && buffer_length(&from->in) == 0 && buffer_length(&to->out) == 0 &&
        from->piped == 0 && !to->write_shut && !cut) {
        endpoint_shutdown_write(to);
        progress = 1;
    }
    return progress;
}

/* Whether what came from <from> before it ended is all written to <to>
 * (or can never be: <to> failed). */
static int all_passed_on(const struct endpoint *from, const struct endpoint *to)
{
    return to->failed ||
           (buffer_length(&from->in) == 0 && from->piped == 0 && buffer_length(&to->out) == 0);
}

enum exchange_step tunnel_pump(struct session *s)
{
    struct endpoint *c = &s->client, *u = &s->upstream;
    const char *c_cut = ended_abnormally(s, c), *u_cut = ended_abnormally(s, u);
    int progress;

    double now = ev_now(s->proxy->loop);

    if (!s->x.tunnel_closer) {
        s->x.tunneled = 1;
        if (c->read_eof || c->failed)
            s->x.tunnel_closer = c->failed ? "the client (reset)" : "the client";
        else if (u->read_eof || u->failed)
            s->x.tunnel_closer = u->failed           ? "the upstream (reset)"
                                 : u->tls_eof_unclean ? "the upstream (TLS without close_notify)"
                                                      : "the upstream";
    }
    progress = tunnel_direction(c, u, c_cut != NULL, &s->x.req_bytes, &s->x.tunnel_up,
                                s->x.flow, 1, now);
    progress |= tunnel_direction(u, c, u_cut != NULL, &s->x.res_bytes, &s->x.tunnel_down,
                                 s->x.flow, 0, now);
    if (c_cut || u_cut) {
        /* The first side seen to end abnormally is the one the log names
         * (the other may fail only because of it). */
        if (!s->x.error)
            s->x.error = u_cut ? u_cut : c_cut;
        /* The bytes that came before the cut go on first. */
        if ((!u_cut || all_passed_on(u, c)) && (!c_cut || all_passed_on(c, u))) {
            /* Then the connections close. The peer of the side that ended
             * so is reset, to tell it the stream was cut, and so is that
             * side (what the other had still to send it is lost too; a
             * failed socket is past caring). Unless bytes for the peer
             * still wait in the kernel, unsent: a reset would throw them
             * away, where a close sends them, then a FIN (or, over TLS, a
             * bare end without close_notify, which says the same as a
             * reset to a client that checks). The cut is told when that
             * costs nothing, never at the price of what came before it. */
            struct endpoint *peer = u_cut ? c : u;
            if ((u_cut && c_cut) || endpoint_unsent(peer) == 0) {
                endpoint_abort(c);
                endpoint_abort(u);
            }
            exchange_no_keep(&s->x, "a tunnel ends its connection");
            return exchange_close_connection(&s->x, s->x.error);
        }
        return progress ? STEP_PROGRESS : STEP_WAIT;
    }
    if (c->write_shut && u->write_shut) {
        exchange_no_keep(&s->x, "a tunnel ends its connection");
        return exchange_close_connection(&s->x, "the tunnel is done both ways");
    }
    return progress ? STEP_PROGRESS : STEP_WAIT;
}

void tunnel_abort_if_cut(struct session *s)
{
    if (ended_abnormally(s, &s->client) || ended_abnormally(s, &s->upstream)) {
        endpoint_abort(&s->client);
        endpoint_abort(&s->upstream);
    }
}
