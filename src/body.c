/*
 * body.c - decode one framing, encode another, with bounded buffering.
 */
#include "body.h"

#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

const char *body_kind_name(enum http_body_kind kind)
{
    switch (kind) {
    case HTTP_BODY_NONE: return "none";
    case HTTP_BODY_LENGTH: return "length";
    case HTTP_BODY_CHUNKED: return "chunked";
    case HTTP_BODY_CLOSE: return "close-delimited";
    }
    return "?";
}

void body_reader_init(struct body_reader *r, const struct http_framing *framing)
{
    r->kind = framing->kind;
    r->remaining = framing->kind == HTTP_BODY_LENGTH ? framing->length : 0;
    r->swapped = r->copied = r->filtered = 0;
    chunked_init(&r->chunked);
    r->end_pending = r->eof_pending = 0;
    r->batch = NULL;
}

int body_write_data(struct buffer *out, enum http_body_kind kind, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (kind == HTTP_BODY_CHUNKED)
        return buffer_printf(out, "%zx\r\n", len) || buffer_append(out, data, len) ||
                       buffer_append(out, "\r\n", 2)
                   ? -1
                   : 0;
    return buffer_append(out, data, len);
}

int body_write_data_direct(const struct body_direct *d, struct buffer *out,
                           enum http_body_kind kind, const char *data, size_t len)
{
    char size_line[24];
    struct iovec iov[3];
    size_t total = 0, sent, skip;
    int n = 0;

    if (!d || !d->send || out != d->buf || buffer_length(out) > 0 || len < BODY_DIRECT_MIN)
        return body_write_data(out, kind, data, len);
    if (kind == HTTP_BODY_CHUNKED) {
        int w = snprintf(size_line, sizeof size_line, "%zx\r\n", len);
        iov[n++] = (struct iovec){size_line, (size_t)w};
    }
    iov[n++] = (struct iovec){(void *)(uintptr_t)data, len};
    if (kind == HTTP_BODY_CHUNKED)
        iov[n++] = (struct iovec){(void *)(uintptr_t)"\r\n", 2};
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    sent = d->send(d->arg, iov, n);
    if (sent >= total)
        return 0;
    /* What the peer did not take waits in the buffer, in order. */
    skip = sent;
    for (int i = 0; i < n; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        if (buffer_append(out, (const char *)iov[i].iov_base + skip, iov[i].iov_len - skip) != 0)
            return -1;
        skip = 0;
    }
    return 0;
}

int body_write_end(struct buffer *out, enum http_body_kind kind, const char *trailers,
                   size_t trailers_len)
{
    if (kind != HTTP_BODY_CHUNKED)
        return 0;
    if (buffer_append(out, "0\r\n", 3) != 0)
        return -1;
    /* The decoder checked the section: whole "Name: value" CRLF lines,
     * one field each (no obs-fold), the name ending at the colon. Each
     * goes on unless it is a field no trailer may carry. */
    for (size_t pos = 0; pos < trailers_len;) {
        const char *line = trailers + pos;
        const char *lf = memchr(line, '\n', trailers_len - pos);
        size_t len = lf ? (size_t)(lf - line) + 1 : trailers_len - pos;
        const char *colon = memchr(line, ':', len);
        if (colon && chunked_trailer_allowed(line, (size_t)(colon - line)) &&
            buffer_append(out, line, len) != 0)
            return -1;
        pos += len;
    }
    return buffer_append(out, "\r\n", 2) ? -1 : 0;
}

/* Hands one decoded piece to the filter, or encodes it directly. */
static int emit(struct buffer *dst, enum http_body_kind out_kind, body_filter *filter,
                void *filter_arg, const char *data, size_t len, int eof)
{
    if (filter)
        return filter(filter_arg, data, len, eof, dst, out_kind);
    return body_write_data(dst, out_kind, data, len);
}

/* Hands the gathered chunks to the filter as one piece and empties the
 * batch (the filter is done with the bytes when it returns, even when it
 * pauses). The filter's result. */
