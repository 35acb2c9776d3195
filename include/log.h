/*
 * log.h - timestamped diagnostic lines on stderr.
 *
 * One line per event: "2026-11-26T22:50:00.123Z info message". The access
 * log (one line per exchange) is separate: see access_log.h. Safe to call
 * from any thread.
 */
#ifndef LUAPROXY_LOG_H
#define LUAPROXY_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_TRACE /* --trace: always shown */ };

/* Lines below <level> are dropped. Set once at startup. */
void log_set_level(enum log_level level);

/* A short tag put before every line of this process ("w2" for a worker),
 * so lines from several workers sharing stderr can be told apart. */
void log_set_tag(const char *tag);

/* One line. Control bytes, DEL, bytes of no UTF-8 character and the
 * characters that would drive a terminal or reorder the text (C1
 * controls, U+2028/U+2029, bidirectional overrides) are written as \xNN,
 * so what a client sent (a TLS server name, a value a script logs) can
 * neither start a line that looks like the proxy's own nor send a
 * terminal escape. At most about 2 KiB: the rest is cut. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same, but a newline starts a continuation line, indented by a tab,
 * which no reader can take for a line of its own: for a script's
 * traceback, whose message is escaped first (log_escape). */
void log_msg_lines(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Escapes the <len> bytes of <in> as log_msg does (newlines as with
 * log_msg_lines when <lines>) into <out>, at most <size> bytes (no NUL
 * added), never cutting an escape or a character in two. Returns the
 * bytes written. */
size_t log_escape(char *out, size_t size, const char *in, size_t len, int lines);
/* Whether a character past ASCII (code point <cp>) may be written into a
 * log as it is; the others are escaped, here and in the access log's
 * JSON (access_log.c). */
int log_char_shown(uint32_t cp);
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
