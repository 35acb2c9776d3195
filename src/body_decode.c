/*
 * body_decode.c - a captured body decoded a part at a time, through the
 * streaming decoders of decode.c (see body_decode.h).
 *
 * Stacked codings make a pipeline: stage 0 undoes the coding applied last
 * and is fed the body; each later stage is fed what the one before made.
 * Work is pulled from the end: the last stage asks the stage before for
 * more input only when it has used up what it had, and that one makes a
 * bounded amount ahead (STAGE_PART), so between two calls the pipeline
 * holds at most that much per stage, plus the decoders' own state.
 *
 *   body --[stage 0: br]--> out0 --[stage 1: gzip]--> the caller's buffer
 */
#include "body_decode.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

/* Input offered to a decoder at once. */
#define FEED_MAX (64 * 1024)
/* What a stage before the last makes ahead for the next one. */
#define STAGE_PART (64 * 1024)

struct stage {
    enum decode_coding coding;
    struct decoder *dec;
    struct buffer out; /* made, not yet fed to the next stage (unused by the last) */
    int ended;         /* all its output is made */
};

struct body_decoder {
    int count; /* 0: the codings were all "identity": the body is copied */
    struct stage stage[BODY_DECODE_CODINGS];
    size_t at;   /* body bytes taken by stage 0 (or copied) */
    size_t work; /* bytes this call may still take in or make, all stages together */
};

struct body_decoder *body_decoder_new(const char *encoding, size_t enc_len, size_t len,
                                      char *err, size_t err_len)
{
    enum decode_coding codings[BODY_DECODE_CODINGS];
    const char *end = encoding + enc_len;
    int count = 0;
    struct body_decoder *bd;
    /* Any stage may make this much, so the last one too: a bomb that
     * several stacked codings multiply stops at the same point. */
    uint64_t max_output = (uint64_t)len * DECODE_MAX_RATIO + DECODE_RATIO_FLOOR;

    /* Codings were applied left to right, so they come off right to left. */
    while (end > encoding) {
        const char *start = end;
        while (start > encoding && start[-1] != ',')
            start--;
        size_t n = (size_t)(end - start);
        enum decode_coding c = decode_coding_parse(start, n);
        end = start > encoding ? start - 1 : encoding;
        if (c == DECODE_IDENTITY)
            continue;
        if (c == DECODE_UNKNOWN) {
            while (n > 0 && (*start == ' ' || *start == '\t'))
                start++, n--;
            while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\t'))
                n--;
            snprintf(err, err_len, "unknown content coding '%.*s'", (int)(n > 40 ? 40 : n),
                     start);
            return NULL;
        }
        if (count == BODY_DECODE_CODINGS) {
            snprintf(err, err_len, "more than %d content codings stacked", BODY_DECODE_CODINGS);
            return NULL;
        }
        codings[count++] = c;
    }
    bd = calloc(1, sizeof *bd);
    if (!bd)
        goto nomem;
    for (int k = 0; k < count; k++) {
        struct stage *s = &bd->stage[k];
        s->coding = codings[k];
        buffer_init(&s->out);
        s->dec = decoder_new(codings[k], max_output);
        bd->count = k + 1; /* so a failure frees what was made */
        if (!s->dec)
            goto nomem;
    }
    return bd;
nomem:
    body_decoder_free(bd);
    snprintf(err, err_len, "out of memory");
    return NULL;
}

void body_decoder_free(struct body_decoder *bd)
{
    if (!bd)
        return;
    for (int k = 0; k < bd->count; k++) {
        decoder_free(bd->stage[k].dec);
        buffer_free(&bd->stage[k].out);
    }
    free(bd);
}

/*
 * Runs stage <k> until it has appended about <budget> bytes to <dst>, the
 * call's work is spent, or it has ended. Returns 1 when it has ended (all
 * its output made), 0 when it should be run again, -1 on an error (the
 * decoder's result in *failed, the stage in *where).
 */