static int emit_batch(struct body_reader *r, struct buffer *dst, enum http_body_kind out_kind,
                      body_filter *filter, void *filter_arg, uint64_t *moved)
{
    size_t n = buffer_length(r->batch);
    int rc = filter(filter_arg, buffer_peek(r->batch), n, 0, dst, out_kind);
    buffer_consume(r->batch, n);
    if (rc >= 0) {
        *moved += n;
        r->filtered += n;
    }
    return rc;
}

/* Keeps the trailers of a body whose end waits for the filter (which
 * paused), in the batch buffer: they point into the input, which is
 * consumed before the filter resumes. The batch is empty then, and
 * trailer sections are capped (CHUNKED_MAX_TRAILER). Without a batch
 * (no filter that can pause) there is nothing to keep them for. 0, or -1
 * out of memory. */
static int hold_trailers(struct body_reader *r, const char *trailers, size_t len)
{
    if (!r->batch || len == 0)
        return 0;
    return buffer_append(r->batch, trailers, len);
}

/* Ends a body whose end waited for the filter, with the trailers held. */
static enum body_pump_result end_held(struct body_reader *r, struct buffer *dst,
                                      enum http_body_kind out_kind)
{
    const char *trailers = r->batch ? buffer_peek(r->batch) : "";
    size_t len = r->batch ? buffer_length(r->batch) : 0;
    int rc = body_write_end(dst, out_kind, trailers, len);

    if (r->batch)
        buffer_consume(r->batch, len);
    if (rc != 0)
        return BODY_PUMP_FILTER_FAILED;
    r->kind = HTTP_BODY_NONE;
    return BODY_PUMP_DONE;
}

