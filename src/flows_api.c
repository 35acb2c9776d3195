/*
 * flows_api.c - the flow viewer's routes on the admin listener (see
 * flows_api.h): one flow, bodies (decoded ones streamed a part at a
 * time), the event stream, replay, the store's size, clearing, and the
 * page itself.
 *
 * What it owns: the routes, the replays and decoded answers in flight.
 * What it doesn't: the HTTP server (admin.c), the list and the HAR export
 * over the whole store (flows_export.c), keeping flows (flows_store.c),
 * their JSON and HAR shapes (flows_view.c), the filter language
 * (flow_filter.c), undoing codings (body_decode.c).
 */
#include "flows_api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "admin.h"
#include "body_decode.h"
#include "config.h"
#include "flows_assets.h" /* generated from src/flows.html, .css, .js */
#include "flows_export.h"
#include "flows_store.h"
#include "flows_view.h"
#include "json_out.h"
#include "log.h"
#include "stats.h"
#include "tls.h"
#include "url.h"

/* A replay that has not produced its flow after this long answers 504. */
#define REPLAY_TIMEOUT 30.0
#define REPLAY_MAX 16

/* A replay in flight. Plain requests go straight to the proxy port; a
 * request from inside an intercepted tunnel takes the way its client took:
 * CONNECT, then TLS through the tunnel (unless its client spoke plain text
 * in it), then the request.
 *
 *   REPLAY_TUNNEL -> REPLAY_HANDSHAKE (https) -> REPLAY_SENDING
 *   REPLAY_SENDING -> REPLAY_DRAINING (the answer is in the new flow)
 */
enum replay_state { REPLAY_TUNNEL, REPLAY_HANDSHAKE, REPLAY_SENDING, REPLAY_DRAINING };

struct replay {
    struct flows_api *api;
    struct replay *next;
    uint64_t conn_id;  /* the admin request waiting for the answer */
    struct endpoint ep;
    enum replay_state state;
    ev_timer timer;
    struct buffer request; /* the request, held while the tunnel opens */
    int https;         /* the flow came from inside an intercepted tunnel */
    int tls;           /* ... in which its client spoke TLS (https://) */
    char host[256];    /* tls: the TLS server name */
    char client[80];   /* our end as the proxy sees it: "ip:port" */
};

struct flows_api {
    struct admin *admin;
    struct flows_store *store;
    struct sockaddr_storage proxy_addr;
    socklen_t proxy_addr_len;
    struct replay *replays;
    int replay_count;
};

static struct flow_info info; /* large; the loop is single-threaded */

/* ---- the store -------------------------------------------------------- */

static void on_clear(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    struct flows_api *api = arg;
    (void)r;
    flows_store_clear(api->store);
    admin_events_send(api->admin, "clear", "{}", 2);
    admin_reply(c, 200, "application/json", "{\"cleared\":true}\n", 17);
}

/* What the store holds against its limits. */
static void on_store(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    struct flows_api *api = arg;
    struct buffer b;
    (void)r;
    buffer_init(&b);
    /* Flows still in flight are the workers' (summed in the shared
     * counters); they may hold as much again as the store (flows.h). */
    int64_t in_flight = stats_total(STAT_FLOW_CAPTURE_BYTES);
    buffer_printf(&b, "{\"flows\":%zu,\"bytes\":%zu,\"max_flows\":%zu,\"max_bytes\":%zu,"
                      "\"dropped\":%llu,\"in_flight_bytes\":%lld,\"in_flight_max_bytes\":%zu}\n",
                  flows_store_count(api->store), flows_store_bytes(api->store),
                  flows_store_max_count(api->store), flows_store_max_bytes(api->store),
                  (unsigned long long)flows_store_dropped(api->store),
                  (long long)(in_flight > 0 ? in_flight : 0), flows_store_max_bytes(api->store));
    admin_reply_buffer(c, 200, "application/json", &b);
}

static void on_events(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    (void)r;
    (void)arg;
    admin_events_start(c);
}

