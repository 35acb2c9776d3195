/*
 * log_queue.h - whole lines bound for one descriptor, written by a thread
 * of their own, so that the event loop never waits on a log.
 *
 * A write(2) to a pipe whose reader has stalled (a log shipper falling
 * behind, `luaproxy ... 2>&1 | less`), to a terminal on hold or to a file
 * on a slow disk blocks until the other side moves. Done by the loop, that
 * stops every client of the process. So the loop only copies the line into
 * a bounded ring here, and the queue's writer thread does the writing. A
 * line that does not fit is dropped and counted; once the output moves
 * again, the queue's <report> callback says how many went, in their place.
 *
 * Lines stay whole and in order: a line goes into the ring whole or not at
 * all, and the writer writes whole lines, several per write(2) up to
 * PIPE_BUF bytes, so processes writing to one pipe never split each
 * other's lines.
 */
#ifndef LUAPROXY_LOG_QUEUE_H
#define LUAPROXY_LOG_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/* The longest line a queue takes. */
#define LOG_QUEUE_LINE_MAX 8192

struct log_queue;

/* Called by the writer thread, with no lock held, when <dropped> lines
 * were refused and there is room again. It may write whole lines into
 * <line> (at most <size> bytes) and return their length: they go where
 * the dropped ones would have been. Or it reports the loss some other way
 * and returns 0. */
typedef size_t log_queue_report_fn(void *arg, uint64_t dropped, char *line, size_t size);

/* A queue of at most <capacity> bytes of lines for <fd> (closed with the
 * queue when <owns_fd>). No memory and no thread until the first line.
 * NULL when out of memory. */
struct log_queue *log_queue_new(int fd, int owns_fd, size_t capacity, log_queue_report_fn *report,
                                void *report_arg);

/* Called by the writer thread, with no lock held, when the output fails
 * (a full disk, a file system gone read-only, a closed pipe): with <err>,
 * the errno of a write that failed, and <lost>, the lines that went with
 * it (<first>: no write had failed since the last one that worked), and
 * with <err> 0 once a write works again, <lost> then being all the lines
 * lost since the first failure. */
typedef void log_queue_error_fn(void *arg, int err, uint64_t lost, int first);
/* Has <q> call <fn> (with the queue's report argument) for failed writes.
 * Without one they cost their lines unsaid: the diagnostics, whose
 * output it is that fails, have nowhere to say it. */
void log_queue_on_error(struct log_queue *q, log_queue_error_fn *fn);

/* Starts the writer now, rather than with the first line, and returns
 * once it runs. For a process that forks later: a child gets a copy of
 * the locks its parent's threads held at that moment, and a thread still
 * starting may hold some that no atfork handler knows of (a sanitizer's
 * allocator's, for one). A writer in its loop holds none but the
 * queue's own, which log_queue.c takes care of. */
void log_queue_start(struct log_queue *q);

/* Queues <line> (<len> bytes, a newline at its end). Never waits for the
 * output. 0, or -1 when the line was dropped (the queue is full, or lines
 * are being dropped until the loss is reported). Safe from any thread.
 * If no writer thread can be started, the line is written here instead. */
int log_queue_put(struct log_queue *q, const char *line, size_t len);
/* The same for a line that must not be lost to a flood of others (a
 * warning, an error): taken even while ordinary ones are being dropped,
 * into the room log_queue_keep_urgent_room keeps. */
int log_queue_put_urgent(struct log_queue *q, const char *line, size_t len);
/* From now on ordinary lines leave a quarter of <q> to urgent ones (the
 * diagnostics; the access log has none and keeps all its room). */
void log_queue_keep_urgent_room(struct log_queue *q);

/* Gives <q> up: the lines in it are still written, then the writer closes
 * the descriptor (if owned) and frees the queue. Returns at once. */
void log_queue_close(struct log_queue *q);

/* Waits until every queue of this process has written its lines, for at
 * most <seconds>. 0 when all are written, -1 when some output is still
 * stuck (its lines are then lost at exit). */
int log_queue_flush_all(double seconds);

#endif
