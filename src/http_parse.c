/*
 * http_parse.c - strict HTTP/1.x head parser and framing rules (see
 * http_parse.h).
 *
 * Owns: the grammar of start lines and field lines (RFC 9112 2-5), the
 * body-length decision (RFC 9112 6), and the checks on Host (its value by
 * url.c's authority rules). Does not own:
 * the buffer (views point into the caller's bytes), the head-size cap (the
 * caller's), or what happens to a refused message (the relay's).
 *
 * Every scanner below walks left to right and stops at the first byte the
 * grammar does not allow there. The error it reports depends only on the
 * bytes up to that point, so a head that arrives in pieces gets the same
 * answer as one that arrives whole: -2 until either the head is complete or
 * a rule is broken.
 *
 * Why so strict: a proxy sits between two parsers. If it reads a message's
 * length one way (say, Content-Length) and the server another (say,
 * Transfer-Encoding, or the second of two Content-Lengths), the bytes one
 * counts as body the other reads as a new request: request smuggling. So
 * anything two reasonable parsers could read differently is refused with a
 * 400 and never forwarded.
 */
#include "http_parse.h"

#include <string.h>

#include "url.h"

/* RFC 9112 2.2 asks servers to skip "at least one" empty line before a
 * request line; a few cover clients that add CRLF after a POST body. A long
 * run of them is not a client bug, so it is refused. */
#define HTTP_MAX_LEADING_EMPTY_LINES 8

#define NEED_MORE (-2)

/* ---- character classes (ASCII only: never the C locale's isalpha) ---- */

/* One table lookup per byte instead of a chain of comparisons: the scanners
 * below run over every byte of every head. */
enum {
    C_TCHAR = 1, /* tchar (RFC 9110 5.6.2) */
    C_VCHAR = 2, /* VCHAR: 0x21..0x7e */
    C_FIELD = 4, /* field-vchar, SP and HTAB (RFC 9110 5.5); also reason bytes */
};

#define TCHAR (C_TCHAR | C_VCHAR | C_FIELD)
#define VCHAR (C_VCHAR | C_FIELD)
static const unsigned char char_class[256] = {
    ['\t'] = C_FIELD, [' '] = C_FIELD,
    /* VCHAR, the tchar among them marked TCHAR (in byte order) */
    ['!'] = TCHAR, ['"'] = VCHAR, ['#' ... '\''] = TCHAR, ['(' ... ')'] = VCHAR,
    ['*' ... '+'] = TCHAR, [','] = VCHAR, ['-' ... '.'] = TCHAR, ['/'] = VCHAR,
    ['0' ... '9'] = TCHAR, [':' ... '@'] = VCHAR, ['A' ... 'Z'] = TCHAR,
    ['[' ... ']'] = VCHAR, ['^' ... '`'] = TCHAR, ['a' ... 'z'] = TCHAR, ['{'] = VCHAR,
    ['|'] = TCHAR, ['}'] = VCHAR, ['~'] = TCHAR,
    [0x80 ... 0xff] = C_FIELD, /* obs-text */
};
#undef TCHAR
#undef VCHAR

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

static inline int is_tchar(unsigned char c) { return char_class[c] & C_TCHAR; }

int http_is_tchar(unsigned char c) { return is_tchar(c); }

static inline int is_vchar(unsigned char c) { return char_class[c] & C_VCHAR; }

static inline int is_field_byte(unsigned char c) { return char_class[c] & C_FIELD; }

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

/* ---- scanning helpers ---- */

static ssize_t fail(enum http_error *err, enum http_error why)
{
    *err = why;
    return -1;
}

/* The byte at <pos> is not allowed there. An LF is always "bare" (a valid
 * one is consumed together with its CR), anything else is reported as
 * <why>. */
static ssize_t unexpected(const char *buf, size_t pos, enum http_error *err,
                          enum http_error why)
{
    return fail(err, buf[pos] == '\n' ? HTTP_ERR_BARE_CR_LF : why);
}

/* A line may end at <pos>. Returns the offset past its CRLF, -2 if the bytes
 * stop before it, or -1: a CR without LF is bare, any other byte is <why>. */