enum body_pump_result body_pump(struct body_reader *r, struct buffer *src, int src_eof,
                                struct buffer *dst, size_t dst_limit,
                                enum http_body_kind out_kind, body_filter *filter,
                                void *filter_arg, uint64_t *moved, enum http_error *err)
{
    enum body_pump_result result = BODY_PUMP_IDLE;
    const char *trailers = "";
    size_t trailers_len = 0;

    if (r->eof_pending) {
        /* The filter has finished the batch it took at the body's end:
         * now its eof call, then the end. */
        int rc = emit(dst, out_kind, filter, filter_arg, "", 0, 1);
        r->eof_pending = 0;
        if (rc > 0) {
            r->end_pending = 1;
            return BODY_PUMP_PAUSED;
        }
        if (rc < 0)
            return BODY_PUMP_FILTER_FAILED;
        return end_held(r, dst, out_kind);
    }
    if (r->end_pending) {
        /* The filter has finished the last piece it took: end the body. */
        r->end_pending = 0;
        return end_held(r, dst, out_kind);
    }
    while (buffer_length(dst) < dst_limit) {
        const char *in = buffer_peek(src), *data = NULL;
        size_t len = buffer_length(src), consumed = 0, data_len = 0;
        int finished = 0;

        switch (r->kind) {
        case HTTP_BODY_NONE:
            finished = 1;
            break;
        case HTTP_BODY_LENGTH:
            if (r->remaining == 0) {
                finished = 1;
                break;
            }
            if (len == 0)
                return src_eof ? BODY_PUMP_TRUNCATED : result;
            if (!filter && out_kind == HTTP_BODY_LENGTH && buffer_length(dst) == 0 &&
                len <= r->remaining) {
                /* Everything buffered is body, passed on as it is: hand the
                 * whole buffer over instead of copying it. */
                buffer_swap(src, dst);
                r->remaining -= len;
                r->swapped += len;
                *moved += len;
                result = BODY_PUMP_PROGRESS;
                continue;
            }
            data = in;
            data_len = len < r->remaining ? len : (size_t)r->remaining;
            consumed = data_len;
            r->remaining -= data_len;
            break;
        case HTTP_BODY_CLOSE:
            if (len == 0) {
                if (!src_eof)
                    return result;
                finished = 1;
                break;
            }
            if (!filter && out_kind == HTTP_BODY_CLOSE && buffer_length(dst) == 0) {
                buffer_swap(src, dst);
                r->swapped += len;
                *moved += len;
                result = BODY_PUMP_PROGRESS;
                continue;
            }
            data = in;
            data_len = consumed = len;
            break;
        case HTTP_BODY_CHUNKED:
            switch (chunked_decode(&r->chunked, in, len, &consumed, &data, &data_len, err)) {
            case CHUNKED_RESULT_DATA:
                break;
            case CHUNKED_RESULT_NEED_MORE:
                buffer_consume(src, consumed);
                if (src_eof)
                    return BODY_PUMP_TRUNCATED;
                if (r->batch && buffer_length(r->batch) > 0) {
                    /* All that is buffered is in the batch: it goes now. */
                    int rc = emit_batch(r, dst, out_kind, filter, filter_arg, moved);
                    if (rc < 0)
                        return BODY_PUMP_FILTER_FAILED;
                    return rc > 0 ? BODY_PUMP_PAUSED : BODY_PUMP_PROGRESS;
                }
                return consumed ? BODY_PUMP_PROGRESS : result;
            case CHUNKED_RESULT_DONE:
                trailers = data;
                trailers_len = data_len;
                data_len = 0;
                finished = 1;
                break;
            case CHUNKED_RESULT_ERROR:
                return BODY_PUMP_INVALID;
            }
            break;
        }
        if (filter && r->batch && r->kind == HTTP_BODY_CHUNKED &&
            ((data_len > 0 && (data_len < BODY_BATCH_MIN || buffer_length(r->batch) > 0)) ||
             (finished && buffer_length(r->batch) > 0))) {
            /* A chunk joins the batch (a large one only behind small ones,
             * to keep the order); the batch goes once it is large enough,
             * or at the body's end, before the eof call. */
            int rc;
            if (data_len > 0) {
                if (buffer_append(r->batch, data, data_len) != 0)
                    return BODY_PUMP_FILTER_FAILED;
                buffer_consume(src, consumed);
                consumed = data_len = 0;
                if (buffer_length(r->batch) < BODY_BATCH_MIN) {
                    result = BODY_PUMP_PROGRESS;
                    continue;
                }
            }
            rc = emit_batch(r, dst, out_kind, filter, filter_arg, moved);
            if (rc != 0) {
                if (rc > 0 && finished && hold_trailers(r, trailers, trailers_len) != 0)
                    rc = -1;
                buffer_consume(src, consumed);
                if (rc < 0)
                    return BODY_PUMP_FILTER_FAILED;
                r->eof_pending = finished; /* its eof call comes after the wait */
                return BODY_PUMP_PAUSED;
            }
            if (!finished) {
                result = BODY_PUMP_PROGRESS;
                continue;
            }
        }
        if (data_len > 0) {
            int rc = emit(dst, out_kind, filter, filter_arg, data, data_len, 0);
            if (rc < 0)
                return BODY_PUMP_FILTER_FAILED;
            *moved += data_len;
            *(filter ? &r->filtered : &r->copied) += data_len;
            if (rc > 0 && !finished) {
                buffer_consume(src, consumed);
                return BODY_PUMP_PAUSED;
            }
        }
        if (finished) {
            /* Trailers only survive chunked-to-chunked, and only the fields
             * a trailer may carry (body_write_end); elsewhere they have no
             * place to go and are dropped (RFC 9110 6.5.1 allows it). */
            int rc = emit(dst, out_kind, filter, filter_arg, "", 0, 1);
            if (rc > 0) {
                int held = hold_trailers(r, trailers, trailers_len);
                buffer_consume(src, consumed);
                if (held != 0)
                    return BODY_PUMP_FILTER_FAILED;
                r->end_pending = 1;
                return BODY_PUMP_PAUSED;
            }
            if (rc < 0 || body_write_end(dst, out_kind, trailers, trailers_len) != 0) {
                buffer_consume(src, consumed);
                return BODY_PUMP_FILTER_FAILED;
            }
            buffer_consume(src, consumed);
            r->kind = HTTP_BODY_NONE;
            return BODY_PUMP_DONE;
        }
        buffer_consume(src, consumed);
        result = BODY_PUMP_PROGRESS;
    }
    return result;
}
