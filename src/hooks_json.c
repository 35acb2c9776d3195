/*
 * hooks_json.c - proxy.json: JSON to Lua values and back, exact where Lua
 * can be, and bounded like the rest of a hook.
 *
 * What a round trip keeps (decode, then encode):
 *   - numbers: an integer literal (no fraction, no exponent) that fits 64
 *     bits becomes a Lua integer and is written back in full; any other
 *     number becomes the nearest float, written with 15, 16 or 17
 *     significant digits, the fewest of those that read back as that
 *     float (so 0.1 is "0.1", trailing zeros dropped), and with ".0" when
 *     it has no fraction, so a float stays a float. Integers past 64 bits
 *     come back as the nearest float; a number past the floats' range
 *     (1e999) decodes to +-math.huge, which encode refuses, as it does NaN;
 *   - arrays: decoded arrays carry proxy.json.array_mt, so an empty one is
 *     written as [] again (a plain empty table is {});
 *   - null: proxy.json.null (a light userdata NULL, the same value as
 *     lua-cjson's cjson.null), in objects and arrays alike.
 * An object's field order is not kept: a Lua table has none.
 *
 * Why not lua-cjson, which proxy.json used: the version Debian ships
 * writes numbers with at most 14 significant digits (100000000000001
 * became 1e+14), reads every number as a float (so 2^53 + 1 was lost),
 * cannot tell [] from {}, and builds its output in C memory outside
 * --lua-memory with no time limit: a table holding the same table twice,
 * forty levels deep, made it write 2^40 copies while the worker's memory
 * grew without end.
 *
 * Here the output grows in a Lua userdata (the memory cap counts it), and
 * every value decoded or encoded is a step against the hook's time budget
 * (hooks_watch_spend). Nesting deeper than JSON_MAX_DEPTH is an error
 * either way, which also stops a table that contains itself.
 */
#include "hex.h"
#include "hooks_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 1000

/* The upvalue of encode and decode: proxy.json.array_mt. */
#define ARRAY_MT lua_upvalueindex(1)

/* ---- encoding -------------------------------------------------------------- */

/* The text being written: a block in a userdata at stack slot <slot>, so
 * that Lua's allocator (and its cap) owns it and an error frees it. */
struct out {
    lua_State *L;
    int slot;
    char *p;
    size_t len, cap;
};

static void out_reserve(struct out *o, size_t n)
{
    size_t cap;
    char *p;
    if (o->cap - o->len >= n)
        return;
    cap = o->cap ? o->cap : 256;
    while (cap - o->len < n) {
        if (cap > ((size_t)-1) / 2)
            luaL_error(o->L, "proxy.json.encode: the text is too large");
        cap *= 2;
    }
    p = lua_newuserdatauv(o->L, cap, 0);
    if (o->len)
        memcpy(p, o->p, o->len);
    lua_replace(o->L, o->slot); /* the old block is garbage */
    o->p = p;
    o->cap = cap;
}

static void out_add(struct out *o, const char *s, size_t n)
{
    out_reserve(o, n);
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void out_char(struct out *o, char c)
{
    out_reserve(o, 1);
    o->p[o->len++] = c;
}

static void encode_string(struct out *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    out_char(o, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t n = 2;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue; /* written with its run, below */
        out_add(o, s + start, i - start);
        start = i + 1;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        out_add(o, esc, n);
    }
    out_add(o, s + start, len - start);
    out_char(o, '"');
}

/* Writes the number at <idx> (a float: with the fewest of 15 to 17
 * significant digits that read back as it; with ".0" when that looks
 * like an integer). */
static void encode_number(struct out *o, int idx)
{
    char buf[64];
    int n;
    if (lua_isinteger(o->L, idx)) {
        n = snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(o->L, idx));
    } else {
        lua_Number d = lua_tonumber(o->L, idx);
        if (!isfinite(d))
            luaL_error(o->L, "proxy.json.encode: %s has no JSON form", isnan(d) ? "NaN" : "inf");
        /* Any decimal of 15 digits or fewer survives a double, so %.15g
         * already is the shortest when one that short exists. */
        for (int digits = 15; digits <= 17; digits++) {
            n = snprintf(buf, sizeof buf, "%.*g", digits, (double)d);
            if (strtod(buf, NULL) == d)
                break;
        }
        if (n > 0 && (size_t)n < sizeof buf - 2 && strpbrk(buf, ".e") == NULL) {
            memcpy(buf + n, ".0", 3);
            n += 2;
        }
    }
    out_add(o, buf, (size_t)n);
}

