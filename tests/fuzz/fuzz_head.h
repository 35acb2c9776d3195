/*
 * fuzz_head.h - invariants shared by the request and response head targets.
 *
 * Checked for every head the parser accepts:
 *   - the size is at most the input, and every view lies inside the head;
 *   - names are non-empty tokens, values hold no CR/LF/NUL/control byte and
 *     no leading or trailing blank;
 *   - the parse is the same whatever prefix of the bytes has arrived: a
 *     prefix shorter than the head gives -2, a longer one the same size, and
 *     a rejected input is rejected with the same reason once enough of it is
 *     there (this is what lets the relay parse a head that arrives in pieces);
 *   - re-serialising the head canonically and parsing it again gives the
 *     same head, and the framing functions give the same answer for both;
 *   - the framing answer agrees with an independent reading of the
 *     Content-Length / Transfer-Encoding fields (the smuggling rules).
 */
#ifndef LUAPROXY_FUZZ_HEAD_H
#define LUAPROXY_FUZZ_HEAD_H

#include "fuzz_util.h"
#include "http_parse.h"

typedef ssize_t (*fuzz_head_parser)(const char *, size_t, struct http_head *, enum http_error *);

static inline int fuzz_is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static inline int fuzz_is_blank(unsigned char c) { return c == ' ' || c == '\t'; }

/* field-vchar, SP, HTAB or obs-text: what a value or reason may hold */
static inline int fuzz_is_field_byte(unsigned char c)
{
    return fuzz_is_blank(c) || (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

static inline int fuzz_eq_nocase(const char *s, size_t len, const char *word)
{
    if (strlen(word) != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)word[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a + 32);
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b + 32);
        if (a != b)
            return 0;
    }
    return 1;
}

static inline size_t fuzz_count_fields(const struct http_head *h, const char *name, size_t *first)
{
    size_t n = 0;
    for (size_t i = 0; i < h->field_count; i++)
        if (fuzz_eq_nocase(h->fields[i].name, h->fields[i].name_len, name)) {
            if (n++ == 0 && first)
                *first = i;
        }
    return n;
}

/* Views and byte classes of the fields of a head accepted with size <n>. */
static inline void fuzz_check_fields(const struct http_head *h, const char *buf, size_t n)
{
    FUZZ_CHECK(h->field_count <= HTTP_MAX_FIELDS, "field_count %zu", h->field_count);
    for (size_t i = 0; i < h->field_count; i++) {
        const struct http_field *f = &h->fields[i];
        FUZZ_CHECK(fuzz_inside(f->name, f->name_len, buf, n), "field %zu name outside head", i);
        FUZZ_CHECK(fuzz_inside(f->value, f->value_len, buf, n), "field %zu value outside head", i);
        FUZZ_CHECK(f->name_len > 0, "field %zu has an empty name", i);
        for (size_t k = 0; k < f->name_len; k++)
            FUZZ_CHECK(fuzz_is_tchar((unsigned char)f->name[k]), "field %zu name byte 0x%02x", i,
                       (unsigned char)f->name[k]);
        for (size_t k = 0; k < f->value_len; k++)
            FUZZ_CHECK(fuzz_is_field_byte((unsigned char)f->value[k]),
                       "field %zu value byte 0x%02x", i, (unsigned char)f->value[k]);
        if (f->value_len) {
            FUZZ_CHECK(!fuzz_is_blank((unsigned char)f->value[0]) &&
                           !fuzz_is_blank((unsigned char)f->value[f->value_len - 1]),
                       "field %zu value not trimmed", i);
        }
    }
}

static inline void fuzz_put_fields(struct fuzz_str *b, const struct http_head *h)
{
    for (size_t i = 0; i < h->field_count; i++) {
        fuzz_put(b, h->fields[i].name, h->fields[i].name_len);
        fuzz_puts(b, ": ");
        fuzz_put(b, h->fields[i].value, h->fields[i].value_len);
        fuzz_puts(b, "\r\n");
    }
    fuzz_puts(b, "\r\n");
}

