/*
 * chunked.h - streaming decoder for the chunked transfer coding (RFC 9112 7.1).
 *
 * The relay always decodes a chunked body and encodes it again on the way
 * out, so chunk extensions and odd chunk boundaries never cross the proxy.
 * The decoder copies nothing: each call looks at the bytes the caller has
 * buffered so far and reports at most one span of body data inside them.
 *
 * Framing lines (the chunk-size line, the CRLF after the data, the trailer
 * section) are only consumed once complete; until then the call reports
 * CHUNKED_NEED_MORE with nothing consumed and the caller keeps the bytes.
 * A size line longer than CHUNKED_MAX_LINE or a trailer section longer than
 * CHUNKED_MAX_TRAILER is an error, so memory stays bounded.
 */
#ifndef LUAPROXY_CHUNKED_H
#define LUAPROXY_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#include "http_parse.h"

#define CHUNKED_MAX_LINE 4096
#define CHUNKED_MAX_TRAILER 16384

enum chunked_state {
    CHUNKED_SIZE_LINE,  /* expecting "HEX[;ext]CRLF" */
    CHUNKED_DATA,       /* inside chunk data, <remaining> bytes left */
    CHUNKED_DATA_CRLF,  /* expecting the CRLF after chunk data */
    CHUNKED_TRAILERS,   /* after the last chunk: trailer fields, then CRLF */
    CHUNKED_FINISHED,   /* the whole body has been read */
    CHUNKED_FAILED,
};

struct chunked_decoder {
    enum chunked_state state;
    uint64_t remaining; /* bytes of chunk data still to come */
};

enum chunked_result {
    CHUNKED_RESULT_DATA,      /* *data, *data_len: a span of body bytes */
    CHUNKED_RESULT_NEED_MORE, /* give more bytes; *consumed may be > 0 */
    CHUNKED_RESULT_DONE,      /* last chunk and trailers read; see below */
    CHUNKED_RESULT_ERROR,     /* *err says why; the decoder stays failed */
};

void chunked_init(struct chunked_decoder *d);

/*
 * Advances over <in>[0, <len>).
 * *<consumed> is set to how many bytes of <in> the caller may drop (framing
 * and, for DATA, the data itself). On DATA, *<data> points into <in> and
 * *<data_len> > 0; the span lies within the consumed bytes. On DONE, *<data>
 * and *<data_len> give the trailer fields ("Name: value\r\n" lines, without
 * the final empty line; length 0 when there are none), also within the
 * consumed bytes. Each trailer line is checked with the same field rules as
 * a head.
 */
enum chunked_result chunked_decode(struct chunked_decoder *d, const char *in, size_t len,
                                   size_t *consumed, const char **data, size_t *data_len,
                                   enum http_error *err);

/*
 * Whether the trailer field <name> (<len> bytes, any case) may be passed
 * on. RFC 9110 6.5.1: a sender must not put in a trailer a field needed
 * before the content is processed (framing, routing, request modifiers,
 * authentication, response controls, content processing), and a recipient
 * may discard one; some recipients merge trailers into the head, so such a
 * field passed on could change what the next hop thinks it already read.
 * Those are dropped, the rest (checksums, Server-Timing, ...) kept.
 */
int chunked_trailer_allowed(const char *name, size_t len);

#endif
