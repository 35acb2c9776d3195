/*
 * flows_export.c - the flow list and the HAR export (see flows_export.h).
 *
 * Both walk the whole store, which may hold a million flows or gigabytes
 * of bodies, on the admin's event loop, which in a single process is the
 * proxy's own. So neither is made in one go: an export is a small state
 * (a store cursor, the filter, where it is in the document) that admin.c
 * asks for a part at a time, each bounded in bytes (ADMIN_STREAM_PART)
 * and in time (EXPORT_SLICE), and only when the client has taken the part
 * before. The loop serves the relay between two parts, and an export
 * holds about one part in memory, whatever the store's size. The first
 * part is bounded by work counted in steps instead (EXPORT_FIRST_STEPS),
 * so whether an export is answered whole does not depend on how busy the
 * machine is. A HAR entry is itself written a step at a time
 * (flows_har.c), so a part may end inside one: its flow is pinned
 * (flows_store_pin) until it is written.
 *
 * What an export shows: the flows stored when it began, less those
 * dropped before it reached them; flows that end meanwhile are not in it
 * (see flows_store_cursor). An answer made whole in the first part is
 * sent with its Content-Length as before; a longer one is chunked.
 */
#include "flows_export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "flow_filter.h"
#include "flows_har.h"
#include "flows_store.h"
#include "flows_view.h"
#include "private_file.h"

/* The work one part may take, in CPU time. A relayed request waits for
 * at most this (plus one step of an entry, flows_har.h) behind each
 * export in progress. */
#define EXPORT_SLICE 0.002

/* The work the first part may take, in steps: a flow looked at, or one
 * step of an entry (flows_har.h: a head part, or a slice of a body). The
 * first part decides between an answer with its length and a stream, and
 * a stream is what HAR_STREAMS_MAX limits: counted in time, a small export
 * answered whole on an idle machine went out as a stream on a busy one
 * (or under a sanitizer), and could get a 503. Counted in steps it is
 * answered the same everywhere: a few small flows are whole. At worst
 * (each step decoding HAR_DECODE_PART) 32 steps are a few milliseconds of
 * work, once per export. */
#define EXPORT_FIRST_STEPS 32

/* HAR exports streamed at once, at most. Each may hold a decoder's window
 * (up to 16 MiB for br) and the flow it is writing, even once the store
 * has dropped it: more wait, with a 503. A static, not the store's, as an
 * export may be freed after the store (the admin goes last); the loop is
 * single-threaded. */
#define HAR_STREAMS_MAX 8
static int har_streams;

/* Matching a part gives up after this long. A part stops at EXPORT_SLICE
 * (the first at EXPORT_FIRST_STEPS) between flows, so only one flow that
 * is very costly to match (every search near PCRE2's step limit) comes
 * near it: the filter is at fault. */
#define FILTER_SECONDS 1.0
#define FILTER_GAVE_UP                                                                     \
    "the filter is too costly: a regular expression backtracks too much, or matching "   \
    "took over 1 s; make it simpler or more specific"

#define HAR_OPEN                                                                           \
    "{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"luaproxy\",\"version\":\""     \
    LUAPROXY_VERSION "\"},\"entries\":["
#define HAR_CLOSE "]}}\n"

enum export_kind { EXPORT_LIST, EXPORT_HAR };

/*   EXPORT_OPEN -> [EXPORT_BACK, with ?limit=] -> EXPORT_ITEMS -> done */
enum export_phase {
    EXPORT_OPEN,  /* the document's opening is next */
    EXPORT_BACK,  /* walking back from the newest flow to where the newest
                   * <limit> matches begin; nothing is written */
    EXPORT_ITEMS, /* one item per matching flow, oldest first */
};

struct export {
    enum export_kind kind;
    enum export_phase phase;
    struct flows_store *store;
    struct flows_store_cursor cur;
    struct flow_filter *filter; /* NULL: every flow */
    long limit;                 /* -1: none */
    long counted;               /* matches passed walking back */
    long items;                 /* written so far */
    int streamed;               /* counted in har_streams */
    struct flow_info info;      /* the flow being matched, or written */
    struct har_entry *entry;    /* HAR: the entry being written, or NULL */
    const struct stored_flow *pinned; /* its flow */
};

/* The loop thread's CPU time: a part is bounded by the work it does. On
 * the wall clock, a part the scheduler happened to pause in the middle
 * took longer, and a small export answered whole on an idle machine went
 * out as a stream on a busy one (where past HAR_STREAMS_MAX it got 503). */
static double work_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Loads <sf> into ex->info; whether it matches the export's filter. */
static int export_match(struct export *ex, const struct stored_flow *sf)
{
    struct flow_view v;
    flow_info_load(&ex->info, sf->rec);
    if (!ex->filter)
        return 1;
    flow_info_view(&ex->info, &v);
    return flow_filter_match(ex->filter, &v);
}

/* Starts the item of <sf> (loaded in ex->info): a summary is written
 * whole, a HAR entry by the steps that follow. -1 when out of memory. */
