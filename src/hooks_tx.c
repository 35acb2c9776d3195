/*
 * hooks_tx.c - the tx table: built from the exchange before the first hook,
 * read back after each phase (the request, the upstream, the response), and
 * the response a script makes itself with tx:respond. Data crosses as
 * copies, so Lua never holds a pointer into the relay's buffers.
 */
#include "hooks_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "headers.h"
#include "log.h"
#include "message.h"
#include "proxy.h"
#include "session.h"

/* Pushes the exchange's request fields as the list hooks_api expects.
 * With room for two more fields and the list's "changed" mark, so the
 * usual edit (a field set or added) does not make Lua grow the table. */
static void push_field_list(lua_State *L, const struct headers *fields)
{
    lua_createtable(L, (int)fields->count * 2 + 4, 1);
    for (size_t i = 0; i < fields->count; i++) {
        size_t nlen, vlen;
        const char *n = headers_name(fields, i, &nlen), *v = headers_value(fields, i, &vlen);
        lua_pushlstring(L, n, nlen);
        lua_rawseti(L, -2, (lua_Integer)(2 * i + 1));
        lua_pushlstring(L, v, vlen);
        lua_rawseti(L, -2, (lua_Integer)(2 * i + 2));
    }
}

int hooks_tx_make(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    struct hooks *h = x->hook.hooks;

    /* The request itself (tx.req) is copied in only when a script first
     * looks at it: see hooks_tx_request_of. The table is what hooks_api
     * describes at api.Tx, made here without a call into Lua. */
    /* Room for what the first hooks add (_req, req, _res, res). */
    lua_createtable(L, 0, 8);                             /* +1 tx */
    lua_pushinteger(L, (lua_Integer)x->id);
    lua_setfield(L, -2, "id");
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->txid_ref);
    lua_pushinteger(L, (lua_Integer)x->id);
    lua_rawset(L, -3);
    lua_pushstring(L, s->client_ip);
    lua_setfield(L, -2, "_client_ip");
    lua_pushinteger(L, s->client_port);
    lua_setfield(L, -2, "_client_port");
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->tx_mt_ref);
    lua_setmetatable(L, -2);
    if (x->user) { /* --auth-file: who sent it */
        lua_pushstring(L, x->user);
        lua_setfield(L, -2, "user");
    }
    if (x->parent) { /* tx.upstream.proxy, however tx.upstream is first made */
        lua_pushstring(L, x->parent->url);
        lua_setfield(L, -2, "_parent");
    }
    x->hook.tx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* native.request_of(id): the request of exchange <id> as tx.req starts
 * from (method, scheme, host, port, path, version, field list), or nothing
 * when <id> is not the exchange being served now (a tx a script kept past
 * its exchange). Nothing changes the request between the first hook and
 * a script's first look at it, except that script's own changes, which
 * need the look first. */
int hooks_tx_request_of(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    struct session *s = h->data_session;
    struct exchange *x = s ? &s->x : NULL;

    if (!x || (lua_Integer)x->id != luaL_checkinteger(L, 1))
        return 0;
    x->hook.req_read = 1; /* hooks_read_request has something to read */
    lua_pushlstring(L, x->fwd_method, x->fwd_method_len);
    lua_pushstring(L, x->is_connect ? "" : x->upstream_tls ? "https" : "http");
    lua_pushstring(L, x->host);
    lua_pushinteger(L, x->port);
    lua_pushlstring(L, x->is_connect ? "" : x->fwd_path, x->is_connect ? 0 : x->fwd_path_len);
    lua_pushstring(L, x->minor >= 1 ? "1.1" : "1.0");
    push_field_list(L, &x->req_headers);
    return 7;
}

/* Pushes t[<key>] of the table at <t>, without metamethods. */
static int raw_get_field(lua_State *L, int t, const char *key)
{
    lua_pushstring(L, key);
    return lua_rawget(L, t);
}

/* Sets t[<key>] = the value at the top (popped), without metamethods. */
static void raw_set_field(lua_State *L, int t, const char *key)
{
    lua_pushstring(L, key);
    lua_insert(L, -2);
    lua_rawset(L, t);
}

/*
 * The request line (method, scheme, host, port, path, version) of tx.req's
 * data, and the status line (status, reason) of tx.res's, are kept in the
 * block that holds the header view's copy (a userdata, under line_key:
 * one allocation for both) and made fields of the data table the first
 * time anything reads or writes a field the table does not hold (through
 * line_mt, which goes with the line). Most hooks read only the
 * header list, and the relay then compares nothing when reading back: a
 * block still there is the relay's own line.
 */
