/*
 * hooks_tx.c - the tx table: built from the exchange before the first hook,
 * tx.req on a script's first look at it, tx.res before on_response or on
 * a script's first look at it there (see hooks_prepare_response), and
 * what hooks_api keeps of them for --hook-errors open and the flow
 * capture. Data crosses as copies, so Lua never holds a pointer into the
 * relay's buffers. Reading the scripts' changes back is hooks_readback.c.
 */
#include "hooks_internal.h"

#include <string.h>

#include "flows.h"
#include "headers.h"
#include "proxy.h"
#include "session.h"
#include "trace.h"

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
     * looks at it, or before the hook (call_hook) when the last one did:
     * see make_request_of. The table is what hooks_api describes at
     * api.Tx, made here without a call into Lua. tx.id and tx.client come
     * from the array part (TX_SLOT_*), three stores that cost a fraction
     * of as many keys in the hash part; the hash part is sized for tx.req
     * and tx.res (each under its name and the proxy's key) when the last
     * exchange's scripts used either, else left for a script to grow. */
    lua_createtable(L, TX_SLOT_COUNT, h->req_wanted || h->res_wanted ? 4 : 0); /* +1 tx */
    lua_pushinteger(L, (lua_Integer)x->id);
    lua_rawseti(L, -2, TX_SLOT_ID);
    lua_pushstring(L, s->client_ip);
    lua_rawseti(L, -2, TX_SLOT_CLIENT_IP);
    lua_pushinteger(L, s->client_port);
    lua_rawseti(L, -2, TX_SLOT_CLIENT_PORT);
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
    if (h->idle_tx_count > 0) { /* a slot that exists: the store cannot fail */
        x->hook.tx_ref = h->idle_tx_refs[--h->idle_tx_count];
        lua_rawseti(L, LUA_REGISTRYINDEX, x->hook.tx_ref);
    } else {
        x->hook.tx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 0;
}

int hooks_tx_is_of(lua_State *L, int tx, const struct session *s)
{
    int is_tx;

    if (!s || s->x.hook.tx_ref == LUA_NOREF)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->x.hook.tx_ref);  /* +1 tx of s */
    is_tx = lua_rawequal(L, tx, -1);
    lua_pop(L, 1);
    return is_tx;
}

/* native.request_of(tx): the request of the exchange of <tx> as tx.req
 * starts from (method, scheme, host, port, path, version, field list), or
 * nothing when that is not the exchange being served now (a tx a script
 * kept past its exchange). Nothing changes the request between the first
 * hook and a script's first look at it, except that script's own changes,
 * which need the look first. */
