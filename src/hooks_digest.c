/*
 * hooks_digest.c - proxy.sha256 and proxy.hmac_sha256, by OpenSSL.
 *
 *   proxy.sha256(data [, form])             -> digest
 *   proxy.hmac_sha256(key, data [, form])   -> digest
 *
 * form is "hex" (the default, lower case), "base64" (standard, padded) or
 * "raw" (the 32 bytes). Scripts use them to keep hashes of API keys
 * rather than the keys, to check signed tokens (scripts/jwt_auth.lua) and
 * to sign requests they send on.
 *
 * The OpenSSL contexts are made once per Lua state and belong to it: a
 * userdata whose __gc frees them is the functions' upvalue, so a reload
 * that closes the state frees them too. A long string is hashed a piece
 * at a time, with the hook's time budget checked between pieces; the
 * budget's error may leave a context half used, and each call starts it
 * afresh.
 */
#include "base64.h"
#include "hooks_internal.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <string.h>

#define DIGEST_LEN 32
/* Bytes hashed between two looks at the budget. */
#define DIGEST_PIECE (256 * 1024)

struct digest_contexts {
    EVP_MD *sha256;
    EVP_MD_CTX *md;
    EVP_MAC *hmac;
    EVP_MAC_CTX *mac;
};

static int digest_contexts_gc(lua_State *L)
{
    struct digest_contexts *c = lua_touserdata(L, 1);
    EVP_MD_CTX_free(c->md);
    EVP_MD_free(c->sha256);
    EVP_MAC_CTX_free(c->mac);
    EVP_MAC_free(c->hmac);
    memset(c, 0, sizeof *c);
    return 0;
}

static struct digest_contexts *contexts_of(lua_State *L)
{
    struct digest_contexts *c = lua_touserdata(L, lua_upvalueindex(1));
    if (!c->md || !c->mac)
        luaL_error(L, "proxy: OpenSSL has no SHA-256 or HMAC here");
    return c;
}

/* Pushes <digest> in the form named at <arg>. */
static int push_digest(lua_State *L, int arg, const char *fn, const unsigned char *digest)
{
    const char *form = lua_isnoneornil(L, arg) ? "hex" : lua_tostring(L, arg);
    if (lua_type(L, arg) != LUA_TSTRING && !lua_isnoneornil(L, arg))
        form = NULL;
    if (form && strcmp(form, "hex") == 0) {
        static const char digits[] = "0123456789abcdef";
        char hex[2 * DIGEST_LEN];
        for (int i = 0; i < DIGEST_LEN; i++) {
            hex[2 * i] = digits[digest[i] >> 4];
            hex[2 * i + 1] = digits[digest[i] & 15];
        }
        lua_pushlstring(L, hex, sizeof hex);
    } else if (form && strcmp(form, "base64") == 0) {
        char text[(DIGEST_LEN + 2) / 3 * 4];
        base64_encode(digest, DIGEST_LEN, text, BASE64_STANDARD);
        lua_pushlstring(L, text, sizeof text);
    } else if (form && strcmp(form, "raw") == 0) {
        lua_pushlstring(L, (const char *)digest, DIGEST_LEN);
    } else {
        return luaL_error(L, "%s: the form is \"hex\", \"base64\" or \"raw\", not %s", fn,
                          form ? form : luaL_typename(L, arg));
    }
    return 1;
}

static int sha256_lua(lua_State *L)
{
    struct digest_contexts *c = contexts_of(L);
    unsigned char digest[DIGEST_LEN];
    size_t len;
    const char *data = hooks_string_arg(L, 1, "proxy.sha256 needs the data as a string", &len);

    if (!EVP_DigestInit_ex2(c->md, c->sha256, NULL))
        return luaL_error(L, "proxy.sha256: OpenSSL could not start");
    for (size_t at = 0; at < len; at += DIGEST_PIECE) {
        size_t n = len - at < DIGEST_PIECE ? len - at : DIGEST_PIECE;
        EVP_DigestUpdate(c->md, data + at, n);
        hooks_watch_check(L, "proxy.sha256");
    }
    EVP_DigestFinal_ex(c->md, digest, NULL);
    return push_digest(L, 2, "proxy.sha256", digest);
}

static int hmac_sha256_lua(lua_State *L)
{
    struct digest_contexts *c = contexts_of(L);
    unsigned char digest[DIGEST_LEN];
    size_t key_len, len, out_len = 0;
    const char *key =
        hooks_string_arg(L, 1, "proxy.hmac_sha256 needs the key as a string", &key_len);
    const char *data = hooks_string_arg(L, 2, "proxy.hmac_sha256 needs the data as a string", &len);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    /* OpenSSL takes an empty key only by a pointer that is not NULL. */
    static const unsigned char no_key[1];

    if (!EVP_MAC_init(c->mac, key_len ? (const unsigned char *)key : no_key, key_len, params))
        return luaL_error(L, "proxy.hmac_sha256: OpenSSL could not start");
    for (size_t at = 0; at < len; at += DIGEST_PIECE) {
        size_t n = len - at < DIGEST_PIECE ? len - at : DIGEST_PIECE;
        EVP_MAC_update(c->mac, (const unsigned char *)data + at, n);
        hooks_watch_check(L, "proxy.hmac_sha256");
    }
    EVP_MAC_final(c->mac, digest, &out_len, sizeof digest);
    return push_digest(L, 3, "proxy.hmac_sha256", digest);
}

void hooks_digest_register(lua_State *L)
{
    struct digest_contexts *c = lua_newuserdatauv(L, sizeof *c, 0); /* +1 contexts */
    memset(c, 0, sizeof *c);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, digest_contexts_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "proxy digest contexts");
    lua_setfield(L, -2, "__name");
    lua_setmetatable(L, -2);
    c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    c->md = c->sha256 ? EVP_MD_CTX_new() : NULL;
    c->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    c->mac = c->hmac ? EVP_MAC_CTX_new(c->hmac) : NULL;

    lua_pushvalue(L, -1);
    lua_pushcclosure(L, sha256_lua, 1);
    lua_setfield(L, -3, "sha256");
    lua_pushcclosure(L, hmac_sha256_lua, 1); /* +1 hmac_sha256 */
    lua_setfield(L, -2, "hmac_sha256");
}
