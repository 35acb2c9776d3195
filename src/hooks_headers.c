/*
 * hooks_headers.c - the methods of a header list (tx.req.headers,
 * tx.res.headers) in C: get, values, set, add, remove and the list's
 * __index and __newindex.
 *
 * A header list is a Lua table with the name of field i at 2i-1 and its
 * value at 2i, plus a "changed" mark under a key only hooks_api holds.
 * These functions work on that table in place: no table per field, no
 * lowered copy of each name to compare (names are compared byte by byte,
 * ASCII case folded), no pattern match to check a value, and no Lua
 * instructions run for a lookup or a change. What they accept and refuse
 * is the reference's (scripts/README.md, "Header lists").
 *
 * The lists the relay hands over (tx.req.headers, tx.res.headers) start
 * as views: the table holds no field yet; its array holds one block (a
 * userdata, at 1) with a copy of the relay's fields and the edits made
 * since (add, set and remove, in order: see "The edit log" below; a view
 * needs no hash part: it is changed when it holds an edit). Most hooks
 * only set, remove or add a field, so the head is never turned into Lua
 * strings: the edits are applied in C to the relay's own list when the
 * list is read back (hooks_headers_apply). The first read (get, values,
 * pairs, #h) fills the table from the copy and replays the edits, and
 * from then on it is a plain list. The copy belongs to Lua, so a list kept past its
 * exchange can still be filled.
 */
#include "hooks_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"
#include "http_parse.h"
#include "url.h"

/* The upvalue of every function here: name -> method, for __index. */
#define METHODS lua_upvalueindex(1)

const char hooks_changed_key = 'c';

static int method_fill(lua_State *L);


/* The copy of the relay's fields a view starts from. */
struct view_base {
    const void *self; /* its own address: what tells it from a script's userdata */
    uint64_t stamp;   /* the exchange the fields are of */
    size_t count;
    size_t text_len;
    size_t extra_off; /* the caller's bytes (hooks_headers_push_view) */
    const void *owner; /* the list the log is for (lua_topointer) */
    size_t log_off;   /* the edit log, VIEW_LOG_ROOM bytes */
    uint32_t log_used, log_count;
    int spilled;      /* an edit went to the list's array: so do the next */
    int host_edited;  /* an edit names Host: counting Host must read the edits */
    struct header items[]; /* then the text, at items + count */
};

enum view_op { VIEW_ADD = 1, VIEW_SET, VIEW_REMOVE };

/*
 * The edit log. A view's first edits are kept as bytes in its block,
 * after the copy's text: each an edit_head, then the name and the value
 * (none for a remove). The first one that does not fit, and every one
 * after it, goes to the list's array instead, as three Lua values (op,
 * name, value: false for a remove) after the block, so the log comes
 * first and the order holds. A logged edit costs one copy; one in the
 * array, three stores into the table when made and three reads when
 * applied (about 500 instructions more, all told). A log has room for
 * the few small edits most hooks make.
 *
 * The log is the list's, not the block's: a script can take the block
 * (rawget(h, 1)) and put it in a list of its own, or copy the view raw,
 * and that list's edits are its own, in its own array, as they were
 * before there was a log. The block knows the list it was made for by
 * its address (lua_topointer): only that list writes or reads its log; a
 * fill empties the log, whose edits the list then holds. (A user value
 * holding the list would make the collector traverse every block: some
 * 1,200 instructions an exchange. An address is reused only once its
 * table is collected; a block a script kept and put into a new table at
 * that address would bring its logged edits there, checked edits as any,
 * in a list the script made itself from the parts.)
 */
#define VIEW_LOG_ROOM 256

struct edit_head {
    uint32_t op, name_len, value_len;
};

struct view_edit {
    int op;
    const char *name, *value;
    size_t name_len, value_len;
};

/* Reads the log's edit at byte <at> into *<e>; returns where the next
 * one starts. */
