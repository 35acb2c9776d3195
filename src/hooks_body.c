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

#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "headers.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "session_watch.h"

/* Decoded bytes handed to the hooks at once: a 64 KiB compressed piece may
 * decode to megabytes, and a hook should get pieces of a sensible size. */
#define DECODED_PIECE (256 * 1024)
/* The most a response body may decode to (the ratio cap usually stops a
 * bomb long before). */
#define DECODED_MAX ((uint64_t)1 << 30)
/* Decoded bytes made per call before others get the loop: a 2 MB body may
 * decode to 200 MB within the caps, some 0.4 s of work. */
#define DECODE_TURN (1024 * 1024)

/* A response body decoded for the hooks (hook_state.dec). */
struct body_decoding {
    struct decoder *decoder;    /* undoes the response's Content-Encoding */
    struct buffer decoded;      /* decoder output on its way to the hooks */
    int decoded_eof;            /* the decoded text left ends the body */
    struct buffer held;         /* encoded input the decoder has yet to take */
    int held_eof;               /* ... and it ends the body */
    int decode_more;            /* the decoder stopped at its budget */
    int decoding;               /* a piece is not all decoded and handed on:
                                 * the relay goes on (hooks_decode_resume) */
    struct buffer *decode_out;  /* where that piece's text goes, framed so */
    enum http_body_kind decode_kind;
};

int hooks_decoding(const struct hook_state *hs)
{
    return hs->dec && hs->dec->decoding;
}

void hooks_decoding_free(struct hook_state *hs)
{
    if (!hs->dec)
        return;
    decoder_free(hs->dec->decoder);
    buffer_free(&hs->dec->decoded);
    buffer_free(&hs->dec->held);
    free(hs->dec);
    hs->dec = NULL;
}

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

/* The coding the chunk hooks would see undone in a response with
 * <fields>, decided the same for a body that comes and for one that
 * does not (hooks_response_decodes): DECODE_IDENTITY when it would reach
 * them as it came. */
static enum decode_coding response_coding(const struct session *s, const struct headers *fields)
{
    enum decode_coding coding;
    size_t len;
    ssize_t at;

    if (s->x.hook.res_decode_off)
        return DECODE_IDENTITY;
    /* A range of an encoded body cannot be decoded on its own (it starts
     * mid-stream), and its Content-Range counts encoded bytes: it goes to
     * the hooks, and on, as it came. */
    if (s->x.status == 206 || headers_find(fields, "Content-Range", 13, 0) >= 0)
        return DECODE_IDENTITY;
    at = headers_find(fields, "Content-Encoding", 16, 0);
    if (at < 0)
        return DECODE_IDENTITY;
    /* several fields: stacked codings, left alone */
    if (headers_find(fields, "Content-Encoding", 16, (size_t)at + 1) >= 0)
        return DECODE_IDENTITY;
    const char *value = headers_value(fields, (size_t)at, &len);
    coding = decode_coding_parse(value, len);
    return coding == DECODE_UNKNOWN ? DECODE_IDENTITY : coding;
}

int hooks_response_decodes(const struct session *s, const struct headers *fields)
{
    return hooks_filters_response(s) && response_coding(s, fields) != DECODE_IDENTITY;
}

void hooks_head_decoded(struct headers *fields)
{
    ssize_t at;
    size_t len;

    headers_remove(fields, "Content-Encoding", 16); /* before the find: it moves fields */
    at = headers_find(fields, "ETag", 4, 0);
    if (at < 0)
        return;
    const char *value = headers_value(fields, (size_t)at, &len);
    if (len == 0 || value[0] != '"')
        return; /* weak already, or not an entity-tag: left as it came */
    char *weak = malloc(len + 2);
    int set = 0;
    if (weak) {
        memcpy(weak, "W/", 2);
        memcpy(weak + 2, value, len);
        set = headers_set_value(fields, (size_t)at, weak, len + 2) == 0;
        free(weak);
    }
    if (!set) /* out of memory: better no validator than a wrong one */
        headers_remove(fields, "ETag", 4);
}

int hooks_prepare_response_body(struct session *s, struct headers *fields)
{
    struct hook_state *hs = &s->x.hook;
    enum decode_coding coding;

    if (hs->dec)
        return 0;
    coding = response_coding(s, fields);
    if (coding == DECODE_IDENTITY)
        return 0;
    hs->dec = calloc(1, sizeof *hs->dec);
    if (!hs->dec)
        return -1;
    buffer_init(&hs->dec->decoded);
    buffer_init(&hs->dec->held);
    hs->dec->decoder = decoder_new(coding, DECODED_MAX);
    if (!hs->dec->decoder) {
        hooks_decoding_free(hs);
        return -1;
    }
    hooks_head_decoded(fields);
    return 0;
}

