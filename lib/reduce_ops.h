/* reduce_ops.h - the reduction kernels, one per dtype x op (internal). */
#ifndef RINGLEADER_REDUCE_OPS_H
#define RINGLEADER_REDUCE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringleader/allreduce.h"

/*
 * dst[i] = a[i] OP b[i] for i < n. dst may be a (in place). Any pointer may
 * be unaligned (b usually points into a receive buffer). Built with -O3 so
 * that the loops vectorise.
 */
void rli_reduce(rl_dtype dt, rl_op op, void *dst, const void *a, const void *b, size_t n);

/* A kernel of the above form: dst[i] = a[i] OP b[i]. */
typedef void (*rli_reduce_fn)(void *dst, const void *a, const void *b, size_t n);

/* The kernel for dt x op; NULL for RL_OP_SUM_EXACT, which reduces rl_exact
 * accumulators with rli_exact_reduce whatever the dtype. */
rli_reduce_fn rli_reduce_kernel(rl_dtype dt, rl_op op);

/* dst[i] = a[i] + b[i] over rl_exact accumulators (exact.c), any alignment. */
void rli_exact_reduce(void *dst, const void *a, const void *b, size_t n);


/*
 * The windowed form of RL_OP_SUM_EXACT for f32 (exact.c, docs/exactness.md):
 * groups of RLI_WINDOW_GROUP elements; a group's code is the largest f32
 * exponent field among its elements (max-reduced over the members; a code of
 * RLI_WINDOW_SPECIAL means an Inf or NaN term somewhere in the group); each
 * term x becomes the int64 nearest x * 2^(RLI_WINDOW_BITS - E) (ties to
 * even), E the group's window exponent, at most 2^(RLI_WINDOW_BITS + 1) in
 * magnitude, so that 2^(62 - RLI_WINDOW_BITS) members' terms add without
 * overflow.
 */
#define RLI_WINDOW_GROUP   128
#define RLI_WINDOW_BITS    40
#define RLI_WINDOW_SPECIAL 255
/* Below this many elements the binned accumulators are used (one round). */
#define RLI_WINDOW_MIN_COUNT 16384

/* code[g] for each group of x[0..n) (the member's own codes). */
void rli_window_codes_f32(const float *x, size_t n, int32_t *code);
/* Whether any group holds an Inf or NaN term. */
bool rli_window_special(const int32_t *code, size_t ngroups);
/* q[i] = x[i] on its group's window, rounded to nearest even. */
void rli_window_quantize_f32(const float *x, size_t n, const int32_t *code, int64_t *q);
/* out[i] = q[i] units of its group's window, correctly rounded, for the
 * elements first..first+n (q and out point at element first). */
void rli_window_round_f32(const int64_t *q, float *out, size_t first, size_t n,
                          const int32_t *code);

/*
 * The ring's fused form (allreduce.c): the reduce-scatter's first hop
 * carries a member's own f32 values, the next ones partial sums of terms
 * in wb bytes each, and each member puts its own terms (and the first
 * hop's) on their windows as it adds them, so no int64 copy of the buffer
 * is made. wb is RLI_WINDOW_WIRE while nmembers' terms fit in it, else 8
 * (rli_window_wire_bytes). x and out point at element first; win holds
 * those n elements in inb bytes each (4: a peer's f32 values; wb: partial
 * sums in wire form, exact.c), and wout their sums in wire form.
 */
#define RLI_WINDOW_WIRE 6
int rli_window_wire_bytes(int nmembers);
/* wout = x + win on the windows. */
void rli_window_add_f32(const float *x, size_t first, size_t n, const int32_t *code,
                        const uint8_t *win, int inb, uint8_t *wout, int wb);
/* out = x + win on the windows, each sum rounded once (out may be x). */
void rli_window_add_round_f32(const float *x, size_t first, size_t n, const int32_t *code,
                              const uint8_t *win, int inb, float *out);

#endif
