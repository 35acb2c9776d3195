/*
 * ws_inflate.c - decoding permessage-deflate WebSocket messages (see
 * ws_inflate.h), through the body decoders of decode.c.
 */
#include "ws_inflate.h"

#include "decode.h"

/* What a sender's sync flush ends with, left off each message on the wire
 * (RFC 7692 7.2.1), and given back to the decoder (7.2.2). */
static const char sync_tail[4] = {0x00, 0x00, (char)0xff, (char)0xff};

/* The decoder's caps (decode.h): the total, and past 1 MiB a ratio. */
static const char too_far[] = "expands too far (over " WS_INFLATE_MAX_TEXT
                              " decoded, or 100 times its compressed size)";

void ws_inflate_msg_init(struct ws_inflate_msg *m, const char *data, size_t len, int whole)
{
    m->data = data;
    m->len = len;
    m->whole = whole;
    m->at = 0;
    m->tail_at = 0;
}

static enum ws_inflate_result fail(struct ws_inflate *w, const char *why)
{
    decoder_free(w->d);
    w->d = NULL;
    w->why = why;
    return WS_INFLATE_FAILED;
}

/* Feeds <len> bytes from <in> (input) through the decoder: 1 when they are
 * used up, 0 for more output to make first, -1 when failed. Sets *ended
 * when the deflate stream ended (the sender finished it: a next message
 * starts a new one). */
static int feed(struct ws_inflate *w, const char *in, size_t len, size_t *at,
                struct buffer *out, size_t budget, int *ended)
{
    size_t used, before = buffer_length(out);
    enum decode_result r = decoder_feed_some(w->d, in + *at, len - *at, 0, out, budget, &used);

    *at += used;
    w->total += buffer_length(out) - before;
    switch (r) {
    case DECODE_OK:
        return 1;
    case DECODE_MORE:
        return 0;
    case DECODE_END:
        *ended = 1;
        return 1;
    case DECODE_BOMB:
        fail(w, too_far);
        return -1;
    case DECODE_NOMEM:
        fail(w, "out of memory");
        return -1;
    default:
        fail(w, "corrupt compressed message");
        return -1;
    }
}

enum ws_inflate_result ws_inflate_run(struct ws_inflate *w, struct ws_inflate_msg *m,
                                      struct buffer *out, size_t budget)
{
    int ended = 0, rc;

    if (w->why)
        return WS_INFLATE_FAILED;
    if (!w->d) {
        if (w->total >= WS_INFLATE_MAX)
            return fail(w, too_far);
        w->d = decoder_new(DECODE_RAW_DEFLATE, WS_INFLATE_MAX - w->total);
        if (!w->d)
            return fail(w, "out of memory");
    }
    rc = feed(w, m->data, m->len, &m->at, out, budget, &ended);
    if (rc <= 0)
        return rc < 0 ? WS_INFLATE_FAILED : WS_INFLATE_MORE;
    if (ended) {
        /* The sender ended the stream inside this message: what is left
         * of it, the lost tail included, would be past the end. */
        if (m->at < m->len)
            return fail(w, "corrupt compressed message");
        decoder_free(w->d);
        w->d = NULL;
        return WS_INFLATE_DONE;
    }
    if (!m->whole) {
        /* What was kept decoded to a beginning of the text; the rest, and
         * so the state the next message goes on from, was not seen. */
        fail(w, "an earlier message was cut at the capture's budget");
        return WS_INFLATE_DONE;
    }
    rc = feed(w, sync_tail, sizeof sync_tail, &m->tail_at, out, budget, &ended);
    if (rc <= 0)
        return rc < 0 ? WS_INFLATE_FAILED : WS_INFLATE_MORE;
    if (ended) {
        decoder_free(w->d);
        w->d = NULL;
    }
    return WS_INFLATE_DONE;
}

void ws_inflate_free(struct ws_inflate *w)
{
    decoder_free(w->d);
    w->d = NULL;
}
