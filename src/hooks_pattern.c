/*
 * hooks_pattern.c - Lua's pattern functions (string.find, match, gmatch,
 * gsub) with a step counter, so a backtracking pattern is stopped by the
 * hook's time budget like a Lua loop.
 *
 * The stock functions run a pattern to the end inside one C call, where
 * the instruction-count hook never fires: "a?"*30 .. "a"*30 against 30 a's
 * backtracks 2^30 times and holds the worker for a minute. This matcher
 * follows the same pattern language (Lua 5.4 manual, section 6.4.1) and
 * counts every step of the match; every STEP_CHECK steps it looks at the
 * clock, and past the running hook's deadline it raises an error. The
 * error marks the hook as timed out and sets a count hook, so even a
 * script that catches it with pcall is stopped at its next instruction.
 *
 * At a script's top level the load time limit applies instead
 * (hooks_watch_check).
 */
#include <ctype.h>
#include <string.h>

#include "hooks_internal.h"

#define MAX_CAPTURES 32
#define MAX_DEPTH 200     /* nested calls of match(): "pattern too complex" */
#define STEP_CHECK 4096   /* steps between two looks at the clock */

#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

#define SPECIALS "^$*+?.([%-"

struct matcher {
    lua_State *L;
    const char *src, *src_end, *pat_end;
    int depth;
    int level;
    unsigned steps;
    struct {
        const char *init;
        ptrdiff_t len;
    } cap[MAX_CAPTURES];
};

/* Counts <n> steps; past the hook's deadline (or, while scripts load, the
 * load time limit), fails the call. */
static void spend(struct matcher *m, unsigned n)
{
    unsigned before = m->steps;
    m->steps += n;
    if (before / STEP_CHECK != m->steps / STEP_CHECK)
        hooks_watch_check(m->L, "a pattern match");
}

/* ---- one character against one class ------------------------------------- */

static int class_match(int c, int cl)
{
    int r;
    switch (tolower(cl)) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    case 'z': r = c == 0; break; /* deprecated, still accepted by Lua */
    default: return cl == c; /* %. %% %[ ...: the character itself */
    }
    if (isupper(cl))
        r = !r; /* %A, %D ...: the complement */
    return r != 0;
}

/* <c> against the set from <p> (at '[') to <close> (at its ']'). */
static int set_match(int c, const char *p, const char *close)
{
    int negate = 0;
    p++;
    if (*p == '^') {
        negate = 1;
        p++;
    }
    while (p < close) {
        if (*p == '%' && p + 1 < close) {
            if (class_match(c, (unsigned char)p[1]))
                return !negate;
            p += 2;
        } else if (p + 2 < close && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return !negate;
            p += 3;
        } else {
            if ((unsigned char)*p == c)
                return !negate;
            p++;
        }
    }
    return negate;
}

/* The end of the single-character item at <p> (before any quantifier). */
static const char *item_end(struct matcher *m, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p >= m->pat_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (p < m->pat_end && *p == '^')
            p++;
        /* The first character of a set is literal, even ']'. */
        do {
            if (p >= m->pat_end)
                luaL_error(m->L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == '%') {
                if (p >= m->pat_end)
                    luaL_error(m->L, "malformed pattern (missing ']')");
                p++;
            }
        } while (p >= m->pat_end || *p != ']');
        return p + 1;
    }
    return p;
}