/* ---- one flow ---------------------------------------------------------- */

/* The content coding of the head that described these body bytes. */
static void body_coding(const struct flow_info *fi, int response, int received,
                        const char **coding, size_t *len)
{
    enum flow_part head = response ? (received ? FLOW_PART_RES_IN : FLOW_PART_RES_OUT)
                                   : (received ? FLOW_PART_REQ_IN : FLOW_PART_REQ_OUT);
    flows_head_field(fi->part[head], fi->len[head], response, "Content-Encoding", coding, len);
}

/* ---- decoded bodies ----------------------------------------------------
 *
 * A kept body of up to 8 MiB may decode to a hundred times that. So its
 * decoded answer is made a part at a time as the client reads (see
 * admin_stream_start), from the stored record itself: an answer holds its
 * decoders' state and about a part, whatever the body's size, and one part
 * is a bounded piece of work on the loop, which with --workers 1 is the
 * proxy's own. A body that decodes within the first part is answered
 * whole, with its length, as before; an error found there is a 422.
 */

/* Decoded answers being streamed at once, at most. Each may hold up to a
 * decoder window (16 MiB for br, 8 MiB for zstd) besides its part: more
 * wait, with a 503. Counted in a static rather than in the API because a
 * stream may be freed after the API is (the admin goes last); the loop is
 * single-threaded. */
#define DECODED_STREAMS_MAX 8
static int decoded_streams;

struct decoded {
    struct flows_store *store;
    const struct stored_flow *sf; /* followed only while <seq> is stored */
    uint64_t seq;
    size_t at, len; /* the body: <len> bytes at sf->rec + <at> */
    struct body_decoder *bd;
};

static enum admin_stream_result decoded_produce(void *arg, struct buffer *out, size_t want)
{
    struct decoded *d = arg;
    char err[160];

    /* Dropped meanwhile (the store was full, or cleared): the rest cannot
     * be made, and the client sees an incomplete answer. */
    if (!flows_store_holds(d->store, d->seq))
        return ADMIN_STREAM_FAILED;
    switch (body_decoder_run(d->bd, d->sf->rec + d->at, d->len, out, want, err, sizeof err)) {
    case BODY_DECODE_MORE:
        return ADMIN_STREAM_MORE;
    case BODY_DECODE_DONE:
        return ADMIN_STREAM_DONE;
    case BODY_DECODE_FAILED:
        break;
    }
    return ADMIN_STREAM_FAILED;
}

static void decoded_free(void *arg)
{
    struct decoded *d = arg;
    body_decoder_free(d->bd);
    free(d);
    decoded_streams--;
}

static const struct admin_stream_ops decoded_ops = {decoded_produce, decoded_free};

/* Answers with <data> (<len> bytes of the record of <sf>) decoded from
 * <coding>. */
static void send_decoded(struct admin_conn *c, struct flows_store *st,
                         const struct stored_flow *sf, const char *data, size_t len,
                         const char *coding, size_t coding_len)
{
    char err[160];
    struct buffer first;
    struct decoded *d;
    struct body_decoder *bd = body_decoder_new(coding, coding_len, len, err, sizeof err);
    enum body_decode_result r;

    if (!bd) {
        admin_reply_error(c, 422, err);
        return;
    }
    buffer_init(&first);
    r = body_decoder_run(bd, data, len, &first, ADMIN_STREAM_PART, err, sizeof err);
    if (r != BODY_DECODE_MORE) {
        body_decoder_free(bd);
        if (r == BODY_DECODE_DONE) {
            admin_reply_buffer(c, 200, "application/octet-stream", &first);
        } else {
            buffer_free(&first);
            admin_reply_error(c, 422, err);
        }
        return;
    }
    d = decoded_streams < DECODED_STREAMS_MAX ? calloc(1, sizeof *d) : NULL;
    if (!d) {
        body_decoder_free(bd);
        buffer_free(&first);
        admin_reply_header(c, "Retry-After: 1");
        admin_reply_error(c, 503, "too many decoded bodies are being sent; try again shortly");
        return;
    }
    d->store = st;
    d->sf = sf;
    d->seq = sf->seq;
    d->at = (size_t)(data - sf->rec); /* len > 0 here: the body is in the record */
    d->len = len;
    d->bd = bd;
    decoded_streams++;
    admin_stream_start(c, 200, "application/octet-stream", &first, &decoded_ops, d);
}

static void send_body(struct admin_conn *c, const struct admin_request *r, struct flows_store *st,
                      const struct stored_flow *sf, const struct flow_info *fi, int response)
{
    char flag[8], as[16];
    int received = admin_query(r, "as", as, sizeof as) >= 0 && strcmp(as, "received") == 0;
    int decoded = admin_query(r, "decoded", flag, sizeof flag) >= 0 && strcmp(flag, "0") != 0;
    const char *data, *coding;
    size_t len, coding_len;

    if (response) {
        data = fi->res_body;
        len = fi->res_body_len;
        if (received && fi->has[FLOW_PART_RES_BODY_IN]) {
            data = fi->part[FLOW_PART_RES_BODY_IN];
            len = fi->len[FLOW_PART_RES_BODY_IN];
        }
    } else {
        data = fi->part[FLOW_PART_REQ_BODY];
        len = fi->len[FLOW_PART_REQ_BODY];
        if (received && fi->has[FLOW_PART_REQ_BODY_IN]) {
            data = fi->part[FLOW_PART_REQ_BODY_IN];
            len = fi->len[FLOW_PART_REQ_BODY_IN];
        }
    }
    /* Captured bytes are someone else's content: never let the browser
     * treat them as this origin's page. */
    admin_reply_header(c, "Content-Security-Policy: sandbox");
    body_coding(fi, response, received, &coding, &coding_len);
    if (!decoded || coding_len == 0) {
        admin_reply(c, 200, "application/octet-stream", data, len);
        return;
    }
    send_decoded(c, st, sf, data, len, coding, coding_len);
}

/* ---- replay ------------------------------------------------------------ */

/* Without the loop (a forked child, or the loop never ran): frees the
 * transport and closes the socket, touching no watcher. */
static void replay_drop_socket(struct replay *rp)
{
    rp->ep.ops->close(&rp->ep);
    rp->ep.tls = NULL;
    if (rp->ep.fd >= 0)
        close(rp->ep.fd);
    rp->ep.fd = -1;
    buffer_free(&rp->ep.in);
    buffer_free(&rp->ep.out);
}

static void replay_free(struct replay *rp)
{
    struct flows_api *api = rp->api;
    struct ev_loop *loop = admin_loop(api->admin);
    struct replay **pp = &api->replays;
    while (*pp != rp)
        pp = &(*pp)->next;
    *pp = rp->next;
    api->replay_count--;
    if (loop) {
        ev_timer_stop(loop, &rp->timer);
        endpoint_close(loop, &rp->ep);
    } else {
        replay_drop_socket(rp);
    }
    buffer_free(&rp->request);
    free(rp);
}

static void replay_answer(struct replay *rp, int status, const char *json)
{
    struct admin_conn *c = admin_find(rp->api->admin, rp->conn_id);
    if (c) {
        if (status == 200)
            admin_reply(c, 200, "application/json", json, strlen(json));
        else
            admin_reply_error(c, status, json);
    }
    replay_free(rp);
}

/* REPLAY_TUNNEL: the proxy's answer to our CONNECT. 1 when it is a 200
 * (then TLS starts), 0 while incomplete, -1 when refused. */
static int replay_tunnel_answer(struct replay *rp)
{
    const char *in = buffer_peek(&rp->ep.in);
    size_t len = buffer_length(&rp->ep.in);
    const char *end = memmem(in, len, "\r\n\r\n", 4);

    if (!end)
        return len > 16384 || rp->ep.read_eof ? -1 : 0;
    if (len < 12 || memcmp(in, "HTTP/1.", 7) != 0 || memcmp(in + 8, " 200", 4) != 0)
        return -1;
    /* Nothing may follow the head: the proxy waits for our ClientHello. */
    if ((size_t)(end + 4 - in) != len)
        return -1;
    buffer_consume(&rp->ep.in, len);
    return 1;
}

