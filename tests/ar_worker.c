/*
 * ar_worker.c - one ring member as a process, for the fault tests
 * (test_allreduce_faults.c). Not installed.
 *
 *   ar_worker --rank R --size N --epoch E --count C [--deadline-ms D]
 *             [--kill-at PHASE:STEP[:CHUNK]] [--stop-at PHASE:STEP[:CHUNK]]
 *             [--yield-us Y] [--warmup K]
 *
 * PHASE is rs (reduce-scatter) or ag (all-gather); CHUNK defaults to 0.
 * Conversation on stdin / stdout, one line each:
 *
 *   out: URL <url>                 this member's endpoint (tcp://127.0.0.1:PORT)
 *   in:  <url>  (N lines)          the ring of epoch E, in rank order
 *   out: OK <elapsed_ms> <pulled>  the all-reduce (f64 sum, out of place) was exact, and
 *                                  the bytes this member pulled on the ring; or
 *        FAIL <errname> <elapsed_ms> <detail>
 *   in:  EPOCH <e> <n>, then n lines "<url> <input rank>": the survivors,
 *        re-ranked; this member finds itself by its (unchanged) URL, re-forms
 *        on the same endpoint and retries from its untouched input
 *   out: OK <elapsed_ms> | FAIL ...
 *
 * End of input instead of a list ends the program. Exit status: 0 if the last
 * all-reduce succeeded with the exact sum, 1 if a result was wrong, 2 on any
 * other error. --kill-at raises SIGKILL and --stop-at SIGSTOP on this process
 * at that point inside the collective (through rli_allreduce_hook).
 * --warmup K runs K all-reduces on each ring before the one reported, with
 * the fault point not yet armed: from a ring's second collective on, its
 * large chunks are pulled from the neighbour's memory (lib/ring_pull.c), so
 * a fault then strikes a member whose memory is being read.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring_internal.h"
#include "ringleader/allreduce.h"
#include "ringleader/err.h"

#define WORKER_MAX_N 16
#define WORKER_LINE  512

static int g_yield_us; /* rl_ring_config.yield_us: 0 = the library's choice */
static int g_warmup;   /* all-reduces before the one reported, on each ring */

typedef struct fault_point {
    int armed;
    int phase, step;
    size_t chunk;
    int sig;
} fault_point;

static fault_point g_fault;

static void fault_hook(int phase, int step, size_t chunk)
{
    if (g_fault.armed && phase == g_fault.phase && step == g_fault.step && chunk == g_fault.chunk) {
        g_fault.armed = 0;
        raise(g_fault.sig);
    }
}

/* "rs:1" or "ag:0:2" -> fault point; 0 on success. */
static int parse_fault(const char *s, int sig, fault_point *f)
{
    char ph[3];
    int step = 0;
    unsigned long chunk = 0;
    int n = sscanf(s, "%2[a-z]:%d:%lu", ph, &step, &chunk);
    if (n < 2 || step < 0) return -1;
    if (strcmp(ph, "rs") == 0)
        f->phase = RLI_PHASE_REDUCE_SCATTER;
    else if (strcmp(ph, "ag") == 0)
        f->phase = RLI_PHASE_ALL_GATHER;
    else
        return -1;
    f->step = step;
    f->chunk = (size_t)chunk;
    f->sig = sig;
    f->armed = 1;
    return 0;
}

/* Element i of the input of the member whose original rank is r: small
 * integers, so that every order of summation is exact. */
static double input_value(int r, size_t i)
{
    return (double)((r + 1) * 1000 + (long)(i % 977));
}

static int read_line(char *buf, size_t cap)
{
    if (fgets(buf, (int)cap, stdin) == NULL) return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/*
 * Forms the ring (epoch, rank, n, urls) on ep and runs one all-reduce of in
 * into out; prints OK or FAIL. Returns 0 (exact), 1 (wrong result) or 2.
 */
static int run_once(rl_endpoint *ep, uint64_t epoch, int rank, int n, char urls[][WORKER_LINE],
                    const int *input_ranks, const double *in, double *out, size_t count,
                    uint64_t deadline_ms)
{
    rl_ring_member mem[WORKER_MAX_N];
    char ids[WORKER_MAX_N][16];
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof(ids[i]), "w%d", input_ranks[i]);
        mem[i].id = ids[i];
        mem[i].url = urls[i];
    }
    /* The ring algorithm: the fault points name its phases. */
    rl_ring_config cfg = {.epoch = epoch, .rank = rank, .size = n, .members = mem,
                          .algorithm = RL_ALLREDUCE_RING, .yield_us = g_yield_us};
    rl_ring *ring = NULL;
    int rv = rl_ring_form(ep, &cfg, rl_clock_ms() + 10000, &ring);
    if (rv != RL_OK) {
        printf("FAIL %s 0 form: %s\n", rl_errname(rv), rl_errdetail());
        fflush(stdout);
        return 2;
    }
    int armed = g_fault.armed;
    g_fault.armed = 0;
    for (int k = 0; k < g_warmup && rv == RL_OK; k++)
        rv = rl_allreduce(ring, in, out, count, RL_F64, RL_OP_SUM, rl_clock_ms() + deadline_ms);
    g_fault.armed = armed;
    if (rv != RL_OK) {
        printf("FAIL %s 0 warm-up: %s\n", rl_errname(rv), rl_errdetail());
        fflush(stdout);
        rl_ring_free(ring);
        return 2;
    }
    uint64_t t0 = rl_clock_ms();
    rv = rl_allreduce(ring, in, out, count, RL_F64, RL_OP_SUM, t0 + deadline_ms);
    uint64_t elapsed = rl_clock_ms() - t0;
    int status = 0;
    if (rv != RL_OK) {
        printf("FAIL %s %llu %s\n", rl_errname(rv), (unsigned long long)elapsed, rl_errdetail());
        status = 2;
    } else {
        for (size_t i = 0; i < count && status == 0; i++) {
            double want = 0;
            for (int k = 0; k < n; k++)
                want += input_value(input_ranks[k], i);
            if (out[i] != want) {
                fprintf(stderr, "ar_worker %s: element %zu is %.17g, want %.17g\n", ids[rank], i,
                        out[i], want);
                status = 1;
            }
        }
        rl_ring_stats st;
        rl_ring_get_stats(ring, &st);
        if (status == 0)
            printf("OK %llu %llu\n", (unsigned long long)elapsed,
                   (unsigned long long)st.bytes_pulled);
        else
            printf("FAIL WRONG_RESULT %llu element mismatch\n", (unsigned long long)elapsed);
    }
    fflush(stdout);
    rl_ring_free(ring);
    return status;
}

