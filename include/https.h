/*
 * https.h - what an intercepted CONNECT changes in a session.
 *
 * The steps between the relay and the TLS transport: deciding whether a
 * CONNECT is intercepted (patterns, tx:intercept, the pass-through table),
 * answering it and starting TLS with the client, giving origin-form
 * requests inside the tunnel their https:// authority, noting clients that
 * refuse our certificate, and the proxy's own page http://luaproxy.ca/.
 * No OpenSSL here: the TLS work is tls.c's.
 */
#ifndef LUAPROXY_HTTPS_H
#define LUAPROXY_HTTPS_H

#include <stddef.h>

#include "exchange.h"

struct session;

/* The host name the proxy answers itself (never forwarded). */
#define HTTPS_CA_PAGE_HOST "luaproxy.ca"

/* Whether the current CONNECT is to be decrypted. A CONNECT to the
 * proxy's own page (HTTPS_CA_PAGE_HOST) always is, or else (no CA) is
 * refused: https_refuse_ca_tunnel() answers it 404. */
int https_should_intercept(struct session *s);
enum exchange_step https_refuse_ca_tunnel(struct session *s);
/* Answers the CONNECT with 200, starts TLS with the client and ends the
 * CONNECT exchange (STEP_END); the session reads requests from the TLS
 * stream next. */
enum exchange_step https_begin_tunnel(struct session *s);
/* Writes "https://host[:port]" of the session's tunnel into <out> (or
 * "http://", when its client speaks plain text in it); returns its length
 * (0 if it does not fit). */
size_t https_tunnel_origin(const struct session *s, char *out, size_t len);

/* Whether <host> is the proxy's own page, and answering it. */
int https_is_ca_page(const char *host);
enum exchange_step https_answer_ca_page(struct session *s);

/* Called as a session is freed: a client that ended our handshake is
 * noted (and logged once), so its next tunnels to the host pass through. */
void https_session_closing(struct session *s);

#endif
