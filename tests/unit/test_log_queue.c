/*
 * test_log_queue.c - unit tests for the queues that keep a slow log from
 * holding up the event loop.
 *
 * A pipe nobody reads stands for the stalled output: putting lines must
 * never wait on it (the test would hang), the lines that do not fit are
 * refused and counted, and once the pipe is read again every kept line
 * comes out whole and in order, with the report of the loss in the place
 * of the lost ones. A forked child must not inherit its parent's backlog
 * nor a lock held by its parent's writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "log_queue.h"
#include "tap.h"

static size_t report(void *arg, uint64_t dropped, char *line, size_t size)
{
    (void)arg;
    return (size_t)snprintf(line, size, "dropped %llu\n", (unsigned long long)dropped);
}

/* Reads from <fd> into <buf> (at most <size> bytes) until <want> is in
 * it. Returns the bytes read, or 0 on EOF or error first. */
static size_t read_until(int fd, char *buf, size_t size, const char *want)
{
    size_t n = 0;
    while (n < size - 1) {
        /* Bounded: a line that never comes fails the test, not hangs it. */
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 10000) != 1)
            return 0;
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r <= 0)
            return 0;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, want))
            return n;
    }
    return 0;
}

/* Fills pipe <fd> to the last byte with 'f's, so that the queue's writer
 * blocks on its first write: nothing it does can then race the test's
 * puts. Returns the bytes written. */
static size_t fill_pipe(int fd)
{
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    int flags = fcntl(fd, F_GETFL);

    memset(buf, 'f', sizeof buf);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    while ((r = write(fd, buf, sizeof buf)) > 0)
        n += (size_t)r;
    while ((r = write(fd, buf, 1)) > 0) /* the last bytes of room too */
        n += (size_t)r;
    fcntl(fd, F_SETFL, flags);
    return n;
}

static void test_stalled_output(void)
{
    int p[2];
    char line[64];
    int kept = 0, dropped = 0, in_order = 1;
    size_t size = 4 << 20, n;
    char *all = malloc(size);

    if (pipe(p) != 0 || !all) {
        ok(0, "pipe");
        return;
    }
    size_t filler = fill_pipe(p[1]);
    struct log_queue *q = log_queue_new(p[1], 1, 4096, report, NULL);
    ok(q != NULL, "a queue is made");
    /* Nobody reads: the pipe fills, then the queue; put never waits. */
    for (int i = 0; i < 100000 && dropped < 10; i++) {
        int len = snprintf(line, sizeof line, "line %06d\n", i);
        if (log_queue_put(q, line, (size_t)len) == 0) {
            if (dropped)
                in_order = 0; /* nothing may be taken after a loss, until it is told */
            kept++;
        } else {
            dropped++;
        }
    }
    is_int(dropped, 10, "lines past the queue's room are refused, not waited for");
    ok(in_order, "after the first loss, lines are refused until it is reported");

    /* The output moves: the kept lines, then the report in their place. */
    n = read_until(p[0], all, size, "dropped 10\n");
    ok(n > filler, "the loss is reported once the output moves");
    int whole = 1, next = 0;
    for (char *s = all + filler, *nl; n > filler && (nl = strchr(s, '\n')); s = nl + 1) {
        int i;
        if (strncmp(s, "dropped ", 8) == 0)
            break;
        if (sscanf(s, "line %06d", &i) != 1 || nl - s != 11 || i != next)
            whole = 0;
        next++;
    }
    ok(whole, "every kept line came out whole and in order");
    is_int(next, kept, "every kept line came out before the report");

    /* Lines are taken again; closing still writes them, then closes. */
    is_int(log_queue_put(q, "after\n", 6), 0, "a line is taken again after the report");
    log_queue_close(q);
    is_int(log_queue_flush_all(5), 0, "flushed");
    n = read_until(p[0], all, size, "after\n");
    ok(n == 6 && memcmp(all, "after\n", 6) == 0, "the last line follows the report");
    ok(read(p[0], all, 1) == 0, "the queue closed the descriptor it owned");
    close(p[0]);
    free(all);
}

/* A flood of ordinary lines cannot push out a warning: it is taken while
 * they are refused, and comes out in its place, before the report. */
static void test_urgent_lines(void)
{
    int p[2];
    char line[64];
    size_t size = 4 << 20, n;
    char *all = malloc(size);
    int dropped = 0;

    if (pipe(p) != 0 || !all) {
        ok(0, "pipe");
        return;
    }
    fill_pipe(p[1]);
    struct log_queue *q = log_queue_new(p[1], 1, 4096, report, NULL);
    log_queue_keep_urgent_room(q);
    for (int i = 0; i < 100000 && dropped < 10; i++) {
        int len = snprintf(line, sizeof line, "line %06d\n", i);
        dropped += log_queue_put(q, line, (size_t)len) != 0;
    }
    is_int(dropped, 10, "urgent: ordinary lines are being dropped");
    is_int(log_queue_put_urgent(q, "WARNING\n", 8), 0, "  ... and a warning is taken");
    is_int(log_queue_put(q, "ordinary\n", 9), -1, "  ... but not one more ordinary line");
    n = read_until(p[0], all, size, "dropped 11\n");
    ok(n > 0, "  ... the loss is reported");
    char *w = strstr(all, "WARNING\n"), *d = strstr(all, "dropped 11\n");
    ok(w && d && w < d, "  ... after the warning, which came out in the loss's place");
    log_queue_close(q);
    is_int(log_queue_flush_all(5), 0, "  ... flushed");
    close(p[0]);
    free(all);
}

