/*
 * stats.h - the proxy's counters, summed over all workers.
 *
 * The relay counts through stats_add() and friends and knows nothing of how
 * they are shown (metrics.c renders them for the admin listener). The
 * counters live in shared memory mapped before the workers are forked:
 * each worker adds to its own row without locks (relaxed atomics, so a
 * reader in another process never sees a torn value), and readers sum the
 * rows. A row belongs to a worker slot, so a restarted worker carries on
 * its predecessor's counts; only its gauges start again from zero.
 */
#ifndef LUAPROXY_STATS_H
#define LUAPROXY_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Method classes and status classes of the requests counter. */
enum stats_method {
    STATS_GET, STATS_HEAD, STATS_POST, STATS_PUT, STATS_DELETE, STATS_CONNECT,
    STATS_OPTIONS, STATS_OTHER, STATS_METHOD_COUNT,
};
#define STATS_STATUS_CLASSES 5 /* 1xx..5xx */

/* Hook time histogram bounds in seconds (the last bucket is +Inf). */
#define STATS_HOOK_BUCKETS 10
extern const double stats_hook_bounds[STATS_HOOK_BUCKETS];
#define STATS_HOOK_PHASES 6 /* enum hook_phase: HOOK_PHASE_COUNT (hooks_run.c checks) */

enum stats_counter {
    STAT_CONNECTIONS_ACCEPTED,
    STAT_CONNECTIONS_OPEN,       /* gauge */
    STAT_CONNECTIONS_RECLAIMED,  /* idle clients closed to make room for a new one */
    STAT_TUNNELS_OPEN,           /* gauge */
    STAT_BYTES_IN,               /* from clients: request bodies, tunnel bytes up */
    STAT_BYTES_OUT,              /* to clients: response bodies, tunnel bytes down */
    STAT_UPSTREAM_CONNECT_ERRORS,
    STAT_UPSTREAM_TIMEOUTS,
    STAT_DNS_LOOKUPS,
    STAT_DNS_MICROSECONDS,
    STAT_AUTH_FAILURES,
    STAT_AUTH_CHECKS,            /* passwords verified by the pool (not cached) */
    STAT_AUTH_PENDING,           /* gauge: checks waiting or running */
    STAT_FLOW_CAPTURE_BYTES,     /* gauge: body bytes held by flow captures in flight */
    STAT_LOG_LINES_DROPPED,      /* diagnostics a stalled stderr could not take */
    STAT_ACCESS_LOG_LINES_DROPPED,
    STAT_REQUESTS, /* STATS_METHOD_COUNT x STATS_STATUS_CLASSES follow */
    STAT_HOOK_CALLS = STAT_REQUESTS + STATS_METHOD_COUNT * STATS_STATUS_CLASSES,
    STAT_HOOK_ERRORS = STAT_HOOK_CALLS + STATS_HOOK_PHASES,
    STAT_HOOK_TIMEOUTS = STAT_HOOK_ERRORS + STATS_HOOK_PHASES,
    STAT_HOOK_MICROSECONDS = STAT_HOOK_TIMEOUTS + STATS_HOOK_PHASES,
    /* per phase, STATS_HOOK_BUCKETS cumulative-to-be bucket counts */
    STAT_HOOK_BUCKET = STAT_HOOK_MICROSECONDS + STATS_HOOK_PHASES,
    STAT_COUNT = STAT_HOOK_BUCKET + STATS_HOOK_PHASES * STATS_HOOK_BUCKETS,
};

#define STATS_MAX_ROWS 257 /* one per worker (up to 256), row 0 in one process */

/* Maps the shared counters; call once before forking. 0, or -1. */
int stats_init(int rows);
void stats_free(void);
/* This process writes to row <row> from now on (a worker after fork);
 * its gauges start from zero. */
void stats_set_row(int row, pid_t pid);

/* Adds <n> (may be negative for gauges). Cheap: one relaxed atomic add
 * to this process's own row; a no-op before stats_init. */
void stats_add(enum stats_counter c, int64_t n);
/* The same for a counter that several threads of a process add to (the
 * log lines dropped): a locked add, for counters that are rarely touched. */
void stats_add_any_thread(enum stats_counter c, int64_t n);
void stats_request(const char *method, size_t method_len, int status);
/* One hook call of <phase> that took <seconds>; <failed>, <timed_out>. */
void stats_hook_call(int phase, double seconds, int failed, int timed_out);

/* The bytes that flow captures in flight hold, all workers together, are
 * capped: takes up to <want> more for this worker, as many as keep the
 * total within <max>, and returns how many it took. Also counted in this
 * worker's STAT_FLOW_CAPTURE_BYTES. Exact across workers (one shared
 * total, compare-and-swap), and cheap enough for once per kept piece. */
size_t stats_capture_take(size_t want, size_t max);
/* Gives back <n> bytes taken with stats_capture_take. */
void stats_capture_give(size_t n);

/* Readers: the sum over all rows. */
int64_t stats_total(enum stats_counter c);
/* The pid last seen in <row>, 0 for none. */
pid_t stats_row_pid(int row);
int stats_rows(void);
double stats_start_time(void);

const char *stats_method_name(enum stats_method m);

#endif
