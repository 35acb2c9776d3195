/*
 * admin_access.h - who may ask the admin listener: the token (a cookie or
 * a bearer token, compared in constant time), the Host check against
 * DNS rebinding and the Origin check against CSRF. Pure functions over a
 * parsed head; admin.c decides what to answer.
 */
#ifndef LUAPROXY_ADMIN_ACCESS_H
#define LUAPROXY_ADMIN_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include "http_parse.h"

#define ADMIN_ACCESS_COOKIE "luaproxy_admin"

/* Whether <s> of <len> bytes is <token>; the time taken does not depend on
 * where they differ. */
int admin_access_token_eq(const char *token, const char *s, size_t len);

/* Whether <head> carries <token>: "Authorization: Bearer TOKEN" or the
 * cookie luaproxy_admin=TOKEN. */
int admin_access_has_token(const char *token, const struct http_head *head);

/* Whether <head> has exactly one Host, naming localhost, <own_ip> (the
 * address the listener was bound to) or <local_ip> (the address this
 * connection reached, "" if unknown), with no port or <port>. */
int admin_access_host_ok(const struct http_head *head, const char *own_ip, const char *local_ip,
                         uint16_t port);

/* Whether a request that changes something may come from where it says it
 * comes from: no Origin or this listener's (http:// and the Host), and no
 * Sec-Fetch-Site or "same-origin" or "none". */
int admin_access_origin_ok(const struct http_head *head);

#endif
