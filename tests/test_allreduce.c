/*
 * test_allreduce.c - the collective against a serial reference: N = 1..8
 * members as threads, each with its own endpoint on ipc:// (the ring also
 * on tcp://, N = 2..4), every dtype x op
 * x count in {0, 1, N-1, N+1, 1000003}, with each algorithm; which algorithm
 * runs for which size; determinism; the ring's same-host pulls (the
 * members are threads of one process, which pull from their own pid).
 * The fencing of stale, foreign, duplicated and malformed frames is in
 * test_allreduce_fencing.c, members that die or stall in
 * test_allreduce_faults.c.
 */
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reduce_ops.h"
#include "ring_internal.h"
#include "ringleader/allreduce.h"
#include "rli.h"
#include "testutil.h"

#define MAXN 8
#define BIG 1000003

/* Element i of member r's input: small integers, so that float sums are
 * exact in any order and the reference is unambiguous. */
static double input_value(int r, size_t i, rl_dtype dt)
{
    long v = (long)((r + 1) * 7 + (long)(i % 1021) * 3) % 997 - 498;
    if (dt == RL_I32 || dt == RL_I64) v = v * 1000003 + r; /* exercise wide ints */
    return (double)v;
}

static void fill(void *buf, size_t n, rl_dtype dt, int r)
{
    for (size_t i = 0; i < n; i++) {
        double v = input_value(r, i, dt);
        switch (dt) {
        case RL_F32: ((float *)buf)[i] = (float)v; break;
        case RL_F64: ((double *)buf)[i] = v; break;
        case RL_I32: ((int32_t *)buf)[i] = (int32_t)(v / 1000003.0) * 1000 + r; break;
        case RL_I64: ((int64_t *)buf)[i] = (int64_t)v; break;
        default: break;
        }
    }
}

/* The serial reference, written out per dtype and op without the library's
 * kernels, so that a wrong kernel cannot agree with itself. */
#define REF_LOOP(T)                                                                                \
    do {                                                                                           \
        T *o = out, *t = (T *)tmp;                                                                 \
        for (size_t i = 0; i < n; i++) {                                                           \
            if (op == RL_OP_SUM || op == RL_OP_SUM_EXACT) o[i] = o[i] + t[i];                      \
            else if (op == RL_OP_MIN) o[i] = t[i] < o[i] ? t[i] : o[i];                            \
            else o[i] = t[i] > o[i] ? t[i] : o[i];                                                 \
        }                                                                                          \
    } while (0)

static void reference(void *out, size_t n, rl_dtype dt, rl_op op, int nmembers)
{
    size_t es = rl_dtype_size(dt);
    uint8_t *tmp = malloc(n * es + 1);
    fill(out, n, dt, 0);
    for (int r = 1; r < nmembers; r++) {
        fill(tmp, n, dt, r);
        switch (dt) {
        case RL_F32: REF_LOOP(float); break;
        case RL_F64: REF_LOOP(double); break;
        case RL_I32: REF_LOOP(int32_t); break;
        case RL_I64: REF_LOOP(int64_t); break;
        default: ck_abort_msg("dtype %d", (int)dt);
        }
    }
    free(tmp);
}

typedef struct member {
    int rank, n;
    size_t chunk_bytes, small_bytes;
    rl_allreduce_algorithm algorithm;
    const char **urls;
    rl_endpoint *ep;
    int failures;
    char msg[512];
    uint64_t pulled; /* rl_ring_stats.bytes_pulled at the end */
    uint64_t checksum[RL_DTYPE_COUNT][RL_OP_COUNT][5];
} member;

static pthread_barrier_t open_barrier;

#define EXACT_TERMS 8

/* Term j's element i: every scale, signs mixed, so float sums would depend
 * on the order. */
static double exact_term(int j, size_t i)
{
    uint64_t h = ((uint64_t)j * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)i * 0xBF58476D1CE4E5B9ULL);
    h ^= h >> 31;
    h *= 0x94D049BB133111EBULL;
    h ^= h >> 29;
    double m = 1.0 + (double)(h >> 12) / 4503599627370496.0;
    int e = (int)(h % 120) - 60;
    return (h & 1) ? -ldexp(m, e) : ldexp(m, e);
}

/*
 * Exact sums are the same bits whatever the member count and algorithm: the
 * EXACT_TERMS term vectors are dealt to the members (term j to member
 * j mod N), each adds its own into accumulators, rl_allreduce_exact sums
 * them, and the rounded result must be bitwise the serial sum of all terms.
 * Then rl_allreduce(RL_OP_SUM_EXACT) of one term per member against the
 * serial exact sum of the members' terms. Returns 0, or 1 with m->msg set.
 */
static int exact_terms_check(member *m, rl_ring *ring, uint8_t *buf1, uint8_t *buf2, size_t n)
{
    rl_exact *mine = malloc(n * sizeof(rl_exact)), *all = malloc(n * sizeof(rl_exact));
    double *x = (double *)buf1, *got = (double *)buf2, *want = malloc(n * sizeof(double));
    rl_exact_clear(mine, n);
    rl_exact_clear(all, n);
    for (int j = 0; j < EXACT_TERMS; j++) {
        for (size_t i = 0; i < n; i++)
            x[i] = exact_term(j, i);
        rl_exact_add_f64(all, x, n);
        if (j % m->n == m->rank) rl_exact_add_f64(mine, x, n);
    }
    rl_exact_to_f64(all, want, n);
    int rv = rl_allreduce_exact(ring, mine, mine, n, rl_clock_ms() + 30000);
    if (rv == RL_OK) rl_exact_to_f64(mine, got, n);
    int bad = rv != RL_OK || memcmp(got, want, n * sizeof(double)) != 0;
    if (bad)
        snprintf(m->msg, sizeof(m->msg), "exact terms: %s",
                 rv != RL_OK ? rl_errdetail() : "differ from the serial exact sum");
    if (!bad) { /* one term per member through the op */
        rl_exact_clear(all, n);
        for (int r = 0; r < m->n; r++) {
            for (size_t i = 0; i < n; i++)
                x[i] = exact_term(r, i);
            rl_exact_add_f64(all, x, n);
        }
        rl_exact_to_f64(all, want, n);
        for (size_t i = 0; i < n; i++)
            x[i] = exact_term(m->rank, i);
        rv = rl_allreduce(ring, x, got, n, RL_F64, RL_OP_SUM_EXACT, rl_clock_ms() + 30000);
        bad = rv != RL_OK || memcmp(got, want, n * sizeof(double)) != 0;
        if (bad)
            snprintf(m->msg, sizeof(m->msg), "sum_exact: %s",
                     rv != RL_OK ? rl_errdetail() : "differs from the serial exact sum");
    }
    m->failures += bad;
    free(mine);
    free(all);
    free(want);
    return bad;
}

/* Member r's f32 term for element i of the windowed-sum check: exponents
 * from the subnormals to 2^126 inside one group, zeros, both signs. */
static float window_term(int r, size_t i)
{
    double d = exact_term(r, i);
    uint64_t h = ((uint64_t)r * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)i * 0xD1B54A32D192ED03ULL);
    h ^= h >> 29;
    switch (h % 16) {
    case 0: return 0.0f;
    case 1: return (float)ldexp(d, -100 - (int)(h % 40)); /* near or in the subnormals */
    case 2: return (float)ldexp(d, 60);                   /* near the top of the range */
    default: return (float)d;
    }
}

/*
 * The windowed sum's definition, written out without the library: per group
 * of 128 elements E = the largest exponent (frexp's, less one, at least
 * -126) of any member's nonzero term; each term rounded to the nearest
 * multiple of 2^(E - 40); their integer sum rounded once to f32.
 */
static void window_reference(float *out, size_t n, int nmembers)
{
    for (size_t g0 = 0; g0 < n; g0 += 128) {
        size_t g1 = g0 + 128 < n ? g0 + 128 : n;
        int E = -126;
        for (int r = 0; r < nmembers; r++)
            for (size_t i = g0; i < g1; i++) {
                float x = window_term(r, i);
                int ex;
                if (x != 0.0f && (frexpf(x, &ex), ex - 1 > E)) E = ex - 1;
            }
        for (size_t i = g0; i < g1; i++) {
            int64_t S = 0;
            for (int r = 0; r < nmembers; r++)
                S += (int64_t)nearbyint(ldexp((double)window_term(r, i), 40 - E));
            double v = ldexp((double)S, E - 40); /* exact: |S| < 2^44 */
            out[i] = fabs(v) >= 0x1p128 ? (float)copysign(INFINITY, v) : (float)v;
        }
    }
}

/*
 * RL_OP_SUM_EXACT on f32: the windowed form (from RLI_WINDOW_MIN_COUNT
 * elements) must give bitwise window_reference on every member, whichever
 * algorithm carried it; with an Inf term anywhere every member must take the
 * binned form instead, bitwise the serial binned sum. Returns 0, or 1 with
 * m->msg set.
 */
