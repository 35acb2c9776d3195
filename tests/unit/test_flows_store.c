/*
 * test_flows_store.c - unit tests for flow records and the bounded store.
 *
 * A record made by the recorder reads back part by part; bodies are kept
 * up to the limit and marked truncated beyond it; the store never holds
 * more than its count or its bytes, dropping the oldest; and a malformed
 * record (as a broken channel could deliver) is refused, never trusted.
 * A cursor walks the flows stored when it began, skipping those dropped
 * while it waited and leaving out those added, both ways. Captures in
 * flight keep no more than --flows-memory together, and a body cut short
 * for that keeps nothing more, even once there is room again. A pinned
 * flow stays readable after it is dropped, until its last unpin.
 */
#include <stdlib.h>

#include "config.h"
#include "flow_record.h"
#include "flows.h"
#include "flows_store.h"
#include "flows_view.h"
#include "stats.h"
#include "tap.h"

static struct buffer last; /* the last record the sink got */

static void keep_last(void *arg, const char *rec, size_t len)
{
    (void)arg;
    buffer_consume(&last, buffer_length(&last));
    buffer_append(&last, rec, len);
}

static const char REQ[] = "POST http://example.test/up?x=1 HTTP/1.1\r\nHost: example.test\r\n"
                          "Content-Length: 10\r\n\r\n";