static inline void fuzz_same_head(const struct http_head *a, const struct http_head *b)
{
    FUZZ_CHECK(fuzz_view_eq(a->method, a->method_len, b->method, b->method_len), "method differs");
    FUZZ_CHECK(fuzz_view_eq(a->target, a->target_len, b->target, b->target_len), "target differs");
    FUZZ_CHECK(fuzz_view_eq(a->reason, a->reason_len, b->reason, b->reason_len), "reason differs");
    FUZZ_CHECK(a->status == b->status, "status %d vs %d", a->status, b->status);
    FUZZ_CHECK(a->version_minor == b->version_minor, "version 1.%d vs 1.%d", a->version_minor,
               b->version_minor);
    FUZZ_CHECK(a->field_count == b->field_count, "field count %zu vs %zu", a->field_count,
               b->field_count);
    for (size_t i = 0; i < a->field_count; i++) {
        const struct http_field *x = &a->fields[i], *y = &b->fields[i];
        FUZZ_CHECK(fuzz_view_eq(x->name, x->name_len, y->name, y->name_len), "name %zu differs", i);
        FUZZ_CHECK(fuzz_view_eq(x->value, x->value_len, y->value, y->value_len),
                   "value %zu differs", i);
    }
}

/*
 * Parses <data>[0, <k>) from its own exact-size copy and checks the answer
 * against the whole input's (<full>, <full_err>): the parser must say the
 * same thing however much of the input has arrived.
 */
static inline void fuzz_check_prefix(fuzz_head_parser parse, const uint8_t *data, size_t k,
                                     ssize_t full, enum http_error full_err)
{
    struct http_head *h = calloc(1, sizeof(*h));
    if (h == NULL)
        abort();
    char *p = fuzz_dup(data, k);
    enum http_error err;
    ssize_t r = parse(p, k, h, &err);

    if (full >= 0 && k < (size_t)full)
        FUZZ_CHECK(r == -2, "prefix %zu of a head of %zd gave %zd (err %d)", k, full, r, err);
    else if (full >= 0)
        FUZZ_CHECK(r == full, "prefix %zu containing a head of %zd gave %zd", k, full, r);
    else if (full == -2)
        FUZZ_CHECK(r == -2, "prefix %zu of an incomplete input gave %zd (err %d)", k, r, err);
    else
        FUZZ_CHECK(r == -2 || (r == -1 && err == full_err),
                   "prefix %zu of an input rejected with err %d gave %zd (err %d)", k,
                   full_err, r, err);
    free(p);
    free(h);
}

/* Prefix lengths to try: all of them for short inputs, otherwise those
 * around the head's end and a few spread over the input. */
static inline void fuzz_check_prefixes(fuzz_head_parser parse, const uint8_t *data, size_t len,
                                       ssize_t full, enum http_error full_err)
{
    if (len <= 256) {
        for (size_t k = 0; k < len; k++)
            fuzz_check_prefix(parse, data, k, full, full_err);
        return;
    }
    size_t picks[16];
    size_t n = 0;
    picks[n++] = 0;
    picks[n++] = 1;
    picks[n++] = len / 2;
    picks[n++] = len - 1;
    picks[n++] = len / 3;
    if (full > 0) {
        for (size_t d = 1; d <= 4; d++)
            if ((size_t)full >= d)
                picks[n++] = (size_t)full - d;
        picks[n++] = (size_t)full;
    }
    uint32_t x = 2166136261u;
    for (size_t i = 0; i < len; i++)
        x = (x ^ data[i]) * 16777619u;
    for (int i = 0; i < 4; i++) {
        picks[n++] = x % len;
        x = x * 1103515245u + 12345u;
    }
    for (size_t i = 0; i < n; i++)
        if (picks[i] < len)
            fuzz_check_prefix(parse, data, picks[i], full, full_err);
}

/* Whether <s>[0, <len>) is 1*DIGIT and its value (saturated). */
static inline int fuzz_digits(const char *s, size_t len, uint64_t *v)
{
    *v = 0;
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        if (*v <= (UINT64_MAX - 9) / 10)
            *v = *v * 10 + (uint64_t)(s[i] - '0');
        else
            *v = UINT64_MAX;
    }
    return 1;
}

/* Whether all Transfer-Encoding fields together list exactly one element,
 * and it is "chunked" (an independent reading of RFC 9112 6.1). */