static ssize_t line_end(const char *buf, size_t len, size_t pos, enum http_error *err,
                        enum http_error why)
{
    if (pos == len)
        return NEED_MORE;
    if (buf[pos] != '\r')
        return unexpected(buf, pos, err, why);
    if (pos + 1 == len)
        return NEED_MORE;
    if (buf[pos + 1] != '\n')
        return fail(err, HTTP_ERR_BARE_CR_LF);
    return (ssize_t)(pos + 2);
}

/* The offset in a word of its first byte flagged in <stop> (high bit set)
 * on a little-endian machine; elsewhere 0: the byte loop after finds it. */
static inline size_t first_flagged(uint64_t stop)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (size_t)__builtin_ctzll(stop) / 8;
#else
    return (void)stop, 0;
#endif
}

/* The end of a run of VCHAR (0x21..0x7e) starting at <pos>: a request
 * target, read eight bytes at a time as skip_field_bytes reads values
 * (below), going straight to the first byte outside the run on a
 * little-endian machine. Never reads at or past <len>. */
static size_t skip_vchars(const char *buf, size_t len, size_t pos)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;

    while (len - pos >= 8) {
        uint64_t x, stop;
        memcpy(&x, buf + pos, 8);
        /* a high bit left set: a byte below 0x21, or one of 0x7f or more
         * (x + 1 carries only out of a 0xff, itself flagged below any
         * byte it could wrongly flag) */
        stop = ((x - ones * 0x21) & ~x & highs) | ((x | (x + ones)) & highs);
        if (stop) {
            pos += first_flagged(stop);
            break;
        }
        pos += 8;
    }
    while (pos < len && is_vchar((unsigned char)buf[pos]))
        pos++;
    return pos;
}

/* "HTTP/" DIGIT "." DIGIT at <pos> (case-sensitive, RFC 9112 2.3). Returns
 * the offset after it, -2 or -1 with <why>. The major version is checked
 * by the caller once the whole line is known to be well formed, so that
 * "HTTP/2.0x" is a malformed line, not an unsupported version. */
static ssize_t parse_version(const char *buf, size_t len, size_t pos, int *major, int *minor,
                             enum http_error *err, enum http_error why)
{
    static const char pattern[] = "HTTP/0.0"; /* '0' marks a DIGIT */

    /* Nearly every message says exactly "HTTP/1.1" or "HTTP/1.0": one
     * 8-byte compare accepts those (what follows is checked by the caller,
     * so "HTTP/1.10" still fails there); anything else takes the byte walk,
     * which finds the first wrong byte. */
    if (len - pos >= 8) {
        uint64_t word, v10, v11;
        memcpy(&word, buf + pos, 8);
        memcpy(&v10, "HTTP/1.0", 8);
        memcpy(&v11, "HTTP/1.1", 8);
        if (word == v11 || word == v10) {
            *major = 1;
            *minor = word == v11;
            return (ssize_t)(pos + 8);
        }
    }
    for (size_t i = 0; i < sizeof(pattern) - 1; i++, pos++) {
        if (pos == len)
            return NEED_MORE;
        unsigned char c = (unsigned char)buf[pos];
        if (pattern[i] == '0' ? !is_digit(c) : c != (unsigned char)pattern[i])
            return unexpected(buf, pos, err, why);
    }
    *major = buf[pos - 3] - '0';
    *minor = buf[pos - 1] - '0';
    return (ssize_t)pos;
}

/* method SP request-target SP HTTP-version CRLF (RFC 9112 3). */
static ssize_t parse_request_line(const char *buf, size_t len, size_t pos,
                                  struct http_head *head, enum http_error *err)
{
    const enum http_error why = HTTP_ERR_REQUEST_LINE;
    size_t start = pos;

    while (pos < len && is_tchar((unsigned char)buf[pos]))
        pos++;
    if (pos == len)
        return NEED_MORE;
    if (pos == start || buf[pos] != ' ')
        return unexpected(buf, pos, err, why);
    head->method = buf + start;
    head->method_len = pos - start;

    start = ++pos;
    pos = skip_vchars(buf, len, pos);
    if (pos == len)
        return NEED_MORE;
    if (pos == start || buf[pos] != ' ')
        return unexpected(buf, pos, err, why);
    head->target = buf + start;
    head->target_len = pos - start;

    int major, minor;
    ssize_t r = parse_version(buf, len, pos + 1, &major, &minor, err, why);
    if (r < 0)
        return r;
    r = line_end(buf, len, (size_t)r, err, why);
    if (r < 0)
        return r;
    if (major != 1)
        return fail(err, HTTP_ERR_VERSION);
    head->version_minor = minor > 1 ? 1 : minor;
    return r;
}

