/*
 * session.h - one client connection, from accept to close.
 *
 * A session owns the client socket and, while an exchange is in flight, the
 * upstream socket; their buffers; one timer; and the state of the current
 * exchange (the request being forwarded and its response). Requests on a
 * kept-alive connection are handled one after another, so pipelined
 * responses go out in request order by construction.
 *
 * The states and every change allowed between them (state diagram begin)
 * accept -> head
 * head       -> hook        a valid head, and --auth-file credentials or request hooks to run
 *            -> resolving   a valid head for a host name: ask the resolver
 *            -> connecting  a valid head for an IP address: connect() under way
 *            -> exchange    a kept or pooled upstream connection; or answered, a body to drop
 *            -> tunnel      CONNECT, and connect() succeeded at once
 *            -> head        a refused head was answered; the connection is kept
 *            -> draining    the client closed, or a refusal ends the connection
 *            -> closed      idle timeout, its slot given to a new client, or a reset
 * hook       -> resolving   hooks done: ask the resolver
 *            -> connecting  hooks done: connect() under way
 *            -> exchange    hooks done: a kept or pooled connection; or answered, a body to drop
 *            -> tunnel      hooks done: CONNECT, connected at once
 *            -> head        a script answered (tx:respond) or failed; connection kept
 *            -> draining    a script answered or failed; connection not kept
 *            -> closed      the client reset, or left while a hook waited
 * resolving  -> connecting  the name resolved: connect() under way
 *            -> exchange    resolved and connected at once; or failed (502/504), a body to drop
 *            -> tunnel      resolved and connected at once (CONNECT)
 *            -> head        lookup failed or timed out (502/504); connection kept
 *            -> draining    lookup failed; connection not kept
 *            -> closed      the client reset
 * connecting -> connecting  that address failed: try the next one
 *            -> exchange    connected: the request head is written; or failed, a body to drop
 *            -> tunnel      connected: 200 to the CONNECT
 *            -> head        every address failed or timed out (502/504); kept
 *            -> draining    connect failed; connection not kept
 *            -> closed      the client reset
 * exchange   -> head        response complete (or an error answered); kept alive
 *            -> draining    response complete (or an error answered); not kept
 *            -> tunnel      101 Switching Protocols to an upgrade
 *            -> resolving   a reused connection was closed: retry, fresh (name)
 *            -> connecting  a reused connection was closed: retry, fresh
 *            -> exchange    retry, connected at once; or the upstream failed (502/504), a body to drop
 *            -> closed      the client went away, or a response cut short
 * tunnel     -> closed      both sides done, a reset, a write failed, or idle too long
 * draining   -> closed      last bytes out and the client closed or 2 s passed; or it stopped reading
 * closed: freed at the end of the event
 * (state diagram end: printed from session_transitions[] in
 * src/session_state.c; tests/unit/test_session_state.c keeps it equal)
 *
 * Every change goes through session_set_state(), called only from
 * session.c: the forwarding (exchange.c, upstream.c, response.c, tunnel.c,
 * https.c) reports what each step came to (enum exchange_step, exchange.h)
 * and session.c makes the change.
 */
#ifndef LUAPROXY_SESSION_H
#define LUAPROXY_SESSION_H

#include <ev.h>
#include <netinet/in.h> /* INET6_ADDRSTRLEN */
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth.h"
#include "body.h"
#include "dns.h"
#include "endpoint.h"
#include "flows.h"
#include "exchange.h"
#include "headers.h"
#include "hooks.h"
#include "http_parse.h"
#include "parent.h"
#include "proxy.h"
#include "session_idle.h"
#include "session_state.h"
#include "url.h"


enum response_state {
    RESPONSE_WAIT_HEAD, /* waiting for the upstream's response head */
    RESPONSE_HOOK,      /* on_response hooks running */
    RESPONSE_BODY,      /* relaying the body */
    RESPONSE_DONE,
};

/* How one direction of a tunnel moved its bytes, counted in tunnel.c as
 * they move (for --trace). */
struct tunnel_moves {
    uint64_t swapped, copied, spliced;
};

/* The longest reason phrase the proxy sends: an upstream's is cut there,
 * a script's may not be longer. (The longest registered one is 31.) */
#define EXCHANGE_REASON_MAX 127

