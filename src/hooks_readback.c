/*
 * hooks_readback.c - what the scripts changed, read back into the relay
 * after each phase (the request, the upstream, the response), and the
 * response a script makes itself with tx:respond. Everything read back is
 * checked here again, whatever hooks_api checked: a script can reach the
 * data around its setters. The usual cases (nothing changed, or only
 * header edits made through the methods) are read back without a
 * protected call (read_quick).
 */
#include "hooks_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "headers.h"
#include "http_parse.h"
#include "log.h"
#include "message.h"
#include "parent.h"
#include "proxy.h"
#include "session.h"
#include "url.h"

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
 * <out> itself, and nothing else is read. With <quiet> (a read-back
 * outside protected mode, see read_quick) only such a view is
 * read back: anything else, and any error, is -1 with no message and
 * <out> unchanged.
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
                           uint64_t stamp, int quiet)
{
    struct hooks *h = hooks_of(L);
    lua_Integer n;
    size_t count = 0, cursor = 0, old = out->count, want;

    /* The list may be what a script put in place of one, around the
     * header API (a tx:respond answer's table, a request's data): only a
     * table is read. */
    if (!lua_istable(L, index)) {
        if (!quiet)
            lua_pushfstring(L, "a header list must be a table, not a %s",
                            luaL_typename(L, index));
        return -1;
    }
    switch (hooks_headers_apply(L, index, out, stamp, quiet)) {
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
        if (quiet)
            return -1;
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
        /* What rawset put in: a number name is no name (the methods take
         * strings only), and a number value goes out as the methods send
         * one, NaN and the infinities refused. */
        if (lua_type(L, -2) == LUA_TNUMBER)
            goto invalid;
        if (lua_type(L, -1) == LUA_TNUMBER) {
            char text[HOOKS_NUMBER_TEXT_MAX];
            size_t len = hooks_number_text(L, -1, text, sizeof text);
            if (len == 0)
                goto invalid;
            lua_pop(L, 1);
            lua_pushlstring(L, text, len);
        }
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

/* Proxy-Authorization is for the next proxy, never for an origin (the
 * client's own was dropped as hop-by-hop before any script ran): one a
 * script set is taken out of the fields into x->script_proxy_auth, which
 * upstream.c sends only to a parent whose URL has no credentials of its
 * own, so a script can authenticate per request. One at most: which of
 * two would a parent check? 0, or -1 with the message in *<why>. */
static int take_proxy_auth(struct exchange *x, const char **why)
{
    int at = headers_find(&x->req_headers, "Proxy-Authorization", 19, 0);
    size_t len;
    const char *value;
    char *copy;

    free(x->script_proxy_auth);
    x->script_proxy_auth = NULL;
    if (at < 0)
        return 0;
    if (headers_find(&x->req_headers, "Proxy-Authorization", 19, (size_t)at + 1) >= 0) {
        *why = "a request carries at most one Proxy-Authorization field";
        return -1;
    }
    value = headers_value(&x->req_headers, (size_t)at, &len);
    if (!(copy = malloc(len + 1))) {
        *why = "out of memory";
        return -1;
    }
    memcpy(copy, value, len);
    copy[len] = '\0';
    x->script_proxy_auth = copy;
    headers_remove(&x->req_headers, "Proxy-Authorization", 19);
    return 0;
}

/*
 * How the read-back of the fields can fail: FIELDS_FAILED as
 * read_field_list does (a message pushed; with <quiet>, none and nothing
 * changed), or FIELDS_REFUSED by a check made once they are in the
 * relay's list, with the message in <err> (so a read-back outside
 * protected mode has it without making a Lua string).
 */
enum { FIELDS_OK = 0, FIELDS_FAILED = -1, FIELDS_REFUSED = -2 };

/* The request's fields read back (read_field_list). Upgrade stays the
 * client's to ask for: a script may take it away, which makes the request
 * an ordinary one (no "Connection: Upgrade" goes out, a 101 is refused),
 * but not add it. */
static int read_request_fields(lua_State *L, int index, struct exchange *x, int quiet, char *err,
                               size_t err_len)
{
    const char *why;

    if (read_field_list(L, index, &x->req_headers, x->is_upgrade ? "Upgrade" : NULL, x->id,
                        quiet) != 0)
        return FIELDS_FAILED;
    if (x->is_upgrade && headers_find(&x->req_headers, "Upgrade", 7, 0) < 0)
        x->is_upgrade = 0;
    /* A Host a client sends must be host[:port] (http_request_framing); a
     * script's too, or "a b", "a,b" or "@evil" would reach the server. */
    for (int at = headers_find(&x->req_headers, "Host", 4, 0); at >= 0;
         at = headers_find(&x->req_headers, "Host", 4, (size_t)at + 1)) {
        size_t len;
        const char *value = headers_value(&x->req_headers, (size_t)at, &len);
        if (url_host_field_valid(value, len) != 0) {
            /* the text is not NUL-ended */
            snprintf(err, err_len, "invalid Host '%.*s': host[:port] expected",
                     (int)(len < 200 ? len : 200), value);
            return FIELDS_REFUSED;
        }
    }
    if (take_proxy_auth(x, &why) != 0) {
        snprintf(err, err_len, "%s", why);
        return FIELDS_REFUSED;
    }
    return FIELDS_OK;
}

/* The response's fields read back (read_field_list). Content-Length is
 * the proxy's, like the other framing fields: to a HEAD and in a 304 it is
 * the upstream's own (response.c checked it), put back whatever a script
 * did to it. */
static int read_response_fields(lua_State *L, int index, struct exchange *x, int quiet,
                                char *err, size_t err_len)
{
    char length[24];

    if (read_field_list(L, index, &x->res_headers, NULL, x->id, quiet) != 0)
        return FIELDS_FAILED;
    if (!x->res_keep_length)
        return FIELDS_OK;
    int n = snprintf(length, sizeof length, "%" PRIu64, x->res_kept_length);
    if (headers_add(&x->res_headers, "Content-Length", 14, length, (size_t)n) != 0) {
        snprintf(err, err_len, "out of memory");
        return FIELDS_REFUSED;
    }
    return FIELDS_OK;
}

/* For a read-back in protected mode: raises the error of a read-back of
 * fields that failed (<rc>, FIELDS_REFUSED with its message in <err>). */
static int fields_error(lua_State *L, int rc, const char *err)
{
    if (rc == FIELDS_REFUSED)
        lua_pushstring(L, err);
    return lua_error(L);
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

/* A reason phrase (RFC 9112 4): HTAB, SP, visible and non-ASCII bytes,
 * no longer than the proxy sends one. */
static int valid_reason(const char *r, size_t len)
{
    if (len > EXCHANGE_REASON_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)r[i] < ' ' && r[i] != '\t') || r[i] == 0x7f)
            return 0;
    return 1;
}

/* The length of the request line a client would have sent for this
 * request (in absolute form, "METHOD http://host[:port]/path HTTP/1.1"
 * CRLF; a CONNECT's target is host:port), to hold a script's line to the
 * limit a client's meets (--max-header-bytes; a client gets 414). */
static size_t client_line_length(const struct exchange *x, size_t mlen, const char *host,
                                 size_t hlen, lua_Integer port, size_t plen)
{
    size_t target = hlen + (memchr(host, ':', hlen) ? 2 : 0); /* [IPv6] */
    int shown = x->is_connect || port != (x->upstream_tls ? 443 : 80);

    if (shown)
        target += (size_t)snprintf(NULL, 0, ":%lld", (long long)port);
    if (!x->is_connect)
        target += (x->upstream_tls ? sizeof "https://" : sizeof "http://") - 1 + plen;
    return mlen + 1 + target + sizeof " HTTP/1.1\r\n" - 1;
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

    if (hooks_raw_get_field(L, d, key) != LUA_TSTRING) {
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
    int same = hooks_raw_get_field(L, d, key) == LUA_TNUMBER && lua_isinteger(L, -1) &&
               lua_tointeger(L, -1) == want;
    lua_pop(L, 1);
    return same;
}

static int field_is_nil(lua_State *L, int d, const char *key)
{
    int nil = hooks_raw_get_field(L, d, key) == LUA_TNIL;
    lua_pop(L, 1);
    return nil;
}

/* Whether the request data at <d> is still what the relay has: the
 * setters mark a change, but a script can reach the data around them
 * (pairs(tx.req) makes it, then tx.req[2]), so the fields read back are
 * compared, not trusted. */
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
 * cases decided in C without a call into hooks_api: with tx, the side (see
 * hooks_tx.c), its data table or nil and the header list pushed, returns 1
 * when only the list changed (the line and flags are the relay's), 0 when
 * nothing changed (no mark: hooks_api would say the same), and -1 when
 * hooks_api must tell (the method, the target, the status, a flag or
 * tx:intercept were set; a request whose Host count is not one). With
 * <quick> (outside protected mode), a side with a data table is -1 too:
 * comparing its line makes Lua strings. */
static int changed_side(lua_State *L, struct session *s, int request, int quick)
{
    int tx, side, d, parts;

    lua_rawgeti(L, LUA_REGISTRYINDEX, s->x.hook.tx_ref);  /* +1 tx */
    tx = lua_gettop(L);
    /* tx:intercept is for a CONNECT only; what a script put under its key
     * in another request is not read (read_request). */
    if (request && s->x.is_connect && hooks_raw_get_key(L, tx, HOOKS_KEY_INTERCEPT) != LUA_TNIL)
        return -1;
    lua_settop(L, tx);
    if (hooks_tx_get_side(L, tx, request) != LUA_TTABLE)  /* +2 tx side */
        return -1;
    side = tx + 1;
    d = side + 1;
    parts = hooks_tx_side_parts(L, side, request);        /* +4 tx side d list */
    if (parts < 0 || (parts == 1 && changed(L, d)) || lua_type(L, d + 1) != LUA_TTABLE)
        return -1;
    if (!hooks_headers_changed(L, d + 1))
        return 0;
    /* A side without a data table has the relay's line: only the setters
     * change it, and they make the table. One with a data table may have
     * been changed around them. */
    if (parts == 1 &&
        (quick || !(request ? request_as_relayed(L, d, &s->x) : response_as_relayed(L, d, &s->x))))
        return -1;
    /* hooks_api's request_out adds a missing Host and refuses two. */
    if (request && hooks_headers_count(L, d + 1, "Host", 4) != 1)
        return -1;
    return 1;
}

/* After changed_side found nothing changed (the side at <side>, its data
 * table or nil and its list above it): whether a script used that side
 * all the same, by reading its line or its list (one that only took
 * tx.req.headers did nothing with it). What call_hook (hooks_run.c) and
 * hooks_prepare_response learn from. */
static int side_was_read(lua_State *L, int side)
{
    return hooks_tx_side_read(L, side) || !hooks_headers_unread(L, side + 2);
}

/* The response's status, reason and body flags are the relay's. */
static void response_flags_as_relayed(struct exchange *x)
{
    x->hook.res_filter_off = 0;
    x->hook.res_decode_off = 0;
    x->res_reason_set = 0;
}

static int read_request(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    size_t mlen, plen, hlen;
    char err[256];
    int rc;

    x->hook.hooks->req_wanted = 1; /* see call_hook (hooks_run.c) */
    switch (changed_side(L, s, 1, 0)) {
    case 0:
        x->hook.hooks->req_wanted = side_was_read(L, 3);
        x->hook.req_filter_off = 0;
        x->hook.req_buffer = 0;
        return 0;
    case 1:
        /* Only fields: method, target and flags are what the relay has. */
        x->hook.req_filter_off = 0;
        x->hook.req_buffer = 0;
        if ((rc = read_request_fields(L, lua_gettop(L), x, 0, err, sizeof err)) != FIELDS_OK)
            return fields_error(L, rc, err);
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
    if (hlen == 0 || hlen >= sizeof x->host || !url_host_valid(host, hlen) || port < 1 ||
        port > 65535)
        return luaL_error(L, "invalid host or port");
    if (!x->is_connect) /* a script may move a request between http and https */
        x->upstream_tls = strcmp(luaL_checkstring(L, -2), "https") == 0;
    else if (plen != 0 || luaL_checkstring(L, -2)[0] != '\0') /* hooks_api refuses it too */
        return luaL_error(L, "a CONNECT has a host and a port, no URL or path");
    else if (lua_isboolean(L, -1))
        x->intercept_choice = lua_toboolean(L, -1) ? 1 : 2;
    /* hooks_api refuses these too; this holds even for a script that
     * reached around it with rawset. */
    if (x->is_connect != (mlen == 7 && strncasecmp(method, "CONNECT", 7) == 0))
        return luaL_error(L, "a request cannot become CONNECT, nor CONNECT anything else");
    if (!valid_method(method, mlen) || (!x->is_connect && !url_path_valid(path, plen)))
        return luaL_error(L, "invalid method or path");
    size_t line = client_line_length(x, mlen, host, hlen, port, plen);
    if (line > s->proxy->cfg->max_header_bytes)
        return luaL_error(L, "the request line would be %d bytes, more than --max-header-bytes "
                             "(%d) lets a client send", (int)line,
                          (int)s->proxy->cfg->max_header_bytes);
    if ((rc = read_request_fields(L, lua_gettop(L) - 2, x, 0, err, sizeof err)) != FIELDS_OK)
        return fields_error(L, rc, err);
    int host_at = headers_find(&x->req_headers, "Host", 4, 0);
    if (host_at >= 0 && headers_find(&x->req_headers, "Host", 4, (size_t)host_at + 1) >= 0)
        return luaL_error(L, "a request carries exactly one Host field");
    if (!x->is_connect && exchange_set_forward_line(x, method, mlen, path, plen) != 0)
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
    /* tx.upstream.proxy: nil goes direct, a URL goes through that parent
     * (read as a C string: a NUL would make it a shorter URL, another
     * parent than the script named). */
    size_t plen;
    if (!lua_isnil(L, -1) && strlen(luaL_checklstring(L, -1, &plen)) != plen)
        return luaL_error(L, "tx.upstream.proxy: a URL cannot hold a NUL byte");
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

static int read_response(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    size_t rlen;
    char err[256];
    int rc;

    x->hook.hooks->res_wanted = 1; /* see hooks_prepare_response */
    switch (changed_side(L, s, 0, 0)) {
    case 0:
        x->hook.hooks->res_wanted = side_was_read(L, 3);
        response_flags_as_relayed(x);
        return 0;
    case 1:
        /* Only fields: status, reason and flags are what the relay has. */
        response_flags_as_relayed(x);
        if ((rc = read_response_fields(L, lua_gettop(L), x, 0, err, sizeof err)) != FIELDS_OK)
            return fields_error(L, rc, err);
        return 0;
    default:
        lua_settop(L, 1);
        break;
    }
    hooks_push_api_tx(L, &x->hook, "response_out");
    lua_call(L, 1, 6);   /* status reason fields reason_set filter_off decode_off */
    if (lua_isnil(L, -6)) {
        /* Unchanged by every script: the head goes out as it came. */
        response_flags_as_relayed(x);
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
        return luaL_error(L, "invalid reason phrase (at most %d bytes, no control characters)",
                          EXCHANGE_REASON_MAX);
    x->status = (int)status;
    memcpy(x->res_reason, reason, rlen);
    x->res_reason[rlen] = '\0';
    if ((rc = read_response_fields(L, lua_gettop(L), x, 0, err, sizeof err)) != FIELDS_OK)
        return fields_error(L, rc, err);
    return 0;
}

/*
 * The usual read-back of the request (<request>) or the response, without
 * a protected call (some 400 instructions each way): the side unchanged,
 * or only its header list changed through the methods, whose edits apply
 * in C (changed_side's cases 0 and 1). Nothing on this path makes a Lua
 * value or runs Lua code (raw reads, and read_field_list quiet), so
 * nothing can raise an error outside protection. Returns 1 when read
 * back; 0 when read_request or read_response must run instead (nothing
 * changed yet); -1 when a check made once the fields are in the relay's
 * list refused them, with the message in <err>. What it sets is what
 * read_request and read_response set in the same cases.
 */
static int read_quick(struct session *s, int request, char *err, size_t err_len)
{
    struct exchange *x = &s->x;
    struct hooks *h = x->hook.hooks;
    lua_State *L = h->L;
    int top = lua_gettop(L), done = 0, changed, rc;
    int *wanted = request ? &h->req_wanted : &h->res_wanted;

    if (!lua_checkstack(L, LUA_MINSTACK)) /* what a C function gets; fails without raising */
        return 0;
    *wanted = 1;
    changed = changed_side(L, s, request, 1);
    if (changed == 0 || changed == 1) {
        /* What the relay does with the side's body, as it came. */
        if (request) {
            x->hook.req_filter_off = 0;
            x->hook.req_buffer = 0;
        } else {
            response_flags_as_relayed(x);
        }
    }
    if (changed == 0) {
        *wanted = side_was_read(L, top + 2);
        done = 1;
    } else if (changed == 1) {
        rc = request ? read_request_fields(L, lua_gettop(L), x, 1, err, err_len)
                     : read_response_fields(L, lua_gettop(L), x, 1, err, err_len);
        done = rc == FIELDS_OK ? 1 : rc == FIELDS_REFUSED ? -1 : 0;
    }
    lua_settop(L, top);
    return done;
}

/* The message of a quick read-back's refusal, raised in protected mode so
 * it is logged as any other read-back's error (the loop runs one
 * read-back at a time). */
static const char *quick_error;

static int raise_quick_error(lua_State *L)
{
    lua_pushstring(L, quick_error);
    return lua_error(L);
}

/* A read-back of the request or the response: the quick one, else the
 * one in protected mode. */
static int read_back(struct session *s, int request, lua_CFunction full, const char *what)
{
    char err[256];

    switch (read_quick(s, request, err, sizeof err)) {
    case 1:
        return 0;
    case -1:
        quick_error = err;
        return hooks_protected(s, raise_quick_error, what);
    default:
        return hooks_protected(s, full, what);
    }
}

int hooks_read_request(struct session *s)
{
    /* A request no script has looked at is one no script has changed. */
    if (s->x.hook.tx_ref == LUA_NOREF)
        return 0;
    if (!s->x.hook.req_read) {
        s->x.hook.hooks->req_wanted = 0;
        return 0;
    }
    return read_back(s, 1, read_request, "request");
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
    struct hook_state *hs = &s->x.hook;

    if (hs->res_lazy) {
        /* No script looked at tx.res (hooks_prepare_response): the head
         * goes out as it came, and a tx kept past this exchange never
         * gets one. */
        hs->res_lazy = 0;
        response_flags_as_relayed(&s->x);
        return 0;
    }
    return hs->tx_ref == LUA_NOREF ? 0 : read_back(s, 0, read_response, "response");
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
    /* hooks_api refuses it too; this holds for a script that reached
     * around tx:respond (the answer's table is the script's to change). */
    if (x->is_connect && code < 300)
        return luaL_error(L, "a 2xx answer to CONNECT would open the tunnel");
    int status = (int)code;
    headers_init(&fields);
    if (read_field_list(L, lua_gettop(L), &fields, NULL, 0, 0) != 0) {
        headers_free(&fields); /* Lua raises past this frame */
        return lua_error(L);
    }
    x->status = status;
    /* 204 and 304 carry no body and no Content-Length (RFC 9110 8.6); a
     * 205 no body either (15.3.6), but says so with Content-Length: 0,
     * since it is framed as any response (RFC 9112 6.3). */
    int no_content = status == 204 || status == 304 || status == 205;
    if (no_content) {
        head_only = 1;
        blen = 0;
    }
    /* The default type describes the body; with no content there is none
     * to describe (a script's own Content-Type still goes out). */
    if (!no_content && headers_find(&fields, "Content-Type", 12, 0) < 0)
        headers_add(&fields, "Content-Type", 12, "text/plain; charset=utf-8", 25);
    headers_add(&fields, "Via", 3, MESSAGE_VIA, strlen(MESSAGE_VIA));
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