static void on_replay_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct replay *rp = w->data;
    enum endpoint_io r;
    (void)revents;

    if (rp->state == REPLAY_TUNNEL) {
        int answer;
        if (endpoint_flush(&rp->ep) == ENDPOINT_ERROR)
            return replay_answer(rp, 502, "the proxy could not be reached for the replay");
        if (endpoint_read(&rp->ep, ENDPOINT_IN_LIMIT) == ENDPOINT_ERROR)
            return replay_answer(rp, 502, "the proxy could not be reached for the replay");
        answer = replay_tunnel_answer(rp);
        if (answer < 0)
            return replay_answer(rp, 502, "the proxy refused the CONNECT of the replay");
        if (answer == 0) {
            endpoint_watch(loop, &rp->ep, buffer_length(&rp->ep.out) ? EV_READ | EV_WRITE : EV_READ);
            return;
        }
        if (!rp->tls) {
            /* A plain tunnel: the request goes in as it is. */
            buffer_swap(&rp->ep.out, &rp->request);
            rp->state = REPLAY_SENDING;
        } else if (tls_connect_loopback(&rp->ep, rp->host) != 0) {
            return replay_answer(rp, 502, "cannot start TLS for the replay");
        } else {
            rp->state = REPLAY_HANDSHAKE;
        }
    }
    if (rp->state == REPLAY_HANDSHAKE) {
        r = tls_handshake(&rp->ep);
        if (r == ENDPOINT_AGAIN) {
            /* the endpoint turns this into what the handshake needs */
            endpoint_watch(loop, &rp->ep, EV_READ);
            return;
        }
        if (r == ENDPOINT_ERROR)
            return replay_answer(rp, 502, "the TLS handshake of the replay failed");
        /* The request goes out only inside the finished TLS session. */
        buffer_swap(&rp->ep.out, &rp->request);
        rp->state = REPLAY_SENDING;
    }
    if (endpoint_flush(&rp->ep) == ENDPOINT_ERROR) {
        if (rp->state == REPLAY_SENDING)
            return replay_answer(rp, 502, "the proxy could not be reached for the replay");
    } else if (buffer_length(&rp->ep.out) == 0) {
        rp->state = REPLAY_DRAINING;
    }
    /* The response itself is in the new flow: read it away. */
    do
        r = endpoint_read(&rp->ep, ENDPOINT_IN_LIMIT);
    while (buffer_consume(&rp->ep.in, buffer_length(&rp->ep.in)), r == ENDPOINT_PROGRESS);
    if (rp->ep.read_eof || r == ENDPOINT_ERROR) {
        /* The flow may still be on its way from a worker: wait for it (or
         * the timeout) without the socket. */
        endpoint_close(loop, &rp->ep);
        return;
    }
    endpoint_watch(loop, &rp->ep, rp->state == REPLAY_SENDING ? EV_READ | EV_WRITE : EV_READ);
}

static void on_replay_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    replay_answer(w->data, 504, "the replayed request did not finish in time");
}

/* A new flow: is it one of our replays? Matched by the client address,
 * which is our socket's. */
