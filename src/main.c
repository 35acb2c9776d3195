/*
 * main.c - wires the pieces together: options, the loop, the proxy.
 */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>

#include "config.h"
#include "hooks.h"
#include "log.h"
#include "workers.h"

/* Each client can hold two descriptors (itself and its upstream), so ask
 * for as many as the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    static struct config cfg;
    char err[512];

    switch (config_parse(&cfg, argc, argv, err, sizeof err)) {
    case CONFIG_OK:
        break;
    case CONFIG_EXIT_OK:
        return 0;
    case CONFIG_ERROR:
        fprintf(stderr, "luaproxy: %s\n", err);
        return 2;
    }
    if (cfg.verbose)
        log_set_level(LOG_DEBUG);
    if (cfg.check_only) {
        log_set_level(LOG_ERROR); /* --check reports on stdout/stderr itself */
        return hooks_check(&cfg);
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    if (cfg.workers > 1)
        return workers_run(&cfg);
    return workers_run_single(&cfg);
}