/* Whether the character at <s> matches the item p..ep. */
static int item_match(const struct matcher *m, const char *s, const char *p, const char *ep)
{
    int c;
    if (s >= m->src_end)
        return 0;
    c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case '%': return class_match(c, (unsigned char)p[1]);
    case '[': return set_match(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

/* ---- the matcher ----------------------------------------------------------- */

static const char *match(struct matcher *m, const char *s, const char *p);

/* Greedy: the longest run of the item first, then shorter ones. */
static const char *expand_greedy(struct matcher *m, const char *s, const char *p,
                                 const char *ep)
{
    ptrdiff_t n = 0;
    while (item_match(m, s + n, p, ep))
        n++;
    spend(m, (unsigned)(n & 0xffff) + 1);
    for (; n >= 0; n--) {
        const char *r = match(m, s + n, ep + 1);
        if (r)
            return r;
    }
    return NULL;
}

/* Lazy: the shortest run first. */
static const char *expand_lazy(struct matcher *m, const char *s, const char *p,
                               const char *ep)
{
    for (;;) {
        const char *r = match(m, s, ep + 1);
        if (r)
            return r;
        if (!item_match(m, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *open_capture(struct matcher *m, const char *s, const char *p,
                                ptrdiff_t what)
{
    const char *r;
    if (m->level >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->level].init = s;
    m->cap[m->level].len = what;
    m->level++;
    r = match(m, s, p);
    if (!r)
        m->level--;
    return r;
}

static const char *close_capture(struct matcher *m, const char *s, const char *p)
{
    int l = m->level - 1;
    const char *r;
    while (l >= 0 && m->cap[l].len != CAP_UNFINISHED)
        l--;
    if (l < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].init;
    r = match(m, s, p);
    if (!r)
        m->cap[l].len = CAP_UNFINISHED;
    return r;
}

/* %bxy: a balanced run from x to its matching y. */
static const char *balanced(struct matcher *m, const char *s, const char *p)
{
    int open, close, depth = 1;
    const char *start = s;
    if (p + 1 >= m->pat_end)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != *p)
        return NULL;
    open = (unsigned char)p[0];
    close = (unsigned char)p[1];
    while (++s < m->src_end) {
        int c = (unsigned char)*s;
        if (c == close) {
            if (--depth == 0) {
                spend(m, (unsigned)((s - start) & 0xffff));
                return s + 1;
            }
        } else if (c == open) {
            depth++;
        }
    }
    spend(m, (unsigned)((s - start) & 0xffff));
    return NULL;
}

static const char *backreference(struct matcher *m, const char *s, int digit)
{
    int l = digit - '1';
    size_t len;
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_UNFINISHED)
        luaL_error(m->L, "invalid capture index %%%d in pattern", l + 1);
    len = (size_t)m->cap[l].len;
    if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[l].init, s, len) == 0)
        return s + len;
    return NULL;
}

/* Matches the pattern from <p> against the subject from <s>: the end of
 * the match, or NULL. Simple continuations loop; choices recurse. */
static const char *match(struct matcher *m, const char *s, const char *p)
{
    const char *r = NULL;
    if (++m->depth > MAX_DEPTH)
        luaL_error(m->L, "pattern too complex");
    for (;;) {
        const char *ep;
        int ok;
        spend(m, 1);
        if (p == m->pat_end) {
            r = s;
            break;
        }
        if (*p == '(') {
            r = p + 1 < m->pat_end && p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
                                                   : open_capture(m, s, p + 1, CAP_UNFINISHED);
            break;
        }
        if (*p == ')') {
            r = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->pat_end) {
            r = s == m->src_end ? s : NULL;
            break;
        }
        if (*p == '%' && p + 1 < m->pat_end && p[1] == 'b') {
            s = balanced(m, s, p + 2);
            if (!s) {
                r = NULL;
                break;
            }
            p += 4;
            continue;
        }
        if (*p == '%' && p + 1 < m->pat_end && p[1] == 'f') {
            int prev, cur;
            p += 2;
            if (p >= m->pat_end || *p != '[')
                luaL_error(m->L, "missing '[' after '%%f' in pattern");
            ep = item_end(m, p);
            prev = s == m->src ? 0 : (unsigned char)s[-1];
            cur = s < m->src_end ? (unsigned char)*s : 0;
            if (set_match(prev, p, ep - 1) || !set_match(cur, p, ep - 1)) {
                r = NULL;
                break;
            }
            p = ep;
            continue;
        }
        if (*p == '%' && p + 1 < m->pat_end && isdigit((unsigned char)p[1])) {
            s = backreference(m, s, (unsigned char)p[1]);
            if (!s) {
                r = NULL;
                break;
            }
            p += 2;
            continue;
        }
        ep = item_end(m, p);
        ok = item_match(m, s, p, ep);
        if (ep < m->pat_end && *ep == '?') {
            if (ok && (r = match(m, s + 1, ep + 1)) != NULL)
                break;
            p = ep + 1;
            continue;
        }
        if (ep < m->pat_end && *ep == '+') {
            r = ok ? expand_greedy(m, s + 1, p, ep) : NULL;
            break;
        }
        if (ep < m->pat_end && *ep == '*') {
            r = expand_greedy(m, s, p, ep);
            break;
        }
        if (ep < m->pat_end && *ep == '-') {
            r = expand_lazy(m, s, p, ep);
            break;
        }
        if (!ok) {
            r = NULL;
            break;
        }
        s++;
        p = ep;
    }
    m->depth--;
    return r;
}

/* ---- captures to Lua values ------------------------------------------------ */

/* Pushes capture <i>, or the whole match s..e when there are none. */
static void push_capture(struct matcher *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    if (m->cap[i].len == CAP_UNFINISHED)
        luaL_error(m->L, "unfinished capture");
    if (m->cap[i].len == CAP_POSITION)
        lua_pushinteger(m->L, (lua_Integer)(m->cap[i].init - m->src) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].init, (size_t)m->cap[i].len);
}

/* Pushes every capture (or the whole match when <s> is set and there are
 * none). Returns how many. */
static int push_captures(struct matcher *m, const char *s, const char *e)
{
    int n = m->level == 0 && s ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

static void matcher_init(struct matcher *m, lua_State *L, const char *s, size_t ls,
                         const char *p, size_t lp)
{
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->depth = 0;
    m->level = 0;
    m->steps = 0;
}

static void matcher_restart(struct matcher *m)
{
    m->level = 0;
    m->depth = 0;
}

/* A 1-based, possibly negative, position into a string of <len> bytes. */
static size_t start_index(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

static int has_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++)
        if (p[i] && strchr(SPECIALS, p[i]))
            return 1;
    return 0;
}

/* ---- the library functions ----------------------------------------------- */

static int find_or_match(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls);
    struct matcher m;
    const char *s1;
    int anchor;

    if (init > ls + 1) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *hit = lp == 0 ? s + init - 1 : memmem(s + init - 1, ls - (init - 1), p, lp);
        if (hit) {
            lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    matcher_init(&m, L, s, ls, p, lp);
    s1 = s + init - 1;
    do {
        const char *e;
        matcher_restart(&m);
        e = match(&m, s1, p);
        if (e) {
            if (find) {
                lua_pushinteger(L, (lua_Integer)(s1 - s) + 1);
                lua_pushinteger(L, (lua_Integer)(e - s));
                return push_captures(&m, NULL, NULL) + 2;
            }
            return push_captures(&m, s1, e);
        }
    } while (s1++ < m.src_end && !anchor);
    luaL_pushfail(L);
    return 1;
}

static int pattern_find(lua_State *L)
{
    return find_or_match(L, 1);
}

static int pattern_match(lua_State *L)
{
    return find_or_match(L, 0);
}

/* gmatch's iterator state: where the next search starts, and the end of
 * the last match (an empty match right there is skipped). */
struct gmatch_state {
    size_t pos;
    ptrdiff_t last; /* -1: none yet */
};

static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    struct gmatch_state *st = lua_touserdata(L, lua_upvalueindex(3));
    struct matcher m;

    matcher_init(&m, L, s, ls, p, lp);
    for (const char *src = s + st->pos; src <= m.src_end; src++) {
        const char *e;
        matcher_restart(&m);
        e = match(&m, src, p);
        if (e && e - s != st->last) {
            st->pos = (size_t)(e - s);
            st->last = e - s;
            return push_captures(&m, src, e);
        }
    }
    st->pos = ls + 1;
    return 0;
}