int hooks_tx_request_of(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    struct session *s = h->data_session;
    struct exchange *x;

    if (!hooks_tx_is_of(L, 1, s))
        return 0;
    x = &s->x;
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

int hooks_raw_get_field(lua_State *L, int t, const char *key)
{
    lua_pushstring(L, key);
    return lua_rawget(L, t);
}

int hooks_raw_get_key(lua_State *L, int t, enum hooks_key key)
{
    hooks_push_key(L, hooks_of(L), key);
    return lua_rawget(L, t);
}

/*
 * tx.req and tx.res: a side each. A side is a table with the metatable
 * Request or Response (hooks_api) that holds, in its array:
 *
 *   SIDE_LIST  the header list: a view (hooks_headers.c) until read
 *   SIDE_DATA  the data table hooks_api works on (the line as fields,
 *              headers, the flags a script set), made only when something
 *              needs it: a setter, pairs, tx.req.url, hooks_api's own
 *              walks (data_of)
 *   SIDE_LINE  the view's block, whose extra bytes hold the request line
 *              (method, scheme, host, port, path, version) or the status
 *              line (status, reason): struct data_line
 *
 * Most hooks read a field of the line or the header list, and edit the
 * list: they make the side and the view, and nothing else (a data table,
 * its keys, and keys of tx for it cost about 2,000 instructions a side).
 * A read of the line without a data table answers from the block, and the
 * read-back knows a side without one has the relay's line. The side holds
 * nothing under a string key, so every field a script sets goes through
 * __newindex, and its setters.
 */
enum { SIDE_LIST = 1, SIDE_DATA = 2, SIDE_LINE = 3 };

/* The keys (light userdata) under which a tx keeps its sides for the
 * proxy: the read-back and hooks_api read them there, so what a script
 * assigns to tx.req or tx.res changes only what the script reads. A key
 * in the hash part, not an array slot: `tx[#tx + 1] = v` or
 * table.insert(tx, v) would reach one. */
static const char req_side_key = 'q', res_side_key = 's';

int hooks_tx_get_side(lua_State *L, int tx, int request)
{
    return lua_rawgetp(L, tx, request ? &req_side_key : &res_side_key);
}

struct data_line {
    int is_request;
    int read;           /* a script read a field of it (see hooks_tx_side_read) */
    lua_Integer number; /* the port, or the status */
    uint32_t len[5];    /* of the strings, one after the other in text */
    char text[];
};

static const char *const request_line_keys[5] = {"method", "scheme", "host", "path", "version"};
static const char *const status_line_keys[1] = {"reason"};

/* The line of the side at <side>, or NULL when it holds none (one
 * hooks_api made, with its data table; or a table a script put there). A
 * block is known by hooks_headers_is_block: an io file put in its slot is
 * not read as one. */
static struct data_line *side_line(lua_State *L, int side)
{
    struct data_line *line = NULL;
    if (lua_rawgeti(L, side, SIDE_LINE) == LUA_TUSERDATA && hooks_headers_is_block(L, -1))
        line = hooks_headers_extra(lua_touserdata(L, -1));
    lua_pop(L, 1);
    return line;
}

/* Whether the list and the block of the side at <side> (absolute) are
 * the pair make_side put there, for a request if <request> is 1, for a
 * response if 0, either if -1: a list a script stored at SIDE_LIST would
 * be read back in place of the view holding the hook's edits, and tx.req
 * in tx.res's place would bring the request's edits to the response
 * (both views are of the same exchange). */
static int parts_as_made(lua_State *L, int side, int request)
{
    int made;
    lua_rawgeti(L, side, SIDE_LINE);
    lua_rawgeti(L, side, SIDE_LIST);
    made = hooks_headers_block_of(L, -2, -1) &&
           (request < 0 ||
            ((struct data_line *)hooks_headers_extra(lua_touserdata(L, -2)))->is_request == request);
    lua_pop(L, 2);
    return made;
}

/* Pushes the field <key> (<len> bytes) of <line> and returns 1, or
 * returns 0 (nothing pushed) when the line has no such field. */
static int push_line_field(lua_State *L, const struct data_line *line, const char *key, size_t len)
{
    const char *const *keys = line->is_request ? request_line_keys : status_line_keys;
    size_t n = line->is_request ? 5u : 1u;
    const char *p = line->text;

    for (size_t i = 0; i < n; i++) {
        if (strlen(keys[i]) == len && memcmp(keys[i], key, len) == 0) {
            lua_pushlstring(L, p, line->len[i]);
            return 1;
        }
        p += line->len[i];
    }
    if ((line->is_request && len == 4 && memcmp(key, "port", 4) == 0) ||
        (!line->is_request && len == 6 && memcmp(key, "status", 6) == 0)) {
        lua_pushinteger(L, line->number);
        return 1;
    }
    return 0;
}

/* Whether the side at <side> has the metatable of tx.req (<request> 1) or
 * of tx.res (0); always for -1. A side with a data table may have no
 * block to tell (api.set_response makes none). */
static int side_kind_is(lua_State *L, int side, int request)
{
    struct hooks *h = hooks_of(L);
    int is;
    if (request < 0)
        return 1;
    if (!lua_getmetatable(L, side))
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, request ? h->request_mt_ref : h->response_mt_ref);
    is = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return is;
}

/* Pushes the data table of the side at <side> (absolute), made from its
 * line and list if it has none yet: { <the line's fields>, headers = }.
 * An error when <side> has neither: not a side, or one whose parts a
 * script changed by index (tx.req[3] = x), which __newindex does not see
 * (the slots exist); or, for <request> 1 or 0 (-1: either), one made for
 * the other side. */