/* The piece in its registry slot, as a string on <L> (+1), and its bytes. */
static const char *piece_bytes(lua_State *L, const struct hook_state *hs, size_t *len)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs->piece_ref);
    return lua_tolstring(L, -1, len);
}

/* Runs the chunk hooks of hs->phase over the piece from script hs->script
 * on (<resuming>: the current one waited and wakes with hs->wake_nargs
 * values) and encodes what the last one returned into hs->piece_out.
 * 0 when the piece is done, 1 when a hook waits (the piece stays in its
 * registry slot), -1 when a script failed (x->error says so).
 *
 * Copies: the relay's bytes become a Lua string once, when the first hook
 * starts; a hook that returns its chunk (or nothing) leaves it as it is,
 * and one that returns a new string hands that string to the next hook
 * as it is. The last one is framed into the output buffer. */
static int chunk_steps(struct session *s, int resuming)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    enum hook_phase phase = hs->phase;
    const char *out;
    size_t out_len;
    int rc = 0;

    for (; hs->script < h->script_count; hs->script++, resuming = 0) {
        struct chunk_args chunk = {hs->piece_data, hs->piece_len, hs->piece_eof};
        int nres = 0, nargs;
        double sleep_for = 0;
        enum call_outcome outcome;

        if (!(h->has[phase] & (1u << hs->script)))
            continue;
        if (resuming) {
            nargs = hs->wake_nargs;
            hs->wake_nargs = 0;
        } else {
            if (hooks_start(s, &chunk) != 0) {
                rc = -1;
                break;
            }
            nargs = HOOKS_START_NARGS;
        }
        outcome = nargs < 0 ? CALL_FAILED : hooks_resume(s, nargs, &nres, &sleep_for);
        if (outcome == CALL_SLEEP || outcome == CALL_WAIT) {
            /* The body waits with the hook; others carry on. */
            hs->pending = 1;
            hs->waiting = outcome == CALL_WAIT;
            ev_timer_set(&hs->sleep_timer, outcome == CALL_WAIT ? h->wait_timeout : sleep_for, 0.);
            ev_timer_start(s->proxy->loop, &hs->sleep_timer);
            return 1;
        }
        if (outcome != CALL_DONE) {
            hooks_drop_coroutine(hs);
            if (h->mode == HOOK_ERRORS_OPEN)
                continue; /* pass the piece on unchanged */
            rc = -1;
            break;
        }
        /* A finished coroutine reports everything left on its stack, the
         * chunk kept below the function included: the results are above
         * it. (The very string it was given is the piece: no copy.) */
        nres = lua_gettop(hs->co) - 1;
        if (nres >= 1 && lua_type(hs->co, -nres) == LUA_TSTRING) {
            size_t rlen, in_len;
            const char *r = lua_tolstring(hs->co, -nres, &rlen);
            const char *in = lua_tolstring(hs->co, 1, &in_len);
            if (s->x.flow) {
                int changed = r != in && (rlen != in_len || (rlen > 0 && memcmp(r, in, rlen) != 0));
                const char *what = phase == HOOK_ON_REQUEST_CHUNK ? "request body" : "response body";
                flows_record_hook(s->x.flow, h->script_name[hs->script], hooks_phase_names[phase],
                                  changed ? what : NULL, changed ? strlen(what) : 0);
            }
            if (r != in) {
                /* The slot exists: storing into it allocates nothing. */
                if (!lua_checkstack(hs->co, 1)) {
                    hooks_drop_coroutine(hs);
                    rc = -1;
                    break;
                }
                lua_pushvalue(hs->co, -nres);
                lua_rawseti(hs->co, LUA_REGISTRYINDEX, hs->piece_ref);
            }
        } else if (nres < 1 || lua_type(hs->co, -nres) == LUA_TNIL) {
            flows_record_hook(s->x.flow, h->script_name[hs->script], hooks_phase_names[phase], NULL, 0);
        } else {
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
    /* No hook started (every one failed at once, --hook-errors open): the
     * relay's bytes are still the piece, and still valid (nothing waited). */
    out = hs->piece_data;
    out_len = hs->piece_len;
    if (hs->piece_in_lua)
        out = piece_bytes(h->L, hs, &out_len); /* +1 */
    /* Straight from the string to the client when nothing waits before
     * it: the one copy left on the way out is the kernel's. */
    if (rc == 0 &&
        body_write_data_direct(phase == HOOK_ON_REQUEST_CHUNK ? &hs->req_direct : &hs->direct,
                               hs->piece_out, hs->piece_kind, out, out_len) != 0)
        rc = -1;
    else if (rc == 0)
        *hs->piece_sent += out_len;
    if (hs->piece_in_lua) {
        lua_pop(h->L, 1);
        /* The slot keeps a value (false), so a later store finds it. */
        lua_pushboolean(h->L, 0);
        lua_rawseti(h->L, LUA_REGISTRYINDEX, hs->piece_ref);
        hs->piece_in_lua = 0;
    }
    hs->piece_data = NULL;
    hs->piece_len = 0;
    if (rc != 0)
        s->x.error = phase == HOOK_ON_REQUEST_CHUNK ? "a script failed in on_request_chunk"
                                                    : "a script failed in on_response_chunk";
    return rc;
}

/* Runs <phase>'s chunk hooks over one piece, output into <out>. 0, 1
 * (a hook waits: the piece is taken and finishes later), or -1. <data>
 * need only last until this returns. */
static int run_chunk_hooks(struct session *s, enum hook_phase phase, const char *data,
                           size_t len, int eof, struct buffer *out, enum http_body_kind out_kind,
                           uint64_t *sent)
{
    struct hook_state *hs = &s->x.hook;

    if (hs->tx_ref == LUA_NOREF && hooks_protected(s, hooks_tx_make, "tx") != 0) {
        s->x.error = "a script failed in a chunk hook";
        return -1;
    }
    hs->piece_data = data;
    hs->piece_len = len;
    hs->piece_in_lua = 0;
    hs->phase = phase;
    hs->script = 0;
    hs->piece_eof = eof;
    hs->piece_out = out;
    hs->piece_kind = out_kind;
    hs->piece_sent = sent;
    return chunk_steps(s, 0);
}

/* Hands decoded text to the hooks in pieces; the last one carries the
 * body's end when hs->dec->decoded_eof. 0, 1 (a hook waits) or -1. */
static int drain_decoded(struct session *s)
{
    struct hook_state *hs = &s->x.hook;
    do {
        size_t n = buffer_length(&hs->dec->decoded);
        int last, rc;
        if (n > DECODED_PIECE)
            n = DECODED_PIECE;
        last = n == buffer_length(&hs->dec->decoded);
        if (n == 0 && !hs->dec->decoded_eof)
            break;
        rc = run_chunk_hooks(s, HOOK_ON_RESPONSE_CHUNK, buffer_peek(&hs->dec->decoded), n,
                             hs->dec->decoded_eof && last, hs->dec->decode_out, hs->dec->decode_kind,
                             &s->x.res_filtered_bytes);
        buffer_consume(&hs->dec->decoded, n);
        if (hs->dec->decoded_eof && last)
            hs->dec->decoded_eof = 0; /* the end went through */
        if (rc != 0)
            return rc;
    } while (buffer_length(&hs->dec->decoded) > 0);
    buffer_shrink(&hs->dec->decoded);
    return 0;
}

/* One bounded step of the decoder over <data> (the relay's bytes, or the
 * held input itself): about DECODED_PIECE of text into hs->dec->decoded. What
 * it did not take is held for the next step. 0, or -1 (x->error says). */
static int decode_step(struct session *s, const char *data, size_t len, int eof)
{
    struct hook_state *hs = &s->x.hook;
    int from_held = len > 0 && data == buffer_peek(&hs->dec->held);
    size_t used = 0;
    enum decode_result r =
        decoder_feed_some(hs->dec->decoder, data, len, eof, &hs->dec->decoded, DECODED_PIECE, &used);

    if (r == DECODE_CORRUPT || r == DECODE_BOMB || r == DECODE_NOMEM) {
        hs->body_error = r == DECODE_BOMB ? HOOKS_BODY_BOMB : HOOKS_BODY_CORRUPT;
        s->x.error = r == DECODE_BOMB ? "the upstream's compressed body expands too far"
                                      : "the upstream sent a corrupt compressed body";
        buffer_free(&hs->dec->decoded);
        buffer_free(&hs->dec->held);
        return -1;
    }
    hs->dec->decode_more = r == DECODE_MORE;
    hs->dec->held_eof = eof;
    if (from_held) {
        /* Input a step could not use at all is dropped, as the decoder
         * has always done with bytes past a stream it cannot go on with. */
        buffer_consume(&hs->dec->held, hs->dec->decode_more ? used : len);
    } else if (hs->dec->decode_more && buffer_append(&hs->dec->held, data + used, len - used) != 0) {
        s->x.error = "out of memory";
        return -1;
    }
    if (!hs->dec->decode_more) {
        buffer_free(&hs->dec->held);
        hs->dec->decoded_eof = eof;
    }
    return 0;
}

/* Hands the decoded text on, decoding more as it goes, until the input is
 * used up (0), a hook waits (1, hs->pending), or enough was made for now
 * (1): DECODE_TURN bytes, or the client's output is full. The relay then
 * calls hooks_decode_resume, after the loop's turn or once the client has
 * read, so one small piece that decodes to hundreds of megabytes is never
 * made, or held, all at once. -1 when it failed (x->error says). */
static int decode_and_drain(struct session *s)
{
    struct hook_state *hs = &s->x.hook;
    size_t made = 0;

    for (;;) {
        int rc;
        made += buffer_length(&hs->dec->decoded);
        rc = drain_decoded(s);
        if (rc != 0)
            return rc;
        if (!hs->dec->decode_more) {
            hs->dec->decoding = 0;
            return 0;
        }
        if (made >= DECODE_TURN || session_output_blocked(s))
            return 1;
        if (decode_step(s, buffer_peek(&hs->dec->held), buffer_length(&hs->dec->held), hs->dec->held_eof) != 0)
            return -1;
    }
}

int hooks_decode_resume(struct session *s)
{
    return decode_and_drain(s);
}

enum hooks_result hooks_chunk_continue(struct session *s)
{
    /* Decoded text after the piece waits for the relay (hooks_decode_resume). */
    int rc = chunk_steps(s, 1);
    return rc == 0 ? HOOKS_CONTINUE : rc > 0 ? HOOKS_PENDING : HOOKS_FAILED;
}

int hooks_body_filter(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                      enum http_body_kind out_kind)
{
    struct session *s = arg;
    struct hook_state *hs = &s->x.hook;

    if (!hs->dec)
        return run_chunk_hooks(s, HOOK_ON_RESPONSE_CHUNK, data, len, eof, out, out_kind,
                               &s->x.res_filtered_bytes);
    hs->dec->decode_out = out;
    hs->dec->decode_kind = out_kind;
    hs->dec->decoding = 1;
    if (buffer_length(&hs->dec->held) > 0) {
        /* Not expected (the relay finishes the held input before it reads
         * on), but order is kept if it happens. */
        if (buffer_append(&hs->dec->held, data, len) != 0)
            return -1;
        data = buffer_peek(&hs->dec->held);
        len = buffer_length(&hs->dec->held);
    }
    if (decode_step(s, data, len, eof) != 0)
        return -1;
    return decode_and_drain(s);
}

int hooks_request_filter(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                         enum http_body_kind out_kind)
{
    struct session *s = arg;
    return run_chunk_hooks(s, HOOK_ON_REQUEST_CHUNK, data, len, eof, out, out_kind,
                           &s->x.hook.sent_scratch);
}

int hooks_request_collect(void *arg, const char *data, size_t len, int eof,
                          struct buffer *out, enum http_body_kind out_kind)
{
    struct session *s = arg;
    struct hook_state *hs = &s->x.hook;
    struct buffer whole;
    int rc;
    (void)out;
    (void)out_kind;

    if (buffer_length(&hs->collected) + len > s->proxy->cfg->max_body_buffer) {
        hs->body_error = HOOKS_BODY_TOO_LARGE;
        s->x.error = "the request body is larger than --max-body-buffer";
        return -1;
    }
    /* Each body is bounded, but not how many clients send one at once:
     * all those a worker collects together are bounded too, by the
     * memory its scripts may use (each becomes a Lua string there). */
    if (s->proxy->collected_held + len > hs->hooks->mem_limit) {
        hs->body_error = HOOKS_BODY_BUSY;
        s->x.error = "the request bodies being collected would hold more than --lua-memory";
        return -1;
    }
    if (buffer_append(&hs->collected, data, len) != 0)
        return -1;
    hs->collected_held += len;
    s->proxy->collected_held += len;
    flows_record_body(s->x.flow, 0, 1, data, len);
    if (!eof)
        return 0;
    /* The whole body, once: what the hooks return replaces it. */
    hooks_collected_release(s);
    buffer_init(&whole);
    buffer_swap(&whole, &hs->collected);
    rc = run_chunk_hooks(s, HOOK_ON_REQUEST_CHUNK, buffer_peek(&whole), buffer_length(&whole),
                         1, &hs->collected, HTTP_BODY_LENGTH, &hs->sent_scratch);
    buffer_free(&whole);
    return rc;
}

void hooks_collected_release(struct session *s)
{
    s->proxy->collected_held -= s->x.hook.collected_held;
    s->x.hook.collected_held = 0;
}

struct buffer *hooks_collected(struct session *s)
{
    return &s->x.hook.collected;
}
