/*
 * fuzz_websocket.c - libFuzzer target for the capture of WebSocket
 * messages: the frame parser of flows.c, then the flow API's messages and
 * the HAR export, which decode permessage-deflate ones (ws_inflate.c).
 *
 * The input's first byte sets the capture's body budget; the rest is a
 * list of pieces, each a byte (bit 0: the direction, the others: the
 * length - 1) and up to that many bytes of an upgraded connection. The
 * pieces are captured twice: as they are, and joined into one piece per
 * run of one direction. Invariants:
 *   - the record is well formed and, while the capture took every piece
 *     (until its budget is spent, or the bytes stop being frames), the
 *     same both ways: how the bytes were cut up on the way changes nothing
 *     the capture keeps;
 *   - the flow's JSON and its HAR entry are valid JSON, in UTF-8, the HAR
 *     entry made whole in its steps.
 */
#include <stdint.h>
#include <stdlib.h>

#include "buffer.h"
#include "config.h"
#include "flow_record.h"
#include "flows.h"
#include "flows_har.h"
#include "flows_view.h"
#include "fuzz_util.h"
#include "json_out.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char REQ[] = "GET http://example.test/ws HTTP/1.1\r\nHost: example.test\r\n"
                          "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
static const char RES[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          "Upgrade: websocket\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";

static void keep(void *arg, const char *rec, size_t len)
{
    struct buffer *b = arg;
    buffer_consume(b, buffer_length(b));
    buffer_append(b, rec, len);
}

/* ---- a strict JSON syntax check ------------------------------------------ */

struct json_in {
    const char *p, *end;
    int depth;
};

static void skip_ws(struct json_in *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int value(struct json_in *j);

static int string(struct json_in *j)
{
    if (j->p >= j->end || *j->p != '"')
        return 0;
    for (j->p++; j->p < j->end; j->p++) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (++j->p >= j->end)
                return 0;
            if (*j->p == 'u') {
                for (int i = 0; i < 4; i++)
                    if (++j->p >= j->end || !strchr("0123456789abcdefABCDEF", *j->p))
                        return 0;
            } else if (!strchr("\"\\/bfnrt", *j->p)) {
                return 0;
            }
        }
    }
    return 0;
}

static int number(struct json_in *j)
{
    const char *start = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    while (j->p < j->end && strchr("0123456789.eE+-", *j->p))
        j->p++;
    return j->p > start && (j->p[-1] >= '0' && j->p[-1] <= '9');
}

static int literal(struct json_in *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

static int members(struct json_in *j, char close, int keyed)
{
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 1;
    }
    for (;;) {
        skip_ws(j);
        if (keyed) {
            if (!string(j))
                return 0;
            skip_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return 0;
        }
        if (!value(j))
            return 0;
        skip_ws(j);
        if (j->p >= j->end)
            return 0;
        if (*j->p == close) {
            j->p++;
            return 1;
        }
        if (*j->p++ != ',')
            return 0;
    }
}

static int value(struct json_in *j)
{
    int ok;
    skip_ws(j);
    if (j->p >= j->end || ++j->depth > 64)
        return 0;
    switch (*j->p) {
    case '{': ok = members(j, '}', 1); break;
    case '[': ok = members(j, ']', 0); break;
    case '"': ok = string(j); break;
    case 't': ok = literal(j, "true"); break;
    case 'f': ok = literal(j, "false"); break;
    case 'n': ok = literal(j, "null"); break;
    default: ok = number(j); break;
    }
    j->depth--;
    return ok;
}

static int json_ok(const struct buffer *b)
{
    struct json_in j = {buffer_peek(b), buffer_peek(b) + buffer_length(b), 0};
    if (!json_utf8_valid(buffer_peek(b), buffer_length(b)) || !value(&j))
        return 0;
    skip_ws(&j);
    return j.p == j.end;
}

/* ---- the runs ------------------------------------------------------------ */

/* One read of the relay: <len> bytes of <data> one way. 1 if the capture
 * still wanted them, 0 if they went past it (as the relay then splices). */
static int feed(struct flow *fl, int dir, const char *data, size_t len)
{
    char *piece = fuzz_dup(data, len); /* exactly its size: no over-read */
    int wanted = flows_wants_tunnel(fl);
    if (wanted)
        flows_record_tunnel(fl, dir == 0, piece, len, 2.0);
    else
        flows_record_unseen(fl, len);
    free(piece);
    return wanted;
}

