/*
 * daemon.h - what running as a service needs: the descriptor limit, the
 * pid file and dropping root.
 */
#ifndef LUAPROXY_DAEMON_H
#define LUAPROXY_DAEMON_H

#include <stddef.h>

/* Raises the soft RLIMIT_NOFILE to the hard one: every client holds a
 * descriptor, two while it talks to an upstream. */
void daemon_raise_fd_limit(void);

/* Writes this process's id to <path>. 0, or -1 with <err>. */
int daemon_write_pid_file(const char *path, char *err, size_t err_len);
/* Removes <path> if it still holds this process's id. */
void daemon_remove_pid_file(const char *path);

/* Whether <user> exists (so a typo fails at start, not after binding).
 * 0, or -1 with <err>. */
int daemon_check_user(const char *user, char *err, size_t err_len);
/* Becomes <user> (its uid, gid and only its primary group) for good. No-op
 * when not root and already that user. 0, or -1 with <err>. */
int daemon_drop_privileges(const char *user, char *err, size_t err_len);

#endif
