/*
 * flows.c - the recorder: gathers one exchange into a flow record (see
 * flows.h), and the channel that carries records from a worker to the
 * process serving the admin interface.
 *
 * What it owns: struct flow while an exchange runs, the body tap, the
 * WebSocket message parser of captured tunnels, and a worker's outgoing
 * channel buffer. What it doesn't: keeping flows (flows_store.c) or
 * showing them (flows_api.c).
 */
#include "flows.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buffer.h"
#include "config.h"
#include "http_parse.h"
#include "stats.h"

/* Unique parts (heads, client, error): the last recording wins. */
#define UNIQUE_PARTS (FLOW_PART_URL + 1)
/* Repeated parts per flow (hooks, log lines, WebSocket messages). */
#define MAX_ITEMS 1000
#define MAX_LOG_LINE 2048
/* A channel holds at most this much not yet read by the other side. */
#define CHANNEL_MAX ((size_t)32 << 20)
/* Records wait this long to go out together (fewer writes). */
#define CHANNEL_BATCH 0.02
/* How long a stopping worker may wait for the channel to take the rest. */
#define CHANNEL_FINAL_WAIT_MS 1000

enum { DIR_REQ, DIR_RES };

struct flow_tap {
    struct flow *fl;
    int dir;
    body_filter *inner;
    void *inner_arg;
};

struct flow_body {
    struct buffer kept;
    uint64_t seen;
    int cut; /* the captures' budget ran out: nothing more is kept, so
              * what is kept stays the body's first bytes, without a gap */
};

/* One direction of a WebSocket connection being parsed. */
struct ws_parser {
    unsigned char hdr[14];
    size_t hdr_len, hdr_need;
    uint64_t payload_left;
    unsigned char mask[4];
    int masked;
    uint64_t offset;     /* in the frame's payload, for unmasking */
    int control;         /* the frame is a control frame */
    uint8_t opcode;      /* of the message being gathered */
    uint8_t compressed;  /* ... and its first frame's RSV1 */
    uint64_t msg_len;
    struct buffer msg;   /* the kept part of the message */
    struct buffer ctl;   /* a control frame's payload */
    uint8_t ctl_opcode;
    int in_message;
    int failed;          /* not WebSocket after all: stop parsing */
};

struct flow {
    struct flows *f;
    struct flow_header h;
    struct buffer unique[UNIQUE_PARTS];
    struct buffer items; /* encoded repeated parts */
    int item_count;
    const char *last_script, *last_hook; /* the hook recorded last */
    size_t last_hook_at, last_hook_end;  /* its item's place in items */
    int last_changed;                    /* it has a change list */
    /* body[]: REQ_BODY, REQ_BODY_IN, RES_BODY_IN, RES_BODY */
    struct flow_body body[4];
    struct flow_tap tap[2];
    int skipped[2];        /* the relay went on without the tap */
    struct buffer scratch; /* what an inner filter produced */
    int ws_checked, ws;
    size_t ws_kept;
    struct ws_parser wsp[2];
    size_t held; /* bytes taken from the captures' budget (stats_capture_take) */
};

struct flows {
    size_t body_max;    /* copied: a reload may free the config */
    size_t capture_max; /* bytes all captures in flight may hold: --flows-memory */
    flows_sink *sink;
    void *sink_arg;
    /* channel (workers) */
    struct ev_loop *loop;
    int fd;
    ev_io io;
    ev_timer timer;
    struct buffer pending;
    uint64_t dropped;
    struct buffer start; /* scratch for start records */
};

static void channel_sink(void *arg, const char *rec, size_t len);
static void on_channel_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void on_channel_writable(struct ev_loop *loop, ev_io *w, int revents);

struct flows *flows_new(const struct config *cfg, flows_sink *sink, void *sink_arg)
{
    struct flows *f;
    if (!cfg->admin_enabled || cfg->flows_max == 0)
        return NULL;
    f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->body_max = cfg->flow_body_max;
    /* Flows in flight are the store's flows to come: together they may
     * hold as much as the store, and no more, since past that what they
     * kept would push one another out of the store as they end. */
    f->capture_max = cfg->flows_memory;
    f->sink = sink;
    f->sink_arg = sink_arg;
    f->fd = -1;
    buffer_init(&f->pending);
    buffer_init(&f->start);
    return f;
}