/* HTTP-version SP 3DIGIT SP [reason-phrase] CRLF (RFC 9112 4). A missing
 * "SP reason" is accepted too: some servers send "HTTP/1.1 200" CRLF, and
 * the reason never affects framing, so tolerating it cannot be misread.
 * The three digits are 100 to 599 (RFC 9110 15: no class above 5xx says
 * what a 600 means, nor whether it has a body): a first digit past 5 is
 * refused at once, with its own error. */
static ssize_t parse_status_line(const char *buf, size_t len, size_t pos,
                                 struct http_head *head, enum http_error *err)
{
    const enum http_error why = HTTP_ERR_STATUS_LINE;
    int major, minor;

    ssize_t r = parse_version(buf, len, pos, &major, &minor, err, why);
    if (r < 0)
        return r;
    pos = (size_t)r;
    if (pos == len)
        return NEED_MORE;
    if (buf[pos] != ' ')
        return unexpected(buf, pos, err, why);
    pos++;

    int status = 0;
    for (int i = 0; i < 3; i++, pos++) {
        if (pos == len)
            return NEED_MORE;
        unsigned char c = (unsigned char)buf[pos];
        /* a leading 0 would make a status below 100 */
        if (!is_digit(c) || (i == 0 && c == '0'))
            return unexpected(buf, pos, err, why);
        if (i == 0 && c > '5')
            return fail(err, HTTP_ERR_STATUS_CODE);
        status = status * 10 + (c - '0');
    }

    if (pos == len)
        return NEED_MORE;
    size_t start = pos;
    if (buf[pos] == ' ') {
        start = ++pos;
        while (pos < len && is_field_byte((unsigned char)buf[pos]))
            pos++;
    }
    head->reason = buf + start;
    head->reason_len = pos - start;

    r = line_end(buf, len, pos, err, why);
    if (r < 0)
        return r;
    if (major != 1)
        return fail(err, HTTP_ERR_VERSION);
    head->status = status;
    head->version_minor = minor > 1 ? 1 : minor;
    return r;
}

/* Walks a comma-separated list (RFC 9110 5.6.1), yielding each element with
 * OWS trimmed. Empty elements are yielded too, so that callers which must
 * refuse them (Transfer-Encoding) can. An index plus a flag, rather than a
 * pointer, so the walk never forms an address past the value. */
struct list_walk {
    const char *s;
    size_t len;
    size_t pos;
    int done;
};

static void list_begin(struct list_walk *w, const char *s, size_t len)
{
    w->s = s;
    w->len = len;
    w->pos = 0;
    w->done = 0;
}

static int list_next(struct list_walk *w, const char **elem, size_t *elem_len)
{
    if (w->done)
        return 0;
    size_t start = w->pos, end = start;
    while (end < w->len && w->s[end] != ',')
        end++;
    if (end == w->len)
        w->done = 1;
    else
        w->pos = end + 1;
    while (start < end && is_ows((unsigned char)w->s[start]))
        start++;
    while (end > start && is_ows((unsigned char)w->s[end - 1]))
        end--;
    *elem = w->s + start;
    *elem_len = end - start;
    return 1;
}

/* ---- well-known field names ---- */

/*
 * Whether the <len> bytes at <s> spell <lit> (lower-case letters and "-")
 * in any case, a word at a time. OR-ing 0x20 into a byte turns only the
 * two cases of a letter into that lower-case letter, so it is applied
 * where <lit> has a letter (bit 0x40, which "-" lacks) and a "-" is
 * compared exactly: the answer is exact for any bytes, not only tokens.
 * The last word overlaps the one before it; <len> is a constant at every
 * call, so each compare folds to a few instructions.
 */
