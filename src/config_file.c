/*
 * config_file.c - the config file (-c FILE) under the command line.
 *
 * A file line is a long option without its dashes ("listen 127.0.0.1:3128",
 * "verbose"), so the option table in config.c is the only list of options:
 * an option added there works in the file at once. Each line becomes one
 * "--name=value" argument; the file's arguments go in front of the command
 * line's, minus every option the command line names, and the whole goes
 * through config_parse. So the command line wins, and a repeatable option
 * given there replaces the file's values instead of adding to them.
 *
 * Each line's value is checked alone first, so a bad one is reported with
 * its line. The rules between options (--har needs --admin) are checked
 * once, on the whole: a line may need another line, or the command line.
 *
 * What this file does not do: apply a reloaded configuration (proxy.c and
 * workers.c do, each for what it owns).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* A config file is a short text; anything larger is a mistake. */
#define CONFIG_FILE_MAX (1 << 20)
#define CONFIG_FILE_LINES 4096

/* Options that make no sense in a file: they act on the command itself. */
static int file_forbidden(const char *name)
{
    return strcmp(name, "config") == 0 || strcmp(name, "check") == 0 ||
           strcmp(name, "help") == 0 || strcmp(name, "version") == 0;
}

/* ---- interned strings -------------------------------------------------- */

/* Every file line becomes an interned "--name=value": a configuration
 * keeps pointers into them, and one in force before a reload may still be
 * named after it (scripts loaded earlier, the options a reload keeps), so
 * they are never freed while the proxy runs, and equal lines share one
 * copy. A reload reads up to CONFIG_FILE_LINES lines, each looked up among
 * all the strings kept so far: a hash table keeps that one step, where a
 * list walked line by line held the loop for seconds once a generated file
 * had been reloaded a few dozen times. A load that fails drops the strings
 * it added (interned_drop_since): nothing refers to them, and a file
 * rewritten with bad contents again and again would otherwise pile them
 * up. */
struct interned {
    struct interned *next;  /* all of them, newest first */
    struct interned *chain; /* the same bucket */
    uint32_t hash;
    char text[];
};
static struct interned *interned;
static struct interned **buckets;
static size_t bucket_count, interned_count;

static uint32_t intern_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Doubles the table once it holds as many strings as buckets; on no
 * memory it stays as it is (longer chains, still right). */
static void intern_grow(void)
{
    size_t count = bucket_count ? bucket_count * 2 : 256;
    struct interned **fresh = calloc(count, sizeof *fresh);
    if (!fresh)
        return;
    for (struct interned *i = interned; i; i = i->next) {
        i->chain = fresh[i->hash & (count - 1)];
        fresh[i->hash & (count - 1)] = i;
    }
    free(buckets);
    buckets = fresh;
    bucket_count = count;
}

char *config_intern(const char *s)
{
    size_t len = strlen(s);
    uint32_t hash = intern_hash(s);

    if (interned_count >= bucket_count)
        intern_grow();
    if (!buckets)
        return NULL;
    struct interned **bucket = &buckets[hash & (bucket_count - 1)];
    for (struct interned *i = *bucket; i; i = i->chain)
        if (i->hash == hash && strcmp(i->text, s) == 0)
            return i->text;
    struct interned *i = malloc(sizeof *i + len + 1);
    if (!i)
        return NULL;
    memcpy(i->text, s, len + 1);
    i->hash = hash;
    i->chain = *bucket;
    *bucket = i;
    i->next = interned;
    interned = i;
    interned_count++;
    return i->text;
}

/* Frees the strings interned after <mark> (the newest when the load
 * began). */
static void interned_drop_since(const struct interned *mark)
{
    while (interned && interned != mark) {
        struct interned *gone = interned, **link = &buckets[gone->hash & (bucket_count - 1)];
        while (*link != gone)
            link = &(*link)->chain;
        *link = gone->chain;
        interned = gone->next;
        interned_count--;
        free(gone);
    }
}

size_t config_strings_count(void)
{
    return interned_count;
}

void config_strings_free(void)
{
    interned_drop_since(NULL);
    free(buckets);
    buckets = NULL;
    bucket_count = 0;
}

