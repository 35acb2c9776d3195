/*
 * decode.h - undoing a Content-Encoding (gzip, deflate, br, zstd) as a
 * body streams through, so a script's chunk hook sees the real text.
 *
 * A decoder is fed the encoded body piece by piece and appends the decoded
 * bytes to a buffer the caller owns. It keeps no pointer into the input
 * between calls. Two caps stop a decompression bomb: a total size and a
 * ratio of decoded to encoded bytes (checked once past a small floor, so a
 * short, very repetitive page still passes).
 */
#ifndef LUAPROXY_DECODE_H
#define LUAPROXY_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

enum decode_coding {
    DECODE_IDENTITY,
    DECODE_GZIP,    /* also "x-gzip" */
    DECODE_DEFLATE, /* zlib-wrapped as RFC 9110 says; raw deflate accepted too */
    DECODE_BR,
    DECODE_ZSTD,
    DECODE_UNKNOWN, /* anything else, or several codings stacked */
    DECODE_RAW_DEFLATE, /* deflate data with no wrapper (WebSocket's permessage-deflate);
                         * never a Content-Encoding */
};

/* A zstd frame whose window (the history the decoder must keep, so its
 * memory) is over 2^23 bytes is refused as corrupt, where the library
 * would allow 2^27: RFC 9659 caps the "zstd" content coding's window at
 * 8 MB. (gzip's and deflate's is 32 KiB, brotli's 16 MiB at most.) */
#define DECODE_ZSTD_WINDOW_LOG 23

/* Decoded bytes allowed per encoded byte, once past DECODE_RATIO_FLOOR. */
#define DECODE_MAX_RATIO 100
#define DECODE_RATIO_FLOOR (1024 * 1024)

enum decode_result {
    DECODE_OK,      /* input used up; more may follow */
    DECODE_END,     /* the encoded stream ended (trailing input is an error) */
    DECODE_CORRUPT, /* not valid data in this coding */
    DECODE_BOMB,    /* past the size cap or the ratio */
    DECODE_NOMEM,
    DECODE_MORE,    /* stopped at the output budget: call again with the
                     * input left (decoder_feed_some) */
};

struct decoder;

/* Classifies a Content-Encoding field value (case-insensitive, surrounding
 * blanks ignored). "" and "identity" are DECODE_IDENTITY. */
enum decode_coding decode_coding_parse(const char *value, size_t len);
const char *decode_coding_name(enum decode_coding coding);

/* A decoder for <coding> (not IDENTITY or UNKNOWN) that refuses to produce
 * more than <max_output> bytes in total. NULL when out of memory. */
struct decoder *decoder_new(enum decode_coding coding, uint64_t max_output);
void decoder_free(struct decoder *d);

/* Decodes <len> bytes of <in> and appends the result to <out>. <eof> says
 * the encoded body ends with this piece: a stream that is not complete by
 * then is DECODE_CORRUPT. */
enum decode_result decoder_feed(struct decoder *d, const char *in, size_t len, int eof,
                                struct buffer *out);

/* decoder_feed that stops once it has appended about <budget> bytes (one
 * library step past it at most): a small encoded piece may hold hundreds
 * of megabytes, which should not all be made in one go. Sets *used to the
 * input bytes consumed; on DECODE_MORE, the caller offers the rest of the
 * input (and the same <eof>) again later, even when none is left: the
 * library may still hold decoded bytes. */
enum decode_result decoder_feed_some(struct decoder *d, const char *in, size_t len, int eof,
                                     struct buffer *out, size_t budget, size_t *used);

const char *decode_result_name(enum decode_result r);

#endif
