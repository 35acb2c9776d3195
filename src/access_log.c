/*
 * access_log.c - formats access log lines and hands them to a queue.
 *
 * Lines are appended with O_APPEND and written whole, so several workers
 * can share one file without interleaving. The writing itself is done by
 * a thread (log_queue.h), for the file as for standard output: a pipe
 * nobody reads blocks a write(2), and so does a file on a slow or stuck
 * disk (NFS, a device throttled by writeback), and the event loop must
 * wait on neither. Lines that do not fit in the queue are dropped,
 * counted, and reported on stderr once the output moves again (not in
 * the access log, which is for programs to read).
 */
#include "access_log.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json_out.h"
#include "log.h"
#include "log_queue.h"
#include "private_file.h"
#include "stats.h"

#define LINE_MAX_BYTES LOG_QUEUE_LINE_MAX
/* Lines waiting for a slow output, per process: thousands of exchanges. */
#define QUEUE_BYTES ((size_t)1 << 20)

struct access_log {
    struct log_queue *queue; /* owns the descriptor */
    enum log_format format;
};

/* Said on stderr, not in the access log: that is for programs to read. */
static size_t report_dropped(void *arg, uint64_t dropped, char *line, size_t size)
{
    (void)arg;
    (void)line;
    (void)size;
    log_access_lost(dropped);
    return 0;
}

/* A write that failed (a full disk, say) lost its lines: counted as
 * dropped, and said on stderr when it starts and when it ends, not for
 * every line. Writer thread. */
static void on_write_error(void *arg, int err, uint64_t lost, int first)
{
    char why[128];

    (void)arg;
    if (err == 0) {
        log_warn("access log: written again, after %llu line(s) were dropped",
                 (unsigned long long)lost);
        return;
    }
    stats_add_any_thread(STAT_ACCESS_LOG_LINES_DROPPED, (int64_t)lost);
    if (first)
        log_warn("access log: cannot write: %s; its lines are dropped until it can",
                 strerror_r(err, why, sizeof why));
}

struct access_log *access_log_open(const char *path, enum log_format format, char *err,
                                   size_t err_len)
{
    struct access_log *log = calloc(1, sizeof *log);
    int fd = STDOUT_FILENO, owned = 0;

    if (!log) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    log->format = format;
    if (strcmp(path, "-") != 0) {
        /* Who asked for what, and the proxy users' names: made for its
         * owner alone, like the HAR and the TLS key log. */
        struct stat st;
        fd = private_file_open(path, O_APPEND, &st);
        if (fd == PRIVATE_FILE_FOREIGN)
            snprintf(err, err_len, "the access log '%s' belongs to another user, who could read "
                     "what is written to it: remove it, or name another file", path);
        else if (fd < 0)
            snprintf(err, err_len, "cannot open access log '%s': %s", path, strerror(errno));
        if (fd < 0) {
            free(log);
            return NULL;
        }
        owned = 1;
    }
    log->queue = log_queue_new(fd, owned, QUEUE_BYTES, report_dropped, NULL);
    if (!log->queue) {
        snprintf(err, err_len, "out of memory");
        if (owned)
            close(fd);
        free(log);
        return NULL;
    }
    log_queue_on_error(log->queue, on_write_error);
    return log;
}

void access_log_close(struct access_log *log)
{
    if (!log)
        return;
    log_queue_close(log->queue); /* what it holds is still written */
    free(log);
}

int access_log_wants_details(const struct access_log *log)
{
    return log && log->format != LOG_FORMAT_COMMON;
}

/* A line under construction. Values from the wire stop quietly at a soft
 * cap (put_value); the fixed parts that follow them fit in the room left
 * above it, so a line always ends whole, however long the target. */
#define LINE_SOFT_CAP (LINE_MAX_BYTES - 512)
struct line {
    char buf[LINE_MAX_BYTES];
    size_t n;
};

static void put_capped(struct line *l, const char *s, size_t len, size_t cap)
{
    if (l->n >= cap)
        return;
    if (len > cap - l->n)
        len = cap - l->n;
    memcpy(l->buf + l->n, s, len);
    l->n += len;
}

static void put(struct line *l, const char *s, size_t len)
{
    put_capped(l, s, len, LINE_SOFT_CAP);
}

static void puts_(struct line *l, const char *s)
{
    put_capped(l, s, strlen(s), sizeof l->buf);
}

/* Appends <s> with quotes, backslashes and non-printable bytes escaped:
 * \xNN for the text formats, \u00NN for JSON. A client cannot forge lines.
 * JSON text is UTF-8: a value that is well-formed UTF-8 keeps its
 * characters past ASCII as they are (json_out.h does the same), so "é"
 * stays "é" rather than becoming the two characters of its bytes, except
 * those the diagnostics escape too (log_char_shown): a C1 control, U+2028
 * or a bidirectional override is valid JSON as it is, but NEL and U+2028
 * end a line for many readers of the file (Python's splitlines, say),
 * CSI drives the terminal it is shown on, and an override shows the line
 * other than it is. As \uXXXX they decode to the same string. */
