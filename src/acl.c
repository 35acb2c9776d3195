/*
 * acl.c - CIDR prefixes for allowed clients, port sets for CONNECT.
 *
 * An open proxy is abused within hours, so both lists are checked before
 * any work is done for a client: the client list at the first request, the
 * port set before a CONNECT target is even resolved.
 */
#include "acl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The first 12 bytes of an IPv4-mapped IPv6 address (::ffff:a.b.c.d). */
static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int acl_parse_cidr(const char *text, struct cidr *out)
{
    char host[64];
    const char *slash = strchr(text, '/');
    size_t host_len = slash ? (size_t)(slash - text) : strlen(text);
    int max_prefix;

    if (host_len == 0 || host_len >= sizeof host)
        return -1;
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max_prefix = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max_prefix = 128;
    } else {
        return -1;
    }
    out->prefix = max_prefix;
    if (slash) {
        const char *p = slash + 1;
        char *end;
        long v;
        if (*p < '0' || *p > '9' || strlen(p) > 3)
            return -1;
        v = strtol(p, &end, 10);
        if (*end != '\0' || v < 0 || v > max_prefix)
            return -1;
        out->prefix = (int)v;
    }
    if (out->family == AF_INET6 && out->prefix >= 96 && memcmp(out->addr, v4_mapped, 12) == 0) {
        /* "::ffff:10.0.0.0/104": an address in it is matched as the IPv4
         * one (acl_match), so the prefix is the IPv4 prefix it spells;
         * kept as IPv6 it would match no address at all. */
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->prefix -= 96;
    }
    return 0;
}

/* Compares the first <bits> bits of two byte strings. */
static int prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int acl_match(const struct cidr *list, int count, const struct sockaddr *addr)
{
    unsigned char bytes[16];
    int family;

    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)addr;
        memcpy(bytes, &sin->sin_addr, 4);
        family = AF_INET;
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)addr;
        if (memcmp(&sin6->sin6_addr, v4_mapped, 12) == 0) {
            memcpy(bytes, (const unsigned char *)&sin6->sin6_addr + 12, 4);
            family = AF_INET;
        } else {
            memcpy(bytes, &sin6->sin6_addr, 16);
            family = AF_INET6;
        }
    } else {
        return 0;
    }
    for (int i = 0; i < count; i++)
        if (list[i].family == family && prefix_equal(list[i].addr, bytes, list[i].prefix))
            return 1;
    return 0;
}

int acl_is_machine_local(const struct sockaddr *addr)
{
    static const struct cidr local[] = {
        {AF_INET, {127}, 8},        {AF_INET, {0}, 8},         {AF_INET, {169, 254}, 16},
        {AF_INET6, {[15] = 1}, 128}, {AF_INET6, {0}, 128},     {AF_INET6, {0xfe, 0x80}, 10},
    };
    return acl_match(local, (int)(sizeof local / sizeof local[0]), addr);
}

int acl_host_is_machine_local(const char *host)
{
    static const char name[] = "localhost";
    /* One object seen as either type: acl_match reads sa_family through
     * struct sockaddr, which for a plain sockaddr_in the optimiser may
     * read before the store (strict aliasing). */
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } a;
    char text[64];
    size_t len = strcspn(host, "%");

    memset(&a, 0, sizeof a);
    if (len < sizeof text) {
        memcpy(text, host, len);
        text[len] = '\0';
        /* inet_aton, not inet_pton: a parent reads "127.1" as 127.0.0.1. */
        if (len == strlen(host) && inet_aton(text, &a.in4.sin_addr)) {
            a.in4.sin_family = AF_INET;
            return acl_is_machine_local(&a.sa);
        }
        if (inet_pton(AF_INET6, text, &a.in6.sin6_addr) == 1) {
            a.in6.sin6_family = AF_INET6;
            return acl_is_machine_local(&a.sa);
        }
    }
    len = strlen(host);
    if (len > 1 && host[len - 1] == '.')
        len--;
    /* "localhost", or a name ending in ".localhost" */
    return len >= sizeof name - 1 &&
           strncasecmp(host + len - (sizeof name - 1), name, sizeof name - 1) == 0 &&
           (len == sizeof name - 1 || host[len - sizeof name] == '.');
}

int acl_is_loopback(const struct sockaddr *addr)
{
    static const struct cidr loopback[] = {{AF_INET, {127}, 8}, {AF_INET6, {[15] = 1}, 128}};
    return acl_match(loopback, 2, addr);
}

int acl_parse_ports(const char *text, struct port_set *out)
{
    const char *p = text;

    memset(out, 0, sizeof *out);
    for (;;) {
        unsigned long v = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 6) {
            v = v * 10 + (unsigned long)(*p++ - '0');
            digits++;
        }
        if (digits == 0 || v < 1 || v > 65535)
            return -1;
        out->bits[v / 64] |= (uint64_t)1 << (v % 64);
        if (*p == '\0')
            return 0;
        if (*p++ != ',')
            return -1;
    }
}

int acl_port_allowed(const struct port_set *set, unsigned port)
{
    return port < 65536 && (set->bits[port / 64] >> (port % 64)) & 1;
}
