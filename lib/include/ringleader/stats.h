/*
 * stats.h - sorting and order statistics of measurements (step times,
 * latencies), the one definition the programs and benchmarks share.
 */
#ifndef RINGLEADER_STATS_H
#define RINGLEADER_STATS_H

#include "export.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* qsort comparator for doubles, ascending (NaNs compare equal to anything:
 * keep them out of what is sorted). */
RL_API int rl_cmp_double(const void *a, const void *b);

/* Sorts v[0..n) ascending in place. */
RL_API void rl_sort_doubles(double *v, size_t n);

/* The median of n >= 1 sorted values: the middle one, or the mean of the two
 * middle ones when n is even. */
RL_API double rl_median_sorted(const double *v, size_t n);

/* The nearest-rank p-quantile (0 < p <= 1) of n sorted values: v[ceil(p*n)-1],
 * clamped to [v[0], v[n-1]]; 0 when n is 0. */
RL_API double rl_percentile_sorted(const double *v, size_t n, double p);

/* The same of n values in any order (v is left as it was). A control-plane
 * helper: allocates a copy and aborts on out-of-memory (mem.h). */
RL_API double rl_percentile(const double *v, size_t n, double p);

#ifdef __cplusplus
}
#endif
#endif