static int window_check(member *m, rl_ring *ring, uint8_t *buf1, uint8_t *buf2, size_t n)
{
    float *x = (float *)buf1, *got = (float *)buf2, *want = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = window_term(m->rank, i);
    window_reference(want, n, m->n);
    int rv = rl_allreduce(ring, x, got, n, RL_F32, RL_OP_SUM_EXACT, rl_clock_ms() + 30000);
    int bad = rv != RL_OK || memcmp(got, want, n * sizeof(float)) != 0;
    if (bad)
        snprintf(m->msg, sizeof(m->msg), "windowed sum_exact n=%zu: %s", n,
                 rv != RL_OK ? rl_errdetail() : "differs from the reference");
    if (!bad) {
        rv = rl_allreduce(ring, x, x, n, RL_F32, RL_OP_SUM_EXACT, rl_clock_ms() + 30000);
        bad = rv != RL_OK || memcmp(x, want, n * sizeof(float)) != 0;
        if (bad)
            snprintf(m->msg, sizeof(m->msg), "windowed sum_exact in place n=%zu: %s", n,
                     rv != RL_OK ? rl_errdetail() : "differs from the reference");
    }
    if (!bad) {
        rl_exact *all = malloc(n * sizeof(rl_exact));
        rl_exact_clear(all, n);
        for (int r = 0; r < m->n; r++) {
            for (size_t i = 0; i < n; i++)
                x[i] = window_term(r, i);
            if (r == m->n - 1) x[n / 2] = INFINITY;
            rl_exact_add_f32(all, x, n);
        }
        rl_exact_to_f32(all, want, n);
        for (size_t i = 0; i < n; i++)
            x[i] = window_term(m->rank, i);
        if (m->rank == m->n - 1) x[n / 2] = INFINITY;
        rv = rl_allreduce(ring, x, x, n, RL_F32, RL_OP_SUM_EXACT, rl_clock_ms() + 30000);
        bad = rv != RL_OK || memcmp(x, want, n * sizeof(float)) != 0 || !isinf(x[n / 2]);
        if (bad)
            snprintf(m->msg, sizeof(m->msg), "sum_exact n=%zu with an Inf: %s", n,
                     rv != RL_OK ? rl_errdetail() : "differs from the binned sum");
        free(all);
    }
    m->failures += bad;
    free(want);
    return bad;
}

static void *member_main(void *arg)
{
    member *m = arg;
    rl_ring_member mem[MAXN];
    char ids[MAXN][16];
    for (int i = 0; i < m->n; i++) {
        snprintf(ids[i], sizeof(ids[i]), "m%d", i);
        mem[i].id = ids[i];
        mem[i].url = m->urls[i];
    }
    rl_ring_config cfg = {.epoch = 1, .rank = m->rank, .size = m->n, .members = mem,
                          .chunk_bytes = m->chunk_bytes, .small_bytes = m->small_bytes,
                          .algorithm = m->algorithm};
    rl_ring *ring = NULL;
    pthread_barrier_wait(&open_barrier);
    int rv = rl_ring_form(m->ep, &cfg, rl_clock_ms() + 20000, &ring);
    if (rv != RL_OK) {
        snprintf(m->msg, sizeof(m->msg), "form: %s", rl_errdetail());
        m->failures++;
        return NULL;
    }
    size_t counts[5] = {0, 1, (size_t)(m->n - 1), (size_t)(m->n + 1), BIG};
    uint8_t *in = malloc(BIG * 8), *out = malloc(BIG * 8), *want = malloc(BIG * 8);
    for (int dt = 0; dt < RL_DTYPE_COUNT; dt++)
        for (int op = 0; op < RL_OP_COUNT; op++)
            for (int k = 0; k < 5; k++) {
                size_t n = counts[k], es = rl_dtype_size(dt);
                fill(in, n, dt, m->rank);
                memset(out, 0xA5, n * es);
                /* Alternate in-place and out-of-place. */
                void *dst = (k % 2) ? in : out;
                rv = rl_allreduce(ring, in, dst, n, dt, op, rl_clock_ms() + 30000);
                if (op == RL_OP_SUM_EXACT && (dt == RL_I32 || dt == RL_I64)) {
                    if (rv == RL_EINVAL) continue; /* floats only */
                    snprintf(m->msg, sizeof(m->msg), "%s sum_exact accepted", rl_dtype_name(dt));
                    m->failures++;
                    goto done;
                }
                if (rv != RL_OK) {
                    snprintf(m->msg, sizeof(m->msg), "%s %s n=%zu: %s", rl_dtype_name(dt),
                             rl_op_name(op), n, rl_errdetail());
                    m->failures++;
                    goto done;
                }
                reference(want, n, dt, op, m->n);
                if (memcmp(dst, want, n * es) != 0) {
                    snprintf(m->msg, sizeof(m->msg), "%s %s n=%zu: result differs from the "
                             "serial reference", rl_dtype_name(dt), rl_op_name(op), n);
                    m->failures++;
                    goto done;
                }
            }
    /* Non-integer floats: every member must hold bitwise the same result. */
    {
        size_t n = 100003;
        double *x = (double *)in;
        for (size_t i = 0; i < n; i++) x[i] = 1.0 / (double)(i + 1 + (size_t)m->rank * 17);
        rv = rl_allreduce(ring, in, out, n, RL_F64, RL_OP_SUM, rl_clock_ms() + 30000);
        if (rv != RL_OK) {
            m->failures++;
            snprintf(m->msg, sizeof(m->msg), "float sum: %s", rl_errdetail());
            goto done;
        }
        uint64_t h = 1469598103934665603ULL;
        for (size_t i = 0; i < n * 8; i++) h = (h ^ out[i]) * 1099511628211ULL;
        m->checksum[0][0][0] = h;
    }
    /* 640 KiB of accumulators, and 32 KiB (the small-buffer algorithms). */
    if (exact_terms_check(m, ring, in, out, 20011) != 0 ||
        exact_terms_check(m, ring, in, out, 1000) != 0)
        goto done;
    /* f32 sum_exact: windowed at 100003 and 20011 elements */
    if (window_check(m, ring, in, out, 100003) != 0 || window_check(m, ring, in, out, 20011) != 0)
        goto done;
    rv = rl_barrier(ring, rl_clock_ms() + 10000);
    if (rv != RL_OK) {
        m->failures++;
        snprintf(m->msg, sizeof(m->msg), "barrier: %s", rl_errdetail());
    }
done:
    free(in);
    free(out);
    free(want);
    rl_ring_stats st;
    rl_ring_get_stats(ring, &st);
    m->pulled = st.bytes_pulled;
    rl_ring_free(ring);
    return NULL;
}