static inline int fuzz_te_is_just_chunked(const struct http_head *h)
{
    size_t chunked = 0, others = 0;
    for (size_t i = 0; i < h->field_count; i++) {
        const struct http_field *f = &h->fields[i];
        if (!fuzz_eq_nocase(f->name, f->name_len, "Transfer-Encoding"))
            continue;
        size_t s = 0;
        for (;;) {
            size_t e = s;
            while (e < f->value_len && f->value[e] != ',')
                e++;
            size_t a = s, z = e;
            while (a < z && fuzz_is_blank((unsigned char)f->value[a]))
                a++;
            while (z > a && fuzz_is_blank((unsigned char)f->value[z - 1]))
                z--;
            if (fuzz_eq_nocase(f->value + a, z - a, "chunked"))
                chunked++;
            else
                others++; /* includes empty elements */
            if (e == f->value_len)
                break;
            s = e + 1;
        }
    }
    return chunked == 1 && others == 0;
}

/*
 * What a framing answer must agree with, whatever the fields say:
 *   CL and TE together, or CL twice, is never accepted;
 *   CHUNKED needs TE to be exactly "chunked", no CL, HTTP/1.1;
 *   LENGTH needs no TE and exactly one CL of digits equal to <length>
 *   (zero only for responses, which pass an explicit zero on);
 *   NONE (outside the no-body cases) is a request with no TE and CL absent
 *   or zero;
 *   CLOSE only for responses, with neither field.
 * <no_body_case> is set for responses whose body is empty by rule (HEAD,
 * 1xx, 204, 304), where the fields do not matter.
 */
static inline void fuzz_check_framing(const struct http_head *h, int rc,
                                      const struct http_framing *fr, enum http_error err,
                                      int is_response, int no_body_case)
{
    size_t cl_at = 0;
    size_t te = fuzz_count_fields(h, "Transfer-Encoding", NULL);
    size_t cl = fuzz_count_fields(h, "Content-Length", &cl_at);

    if (rc != 0) {
        FUZZ_CHECK(rc == -1, "framing returned %d", rc);
        FUZZ_CHECK(err == HTTP_ERR_CL_TE || err == HTTP_ERR_CONTENT_LENGTH ||
                       err == HTTP_ERR_TE_UNSUPPORTED || err == HTTP_ERR_TE_MALFORMED ||
                       (!is_response && err == HTTP_ERR_HOST),
                   "framing error %d", err);
        FUZZ_CHECK(!no_body_case, "framing refused a message that has no body by rule");
        return;
    }
    FUZZ_CHECK(err == HTTP_ERR_NONE, "framing accepted with err %d", err);
    if (no_body_case) {
        FUZZ_CHECK(fr->kind == HTTP_BODY_NONE, "kind %d for a body-less response", fr->kind);
        return;
    }
    FUZZ_CHECK(!(te && cl), "CL and TE together accepted as kind %d", fr->kind);
    FUZZ_CHECK(cl <= 1, "%zu Content-Length fields accepted", cl);

    uint64_t v;
    switch (fr->kind) {
    case HTTP_BODY_CHUNKED:
        FUZZ_CHECK(cl == 0, "CHUNKED with a Content-Length");
        FUZZ_CHECK(te > 0 && fuzz_te_is_just_chunked(h),
                   "CHUNKED but Transfer-Encoding is not exactly \"chunked\"");
        FUZZ_CHECK(h->version_minor == 1, "CHUNKED in HTTP/1.0");
        break;
    case HTTP_BODY_LENGTH:
        FUZZ_CHECK(te == 0 && cl == 1, "LENGTH with te=%zu cl=%zu", te, cl);
        FUZZ_CHECK(fuzz_digits(h->fields[cl_at].value, h->fields[cl_at].value_len, &v),
                   "LENGTH from a Content-Length that is not all digits");
        FUZZ_CHECK(v == fr->length && (v > 0 || is_response) && v <= HTTP_MAX_BODY_LENGTH,
                   "LENGTH %llu from a Content-Length of %llu", (unsigned long long)fr->length,
                   (unsigned long long)v);
        break;
    case HTTP_BODY_NONE:
        FUZZ_CHECK(!is_response, "NONE for a response that may have a body");
        FUZZ_CHECK(te == 0, "NONE with a Transfer-Encoding");
        if (cl)
            FUZZ_CHECK(fuzz_digits(h->fields[cl_at].value, h->fields[cl_at].value_len, &v) &&
                           v == 0,
                       "NONE with a non-zero Content-Length");
        break;
    case HTTP_BODY_CLOSE:
        FUZZ_CHECK(is_response, "CLOSE for a request");
        FUZZ_CHECK(te == 0 && cl == 0, "CLOSE with te=%zu cl=%zu", te, cl);
        break;
    default:
        FUZZ_CHECK(0, "unknown body kind %d", fr->kind);
    }
}

