/* reduce_ops.h - the reduction kernels, one per dtype x op (internal). */
#ifndef RINGLEADER_REDUCE_OPS_H
#define RINGLEADER_REDUCE_OPS_H

#include <stddef.h>

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

#endif
