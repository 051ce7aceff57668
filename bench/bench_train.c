/*
 * bench_train.c - `ringleader bench train`: the single-node gradient
 * kernel (issue 4). Synthetic blocks covering ROWS rows are made once
 * (rl_block_synthetic), then full passes of rl_model_grad_block over every
 * block are timed: one untimed warm-up pass, then ITERS timed passes, the
 * median reported. One line per (model, rows) configuration:
 *   peer=ringleader bench=train model=linear rows=.. features=.. dtype=f32
 *   pass_ms=.. rows_per_s=.. GBps=.. ...
 * GBps counts the feature bytes streamed per pass, rows * features *
 * sizeof(float) (labels and gradient traffic are left out), 1 GB = 1e9 B.
 *
 * In the same run it measures memcpy as ../shared/bench/membw.c does (one
 * thread, 256 MiB, pages touched first, one warm-up copy, median of 10, GB/s
 * counting destination bytes), so that the kernel's GBps can be quoted as a
 * ratio to the memory limit measured minutes apart on the same machine:
 *   peer=memcpy bench=memcpy bytes=268435456 time_us=.. GBps=.. reps=10
 *
 * The library keeps features as float32 (data.h) and the kernels read only
 * float32; `--dtype f64` is accepted so scripts can ask for it, and prints a
 * line with skipped=1 instead of a measurement.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "ringleader/data.h"
#include "ringleader/err.h"
#include "ringleader/model.h"
#include "ringleader/stats.h"
#include "ringleader/clock.h"

#define TRAIN_MAX_ROWS_LIST 16
#define TRAIN_MAX_MODELS    3
#define MEMCPY_BYTES        (256UL << 20)
#define MEMCPY_REPS         10

typedef struct train_opts {
    int64_t rows[TRAIN_MAX_ROWS_LIST];
    int nrows;
    rl_model_type models[TRAIN_MAX_MODELS];
    int nmodels;
    int features, classes, block_rows, iters;
    int f64;    /* --dtype f64: not supported by the kernels, reported as skipped */
    int memcpy; /* measure memcpy too (default 1) */
    uint64_t seed;
} train_opts;

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: ringleader bench train [options]\n\n"
            "Times full passes of the gradient kernel (rl_model_grad_block) over synthetic\n"
            "blocks on one core: a warm-up pass, then the median of ITERS passes. Prints\n"
            "one line per model and row count, plus memcpy bandwidth measured as\n"
            "../shared/bench/membw.c does (256 MiB, median of 10), so the kernel's GBps\n"
            "can be compared with the memory limit from the same run.\n\n"
            "  --rows N[,N...]        rows of the data set (default 2000000; e.g. 50000,2000000)\n"
            "  --features F           features per row (default 64)\n"
            "  --model M[,M...]       linear|logistic|softmax (default linear)\n"
            "  --classes K            softmax classes (default 10)\n"
            "  --dtype f32|f64        feature type (default f32). The library stores and\n"
            "                         reads features as float32 only (data.h): f64 is not\n"
            "                         measured, a line with skipped=1 says so\n"
            "  --iters K              timed passes (default 10)\n"
            "  --block-rows B         rows per block (default 4096, the spec's default)\n"
            "  --seed S               synthetic data seed (default 7)\n"
            "  --no-memcpy            skip the memcpy measurement\n\n"
            "GBps = rows * features * 4 bytes per pass / pass time (1 GB = 1e9 B).\n");
}

/* A decimal integer in [lo, hi], the whole string; 0 on success. */
static int parse_int64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_model(const char *s, rl_model_type *out)
{
    if (strcmp(s, "linear") == 0)
        *out = RL_MODEL_LINEAR;
    else if (strcmp(s, "logistic") == 0)
        *out = RL_MODEL_LOGISTIC;
    else if (strcmp(s, "softmax") == 0)
        *out = RL_MODEL_SOFTMAX;
    else
        return -1;
    return 0;
}

/* Splits a comma list in place and calls one item at a time; count or -1. */
static int parse_rows_list(char *s, int64_t *out, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (n == max || parse_int64(tok, 1, (int64_t)1 << 40, &out[n]) != 0) return -1;
        n++;
    }
    return n;
}

static int parse_models_list(char *s, rl_model_type *out, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (n == max || parse_model(tok, &out[n]) != 0) return -1;
        n++;
    }
    return n;
}