static const char *members_transport = "ipc";
/* run_members checks that every member pulled (1), that none did (0), or
 * neither (-1). */
static int members_pull = -1;

static void run_members(int n, size_t chunk_bytes, rl_allreduce_algorithm algorithm,
                        size_t small_bytes, uint64_t *hash_out)
{
    member ms[MAXN];
    pthread_t th[MAXN];
    char urls[MAXN][128];
    const char *up[MAXN];
    memset(ms, 0, sizeof(ms));
    for (int r = 0; r < n; r++) {
        if (strcmp(members_transport, "tcp") == 0)
            snprintf(urls[r], sizeof(urls[r]), "tcp://127.0.0.1:0");
        else
            snprintf(urls[r], sizeof(urls[r]), "ipc:///tmp/rl-test-ar-%d-%d.sock", (int)getpid(),
                     r);
        ck_assert_int_eq(rl_endpoint_open(urls[r], NULL, &ms[r].ep), RL_OK);
        up[r] = rl_endpoint_url(ms[r].ep);
    }
    pthread_barrier_init(&open_barrier, NULL, (unsigned)n);
    for (int r = 0; r < n; r++) {
        ms[r].rank = r;
        ms[r].n = n;
        ms[r].chunk_bytes = chunk_bytes;
        ms[r].small_bytes = small_bytes;
        ms[r].algorithm = algorithm;
        ms[r].urls = up;
        pthread_create(&th[r], NULL, member_main, &ms[r]);
    }
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&open_barrier);
    for (int r = 0; r < n; r++) {
        ck_assert_msg(ms[r].failures == 0, "N=%d member %d: %s", n, r, ms[r].msg);
        ck_assert_msg(ms[r].checksum[0][0][0] == ms[0].checksum[0][0][0],
                      "N=%d: members hold different float results", n);
        if (members_pull >= 0)
            ck_assert_msg((ms[r].pulled > 0) == (members_pull == 1),
                          "N=%d member %d pulled %llu bytes", n, r,
                          (unsigned long long)ms[r].pulled);
    }
    if (hash_out != NULL) *hash_out = ms[0].checksum[0][0][0];
    for (int r = 0; r < n; r++) rl_endpoint_close(ms[r].ep);
}

/* Ring algorithm for everything above 0 bytes, small chunks (many chunks). */
START_TEST(ring_matches_reference)
{
    run_members(_i, 4096, RL_ALLREDUCE_RING, SIZE_MAX, NULL);
}
END_TEST

/* The ring over TCP, whose links the collective's own thread writes and
 * reads (direct links: sendmsg, poll with SO_RCVLOWAT), small chunks. */
START_TEST(ring_over_tcp_matches_reference)
{
    members_transport = "tcp";
    run_members(_i, 4096, RL_ALLREDUCE_RING, SIZE_MAX, NULL);
    members_transport = "ipc";
}
END_TEST

/* The ring with default (1 MiB) chunks over TCP: from each ring's second
 * collective on, frames of 64 KiB and more are pulled from the sender's
 * memory (ring_pull.c), in and out of place, for every dtype and op, the
 * windowed sum_exact included; the results are the reference's all the
 * same. */
START_TEST(ring_pulls_match_reference)
{
    members_transport = "tcp";
    members_pull = 1;
    run_members(_i, 0, RL_ALLREDUCE_RING, SIZE_MAX, NULL);
    members_transport = "ipc";
    members_pull = -1;
}
END_TEST

/* RINGLEADER_CMA=off: the same ring carries every byte over TCP. */
START_TEST(cma_off_means_no_pulls)
{
    setenv("RINGLEADER_CMA", "off", 1);
    members_transport = "tcp";
    members_pull = 0;
    run_members(3, 0, RL_ALLREDUCE_RING, SIZE_MAX, NULL);
    members_transport = "ipc";
    members_pull = -1;
    unsetenv("RINGLEADER_CMA");
}
END_TEST

/* Direct (one-round) algorithm for every count, default chunks. */
START_TEST(direct_matches_reference)
{
    run_members(_i, 0, RL_ALLREDUCE_DIRECT, SIZE_MAX, NULL);
}
END_TEST

/* Recursive doubling for counts up to 64 KiB at N >= 4 (with N - P members
 * folded in when N is not a power of two), direct below 4 members. */
START_TEST(doubling_matches_reference)
{
    run_members(_i, 0, RL_ALLREDUCE_AUTO, 65536, NULL);
}
END_TEST

