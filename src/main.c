/*
 * main.c - wires the pieces together: options, the loop, the proxy.
 */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "ca.h"
#include "config.h"
#include "daemon.h"
#include "hooks.h"
#include "log.h"
#include "trace.h"
#include "metrics.h"
#include "stats.h"
#include "tls.h"
#include "tls_trust.h"
#include "shared_store.h"
#include "workers.h"

int main(int argc, char **argv)
{
    static struct config cfg;
    char err[1024];
    int status;

    if (argc > 1 && strcmp(argv[1], "ca") == 0)
        return ca_command(argc - 1, argv + 1);
    /* SIGHUP asks for a reload, and may come before the loop watches for
     * it: a unit's ExecReload or a log rotation right after a start finds
     * the pid file long before the scripts have loaded. Its default action
     * would end the proxy; blocked, it waits, and the loop that starts
     * watching it unblocks it (workers_run, run_proxy) and reloads. */
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    sigprocmask(SIG_BLOCK, &hup, NULL);
    /* Before the options: the default --max-connections follows the
     * descriptor limit. */
    daemon_raise_fd_limit();
    switch (config_load(&cfg, argc, argv, err, sizeof err)) {
    case CONFIG_OK:
        break;
    case CONFIG_EXIT_OK:
        config_strings_free();
        return 0;
    case CONFIG_ERROR:
        fprintf(stderr, "luaproxy: %s\n", err);
        config_strings_free();
        return 2;
    }
    if (cfg.verbose)
        log_set_level(LOG_DEBUG);
    trace_enabled = cfg.trace;
    /* A process's arguments are anybody's to read (ps, /proc). */
    for (int i = 1; cfg.has_upstream && cfg.upstream.auth[0] && i < argc; i++)
        if (strstr(argv[i], cfg.upstream.url)) {
            log_warn("--upstream: the parent proxy's password is on the command line, where any "
                     "local user can read it (ps); an upstream line in the config file (-c) "
                     "keeps it private");
            break;
        }
    if (cfg.user && daemon_check_user(cfg.user, err, sizeof err) != 0) {
        fprintf(stderr, "luaproxy: %s\n", err);
        config_strings_free();
        return 2;
    }
    if (cfg.auth_file) {
        /* Refuse a bad users file before binding anything. */
        struct auth *a = auth_open(cfg.auth_file, NULL, err, sizeof err);
        if (!a) {
            fprintf(stderr, "luaproxy: %s\n", err);
            config_strings_free();
            return 2;
        }
        auth_free(a);
    }
    if (cfg.check_only) {
        log_set_level(LOG_ERROR); /* --check reports on stdout/stderr itself */
        if (cfg.script_count == 0) {
            printf("%s: ok (no scripts)\n", cfg.config_file);
            status = 0;
        } else {
            status = hooks_check(&cfg);
        }
        config_strings_free();
        return status;
    }
    /* The CA is made and checked once, before workers start, so they all
     * read the same one and a broken CA stops the proxy here. */
    if (tls_prepare(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "luaproxy: %s\n", err);
        tls_trust_release(&cfg);
        config_strings_free();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* The pid file is written by workers.c once the listening sockets are
     * bound: a second instance that cannot listen leaves the running one's
     * file alone. */
    /* proxy.shared's memory is mapped before the workers fork, so they
     * all inherit the one mapping. */
    if (!cfg.shared_url && shared_region_setup(cfg.shared_memory, err, sizeof err) != 0) {
        log_error("%s", err);
        tls_trust_release(&cfg);
        config_strings_free();
        return 1;
    }

    /* Shared before any fork, so every worker counts into it. */
    if (stats_init(cfg.workers > 1 ? cfg.workers + 1 : 1) != 0) {
        log_error("cannot map the shared counters");
        tls_trust_release(&cfg);
        config_strings_free();
        return 1;
    }
    metrics_set_config(&cfg);
    if (cfg.workers > 1)
        status = workers_run(&cfg);
    else
        status = workers_run_single(&cfg);
    /* The lines still queued go out first (bounded). A writer still stuck
     * may yet count a dropped line: the counters then stay mapped until
     * the process is gone. */
    if (log_flush() == 0)
        stats_free();
    if (cfg.pid_file)
        daemon_remove_pid_file(cfg.pid_file);
    tls_trust_release(&cfg);
    config_strings_free();
    return status;
}