static const char line_key = 'l';

struct data_line {
    int is_request;
    lua_Integer number; /* the port, or the status */
    uint32_t len[5];    /* of the strings, one after the other in text */
    char text[];
};

static const char *const request_line_keys[5] = {"method", "scheme", "host", "path", "version"};
static const char *const status_line_keys[1] = {"reason"};

/* Pushes the header list of <fields> (a view, see hooks_headers.c) and
 * sets it as the field "headers" of the data table at the top, with the
 * line of the <n> strings <str> (of <len> bytes) and <number> kept in the
 * same block as the view's copy; gives the table line_mt. */
static void push_head(lua_State *L, const struct headers *fields, uint64_t stamp, int is_request,
                      const char *const *str, const size_t *len, size_t n, lua_Integer number)
{
    struct hooks *h = hooks_of(L);
    size_t total = 0;
    struct data_line *line;
    char *p;

    for (size_t i = 0; i < n; i++)
        total += len[i];
    line = hooks_headers_push_view(L, fields, stamp, sizeof *line + total); /* +2 list block */
    line->is_request = is_request;
    line->number = number;
    p = line->text;
    for (size_t i = 0; i < n; i++) {
        line->len[i] = (uint32_t)len[i];
        memcpy(p, str[i], len[i]);
        p += len[i];
    }
    lua_rawsetp(L, -3, &line_key);                        /* +1 list */
    lua_setfield(L, -2, "headers"); /* raw: no metatable yet */
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->line_mt_ref);
    lua_setmetatable(L, -2);
}

/* Makes the line of the data table at <d> its fields, if not done yet:
 * from then on it is a plain table. */
static void load_line(lua_State *L, int d)
{
    struct data_line *line;
    const char *p;

    d = lua_absindex(L, d);
    if (lua_rawgetp(L, d, &line_key) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        return;
    }
    line = hooks_headers_extra(lua_touserdata(L, -1));    /* +1 block */
    p = line->text;
    for (size_t i = 0; i < (line->is_request ? 5u : 1u); i++) {
        lua_pushstring(L, line->is_request ? request_line_keys[i] : status_line_keys[i]);
        lua_pushlstring(L, p, line->len[i]);
        lua_rawset(L, d);
        p += line->len[i];
    }
    lua_pushstring(L, line->is_request ? "port" : "status");
    lua_pushinteger(L, line->number);
    lua_rawset(L, d);
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawsetp(L, d, &line_key);
    lua_pushnil(L);
    lua_setmetatable(L, d);
}

/* Whether the data table at <d> still holds its line as the relay's. */
static int line_unread(lua_State *L, int d)
{
    int unread = lua_rawgetp(L, d, &line_key) == LUA_TUSERDATA;
    lua_pop(L, 1);
    return unread;
}

/* line_mt's __index and __newindex: the line made fields, then a raw
 * get or set (hooks_api reads and writes the data table directly). */
static int line_index(lua_State *L)
{
    lua_settop(L, 2);
    load_line(L, 1);
    lua_rawget(L, 1);
    return 1;
}

static int line_newindex(lua_State *L)
{
    lua_settop(L, 3);
    load_line(L, 1);
    lua_rawset(L, 1);
    return 0;
}

/* native.load_data(d): d with its line made fields (for hooks_api's
 * walks over it: pairs, copies). Returns d. */
static int load_data(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    load_line(L, 1);
    return 1;
}

/* native.make_request(tx): tx.req made from the exchange being served now,
 * the way hooks_api's req_data describes it, in C (a script's first look
 * at tx.req is on the path of most hooks). Returns the request's data
 * table, or nothing when <tx> is not the exchange being served now. */
int hooks_tx_make_request(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    struct session *s = h->data_session;
    struct exchange *x = s ? &s->x : NULL;
    int is_id;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->txid_ref);
    lua_rawget(L, 1);                                     /* +1 id */
    is_id = x && lua_isinteger(L, -1) && lua_tointeger(L, -1) == (lua_Integer)x->id;
    lua_pop(L, 1);
    if (!is_id)
        return 0;
    x->hook.req_read = 1; /* hooks_read_request has something to read */
    const char *scheme = x->is_connect ? "" : x->upstream_tls ? "https" : "http";
    const char *version = x->minor >= 1 ? "1.1" : "1.0";
    const char *str[5] = {x->fwd_method, scheme, x->host, x->is_connect ? "" : x->fwd_path, version};
    size_t len[5] = {x->fwd_method_len, strlen(scheme), strlen(x->host),
                     x->is_connect ? 0 : x->fwd_path_len, 3};
    /* Room for the headers, the line and what hooks_api may add first
     * (url, the changed mark); the line's fields make it grow. */
    lua_createtable(L, 0, 4);                             /* +1 d */
    push_head(L, &x->req_headers, x->id, 1, str, len, 5, x->port);
    lua_pushvalue(L, 2);
    raw_set_field(L, 1, "_req");
    lua_createtable(L, 0, 1);                             /* +2 d req */
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->data_key_ref);
    lua_pushvalue(L, 2);
    lua_rawset(L, 3);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->request_mt_ref);
    lua_setmetatable(L, 3);
    raw_set_field(L, 1, "req");                           /* +1 d */
    return 1;
}