static uint32_t log_read(const struct view_base *b, uint32_t at, struct view_edit *e)
{
    const char *log = (const char *)b + b->log_off;
    struct edit_head h;

    memcpy(&h, log + at, sizeof h);
    e->op = (int)h.op;
    e->name = log + at + sizeof h;
    e->name_len = h.name_len;
    e->value = e->name + h.name_len;
    e->value_len = h.value_len;
    return at + (uint32_t)sizeof h + h.name_len + h.value_len;
}

/* Logs edit <op> of <name> to <value> (NULL for a remove) in block <b>;
 * 0, or -1 when it does not fit (nothing logged). */
static int log_write(struct view_base *b, int op, const char *name, size_t name_len,
                     const char *value, size_t value_len)
{
    char *at = (char *)b + b->log_off + b->log_used;
    struct edit_head h = {(uint32_t)op, (uint32_t)name_len, (uint32_t)value_len};
    size_t room = VIEW_LOG_ROOM - b->log_used;

    if (name_len > room || value_len > room || sizeof h + name_len + value_len > room)
        return -1;
    memcpy(at, &h, sizeof h);
    memcpy(at + sizeof h, name, name_len);
    if (value_len > 0)
        memcpy(at + sizeof h + name_len, value, value_len);
    b->log_used += (uint32_t)(sizeof h + name_len + value_len);
    b->log_count++;
    return 0;
}

static const char *base_text(const struct view_base *b)
{
    return (const char *)(b->items + b->count);
}

/* The block hooks_headers_push_view made, given a full userdata, or NULL
 * for any other, such as one a script put where a block goes (an io file at
 * slot 1 of a list, with rawset), which would then be read as if it held
 * fields. A block starts with its own address. The only full userdata a
 * script can make are io files, whose first word is the FILE they wrap
 * (and which are 16 bytes, so reading that word stays inside them); a C
 * module could forge one, but C code already has the whole process. As
 * cheap as the look it guards (the methods of a list come here on every
 * call): a user value to mark blocks cost about 1,300 instructions an
 * exchange of a header-rewriting hook. */
static inline struct view_base *block_of(void *full_userdata)
{
    struct view_base *b = full_userdata;
    return b->self == b ? b : NULL;
}

int hooks_headers_is_block(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TUSERDATA && block_of(lua_touserdata(L, idx)) != NULL;
}

void *hooks_headers_push_view(lua_State *L, const struct headers *fields, uint64_t stamp,
                              size_t extra)
{
    struct hooks *h = hooks_of(L);
    size_t text_len = buffer_length(&fields->text);
    size_t log_off = sizeof(struct view_base) + fields->count * sizeof(struct header) + text_len;
    size_t size = log_off + VIEW_LOG_ROOM;
    size_t extra_off = (size + 15) & ~(size_t)15; /* Lua aligns the block itself */
    struct view_base *b;

    /* Room for the block; edits go to its log. */
    lua_createtable(L, 1, 0);                             /* +1 list */
    b = lua_newuserdatauv(L, extra_off + extra, 0);       /* +2 list block */
    b->self = b;
    b->stamp = stamp;
    b->count = fields->count;
    b->text_len = text_len;
    b->extra_off = extra_off;
    b->log_off = log_off;
    b->log_used = b->log_count = 0;
    b->spilled = 0;
    b->host_edited = 0;
    if (fields->count > 0)
        memcpy(b->items, fields->items, fields->count * sizeof b->items[0]);
    if (text_len > 0)
        memcpy((char *)(b->items + b->count), buffer_peek(&fields->text), text_len);
    b->owner = lua_topointer(L, -2); /* the log's list */
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->headers_mt_ref);
    lua_setmetatable(L, -3);
    return (char *)b + extra_off;
}

int hooks_headers_block_of(lua_State *L, int block, int list)
{
    const struct view_base *b;
    return lua_type(L, block) == LUA_TUSERDATA && (b = block_of(lua_touserdata(L, block))) &&
           b->owner == lua_topointer(L, list);
}

