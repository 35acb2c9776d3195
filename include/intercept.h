/*
 * intercept.h - which CONNECT tunnels are decrypted.
 *
 * --intercept and --no-intercept patterns (example.com, *.example.com for
 * its subdomains, * for everything; --no-intercept wins), and a bounded
 * table of clients that refused our certificate for a host: their tunnels
 * to that host pass through unintercepted for --tls-passthrough-ttl, so a
 * pinned app keeps working. A script's tx:intercept() overrides the
 * patterns (not the table: a client that refused would refuse again).
 */
#ifndef LUAPROXY_INTERCEPT_H
#define LUAPROXY_INTERCEPT_H

struct config;
struct intercept;

/* Entries in the pass-through table; the one closest to expiry makes room.
 * One client holds at most INTERCEPT_PER_CLIENT_MAX of them: past that,
 * its own entry closest to expiry makes room. */
#define INTERCEPT_TABLE_MAX 1024
#define INTERCEPT_PER_CLIENT_MAX 64

/* Whether <pattern> is a host name, *.domain or *. */
int intercept_pattern_valid(const char *pattern);
/* Whether <host> matches <pattern>: case-insensitive, a trailing dot on
 * either side ignored, IP literals compared as addresses. */
int intercept_pattern_match(const char *pattern, const char *host);
/* What the patterns say about <host>: 1 intercept, 0 pass through. */
int intercept_by_patterns(const struct config *cfg, const char *host);

struct intercept *intercept_new(double ttl);
/* A reload's --tls-passthrough-ttl, for refusals noted from now on (0
 * turns passing through off at once). */
void intercept_set_ttl(struct intercept *ic, double ttl);
void intercept_free(struct intercept *ic);
/* Whether <client_ip>'s tunnels to <host> pass through at <now>. */
int intercept_passing_through(struct intercept *ic, const char *client_ip, const char *host,
                              double now);
/* Records that <client_ip> refused the handshake for <host> at <now>.
 * Returns 1 when this is news (worth a log line), 0 if already known or
 * the feature is off. */
int intercept_note_refusal(struct intercept *ic, const char *client_ip, const char *host,
                           double now);

#endif