/* tx.req's and tx.res's __index (a script reads tx.req.headers and
 * tx.res.headers on the path of most hooks): the field of the data table
 * kept under the key in upvalue 1. For tx.req, upvalue 2 (hooks_api's
 * url_of) makes d.url the first time it is read. */
static int data_index(lua_State *L)
{
    size_t len;
    const char *key;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    if (lua_rawget(L, 1) != LUA_TTABLE)                   /* +1 d */
        return luaL_error(L, "not the request or response of a tx");
    lua_pushvalue(L, 2);
    if (lua_rawget(L, 3) == LUA_TNIL && line_unread(L, 3)) { /* +2 d v */
        lua_pop(L, 1);
        load_line(L, 3);
        lua_pushvalue(L, 2);
        lua_rawget(L, 3);
    }
    if (!lua_isnil(L, -1) || lua_isnone(L, lua_upvalueindex(2)))
        return 1;
    key = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;
    if (!key || len != 3 || memcmp(key, "url", 3) != 0)
        return 1;
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 3);
    lua_call(L, 1, 1);                                    /* +3 d nil url */
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 3);                                     /* d.url = url */
    return 1;
}

/* tx's __index: the method <key> of upvalue 1 (hooks_api's tx_methods);
 * tx.req, made on a script's first look at it; else what upvalue 2
 * (hooks_api's tx_index_rest) returns for the other fields made on first
 * use. tx.req is read by most hooks, and this way costs no Lua call. */
static int tx_index(lua_State *L)
{
    size_t len;
    const char *key;

    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)  /* +1 method */
        return 1;
    lua_pop(L, 1);
    key = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;
    if (key && len == 3 && memcmp(key, "req", 3) == 0 && lua_type(L, 1) == LUA_TTABLE) {
        if (raw_get_field(L, 1, "_req") == LUA_TNIL) {   /* +1 d */
            lua_pushcfunction(L, hooks_tx_make_request);
            lua_pushvalue(L, 1);
            lua_call(L, 1, 0);
        }
        lua_pop(L, 1);
        raw_get_field(L, 1, "req");
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* native.tx_index(tx_methods, rest): tx's __index. */
static int tx_index_function(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_pushcclosure(L, tx_index, 2);
    return 1;
}

/* native.data_index(DATA, url_of): the __index of tx.req, then tx.res. */
static int data_index_functions(lua_State *L)
{
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, data_index, 2);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, data_index, 1);
    return 2;
}

void hooks_tx_register(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    lua_pushcfunction(L, data_index_functions);
    lua_setfield(L, -2, "data_index");
    lua_pushcfunction(L, load_data);
    lua_setfield(L, -2, "load_data");
    lua_pushcfunction(L, tx_index_function);
    lua_setfield(L, -2, "tx_index");
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, line_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, line_newindex);
    lua_setfield(L, -2, "__newindex");
    h->line_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Calls api.<name>(tx) and keeps its result in the registry at *<ref>,
 * in place of what was kept there. */
static void keep_api_result(lua_State *L, struct hook_state *hs, const char *name, int *ref)
{
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
    hooks_push_api_tx(L, hs, name);
    lua_call(L, 1, 1);
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int hooks_tx_snapshot(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    keep_api_result(L, &s->x.hook, "snapshot", &s->x.hook.snap_ref);
    return 0;
}

int hooks_tx_restore(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct hook_state *hs = &s->x.hook;
    hooks_push_api_tx(L, hs, "restore");
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs->snap_ref);
    lua_call(L, 2, 0);
    return 0;
}

/* Flow capture: the tx as it is before a hook call (api.change_base),
 * compared after it by hooks_tx_record_changes. */
int hooks_tx_change_base(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    keep_api_result(L, &s->x.hook, "change_base", &s->x.hook.flow_base_ref);
    return 0;
}

/* Flow capture: records the hook call that just finished with what it
 * changed (api.changes against the base taken before it). */
