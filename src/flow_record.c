/*
 * flow_record.c - reading flow records (see flow_record.h).
 */
#include "flow_record.h"

#include <string.h>

int flow_record_check(const char *rec, size_t len)
{
    struct flow_header h;
    size_t pos = sizeof h;

    if (len < sizeof h)
        return -1;
    memcpy(&h, rec, sizeof h);
    if (h.magic != FLOW_MAGIC || h.len != len)
        return -1;
    while (pos < len) {
        uint32_t n;
        if (len - pos < 5 || (unsigned char)rec[pos] >= FLOW_PART_COUNT)
            return -1;
        memcpy(&n, rec + pos + 1, 4);
        if (n > len - pos - 5)
            return -1;
        pos += 5 + n;
    }
    return 0;
}

void flow_record_header(const char *rec, struct flow_header *out)
{
    memcpy(out, rec, sizeof *out);
}

int flow_record_next(const char *rec, size_t *pos, enum flow_part *part, const char **data,
                     size_t *len)
{
    struct flow_header h;
    uint32_t n;

    memcpy(&h, rec, sizeof h);
    if (*pos == 0)
        *pos = sizeof h;
    if (*pos >= h.len)
        return 0;
    *part = (enum flow_part)(unsigned char)rec[*pos];
    memcpy(&n, rec + *pos + 1, 4);
    *data = rec + *pos + 5;
    *len = n;
    *pos += 5 + n;
    return 1;
}

int flow_record_find(const char *rec, enum flow_part part, const char **data, size_t *len)
{
    size_t pos = 0;
    enum flow_part p;

    while (flow_record_next(rec, &pos, &p, data, len))
        if (p == part)
            return 0;
    *data = "";
    *len = 0;
    return -1;
}