struct flows *flows_new_channel(const struct config *cfg, struct ev_loop *loop, int fd)
{
    struct flows *f = flows_new(cfg, channel_sink, NULL);
    if (!f) {
        close(fd);
        return NULL;
    }
    f->sink_arg = f;
    f->loop = loop;
    f->fd = fd;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    ev_io_init(&f->io, on_channel_writable, fd, EV_WRITE);
    f->io.data = f;
    ev_timer_init(&f->timer, on_channel_timer, CHANNEL_BATCH, 0.);
    f->timer.data = f;
    return f;
}

/* Writes what the socket takes. 0, or -1 when the other side is gone. */
static int channel_write(struct flows *f)
{
    while (buffer_length(&f->pending) > 0) {
        ssize_t n = write(f->fd, buffer_peek(&f->pending), buffer_length(&f->pending));
        if (n > 0) {
            buffer_consume(&f->pending, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            buffer_free(&f->pending);
            return -1;
        }
    }
    buffer_shrink(&f->pending);
    return 0;
}

static void channel_pump(struct flows *f)
{
    if (channel_write(f) != 0 || buffer_length(&f->pending) == 0)
        ev_io_stop(f->loop, &f->io);
    else
        ev_io_start(f->loop, &f->io);
}

static void on_channel_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    channel_pump(w->data);
}

static void on_channel_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    channel_pump(w->data);
}

/* A full channel drops the record: the relay never waits for the viewer. */
static void channel_sink(void *arg, const char *rec, size_t len)
{
    struct flows *f = arg;
    if (f->fd < 0 || buffer_length(&f->pending) + len > CHANNEL_MAX ||
        buffer_append(&f->pending, rec, len) != 0) {
        f->dropped++;
        return;
    }
    if (!ev_is_active(&f->timer) && !ev_is_active(&f->io))
        ev_timer_start(f->loop, &f->timer);
}

void flows_free(struct flows *f)
{
    if (!f)
        return;
    if (f->fd >= 0) {
        ev_timer_stop(f->loop, &f->timer);
        ev_io_stop(f->loop, &f->io);
        /* Stopping: give the reader a moment to take the last records. */
        for (int waited = 0; buffer_length(&f->pending) > 0 && waited < CHANNEL_FINAL_WAIT_MS;
             waited += 50) {
            struct pollfd pfd = {.fd = f->fd, .events = POLLOUT};
            if (channel_write(f) != 0)
                break;
            if (buffer_length(&f->pending) > 0)
                poll(&pfd, 1, 50);
        }
        close(f->fd);
    }
    buffer_free(&f->pending);
    buffer_free(&f->start);
    free(f);
}

/* ---- recording --------------------------------------------------------- */

static void put_part(struct buffer *out, enum flow_part part, const char *data, size_t len);

/* The event stream announces a flow as it starts: a short record with the
 * client and the request head, in the same scratch buffer every time. */
static void send_start(struct flow *fl)
{
    struct flows *f = fl->f;
    struct flow_header h = fl->h;
    const struct buffer *client = &fl->unique[FLOW_PART_CLIENT];
    const struct buffer *req = &fl->unique[FLOW_PART_REQ_IN];
    uint32_t total;

    buffer_consume(&f->start, buffer_length(&f->start));
    h.flags = FLOW_F_STARTED;
    buffer_append(&f->start, &h, sizeof h);
    put_part(&f->start, FLOW_PART_CLIENT, buffer_peek(client), buffer_length(client));
    put_part(&f->start, FLOW_PART_REQ_IN, buffer_peek(req), buffer_length(req));
    total = (uint32_t)buffer_length(&f->start);
    memcpy(f->start.data + f->start.start + offsetof(struct flow_header, len), &total, 4);
    f->sink(f->sink_arg, buffer_peek(&f->start), buffer_length(&f->start));
}

struct flow *flows_record_begin(struct flows *f, uint64_t id, double started,
                                const char *client_ip, int client_port, const char *head,
                                size_t head_len)
{
    struct flow *fl;
    if (!f)
        return NULL;
    fl = calloc(1, sizeof *fl);
    if (!fl)
        return NULL;
    fl->f = f;
    fl->h.magic = FLOW_MAGIC;
    fl->h.id = id;
    fl->h.started = started;
    buffer_printf(&fl->unique[FLOW_PART_CLIENT], "%s:%d", client_ip, client_port);
    buffer_append(&fl->unique[FLOW_PART_REQ_IN], head, head_len);
    send_start(fl);
    return fl;
}