static void usage(void)
{
    fprintf(stderr, "usage: ar_worker --rank R --size N --epoch E --count C [--deadline-ms D]\n"
                    "                 [--kill-at rs|ag:STEP[:CHUNK]] [--stop-at "
                    "rs|ag:STEP[:CHUNK]] [--yield-us Y] [--warmup K]\n");
}

int main(int argc, char **argv)
{
    int rank = -1, n = 0;
    uint64_t epoch = 0, deadline_ms = 5000;
    size_t count = 0;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
            return 2;
        }
        int bad = 0;
        if (strcmp(argv[i], "--rank") == 0)
            rank = atoi(v);
        else if (strcmp(argv[i], "--size") == 0)
            n = atoi(v);
        else if (strcmp(argv[i], "--epoch") == 0)
            epoch = strtoull(v, NULL, 10);
        else if (strcmp(argv[i], "--count") == 0)
            count = strtoull(v, NULL, 10);
        else if (strcmp(argv[i], "--deadline-ms") == 0)
            deadline_ms = strtoull(v, NULL, 10);
        else if (strcmp(argv[i], "--kill-at") == 0)
            bad = parse_fault(v, SIGKILL, &g_fault);
        else if (strcmp(argv[i], "--stop-at") == 0)
            bad = parse_fault(v, SIGSTOP, &g_fault);
        else if (strcmp(argv[i], "--yield-us") == 0)
            g_yield_us = atoi(v);
        else if (strcmp(argv[i], "--warmup") == 0)
            g_warmup = atoi(v);
        else
            bad = 1;
        if (bad) {
            usage();
            return 2;
        }
    }
    if (n < 1 || n > WORKER_MAX_N || rank < 0 || rank >= n || epoch == 0) {
        usage();
        return 2;
    }
    /* A backstop: a worker whose harness lost track of it does not linger. */
    alarm(120);

    rl_endpoint *ep = NULL;
    if (rl_endpoint_open("tcp://127.0.0.1:0", NULL, &ep) != RL_OK) {
        fprintf(stderr, "ar_worker %d: %s\n", rank, rl_errdetail());
        return 2;
    }
    const char *my_url = rl_endpoint_url(ep);
    printf("URL %s\n", my_url);
    fflush(stdout);

    int status = 2;
    static char urls[WORKER_MAX_N][WORKER_LINE];
    int input_ranks[WORKER_MAX_N];
    double *in = malloc((count ? count : 1) * sizeof(double));
    double *out = malloc((count ? count : 1) * sizeof(double));
    if (in == NULL || out == NULL) goto out;
    for (size_t i = 0; i < count; i++)
        in[i] = input_value(rank, i);

    for (int i = 0; i < n; i++) {
        if (read_line(urls[i], sizeof(urls[i])) != 0) {
            fprintf(stderr, "ar_worker %d: member list truncated\n", rank);
            goto out;
        }
        input_ranks[i] = i;
    }
    if (g_fault.armed) rli_allreduce_hook = fault_hook;
    status = run_once(ep, epoch, rank, n, urls, input_ranks, in, out, count, deadline_ms);
    rli_allreduce_hook = NULL;

    /* Re-formations: survivors only, re-ranked, same endpoints. */
    char line[WORKER_LINE];
    while (status != 1 && read_line(line, sizeof(line)) == 0) {
        unsigned long long e;
        int m;
        if (sscanf(line, "EPOCH %llu %d", &e, &m) != 2 || m < 1 || m > WORKER_MAX_N) {
            fprintf(stderr, "ar_worker %d: bad re-formation header '%s'\n", rank, line);
            status = 2;
            break;
        }
        int me = -1;
        for (int i = 0; i < m; i++) {
            char *sp;
            if (read_line(line, sizeof(line)) != 0 || (sp = strrchr(line, ' ')) == NULL) {
                fprintf(stderr, "ar_worker %d: re-formation list truncated\n", rank);
                status = 2;
                goto out;
            }
            *sp = '\0';
            snprintf(urls[i], sizeof(urls[i]), "%s", line);
            input_ranks[i] = atoi(sp + 1);
            if (strcmp(urls[i], my_url) == 0) me = i;
        }
        if (me < 0) {
            fprintf(stderr, "ar_worker %d: not in the re-formed ring\n", rank);
            status = 2;
            break;
        }
        /* out was scribbled on by the failed call; in must be as we left it. */
        for (size_t i = 0; i < count; i++)
            if (in[i] != input_value(rank, i)) {
                fprintf(stderr, "ar_worker %d: input element %zu changed\n", rank, i);
                status = 1;
                goto out;
            }
        status = run_once(ep, e, me, m, urls, input_ranks, in, out, count, deadline_ms);
    }
out:
    free(in);
    free(out);
    rl_endpoint_close(ep);
    return status;
}