void *hooks_headers_extra(void *block)
{
    struct view_base *b = block;
    return (char *)b + b->extra_off;
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Whether field name <a> is <b>, regardless of ASCII case. */
static int name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (a[i] != b[i] && ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* The field name at <idx>, which must be a token (RFC 9110 5.1). */
static const char *check_name(lua_State *L, int idx, size_t *len)
{
    const char *name = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, len) : NULL;
    if (!name || *len == 0 || http_token_span(name, *len) != *len) {
        luaL_tolstring(L, idx, NULL);
        luaL_error(L, "invalid header name %s", lua_tostring(L, -1));
    }
    return name;
}

size_t hooks_number_text(lua_State *L, int idx, char *buf, size_t size)
{
    lua_Number d;
    int n;

    if (lua_isinteger(L, idx)) {
        n = snprintf(buf, size, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
        return n > 0 && (size_t)n < size ? (size_t)n : 0;
    }
    d = lua_tonumber(L, idx);
    /* NaN and the infinities have no text a recipient reads as a number
     * (C prints "-nan" and "inf"). */
    if (!isfinite(d))
        return 0;
    /* A whole number is sent as one: Lua's tostring would send 3.0 as
     * "3.0", and 2^53 as "9.007199254741e+15", another number. The bounds
     * are exact in a double: 2^63 is not an int64, -2^63 is. */
    if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
        n = snprintf(buf, size, "%lld", (long long)d); /* -0.0 becomes "0" */
        return n > 0 && (size_t)n < size ? (size_t)n : 0;
    }
    /* Any other, in the fewest digits that read back as the same number:
     * 0.1 is "0.1", not %.17g's "0.10000000000000001", and 5e-324 is not
     * %.15g's "4.94065645841247e-324". At most 17 digits (a double's
     * round trip), so the loop ends. */
    for (int digits = 1; digits <= 17; digits++) {
        n = snprintf(buf, size, "%.*g", digits, d);
        if (n <= 0 || (size_t)n >= size)
            return 0;
        if (strtod(buf, NULL) == d)
            break;
    }
    return (size_t)n;
}

/* Replaces the value at <idx> by what is sent: a number as its text
 * (hooks_number_text; NaN and the infinities are an error), spaces and
 * tabs around it removed. A value with CR, LF or NUL would split the head,
 * and is an error, as is any other control byte but tab. */
static void check_value(lua_State *L, int idx)
{
    size_t len, start = 0;
    const char *v;
    int t = lua_type(L, idx);

    if (t == LUA_TNUMBER) {
        char text[HOOKS_NUMBER_TEXT_MAX];
        len = hooks_number_text(L, idx, text, sizeof text);
        if (len == 0)
            luaL_error(L, "a header value must be a finite number, got %s",
                       luaL_tolstring(L, idx, NULL));
        lua_pushlstring(L, text, len);
        lua_replace(L, idx);
    } else if (t != LUA_TSTRING) {
        luaL_error(L, "a header value must be a string, got %s", lua_typename(L, t));
    }
    v = lua_tolstring(L, idx, &len);
    /* The parser's scanner passes what may be sent (SP, HTAB, VCHAR,
     * obs-text); only a value it stops in is looked at byte by byte, for
     * the message. */
    for (size_t i = http_field_value_span(v, len); i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '\0' || c == '\r' || c == '\n')
            luaL_error(L, "a header value must not contain CR, LF or NUL");
        /* The relay refuses the other control bytes too (headers.c):
         * refused here, the script can catch it, and the exchange does
         * not fail later on a value the script believed was set. */
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            luaL_error(L, "a header value must not contain control characters (byte %d)", (int)c);
    }
    while (start < len && (v[start] == ' ' || v[start] == '\t'))
        start++;
    while (len > start && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (start > 0 || len < lua_rawlen(L, idx)) {
        lua_pushlstring(L, v + start, len - start);
        lua_replace(L, idx);
    }
}

/* A Host value (the name at <name>, of <klen> bytes, the value checked
 * at <value>) must be host[:port], as the proxy requires of a client's
 * (url_host_field_valid): "a b", "a,b" or "@evil" would reach the server
 * as the name of the site. */
static void check_host(lua_State *L, int name, size_t klen, int value)
{
    size_t len;
    const char *v;

    if (!name_eq(lua_tostring(L, name), klen, "Host", 4))
        return;
    v = lua_tolstring(L, value, &len);
    if (url_host_field_valid(v, len) != 0)
        luaL_error(L, "invalid Host '%s': host[:port] expected", v);
}

static void mark_changed(lua_State *L)
{
    lua_pushboolean(L, 1);
    lua_rawsetp(L, 1, &hooks_changed_key);
}

/* Whether the name of field <i> (1-based index of a name) of the list at
 * <list> is <key>. */
static int field_is(lua_State *L, int list, lua_Integer i, const char *key, size_t klen)
{
    size_t flen;
    const char *fname;
    int eq;
    lua_rawgeti(L, list, i);
    fname = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &flen) : NULL;
    eq = fname && name_eq(fname, flen, key, klen);
    lua_pop(L, 1);
    return eq;
}

