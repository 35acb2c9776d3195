/*
 * acl.h - who may use the proxy and where CONNECT may go.
 *
 * Client addresses are matched against a list of CIDR prefixes (IPv4 and
 * IPv6; an IPv4-mapped IPv6 address "::ffff:a.b.c.d" matches as IPv4),
 * CONNECT ports against a set of allowed ports, and destinations against
 * the addresses only this machine can reach (its own loopback, link-local).
 */
#ifndef LUAPROXY_ACL_H
#define LUAPROXY_ACL_H

#include <stdint.h>
#include <sys/socket.h>

struct cidr {
    int family;            /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network bytes; 4 used for IPv4 */
    int prefix;            /* 0..32 or 0..128 */
};

/* Parses "10.0.0.0/8", "::1", "fd00::/8" (a bare address is a /32 or /128).
 * An IPv4-mapped prefix of /96 or longer ("::ffff:10.0.0.0/104") is the
 * IPv4 prefix it spells ("10.0.0.0/8"). Returns 0, or -1 if malformed. */
int acl_parse_cidr(const char *text, struct cidr *out);

/* Whether <addr> falls inside any of the <count> prefixes. */
int acl_match(const struct cidr *list, int count, const struct sockaddr *addr);

/* Whether <addr> is one only this machine can be reached on: loopback
 * (127.0.0.0/8, ::1), unspecified (0.0.0.0/8, ::, which connect to the
 * machine itself) or link-local (169.254.0.0/16, fe80::/10: the next hop
 * only, and where clouds serve instance metadata and credentials). An
 * IPv4-mapped address counts as the IPv4 one. */
int acl_is_machine_local(const struct sockaddr *addr);

/* Whether the host name <host> (as in a URL, without brackets) names such
 * an address without being resolved here: an IP address in any spelling a
 * resolver reads as one (inet_aton's "127.1", "2130706433", "0x7f.1"; an
 * IPv6 zone "%eth0" ignored), or "localhost" or a name under it, which
 * resolve to loopback (RFC 6761), with or without a trailing dot. For a
 * target a parent proxy will resolve: it does not say what a name that is
 * not one of these resolves to there. */
int acl_host_is_machine_local(const char *host);

/* Whether <addr> is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped
 * 127.0.0.0/8): a client there runs on this machine. */
int acl_is_loopback(const struct sockaddr *addr);

/* A set of TCP ports, one bit each. */
struct port_set {
    uint64_t bits[65536 / 64];
};

/* Parses "443,8443" into <out> (cleared first). Returns 0, or -1 if a
 * number is outside 1..65535 or the list is malformed. */
int acl_parse_ports(const char *text, struct port_set *out);
int acl_port_allowed(const struct port_set *set, unsigned port);

#endif