/* One request and its response. Reset between requests. */
struct exchange {
    uint64_t id;
    ev_tstamp started;
    bool active;           /* a request head was accepted */
    bool looped_back;      /* refused as a loop into this proxy: its query is not shown */
    bool server_wide;      /* OPTIONS http://host (no path, no query): the server's own
                            * options, "OPTIONS *" to it (RFC 9112 3.2.4) */
    int minor;             /* the client's HTTP/1.<minor> */
    bool keep_alive;       /* the client connection survives this exchange */
    bool is_connect;
    bool is_upgrade;
    bool upstream_tls;     /* https: TLS to the upstream (settable in before_connect) */
    int intercept_choice;  /* tx:intercept() for a CONNECT: 0 patterns, 1 yes, 2 no */
    /* The request line, copied: method and target views point here. */
    char *line;
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    struct url url;
    /* What is forwarded: the client's method and path, or what a script
     * made of them (then fwd_line owns the copy). */
    char *fwd_line;
    const char *fwd_method;
    size_t fwd_method_len;
    const char *fwd_path;
    size_t fwd_path_len;
    char host[256];        /* NUL-terminated, for the resolver */
    uint16_t port;
    bool req_had_length;
    /* (The upstream connection's flags, here where they fill the space
     * before the next pointer: every idle client holds this struct.) */
    bool reused;           /* it came from the pool */
    bool no_pool;          /* a retry: take a fresh connection */
    bool upstream_reusable; /* the response left it fit for the pool */
    struct headers req_headers;
    struct http_framing req_framing;
    struct body_reader req_body;
    enum http_body_kind req_out_kind;
    bool req_body_done;
    bool req_filter;       /* the body goes through on_request_chunk */
    bool req_collect;      /* ... collected whole first (tx.req.buffer_body) */
    bool hooks_due;        /* SESSION_HOOK entered: the request hooks run next */
    uint64_t req_bytes;
    /* Upstream connection (and its flags above). */
    struct dns_query *dns;
    /* Where a new connection may go (the resolver's answer), allocated
     * only then: most exchanges reuse a connection, and every idle client
     * pays for what the session holds inline. */
    struct addr_list *addrs;
    int addr_next;
    int connect_errno;
    ev_tstamp connect_started;
    ev_tstamp attempt_started; /* the connect() to addrs->addr[addr_next - 1] */
    /* The parent proxy this exchange goes through (a copy: a reload may
     * change the configuration meanwhile), or NULL to go direct. */
    struct parent_proxy *parent;
    bool parent_tunnel;    /* CONNECT sent to the parent; awaiting its answer */
    bool parent_connected; /* the parent opened a tunnel for TLS to the origin */
    bool parent_auth_sent; /* what went to the parent carried credentials */
    /* (Here where it fills the space before the next pointer.) Bytes of
     * the request body read and dropped after an early answer, framing
     * included (exchange.c, discard_request_body): what bounds the wait. */
    uint32_t req_dropped;
    /* A Proxy-Authorization a script set (taken out of req_headers when
     * the request is read back), or NULL: it goes to a parent whose URL
     * has no credentials, never to an origin (upstream.c). */
    char *script_proxy_auth;
    /* Response. */
    enum response_state res_state;
    ev_tstamp res_head_started; /* first byte of the response head now being read */
    int interim_count;     /* 1xx responses relayed so far */
    int status;            /* what the client gets (a script may change it) */
    int upstream_status;   /* what the upstream answered */
    char res_reason[EXCHANGE_REASON_MAX + 1];
    bool res_reason_set;   /* a script chose the reason phrase */
    bool res_keep_length;  /* HEAD/304: Content-Length describes no body */
    /* (Request flags, here where they fill the space before the next
     * uint64_t.) The request was answered before its body was all read
     * (a script, a 502 or 504 before the upstream was reached, an
     * upstream's early answer): the rest of the body is read and dropped,
     * so the connection can carry the next request (exchange_discard_body,
     * exchange.c). */
    bool req_discard;
    /* The client's head had an Expect, whatever a script made of the
     * fields since: such a client may send its body or not after an
     * answer, so the body is never dropped to keep the connection. */
    bool req_expect;
    uint64_t res_kept_length; /* the upstream's value, when kept */
    /* The client gets no body (its HEAD, a 204 or 304) but the upstream
     * sends one: it is read by its own framing and dropped, so the upstream
     * connection is left at a message boundary. */
    bool res_discard;
    bool res_filter;       /* the body goes through on_response_chunk */
    /* The upstream's framing, judged by the method sent (fwd_method). */
    struct http_framing res_framing;
    uint64_t res_out_length; /* res_out_kind HTTP_BODY_LENGTH: the length */
    uint64_t res_discarded;  /* upstream body bytes dropped so far */
    uint64_t res_filtered_bytes; /* body bytes sent after the filter */
    struct headers res_headers;
    struct body_reader res_body;
    struct buffer res_batch; /* small chunks gathered for on_response_chunk
                              * (res_body.batch; empty between pump calls) */
    struct buffer req_batch; /* ... and for on_request_chunk (req_body.batch) */
    /* A TRACE or OPTIONS at Max-Forwards 0: the proxy's answer, made while
     * the head is there and sent once the client has proven who it is. */
    struct buffer *last_hop_answer;
    enum http_body_kind res_out_kind;
    bool response_started; /* bytes of this response are queued for the client */
    bool client_keep;      /* what the client's head asked: keep-alive or not */
    bool tunneled;         /* bytes moved as a tunnel (CONNECT, 101) */
    bool tunnel_counted;   /* counted in the open tunnels gauge */
    uint64_t res_bytes;    /* body bytes sent to the client */
    uint64_t res_spliced;  /* ... of which through a splice pipe */
    const char *no_keep_why; /* why keep_alive became 0 (exchange_no_keep) */
    const char *tunnel_closer; /* who closed a tunnel first, for --trace */
    struct tunnel_moves tunnel_up, tunnel_down; /* client -> upstream, and back */
    const char *error;     /* why it failed, for the log */
    struct flow *flow;     /* what the viewer captures (flows.h), or NULL */
    /* The authenticated proxy user (--auth-file), or NULL: allocated then,
     * since every idle client holds the rest of this struct. */
    char *user;
    struct auth_job *auth_job; /* credentials being checked (SESSION_HOOK) */
    /* --trace: a chunk hook that waits, for the line when it is done. */
    ev_tstamp chunk_started;
    uint64_t chunk_sent;
    /* What the last step asked of the session (exchange_report_at):
     * the state to move to, or the status to answer with, and why. */
    struct exchange_report next;
    /* A failure's cause formatted for this exchange (exchange_cause), or
     * NULL: allocated only then, since every idle client holds the rest. */
    char *cause;
    struct hook_state hook;
};