#define FOLD(bits)                                                                  \
    static inline uint##bits##_t fold##bits(const char *s, const char *lit)         \
    {                                                                               \
        uint##bits##_t x, l;                                                        \
        memcpy(&x, s, sizeof x);                                                    \
        memcpy(&l, lit, sizeof l);                                                  \
        return (uint##bits##_t)((x | ((l & (uint##bits##_t)0x4040404040404040u) >> 1)) ^ l); \
    }
FOLD(16)
FOLD(32)
FOLD(64)
#undef FOLD

static inline int name_is(const char *s, const char *lit, size_t len)
{
    if (len >= 8) {
        uint64_t diff = fold64(s + len - 8, lit + len - 8);
        for (size_t i = 0; i + 8 < len; i += 8)
            diff |= fold64(s + i, lit + i);
        return diff == 0;
    }
    if (len >= 4)
        return (fold32(s, lit) | fold32(s + len - 4, lit + len - 4)) == 0;
    return len >= 2 && (fold16(s, lit) | fold16(s + len - 2, lit + len - 2)) == 0;
}

enum http_field_id http_field_id(const char *name, size_t len)
{
    /* The length picks at most two candidates. */
#define IS(lit) (sizeof(lit) - 1 == len && name_is(name, lit, sizeof(lit) - 1))
    switch (len) {
    case 2:
        return IS("te") ? HTTP_FIELD_TE : HTTP_FIELD_OTHER;
    case 3:
        return IS("via") ? HTTP_FIELD_VIA : HTTP_FIELD_OTHER;
    case 4:
        return IS("host") ? HTTP_FIELD_HOST : HTTP_FIELD_OTHER;
    case 6:
        return IS("expect") ? HTTP_FIELD_EXPECT : HTTP_FIELD_OTHER;
    case 7:
        return IS("trailer")   ? HTTP_FIELD_TRAILER
               : IS("upgrade") ? HTTP_FIELD_UPGRADE
                               : HTTP_FIELD_OTHER;
    case 10:
        return IS("connection")   ? HTTP_FIELD_CONNECTION
               : IS("keep-alive") ? HTTP_FIELD_KEEP_ALIVE
                                  : HTTP_FIELD_OTHER;
    case 14:
        return IS("content-length") ? HTTP_FIELD_CONTENT_LENGTH : HTTP_FIELD_OTHER;
    case 16:
        return IS("proxy-connection") ? HTTP_FIELD_PROXY_CONNECTION : HTTP_FIELD_OTHER;
    case 17:
        return IS("transfer-encoding") ? HTTP_FIELD_TRANSFER_ENCODING : HTTP_FIELD_OTHER;
    case 18:
        return IS("proxy-authenticate") ? HTTP_FIELD_PROXY_AUTHENTICATE : HTTP_FIELD_OTHER;
    case 19:
        return IS("proxy-authorization") ? HTTP_FIELD_PROXY_AUTHORIZATION : HTTP_FIELD_OTHER;
    case 25:
        return IS("proxy-authentication-info") ? HTTP_FIELD_PROXY_AUTHENTICATION_INFO
                                               : HTTP_FIELD_OTHER;
    default:
        return HTTP_FIELD_OTHER;
    }
#undef IS
}

/* The end of a run of field bytes (is_field_byte) starting at <pos>. Values
 * make up most of a head, so they are read eight bytes at a time while
 * none of the eight is a control byte (HTAB included) or DEL; obs-text
 * passes, as in the byte loop. In the word that has one, the lowest
 * flagged byte is the first such byte (the tests below can only flag
 * wrongly above a true one), so on a little-endian machine the walk goes
 * straight to it; an HTAB there is a field byte and the walk goes on.
 * Never reads at or past <len>. */
static inline uint64_t field_word_stops(const char *p)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t x, del;

    memcpy(&x, p, 8);
    del = x ^ (ones * 0x7f); /* a DEL byte becomes zero */
    /* the high bit of a byte is left set by the subtraction only for bytes
     * below 0x20 (or zero in <del>); ~x keeps obs-text out */
    return ((x - ones * 0x20) & ~x & highs) | ((del - ones) & ~del & highs);
}

static inline size_t skip_field_bytes(const char *buf, size_t len, size_t pos)
{
    for (;;) {
        while (len - pos >= 8) {
            uint64_t stop = field_word_stops(buf + pos);
            if (stop) {
                pos += first_flagged(stop);
                break;
            }
            pos += 8;
        }
        if (pos == len || !is_field_byte((unsigned char)buf[pos]))
            return pos;
        pos++;
    }
}

/* The end of a run of tchar starting at <pos> (a field name), four bytes
 * per bounds check. Never reads at or past <len>. */
