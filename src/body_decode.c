/*
 * body_decode.c - a whole captured body decoded at once, through the
 * streaming decoders of decode.c (see body_decode.h).
 */
#include "body_decode.h"

#include <stdio.h>
#include <string.h>

#include "decode.h"

static int decode_one(const char *coding, size_t clen, const char *data, size_t len,
                      struct buffer *out, char *err, size_t err_len)
{
    enum decode_coding c = decode_coding_parse(coding, clen);
    struct decoder *d;
    enum decode_result r;

    if (c == DECODE_IDENTITY)
        return buffer_append(out, data, len);
    if (c == DECODE_UNKNOWN) {
        snprintf(err, err_len, "unknown content coding '%.*s'", (int)(clen > 40 ? 40 : clen),
                 coding);
        return -1;
    }
    d = decoder_new(c, BODY_DECODE_MAX);
    if (!d) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    r = decoder_feed(d, data, len, 1, out);
    decoder_free(d);
    switch (r) {
    case DECODE_OK:
    case DECODE_END:
        return 0;
    case DECODE_CORRUPT:
        snprintf(err, err_len, "corrupt or truncated %s data", decode_coding_name(c));
        return -1;
    case DECODE_BOMB:
        snprintf(err, err_len, "the decoded body is larger than %zu MiB or expands too much",
                 BODY_DECODE_MAX >> 20);
        return -1;
    case DECODE_NOMEM:
    case DECODE_MORE: /* not without a budget */
        break;
    }
    snprintf(err, err_len, "out of memory");
    return -1;
}

int body_decode(const char *encoding, size_t enc_len, const char *data, size_t len,
                struct buffer *out, char *err, size_t err_len)
{
    struct buffer a, b;
    const char *end = encoding + enc_len;
    int rc = 0;

    buffer_init(&a);
    buffer_init(&b);
    if (buffer_append(&a, data, len) != 0) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    /* Codings were applied left to right, so they come off right to left. */
    while (end > encoding && rc == 0) {
        const char *start = end;
        while (start > encoding && start[-1] != ',')
            start--;
        const char *s = start, *e = end;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s) {
            buffer_consume(&b, buffer_length(&b));
            rc = decode_one(s, (size_t)(e - s), buffer_peek(&a), buffer_length(&a), &b, err,
                            err_len);
            buffer_swap(&a, &b);
        }
        end = start > encoding ? start - 1 : encoding;
    }
    if (rc == 0)
        buffer_swap(out, &a);
    buffer_free(&a);
    buffer_free(&b);
    return rc;
}