/* How a session tells its owner that it is gone, just before it is freed
 * (installed by session_start's caller, the proxy). */
typedef void session_gone_fn(struct proxy *p, struct session *s);

struct access_held;

/* What an intercepted tunnel's requests inherit from its CONNECT. */
struct session_tunnel {
    uint16_t port;
    char host[256];
    char user[128]; /* who the CONNECT authenticated as (--auth-file) */
    bool auth_on;            /* --auth-file was in force for the CONNECT */
    struct auth_stamp auth;  /* and what its check found in the file */
    /* The CONNECT's access-log line, held until the client's TLS
     * handshake ends (session_log.c), or NULL. */
    struct access_held *held_log;
};

struct session {
    uint64_t id;                  /* "c<id>" in the logs, unique across workers */
    struct proxy *proxy;
    struct session *prev, *next;  /* the proxy's list; the proxy links them */
    /* The worker's list of clients idle between requests, longest idle
     * first (session_idle.h); both NULL when not in it. */
    struct session_idle_link idle;
    session_gone_fn *on_gone;
    const struct exchange_events *events; /* entry points for DNS and hooks */
    struct endpoint client;
    struct endpoint upstream;
    ev_timer timer;
    /* Started when session_advance stops with work left (a burst of
     * pipelined requests or interim responses already buffered): no socket
     * event would come for bytes already read, so the next loop iteration
     * carries on. Also when a step yields (STEP_YIELD): work is left that
     * should not keep other clients waiting. */
    ev_idle resume;
    ev_tstamp accepted;      /* loop time at accept, for --trace and session_idle.c */
    ev_tstamp last_activity;
    ev_tstamp head_started;  /* first byte of the current head, 0 if none */
    ev_tstamp drain_started;
    bool client_done;        /* draining after the client asked to close: it sends no more */
    bool rearm_timer;        /* the deadline moved within the same state */
    /* Between requests the upstream connection of the last exchange stays
     * with the session (the next request usually goes to the same place);
     * it goes to the shared pool when the next request goes elsewhere or
     * the client leaves. */
    bool upstream_idle;
    bool upstream_idle_tls;  /* the kept connection speaks TLS (never pooled) */
    /* An intercepted tunnel: the client endpoint speaks TLS, and requests
     * inside take their authority from the CONNECT, kept in <tunnel>
     * (allocated apart: every idle client pays for what the session holds
     * inline, and few connections are tunnels). */
    bool intercepted;
    /* The client connected from this machine's loopback: it may reach
     * what only this machine can (see upstream_may_reach). */
    bool client_local;
    /* The kept upstream connection was let through only by
     * --allow-local-destinations (a client on another machine): a reload
     * may have taken the option away since, so its reuse is checked. */
    bool upstream_idle_lifted;
    /* (Here, with the other flags, where it fills a byte that would be
     * padding: every idle client holds this struct.) A step yielded: end
     * this slice now. */
    bool yielding;
    /* The answer being relayed ends where the connection does (an HTTP/1.0
     * client's close-delimited body), and it was cut short: the session
     * ends with a reset after the bytes that came, not with a FIN, which
     * the client would take for the body's end (endpoint_abort). */
    bool client_abort;
    /* The answer going out ends where the connection does (close-
     * delimited): closed before all of it is out, the connection is reset
     * too, or the client would take the part it got for the whole. */
    bool client_eof_delimits;
    enum session_state state;
    enum session_state armed_state; /* the state the timer was set for */
    int reject_status;       /* 403 (client not allowed) or 503 (full) */
    int exchanges;           /* completed exchanges on this connection */
    int client_port;
    char client_ip[INET6_ADDRSTRLEN]; /* the longest IPv6 text, with its NUL */
    /* The kept upstream connection's port: here, where it fills the space
     * after client_ip, and its host below. */
    uint16_t upstream_port;
    struct session_tunnel *tunnel;
    ev_tstamp upstream_idle_since; /* its last response ended */
    /* The credentials it was used with (parent_credentials_id): it serves
     * only a request that would send the same. */
    unsigned char upstream_creds[PARENT_CREDENTIALS_ID_LEN];
    char upstream_host[256];
    struct exchange x;
};

