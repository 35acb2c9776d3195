/*
 * base64.h - base64 (RFC 4648) in its two alphabets: the standard one,
 * with '=' padding (Basic credentials, the parent's Proxy-Authorization),
 * and the URL-safe one without padding (JWTs and other tokens in URLs).
 *
 * Decoding is strict: one text decodes to one byte string, so that two
 * spellings of the same credential cannot both pass a check that compares
 * text. Padding is required in the standard alphabet and refused in the
 * URL one, and the bits left over in the last character must be zero.
 */
#ifndef LUAPROXY_BASE64_H
#define LUAPROXY_BASE64_H

#include <stddef.h>

enum base64_alphabet {
    BASE64_STANDARD, /* A-Z a-z 0-9 + /, padded with '=' */
    BASE64_URL,      /* A-Z a-z 0-9 - _, no padding */
};

/* The length of the text base64_encode writes for <len> bytes (without a
 * NUL). */
size_t base64_encoded_len(size_t len, enum base64_alphabet alphabet);

/* Writes base64_encoded_len(len) characters of <in> to <out>, no NUL. */
void base64_encode(const unsigned char *in, size_t len, char *out,
                   enum base64_alphabet alphabet);

/* Decodes <len> characters of <in> into <out> (room for <out_len>
 * bytes; (len / 4 + 1) * 3 is always enough). Returns the number of
 * bytes, or -1 if the text is not base64 of that alphabet or does not
 * fit. Empty text is zero bytes. */
long base64_decode(const char *in, size_t len, unsigned char *out, size_t out_len,
                   enum base64_alphabet alphabet);

#endif