int hooks_tx_record_changes(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct hook_state *hs = &s->x.hook;
    const char *changes = NULL;
    size_t len = 0;

    if (hs->flow_base_ref != LUA_NOREF) {
        hooks_push_api_tx(L, hs, "changes");
        lua_rawgeti(L, LUA_REGISTRYINDEX, hs->flow_base_ref);
        lua_call(L, 2, 1);
        changes = lua_tolstring(L, -1, &len); /* NULL when nothing changed */
    }
    flows_record_hook(s->x.flow, hs->hooks->script_name[hs->script], hooks_phase_names[hs->phase],
                      changes, changes ? len : 0);
    luaL_unref(L, LUA_REGISTRYINDEX, hs->flow_base_ref);
    hs->flow_base_ref = LUA_NOREF;
    return 0;
}

/* The fields the proxy owns: a script may not set them (they are dropped
 * when read back), so framing and connection handling stay correct. */
static int proxy_owned(const char *name, size_t len)
{
    /* By length first: this runs for every field a script hands back. */
    switch (len) {
    case 2:
        return http_token_eq(name, len, "TE");
    case 7:
        return http_token_eq(name, len, "Trailer") || http_token_eq(name, len, "Upgrade");
    case 10:
        return http_token_eq(name, len, "Connection") || http_token_eq(name, len, "Keep-Alive");
    case 14:
        return http_token_eq(name, len, "Content-Length");
    case 16:
        return http_token_eq(name, len, "Proxy-Connection");
    case 17:
        return http_token_eq(name, len, "Transfer-Encoding");
    default:
        return 0;
    }
}

/* How far ahead of the last field kept a field of the list read back is
 * looked for among the relay's: a removed field or two shifts the rest,
 * and a bound keeps a list of many new fields from costing a square. */
#define KEPT_LOOKAHEAD 8

struct header *hooks_scratch(struct hooks *h, size_t want)
{
    if (want > h->scratch_cap || !h->scratch) {
        struct header *grown = realloc(h->scratch, (want ? want : 1) * sizeof *grown);
        if (!grown)
            return NULL;
        h->scratch = grown;
        h->scratch_cap = want ? want : 1;
    }
    return h->scratch;
}

/* Replaces <out> by the list at <index> ({n1, v1, ...}). Fields the proxy
 * owns are skipped, except those named in <keep>.
 *
 * A view still unread (hooks_headers.c) of exchange <stamp> (0: none) was
 * copied from <out>, which no one changed since: its edits are applied to
 * <out> itself, and nothing else is read.
 *
 * Most of a list read back is what the relay handed over: a field equal
 * byte for byte to one of <out> (looked for in order) keeps that field's
 * text, which was checked when it came in, so it is neither checked nor
 * copied again. Every other field, however it got into the list (a header
 * method, rawset), is checked as headers_add checks it. The new order is
 * built in the state's scratch array (nothing to free if Lua raises).
 * Returns 0, or -1 with an error message pushed (<out> unchanged then,
 * apart from unused text). */
static int read_field_list(lua_State *L, int index, struct headers *out, const char *keep,
                           uint64_t stamp)
{
    struct hooks *h = hooks_of(L);
    lua_Integer n;
    size_t count = 0, cursor = 0, old = out->count, want;

    switch (hooks_headers_apply(L, index, out, stamp)) {
    case -1:
        return -1;
    case 1:
        for (size_t i = 0; i < out->count; i++) {
            size_t nlen;
            const char *name = headers_name(out, i, &nlen);
            if (!proxy_owned(name, nlen) || (keep && http_token_eq(name, nlen, keep)))
                out->items[count++] = out->items[i];
        }
        out->count = count;
        return 0;
    default:
        break;
    }
    n = (lua_Integer)lua_rawlen(L, index);
    want = (size_t)(n / 2);
    if (want > HEADERS_MAX_COUNT)
        want = HEADERS_MAX_COUNT;
    if (!hooks_scratch(h, want)) {
        lua_pushliteral(L, "out of memory");
        return -1;
    }
    for (lua_Integer i = 1; i + 1 <= n; i += 2) {
        size_t nlen, vlen, at;
        lua_rawgeti(L, index, i);
        lua_rawgeti(L, index, i + 1);
        const char *name = lua_tolstring(L, -2, &nlen);
        const char *value = lua_tolstring(L, -1, &vlen);
        if (!name || !value ||
            (proxy_owned(name, nlen) && !(keep && http_token_eq(name, nlen, keep)))) {
            lua_pop(L, 2);
            continue;
        }
        if (count == want) /* only past HEADERS_MAX_COUNT */
            goto invalid;
        for (at = cursor; at < old && at < cursor + KEPT_LOOKAHEAD; at++)
            if (headers_same(out, at, name, nlen, value, vlen))
                break;
        if (at < old && at < cursor + KEPT_LOOKAHEAD) {
            h->scratch[count++] = out->items[at];
            cursor = at + 1;
        } else if (headers_store(out, name, nlen, value, vlen, &h->scratch[count++]) != 0) {
            goto invalid;
        }
        lua_pop(L, 2);
    }
    if (headers_set_items(out, h->scratch, count) != 0) {
        lua_pushliteral(L, "out of memory");
        return -1;
    }
    return 0;

invalid:
    lua_pop(L, 1); /* the value; the name stays on the stack for the message */
    lua_pushfstring(L, "invalid header %s", lua_tostring(L, -1));
    return -1;
}