/* Whether <name> is an element of some Connection field, read here without
 * the parser's shortcuts: split on commas, blanks trimmed, compared byte by
 * byte ignoring ASCII case. */
static inline int fuzz_listed_in_connection(const struct http_head *h, const char *name,
                                            size_t len)
{
    for (size_t j = 0; j < h->field_count; j++) {
        const struct http_field *c = &h->fields[j];
        if (!fuzz_eq_nocase(c->name, c->name_len, "Connection"))
            continue;
        size_t start = 0;
        while (start <= c->value_len) {
            size_t end = start;
            while (end < c->value_len && c->value[end] != ',')
                end++;
            size_t a = start, b = end;
            while (a < b && fuzz_is_blank((unsigned char)c->value[a]))
                a++;
            while (b > a && fuzz_is_blank((unsigned char)c->value[b - 1]))
                b--;
            if (b - a == len && len > 0) {
                size_t i = 0;
                for (; i < len; i++) {
                    unsigned char x = (unsigned char)c->value[a + i], y = (unsigned char)name[i];
                    if (x >= 'A' && x <= 'Z')
                        x = (unsigned char)(x + 32);
                    if (y >= 'A' && y <= 'Z')
                        y = (unsigned char)(y + 32);
                    if (x != y)
                        break;
                }
                if (i == len)
                    return 1;
            }
            start = end + 1;
        }
    }
    return 0;
}

/* The list helpers must never let a client strip the fields that frame and
 * route a message, and must always treat the framing field as hop-by-hop.
 * The parser's field ids and Connection summary are shortcuts: every
 * lookup and every hop-by-hop answer must be the one a plain reading of
 * the names and lists gives. */
static inline void fuzz_check_hop_by_hop(const struct http_head *h)
{
    static const char *const always[] = {
        "Connection", "Proxy-Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding",
        "Upgrade", "Proxy-Authorization", "Proxy-Authenticate",
    };
    static const char *const looked_up[] = {
        "Connection", "Proxy-Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding",
        "Upgrade", "Proxy-Authorization", "Proxy-Authenticate", "Content-Length", "Host", "Via",
        "Expect", "Referer", "X-A",
    };

    for (size_t i = 0; i <= h->field_count; i++) {
        int hop = http_is_hop_by_hop(h, i);
        if (i == h->field_count) {
            FUZZ_CHECK(hop == 0, "index past the fields is hop-by-hop");
            break;
        }
        const struct http_field *f = &h->fields[i];
        int framing_or_route = fuzz_eq_nocase(f->name, f->name_len, "Content-Length") ||
                               fuzz_eq_nocase(f->name, f->name_len, "Host");
        if (framing_or_route)
            FUZZ_CHECK(!hop, "field %zu (CL/Host) reported hop-by-hop", i);
        if (fuzz_eq_nocase(f->name, f->name_len, "Transfer-Encoding") ||
            fuzz_eq_nocase(f->name, f->name_len, "Connection"))
            FUZZ_CHECK(hop, "field %zu (TE/Connection) not reported hop-by-hop", i);
        int want = 0;
        for (size_t k = 0; k < sizeof always / sizeof always[0]; k++)
            want |= fuzz_eq_nocase(f->name, f->name_len, always[k]);
        if (!want && !framing_or_route)
            want = fuzz_listed_in_connection(h, f->name, f->name_len);
        FUZZ_CHECK(hop == want, "field %zu: hop-by-hop %d, a plain reading says %d", i, hop,
                   want);
    }
    for (size_t k = 0; k < sizeof looked_up / sizeof looked_up[0]; k++) {
        size_t first = 0;
        size_t count = fuzz_count_fields(h, looked_up[k], &first);
        int got = http_find_field(h, looked_up[k], 0);
        FUZZ_CHECK(count ? got == (int)first : got == -1, "find_field(%s) gave %d", looked_up[k],
                   got);
        if (count > 1)
            FUZZ_CHECK(http_find_field(h, looked_up[k], first + 1) > got,
                       "find_field(%s) from the next index", looked_up[k]);
    }
    (void)http_has_token(h, "Connection", "close");
}

#endif
