/*
 * json_out.c - JSON output helpers (json_out.h).
 */
#include "json_out.h"

#include <math.h>
#include <stdint.h>

int json_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        /* overlong forms, surrogates and values past U+10FFFF */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return 0;
        i += n + 1;
    }
    return 1;
}

void json_string(struct buffer *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    int utf8 = json_utf8_valid(s, len);
    size_t run = 0;

    buffer_append(b, "\"", 1);
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

/* Encoded straight into the buffer's free space, one block at a time: a
 * body of megabytes is one HAR entry, which an export on the event loop
 * cannot split, so how fast this runs is how long everyone else waits. */
void json_base64(struct buffer *b, const char *s, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    enum { BLOCK = 3 * 16384 }; /* bytes in; 4 out for each 3 */
    const unsigned char *p = (const unsigned char *)s;
    size_t whole = len - len % 3, i = 0;

    buffer_append(b, "\"", 1);
    while (i < whole) {
        size_t n = whole - i < BLOCK ? whole - i : BLOCK;
        char *out = buffer_reserve(b, n / 3 * 4);
        if (!out)
            return; /* out of memory: as with any other append */
        for (size_t k = 0; k < n; k += 3, out += 4) {
            uint32_t v = (uint32_t)p[i + k] << 16 | (uint32_t)p[i + k + 1] << 8 | p[i + k + 2];
            out[0] = tab[v >> 18 & 63];
            out[1] = tab[v >> 12 & 63];
            out[2] = tab[v >> 6 & 63];
            out[3] = tab[v & 63];
        }
        buffer_commit(b, n / 3 * 4);
        i += n;
    }
    if (i < len) {
        /* one or two bytes left: padded with '=' */
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        char out[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63],
                       i + 1 < len ? tab[v >> 6 & 63] : '=', '='};
        buffer_append(b, out, 4);
    }
    buffer_append(b, "\"", 1);
}
