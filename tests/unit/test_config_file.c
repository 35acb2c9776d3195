/*
 * test_config_file.c - unit tests for the strings a config file's lines
 * are kept in (config_intern).
 *
 * Every load of the file, the first and each reload, interns its lines:
 * equal lines must share one copy, so that reloading the same file keeps
 * nothing more, and a load that fails must keep nothing of what it read,
 * so that a file rewritten with bad contents again and again does not
 * pile them up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

static char path[] = "/tmp/luaproxy-test-config-XXXXXX";

/* Writes <lines> lines "connect-ports N" (distinct, each valid), then
 * <allow> lines "allow 10.<tag>.x.y/32". */
static void write_file(int lines, int allow, int tag)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    for (int i = 0; i < lines; i++)
        fprintf(f, "connect-ports %d\n", 1000 + i);
    for (int i = 0; i < allow; i++)
        fprintf(f, "allow 10.%d.%d.%d/32\n", tag, i / 250, i % 250);
    fclose(f);
}

static enum config_result load(struct config *cfg)
{
    char prog[] = "luaproxy", dash_c[] = "-c";
    char *argv[] = {prog, dash_c, path, NULL};
    char err[512];
    return config_load(cfg, 3, argv, err, sizeof err);
}

int main(void)
{
    struct config *cfg = malloc(sizeof *cfg);
    int fd = mkstemp(path);

    (void)guarded_copy;
    if (fd < 0 || !cfg) {
        perror("setup");
        return 1;
    }
    close(fd);

    /* Enough lines to make the table grow several times over. */
    write_file(3000, 0, 0);
    is_int(load(cfg), CONFIG_OK, "a file of 3000 lines loads");
    size_t kept = config_strings_count();
    is_int(kept, 3000, "each line is kept once");
    const char *first = config_intern("--connect-ports=1000");
    const char *last = config_intern("--connect-ports=3999");
    is_int(config_strings_count(), kept, "a kept line is found, not added");

    is_int(load(cfg), CONFIG_OK, "the same file loads again");
    is_int(config_strings_count(), kept, "reloading the same file keeps nothing more");
    ok(config_intern("--connect-ports=1000") == first &&
           config_intern("--connect-ports=3999") == last,
       "equal lines share one copy");

    /* More --allow lines than a configuration holds: each line is fine
     * alone, their sum is refused. */
    for (int tag = 1; tag <= 3; tag++) {
        char name[80];
        write_file(3000, CONFIG_MAX_ALLOW + 1, tag);
        snprintf(name, sizeof name, "a file with %d allow lines is refused (%d)",
                 CONFIG_MAX_ALLOW + 1, tag);
        is_int(load(cfg), CONFIG_ERROR, name);
        snprintf(name, sizeof name, "a refused load keeps none of its new lines (%d)", tag);
        is_int(config_strings_count(), kept, name);
    }
    ok(config_intern("--connect-ports=2500") != NULL &&
           config_strings_count() == kept,
       "the lines kept before a refused load are still found");

    /* A line that is bad alone. */
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("allow 10.9.9.9/32\nheader-timeout never\n", f);
        fclose(f);
    }
    is_int(load(cfg), CONFIG_ERROR, "a bad value is refused");
    is_int(config_strings_count(), kept, "and keeps nothing");

    config_strings_free();
    is_int(config_strings_count(), 0, "all strings freed");
    is_int(load(cfg), CONFIG_ERROR, "a refused load after freeing them all");
    is_int(config_strings_count(), 0, "keeps nothing either");
    config_strings_free();

    unlink(path);
    free(cfg);
    return tap_done();
}
