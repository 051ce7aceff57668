/*
 * bench_allreduce.c - `ringleader bench allreduce`: N separate processes on
 * loopback run the collective with the method of ../shared/bench/BASELINES.md
 * (its data pattern and exact check, barrier then time, iteration time = max
 * over ranks, median per round, the round with the lowest median reported),
 * and print one line per size in the peers' format:
 *   peer=ringleader nodes=N bytes=S time_us=.. algbw_GBps=.. busbw_GBps=.. ok=1 ...
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "ringleader/err.h"
#include "ringleader/allreduce.h"
#include "ringleader/clock.h"
#include "ringleader/ring.h"
#include "ringleader/stats.h"

#define MAX_SIZES 32
#define MAX_NODES 64

typedef struct ar_opts {
    int nodes;
    size_t sizes[MAX_SIZES];
    int nsizes;
    int iters, warmup, rounds;
    double budget_s;
    size_t chunk_bytes, small_bytes;
    int spin_us;
    int yield_us;
    const char *transport;
    const char *congestion;
    rl_allreduce_algorithm algorithm;
    rl_op op; /* sum or sum_exact */
} ar_opts;

static void ar_usage(FILE *f)
{
    fprintf(f, "usage: ringleader bench allreduce --nodes N --bytes S[,S...] [options]\n\n"
               "Runs the ring all-reduce between N separate processes on loopback and prints\n"
               "one line per size in the format of ../shared/bench/run-baselines.sh.\n\n"
               "  --nodes N            processes (default 4)\n"
               "  --bytes LIST         sizes, with K/M suffixes (default 4,4K,64K,1M,16M,64M)\n"
               "  --iters K            timed iterations per size at most (default 50)\n"
               "  --warmup K           untimed iterations at most (default 3)\n"
               "  --rounds R           whole size list repeated R times (default 3)\n"
               "  --budget SEC         time budget per size per round (default 1.5)\n"
               "  --transport tcp|ipc  (default tcp)\n"
               "  --chunk BYTES        pipeline chunk (default 1048576)\n"
               "  --algorithm NAME     auto (default: chosen by size and members), ring,\n"
               "                       direct, doubling or halving\n"
               "  --small BYTES        at or below: one-round algorithm (default: the library's)\n"
               "  --spin US            busy-poll a link this long before sleeping; 0 = automatic\n"
               "                       (the library's), -1 = never\n"
               "  --yield US           poll a link, yielding the CPU, this long before sleeping;\n"
               "                       0 = automatic (the library's), -1 = never\n"
               "  --congestion NAME    TCP congestion control of the ring links: auto (the\n"
               "                       library's, default), system (the host's), or a name\n"
               "  --op sum|sum_exact   the reduction of the f32 buffer (default sum); sum_exact\n"
               "                       sums exactly (docs/exactness.md)\n");
}

