/*
 * ws_inflate.h - the text of WebSocket messages sent compressed with the
 * permessage-deflate extension (RFC 7692), for the flow viewer and the
 * HAR export.
 *
 * A message with RSV1 set on its first frame is raw deflate data whose
 * end, a sync flush, lost its last four bytes (00 00 ff ff) on the wire.
 * Unless the peers agreed otherwise, each message of one direction goes
 * on from the compressor's state after the one before (context takeover),
 * so the messages of a direction are decoded in order, through one
 * decoder: once one of them cannot be decoded whole (cut at the capture's
 * budget, corrupt), the ones after it cannot be either.
 */
#ifndef LUAPROXY_WS_INFLATE_H
#define LUAPROXY_WS_INFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

/* The decoded text of all the messages of one direction, at most: the
 * viewer makes a flow's messages in one go, on the loop. */
#define WS_INFLATE_MAX ((uint64_t)4 << 20)
#define WS_INFLATE_MAX_TEXT "4 MiB"

/* One direction of a connection. Zeroed is ready. */
struct ws_inflate {
    struct decoder *d;
    uint64_t total;   /* decoded so far, all messages */
    const char *why;  /* set once a message did not decode: why */
};

/* One message, as kept: <whole> when nothing of it was cut. */
struct ws_inflate_msg {
    const char *data;
    size_t len;
    int whole;
    size_t at;        /* bytes of data fed so far */
    size_t tail_at;   /* bytes of the lost sync-flush end fed so far */
};

enum ws_inflate_result {
    WS_INFLATE_DONE,   /* the message's text is all in <out> */
    WS_INFLATE_MORE,   /* about <budget> bytes made: call again */
    WS_INFLATE_FAILED, /* not decoded: w->why says why */
};

void ws_inflate_msg_init(struct ws_inflate_msg *m, const char *data, size_t len, int whole);
/* Appends the next part of <m>'s text to <out>, about <budget> bytes at
 * most (SIZE_MAX: all of it). */
enum ws_inflate_result ws_inflate_run(struct ws_inflate *w, struct ws_inflate_msg *m,
                                      struct buffer *out, size_t budget);
void ws_inflate_free(struct ws_inflate *w);

#endif
