/*
 * test_allreduce.c - the collective against a serial reference: N = 1..8
 * members as threads, each with its own endpoint on ipc://, every dtype x op
 * x count in {0, 1, N-1, N+1, 1000003}, with both algorithms; determinism.
 * The fencing of stale, foreign, duplicated and malformed frames is in
 * test_allreduce_fencing.c, members that die or stall in
 * test_allreduce_faults.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
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
            if (op == RL_OP_SUM) o[i] = o[i] + t[i];                                               \
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
    bool no_doubling; /* the one-round algorithm even at N >= 4 */
    bool all_halving; /* recursive halving for every count above 0 (N a power of 2) */
    const char **urls;
    rl_endpoint *ep;
    int failures;
    char msg[512];
    uint64_t checksum[RL_DTYPE_COUNT][RL_OP_COUNT][5];
} member;

static pthread_barrier_t open_barrier;

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
                          .chunk_bytes = m->chunk_bytes, .small_bytes = m->small_bytes};
    rl_ring *ring = NULL;
    pthread_barrier_wait(&open_barrier);
    int rv = rl_ring_form(m->ep, &cfg, rl_clock_ms() + 20000, &ring);
    if (rv != RL_OK) {
        snprintf(m->msg, sizeof(m->msg), "form: %s", rl_errdetail());
        m->failures++;
        return NULL;
    }
    if (m->no_doubling) ring->doubling_bytes = ring->halving_bytes = 0;
    if (m->all_halving) {
        ring->doubling_bytes = 0;
        ring->halving_bytes = RL_PROTO_MAX_FRAME;
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
    rv = rl_barrier(ring, rl_clock_ms() + 10000);
    if (rv != RL_OK) {
        m->failures++;
        snprintf(m->msg, sizeof(m->msg), "barrier: %s", rl_errdetail());
    }
done:
    free(in);
    free(out);
    free(want);
    rl_ring_free(ring);
    return NULL;
}

static void run_members(int n, size_t chunk_bytes, size_t small_bytes, bool no_doubling,
                        bool all_halving, uint64_t *hash_out)
{
    member ms[MAXN];
    pthread_t th[MAXN];
    char urls[MAXN][128];
    const char *up[MAXN];
    memset(ms, 0, sizeof(ms));
    for (int r = 0; r < n; r++) {
        snprintf(urls[r], sizeof(urls[r]), "ipc:///tmp/rl-test-ar-%d-%d.sock", (int)getpid(), r);
        ck_assert_int_eq(rl_endpoint_open(urls[r], NULL, &ms[r].ep), RL_OK);
        up[r] = rl_endpoint_url(ms[r].ep);
    }
    pthread_barrier_init(&open_barrier, NULL, (unsigned)n);
    for (int r = 0; r < n; r++) {
        ms[r].rank = r;
        ms[r].n = n;
        ms[r].chunk_bytes = chunk_bytes;
        ms[r].small_bytes = small_bytes;
        ms[r].no_doubling = no_doubling;
        ms[r].all_halving = all_halving;
        ms[r].urls = up;
        pthread_create(&th[r], NULL, member_main, &ms[r]);
    }
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&open_barrier);
    for (int r = 0; r < n; r++) {
        ck_assert_msg(ms[r].failures == 0, "N=%d member %d: %s", n, r, ms[r].msg);
        ck_assert_msg(ms[r].checksum[0][0][0] == ms[0].checksum[0][0][0],
                      "N=%d: members hold different float results", n);
    }
    if (hash_out != NULL) *hash_out = ms[0].checksum[0][0][0];
    for (int r = 0; r < n; r++) rl_endpoint_close(ms[r].ep);
}

/* Ring algorithm for everything above 0 bytes, small chunks (many chunks). */
START_TEST(ring_matches_reference)
{
    run_members(_i, 4096, 0, false, false, NULL);
}
END_TEST

/* Direct (one-round) algorithm for small counts, default chunks. */
START_TEST(direct_matches_reference)
{
    run_members(_i, 0, 64, true, false, NULL);
}
END_TEST

/* Recursive doubling for counts up to 64 KiB at N >= 4 (with N - P members
 * folded in when N is not a power of two), direct below 4 members. */
START_TEST(doubling_matches_reference)
{
    run_members(_i, 0, 65536, false, false, NULL);
}
END_TEST

/* Recursive halving + doubling for every count (N = 4 and 8), including
 * counts below N, where some members' ranges are empty. */
START_TEST(halving_matches_reference)
{
    run_members(_i, 0, 65536, false, true, NULL);
}
END_TEST

START_TEST(results_are_deterministic)
{
    uint64_t h1, h2;
    run_members(4, 65536, 0, false, false, &h1);
    run_members(4, 65536, 0, false, false, &h2);
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

Suite *suite(void)
{
    Suite *s = suite_create("allreduce");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, kernels_cover_every_dtype_and_op);
    tcase_add_loop_test(tc, ring_matches_reference, 1, MAXN + 1);
    tcase_add_loop_test(tc, direct_matches_reference, 1, MAXN + 1);
    tcase_add_loop_test(tc, doubling_matches_reference, 1, MAXN + 1);
    tcase_add_loop_test(tc, halving_matches_reference, 4, 5);
    tcase_add_loop_test(tc, halving_matches_reference, 8, 9);
    tcase_add_test(tc, results_are_deterministic);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return rlt_run_suite(suite());
}
