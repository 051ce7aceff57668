/*
 * bench_rpc.c - `ringleader bench rpc`: the ECHO method between two
 * processes on loopback, over an authenticated connection, measured as
 * ../shared/bench/rpc/ measures gRPC and raw NNG req/rep:
 *   concurrency 1: W untimed calls, then N timed calls one at a time;
 *   concurrency C: C call slots each keeping one call in flight, a 0.5 s
 *   warm-up, then calls completing in a D-second window are counted.
 * Output: peer=ringleader payload=.. concurrency=.. p50_us=.. p99_us=..
 *         calls_per_s=.. mean_us=.. calls=.. secs=.. mib_per_s=.. errors=..
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "ringleader/clock.h"
#include "ringleader/err.h"
#include "ringleader/mem.h"
#include "ringleader/rpc.h"
#include "ringleader/stats.h"

typedef struct rpc_opts {
    size_t payload;
    int concurrency;
    long calls, warmup_calls;
    double duration_s, warmup_s;
    int window;
    bool no_batch;
    const char *url;
} rpc_opts;

/* Nearest-rank percentile of sorted latencies in ns, in us: the rule of the
 * peer baselines. */
static double pct_us(const double *v, size_t n, double p)
{
    return rl_percentile_sorted(v, n, p) / 1000.0;
}

/* lat: n call latencies in ns (whole numbers, exact as doubles). */
static void report(const rpc_opts *o, double *lat, size_t n, double secs, long errors)
{
    rl_sort_doubles(lat, n);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += lat[i];
    double mean = n ? sum / (double)n / 1000.0 : 0;
    double cps = secs > 0 ? (double)n / secs : 0;
    printf("peer=ringleader payload=%zu concurrency=%d p50_us=%.1f p99_us=%.1f "
           "calls_per_s=%.0f mean_us=%.1f calls=%zu secs=%.3f mib_per_s=%.2f errors=%ld\n",
           o->payload, o->concurrency, pct_us(lat, n, 0.50), pct_us(lat, n, 0.99), cps, mean, n,
           secs, cps * (double)o->payload / 1048576.0, errors);
    fflush(stdout);
}

static int serve(void)
{
    rl_token tok;
    if (rl_token_load(NULL, &tok) != 0) {
        fprintf(stderr, "bench rpc server: %s\n", rl_errdetail());
        return 1;
    }
    rl_rpc_server_opts so = {.url = "tcp://127.0.0.1:0",
                             .token = &tok,
                             .name = "bench",
                             .contexts = 64,
                             .recv_max = 8u << 20};
    rl_rpc_server *s;
    if (rl_rpc_server_new(&so, &s) != 0 || rl_rpc_server_start(s) != 0) {
        fprintf(stderr, "bench rpc server: %s\n", rl_errdetail());
        return 1;
    }
    printf("URL %s\n", rl_rpc_server_url(s));
    fflush(stdout);
    char buf[64];
    while (fgets(buf, sizeof(buf), stdin) != NULL) { /* until the client closes stdin */
    }
    rl_rpc_server_free(s);
    return 0;
}

static int run_latency(const rpc_opts *o, rl_rpc_client *c, const uint8_t *buf)
{
    double *lat = rl_xmalloc(sizeof(double) * (size_t)(o->calls + 1));
    long errors = 0;
    size_t n = 0;
    uint64_t ts = 0;
    rl_msg req;
    rl_msg_init(&req, RL_MSG_ECHO_REQ);
    req.u.echo_req.data = (rl_bytes){buf, o->payload};
    for (long i = 0; i < o->warmup_calls + o->calls; i++) {
        if (i == o->warmup_calls) ts = rl_clock_ns();
        uint64_t t0 = rl_clock_ns();
        rl_rpc_reply rep;
        int rv = rl_rpc_call(c, &req, &rep, rl_clock_ms() + 10000);
        uint64_t t1 = rl_clock_ns();
        if (rv != 0 || rep.msg.u.echo_resp.data.len != o->payload) errors++;
        rl_rpc_reply_fini(&rep);
        if (i >= o->warmup_calls) lat[n++] = (double)(t1 - t0);
    }
    report(o, lat, n, (double)(rl_clock_ns() - ts) / 1e9, errors);
    free(lat);
    return errors ? 1 : 0;
}

