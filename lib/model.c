/*
 * model.c - linear, logistic and softmax models: losses, gradients, steps.
 *
 * rl_model_grad_block is the hot loop of training. It reads each row once:
 * the prediction (a dot product of double weights with float features), the
 * residual, and the gradient update (an axpy into the double gradient) are
 * fused per row while the row is in L1. Rows go in tiles of MODEL_TILE: the
 * tile's dot products are independent (they overlap in the pipeline), and
 * their updates are added to g in one pass, row after row in row order, so
 * the result is bitwise the same as one row at a time, with a quarter of
 * the loads and stores of g.
 *
 * Vectorisation. This file is compiled with -O3 (lib/CMakeLists.txt), and
 *  - the axpy g[j] += r * (double)x[j] vectorises as it is;
 *  - the dot product is a floating-point reduction, which GCC will not
 *    reorder without -ffast-math. It is written with MODEL_LANES independent
 *    partial sums (acc[l] takes elements j = l mod MODEL_LANES), combined in
 *    a fixed order at the end; GCC turns the partial sums into vector
 *    accumulators (SLP). The summation order is thus fixed by this code, not
 *    by the vector width: SSE2 (2 doubles) and AVX2 (4 doubles) give bitwise
 *    the same result, and -ffp-contract=off keeps FMA out of it.
 *  - On x86-64 with GCC the kernels are built three times (target_clones:
 *    AVX-512F, AVX2 and the baseline), chosen once at load time by the CPU;
 *    by the above all three agree bitwise, so nodes with different CPUs
 *    compute the same gradients (checked over every model type and 1..70
 *    features when the AVX-512 clone went in). The AVX-512 clone keeps
 *    GCC's default 256-bit vector preference, which was the faster of the
 *    two (docs/performance.md, "Gradient pass").
 * `-fopt-info-vec` on this file reports the dot and axpy loops vectorised
 * in every kernel (see docs/architecture.md, "The model kernels").
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ringleader/model.h"
#include "rli.h"

#define MODEL_LANES 8 /* partial sums of a dot product */
#define MODEL_TILE  4 /* rows whose gradient updates share one pass over g */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MODEL_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MODEL_KERNEL
#endif

/* w . x with MODEL_LANES partial sums (see the top of the file). */
static inline double model_dot(const double *restrict w, const float *restrict x, int n)
{
    double acc[MODEL_LANES] = {0};
    int j = 0;
    for (; j + MODEL_LANES <= n; j += MODEL_LANES)
        for (int l = 0; l < MODEL_LANES; l++)
            acc[l] += w[j + l] * (double)x[j + l];
    double s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for (; j < n; j++)
        s += w[j] * (double)x[j];
    return s;
}

/* g += r * x */
static inline void model_axpy(double *restrict g, double r, const float *restrict x, int n)
{
    for (int j = 0; j < n; j++)
        g[j] += r * (double)x[j];
}

/*
 * g += r[0] x0 + r[1] x1 + r[2] x2 + r[3] x3 for four consecutive rows
 * (stride floats apart), added one row after the other: bitwise what four
 * calls of model_axpy would give, with one load and store of g instead of
 * four.
 */
static inline void model_axpy4(double *restrict g, const double *r, const float *restrict x,
                               size_t stride, int n)
{
    const double r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
    const float *x0 = x, *x1 = x + stride, *x2 = x + 2 * stride, *x3 = x + 3 * stride;
    for (int j = 0; j < n; j++)
        g[j] = (((g[j] + r0 * (double)x0[j]) + r1 * (double)x1[j]) + r2 * (double)x2[j]) +
               r3 * (double)x3[j];
}

int rl_model_init(rl_model *m, rl_model_type type, int features, int classes)
{
    memset(m, 0, sizeof(*m));
    if (type != RL_MODEL_LINEAR && type != RL_MODEL_LOGISTIC && type != RL_MODEL_SOFTMAX)
        return rli_err(RL_EINVAL, "model: unknown type %d", (int)type);
    if (type != RL_MODEL_SOFTMAX) classes = 1;
    if (features < 1 || features > RL_DATA_MAX_FEATURES)
        return rli_err(RL_EINVAL, "model: features %d (must be 1 to %d)", features,
                       RL_DATA_MAX_FEATURES);
    if (type == RL_MODEL_SOFTMAX && (classes < 2 || classes > 10000))
        return rli_err(RL_EINVAL, "model: softmax with %d classes (must be 2 to 10000)", classes);
    size_t nw = (size_t)classes * (size_t)features;
    m->w = calloc(nw + (size_t)classes, sizeof(double));
    if (m->w == NULL) return rli_err(RL_ENOMEM, "model: %zu weights", nw);
    m->b = m->w + nw;
    m->type = type;
    m->features = features;
    m->classes = classes;
    return RL_OK;
}

