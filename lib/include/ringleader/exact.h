/*
 * exact.h - exact, order-independent sums of f32 and f64 values.
 *
 * An rl_exact is a binned fixed-point accumulator (after ReproBLAS's binned
 * sums): the binary exponent range is cut into 32-bit bins on one global
 * grid, and an accumulator holds three adjacent bins as int64 counts under
 * the bin of its largest term ("top"). A term enters as its 32-bit digits
 * in those bins, truncated toward zero below the lowest; a term larger than
 * the window moves the window up and drops the lowest bins. Because the
 * grid is global and bins are never carried into one another, the sum is
 * exactly
 *     sum over terms t of trunc(t, 2^(32 * (top - 2)))
 * where top is the bin of the largest |t|: integer additions, associative
 * and commutative, so the value is the same whatever the order, grouping,
 * node count or algorithm. Precision: at least 64 bits below the leading bit
 * of the largest term (2^-64 relative to it, per term); at most 2^30 terms
 * per element. NaN and infinities are kept as flags and give IEEE's result
 * (NaN for any NaN or for +Inf with -Inf, else the infinity). The final
 * rounding to f64 or f32 is correctly rounded (to nearest, ties to even);
 * an exact sum beyond the format's range gives +-Inf, an exact zero +0.0.
 * See docs/exactness.md.
 *
 * The struct is also the wire form of RL_OP_SUM_EXACT (host byte order,
 * 32 bytes, no padding).
 */
#ifndef RINGLEADER_EXACT_H
#define RINGLEADER_EXACT_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RL_EXACT_BINS      3
#define RL_EXACT_BIN_BITS  32
#define RL_EXACT_EMPTY     INT32_MIN  /* top of an accumulator with no finite nonzero term */
#define RL_EXACT_MAX_TERMS (1u << 30) /* terms per element the bins hold without overflow */

enum { RL_EXACT_NAN = 1u, RL_EXACT_PINF = 2u, RL_EXACT_NINF = 4u };

typedef struct rl_exact {
    int64_t bin[RL_EXACT_BINS]; /* bin[i] counts units of 2^(32 * (top - i)) */
    int32_t top;                /* the grid bin of the largest term, or RL_EXACT_EMPTY */
    uint32_t flags;             /* RL_EXACT_NAN | RL_EXACT_PINF | RL_EXACT_NINF */
} rl_exact;

/* Sets n accumulators (caller-owned) to the empty sum. */
RL_API void rl_exact_clear(rl_exact *acc, size_t n);

/* acc[i] += x[i] for i < n, exactly as described above. */
RL_API void rl_exact_add_f64(rl_exact *acc, const double *x, size_t n);
RL_API void rl_exact_add_f32(rl_exact *acc, const float *x, size_t n);

/* dst[i] += src[i] for i < n (dst may be src). */
RL_API void rl_exact_merge(rl_exact *dst, const rl_exact *src, size_t n);

/* out[i] = acc[i], correctly rounded (see above). out may not alias acc. */
RL_API void rl_exact_to_f64(const rl_exact *acc, double *out, size_t n);
RL_API void rl_exact_to_f32(const rl_exact *acc, float *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif
