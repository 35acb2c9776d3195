/*
 * body_decode.h - undoing Content-Encoding for the viewer (?decoded=1).
 *
 * gzip, deflate (zlib or raw), br and zstd, through decode.h's decoders,
 * with several codings undone in turn. A kept body is decoded a little at
 * a time, as the admin sends it: each call makes about as many bytes as
 * asked for and does work in proportion, so neither the memory an answer
 * holds nor the time one call takes on the loop grows with the body: a
 * decoder holds its state (a window of at most 16 MiB for br, 8 MiB for
 * zstd, 32 KiB for gzip) and what one call makes. The output is capped
 * relative to the body (decode.h's ratio): a small body must not expand
 * without end.
 */
#ifndef LUAPROXY_BODY_DECODE_H
#define LUAPROXY_BODY_DECODE_H

#include <stddef.h>

#include "buffer.h"

/* Codings stacked in one Content-Encoding that are undone, at most. */
#define BODY_DECODE_CODINGS 4

enum body_decode_result {
    BODY_DECODE_MORE,   /* call again */
    BODY_DECODE_DONE,   /* the decoded body is complete */
    BODY_DECODE_FAILED, /* corrupt, truncated, expands too far, or no memory:
                         * the message is in <err> */
};

struct body_decoder;

/* A decoder for a body of <len> bytes encoded with <encoding> (a
 * Content-Encoding value; a list is undone right to left). NULL with a
 * message in <err> for an unknown coding, too many of them, or no memory. */
struct body_decoder *body_decoder_new(const char *encoding, size_t enc_len, size_t len,
                                      char *err, size_t err_len);
/* Appends about <want> more decoded bytes of the body <data> (<len> bytes,
 * the same every call, though it may have moved) to <out>, with a bounded
 * amount of work: it may return MORE having appended fewer, or none. */
enum body_decode_result body_decoder_run(struct body_decoder *bd, const char *data, size_t len,
                                         struct buffer *out, size_t want, char *err,
                                         size_t err_len);
void body_decoder_free(struct body_decoder *bd);

#endif
