/*
 * hooks.c - Lua hook scripts (not yet wired in: scripts are refused).
 */
#include "hooks.h"

#include <stdio.h>

#include "log.h"
#include "proxy.h"

int hooks_load(struct proxy *p, char *err, size_t err_len)
{
    if (p->cfg->script_count > 0) {
        snprintf(err, err_len, "--script is not supported yet");
        return -1;
    }
    return 0;
}

void hooks_reload(struct proxy *p)
{
    (void)p;
    log_info("SIGHUP: no scripts to reload");
}

void hooks_free(struct proxy *p)
{
    (void)p;
}