void flows_record_part(struct flow *fl, enum flow_part part, const char *data, size_t len)
{
    if (!fl || (int)part >= UNIQUE_PARTS)
        return;
    buffer_consume(&fl->unique[part], buffer_length(&fl->unique[part]));
    buffer_append(&fl->unique[part], data, len);
}

void flows_record_appended(struct flow *fl, enum flow_part part, const char *buf_data,
                           size_t buf_len, size_t from)
{
    if (fl && buf_len >= from)
        flows_record_part(fl, part, buf_data + from, buf_len - from);
}

void flows_record_time(struct flow *fl, enum flow_mark mark, double t)
{
    if (fl && fl->h.marks[mark] == 0)
        fl->h.marks[mark] = t;
}

void flows_record_flag(struct flow *fl, unsigned flag)
{
    if (fl)
        fl->h.flags |= flag;
}

void flows_record_retry(struct flow *fl, double t)
{
    if (!fl)
        return;
    fl->h.flags &= ~FLOW_F_REUSED;
    fl->h.marks[FLOW_T_UPSTREAM] = t;
    fl->h.marks[FLOW_T_DNS] = fl->h.marks[FLOW_T_CONNECT] = 0;
    fl->h.marks[FLOW_T_TLS] = fl->h.marks[FLOW_T_SENT] = 0;
}

static void add_item3(struct flow *fl, enum flow_part part, const void *a, size_t alen,
                      const void *b, size_t blen, const void *c, size_t clen)
{
    uint32_t n = (uint32_t)(alen + blen + clen);
    unsigned char type = (unsigned char)part;
    if (fl->item_count >= MAX_ITEMS) {
        if (part == FLOW_PART_WS)
            fl->h.flags |= FLOW_F_WS_DROPPED;
        return;
    }
    fl->item_count++;
    buffer_append(&fl->items, &type, 1);
    buffer_append(&fl->items, &n, 4);
    buffer_append(&fl->items, a, alen);
    buffer_append(&fl->items, b, blen);
    buffer_append(&fl->items, c, clen);
}

static void add_item(struct flow *fl, enum flow_part part, const void *a, size_t alen,
                     const void *b, size_t blen)
{
    add_item3(fl, part, a, alen, b, blen, "", 0);
}

void flows_record_hook(struct flow *fl, const char *script, const char *hook,
                       const char *changes, size_t changes_len)
{
    if (!fl)
        return;
    /* A chunk hook runs once per piece: it is listed once, with what any
     * piece changed. The names are the hooks' own strings, alive while the
     * exchange is. */
    if (fl->last_script == script && fl->last_hook == hook) {
        size_t end = buffer_length(&fl->items);
        if (changes_len == 0 || fl->last_changed || fl->last_hook_end != end)
            return;
        /* Still the last item: its change list is added in place. */
        uint32_t n;
        if (changes_len > MAX_LOG_LINE)
            changes_len = MAX_LOG_LINE;
        char *tail = buffer_reserve(&fl->items, 1 + changes_len);
        if (!tail)
            return;
        tail[0] = '\0';
        memcpy(tail + 1, changes, changes_len);
        buffer_commit(&fl->items, 1 + changes_len);
        /* Found from the reserved tail: the reserve may have moved the
         * bytes, and the item ends where the tail begins. */
        char *item = tail - (end - fl->last_hook_at);
        memcpy(&n, item + 1, 4);
        n += (uint32_t)(1 + changes_len);
        memcpy(item + 1, &n, 4);
        fl->last_hook_end = buffer_length(&fl->items);
        fl->last_changed = 1;
        return;
    }
    fl->last_script = script;
    fl->last_hook = hook;
    fl->last_changed = changes_len > 0;
    fl->last_hook_at = buffer_length(&fl->items);
    if (changes_len == 0) {
        add_item(fl, FLOW_PART_HOOK, script, strlen(script) + 1, hook, strlen(hook));
    } else {
        /* "script\0hook\0changes", changes one per line */
        if (changes_len > MAX_LOG_LINE)
            changes_len = MAX_LOG_LINE;
        add_item3(fl, FLOW_PART_HOOK, script, strlen(script) + 1, hook, strlen(hook) + 1, changes,
                  changes_len);
    }
    /* SIZE_MAX: the item was not kept (the cap), nothing to add to later */
    fl->last_hook_end = buffer_length(&fl->items) != fl->last_hook_at ? buffer_length(&fl->items)
                                                                      : SIZE_MAX;
}

