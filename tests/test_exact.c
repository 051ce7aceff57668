/*
 * test_exact.c - the exact accumulator (ringleader/exact.h): the same bits
 * over random permutations and splits of the terms, merged in any order
 * and through the unaligned all-reduce kernel; the value against a
 * big-integer reference written here; extreme exponents, subnormals, NaN,
 * infinities, overflow and the final rounding of f64 and f32.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reduce_ops.h"
#include "ringleader/exact.h"
#include "rli.h"
#include "testutil.h"

#define NT 2000 /* terms per trial */

/* A random double: random sign and mantissa, exponent in [lo, hi]. */
static double rand_double(uint64_t *st, int lo, int hi)
{
    uint64_t r = rlt_rand(st);
    double m = 1.0 + (double)(r >> 12) / 4503599627370496.0; /* [1, 2) with 52 random bits */
    int e = lo + (int)(rlt_rand(st) % (uint64_t)(hi - lo + 1));
    return (r & 1) ? -ldexp(m, e) : ldexp(m, e);
}

static void fill_terms(double *t, size_t n, uint64_t *st, int trial)
{
    for (size_t i = 0; i < n; i++) {
        switch (trial % 4) {
        case 0:
            t[i] = rand_double(st, -30, 30);
            break;
        case 1:
            t[i] = rand_double(st, -1074, 1000);
            break; /* every scale at once */
        case 2:
            t[i] = i % 2 ? -t[i - 1] + rand_double(st, -80, -60) : rand_double(st, 0, 10);
            break; /* cancellation */
        default:
            t[i] = rand_double(st, -1070, -1000);
            break; /* near and in the subnormals */
        }
    }
}

static rl_exact sum_in_order(const double *t, const size_t *order, size_t n)
{
    rl_exact a;
    rl_exact_clear(&a, 1);
    for (size_t i = 0; i < n; i++)
        rl_exact_add_f64(&a, &t[order ? order[i] : i], 1);
    return a;
}

static void shuffle(size_t *p, size_t n, uint64_t *st)
{
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rlt_rand(st) % (i + 1)), x = p[i];
        p[i] = p[j];
        p[j] = x;
    }
}

/* The terms in random order, cut into random groups each summed alone, the
 * groups merged in random order (half of them through the kernel on
 * unaligned copies): the accumulator is bitwise the one in index order. */
START_TEST(permutations_and_splits_give_the_same_bits)
{
    uint64_t st = 0x9E3779B97F4A7C15ULL + (uint64_t)_i;
    double *t = malloc(NT * sizeof(double));
    size_t *ord = malloc(NT * sizeof(size_t));
    fill_terms(t, NT, &st, _i);
    rl_exact want = sum_in_order(t, NULL, NT);
    for (int rep = 0; rep < 20; rep++) {
        for (size_t i = 0; i < NT; i++)
            ord[i] = i;
        shuffle(ord, NT, &st);
        rl_exact whole = sum_in_order(t, ord, NT);
        ck_assert_msg(memcmp(&whole, &want, sizeof(want)) == 0, "trial %d rep %d: permuted", _i,
                      rep);
        size_t ngroups = 1 + (size_t)(rlt_rand(&st) % 40), start = 0;
        rl_exact *g = malloc(ngroups * sizeof(rl_exact));
        rl_exact_clear(g, ngroups);
        for (size_t k = 0; k < ngroups; k++) {
            size_t end = k + 1 == ngroups ? NT : start + (size_t)(rlt_rand(&st) % (NT - start + 1));
            for (size_t i = start; i < end; i++)
                rl_exact_add_f64(&g[k], &t[ord[i]], 1);
            start = end;
        }
        size_t *gord = malloc(ngroups * sizeof(size_t));
        for (size_t k = 0; k < ngroups; k++)
            gord[k] = k;
        shuffle(gord, ngroups, &st);
        rl_exact acc;
        rl_exact_clear(&acc, 1);
        uint8_t raw[3 * sizeof(rl_exact) + 3];
        for (size_t k = 0; k < ngroups; k++) {
            if (k % 2 == 0) {
                rl_exact_merge(&acc, &g[gord[k]], 1);
            } else { /* the wire kernel, at odd offsets */
                memcpy(raw + 1, &acc, sizeof(acc));
                memcpy(raw + 2 + sizeof(acc), &g[gord[k]], sizeof(acc));
                rli_exact_reduce(raw + 3 + 2 * sizeof(acc), raw + 1, raw + 2 + sizeof(acc), 1);
                memcpy(&acc, raw + 3 + 2 * sizeof(acc), sizeof(acc));
            }
        }
        ck_assert_msg(memcmp(&acc, &want, sizeof(want)) == 0, "trial %d rep %d: %zu groups", _i,
                      rep, ngroups);
        free(gord);
        free(g);
    }
    free(t);
    free(ord);
}
END_TEST