/* Appends field <name>: <value> (stack indexes) to the list at 1. */
static void list_add(lua_State *L, int name, int value)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    lua_pushvalue(L, name);
    lua_rawseti(L, 1, n + 1);
    lua_pushvalue(L, value);
    lua_rawseti(L, 1, n + 2);
}

/* One field <name> with <value> where the first one was (else at the
 * end) in the list at 1, or none when <value> is 0. Fields only move when
 * one before them was removed. */
static void list_set(lua_State *L, int name, int value)
{
    size_t klen;
    const char *key = lua_tolstring(L, name, &klen);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1), out = 0;
    int placed = 0;

    for (lua_Integer i = 1; i <= n; i += 2) {
        int match = field_is(L, 1, i, key, klen);
        if (!match) {
            if (out != i - 1) {
                lua_rawgeti(L, 1, i);
                lua_rawseti(L, 1, out + 1);
                lua_rawgeti(L, 1, i + 1);
                lua_rawseti(L, 1, out + 2);
            }
            out += 2;
        } else if (value && !placed) {
            if (out != i - 1) {
                lua_rawgeti(L, 1, i);
                lua_rawseti(L, 1, out + 1);
            }
            lua_pushvalue(L, value);
            lua_rawseti(L, 1, out + 2);
            out += 2;
            placed = 1;
        }
    }
    for (lua_Integer i = n; i > out; i--) {
        lua_pushnil(L);
        lua_rawseti(L, 1, i);
    }
    if (value && !placed) {
        lua_pushvalue(L, name);
        lua_rawseti(L, 1, out + 1);
        lua_pushvalue(L, value);
        lua_rawseti(L, 1, out + 2);
    }
}

/* The view's copy of the relay's fields (pushed), or NULL (nothing
 * pushed) when the list at <idx> is a plain list (a name at 1, or none). */
static struct view_base *view_base(lua_State *L, int idx)
{
    struct view_base *b;

    if (lua_rawgeti(L, idx, 1) == LUA_TUSERDATA && (b = block_of(lua_touserdata(L, -1))) != NULL)
        return b;
    lua_pop(L, 1);
    return NULL;
}

/* Whether block <b> keeps its log for the list at <list>: the list it
 * was made for. */
static int owns_log(lua_State *L, const struct view_base *b, int list)
{
    return lua_topointer(L, list) == b->owner;
}

int hooks_headers_unread(lua_State *L, int index)
{
    if (!view_base(L, index))
        return 0;
    lua_pop(L, 1);
    return 1;
}

int hooks_headers_changed(lua_State *L, int index)
{
    int changed;
    index = lua_absindex(L, index);
    struct view_base *b;
    if ((b = view_base(L, index)) != NULL) {
        int logged = b->log_count > 0 && owns_log(L, b, index);
        lua_pop(L, 1);
        return logged || lua_rawlen(L, index) > 1;
    }
    changed = lua_rawgetp(L, index, &hooks_changed_key) != LUA_TNIL && lua_toboolean(L, -1);
    lua_pop(L, 1);
    return changed;
}

/* Pushes the edit at <i> (2, 5, 8, ...) of the view
 * at <list>: its op, name and value (false for a remove). Returns the op,
 * or 0 when the three are not an edit this file recorded (a script's
 * rawset into the view). */
static int push_edit(lua_State *L, int list, lua_Integer i)
{
    int op, ok;
    lua_rawgeti(L, list, i);
    lua_rawgeti(L, list, i + 1);
    lua_rawgeti(L, list, i + 2);
    op = lua_isinteger(L, -3) ? (int)lua_tointeger(L, -3) : 0;
    ok = lua_type(L, -2) == LUA_TSTRING &&
         (op == VIEW_REMOVE ? lua_type(L, -1) == LUA_TBOOLEAN
                            : (op == VIEW_ADD || op == VIEW_SET) && lua_type(L, -1) == LUA_TSTRING);
    return ok ? op : 0;
}

/* Makes the view at 1 a plain list: its copied fields, then its edits
 * replayed (they were checked when made). A no-op on a plain list. An
 * edit that is not one (a script rawset into the view's array, where the
 * edits are kept) is an error. */
static void fill(lua_State *L)
{
    struct view_base *b = view_base(L, 1);
    lua_Integer n;
    uint32_t logged;
    int base, edits;

    if (!b)
        return;
    logged = owns_log(L, b, 1) ? b->log_count : 0;
    base = lua_gettop(L);
    n = (lua_Integer)lua_rawlen(L, 1);
    /* The edits move aside: the fields take their slots. */
    lua_createtable(L, (int)n, 0);                        /* +2 base edits */
    edits = base + 1;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        lua_rawseti(L, edits, i);
        lua_pushnil(L);
        lua_rawseti(L, 1, i);
    }
    luaL_checkstack(L, 4, NULL);
    for (size_t i = 0; i < b->count; i++) {
        const struct header *f = &b->items[i];
        lua_pushlstring(L, base_text(b) + f->name_off, f->name_len);
        lua_rawseti(L, 1, (lua_Integer)(2 * i + 1));
        lua_pushlstring(L, base_text(b) + f->value_off, f->value_len);
        lua_rawseti(L, 1, (lua_Integer)(2 * i + 2));
    }
    if (n > 1 || logged > 0)
        mark_changed(L); /* a plain list now: the mark says it */
    for (uint32_t i = 0, at = 0; i < logged; i++) {
        struct view_edit e;
        at = log_read(b, at, &e);
        lua_pushlstring(L, e.name, e.name_len);           /* +3 base edits name */
        lua_pushlstring(L, e.value, e.value_len);         /* +4 base edits name value */
        if (e.op == VIEW_ADD)
            list_add(L, edits + 1, edits + 2);
        else
            list_set(L, edits + 1, e.op == VIEW_SET ? edits + 2 : 0);
        lua_settop(L, edits);
    }
    if (logged > 0) { /* the list holds them now */
        b->log_used = b->log_count = 0;
        b->spilled = 0;
    }
    for (lua_Integer i = 2; i <= n; i += 3) {
        int op = push_edit(L, edits, i);                  /* +5 ... op name value */
        if (op == 0)
            luaL_error(L, "invalid header list (changed with rawset)");
        if (op == VIEW_ADD)
            list_add(L, edits + 2, edits + 3);
        else
            list_set(L, edits + 2, op == VIEW_SET ? edits + 3 : 0);
        lua_settop(L, edits);
    }
    lua_settop(L, base - 1);
}

/* Records edit <op> of field <name> (stack index) to <value> (index, or
 * 0) on the view at 1, after its other edits. Returns 0, or -1 (a plain
 * list: nothing done). */
static int record(lua_State *L, enum view_op op, int name, int value)
{
    struct view_base *b;
    lua_Integer n;
    size_t nlen;
    const char *nstr;
    int owns;

    if ((b = view_base(L, 1)) == NULL)
        return -1;
    owns = owns_log(L, b, 1);
    lua_pop(L, 1);
    nstr = lua_tolstring(L, name, &nlen);
    if (name_eq(nstr, nlen, "Host", 4))
        b->host_edited = 1;
    if (owns && !b->spilled) {
        size_t vlen = 0;
        const char *vstr = value ? lua_tolstring(L, value, &vlen) : NULL;
        if (log_write(b, op, nstr, nlen, vstr, vlen) == 0)
            return 0;
        b->spilled = 1;
    }
    n = (lua_Integer)lua_rawlen(L, 1);
    lua_pushinteger(L, op);
    lua_rawseti(L, 1, n + 1);
    lua_pushvalue(L, name);
    lua_rawseti(L, 1, n + 2);
    if (value)
        lua_pushvalue(L, value);
    else
        lua_pushboolean(L, 0); /* no hole: rawlen counts every edit */
    lua_rawseti(L, 1, n + 3);
    return 0;
}

/* Applies edit <e> to <out>, checked where it enters it (headers.c), as
 * it was when recorded: 0, or -1 when refused. One that is no edit (op
 * 0) is refused, and so is an edit of Host when record() saw none
 * (<host_edited>): it was put there with rawset, around the count the
 * read-back relies on (its op is made 0). */
static int apply_edit(struct headers *out, struct view_edit *e, int host_edited)
{
    if (e->op != 0 && !host_edited && name_eq(e->name, e->name_len, "Host", 4))
        e->op = 0;
    if (e->op == 0)
        return -1;
    if (e->op == VIEW_ADD)
        return headers_add(out, e->name, e->name_len, e->value, e->value_len);
    if (e->op == VIEW_SET)
        return headers_set(out, e->name, e->name_len, e->value, e->value_len);
    if (!headers_valid_name(e->name, e->name_len))
        return -1;
    headers_remove(out, e->name, e->name_len);
    return 0;
}

/* hooks_headers_apply's way out after edit <e> was refused: <out> as it
 * was (its first <saved> items kept in <undo>), and the message pushed
 * unless <quiet>. Returns -1. */
static int apply_failed(lua_State *L, struct headers *out, const struct header *undo,
                        size_t saved, const struct view_edit *e, int quiet)
{
    if (saved > 0)
        memcpy(out->items, undo, saved * sizeof *out->items);
    out->count = saved;
    if (quiet)
        return -1;
    if (e->op != 0) { /* a logged name has no NUL after it */
        lua_pushliteral(L, "invalid header ");
        lua_pushlstring(L, e->name, e->name_len);
        lua_concat(L, 2);
    } else
        lua_pushliteral(L, "invalid header list (changed with rawset)");
    return -1;
}

int hooks_headers_apply(lua_State *L, int index, struct headers *out, uint64_t stamp, int quiet)
{
    size_t saved = out->count;
    struct header *undo;
    struct view_base *b;
    lua_Integer n;
    uint32_t logged;

    index = lua_absindex(L, index);
    if ((b = view_base(L, index)) == NULL)
        return 0;
    logged = owns_log(L, b, index) ? b->log_count : 0;
    if (b->stamp != stamp) {
        lua_pop(L, 1);
        if (quiet)
            return -1;
        /* Not a view of <out>: read back as a plain list. */
        lua_pushcfunction(L, method_fill);
        lua_pushvalue(L, index);
        lua_call(L, 1, 0);
        return 0;
    }
    lua_pop(L, 1);
    n = (lua_Integer)lua_rawlen(L, index);
    if (n <= 1 && logged == 0)
        return 1; /* no edit: the relay's fields stand */
    /* Undone on an error, as the read-back of a plain list leaves <out>
     * as it was: the items only (text is only ever appended). */
    undo = hooks_scratch(hooks_of(L), saved);
    if (!undo) {
        if (!quiet)
            lua_pushliteral(L, "out of memory");
        return -1;
    }
    if (saved > 0)
        memcpy(undo, out->items, saved * sizeof *out->items);
    /* The log first, then the edits in the array: their order. */
    for (uint32_t i = 0, at = 0; i < logged; i++) {
        struct view_edit e;
        at = log_read(b, at, &e);
        if (apply_edit(out, &e, b->host_edited) != 0)
            return apply_failed(L, out, undo, saved, &e, quiet);
    }
    for (lua_Integer i = 2; i <= n; i += 3) {
        struct view_edit e = {push_edit(L, index, i), NULL, NULL, 0, 0};
        if (e.op != 0) {
            e.name = lua_tolstring(L, -2, &e.name_len);
            if (e.op != VIEW_REMOVE)
                e.value = lua_tolstring(L, -1, &e.value_len);
        }
        if (apply_edit(out, &e, b->host_edited) != 0)
            return apply_failed(L, out, undo, saved, &e, quiet);
        lua_pop(L, 3);
    }
    return 1;
}

