/*
 * wapi_allreduce.c - the all-reduce through the C worker API
 * (ringleader/worker.h), in the protocol of bench/python_allreduce.py, so
 * that bench/python.sh measures what the Python binding adds to a call: for
 * each size, max(1, B/4) floats, 3 warm-ups then ITERS timed calls, each
 * after a barrier (a collective of no data); time_us is the slowest member's
 * median. Rank 0 appends one line per size to OUT:
 *   peer=ringleader-c nodes=N bytes=B time_us=T algbw_GBps=A busbw_GBps=W ok=0|1
 * usage: wapi_allreduce OUT BYTES[,BYTES...] [ITERS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ringleader/worker.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static size_t parse_size(const char *s)
{
    char *end;
    size_t v = strtoull(s, &end, 10);
    if (*end == 'K') v <<= 10;
    if (*end == 'M') v <<= 20;
    if (*end == 'G') v <<= 30;
    return v;
}

static int fail(const char *what, int rv)
{
    fprintf(stderr, "wapi_allreduce: %s: %s (%s)\n", what, rl_errdetail(), rl_errname(rv));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: wapi_allreduce OUT BYTES[,BYTES...] [ITERS]\n");
        return 2;
    }
    int iters = argc > 3 ? atoi(argv[3]) : 30;
    if (iters < 1) iters = 1;
    rl_worker *w;
    int rv = rl_worker_join(NULL, NULL, NULL, NULL, &w);
    if (rv != RL_OK) return fail("join", rv);
    int n = rl_worker_size(w), r = rl_worker_rank(w);
    double *times = calloc((size_t)iters, sizeof(double));
    char *sizes = strdup(argv[2]), *save = NULL;
    FILE *out = r == 0 ? fopen(argv[1], "a") : NULL;
    if (times == NULL || sizes == NULL || (r == 0 && out == NULL)) return fail("setup", RL_EIO);
    for (char *s = strtok_r(sizes, ",", &save); s != NULL; s = strtok_r(NULL, ",", &save)) {
        size_t count = parse_size(s) / 4;
        if (count < 1) count = 1;
        float *x = malloc(count * sizeof(float));
        if (x == NULL) return fail("malloc", RL_ENOMEM);
        float want = (float)(n * (n + 1) / 2);
        for (int i = 0; i < iters + 3; i++) {
            for (size_t k = 0; k < count; k++)
                x[k] = (float)(r + 1);
            if ((rv = rl_worker_allreduce(w, NULL, 0, RL_F32, RL_OP_SUM)) != RL_OK)
                return fail("barrier", rv);
            double t = now_s();
            if ((rv = rl_worker_allreduce(w, x, count, RL_F32, RL_OP_SUM)) != RL_OK)
                return fail("allreduce", rv);
            if (i >= 3) times[i - 3] = now_s() - t;
        }
        int32_t ok = 1;
        for (size_t k = 0; k < count; k++)
            ok &= x[k] == want;
        qsort(times, (size_t)iters, sizeof(double), cmp_double);
        double med = iters % 2 ? times[iters / 2] : (times[iters / 2 - 1] + times[iters / 2]) / 2;
        if ((rv = rl_worker_allreduce(w, &med, 1, RL_F64, RL_OP_MAX)) != RL_OK ||
            (rv = rl_worker_allreduce(w, &ok, 1, RL_I32, RL_OP_MIN)) != RL_OK)
            return fail("result", rv);
        double alg = (double)count * 4 / med / 1e9;
        if (out != NULL)
            fprintf(out,
                    "peer=ringleader-c nodes=%d bytes=%zu time_us=%.2f algbw_GBps=%.4f "
                    "busbw_GBps=%.4f ok=%d\n",
                    n, count * 4, med * 1e6, alg, alg * 2 * (n - 1) / n, (int)ok);
        free(x);
    }
    if (out != NULL) fclose(out);
    free(sizes);
    free(times);
    rv = rl_worker_leave(w);
    return rv == RL_OK ? 0 : fail("leave", rv);
}