void flows_record_log(struct flow *fl, const char *script, const char *line, size_t len)
{
    if (fl)
        add_item(fl, FLOW_PART_LOG, script, strlen(script) + 1, line,
                 len < MAX_LOG_LINE ? len : MAX_LOG_LINE);
}

/* ---- bodies ------------------------------------------------------------ */

enum { BODY_REQ, BODY_REQ_IN, BODY_RES_IN, BODY_RES };

/* Takes up to <want> bytes of the captures' budget for <fl>: how many. */
static size_t take(struct flow *fl, size_t want)
{
    size_t got = want > 0 ? stats_capture_take(want, fl->f->capture_max) : 0;
    fl->held += got;
    return got;
}

static void give(struct flow *fl, size_t n)
{
    stats_capture_give(n);
    fl->held -= n;
}

/* Counts <len> more bytes of a body and keeps what both budgets allow:
 * the body's own (--flow-body-max) and what all captures in flight may
 * hold (one compare-and-swap per piece). A body cut short by the second
 * keeps nothing more, even once other flows have ended and made room. */
static void keep(struct flow *fl, int which, const char *data, size_t len)
{
    struct flow_body *b = &fl->body[which];
    size_t max = fl->f->body_max, have = buffer_length(&b->kept), want, got;
    b->seen += len;
    if (b->cut || have >= max || len == 0)
        return;
    want = len < max - have ? len : max - have;
    got = take(fl, want);
    if (got > 0 && buffer_append(&b->kept, data, got) != 0) {
        give(fl, got);
        got = 0;
    }
    if (got < want)
        b->cut = 1;
}

void flows_record_body(struct flow *fl, int response, int as_received, const char *data,
                       size_t len)
{
    if (fl)
        keep(fl, response ? (as_received ? BODY_RES_IN : BODY_RES) : (as_received ? BODY_REQ_IN : BODY_REQ),
             data, len);
}

static int tap_filter(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                      enum http_body_kind out_kind)
{
    struct flow_tap *t = arg;
    struct flow *fl = t->fl;
    int sent = t->dir == DIR_RES ? BODY_RES : BODY_REQ;

    if (!t->inner) {
        keep(fl, sent, data, len);
        return body_write_data(out, out_kind, data, len);
    }
    /* A script's filter: keep what it got and what it made. It writes
     * plain bytes into scratch; they are framed here. */
    keep(fl, t->dir == DIR_RES ? BODY_RES_IN : BODY_REQ_IN, data, len);
    buffer_consume(&fl->scratch, buffer_length(&fl->scratch));
    int rc = t->inner(t->inner_arg, data, len, eof, &fl->scratch, HTTP_BODY_LENGTH);
    if (rc != 0)
        return rc; /* 1: a chunk hook waits; flows_tap_resume finishes the piece */
    keep(fl, sent, buffer_peek(&fl->scratch), buffer_length(&fl->scratch));
    return body_write_data(out, out_kind, buffer_peek(&fl->scratch),
                           buffer_length(&fl->scratch));
}

int flows_tap_resume(struct flow *fl, int response, struct buffer *out,
                     enum http_body_kind out_kind)
{
    struct flow_tap *t;
    if (!fl)
        return 0;
    t = &fl->tap[response ? DIR_RES : DIR_REQ];
    if (t->fl != fl || !t->inner)
        return 0;
    keep(fl, response ? BODY_RES : BODY_REQ, buffer_peek(&fl->scratch),
         buffer_length(&fl->scratch));
    if (body_write_data(out, out_kind, buffer_peek(&fl->scratch), buffer_length(&fl->scratch)))
        return -1;
    buffer_consume(&fl->scratch, buffer_length(&fl->scratch));
    return 0;
}

void flows_tap(struct flow *fl, int response, body_filter **filter, void **arg)
{
    struct flow_tap *t;
    if (!fl)
        return;
    if (!*filter && !flows_wants_body(fl, response))
        return; /* kept all it may: leave the relay its fast path */
    fl->skipped[response ? DIR_RES : DIR_REQ] = 0;
    t = &fl->tap[response ? DIR_RES : DIR_REQ];
    t->fl = fl;
    t->dir = response ? DIR_RES : DIR_REQ;
    t->inner = *filter;
    t->inner_arg = *arg;
    *filter = tap_filter;
    *arg = t;
}

