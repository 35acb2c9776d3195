/*
 * log.c - timestamped diagnostic lines on stderr.
 *
 * The whole line is formatted first and written with one write(2), so lines
 * from several workers sharing stderr never interleave mid-line.
 *
 * Until the event loop runs, a line is written at once (an error at start
 * must be seen before the process exits, whatever happens next). From
 * log_async_start on, it goes through a bounded queue that a thread writes
 * out (log_queue.h): a stderr that stops moving (a log shipper behind, a
 * pager nobody scrolls) then costs lines, counted and reported, but never
 * stops the loop.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log_queue.h"
#include "stats.h"

/* Lines of diagnostics waiting for a slow stderr, per process: a few
 * thousand lines, a few seconds of --trace under load. */
#define LOG_QUEUE_BYTES ((size_t)1 << 20)
/* How long the lines still queued at exit may take to go out. */
#define LOG_FLUSH_LIMIT 2.0

/* Read-only after startup, so sharing it between loops is safe. */
static enum log_level min_level = LOG_INFO;
static char tag[16];
/* Set once the loop runs (log_async_start); read by any thread. */
static struct log_queue *queue;
static int async;

static const char *const level_names[] = {"debug", "info", "warn", "error", "trace"};

void log_set_tag(const char *t)
{
    snprintf(tag, sizeof tag, "%s", t);
}

void log_set_level(enum log_level level)
{
    min_level = level;
}

int log_wants(enum log_level level)
{
    return level >= min_level;
}

/* Room for a message before it is escaped; the line holding it is as long. */
#define MESSAGE_MAX 2048

/* The length of the well-formed UTF-8 character at <s> (<len> bytes left),
 * with its code point in *<cp>; 0 for a byte that starts none (a stray
 * continuation byte, an overlong form, a surrogate, past U+10FFFF, or a
 * character cut short). */
static size_t utf8_char(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    uint32_t v, min;
    size_t n;

    if (c < 0xc2 || c > 0xf4)
        return 0;
    if (c < 0xe0) {
        n = 2, v = c & 0x1fu, min = 0x80;
    } else if (c < 0xf0) {
        n = 3, v = c & 0x0fu, min = 0x800;
    } else {
        n = 4, v = c & 0x07u, min = 0x10000;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* Not a C1 control (a terminal may act on one, as on ESC), nor one that
 * breaks a line for some readers (U+2028, U+2029) or turns the text's
 * direction around so that what is shown is not what was written. */
int log_char_shown(uint32_t cp)
{
    return cp >= 0xa0 && cp != 0x061c && cp != 0x200e && cp != 0x200f &&
           !(cp >= 0x2028 && cp <= 0x202e) && !(cp >= 0x2066 && cp <= 0x2069);
}

size_t log_escape(char *out, size_t size, const char *in, size_t len, int lines)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;

    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        uint32_t cp;
        size_t n = 1;

        if (c == '\n' && lines) {
            /* a continuation line: indented, so never taken for a line of
             * its own (which starts with its time) */
            size_t need = i + 1 < len && s[i + 1] == '\t' ? 1 : 2;
            if (need > size - o)
                break;
            out[o++] = '\n';
            if (need == 2)
                out[o++] = '\t';
            i++;
            continue;
        }
        if ((c >= 0x20 && c < 0x7f) || c == '\t' ||
            (c >= 0x80 && (n = utf8_char(s + i, len - i, &cp)) > 0 &&
             log_char_shown(cp))) {
            if (n > size - o)
                break;
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
            continue;
        }
        /* A control byte, DEL, a byte of no character, or a character
         * not shown: each of its bytes as \xNN. */
        if (n == 0)
            n = 1;
        if (4 * n > size - o)
            break;
        for (size_t k = 0; k < n; k++) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[s[i + k] >> 4];
            out[o++] = hex[s[i + k] & 15];
        }
        i += n;
    }
    return o;
}

/* Formats one line, newline included, into <line> (<size> bytes, at
 * least 64). Returns its length. What the message holds is escaped
 * (log_escape): a client's bytes that reach it (a TLS server name, a
 * script logging what it was sent) cannot start a line of their own, nor
 * drive the terminal that shows it. With <lines>, a newline starts an
 * indented continuation line instead (a script's traceback). */