void rl_model_fini(rl_model *m)
{
    free(m->w); /* b lives in the same allocation */
    m->w = NULL;
    m->b = NULL;
}

size_t rl_model_grad_len(const rl_model *m)
{
    return (size_t)m->classes * ((size_t)m->features + 1);
}

int rl_model_check_labels(const rl_model *m, const rl_block *blk)
{
    for (int i = 0; i < blk->rows; i++)
        if (!rl_label_valid(m->type, m->classes, blk->y[i]))
            return rli_err(RL_EDATA, "row %lld: label %g is not %s",
                           (long long)(blk->first_row + i), (double)blk->y[i],
                           rl_label_rule(m->type));
    return RL_OK;
}

/* Rows [i, rows) of the linear kernel one at a time (the tail after the
 * last whole tile), adding into g, *loss and *gb. */
static inline void model_linear_rows(const double *restrict w, double b, const float *restrict x,
                                     const float *restrict y, int i, int rows, int f,
                                     double *restrict g, double *loss, double *gb)
{
    for (; i < rows; i++) {
        const float *xi = x + (size_t)i * f;
        double r = model_dot(w, xi, f) + b - (double)y[i];
        *loss += 0.5 * r * r;
        *gb += r;
        model_axpy(g, r, xi, f);
    }
}

/* log(1 + exp(-|z|)) and the logistic sigmoid of z, without overflow. */
static inline double model_sigmoid(double z, double *log1p_e)
{
    double e = exp(-fabs(z));
    *log1p_e = log1p(e);
    return z >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

MODEL_KERNEL
static void model_grad_linear(const double *restrict w, double b, const float *restrict x,
                              const float *restrict y, int rows, int f, double *restrict g,
                              double *loss_sum)
{
    double loss = 0.0, gb = 0.0;
    int i = 0;
    for (; i + MODEL_TILE <= rows; i += MODEL_TILE) {
        const float *xi = x + (size_t)i * f;
        double r[MODEL_TILE];
        for (int t = 0; t < MODEL_TILE; t++)
            r[t] = model_dot(w, xi + (size_t)t * f, f) + b - (double)y[i + t];
        for (int t = 0; t < MODEL_TILE; t++) {
            loss += 0.5 * r[t] * r[t];
            gb += r[t];
        }
        model_axpy4(g, r, xi, (size_t)f, f);
    }
    model_linear_rows(w, b, x, y, i, rows, f, g, &loss, &gb);
    g[f] += gb;
    *loss_sum += loss;
}

/*
 * The linear kernel by hand for AVX-512F, since GCC's vectoriser leaves the
 * dot product's final combine scalar and runs the four dots of a tile one
 * after the other. This does the same arithmetic in the same order as
 * model_grad_linear (8 partial sums per dot, lanes l and l+4 first; the
 * 4-row update row after row; no FMA: -ffp-contract=off and separate mul
 * and add), so it is bitwise the portable kernel (tests/test_model.c checks
 * it against rli_model_simd = false) and faster than its AVX-512 clone
 * (docs/performance.md, "Gradient pass").
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MODEL_HAVE_AVX512 1

__attribute__((target("avx512f"))) static inline double model_hsum8(__m512d a)
{
    __m256d v = _mm256_add_pd(_mm512_castpd512_pd256(a), _mm512_extractf64x4_pd(a, 1));
    __m128d u = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(u, _mm_unpackhi_pd(u, u)));
}

__attribute__((target("avx512f"))) static inline __m512d model_load8(const float *x)
{
    return _mm512_cvtps_pd(_mm256_loadu_ps(x));
}

__attribute__((target("avx512f"))) static void
model_grad_linear_avx512(const double *restrict w, double b, const float *restrict x,
                         const float *restrict y, int rows, int f, double *restrict g,
                         double *loss_sum)
{
    double loss = 0.0, gb = 0.0;
    const int f8 = f - f % MODEL_LANES;
    int i = 0;
    for (; i + MODEL_TILE <= rows; i += MODEL_TILE) {
        const float *x0 = x + (size_t)i * f, *x1 = x0 + f, *x2 = x1 + f, *x3 = x2 + f;
        __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        for (int j = 0; j < f8; j += MODEL_LANES) {
            __m512d wv = _mm512_loadu_pd(w + j);
            a0 = _mm512_add_pd(a0, _mm512_mul_pd(wv, model_load8(x0 + j)));
            a1 = _mm512_add_pd(a1, _mm512_mul_pd(wv, model_load8(x1 + j)));
            a2 = _mm512_add_pd(a2, _mm512_mul_pd(wv, model_load8(x2 + j)));
            a3 = _mm512_add_pd(a3, _mm512_mul_pd(wv, model_load8(x3 + j)));
        }
        double r[MODEL_TILE] = {model_hsum8(a0), model_hsum8(a1), model_hsum8(a2),
                                model_hsum8(a3)};
        for (int j = f8; j < f; j++) {
            r[0] += w[j] * (double)x0[j];
            r[1] += w[j] * (double)x1[j];
            r[2] += w[j] * (double)x2[j];
            r[3] += w[j] * (double)x3[j];
        }
        for (int t = 0; t < MODEL_TILE; t++) {
            r[t] = r[t] + b - (double)y[i + t];
            loss += 0.5 * r[t] * r[t];
            gb += r[t];
        }
        const __m512d r0 = _mm512_set1_pd(r[0]), r1 = _mm512_set1_pd(r[1]),
                      r2 = _mm512_set1_pd(r[2]), r3 = _mm512_set1_pd(r[3]);
        for (int j = 0; j < f8; j += MODEL_LANES) {
            __m512d gv = _mm512_loadu_pd(g + j);
            gv = _mm512_add_pd(gv, _mm512_mul_pd(r0, model_load8(x0 + j)));
            gv = _mm512_add_pd(gv, _mm512_mul_pd(r1, model_load8(x1 + j)));
            gv = _mm512_add_pd(gv, _mm512_mul_pd(r2, model_load8(x2 + j)));
            gv = _mm512_add_pd(gv, _mm512_mul_pd(r3, model_load8(x3 + j)));
            _mm512_storeu_pd(g + j, gv);
        }
        for (int j = f8; j < f; j++)
            g[j] = (((g[j] + r[0] * (double)x0[j]) + r[1] * (double)x1[j]) + r[2] * (double)x2[j]) +
                   r[3] * (double)x3[j];
    }
    model_linear_rows(w, b, x, y, i, rows, f, g, &loss, &gb); /* as model_grad_linear */
    g[f] += gb;
    *loss_sum += loss;
}
#endif

