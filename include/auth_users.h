/*
 * auth_users.h - the users of --auth-file, read and checked (auth_users.c),
 * for auth.c. The public half (read, free) is in auth.h.
 */
#ifndef LUAPROXY_AUTH_USERS_H
#define LUAPROXY_AUTH_USERS_H

#include "auth.h"

#define AUTH_HASH_MAX 256

struct auth_user {
    char *name;
    char *hash;
    int line; /* in the file, for the duplicate's message */
};

/* How many users; the <i>th (by name); the one called <name>, or NULL. */
int auth_users_count(const struct auth_users *u);
const struct auth_user *auth_users_at(const struct auth_users *u, int i);
const struct auth_user *auth_users_find(const struct auth_users *u, const char *name);

#endif