/* ---- a big-integer reference -------------------------------------------- */

/* Two's-complement integer of NL 32-bit limbs, lowest first, in units of
 * 2^REF_LSB: covers every double's bits and the carries of NT terms. */
#define REF_LSB (-1184)
#define NL      80

static void ref_add(uint32_t *z, double x, int low)
{
    /* |x| truncated toward zero to a multiple of 2^low, signed, added. */
    int e;
    double m = frexp(fabs(x), &e); /* |x| = m 2^e, m in [0.5, 1) */
    uint64_t mi = (uint64_t)ldexp(m, 53);
    int ex = e - 53; /* |x| = mi 2^ex */
    if (ex < low) {
        mi = low - ex >= 64 ? 0 : mi >> (low - ex);
        ex = low;
    }
    uint32_t add[NL] = {0};
    int sh = ex - REF_LSB; /* bit position of mi's lowest bit */
    for (int b = 0; b < 64; b++)
        if ((mi >> b) & 1) add[(sh + b) / 32] |= 1u << ((sh + b) % 32);
    if (x < 0) { /* negate: invert and add one */
        uint64_t c = 1;
        for (int i = 0; i < NL; i++) {
            uint64_t v = (uint64_t)(uint32_t)~add[i] + c;
            add[i] = (uint32_t)v;
            c = v >> 32;
        }
    }
    uint64_t c = 0;
    for (int i = 0; i < NL; i++) {
        uint64_t v = (uint64_t)z[i] + add[i] + c;
        z[i] = (uint32_t)v;
        c = v >> 32;
    }
}

/* The integer rounded to double by the hardware: its top 64 bits with a
 * sticky bit for the rest (correct to nearest for results in the normal
 * range; a 64-bit conversion rounds once, ldexp is then exact). */
static double ref_to_double(const uint32_t *z0)
{
    uint32_t z[NL];
    memcpy(z, z0, sizeof(z));
    bool neg = (z[NL - 1] >> 31) != 0;
    if (neg) {
        uint64_t c = 1;
        for (int i = 0; i < NL; i++) {
            uint64_t v = (uint64_t)(uint32_t)~z[i] + c;
            z[i] = (uint32_t)v;
            c = v >> 32;
        }
    }
    int top = NL * 32 - 1;
    while (top >= 0 && ((z[top / 32] >> (top % 32)) & 1) == 0)
        top--;
    if (top < 0) return 0.0;
    uint64_t hi = 0;
    bool sticky = false;
    for (int b = top; b >= 0; b--) {
        int bit = (z[b / 32] >> (b % 32)) & 1;
        if (top - b < 64)
            hi |= (uint64_t)bit << (63 - (top - b));
        else if (bit)
            sticky = true;
    }
    if (sticky) hi |= 1;
    double r = ldexp((double)hi, top - 63 + REF_LSB);
    return neg ? -r : r;
}

/* The documented value: every term truncated at 2^(32 (top - 2)), top the
 * grid bin of the largest |term|, summed exactly, rounded once. */
