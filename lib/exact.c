/*
 * exact.c - binned fixed-point accumulators: exact, order-independent sums
 * (the format and its guarantees are in ringleader/exact.h and
 * docs/exactness.md).
 *
 * A finite term t = +-m * 2^e (m an integer of at most 53 bits) is placed
 * on the global grid of 32-bit bins: its leading bit falls in bin
 * floor(lead / 32). Relative to the window's lowest bit L = 32 * (top - 2)
 * its magnitude is m * 2^(e - L), truncated toward zero, less than 2^96; its
 * three 32-bit digits, signed like t, are added to the three bins. A digit
 * of bin b is the same whichever window extracted it, so dropping the
 * lowest bins when the window moves up removes exactly what extracting at
 * the higher window would have left out: the sum does not depend on when a
 * term came.
 */
#include <math.h>
#include <string.h>

#include "reduce_ops.h"
#include "ringleader/exact.h"
#include "rli.h"

typedef unsigned __int128 u128;
typedef __int128 i128;

#define GRID_OFFSET 64 /* bins, so that bin arithmetic on the lowest subnormal stays >= 0 */

/* The grid bin of bit position p (floor division by 32). */
static int32_t exact_bin_of(int p)
{
    return (int32_t)((p + GRID_OFFSET * RL_EXACT_BIN_BITS) / RL_EXACT_BIN_BITS) - GRID_OFFSET;
}

/* Moves acc's window up so that its top is `top` (> acc->top); the bins
 * that fall below the window are dropped. */
static void exact_raise(rl_exact *acc, int32_t top)
{
    if (acc->top == RL_EXACT_EMPTY) {
        acc->top = top;
        return;
    }
    int64_t s = (int64_t)top - acc->top;
    for (int i = RL_EXACT_BINS - 1; i >= 0; i--)
        acc->bin[i] = i - s >= 0 ? acc->bin[i - s] : 0;
    acc->top = top;
}

void rl_exact_clear(rl_exact *acc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memset(&acc[i], 0, sizeof(acc[i]));
        acc[i].top = RL_EXACT_EMPTY;
    }
}

/* acc += x for one double. */
static void exact_add_one(rl_exact *acc, double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof(u));
    int ef = (int)((u >> 52) & 0x7ff);
    uint64_t m = u & ((UINT64_C(1) << 52) - 1);
    bool neg = (u >> 63) != 0;
    if (ef == 0x7ff) {
        acc->flags |= m != 0 ? RL_EXACT_NAN : neg ? RL_EXACT_NINF : RL_EXACT_PINF;
        return;
    }
    if (ef == 0 && m == 0) return; /* +-0 */
    int e = ef == 0 ? -1074 : ef - 1075;
    if (ef != 0) m |= UINT64_C(1) << 52;
    int lead = e + 63 - __builtin_clzll(m);
    int32_t bx = exact_bin_of(lead);
    if (acc->top == RL_EXACT_EMPTY || bx > acc->top) exact_raise(acc, bx);
    int low = (acc->top - (RL_EXACT_BINS - 1)) * RL_EXACT_BIN_BITS;
    if (lead < low) return; /* below the window: truncated to 0 */
    u128 v = e >= low ? (u128)m << (e - low) : (u128)(low - e >= 64 ? 0 : m >> (low - e));
    int64_t d[RL_EXACT_BINS] = {(int64_t)(uint64_t)(v >> 64),
                                (int64_t)(uint64_t)((v >> 32) & 0xffffffffu),
                                (int64_t)(uint64_t)(v & 0xffffffffu)};
    for (int i = 0; i < RL_EXACT_BINS; i++)
        acc->bin[i] += neg ? -d[i] : d[i];
}

void rl_exact_add_f64(rl_exact *acc, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        exact_add_one(&acc[i], x[i]);
}

void rl_exact_add_f32(rl_exact *acc, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        exact_add_one(&acc[i], (double)x[i]);
}

/* *d = a + b, for one element; any of them may alias. */
static void exact_merge_one(rl_exact *d, const rl_exact *a, const rl_exact *b)
{
    rl_exact x = *a, y = *b;
    uint32_t flags = x.flags | y.flags;
    if (x.top == RL_EXACT_EMPTY) {
        x = y;
    } else if (y.top != RL_EXACT_EMPTY) {
        if (y.top > x.top)
            exact_raise(&x, y.top);
        else if (x.top > y.top)
            exact_raise(&y, x.top);
        for (int i = 0; i < RL_EXACT_BINS; i++)
            x.bin[i] += y.bin[i];
    }
    x.flags = flags;
    *d = x;
}

