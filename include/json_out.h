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
void json_base64(struct buffer *b, const char *s, size_t len);

#endif
