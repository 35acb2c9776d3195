/*
 * upstream.h - getting an upstream connection for an exchange, and giving
 * it back. See upstream.c.
 */
#ifndef LUAPROXY_UPSTREAM_H
#define LUAPROXY_UPSTREAM_H

#include "dns.h"

struct session;

/* Finds a connection to x->host:x->port: the session's kept one, a pooled
 * one (both go straight to forwarding: no DNS, no handshake), or starts
 * DNS (SESSION_RESOLVING) or a connect() (SESSION_CONNECTING). May end
 * the exchange with session_fail. */
void upstream_start(struct session *s);

/* The connection (fresh, kept or pooled) is ready: answer a CONNECT with
 * 200 and tunnel, or run TLS with the upstream and queue the request head
 * (absolute-form through a parent proxy). */
void upstream_begin_forwarding(struct session *s);

/* tx.req.buffer_body: the whole body went through on_request_chunk; the
 * head goes up now, with the length of what the hooks made of it. 0, or
 * -1 after session_fail. */
int upstream_send_collected_request(struct session *s);

/* The upstream socket became writable while connecting. */
void upstream_connect_done(struct session *s);

/* The resolver answered (SESSION_RESOLVING): connect, or fail with 502. */
void upstream_dns_answer(struct session *s, enum dns_status status,
                         const struct addr_list *addrs);

/* A reused connection closed before any byte of the answer: for a request
 * that is safe to repeat, starts again on a fresh connection and returns
 * 1; else 0. */
int upstream_retry_fresh(struct session *s);

/* Keeps the upstream connection with the session (or parks it in the pool)
 * when the exchange left it clean, or closes it. */
void upstream_detach(struct session *s);

#endif