/* ---- reading the file -------------------------------------------------- */

static const struct option *find_option(const char *name, size_t len)
{
    for (const struct option *o = config_option_table(); o->name; o++)
        if (strlen(o->name) == len && memcmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

/* Opens the config file for reading, or NULL with <err>. At a reload it
 * must be a regular file: a FIFO (or a device) put in its place would
 * hold the reload until something writes to it, for good if nothing
 * does. At start, where nothing waits yet, -c <(generate) is taken. */
static FILE *open_file(const char *path, int reloading, char *err, size_t err_len)
{
    struct stat st;
    FILE *f;
    int fd = open(path, O_RDONLY | O_CLOEXEC | (reloading ? O_NONBLOCK : 0));

    if (fd == -1) {
        snprintf(err, err_len, "cannot read config file '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (reloading && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        snprintf(err, err_len, "config file '%s' is not a regular file", path);
        close(fd);
        return NULL;
    }
    f = fdopen(fd, "r");
    if (!f) {
        snprintf(err, err_len, "cannot read config file '%s': %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

/* The file's lines as arguments: <args>[i] is "--name=value" (interned)
 * from line <lines>[i]. Returns the count, or -1 with <err>.
 *
 * An option that holds one value may be on one line only: a second line
 * for it is an edit gone wrong more often than an override, and silently
 * keeping the last would hide it (a file has no "later wins" reader the
 * way a command line built by a wrapper has). Options that collect a list
 * (config_option_repeatable) add up, line by line. */
static int read_file_args(const char *path, int reloading, char **args, int *lines, int max,
                          char *err, size_t err_len)
{
    const struct option *table = config_option_table();
    FILE *f = open_file(path, reloading, err, err_len);
    char *text, *line, *next;
    size_t len, n_options = 0;
    int count = 0, lineno = 0, *first_line;

    if (!f)
        return -1;
    while (table[n_options].name)
        n_options++;
    text = malloc(CONFIG_FILE_MAX + 1);
    first_line = calloc(n_options, sizeof *first_line);
    if (!text || !first_line) {
        fclose(f);
        free(first_line);
        free(text);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    len = fread(text, 1, CONFIG_FILE_MAX + 1, f);
    /* fopen takes a directory, and reading it fails (EISDIR): without
     * this check it would read as an empty file, and the proxy would
     * start on the defaults. */
    if (ferror(f)) {
        int read_errno = errno;
        fclose(f);
        snprintf(err, err_len, "cannot read config file '%s': %s", path,
                 strerror(read_errno));
        goto fail;
    }
    fclose(f);
    if (len > CONFIG_FILE_MAX) {
        snprintf(err, err_len, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
        goto fail;
    }
    /* A file that is being written reads empty just after it was cut to
     * nothing: at a reload that would put every option back to its
     * default (no scripts, no credentials asked), which an empty file
     * made on purpose can say with a comment line. */
    if (reloading && len == 0) {
        snprintf(err, err_len,
                 "config file '%s' is empty (still being written?); to run on the defaults, "
                 "leave a comment line in it",
                 path);
        goto fail;
    }
    text[len] = '\0';
    /* A UTF-8 byte order mark, as Windows editors write at the start of a
     * file, is not part of the first line's option name. */
    line = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? text + 3 : text;
    for (; line; line = next) {
        char *end, *name, *value, arg[4200];
        const struct option *o;
        size_t name_len;

        lineno++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strlen(line) != (size_t)((next ? next - 1 : text + len) - line)) {
            snprintf(err, err_len, "%s:%d: a NUL byte in the line", path, lineno);
            goto fail;
        }
        /* A '#' starts a comment only at the start of a word, so a value
         * like a URL fragment or a pattern stays whole. */
        for (char *h = strchr(line, '#'); h; h = strchr(h + 1, '#'))
            if (h == line || h[-1] == ' ' || h[-1] == '\t') {
                *h = '\0';
                break;
            }
        end = line + strlen(line);
        while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            *--end = '\0';
        name = line + strspn(line, " \t");
        if (*name == '\0')
            continue;
        name_len = strcspn(name, " \t");
        value = name + name_len + strspn(name + name_len, " \t");
        o = find_option(name, name_len);
        if (!o || file_forbidden(o->name)) {
            snprintf(err, err_len, "%s:%d: %s option '%.*s'", path, lineno,
                     o ? "not a config file" : "unknown", (int)(name_len > 64 ? 64 : name_len),
                     name);
            goto fail;
        }
        if (o->has_arg == no_argument && *value != '\0') {
            snprintf(err, err_len, "%s:%d: '%s' takes no value", path, lineno, o->name);
            goto fail;
        }
        if (o->has_arg == required_argument && *value == '\0') {
            snprintf(err, err_len, "%s:%d: '%s' needs a value", path, lineno, o->name);
            goto fail;
        }
        if (strlen(value) > 4096) {
            snprintf(err, err_len, "%s:%d: the value is too long", path, lineno);
            goto fail;
        }
        if (first_line[o - table] && !config_option_repeatable(o->name)) {
            snprintf(err, err_len, "%s:%d: '%s' is already given on line %d (it takes one value)",
                     path, lineno, o->name, first_line[o - table]);
            goto fail;
        }
        if (!first_line[o - table])
            first_line[o - table] = lineno;
        if (count == max) {
            snprintf(err, err_len, "%s:%d: more than %d options", path, lineno, max);
            goto fail;
        }
        if (*value)
            snprintf(arg, sizeof arg, "--%s=%s", o->name, value);
        else
            snprintf(arg, sizeof arg, "--%s", o->name);
        args[count] = config_intern(arg);
        if (!args[count]) {
            snprintf(err, err_len, "out of memory");
            goto fail;
        }
        lines[count++] = lineno;
    }
    free(first_line);
    free(text);
    return count;

fail:
    free(first_line);
    free(text);
    return -1;
}

/* ---- merging ----------------------------------------------------------- */

/* Which options (by index in the table) the command line names, and the
 * config file it names. 0, or -1 with <err> for a malformed command line
 * (config_parse would say the same; say it once). */
static int scan_command_line(int argc, char **argv, char *named, const char **file)
{
    const struct option *table = config_option_table();
    char **copy = malloc(sizeof *copy * (size_t)(argc + 1));
    int opt, index;

    if (!copy)
        return -1;
    memcpy(copy, argv, sizeof *copy * (size_t)argc);
    copy[argc] = NULL;
    *file = NULL;
    opterr = 0;
    optind = 1;
    for (;;) {
        index = -1;
        opt = getopt_long(argc, copy, ":l:s:w:c:vhV", table, &index);
        if (opt == -1)
            break;
        if (opt == '?' || opt == ':')
            continue;
        if (index < 0) /* a short option: find its long twin */
            for (int i = 0; table[i].name; i++)
                if (table[i].val == opt)
                    index = i;
        if (index >= 0)
            named[index] = 1;
        if (opt == 'c')
            *file = optarg;
    }
    free(copy);
    return 0;
}

/* Checks one file argument's value alone (no rule between options), so a
 * bad value is reported with its line. */
static int check_line(const char *path, int lineno, char *arg, char *err, size_t err_len)
{
    struct config *scratch = malloc(sizeof *scratch);
    char prog[] = "luaproxy";
    char *argv[3] = {prog, arg, NULL};
    char msg[400];
    int rc = 0;

    if (!scratch) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (config_parse_values(scratch, 2, argv, msg, sizeof msg) != CONFIG_OK) {
        snprintf(err, err_len, "%s:%d: %s", path, lineno, msg);
        rc = -1;
    }
    free(scratch);
    return rc;
}

/* The file line of the option <culprit> that a rule between options
 * refused: its last line, or 0 when the command line names it (the
 * command line's value was used) or the file does not. */
static int culprit_line(const char *culprit, char **file_args, const int *lines, int count,
                        const char *named)
{
    const struct option *table = config_option_table();
    size_t len = strlen(culprit);
    const struct option *o = find_option(culprit, len);
    int line = 0;

    if (!o || named[o - table])
        return 0;
    for (int i = 0; i < count; i++)
        if (strncmp(file_args[i] + 2, culprit, len) == 0 &&
            (file_args[i][2 + len] == '=' || file_args[i][2 + len] == '\0'))
            line = lines[i];
    return line;
}

/* config_load, and config_reload's reading (<reloading>). */
static enum config_result load(struct config *cfg, int argc, char **argv, int reloading,
                               char *err, size_t err_len)
{
    const struct option *table = config_option_table();
    int n_options = 0;
    const char *file;
    char *named;
    char **file_args = NULL;
    int *lines = NULL;
    char **merged = NULL;
    enum config_result r = CONFIG_ERROR;
    const char *culprit;
    const struct interned *mark = interned;
    int count, m = 0;

    while (table[n_options].name)
        n_options++;
    named = calloc((size_t)n_options, 1);
    if (!named || scan_command_line(argc, argv, named, &file) != 0) {
        free(named);
        snprintf(err, err_len, "out of memory");
        return CONFIG_ERROR;
    }
    if (!file) {
        free(named);
        return config_parse(cfg, argc, argv, err, err_len);
    }
    /* The command line's own values first, so a bad one is not blamed on
     * the file (and --help or --version ends here). */
    r = config_parse_values(cfg, argc, argv, err, err_len);
    if (r != CONFIG_OK) {
        free(named);
        return r;
    }
    r = CONFIG_ERROR;
    file_args = malloc(sizeof *file_args * CONFIG_FILE_LINES);
    lines = malloc(sizeof *lines * CONFIG_FILE_LINES);
    if (!file_args || !lines) {
        snprintf(err, err_len, "out of memory");
        goto done;
    }
    count = read_file_args(file, reloading, file_args, lines, CONFIG_FILE_LINES, err, err_len);
    if (count < 0)
        goto done;
    for (int i = 0; i < count; i++)
        if (check_line(file, lines[i], file_args[i], err, err_len) != 0)
            goto done;
    merged = malloc(sizeof *merged * (size_t)(argc + count + 1));
    if (!merged) {
        snprintf(err, err_len, "out of memory");
        goto done;
    }
    merged[m++] = argv[0];
    for (int i = 0; i < count; i++) {
        const char *name = file_args[i] + 2;
        size_t name_len = strcspn(name, "=");
        const struct option *o = find_option(name, name_len);
        if (!named[o - table])
            merged[m++] = file_args[i];
    }
    for (int i = 1; i < argc; i++)
        merged[m++] = argv[i];
    merged[m] = NULL;
    r = config_parse_values(cfg, m, merged, err, err_len);
    if (r == CONFIG_ERROR) {
        /* Each line was fine alone: the trouble is in their sum (too many
         * of something). */
        char msg[400];
        snprintf(msg, sizeof msg, "%s: %s", file, err);
        snprintf(err, err_len, "%s", msg);
    } else if (r == CONFIG_OK && config_check(cfg, &culprit, err, err_len) != 0) {
        int line = culprit_line(culprit, file_args, lines, count, named);
        r = CONFIG_ERROR;
        if (line > 0) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s:%d: %s", file, line, err);
            snprintf(err, err_len, "%s", msg);
        }
    }
    /* A reload parses the command line again, not the merged list. */
    cfg->argc = argc;
    cfg->argv = argv;

done:
    if (r != CONFIG_OK)
        interned_drop_since(mark);
    free(merged);
    free(lines);
    free(file_args);
    free(named);
    return r;
}

static int same_string(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Keeps <running>'s string option, warning if the file asked for another. */
static void keep_string(const char *name, const char *running, const char **fresh)
{
    if (!same_string(running, *fresh))
        log_warn("reload: --%s cannot change while running; kept", name);
    *fresh = running;
}

/* The options a running proxy cannot take over: its sockets are bound, its
 * workers forked, its privileges dropped, and the TLS contexts, the shared
 * region, the admin listener and the flow store made at start from them. */
static void keep_fixed(const struct config *running, struct config *fresh)
{
    int admin_changed = running->admin_enabled != fresh->admin_enabled ||
                        (running->admin_enabled &&
                         strcmp(running->admin.text, fresh->admin.text) != 0) ||
                        running->admin_allow_count != fresh->admin_allow_count ||
                        memcmp(running->admin_allow, fresh->admin_allow,
                               sizeof running->admin_allow) != 0;
    if (admin_changed)
        log_warn("reload: --admin and --admin-allow cannot change while running; kept");
    fresh->admin_enabled = running->admin_enabled;
    fresh->admin = running->admin;
    memcpy(fresh->admin_allow, running->admin_allow, sizeof fresh->admin_allow);
    fresh->admin_allow_count = running->admin_allow_count;
    fresh->admin_allow_given = running->admin_allow_given;
    keep_string("admin-token", running->admin_token, &fresh->admin_token);
    if (fresh->flows_max != running->flows_max || fresh->flow_body_max != running->flow_body_max ||
        fresh->flows_memory != running->flows_memory)
        log_warn("reload: --flows, --flow-body-max and --flows-memory cannot change while "
                 "running; kept");
    fresh->flows_max = running->flows_max;
    fresh->flow_body_max = running->flow_body_max;
    fresh->flows_memory = running->flows_memory;
    keep_string("har", running->har_file, &fresh->har_file);
    if (fresh->shared_memory != running->shared_memory)
        log_warn("reload: --shared-memory cannot change while running; kept");
    fresh->shared_memory = running->shared_memory;
    keep_string("shared", running->shared_url, &fresh->shared_url);
    keep_string("ca-dir", running->ca_dir_option, &fresh->ca_dir_option);
    if (fresh->insecure_upstream != running->insecure_upstream)
        log_warn("reload: --insecure-upstream cannot change while running; kept");
    fresh->insecure_upstream = running->insecure_upstream;
    /* Worked out once at start (tls_prepare), not options to compare. */
    fresh->tls_keylog = running->tls_keylog;
    fresh->use_ca = running->use_ca;
    memcpy(fresh->ca_dir, running->ca_dir, sizeof fresh->ca_dir);
    memcpy(fresh->ticket_keys, running->ticket_keys, sizeof fresh->ticket_keys);
    fresh->have_ticket_keys = running->have_ticket_keys;
    /* Read on the reload's thread, and only if its files changed
     * (tls_trust_reload): --upstream-ca may name another file. */
    fresh->upstream_trust = NULL;

    int listen_changed = running->listen_count != fresh->listen_count;
    for (int i = 0; !listen_changed && i < running->listen_count; i++)
        listen_changed = strcmp(running->listen[i].text, fresh->listen[i].text) != 0;
    if (listen_changed)
        log_warn("reload: the listen addresses cannot change while running; kept");
    memcpy(fresh->listen, running->listen, sizeof fresh->listen);
    fresh->listen_count = running->listen_count;
    if (fresh->workers != running->workers)
        log_warn("reload: --workers cannot change while running; kept %d", running->workers);
    fresh->workers = running->workers;
    if ((fresh->user == NULL) != (running->user == NULL) ||
        (fresh->user && strcmp(fresh->user, running->user) != 0))
        log_warn("reload: --user cannot change while running; kept");
    fresh->user = running->user;
    if ((fresh->pid_file == NULL) != (running->pid_file == NULL) ||
        (fresh->pid_file && strcmp(fresh->pid_file, running->pid_file) != 0))
        log_warn("reload: --pid-file cannot change while running; kept");
    fresh->pid_file = running->pid_file;
    /* The CA, the TLS contexts and the ticket keys are made once at start
     * (tls_prepare, tls_new), kept above; the interception patterns do
     * reload. */
}

enum config_result config_load(struct config *cfg, int argc, char **argv, char *err,
                               size_t err_len)
{
    return load(cfg, argc, argv, 0, err, err_len);
}

int config_reload(const struct config *running, struct config *fresh, char *err,
                  size_t err_len)
{
    if (load(fresh, running->argc, running->argv, 1, err, err_len) != CONFIG_OK) {
        if (!err[0])
            snprintf(err, err_len, "the configuration cannot be read again");
        return -1;
    }
    fresh->check_only = running->check_only;
    keep_fixed(running, fresh);
    return 0;
}