static int export_item(struct export *ex, const struct stored_flow *sf, struct buffer *out)
{
    if (ex->items++ > 0)
        buffer_append(out, ",\n", 2);
    if (ex->kind != EXPORT_HAR) {
        flows_json_summary(out, &ex->info);
        return 0;
    }
    ex->entry = har_entry_new(&ex->info);
    if (!ex->entry)
        return -1;
    flows_store_pin(sf);
    ex->pinned = sf;
    return 0;
}

static void export_entry_end(struct export *ex)
{
    har_entry_free(ex->entry);
    ex->entry = NULL;
    if (ex->pinned)
        flows_store_unpin(ex->pinned);
    ex->pinned = NULL;
}

/* How much work one part may do: the CPU time it may end by (0: none),
 * and the steps it has left (-1: no count). */
struct export_budget {
    double until;
    long steps;
};

/* Counts one step against <b>; whether the part must end there. */
static int budget_spent(struct export_budget *b)
{
    if (b->steps > 0 && --b->steps == 0)
        return 1;
    return b->until > 0 && work_now() >= b->until;
}

/* Appends about <want> bytes of the document to <out>, within <b> (and
 * one more step of an entry, or a summary). */
static enum admin_stream_result export_make(struct export *ex, struct buffer *out, size_t want,
                                            struct export_budget *b)
{
    const size_t start = buffer_length(out);
    const struct stored_flow *sf;

    if (ex->filter)
        flow_filter_limit_time(ex->filter, FILTER_SECONDS);
    if (ex->phase == EXPORT_OPEN) {
        buffer_append_str(out, ex->kind == EXPORT_HAR ? HAR_OPEN : "[");
        ex->phase = ex->limit >= 0 ? EXPORT_BACK : EXPORT_ITEMS;
    }
    while (ex->phase == EXPORT_BACK) {
        /* Walking back stops on the oldest of the newest <limit> matches,
         * or at the oldest flow: the cursor is then where the items
         * begin. */
        if (ex->counted >= ex->limit || !(sf = flows_store_cursor_prev(ex->store, &ex->cur))) {
            ex->phase = EXPORT_ITEMS;
            break;
        }
        ex->counted += export_match(ex, sf);
        if (ex->filter && flow_filter_gave_up(ex->filter))
            return ADMIN_STREAM_FAILED;
        if (budget_spent(b))
            return ADMIN_STREAM_MORE;
    }
    for (;;) {
        if (ex->entry) {
            enum har_step step = har_entry_step(ex->entry, out);
            if (step == HAR_STEP_FAILED)
                return ADMIN_STREAM_FAILED;
            if (step == HAR_STEP_DONE)
                export_entry_end(ex);
        } else {
            sf = flows_store_cursor_next(ex->store, &ex->cur);
            if (!sf) {
                buffer_append_str(out, ex->kind == EXPORT_HAR ? HAR_CLOSE : "]\n");
                return ADMIN_STREAM_DONE;
            }
            /* A head the proxy refused is no HTTP request for HAR. */
            if (export_match(ex, sf) && (ex->kind != EXPORT_HAR || ex->info.req_ok) &&
                export_item(ex, sf, out) != 0)
                return ADMIN_STREAM_FAILED;
            if (ex->filter && flow_filter_gave_up(ex->filter))
                return ADMIN_STREAM_FAILED;
        }
        if (budget_spent(b) || buffer_length(out) - start >= want)
            return ADMIN_STREAM_MORE;
    }
}

/* The producer (admin_stream_ops): a part in EXPORT_SLICE at most. */
static enum admin_stream_result export_produce(void *arg, struct buffer *out, size_t want)
{
    struct export_budget b = {work_now() + EXPORT_SLICE, -1};
    return export_make(arg, out, want, &b);
}

static void export_free(void *arg)
{
    struct export *ex = arg;
    /* The store may be gone already (the admin is freed last): only the
     * export's own things are released here (a pin needs no store). */
    export_entry_end(ex);
    flow_filter_free(ex->filter);
    if (ex->streamed)
        har_streams--;
    free(ex);
}

static const struct admin_stream_ops export_ops = {export_produce, export_free};

/* Compiles ?filter=; on a bad one answers 400 naming the problem. */
static int get_filter(struct admin_conn *c, const struct admin_request *r,
                      struct flow_filter **out)
{
    char expr[FLOW_FILTER_MAX_LEN + 1], err[200], msg[260];
    int n = admin_query(r, "filter", expr, sizeof expr);
    if (n == -2) {
        admin_reply_error(c, 400, "bad filter: too long or badly encoded");
        return -1;
    }
    *out = flow_filter_compile(n < 0 ? "" : expr, err, sizeof err);
    if (!*out) {
        snprintf(msg, sizeof msg, "bad filter: %s", err);
        admin_reply_error(c, 400, msg);
        return -1;
    }
    return 0;
}

/* Makes the first part here, in the request's handler: a filter that
 * gives up on it still gets its 400, and an export made whole within one
 * part's bytes and EXPORT_FIRST_STEPS is answered so, with its length. A
 * longer one goes on as a stream. Takes <ex>. <header> is an extra header
 * line for a 200, or NULL. */
