/*
 * session_watch.h - what a session's sockets are watched for, and how much
 * each side may read (session_watch.c).
 *
 * The limits and the read are inline: they run on every read of every
 * exchange.
 */
#ifndef LUAPROXY_SESSION_WATCH_H
#define LUAPROXY_SESSION_WATCH_H

#include "session.h"

/* Sets both sockets' watchers to what the state needs (after every event). */
void session_watch(struct session *s);

/* Whether the client's answers fill its output buffer: no more heads are
 * read until they go out. */
static inline int session_output_blocked(const struct session *s)
{
    return buffer_length(&s->client.out) >= ENDPOINT_OUT_LIMIT;
}

/* What the upstream's "in" may hold. A response body on its way through
 * on_response_chunk is read in larger bites (each piece costs a hook call
 * and a write of its own). */
static inline size_t session_upstream_read_limit(const struct session *s)
{
    return s->x.res_filter && s->x.res_state == RESPONSE_BODY ? ENDPOINT_BULK_LIMIT
                                                               : ENDPOINT_IN_LIMIT;
}

/* What the client's "in" may hold: the same larger bites for an upload on
 * its way through on_request_chunk, once the exchange is under way (before
 * that, what arrives only waits for the upstream). */
static inline size_t session_client_read_limit(const struct session *s)
{
    return s->x.req_filter && s->state == SESSION_EXCHANGE && !s->x.req_body_done
               ? ENDPOINT_BULK_LIMIT
               : ENDPOINT_IN_LIMIT;
}

/* One read from <e>: through its splice pipe, or into its buffer (in one
 * bite of what the socket holds when the limit is past the usual one). */
static inline enum endpoint_io session_read(struct endpoint *e, size_t limit)
{
    if (endpoint_splicing(e))
        return endpoint_splice_read(e);
    return limit > ENDPOINT_IN_LIMIT ? endpoint_read_bulk(e, limit) : endpoint_read(e, limit);
}

#endif