static const char RES[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n";

/* Records one exchange with a body of <body_len> bytes each way. */
static void record_one(struct flows *f, uint64_t id, size_t body_len)
{
    char *body = malloc(body_len + 1);
    struct buffer out;
    body_filter *filter = NULL;
    void *arg = NULL;

    memset(body, 'b', body_len);
    buffer_init(&out);
    struct flow *fl = flows_record_begin(f, id, 1000.0 + (double)id, "127.0.0.1", 4000,
                                         REQ, sizeof REQ - 1);
    flows_record_part(fl, FLOW_PART_REQ_OUT, REQ, sizeof REQ - 1);
    flows_record_time(fl, FLOW_T_CONNECT, 1000.5 + (double)id);
    flows_tap(fl, 0, &filter, &arg);
    if (filter)
        filter(arg, body, body_len, 1, &out, HTTP_BODY_LENGTH);
    flows_record_part(fl, FLOW_PART_RES_IN, RES, sizeof RES - 1);
    flows_record_part(fl, FLOW_PART_RES_OUT, RES, sizeof RES - 1);
    filter = NULL;
    arg = NULL;
    flows_tap(fl, 1, &filter, &arg);
    if (filter)
        filter(arg, body, body_len, 1, &out, HTTP_BODY_LENGTH);
    flows_record_hook(fl, "a.lua", "on_request", NULL, 0);
    flows_record_log(fl, "a.lua", "a line", 6);
    flows_record_end(fl, 200, body_len, body_len, NULL, 1001.0 + (double)id);
    is_int(buffer_length(&out), 2 * body_len, "the tap passes every byte on");
    buffer_free(&out);
    free(body);
}

int main(void)
{
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.admin_enabled = 1;
    cfg.flows_max = 3;
    cfg.flow_body_max = 100;
    cfg.flows_memory = 1 << 20;
    buffer_init(&last);

    ok(flows_record_begin(NULL, 1, 0, "x", 1, "", 0) == NULL, "no recorder: no flow");
    flows_record_end(NULL, 0, 0, 0, NULL, 0); /* a NULL flow is a no-op */

    struct flows *f = flows_new(&cfg, keep_last, NULL);
    ok(f != NULL, "a recorder");

    /* one record, read back */
    record_one(f, 7, 10);
    ok(flow_record_check(buffer_peek(&last), buffer_length(&last)) == 0, "the record is well formed");
    /* right before an unreadable page: the check reads nothing past it */
    ok(flow_record_check(guarded_copy(buffer_peek(&last), buffer_length(&last)),
                         buffer_length(&last)) == 0, "checked without over-reading");
    {
        static struct flow_info fi;
        flow_info_load(&fi, buffer_peek(&last));
        is_int(fi.h.id, 7, "id");
        is_int(fi.h.status, 200, "status");
        is_str(fi.method, fi.method_len, "POST", "method");
        is_str(fi.url, fi.url_len, "http://example.test/up?x=1", "url");
        is_str(fi.host, fi.host_len, "example.test", "host");
        is_int(fi.len[FLOW_PART_REQ_BODY], 10, "request body kept");
        is_int(fi.res_body_len, 10, "response body kept");
        ok(!(fi.h.flags & (FLOW_F_REQ_TRUNCATED | FLOW_F_RES_TRUNCATED)), "nothing truncated");
        ok(!fi.modified, "not modified");
        struct buffer j;
        buffer_init(&j);
        flows_json_detail(&j, &fi);
        buffer_append(&j, "", 1);
        ok(strstr(buffer_peek(&j), "\"hook\":\"on_request\"") != NULL, "the hook is listed");
        ok(strstr(buffer_peek(&j), "\"line\":\"a line\"") != NULL, "the log line is listed");
        buffer_free(&j);
    }

    /* bodies beyond the limit */
    record_one(f, 8, 250);
    {
        static struct flow_info fi;
        flow_info_load(&fi, buffer_peek(&last));
        is_int(fi.len[FLOW_PART_REQ_BODY], 100, "request body cut at the limit");
        is_int(fi.res_body_len, 100, "response body cut at the limit");
        ok(fi.h.flags & FLOW_F_REQ_TRUNCATED, "request marked truncated");
        ok(fi.h.flags & FLOW_F_RES_TRUNCATED, "response marked truncated");
        is_int(fi.h.res_body_seen, 250, "every byte counted");
    }

    /* the store: count cap, oldest first */
    struct flows_store *st = flows_store_new(&cfg);
    for (uint64_t id = 1; id <= 5; id++) {
        record_one(f, id, 10);
        ok(flows_store_add(st, buffer_peek(&last), buffer_length(&last)) == 0, "stored %d", (int)id);
    }
    is_int(flows_store_count(st), 3, "at most --flows kept");
    is_int(flows_store_first(st)->id, 3, "the oldest were dropped");
    ok(flows_store_find(st, 5) != NULL && flows_store_find(st, 2) == NULL, "find");
    size_t one = flows_store_bytes(st) / 3;

    /* the store: memory cap */
    cfg.flows_max = 1000;
    cfg.flows_memory = one * 2 + one / 2;
    struct flows_store *small = flows_store_new(&cfg);
    for (uint64_t id = 1; id <= 6; id++) {
        record_one(f, id, 10);
        flows_store_add(small, buffer_peek(&last), buffer_length(&last));
        ok(flows_store_bytes(small) <= cfg.flows_memory, "within the memory cap after %d", (int)id);
    }
    is_int(flows_store_count(small), 2, "two fit");
    is_int(flows_store_first(small)->id, 5, "the newest two");
    flows_store_clear(small);
    is_int(flows_store_bytes(small), 0, "cleared");

    /* malformed records are refused */
    {
        size_t len = buffer_length(&last);
        char *bad = malloc(len);
        memcpy(bad, buffer_peek(&last), len);
        ok(flows_store_add(small, bad, len - 1) != 0, "a short record");
        bad[0] ^= 1;
        ok(flows_store_add(small, bad, len) != 0, "a bad magic");
        bad[0] ^= 1;
        /* the first part claims more bytes than there are */
        uint32_t huge = 0xffffff00u;
        memcpy(bad + sizeof(struct flow_header) + 1, &huge, 4);
        ok(flows_store_add(small, bad, len) != 0, "a part longer than the record");
        bad[sizeof(struct flow_header)] = (char)FLOW_PART_COUNT;
        ok(flows_store_add(small, bad, len) != 0, "an unknown part");
        is_int(flows_store_count(small), 0, "nothing malformed was kept");
        is_int(flows_store_dropped(small), 4, "and each was counted");
        free(bad);
    }

    /* cursors: a walk that waits while flows come and go */
    {
        struct flows_store_cursor cur, back;
        const struct stored_flow *sf;
        /* st holds ids 3, 4, 5 (seqs 3, 4, 5) */
        ok(!flows_store_holds(st, 2) && flows_store_holds(st, 3) && flows_store_holds(st, 5) &&
               !flows_store_holds(st, 6),
           "holds: the seqs stored, and no others");
        flows_store_cursor_first(st, &cur);
        flows_store_cursor_last(st, &back);
        sf = flows_store_cursor_next(st, &cur);
        ok(sf && sf->id == 3, "forward: the oldest first");
        sf = flows_store_cursor_prev(st, &back);
        ok(sf && sf->id == 5, "backward: the newest first");
        /* two more: 3 and 4 are dropped, 6 and 7 are not part of the walks */
        for (uint64_t id = 6; id <= 7; id++) {
            record_one(f, id, 10);
            flows_store_add(st, buffer_peek(&last), buffer_length(&last));
        }
        sf = flows_store_cursor_next(st, &cur);
        ok(sf && sf->id == 5, "forward: past the dropped, on with the rest");
        ok(flows_store_cursor_next(st, &cur) == NULL, "forward: the flows added are not part of it");
        ok(flows_store_cursor_next(st, &cur) == NULL, "forward: and the end stays the end");
        ok(flows_store_cursor_prev(st, &back) == NULL, "backward: stops at the dropped");
        sf = flows_store_cursor_next(st, &back);
        ok(sf && sf->id == 5, "back and forth: the flow it went back over");
        ok(flows_store_cursor_next(st, &back) == NULL, "back and forth: then the end");
        /* a clear, then new flows: nothing of the walk is left */
        flows_store_cursor_first(st, &cur);
        flows_store_cursor_last(st, &back);
        flows_store_clear(st);
        ok(flows_store_cursor_next(st, &cur) == NULL, "cleared: nothing to walk");
        ok(!flows_store_holds(st, 7), "cleared: holds nothing");
        for (uint64_t id = 8; id <= 9; id++) {
            record_one(f, id, 10);
            flows_store_add(st, buffer_peek(&last), buffer_length(&last));
        }
        ok(flows_store_cursor_next(st, &cur) == NULL, "cleared, then refilled: still nothing");
        ok(flows_store_cursor_prev(st, &back) == NULL, "backward too");
        /* the whole store, each flow once, in order */
        int n = 0;
        uint64_t prev_seq = 0, ids = 0;
        flows_store_cursor_first(st, &cur);
        while ((sf = flows_store_cursor_next(st, &cur)) != NULL) {
            ok(sf->seq > prev_seq, "seq %d grows", (int)sf->seq);
            prev_seq = sf->seq;
            ids = ids * 10 + sf->id;
            n++;
        }
        is_int(n, 2, "each flow once");
        is_int(ids, 89, "oldest first");
        /* an empty store */
        flows_store_cursor_first(small, &cur);
        flows_store_cursor_last(small, &back);
        ok(flows_store_cursor_next(small, &cur) == NULL && flows_store_cursor_prev(small, &back) == NULL,
           "an empty store: nothing either way");
    }

    /* pins: a flow dropped while pinned stays readable, out of the
     * store's count and bytes, until it is unpinned; a pin may outlive
     * the store (run under ASan, a read after free or a leak fails) */
    {
        struct flows_store *ps;
        const struct stored_flow *pinned, *kept;
        char *copy;
        size_t len, bytes_before;

        cfg.flows_max = 2;
        ps = flows_store_new(&cfg);
        record_one(f, 20, 50);
        flows_store_add(ps, buffer_peek(&last), buffer_length(&last));
        pinned = flows_store_first(ps);
        len = pinned->len;
        copy = malloc(len);
        memcpy(copy, pinned->rec, len);
        flows_store_pin(pinned);
        flows_store_pin(pinned);
        bytes_before = flows_store_bytes(ps);
        for (uint64_t id = 21; id <= 22; id++) {
            record_one(f, id, 10);
            flows_store_add(ps, buffer_peek(&last), buffer_length(&last));
        }
        is_int(flows_store_first(ps)->id, 21, "pinned: dropped from the store all the same");
        is_int(flows_store_count(ps), 2, "pinned: out of the count");
        ok(flows_store_bytes(ps) < bytes_before + buffer_length(&last), "pinned: out of the bytes");
        ok(pinned->dropped && memcmp(pinned->rec, copy, len) == 0, "pinned: still readable");
        flows_store_unpin(pinned);
        ok(memcmp(pinned->rec, copy, len) == 0, "pinned twice: readable until the last unpin");
        flows_store_unpin(pinned); /* freed here */
        kept = flows_store_first(ps);
        flows_store_pin(kept);
        flows_store_unpin(kept);
        is_int(flows_store_count(ps), 2, "unpinned while stored: stays stored");
        flows_store_pin(kept);
        flows_store_free(ps);
        ok(kept->dropped && kept->id == 21, "a pin outlives the store");
        flows_store_unpin(kept);
        free(copy);
        cfg.flows_max = 1000;
    }

    /* captures in flight: 150 bytes for all of them, 100 per body */
    {
        struct buffer out;
        body_filter *fa = NULL, *fb = NULL;
        void *aa = NULL, *ab = NULL;
        char body[100];
        static struct flow_info fi;
        stats_init(1);
        cfg.flows_memory = 150;
        struct flows *g = flows_new(&cfg, keep_last, NULL);
        memset(body, 'c', sizeof body);
        buffer_init(&out);
        struct flow *a = flows_record_begin(g, 20, 1000, "127.0.0.1", 1, REQ, sizeof REQ - 1);
        struct flow *b = flows_record_begin(g, 21, 1000, "127.0.0.1", 2, REQ, sizeof REQ - 1);
        flows_tap(a, 1, &fa, &aa);
        flows_tap(b, 1, &fb, &ab);
        fa(aa, body, 100, 1, &out, HTTP_BODY_LENGTH);
        fb(ab, body, 30, 0, &out, HTTP_BODY_LENGTH);
        is_int(stats_total(STAT_FLOW_CAPTURE_BYTES), 130, "in flight: what both keep");
        fb(ab, body, 30, 0, &out, HTTP_BODY_LENGTH);
        is_int(stats_total(STAT_FLOW_CAPTURE_BYTES), 150, "in flight: no more than the cap");
        ok(!flows_wants_body(b, 1), "a body cut short wants no more (the relay may splice)");
        is_int(buffer_length(&out), 160, "the tap still passes every byte on");
        flows_record_end(a, 200, 0, 100, NULL, 1001);
        is_int(stats_total(STAT_FLOW_CAPTURE_BYTES), 50, "an ended flow's bytes are the store's");
        fb(ab, body, 40, 1, &out, HTTP_BODY_LENGTH);
        is_int(stats_total(STAT_FLOW_CAPTURE_BYTES), 50, "room again, and still nothing kept");
        flows_record_end(b, 200, 0, 100, NULL, 1001);
        flow_info_load(&fi, buffer_peek(&last));
        is_int(fi.res_body_len, 50, "the cut body: its first bytes");
        ok(fi.h.flags & FLOW_F_RES_TRUNCATED, "the cut body: marked truncated");
        is_int(fi.h.res_body_seen, 100, "the cut body: every byte counted");
        is_int(stats_total(STAT_FLOW_CAPTURE_BYTES), 0, "nothing in flight, nothing held");
        buffer_free(&out);
        flows_free(g);
        stats_free();
    }

    flows_store_free(st);
    flows_store_free(small);
    flows_free(f);
    buffer_free(&last);
    return tap_done();
}
