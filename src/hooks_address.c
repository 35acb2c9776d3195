/*
 * hooks_address.c - proxy.canonical_host and proxy.ip_prefix: one
 * spelling per host, so that a script's tables of hosts and clients match
 * however a request wrote the address.
 *
 *   proxy.canonical_host(host) -> text, kind ("ipv4", "ipv6" or "name"),
 *                                 or nil and a reason
 *   proxy.ip_prefix(addr, bits [, bits6]) -> "network/bits", or nil and a
 *                                 reason
 *
 * An IPv4 address is what the proxy connects to as one: four decimal
 * parts of at most 255, leading zeros read as decimal, so 127.000.0.01 is
 * 127.0.0.1. Other spellings that some resolvers take as numbers (127.1,
 * 0x7f.0.0.1, 2130706433) stay names here, as the proxy looks them up as
 * names. An IPv6 address (with or without brackets) is written as RFC
 * 5952 says, and one that maps an IPv4 address is that IPv4 address. A
 * name is lowered and loses its trailing dots.
 */
#include "hooks_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* Reads <text> (<len> bytes) as four decimal parts of at most 255 into
 * <out>. Returns 1, or 0 if it is not such an address. */
static int parse_ipv4(const char *text, size_t len, unsigned char out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        unsigned value = 0;
        size_t digits = 0;
        if (part > 0) {
            if (i >= len || text[i] != '.')
                return 0;
            i++;
        }
        for (; i < len && text[i] >= '0' && text[i] <= '9'; i++, digits++) {
            value = value * 10 + (unsigned)(text[i] - '0');
            if (value > 255)
                return 0;
        }
        if (digits == 0)
            return 0;
        out[part] = (unsigned char)value;
    }
    return i == len;
}

/* Reads <text> as an IPv6 address, in brackets or not. */
static int parse_ipv6(const char *text, size_t len, struct in6_addr *out)
{
    char copy[INET6_ADDRSTRLEN + 2];
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof copy || memchr(text, '\0', len))
        return 0;
    memcpy(copy, text, len);
    copy[len] = '\0';
    return inet_pton(AF_INET6, copy, out) == 1;
}

/* The address in <text>: AF_INET with its 4 bytes in <v4>, AF_INET6 with
 * <v6>, or 0 if it is neither. An IPv4-mapped IPv6 address is AF_INET. */
static int parse_address(const char *text, size_t len, unsigned char v4[4],
                         struct in6_addr *v6)
{
    if (parse_ipv4(text, len, v4))
        return AF_INET;
    if (!parse_ipv6(text, len, v6))
        return 0;
    if (IN6_IS_ADDR_V4MAPPED(v6)) {
        memcpy(v4, v6->s6_addr + 12, 4);
        return AF_INET;
    }
    return AF_INET6;
}

static int push_address(lua_State *L, int family, const void *addr)
{
    char text[INET6_ADDRSTRLEN];
    inet_ntop(family, addr, text, sizeof text);
    lua_pushstring(L, text);
    return 1;
}

static int canonical_host(lua_State *L)
{
    size_t len;
    const char *host = hooks_string_arg(L, 1, "proxy.canonical_host needs a string", &len);
    unsigned char v4[4];
    struct in6_addr v6;
    luaL_Buffer name;

    switch (parse_address(host, len, v4, &v6)) {
    case AF_INET:
        push_address(L, AF_INET, v4);
        lua_pushliteral(L, "ipv4");
        return 2;
    case AF_INET6:
        push_address(L, AF_INET6, &v6);
        lua_pushliteral(L, "ipv6");
        return 2;
    }
    if (len > 0 && host[0] == '[') {
        lua_pushnil(L);
        lua_pushliteral(L, "not an IPv6 address in brackets");
        return 2;
    }
    while (len > 0 && host[len - 1] == '.')
        len--;
    if (len == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "an empty host");
        return 2;
    }
    luaL_buffinit(L, &name);
    char *p = luaL_prepbuffsize(&name, len);
    for (size_t i = 0; i < len; i++)
        p[i] = host[i] >= 'A' && host[i] <= 'Z' ? (char)(host[i] - 'A' + 'a') : host[i];
    luaL_addsize(&name, len);
    luaL_pushresult(&name);
    lua_pushliteral(L, "name");
    return 2;
}

/* Clears every bit of <bytes> (<size> bytes) past the first <bits>. */
static void keep_bits(unsigned char *bytes, size_t size, unsigned bits)
{
    for (size_t i = 0; i < size; i++) {
        if (bits >= 8) {
            bits -= 8;
            continue;
        }
        bytes[i] &= (unsigned char)(0xff00u >> bits);
        bits = 0;
    }
}

static int ip_prefix(lua_State *L)
{
    size_t len;
    const char *addr = hooks_string_arg(L, 1, "proxy.ip_prefix needs a string", &len);
    lua_Integer bits = luaL_checkinteger(L, 2);
    lua_Integer bits6 = luaL_optinteger(L, 3, bits);
    unsigned char v4[4];
    struct in6_addr v6;
    int family = parse_address(addr, len, v4, &v6);

    if (family == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "not an IP address");
        return 2;
    }
    if (family == AF_INET) {
        if (bits < 0 || bits > 32)
            return luaL_error(L, "proxy.ip_prefix: an IPv4 prefix is 0 to 32 bits, not %I",
                              bits);
        keep_bits(v4, sizeof v4, (unsigned)bits);
        push_address(L, AF_INET, v4);
        lua_pushfstring(L, "/%I", bits);
    } else {
        if (bits6 < 0 || bits6 > 128)
            return luaL_error(L, "proxy.ip_prefix: a prefix is 0 to 128 bits, not %I", bits6);
        keep_bits(v6.s6_addr, sizeof v6.s6_addr, (unsigned)bits6);
        push_address(L, AF_INET6, &v6);
        lua_pushfstring(L, "/%I", bits6);
    }
    lua_concat(L, 2);
    return 1;
}

void hooks_address_register(lua_State *L)
{
    lua_pushcfunction(L, canonical_host);
    lua_setfield(L, -2, "canonical_host");
    lua_pushcfunction(L, ip_prefix);
    lua_setfield(L, -2, "ip_prefix");
}
