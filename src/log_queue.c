/*
 * log_queue.c - bounded queues of log lines, each written by its own
 * thread (see log_queue.h for why).
 *
 * Owns the rings, the writer threads and the list of every queue of the
 * process; not the format of a line, nor what a line is for (log.c and
 * access_log.c). One mutex guards every queue: the sections under it are
 * a copy of one line, and two or three queues per process never contend
 * enough to need more.
 *
 * A queue's ring holds records, a 4-byte length and then the line:
 *
 *            head                       head + used
 *   ring:  [....|len|line...|len|line...|..........]   (wraps around)
 *
 * Forks: the supervisor forks workers while its own writer runs. A child
 * has no writer thread, and the lines in its copy of a ring are its
 * parent's to write, so at a fork (pthread_atfork) the queues are locked
 * first, and the child empties its copies and starts a writer of its own
 * with its first line; a queue its parent was closing is not the child's.
 */
#include "log_queue.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A report of a loss is at most this long. */
#define REPORT_MAX 512
/* The room ordinary lines leave for urgent ones (log_queue_put_urgent),
 * in a queue that takes them (log_queue_keep_urgent_room); a loss is
 * reported once ordinary lines fit again, so reports do not eat it
 * either. */
#define URGENT_ROOM(q) ((q)->urgent_room)
/* One write(2) carries whole lines up to this many bytes: no more than a
 * pipe writes at once, so that lines of several processes sharing a pipe
 * never split each other. */
#define BATCH_MAX PIPE_BUF

enum writer_state {
    WRITER_NONE,    /* no line yet (or a fresh child): started by the first */
    WRITER_RUNNING,
    WRITER_FAILED,  /* no thread could be started: lines are written by put */
};

struct log_queue {
    struct log_queue *next, *prev; /* every queue of the process */
    int fd;
    int owns_fd;
    size_t capacity;
    char *ring;       /* <capacity> bytes, made with the writer */
    size_t head;      /* offset of the oldest record */
    size_t used;      /* bytes of records queued */
    uint64_t dropped; /* lines refused since the last report */
    size_t urgent_room; /* left to urgent lines: 0, or a quarter */
    int writing;      /* the writer is writing a batch it took out */
    int running;      /* the writer thread is in its loop */
    int closing;
    enum writer_state writer;
    pthread_cond_t wake; /* the writer waits here for lines */
    log_queue_report_fn *report;
    log_queue_error_fn *on_error;
    void *report_arg;
    uint64_t lost;    /* the writer's: lines lost to failed writes since the last that worked */
    int failing;      /* the writer's: its last write failed */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t drained; /* a writer has written all it had */
static struct log_queue *queues;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_drained(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&drained, &attr);
    pthread_condattr_destroy(&attr);
}

static void unlink_queue(struct log_queue *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        queues = q->next;
    if (q->next)
        q->next->prev = q->prev;
}

static void destroy(struct log_queue *q)
{
    if (q->owns_fd)
        close(q->fd);
    pthread_cond_destroy(&q->wake);
    free(q->ring);
    free(q);
}

static void on_fork_prepare(void)
{
    pthread_mutex_lock(&mu);
}

static void on_fork_parent(void)
{
    pthread_mutex_unlock(&mu);
}

/* The forking thread holds <mu> here and is the only thread: no writer
 * waits on any condition variable, so they are made afresh. */
static void on_fork_child(void)
{
    init_drained();
    for (struct log_queue *q = queues, *next; q; q = next) {
        next = q->next;
        pthread_cond_init(&q->wake, NULL);
        if (q->closing) {
            unlink_queue(q);
            destroy(q); /* closes this process's copy of the descriptor */
            continue;
        }
        free(q->ring);
        q->ring = NULL;
        q->head = q->used = 0;
        q->dropped = 0;
        q->lost = 0;
        q->failing = 0;
        q->writing = 0;
        q->running = 0;
        q->writer = WRITER_NONE;
    }
    pthread_mutex_unlock(&mu);
}

static void init_once(void)
{
    init_drained();
    pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child);
}

/* Writes all of <buf>, however long the output takes: this runs on the
 * writer thread. What cannot be written (a closed pipe, a full disk) is
 * lost: a log must never stop the proxy. Returns the bytes written: fewer
 * than <len> on a failure, with errno set. */
static size_t write_all(int fd, const char *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n > 0) {
            done += (size_t)n;
        } else if (n == -1 && errno == EINTR) {
            continue;
        } else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Someone sharing the file description made it non-blocking. */
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, -1) == -1 && errno != EINTR)
                break;
        } else {
            if (n == 0)
                errno = EIO; /* a write that takes nothing and says nothing */
            break;
        }
    }
    return done;
}

