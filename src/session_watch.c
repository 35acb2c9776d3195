/*
 * session_watch.c - what a session's two sockets are watched for, and how
 * much each side may read.
 *
 * After every event (end_event in session.c) session_watch() sets the
 * client's and the upstream's watchers to what the state needs: read while
 * the side has room (backpressure is simply not reading), write while
 * bytes wait. The room is a byte limit per side: 128 KiB, or 256 KiB for a
 * body on its way through a chunk hook, read in larger bites because each
 * piece costs a hook call and a write of its own; a bite is what the
 * socket holds at the time, so nothing that arrived waits for more.
 */
#include "session_watch.h"

/* Whether <e> has room for more: its buffer (up to <limit>), or its
 * splice pipe. */
static int wants_read(const struct endpoint *e, size_t limit)
{
    if (e->read_eof)
        return 0;
    if (endpoint_splicing(e))
        return e->piped < e->pipe_size && e->splice_limit > 0;
    return buffer_length(&e->in) < limit;
}

/* Sets the watchers to what the state needs. */
void session_watch(struct session *s)
{
    struct ev_loop *loop = s->proxy->loop;
    const struct config *cfg = s->proxy->cfg;
    int cev = 0, uev = 0;

    switch (s->state) {
    case SESSION_HEAD:
        /* Read one byte past the cap, so an oversized head is noticed. */
        if (!s->client.read_eof && buffer_length(&s->client.in) <= cfg->max_header_bytes &&
            !session_output_blocked(s))
            cev |= EV_READ;
        break;
    case SESSION_HOOK:
    case SESSION_RESOLVING:
    case SESSION_CONNECTING:
    case SESSION_EXCHANGE:
    case SESSION_TUNNEL:
    case SESSION_DRAINING:
        if (wants_read(&s->client, session_client_read_limit(s)))
            cev |= EV_READ;
        break;
    case SESSION_CLOSED:
        break;
    }
    if ((buffer_length(&s->client.out) > 0 || s->upstream.piped > 0) && !s->client.failed)
        cev |= EV_WRITE;

    if (s->upstream.fd >= 0) {
        if (s->upstream_idle) {
            uev = EV_READ; /* only to notice the upstream closing it */
        } else if (s->state == SESSION_CONNECTING) {
            uev = EV_WRITE;
        } else if (s->state == SESSION_EXCHANGE || s->state == SESSION_TUNNEL) {
            if (wants_read(&s->upstream, session_upstream_read_limit(s)))
                uev |= EV_READ;
            if ((buffer_length(&s->upstream.out) > 0 || s->client.piped > 0) &&
                !s->upstream.failed)
                uev |= EV_WRITE;
        }
        endpoint_watch(loop, &s->upstream, uev);
    }
    endpoint_watch(loop, &s->client, cev);
}
