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

#endif
