/*
 * access_log.c - writes access log lines with one write(2) each.
 *
 * Lines are appended with O_APPEND and written whole, so several workers
 * can share one file without interleaving.
 */
#include "access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct access_log {
    int fd;
    int owned; /* close fd on access_log_close */
};

struct access_log *access_log_open(const char *path, char *err, size_t err_len)
{
    struct access_log *log = calloc(1, sizeof *log);
    if (!log) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (strcmp(path, "-") == 0) {
        log->fd = STDOUT_FILENO;
        return log;
    }
    log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log->fd == -1) {
        snprintf(err, err_len, "cannot open access log '%s': %s", path, strerror(errno));
        free(log);
        return NULL;
    }
    log->owned = 1;
    return log;
}

void access_log_close(struct access_log *log)
{
    if (!log)
        return;
    if (log->owned)
        close(log->fd);
    free(log);
}

/* Appends <s> with quotes, backslashes and non-printable bytes escaped. */
static size_t escape(char *dst, size_t room, const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < room; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            n += (size_t)snprintf(dst + n, room - n, "\\x%02x", c);
        else
            dst[n++] = (char)c;
    }
    return n;
}

void access_log_write(struct access_log *log, const struct access_entry *e)
{
    char line[4096];
    size_t n = 0;
    time_t now;
    struct tm tm;

    if (!log)
        return;
    now = time(NULL);
    gmtime_r(&now, &tm);
    n += (size_t)snprintf(line, sizeof line, "%s - - ", e->client_ip);
    n += strftime(line + n, sizeof line - n, "[%d/%b/%Y:%H:%M:%S +0000] \"", &tm);
    if (e->method_len > 0) {
        n += escape(line + n, sizeof line - n - 200, e->method, e->method_len);
        line[n++] = ' ';
        n += escape(line + n, sizeof line - n - 200, e->target, e->target_len);
        n += (size_t)snprintf(line + n, sizeof line - n, " HTTP/1.%d", e->version_minor);
    } else {
        line[n++] = '-'; /* no request line could be read */
    }
    n += (size_t)snprintf(line + n, sizeof line - n, "\" %03d %llu %.0f\n", e->status,
                          (unsigned long long)e->bytes, e->duration_ms);
    if (n > sizeof line)
        n = sizeof line;
    if (write(log->fd, line, n) < 0) {
        /* a full disk must not stop the proxy */
    }
}