static double reference_sum(const double *t, size_t n)
{
    int maxlead = INT32_MIN;
    for (size_t i = 0; i < n; i++)
        if (t[i] != 0) {
            int e;
            frexp(t[i], &e);
            if (e - 1 > maxlead) maxlead = e - 1;
        }
    if (maxlead == INT32_MIN) return 0.0;
    int topbin = (maxlead + 64 * 32) / 32 - 64;
    uint32_t z[NL] = {0};
    for (size_t i = 0; i < n; i++)
        if (t[i] != 0) ref_add(z, t[i], 32 * (topbin - 2));
    return ref_to_double(z);
}

START_TEST(value_matches_the_big_integer_reference)
{
    uint64_t st = 12345 + (uint64_t)_i;
    double *t = malloc(NT * sizeof(double));
    for (int rep = 0; rep < 10; rep++) {
        fill_terms(t, NT, &st, _i);
        rl_exact a = sum_in_order(t, NULL, NT);
        double got, want = reference_sum(t, NT);
        rl_exact_to_f64(&a, &got, 1);
        ck_assert_msg(memcmp(&got, &want, sizeof(got)) == 0, "trial %d: %.17g, want %.17g", _i, got,
                      want);
    }
    free(t);
}
END_TEST

static double sum_of(const double *t, size_t n)
{
    rl_exact a = sum_in_order(t, NULL, n);
    double r;
    rl_exact_to_f64(&a, &r, 1);
    return r;
}

static float sum_of_f32(const float *t, size_t n)
{
    rl_exact a;
    rl_exact_clear(&a, 1);
    for (size_t i = 0; i < n; i++)
        rl_exact_add_f32(&a, &t[i], 1);
    float r;
    rl_exact_to_f32(&a, &r, 1);
    return r;
}

#define SUM(...) sum_of((const double[]){__VA_ARGS__}, sizeof((double[]){__VA_ARGS__}) / 8)

START_TEST(exact_where_floating_point_is_not)
{
    ck_assert(SUM(1e16, 1.0, -1e16) == 1.0);
    ck_assert(SUM(1.0, ldexp(1, -60), -1.0) == ldexp(1, -60));
    ck_assert(SUM(0.1, 0.2, -0.3) == ldexp(1, -55)); /* the exact residue of the doubles */
    ck_assert(SUM(1.0, ldexp(1, -53)) == 1.0);       /* tie to even */
    ck_assert(SUM(1.0, ldexp(1, -53), ldexp(1, -60)) == 1.0 + ldexp(1, -52)); /* past the tie */
    double z = SUM(0.0, -0.0);
    ck_assert(z == 0.0 && !signbit(z));
    z = SUM(2.5, -2.5);
    ck_assert(z == 0.0 && !signbit(z));
    z = sum_of(NULL, 0);
    ck_assert(z == 0.0 && !signbit(z));
}
END_TEST

START_TEST(extreme_exponents_and_subnormals)
{
    double tiny = ldexp(1, -1074);
    ck_assert(SUM(tiny, tiny, tiny) == 3 * tiny);
    ck_assert(SUM(DBL_MIN, -tiny) == DBL_MIN - tiny); /* a normal minus a subnormal */
    ck_assert(SUM(DBL_MIN / 2, DBL_MIN / 2) == DBL_MIN);
    ck_assert(SUM(-tiny, tiny) == 0.0);
    ck_assert(SUM(DBL_MAX, -DBL_MAX) == 0.0);
    /* Below 2^-64 of the largest term's bin: truncated (exact.h). */
    ck_assert(SUM(DBL_MAX, -DBL_MAX, 1.0) == 0.0);
    ck_assert(SUM(1.0, ldexp(1, -100), -1.0) == 0.0);
    ck_assert(SUM(1.0, ldexp(1, -63), -1.0) == ldexp(1, -63));
    ck_assert(SUM(DBL_MAX, -ldexp(DBL_MAX, -52)) == DBL_MAX - ldexp(DBL_MAX, -52));
}
END_TEST