static void test_fork(void)
{
    int stuck[2], fresh[2];
    char buf[256];

    if (pipe(stuck) != 0 || pipe(fresh) != 0) {
        ok(0, "pipe");
        return;
    }
    /* A queue whose writer is stuck in write(2) on a full pipe. */
    fcntl(stuck[1], F_SETPIPE_SZ, 4096);
    struct log_queue *s = log_queue_new(stuck[1], 0, 65536, NULL, NULL);
    struct log_queue *f = log_queue_new(fresh[1], 0, 65536, NULL, NULL);
    memset(buf, 'x', sizeof buf);
    buf[sizeof buf - 1] = '\n';
    for (int i = 0; i < 64; i++)
        log_queue_put(s, buf, sizeof buf);
    /* The fresh queue's writer is running, and idle, before the fork: the
     * proxy forks its workers so too (log_async_start). A thread still
     * starting at the fork may hold a lock of the allocator's the child
     * then waits on (ASan's allocator is not safe across such a fork). */
    ok(log_queue_put(f, "parent\n", 7) == 0 && read_until(fresh[0], buf, sizeof buf, "parent\n") > 0,
       "the fresh queue's writer runs before the fork");
    memset(buf, 'x', sizeof buf);
    buf[sizeof buf - 1] = '\n';

    pid_t pid = fork();
    if (pid == 0) {
        /* The parent's backlog is not this process's to write or wait
         * for; a queue it never used gets a writer of its own. */
        int status = log_queue_flush_all(0.2) == 0 ? 0 : 1;
        if (log_queue_put(f, "child\n", 6) != 0 || log_queue_flush_all(5) != 0)
            status |= 2;
        _exit(status);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    ok(WIFEXITED(status) && (WEXITSTATUS(status) & 1) == 0,
       "a child does not wait for its parent's backlog");
    ok(WIFEXITED(status) && (WEXITSTATUS(status) & 2) == 0, "a child's line is written");
    ok(read_until(fresh[0], buf, sizeof buf, "child\n") > 0, "by the child's own writer");
    is_int(log_queue_flush_all(0.2), -1, "the parent's stuck output is reported as stuck");
    /* Unstick it: the parent's lines are all there, once. */
    size_t total = 0;
    while (total < 64 * sizeof buf) {
        ssize_t r = read(stuck[0], buf, sizeof buf);
        if (r <= 0)
            break;
        total += (size_t)r;
    }
    is_int(log_queue_flush_all(5), 0, "the parent's writer finished");
    fcntl(stuck[0], F_SETFL, fcntl(stuck[0], F_GETFL) | O_NONBLOCK);
    ok(read(stuck[0], buf, sizeof buf) == -1 && errno == EAGAIN, "and wrote nothing more");
    is_int(total, 64 * sizeof buf, "the parent's lines, each once");
    log_queue_close(s);
    log_queue_close(f);
    close(stuck[0]);
    close(stuck[1]);
    close(fresh[0]);
    close(fresh[1]);
}

/* What the error callback was told, in order (the writer thread's; read
 * after log_queue_flush_all, which waits for it). */
static struct {
    int calls, firsts, last_err;
    uint64_t lost, recovered;
} told;

static void on_error(void *arg, int err, uint64_t lost, int first)
{
    (void)arg;
    told.calls++;
    told.firsts += first;
    if (err) {
        told.last_err = err;
        told.lost += lost;
    } else {
        told.recovered = lost;
    }
}

/* A full disk (/dev/full: ENOSPC) loses lines; they are told to the error
 * callback, the first failure as such, and once writes work again (the
 * descriptor now a pipe) so is the total. */
static void test_failing_output(void)
{
    int p[2], fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
    char buf[256];

    if (fd == -1 || pipe(p) != 0) {
        ok(0, "/dev/full and a pipe");
        return;
    }
    struct log_queue *q = log_queue_new(fd, 0, 4096, report, NULL);
    log_queue_on_error(q, on_error);
    log_queue_put(q, "one\n", 4);
    is_int(log_queue_flush_all(5), 0, "a failed write does not hold the writer");
    log_queue_put(q, "two\n", 4);
    is_int(log_queue_flush_all(5), 0, "nor does a second");
    is_int(told.last_err, ENOSPC, "the failure's errno is told");
    is_int((int)told.lost, 2, "with the lines it lost");
    is_int(told.firsts, 1, "the first failure is told as such, once");
    dup2(p[1], fd); /* the disk has room again */
    log_queue_put(q, "three\n", 6);
    is_int(log_queue_flush_all(5), 0, "the writer writes again");
    ok(read_until(p[0], buf, sizeof buf, "three\n") > 0, "the line is written");
    is_int((int)told.recovered, 2, "and the end of the failure told with all it lost");
    log_queue_close(q);
    is_int(log_queue_flush_all(5), 0, "the queue closes");
    close(fd);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    (void)guarded_copy; /* queues, not parsers: nothing to guard here */
    test_stalled_output();
    test_urgent_lines();
    test_fork();
    test_failing_output();
    return tap_done();
}
