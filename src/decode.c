/*
 * decode.c - streaming decoders for gzip, deflate (zlib), br (libbrotli)
 * and zstd (libzstd) behind one small interface.
 *
 * Owns each library's stream state; the caller owns input and output. The
 * libraries write into space reserved at the tail of the output buffer, in
 * steps of DECODE_STEP, so no decoded byte is copied twice. Every step
 * checks the caps before asking for more room, so a bomb stops after at
 * most one step past its limit.
 */
#include "decode.h"

#include <brotli/decode.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "http_parse.h"

#define DECODE_STEP (16 * 1024)

struct decoder {
    enum decode_coding coding;
    uint64_t max_output;
    uint64_t total_in;
    uint64_t total_out;
    int ended;
    int raw_tried; /* deflate: switched to raw after a zlib header error */
    int last_full; /* the last step filled its room: more may be inside */
    /* Input already counted in total_in but not yet consumed: the rest of
     * a piece offered again after DECODE_MORE earns no second credit. */
    size_t credited_ahead;
    /* deflate: the stream's first bytes, for that switch when an earlier
     * read brought some of them (zlib knows its header is wrong only once
     * it has both bytes) */
    unsigned char first[4];
    z_stream z;
    BrotliDecoderState *br;
    ZSTD_DStream *zstd;
};

enum decode_coding decode_coding_parse(const char *value, size_t len)
{
    while (len > 0 && (value[0] == ' ' || value[0] == '\t'))
        value++, len--;
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (len == 0 || http_token_eq(value, len, "identity"))
        return DECODE_IDENTITY;
    if (http_token_eq(value, len, "gzip") || http_token_eq(value, len, "x-gzip"))
        return DECODE_GZIP;
    if (http_token_eq(value, len, "deflate"))
        return DECODE_DEFLATE;
    if (http_token_eq(value, len, "br"))
        return DECODE_BR;
    if (http_token_eq(value, len, "zstd"))
        return DECODE_ZSTD;
    return DECODE_UNKNOWN; /* including "gzip, br": stacked codings are left alone */
}

const char *decode_coding_name(enum decode_coding coding)
{
    switch (coding) {
    case DECODE_IDENTITY: return "identity";
    case DECODE_GZIP: return "gzip";
    case DECODE_DEFLATE: return "deflate";
    case DECODE_BR: return "br";
    case DECODE_ZSTD: return "zstd";
    case DECODE_RAW_DEFLATE: return "raw deflate";
    case DECODE_UNKNOWN: break;
    }
    return "unknown";
}

const char *decode_result_name(enum decode_result r)
{
    switch (r) {
    case DECODE_OK: return "ok";
    case DECODE_END: return "end";
    case DECODE_CORRUPT: return "corrupt compressed body";
    case DECODE_BOMB: return "compressed body expands too far";
    case DECODE_NOMEM: return "out of memory";
    case DECODE_MORE: return "more to decode";
    }
    return "?";
}

struct decoder *decoder_new(enum decode_coding coding, uint64_t max_output)
{
    struct decoder *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->coding = coding;
    d->max_output = max_output;
    switch (coding) {
    case DECODE_GZIP:
        /* 16 + MAX_WBITS: expect the gzip wrapper, not zlib's. */
        if (inflateInit2(&d->z, 16 + MAX_WBITS) != Z_OK)
            goto fail;
        break;
    case DECODE_DEFLATE:
        if (inflateInit2(&d->z, MAX_WBITS) != Z_OK)
            goto fail;
        break;
    case DECODE_RAW_DEFLATE:
        /* A negative window size: no wrapper, so nothing to retry. */
        d->raw_tried = 1;
        if (inflateInit2(&d->z, -MAX_WBITS) != Z_OK)
            goto fail;
        break;
    case DECODE_BR:
        d->br = BrotliDecoderCreateInstance(NULL, NULL, NULL);
        if (!d->br)
            goto fail;
        break;
    case DECODE_ZSTD:
        d->zstd = ZSTD_createDStream();
        if (!d->zstd || ZSTD_isError(ZSTD_initDStream(d->zstd)) ||
            ZSTD_isError(ZSTD_DCtx_setParameter(d->zstd, ZSTD_d_windowLogMax,
                                                DECODE_ZSTD_WINDOW_LOG))) {
            ZSTD_freeDStream(d->zstd);
            goto fail;
        }
        break;
    default:
        goto fail;
    }
    return d;
fail:
    free(d);
    return NULL;
}

void decoder_free(struct decoder *d)
{
    if (!d)
        return;
    if (d->coding == DECODE_GZIP || d->coding == DECODE_DEFLATE ||
        d->coding == DECODE_RAW_DEFLATE)
        inflateEnd(&d->z);
    if (d->br)
        BrotliDecoderDestroyInstance(d->br);
    if (d->zstd)
        ZSTD_freeDStream(d->zstd);
    free(d);
}

/* Whether the output so far is more than the caps allow. */
static int over_caps(const struct decoder *d)
{
    if (d->total_out > d->max_output)
        return 1;
    return d->total_out > DECODE_RATIO_FLOOR &&
           d->total_out / DECODE_MAX_RATIO > d->total_in;
}

/* One step of the library: consumes from *in, writes at most <room> bytes
 * to <dst>. Sets *wrote and returns OK, END or CORRUPT. */