/* Recursive halving + doubling for every count (N = 4 and 8), including
 * counts below N, where some members' ranges are empty; from the second
 * collective on, its swaps of 64 KiB and more are pulled (ring_pull.c). */
START_TEST(halving_matches_reference)
{
    members_pull = 1;
    run_members(_i, 0, RL_ALLREDUCE_HALVING, SIZE_MAX, NULL);
    members_pull = -1;
}
END_TEST

START_TEST(results_are_deterministic)
{
    uint64_t h1, h2;
    run_members(4, 65536, RL_ALLREDUCE_RING, SIZE_MAX, &h1);
    run_members(4, 65536, RL_ALLREDUCE_RING, SIZE_MAX, &h2);
    ck_assert_uint_eq(h1, h2);
}
END_TEST

START_TEST(kernels_cover_every_dtype_and_op)
{
    int32_t a[5] = {1, -2, 3, 7, 0}, b[5] = {4, 5, -6, 7, -1}, d[5];
    rli_reduce(RL_I32, RL_OP_SUM, d, a, b, 5);
    ck_assert_int_eq(d[2], -3);
    rli_reduce(RL_I32, RL_OP_MIN, d, a, b, 5);
    ck_assert_int_eq(d[1], -2);
    rli_reduce(RL_I32, RL_OP_MAX, d, a, b, 5);
    ck_assert_int_eq(d[2], 3);
    /* Unaligned source, as when a frame lands at an odd offset. */
    uint8_t raw[8 * 4 + 1];
    double x[4] = {1, 2, 3, 4}, y[4] = {10, 20, 30, 40}, z[4];
    memcpy(raw + 1, y, sizeof(y));
    rli_reduce(RL_F64, RL_OP_SUM, z, x, raw + 1, 4);
    ck_assert(z[3] == 44.0);
}
END_TEST

/* ---- Which algorithm runs (rl_ring_config.algorithm) ---- */

/* rli_allreduce_choose(want, small_bytes, N, bytes) must be `got`. */
#define EXPECT_CHOICE(want, small, n, bytes, got)                                                  \
    ck_assert_msg(rli_allreduce_choose(RL_ALLREDUCE_##want, (small), (n), (bytes)) ==             \
                      RL_ALLREDUCE_##got,                                                          \
                  "%s, small %zu, N=%d, %zu bytes: %s, want %s", #want, (size_t)(small), (n),     \
                  (size_t)(bytes),                                                                 \
                  rl_allreduce_algorithm_name(                                                     \
                      rli_allreduce_choose(RL_ALLREDUCE_##want, (small), (n), (bytes))),           \
                  #got)

START_TEST(auto_choice_follows_size_and_members)
{
    /* N = 2, 3: direct up to the default 512 KiB, the ring above */
    EXPECT_CHOICE(AUTO, SIZE_MAX, 2, 4, DIRECT);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 2, 512 << 10, DIRECT);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 2, (512 << 10) + 1, RING);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 3, 512 << 10, DIRECT);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 3, 600 << 10, RING);
    /* N a power of two >= 4: doubling up to 64 KiB, halving up to 4 MiB, the ring above */
    EXPECT_CHOICE(AUTO, SIZE_MAX, 4, 4, DOUBLING);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 4, 65536, DOUBLING);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 4, 65537, HALVING);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 8, 4 << 20, HALVING);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 8, (4 << 20) + 1, RING);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 16, 65537, HALVING);
    /* other N >= 4: doubling, then direct while at most 2 MiB goes out per member */
    EXPECT_CHOICE(AUTO, SIZE_MAX, 6, 65536, DOUBLING);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 6, 65537, DIRECT);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 6, (2 << 20) / 5, DIRECT);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 6, (2 << 20) / 5 + 1, RING);
    EXPECT_CHOICE(AUTO, SIZE_MAX, 12, (2 << 20) / 11 + 1, RING);
    /* small_bytes: direct's limit, and doubling's below 64 KiB; 0 = the ring only */
    EXPECT_CHOICE(AUTO, 64, 3, 64, DIRECT);
    EXPECT_CHOICE(AUTO, 64, 3, 65, RING);
    EXPECT_CHOICE(AUTO, 64, 4, 64, DOUBLING);
    EXPECT_CHOICE(AUTO, 64, 4, 65, HALVING);
    EXPECT_CHOICE(AUTO, 64, 6, 65, RING);
    EXPECT_CHOICE(AUTO, 1 << 20, 3, 1 << 20, DIRECT);
    EXPECT_CHOICE(AUTO, 0, 2, 1, RING);
    EXPECT_CHOICE(AUTO, 0, 4, 1, RING);
    EXPECT_CHOICE(AUTO, 0, 8, 1 << 20, RING);
}
END_TEST