/*
 * What a script hands back goes into a request or status line as it is, so
 * it is checked here too, not only by hooks_api's setters: a script can
 * reach the data around them (rawset, next()), and one stray space or CRLF
 * would split the line into something the next hop reads differently.
 */

/* A method (RFC 9110 9.1): a token. */
static int valid_method(const char *m, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!http_is_tchar((unsigned char)m[i]))
            return 0;
    return len > 0;
}

/* A request target's path and query: no space, no control byte. */
static int valid_path(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f)
            return 0;
    return 1;
}

/* A reason phrase (RFC 9112 4): HTAB, SP, visible and non-ASCII bytes. */
static int valid_reason(const char *r, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)r[i] < ' ' && r[i] != '\t') || r[i] == 0x7f)
            return 0;
    return 1;
}

/* Replaces the forwarded method and path. 0, or -1 when out of memory. */
static int set_forward_line(struct exchange *x, const char *method, size_t mlen,
                            const char *path, size_t plen)
{
    char *line = malloc(mlen + plen + 2);
    if (!line)
        return -1;
    memcpy(line, method, mlen);
    line[mlen] = '\0';
    memcpy(line + mlen + 1, path, plen);
    line[mlen + 1 + plen] = '\0';
    free(x->fwd_line);
    x->fwd_line = line;
    x->fwd_method = line;
    x->fwd_method_len = mlen;
    x->fwd_path = line + mlen + 1;
    x->fwd_path_len = plen;
    return 0;
}

/* Whether the table at <t> carries the changed mark. */
static int changed(lua_State *L, int t)
{
    int marked = lua_rawgetp(L, t, &hooks_changed_key) != LUA_TNIL && lua_toboolean(L, -1);
    lua_pop(L, 1);
    return marked;
}

/* Whether d[<key>] (d at <d>) is the string <want> of <len> bytes. */
static int field_equals(lua_State *L, int d, const char *key, const char *want, size_t len)
{
    size_t have;
    const char *v;
    int same;

    if (raw_get_field(L, d, key) != LUA_TSTRING) {
        lua_pop(L, 1);
        return 0;
    }
    v = lua_tolstring(L, -1, &have);
    same = have == len && memcmp(v, want, len) == 0;
    lua_pop(L, 1);
    return same;
}

/* Whether d[<key>] is <want> (an integer), resp. nil. */
static int field_is_integer(lua_State *L, int d, const char *key, lua_Integer want)
{
    int same = raw_get_field(L, d, key) == LUA_TNUMBER && lua_isinteger(L, -1) &&
               lua_tointeger(L, -1) == want;
    lua_pop(L, 1);
    return same;
}

static int field_is_nil(lua_State *L, int d, const char *key)
{
    int nil = raw_get_field(L, d, key) == LUA_TNIL;
    lua_pop(L, 1);
    return nil;
}

/* Whether the request data at <d> is still what the relay has: the
 * setters mark a change, but a script can reach the data around them
 * (next(tx.req)), so the fields read back are compared, not trusted. */
static int request_as_relayed(lua_State *L, int d, const struct exchange *x)
{
    const char *scheme = x->is_connect ? "" : x->upstream_tls ? "https" : "http";
    return field_equals(L, d, "method", x->fwd_method, x->fwd_method_len) &&
           field_equals(L, d, "path", x->is_connect ? "" : x->fwd_path,
                        x->is_connect ? 0 : x->fwd_path_len) &&
           field_equals(L, d, "host", x->host, strlen(x->host)) &&
           field_is_integer(L, d, "port", x->port) &&
           field_equals(L, d, "scheme", scheme, strlen(scheme)) &&
           field_is_nil(L, d, "filter_body") && field_is_nil(L, d, "buffer_body");
}

