/*
 * data.c - blocks: cutting a data set into blocks, synthetic data from a
 * seed, copying blocks out of a CSV table (csv.c reads it), and
 * standardisation.
 *
 * Synthetic data uses no RNG state at all: every number is a hash of
 * (seed, stream, row or class, feature) through splitmix64's finaliser, so
 * any block can be made anywhere, in any order, with the same floats.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ringleader/data.h"
#include "rli.h"

/* Independent streams of the generator, one per kind of number. */
enum { STREAM_X = 1, STREAM_NOISE = 2, STREAM_W = 3, STREAM_B = 4 };

static uint64_t data_splitmix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t data_hash(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b)
{
    uint64_t h = data_splitmix64(seed ^ (stream * 0xd1b54a32d192ed03ULL));
    h = data_splitmix64(h ^ a);
    return data_splitmix64(h ^ b);
}

/* A uniform double in the open interval (0, 1). */
static double data_uniform(uint64_t h)
{
    return ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Two independent N(0,1) draws (Box-Muller) from one hash. */
static void data_normal_pair(uint64_t h, double *n0, double *n1)
{
    double u1 = data_uniform(h);
    double u2 = data_uniform(data_splitmix64(h ^ 0x5851f42d4c957f2dULL));
    double r = sqrt(-2.0 * log(u1));
    double t = 6.283185307179586 * u2;
    *n0 = r * cos(t);
    *n1 = r * sin(t);
}

static double data_normal(uint64_t h)
{
    double n0, n1;
    data_normal_pair(h, &n0, &n1);
    return n0;
}

/* Checks what every function here relies on. */
static int data_params_check(const rl_data_params *p)
{
    if (p->rows < 0 || p->block_rows < 1)
        return rli_err(RL_EINVAL, "data: rows %lld, block_rows %d", (long long)p->rows,
                       p->block_rows);
    if (p->features < 1 || p->features > RL_DATA_MAX_FEATURES)
        return rli_err(RL_EINVAL, "data: features %d (must be 1 to %d)", p->features,
                       RL_DATA_MAX_FEATURES);
    int want_k = p->model == RL_MODEL_SOFTMAX ? p->classes : 1;
    if (p->classes != want_k || p->classes < 1 || (p->model == RL_MODEL_SOFTMAX && want_k < 2))
        return rli_err(RL_EINVAL, "data: classes %d for a %s model", p->classes,
                       rl_model_type_name(p->model));
    if ((p->rows + p->block_rows - 1) / p->block_rows > (int64_t)UINT32_MAX)
        return rli_err(RL_EINVAL, "data: %lld rows in blocks of %d make more than %u blocks",
                       (long long)p->rows, p->block_rows, UINT32_MAX);
    return RL_OK;
}

int rl_data_params_from_spec(const rl_spec *spec, rl_data_params *p)
{
    memset(p, 0, sizeof(*p));
    p->rows = spec->source == RL_DATA_SYNTHETIC ? spec->rows : 0;
    p->features = spec->features;
    p->model = spec->model;
    p->classes = spec->model == RL_MODEL_SOFTMAX ? spec->classes : 1;
    p->noise = spec->noise;
    p->seed = spec->seed;
    p->block_rows = spec->block_rows;
    int rc = data_params_check(p);
    return rc == RL_OK ? RL_OK : rli_err_prefix(RL_ECONFIG, "spec %s", spec->path);
}

bool rl_label_valid(rl_model_type type, int classes, float y)
{
    switch (type) {
    case RL_MODEL_LINEAR:
        return isfinite(y);
    case RL_MODEL_LOGISTIC:
        return y == 0.0f || y == 1.0f;
    default:
        return y >= 0.0f && y < (float)classes && y == floorf(y);
    }
}

const char *rl_label_rule(rl_model_type type)
{
    return type == RL_MODEL_LINEAR     ? "a finite number"
           : type == RL_MODEL_LOGISTIC ? "0 or 1 (logistic)"
                                       : "a class index 0 .. classes-1";
}

uint32_t rl_data_n_blocks(const rl_data_params *p)
{
    RL_ASSERT(p->block_rows >= 1 && p->rows >= 0);
    int64_t n = (p->rows + p->block_rows - 1) / p->block_rows;
    RL_ASSERT(n <= (int64_t)UINT32_MAX);
    return (uint32_t)n;
}

void rl_block_free(rl_block *b)
{
    if (b == NULL) return;
    free(b->x);
    free(b->y);
    b->x = NULL;
    b->y = NULL;
}

/* Sets out's geometry for block id and allocates its buffers. */
int rl_block_alloc(const rl_data_params *p, uint32_t id, rl_block *out)
{
    memset(out, 0, sizeof(*out));
    int rc = data_params_check(p);
    if (rc != RL_OK) return rc;
    uint32_t n = rl_data_n_blocks(p);
    if (id >= n) return rli_err(RL_EINVAL, "data: block %u of %u", id, n);
    int64_t first = (int64_t)id * p->block_rows;
    int64_t rows = p->rows - first < p->block_rows ? p->rows - first : p->block_rows;
    out->id = id;
    out->first_row = first;
    out->rows = (int)rows;
    out->features = p->features;
    /* rows <= 2^31 and features <= 100000: the product fits a size_t. */
    size_t nx = (size_t)rows * (size_t)p->features;
    out->x = malloc(nx * sizeof(float));
    out->y = malloc((size_t)rows * sizeof(float));
    if (out->x == NULL || out->y == NULL) {
        rl_block_free(out);
        return rli_err(RL_ENOMEM, "data: block %u: %zu features", id, nx);
    }
    return RL_OK;
}

void rl_data_true_model(const rl_data_params *p, double *w, double *b)
{
    /* Scaled so that w.x has unit variance whatever the feature count. */
    double scale = 1.0 / sqrt((double)p->features);
    for (int k = 0; k < p->classes; k++) {
        for (int j = 0; j < p->features; j++)
            w[(size_t)k * p->features + j] =
                scale * data_normal(data_hash(p->seed, STREAM_W, (uint64_t)k, (uint64_t)j));
        b[k] = 0.5 * data_normal(data_hash(p->seed, STREAM_B, (uint64_t)k, 0));
    }
}

/* The features of data-set row `row`: pairs of features share one
 * Box-Muller draw (cos for the even one, sin for the odd one). */
static void data_make_features(const rl_data_params *p, uint64_t row, float *x)
{
    int f = p->features;
    for (int j = 0; j < f; j += 2) {
        double n0, n1;
        data_normal_pair(data_hash(p->seed, STREAM_X, row, (uint64_t)j >> 1), &n0, &n1);
        x[j] = (float)n0;
        if (j + 1 < f) x[j + 1] = (float)n1;
    }
}

static double data_dot(const double *w, const float *x, int f)
{
    double s = 0.0;
    for (int j = 0; j < f; j++)
        s += w[j] * (double)x[j];
    return s;
}

int rl_block_synthetic(const rl_data_params *p, uint32_t block_id, rl_block *out)
{
    int rc = rl_block_alloc(p, block_id, out);
    if (rc != RL_OK) return rc;
    int f = p->features, k_n = p->classes;
    size_t nw = (size_t)k_n * (size_t)f;
    double *w = malloc((nw + (size_t)k_n) * sizeof(double));
    if (w == NULL) {
        rl_block_free(out);
        return rli_err(RL_ENOMEM, "data: true model of %zu weights", nw);
    }
    double *b = w + nw;
    rl_data_true_model(p, w, b);

    for (int i = 0; i < out->rows; i++) {
        uint64_t row = (uint64_t)(out->first_row + i);
        float *x = out->x + (size_t)i * f;
        data_make_features(p, row, x);
        double y;
        switch (p->model) {
        case RL_MODEL_LINEAR:
            y = data_dot(w, x, f) + b[0] +
                p->noise * data_normal(data_hash(p->seed, STREAM_NOISE, row, 0));
            break;
        case RL_MODEL_LOGISTIC: {
            double u = data_uniform(data_hash(p->seed, STREAM_NOISE, row, 0));
            double z = data_dot(w, x, f) + b[0] + p->noise * log(u / (1.0 - u));
            y = z > 0.0 ? 1.0 : 0.0;
            break;
        }
        case RL_MODEL_SOFTMAX: {
            double best = -INFINITY;
            y = 0.0;
            for (int k = 0; k < k_n; k++) {
                double z =
                    data_dot(w + (size_t)k * f, x, f) + b[k] +
                    p->noise * data_normal(data_hash(p->seed, STREAM_NOISE, row, (uint64_t)k));
                if (z > best) {
                    best = z;
                    y = (double)k;
                }
            }
            break;
        }
        default:
            RL_ASSERT(!"unknown model type");
        }
        out->y[i] = (float)y;
    }
    free(w);
    return RL_OK;
}

int rl_table_block(const rl_table *t, const rl_data_params *p, uint32_t block_id, rl_block *out)
{
    if (p->rows != t->rows || p->features != t->features) {
        memset(out, 0, sizeof(*out));
        return rli_err(RL_EINVAL,
                       "data: params say %lld rows x %d features, the table has %lld x %d",
                       (long long)p->rows, p->features, (long long)t->rows, t->features);
    }
    int rc = rl_block_alloc(p, block_id, out);
    if (rc != RL_OK) return rc;
    size_t f = (size_t)t->features;
    memcpy(out->x, t->x + (size_t)out->first_row * f, (size_t)out->rows * f * sizeof(float));
    if (t->y != NULL) memcpy(out->y, t->y + out->first_row, (size_t)out->rows * sizeof(float));
    else memset(out->y, 0, (size_t)out->rows * sizeof(float)); /* a table without labels */
    return RL_OK;
}

/* Two passes in double: the mean, then the mean squared deviation from it
 * (no cancellation, unlike sum of squares minus squared sum). The inner
 * loops run along a row, so they vectorise. */
void rl_table_standardize_stats(const rl_table *t, double *mean, double *std)
{
    int f = t->features;
    for (int j = 0; j < f; j++) {
        mean[j] = 0.0;
        std[j] = 0.0;
    }
    if (t->rows == 0) return;
    for (int64_t i = 0; i < t->rows; i++) {
        const float *x = t->x + (size_t)i * f;
        for (int j = 0; j < f; j++)
            mean[j] += (double)x[j];
    }
    for (int j = 0; j < f; j++)
        mean[j] /= (double)t->rows;
    for (int64_t i = 0; i < t->rows; i++) {
        const float *x = t->x + (size_t)i * f;
        for (int j = 0; j < f; j++) {
            double d = (double)x[j] - mean[j];
            std[j] += d * d;
        }
    }
    for (int j = 0; j < f; j++)
        std[j] = sqrt(std[j] / (double)t->rows);
}

void rl_block_standardize(rl_block *b, const double *mean, const double *std)
{
    int f = b->features;
    for (int i = 0; i < b->rows; i++) {
        float *x = b->x + (size_t)i * f;
        for (int j = 0; j < f; j++)
            if (std[j] != 0.0 && isfinite(std[j]))
                x[j] = (float)(((double)x[j] - mean[j]) / std[j]);
    }
}