int flows_wants_body(struct flow *fl, int response)
{
    if (!fl)
        return 0;
    const struct flow_body *b = &fl->body[response ? BODY_RES : BODY_REQ];
    if (b->seen < fl->f->body_max && !b->cut)
        return 1;
    fl->skipped[response ? DIR_RES : DIR_REQ] = 1; /* what comes now is not kept */
    return 0;
}

/* ---- WebSocket messages ------------------------------------------------ */

static void ws_emit(struct flow *fl, int to_upstream, uint8_t opcode, int compressed,
                    uint64_t length, const struct buffer *payload, double t)
{
    struct flow_ws_header wh;
    memset(&wh, 0, sizeof wh);
    wh.t = t;
    wh.length = length;
    wh.to_upstream = (uint8_t)to_upstream;
    wh.opcode = opcode;
    wh.compressed = (uint8_t)compressed;
    wh.truncated = length > buffer_length(payload);
    add_item(fl, FLOW_PART_WS, &wh, sizeof wh, buffer_peek(payload), buffer_length(payload));
}

/* Keeps payload bytes of the current frame within the flow's budget, and
 * the captures' budget: once that refuses, the flow keeps no more (as if
 * its own budget were spent, so the relay may splice). */
static void ws_keep(struct flow *fl, struct ws_parser *p, struct buffer *into,
                    const unsigned char *data, size_t n)
{
    size_t max = fl->f->body_max, want, got;
    if (fl->ws_kept >= max || n == 0)
        return;
    want = n < max - fl->ws_kept ? n : max - fl->ws_kept;
    got = take(fl, want);
    if (got < want)
        fl->ws_kept = max - got; /* after these, the budget is spent */
    for (size_t i = 0; i < got; i++, fl->ws_kept++) {
        unsigned char ch = data[i];
        if (p->masked)
            ch ^= p->mask[(p->offset + i) & 3];
        buffer_append(into, &ch, 1);
    }
}

/* The bytes are not a WebSocket stream after all: parsing stops for good
 * (the relay goes on), and since later messages are now not listed, the
 * flow says so as for a spent budget. */
static void ws_give_up(struct flow *fl, struct ws_parser *p)
{
    p->failed = 1;
    fl->h.flags |= FLOW_F_WS_DROPPED;
}

static void ws_feed(struct flow *fl, int to_upstream, const unsigned char *data, size_t len,
                    double t)
{
    struct ws_parser *p = &fl->wsp[to_upstream ? 0 : 1];

    while (len > 0 && !p->failed) {
        if (p->payload_left == 0 && p->hdr_need == 0) {
            p->hdr_len = 0;
            p->hdr_need = 2;
        }
        if (p->hdr_need > 0) {
            while (len > 0 && p->hdr_len < p->hdr_need) {
                p->hdr[p->hdr_len++] = *data++;
                len--;
                if (p->hdr_len == 2) {
                    unsigned l7 = p->hdr[1] & 0x7f;
                    p->hdr_need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) +
                                  ((p->hdr[1] & 0x80) ? 4 : 0);
                }
            }
            if (p->hdr_len < p->hdr_need)
                return;
            unsigned l7 = p->hdr[1] & 0x7f;
            size_t at = 2;
            uint64_t plen = l7;
            if (l7 == 126) {
                plen = (uint64_t)p->hdr[2] << 8 | p->hdr[3];
                at = 4;
            } else if (l7 == 127) {
                /* RFC 6455 5.2: the top bit of a 64-bit length is 0. */
                if (p->hdr[2] & 0x80) {
                    ws_give_up(fl, p);
                    return;
                }
                plen = 0;
                for (int i = 0; i < 8; i++)
                    plen = plen << 8 | p->hdr[2 + i];
                at = 10;
            }
            p->masked = (p->hdr[1] & 0x80) != 0;
            if (p->masked)
                memcpy(p->mask, p->hdr + at, 4);
            uint8_t opcode = p->hdr[0] & 0x0f;
            int fin = (p->hdr[0] & 0x80) != 0;
            p->control = opcode >= 8;
            if (p->control) {
                p->ctl_opcode = opcode;
                buffer_consume(&p->ctl, buffer_length(&p->ctl));
            } else if (opcode != 0) {
                if (p->in_message) /* an unfinished message: keep what came */
                    ws_emit(fl, to_upstream, p->opcode, p->compressed, p->msg_len, &p->msg, t);
                buffer_consume(&p->msg, buffer_length(&p->msg));
                p->opcode = opcode;
                /* Only a message's first frame says it is compressed
                 * (RFC 7692 6); control frames never are. */
                p->compressed = (p->hdr[0] & 0x40) != 0;
                p->msg_len = 0;
                p->in_message = 1;
            } else if (!p->in_message) {
                ws_give_up(fl, p); /* a continuation of nothing */
                return;
            }
            p->hdr_need = 0;
            p->offset = 0;
            p->payload_left = plen;
            if (!p->control)
                p->msg_len += plen;
            /* Remember FIN in the header byte we still hold. */
            p->hdr[0] = (unsigned char)(fin ? 0x80 : 0);
            if (plen > 0)
                continue;
        } else {
            size_t n = len < p->payload_left ? len : (size_t)p->payload_left;
            ws_keep(fl, p, p->control ? &p->ctl : &p->msg, data, n);
            p->offset += n;
            p->payload_left -= n;
            data += n;
            len -= n;
            if (p->payload_left > 0)
                return;
        }
        /* A frame ended. */
        if (p->control) {
            ws_emit(fl, to_upstream, p->ctl_opcode, 0, buffer_length(&p->ctl), &p->ctl, t);
        } else if (p->hdr[0] & 0x80) {
            ws_emit(fl, to_upstream, p->opcode, p->compressed, p->msg_len, &p->msg, t);
            buffer_consume(&p->msg, buffer_length(&p->msg));
            p->in_message = 0;
        }
    }
}