static int parse_train(int argc, char **argv, train_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->rows[0] = 2000000;
    o->nrows = 1;
    o->models[0] = RL_MODEL_LINEAR;
    o->nmodels = 1;
    o->features = 64;
    o->classes = 10;
    o->block_rows = 4096;
    o->iters = 10;
    o->memcpy = 1;
    o->seed = 7;
    char rows_buf[256], models_buf[64];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--no-memcpy") == 0) {
            o->memcpy = 0;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "ringleader bench train: %s needs a value\n", a);
            return -1;
        }
        int64_t n = 0;
        int bad = 0;
        if (strcmp(a, "--rows") == 0) {
            snprintf(rows_buf, sizeof(rows_buf), "%s", v);
            o->nrows = parse_rows_list(rows_buf, o->rows, TRAIN_MAX_ROWS_LIST);
            bad = o->nrows <= 0;
        } else if (strcmp(a, "--model") == 0) {
            snprintf(models_buf, sizeof(models_buf), "%s", v);
            o->nmodels = parse_models_list(models_buf, o->models, TRAIN_MAX_MODELS);
            bad = o->nmodels <= 0;
        } else if (strcmp(a, "--features") == 0) {
            bad = parse_int64(v, 1, RL_DATA_MAX_FEATURES, &n) != 0;
            o->features = (int)n;
        } else if (strcmp(a, "--classes") == 0) {
            bad = parse_int64(v, 2, 10000, &n) != 0;
            o->classes = (int)n;
        } else if (strcmp(a, "--iters") == 0) {
            bad = parse_int64(v, 1, 100000, &n) != 0;
            o->iters = (int)n;
        } else if (strcmp(a, "--block-rows") == 0) {
            bad = parse_int64(v, 1, 16777216, &n) != 0;
            o->block_rows = (int)n;
        } else if (strcmp(a, "--seed") == 0) {
            bad = parse_int64(v, 0, INT64_MAX, &n) != 0;
            o->seed = (uint64_t)n;
        } else if (strcmp(a, "--dtype") == 0) {
            if (strcmp(v, "f32") == 0)
                o->f64 = 0;
            else if (strcmp(v, "f64") == 0)
                o->f64 = 1;
            else
                bad = 1;
        } else {
            fprintf(stderr, "ringleader bench train: unknown option %s\n", a);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "ringleader bench train: bad value '%s' for %s (see --help)\n", v, a);
            return -1;
        }
        i++;
    }
    return 0;
}

/* memcpy bandwidth, the method of ../shared/bench/membw.c with one thread. */
static int measure_memcpy(void)
{
    char *dst = aligned_alloc(4096, MEMCPY_BYTES), *src = aligned_alloc(4096, MEMCPY_BYTES);
    if (dst == NULL || src == NULL) {
        fprintf(stderr, "ringleader bench train: cannot allocate 2 x 256 MiB for memcpy\n");
        free(dst);
        free(src);
        return -1;
    }
    float *fd = (float *)dst, *fs = (float *)src;
    for (size_t i = 0; i < MEMCPY_BYTES / sizeof(float); i++) { /* fault every page in */
        fd[i] = 0.0f;
        fs[i] = 1.0f;
    }
    double times[MEMCPY_REPS];
    for (int r = 0; r < MEMCPY_REPS + 1; r++) {
        double t0 = rl_clock_s();
        memcpy(dst, src, MEMCPY_BYTES);
        double t1 = rl_clock_s();
        if (r > 0) times[r - 1] = t1 - t0; /* the first copy is the warm-up */
    }
    double check = fd[MEMCPY_BYTES / sizeof(float) / 2];
    free(dst);
    free(src);
    rl_sort_doubles(times, MEMCPY_REPS);
    double med = rl_median_sorted(times, MEMCPY_REPS);
    printf("peer=memcpy bench=memcpy threads=1 bytes=%lu time_us=%.1f GBps=%.2f "
           "traffic_GBps=%.2f reps=%d check=%g\n",
           MEMCPY_BYTES, med * 1e6, (double)MEMCPY_BYTES / med / 1e9,
           2.0 * (double)MEMCPY_BYTES / med / 1e9, MEMCPY_REPS, check);
    fflush(stdout);
    return 0;
}

/* Zeroes grad, then adds every block's gradient: one pass over the data. */
static void grad_pass(const rl_model *m, const rl_block *blocks, uint32_t nblocks, double *grad,
                      size_t grad_len, double *loss)
{
    memset(grad, 0, grad_len * sizeof(double));
    *loss = 0.0;
    for (uint32_t i = 0; i < nblocks; i++)
        rl_model_grad_block(m, &blocks[i], grad, loss);
}

