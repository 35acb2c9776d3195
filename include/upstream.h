/*
 * upstream.h - getting an upstream connection for an exchange, and giving
 * it back. See upstream.c.
 */
#ifndef LUAPROXY_UPSTREAM_H
#define LUAPROXY_UPSTREAM_H

#include "dns.h"
#include "exchange.h"

struct session;

/* Finds a connection to x->host:x->port: the session's kept one, a pooled
 * one (both go straight to forwarding: no DNS, no handshake), or starts
 * DNS (a move to SESSION_RESOLVING) or a connect() (SESSION_CONNECTING).
 * Returns the step (exchange.h), possibly a failure to answer. */
enum exchange_step upstream_start(struct session *s);

/* The connection (fresh, kept or pooled) is ready: answer a CONNECT with
 * 200 and tunnel, or run TLS with the upstream and queue the request head
 * (absolute-form through a parent proxy). */
enum exchange_step upstream_begin_forwarding(struct session *s);

/* tx.req.buffer_body: the whole body went through on_request_chunk; the
 * head goes up now, with the length of what the hooks made of it.
 * STEP_PROGRESS, or STEP_FAIL. */
enum exchange_step upstream_send_collected_request(struct session *s);

/* The upstream socket became writable while connecting. */
enum exchange_step upstream_connect_done(struct session *s);

/* SESSION_CONNECTING: when to give up on the address being tried, for
 * the next one (upstream_connect_next), or <overall> (--connect-timeout)
 * when it is the last or the connection is up (a TLS handshake). */
ev_tstamp upstream_attempt_deadline(const struct session *s, ev_tstamp overall);
/* The cause of a 504 for a lookup that ran out of --connect-timeout,
 * whether the resolver or the session's timer found it out first. */
#define UPSTREAM_LOOKUP_TIMED_OUT "the upstream's name lookup timed out"
/* The address being tried had its share of --connect-timeout: the next. */
enum exchange_step upstream_connect_next(struct session *s);

/* The resolver answered (SESSION_RESOLVING): connect, or fail with 502
 * (no such name) or 504 (the lookup ran out of time). */
enum exchange_step upstream_dns_answer(struct session *s, enum dns_status status,
                                       const struct addr_list *addrs);

/* A reused connection closed before any byte of the answer: whether the
 * request is safe to repeat (upstream_may_retry), and starting it again
 * on a fresh connection (upstream_retry_fresh). */
int upstream_may_retry(const struct session *s);
enum exchange_step upstream_retry_fresh(struct session *s);

/* Gives up this exchange's upstream side when the exchange goes on
 * without it, only to read and drop the rest of the request body after
 * an answer: a lookup in flight is cancelled (its callback never runs)
 * and the connection being made, or the one the answer came on, is closed
 * (it is left inside a request, unfit for reuse), so nothing of it fires
 * later for this exchange. A connection the session keeps from an earlier
 * exchange, which this one never took, stays kept. */
void upstream_abandon(struct session *s);

/* Hands an idle upstream connection kept by the session to the pool (or
 * closes it when the proxy is stopping, it speaks TLS, or it spoke out of
 * turn). */
void upstream_release_idle(struct session *s);

/* Whether the upstream connection <s> keeps became readable in this turn
 * of the loop, its event not handled yet: it cannot be reused. */
int upstream_idle_spoke(const struct session *s);

/* Keeps the upstream connection with the session (or parks it in the pool)
 * when the exchange left it clean, or closes it. One the session still
 * keeps from an earlier exchange (this one was answered without it) stays
 * kept. */
void upstream_detach(struct session *s);

#endif
