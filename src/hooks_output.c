/*
 * hooks_output.c - a script's standard output and standard error are the
 * diagnostics log.
 *
 * io.write, io.stdout, io.stderr and io.output() wrote to the proxy's own
 * file descriptors 1 and 2 through stdio. Standard output may be the
 * access log (--access-log -), which programs read: a line a script wrote
 * (often a value a client sent) landed among its entries, and one with a
 * newline forged whole entries. Standard error is the diagnostics log,
 * written a line at a time by the log thread, with which a script's bytes
 * interleaved. And a write to a pipe nobody empties blocks the loop.
 *
 * So the io library's standard files are one stream of ours (fopencookie):
 * each line written to it becomes a line of the diagnostics log, as
 * print's and proxy.log's do, with the script's name, escaped like them
 * and queued without blocking. A line longer than OUTPUT_LINE_MAX goes in
 * pieces; what is left without a newline goes when the state is closed.
 * Like the real standard files, it cannot be closed by a script.
 */
#include "hooks_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUTPUT_LINE_MAX 1024

/* The key of the stream in the registry. */
static const char output_key = 'o';

struct output_cookie {
    struct hooks *h;
    size_t len;
    char line[OUTPUT_LINE_MAX];
};

static void emit(struct output_cookie *c)
{
    hooks_log_line(c->h, c->line, c->len);
    c->len = 0;
}

/* stdio hands over what the script wrote, a line or more at a time. */
static ssize_t output_write(void *cookie, const char *buf, size_t size)
{
    struct output_cookie *c = cookie;

    for (size_t i = 0; i < size; i++) {
        if (buf[i] == '\n') {
            emit(c);
            continue;
        }
        c->line[c->len++] = buf[i];
        if (c->len == sizeof c->line)
            emit(c);
    }
    return (ssize_t)size;
}

static int output_close(void *cookie)
{
    struct output_cookie *c = cookie;

    if (c->len > 0)
        emit(c);
    free(c);
    return 0;
}

/* The stream's closef, as for io.stdout: a script's close fails, and the
 * stream stays open. */
static int refuse_close(lua_State *L)
{
    luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    p->closef = &refuse_close;
    luaL_pushfail(L);
    lua_pushliteral(L, "cannot close standard file");
    return 2;
}

void hooks_output_install(lua_State *L)
{
    static const cookie_io_functions_t funcs = {.write = output_write, .close = output_close};
    struct output_cookie *c;
    luaL_Stream *p = lua_newuserdatauv(L, sizeof *p, 0);

    p->closef = NULL; /* closed, until the file is open */
    luaL_setmetatable(L, LUA_FILEHANDLE);
    c = calloc(1, sizeof *c);
    if (!c || !(p->f = fopencookie(c, "w", funcs))) {
        free(c);
        luaL_error(L, "out of memory");
        return;
    }
    c->h = hooks_of(L);
    setvbuf(p->f, NULL, _IOLBF, 0);
    p->closef = &refuse_close;
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &output_key);
    /* io.write's default output is the io library's registry entry (its
     * name is liolib.c's, unchanged through Lua 5.4). */
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "_IO_output");
    lua_getglobal(L, "io");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "stdout");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "stderr");
    lua_pop(L, 2);
}

void hooks_output_close(lua_State *L)
{
    luaL_Stream *p;

    lua_rawgetp(L, LUA_REGISTRYINDEX, &output_key);
    p = luaL_testudata(L, -1, LUA_FILEHANDLE);
    if (p && p->closef) {
        fclose(p->f); /* the rest of a line, and the cookie */
        p->closef = NULL; /* closed: the collector leaves it */
    }
    lua_pop(L, 1);
}