void rl_exact_merge(rl_exact *dst, const rl_exact *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        exact_merge_one(&dst[i], &dst[i], &src[i]);
}

/* The all-reduce kernel: elements land at any offset in a receive buffer,
 * so they are copied in and out. */
void rli_exact_reduce(void *dst, const void *a, const void *b, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *pa = a, *pb = b;
    for (size_t i = 0; i < n; i++) {
        rl_exact x, y;
        memcpy(&x, pa + i * sizeof(x), sizeof(x));
        memcpy(&y, pb + i * sizeof(y), sizeof(y));
        exact_merge_one(&x, &x, &y);
        memcpy(d + i * sizeof(x), &x, sizeof(x));
    }
}

/* A binary format: P significand bits, its lowest subnormal bit's exponent
 * and its largest exponent. */
typedef struct fmt {
    int P, emin, emax;
} fmt;
static const fmt FMT_F64 = {53, -1074, 1023}, FMT_F32 = {24, -149, 127};

/*
 * mag * 2^scale rounded to format f, to nearest with ties to even: sets
 * *q, *k with the result q * 2^k (q < 2^(P+1), exact in the format unless
 * it overflows). Returns false on overflow (the result is then +-Inf).
 */
static bool exact_round(u128 mag, int scale, fmt f, uint64_t *q, int *k)
{
    uint64_t hi = (uint64_t)(mag >> 64);
    int nbits = hi != 0 ? 128 - __builtin_clzll(hi) : 64 - __builtin_clzll((uint64_t)mag);
    int shift = nbits - f.P;
    if (f.emin - scale > shift) shift = f.emin - scale; /* subnormal: fewer bits */
    if (shift <= 0) {
        *q = (uint64_t)mag;
        *k = scale;
        return 63 - __builtin_clzll(*q) + *k <= f.emax;
    }
    *k = scale + shift;
    if (shift >= 128) { /* mag < 2^128 <= 2^(shift - 1) unless shift is 128 */
        *q = shift == 128 && mag > (u128)1 << 127 ? 1 : 0;
        return true;
    }
    u128 qq = mag >> shift, rem = mag - (qq << shift), half = (u128)1 << (shift - 1);
    if (rem > half || (rem == half && (qq & 1) != 0)) qq++;
    *q = (uint64_t)qq;
    if (*q == 0) return true;
    int lead = 63 - __builtin_clzll(*q) + *k;
    return lead <= f.emax;
}

/* The value of one accumulator in format f, as q * 2^k with sign; returns
 * 0 finite, 1 +-Inf (overflow or infinite terms), 2 NaN. */
static int exact_value(const rl_exact *a, fmt f, uint64_t *q, int *k, bool *neg)
{
    *q = 0;
    *k = 0;
    *neg = false;
    if ((a->flags & RL_EXACT_NAN) != 0 ||
        (a->flags & (RL_EXACT_PINF | RL_EXACT_NINF)) == (RL_EXACT_PINF | RL_EXACT_NINF))
        return 2;
    if (a->flags != 0) {
        *neg = (a->flags & RL_EXACT_NINF) != 0;
        return 1;
    }
    if (a->top == RL_EXACT_EMPTY) return 0;
    /* |bin| < 2^62 with at most 2^30 terms, so the sum fits in 127 bits. */
    i128 v = (i128)a->bin[0] * ((i128)1 << 64) + (i128)a->bin[1] * ((i128)1 << 32) + a->bin[2];
    if (v == 0) return 0;
    *neg = v < 0;
    u128 mag = *neg ? (u128)0 - (u128)v : (u128)v;
    return exact_round(mag, (a->top - (RL_EXACT_BINS - 1)) * RL_EXACT_BIN_BITS, f, q, k) ? 0 : 1;
}

void rl_exact_to_f64(const rl_exact *acc, double *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t q;
        int k;
        bool neg;
        int kind = exact_value(&acc[i], FMT_F64, &q, &k, &neg);
        double r = kind == 2 ? NAN : kind == 1 ? INFINITY : ldexp((double)q, k);
        out[i] = neg ? -r : r;
    }
}