static enum decode_result step(struct decoder *d, const unsigned char **in, size_t *in_len,
                               unsigned char *dst, size_t room, size_t *wrote)
{
    switch (d->coding) {
    case DECODE_GZIP:
    case DECODE_DEFLATE:
    case DECODE_RAW_DEFLATE: {
        int rc;
        uLong at = d->z.total_in; /* where *in starts in the stream */
        for (size_t k = 0; at + k < sizeof d->first && k < *in_len; k++)
            d->first[at + k] = (*in)[k];
        d->z.next_in = (unsigned char *)(uintptr_t)*in;
        d->z.avail_in = (uInt)*in_len;
        d->z.next_out = dst;
        d->z.avail_out = (uInt)room;
        rc = inflate(&d->z, Z_NO_FLUSH);
        if (rc == Z_DATA_ERROR && d->coding == DECODE_DEFLATE && !d->raw_tried &&
            d->total_out == 0 && at <= sizeof d->first) {
            /* Some servers send raw deflate under "deflate": retry once
             * from the start of the stream without the zlib wrapper, with
             * the bytes earlier reads brought first. */
            size_t early = 0;
            d->raw_tried = 1;
            if (inflateReset2(&d->z, -MAX_WBITS) != Z_OK)
                return DECODE_CORRUPT;
            if (at > 0) {
                d->z.next_in = d->first;
                d->z.avail_in = (uInt)at;
                d->z.next_out = dst;
                d->z.avail_out = (uInt)room;
                rc = inflate(&d->z, Z_NO_FLUSH);
                if (rc != Z_OK && rc != Z_BUF_ERROR)
                    return DECODE_CORRUPT;
                early = room - d->z.avail_out;
            }
            enum decode_result r = step(d, in, in_len, dst + early, room - early, wrote);
            *wrote += early; /* raw_tried ends the retries */
            return r;
        }
        *in_len = d->z.avail_in;
        *in = d->z.next_in;
        *wrote = room - d->z.avail_out;
        if (rc == Z_STREAM_END)
            return DECODE_END;
        if (rc == Z_OK || rc == Z_BUF_ERROR)
            return DECODE_OK;
        return DECODE_CORRUPT;
    }
    case DECODE_BR: {
        size_t avail_in = *in_len, avail_out = room;
        uint8_t *next_out = dst;
        BrotliDecoderResult rc =
            BrotliDecoderDecompressStream(d->br, &avail_in, in, &avail_out, &next_out, NULL);
        *in_len = avail_in;
        *wrote = room - avail_out;
        if (rc == BROTLI_DECODER_RESULT_SUCCESS)
            return DECODE_END;
        if (rc == BROTLI_DECODER_RESULT_ERROR)
            return DECODE_CORRUPT;
        return DECODE_OK;
    }
    case DECODE_ZSTD: {
        ZSTD_inBuffer ib = {*in, *in_len, 0};
        ZSTD_outBuffer ob = {dst, room, 0};
        size_t rc = ZSTD_decompressStream(d->zstd, &ob, &ib);
        *in += ib.pos;
        *in_len -= ib.pos;
        *wrote = ob.pos;
        if (ZSTD_isError(rc))
            return DECODE_CORRUPT;
        /* 0: a frame is complete. Several frames may follow one another. */
        return rc == 0 ? DECODE_END : DECODE_OK;
    }
    default:
        return DECODE_CORRUPT;
    }
}

enum decode_result decoder_feed_some(struct decoder *d, const char *in, size_t len, int eof,
                                     struct buffer *out, size_t budget, size_t *used)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t offered = len, made = 0;

    /* The ratio counts what the upstream sent, as it arrives. */
    if (len > d->credited_ahead)
        d->total_in += len - d->credited_ahead;
    d->credited_ahead = 0;
    *used = 0;
    for (;;) {
        size_t wrote = 0, before = len;
        enum decode_result r;
        unsigned char *dst;

        if (d->ended) {
            /* zstd allows another frame and gzip another member (RFC 1952
             * 2.2: a gzip file is a series of members, as `cat a.gz b.gz`
             * makes); deflate and br end for good. */
            if (len == 0)
                break;
            if (d->coding == DECODE_GZIP) {
                if (inflateReset(&d->z) != Z_OK)
                    return DECODE_CORRUPT;
            } else if (d->coding != DECODE_ZSTD) {
                return DECODE_CORRUPT;
            }
            d->ended = 0;
        }
        if (len == 0 && !d->last_full)
            break;
        if (made >= budget) {
            *used = offered - len;
            d->credited_ahead = len;
            return DECODE_MORE;
        }
        dst = (unsigned char *)buffer_reserve(out, DECODE_STEP);
        if (!dst)
            return DECODE_NOMEM;
        r = step(d, &p, &len, dst, DECODE_STEP, &wrote);
        buffer_commit(out, wrote);
        d->total_out += wrote;
        made += wrote;
        if (r == DECODE_CORRUPT)
            return r;
        if (over_caps(d))
            return DECODE_BOMB;
        if (r == DECODE_END)
            d->ended = 1;
        /* A full output step may mean more is waiting inside the library. */
        d->last_full = wrote == DECODE_STEP;
        if (!d->last_full && before == len && r != DECODE_END)
            break; /* no progress: needs more input */
    }
    *used = offered - len;
    /* An empty body is no stream at all (a server may label even that
     * with its coding), not a truncated one. */
    if (eof && !d->ended)
        return d->total_in == 0 ? DECODE_END : DECODE_CORRUPT; /* truncated stream */
    return d->ended ? DECODE_END : DECODE_OK;
}

enum decode_result decoder_feed(struct decoder *d, const char *in, size_t len, int eof,
                                struct buffer *out)
{
    size_t used;
    return decoder_feed_some(d, in, len, eof, out, SIZE_MAX, &used);
}