/* Takes over an accepted client socket. <reject_status> non-zero answers
 * the first request with it and closes. <on_gone> runs when the session
 * is freed. Returns the session, or NULL (out of memory: fd closed). */
struct session *session_start(struct proxy *p, int fd, const struct sockaddr *addr,
                              socklen_t addr_len, int reject_status, session_gone_fn *on_gone);

/* Asks an idle session to close now, and a busy one to close after the
 * exchange in flight (SIGTERM). */
void session_stop(struct session *s);

/* Closes <s>, a client idle waiting for a request (session_idle.h), now:
 * a new client at --max-connections takes its slot. Counted as reclaimed; an
 * intercepted client gets a close_notify first. From outside the
 * session's own events only; <s> is freed on return. */
void session_reclaim(struct session *s);

/* Ends the exchange in flight now, as a client reset would (on_done runs,
 * the access log says <why>), and frees the session. From outside the
 * session's own events only. */
void session_abort(struct session *s, const char *why);

/* Frees immediately (end of the drain bound). */
void session_free(struct session *s);

/* The only way s->state changes: checks <to> against session_transitions[]
 * (a change not in the table is a bug: logged, abort() in debug builds,
 * the session closed otherwise). <why> is for the logs; <file>:<func>,
 * the place that decided, for --trace. Called from session.c only: the
 * layers below report a change as an exchange step (exchange.h). */
void session_set_state_at(struct session *s, enum session_state to, const char *why,
                          const char *file, const char *func);
/* The caller's place goes into --trace's line for the change. */
#define session_set_state(s, to, why) session_set_state_at((s), (to), (why), __FILE__, __func__)

/* session_log.c: the access log line, counters and the -v or error line
 * of the exchange that just ended; and --trace's summary of how its body
 * moved and of the keep-alive decision (<keep>), as steps of <file>:<func>. */
void session_log_exchange(struct session *s);
/* The client's TLS handshake in an intercepted tunnel ended: writes the
 * CONNECT's access-log line held for it, with <error> (NULL: it
 * succeeded). Nothing when no line is held. */
void session_log_handshake_over(struct session *s, const char *error);
void session_trace_end(struct session *s, int keep, const char *file, const char *func);
#endif