/* Only an upgrade (its 101 recorded) to "Upgrade: websocket" carries
 * WebSocket frames; CONNECT tunnels are counted, not parsed. */
static int is_websocket(struct flow *fl)
{
    if (!fl->ws_checked) {
        struct http_head head;
        enum http_error err;
        const struct buffer *req = &fl->unique[FLOW_PART_REQ_IN];
        fl->ws_checked = 1;
        head.field_limit = HTTP_FIELDS_CAPACITY;
        fl->ws = buffer_length(&fl->unique[FLOW_PART_RES_IN]) > 0 &&
                 http_parse_request(buffer_peek(req), buffer_length(req), &head, &err) > 0 &&
                 http_has_token(&head, "Upgrade", "websocket");
        if (fl->ws)
            fl->h.flags |= FLOW_F_WEBSOCKET;
    }
    return fl->ws;
}

int flows_wants_tunnel(struct flow *fl)
{
    return fl && is_websocket(fl) && fl->ws_kept < fl->f->body_max &&
           fl->item_count < MAX_ITEMS && !fl->wsp[0].failed && !fl->wsp[1].failed;
}

void flows_record_unseen(struct flow *fl, size_t len)
{
    /* WebSocket bytes that went past the capture (spliced once the budget
     * was spent): the messages in them are not listed, and the flow says
     * so. */
    if (fl && len > 0 && is_websocket(fl))
        fl->h.flags |= FLOW_F_WS_DROPPED;
}

void flows_record_tunnel(struct flow *fl, int to_upstream, const char *data, size_t len,
                         double t)
{
    if (fl && len > 0 && is_websocket(fl))
        ws_feed(fl, to_upstream, (const unsigned char *)data, len, t);
}

/* ---- the end ----------------------------------------------------------- */

static void put_part(struct buffer *out, enum flow_part part, const char *data, size_t len)
{
    unsigned char type = (unsigned char)part;
    uint32_t n = (uint32_t)len;
    buffer_append(out, &type, 1);
    buffer_append(out, &n, 4);
    buffer_append(out, data, len);
}

/* Whether a body as received and as sent are the same as far as both were
 * kept: the captures' budget may have cut one shorter than the other. */
static int same_body(const struct flow_body *a, const struct flow_body *b)
{
    size_t la = buffer_length(&a->kept), lb = buffer_length(&b->kept);
    if (a->seen != b->seen || (la != lb && !a->cut && !b->cut))
        return 0;
    return memcmp(buffer_peek(&a->kept), buffer_peek(&b->kept), la < lb ? la : lb) == 0;
}