/* The same for the response data at <d>. */
static int response_as_relayed(lua_State *L, int d, const struct exchange *x)
{
    return field_is_integer(L, d, "status", x->status) &&
           field_equals(L, d, "reason", x->res_reason, strlen(x->res_reason)) &&
           field_is_nil(L, d, "reason_set") && field_is_nil(L, d, "filter_body") &&
           field_is_nil(L, d, "decode_body");
}

/* What the hooks changed of tx.req (<request>) or tx.res, the common
 * cases decided in C without a call into hooks_api: pushes the header list
 * and returns 1 when only the list changed (the data around it is the
 * relay's), returns 0 when nothing changed (no mark: hooks_api would say
 * the same), and -1 when hooks_api must tell (the method, the target, the
 * status, a flag or tx:intercept were set; a request whose Host count is
 * not one). */
static int changed_side(lua_State *L, struct session *s, int request)
{
    int tx, d;

    lua_rawgeti(L, LUA_REGISTRYINDEX, s->x.hook.tx_ref);  /* +1 tx */
    tx = lua_gettop(L);
    if (raw_get_field(L, tx, request ? "_req" : "_res") != LUA_TTABLE) /* +2 tx d */
        return -1;
    d = tx + 1;
    if (changed(L, d) || (request && raw_get_field(L, tx, "_intercept") != LUA_TNIL))
        return -1;
    lua_settop(L, d);
    if (raw_get_field(L, d, "headers") != LUA_TTABLE)     /* +3 tx d list */
        return -1;
    if (!hooks_headers_changed(L, d + 1))
        return 0;
    /* A line never read is the relay's; one read may have been changed
     * around the setters. */
    if (!line_unread(L, d) &&
        !(request ? request_as_relayed(L, d, &s->x) : response_as_relayed(L, d, &s->x)))
        return -1;
    /* hooks_api's request_out adds a missing Host and refuses two. */
    if (request && hooks_headers_count(L, d + 1, "Host", 4) != 1)
        return -1;
    return 1;
}

static int read_request(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    size_t mlen, plen, hlen;

    switch (changed_side(L, s, 1)) {
    case 0:
        x->hook.req_filter_off = 0;
        x->hook.req_buffer = 0;
        return 0;
    case 1:
        /* Only fields: method, target and flags are what the relay has. */
        x->hook.req_filter_off = 0;
        x->hook.req_buffer = 0;
        if (read_field_list(L, lua_gettop(L), &x->req_headers, x->is_upgrade ? "Upgrade" : NULL,
                            x->id) != 0)
            return lua_error(L);
        return 0;
    default:
        lua_settop(L, 1);
        break;
    }
    hooks_push_api_tx(L, &x->hook, "request_out");
    lua_call(L, 1, 9); /* method path host port fields scheme intercept filter_off buffer */
    if (lua_isnil(L, -9)) {
        /* No script changed the request: what the relay parsed stands, and
         * nothing is copied back (most hooks only look, or do nothing). */
        x->hook.req_filter_off = 0;
        x->hook.req_buffer = 0;
        return 0;
    }
    x->hook.req_filter_off = lua_toboolean(L, -2);
    x->hook.req_buffer = lua_toboolean(L, -1);
    lua_pop(L, 2);
    const char *method = luaL_checklstring(L, -7, &mlen);
    const char *path = luaL_checklstring(L, -6, &plen);
    const char *host = luaL_checklstring(L, -5, &hlen);
    lua_Integer port = luaL_checkinteger(L, -4);
    if (hlen == 0 || hlen >= sizeof x->host || port < 1 || port > 65535)
        return luaL_error(L, "invalid host or port");
    if (!x->is_connect) /* a script may move a request between http and https */
        x->upstream_tls = strcmp(luaL_checkstring(L, -2), "https") == 0;
    else if (lua_isboolean(L, -1))
        x->intercept_choice = lua_toboolean(L, -1) ? 1 : 2;
    /* hooks_api refuses these too; this holds even for a script that
     * reached around it with rawset. */
    if (x->is_connect != (mlen == 7 && strncasecmp(method, "CONNECT", 7) == 0))
        return luaL_error(L, "a request cannot become CONNECT, nor CONNECT anything else");
    if (!valid_method(method, mlen) || (!x->is_connect && !valid_path(path, plen)))
        return luaL_error(L, "invalid method or path");
    if (read_field_list(L, lua_gettop(L) - 2, &x->req_headers, x->is_upgrade ? "Upgrade" : NULL,
                        x->id) != 0)
        return lua_error(L);
    int host_at = headers_find(&x->req_headers, "Host", 4, 0);
    if (host_at >= 0 && headers_find(&x->req_headers, "Host", 4, (size_t)host_at + 1) >= 0)
        return luaL_error(L, "a request carries exactly one Host field");
    if (!x->is_connect && set_forward_line(x, method, mlen, path, plen) != 0)
        return luaL_error(L, "out of memory");
    memcpy(x->host, host, hlen + 1);
    x->port = (uint16_t)port;
    return 0;
}

