/*
 * json_out.h - writing JSON into a buffer.
 *
 * Strings from the wire are arbitrary bytes: valid UTF-8 passes through
 * (control characters, quotes and backslashes escaped); anything else is
 * written byte by byte as \u00XX, so the output is always valid JSON.
 */
#ifndef LUAPROXY_JSON_OUT_H
#define LUAPROXY_JSON_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

void json_string(struct buffer *b, const char *s, size_t len);
static inline void json_cstring(struct buffer *b, const char *s)
{
    json_string(b, s, s ? strlen(s) : 0);
}
/* "key": (with a comma first unless <first>) */
void json_key(struct buffer *b, const char *key, int first);
/* A number; NaN and infinities (which JSON lacks) as null. */
void json_number(struct buffer *b, double v);
int json_utf8_valid(const char *s, size_t len);
/* The length of <s> without a multi-byte sequence its end cut short (a
 * capture kept only so many bytes of a text): the text up to its last
 * whole character. */
size_t json_utf8_uncut_length(const char *s, size_t len);
void json_base64(struct buffer *b, const char *s, size_t len);

/* ---- one long string in slices -----------------------------------------
 *
 * A body of megabytes is too long to write in one go on the event loop:
 * these write what json_string and json_base64 write, a slice at a time,
 * the same bytes whatever the slices. The quotes are the caller's.
 */

/* Whether bytes fed in slices of any size are UTF-8 as a whole. */
struct json_utf8 {
    uint32_t cp;   /* the code point so far */
    uint8_t need;  /* continuation bytes still to come */
    uint8_t count; /* continuation bytes of the sequence */
    uint8_t bad;
};
#define JSON_UTF8_INIT {0, 0, 0, 0}
void json_utf8_feed(struct json_utf8 *u, const char *s, size_t len);
int json_utf8_end(const struct json_utf8 *u);

/* <s> escaped as json_string escapes it within a string that is, or is
 * not, valid UTF-8 as a whole (<utf8>, from json_utf8_*): escaping is
 * byte by byte given that, so slices may be cut anywhere. */
void json_string_part(struct buffer *b, const char *s, size_t len, int utf8);

/* Base64 of slices: up to two bytes of a group wait for the next slice. */
struct json_base64 {
    unsigned char group[3];
    uint8_t held;
};
#define JSON_BASE64_INIT {{0, 0, 0}, 0}
void json_base64_part(struct buffer *b, struct json_base64 *st, const char *s, size_t len);
/* The last group, padded. */
void json_base64_end(struct buffer *b, struct json_base64 *st);

#endif
