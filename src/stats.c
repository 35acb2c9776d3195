/*
 * stats.c - counters in shared memory, one row per worker.
 *
 * Writers add to their own row only, so two workers never contend for a
 * cache line on the hot path; readers (the admin listener, in whichever
 * process serves it) sum the rows. Relaxed atomics are enough: every
 * counter stands alone and a scrape needs no snapshot across them.
 */
#include "stats.h"

#include <string.h>
#include <sys/mman.h>
#include <time.h>

const double stats_hook_bounds[STATS_HOOK_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
};

struct row {
    int64_t pid;
    int64_t counters[STAT_COUNT];
};

struct shared {
    double start_time;
    int rows;
    /* What flow captures in flight hold, all rows together: the figure
     * stats_capture_take checks against its cap. Each row's share is also
     * in its STAT_FLOW_CAPTURE_BYTES, so a dead worker's can be taken out
     * again (stats_set_row). */
    int64_t capture_total;
    struct row row[];
};

static struct shared *shared;
static size_t shared_size;
static struct row *mine;
/* Before stats_init (the unit tests): the total is this process's own. */
static int64_t local_capture_total;

int stats_init(int rows)
{
    if (rows < 1 || rows > STATS_MAX_ROWS)
        return -1;
    shared_size = sizeof *shared + sizeof(struct row) * (size_t)rows;
    void *p = mmap(NULL, shared_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    shared = p;
    shared->rows = rows;
    shared->start_time = (double)time(NULL);
    mine = &shared->row[0];
    return 0;
}

void stats_free(void)
{
    if (shared)
        munmap(shared, shared_size);
    shared = NULL;
    mine = NULL;
}

void stats_set_row(int row, pid_t pid)
{
    if (!shared || row < 0 || row >= shared->rows)
        return;
    mine = &shared->row[row];
    __atomic_store_n(&mine->pid, (int64_t)pid, __ATOMIC_RELAXED);
    /* A worker that died held its captures until the end: they are gone
     * with it, and so is their share of the cap. (Killed between its two
     * updates, it leaves at most one piece counted.) */
    int64_t held = __atomic_exchange_n(&mine->counters[STAT_FLOW_CAPTURE_BYTES], 0,
                                       __ATOMIC_RELAXED);
    if (held != 0)
        __atomic_sub_fetch(&shared->capture_total, held, __ATOMIC_RELAXED);
    __atomic_store_n(&mine->counters[STAT_CONNECTIONS_OPEN], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&mine->counters[STAT_TUNNELS_OPEN], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&mine->counters[STAT_AUTH_PENDING], 0, __ATOMIC_RELAXED);
}

void stats_add(enum stats_counter c, int64_t n)
{
    /* A row has one writer, its worker's event loop (a worker replaced
     * after it died takes over its row; the auth threads hand their
     * counts to the loop), so a load and a store suffice: an atomic add
     * is a locked instruction even when relaxed, several per exchange.
     * Readers in other processes still never see a torn value. */
    if (mine) {
        int64_t *counter = &mine->counters[c];
        __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
    }
}

size_t stats_capture_take(size_t want, size_t max)
{
    int64_t *total = shared ? &shared->capture_total : &local_capture_total;
    int64_t now = __atomic_load_n(total, __ATOMIC_RELAXED), got;

    /* Workers take from the same total at once: a compare-and-swap makes
     * sure no two of them take the last room twice. */
    do {
        int64_t room = (int64_t)max - now;
        if (room <= 0)
            return 0;
        got = (int64_t)want < room ? (int64_t)want : room;
    } while (!__atomic_compare_exchange_n(total, &now, now + got, 1, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    stats_add(STAT_FLOW_CAPTURE_BYTES, got);
    return (size_t)got;
}

void stats_capture_give(size_t n)
{
    int64_t *total = shared ? &shared->capture_total : &local_capture_total;
    if (n == 0)
        return;
    stats_add(STAT_FLOW_CAPTURE_BYTES, -(int64_t)n);
    __atomic_sub_fetch(total, (int64_t)n, __ATOMIC_RELAXED);
}

void stats_add_any_thread(enum stats_counter c, int64_t n)
{
    if (mine)
        __atomic_add_fetch(&mine->counters[c], n, __ATOMIC_RELAXED);
}

/* Methods are case-sensitive (RFC 9110 9.1). Every exchange is counted:
 * the length picks the candidates, the bytes decide. */
static enum stats_method method_class(const char *m, size_t len)
{
#define IS(lit) (memcmp(m, lit, sizeof(lit) - 1) == 0)
    switch (len) {
    case 3:
        return IS("GET") ? STATS_GET : IS("PUT") ? STATS_PUT : STATS_OTHER;
    case 4:
        return IS("HEAD") ? STATS_HEAD : IS("POST") ? STATS_POST : STATS_OTHER;
    case 6:
        return IS("DELETE") ? STATS_DELETE : STATS_OTHER;
    case 7:
        return IS("CONNECT") ? STATS_CONNECT : IS("OPTIONS") ? STATS_OPTIONS : STATS_OTHER;
    default:
        return STATS_OTHER;
    }
#undef IS
}

const char *stats_method_name(enum stats_method m)
{
    static const char *const names[] = {"GET",     "HEAD",    "POST",  "PUT",
                                        "DELETE",  "CONNECT", "OPTIONS", "other"};
    return names[m];
}

void stats_request(const char *method, size_t method_len, int status)
{
    enum stats_method m = method ? method_class(method, method_len) : STATS_OTHER;
    int cls = status / 100 - 1;
    if (cls < 0 || cls >= STATS_STATUS_CLASSES)
        return; /* no response was sent (the client left first) */
    stats_add((enum stats_counter)(STAT_REQUESTS + (int)m * STATS_STATUS_CLASSES + cls), 1);
}

void stats_hook_call(int phase, double seconds, int failed, int timed_out)
{
    int b = 0;
    if (phase < 0 || phase >= STATS_HOOK_PHASES)
        return;
    stats_add((enum stats_counter)(STAT_HOOK_CALLS + phase), 1);
    if (failed)
        stats_add((enum stats_counter)(STAT_HOOK_ERRORS + phase), 1);
    if (timed_out)
        stats_add((enum stats_counter)(STAT_HOOK_TIMEOUTS + phase), 1);
    stats_add((enum stats_counter)(STAT_HOOK_MICROSECONDS + phase), (int64_t)(seconds * 1e6));
    /* Stored per bucket; the renderer makes them cumulative. A call past
     * the last bound counts only in +Inf (hook_calls). */
    while (b < STATS_HOOK_BUCKETS && seconds > stats_hook_bounds[b])
        b++;
    if (b < STATS_HOOK_BUCKETS)
        stats_add((enum stats_counter)(STAT_HOOK_BUCKET + phase * STATS_HOOK_BUCKETS + b), 1);
}

int64_t stats_total(enum stats_counter c)
{
    int64_t sum = 0;
    if (!shared)
        return 0;
    for (int i = 0; i < shared->rows; i++)
        sum += __atomic_load_n(&shared->row[i].counters[c], __ATOMIC_RELAXED);
    return sum;
}

pid_t stats_row_pid(int row)
{
    if (!shared || row < 0 || row >= shared->rows)
        return 0;
    return (pid_t)__atomic_load_n(&shared->row[row].pid, __ATOMIC_RELAXED);
}

int stats_rows(void)
{
    return shared ? shared->rows : 0;
}

double stats_start_time(void)
{
    return shared ? shared->start_time : 0;
}