bool rli_model_simd = true;

MODEL_KERNEL
static void model_grad_logistic(const double *restrict w, double b, const float *restrict x,
                                const float *restrict y, int rows, int f, double *restrict g,
                                double *loss_sum)
{
    double loss = 0.0, gb = 0.0;
    int i = 0;
    for (; i < rows; i += MODEL_TILE) {
        const float *xi = x + (size_t)i * f;
        int tile = rows - i < MODEL_TILE ? rows - i : MODEL_TILE;
        double r[MODEL_TILE];
        for (int t = 0; t < tile; t++) {
            double z = model_dot(w, xi + (size_t)t * f, f) + b, l1pe;
            double p = model_sigmoid(z, &l1pe);
            double yi = (double)y[i + t];
            /* -y log p - (1-y) log(1-p) = log(1 + e^-|z|) + max(z, 0) - y z */
            loss += l1pe + (z > 0.0 ? z : 0.0) - yi * z;
            r[t] = p - yi;
            gb += r[t];
        }
        if (tile == MODEL_TILE)
            model_axpy4(g, r, xi, (size_t)f, f);
        else
            for (int t = 0; t < tile; t++)
                model_axpy(g, r[t], xi + (size_t)t * f, f);
    }
    g[f] += gb;
    *loss_sum += loss;
}

/* Scores, then r = softmax(z) - onehot(c), for one row; returns its loss. */
static inline double model_softmax_row(const double *restrict w, const double *restrict b,
                                       const float *restrict xi, int c, int f, int k_n,
                                       double *restrict z)
{
    double zmax = -INFINITY;
    for (int k = 0; k < k_n; k++) {
        z[k] = model_dot(w + (size_t)k * f, xi, f) + b[k];
        if (z[k] > zmax) zmax = z[k];
    }
    double zc = z[c], sum = 0.0;
    for (int k = 0; k < k_n; k++) {
        double e = exp(z[k] - zmax);
        sum += e;
        z[k] = e;
    }
    double inv = 1.0 / sum;
    for (int k = 0; k < k_n; k++)
        z[k] = z[k] * inv - (k == c ? 1.0 : 0.0);
    /* -log softmax(z)_c = log(sum of exp(z_k - zmax)) + zmax - z_c */
    return log(sum) + (zmax - zc);
}