static int parse_ar(int argc, char **argv, ar_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->nodes = 4;
    o->iters = 50;
    o->warmup = 3;
    o->rounds = 3;
    o->budget_s = 1.5;
    o->small_bytes = SIZE_MAX;
    o->transport = "tcp";
    o->op = RL_OP_SUM;
    const char *sizes = "4,4K,64K,1M,16M,64M";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--worker") == 0) continue;
        if (v == NULL) {
            fprintf(stderr, "ringleader bench allreduce: %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--nodes") == 0)
            o->nodes = atoi(v);
        else if (strcmp(a, "--bytes") == 0)
            sizes = v;
        else if (strcmp(a, "--iters") == 0)
            o->iters = atoi(v);
        else if (strcmp(a, "--warmup") == 0)
            o->warmup = atoi(v);
        else if (strcmp(a, "--rounds") == 0)
            o->rounds = atoi(v);
        else if (strcmp(a, "--budget") == 0)
            o->budget_s = atof(v);
        else if (strcmp(a, "--transport") == 0)
            o->transport = v;
        else if (strcmp(a, "--chunk") == 0)
            o->chunk_bytes = bench_parse_size(v);
        else if (strcmp(a, "--small") == 0)
            o->small_bytes = bench_parse_size(v);
        else if (strcmp(a, "--algorithm") == 0) {
            if (rl_allreduce_algorithm_parse(v, &o->algorithm) != RL_OK) {
                fprintf(stderr, "ringleader bench allreduce: --algorithm %s: want auto, ring, "
                                "direct, doubling or halving\n", v);
                return -1;
            }
        }
        else if (strcmp(a, "--spin") == 0)
            o->spin_us = atoi(v);
        else if (strcmp(a, "--yield") == 0)
            o->yield_us = atoi(v);
        else if (strcmp(a, "--congestion") == 0)
            o->congestion = v;
        else if (strcmp(a, "--op") == 0) {
            if (strcmp(v, "sum") != 0 && strcmp(v, "sum_exact") != 0) {
                fprintf(stderr, "ringleader bench allreduce: --op %s: want sum or sum_exact\n", v);
                return -1;
            }
            o->op = strcmp(v, "sum") == 0 ? RL_OP_SUM : RL_OP_SUM_EXACT;
        } else if (strcmp(a, "--rank") == 0) { /* worker only */
        } else {
            fprintf(stderr, "ringleader bench allreduce: unknown option %s\n", a);
            return -1;
        }
        i++;
    }
    o->nsizes = bench_parse_size_list(sizes, o->sizes, MAX_SIZES);
    if (o->nsizes <= 0 || o->nodes < 1 || o->nodes > MAX_NODES || o->iters < 1 || o->rounds < 1 ||
        o->budget_s <= 0 ||
        (strcmp(o->transport, "tcp") != 0 && strcmp(o->transport, "ipc") != 0)) {
        fprintf(stderr, "ringleader bench allreduce: bad options (see --help)\n");
        return -1;
    }
    return 0;
}

/* ---- Worker ------------------------------------------------------------------ */

static float pattern(int r, size_t i)
{
    return (float)((r + 1) * (int)((7 * i + 3) % 1021 + 1));
}

/* One measured iteration, as the peers do it (BASELINES.md, "Method"):
 * poison the output (0xff bytes are NaNs), barrier, time the all-reduce,
 * compare every element with the precomputed expected sums (memcmp, like
 * mpi_allreduce.c: a slower check would steal the CPU from ranks still in
 * their timed region on oversubscribed cores); then agree on {time,
 * elapsed, bad} with MAX so that every rank takes the same decisions. */
static int one_iteration(rl_ring *ring, rl_op op, const float *in, float *out, const float *expect,
                         size_t n,
                         double since, double *dt_max, double *el_max, int *bad_total)
{
    const uint64_t op_deadline_ms = 60000;
    memset(out, 0xff, n * sizeof(float));
    int rv = rl_barrier(ring, rl_clock_ms() + op_deadline_ms);
    if (rv != 0) return rv;
    double t0 = rl_clock_s();
    rv = rl_allreduce(ring, in, out, n, RL_F32, op, rl_clock_ms() + op_deadline_ms);
    double t1 = rl_clock_s();
    if (rv != 0) return rv;
    double bad = memcmp(out, expect, n * sizeof(float)) != 0;
    double mine[3] = {t1 - t0, rl_clock_s() - since, bad}, mx[3];
    rv = rl_allreduce(ring, mine, mx, 3, RL_F64, RL_OP_MAX, rl_clock_ms() + op_deadline_ms);
    if (rv != 0) return rv;
    *dt_max = mx[0];
    *el_max = mx[1];
    if (mx[2] > 0) (*bad_total)++;
    return 0;
}

typedef struct size_result {
    double best_median, worst_median, min_us, p90_us;
    int iters, ok;
    uint64_t pulled; /* bytes rank 0 pulled per call (lib/ring_pull.c), in the best round */
} size_result;

/* The bytes r's member has pulled from its neighbours so far. */
static uint64_t bytes_pulled(const rl_ring *r)
{
    rl_ring_stats st;
    rl_ring_get_stats(r, &st);
    return st.bytes_pulled;
}

