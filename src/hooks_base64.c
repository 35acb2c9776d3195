/*
 * hooks_base64.c - proxy.base64: encode and decode, in the standard
 * alphabet or the URL-safe one (src/base64.c does the work).
 *
 *   proxy.base64.encode(data [, "url"])  -> text
 *   proxy.base64.decode(text [, "url"])  -> data, or nil and a reason
 *
 * A malformed text is a value a script is expected to meet (a token off
 * the wire), so decode answers nil and a reason rather than raising. The
 * output grows in a Lua buffer, which --lua-memory counts, and a long
 * string goes a piece at a time with the hook's time budget checked
 * between pieces.
 */
#include "base64.h"
#include "hooks_internal.h"

#include <string.h>

/* Bytes encoded between two looks at the budget: whole groups of 3, so
 * that no piece but the last needs padding. */
#define ENCODE_PIECE (3 * 4 * 16384)
/* Characters decoded between two looks: whole groups of 4. */
#define DECODE_PIECE (4 * 4 * 16384)

static enum base64_alphabet alphabet_arg(lua_State *L, int arg, const char *fn)
{
    const char *name;
    if (lua_isnoneornil(L, arg))
        return BASE64_STANDARD;
    name = lua_tostring(L, arg);
    if (lua_type(L, arg) == LUA_TSTRING && strcmp(name, "url") == 0)
        return BASE64_URL;
    if (lua_type(L, arg) == LUA_TSTRING && strcmp(name, "standard") == 0)
        return BASE64_STANDARD;
    return (enum base64_alphabet)luaL_error(
        L, "proxy.base64.%s: the alphabet is \"standard\" or \"url\", not %s", fn,
        lua_type(L, arg) == LUA_TSTRING ? name : luaL_typename(L, arg));
}

static int base64_encode_lua(lua_State *L)
{
    size_t len;
    const char *data = hooks_string_arg(L, 1, "proxy.base64.encode needs a string", &len);
    enum base64_alphabet alphabet = alphabet_arg(L, 2, "encode");
    luaL_Buffer out;

    luaL_buffinit(L, &out);
    for (size_t at = 0; at < len; at += ENCODE_PIECE) {
        size_t n = len - at < ENCODE_PIECE ? len - at : ENCODE_PIECE;
        size_t text_len = base64_encoded_len(n, alphabet);
        char *p = luaL_prepbuffsize(&out, text_len);
        base64_encode((const unsigned char *)data + at, n, p, alphabet);
        luaL_addsize(&out, text_len);
        hooks_watch_check(L, "proxy.base64.encode");
    }
    luaL_pushresult(&out);
    return 1;
}

static int base64_decode_lua(lua_State *L)
{
    size_t len;
    const char *text = hooks_string_arg(L, 1, "proxy.base64.decode needs a string", &len);
    enum base64_alphabet alphabet = alphabet_arg(L, 2, "decode");
    luaL_Buffer out;

    luaL_buffinit(L, &out);
    for (size_t at = 0; at < len; at += DECODE_PIECE) {
        int last = len - at <= DECODE_PIECE;
        size_t n = last ? len - at : DECODE_PIECE;
        size_t room = (n / 4 + 1) * 3;
        unsigned char *p = (unsigned char *)luaL_prepbuffsize(&out, room);
        long got;
        /* Padding may only end the whole text: a piece before the last
         * ending in '=' would pass as one that ends there. */
        if (!last && text[at + n - 1] == '=')
            got = -1;
        else
            got = base64_decode(text + at, n, p, room, alphabet);
        if (got < 0) {
            lua_pushnil(L);
            lua_pushstring(L, alphabet == BASE64_URL
                                  ? "not base64 of the URL alphabet (no padding)"
                                  : "not base64 (RFC 4648, padded)");
            return 2;
        }
        luaL_addsize(&out, (size_t)got);
        hooks_watch_check(L, "proxy.base64.decode");
    }
    luaL_pushresult(&out);
    return 1;
}

void hooks_base64_push(lua_State *L)
{
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, base64_encode_lua);
    lua_setfield(L, -2, "encode");
    lua_pushcfunction(L, base64_decode_lua);
    lua_setfield(L, -2, "decode");
}