static int pattern_gmatch(lua_State *L)
{
    size_t ls;
    struct gmatch_state *st;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls);
    lua_settop(L, 2);
    st = lua_newuserdatauv(L, sizeof *st, 0);
    st->pos = init > ls + 1 ? ls + 1 : init - 1;
    st->last = -1;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* Appends the replacement string with its %0-%9 and %% to <b>. */
static void add_replacement_string(struct matcher *m, luaL_Buffer *b, const char *s,
                                   const char *e)
{
    size_t len;
    const char *r = lua_tolstring(m->L, 3, &len);
    const char *end = r + len;
    while (r < end) {
        const char *pct = memchr(r, '%', (size_t)(end - r));
        if (!pct) {
            luaL_addlstring(b, r, (size_t)(end - r));
            break;
        }
        luaL_addlstring(b, r, (size_t)(pct - r));
        pct++;
        if (pct < end && *pct == '%') {
            luaL_addchar(b, '%');
        } else if (pct < end && isdigit((unsigned char)*pct)) {
            if (*pct == '0')
                luaL_addlstring(b, s, (size_t)(e - s));
            else {
                push_capture(m, *pct - '1', s, e);
                luaL_tolstring(m->L, -1, NULL);
                lua_remove(m->L, -2);
                luaL_addvalue(b);
            }
        } else {
            luaL_error(m->L, "invalid use of '%%' in replacement string");
        }
        r = pct + 1;
    }
}

static void add_replacement(struct matcher *m, luaL_Buffer *b, const char *s, const char *e,
                            int type)
{
    lua_State *L = m->L;
    if (type == LUA_TFUNCTION) {
        int n;
        lua_pushvalue(L, 3);
        n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (type == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_replacement_string(m, b, s, e);
        return;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s)); /* keep the original */
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int pattern_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *last = NULL;
    int type = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1), n = 0;
    int anchor = lp > 0 && *p == '^';
    int changed = 0;
    struct matcher m;
    luaL_Buffer b;

    luaL_argexpected(L, type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TFUNCTION ||
                            type == LUA_TTABLE,
                     3, "string/function/table");
    if (anchor) {
        p++;
        lp--;
    }
    luaL_buffinit(L, &b);
    matcher_init(&m, L, src, ls, p, lp);
    while (n < max) {
        const char *e;
        matcher_restart(&m);
        e = match(&m, src, p);
        if (e && e != last) {
            n++;
            changed = 1;
            add_replacement(&m, &b, src, e, type);
            src = last = e;
        } else if (src < m.src_end) {
            luaL_addchar(&b, *src++);
            spend(&m, 1);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(m.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void hooks_pattern_install(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"find", pattern_find},
        {"match", pattern_match},
        {"gmatch", pattern_gmatch},
        {"gsub", pattern_gsub},
        {NULL, NULL},
    };
    lua_getglobal(L, "string");  /* the strings' metatable indexes this table */
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
}
