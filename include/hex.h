/*
 * hex.h - the value of one hexadecimal digit.
 *
 * Chunk sizes, percent-escapes and JSON's \u escapes all spell numbers in
 * hex; each parser checks its own grammar and asks here for the digits.
 */
#ifndef LUAPROXY_HEX_H
#define LUAPROXY_HEX_H

/* 0..15 for a hex digit of either case, -1 for any other byte. */
static inline int hex_digit_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