static void encode_value(struct out *o, int idx, int depth);

/* How the table at <idx> is written: as an array of <*n> elements (holes
 * as null), or as an object (0). */
static int array_length(struct out *o, int idx, lua_Integer *n)
{
    lua_State *L = o->L;
    lua_Integer max = 0, count = 0;
    int array = 1;

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        hooks_watch_spend(L, 1, "proxy.json.encode");
        if (array && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k > max)
                max = k;
            count++;
        } else {
            array = 0;
        }
    }
    if (!array)
        return 0;
    if (count == 0) { /* {} unless marked as an array (a decoded [] is) */
        int marked = 0;
        if (lua_getmetatable(L, idx)) {
            marked = lua_rawequal(L, -1, ARRAY_MT);
            lua_pop(L, 1);
        }
        *n = 0;
        return marked;
    }
    /* A few holes are nulls; a mostly empty range ({[1000] = x}) is an
     * object, as lua-cjson writes it, not a thousand nulls. */
    if (max > 10 && max / 2 > count)
        return 0;
    *n = max;
    return 1;
}

static void encode_table(struct out *o, int idx, int depth)
{
    lua_State *L = o->L;
    lua_Integer n;
    int first = 1;

    if (depth >= JSON_MAX_DEPTH)
        luaL_error(L, "proxy.json.encode: nested deeper than %d (a table that contains itself?)",
                   JSON_MAX_DEPTH);
    luaL_checkstack(L, 4, "proxy.json.encode");
    if (array_length(o, idx, &n)) {
        out_char(o, '[');
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1)
                out_char(o, ',');
            lua_rawgeti(L, idx, i);
            encode_value(o, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        out_char(o, ']');
        return;
    }
    out_char(o, '{');
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) { /* +2 key value */
        if (!first)
            out_char(o, ',');
        first = 0;
        switch (lua_type(L, -2)) {
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring(L, -2, &len);
            encode_string(o, s, len);
            break;
        }
        case LUA_TNUMBER: { /* a number key is written as its text */
            out_char(o, '"');
            encode_number(o, lua_gettop(L) - 1);
            out_char(o, '"');
            break;
        }
        default:
            luaL_error(L, "proxy.json.encode: a table key must be a string or a number, not %s",
                       luaL_typename(L, -2));
        }
        out_char(o, ':');
        encode_value(o, lua_gettop(L), depth + 1);
        lua_pop(L, 1); /* +1 key */
    }
    out_char(o, '}');
}

static void encode_value(struct out *o, int idx, int depth)
{
    lua_State *L = o->L;
    hooks_watch_spend(L, 1, "proxy.json.encode");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: out_add(o, "null", 4); break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            out_add(o, "true", 4);
        else
            out_add(o, "false", 5);
        break;
    case LUA_TNUMBER: encode_number(o, idx); break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        encode_string(o, s, len);
        break;
    }
    case LUA_TTABLE: encode_table(o, idx, depth); break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { /* proxy.json.null */
            out_add(o, "null", 4);
            break;
        }
        /* fall through */
    default:
        luaL_error(L, "proxy.json.encode: cannot encode a %s", luaL_typename(L, idx));
    }
}

/* proxy.json.encode(value): the JSON text. */
static int json_encode(lua_State *L)
{
    struct out o = {.L = L};
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    lua_pushnil(L); /* slot 2: the text's block */
    o.slot = 2;
    encode_value(&o, 1, 0);
    lua_pushlstring(L, o.p ? o.p : "", o.len);
    return 1;
}

/* ---- decoding -------------------------------------------------------------- */

struct in {
    lua_State *L;
    const char *s, *p, *end;
};

static int decode_error(struct in *in, const char *what)
{
    if (in->p >= in->end)
        return luaL_error(in->L, "proxy.json.decode: %s at the end of the text", what);
    return luaL_error(in->L, "proxy.json.decode: %s at character %d", what,
                      (int)(in->p - in->s) + 1);
}

