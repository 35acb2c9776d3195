/*
 * test_session_state.c - the session's transition table and its drawings.
 *
 * The state diagram in include/session.h and in README.md is printed from
 * session_transitions[]; this test fails when either copy differs from the
 * table (run `build/tests/test_session_state --print` for the current
 * text). It also checks the table itself: the changes the code is known to
 * make are in it, every state can be reached and left, and
 * session_set_state() follows it. Runs from the top of the repository.
 */
#include <stdlib.h>

#include "session.h"
#include "tap.h"

#define DIAGRAM_MAX 16384

/* Reads the lines between the line containing <begin> and the one
 * containing <end> in <path>, with <prefix> (if present) stripped from each
 * and the code fences of a Markdown block skipped. */
static int extract(const char *path, const char *begin, const char *end, const char *prefix,
                   char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    char line[512];
    size_t n = 0;
    int inside = 0, found = 0;

    if (!f)
        return -1;
    out[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        if (!inside) {
            inside = strstr(line, begin) != NULL;
            continue;
        }
        if (strstr(line, end)) {
            found = 1;
            break;
        }
        if (strncmp(line, "```", 3) == 0)
            continue;
        const char *p = line;
        size_t plen = strlen(prefix);
        if (strncmp(p, prefix, plen) == 0)
            p += plen;
        else if (strncmp(p, prefix, plen - 1) == 0 && p[plen - 1] == '\n')
            p += plen - 1; /* " *" alone on an empty comment line */
        size_t l = strlen(p);
        if (n + l + 1 > len)
            break;
        memcpy(out + n, p, l + 1);
        n += l;
    }
    fclose(f);
    return found ? 0 : -1;
}

static void check_copy(const char *path, const char *prefix, const char *want)
{
    static char got[DIAGRAM_MAX];
    int rc = extract(path, "state diagram begin", "state diagram end", prefix, got, sizeof got);
    ok(rc == 0, "%s has a state diagram between markers", path);
    if (!ok(rc == 0 && strcmp(got, want) == 0, "%s's diagram is the one the table draws", path))
        printf("# got:\n%s# want (build/tests/test_session_state --print):\n%s", got, want);
}

int main(int argc, char **argv)
{
    static char diagram[DIAGRAM_MAX];
    size_t len = session_state_diagram(diagram, sizeof diagram);
    (void)guarded_copy;

    if (argc > 1 && strcmp(argv[1], "--print") == 0) {
        fputs(diagram, stdout);
        return 0;
    }
    ok(len < sizeof diagram, "the diagram fits its buffer");
    check_copy("include/session.h", " * ", diagram);
    check_copy("README.md", "", diagram);

    /* The changes a reader could miss, each in the table. */
    static const struct {
        enum session_state from, to;
        const char *what;
    } known[] = {
        {SESSION_TUNNEL, SESSION_CLOSED, "a tunnel ends straight in closed"},
        {SESSION_HOOK, SESSION_HEAD, "a kept connection goes back to head after a local answer"},
        {SESSION_EXCHANGE, SESSION_CONNECTING, "a retry on a fresh connection"},
        {SESSION_EXCHANGE, SESSION_RESOLVING, "a retry that resolves again"},
        {SESSION_HEAD, SESSION_EXCHANGE, "a pooled connection skips resolving and connecting"},
        {SESSION_HOOK, SESSION_EXCHANGE, "... after the hooks too"},
        {SESSION_HEAD, SESSION_CLOSED, "idle timeout or reset"},
        {SESSION_CONNECTING, SESSION_CONNECTING, "the next address"},
        {SESSION_EXCHANGE, SESSION_TUNNEL, "101 to an upgrade"},
        {SESSION_DRAINING, SESSION_CLOSED, "the end of a drain"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        ok(session_transition_find(known[i].from, known[i].to) != NULL, "in the table: %s",
           known[i].what);
    ok(session_transition_find(SESSION_CLOSED, SESSION_HEAD) == NULL,
       "nothing leaves closed");
    ok(session_transition_find(SESSION_DRAINING, SESSION_HEAD) == NULL,
       "a draining connection never reads another request");

    /* Each state is reached (head by accept) and left (but closed). */
    for (int st = 0; st < SESSION_STATE_COUNT; st++) {
        int in = st == SESSION_HEAD, outs = 0, dup = 0;
        for (size_t i = 0; i < session_transition_count; i++) {
            const struct session_transition *t = &session_transitions[i];
            in |= (int)t->to == st && t->from != t->to;
            outs += (int)t->from == st;
            for (size_t j = 0; j < i; j++)
                dup |= (int)t->from == st && session_transitions[j].from == t->from &&
                       session_transitions[j].to == t->to;
            ok(t->why && t->why[0], "transition %zu says why", i);
        }
        ok(in, "%s can be reached", session_state_name((enum session_state)st));
        ok(st == SESSION_CLOSED ? outs == 0 : outs > 0, "%s %s", session_state_name((enum session_state)st),
           st == SESSION_CLOSED ? "is final" : "can be left");
        ok(!dup, "%s: no transition listed twice", session_state_name((enum session_state)st));
    }

    /* session_set_state follows the table. */
    struct session s;
    memset(&s, 0, sizeof s);
    s.state = SESSION_HEAD;
    session_set_state(&s, SESSION_HOOK, "test");
    is_int(s.state, SESSION_HOOK, "an allowed change happens");
    session_set_state(&s, SESSION_CLOSED, "test");
    session_set_state(&s, SESSION_CLOSED, "test");
    is_int(s.state, SESSION_CLOSED, "closing twice is harmless");
#ifndef LUAPROXY_DEBUG
    s.state = SESSION_DRAINING;
    session_set_state(&s, SESSION_HEAD, "test: not allowed");
    is_int(s.state, SESSION_CLOSED, "a change not in the table closes the session");
#endif
    return tap_done();
}