__attribute__((format(printf, 5, 0))) static size_t format_line(char *line, size_t size,
                                                                 enum log_level level, int lines,
                                                                 const char *fmt, va_list ap)
{
    char msg[MESSAGE_MAX];
    struct timeval tv;
    struct tm tm;
    int n, m;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = snprintf(line, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s%s", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000), level_names[level], tag, tag[0] ? " " : "");
    if (n < 0)
        n = 0;
    if ((size_t)n > size - 2)
        n = (int)size - 2;
    m = vsnprintf(msg, sizeof msg, fmt, ap);
    if (m < 0)
        m = 0;
    if ((size_t)m >= sizeof msg)
        m = (int)sizeof msg - 1; /* truncated */
    n += (int)log_escape(line + n, size - (size_t)n - 1, msg, (size_t)m, lines);
    line[n++] = '\n';
    return (size_t)n;
}

static size_t format(char *line, size_t size, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t format(char *line, size_t size, enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = format_line(line, size, level, 0, fmt, ap);
    va_end(ap);
    return n;
}

/* Lines the access log lost, not told on stderr yet: stderr may be stuck
 * as well when the access log's writer finds out (both are often one
 * pipe), and the loss must not go untold. */
static uint64_t access_lost;

/* Puts one formatted line out, <urgent> for a warning or an error (see
 * log_queue_put_urgent). 0, or -1 when the queue refused it. */
static int emit(const char *line, size_t len, int urgent)
{
    if (__atomic_load_n(&async, __ATOMIC_ACQUIRE))
        return urgent ? log_queue_put_urgent(queue, line, len) : log_queue_put(queue, line, len);
    if (write(STDERR_FILENO, line, len) < 0) {
        /* nowhere left to report it */
    }
    return 0;
}

static size_t format_access_lost(char *line, size_t size, uint64_t n)
{
    return format(line, size, LOG_WARN,
                  "access log: %llu line(s) dropped: its output did not keep up",
                  (unsigned long long)n);
}

/* Tells the access log's losses, if stderr takes the line now; else they
 * wait for the next line it takes. */
static void tell_access_lost(void)
{
    char line[256];
    uint64_t n = __atomic_exchange_n(&access_lost, 0, __ATOMIC_RELAXED);
    if (n == 0)
        return;
    if (emit(line, format_access_lost(line, sizeof line, n), 1) != 0)
        __atomic_add_fetch(&access_lost, n, __ATOMIC_RELAXED);
}

void log_access_lost(uint64_t n)
{
    __atomic_add_fetch(&access_lost, n, __ATOMIC_RELAXED);
    tell_access_lost();
}

/* The writer's report, in the place of the lines it stands for, with the
 * access log's losses that were waiting for stderr to take lines again. */
static size_t report_dropped(void *arg, uint64_t dropped, char *line, size_t size)
{
    (void)arg;
    size_t n = format(line, size, LOG_WARN,
                      "log: %llu line(s) dropped here: standard error did not keep up",
                      (unsigned long long)dropped);
    uint64_t lost = __atomic_exchange_n(&access_lost, 0, __ATOMIC_RELAXED);
    if (lost > 0)
        n += format_access_lost(line + n, size - n, lost);
    return n;
}

static void log_line(enum log_level level, int lines, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void log_line(enum log_level level, int lines, const char *fmt, va_list ap)
{
    char line[MESSAGE_MAX];
    size_t n;

    if (level < min_level)
        return;
    n = format_line(line, sizeof line, level, lines, fmt, ap);
    if (emit(line, n, level == LOG_WARN || level == LOG_ERROR) != 0) {
        stats_add_any_thread(STAT_LOG_LINES_DROPPED, 1);
        return;
    }
    if (__atomic_load_n(&access_lost, __ATOMIC_RELAXED) > 0)
        tell_access_lost();
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(level, 0, fmt, ap);
    va_end(ap);
}

void log_msg_lines(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(level, 1, fmt, ap);
    va_end(ap);
}

/* A forked child has no writer thread yet, and starts as a process does:
 * writing at once until its own loop runs. */
static void on_fork_child(void)
{
    __atomic_store_n(&async, 0, __ATOMIC_RELAXED);
}

static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

void log_async_start(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    if (!queue) {
        queue = log_queue_new(STDERR_FILENO, 0, LOG_QUEUE_BYTES, report_dropped, NULL);
        if (!queue)
            return; /* out of memory: lines are written at once, as before */
        log_queue_keep_urgent_room(queue); /* warnings and errors (emit) */
    }
    /* Now, not with the first line: the supervisor logs a worker's death
     * and forks its replacement at once, and must not fork while its
     * writer thread is still starting. */
    log_queue_start(queue);
    pthread_once(&once, register_fork_handler);
    __atomic_store_n(&async, 1, __ATOMIC_RELEASE);
}

int log_flush(void)
{
    /* A stderr still stuck after that: what is left is lost with the
     * process, which must not wait on it for ever. */
    return log_queue_flush_all(LOG_FLUSH_LIMIT);
}