static void skip_space(struct in *in)
{
    while (in->p < in->end &&
           (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
        in->p++;
}

/* The 4 hex digits at <p> (the end is checked by the caller); -1 if not. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit_value((unsigned char)p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static void add_utf8(luaL_Buffer *b, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    luaL_addlstring(b, u, n);
}

/* A string, <in->p> at its opening quote: pushes it. Bytes are taken as
 * they are (they should be UTF-8); escapes are undone, a surrogate pair
 * into one character (a lone surrogate is an error). */
static void decode_string(struct in *in)
{
    const char *start = ++in->p, *run;
    luaL_Buffer b;

    /* Most strings have no escape: one copy. */
    while (in->p < in->end && *in->p != '"' && *in->p != '\\' && (unsigned char)*in->p >= 0x20)
        in->p++;
    if (in->p < in->end && *in->p == '"') {
        lua_pushlstring(in->L, start, (size_t)(in->p - start));
        in->p++;
        return;
    }
    luaL_buffinit(in->L, &b);
    luaL_addlstring(&b, start, (size_t)(in->p - start));
    for (;;) {
        run = in->p;
        while (in->p < in->end && *in->p != '"' && *in->p != '\\' &&
               (unsigned char)*in->p >= 0x20)
            in->p++;
        luaL_addlstring(&b, run, (size_t)(in->p - run));
        if (in->p >= in->end)
            decode_error(in, "unfinished string");
        if (*in->p == '"')
            break;
        if ((unsigned char)*in->p < 0x20)
            decode_error(in, "control character in a string");
        /* a backslash */
        if (in->end - in->p < 2)
            decode_error(in, "unfinished escape");
        switch (in->p[1]) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            long cp = in->end - in->p >= 6 ? hex4(in->p + 2) : -1;
            if (cp < 0)
                decode_error(in, "invalid \\u escape");
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                decode_error(in, "lone surrogate in a \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* the high half of a pair */
                long low = in->end - in->p >= 12 && in->p[6] == '\\' && in->p[7] == 'u'
                               ? hex4(in->p + 8)
                               : -1;
                if (low < 0xDC00 || low > 0xDFFF)
                    decode_error(in, "lone surrogate in a \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                in->p += 6;
            }
            add_utf8(&b, (unsigned long)cp);
            in->p += 4;
            break;
        }
        default:
            decode_error(in, "invalid escape");
        }
        in->p += 2;
    }
    in->p++; /* the closing quote */
    luaL_pushresult(&b);
}

/* A number, <in->p> at its first character: pushes it, as an integer
 * when it is written as one and fits 64 bits, else as a float. */
static void decode_number(struct in *in)
{
    const char *start = in->p, *p = in->p;
    int integral = 1;
    char small[64];
    char *text = small;
    size_t len;
    lua_State *L = in->L;

#define DIGITS(at) ((at) < in->end && *(at) >= '0' && *(at) <= '9')
    if (p < in->end && *p == '-')
        p++;
    if (!DIGITS(p))
        decode_error(in, "invalid number");
    if (*p == '0') {
        p++;
    } else {
        while (DIGITS(p))
            p++;
    }
    if (p < in->end && *p == '.') {
        integral = 0;
        p++;
        if (!DIGITS(p))
            decode_error(in, "invalid number");
        while (DIGITS(p))
            p++;
    }
    if (p < in->end && (*p == 'e' || *p == 'E')) {
        integral = 0;
        p++;
        if (p < in->end && (*p == '+' || *p == '-'))
            p++;
        if (!DIGITS(p))
            decode_error(in, "invalid number");
        while (DIGITS(p))
            p++;
    }
#undef DIGITS
    in->p = p;
    len = (size_t)(p - start);
    if (integral) { /* exact while it fits: accumulated with overflow checks */
        int negative = *start == '-';
        lua_Unsigned v = 0, limit = negative ? (lua_Unsigned)LUA_MAXINTEGER + 1 : LUA_MAXINTEGER;
        const char *d = start + negative;
        for (; d < p; d++) {
            unsigned digit = (unsigned)(*d - '0');
            if (v > (limit - digit) / 10)
                break;
            v = v * 10 + digit;
        }
        if (d == p) {
            lua_pushinteger(L, negative ? (lua_Integer)(0u - v) : (lua_Integer)v);
            return;
        }
    }
    /* strtod wants a terminated string: a copy (the text may go on). */
    if (len >= sizeof small)
        text = lua_newuserdatauv(L, len + 1, 0);
    memcpy(text, start, len);
    text[len] = '\0';
    {
        double d = strtod(text, NULL); /* past the floats' range: +-HUGE_VAL */
        if (text != small)
            lua_pop(L, 1);
        lua_pushnumber(L, (lua_Number)d);
    }
}

static void decode_value(struct in *in, int depth);

static void decode_literal(struct in *in, const char *word, size_t len)
{
    if ((size_t)(in->end - in->p) < len || memcmp(in->p, word, len) != 0)
        decode_error(in, "invalid value");
    in->p += len;
}

static void decode_array(struct in *in, int depth)
{
    lua_State *L = in->L;
    lua_Integer n = 0;
    in->p++; /* [ */
    lua_newtable(L);
    lua_pushvalue(L, ARRAY_MT);
    lua_setmetatable(L, -2);
    skip_space(in);
    if (in->p < in->end && *in->p == ']') {
        in->p++;
        return;
    }
    for (;;) {
        decode_value(in, depth + 1);
        lua_rawseti(L, -2, ++n);
        skip_space(in);
        if (in->p < in->end && *in->p == ',') {
            in->p++;
            continue;
        }
        if (in->p < in->end && *in->p == ']') {
            in->p++;
            return;
        }
        decode_error(in, "expected ',' or ']'");
    }
}

static void decode_object(struct in *in, int depth)
{
    lua_State *L = in->L;
    in->p++; /* { */
    lua_newtable(L);
    skip_space(in);
    if (in->p < in->end && *in->p == '}') {
        in->p++;
        return;
    }
    for (;;) {
        skip_space(in);
        if (in->p >= in->end || *in->p != '"')
            decode_error(in, "expected a string key");
        decode_string(in);
        skip_space(in);
        if (in->p >= in->end || *in->p != ':')
            decode_error(in, "expected ':'");
        in->p++;
        decode_value(in, depth + 1);
        lua_rawset(L, -3); /* a key given twice: the last one holds */
        skip_space(in);
        if (in->p < in->end && *in->p == ',') {
            in->p++;
            continue;
        }
        if (in->p < in->end && *in->p == '}') {
            in->p++;
            return;
        }
        decode_error(in, "expected ',' or '}'");
    }
}

static void decode_value(struct in *in, int depth)
{
    lua_State *L = in->L;
    hooks_watch_spend(L, 1, "proxy.json.decode");
    if (depth >= JSON_MAX_DEPTH)
        decode_error(in, "nested too deep");
    luaL_checkstack(L, 4, "proxy.json.decode");
    skip_space(in);
    if (in->p >= in->end)
        decode_error(in, "expected a value");
    switch (*in->p) {
    case '{': decode_object(in, depth); break;
    case '[': decode_array(in, depth); break;
    case '"': decode_string(in); break;
    case 't':
        decode_literal(in, "true", 4);
        lua_pushboolean(L, 1);
        break;
    case 'f':
        decode_literal(in, "false", 5);
        lua_pushboolean(L, 0);
        break;
    case 'n':
        decode_literal(in, "null", 4);
        lua_pushlightuserdata(L, NULL);
        break;
    default:
        if (*in->p == '-' || (*in->p >= '0' && *in->p <= '9'))
            decode_number(in);
        else
            decode_error(in, "invalid value");
    }
}

/* proxy.json.decode(text): the value. */
static int json_decode(lua_State *L)
{
    size_t len;
    struct in in = {.L = L};
    in.s = in.p = luaL_checklstring(L, 1, &len);
    in.end = in.s + len;
    decode_value(&in, 0);
    skip_space(&in);
    if (in.p < in.end)
        decode_error(&in, "text after the value");
    return 1;
}

void hooks_json_push(lua_State *L)
{
    lua_createtable(L, 0, 4);                  /* +1 json */
    lua_createtable(L, 0, 1);                  /* +2 json array_mt */
    lua_pushliteral(L, "json array");
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "array_mt");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, json_encode, 1);
    lua_setfield(L, -3, "encode");
    lua_pushcclosure(L, json_decode, 1);       /* +2 json decode */
    lua_setfield(L, -2, "decode");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
}