static void push_data(lua_State *L, int side, int request)
{
    struct data_line *line;
    const char *p;

    if (lua_rawgeti(L, side, SIDE_DATA) == LUA_TTABLE) { /* +1 d */
        if (hooks_raw_get_key(L, lua_absindex(L, -1), HOOKS_KEY_HEADERS) != LUA_TTABLE ||
            !side_kind_is(L, side, request))
            luaL_error(L, "not the request or response of a tx (its parts were changed by index)");
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    if (!(line = side_line(L, side)) || !parts_as_made(L, side, request))
        luaL_error(L, "not the request or response of a tx (its parts were changed by index)");
    /* Room for the line, the headers and what hooks_api adds first (url,
     * the changed mark). */
    lua_createtable(L, 0, line->is_request ? 9 : 5);     /* +1 d */
    p = line->text;
    for (size_t i = 0; i < (line->is_request ? 5u : 1u); i++) {
        lua_pushstring(L, line->is_request ? request_line_keys[i] : status_line_keys[i]);
        lua_pushlstring(L, p, line->len[i]);
        lua_rawset(L, -3);
        p += line->len[i];
    }
    lua_pushstring(L, line->is_request ? "port" : "status");
    lua_pushinteger(L, line->number);
    lua_rawset(L, -3);
    hooks_push_key(L, hooks_of(L), HOOKS_KEY_HEADERS);
    lua_rawgeti(L, side, SIDE_LIST);
    lua_rawset(L, -3);
    lua_pushvalue(L, -1);
    lua_rawseti(L, side, SIDE_DATA);
}

/* native.data_of(side [, request]): the data table of a side, made if
 * need be (of tx.req's side if <request> is true, tx.res's if false,
 * either if nil); nil for nil (no side made), an error for anything else
 * not such a side. */
static int data_of(lua_State *L)
{
    int request = lua_isnoneornil(L, 2) ? -1 : lua_toboolean(L, 2);
    if (lua_isnoneornil(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    push_data(L, 1, request);
    return 1;
}

int hooks_tx_side_read(lua_State *L, int side)
{
    const struct data_line *line;
    int made = lua_rawgeti(L, side, SIDE_DATA) != LUA_TNIL;
    lua_pop(L, 1);
    return made || !(line = side_line(L, side)) || line->read;
}

int hooks_tx_side_parts(lua_State *L, int side, int request)
{
    if (lua_rawgeti(L, side, SIDE_DATA) == LUA_TTABLE) { /* +1 d */
        hooks_raw_get_key(L, lua_absindex(L, -1), HOOKS_KEY_HEADERS); /* +2 d list */
        return 1;
    }
    if (!lua_isnil(L, -1) || !parts_as_made(L, side, request)) {
        lua_pushnil(L);
        return -1;
    }
    lua_rawgeti(L, side, SIDE_LIST);                     /* +2 nil list */
    return 0;
}

/* Makes tx[<key>] and tx's side under the proxy's key for <key> (<tx>
 * absolute) a new side over a view of <fields>, with the line of the <n>
 * strings <str> (of <len> bytes) and <number> kept in the view's block;
 * its metatable is the one under the registry reference <mt_ref>. Pushes
 * the side. The proxy's key is what the proxy reads; <key>, what a script
 * reads without a call of tx's __index, and may assign. */
static void make_side(lua_State *L, int tx, enum hooks_key key, int mt_ref,
                      const struct headers *fields, uint64_t stamp, int is_request,
                      const char *const *str, const size_t *len, size_t n, lua_Integer number)
{
    struct hooks *h = hooks_of(L);
    size_t total = 0;
    struct data_line *line;
    char *p;

    for (size_t i = 0; i < n; i++)
        total += len[i];
    lua_createtable(L, SIDE_LINE, 0);                     /* +1 side */
    line = hooks_headers_push_view(L, fields, stamp, sizeof *line + total); /* +3 side list block */
    line->is_request = is_request;
    line->read = 0;
    line->number = number;
    p = line->text;
    for (size_t i = 0; i < n; i++) {
        line->len[i] = (uint32_t)len[i];
        memcpy(p, str[i], len[i]);
        p += len[i];
    }
    lua_rawseti(L, -3, SIDE_LINE);
    lua_rawseti(L, -2, SIDE_LIST);                        /* +1 side */
    lua_rawgeti(L, LUA_REGISTRYINDEX, mt_ref);
    lua_setmetatable(L, -2);
    hooks_push_key(L, h, key);
    lua_pushvalue(L, -2);
    lua_rawset(L, tx);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, tx, key == HOOKS_KEY_REQ ? &req_side_key : &res_side_key);
}

/* tx.req made from the exchange of <s>, for that exchange's tx at <tx>
 * (an absolute index): a script's first look at tx.req is on the path of
 * most hooks. Pushes the side. */
static void make_request_of(lua_State *L, int tx, struct session *s)
{
    struct exchange *x = &s->x;

    x->hook.req_read = 1; /* hooks_read_request has something to read */
    const char *scheme = x->is_connect ? "" : x->upstream_tls ? "https" : "http";
    const char *version = x->minor >= 1 ? "1.1" : "1.0";
    const char *str[5] = {x->fwd_method, scheme, x->host, x->is_connect ? "" : x->fwd_path, version};
    size_t len[5] = {x->fwd_method_len, strlen(scheme), strlen(x->host),
                     x->is_connect ? 0 : x->fwd_path_len, 3};
    make_side(L, tx, HOOKS_KEY_REQ, hooks_of(L)->request_mt_ref, &x->req_headers, x->id, 1, str,
              len, 5, x->port);
}

/* The same for the tx at <tx> (an absolute index), when it is that of the
 * exchange being served now: pushes the side and returns 1, or pushes
 * nothing and returns 0. */
static int make_request(lua_State *L, int tx)
{
    struct session *s = hooks_of(L)->data_session;

    if (!hooks_tx_is_of(L, tx, s))
        return 0;
    make_request_of(L, tx, s);
    return 1;
}

void hooks_tx_make_request_now(lua_State *L, struct session *s)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->x.hook.tx_ref); /* +1 tx */
    make_request_of(L, lua_gettop(L), s);                /* +2 tx side */
    lua_pop(L, 2);
}

