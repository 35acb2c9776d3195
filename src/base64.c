/*
 * base64.c - base64 encoding and strict decoding (RFC 4648, sections 4
 * and 5). See base64.h for what "strict" means here.
 */
#include "base64.h"

static const char standard_digits[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_digits[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t base64_encoded_len(size_t len, enum base64_alphabet alphabet)
{
    if (alphabet == BASE64_STANDARD)
        return (len + 2) / 3 * 4;
    /* Unpadded: 2 characters for a last byte, 3 for two. */
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

void base64_encode(const unsigned char *in, size_t len, char *out,
                   enum base64_alphabet alphabet)
{
    const char *digits = alphabet == BASE64_URL ? url_digits : standard_digits;
    size_t i = 0;

    for (; i + 3 <= len; i += 3) {
        unsigned long v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
        *out++ = digits[v >> 18 & 63];
        *out++ = digits[v >> 12 & 63];
        *out++ = digits[v >> 6 & 63];
        *out++ = digits[v & 63];
    }
    if (i < len) {
        unsigned long v = (unsigned long)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned long)in[i + 1] << 8;
        *out++ = digits[v >> 18 & 63];
        *out++ = digits[v >> 12 & 63];
        if (i + 1 < len)
            *out++ = digits[v >> 6 & 63];
        if (alphabet == BASE64_STANDARD) {
            if (i + 1 >= len)
                *out++ = '=';
            *out++ = '=';
        }
    }
}

/* The value of one digit of <alphabet>, or -1. */
static int digit_value(unsigned char c, enum base64_alphabet alphabet)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (alphabet == BASE64_URL ? '-' : '+'))
        return 62;
    if (c == (alphabet == BASE64_URL ? '_' : '/'))
        return 63;
    return -1;
}

long base64_decode(const char *in, size_t len, unsigned char *out, size_t out_len,
                   enum base64_alphabet alphabet)
{
    size_t digits = len, n = 0;
    unsigned long acc = 0;
    int bits = 0;

    if (alphabet == BASE64_STANDARD) {
        /* Whole groups of four, the last with at most two '='. */
        if (len % 4 != 0)
            return -1;
        if (digits > 0 && in[digits - 1] == '=')
            digits--;
        if (digits > 0 && in[digits - 1] == '=')
            digits--;
    }
    /* One character left over holds 6 bits: not even one byte. */
    if (digits % 4 == 1)
        return -1;
    for (size_t i = 0; i < digits; i++) {
        int v = digit_value((unsigned char)in[i], alphabet);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (unsigned long)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == out_len)
                return -1;
            out[n++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    /* The bits below the last byte are padding: anything but zero would
     * make a second spelling of the same bytes. */
    if (bits > 0 && (acc & ((1ul << bits) - 1)) != 0)
        return -1;
    return (long)n;
}