START_TEST(a_named_algorithm_runs_wherever_it_can)
{
    EXPECT_CHOICE(RING, SIZE_MAX, 2, 4, RING);
    EXPECT_CHOICE(RING, SIZE_MAX, 8, 1 << 30, RING);
    /* direct: the whole buffer in one frame */
    EXPECT_CHOICE(DIRECT, SIZE_MAX, 8, 8 << 20, DIRECT);
    EXPECT_CHOICE(DIRECT, SIZE_MAX, 8, RL_PROTO_MAX_FRAME / 2, DIRECT);
    EXPECT_CHOICE(DIRECT, SIZE_MAX, 8, RL_PROTO_MAX_FRAME / 2 + 1, RING);
    /* doubling: frames the caller's thread sends itself */
    EXPECT_CHOICE(DOUBLING, SIZE_MAX, 3, 65536, DOUBLING);
    EXPECT_CHOICE(DOUBLING, SIZE_MAX, 3, 65537, RING);
    /* halving: N a power of two */
    EXPECT_CHOICE(HALVING, SIZE_MAX, 8, RL_PROTO_MAX_FRAME, HALVING);
    EXPECT_CHOICE(HALVING, SIZE_MAX, 8, RL_PROTO_MAX_FRAME + 1, RING);
    EXPECT_CHOICE(HALVING, SIZE_MAX, 2, 4, HALVING);
    EXPECT_CHOICE(HALVING, SIZE_MAX, 6, 4, RING);
    /* small_bytes is auto's only */
    EXPECT_CHOICE(DIRECT, 0, 4, 4, DIRECT);
    EXPECT_CHOICE(DOUBLING, 0, 4, 4, DOUBLING);
}
END_TEST

START_TEST(algorithm_names_round_trip)
{
    for (int a = 0; a < RL_ALLREDUCE_ALGORITHM_COUNT; a++) {
        rl_allreduce_algorithm got = RL_ALLREDUCE_ALGORITHM_COUNT;
        ck_assert_int_eq(rl_allreduce_algorithm_parse(rl_allreduce_algorithm_name(a), &got),
                         RL_OK);
        ck_assert_int_eq(got, a);
    }
    rl_allreduce_algorithm keep = RL_ALLREDUCE_RING;
    ck_assert_int_eq(rl_allreduce_algorithm_parse("fastest", &keep), RL_EINVAL);
    ck_assert_int_eq(keep, RL_ALLREDUCE_RING);
    ck_assert_str_eq(rl_allreduce_algorithm_name(RL_ALLREDUCE_ALGORITHM_COUNT), "?");
}
END_TEST

/* A ring refuses an algorithm that is not in the list. */
START_TEST(an_unknown_algorithm_fails_the_ring)
{
    rl_endpoint *ep;
    ck_assert_int_eq(rl_endpoint_open("tcp://127.0.0.1:0", NULL, &ep), RL_OK);
    rl_ring_member mem[1] = {{"a0", rl_endpoint_url(ep)}};
    rl_ring_config cfg = {.epoch = 1, .rank = 0, .size = 1, .members = mem,
                          .algorithm = RL_ALLREDUCE_ALGORITHM_COUNT};
    rl_ring *ring = NULL;
    ck_assert_int_eq(rl_ring_form(ep, &cfg, rl_clock_ms() + 1000, &ring), RL_EINVAL);
    ck_assert_ptr_null(ring);
    rl_endpoint_close(ep);
}
END_TEST

/* ---- TCP congestion control of the ring links (rl_ring_config.tcp_congestion) ---- */

START_TEST(congestion_choice_follows_the_config)
{
    rli_congestion_plan p;
    /* auto, a CPU per member, the host on bbr: cubic, else reno; and the lowat */
    rli_congestion_choose(NULL, 2, 2, "bbr", &p);
    ck_assert_int_eq(p.n, 2);
    ck_assert_str_eq(p.cand[0], "cubic");
    ck_assert_str_eq(p.cand[1], "reno");
    ck_assert(!p.required);
    ck_assert_int_eq(p.notsent_lowat, RLI_NOTSENT_LOWAT);
    rli_congestion_choose("auto", 1, 8, "bbr", &p);
    ck_assert_int_eq(p.n, 2);
    /* auto on a host already on a loss-based algorithm: kept, with the lowat */
    rli_congestion_choose("", 2, 2, "cubic", &p);
    ck_assert_int_eq(p.n, 0);
    ck_assert_int_eq(p.notsent_lowat, RLI_NOTSENT_LOWAT);
    /* auto with more members than CPUs here: the link is left alone */
    rli_congestion_choose("auto", 3, 2, "bbr", &p);
    ck_assert_int_eq(p.n, 0);
    ck_assert_int_eq(p.notsent_lowat, 0);
    rli_congestion_choose("system", 1, 2, "bbr", &p);
    ck_assert_int_eq(p.n, 0);
    ck_assert_int_eq(p.notsent_lowat, 0);
    /* a name: that one, required, whatever the host runs */
    rli_congestion_choose("reno", 5, 2, "cubic", &p);
    ck_assert_int_eq(p.n, 1);
    ck_assert_str_eq(p.cand[0], "reno");
    ck_assert(p.required);
    ck_assert_int_eq(p.notsent_lowat, RLI_NOTSENT_LOWAT);
}
END_TEST