static inline size_t skip_tchars(const char *buf, size_t len, size_t pos)
{
    const unsigned char *u = (const unsigned char *)buf;

    while (len - pos >= 4) {
        if (!is_tchar(u[pos]))
            return pos;
        if (!is_tchar(u[pos + 1]))
            return pos + 1;
        if (!is_tchar(u[pos + 2]))
            return pos + 2;
        if (!is_tchar(u[pos + 3]))
            return pos + 3;
        pos += 4;
    }
    while (pos < len && is_tchar(u[pos]))
        pos++;
    return pos;
}

size_t http_token_span(const char *s, size_t len)
{
    return skip_tchars(s, len, 0);
}

size_t http_field_value_span(const char *s, size_t len)
{
    /* A whole string (a value from a script or built by the proxy), most
     * often all good: its last bytes are read as one word ending at <len>,
     * which overlaps the one before; only a word with a control byte or
     * DEL in it (an HTAB, or a byte to refuse) takes the walk. */
    if (len >= 8) {
        size_t pos = 0;
        for (; len - pos > 8; pos += 8)
            if (field_word_stops(s + pos))
                return skip_field_bytes(s, len, pos);
        if (!field_word_stops(s + len - 8))
            return len;
        return skip_field_bytes(s, len, pos);
    }
    return skip_field_bytes(s, len, 0);
}

/* field-name ":" OWS field-value OWS CRLF (RFC 9112 5) at <pos>, which is
 * not the start of an empty line. Fills <f>. */
static ssize_t parse_field_line(const char *buf, size_t len, size_t pos,
                                struct http_field *f, enum http_error *err)
{
    size_t start = pos;

    pos = skip_tchars(buf, len, pos);
    if (pos == len)
        return NEED_MORE;
    /* "Name :" is refused outright (RFC 9112 5.1): some servers strip the
     * space and some don't, which is how requests get smuggled. */
    if (pos == start || buf[pos] != ':')
        return unexpected(buf, pos, err, HTTP_ERR_FIELD_NAME);
    f->name = buf + start;
    f->name_len = pos - start;

    pos++;
    while (pos < len && is_ows((unsigned char)buf[pos]))
        pos++;
    start = pos;
    pos = skip_field_bytes(buf, len, pos);
    size_t end = pos;
    while (end > start && is_ows((unsigned char)buf[end - 1]))
        end--;
    f->value = buf + start;
    f->value_len = end - start;

    return line_end(buf, len, pos, err, HTTP_ERR_FIELD_VALUE);
}

/* Records in <head> the lengths of the elements of Connection field <f>. */
static void note_connection_lengths(struct http_head *head, const struct http_field *f)
{
    struct list_walk w;
    const char *elem;
    size_t elem_len;

    list_begin(&w, f->value, f->value_len);
    while (list_next(&w, &elem, &elem_len))
        head->connection_lengths |= (uint64_t)1 << (elem_len < 63 ? elem_len : 63);
}

/*
 * Field lines up to and including the empty line, from <pos>. With <head>
 * they are stored in its fields (at most <max>, then TOO_MANY_FIELDS), with
 * their ids and Connection's element lengths noted; without, they are only
 * checked. *<count> is the number of lines seen.
 */
static ssize_t parse_field_section(const char *buf, size_t len, size_t pos,
                                   struct http_head *head, size_t max, size_t *count,
                                   enum http_error *err)
{
    struct http_field *fields = head ? head->fields : NULL;

    *count = 0;
    for (;;) {
        if (pos == len)
            return NEED_MORE;
        unsigned char c = (unsigned char)buf[pos];
        if (c == '\r' || c == '\n')
            return line_end(buf, len, pos, err, HTTP_ERR_FIELD_NAME);
        /* obs-fold (RFC 9112 5.2), or whitespace before the first field
         * (RFC 9112 2.2): both would let a line hide inside another. */
        if (is_ows(c))
            return fail(err, HTTP_ERR_OBS_FOLD);

        struct http_field scratch;
        struct http_field *f = &scratch;
        if (fields) {
            if (*count == max)
                return fail(err, HTTP_ERR_TOO_MANY_FIELDS);
            f = &fields[*count];
        }
        ssize_t r = parse_field_line(buf, len, pos, f, err);
        if (r < 0)
            return r;
        if (head) {
            f->id = http_field_id(f->name, f->name_len);
            head->ids_seen |= 1u << f->id;
            if (f->id == HTTP_FIELD_CONNECTION)
                note_connection_lengths(head, f);
        }
        pos = (size_t)r;
        (*count)++;
    }
}

