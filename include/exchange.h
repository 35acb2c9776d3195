/*
 * exchange.h - forwarding one request: connect, relay, tunnel.
 *
 * Called by session.c; see session.h for the states these functions move
 * a session through.
 */
#ifndef LUAPROXY_EXCHANGE_H
#define LUAPROXY_EXCHANGE_H

#include <stddef.h>

#include "auth.h"
#include "dns.h"
#include "hooks.h"
#include "http_parse.h"

struct exchange;
struct session;
struct addr_list;

/* The session's entry points for the answers to work an exchange starts:
 * the exchange hands them to the resolver and to the hook runner, so every
 * event reaches a session through the one list in session.c. */
struct exchange_events {
    dns_callback *dns_answer;   /* arg: the session */
    hooks_wake_fn *hook_wakeup;
    auth_done_fn *auth_done;    /* arg: the session */
};

void exchange_init(struct exchange *x);
/* Frees what the exchange holds (not the upstream endpoint). */
void exchange_release(struct session *s);

/* A complete, syntactically valid request head of <head_len> bytes is at
 * the front of the client's input: check it, copy what is needed, consume
 * it and start connecting (or answer with an error). */
void exchange_begin(struct session *s, const struct http_head *head, size_t head_len);

/* The credentials' check finished (SESSION_HOOK): go on, or answer 407. */
void exchange_auth_done(struct session *s, int ok, const char *user);

/* For response.c: records the heads before the hooks ran (flows), and
 * answers with the response a hook made (tx:respond). */
void exchange_record_before_hooks(struct session *s, int response);
void exchange_respond_locally(struct session *s);

/* A hook phase that slept has finished with <r> (SESSION_HOOK, or
 * RESPONSE_HOOK): acts on it as if the hooks had returned at once. */
void exchange_hooks_woke(struct session *s, enum hooks_result r);

/* SESSION_EXCHANGE: moves the request body up and the response down.
 * Returns 1 if anything changed. */
int exchange_pump(struct session *s);

/* SESSION_EXCHANGE: the upstream went quiet for the idle timeout after its
 * response head. Ends the exchange: keeping the client connection when it
 * already has its whole answer (a body being dropped), else closing it
 * after what was sent (the body is cut). */
void exchange_response_stalled(struct session *s);

/* SESSION_TUNNEL: moves bytes both ways and relays half-closes
 * (src/tunnel.c). */
int tunnel_pump(struct session *s);

#endif