/* h:get(name): the value, the values joined with ", ", or nil. */
static int method_get(lua_State *L)
{
    size_t klen;
    const char *key;
    lua_Integer n;
    int found = 0;
    luaL_Buffer b;

    luaL_checktype(L, 1, LUA_TTABLE);
    key = check_name(L, 2, &klen);
    lua_settop(L, 2);
    fill(L);
    n = (lua_Integer)lua_rawlen(L, 1);
    for (lua_Integer i = 1; i <= n; i += 2) {
        if (!field_is(L, 1, i, key, klen))
            continue;
        if (found == 1) {
            /* a second one: join them (the first is on the stack) */
            luaL_buffinit(L, &b);
            lua_pushvalue(L, -2);
            luaL_addvalue(&b);
        }
        if (found >= 1) {
            luaL_addstring(&b, ", ");
            if (lua_rawgeti(L, 1, i + 1) != LUA_TSTRING) /* only rawset puts one there */
                return luaL_error(L, "invalid value in the header list");
            luaL_addvalue(&b);
        } else {
            lua_rawgeti(L, 1, i + 1);
        }
        found++;
    }
    if (found == 0)
        lua_pushnil(L);
    else if (found > 1)
        luaL_pushresult(&b);
    return 1;
}

/* How many fields <key> the plain list at <list> holds; their values are
 * appended to the table at <into> as well, unless <into> is 0. */
static lua_Integer fields_named(lua_State *L, int list, const char *key, size_t klen, int into)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, list), count = 0;

    for (lua_Integer i = 1; i <= n; i += 2) {
        if (!field_is(L, list, i, key, klen))
            continue;
        count++;
        if (into) {
            lua_rawgeti(L, list, i + 1);
            lua_rawseti(L, into, count);
        }
    }
    return count;
}

/* h:values(name): a list of the values of every field <name>. */
static int method_values(lua_State *L)
{
    size_t klen;
    const char *key;

    luaL_checktype(L, 1, LUA_TTABLE);
    key = check_name(L, 2, &klen);
    lua_settop(L, 2);
    fill(L);
    lua_newtable(L);
    fields_named(L, 1, key, klen, lua_gettop(L));
    return 1;
}

lua_Integer hooks_headers_count(lua_State *L, int index, const char *key, size_t klen)
{
    lua_Integer n, count = 0;
    struct view_base *b;

    index = lua_absindex(L, index);
    n = (lua_Integer)lua_rawlen(L, index);
    if ((b = view_base(L, index)) != NULL) {              /* +1 base */
        /* Its copy, then each edit of <key> moves the count (an add by
         * one, a set to one, a remove to none): no fill needed. A broken
         * edit is skipped here; the read-back refuses it. */
        for (size_t i = 0; i < b->count; i++)
            count += name_eq(base_text(b) + b->items[i].name_off, b->items[i].name_len, key, klen);
        /* The read-back's check for one Host, on every exchange: the
         * edits need no walk when none of them names Host. */
        int walk = b->host_edited || !name_eq(key, klen, "Host", 4);
        uint32_t logged = walk && owns_log(L, b, index) ? b->log_count : 0;
        if (!walk)
            n = 0;
        for (uint32_t i = 0, at = 0; i < logged; i++) {
            struct view_edit e;
            at = log_read(b, at, &e);
            if (name_eq(e.name, e.name_len, key, klen))
                count = e.op == VIEW_ADD ? count + 1 : e.op == VIEW_SET ? 1 : 0;
        }
        for (lua_Integer i = 2; i <= n; i += 3) {
            size_t flen;
            int op = push_edit(L, index, i);
            const char *fname = op ? lua_tolstring(L, -2, &flen) : NULL;
            if (fname && name_eq(fname, flen, key, klen))
                count = op == VIEW_ADD ? count + 1 : op == VIEW_SET ? 1 : 0;
            lua_pop(L, 3);
        }
        lua_pop(L, 1);
        return count;
    }
    return fields_named(L, index, key, klen, 0);
}

