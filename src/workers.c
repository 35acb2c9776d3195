/*
 * workers.c - the supervisor of worker processes, and one worker's life.
 *
 * The parent owns the listening sockets until the stop begins, so a
 * worker that crashes can be replaced on the very sockets it served:
 * connections that arrive meanwhile wait in the kernel's backlog. All mutable state of
 * a worker lives in its own struct proxy; the only thing shared is the
 * count of clients, in a page of shared memory, so --max-connections
 * holds for the whole proxy.
 */
#include "workers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin.h"
#include "flows.h"
#include "flows_api.h"
#include "flows_store.h"
#include "daemon.h"
#include "hooks.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "reload_check.h"
#include "stats.h"
#include "tls_trust.h"
#include "trace.h"

/* A worker that dies this soon after starting, this many times in a row,
 * is not restarted again: something is wrong beyond a passing fault. */
#define QUICK_DEATH 1.0
#define QUICK_DEATH_LIMIT 5

struct worker {
    pid_t pid;
    ev_tstamp started;
    int quick_deaths;
    int retired;   /* kept dying at start: its sockets closed, tried at the next reload */
    int spawn_due; /* to be started once the reload check is off its thread */
};

struct supervisor {
    const struct config *cfg;
    struct config *cfg_owned; /* the reloaded configuration, once there is one */
    struct ev_loop *loop;
    int *fds;             /* [address][worker] listening sockets */
    int *shared_sessions; /* [worker] their sessions, in shared memory */
    struct admin_side *as; /* --admin, served by this process; or NULL */
    int *channels;        /* [worker] flow channels not yet watched, or -1 */
    struct worker *workers;
    int lifeline[2];      /* a pipe never written: see on_supervisor_gone */
    int running;
    int stopping;
    int status;           /* exit status so far */
    struct reload_check *check; /* SIGHUP's look at the new configuration */
    int reload_again;     /* a SIGHUP came during a check: one more after it */
    ev_signal sigint, sigterm, sighup;
    ev_child child;
};

/* What serves the admin interface: the listener and the modules that
 * have routes there. */
struct admin_side {
    struct admin *admin;
    struct flows_api *flows; /* NULL with --flows 0 */
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

/* The admin listener with the routes of every module that serves there.
 * NULL when --admin is not given, or on failure (logged; *<failed> set). */
static struct admin_side *open_admin(const struct config *cfg, int *failed)
{
    static struct admin_side as;
    char err[512];