void rl_exact_to_f32(const rl_exact *acc, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t q;
        int k;
        bool neg;
        int kind = exact_value(&acc[i], FMT_F32, &q, &k, &neg);
        float r = kind == 2 ? NAN : kind == 1 ? INFINITY : ldexpf((float)q, k);
        out[i] = neg ? -r : r;
    }
}

/* ---- The windowed form ------------------------------------------------------ */
/*
 * RL_OP_SUM_EXACT on large f32 buffers (allreduce.c): a group of
 * RLI_WINDOW_GROUP elements shares one window, set by the largest exponent
 * field of any member's element in the group (a max all-reduce of one code
 * per group). Each term becomes the integer nearest x * 2^(K - E) (ties
 * to even), E the window's exponent and K = RLI_WINDOW_BITS, so the sums
 * are integer additions (associative) carried in 6 or 8 bytes per element
 * (the ring's wire form below; int64 elsewhere) instead of an rl_exact's
 * 32, and the sum is rounded once. See docs/exactness.md.
 */

/* The conversions are built for AVX-512 and AVX2 too; every clone rounds
 * alike, as each operation in them is exact or one IEEE rounding. The
 * clones are static (their resolvers would otherwise be exported), behind
 * the rli_ functions. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define WINDOW_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WINDOW_KERNEL
#endif

/* 1.5 * 2^52 and its bits: see rli_window_quantize_f32. */
#define WINDOW_MAGIC      0x1.8p52
#define WINDOW_MAGIC_BITS INT64_C(0x4338000000000000)

/* The window exponent E of a group's code (its largest exponent field):
 * every term of the group is below 2^(E + 1). */
static int window_exp(int32_t code)
{
    return (code < 1 ? 1 : code) - 127;
}

/* The elements [i, end) of a run starting at element first that share one
 * group: end is the group's end or n. */
static size_t window_group_end(size_t first, size_t i, size_t n)
{
    size_t end = ((first + i) / RLI_WINDOW_GROUP + 1) * RLI_WINDOW_GROUP - first;
    return end > n ? n : end;
}

WINDOW_KERNEL
static void window_codes(const float *x, size_t n, int32_t *code)
{
    for (size_t g = 0; g * RLI_WINDOW_GROUP < n; g++) {
        size_t i0 = g * RLI_WINDOW_GROUP, i1 = window_group_end(0, i0, n);
        uint32_t mx = 0; /* the exponent field in place: one shift a group */
        for (size_t i = i0; i < i1; i++) {
            uint32_t u;
            memcpy(&u, &x[i], sizeof(u));
            u &= 0x7f800000u;
            mx = u > mx ? u : mx;
        }
        code[g] = (int32_t)(mx >> 23);
    }
}

void rli_window_codes_f32(const float *x, size_t n, int32_t *code)
{
    window_codes(x, n, code);
}

bool rli_window_special(const int32_t *code, size_t ngroups)
{
    for (size_t g = 0; g < ngroups; g++)
        if (code[g] >= RLI_WINDOW_SPECIAL) return true;
    return false;
}

/* x * scale to the nearest integer, ties to even. For |x * scale| < 2^51
 * the product is exact in double, and adding 1.5 * 2^52 rounds it to an
 * integer held in the low bits, read back with one integer subtraction;
 * unlike a conversion to int64, this vectorises. */
static inline int64_t window_term(float x, double scale)
{
    double v = (double)x * scale + WINDOW_MAGIC;
    int64_t b;
    memcpy(&b, &v, sizeof(b));
    return b - WINDOW_MAGIC_BITS;
}

/* The factor that puts a term of a group with this code on its window:
 * |x| < 2^(E + 1), so |x * factor| < 2^(K + 1) <= 2^51. */
static double window_factor(int32_t code)
{
    return ldexp(1.0, RLI_WINDOW_BITS - window_exp(code));
}

WINDOW_KERNEL
static void window_quantize(const float *x, size_t n, const int32_t *code, int64_t *q)
{
    for (size_t g = 0; g * RLI_WINDOW_GROUP < n; g++) {
        size_t i0 = g * RLI_WINDOW_GROUP, i1 = window_group_end(0, i0, n);
        double scale = window_factor(code[g]);
        for (size_t i = i0; i < i1; i++)
            q[i] = window_term(x[i], scale);
    }
}