static int run_worker(const ar_opts *o, int rank)
{
    char url[256];
    rl_endpoint *ep = NULL;
    if (strcmp(o->transport, "ipc") == 0)
        snprintf(url, sizeof(url), "ipc:///tmp/rl-bench-%d-%d.sock", (int)getppid(), rank);
    else
        snprintf(url, sizeof(url), "tcp://127.0.0.1:0");
    if (rl_endpoint_open(url, NULL, &ep) != 0) {
        fprintf(stderr, "worker %d: %s\n", rank, rl_errdetail());
        return 1;
    }
    printf("URL %s\n", rl_endpoint_url(ep));
    fflush(stdout);

    char lines[MAX_NODES][256];
    rl_ring_member mem[MAX_NODES];
    char ids[MAX_NODES][16];
    for (int i = 0; i < o->nodes; i++) {
        if (fgets(lines[i], sizeof(lines[i]), stdin) == NULL) {
            fprintf(stderr, "worker %d: member list truncated\n", rank);
            rl_endpoint_close(ep);
            return 1;
        }
        lines[i][strcspn(lines[i], "\n")] = '\0';
        snprintf(ids[i], sizeof(ids[i]), "b%d", i);
        mem[i].id = ids[i];
        mem[i].url = lines[i];
    }
    rl_ring_config cfg = {.epoch = 1,
                          .rank = rank,
                          .size = o->nodes,
                          .members = mem,
                          .chunk_bytes = o->chunk_bytes,
                          .small_bytes = o->small_bytes,
                          .algorithm = o->algorithm,
                          .spin_us = o->spin_us,
                          .yield_us = o->yield_us,
                          .tcp_congestion = o->congestion};
    rl_ring *ring = NULL;
    int rv = rl_ring_form(ep, &cfg, rl_clock_ms() + 30000, &ring);
    if (rv != 0) {
        fprintf(stderr, "worker %d: %s\n", rank, rl_errdetail());
        rl_endpoint_close(ep);
        return 1;
    }
    const uint64_t op_deadline_ms = 60000;
    size_t maxb = 4;
    for (int s = 0; s < o->nsizes; s++)
        if (o->sizes[s] > maxb) maxb = o->sizes[s];
    size_t maxn = maxb / 4;
    float *in = malloc(maxn * sizeof(float)), *out = malloc(maxn * sizeof(float));
    float *expect = malloc(maxn * sizeof(float)); /* exact: every partial sum < 2^24 */
    double *times = malloc((size_t)o->iters * sizeof(double));
    size_result *res = calloc((size_t)o->nsizes, sizeof(*res));
    if (in == NULL || out == NULL || expect == NULL || times == NULL || res == NULL) {
        fprintf(stderr, "worker %d: out of memory for %zu-byte buffers\n", rank, maxb);
        rv = 1;
        goto done;
    }
    double tri = (double)o->nodes * (o->nodes + 1) / 2.0;
    for (size_t i = 0; i < maxn; i++)
        expect[i] = (float)((double)((7 * i + 3) % 1021 + 1) * tri);
    for (int s = 0; s < o->nsizes; s++)
        res[s].ok = 1;

    /* About 0.5 s of tiny all-reduces so connection set-up is over. */
    double t_warm = rl_clock_s();
    float one = 1, got;
    while (rv == 0) {
        rv = rl_allreduce(ring, &one, &got, 1, RL_F32, RL_OP_SUM, rl_clock_ms() + op_deadline_ms);
        double el = rl_clock_s() - t_warm, mx = 0;
        if (rv == 0)
            rv = rl_allreduce(ring, &el, &mx, 1, RL_F64, RL_OP_MAX, rl_clock_ms() + op_deadline_ms);
        if (mx >= 0.5) break;
    }
    for (int round = 0; round < o->rounds && rv == 0; round++) {
        for (int s = 0; s < o->nsizes && rv == 0; s++) {
            size_t n = o->sizes[s] / 4 ? o->sizes[s] / 4 : 1;
            for (size_t i = 0; i < n; i++)
                in[i] = pattern(rank, i);
            int timed = 0, bad_total = 0, calls = 0;
            double dt = 0, el = 0, t_start = rl_clock_s();
            uint64_t pulled0 = bytes_pulled(ring);
            for (int w = 0; w < o->warmup && rv == 0; w++, calls++) {
                if (w > 0 && el >= 0.3 * o->budget_s) break;
                rv = one_iteration(ring, o->op, in, out, expect, n, t_start, &dt, &el, &bad_total);
            }
            t_start = rl_clock_s();
            while (rv == 0) {
                rv = one_iteration(ring, o->op, in, out, expect, n, t_start, &dt, &el, &bad_total);
                if (rv != 0) break;
                calls++;
                times[timed++] = dt * 1e6;
                if (timed >= o->iters || (timed >= 3 && el >= o->budget_s)) break;
            }
            if (rv != 0) break;
            rl_sort_doubles(times, (size_t)timed);
            double med = rl_median_sorted(times, (size_t)timed);
            size_result *r = &res[s];
            if (round == 0 || med < r->best_median) {
                r->best_median = med;
                r->min_us = times[0];
                r->p90_us = times[(int)((timed - 1) * 0.9)];
                r->iters = timed;
                r->pulled = (bytes_pulled(ring) - pulled0) / (uint64_t)(calls ? calls : 1);
            }
            if (round == 0 || med > r->worst_median) r->worst_median = med;
            if (bad_total) r->ok = 0;
        }
    }
    if (rv != 0) {
        fprintf(stderr, "worker %d: %s\n", rank, rl_errdetail());
    } else if (rank == 0) {
        for (int s = 0; s < o->nsizes; s++) {
            size_result *r = &res[s];
            size_t bytes = o->sizes[s] / 4 ? o->sizes[s] : 4;
            double algbw = (double)bytes / (r->best_median * 1e-6) / 1e9;
            double busbw = algbw * 2.0 * (o->nodes - 1) / o->nodes;
            printf("peer=ringleader nodes=%d bytes=%zu time_us=%.2f algbw_GBps=%.4f "
                   "busbw_GBps=%.4f ok=%d iters=%d min_us=%.2f p90_us=%.2f mode=oop rounds=%d "
                   "spread=%.2f transport=%s op=%s pulled_per_call=%llu\n",
                   o->nodes, bytes, r->best_median, algbw, busbw, r->ok, r->iters, r->min_us,
                   r->p90_us, o->rounds, r->worst_median / r->best_median, o->transport,
                   rl_op_name(o->op), (unsigned long long)r->pulled);
        }
        fflush(stdout);
    }
done:;
    int all_ok = res != NULL;
    for (int s = 0; res != NULL && s < o->nsizes; s++)
        all_ok &= res[s].ok;
    free(in);
    free(out);
    free(expect);
    free(times);
    free(res);
    rl_ring_free(ring);
    rl_endpoint_close(ep);
    return rv == 0 && all_ok ? 0 : 1;
}