/* Captures the pieces of <data>, joined per run of one direction when
 * <joined>; leaves the record in <rec>. 1 if the capture took every piece
 * (once it stops, what it kept depends on where the reads ended). */
static int capture(const struct config *cfg, const uint8_t *data, size_t size, int joined,
                   struct buffer *rec)
{
    struct flows *f = flows_new(cfg, keep, rec);
    struct flow *fl;
    struct buffer run;
    int run_dir = -1, took_all = 1;

    FUZZ_CHECK(f != NULL, "no recorder");
    fl = flows_record_begin(f, 1, 1.0, "127.0.0.1", 1, REQ, sizeof REQ - 1);
    flows_record_part(fl, FLOW_PART_REQ_OUT, REQ, sizeof REQ - 1);
    flows_record_part(fl, FLOW_PART_RES_IN, RES, sizeof RES - 1);
    flows_record_part(fl, FLOW_PART_RES_OUT, RES, sizeof RES - 1);
    buffer_init(&run);
    for (size_t i = 0; i < size;) {
        int dir = data[i] & 1;
        size_t n = (size_t)(data[i] >> 1) + 1;
        i++;
        if (n > size - i)
            n = size - i;
        if (!joined) {
            took_all &= feed(fl, dir, (const char *)data + i, n);
        } else {
            if (run_dir >= 0 && dir != run_dir) {
                took_all &= feed(fl, run_dir, buffer_peek(&run), buffer_length(&run));
                buffer_consume(&run, buffer_length(&run));
            }
            buffer_append(&run, (const char *)data + i, n);
            run_dir = dir;
        }
        i += n;
    }
    if (buffer_length(&run) > 0)
        took_all &= feed(fl, run_dir, buffer_peek(&run), buffer_length(&run));
    took_all &= flows_wants_tunnel(fl);
    buffer_free(&run);
    flows_record_end(fl, 101, 0, 0, NULL, 3.0);
    flows_free(f);
    return took_all;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    struct buffer as_cut, whole, out;
    static struct flow_info fi;

    if (size < 1)
        return 0;
    memset(&cfg, 0, sizeof cfg);
    cfg.admin_enabled = 1;
    cfg.flows_max = 1;
    cfg.flow_body_max = 8 + (size_t)data[0] * 16; /* 8 to 4088: cuts are common */
    cfg.flows_memory = 1 << 20;
    buffer_init(&as_cut);
    buffer_init(&whole);
    int took_all = capture(&cfg, data + 1, size - 1, 0, &as_cut);
    took_all &= capture(&cfg, data + 1, size - 1, 1, &whole);
    FUZZ_CHECK(buffer_length(&as_cut) > 0 &&
                   flow_record_check(buffer_peek(&as_cut), buffer_length(&as_cut)) == 0,
               "a record that does not check");
    FUZZ_CHECK(!took_all || (buffer_length(&as_cut) == buffer_length(&whole) &&
                   memcmp(buffer_peek(&as_cut), buffer_peek(&whole), buffer_length(&whole)) == 0),
               "the record depends on how the bytes were cut (%zu vs %zu bytes)",
               buffer_length(&as_cut), buffer_length(&whole));

    char *rec = fuzz_dup(buffer_peek(&as_cut), buffer_length(&as_cut));
    flow_info_load(&fi, rec);
    buffer_init(&out);
    flows_json_detail(&out, &fi);
    FUZZ_CHECK(json_ok(&out), "the flow's JSON is not valid: %.*s",
               (int)(buffer_length(&out) < 400 ? buffer_length(&out) : 400), buffer_peek(&out));
    buffer_consume(&out, buffer_length(&out));
    struct har_entry *e = har_entry_new(&fi);
    FUZZ_CHECK(e != NULL, "no HAR entry");
    enum har_step step;
    int steps = 0;
    while ((step = har_entry_step(e, &out)) == HAR_STEP_MORE)
        FUZZ_CHECK(++steps < 100000, "a HAR entry that never ends");
    har_entry_free(e);
    FUZZ_CHECK(step == HAR_STEP_DONE, "the HAR entry failed");
    FUZZ_CHECK(json_ok(&out), "the HAR entry is not valid JSON: %.*s",
               (int)(buffer_length(&out) < 400 ? buffer_length(&out) : 400), buffer_peek(&out));
    buffer_free(&out);
    free(rec);
    buffer_free(&as_cut);
    buffer_free(&whole);
    return 0;
}