void rli_window_quantize_f32(const float *x, size_t n, const int32_t *code, int64_t *q)
{
    window_quantize(x, n, code, q);
}

/* One sum, q units of 2^scale, correctly rounded to f32, for a result out
 * of f32's normal range (the general path). */
static float window_round_slow(int64_t q, int scale)
{
    if (q == 0) return 0.0f;
    bool neg = q < 0;
    u128 mag = neg ? (u128)0 - (u128)(uint64_t)q : (u128)(uint64_t)q;
    uint64_t m;
    int k;
    float r = exact_round(mag, scale, FMT_F32, &m, &k) ? ldexpf((float)m, k) : INFINITY;
    return neg ? -r : r;
}

/* out[i] = q[i] units of 2^scale, correctly rounded, for one group's n
 * elements. */
static inline void window_round_group(const int64_t *q, float *out, size_t n, int scale)
{
    double pow2 = ldexp(1.0, scale);
    int odd = 0;
    /* For |q| < 2^51 the magic number turns q into the double q exactly
     * (the inverse of window_term's step, and it vectorises); the scaling
     * is exact, and the one rounding to f32 is the correct one while the
     * result is a normal f32 (a subnormal one is rounded by the general
     * path, whatever the CPU's flush-to-zero mode). With scale in
     * [-126, 76] every such q gives zero or a normal f32 below 2^127, so
     * only q's range is checked. */
    bool normal = scale >= -126 && scale <= 127 - 51;
    for (size_t i = 0; i < n; i++) {
        int64_t b = q[i] + WINDOW_MAGIC_BITS;
        double d;
        memcpy(&d, &b, sizeof(d));
        double v = (d - WINDOW_MAGIC) * pow2;
        out[i] = (float)v;
        odd |= (q[i] >= (INT64_C(1) << 51)) | (q[i] <= -(INT64_C(1) << 51));
        if (!normal) odd |= (fabs(v) < 0x1p-126 && v != 0.0) | (fabs(v) >= 0x1p128);
    }
    if (odd)
        for (size_t i = 0; i < n; i++)
            out[i] = window_round_slow(q[i], scale);
}

WINDOW_KERNEL
static void window_round(const int64_t *q, float *out, size_t first, size_t n,
                         const int32_t *code)
{
    for (size_t i = 0, end; i < n; i = end) {
        end = window_group_end(first, i, n);
        int scale = window_exp(code[(first + i) / RLI_WINDOW_GROUP]) - RLI_WINDOW_BITS;
        window_round_group(q + i, out + i, end - i, scale);
    }
}

void rli_window_round_f32(const int64_t *q, float *out, size_t first, size_t n,
                          const int32_t *code)
{
    window_round(q, out, first, n, code);
}

/* ---- The wire form of the ring's partial sums ------------------------------ */

int rli_window_wire_bytes(int nmembers)
{
    /* Each term is at most 2^(K + 1) in magnitude; a 48-bit two's
     * complement integer holds up to 2^47 - 1. */
    return (int64_t)nmembers << (RLI_WINDOW_BITS + 1) < (INT64_C(1) << 47) ? RLI_WINDOW_WIRE : 8;
}

/*
 * The wire form of n partial sums (wb bytes each): their low 32 bits as n
 * unsigned 32-bit integers, then their high bits as n signed integers of
 * wb - 4 bytes, in the members' byte order as all ring data. Planar, so
 * that packing and unpacking vectorise.
 */
static inline int64_t wire_get(const uint8_t *w, size_t n, size_t j, int wb)
{
    uint32_t lo;
    memcpy(&lo, w + 4 * j, 4);
    int64_t hi;
    if (wb == RLI_WINDOW_WIRE) {
        int16_t h;
        memcpy(&h, w + 4 * n + 2 * j, 2);
        hi = h;
    } else {
        int32_t h;
        memcpy(&h, w + 4 * n + 4 * j, 4);
        hi = h;
    }
    return hi * INT64_C(4294967296) + (int64_t)lo;
}