static void on_flow_added(void *arg, const struct stored_flow *sf)
{
    struct flows_api *api = arg;
    const char *client;
    size_t client_len;
    struct buffer b;

    flow_record_find(sf->rec, FLOW_PART_CLIENT, &client, &client_len);
    for (struct replay *rp = api->replays; rp; rp = rp->next) {
        /* A tunnelled replay's CONNECT is a flow of the same client too:
         * the answer is the request inside it, the one with a URL part. */
        if (rp->https && flow_record_find(sf->rec, FLOW_PART_URL, &(const char *){NULL},
                                          &(size_t){0}) != 0)
            continue;
        if (strlen(rp->client) == client_len && memcmp(rp->client, client, client_len) == 0) {
            char json[64];
            snprintf(json, sizeof json, "{\"id\":%llu}\n", (unsigned long long)sf->id);
            replay_answer(rp, 200, json);
            break;
        }
    }
    if (!admin_events_listening(api->admin))
        return; /* nobody watches: no summary to make */
    buffer_init(&b);
    flow_info_load(&info, sf->rec);
    flows_json_summary(&b, &info);
    admin_events_send(api->admin, "flow", buffer_peek(&b), buffer_length(&b));
    buffer_free(&b);
}

/* A flow started: announced as "start" (its summary so far). */
static void on_flow_started(void *arg, const char *rec)
{
    struct flows_api *api = arg;
    struct buffer b;

    if (!admin_events_listening(api->admin))
        return;
    buffer_init(&b);
    flow_info_load(&info, rec);
    flows_json_summary(&b, &info);
    admin_events_send(api->admin, "start", buffer_peek(&b), buffer_length(&b));
    buffer_free(&b);
}

/*
 * Where a replay of <fi> must be sent from, to reach the proxy at an
 * address of <family>. A replay gets the limits of whoever sends it, and
 * the proxy serves a client on loopback what it refuses one on another
 * machine (a destination only this machine may reach). Sent from
 * loopback, the replay of such a client's request would go where the
 * client was refused. So it is sent from this machine's address on that
 * client's network (the one the kernel would answer the client from,
 * learnt by connecting a UDP socket, which sends nothing): the proxy
 * then sees a client that is not on loopback, checks it against --allow
 * and gives it the same limits, by its configuration of the moment.
 * 0 with no <src> to bind (a client on loopback), 1 with <src>, -1 when
 * no such address can be had (the replay is refused rather than sent
 * with more rights than its client had).
 */
static int replay_source(const struct flow_info *fi, int family, struct sockaddr_storage *src,
                         socklen_t *src_len)
{
    struct sockaddr_storage client;
    socklen_t client_len;
    char text[INET6_ADDRSTRLEN + 8];
    const char *colon;
    size_t len = fi->len[FLOW_PART_CLIENT];
    int fd, ok;

    /* "ip:port", an IPv6 address without brackets: the port is last */
    if (len == 0 || len >= sizeof text)
        return -1;
    memcpy(text, fi->part[FLOW_PART_CLIENT], len);
    text[len] = '\0';
    colon = strrchr(text, ':');
    if (!colon)
        return -1;
    text[colon - text] = '\0';
    memset(&client, 0, sizeof client);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&client;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&client;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
    } else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
            struct in_addr in;
            memcpy(&in, &v6->sin6_addr.s6_addr[12], sizeof in);
            memset(&client, 0, sizeof client);
            v4->sin_family = AF_INET;
            v4->sin_addr = in;
        } else {
            v6->sin6_family = AF_INET6;
        }
    } else {
        return -1;
    }
    if (acl_is_loopback((struct sockaddr *)&client))
        return 0;
    if (client.ss_family != family)
        return -1; /* this machine's address on its network would not reach the proxy */
    client_len = family == AF_INET ? sizeof *v4 : sizeof *v6;
    /* any port: a UDP connect only picks the route */
    if (family == AF_INET)
        v4->sin_port = htons(9);
    else
        v6->sin6_port = htons(9);
    fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    *src_len = sizeof *src;
    ok = connect(fd, (struct sockaddr *)&client, client_len) == 0 &&
         getsockname(fd, (struct sockaddr *)src, src_len) == 0 && src->ss_family == family &&
         !acl_is_loopback((struct sockaddr *)src);
    close(fd);
    if (!ok)
        return -1;
    if (family == AF_INET)
        ((struct sockaddr_in *)src)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)src)->sin6_port = 0;
    return 1;
}

