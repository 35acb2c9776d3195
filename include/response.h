/*
 * response.h - the response side of an exchange (see response.c).
 */
#ifndef LUAPROXY_RESPONSE_H
#define LUAPROXY_RESPONSE_H

#include "exchange.h"
#include "hooks.h"

struct session;

/* RESPONSE_WAIT_HEAD: parses the upstream's head and sends ours (or runs
 * on_response first). */
enum exchange_step response_parse_head(struct session *s);

/* Acts on what on_response decided (RESPONSE_HOOK ends here). */
enum exchange_step response_after_hooks(struct session *s, enum hooks_result r);

/* RESPONSE_BODY: moves the body down, re-framed. */
enum exchange_step response_relay_body(struct session *s);

#endif
