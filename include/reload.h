/*
 * reload.h - SIGHUP: the configuration and the scripts read again and put
 * in force, without holding the loop while the scripts load.
 */
#ifndef LUAPROXY_RELOAD_H
#define LUAPROXY_RELOAD_H

#include <ev.h>

struct proxy;

/* The SIGHUP watcher's callback (its data: the proxy). */
void reload_on_signal(struct ev_loop *loop, ev_signal *w, int revents);

/* At the end: waits for a load still running on its thread (bounded by
 * the scripts' load time limit) and drops what it made. */
void reload_free(struct proxy *p);

#endif