static void start_replay(struct admin_conn *c, struct flows_api *api, const struct flow_info *fi)
{
    struct sockaddr_storage source;
    socklen_t source_len = 0;
    int from;
    struct sockaddr_storage local, target = api->proxy_addr;
    socklen_t local_len = sizeof local;
    const char *body;
    size_t body_len;
    struct replay *rp;
    struct url u;
    char ip[INET6_ADDRSTRLEN];
    int fd;

    if (api->proxy_addr_len == 0 || !fi->req_ok) {
        admin_reply_error(c, 409, "this flow cannot be replayed");
        return;
    }
    /* From inside an intercepted tunnel: the head holds a path only, the
     * URL part says where the tunnel went. */
    if (fi->has[FLOW_PART_URL] &&
        (url_parse_absolute(fi->part[FLOW_PART_URL], fi->len[FLOW_PART_URL], &u) != 0 ||
         u.host_len >= sizeof rp->host)) {
        admin_reply_error(c, 409, "this flow's URL cannot be replayed");
        return;
    }
    /* A tunnel's bytes went both ways after its head: sending the head
     * again would open a tunnel that nothing uses, whose flow ends only
     * once the proxy's idle timeout closes it, after the replay's own. */
    if (fi->h.flags & FLOW_F_TUNNEL) {
        admin_reply_error(c, 409, "a tunnel (CONNECT or an upgrade) cannot be replayed");
        return;
    }
    if (fi->h.flags & (FLOW_F_REQ_TRUNCATED | FLOW_F_REQ_IN_TRUNCATED)) {
        admin_reply_error(c, 409, "the request body was longer than --flow-body-max: "
                                  "it cannot be replayed");
        return;
    }
    if (api->replay_count >= REPLAY_MAX) {
        admin_reply_error(c, 503, "too many replays in flight");
        return;
    }
    /* A wildcard listener is reached on loopback. */
    if (target.ss_family == AF_INET &&
        ((struct sockaddr_in *)&target)->sin_addr.s_addr == htonl(INADDR_ANY))
        ((struct sockaddr_in *)&target)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (target.ss_family == AF_INET6 &&
        IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&target)->sin6_addr))
        ((struct sockaddr_in6 *)&target)->sin6_addr = in6addr_loopback;
    from = replay_source(fi, target.ss_family, &source, &source_len);
    if (from < 0) {
        admin_reply_error(c, 409, "this flow's client was on another machine, and the replay "
                                  "cannot be sent from this machine's address on its network: "
                                  "from loopback, it would not have that client's limits");
        return;
    }
    fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || (from == 1 && bind(fd, (struct sockaddr *)&source, source_len) != 0) ||
        (connect(fd, (struct sockaddr *)&target, api->proxy_addr_len) != 0 &&
         errno != EINPROGRESS) ||
        getsockname(fd, (struct sockaddr *)&local, &local_len) != 0) {
        if (fd >= 0)
            close(fd);
        admin_reply_error(c, 502, "the proxy could not be reached for the replay");
        return;
    }
    rp = calloc(1, sizeof *rp);
    if (!rp) {
        close(fd);
        admin_reply_error(c, 500, "out of memory");
        return;
    }
    rp->api = api;
    buffer_init(&rp->request);
    endpoint_init(&rp->ep, on_replay_io, rp);
    endpoint_open(&rp->ep, fd);
    if (local.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&local)->sin_addr, ip, sizeof ip);
        snprintf(rp->client, sizeof rp->client, "%s:%u", ip,
                 ntohs(((struct sockaddr_in *)&local)->sin_port));
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&local)->sin6_addr, ip, sizeof ip);
        snprintf(rp->client, sizeof rp->client, "%s:%u", ip,
                 ntohs(((struct sockaddr_in6 *)&local)->sin6_port));
    }
    /* The request as the client sent it, so the hooks see it afresh. */
    body = fi->has[FLOW_PART_REQ_BODY_IN] ? fi->part[FLOW_PART_REQ_BODY_IN]
                                          : fi->part[FLOW_PART_REQ_BODY];
    body_len = fi->has[FLOW_PART_REQ_BODY_IN] ? fi->len[FLOW_PART_REQ_BODY_IN]
                                              : fi->len[FLOW_PART_REQ_BODY];
    if (http_find_field(&fi->req, "Transfer-Encoding", 0) >= 0) {
        /* Re-frame a chunked body (the capture holds its payload). */
        static const char *const skip[] = {"Transfer-Encoding", "Content-Length"};
        const char *eol = memchr(fi->part[FLOW_PART_REQ_IN], '\n', fi->req_head_len);
        buffer_append(&rp->request, fi->part[FLOW_PART_REQ_IN],
                      eol ? (size_t)(eol + 1 - fi->part[FLOW_PART_REQ_IN]) : 0);
        for (size_t i = 0; i < fi->req.field_count; i++) {
            const struct http_field *f = &fi->req.fields[i];
            if (http_token_eq(f->name, f->name_len, skip[0]) ||
                http_token_eq(f->name, f->name_len, skip[1]))
                continue;
            buffer_printf(&rp->request, "%.*s: %.*s\r\n", (int)f->name_len, f->name,
                          (int)f->value_len, f->value);
        }
        buffer_printf(&rp->request, "Content-Length: %zu\r\n\r\n", body_len);
    } else {
        buffer_append(&rp->request, fi->part[FLOW_PART_REQ_IN], fi->req_head_len);
    }
    buffer_append(&rp->request, body, body_len);
    if (fi->has[FLOW_PART_URL]) {
        /* The way its client came: CONNECT first, the request inside TLS
         * (or in the clear, where its client spoke plain text). */
        const char *open = u.host_is_ipv6 ? "[" : "", *close_ = u.host_is_ipv6 ? "]" : "";
        rp->https = 1;
        rp->tls = http_token_eq(u.scheme, u.scheme_len, "https");
        memcpy(rp->host, u.host, u.host_len);
        rp->host[u.host_len] = '\0';
        buffer_printf(&rp->ep.out, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n\r\n", open,
                      rp->host, close_, u.port, open, rp->host, close_, u.port);
        rp->state = REPLAY_TUNNEL;
    } else {
        buffer_swap(&rp->ep.out, &rp->request);
        rp->state = REPLAY_SENDING;
    }
    rp->conn_id = admin_hold(c);
    rp->next = api->replays;
    api->replays = rp;
    api->replay_count++;
    endpoint_watch(admin_loop(api->admin), &rp->ep, EV_WRITE);
    ev_timer_init(&rp->timer, on_replay_timeout, REPLAY_TIMEOUT, 0.);
    rp->timer.data = rp;
    ev_timer_start(admin_loop(api->admin), &rp->timer);
}