/* count(h, name): how many fields <name> there are (hooks_api's check
 * for exactly one Host, without the list h:values makes, and without
 * filling a view). */
static int method_count(lua_State *L)
{
    size_t klen;
    const char *key;

    luaL_checktype(L, 1, LUA_TTABLE);
    key = check_name(L, 2, &klen);
    lua_pushinteger(L, hooks_headers_count(L, 1, key, klen));
    return 1;
}

/* h:add(name, value): one more field at the end. */
static int method_add(lua_State *L)
{
    size_t klen;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 3);
    check_name(L, 2, &klen);
    check_value(L, 3);
    check_host(L, 2, klen, 3);
    if (record(L, VIEW_ADD, 2, 3) != 0) {
        mark_changed(L);
        list_add(L, 2, 3);
    }
    return 0;
}

/* h:set(name, value): one field <name> with <value> where the first one
 * was (else at the end), or none when <value> is nil. */
static int method_set(lua_State *L)
{
    size_t klen;
    int has_value;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 3);
    check_name(L, 2, &klen);
    has_value = !lua_isnil(L, 3);
    if (has_value) {
        check_value(L, 3);
        check_host(L, 2, klen, 3);
    }
    if (record(L, has_value ? VIEW_SET : VIEW_REMOVE, 2, has_value ? 3 : 0) != 0) {
        mark_changed(L);
        list_set(L, 2, has_value ? 3 : 0);
    }
    return 0;
}

/* h:remove(name) */
static int method_remove(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushnil(L);
    return method_set(L);
}

/* h.name / h["Name"]: a method, else the field's value. */
static int method_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    if (lua_rawget(L, METHODS) != LUA_TNIL)
        return 1;
    if (lua_type(L, 2) != LUA_TSTRING)
        return 1; /* nil */
    lua_settop(L, 2);
    return method_get(L);
}

/* h["Name"] = value */
static int method_newindex(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "header names are strings");
    return method_set(L);
}

/* #h */
static int method_len(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    fill(L);
    lua_pushinteger(L, (lua_Integer)(lua_rawlen(L, 1) / 2));
    return 1;
}

/* fill(h): h as a plain list (pairs, and hooks_api's copies and diffs,
 * read its fields raw). Returns h. */
static int method_fill(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    fill(L);
    return 1;
}

/* changed(h): whether h was changed through the methods. */
static int method_changed(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushboolean(L, hooks_headers_changed(L, 1));
    return 1;
}

/* number_text(n): the text a number is sent as in a field value
 * (hooks_number_text), or nil for NaN and the infinities; for the checks
 * hooks_api.lua makes itself (proxy.http's fields). */
static int number_text(lua_State *L)
{
    char text[HOOKS_NUMBER_TEXT_MAX];
    size_t len;

    luaL_checktype(L, 1, LUA_TNUMBER);
    len = hooks_number_text(L, 1, text, sizeof text);
    if (len == 0)
        lua_pushnil(L);
    else
        lua_pushlstring(L, text, len);
    return 1;
}

/* native.header_functions(methods): the functions above, as get, values,
 * set, add, remove, __index, __newindex, count, __len, fill, changed. */
static int header_functions(lua_State *L)
{
    static const lua_CFunction fns[] = {method_get,      method_values, method_set,
                                        method_add,      method_remove, method_index,
                                        method_newindex, method_count,  method_len,
                                        method_fill,     method_changed};
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        lua_pushvalue(L, 1);
        lua_pushcclosure(L, fns[i], 1);
    }
    return (int)(sizeof fns / sizeof fns[0]);
}

void hooks_headers_register(lua_State *L)
{
    lua_pushcfunction(L, header_functions);
    lua_setfield(L, -2, "header_functions");
    lua_pushlightuserdata(L, (void *)(uintptr_t)&hooks_changed_key);
    lua_setfield(L, -2, "changed_key");
    lua_pushcfunction(L, number_text);
    lua_setfield(L, -2, "number_text");
}