static int read_upstream(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    size_t hlen;

    hooks_push_api_tx(L, &x->hook, "upstream_out");
    lua_call(L, 1, 4);                 /* host port tls proxy */
    const char *host = luaL_checklstring(L, -4, &hlen);
    if (hlen == 0 || hlen >= sizeof x->host)
        return luaL_error(L, "invalid upstream host");
    memcpy(x->host, host, hlen + 1);
    x->port = (uint16_t)luaL_checkinteger(L, -3);
    if (!x->is_connect && lua_isboolean(L, -2)) /* nil: a table without it keeps the scheme's */
        x->upstream_tls = lua_toboolean(L, -2);
    /* tx.upstream.proxy: nil goes direct, a URL goes through that parent. */
    if (lua_isnil(L, -1)) {
        free(x->parent);
        x->parent = NULL;
    } else if (!x->parent || strcmp(luaL_checkstring(L, -1), x->parent->url) != 0) {
        struct parent_proxy parsed;
        char why[160];
        if (parent_parse(luaL_checkstring(L, -1), &parsed, why, sizeof why) != 0)
            return luaL_error(L, "tx.upstream.proxy: %s", why);
        if (!x->parent && !(x->parent = malloc(sizeof *x->parent)))
            return luaL_error(L, "out of memory");
        *x->parent = parsed;
    }
    return 0;
}

static int begin_connect(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    hooks_push_api_tx(L, &s->x.hook, "begin_connect");
    if (s->x.parent)
        lua_pushstring(L, s->x.parent->url);
    else
        lua_pushnil(L);
    lua_call(L, 2, 0);
    return 0;
}

/* tx.res for on_response, made in C the way api.set_response makes it:
 *   d = { status =, reason =, headers = (the field list) }
 *   tx._res = d, tx.res = setmetatable({ [DATA] = d }, Response) */
static int set_response(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    struct hooks *h = x->hook.hooks;

    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->hook.tx_ref);    /* +1 tx */
    /* Room for what scripts and hooks_api add (reason_set, filter_body,
     * decode_body, the changed mark). */
    lua_createtable(L, 0, 4);                             /* +2 tx d */
    {
        const char *reason = x->res_reason;
        size_t len = strlen(reason);
        push_head(L, &x->res_headers, x->id, 0, &reason, &len, 1, x->status);
    }
    lua_pushvalue(L, 2);
    raw_set_field(L, 1, "_res");
    lua_createtable(L, 0, 1);                             /* +3 tx d res */
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->data_key_ref);
    lua_pushvalue(L, 2);
    lua_rawset(L, 3);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->response_mt_ref);
    lua_setmetatable(L, 3);
    raw_set_field(L, 1, "res");
    return 0;
}

static int read_response(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    size_t rlen;

    switch (changed_side(L, s, 0)) {
    case 0:
        x->hook.res_filter_off = 0;
        x->hook.res_decode_off = 0;
        x->res_reason_set = 0;
        return 0;
    case 1:
        /* Only fields: status, reason and flags are what the relay has. */
        x->hook.res_filter_off = 0;
        x->hook.res_decode_off = 0;
        x->res_reason_set = 0;
        if (read_field_list(L, lua_gettop(L), &x->res_headers,
                            x->res_keep_length ? "Content-Length" : NULL, x->id) != 0)
            return lua_error(L);
        return 0;
    default:
        lua_settop(L, 1);
        break;
    }
    hooks_push_api_tx(L, &x->hook, "response_out");
    lua_call(L, 1, 6);   /* status reason fields reason_set filter_off decode_off */
    if (lua_isnil(L, -6)) {
        /* Unchanged by every script: the head goes out as it came. */
        x->hook.res_filter_off = 0;
        x->hook.res_decode_off = 0;
        x->res_reason_set = 0;
        return 0;
    }
    x->hook.res_filter_off = lua_toboolean(L, -2);
    x->hook.res_decode_off = lua_toboolean(L, -1);
    lua_pop(L, 2);
    x->res_reason_set = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_Integer status = luaL_checkinteger(L, -3);
    const char *reason = luaL_checklstring(L, -2, &rlen);
    /* A 1xx would be read as interim and its body as the next response. */
    if (status < 200 || status > 599)
        return luaL_error(L, "invalid status %d", (int)status);
    if (!valid_reason(reason, rlen))
        return luaL_error(L, "invalid reason phrase");
    x->status = (int)status;
    if (rlen >= sizeof x->res_reason)
        rlen = sizeof x->res_reason - 1;
    memcpy(x->res_reason, reason, rlen);
    x->res_reason[rlen] = '\0';
    if (read_field_list(L, lua_gettop(L), &x->res_headers,
                        x->res_keep_length ? "Content-Length" : NULL, x->id) != 0)
        return lua_error(L);
    return 0;
}