/* The rest of the ring's tuning policy (ring_tune.c), from what every member sees. */
START_TEST(tuning_follows_the_members_per_host)
{
    char *urls[4] = {"tcp://a:1", "tcp://b:2", "tcp://a:3", "ipc:///tmp/x"};
    int mine, most;
    rli_host_counts(urls, 4, 0, &mine, &most);
    ck_assert_int_eq(mine, 2);
    ck_assert_int_eq(most, 2);
    rli_host_counts(urls, 4, 3, &mine, &most);
    ck_assert_int_eq(mine, 1);
    /* spin while members do not outnumber CPUs; yield when they fill them twice */
    ck_assert_int_eq(rli_tune_spin_us(0, 2, 2), 50);
    ck_assert_int_eq(rli_tune_spin_us(0, 3, 2), 0);
    ck_assert_int_eq(rli_tune_spin_us(-1, 1, 8), 0);
    ck_assert_int_eq(rli_tune_spin_us(30, 9, 2), 30);
    ck_assert_int_eq(rli_tune_spin_us(5000, 1, 2), 1000);
    ck_assert_int_eq(rli_tune_yield_us(0, 4, 2), 200);
    ck_assert_int_eq(rli_tune_yield_us(0, 3, 2), 0);
    ck_assert_int_eq(rli_tune_yield_us(-1, 8, 2), 0);
    /* halves of a segment only with the default chunk and <= 2 members per host */
    ck_assert_uint_eq(rli_tune_chunk_bytes(0), 1048576);
    ck_assert_uint_eq(rli_tune_chunk_bytes(10), 64);
    ck_assert(rli_tune_split_segments(rli_tune_chunk_bytes(0), 2));
    ck_assert(!rli_tune_split_segments(rli_tune_chunk_bytes(0), 3));
    ck_assert(!rli_tune_split_segments(4096, 1));
}
END_TEST

typedef struct cc_member {
    int rank;
    const char *cc;
    const char **urls;
    rl_endpoint *ep;
    rl_ring *ring;
    int rv;
    char msg[512];
} cc_member;

static void *cc_member_main(void *arg)
{
    cc_member *m = arg;
    rl_ring_member mem[2] = {{"c0", m->urls[0]}, {"c1", m->urls[1]}};
    rl_ring_config cfg = {.epoch = 1, .rank = m->rank, .size = 2, .members = mem,
                          .small_bytes = SIZE_MAX, .tcp_congestion = m->cc};
    m->rv = rl_ring_form(m->ep, &cfg, rl_clock_ms() + 10000, &m->ring);
    if (m->rv != RL_OK) snprintf(m->msg, sizeof(m->msg), "%s", rl_errdetail());
    return NULL;
}

/* Two members over TCP on loopback (TLS with tls set), as threads, asking for cc. */
static void cc_form_on(const char *cc, const rl_tls_files *tls, cc_member ms[2])
{
    const char *up[2];
    pthread_t th[2];
    memset(ms, 0, 2 * sizeof(*ms));
    for (int r = 0; r < 2; r++) {
        ck_assert_int_eq(rl_endpoint_open(tls ? "tls+tcp://127.0.0.1:0" : "tcp://127.0.0.1:0",
                                          tls, &ms[r].ep),
                         RL_OK);
        up[r] = rl_endpoint_url(ms[r].ep);
    }
    for (int r = 0; r < 2; r++) {
        ms[r].rank = r;
        ms[r].cc = cc;
        ms[r].urls = up;
        pthread_create(&th[r], NULL, cc_member_main, &ms[r]);
    }
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
}

static void cc_form(const char *cc, cc_member ms[2])
{
    cc_form_on(cc, NULL, ms);
}

static void cc_close(cc_member ms[2])
{
    for (int r = 0; r < 2; r++) {
        rl_ring_free(ms[r].ring);
        rl_endpoint_close(ms[r].ep);
    }
}

static void link_congestion(const rl_ring *ring, int peer, char *name, size_t cap, int *lowat)
{
    const rli_link *l = ring->links[peer];
    ck_assert_msg(l != NULL && l->sock >= 0, "the TCP link to rank %d has no socket", peer);
    socklen_t nl = (socklen_t)cap - 1, ll = sizeof(*lowat);
    memset(name, 0, cap);
    ck_assert_int_eq(getsockopt(l->sock, IPPROTO_TCP, TCP_CONGESTION, name, &nl), 0);
    ck_assert_int_eq(getsockopt(l->sock, IPPROTO_TCP, TCP_NOTSENT_LOWAT, lowat, &ll), 0);
}

/* Both ends of both links use the named algorithm, and the ring works. */
START_TEST(named_congestion_is_set_on_tcp_links)
{
    cc_member ms[2];
    cc_form("reno", ms); /* reno: built in and permitted to every process */
    for (int r = 0; r < 2; r++) {
        ck_assert_msg(ms[r].rv == RL_OK, "member %d: %s", r, ms[r].msg);
        char name[32];
        int lowat;
        link_congestion(ms[r].ring, 1 - r, name, sizeof(name), &lowat);
        ck_assert_str_eq(name, "reno");
        ck_assert_int_eq(lowat, RLI_NOTSENT_LOWAT);
    }
    cc_close(ms);
}
END_TEST

