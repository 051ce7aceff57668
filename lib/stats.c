/* stats.c - sorting and order statistics of measurements (stats.h). */
#include <stdlib.h>
#include <string.h>

#include "ringleader/mem.h"
#include "ringleader/stats.h"

int rl_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void rl_sort_doubles(double *v, size_t n)
{
    if (n > 1) qsort(v, n, sizeof(double), rl_cmp_double);
}

double rl_median_sorted(const double *v, size_t n)
{
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double rl_percentile_sorted(const double *v, size_t n, double p)
{
    if (n == 0) return 0;
    size_t rank = (size_t)(p * (double)n + 0.999999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1];
}

double rl_percentile(const double *v, size_t n, double p)
{
    if (n == 0) return 0;
    double *t = rl_xmalloc(n * sizeof(double));
    memcpy(t, v, n * sizeof(double));
    rl_sort_doubles(t, n);
    double r = rl_percentile_sorted(t, n, p);
    free(t);
    return r;
}
