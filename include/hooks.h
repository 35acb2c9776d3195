/*
 * hooks.h - the Lua scripts' entry points into the relay.
 *
 * Only hooks.c (and the files of the hooks group) include the Lua headers;
 * the relay sees these functions and nothing of Lua.
 */
#ifndef LUAPROXY_HOOKS_H
#define LUAPROXY_HOOKS_H

#include <stddef.h>

struct proxy;

/* Loads the scripts named in the configuration. 0, or -1 with <err>. */
int hooks_load(struct proxy *p, char *err, size_t err_len);
/* SIGHUP: loads the scripts again; on failure the old ones stay. */
void hooks_reload(struct proxy *p);
void hooks_free(struct proxy *p);

#endif
