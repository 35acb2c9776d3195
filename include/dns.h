/*
 * dns.h - asynchronous name resolution on the event loop, through c-ares.
 *
 * A lookup never blocks the loop: c-ares' sockets are watched by libev and
 * its retransmit timer is an ev_timer. Numeric addresses never reach the
 * resolver (dns_parse_numeric). The completion callback always runs from
 * the loop, never from inside dns_resolve(), so the caller's stack is never
 * re-entered.
 */
#ifndef LUAPROXY_DNS_H
#define LUAPROXY_DNS_H

#include <ev.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDR_LIST_MAX 8

/* One IPv4 or IPv6 address; sized for the larger, not for every family
 * (sockaddr_storage would make each session 1 KiB bigger). */
union addr_any {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* The addresses one name resolved to, in the order to try them. */
struct addr_list {
    int count;
    union addr_any addr[ADDR_LIST_MAX];
    socklen_t len[ADDR_LIST_MAX];
};

struct dns_resolver;
struct dns_query;

/* How a lookup ended: the caller answers a timeout and "no such name"
 * differently, so it gets an enum, not a message to decode. */
enum dns_status {
    DNS_OK,        /* <addrs> holds at least one address */
    DNS_NOT_FOUND, /* no address for the name (or the lookup failed) */
    DNS_TIMEOUT,   /* the servers did not answer in time */
};
const char *dns_status_name(enum dns_status status);

typedef void dns_callback(void *arg, enum dns_status status, const struct addr_list *addrs);

/* Creates the loop's resolver. Returns NULL with a message in <err>. */
struct dns_resolver *dns_resolver_new(struct ev_loop *loop, double timeout, char *err,
                                      size_t err_len);
/* Ends outstanding lookups (their callbacks are not called) and frees. */
void dns_resolver_free(struct dns_resolver *r);

/* Starts resolving <host> for TCP <port>. <cb> runs later, exactly once,
 * unless dns_cancel() is called first. Returns NULL when out of memory. */
struct dns_query *dns_resolve(struct dns_resolver *r, const char *host, uint16_t port,
                              dns_callback *cb, void *arg);
/* The callback of <q> will not be called; the query frees itself. */
void dns_cancel(struct dns_query *q);

/* If <host> is an IPv4 or IPv6 literal, fills <out> with it and returns 1. */
int dns_parse_numeric(const char *host, uint16_t port, struct addr_list *out);

#endif