/* Writes a batch of <n> bytes and tells the queue's error callback about
 * what a failed write lost (the lines not written whole) and about the
 * output working again. Writer thread, no lock held. */
static void write_batch(struct log_queue *q, const char *batch, size_t n)
{
    size_t done = write_all(q->fd, batch, n);

    if (done < n) {
        int err = errno, first = !q->failing;
        uint64_t lost = 0;
        for (size_t i = done; i < n; i++)
            lost += batch[i] == '\n';
        q->failing = 1;
        q->lost += lost;
        if (q->on_error)
            q->on_error(q->report_arg, err, lost, first);
    } else if (q->failing) {
        uint64_t lost = q->lost;
        q->failing = 0;
        q->lost = 0;
        if (q->on_error)
            q->on_error(q->report_arg, 0, lost, 0);
    }
}

/* Copies <len> bytes at <off> past the head out of the ring. */
static void ring_read(const struct log_queue *q, size_t off, void *dst, size_t len)
{
    size_t pos = (q->head + off) % q->capacity;
    size_t first = q->capacity - pos < len ? q->capacity - pos : len;
    memcpy(dst, q->ring + pos, first);
    memcpy((char *)dst + first, q->ring, len - first);
}

static void ring_write(struct log_queue *q, const void *src, size_t len)
{
    size_t pos = (q->head + q->used) % q->capacity;
    size_t first = q->capacity - pos < len ? q->capacity - pos : len;
    memcpy(q->ring + pos, src, first);
    memcpy(q->ring, (const char *)src + first, len - first);
    q->used += len;
}

static int fits(const struct log_queue *q, size_t len)
{
    return sizeof(uint32_t) + len <= q->capacity - q->used;
}

static void put_record(struct log_queue *q, const char *line, size_t len)
{
    uint32_t n = (uint32_t)len;
    ring_write(q, &n, sizeof n);
    ring_write(q, line, len);
}

/* Takes whole lines out of the ring into <out> (LOG_QUEUE_LINE_MAX
 * bytes): up to BATCH_MAX bytes, or one longer line. Returns the bytes. */
static size_t take_batch(struct log_queue *q, char *out)
{
    size_t n = 0;
    while (q->used > 0) {
        uint32_t len;
        ring_read(q, 0, &len, sizeof len);
        if (n > 0 && n + len > BATCH_MAX)
            break;
        ring_read(q, sizeof len, out + n, len);
        n += len;
        q->head = (q->head + sizeof len + len) % q->capacity;
        q->used -= sizeof len + len;
    }
    return n;
}

static int busy(const struct log_queue *q)
{
    return q->writer == WRITER_RUNNING && (q->used > 0 || q->writing || q->dropped > 0);
}

static void *writer_main(void *arg)
{
    struct log_queue *q = arg;
    char batch[LOG_QUEUE_LINE_MAX];

    pthread_mutex_lock(&mu);
    q->running = 1;
    pthread_cond_broadcast(&drained); /* log_queue_start waits for this */
    for (;;) {
        if (q->dropped > 0 && fits(q, REPORT_MAX + URGENT_ROOM(q))) {
            /* The output moved: the loss is told where it happened. Lines
             * are refused until then (put), so the room only grows while
             * the report is made without the lock. */
            uint64_t n = q->dropped;
            char line[REPORT_MAX];
            size_t len = 0;
            pthread_mutex_unlock(&mu);
            if (q->report)
                len = q->report(q->report_arg, n, line, sizeof line);
            pthread_mutex_lock(&mu);
            if (len > 0 && len <= sizeof line)
                put_record(q, line, len);
            q->dropped -= n;
            continue;
        }
        if (q->used == 0) {
            pthread_cond_broadcast(&drained);
            if (q->closing)
                break;
            pthread_cond_wait(&q->wake, &mu);
            continue;
        }
        size_t n = take_batch(q, batch);
        q->writing = 1;
        pthread_mutex_unlock(&mu);
        write_batch(q, batch, n);
        pthread_mutex_lock(&mu);
        q->writing = 0;
    }
    unlink_queue(q);
    pthread_mutex_unlock(&mu);
    destroy(q);
    return NULL;
}

/* Makes the ring and starts the writer (under <mu>). 0, or -1. The
 * thread takes no signals: they are the loop's. */