/*
 * One configuration: makes the blocks, checks the labels once, runs the
 * warm-up and timed passes and prints the line. Returns 0 or -1 (after
 * printing the reason to stderr).
 */
static int bench_one(const train_opts *o, rl_model_type type, int64_t rows)
{
    int classes = type == RL_MODEL_SOFTMAX ? o->classes : 1;
    if (o->f64) {
        printf("peer=ringleader bench=train model=%s rows=%lld features=%d classes=%d dtype=f64 "
               "skipped=1 reason=kernels_read_float32_features_only\n",
               rl_model_type_name(type), (long long)rows, o->features, classes);
        fflush(stdout);
        return 0;
    }
    rl_data_params p = {.rows = rows,
                        .features = o->features,
                        .classes = classes,
                        .model = type,
                        .noise = 0.1,
                        .seed = o->seed,
                        .block_rows = o->block_rows};
    uint32_t nblocks = rl_data_n_blocks(&p);
    rl_model m;
    rl_block *blocks = calloc(nblocks, sizeof(*blocks));
    double *grad = NULL, *times = calloc((size_t)o->iters, sizeof(double));
    int rc = -1, rv;
    memset(&m, 0, sizeof(m));
    if (blocks == NULL || times == NULL) {
        fprintf(stderr, "ringleader bench train: out of memory for %u blocks\n", nblocks);
        goto out;
    }
    if ((rv = rl_model_init(&m, type, o->features, classes)) != RL_OK) {
        fprintf(stderr, "ringleader bench train: %s\n", rl_errdetail());
        goto out;
    }
    /* Non-zero weights (the generating model), so the kernel sees realistic
     * residuals and, for logistic and softmax, non-trivial exponentials. */
    rl_data_true_model(&p, m.w, m.b);
    size_t grad_len = rl_model_grad_len(&m);
    grad = calloc(grad_len, sizeof(double));
    if (grad == NULL) {
        fprintf(stderr, "ringleader bench train: out of memory for the gradient\n");
        goto out;
    }
    double t_gen = rl_clock_s();
    for (uint32_t i = 0; i < nblocks; i++) {
        if ((rv = rl_block_synthetic(&p, i, &blocks[i])) != RL_OK ||
            (rv = rl_model_check_labels(&m, &blocks[i])) != RL_OK) {
            fprintf(stderr, "ringleader bench train: block %u: %s: %s\n", i, rl_errname(rv),
                    rl_errdetail());
            goto out;
        }
    }
    t_gen = rl_clock_s() - t_gen;

    double loss = 0.0;
    grad_pass(&m, blocks, nblocks, grad, grad_len, &loss); /* warm-up */
    for (int it = 0; it < o->iters; it++) {
        double t0 = rl_clock_s();
        grad_pass(&m, blocks, nblocks, grad, grad_len, &loss);
        times[it] = rl_clock_s() - t0;
    }
    rl_sort_doubles(times, (size_t)o->iters);
    double med = rl_median_sorted(times, (size_t)o->iters);
    double bytes = (double)rows * o->features * sizeof(float);
    printf("peer=ringleader bench=train model=%s rows=%lld features=%d classes=%d dtype=f32 "
           "pass_ms=%.3f rows_per_s=%.4g GBps=%.3f iters=%d min_ms=%.3f max_ms=%.3f "
           "blocks=%u block_rows=%d threads=1 gen_s=%.2f loss=%.6g\n",
           rl_model_type_name(type), (long long)rows, o->features, classes, med * 1e3,
           (double)rows / med, bytes / med / 1e9, o->iters, times[0] * 1e3,
           times[o->iters - 1] * 1e3, nblocks, o->block_rows, t_gen, loss / (double)rows);
    fflush(stdout);
    rc = 0;
out:
    if (blocks != NULL)
        for (uint32_t i = 0; i < nblocks; i++)
            rl_block_free(&blocks[i]);
    free(blocks);
    free(grad);
    free(times);
    rl_model_fini(&m);
    return rc;
}

int bench_train(int argc, char **argv)
{
    train_opts o;
    if (cli_wants_help(argc, argv)) {
        train_usage(stdout);
        return RL_EXIT_OK;
    }
    if (parse_train(argc, argv, &o) != 0) return RL_EXIT_USAGE;
    if (o.memcpy && measure_memcpy() != 0) return RL_EXIT_FAILED;
    int rc = RL_EXIT_OK;
    for (int r = 0; r < o.nrows; r++)
        for (int k = 0; k < o.nmodels; k++)
            if (bench_one(&o, o.models[k], o.rows[r]) != 0) rc = RL_EXIT_FAILED;
    return rc;
}