/* native.make_request(tx): the same, for hooks_api. */
int hooks_tx_make_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    return make_request(L, 1);
}

/* tx.req's and tx.res's __index (a script reads tx.req.headers and
 * tx.res.headers on the path of most hooks, and often a field of the
 * line): the data table's field once there is one, else the list, or the
 * line's field from the block. For tx.req, upvalue 1 (hooks_api's
 * url_of) makes d.url the first time it is read. */
static int data_index(lua_State *L)
{
    struct data_line *line;
    size_t len;
    const char *key;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_type(L, 2) != LUA_TSTRING) { /* every field has a name */
        lua_pushnil(L);
        return 1;
    }
    key = lua_tolstring(L, 2, &len);
    if (lua_rawgeti(L, 1, SIDE_DATA) != LUA_TTABLE) {     /* +1 d or nil */
        lua_pop(L, 1);
        if (len == 7 && memcmp(key, "headers", 7) == 0) {
            lua_rawgeti(L, 1, SIDE_LIST);
            return 1;
        }
        if (!(line = side_line(L, 1)))
            return luaL_error(L, "not the request or response of a tx");
        if (push_line_field(L, line, key, len)) {
            line->read = 1;
            return 1;
        }
        if (lua_isnone(L, lua_upvalueindex(1)) || len != 3 || memcmp(key, "url", 3) != 0) {
            lua_pushnil(L);
            return 1;
        }
        push_data(L, 1, -1);                              /* +1 d: url needs its fields */
    }
    lua_pushvalue(L, 2);
    if (lua_rawget(L, 3) != LUA_TNIL || lua_isnone(L, lua_upvalueindex(1)) || len != 3 ||
        memcmp(key, "url", 3) != 0)                       /* +2 d v */
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 3);
    lua_call(L, 1, 1);                                    /* +3 d nil url */
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 3);                                     /* d.url = url */
    return 1;
}

/* tx.res on a script's first look at it, for the tx at <tx> (an absolute
 * index), when hooks_prepare_response (on_response) or
 * hooks_response_on_look (the chunk hooks, without on_response) left it
 * to be made then: 1 when made, 0 when that tx is not the exchange whose
 * hook runs now, or its tx.res is not to be made this way. */
static int make_response_late(lua_State *L, int tx)
{
    struct session *s = hooks_of(L)->data_session;

    if (!s || !s->x.hook.res_lazy || !hooks_tx_is_of(L, tx, s))
        return 0;
    hooks_tx_make_response(L, s);
    s->x.hook.res_lazy = 0;
    if (s->x.hook.phase == HOOK_ON_RESPONSE) /* what the next on_response learns from */
        s->x.hook.hooks->res_wanted = 1;
    return 1;
}

/* tx's __index: the method <key> of upvalue 1 (hooks_api's tx_methods);
 * tx.id, from its slot; tx.req, made on a script's first look at it, and
 * tx.res likewise in an on_response that did not get it made before
 * (make_response_late), or either from its slot when a script assigned
 * nil to it; else what upvalue 2 (hooks_api's tx_index_rest) returns for
 * the other fields made on first use. tx.req is read by most hooks, and
 * this way costs no Lua call. */
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
    if (key && len == 2 && memcmp(key, "id", 2) == 0 && lua_type(L, 1) == LUA_TTABLE) {
        lua_rawgeti(L, 1, TX_SLOT_ID);
        return 1;
    }
    /* tx.req or tx.res not under its key: the side made before (a script
     * assigned nil to the key), or made now when it can be. */
    if (key && len == 3 && (memcmp(key, "req", 3) == 0 || memcmp(key, "res", 3) == 0) &&
        lua_type(L, 1) == LUA_TTABLE) {
        int request = key[2] == 'q';
        if (hooks_tx_get_side(L, 1, request) != LUA_TNIL) /* +1 side */
            return 1;
        lua_pop(L, 1);
        if (request && make_request(L, 1))                /* +1 side */
            return 1;
        if (!request && make_response_late(L, 1)) {
            hooks_tx_get_side(L, 1, 0);
            return 1;
        }
    }
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* native.is_connect(tx): whether the exchange of <tx>, the one being
 * served now, is a CONNECT (tx:respond's question, asked without making
 * tx.req). */