static int start_writer(struct log_queue *q)
{
    pthread_attr_t attr;
    pthread_t thread;
    sigset_t all, old;
    int rc;

    q->ring = malloc(q->capacity);
    if (!q->ring)
        return -1;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&thread, &attr, writer_main, q);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(q->ring);
        q->ring = NULL;
        return -1;
    }
    return 0;
}

struct log_queue *log_queue_new(int fd, int owns_fd, size_t capacity, log_queue_report_fn *report,
                                void *report_arg)
{
    struct log_queue *q = calloc(1, sizeof *q);

    pthread_once(&once, init_once);
    if (!q)
        return NULL;
    q->fd = fd;
    q->owns_fd = owns_fd;
    q->capacity = capacity;
    q->report = report;
    q->report_arg = report_arg;
    pthread_cond_init(&q->wake, NULL);
    pthread_mutex_lock(&mu);
    q->next = queues;
    if (queues)
        queues->prev = q;
    queues = q;
    pthread_mutex_unlock(&mu);
    return q;
}

void log_queue_on_error(struct log_queue *q, log_queue_error_fn *fn)
{
    pthread_mutex_lock(&mu);
    q->on_error = fn;
    pthread_mutex_unlock(&mu);
}

void log_queue_start(struct log_queue *q)
{
    pthread_mutex_lock(&mu);
    if (q->writer == WRITER_NONE)
        q->writer = start_writer(q) == 0 ? WRITER_RUNNING : WRITER_FAILED;
    while (q->writer == WRITER_RUNNING && !q->running)
        pthread_cond_wait(&drained, &mu);
    pthread_mutex_unlock(&mu);
}

/*
 * Whether a line of <len> bytes is refused. An ordinary line leaves
 * URGENT_ROOM for urgent ones, and none is taken between a loss and its
 * report. An urgent line (a warning, an error) is taken while
 * ordinary ones are being dropped, so that a flood of everyday lines (a
 * client sending bad request after bad request) cannot push out the line
 * that says something is wrong; it leaves room for the report, which the
 * writer makes without the lock, counting on that room.
 */
static int refused(const struct log_queue *q, size_t len, int urgent)
{
    if (len > LOG_QUEUE_LINE_MAX)
        return 1;
    if (urgent)
        return !fits(q, len + REPORT_MAX);
    return q->dropped > 0 || !fits(q, len + URGENT_ROOM(q));
}

static int put(struct log_queue *q, const char *line, size_t len, int urgent)
{
    int rc = 0;

    pthread_mutex_lock(&mu);
    if (q->writer == WRITER_NONE)
        q->writer = start_writer(q) == 0 ? WRITER_RUNNING : WRITER_FAILED;
    if (q->writer == WRITER_FAILED) {
        pthread_mutex_unlock(&mu);
        write_all(q->fd, line, len); /* as it was done before there were queues */
        return 0;
    }
    if (refused(q, len, urgent)) {
        /* The first loss wakes a writer that waits for lines, so that it
         * reports it even if no other line comes. */
        if (q->dropped++ == 0)
            pthread_cond_signal(&q->wake);
        rc = -1;
    } else {
        if (q->used == 0)
            pthread_cond_signal(&q->wake); /* it may be waiting */
        put_record(q, line, len);
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

int log_queue_put(struct log_queue *q, const char *line, size_t len)
{
    return put(q, line, len, 0);
}

void log_queue_keep_urgent_room(struct log_queue *q)
{
    pthread_mutex_lock(&mu);
    q->urgent_room = q->capacity / 4;
    pthread_mutex_unlock(&mu);
}

int log_queue_put_urgent(struct log_queue *q, const char *line, size_t len)
{
    return put(q, line, len, 1);
}

void log_queue_close(struct log_queue *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&mu);
    if (q->writer != WRITER_RUNNING) {
        unlink_queue(q);
        pthread_mutex_unlock(&mu);
        destroy(q);
        return;
    }
    q->closing = 1;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&mu);
}

int log_queue_flush_all(double seconds)
{
    struct timespec deadline;
    int stuck = 0;

    pthread_once(&once, init_once);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)seconds;
    deadline.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&mu);
    for (;;) {
        struct log_queue *q = queues;
        while (q && !busy(q))
            q = q->next;
        if (!q)
            break;
        if (pthread_cond_timedwait(&drained, &mu, &deadline) == ETIMEDOUT) {
            for (q = queues; q && !busy(q);)
                q = q->next;
            stuck = q != NULL;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    return stuck ? -1 : 0;
}
