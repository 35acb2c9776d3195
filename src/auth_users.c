/*
 * auth_users.c - the users file of --auth-file: reading it, checking each
 * line (a name, and a hash the crypt library can check), and finding a
 * user by name. auth.c owns the checks; this owns the list.
 *
 * The list is sorted by name: a repeated name sits next to its twin and a
 * lookup is a binary search, so a file of 100,000 users costs milliseconds
 * at start and on SIGHUP, not seconds of a stalled loop.
 */
#include "auth_users.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_USERS_MAX 100000

/* A users file read ahead of being put in force. */
struct auth_users {
    struct auth_user *list;
    int count;
};

static void free_users(struct auth_user *users, int count)
{
    for (int i = 0; i < count; i++) {
        free(users[i].name);
        free(users[i].hash);
    }
    free(users);
}

/* Whether <hash> is one we can check: bcrypt ($2y$, $2b$, $2a$) or SHA-crypt
 * ($5$, $6$), well formed by the crypt library's own judgement. "Legacy"
 * is the library's word for a method it still checks but would not pick
 * for a new hash (Debian's libxcrypt says so of $5$). */
static int hash_supported(const char *hash)
{
    static const char *const prefixes[] = {"$2y$", "$2b$", "$2a$", "$5$", "$6$"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(hash, prefixes[i], strlen(prefixes[i])) == 0) {
            int verdict = crypt_checksalt(hash);
            return verdict == CRYPT_SALT_OK || verdict == CRYPT_SALT_METHOD_LEGACY;
        }
    return 0;
}

/* The users' order: by name, then by line (for qsort); and a name against
 * a user (for bsearch). */
static int compare_users(const void *l, const void *r)
{
    const struct auth_user *ul = l, *ur = r;
    int c = strcmp(ul->name, ur->name);
    return c != 0 ? c : ul->line - ur->line;
}

static int compare_key(const void *name, const void *user)
{
    return strcmp(name, ((const struct auth_user *)user)->name);
}

/* Reads the users of <path> into *<out> (sorted by name, *<out_count> of
 * them, the caller's to free with free_users). 0, or -1 with <err>
 * ("FILE:LINE: ..."). */
static int load_users(const char *path, struct auth_user **out, int *out_count, char *err,
                      size_t err_len)
{
    FILE *f = fopen(path, "r");
    struct auth_user *users = NULL;
    int count = 0, cap = 0, lineno = 0;
    char line[1024];

    if (!f) {
        snprintf(err, err_len, "cannot read --auth-file '%s': %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        char *colon, *name = line;
        lineno++;
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            /* A full buffer without its newline: too long, unless the file
             * ends right there (a last line without one). */
            int next = getc(f);
            if (next != EOF) {
                snprintf(err, err_len, "%s:%d: line too long", path, lineno);
                goto fail;
            }
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        /* A UTF-8 byte order mark, as Windows editors write at the start
         * of a file, is not part of the first user's name (who could then
         * never sign in, and nothing would say why). */
        if (lineno == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
            name += 3;
        while (*name == ' ' || *name == '\t')
            name++;
        if (*name == '\0' || *name == '#')
            continue;
        colon = strchr(name, ':');
        if (!colon || colon == name || (size_t)(colon - name) >= AUTH_USER_MAX) {
            snprintf(err, err_len, "%s:%d: expected user:hash", path, lineno);
            goto fail;
        }
        *colon = '\0';
        if (strlen(colon + 1) >= AUTH_HASH_MAX || !hash_supported(colon + 1)) {
            snprintf(err, err_len,
                     "%s:%d: user '%s' has a plain-text password or an unknown hash scheme "
                     "(use htpasswd -B, or a $6$/$5$ crypt hash)",
                     path, lineno, name);
            goto fail;
        }
        if (count == AUTH_USERS_MAX) {
            snprintf(err, err_len, "%s:%d: more than %d users", path, lineno, AUTH_USERS_MAX);
            goto fail;
        }
        if (count == cap) {
            int ncap = cap ? cap * 2 : 16;
            struct auth_user *n = realloc(users, sizeof *n * (size_t)ncap);
            if (!n)
                goto oom;
            users = n;
            cap = ncap;
        }
        users[count].name = strdup(name);
        users[count].hash = strdup(colon + 1);
        users[count].line = lineno;
        count++;
        if (!users[count - 1].name || !users[count - 1].hash)
            goto oom;
    }
    if (ferror(f)) {
        snprintf(err, err_len, "cannot read --auth-file '%s': %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    f = NULL;
    /* Sorted by name, so a duplicate sits next to its twin and a lookup
     * is a binary search: a file of 100,000 users is checked in
     * milliseconds, where comparing each line with all before it took
     * seconds of a stalled loop on SIGHUP. The line breaks ties, so the
     * later of two twins comes second. */
    if (count > 1)
        qsort(users, (size_t)count, sizeof *users, compare_users);
    int dup_line = 0;
    const char *dup_name = NULL;
    for (int i = 1; i < count; i++)
        if (strcmp(users[i - 1].name, users[i].name) == 0 &&
            (!dup_name || users[i].line < dup_line)) {
            dup_line = users[i].line; /* the first repeat in file order */
            dup_name = users[i].name;
        }
    if (dup_name) {
        snprintf(err, err_len, "%s:%d: user '%s' appears twice", path, dup_line, dup_name);
        goto fail;
    }
    *out = users;
    *out_count = count;
    return 0;

oom:
    snprintf(err, err_len, "out of memory");
fail:
    if (f)
        fclose(f);
    free_users(users, count);
    return -1;
}

struct auth_users *auth_users_read(const char *path, char *err, size_t err_len)
{
    struct auth_users *u = malloc(sizeof *u);

    if (!u) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (load_users(path, &u->list, &u->count, err, err_len) != 0) {
        free(u);
        return NULL;
    }
    return u;
}

void auth_users_free(struct auth_users *u)
{
    if (!u)
        return;
    free_users(u->list, u->count);
    free(u);
}

int auth_users_count(const struct auth_users *u)
{
    return u ? u->count : 0;
}

const struct auth_user *auth_users_at(const struct auth_users *u, int i)
{
    return &u->list[i];
}

const struct auth_user *auth_users_find(const struct auth_users *u, const char *name)
{
    if (!u || u->count == 0)
        return NULL;
    return bsearch(name, u->list, (size_t)u->count, sizeof *u->list, compare_key);
}