START_TEST(nan_inf_and_overflow_are_defined)
{
    ck_assert(isnan(SUM(1.0, NAN, 2.0)));
    ck_assert(isnan(SUM(INFINITY, -INFINITY)));
    ck_assert(isnan(SUM(INFINITY, NAN)));
    double r = SUM(1.0, INFINITY, -1e300);
    ck_assert(isinf(r) && r > 0);
    r = SUM(-INFINITY, DBL_MAX);
    ck_assert(isinf(r) && r < 0);
    r = SUM(DBL_MAX, DBL_MAX); /* the exact sum is beyond the format */
    ck_assert(isinf(r) && r > 0);
    r = SUM(-DBL_MAX, -DBL_MAX, DBL_MAX);
    ck_assert(r == -DBL_MAX);
    r = SUM(DBL_MAX, ldexp(1, 970)); /* exactly half an ulp above DBL_MAX: ties to even, away */
    ck_assert(isinf(r) && r > 0);
    r = SUM(DBL_MAX, ldexp(1, 969));
    ck_assert(r == DBL_MAX);
    /* Flags merge like the values. */
    rl_exact a, b;
    rl_exact_clear(&a, 1);
    rl_exact_clear(&b, 1);
    double pinf = INFINITY, ninf = -INFINITY;
    rl_exact_add_f64(&a, &pinf, 1);
    rl_exact_add_f64(&b, &ninf, 1);
    rl_exact_merge(&a, &b, 1);
    rl_exact_to_f64(&a, &r, 1);
    ck_assert(isnan(r));
}
END_TEST

START_TEST(f32_rounds_once)
{
    float big = 16777216.0f;                                     /* 2^24 */
    ck_assert(sum_of_f32((const float[]){big, 1.0f}, 2) == big); /* tie to even */
    ck_assert(sum_of_f32((const float[]){big, 1.0f, 1.0f}, 3) == big + 2.0f);
    ck_assert(sum_of_f32((const float[]){big, 1.0f, ldexpf(1, -30)}, 3) == big + 2.0f);
    ck_assert(sum_of_f32((const float[]){FLT_MAX, FLT_MAX, -FLT_MAX}, 3) == FLT_MAX);
    float r = sum_of_f32((const float[]){FLT_MAX, FLT_MAX}, 2);
    ck_assert(isinf(r) && r > 0);
    float tiny = ldexpf(1, -149);
    ck_assert(sum_of_f32((const float[]){tiny, tiny, -tiny}, 3) == tiny);
    /* An f64 accumulator far below f32's range rounds to zero or the least subnormal. */
    rl_exact a;
    rl_exact_clear(&a, 1);
    double d = ldexp(1, -151);
    rl_exact_add_f64(&a, &d, 1);
    rl_exact_to_f32(&a, &r, 1);
    ck_assert(r == 0.0f);
    d = ldexp(1.5, -150); /* above half the least subnormal */
    rl_exact_clear(&a, 1);
    rl_exact_add_f64(&a, &d, 1);
    rl_exact_to_f32(&a, &r, 1);
    ck_assert(r == tiny);
}
END_TEST

/*
 * The ring's fused windowed form (reduce_ops.h): members' terms added one
 * member at a time, the first two from f32 values, through partial sums of
 * 6 and of 8 bytes, from an element that starts no group, give bitwise the
 * sum of the int64 terms rounded once, in place too; and two members' f32
 * values rounded at once. The terms span f32's range and subnormals
 * (_i 0) or sit near their window's top (_i 1, all-ones mantissas below
 * 2^21), of both signs, with zeros.
 */
