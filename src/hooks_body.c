/*
 * hooks_body.c - the on_response_chunk filter: each piece of a response
 * body passes through every script's hook in order, each one's output the
 * next one's input, before it is framed for the client.
 */
#include "hooks_internal.h"

#include "log.h"
#include "session.h"

int hooks_body_filter(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                      enum http_body_kind out_kind)
{
    struct session *s = arg;
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    struct chunk_args chunk = {data, len, eof, NULL};
    struct buffer held[2]; /* each script's output is the next one's input */
    int which = 0, rc = 0;

    if (hs->tx_ref == LUA_NOREF && hooks_protected(s, hooks_tx_make, "tx") != 0) {
        s->x.error = "a script failed in on_response_chunk";
        return -1;
    }
    buffer_init(&held[0]);
    buffer_init(&held[1]);
    hs->phase = HOOK_ON_RESPONSE_CHUNK;
    for (hs->script = 0; hs->script < h->script_count; hs->script++) {
        int nres = 0;
        double sleep_for;
        if (!(h->has[HOOK_ON_RESPONSE_CHUNK] & (1u << hs->script)))
            continue;
        lua_State *L = h->L;
        lua_pushcfunction(L, hooks_start_call);
        lua_pushlightuserdata(L, s);
        lua_pushlightuserdata(L, &chunk);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
            log_error("#%llu on_response_chunk: %s", (unsigned long long)s->x.id,
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
            lua_pushstring(hs->co, "on_response_chunk must return a string or nothing");
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
        s->x.res_filtered_bytes += chunk.len;
    if (rc != 0)
        s->x.error = "a script failed in on_response_chunk";
    buffer_free(&held[0]);
    buffer_free(&held[1]);
    return rc;
}