int hooks_read_request(struct session *s)
{
    /* A request no script has looked at is one no script has changed. */
    if (s->x.hook.tx_ref == LUA_NOREF || !s->x.hook.req_read)
        return 0;
    return hooks_protected(s, read_request, "request");
}

int hooks_prepare_upstream(struct session *s)
{
    /* before_connect sees the upstream as the (rewritten) target. */
    return s->x.hook.tx_ref == LUA_NOREF ? 0 : hooks_protected(s, begin_connect, "upstream");
}

int hooks_read_upstream(struct session *s)
{
    return s->x.hook.tx_ref == LUA_NOREF ? 0 : hooks_protected(s, read_upstream, "upstream");
}

int hooks_read_response(struct session *s)
{
    return s->x.hook.tx_ref == LUA_NOREF ? 0 : hooks_protected(s, read_response, "response");
}

int hooks_prepare_response(struct session *s)
{
    if (s->x.hook.tx_ref == LUA_NOREF && hooks_protected(s, hooks_tx_make, "tx") != 0)
        return -1;
    return hooks_protected(s, set_response, "response");
}

struct local_response {
    struct session *s;
    struct buffer *out;
    int failed;
};

static int write_local(lua_State *L)
{
    struct local_response *lr = lua_touserdata(L, 1);
    struct session *s = lr->s;
    struct exchange *x = &s->x;
    struct headers fields;
    size_t blen;
    int head_only = x->method_len == 4 && memcmp(x->method, "HEAD", 4) == 0;

    hooks_push_api_tx(L, &x->hook, "respond_out");
    lua_call(L, 1, 3);                   /* status body fields */
    lua_Integer code = luaL_checkinteger(L, -3);
    const char *body = luaL_checklstring(L, -2, &blen);
    if (code < 200 || code > 599)
        return luaL_error(L, "invalid status %d", (int)code);
    int status = (int)code;
    headers_init(&fields);
    if (read_field_list(L, lua_gettop(L), &fields, NULL, 0) != 0) {
        headers_free(&fields); /* Lua raises past this frame */
        return lua_error(L);
    }
    if (headers_find(&fields, "Content-Type", 12, 0) < 0)
        headers_add(&fields, "Content-Type", 12, "text/plain; charset=utf-8", 25);
    headers_add(&fields, "Via", 3, MESSAGE_VIA, strlen(MESSAGE_VIA));
    x->status = status;
    /* 204 and 304 carry no body and no Content-Length (RFC 9110 8.6). */
    if (status == 204 || status == 304) {
        head_only = 1;
        blen = 0;
    }
    if (message_write_response(lr->out, status, message_reason(status),
                               strlen(message_reason(status)), &fields,
                               status == 204 || status == 304 ? HTTP_BODY_NONE
                                                              : HTTP_BODY_LENGTH,
                               blen, x->keep_alive, x->minor, 0) != 0 ||
        (!head_only && buffer_append(lr->out, body, blen) != 0))
        lr->failed = 1;
    if (!head_only)
        x->res_bytes += blen;
    headers_free(&fields);
    return 0;
}

int hooks_write_local_response(struct session *s, struct buffer *out)
{
    struct local_response lr = {s, out, 0};
    lua_State *L = s->x.hook.hooks->L;
    lua_pushcfunction(L, write_local);
    lua_pushlightuserdata(L, &lr);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        log_error("c%llu #%llu local response: %s", (unsigned long long)s->id, (unsigned long long)s->x.id,
                  lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    return lr.failed ? -1 : 0;
}

int hooks_tx_finish(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    hooks_push_api_tx(L, &x->hook, "finish");
    lua_pushinteger(L, x->status);
    if (x->error)
        lua_pushstring(L, x->error);
    else
        lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)(x->res_filter ? x->res_filtered_bytes : x->res_bytes));
    lua_pushinteger(L, (lua_Integer)x->req_bytes);
    lua_pushnumber(L, ev_now(s->proxy->loop) - x->started);
    lua_call(L, 6, 0);
    return 0;
}
