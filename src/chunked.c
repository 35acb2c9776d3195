/*
 * chunked.c - streaming decoder for the chunked transfer coding (see
 * chunked.h).
 *
 * Owns: the decoder state between calls (where in the chunk grammar we are
 * and how many data bytes are left), and which trailer fields may be passed
 * on. Does not own: any bytes; each call only looks at what the caller has
 * buffered and says how much of it is done.
 *
 * A framing line is parsed from its start on every call until it is
 * complete, and only then consumed; that keeps the state to two fields and
 * gives the same result however the body is split. The scan of one line
 * never looks past CHUNKED_MAX_LINE bytes, nor that of the trailer section
 * past CHUNKED_MAX_TRAILER, so an endless line costs bounded work and memory.
 */
#include "chunked.h"
#include "hex.h"

#include <string.h>
#include <sys/types.h>

#define NEED_MORE (-2)

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

/* qdtext (RFC 9110 5.6.4) */
static int is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

static ssize_t fail(enum http_error *err, enum http_error why)
{
    *err = why;
    return -1;
}

/* The line ran into the end of the window at <limit>: more bytes may
 * complete it, unless the window is already the longest line allowed. */
static ssize_t more(size_t limit, enum http_error *err)
{
    return limit == CHUNKED_MAX_LINE ? fail(err, HTTP_ERR_CHUNK_SIZE) : NEED_MORE;
}

/* token / quoted-string at <pos>. Returns the offset after it, -2 or -1. */
static ssize_t parse_ext_value(const char *s, size_t limit, size_t pos, enum http_error *err)
{
    size_t start = pos;

    if (pos == limit)
        return more(limit, err);
    if (s[pos] != '"') {
        while (pos < limit && http_is_tchar((unsigned char)s[pos]))
            pos++;
        if (pos == limit)
            return more(limit, err);
        return pos == start ? fail(err, HTTP_ERR_CHUNK_FRAMING) : (ssize_t)pos;
    }
    for (pos++; pos < limit; pos++) {
        unsigned char c = (unsigned char)s[pos];
        if (c == '"')
            return (ssize_t)(pos + 1);
        if (c == '\\') {
            if (++pos == limit)
                break;
            c = (unsigned char)s[pos];
            if (!(is_ows(c) || (c >= 0x21 && c <= 0x7e) || c >= 0x80))
                return fail(err, HTTP_ERR_CHUNK_FRAMING);
        } else if (!is_qdtext(c)) {
            return fail(err, HTTP_ERR_CHUNK_FRAMING);
        }
    }
    return more(limit, err);
}

/*
 * chunk-size [ chunk-ext ] CRLF (RFC 9112 7.1, 7.1.1):
 *
 *     1*HEXDIG *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF
 *
 * Returns the length of the line including CRLF with *<size> set, -2 if
 * incomplete, or -1. Extensions are checked and then dropped: the relay
 * encodes chunks afresh, so none of them ever reaches the next hop.
 */
static ssize_t parse_size_line(const char *s, size_t len, uint64_t *size, enum http_error *err)
{
    size_t limit = len < CHUNKED_MAX_LINE ? len : CHUNKED_MAX_LINE;
    size_t pos = 0;
    uint64_t v = 0;
    int d;

    /* At most 16 digits, so the value cannot wrap; the bound is checked on
     * every digit so "fffff..." fails at once. Leading zeros count too:
     * a size line is no place for padding. */
    while (pos < limit && (d = hex_digit_value((unsigned char)s[pos])) >= 0) {
        if (pos == 16)
            return fail(err, HTTP_ERR_CHUNK_SIZE);
        v = v * 16 + (uint64_t)d;
        if (v > HTTP_MAX_BODY_LENGTH)
            return fail(err, HTTP_ERR_CHUNK_SIZE);
        pos++;
    }
    if (pos == limit)
        return more(limit, err);
    unsigned char c = (unsigned char)s[pos];
    if (pos == 0 || !(is_ows(c) || c == ';' || c == '\r' || c == '\n'))
        return fail(err, HTTP_ERR_CHUNK_SIZE);

    for (;;) {
        size_t before_ws = pos;
        while (pos < limit && is_ows((unsigned char)s[pos]))
            pos++;
        if (pos == limit)
            return more(limit, err);

        if (s[pos] == '\r' && pos == before_ws) {
            if (pos + 1 == limit)
                return more(limit, err);
            if (s[pos + 1] != '\n')
                return fail(err, HTTP_ERR_CHUNK_FRAMING);
            *size = v;
            return (ssize_t)(pos + 2);
        }
        /* whitespace is only allowed before ";" (BWS), never before CRLF */
        if (s[pos] != ';')
            return fail(err, HTTP_ERR_CHUNK_FRAMING);

        pos++;
        while (pos < limit && is_ows((unsigned char)s[pos]))
            pos++;
        size_t name = pos;
        while (pos < limit && http_is_tchar((unsigned char)s[pos]))
            pos++;
        if (pos == limit)
            return more(limit, err);
        if (pos == name)
            return fail(err, HTTP_ERR_CHUNK_FRAMING);

        size_t after_name = pos;
        while (pos < limit && is_ows((unsigned char)s[pos]))
            pos++;
        if (pos == limit)
            return more(limit, err);
        if (s[pos] != '=') {
            pos = after_name; /* the loop's top decides what the blanks were for */
            continue;
        }
        pos++;
        while (pos < limit && is_ows((unsigned char)s[pos]))
            pos++;
        ssize_t r = parse_ext_value(s, limit, pos, err);
        if (r < 0)
            return r;
        pos = (size_t)r;
    }
}