/* /api/flows/ID[/request/body|/response/body|/replay] */
static void on_flow(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    struct flows_api *api = arg;
    const char *p = r->path + strlen("/api/flows/"), *end = r->path + r->path_len;
    unsigned long long id = 0;
    const struct stored_flow *sf;
    size_t rest_len;
    const char *rest;
    int post = http_token_eq(r->method, r->method_len, "POST");

    if (p >= end || *p < '0' || *p > '9') {
        admin_reply_error(c, 404, "no such flow");
        return;
    }
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (id > (UINT64_MAX - 9) / 10) {
            admin_reply_error(c, 404, "no such flow");
            return;
        }
        id = id * 10 + (unsigned)(*p - '0');
    }
    rest = p;
    rest_len = (size_t)(end - p);
    sf = flows_store_find(api->store, id);
    if (!sf) {
        admin_reply_error(c, 404, "no such flow (it may have been dropped)");
        return;
    }
    flow_info_load(&info, sf->rec);
#define IS(s) (rest_len == strlen(s) && memcmp(rest, s, rest_len) == 0)
    if (post) {
        if (IS("/replay"))
            start_replay(c, api, &info);
        else
            admin_reply_error(c, 404, "no such page");
        return;
    }
    if (IS("") || IS("/")) {
        struct buffer b;
        buffer_init(&b);
        flows_json_detail(&b, &info);
        buffer_append(&b, "\n", 1);
        admin_reply_buffer(c, 200, "application/json", &b);
    } else if (IS("/request/body")) {
        send_body(c, r, api->store, sf, &info, 0);
    } else if (IS("/response/body")) {
        send_body(c, r, api->store, sf, &info, 1);
    } else if (IS("/replay")) {
        admin_reply_header(c, "Allow: POST"); /* RFC 9110 15.5.6 */
        admin_reply_error(c, 405, "replay is a POST");
    } else {
        admin_reply_error(c, 404, "no such page");
    }