    *failed = 0;
    if (!cfg->admin_enabled)
        return NULL;
    as.admin = admin_open(cfg, err, sizeof err);
    if (!as.admin) {
        log_error("%s", err);
        *failed = 1;
        return NULL;
    }
    admin_add_basic_routes(as.admin);
    metrics_register(as.admin);
    as.flows = flows_api_new(as.admin, cfg);
    const struct sockaddr *sa = admin_address(as.admin, &as.addr_len);
    memcpy(&as.addr, sa, as.addr_len);
    return &as;
}

/* Stopping: every flow is in (the channels were read to their end), so
 * --har can be written; then everything goes. */
static void close_admin(struct admin_side *as, const struct config *cfg)
{
    if (!as)
        return;
    if (as->flows) {
        flows_store_drain(flows_api_store(as->flows));
        if (cfg->har_file)
            flows_api_write_har(as->flows, cfg->har_file);
    }
    flows_api_free(as->flows);
    admin_free(as->admin);
}

/* A worker reads the end of a pipe whose other end only its supervisor
 * holds, and nobody writes to: it becomes readable (end of file) when the
 * supervisor is gone, however it went (SIGKILL, a crash, the OOM killer).
 * Nothing would pass signals on or replace workers any more, and the
 * workers would keep the port from a luaproxy started again: each stops,
 * as on SIGTERM. A pipe rather than PR_SET_PDEATHSIG: the kernel clears
 * that when --user changes the credentials, it follows the thread that
 * forked rather than the process, and it needs a getppid() check for a
 * supervisor that died before it was set; an end of file waits in the
 * pipe until the loop looks, and says nothing else. */
static void on_supervisor_gone(struct ev_loop *loop, ev_io *w, int revents)
{
    char byte;
    (void)revents;
    if (read(w->fd, &byte, 1) == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    ev_io_stop(loop, w);
    log_warn("the supervisor is gone: this worker stops");
    proxy_stop(w->data, "supervisor gone");
}

/* Writes --pid-file, if given, once the listening sockets are bound: an
 * instance started while another runs on the same address fails to listen
 * before it touches the file, and so leaves the running one's pid in it
 * (main.c removes the file at exit only if it holds our own pid). 0, or -1
 * (logged). */
static int write_pid_file(const struct config *cfg)
{
    char err[1024];

    if (cfg->pid_file && daemon_write_pid_file(cfg->pid_file, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

/* One worker: a fresh loop and a complete proxy on <listen_fds>. <serve>
 * is the admin side, served on this loop (one process); workers only know
 * its address (<admin_addr>), to refuse it as an upstream, send their
 * flows down <flows_fd> (or -1), and watch <lifeline> (or -1) for their
 * supervisor's end. */
static int run_proxy(const struct config *cfg, int index, const int *listen_fds,
                     int *shared_sessions, struct admin_side *serve,
                     const struct sockaddr_storage *admin_addr, socklen_t admin_addr_len,
                     int flows_fd, int lifeline)
{
    static struct proxy proxy;
    static ev_io supervisor_gone;
    char err[1024];
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);

    if (!loop) {
        log_error("cannot create the event loop");
        return 1;
    }
    if (proxy_init(&proxy, loop, cfg, listen_fds, shared_sessions, cfg->workers, index, err,
                   sizeof err) != 0) {
        log_error("%s", err);
        ev_loop_destroy(loop);
        return 1;
    }
    /* One process: it bound its own sockets just now (see write_pid_file),
     * and is still root if --user is to drop it, for a pid file in /run. */
    if (!listen_fds && write_pid_file(cfg) != 0) {
        proxy_free(&proxy);
        ev_loop_destroy(loop);
        return 1;
    }
    if (!listen_fds) /* workers leave it to their supervisor */
        proxy_log_listeners(&proxy);
    /* Sockets are bound, scripts, keys and logs open: root is no longer
     * needed, and a worker that talks to the network should not keep it. */
    if (cfg->user && daemon_drop_privileges(cfg->user, err, sizeof err) != 0) {
        log_error("%s", err);
        proxy_free(&proxy);
        ev_loop_destroy(loop);
        return 1;
    }
    /* Our loop watches the stop signals now: let any that arrived during
     * start-up through (see spawn). */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
    proxy_set_worker(&proxy, index, cfg->workers);
    if (admin_addr_len > 0) {
        proxy.admin_addr = *admin_addr;
        proxy.admin_addr_len = admin_addr_len;
    }
    if (serve && serve->flows) {
        proxy.flows = flows_new(cfg, flows_store_sink, flows_api_store(serve->flows));
        flows_api_set_proxy(serve->flows, (struct sockaddr *)&proxy.listeners[0].addr,
                            proxy.listeners[0].addr_len);
    } else if (flows_fd >= 0) {
        proxy.flows = flows_new_channel(cfg, loop, flows_fd);
    }
    if (serve)
        admin_start(serve->admin, loop);
    if (lifeline >= 0) {
        ev_io_init(&supervisor_gone, on_supervisor_gone, lifeline, EV_READ);
        supervisor_gone.data = &proxy;
        ev_io_start(loop, &supervisor_gone);
    }
    log_async_start(); /* the loop runs: no log may hold it up from here */
    proxy_run(&proxy);
    ev_io_stop(loop, &supervisor_gone);
    proxy_free(&proxy); /* ends the flows in flight */
    flows_free(proxy.flows);
    proxy.flows = NULL;
    close_admin(serve, cfg);
    ev_loop_destroy(loop);
    return 0;
}

int workers_run_single(const struct config *cfg)
{
    int failed;
    struct admin_side *as = open_admin(cfg, &failed);

    if (failed)
        return 1;
    stats_set_row(0, getpid());
    int status = run_proxy(cfg, 0, NULL, NULL, as, as ? &as->addr : NULL,
                           as ? as->addr_len : 0, -1, -1);
    if (status == 0)
        log_info("stopped");
    return status;
}

static void spawn(struct supervisor *sv, int i)
{
    const struct config *cfg = sv->cfg;
    sigset_t stop_signals, old_mask;
    pid_t pid;
    int channel[2] = {-1, -1};

    /* No fork while a reload check loads scripts on its thread: the child
     * would get the allocator as that thread left it. It starts after. */
    if (reload_check_running(sv->check)) {
        sv->workers[i].spawn_due = 1;
        return;
    }
    sv->workers[i].spawn_due = 0;

    /* Each worker sends its finished flows down its own socketpair; a new
     * worker gets a new one (whatever the old one still held was read). */
    if (sv->as && sv->as->flows &&
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0) {
        log_error("socketpair: %s; worker %d captures no flows", strerror(errno), i + 1);
        channel[0] = channel[1] = -1;
    }

    /* A stop signal that reaches the worker before its own loop watches
     * for it must wait (blocked) rather than hit the handler inherited from
     * this process's loop, which would swallow it. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    sigprocmask(SIG_BLOCK, &stop_signals, &old_mask);
    pid = fork();
    if (pid != 0)
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
    if (pid == -1) {
        log_error("fork: %s", strerror(errno));
        if (channel[0] >= 0) {
            close(channel[0]);
            close(channel[1]);
        }
        sv->status = 1;
        return;
    }
    if (pid == 0) {
        int mine[CONFIG_MAX_LISTEN];
        char tag[16];
        /* The parent's loop is not ours: a worker started after it began
         * running inherits its signal watchers, which libev would refuse
         * to see attached to a second loop. Stop them and drop the copy. */
        if (sv->loop) {
            ev_signal_stop(sv->loop, &sv->sigint);
            ev_signal_stop(sv->loop, &sv->sigterm);
            ev_signal_stop(sv->loop, &sv->sighup);
            ev_child_stop(sv->loop, &sv->child);
            ev_loop_destroy(sv->loop);
        }
        signal(SIGCHLD, SIG_DFL);
        signal(SIGINT, SIG_IGN); /* see proxy_init */
        for (int a = 0; a < cfg->listen_count; a++)
            for (int w = 0; w < cfg->workers; w++) {
                int fd = sv->fds[a * cfg->workers + w];
                if (w == i)
                    mine[a] = fd;
                else
                    close(fd);
            }
        struct sockaddr_storage admin_addr;
        socklen_t admin_addr_len = 0;
        if (sv->as) {
            admin_addr = sv->as->addr;
            admin_addr_len = sv->as->addr_len;
            /* The supervisor serves it: drop the copies of its sockets. */
            flows_api_forget(sv->as->flows);
            admin_forget(sv->as->admin);
        }
        stats_set_row(i + 1, getpid());
        for (int w = 0; sv->channels && w < cfg->workers; w++)
            if (sv->channels[w] >= 0)
                close(sv->channels[w]);
        if (channel[0] >= 0)
            close(channel[0]);
        close(sv->lifeline[1]); /* the supervisor's alone */
        snprintf(tag, sizeof tag, "w%d", i + 1);
        log_set_tag(tag);
        /* A worker replaced while the others serve must not stall on a
         * stderr nobody reads either; its lines are still flushed below. */
        if (sv->loop)
            log_async_start();
        int status = run_proxy(cfg, i, mine, sv->shared_sessions, NULL, &admin_addr,
                               admin_addr_len, channel[1], sv->lifeline[0]);
        log_flush();
        _exit(status);
    }
    if (channel[0] >= 0) {
        close(channel[1]);
        if (sv->loop) {
            flows_store_watch(flows_api_store(sv->as->flows), sv->loop, channel[0]);
        } else {
            if (sv->channels[i] >= 0)
                close(sv->channels[i]);
            sv->channels[i] = channel[0]; /* watched once the loop exists */
        }
    }
    sv->workers[i].pid = pid;
    sv->workers[i].started = ev_time();
    sv->running++;
}

/* Worker <i> is not started again for now. Its listening sockets are
 * closed, so the kernel hands new connections to the other workers' (with
 * SO_REUSEPORT each has its own queue, which nobody would accept from). */
static void retire(struct supervisor *sv, int i)
{
    int n = sv->cfg->workers;
    sv->workers[i].retired = 1;
    for (int a = 0; a < sv->cfg->listen_count; a++) {
        close(sv->fds[a * n + i]);
        sv->fds[a * n + i] = -1;
    }
}

/* A retired worker's sockets made again, on the port the others share,
 * and the worker started. 0, or -1 (logged; it stays retired). */
static int unretire(struct supervisor *sv, int i)
{
    int n = sv->cfg->workers;
    char err[1024];

    for (int a = 0; a < sv->cfg->listen_count; a++) {
        struct sockaddr_storage bound;
        socklen_t len = sizeof bound;
        int other = -1, fd;
        for (int w = 0; w < n && other < 0; w++)
            other = sv->fds[a * n + w];
        if (other < 0 || getsockname(other, (struct sockaddr *)&bound, &len) != 0) {
            log_error("worker %d: no socket left to share the port of", i + 1);
            return -1;
        }
        fd = proxy_listen_socket(&sv->cfg->listen[a], proxy_address_port(&bound), &bound, &len,
                                 err, sizeof err);
        if (fd < 0) {
            log_error("worker %d: %s", i + 1, err);
            return -1;
        }
        sv->fds[a * n + i] = fd;
    }
    sv->workers[i].retired = 0;
    sv->workers[i].quick_deaths = 0;
    spawn(sv, i);
    return 0;
}

/* The stop begins: the supervisor's copies of the listening sockets are
 * closed, so that once each worker has closed its own, the sockets are
 * gone and a new client is refused at once, as with one process. Kept
 * open, they would go on taking connections into a backlog that no one
 * accepts from any more, each reset only when the last worker exits. */
static void stop_listening(struct supervisor *sv)
{
    for (int i = 0; i < sv->cfg->listen_count * sv->cfg->workers; i++) {
        if (sv->fds[i] >= 0)
            close(sv->fds[i]);
        sv->fds[i] = -1;
    }
}

static void on_child_exit(struct ev_loop *loop, ev_child *w, int revents)
{
    struct supervisor *sv = w->data;
    int i, st = w->rstatus;
    (void)revents;

    for (i = 0; i < sv->cfg->workers; i++)
        if (sv->workers[i].pid == w->rpid)
            break;
    if (i == sv->cfg->workers)
        return; /* not one of ours */
    sv->workers[i].pid = 0;
    sv->running--;
    /* Its connections died with it: they no longer count against
     * --max-connections (its replacement starts from zero). */
    __atomic_store_n(&sv->shared_sessions[i], 0, __ATOMIC_RELAXED);
    if (sv->stopping) {
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            sv->status = 1;
        if (sv->running == 0)
            ev_break(loop, EVBREAK_ALL);
        return;
    }
    /* Whatever ended it, its sockets still receive connections: a worker
     * that stopped cleanly (someone sent it SIGTERM) is replaced too. */
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        log_info("worker %d (pid %d) stopped; starting a new one", i + 1, w->rpid);
    else if (WIFSIGNALED(st))
        log_error("worker %d (pid %d) died of signal %d; starting a new one", i + 1, w->rpid,
                  WTERMSIG(st));
    else
        log_error("worker %d (pid %d) exited with status %d; starting a new one", i + 1,
                  w->rpid, WEXITSTATUS(st));
    if (ev_time() - sv->workers[i].started < QUICK_DEATH) {
        if (++sv->workers[i].quick_deaths >= QUICK_DEATH_LIMIT && sv->running > 0) {
            /* The others still serve: stopping them too would turn one
             * worker's trouble into an outage. */
            log_error("worker %d keeps dying at start; the other %d serve without it until "
                      "the next reload (SIGHUP) tries it again",
                      i + 1, sv->running);
            retire(sv, i);
            return;
        }
        if (sv->workers[i].quick_deaths >= QUICK_DEATH_LIMIT) {
            log_error("worker %d keeps dying at start; stopping", i + 1);
            sv->status = 1;
            sv->stopping = 1;
            stop_listening(sv);
            for (int j = 0; j < sv->cfg->workers; j++)
                if (sv->workers[j].pid)
                    kill(sv->workers[j].pid, SIGTERM);
            if (sv->running == 0)
                ev_break(loop, EVBREAK_ALL);
            return;
        }
    } else {
        sv->workers[i].quick_deaths = 0;
    }
    spawn(sv, i);
}

/* Workers whose start waited for a reload check (see spawn). */
static void spawn_waiting(struct supervisor *sv)
{
    for (int i = 0; i < sv->cfg->workers && !sv->stopping; i++)
        if (sv->workers[i].spawn_due)
            spawn(sv, i);
}

/* A reload check is done (reload_check.c). Each worker reads the files
 * again itself; the check first reports a broken file or script once,
 * keeps the workers on the running configuration, and gives a worker
 * started later the new one. */
static void on_reload_checked(void *arg, struct config *fresh)
{
    struct supervisor *sv = arg;

    if (fresh && !sv->stopping) {
        metrics_set_config(fresh);
        log_set_level(fresh->verbose ? LOG_DEBUG : LOG_INFO);
        trace_enabled = fresh->trace;
        if (sv->cfg_owned) /* fresh holds its own reference (main releases the first) */
            tls_trust_release(sv->cfg_owned);
        free(sv->cfg_owned);
        sv->cfg = sv->cfg_owned = fresh;
        for (int i = 0; i < sv->cfg->workers; i++)
            if (sv->workers[i].pid)
                kill(sv->workers[i].pid, SIGHUP);
        /* After the SIGHUPs: a worker started now has the new configuration. */
        for (int i = 0; i < sv->cfg->workers; i++)
            if (sv->workers[i].retired && unretire(sv, i) == 0)
                log_info("reload: worker %d started again", i + 1);
    } else {
        if (fresh)
            tls_trust_release(fresh);
        free(fresh);
    }
    spawn_waiting(sv);
    if (sv->reload_again && !sv->stopping) {
        sv->reload_again = 0;
        reload_check_start(sv->check, sv->cfg);
    }
}

/* SIGHUP: the new configuration is checked (on a thread), then every
 * worker reloads it. */
static void on_reload_signal(struct supervisor *sv)
{
    if (sv->stopping)
        return;
    if (!sv->check && !(sv->check = reload_check_new(sv->loop, on_reload_checked, sv))) {
        log_error("reload: out of memory; the running configuration stays");
        return;
    }
    if (reload_check_running(sv->check)) {
        sv->reload_again = 1; /* with the files as they are once this one ends */
        return;
    }
    reload_check_start(sv->check, sv->cfg);
}

/* SIGTERM/SIGINT: every worker drains and stops; SIGHUP: every worker
 * reloads the configuration and its scripts. */
static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct supervisor *sv = w->data;
    (void)revents;

    if (w->signum == SIGHUP) {
        on_reload_signal(sv);
        return;
    }
    if (sv->stopping)
        return;
    sv->stopping = 1;
    log_info("signal %d: stopping %d worker(s)", w->signum, sv->running);
    stop_listening(sv);
    for (int i = 0; i < sv->cfg->workers; i++)
        if (sv->workers[i].pid)
            kill(sv->workers[i].pid, SIGTERM);
    if (sv->running == 0)
        ev_break(loop, EVBREAK_ALL);
}

/* Gives back what workers_run() holds: on its way out, or when starting
 * fails part-way (what was not made yet is NULL, or -1 for a socket). */
static void supervisor_release(struct supervisor *sv, int count, const struct config *cfg)
{
    if (sv->fds)
        for (int i = 0; i < count; i++)
            if (sv->fds[i] >= 0)
                close(sv->fds[i]);
    free(sv->fds);
    free(sv->workers);
    if (sv->cfg_owned)
        tls_trust_release(sv->cfg_owned);
    free(sv->cfg_owned);
    if (sv->shared_sessions && sv->shared_sessions != MAP_FAILED)
        munmap(sv->shared_sessions, sizeof(int) * (size_t)cfg->workers);
    close_admin(sv->as, cfg);
    free(sv->channels);
    for (int i = 0; i < 2; i++)
        if (sv->lifeline[i] >= 0)
            close(sv->lifeline[i]);
}

int workers_run(const struct config *cfg)
{
    struct supervisor sv;
    char err[1024];
    int n = cfg->workers, count = cfg->listen_count * n, failed;

    memset(&sv, 0, sizeof sv);
    sv.cfg = cfg;
    sv.lifeline[0] = sv.lifeline[1] = -1;
    /* Refuse a broken script before any worker starts. */
    if (hooks_try_load(cfg, err, sizeof err) != 0) {
        log_error("%s", err);
        return 1;
    }
    sv.fds = malloc(sizeof *sv.fds * (size_t)count);
    if (sv.fds)
        for (int i = 0; i < count; i++)
            sv.fds[i] = -1;
    sv.workers = calloc((size_t)n, sizeof *sv.workers);
    sv.shared_sessions = mmap(NULL, sizeof(int) * (size_t)n, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!sv.fds || !sv.workers || sv.shared_sessions == MAP_FAILED) {
        log_error("out of memory");
        supervisor_release(&sv, count, cfg);
        return 1;
    }
    for (int a = 0; a < cfg->listen_count; a++) {
        struct sockaddr_storage bound;
        socklen_t len;
        uint16_t port = 0;
        for (int w = 0; w < n; w++) {
            int fd = proxy_listen_socket(&cfg->listen[a], port, &bound, &len, err, sizeof err);
            if (fd < 0) {
                log_error("%s", err);
                supervisor_release(&sv, count, cfg);
                return 1;
            }
            sv.fds[a * n + w] = fd;
            if (w == 0) /* port 0 picks one; the other workers must share it */
                port = proxy_address_port(&bound);
        }
    }

    /* Bound before the workers start, so each knows the address to refuse
     * as an upstream; served by this process, which sees every worker. */
    sv.as = open_admin(cfg, &failed);
    if (failed) {
        supervisor_release(&sv, count, cfg);
        return 1;
    }
    if (write_pid_file(cfg) != 0) {
        supervisor_release(&sv, count, cfg);
        return 1;
    }
    for (int a = 0; a < cfg->listen_count; a++) { /* see proxy_log_listeners */
        struct sockaddr_storage bound;
        socklen_t len = sizeof bound;
        if (getsockname(sv.fds[a * n], (struct sockaddr *)&bound, &len) == 0)
            proxy_log_listening((struct sockaddr *)&bound);
    }
    sv.channels = malloc(sizeof *sv.channels * (size_t)n);
    if (!sv.channels) {
        log_error("out of memory");
        supervisor_release(&sv, count, cfg);
        return 1;
    }
    for (int i = 0; i < n; i++)
        sv.channels[i] = -1;
    if (sv.as && sv.as->flows) {
        /* Replays go to the proxy's first address, on the port all share. */
        struct sockaddr_storage first;
        socklen_t first_len = sizeof first;
        if (getsockname(sv.fds[0], (struct sockaddr *)&first, &first_len) == 0)
            flows_api_set_proxy(sv.as->flows, (struct sockaddr *)&first, first_len);
    }

    if (pipe2(sv.lifeline, O_CLOEXEC | O_NONBLOCK) != 0) {
        log_error("pipe: %s", strerror(errno));
        supervisor_release(&sv, count, cfg);
        return 1;
    }
    for (int i = 0; i < n; i++)
        spawn(&sv, i);
    log_info("%d workers started", sv.running);

    sv.loop = ev_default_loop(EVFLAG_AUTO);
    ev_signal_init(&sv.sigint, on_signal, SIGINT);
    ev_signal_init(&sv.sigterm, on_signal, SIGTERM);
    ev_signal_init(&sv.sighup, on_signal, SIGHUP);
    ev_child_init(&sv.child, on_child_exit, 0, 0);
    sv.sigint.data = sv.sigterm.data = sv.sighup.data = sv.child.data = &sv;
    ev_signal_start(sv.loop, &sv.sigint);
    ev_signal_start(sv.loop, &sv.sigterm);
    ev_signal_start(sv.loop, &sv.sighup);
    ev_child_start(sv.loop, &sv.child);
    /* Watched now: a SIGHUP held back since main() comes through as a
     * reload (the workers unblock theirs in run_proxy). */
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &hup, NULL);
    if (sv.as) {
        admin_start(sv.as->admin, sv.loop);
        for (int i = 0; i < n; i++)
            if (sv.channels[i] >= 0) {
                flows_store_watch(flows_api_store(sv.as->flows), sv.loop, sv.channels[i]);
                sv.channels[i] = -1;
            }
    }
    /* A worker may have died before the watcher existed. */
    for (int i = 0; i < n; i++) {
        int st;
        pid_t pid = sv.workers[i].pid ? waitpid(sv.workers[i].pid, &st, WNOHANG) : 0;
        if (pid > 0) {
            sv.child.rpid = pid;
            sv.child.rstatus = st;
            on_child_exit(sv.loop, &sv.child, 0);
        }
    }
    if (sv.running > 0) {
        log_async_start();
        ev_run(sv.loop, 0);
    }

    reload_check_free(sv.check);
    supervisor_release(&sv, count, cfg);
    ev_loop_destroy(sv.loop);
    log_info("stopped");
    return sv.status;
}
