/*
 * tunnel.c - SESSION_TUNNEL: after a CONNECT (200) or an upgrade (101) the
 * proxy no longer reads HTTP; it moves bytes both ways, through the buffers
 * or, once they are empty, through splice(2) pipes, and passes a half-close
 * on so each side sees the other's EOF while data still flows back. When
 * both ways are done (or one side reset) it reports STEP_CLOSE and
 * session.c ends the exchange and the connection.
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

/* One direction of a tunnel, <from> to <to>: through the buffers, or
 * through <from>'s splice pipe once both buffers are empty. Passes a
 * half-close on once everything before it has been written. */
static int tunnel_direction(struct endpoint *from, struct endpoint *to, uint64_t *count,
                            struct tunnel_moves *moves, struct flow *flow, int to_upstream,
                            double now)
{
    int progress = 0;
    size_t n = 0;

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
        from->piped == 0 && !to->write_shut) {
        endpoint_shutdown_write(to);
        progress = 1;
    }
    return progress;
}

enum exchange_step tunnel_pump(struct session *s)
{
    struct endpoint *c = &s->client, *u = &s->upstream;
    int progress;

    double now = ev_now(s->proxy->loop);

    if (!s->x.tunnel_closer) {
        s->x.tunneled = 1;
        if (c->read_eof || c->failed)
            s->x.tunnel_closer = c->failed ? "the client (reset)" : "the client";
        else if (u->read_eof || u->failed)
            s->x.tunnel_closer = u->failed ? "the upstream (reset)" : "the upstream";
    }
    progress = tunnel_direction(c, u, &s->x.req_bytes, &s->x.tunnel_up, s->x.flow, 1, now);
    progress |= tunnel_direction(u, c, &s->x.res_bytes, &s->x.tunnel_down, s->x.flow, 0, now);
    if (c->failed || u->failed || (c->write_shut && u->write_shut)) {
        if (c->failed || u->failed)
            s->x.error = "the tunnel was reset";
        exchange_no_keep(&s->x, "a tunnel ends its connection");
        return exchange_close_connection(&s->x, s->x.error ? s->x.error
                                                           : "the tunnel is done both ways");
    }
    return progress ? STEP_PROGRESS : STEP_WAIT;
}
