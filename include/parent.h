/*
 * parent.h - a parent HTTP proxy (--upstream) and the hosts that bypass it.
 *
 * With a parent, plain requests go to it in absolute-form and tunnels with
 * CONNECT, carrying the Proxy-Authorization made from the URL's user and
 * password. --upstream-bypass patterns name hosts reached directly.
 */
#ifndef LUAPROXY_PARENT_H
#define LUAPROXY_PARENT_H

#include <stddef.h>
#include <stdint.h>

#define PARENT_URL_MAX 512

struct parent_proxy {
    char host[240];           /* without brackets for IPv6 */
    uint16_t port;
    char url[PARENT_URL_MAX]; /* as given, for tx.upstream.proxy */
    char auth[720];           /* "Basic ..." for Proxy-Authorization, or "" */
};

/* Parses "http://[user[:password]@]host:port[/]" (user and password may be
 * percent-encoded). 0, or -1 with <err>. */
int parent_parse(const char *url, struct parent_proxy *out, char *err, size_t err_len);

/* Whether <pattern> is a valid bypass pattern: a host name, "*.domain", an
 * IP address or a CIDR. */
int parent_pattern_valid(const char *pattern);

/* Whether <host> matches one of the <count> patterns: the same name
 * (case-insensitive), a name under "*.domain", or an IP literal inside a
 * CIDR. */
int parent_bypassed(const char *const *patterns, int count, const char *host);

/* The identity of the credentials a connection to a parent was opened
 * and used with: the first PARENT_CREDENTIALS_ID_LEN bytes of the SHA-256
 * of its Proxy-Authorization value <auth>, all zeros for none (NULL).
 * Connections are reused only for the same identity (upstream.c), so one
 * user's tunnel, which the parent authorised once at its CONNECT, never
 * carries another user's requests. A digest rather than the value, so an
 * idle connection holds no secret; 16 bytes put a collision out of reach
 * (2^64 tries) and every client connection holds one. 0, or -1 if the
 * digest could not be made. */
#define PARENT_CREDENTIALS_ID_LEN 16
int parent_credentials_id(const char *auth, unsigned char id[PARENT_CREDENTIALS_ID_LEN]);

/* The name connections to <p> are pooled under (upstream_pool.h): one a
 * host name cannot have, so they never mix with direct connections to the
 * same address (one speaks absolute form, the other origin form). 0, or
 * -1 when <len> cannot hold it. */
int parent_pool_name(const struct parent_proxy *p, char *out, size_t len);

/* The parent's "host:port" for messages ("[::1]:3128" for IPv6). */
void parent_authority(const struct parent_proxy *p, char *out, size_t len);

#endif
