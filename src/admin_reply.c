/*
 * admin_reply.c - what the admin listener sends back (see admin.h): whole
 * answers, answers streamed a part at a time as the client reads, and the
 * viewer's event streams.
 *
 * Every answer's head is written here, with the headers that keep a page
 * showing other people's traffic from being cached, framed or sniffed.
 */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "admin_internal.h"
#include "message.h"

/* How an answer's body ends. */
enum admin_framing {
    FRAME_LENGTH,  /* Content-Length */
    FRAME_CHUNKED, /* a zero-size chunk (HTTP/1.1 only) */
    FRAME_CLOSE,   /* the connection's end: event streams, and HTTP/1.0 */
};

/* ---- replies ----------------------------------------------------------- */

static void write_head(struct admin_conn *c, int status, const char *content_type, size_t len,
                       enum admin_framing framing)
{
    c->answered = 1;
    buffer_printf(&c->out, "HTTP/1.1 %d %s\r\n", status, message_reason(status));
    if (content_type)
        buffer_printf(&c->out, "Content-Type: %s\r\n", content_type);
    if (framing == FRAME_LENGTH)
        buffer_printf(&c->out, "Content-Length: %zu\r\n", len);
    else if (framing == FRAME_CHUNKED)
        buffer_append_str(&c->out, "Transfer-Encoding: chunked\r\n");
    /* The viewer shows other people's traffic: nothing is cached, framed
     * or sniffed, and scripts come from this origin only. */
    buffer_append_str(&c->out, "Cache-Control: no-store\r\n"
                               "X-Content-Type-Options: nosniff\r\n"
                               "X-Frame-Options: DENY\r\n"
                               "Referrer-Policy: no-referrer\r\n"
                               "Content-Security-Policy: default-src 'self'; img-src 'self' "
                               "data: blob:; frame-ancestors 'none'\r\n");
    if (c->extra[0])
        buffer_append_str(&c->out, c->extra);
    c->extra[0] = '\0';
    if (c->close_after)
        buffer_append_str(&c->out, "Connection: close\r\n");
    buffer_append(&c->out, "\r\n", 2);
}

void admin_reply(struct admin_conn *c, int status, const char *content_type, const void *body,
                 size_t len)
{
    write_head(c, status, content_type, len, FRAME_LENGTH);
    if (len && !c->head_only)
        buffer_append(&c->out, body, len);
    c->held = 0;
    admin_conn_flush(c);
}

void admin_reply_buffer(struct admin_conn *c, int status, const char *content_type,
                        struct buffer *body)
{
    size_t len = buffer_length(body);
    write_head(c, status, content_type, len, FRAME_LENGTH);
    if (c->head_only)
        ; /* the length of what a GET gets, and nothing after the head */
    else if (buffer_length(&c->out) == 0)
        buffer_swap(&c->out, body);
    else
        buffer_append(&c->out, buffer_peek(body), len);
    buffer_free(body);
    c->held = 0;
    admin_conn_flush(c);
}

void admin_reply_error(struct admin_conn *c, int status, const char *message)
{
    struct buffer b;
    buffer_init(&b);
    buffer_append_str(&b, "{\"error\":\"");
    for (const char *p = message; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\')
            buffer_printf(&b, "\\%c", ch);
        else if (ch < 0x20)
            buffer_printf(&b, "\\u%04x", ch);
        else
            buffer_append(&b, p, 1);
    }
    buffer_append_str(&b, "\"}\n");
    admin_reply_buffer(c, status, "application/json", &b);
}

void admin_reply_header(struct admin_conn *c, const char *line)
{
    size_t used = strlen(c->extra);
    snprintf(c->extra + used, sizeof c->extra - used, "%s\r\n", line);
}

uint64_t admin_hold(struct admin_conn *c)
{
    c->held = 1;
    return c->id;
}

struct admin_conn *admin_find(struct admin *a, uint64_t id)
{
    for (struct admin_conn *c = a->conns; c; c = c->next)
        if (c->id == id && c->held && !c->closed)
            return c;
    return NULL;
}

/* ---- streamed answers -------------------------------------------------- */

