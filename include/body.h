/*
 * body.h - moving a message body from one buffer to another, re-framed.
 *
 * The proxy never forwards body framing as it arrived: it decodes the
 * incoming framing (Content-Length, chunked, until-close) with a body_reader
 * and encodes the outgoing one (which may differ: a close-delimited response
 * goes to an HTTP/1.1 client chunked, so the client connection can be kept).
 * Chunk extensions and odd chunk sizes therefore never cross the proxy.
 */
#ifndef LUAPROXY_BODY_H
#define LUAPROXY_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "chunked.h"
#include "http_parse.h"

struct body_reader {
    enum http_body_kind kind;
    uint64_t remaining; /* HTTP_BODY_LENGTH: bytes still to come */
    uint64_t swapped;   /* body bytes moved by swapping buffers (no copy) */
    uint64_t copied;    /* ... copied into the output, re-framed */
    uint64_t filtered;  /* ... handed to the filter (a script, the flow capture) */
    struct chunked_decoder chunked;
    int end_pending;    /* the filter paused on the last piece: the end
                         * marker goes out on the next call */
    int eof_pending;    /* the filter paused on the batch that ended the
                         * body: its eof call goes out on the next call */
    /* Where small chunks of a chunked body gather before the filter sees
     * them (see body_pump), or NULL: the owner's buffer, set after
     * body_reader_init. Empty whenever body_pump returns, unless the body
     * was found invalid, or its end waits for the filter (end_pending,
     * eof_pending): then it holds the body's trailers, if any. */
    struct buffer *batch;
};

/* With a batch buffer, chunks shorter than this gather until the batch
 * holds this much (or the input runs out), then go to the filter as one
 * piece: a filter call (a chunk hook's, and its write) costs far more
 * than copying a few KiB, and upstreams often send chunks of 1 to 8 KiB.
 * A chunk behind them joins them whatever its size, so a batch stays
 * under this plus what the input buffer holds. 128 KiB: one write to the
 * client per piece, as many as the output buffer's flushes (at 64 KiB,
 * strace counted twice the writes for a body of 8 KiB chunks). */
#define BODY_BATCH_MIN (128 * 1024)

void body_reader_init(struct body_reader *r, const struct http_framing *framing);

/* "none", "length", "chunked" or "close", for logs and --trace. */
const char *body_kind_name(enum http_body_kind kind);

enum body_pump_result {
    BODY_PUMP_IDLE,      /* nothing could move: need input or output room */
    BODY_PUMP_PROGRESS,  /* some bytes moved; call again later */
    BODY_PUMP_DONE,      /* the whole body (and its end marker) was written */
    BODY_PUMP_INVALID,   /* bad chunked framing; *err says how */
    BODY_PUMP_TRUNCATED, /* the source ended before the body did */
    BODY_PUMP_FILTER_FAILED, /* the filter refused (a script failed) */
    BODY_PUMP_PAUSED,    /* the filter took a piece and will finish it later
                          * (a chunk hook waits): call again once it has */
};

/* Optional hook between decoding and encoding: called with each decoded
 * piece (and once with eof=1 at the end); it appends what should be sent to
 * <out> through body_write_data(). Returns 0, -1 to fail the transfer, or
 * 1: the piece is taken and its output will be appended later (the pump
 * returns BODY_PUMP_PAUSED). */
typedef int body_filter(void *arg, const char *data, size_t len, int eof,
                        struct buffer *out, enum http_body_kind out_kind);

/*
 * Decodes from <src> (whose peer has ended when <src_eof>) and encodes into
 * <dst> with <out_kind>, while <dst> holds less than <dst_limit> bytes.
 * Consumed input is dropped from <src>. <*moved> grows by the body bytes
 * written (payload, not framing). With a filter and r->batch, the chunks
 * of a chunked body already buffered are handed over together (up to
 * BODY_BATCH_MIN, or one larger chunk alone); what gathered always goes
 * before the call returns, so nothing that arrived waits for more.
 */
enum body_pump_result body_pump(struct body_reader *r, struct buffer *src, int src_eof,
                                struct buffer *dst, size_t dst_limit,
                                enum http_body_kind out_kind, body_filter *filter,
                                void *filter_arg, uint64_t *moved, enum http_error *err);

/* Encodes one piece of payload in <kind> framing (no-op for len 0). */
int body_write_data(struct buffer *out, enum http_body_kind kind, const char *data, size_t len);

struct iovec;

/* A way around the output buffer for large pieces: when nothing is queued
 * in <buf>, a piece goes to the peer at once from where it lies (a chunk
 * hook's string), framing and all in one gathered write, and only what the
 * peer does not take now is copied into <buf>. <send> writes what the
 * socket takes without waiting and returns the count; 0 when it takes
 * nothing or the peer is gone (the next flush of <buf> finds that out). */
struct body_direct {
    struct buffer *buf;
    size_t (*send)(void *arg, const struct iovec *iov, int iovcnt);
    void *arg;
};

/* Pieces shorter than this are queued as usual: several small ones leave
 * together in one write. */
#define BODY_DIRECT_MIN (16 * 1024)

/* body_write_data through <d> when <out> is d->buf, it is empty and the
 * piece is large (<d> may be NULL). 0, or -1 when out of memory. */
int body_write_data_direct(const struct body_direct *d, struct buffer *out,
                           enum http_body_kind kind, const char *data, size_t len);
/* Writes the end of the body: for chunked "0", the trailers (<trailers>
 * as chunked_decode gave them, less the fields chunked_trailer_allowed
 * refuses), the final CRLF. */
int body_write_end(struct buffer *out, enum http_body_kind kind, const char *trailers,
                   size_t trailers_len);

#endif