static int run_stage(struct body_decoder *bd, int k, const char *data, size_t len,
                     struct buffer *dst, size_t budget, enum decode_result *failed, int *where)
{
    struct stage *s = &bd->stage[k];
    struct stage *prev = k > 0 ? &bd->stage[k - 1] : NULL;
    size_t made = 0;

    while (!s->ended) {
        const char *in;
        size_t in_len, used, wrote, before;
        int eof;
        enum decode_result r;

        if (made >= budget || bd->work == 0)
            return 0;
        if (!prev) {
            in = data + bd->at;
            in_len = len - bd->at < FEED_MAX ? len - bd->at : FEED_MAX;
            eof = bd->at + in_len == len;
        } else {
            if (buffer_length(&prev->out) == 0 && !prev->ended) {
                if (run_stage(bd, k - 1, data, len, &prev->out, STAGE_PART, failed, where) < 0)
                    return -1;
                if (buffer_length(&prev->out) == 0 && !prev->ended)
                    return 0; /* the work was spent before it made any */
            }
            in = buffer_peek(&prev->out);
            in_len = buffer_length(&prev->out) < FEED_MAX ? buffer_length(&prev->out) : FEED_MAX;
            eof = prev->ended && in_len == buffer_length(&prev->out);
        }
        before = buffer_length(dst);
        r = decoder_feed_some(s->dec, in, in_len, eof, dst, budget - made, &used);
        wrote = buffer_length(dst) - before;
        if (prev)
            buffer_consume(&prev->out, used);
        else
            bd->at += used;
        made += wrote;
        bd->work = used + wrote < bd->work ? bd->work - used - wrote : 0;
        if (r == DECODE_OK && used == 0 && wrote == 0 && in_len > 0)
            r = DECODE_CORRUPT; /* it took nothing it was offered: it never will */
        switch (r) {
        case DECODE_CORRUPT:
        case DECODE_BOMB:
        case DECODE_NOMEM:
            *failed = r;
            *where = k;
            return -1;
        case DECODE_END:
            /* With <eof>, the end of the stream and of its input. Without,
             * a zstd frame may follow; other codings refuse what follows. */
            if (eof)
                s->ended = 1;
            break;
        case DECODE_OK:
        case DECODE_MORE:
            break;
        }
    }
    return 1;
}

enum body_decode_result body_decoder_run(struct body_decoder *bd, const char *data, size_t len,
                                         struct buffer *out, size_t want, char *err,
                                         size_t err_len)
{
    enum decode_result failed = DECODE_CORRUPT;
    int where = 0, rc;

    if (want == 0)
        want = 1;
    if (bd->count == 0) {
        size_t n = len - bd->at < want ? len - bd->at : want;
        if (buffer_append(out, data + bd->at, n) != 0) {
            snprintf(err, err_len, "out of memory");
            return BODY_DECODE_FAILED;
        }
        bd->at += n;
        return bd->at == len ? BODY_DECODE_DONE : BODY_DECODE_MORE;
    }
    /* Decoding costs about the same per byte in or out: a call does work
     * in proportion to what it was asked for, whatever the body holds
     * (zstd skippable frames, say, are all input and no output). */
    bd->work = 2 * (want + FEED_MAX);
    rc = run_stage(bd, bd->count - 1, data, len, out, want, &failed, &where);
    if (rc > 0)
        return BODY_DECODE_DONE;
    if (rc == 0)
        return BODY_DECODE_MORE;
    switch (failed) {
    case DECODE_CORRUPT:
        snprintf(err, err_len, "corrupt or truncated %s data%s",
                 decode_coding_name(bd->stage[where].coding),
                 bd->stage[where].coding == DECODE_ZSTD ? ", or a window over 8 MiB" : "");
        break;
    case DECODE_BOMB:
        snprintf(err, err_len, "the decoded body expands too much (over %d times its size)",
                 DECODE_MAX_RATIO);
        break;
    default:
        snprintf(err, err_len, "out of memory");
        break;
    }
    return BODY_DECODE_FAILED;
}
