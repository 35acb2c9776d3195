/*
 * reload_check.h - the supervisor's look at a reloaded configuration
 * before it passes SIGHUP on to its workers.
 *
 * With --workers, the supervisor reads the configuration again first:
 * a broken file or script is then reported once, every worker stays on
 * the running configuration, and a worker started later gets the new
 * one. Loading the scripts runs their top-level code (up to the load
 * time limit per script) and the users file may be long, so that part
 * runs on a thread; the supervisor's loop, which serves the admin
 * interface and replaces workers, goes on meanwhile.
 */
#ifndef LUAPROXY_RELOAD_CHECK_H
#define LUAPROXY_RELOAD_CHECK_H

#include <ev.h>

struct config;
struct reload_check;

/* Called on the loop when a check ends: <fresh> is the new configuration,
 * the callee's to keep (free() it), or NULL when it was refused (the
 * reason is logged). */
typedef void reload_check_done(void *arg, struct config *fresh);

/* Makes the checker; NULL when out of memory. */
struct reload_check *reload_check_new(struct ev_loop *loop, reload_check_done *done, void *arg);

/* Reads the configuration again on the loop (from what <running> was read
 * from), then checks the rest on a thread, and <done> follows. Not while
 * a check runs (reload_check_running). 0 when started; -1, logged, when
 * the check could not start (a broken file, no memory, no thread): <done>
 * is not called then. */
int reload_check_start(struct reload_check *rc, const struct config *running);

/* Whether a check is on its thread: the supervisor does not fork then (a
 * fork taken while another thread allocates leaves the child's allocator
 * in whatever state that thread had it in). */
int reload_check_running(const struct reload_check *rc);

/* Waits for a check still on its thread (bounded by the load time limit),
 * drops what it made, and frees the checker. NULL is fine. */
void reload_check_free(struct reload_check *rc);

#endif