static void put_escaped(struct line *l, const char *s, size_t len, int json)
{
    int utf8 = json && json_utf8_valid(s, len);

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (l->n + 6 > LINE_SOFT_CAP)
            break; /* never half an escape, nor half a character */
        if (c >= 0x80 && utf8) {
            /* the whole character: its lead byte says how long it is */
            size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            uint32_t cp = c & (n == 2 ? 0x1fu : n == 3 ? 0x0fu : 0x07u);
            for (size_t k = 1; k < n; k++)
                cp = cp << 6 | ((unsigned char)s[i + k] & 0x3fu);
            if (log_char_shown(cp)) {
                put(l, s + i, n);
            } else {
                /* every character not shown is in the BMP: one escape */
                int m = snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
                put(l, esc, (size_t)m);
            }
            i += n - 1;
            continue;
        }
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            int n = json ? snprintf(esc, sizeof esc, "\\u%04x", c)
                         : snprintf(esc, sizeof esc, "\\x%02x", c);
            put(l, esc, (size_t)n);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

/* A JSON string field, or null. */
static void put_json(struct line *l, const char *name, const char *s, size_t len, int more)
{
    puts_(l, "\"");
    puts_(l, name);
    puts_(l, "\":");
    if (!s) {
        puts_(l, "null");
    } else {
        puts_(l, "\"");
        put_escaped(l, s, len, 1);
        puts_(l, "\"");
    }
    if (more)
        puts_(l, ",");
}

static void write_json(struct line *l, const struct access_entry *e)
{
    char num[160];
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(num, sizeof num, "{\"time\":\"%Y-%m-%dT%H:%M:%SZ\",", &tm);
    puts_(l, num);
    put_json(l, "client", e->client_ip, strlen(e->client_ip), 1);
    put_json(l, "user", e->user, e->user ? strlen(e->user) : 0, 1);
    put_json(l, "method", e->method_len ? e->method : NULL, e->method_len, 1);
    put_json(l, "target", e->method_len ? e->target : NULL, e->target_len, 1);
    snprintf(num, sizeof num, "HTTP/1.%d", e->version_minor);
    put_json(l, "version", e->method_len ? num : NULL, strlen(num), 1);
    snprintf(num, sizeof num, "\"status\":%d,\"bytes\":%llu,\"duration_ms\":%.3f,", e->status,
             (unsigned long long)e->bytes, e->duration_ms);
    puts_(l, num);
    put_json(l, "referer", e->referer, e->referer_len, 1);
    put_json(l, "user_agent", e->user_agent, e->user_agent_len, 1);
    put_json(l, "upstream", e->upstream, e->upstream ? strlen(e->upstream) : 0, 1);
    put_json(l, "upstream_addr", e->upstream_addr,
             e->upstream_addr ? strlen(e->upstream_addr) : 0, 1);
    put_json(l, "error", e->error, e->error ? strlen(e->error) : 0, 0);
    puts_(l, "}\n");
}

/* A quoted text field for the combined format ("-" when absent). */
static void put_quoted(struct line *l, const char *s, size_t len)
{
    puts_(l, " \"");
    if (s)
        put_escaped(l, s, len, 0);
    else
        puts_(l, "-");
    puts_(l, "\"");
}

static void write_text(struct line *l, const struct access_entry *e, int combined)
{
    char num[96];
    time_t now = time(NULL);
    struct tm tm;

    puts_(l, e->client_ip);
    puts_(l, " - ");
    if (e->user && e->user[0])
        put_escaped(l, e->user, strlen(e->user), 0);
    else
        puts_(l, "-");
    gmtime_r(&now, &tm);
    strftime(num, sizeof num, " [%d/%b/%Y:%H:%M:%S +0000] \"", &tm);
    puts_(l, num);
    if (e->method_len > 0) {
        put_escaped(l, e->method, e->method_len, 0);
        puts_(l, " ");
        put_escaped(l, e->target, e->target_len, 0);
        snprintf(num, sizeof num, " HTTP/1.%d", e->version_minor);
        puts_(l, num);
    } else {
        puts_(l, "-"); /* no request line could be read */
    }
    snprintf(num, sizeof num, "\" %03d %llu", e->status, (unsigned long long)e->bytes);
    puts_(l, num);
    if (combined) {
        put_quoted(l, e->referer, e->referer_len);
        put_quoted(l, e->user_agent, e->user_agent_len);
    }
    snprintf(num, sizeof num, " %.0f\n", e->duration_ms);
    puts_(l, num);
}

void access_log_write(struct access_log *log, const struct access_entry *e)
{
    static struct line l; /* one loop per process: never used twice at once */

    if (!log)
        return;
    l.n = 0;
    if (log->format == LOG_FORMAT_JSON)
        write_json(&l, e);
    else
        write_text(&l, e, log->format == LOG_FORMAT_COMBINED);
    if (log_queue_put(log->queue, l.buf, l.n) != 0)
        stats_add_any_thread(STAT_ACCESS_LOG_LINES_DROPPED, 1);
}
