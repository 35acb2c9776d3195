/*
 * hooks_body.c - the chunk hooks: each piece of a body passes through
 * every script's on_response_chunk (or on_request_chunk) in order, each
 * one's output the next one's input, before it is framed for the peer.
 *
 * Also what happens around them: a response body with a Content-Encoding
 * the proxy can undo is decoded first (decode.c), so the hooks see text;
 * a request body a script asked for whole (tx.req.buffer_body) is collected
 * up to --max-body-buffer and handed to the hook once.
 */
#include "hooks_internal.h"

#include <string.h>

#include "decode.h"
#include "headers.h"
#include "log.h"
#include "proxy.h"
#include "session.h"

/* Decoded bytes handed to the hooks at once: a 64 KiB compressed piece may
 * decode to megabytes, and a hook should get pieces of a sensible size. */
#define DECODED_PIECE (256 * 1024)
/* The most a response body may decode to (the ratio cap usually stops a
 * bomb long before). */
#define DECODED_MAX ((uint64_t)1 << 30)

int hooks_filters_request(const struct session *s)
{
    return hooks_wants(s, HOOK_ON_REQUEST_CHUNK) && !s->x.hook.req_filter_off;
}

int hooks_filters_response(const struct session *s)
{
    return hooks_wants(s, HOOK_ON_RESPONSE_CHUNK) && !s->x.hook.res_filter_off;
}

int hooks_collects_request(const struct session *s)
{
    return hooks_filters_request(s) && s->x.hook.req_buffer;
}

int hooks_prepare_response_body(struct session *s, struct headers *fields)
{
    struct hook_state *hs = &s->x.hook;
    enum decode_coding coding = DECODE_IDENTITY;
    size_t len;
    ssize_t at;

    if (hs->res_decode_off || hs->decoder)
        return 0;
    at = headers_find(fields, "Content-Encoding", 16, 0);
    if (at < 0)
        return 0;
    const char *value = headers_value(fields, (size_t)at, &len);
    coding = decode_coding_parse(value, len);
    if (headers_find(fields, "Content-Encoding", 16, (size_t)at + 1) >= 0)
        coding = DECODE_UNKNOWN; /* several fields: stacked codings, left alone */
    if (coding == DECODE_IDENTITY || coding == DECODE_UNKNOWN)
        return 0;
    hs->decoder = decoder_new(coding, DECODED_MAX);
    if (!hs->decoder)
        return -1;
    headers_remove(fields, "Content-Encoding", 16);
    return 0;
}

/* Runs <phase>'s chunk hooks over one piece and encodes what the last one
 * returned into <out>. <sent> grows by the bytes written. 0, or -1 when a
 * script failed (x->error says so). */
static int run_chunk_hooks(struct session *s, enum hook_phase phase, const char *data,
                           size_t len, int eof, struct buffer *out, enum http_body_kind out_kind,
                           uint64_t *sent)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    struct chunk_args chunk = {data, len, eof, NULL};
    struct buffer held[2]; /* each script's output is the next one's input */
    int which = 0, rc = 0;

    if (hs->tx_ref == LUA_NOREF && hooks_protected(s, hooks_tx_make, "tx") != 0) {
        s->x.error = "a script failed in a chunk hook";
        return -1;
    }
    buffer_init(&held[0]);
    buffer_init(&held[1]);
    hs->phase = phase;
    for (hs->script = 0; hs->script < h->script_count; hs->script++) {
        int nres = 0;
        double sleep_for;
        if (!(h->has[phase] & (1u << hs->script)))
            continue;
        lua_State *L = h->L;
        lua_pushcfunction(L, hooks_start_call);
        lua_pushlightuserdata(L, s);
        lua_pushlightuserdata(L, &chunk);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
            log_error("c%llu #%llu %s: %s", (unsigned long long)s->id, (unsigned long long)s->x.id, hooks_phase_names[phase],
                      lua_tostring(L, -1));
            lua_pop(L, 1);
            rc = -1;
            break;
        }
        if (hooks_resume(s, 3, &nres, &sleep_for) != CALL_DONE) {
            hooks_drop_coroutine(hs);
            if (h->mode == HOOK_ERRORS_OPEN)
                continue; /* pass the piece on unchanged */
            rc = -1;
            break;
        }
        /* A finished coroutine reports everything left on its stack, the
         * chunk kept below the function included: that one is no result. */
        nres = lua_gettop(hs->co) - 1;
        if (nres >= 1 && lua_type(hs->co, -nres) == LUA_TSTRING &&
            lua_tostring(hs->co, -nres) != chunk.pushed) {
            size_t rlen;
            const char *r = lua_tolstring(hs->co, -nres, &rlen);
            struct buffer *next = &held[which];
            buffer_consume(next, buffer_length(next));
            if (buffer_append(next, r, rlen) != 0) {
                hooks_drop_coroutine(hs);
                rc = -1;
                break;
            }
            chunk.data = buffer_peek(next);
            chunk.len = buffer_length(next);
            which = !which;
        } else if (nres >= 1 && lua_type(hs->co, -nres) != LUA_TNIL &&
                   lua_type(hs->co, -nres) != LUA_TSTRING) {
            lua_pushfstring(hs->co, "%s must return a string or nothing",
                            hooks_phase_names[phase]);
            hooks_log_failure(s, hs->co, LUA_ERRRUN);
            hooks_drop_coroutine(hs);
            if (h->mode == HOOK_ERRORS_OPEN)
                continue;
            rc = -1;
            break;
        }
        hooks_drop_coroutine(hs);
    }
    if (rc == 0 && body_write_data(out, out_kind, chunk.data, chunk.len) != 0)
        rc = -1;
    else if (rc == 0)
        *sent += chunk.len;
    if (rc != 0)
        s->x.error = phase == HOOK_ON_REQUEST_CHUNK ? "a script failed in on_request_chunk"
                                                    : "a script failed in on_response_chunk";
    buffer_free(&held[0]);
    buffer_free(&held[1]);
    return rc;
}