/* The caller's field limit, within the room the head has. */
static size_t field_limit(const struct http_head *head)
{
    if (head->field_limit == 0)
        return HTTP_MAX_FIELDS;
    return head->field_limit < HTTP_FIELDS_CAPACITY ? head->field_limit : HTTP_FIELDS_CAPACITY;
}

static void head_reset(struct http_head *head)
{
    head->method = NULL;
    head->method_len = 0;
    head->target = NULL;
    head->target_len = 0;
    head->status = 0;
    head->reason = NULL;
    head->reason_len = 0;
    head->version_minor = 0;
    head->field_count = 0;
    head->ids_seen = 0;
    head->connection_lengths = 0;
}

ssize_t http_parse_request(const char *buf, size_t len, struct http_head *head,
                           enum http_error *err)
{
    size_t pos = 0;
    int empty_lines = 0;

    *err = HTTP_ERR_NONE;
    head_reset(head);
    while (pos < len && (buf[pos] == '\r' || buf[pos] == '\n')) {
        if (empty_lines++ == HTTP_MAX_LEADING_EMPTY_LINES)
            return fail(err, HTTP_ERR_REQUEST_LINE);
        ssize_t r = line_end(buf, len, pos, err, HTTP_ERR_REQUEST_LINE);
        if (r < 0)
            return r;
        pos = (size_t)r;
    }

    ssize_t r = parse_request_line(buf, len, pos, head, err);
    if (r < 0)
        return r;
    return parse_field_section(buf, len, (size_t)r, head, field_limit(head),
                               &head->field_count, err);
}

ssize_t http_parse_response(const char *buf, size_t len, struct http_head *head,
                            enum http_error *err)
{
    *err = HTTP_ERR_NONE;
    head_reset(head);
    ssize_t r = parse_status_line(buf, len, 0, head, err);
    if (r < 0)
        return r;
    return parse_field_section(buf, len, (size_t)r, head, field_limit(head),
                               &head->field_count, err);
}

ssize_t http_parse_fields(const char *buf, size_t len, enum http_error *err)
{
    size_t count;

    *err = HTTP_ERR_NONE;
    return parse_field_section(buf, len, 0, NULL, 0, &count, err);
}

/* ---- field lookups ---- */

static int view_eq(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len != b_len)
        return 0;
    for (size_t i = 0; i < a_len; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

int http_ci_eq(const char *a, const char *b, size_t n)
{
    return view_eq(a, n, b, n);
}

int http_find_id(const struct http_head *head, enum http_field_id id, size_t from)
{
    if (!(head->ids_seen & (1u << id)))
        return -1;
    for (size_t i = from; i < head->field_count; i++)
        if (head->fields[i].id == id)
            return (int)i;
    return -1;
}

int http_list_has(const char *value, size_t value_len, const char *token, size_t token_len)
{
    struct list_walk w;
    const char *elem;
    size_t elem_len;

    list_begin(&w, value, value_len);
    while (list_next(&w, &elem, &elem_len))
        if (elem_len && view_eq(elem, elem_len, token, token_len))
            return 1;
    return 0;
}

int http_has_token_in(const struct http_head *head, enum http_field_id id, const char *token,
                      size_t token_len)
{
    for (int i = http_find_id(head, id, 0); i >= 0; i = http_find_id(head, id, (size_t)i + 1)) {
        const struct http_field *f = &head->fields[i];
        if (http_list_has(f->value, f->value_len, token, token_len))
            return 1;
    }
    return 0;
}

int http_listed_in_connection(const struct http_head *head, const struct http_field *f)
{
    for (int j = http_find_id(head, HTTP_FIELD_CONNECTION, 0); j >= 0;
         j = http_find_id(head, HTTP_FIELD_CONNECTION, (size_t)j + 1)) {
        const struct http_field *c = &head->fields[j];
        if (http_list_has(c->value, c->value_len, f->name, f->name_len))
            return 1;
    }
    return 0;
}

/* ---- framing (RFC 9112 6) ---- */

/* 1*DIGIT, at most 19 digits (so it cannot overflow) and at most
 * HTTP_MAX_BODY_LENGTH. No sign, no spaces, no "5, 5" list: RFC 9110 8.6
 * lets a recipient accept identical repeats, but a proxy that does is one
 * of two readers that may disagree. */
int http_parse_content_length(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 19)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > HTTP_MAX_BODY_LENGTH)
        return -1;
    *out = v;
    return 0;
}