/* Moves the producer's part into "out", as one chunk when chunked. */
static void stream_frame(struct admin_conn *c)
{
    size_t n = buffer_length(&c->part);
    if (n == 0)
        return; /* a chunk of size 0 would end the body */
    if (c->stream_chunked)
        buffer_printf(&c->out, "%zx\r\n", n);
    buffer_append(&c->out, buffer_peek(&c->part), n);
    if (c->stream_chunked)
        buffer_append(&c->out, "\r\n", 2);
    buffer_consume(&c->part, n);
}

void admin_stream_end(struct admin_conn *c)
{
    if (c->stream)
        c->stream->free(c->stream_state);
    c->stream = NULL;
    c->stream_state = NULL;
    buffer_free(&c->part);
}

void admin_stream_start(struct admin_conn *c, int status, const char *content_type,
                        struct buffer *first, const struct admin_stream_ops *ops, void *state)
{
    /* HTTP/1.0 knows no chunks: the end of the connection ends its body. */
    c->stream_chunked = !c->http10;
    if (!c->stream_chunked)
        c->close_after = 1;
    write_head(c, status, content_type, 0, c->stream_chunked ? FRAME_CHUNKED : FRAME_CLOSE);
    c->held = 0;
    if (c->head_only) {
        buffer_free(first);
        ops->free(state);
        admin_conn_flush(c);
        return;
    }
    c->stream = ops;
    c->stream_state = state;
    buffer_swap(&c->part, first);
    buffer_free(first);
    stream_frame(c);
    /* The next part waits for the socket's next "writable": this call is
     * inside a request's handler, which has had its share of the loop. */
    admin_conn_flush(c);
}

void admin_stream_pump(struct admin_conn *c)
{
    size_t waiting = buffer_length(&c->out);
    enum admin_stream_result r;

    if (waiting >= ADMIN_STREAM_PART)
        return;
    r = c->stream->produce(c->stream_state, &c->part, ADMIN_STREAM_PART - waiting);
    if (r == ADMIN_STREAM_FAILED) {
        admin_stream_end(c);
        admin_conn_close(c);
        return;
    }
    stream_frame(c);
    if (r == ADMIN_STREAM_DONE) {
        if (c->stream_chunked)
            buffer_append_str(&c->out, "0\r\n\r\n");
        admin_stream_end(c);
        /* A request pipelined behind waited all along: its clock starts
         * now. */
        c->head_started = buffer_length(&c->in) ? ev_now(c->admin->loop) : 0;
    }
    admin_conn_flush(c);
}

void admin_events_start(struct admin_conn *c)
{
    if (c->head_only) {
        /* a HEAD learns it is a stream, and gets no stream */
        admin_reply(c, 200, "text/event-stream", NULL, 0);
        return;
    }
    write_head(c, 200, "text/event-stream", 0, FRAME_CLOSE);
    buffer_append_str(&c->out, "retry: 1000\n\n");
    c->events = 1;
    c->close_after = 0;
    admin_conn_flush(c);
}

int admin_events_listening(const struct admin *a)
{
    for (const struct admin_conn *c = a->conns; c; c = c->next)
        if (c->events && !c->closed)
            return 1;
    return 0;
}

void admin_events_send(struct admin *a, const char *event, const char *data, size_t len)
{
    for (struct admin_conn *c = a->conns, *next; c; c = next) {
        next = c->next;
        if (!c->events || c->closed)
            continue;
        if (buffer_length(&c->out) > ADMIN_EVENTS_BACKLOG) {
            admin_conn_close(c);
            continue;
        }
        buffer_printf(&c->out, "event: %s\ndata: ", event);
        buffer_append(&c->out, data, len);
        buffer_append(&c->out, "\n\n", 2);
        admin_conn_flush(c);
    }
}

void admin_on_ping(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct admin *a = w->data;
    (void)loop;
    (void)revents;
    for (struct admin_conn *c = a->conns, *next; c; c = next) {
        next = c->next;
        if (c->events && !c->closed && buffer_length(&c->out) == 0) {
            buffer_append_str(&c->out, ": ping\n\n");
            admin_conn_flush(c);
        }
    }
}