static int tx_is_connect(lua_State *L)
{
    struct session *s = hooks_of(L)->data_session;
    lua_pushboolean(L, hooks_tx_is_of(L, 1, s) && s->x.is_connect);
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

/* native.data_index(url_of): the __index of tx.req, then tx.res. */
static int data_index_functions(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_pushcclosure(L, data_index, 1);
    lua_pushcclosure(L, data_index, 0);
    return 2;
}

void hooks_tx_register(lua_State *L)
{
    static const luaL_Reg natives[] = {
        {"data_index", data_index_functions},
        {"data_of", data_of},
        {"tx_index", tx_index_function},
        {"is_connect", tx_is_connect},
        {NULL, NULL},
    };
    luaL_setfuncs(L, natives, 0);
    lua_pushinteger(L, TX_SLOT_CLIENT_IP);
    lua_setfield(L, -2, "tx_client_ip_slot");
    lua_pushinteger(L, TX_SLOT_CLIENT_PORT);
    lua_setfield(L, -2, "tx_client_port_slot");
    lua_pushlightuserdata(L, (void *)(uintptr_t)&req_side_key);
    lua_setfield(L, -2, "tx_req_key");
    lua_pushlightuserdata(L, (void *)(uintptr_t)&res_side_key);
    lua_setfield(L, -2, "tx_res_key");
    lua_pushinteger(L, EXCHANGE_REASON_MAX); /* the longest tx.res.reason */
    lua_setfield(L, -2, "reason_max");
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

/* tx.res for on_response: a side over the response's head (see "tx.req
 * and tx.res" above; api.set_response makes one with its data table). The
 * stack is left as it was. */
void hooks_tx_make_response(lua_State *L, struct session *s)
{
    struct exchange *x = &s->x;
    const char *reason = x->res_reason;
    size_t len = strlen(reason);
    int tx;

    lua_rawgeti(L, LUA_REGISTRYINDEX, x->hook.tx_ref);    /* +1 tx */
    tx = lua_gettop(L);
    make_side(L, tx, HOOKS_KEY_RES, x->hook.hooks->response_mt_ref, &x->res_headers, x->id, 0,
              &reason, &len, 1, x->status);
    lua_settop(L, tx - 1);
}

static int set_response(lua_State *L)
{
    hooks_tx_make_response(L, lua_touserdata(L, 1));
    return 0;
}

int hooks_prepare_response(struct session *s)
{
    struct hook_state *hs = &s->x.hook;

    /* What looks at the tx before the first on_response call needs tx.res
     * now: --trace's fingerprint, the flow capture's change base, the
     * --hook-errors open snapshot. Otherwise tx.res is made by the first
     * on_response call itself, in its first resume (call_hook, in
     * hooks_run.c), which saves a call, when a hook may use it:
     *   - a body or on_done hook may look at it after on_response, when
     *     the relay's head is no longer the one on_response saw (read
     *     back, the coding taken off);
     *   - the last on_response phase used it (h->res_wanted, learnt by
     *     hooks_read_response): a script that changes the response does
     *     so on every exchange.
     * Else it is made on a script's first look at it (tx_index, through
     * the metamethod: some 700 instructions more than a made one), and an
     * on_response that reads only tx.req or tx.ctx makes no copy of the
     * response's head and has nothing read back. */
    if (!trace_enabled && !s->x.flow && hs->hooks->mode != HOOK_ERRORS_OPEN) {
        const struct hooks *h = hs->hooks;
        if (h->res_wanted || h->has[HOOK_ON_RESPONSE_CHUNK] || h->has[HOOK_ON_REQUEST_CHUNK] ||
            h->has[HOOK_ON_DONE])
            hs->res_due = 1;
        else
            hs->res_lazy = 1;
        return 0;
    }
    if (hs->tx_ref == LUA_NOREF && hooks_protected(s, hooks_tx_make, "tx") != 0)
        return -1;
    return hooks_protected(s, set_response, "response");
}

void hooks_response_on_look(struct session *s)
{
    /* Made on first look, never before: a chunk hook that does not use
     * tx.res, the usual one, costs no copy of the head. The head is then
     * the one the client got (its framing fields, and a Content-Encoding
     * the proxy undid for the hooks, are not in it). */
    s->x.hook.res_lazy = 1;
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
