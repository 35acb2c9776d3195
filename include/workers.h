/*
 * workers.h - several processes, each with its own loop, on shared ports.
 *
 * With --workers N > 1 the first process binds N sockets per listen address
 * (SO_REUSEPORT, so the kernel spreads connections across them), forks N
 * workers that each run a complete proxy on one socket per address, and
 * then only supervises: it passes SIGTERM/SIGINT/SIGHUP on, restarts a
 * worker that died, and exits once every worker has stopped.
 */
#ifndef LUAPROXY_WORKERS_H
#define LUAPROXY_WORKERS_H

#include "config.h"

/* Runs one proxy in this process (no fork). Returns the exit status. */
int workers_run_single(const struct config *cfg);

/* Runs cfg->workers processes. Returns the exit status. */
int workers_run(const struct config *cfg);

#endif