#undef IS
}

/* ---- HAR at stop ------------------------------------------------------ */

int flows_api_write_har(struct flows_api *api, const char *path)
{
    long entries = flows_export_har_file(api->store, path);
    if (entries < 0) {
        log_error("cannot write --har '%s': %s", path, strerror(errno));
        return -1;
    }
    log_info("wrote %ld flow(s) to %s", entries, path);
    return 0;
}

/* ---- the page ---------------------------------------------------------- */

static void on_page(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    (void)arg;
    if (r->path_len != 1) {
        admin_reply_error(c, 404, "no such page");
        return;
    }
    admin_reply(c, 200, "text/html; charset=utf-8", flows_html, sizeof flows_html - 1);
}

static void on_css(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    (void)r;
    (void)arg;
    admin_reply(c, 200, "text/css; charset=utf-8", flows_css, sizeof flows_css - 1);
}

static void on_js(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    (void)r;
    (void)arg;
    admin_reply(c, 200, "text/javascript; charset=utf-8", flows_js, sizeof flows_js - 1);
}

/* ---- setup ------------------------------------------------------------- */

struct flows_api *flows_api_new(struct admin *a, const struct config *cfg)
{
    struct flows_api *api;
    if (cfg->flows_max == 0)
        return NULL;
    api = calloc(1, sizeof *api);
    if (!api)
        return NULL;
    api->admin = a;
    api->store = flows_store_new(cfg);
    if (!api->store) {
        free(api);
        return NULL;
    }
    flows_store_listen(api->store, on_flow_added, api);
    flows_store_listen_start(api->store, on_flow_started, api);
    admin_route(a, "GET", "/", on_page, api, 0);
    admin_route(a, "GET", "/app.css", on_css, api, ADMIN_PUBLIC);
    admin_route(a, "GET", "/app.js", on_js, api, ADMIN_PUBLIC);
    admin_route(a, "GET", "/api/flows", flows_export_list, api->store, 0);
    admin_route(a, "DELETE", "/api/flows", on_clear, api, 0);
    admin_route(a, "GET", "/api/flows/", on_flow, api, ADMIN_PREFIX);
    admin_route(a, "POST", "/api/flows/", on_flow, api, ADMIN_PREFIX);
    admin_route(a, "GET", "/api/events", on_events, api, 0);
    admin_route(a, "GET", "/api/store", on_store, api, 0);
    admin_route(a, "GET", "/flows.har", flows_export_har, api->store, 0);
    return api;
}

struct flows_store *flows_api_store(struct flows_api *api)
{
    return api ? api->store : NULL;
}

void flows_api_set_proxy(struct flows_api *api, const struct sockaddr *addr, socklen_t len)
{
    if (!api || len > sizeof api->proxy_addr)
        return;
    memcpy(&api->proxy_addr, addr, len);
    api->proxy_addr_len = len;
}

void flows_api_free(struct flows_api *api)
{
    if (!api)
        return;
    while (api->replays)
        replay_free(api->replays);
    flows_store_free(api->store);
    free(api);
}

void flows_api_forget(struct flows_api *api)
{
    if (!api)
        return;
    while (api->replays) {
        struct replay *rp = api->replays;
        api->replays = rp->next;
        replay_drop_socket(rp);
        buffer_free(&rp->request);
        free(rp);
    }
    flows_store_forget(api->store);
    free(api);
}