/* On a TLS link too (nng's TLS layer reads and writes; the ring finds the
 * socket beneath for the option), and the ring still reduces. */
START_TEST(named_congestion_is_set_on_tls_links)
{
    rl_tls_files tls = {RL_SOURCE_DIR "/configs/tls/cert.pem", RL_SOURCE_DIR "/configs/tls/key.pem",
                        RL_SOURCE_DIR "/configs/tls/ca.pem"};
    cc_member ms[2];
    cc_form_on("reno", &tls, ms);
    for (int r = 0; r < 2; r++) {
        ck_assert_msg(ms[r].rv == RL_OK, "member %d: %s", r, ms[r].msg);
        ck_assert_int_lt(ms[r].ring->links[1 - r]->fd, 0); /* not a direct link */
        char name[32];
        int lowat;
        link_congestion(ms[r].ring, 1 - r, name, sizeof(name), &lowat);
        ck_assert_str_eq(name, "reno");
    }
    cc_close(ms);
}
END_TEST

/* "system" leaves the host's default algorithm on the links. */
START_TEST(system_congestion_leaves_the_host_default)
{
    char want[32] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_congestion_control", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(want, sizeof(want), f));
    fclose(f);
    want[strcspn(want, "\n")] = '\0';
    cc_member ms[2];
    cc_form("system", ms);
    for (int r = 0; r < 2; r++) {
        ck_assert_msg(ms[r].rv == RL_OK, "member %d: %s", r, ms[r].msg);
        char name[32];
        int lowat;
        link_congestion(ms[r].ring, 1 - r, name, sizeof(name), &lowat);
        ck_assert_str_eq(name, want);
        ck_assert_int_ne(lowat, RLI_NOTSENT_LOWAT);
    }
    cc_close(ms);
}
END_TEST

/* An algorithm the kernel does not have fails the ring on both members,
 * naming it; one too long for the kernel fails before any link is made. */
START_TEST(unknown_congestion_fails_the_ring)
{
    cc_member ms[2];
    cc_form("nosuchcc", ms);
    for (int r = 0; r < 2; r++) {
        ck_assert_int_eq(ms[r].rv, RL_EINVAL);
        ck_assert_ptr_null(ms[r].ring);
        ck_assert_msg(strstr(ms[r].msg, "\"nosuchcc\" is not available") != NULL, "member %d: %s",
                      r, ms[r].msg);
    }
    cc_close(ms);

    rl_endpoint *ep;
    ck_assert_int_eq(rl_endpoint_open("tcp://127.0.0.1:0", NULL, &ep), RL_OK);
    rl_ring_member mem[1] = {{"c0", rl_endpoint_url(ep)}};
    rl_ring_config cfg = {.epoch = 1, .rank = 0, .size = 1, .members = mem,
                          .tcp_congestion = "a-name-of-sixteen"};
    rl_ring *ring = NULL;
    ck_assert_int_eq(rl_ring_form(ep, &cfg, rl_clock_ms() + 1000, &ring), RL_EINVAL);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "longer than 15"));
    ck_assert_ptr_null(ring);
    rl_endpoint_close(ep);
}
END_TEST

Suite *suite(void)
{
    Suite *s = suite_create("allreduce");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, kernels_cover_every_dtype_and_op);
    tcase_add_test(tc, auto_choice_follows_size_and_members);
    tcase_add_test(tc, a_named_algorithm_runs_wherever_it_can);
    tcase_add_test(tc, algorithm_names_round_trip);
    tcase_add_test(tc, an_unknown_algorithm_fails_the_ring);
    tcase_add_loop_test(tc, ring_matches_reference, 1, MAXN + 1);
    tcase_add_loop_test(tc, ring_over_tcp_matches_reference, 2, 5);
    tcase_add_loop_test(tc, ring_pulls_match_reference, 2, 5);
    tcase_add_test(tc, cma_off_means_no_pulls);
    tcase_add_loop_test(tc, direct_matches_reference, 1, MAXN + 1);
    tcase_add_loop_test(tc, doubling_matches_reference, 1, MAXN + 1);
    tcase_add_loop_test(tc, halving_matches_reference, 4, 5);
    tcase_add_loop_test(tc, halving_matches_reference, 8, 9);
    tcase_add_test(tc, results_are_deterministic);
    suite_add_tcase(s, tc);
    tc = tcase_create("congestion");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, congestion_choice_follows_the_config);
    tcase_add_test(tc, tuning_follows_the_members_per_host);
    tcase_add_test(tc, named_congestion_is_set_on_tcp_links);
    tcase_add_test(tc, named_congestion_is_set_on_tls_links);
    tcase_add_test(tc, system_congestion_leaves_the_host_default);
    tcase_add_test(tc, unknown_congestion_fails_the_ring);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return rlt_run_suite(suite());
}
