/*
 * log.h - timestamped diagnostic lines on stderr.
 *
 * One line per event: "2026-11-26T22:50:00.123Z info message". The access
 * log (one line per exchange) is separate: see access_log.h. Safe to call
 * from any thread.
 */
#ifndef LUAPROXY_LOG_H
#define LUAPROXY_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_TRACE /* --trace: always shown */ };

/* Lines below <level> are dropped. Set once at startup. */
void log_set_level(enum log_level level);

/* A short tag put before every line of this process ("w2" for a worker),
 * so lines from several workers sharing stderr can be told apart. */
void log_set_tag(const char *tag);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether lines of <level> are shown: a caller on the hot path asks before
 * gathering the arguments of a line that would be dropped. */
int log_wants(enum log_level level);

/* From now on, lines go through a bounded queue written by a thread of
 * their own, so a stderr that does not keep up never holds up the caller;
 * what does not fit is dropped and counted (log_queue.h). Called when
 * the event loop is about to run: errors at start are written at once. A
 * forked child starts writing at once again, until it calls this itself. */
void log_async_start(void);
/* The access log lost <n> lines (its output did not keep up): said on
 * stderr now, or with the next line stderr takes if it is stuck too. */
void log_access_lost(uint64_t n);
/* At exit: waits, for at most a couple of seconds, for the queued lines
 * (of the access log too) to be written. 0, or -1 if some are still stuck
 * (a writer thread then still waits on its output). */
int log_flush(void);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