#define WM 5     /* members */
#define WN 1000  /* elements */
#define WFIRST 77
#define WGROUPS ((WFIRST + WN + RLI_WINDOW_GROUP - 1) / RLI_WINDOW_GROUP)
START_TEST(window_wire_forms_match_the_int64_sums)
{
    uint64_t st = 0x77aa11u + (uint64_t)_i;
    float x[WM][WFIRST + WN];
    int32_t code[WGROUPS], c1[WGROUPS];
    for (int m = 0; m < WM; m++)
        for (size_t i = 0; i < WFIRST + WN; i++) {
            float v = (float)(_i == 0 ? rand_double(&st, -149, 127) : rand_double(&st, -20, 20));
            if (i % 97 == 5) v = (i & 1 ? -1.0f : 1.0f) * nextafterf(ldexpf(1, 21), 0);
            if (i % 89 == 3) v = 0.0f;
            x[m][i] = isfinite(v) ? v : FLT_MAX;
        }
    memset(code, 0, sizeof(code));
    for (int m = 0; m < WM; m++) {
        rli_window_codes_f32(x[m], WFIRST + WN, c1);
        for (size_t g = 0; g < WGROUPS; g++)
            code[g] = c1[g] > code[g] ? c1[g] : code[g];
    }
    int64_t sum[WFIRST + WN], q[WFIRST + WN];
    memset(sum, 0, sizeof(sum));
    for (int m = 0; m < WM; m++) {
        rli_window_quantize_f32(x[m], WFIRST + WN, code, q);
        for (size_t i = 0; i < WFIRST + WN; i++)
            sum[i] += q[i];
    }
    float want[WN], got[WN];
    rli_window_round_f32(sum + WFIRST, want, WFIRST, WN, code);
    ck_assert_int_eq(rli_window_wire_bytes(2), 6);
    ck_assert_int_eq(rli_window_wire_bytes(63), 6);
    ck_assert_int_eq(rli_window_wire_bytes(64), 8);
    for (int wb = 6; wb <= 8; wb += 2) {
        uint8_t a[WN * 8], b[WN * 8];
        rli_window_add_f32(x[0] + WFIRST, WFIRST, WN, code, (const uint8_t *)(x[1] + WFIRST), 4,
                           a, wb);
        for (int m = 2; m < WM - 1; m++) {
            rli_window_add_f32(x[m] + WFIRST, WFIRST, WN, code, a, wb, b, wb);
            memcpy(a, b, sizeof(a));
        }
        rli_window_add_round_f32(x[WM - 1] + WFIRST, WFIRST, WN, code, a, wb, got);
        ck_assert_msg(memcmp(got, want, sizeof(got)) == 0, "%d-byte partial sums differ", wb);
        float inplace[WN];
        memcpy(inplace, x[WM - 1] + WFIRST, sizeof(inplace));
        rli_window_add_round_f32(inplace, WFIRST, WN, code, a, wb, inplace);
        ck_assert_msg(memcmp(inplace, want, sizeof(got)) == 0, "%d-byte, in place", wb);
    }
    /* Two members: one's f32 values rounded with the other's at once. */
    memset(sum, 0, sizeof(sum));
    for (int m = 0; m < 2; m++) {
        rli_window_quantize_f32(x[m], WFIRST + WN, code, q);
        for (size_t i = 0; i < WFIRST + WN; i++)
            sum[i] += q[i];
    }
    rli_window_round_f32(sum + WFIRST, want, WFIRST, WN, code);
    rli_window_add_round_f32(x[0] + WFIRST, WFIRST, WN, code, (const uint8_t *)(x[1] + WFIRST), 4,
                             got);
    ck_assert_msg(memcmp(got, want, sizeof(got)) == 0, "two members' f32 values differ");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("exact");
    TCase *tc = tcase_create("accumulator");
    tcase_add_loop_test(tc, permutations_and_splits_give_the_same_bits, 0, 4);
    tcase_add_loop_test(tc, value_matches_the_big_integer_reference, 0, 3);
    tcase_add_test(tc, exact_where_floating_point_is_not);
    tcase_add_test(tc, extreme_exponents_and_subnormals);
    tcase_add_test(tc, nan_inf_and_overflow_are_defined);
    tcase_add_test(tc, f32_rounds_once);
    tcase_add_loop_test(tc, window_wire_forms_match_the_int64_sums, 0, 2);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