/* ---- Launcher ------------------------------------------------------------------ */

int bench_allreduce(int argc, char **argv)
{
    ar_opts o;
    if (cli_wants_help(argc, argv)) {
        ar_usage(stdout);
        return RL_EXIT_OK;
    }
    if (parse_ar(argc, argv, &o) != 0) return RL_EXIT_USAGE;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--rank") == 0) return run_worker(&o, atoi(argv[i + 1]));

    bench_proc procs[MAX_NODES];
    int n = o.nodes, rc = RL_EXIT_OK;
    memset(procs, 0, sizeof(procs));
    for (int r = 0; r < n; r++) {
        char rank[16];
        snprintf(rank, sizeof(rank), "%d", r);
        const char *extra[] = {"--rank", rank, NULL};
        if (bench_spawn_self(argc, argv, extra, &procs[r]) != 0) {
            fprintf(stderr, "ringleader bench: cannot start worker %d: %s\n", r, strerror(errno));
            rc = RL_EXIT_FAILED;
            n = r;
            goto stop;
        }
    }
    /* Collect each worker's URL, then give every worker the whole list. */
    char urls[MAX_NODES][300];
    double deadline = rl_clock_s() + 30;
    for (int r = 0; r < n; r++) {
        char line[300];
        if (bench_read_line(&procs[r], line, sizeof(line), deadline) != 0 ||
            strncmp(line, "URL ", 4) != 0) {
            fprintf(stderr, "ringleader bench: worker %d did not report its URL\n", r);
            rc = RL_EXIT_FAILED;
            goto stop;
        }
        snprintf(urls[r], sizeof(urls[r]), "%s", line + 4);
    }
    for (int r = 0; r < n; r++) {
        for (int k = 0; k < n; k++)
            dprintf(procs[r].in_fd, "%s\n", urls[k]);
        close(procs[r].in_fd);
        procs[r].in_fd = -1;
    }
    /* Relay rank 0's result lines until every worker has exited (bounded). */
    double budget = 120.0 + o.rounds * o.nsizes * (o.budget_s * 4 + 10);
    rc = bench_relay_and_wait(procs, n, 0, rl_clock_s() + budget);
stop:
    bench_stop_all(procs, n);
    return rc;
}