typedef struct slot slot;
typedef struct tput {
    const rpc_opts *o;
    rl_rpc_client *c;
    rl_msg req;
    atomic_int phase; /* 0 warm-up, 1 measuring, 2 stopping */
    atomic_int active;
    atomic_long errors;
} tput;
struct slot {
    tput *t;
    uint64_t t0;
    double *lat; /* ns */
    size_t n, cap;
};

static void slot_issue(slot *s);

static void slot_done(void *arg, int err, rl_rpc_reply *rep)
{
    slot *s = arg;
    uint64_t t1 = rl_clock_ns();
    if (err != 0 || rep->msg.u.echo_resp.data.len != s->t->o->payload)
        atomic_fetch_add(&s->t->errors, 1);
    else if (atomic_load(&s->t->phase) == 1) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 4096;
            s->lat = rl_xrealloc(s->lat, s->cap * sizeof(double));
        }
        s->lat[s->n++] = (double)(t1 - s->t0);
    }
    slot_issue(s);
}

static void slot_issue(slot *s)
{
    if (atomic_load(&s->t->phase) == 2) {
        atomic_fetch_sub(&s->t->active, 1);
        return;
    }
    s->t0 = rl_clock_ns();
    if (rl_rpc_call_async(s->t->c, &s->t->req, rl_clock_ms() + 10000, slot_done, s) != 0) {
        atomic_fetch_add(&s->t->errors, 1);
        atomic_fetch_sub(&s->t->active, 1);
    }
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static int run_throughput(const rpc_opts *o, rl_rpc_client *c, const uint8_t *buf)
{
    tput t;
    memset(&t, 0, sizeof(t));
    t.o = o;
    t.c = c;
    rl_msg_init(&t.req, RL_MSG_ECHO_REQ);
    t.req.u.echo_req.data = (rl_bytes){buf, o->payload};
    atomic_init(&t.phase, 0);
    atomic_init(&t.active, o->concurrency);
    atomic_init(&t.errors, 0);
    slot *slots = rl_xcalloc((size_t)o->concurrency, sizeof(*slots));
    for (int i = 0; i < o->concurrency; i++)
        slots[i].t = &t;
    for (int i = 0; i < o->concurrency; i++)
        slot_issue(&slots[i]);
    sleep_s(o->warmup_s); /* the measured window is a fixed time span */
    uint64_t ts = rl_clock_ns();
    atomic_store(&t.phase, 1);
    sleep_s(o->duration_s);
    atomic_store(&t.phase, 2);
    uint64_t te = rl_clock_ns();
    uint64_t limit = rl_clock_ns() + 15000000000ull; /* calls in flight end by their deadline */
    while (atomic_load(&t.active) > 0 && rl_clock_ns() < limit)
        sleep_s(0.001);
    if (atomic_load(&t.active) > 0) {
        fprintf(stderr, "bench rpc: %d calls did not finish\n", atomic_load(&t.active));
        return 1;
    }
    size_t total = 0, k = 0;
    for (int i = 0; i < o->concurrency; i++)
        total += slots[i].n;
    double *lat = rl_xmalloc(sizeof(double) * (total + 1));
    for (int i = 0; i < o->concurrency; i++) {
        memcpy(lat + k, slots[i].lat, slots[i].n * sizeof(double));
        k += slots[i].n;
        free(slots[i].lat);
    }
    long errors = atomic_load(&t.errors);
    report(o, lat, total, (double)(te - ts) / 1e9, errors);
    free(lat);
    free(slots);
    return errors ? 1 : 0;
}

int bench_rpc(int argc, char **argv)
{
    rpc_opts o = {.payload = 64,
                  .concurrency = 1,
                  .calls = -1,
                  .warmup_calls = -1,
                  .duration_s = 3,
                  .warmup_s = 0.5};
    int server = 0;
    if (cli_wants_help(argc, argv)) {
        printf("usage: ringleader bench rpc --payload BYTES --concurrency C [options]\n\n"
               "Echo calls between two processes on loopback (authenticated).\n"
               "  --payload BYTES       request and response payload (default 64)\n"
               "  --concurrency C       calls in flight (default 1)\n"
               "  --calls N             timed calls at C=1 (default 20000; 300 above 64 KiB)\n"
               "  --warmup-calls W      untimed calls at C=1 (default 1000; 30 above 64 KiB)\n"
               "  --duration S          measured window at C>1 (default 3)\n"
               "  --warmup-s S          warm-up at C>1 (default 0.5)\n"
               "  --window W            client messages in flight before calls batch (default 1)\n"
               "  --no-batch            every call travels alone\n");
        return RL_EXIT_OK;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--serve") == 0) {
            server = 1;
            continue;
        }
        if (strcmp(a, "--no-batch") == 0) {
            o.no_batch = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "ringleader bench rpc: %s needs a value\n", a);
            return RL_EXIT_USAGE;
        }
        if (strcmp(a, "--payload") == 0)
            o.payload = bench_parse_size(v);
        else if (strcmp(a, "--concurrency") == 0)
            o.concurrency = atoi(v);
        else if (strcmp(a, "--calls") == 0)
            o.calls = atol(v);
        else if (strcmp(a, "--warmup-calls") == 0)
            o.warmup_calls = atol(v);
        else if (strcmp(a, "--duration") == 0)
            o.duration_s = atof(v);
        else if (strcmp(a, "--warmup-s") == 0)
            o.warmup_s = atof(v);
        else if (strcmp(a, "--window") == 0)
            o.window = atoi(v);
        else {
            fprintf(stderr, "ringleader bench rpc: unknown option %s\n", a);
            return RL_EXIT_USAGE;
        }
        i++;
    }
    if (server) return serve();
    if (o.payload == 0 || o.concurrency < 1 || o.concurrency > 1024) {
        fprintf(stderr, "ringleader bench rpc: bad --payload or --concurrency\n");
        return RL_EXIT_USAGE;
    }
    if (o.calls < 0) o.calls = o.payload > 65536 ? 300 : 20000;
    if (o.warmup_calls < 0) o.warmup_calls = o.payload > 65536 ? 30 : 1000;

    /* A fresh random token for this run, handed to the server by environment. */
    uint8_t raw[24];
    char hex[64];
    FILE *ur = fopen("/dev/urandom", "rb");
    if (ur == NULL || fread(raw, 1, sizeof(raw), ur) != sizeof(raw)) {
        fprintf(stderr, "ringleader bench rpc: cannot read /dev/urandom\n");
        if (ur) fclose(ur);
        return RL_EXIT_FAILED;
    }
    fclose(ur);
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    setenv("RINGLEADER_TOKEN", hex, 1);

    bench_proc srv;
    const char *extra[] = {"--serve", NULL};
    char *sargv[] = {"rpc"};
    if (bench_spawn_self(1, sargv, extra, &srv) != 0) {
        fprintf(stderr, "ringleader bench rpc: cannot start the server process\n");
        return RL_EXIT_FAILED;
    }
    char line[300];
    int rc = RL_EXIT_FAILED;
    rl_rpc_client *c = NULL;
    if (bench_read_line(&srv, line, sizeof(line), rl_clock_s() + 20) != 0 ||
        strncmp(line, "URL ", 4) != 0) {
        fprintf(stderr, "ringleader bench rpc: the server did not start\n");
        goto out;
    }
    rl_token tok;
    rl_token_load(NULL, &tok);
    rl_rpc_client_opts co = {.url = line + 4,
                             .token = &tok,
                             .peer_id = "bench",
                             .window = o.window,
                             .no_batch = o.no_batch};
    if (rl_rpc_client_open(&co, rl_clock_ms() + 10000, &c) != 0) {
        fprintf(stderr, "ringleader bench rpc: %s\n", rl_errdetail());
        goto out;
    }
    uint8_t *buf = rl_xmalloc(o.payload);
    for (size_t i = 0; i < o.payload; i++)
        buf[i] = (uint8_t)(i * 131u + 7u);
    rc = (o.concurrency == 1 ? run_latency(&o, c, buf) : run_throughput(&o, c, buf))
             ? RL_EXIT_FAILED
             : RL_EXIT_OK;
    free(buf);
out:
    rl_rpc_client_close(c);
    bench_stop_all(&srv, 1);
    return rc;
}
