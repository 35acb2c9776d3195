/*
 * auth.h - proxy authentication (Basic) against an htpasswd file.
 *
 * The file holds "user:hash" lines as htpasswd -B (bcrypt) writes them, or
 * with $6$/$5$ crypt hashes; the system's crypt library checks passwords.
 * A bcrypt check costs milliseconds, so it never runs on the event loop: a
 * small pool of threads does it and hands the result back through an
 * ev_async. A successful check is remembered for a while under a keyed
 * hash of the credentials (never the password itself), so a client's next
 * requests cost one HMAC. One client address has at most a few checks in
 * the pool at once (its further requests wait for its own earlier ones),
 * and clients that recently failed wait behind the others, so one
 * hammering wrong passwords cannot slow anyone down.
 */
#ifndef LUAPROXY_AUTH_H
#define LUAPROXY_AUTH_H

#include <ev.h>
#include <stddef.h>

struct auth;
struct auth_job;

#define AUTH_USER_MAX 128

enum auth_result {
    AUTH_OK,      /* <user> is filled in */
    AUTH_DENIED,  /* missing, malformed or wrong credentials: 407 */
    AUTH_PENDING, /* the pool checks them; <done> is called later */
    AUTH_BUSY,    /* too many checks waiting (from this client): 503 */
};

/* What an open tunnel keeps of the check its CONNECT passed, so that the
 * requests decrypted inside it, which carry no credentials, stop passing
 * once a reload removed the user or changed its password. */
struct auth_stamp {
    unsigned generation;         /* of the users file */
    unsigned char hash_id[32];   /* SHA-256 of the user's hash then */
    int valid;                   /* 0: the user was not in the file */
};

/* Called on the loop with the verdict of a pending check: AUTH_OK (with
 * <user>), AUTH_DENIED or AUTH_BUSY. */
typedef void auth_done_fn(void *arg, enum auth_result verdict, const char *user);

/* Reads <path> and, with a <loop>, starts the checking threads. NULL with
 * <err> ("FILE:LINE: ...") for a file that cannot be used. */
struct auth *auth_open(const char *path, struct ev_loop *loop, char *err, size_t err_len);
/* SIGHUP, in two steps so that a reload puts nothing in force unless all
 * of it can be: auth_users_read reads <path> (NULL with <err>, as
 * auth_open); auth_users_use then puts those users in force in <a>,
 * taking <u>, and forgets every remembered check. It cannot fail. A
 * reload that fails elsewhere gives <u> back with auth_users_free (safe
 * with NULL). */
struct auth_users;
struct auth_users *auth_users_read(const char *path, char *err, size_t err_len);
void auth_users_use(struct auth *a, struct auth_users *u);
void auth_users_free(struct auth_users *u);
/* Whether <user>, proven against the users in force in <old> (NULL: no
 * users were in force), still holds with <fresh>: it is there with the
 * same hash. A reload asks it of every open tunnel before it puts <fresh>
 * in force (reload.c). */
int auth_user_kept(const struct auth *old, const struct auth_users *fresh, const char *user);
/* Stops the threads (joining them) and frees. Safe with NULL. */
void auth_free(struct auth *a);

/* Checks a request's Proxy-Authorization for a client at <client_ip>:
 * <fields> is how many such fields the head carried and <value> the first
 * one's (NULL when none). No field is the usual first request, answered
 * 407 without counting a failure; two fields, a scheme other than Basic or
 * a malformed value count as failures like a wrong password. On
 * AUTH_PENDING, *<job> lets the caller cancel; <done>(<arg>, ...) runs
 * later from the loop, never before this returns. */
enum auth_result auth_check(struct auth *a, int fields, const char *value, size_t value_len,
                            const char *client_ip, char *user, size_t user_len,
                            auth_done_fn *done, void *arg, struct auth_job **job);
/* The key a client's checks and failures count under: its IPv4 address,
 * or for IPv6 the /64 around it ("2001:db8:1:2::/64"), since one client
 * may send from any address of its /64. An IPv4-mapped address counts as
 * the IPv4 one it is. */
#define AUTH_CLIENT_KEY_MAX 64
void auth_client_key(const char *client_ip, char *key, size_t key_len);

/* Stamps <user> as the users file has it now (out->valid 0 when it is
 * not there). */
void auth_stamp_user(const struct auth *a, const char *user, struct auth_stamp *out);

/* Whether the check <stamp> records for <user> still holds: the file was
 * not read again since, or it still has <user> with the same hash (the
 * stamp is then brought up to date, so later requests cost a compare). */
int auth_stamp_holds(const struct auth *a, const char *user, struct auth_stamp *stamp);

/* The owner of a pending check goes away: <done> will not be called. */
void auth_cancel(struct auth *a, struct auth_job *job);

#endif