void flows_record_end(struct flow *fl, int status, uint64_t req_bytes, uint64_t res_bytes,
                      const char *error, double ended)
{
    struct buffer rec;
    static const enum flow_part body_part[4] = {FLOW_PART_REQ_BODY, FLOW_PART_REQ_BODY_IN,
                                                FLOW_PART_RES_BODY_IN, FLOW_PART_RES_BODY};

    if (!fl)
        return;
    fl->h.status = status;
    fl->h.ended = ended;
    fl->h.req_bytes = req_bytes;
    fl->h.res_bytes = res_bytes;
    if (error)
        flows_record_part(fl, FLOW_PART_ERROR, error, strlen(error));
    /* A body as received is kept only where a hook changed it. */
    for (int in = BODY_REQ_IN; in <= BODY_RES_IN; in++) {
        int sent = in == BODY_REQ_IN ? BODY_REQ : BODY_RES;
        if (fl->body[in].seen == 0 && buffer_length(&fl->body[in].kept) == 0)
            continue;
        if (same_body(&fl->body[in], &fl->body[sent])) {
            buffer_free(&fl->body[in].kept);
            fl->body[in].seen = 0;
        } else {
            fl->h.flags |= FLOW_F_BODY_CHANGED;
        }
    }
    /* Past the capture the tap is taken away only from a body no hook
     * filters (flows_wants_body): the rest went on as the client sent it,
     * so all of it is the client's count, not the bytes the tap saw. */
    fl->h.req_body_seen = fl->skipped[DIR_REQ] && req_bytes > fl->body[BODY_REQ].seen
                              ? req_bytes
                              : fl->body[BODY_REQ].seen;
    fl->h.res_body_seen = fl->body[BODY_RES].seen;
    if (fl->body[BODY_REQ].seen > buffer_length(&fl->body[BODY_REQ].kept) ||
        (fl->skipped[DIR_REQ] && req_bytes > buffer_length(&fl->body[BODY_REQ].kept)))
        fl->h.flags |= FLOW_F_REQ_TRUNCATED;
    if (fl->body[BODY_RES].seen > buffer_length(&fl->body[BODY_RES].kept) ||
        (fl->skipped[DIR_RES] && res_bytes > buffer_length(&fl->body[BODY_RES].kept)))
        fl->h.flags |= FLOW_F_RES_TRUNCATED;
    if (fl->body[BODY_REQ_IN].seen > buffer_length(&fl->body[BODY_REQ_IN].kept))
        fl->h.flags |= FLOW_F_REQ_IN_TRUNCATED;
    if (fl->body[BODY_RES_IN].seen > buffer_length(&fl->body[BODY_RES_IN].kept))
        fl->h.flags |= FLOW_F_RES_IN_TRUNCATED;
    for (int i = 0; i < 2; i++)
        if (fl->ws && fl->wsp[i].in_message && buffer_length(&fl->wsp[i].msg))
            ws_emit(fl, i == 0, fl->wsp[i].opcode, fl->wsp[i].compressed, fl->wsp[i].msg_len,
                    &fl->wsp[i].msg, ended);

    buffer_init(&rec);
    buffer_append(&rec, &fl->h, sizeof fl->h);
    for (int p = 0; p < UNIQUE_PARTS; p++)
        if (buffer_length(&fl->unique[p]) > 0)
            put_part(&rec, (enum flow_part)p, buffer_peek(&fl->unique[p]),
                     buffer_length(&fl->unique[p]));
    for (int b = 0; b < 4; b++)
        if (buffer_length(&fl->body[b].kept) > 0)
            put_part(&rec, body_part[b], buffer_peek(&fl->body[b].kept),
                     buffer_length(&fl->body[b].kept));
    buffer_append(&rec, buffer_peek(&fl->items), buffer_length(&fl->items));
    if (buffer_length(&rec) >= sizeof fl->h && buffer_length(&rec) <= FLOW_RECORD_MAX) {
        uint32_t total = (uint32_t)buffer_length(&rec);
        memcpy(rec.data + rec.start + offsetof(struct flow_header, len), &total, 4);
        fl->f->sink(fl->f->sink_arg, buffer_peek(&rec), buffer_length(&rec));
    }
    buffer_free(&rec);

    for (int p = 0; p < UNIQUE_PARTS; p++)
        buffer_free(&fl->unique[p]);
    for (int b = 0; b < 4; b++)
        buffer_free(&fl->body[b].kept);
    give(fl, fl->held);
    for (int i = 0; i < 2; i++) {
        buffer_free(&fl->wsp[i].msg);
        buffer_free(&fl->wsp[i].ctl);
    }
    buffer_free(&fl->items);
    buffer_free(&fl->scratch);
    free(fl);
}