static inline void wire_put(uint8_t *w, size_t n, size_t j, int64_t v, int wb)
{
    /* |v| < 2^47 (rli_window_wire_bytes) for the 6-byte form; the high
     * part by a logical shift, which vectorises (an arithmetic one does
     * not, before AVX-512), as its low bits are the same. */
    uint64_t u = (uint64_t)v;
    uint32_t lo = (uint32_t)u;
    memcpy(w + 4 * j, &lo, 4);
    if (wb == RLI_WINDOW_WIRE) {
        uint16_t h = (uint16_t)(u >> 32);
        memcpy(w + 4 * n + 2 * j, &h, 2);
    } else {
        uint32_t h = (uint32_t)(u >> 32);
        memcpy(w + 4 * n + 4 * j, &h, 4);
    }
}

/* Element j of a run of n in the form of inb bytes an element: a peer's
 * own f32 value, put on the window `scale` here (4), or a partial sum in
 * wire form (RLI_WINDOW_WIRE or 8). */
static inline int64_t window_in(const uint8_t *in, size_t n, size_t j, int inb, double scale)
{
    if (inb == 4) {
        float y;
        memcpy(&y, in + 4 * j, 4);
        return window_term(y, scale);
    }
    return wire_get(in, n, j, inb);
}

/* Elements [i, end) of a run of n, one group's: x on the window `scale`
 * plus win's (inb bytes each) into wout's sums (wb bytes each). inb and wb
 * are constants where this is inlined, so that each loop vectorises. */
static inline void window_add_run(const float *x, size_t n, size_t i, size_t end, double scale,
                                  const uint8_t *win, int inb, uint8_t *wout, int wb)
{
    for (size_t j = i; j < end; j++)
        wire_put(wout, n, j, window_term(x[j], scale) + window_in(win, n, j, inb, scale), wb);
}

WINDOW_KERNEL
static void window_add(const float *x, size_t first, size_t n, const int32_t *code,
                       const uint8_t *win, int inb, uint8_t *wout, int wb)
{
    for (size_t i = 0, end; i < n; i = end) {
        end = window_group_end(first, i, n);
        double scale = window_factor(code[(first + i) / RLI_WINDOW_GROUP]);
        if (inb == 4 && wb == RLI_WINDOW_WIRE)
            window_add_run(x, n, i, end, scale, win, 4, wout, RLI_WINDOW_WIRE);
        else if (inb == 4)
            window_add_run(x, n, i, end, scale, win, 4, wout, 8);
        else if (wb == RLI_WINDOW_WIRE)
            window_add_run(x, n, i, end, scale, win, RLI_WINDOW_WIRE, wout, RLI_WINDOW_WIRE);
        else
            window_add_run(x, n, i, end, scale, win, 8, wout, 8);
    }
}

void rli_window_add_f32(const float *x, size_t first, size_t n, const int32_t *code,
                        const uint8_t *win, int inb, uint8_t *wout, int wb)
{
    window_add(x, first, n, code, win, inb, wout, wb);
}

/* q[j - i] = x[j] + win[j] on the window `scale` for j in [i, end). */
static inline void window_sum_run(const float *x, size_t n, size_t i, size_t end, double scale,
                                  const uint8_t *win, int inb, int64_t *q)
{
    for (size_t j = i; j < end; j++)
        q[j - i] = window_term(x[j], scale) + window_in(win, n, j, inb, scale);
}

WINDOW_KERNEL
static void window_add_round(const float *x, size_t first, size_t n, const int32_t *code,
                             const uint8_t *win, int inb, float *out)
{
    int64_t q[RLI_WINDOW_GROUP];
    for (size_t i = 0, end; i < n; i = end) {
        end = window_group_end(first, i, n);
        int32_t cd = code[(first + i) / RLI_WINDOW_GROUP];
        double scale = window_factor(cd);
        if (inb == 4)
            window_sum_run(x, n, i, end, scale, win, 4, q);
        else if (inb == RLI_WINDOW_WIRE)
            window_sum_run(x, n, i, end, scale, win, RLI_WINDOW_WIRE, q);
        else
            window_sum_run(x, n, i, end, scale, win, 8, q);
        window_round_group(q, out + i, end - i, window_exp(cd) - RLI_WINDOW_BITS);
    }
}

void rli_window_add_round_f32(const float *x, size_t first, size_t n, const int32_t *code,
                              const uint8_t *win, int inb, float *out)
{
    window_add_round(x, first, n, code, win, inb, out);
}