int hooks_body_filter(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                      enum http_body_kind out_kind)
{
    struct session *s = arg;
    struct hook_state *hs = &s->x.hook;
    enum decode_result r;

    if (!hs->decoder)
        return run_chunk_hooks(s, HOOK_ON_RESPONSE_CHUNK, data, len, eof, out, out_kind,
                               &s->x.res_filtered_bytes);
    r = decoder_feed(hs->decoder, data, len, eof, &hs->decoded);
    if (r == DECODE_CORRUPT || r == DECODE_BOMB || r == DECODE_NOMEM) {
        hs->body_error = r == DECODE_BOMB ? HOOKS_BODY_BOMB : HOOKS_BODY_CORRUPT;
        s->x.error = r == DECODE_BOMB ? "the upstream's compressed body expands too far"
                                      : "the upstream sent a corrupt compressed body";
        buffer_free(&hs->decoded);
        return -1;
    }
    /* Hand the decoded text on in pieces; the last one carries <eof>. */
    do {
        size_t n = buffer_length(&hs->decoded);
        int last;
        if (n > DECODED_PIECE)
            n = DECODED_PIECE;
        last = n == buffer_length(&hs->decoded);
        if ((n > 0 || (eof && last)) &&
            run_chunk_hooks(s, HOOK_ON_RESPONSE_CHUNK, buffer_peek(&hs->decoded), n,
                            eof && last, out, out_kind, &s->x.res_filtered_bytes) != 0)
            return -1;
        buffer_consume(&hs->decoded, n);
    } while (buffer_length(&hs->decoded) > 0);
    buffer_shrink(&hs->decoded);
    return 0;
}

int hooks_request_filter(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                         enum http_body_kind out_kind)
{
    struct session *s = arg;
    uint64_t sent = 0;
    return run_chunk_hooks(s, HOOK_ON_REQUEST_CHUNK, data, len, eof, out, out_kind, &sent);
}

int hooks_request_collect(void *arg, const char *data, size_t len, int eof,
                          struct buffer *out, enum http_body_kind out_kind)
{
    struct session *s = arg;
    struct hook_state *hs = &s->x.hook;
    struct buffer whole;
    uint64_t sent = 0;
    int rc;
    (void)out;
    (void)out_kind;

    if (buffer_length(&hs->collected) + len > s->proxy->cfg->max_body_buffer) {
        hs->body_error = HOOKS_BODY_TOO_LARGE;
        s->x.error = "the request body is larger than --max-body-buffer";
        return -1;
    }
    if (buffer_append(&hs->collected, data, len) != 0)
        return -1;
    if (!eof)
        return 0;
    /* The whole body, once: what the hooks return replaces it. */
    buffer_init(&whole);
    buffer_swap(&whole, &hs->collected);
    rc = run_chunk_hooks(s, HOOK_ON_REQUEST_CHUNK, buffer_peek(&whole), buffer_length(&whole),
                         1, &hs->collected, HTTP_BODY_LENGTH, &sent);
    buffer_free(&whole);
    return rc;
}

struct buffer *hooks_collected(struct session *s)
{
    return &s->x.hook.collected;
}
