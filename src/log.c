/*
 * log.c - timestamped diagnostic lines on stderr.
 *
 * The whole line is formatted first and written with one write(2), so lines
 * from several workers sharing stderr never interleave mid-line.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Read-only after startup, so sharing it between loops is safe. */
static enum log_level min_level = LOG_INFO;
static char tag[16];

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

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n, m;

    if (level < min_level)
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s%s",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, (int)(tv.tv_usec / 1000), level_names[level], tag,
                 tag[0] ? " " : "");
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n > sizeof line - 2)
        n = sizeof line - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
}