/*
 * The rules shared by requests and responses. Transfer-Encoding wins only if
 * the combined list of all its fields is exactly one "chunked": any other
 * coding would have to be decoded to find the body's end, and a proxy that
 * passes it through lets the next hop guess. An HTTP/1.0 message has no
 * chunked coding at all (RFC 9112 6.1: its framing "MUST be treated as
 * faulty"), so Transfer-Encoding there is refused as malformed.
 */
static int body_framing(const struct http_head *head, int is_response, struct http_framing *out,
                        enum http_error *err)
{
    int te = http_find_id(head, HTTP_FIELD_TRANSFER_ENCODING, 0);
    int cl = http_find_id(head, HTTP_FIELD_CONTENT_LENGTH, 0);

    out->kind = is_response ? HTTP_BODY_CLOSE : HTTP_BODY_NONE;
    out->length = 0;

    if (te >= 0 && cl >= 0)
        return (int)fail(err, HTTP_ERR_CL_TE);

    if (te >= 0) {
        int chunked = 0, other = 0, empty = 0;
        for (int i = te; i >= 0; i = http_find_id(head, HTTP_FIELD_TRANSFER_ENCODING, (size_t)i + 1)) {
            struct list_walk w;
            const char *elem;
            size_t elem_len;
            list_begin(&w, head->fields[i].value, head->fields[i].value_len);
            while (list_next(&w, &elem, &elem_len)) {
                if (elem_len == 0)
                    empty++;
                else if (http_token_eq(elem, elem_len, "chunked"))
                    chunked++;
                else
                    other++;
            }
        }
        if (empty || chunked > 1 || head->version_minor == 0)
            return (int)fail(err, HTTP_ERR_TE_MALFORMED);
        if (other)
            return (int)fail(err, HTTP_ERR_TE_UNSUPPORTED);
        out->kind = HTTP_BODY_CHUNKED;
        return 0;
    }

    if (cl >= 0) {
        const struct http_field *f = &head->fields[cl];
        uint64_t length;
        if (http_find_id(head, HTTP_FIELD_CONTENT_LENGTH, (size_t)cl + 1) >= 0 ||
            http_parse_content_length(f->value, f->value_len, &length) < 0)
            return (int)fail(err, HTTP_ERR_CONTENT_LENGTH);
        /* A request with length 0 has no body; a response keeps its
         * explicit zero length, which must be forwarded as framing. */
        out->kind = (length || is_response) ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
        out->length = length;
    }
    return 0;
}

int http_request_framing(const struct http_head *head, struct http_framing *out,
                         enum http_error *err)
{
    *err = HTTP_ERR_NONE;
    if (body_framing(head, 0, out, err) < 0)
        return -1;

    /* RFC 9112 3.2: an HTTP/1.1 request needs exactly one Host; more than
     * one is refused in any version, since two readers may pick different
     * ones. */
    int host = http_find_id(head, HTTP_FIELD_HOST, 0);
    if (host < 0) {
        if (head->version_minor >= 1)
            return (int)fail(err, HTTP_ERR_HOST);
        return 0;
    }
    if (http_find_id(head, HTTP_FIELD_HOST, (size_t)host + 1) >= 0 ||
        url_host_field_valid(head->fields[host].value, head->fields[host].value_len) < 0)
        return (int)fail(err, HTTP_ERR_HOST);
    return 0;
}

/* A Content-Length of 0 gives HTTP_BODY_NONE here as for requests: either
 * way the response ends with its head. */
int http_response_framing(const struct http_head *head, const char *method, size_t method_len,
                          struct http_framing *out, enum http_error *err)
{
    *err = HTTP_ERR_NONE;
    /* methods are case-sensitive (RFC 9110 9.1): "head" is not HEAD */
    int is_head = method_len == 4 && memcmp(method, "HEAD", 4) == 0;
    if (is_head || (head->status >= 100 && head->status < 200) || head->status == 204 ||
        head->status == 304) {
        out->kind = HTTP_BODY_NONE;
        out->length = 0;
        return 0;
    }
    return body_framing(head, 1, out, err);
}
