/*
 * tls.h - TLS as an endpoint transport, for intercepted tunnels.
 *
 * One struct tls per event loop holds the two OpenSSL contexts (the one
 * that faces clients, with certificates minted by the CA, and the one that
 * connects to upstreams and verifies them), the CA and the key log. Starting
 * TLS on an endpoint swaps its transport (endpoint.h) for the TLS one; the
 * session and the exchange keep reading and writing the endpoint as before.
 *
 *   client --TLS (minted cert)--> [ endpoint | parser, hooks | endpoint ] --TLS--> upstream
 *
 * Only tls*.c and ca.c include OpenSSL (and auth.c, for its HMAC).
 */
#ifndef LUAPROXY_TLS_H
#define LUAPROXY_TLS_H

#include <stddef.h>

#include "endpoint.h"

struct config;
struct tls;
struct ca;
struct session;

/* Once at start, before any worker: resolves the CA directory, makes a CA
 * when interception is asked for and none exists (and logs where), checks
 * the CA can be read and its key matches, reads the certificates upstreams
 * are verified against (tls_trust.h), and warns once about
 * --insecure-upstream. 0, or -1 with <err> (a startup
 * error). */
int tls_prepare(struct config *cfg, char *err, size_t err_len);

/* Per loop: the contexts, the CA (when configured) and the key log. NULL
 * with <err> on failure. */
struct tls *tls_new(const struct config *cfg, char *err, size_t err_len);
void tls_free(struct tls *t);
/* A reload read the upstream certificates again (tls_trust.h): upstreams
 * are verified against <cfg>'s from now on, and the sessions kept for
 * resumption are forgotten (resuming one skips the check the new
 * certificates would make). Connections already made keep going. */
void tls_use_trust(struct tls *t, const struct config *cfg);

/* The CA, or NULL when none is loaded (then nothing can be intercepted). */
const struct ca *tls_ca(const struct tls *t);

/* Intercepted tunnel: starts TLS as the server on <e>. The bytes already in
 * e->out (the 200 to the CONNECT) go out in the clear first. The handshake
 * runs inside the first reads, and reads what is in e->in first (a
 * ClientHello the client sent without waiting for the 200), which it
 * takes; the certificate names the client's SNI, or <name> when it sends
 * none. A client whose first byte does not start a TLS record (plain
 * HTTP, such as a browser's ws:// through a proxy) gets no TLS: <e> keeps,
 * or at its first read gets back, its plain transport, which
 * endpoint_is_tls tells. 0 (TLS started), 1 (plain: e->in is the
 * client's), or -1. */
int tls_accept(struct endpoint *e, struct tls *t, const char *name);

/* Upstream: starts TLS as the client on the connected <e>, with SNI and
 * certificate verification for <host>, resuming the last session with
 * <host> <port> when there is one. <owner>: the session whose steps
 * --trace shows, or NULL (a call out of a script). Drive it with
 * tls_handshake. */
int tls_connect(struct endpoint *e, struct tls *t, const char *host, unsigned port,
                const struct session *owner);

/* The replay of an intercepted flow: starts TLS as the client on <e>, a
 * socket tunnelled through a CONNECT to the proxy's own listener on
 * loopback, with SNI <host> and no certificate check (see tls.c for why).
 * Needs no struct tls. Drive it with tls_handshake. 0 or -1. */
int tls_connect_loopback(struct endpoint *e, const char *host);

/* Advances a handshake started by tls_connect or tls_connect_loopback: ENDPOINT_PROGRESS once it is
 * done, ENDPOINT_AGAIN (the endpoint watches for what it needs), or
 * ENDPOINT_ERROR with e->error naming the reason. */
enum endpoint_io tls_handshake(struct endpoint *e);

#endif