void chunked_init(struct chunked_decoder *d)
{
    d->state = CHUNKED_SIZE_LINE;
    d->remaining = 0;
}

/*
 * One call runs the state machine over <in> until it has a span of data to
 * report, runs out of bytes, reaches the end of the body, or fails.
 *
 *     SIZE_LINE --size>0--> DATA --remaining==0--> DATA_CRLF --> SIZE_LINE
 *         |
 *         +--size==0--> TRAILERS --empty line--> FINISHED
 */
enum chunked_result chunked_decode(struct chunked_decoder *d, const char *in, size_t len,
                                   size_t *consumed, const char **data, size_t *data_len,
                                   enum http_error *err)
{
    size_t pos = 0;

    *consumed = 0;
    *data = NULL;
    *data_len = 0;
    *err = HTTP_ERR_NONE;

    /* Nothing to look at; also keeps a NULL <in> (an empty buffer) out of
     * pointer arithmetic. */
    if (len == 0 && d->state != CHUNKED_FINISHED && d->state != CHUNKED_FAILED)
        return CHUNKED_RESULT_NEED_MORE;

    for (;;) {
        switch (d->state) {
        case CHUNKED_SIZE_LINE: {
            uint64_t size = 0;
            ssize_t r = parse_size_line(in + pos, len - pos, &size, err);
            if (r == NEED_MORE)
                goto need_more;
            if (r < 0)
                goto failed;
            pos += (size_t)r;
            d->remaining = size;
            d->state = size ? CHUNKED_DATA : CHUNKED_TRAILERS;
            break;
        }

        case CHUNKED_DATA: {
            size_t avail = len - pos;
            if (avail == 0)
                goto need_more;
            size_t n = d->remaining < avail ? (size_t)d->remaining : avail;
            *data = in + pos;
            *data_len = n;
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = CHUNKED_DATA_CRLF;
            *consumed = pos + n;
            return CHUNKED_RESULT_DATA;
        }

        case CHUNKED_DATA_CRLF:
            if (len - pos < 1 || (in[pos] == '\r' && len - pos < 2))
                goto need_more;
            if (in[pos] != '\r' || in[pos + 1] != '\n') {
                *err = HTTP_ERR_CHUNK_FRAMING;
                goto failed;
            }
            pos += 2;
            d->state = CHUNKED_SIZE_LINE;
            break;

        case CHUNKED_TRAILERS: {
            size_t window = len - pos < CHUNKED_MAX_TRAILER ? len - pos : CHUNKED_MAX_TRAILER;
            enum http_error field_err;
            ssize_t r = http_parse_fields(in + pos, window, &field_err);
            if (r == NEED_MORE && window < CHUNKED_MAX_TRAILER)
                goto need_more;
            if (r < 0) {
                *err = HTTP_ERR_TRAILER;
                goto failed;
            }
            *data = in + pos;
            *data_len = (size_t)r - 2; /* without the final empty line */
            *consumed = pos + (size_t)r;
            d->state = CHUNKED_FINISHED;
            return CHUNKED_RESULT_DONE;
        }

        case CHUNKED_FINISHED:
            /* called again after the end: nothing more belongs to the body */
            *consumed = pos;
            return CHUNKED_RESULT_DONE;

        case CHUNKED_FAILED:
        default:
            /* the first error's reason is not kept; this one is generic */
            *err = HTTP_ERR_CHUNK_FRAMING;
            return CHUNKED_RESULT_ERROR;
        }
    }

need_more:
    *consumed = pos;
    return CHUNKED_RESULT_NEED_MORE;

failed:
    d->state = CHUNKED_FAILED;
    *consumed = pos;
    return CHUNKED_RESULT_ERROR;
}

/*
 * The fields a trailer must not carry (RFC 9110 6.5.1), by what they
 * control; Go's net/http refuses much the same set as trailers. Fields
 * meant for trailers (Content-Digest, Server-Timing, grpc-status) are not
 * among them, which is why this is a list and not "Content-*".
 */
static const char *const forbidden_trailers[] = {
    /* framing and the connection */
    "Connection", "Content-Length", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade",
    /* routing */
    "Host",
    /* request modifiers (and every "If-" conditional, below) */
    "Cache-Control", "Expect", "Max-Forwards", "Pragma", "Range",
    /* authentication and state */
    "Authentication-Info", "Authorization", "Cookie", "Proxy-Authenticate",
    "Proxy-Authentication-Info", "Proxy-Authorization", "Set-Cookie", "WWW-Authenticate",
    /* response controls */
    "Age", "Date", "Expires", "Location", "Retry-After", "Vary", "Warning",
    /* content processing */
    "Content-Disposition", "Content-Encoding", "Content-Location", "Content-Range",
    "Content-Type",
};

int chunked_trailer_allowed(const char *name, size_t len)
{
    if (len >= 3 && http_ci_eq(name, "If-", 3))
        return 0;
    for (size_t i = 0; i < sizeof forbidden_trailers / sizeof forbidden_trailers[0]; i++)
        if (strlen(forbidden_trailers[i]) == len && http_ci_eq(name, forbidden_trailers[i], len))
            return 0;
    return 1;
}
