/*
 * json_out.c - JSON output helpers (json_out.h).
 */
#include "json_out.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* A byte at a time, so that a slice may end anywhere: inside a sequence,
 * the state says what the next bytes must be. ASCII, the common case, is
 * passed over a word's worth at a time. */
void json_utf8_feed(struct json_utf8 *u, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len && !u->bad) {
        unsigned c;
        if (u->need == 0) {
            uint64_t w;
            while (len - i >= 8 && (memcpy(&w, p + i, 8), (w & 0x8080808080808080ull) == 0))
                i += 8;
            if (i == len)
                break;
        }
        c = p[i++];
        if (u->need == 0) {
            if (c < 0x80)
                continue;
            if ((c & 0xe0) == 0xc0) {
                u->need = u->count = 1;
                u->cp = c & 0x1f;
            } else if ((c & 0xf0) == 0xe0) {
                u->need = u->count = 2;
                u->cp = c & 0x0f;
            } else if ((c & 0xf8) == 0xf0) {
                u->need = u->count = 3;
                u->cp = c & 0x07;
            } else {
                u->bad = 1;
            }
            continue;
        }
        if ((c & 0xc0) != 0x80) {
            u->bad = 1;
            break;
        }
        u->cp = u->cp << 6 | (c & 0x3f);
        if (--u->need > 0)
            continue;
        /* overlong forms, surrogates and values past U+10FFFF */
        if ((u->count == 1 && u->cp < 0x80) || (u->count == 2 && u->cp < 0x800) ||
            (u->count == 3 && u->cp < 0x10000) || (u->cp >= 0xd800 && u->cp <= 0xdfff) ||
            u->cp > 0x10ffff)
            u->bad = 1;
    }
}

int json_utf8_end(const struct json_utf8 *u)
{
    return !u->bad && u->need == 0; /* a sequence cut short is not UTF-8 */
}

int json_utf8_valid(const char *s, size_t len)
{
    struct json_utf8 u = JSON_UTF8_INIT;
    json_utf8_feed(&u, s, len);
    return json_utf8_end(&u);
}

size_t json_utf8_uncut_length(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t back = 0;

    /* At most three continuation bytes end a sequence that is still open;
     * the byte before them says how long it was to be. */
    while (back < 3 && back < len && (p[len - 1 - back] & 0xc0) == 0x80)
        back++;
    if (back == len)
        return len;
    unsigned lead = p[len - 1 - back];
    size_t want = (lead & 0xe0) == 0xc0 ? 1 : (lead & 0xf0) == 0xe0 ? 2 : (lead & 0xf8) == 0xf0 ? 3 : 0;
    return want > back ? len - 1 - back : len;
}

void json_string_part(struct buffer *b, const char *s, size_t len, int utf8)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f && (c < 0x80 || utf8))
            continue;
        buffer_append(b, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            buffer_append(b, esc, 2);
        } else if (c == '\n') {
            buffer_append(b, "\\n", 2);
        } else if (c == '\r') {
            buffer_append(b, "\\r", 2);
        } else if (c == '\t') {
            buffer_append(b, "\\t", 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buffer_append(b, esc, 6);
        }
    }
    buffer_append(b, s + run, len - run);
}

void json_string(struct buffer *b, const char *s, size_t len)
{
    buffer_append(b, "\"", 1);
    json_string_part(b, s, len, json_utf8_valid(s, len));
    buffer_append(b, "\"", 1);
}

void json_key(struct buffer *b, const char *key, int first)
{
    if (!first)
        buffer_append(b, ",", 1);
    json_cstring(b, key);
    buffer_append(b, ":", 1);
}

void json_number(struct buffer *b, double v)
{
    if (isnan(v) || isinf(v))
        buffer_append_str(b, "null");
    else if (v == (double)(int64_t)v && fabs(v) < 9e15)
        buffer_printf(b, "%lld", (long long)v);
    else
        buffer_printf(b, "%.3f", v);
}

static const char b64_tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes the whole groups of three in <len> bytes straight into the
 * buffer's free space, one block at a time (a body of megabytes is
 * encoded on the event loop, so how fast this runs is how long everyone
 * else waits). Returns the bytes used. */
static size_t base64_groups(struct buffer *b, const unsigned char *p, size_t len)
{
    enum { BLOCK = 3 * 16384 }; /* bytes in; 4 out for each 3 */
    size_t whole = len - len % 3, i = 0;

    while (i < whole) {
        size_t n = whole - i < BLOCK ? whole - i : BLOCK;
        char *out = buffer_reserve(b, n / 3 * 4);
        if (!out)
            return whole; /* out of memory: as with any other append */
        for (size_t k = 0; k < n; k += 3, out += 4) {
            uint32_t v = (uint32_t)p[i + k] << 16 | (uint32_t)p[i + k + 1] << 8 | p[i + k + 2];
            out[0] = b64_tab[v >> 18 & 63];
            out[1] = b64_tab[v >> 12 & 63];
            out[2] = b64_tab[v >> 6 & 63];
            out[3] = b64_tab[v & 63];
        }
        buffer_commit(b, n / 3 * 4);
        i += n;
    }
    return whole;
}

void json_base64_part(struct buffer *b, struct json_base64 *st, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t used;

    /* A group begun by the slice before is finished first. */
    while (st->held > 0 && st->held < 3 && len > 0) {
        st->group[st->held++] = *p++;
        len--;
    }
    if (st->held == 3) {
        base64_groups(b, st->group, 3);
        st->held = 0;
    }
    if (st->held > 0)
        return; /* still short of a group: len is 0 */
    used = base64_groups(b, p, len);
    while (used < len)
        st->group[st->held++] = p[used++];
}

void json_base64_end(struct buffer *b, struct json_base64 *st)
{
    if (st->held > 0) {
        /* one or two bytes left: padded with '=' */
        uint32_t v = (uint32_t)st->group[0] << 16 |
                     (st->held > 1 ? (uint32_t)st->group[1] << 8 : 0);
        char out[4] = {b64_tab[v >> 18 & 63], b64_tab[v >> 12 & 63],
                       st->held > 1 ? b64_tab[v >> 6 & 63] : '=', '='};
        buffer_append(b, out, 4);
    }
    st->held = 0;
}

void json_base64(struct buffer *b, const char *s, size_t len)
{
    struct json_base64 st = JSON_BASE64_INIT;
    buffer_append(b, "\"", 1);
    json_base64_part(b, &st, s, len);
    json_base64_end(b, &st);
    buffer_append(b, "\"", 1);
}