/* r (MODEL_TILE * classes doubles of scratch) is the caller's. */
MODEL_KERNEL
static void model_grad_softmax(const double *restrict w, const double *restrict b,
                               const float *restrict x, const float *restrict y, int rows, int f,
                               int k_n, double *restrict g, double *restrict r, double *loss_sum)
{
    double loss = 0.0;
    double *gb = g + (size_t)k_n * f;
    for (int i = 0; i < rows; i += MODEL_TILE) {
        const float *xi = x + (size_t)i * f;
        int tile = rows - i < MODEL_TILE ? rows - i : MODEL_TILE;
        for (int t = 0; t < tile; t++) {
            int c = (int)y[i + t];
            RL_ASSERT(c >= 0 && c < k_n); /* rl_model_check_labels comes first */
            double *rt = r + (size_t)t * k_n;
            loss += model_softmax_row(w, b, xi + (size_t)t * f, c, f, k_n, rt);
            for (int k = 0; k < k_n; k++)
                gb[k] += rt[k];
        }
        for (int k = 0; k < k_n; k++) {
            if (tile == MODEL_TILE) {
                double rk[MODEL_TILE];
                for (int t = 0; t < MODEL_TILE; t++)
                    rk[t] = r[(size_t)t * k_n + k];
                model_axpy4(g + (size_t)k * f, rk, xi, (size_t)f, f);
            } else {
                for (int t = 0; t < tile; t++)
                    model_axpy(g + (size_t)k * f, r[(size_t)t * k_n + k], xi + (size_t)t * f, f);
            }
        }
    }
    *loss_sum += loss;
}

void rl_model_grad_block(const rl_model *m, const rl_block *blk, double *grad_sum, double *loss_sum)
{
    RL_ASSERT(blk->features == m->features);
    if (blk->rows == 0) return;
    switch (m->type) {
    case RL_MODEL_LINEAR:
#ifdef MODEL_HAVE_AVX512
        if (rli_model_simd && __builtin_cpu_supports("avx512f")) {
            model_grad_linear_avx512(m->w, m->b[0], blk->x, blk->y, blk->rows, m->features,
                                     grad_sum, loss_sum);
            break;
        }
#endif
        model_grad_linear(m->w, m->b[0], blk->x, blk->y, blk->rows, m->features, grad_sum,
                          loss_sum);
        break;
    case RL_MODEL_LOGISTIC:
        model_grad_logistic(m->w, m->b[0], blk->x, blk->y, blk->rows, m->features, grad_sum,
                            loss_sum);
        break;
    case RL_MODEL_SOFTMAX: {
        double *r = rli_malloc(MODEL_TILE * (size_t)m->classes * sizeof(double));
        model_grad_softmax(m->w, m->b, blk->x, blk->y, blk->rows, m->features, m->classes, grad_sum,
                           r, loss_sum);
        free(r);
        break;
    }
    default:
        RL_ASSERT(!"unknown model type");
    }
}

double rl_model_objective(const rl_model *m, double loss_sum, int64_t rows, double l2)
{
    RL_ASSERT(rows >= 1);
    size_t nw = (size_t)m->classes * (size_t)m->features;
    double ww = 0.0;
    for (size_t j = 0; j < nw; j++)
        ww += m->w[j] * m->w[j];
    return loss_sum / (double)rows + 0.5 * l2 * ww;
}

void rl_model_step(rl_model *m, const double *grad_sum, double loss_sum, int64_t rows, double lr,
                   double l2, double *loss_out)
{
    if (loss_out != NULL) *loss_out = rl_model_objective(m, loss_sum, rows, l2);
    size_t nw = (size_t)m->classes * (size_t)m->features;
    double inv = 1.0 / (double)rows;
    for (size_t j = 0; j < nw; j++)
        m->w[j] -= lr * (grad_sum[j] * inv + l2 * m->w[j]);
    for (int k = 0; k < m->classes; k++)
        m->b[k] -= lr * (grad_sum[nw + (size_t)k] * inv);
}

void rl_model_predict_row(const rl_model *m, const float *x, double *out)
{
    int f = m->features;
    switch (m->type) {
    case RL_MODEL_LINEAR:
        out[0] = model_dot(m->w, x, f) + m->b[0];
        break;
    case RL_MODEL_LOGISTIC: {
        double l1pe;
        out[0] = model_sigmoid(model_dot(m->w, x, f) + m->b[0], &l1pe);
        break;
    }
    case RL_MODEL_SOFTMAX: {
        double zmax = -INFINITY, sum = 0.0;
        for (int k = 0; k < m->classes; k++) {
            out[k] = model_dot(m->w + (size_t)k * f, x, f) + m->b[k];
            if (out[k] > zmax) zmax = out[k];
        }
        for (int k = 0; k < m->classes; k++) {
            out[k] = exp(out[k] - zmax);
            sum += out[k];
        }
        for (int k = 0; k < m->classes; k++)
            out[k] /= sum;
        break;
    }
    default:
        RL_ASSERT(!"unknown model type");
    }
}
