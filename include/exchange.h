/*
 * exchange.h - forwarding one request: connect, relay, tunnel.
 *
 * Called by session.c; see session.h for the states these functions move
 * a session through.
 */
#ifndef LUAPROXY_EXCHANGE_H
#define LUAPROXY_EXCHANGE_H

#include <stddef.h>

#include "http_parse.h"

struct exchange;
struct session;

void exchange_init(struct exchange *x);
/* Frees what the exchange holds (not the upstream endpoint). */
void exchange_release(struct session *s);

/* A complete, syntactically valid request head of <head_len> bytes is at
 * the front of the client's input: check it, copy what is needed, consume
 * it and start connecting (or answer with an error). */
void exchange_begin(struct session *s, const struct http_head *head, size_t head_len);

/* Parks the upstream connection in the pool when the exchange left it
 * clean, or closes it. */
void exchange_detach_upstream(struct session *s);

/* The upstream socket became writable while connecting. */
void exchange_connect_done(struct session *s);

/* SESSION_HOOK: acts on the result of the request hooks once they are no
 * longer asleep. Returns 1 if anything changed. */
int exchange_hook_step(struct session *s);

/* SESSION_EXCHANGE: moves the request body up and the response down.
 * Returns 1 if anything changed. */
int exchange_pump(struct session *s);

/* SESSION_TUNNEL: moves bytes both ways and relays half-closes. */
int tunnel_pump(struct session *s);

#endif