static void export_answer(struct admin_conn *c, struct export *ex, const char *content_type,
                          const char *header)
{
    struct export_budget b = {0, EXPORT_FIRST_STEPS};
    struct buffer first;
    enum admin_stream_result r;

    buffer_init(&first);
    r = export_make(ex, &first, ADMIN_STREAM_PART, &b);
    if (r == ADMIN_STREAM_FAILED) {
        /* The filter gave up, or memory ran out for an entry. */
        int gave_up = ex->filter && flow_filter_gave_up(ex->filter);
        buffer_free(&first);
        export_free(ex);
        if (gave_up)
            admin_reply_error(c, 400, FILTER_GAVE_UP);
        else
            admin_reply_error(c, 500, "out of memory");
        return;
    }
    if (r == ADMIN_STREAM_MORE && ex->kind == EXPORT_HAR) {
        if (har_streams >= HAR_STREAMS_MAX) {
            buffer_free(&first);
            export_free(ex);
            admin_reply_header(c, "Retry-After: 1");
            admin_reply_error(c, 503, "too many HAR exports are being sent; try again shortly");
            return;
        }
        ex->streamed = 1;
        har_streams++;
    }
    if (header)
        admin_reply_header(c, header);
    if (r == ADMIN_STREAM_DONE) {
        export_free(ex);
        admin_reply_buffer(c, 200, content_type, &first);
        return;
    }
    admin_stream_start(c, 200, content_type, &first, &export_ops, ex);
}

static struct export *export_new(enum export_kind kind, struct flows_store *st,
                                 struct flow_filter *f, long limit)
{
    struct export *ex = calloc(1, sizeof *ex);
    if (!ex)
        return NULL;
    ex->kind = kind;
    ex->phase = EXPORT_OPEN;
    ex->store = st;
    ex->filter = f;
    ex->limit = limit;
    if (limit >= 0)
        flows_store_cursor_last(st, &ex->cur);
    else
        flows_store_cursor_first(st, &ex->cur);
    return ex;
}

void flows_export_list(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    struct flow_filter *f;
    struct export *ex;
    char num[24];
    long limit = -1;

    if (get_filter(c, r, &f) != 0)
        return;
    if (admin_query(r, "limit", num, sizeof num) >= 0) {
        char *end;
        limit = strtol(num, &end, 10);
        if (*end != '\0' || limit < 0 || num[0] == '\0') {
            flow_filter_free(f);
            admin_reply_error(c, 400, "limit must be a number");
            return;
        }
    }
    ex = export_new(EXPORT_LIST, arg, f, limit);
    if (!ex) {
        flow_filter_free(f);
        admin_reply_error(c, 500, "out of memory");
        return;
    }
    export_answer(c, ex, "application/json", NULL);
}

void flows_export_har(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    struct flow_filter *f;
    struct export *ex;

    if (get_filter(c, r, &f) != 0)
        return;
    ex = export_new(EXPORT_HAR, arg, f, -1);
    if (!ex) {
        flow_filter_free(f);
        admin_reply_error(c, 500, "out of memory");
        return;
    }
    export_answer(c, ex, "application/json",
                  "Content-Disposition: attachment; filename=\"flows.har\"");
}

/* The file for --har, emptied: made for its owner alone, like the TLS key
 * log (private_file.h). One another user owns is refused with EPERM. */
static FILE *open_har(const char *path)
{
    struct stat st;
    FILE *fp;
    int saved, fd = private_file_open(path, 0, &st);

    if (fd == PRIVATE_FILE_FOREIGN)
        errno = EPERM;
    if (fd < 0)
        return NULL;
    if ((S_ISREG(st.st_mode) && ftruncate(fd, 0) != 0) || !(fp = fdopen(fd, "w"))) {
        saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    return fp;
}

long flows_export_har_file(struct flows_store *st, const char *path)
{
    struct export *ex;
    struct buffer b;
    enum admin_stream_result r;
    FILE *fp;
    long items;
    int failed = 0, saved;

    /* The loop has stopped; parts only keep the memory bounded. */
    fp = open_har(path);
    if (!fp)
        return -1;
    ex = export_new(EXPORT_HAR, st, NULL, -1);
    if (!ex) {
        fclose(fp);
        errno = ENOMEM;
        return -1;
    }
    buffer_init(&b);
    do {
        r = export_produce(ex, &b, ADMIN_STREAM_PART);
        if (r == ADMIN_STREAM_FAILED) {
            failed = 1;
            errno = ENOMEM; /* the only way a HAR export without a filter fails */
        }
        if (fwrite(buffer_peek(&b), 1, buffer_length(&b), fp) != buffer_length(&b))
            failed = 1;
        buffer_consume(&b, buffer_length(&b));
    } while (r == ADMIN_STREAM_MORE && !failed);
    saved = errno;
    buffer_free(&b);
    items = ex->items;
    export_free(ex);
    if (fclose(fp) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    errno = saved;
    return failed ? -1 : items;
}
