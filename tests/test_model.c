/* test_model.c - the model kernels: gradients agree with finite differences
 * and with a plain reference, gradient descent reaches the optimum found
 * independently (normal equations for least squares, Newton's method for
 * logistic and softmax), and block order does not change the sums. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringleader/model.h"
#include "rli.h"
#include "testutil.h"

static const rl_model_type types[3] = {RL_MODEL_LINEAR, RL_MODEL_LOGISTIC, RL_MODEL_SOFTMAX};

static rl_data_params params(rl_model_type t, int64_t rows, int features, int block_rows)
{
    rl_data_params p = {.rows = rows,
                        .features = features,
                        .classes = t == RL_MODEL_SOFTMAX ? 3 : 1,
                        .model = t,
                        .noise = 0.5,
                        .seed = 1234,
                        .block_rows = block_rows};
    return p;
}

/* All the blocks of p (caller frees with blocks_free). */
static rl_block *blocks_make(const rl_data_params *p)
{
    uint32_t n = rl_data_n_blocks(p);
    rl_block *b = calloc(n, sizeof(*b));
    for (uint32_t i = 0; i < n; i++)
        ck_assert_int_eq(rl_block_synthetic(p, i, &b[i]), RL_OK);
    return b;
}

static void blocks_free(rl_block *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        rl_block_free(&b[i]);
    free(b);
}

/* Sums gradient and loss over all blocks into g (zeroed first). */
static double grad_all(const rl_model *m, const rl_block *b, uint32_t n, double *g)
{
    double loss = 0.0;
    memset(g, 0, rl_model_grad_len(m) * sizeof(double));
    for (uint32_t i = 0; i < n; i++)
        rl_model_grad_block(m, &b[i], g, &loss);
    return loss;
}

static void model_randomize(rl_model *m, uint64_t seed)
{
    uint64_t s = seed;
    size_t n = rl_model_grad_len(m);
    /* w and b are one array of grad_len doubles in the same layout. */
    for (size_t i = 0; i < n; i++)
        m->w[i] = ((double)(rlt_rand(&s) >> 11) / 9007199254740992.0 - 0.5) * 0.6;
}

/* ---- A reference written without the library: objective, gradient and
 * Hessian of the mean loss + l2/2 |w|^2, in the gradient layout. ---------- */

typedef struct ref {
    rl_model_type type;
    int f, k, n_par;
    int64_t rows;
    double *x; /* rows * f, double copies of the floats */
    double *y;
} ref;

static ref ref_make(const rl_data_params *p, const rl_block *b, uint32_t nb)
{
    ref r = {.type = p->model, .f = p->features, .k = p->classes, .rows = p->rows};
    r.n_par = r.k * (r.f + 1);
    r.x = malloc((size_t)p->rows * p->features * sizeof(double));
    r.y = malloc((size_t)p->rows * sizeof(double));
    for (uint32_t i = 0; i < nb; i++)
        for (int64_t row = 0; row < b[i].rows; row++) {
            for (int j = 0; j < r.f; j++)
                r.x[(b[i].first_row + row) * r.f + j] = b[i].x[row * r.f + j];
            r.y[b[i].first_row + row] = b[i].y[row];
        }
    return r;
}

/* Index of weight (class c, feature j) or of the bias of c (j == f). */
static int ref_idx(const ref *r, int c, int j)
{
    return j == r->f ? r->k * r->f + c : c * r->f + j;
}

/* Objective at theta; adds its gradient into g and Hessian into h when not NULL. */
static double ref_eval(const ref *r, const double *th, double l2, double *g, double *h)
{
    int f = r->f, k_n = r->k, np = r->n_par;
    double obj = 0.0, z[16], p[16];
    if (g) memset(g, 0, np * sizeof(double));
    if (h) memset(h, 0, (size_t)np * np * sizeof(double));
    for (int64_t i = 0; i < r->rows; i++) {
        const double *x = r->x + i * f;
        double a[64];
        for (int j = 0; j < f; j++)
            a[j] = x[j];
        a[f] = 1.0;
        for (int c = 0; c < k_n; c++) {
            z[c] = 0;
            for (int j = 0; j <= f; j++)
                z[c] += th[ref_idx(r, c, j)] * a[j];
        }
        double y = r->y[i];
        /* dloss/dz into p, d2loss/dz2 into hz */
        double hz[16 * 16] = {0};
        if (r->type == RL_MODEL_LINEAR) {
            obj += 0.5 * (z[0] - y) * (z[0] - y);
            p[0] = z[0] - y;
            hz[0] = 1.0;
        } else if (r->type == RL_MODEL_LOGISTIC) {
            double s = 1.0 / (1.0 + exp(-z[0]));
            obj += y == 1.0 ? -log(s) : -log(1.0 - s);
            p[0] = s - y;
            hz[0] = s * (1.0 - s);
        } else {
            double zmax = z[0], sum = 0;
            for (int c = 1; c < k_n; c++)
                if (z[c] > zmax) zmax = z[c];
            for (int c = 0; c < k_n; c++)
                sum += exp(z[c] - zmax);
            obj += zmax + log(sum) - z[(int)y];
            for (int c = 0; c < k_n; c++)
                p[c] = exp(z[c] - zmax) / sum;
            for (int c = 0; c < k_n; c++)
                for (int d = 0; d < k_n; d++)
                    hz[c * k_n + d] = (c == d ? p[c] : 0.0) - p[c] * p[d];
            p[(int)y] -= 1.0;
        }
        if (g)
            for (int c = 0; c < k_n; c++)
                for (int j = 0; j <= f; j++)
                    g[ref_idx(r, c, j)] += p[c] * a[j];
        if (h)
            for (int c = 0; c < k_n; c++)
                for (int d = 0; d < k_n; d++)
                    for (int j = 0; j <= f; j++)
                        for (int l = 0; l <= f; l++)
                            h[(size_t)ref_idx(r, c, j) * np + ref_idx(r, d, l)] +=
                                hz[c * k_n + d] * a[j] * a[l];
    }
    double n = (double)r->rows, ww = 0;
    obj /= n;
    for (int q = 0; q < k_n * f; q++)
        ww += th[q] * th[q];
    obj += 0.5 * l2 * ww;
    if (g)
        for (int q = 0; q < np; q++)
            g[q] = g[q] / n + (q < k_n * f ? l2 * th[q] : 0.0);
    if (h) {
        for (int q = 0; q < np * np; q++)
            h[q] /= n;
        for (int q = 0; q < k_n * f; q++)
            h[(size_t)q * np + q] += l2;
    }
    return obj;
}

/* Solves a x = b (n x n, destroyed) by Gaussian elimination with partial pivoting. */
static void solve(double *a, double *b, int n)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(a[r * n + c]) > fabs(a[piv * n + c])) piv = r;
        ck_assert_double_gt(fabs(a[piv * n + c]), 1e-300);
        if (piv != c) {
            for (int j = 0; j < n; j++) {
                double t = a[c * n + j];
                a[c * n + j] = a[piv * n + j];
                a[piv * n + j] = t;
            }
            double t = b[c];
            b[c] = b[piv];
            b[piv] = t;
        }
        for (int r = c + 1; r < n; r++) {
            double m = a[r * n + c] / a[c * n + c];
            for (int j = c; j < n; j++)
                a[r * n + j] -= m * a[c * n + j];
            b[r] -= m * b[c];
        }
    }
    for (int c = n - 1; c >= 0; c--) {
        for (int j = c + 1; j < n; j++)
            b[c] -= a[c * n + j] * b[j];
        b[c] /= a[c * n + c];
    }
}

/* The minimiser by damped Newton. For softmax, adding a constant to every
 * bias changes nothing (the bias is not regularised), so the Hessian is
 * singular along u = (0.., 1 on the biases); H + u u^T is not, and since
 * the gradient is orthogonal to u the step keeps sum(b) where it was. */
static void ref_newton(const ref *r, double l2, double *th)
{
    int np = r->n_par;
    double *g = malloc(np * sizeof(double)), *h = malloc((size_t)np * np * sizeof(double));
    double *t2 = malloc(np * sizeof(double));
    memset(th, 0, np * sizeof(double));
    for (int it = 0; it < 100; it++) {
        double obj = ref_eval(r, th, l2, g, h), gn = 0;
        for (int q = 0; q < np; q++)
            gn = fmax(gn, fabs(g[q]));
        if (gn < 1e-14) break;
        if (r->type == RL_MODEL_SOFTMAX)
            for (int c = 0; c < r->k; c++)
                for (int d = 0; d < r->k; d++)
                    h[(size_t)ref_idx(r, c, r->f) * np + ref_idx(r, d, r->f)] += 1.0;
        for (int q = 0; q < np; q++)
            g[q] = -g[q];
        solve(h, g, np);
        double step = 1.0;
        for (;;) {
            for (int q = 0; q < np; q++)
                t2[q] = th[q] + step * g[q];
            if (ref_eval(r, t2, l2, NULL, NULL) <= obj || step < 1e-10) break;
            step *= 0.5;
        }
        memcpy(th, t2, np * sizeof(double));
    }
    free(g);
    free(h);
    free(t2);
}

static void ref_free(ref *r)
{
    free(r->x);
    free(r->y);
}

/* ---- Gradients ------------------------------------------------------------ */

START_TEST(gradient_matches_finite_differences)
{
    /* 11 features: the vector body (8) and the scalar tail both run. */
    rl_data_params p = params(types[_i], 50, 11, 16);
    uint32_t nb = rl_data_n_blocks(&p);
    rl_block *b = blocks_make(&p);
    rl_model m;
    ck_assert_int_eq(rl_model_init(&m, p.model, p.features, p.classes), RL_OK);
    model_randomize(&m, 7 + _i);
    size_t n = rl_model_grad_len(&m), nw = (size_t)p.classes * p.features;
    double *g = malloc(n * sizeof(double)), *scratch = malloc(n * sizeof(double));
    const double l2 = 0.1, h = 1e-5;
    double loss = grad_all(&m, b, nb, g);
    double worst = 0;
    for (size_t q = 0; q < n; q++) {
        double an = g[q] / (double)p.rows + (q < nw ? l2 * m.w[q] : 0.0);
        double keep = m.w[q]; /* b follows w in the same array */
        m.w[q] = keep + h;
        double fp = rl_model_objective(&m, grad_all(&m, b, nb, scratch), p.rows, l2);
        m.w[q] = keep - h;
        double fm = rl_model_objective(&m, grad_all(&m, b, nb, scratch), p.rows, l2);
        m.w[q] = keep;
        double fd = (fp - fm) / (2 * h);
        double rel = fabs(fd - an) / fmax(fabs(an), 1e-3);
        worst = fmax(worst, rel);
        ck_assert_msg(rel < 1e-5, "%s: parameter %zu: analytic %.12g, finite difference %.12g",
                      rl_model_type_name(p.model), q, an, fd);
    }
    /* The loss is the reference's too. */
    ref r = ref_make(&p, b, nb);
    ck_assert_double_eq_tol(rl_model_objective(&m, loss, p.rows, l2),
                            ref_eval(&r, m.w, l2, NULL, NULL), 1e-12);
    ref_free(&r);
    free(g);
    free(scratch);
    rl_model_fini(&m);
    blocks_free(b, nb);
}
END_TEST

START_TEST(gradient_matches_the_reference_and_block_order_does_not_matter)
{
    rl_data_params p = params(types[_i], 1000, 19, 1000);
    rl_block *whole = blocks_make(&p);
    ref r = ref_make(&p, whole, 1);
    rl_model m;
    ck_assert_int_eq(rl_model_init(&m, p.model, p.features, p.classes), RL_OK);
    model_randomize(&m, 99);
    size_t n = rl_model_grad_len(&m);
    double *g1 = malloc(n * sizeof(double)), *g2 = malloc(n * sizeof(double));
    double *gr = malloc(n * sizeof(double));
    double l1 = grad_all(&m, whole, 1, g1);
    ref_eval(&r, m.w, 0.0, gr, NULL);
    for (size_t q = 0; q < n; q++)
        ck_assert_double_eq_tol(g1[q] / p.rows, gr[q], 1e-12 * fmax(1, fabs(gr[q])));

    /* The same rows in blocks of 37, summed in a scrambled order. */
    rl_data_params p37 = p;
    p37.block_rows = 37;
    uint32_t nb = rl_data_n_blocks(&p37);
    rl_block *b = blocks_make(&p37);
    memset(g2, 0, n * sizeof(double));
    double l2 = 0.0;
    for (uint32_t i = 0; i < nb; i++)
        rl_model_grad_block(&m, &b[(i * 11) % nb], g2, &l2); /* 11 is prime to nb = 28 */
    ck_assert_uint_eq(nb, 28);
    double gmax = 0;
    for (size_t q = 0; q < n; q++)
        gmax = fmax(gmax, fabs(g1[q]));
    for (size_t q = 0; q < n; q++)
        ck_assert_msg(fabs(g1[q] - g2[q]) <= 1e-12 * gmax, "%zu: %.17g vs %.17g", q, g1[q], g2[q]);
    ck_assert_double_eq_tol(l1, l2, 1e-12 * l1);

    /* Accumulates: a second call adds the same again (up to rounding: the
     * rows are added one by one onto what is there). */
    memcpy(g2, g1, n * sizeof(double));
    double l3 = l1;
    rl_model_grad_block(&m, &whole[0], g2, &l3);
    for (size_t q = 0; q < n; q++)
        ck_assert_double_eq_tol(g2[q], 2 * g1[q], 1e-12 * gmax);
    ck_assert_double_eq_tol(l3, 2 * l1, 1e-12 * l1);

    free(g1);
    free(g2);
    free(gr);
    ref_free(&r);
    rl_model_fini(&m);
    blocks_free(whole, 1);
    blocks_free(b, nb);
}
END_TEST

START_TEST(losses_are_stable_for_large_scores)
{
    /* A huge weight: scores of +-1e4; exp would overflow a naive formula. */
    rl_data_params p = params(types[_i], 64, 3, 64);
    rl_block *b = blocks_make(&p);
    rl_model m;
    ck_assert_int_eq(rl_model_init(&m, p.model, p.features, p.classes), RL_OK);
    for (size_t q = 0; q < (size_t)p.classes * p.features; q++)
        m.w[q] = (q % 2 ? 1e4 : -1e4);
    size_t n = rl_model_grad_len(&m);
    double *g = malloc(n * sizeof(double));
    double loss = grad_all(&m, b, 1, g);
    ck_assert(isfinite(loss));
    for (size_t q = 0; q < n; q++)
        ck_assert(isfinite(g[q]));
    double out[3];
    rl_model_predict_row(&m, b[0].x, out);
    for (int k = 0; k < (p.model == RL_MODEL_SOFTMAX ? 3 : 1); k++)
        ck_assert(isfinite(out[k]));
    free(g);
    rl_model_fini(&m);
    blocks_free(b, 1);
}
END_TEST

START_TEST(predictions_and_labels)
{
    rl_model m;
    ck_assert_int_eq(rl_model_init(&m, RL_MODEL_SOFTMAX, 2, 3), RL_OK);
    ck_assert_uint_eq(rl_model_grad_len(&m), 9);
    m.w[0] = 1;
    m.b[2] = 0.5;
    float x[2] = {2, -1};
    double out[3];
    rl_model_predict_row(&m, x, out);
    double e0 = exp(2.0), e1 = 1.0, e2 = exp(0.5), s = e0 + e1 + e2;
    ck_assert_double_eq_tol(out[0], e0 / s, 1e-15);
    ck_assert_double_eq_tol(out[1], e1 / s, 1e-15);
    ck_assert_double_eq_tol(out[2], e2 / s, 1e-15);
    float y[2] = {2, 3};
    rl_block blk = {.first_row = 10, .rows = 2, .features = 2, .x = (float[4]){0}, .y = y};
    ck_assert_int_eq(rl_model_check_labels(&m, &blk), RL_EDATA);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "row 11"));
    y[1] = 0;
    ck_assert_int_eq(rl_model_check_labels(&m, &blk), RL_OK);
    rl_model_fini(&m);

    ck_assert_int_eq(rl_model_init(&m, RL_MODEL_LOGISTIC, 2, 7), RL_OK);
    ck_assert_int_eq(m.classes, 1);
    m.b[0] = -1;
    rl_model_predict_row(&m, x, out);
    y[0] = 1;
    ck_assert_double_eq_tol(out[0], 1 / (1 + exp(1.0)), 1e-15);
    ck_assert_int_eq(rl_model_check_labels(&m, &blk), RL_OK);
    y[0] = 0.5f;
    ck_assert_int_eq(rl_model_check_labels(&m, &blk), RL_EDATA);
    rl_model_fini(&m);
    ck_assert_int_eq(rl_model_init(&m, RL_MODEL_SOFTMAX, 2, 1), RL_EINVAL);
    ck_assert_int_eq(rl_model_init(&m, RL_MODEL_LINEAR, 0, 1), RL_EINVAL);
}
END_TEST

/* ---- Convergence ---------------------------------------------------------- */

/* Runs full-batch gradient descent over the blocks; returns the last objective. */
static double descend(rl_model *m, const rl_block *b, uint32_t nb, int64_t rows, double lr,
                      double l2, int steps)
{
    size_t n = rl_model_grad_len(m);
    double *g = malloc(n * sizeof(double)), obj = 0;
    for (int s = 0; s < steps; s++) {
        double loss = grad_all(m, b, nb, g);
        rl_model_step(m, g, loss, rows, lr, l2, &obj);
    }
    free(g);
    return obj;
}

static double max_abs_diff(const double *a, const double *b, int n, double *scale)
{
    double d = 0, s = 0;
    for (int q = 0; q < n; q++) {
        d = fmax(d, fabs(a[q] - b[q]));
        s = fmax(s, fabs(b[q]));
    }
    *scale = s;
    return d;
}

/* Least squares: the minimiser of mean 0.5 r^2 + l2/2 |w|^2 solves
 * (A^T A / n + l2 D) theta = A^T y / n, A = [X 1], D = diag(1.., 0). */
START_TEST(linear_descent_reaches_least_squares)
{
    const double l2s[2] = {0.0, 0.3};
    double l2 = l2s[_i];
    rl_data_params p = params(RL_MODEL_LINEAR, 500, 10, 64);
    uint32_t nb = rl_data_n_blocks(&p);
    rl_block *b = blocks_make(&p);
    ref r = ref_make(&p, b, nb);
    int np = r.n_par, f = p.features;
    double *a = calloc((size_t)np * np, sizeof(double)), *th = calloc(np, sizeof(double));
    for (int64_t i = 0; i < p.rows; i++) {
        double row[11];
        memcpy(row, r.x + i * f, f * sizeof(double));
        row[f] = 1.0;
        for (int j = 0; j < np; j++) {
            th[j] += row[j] * r.y[i] / p.rows;
            for (int l = 0; l < np; l++)
                a[j * np + l] += row[j] * row[l] / p.rows;
        }
    }
    for (int j = 0; j < f; j++)
        a[j * np + j] += l2;
    solve(a, th, np);

    rl_model m;
    ck_assert_int_eq(rl_model_init(&m, RL_MODEL_LINEAR, f, 1), RL_OK);
    double obj = descend(&m, b, nb, p.rows, 0.5, l2, 600);
    double scale, d = max_abs_diff(m.w, th, np, &scale);
    /* Tolerance: 1e-9 relative to the largest parameter. */
    ck_assert_msg(d <= 1e-9 * scale, "l2 %g: max |theta - theta_ls| = %g (scale %g)", l2, d, scale);
    ck_assert_double_eq_tol(obj, ref_eval(&r, th, l2, NULL, NULL), 1e-12);
    free(a);
    free(th);
    ref_free(&r);
    rl_model_fini(&m);
    blocks_free(b, nb);
}
END_TEST

/* Logistic and softmax with l2 = 0.05 (strictly convex in w): descent
 * reaches the Newton optimum. Softmax biases are compared centred. */
START_TEST(descent_reaches_the_newton_optimum)
{
    rl_model_type t = _i == 0 ? RL_MODEL_LOGISTIC : RL_MODEL_SOFTMAX;
    const double l2 = 0.05;
    rl_data_params p = params(t, 400, 9, 50);
    uint32_t nb = rl_data_n_blocks(&p);
    rl_block *b = blocks_make(&p);
    ref r = ref_make(&p, b, nb);
    double *th = malloc(r.n_par * sizeof(double));
    ref_newton(&r, l2, th);
    double obj_star = ref_eval(&r, th, l2, NULL, NULL);

    rl_model m;
    ck_assert_int_eq(rl_model_init(&m, t, p.features, p.classes), RL_OK);
    double obj = descend(&m, b, nb, p.rows, t == RL_MODEL_LOGISTIC ? 2.0 : 1.0, l2, 1500);
    if (t == RL_MODEL_SOFTMAX) {
        double mb = 0, mt = 0;
        for (int k = 0; k < p.classes; k++) {
            mb += m.b[k] / p.classes;
            mt += th[p.classes * p.features + k] / p.classes;
        }
        for (int k = 0; k < p.classes; k++) {
            m.b[k] -= mb;
            th[p.classes * p.features + k] -= mt;
        }
    }
    double scale, d = max_abs_diff(m.w, th, r.n_par, &scale);
    /* Tolerances: parameters within 1e-8 of the optimum relative to the
     * largest, objective within 1e-12. */
    ck_assert_msg(d <= 1e-8 * scale, "%s: max |theta - theta*| = %g (scale %g)",
                  rl_model_type_name(t), d, scale);
    ck_assert_msg(fabs(obj - obj_star) <= 1e-12, "%s: objective %.15g vs %.15g",
                  rl_model_type_name(t), obj, obj_star);
    free(th);
    ref_free(&r);
    rl_model_fini(&m);
    blocks_free(b, nb);
}
END_TEST

/* The hand-vectorised kernel (AVX-512 CPUs) against the portable one:
 * bitwise equal, for feature counts around every lane boundary and row
 * counts that leave a partial tile. On a CPU without AVX-512 both sides run
 * the portable kernel. */
START_TEST(simd_kernel_is_bitwise_the_portable_one)
{
    for (int f = 1; f <= 70; f += 3) {
        rl_data_params p = params(types[_i], 1003, f, 1003);
        rl_block *b = blocks_make(&p);
        rl_model m;
        ck_assert_int_eq(rl_model_init(&m, p.model, p.features, p.classes), RL_OK);
        model_randomize(&m, 7 + (uint64_t)f);
        size_t n = rl_model_grad_len(&m);
        double *g1 = malloc(n * sizeof(double)), *g2 = malloc(n * sizeof(double));
        rli_model_simd = false;
        double l1 = grad_all(&m, b, 1, g1);
        rli_model_simd = true;
        double l2 = grad_all(&m, b, 1, g2);
        ck_assert_msg(memcmp(g1, g2, n * sizeof(double)) == 0 && memcmp(&l1, &l2, sizeof l1) == 0,
                      "%s, %d features: the SIMD kernel differs", rl_model_type_name(p.model), f);
        free(g1);
        free(g2);
        rl_model_fini(&m);
        blocks_free(b, 1);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("gradients");
    tcase_add_loop_test(tc, gradient_matches_finite_differences, 0, 3);
    tcase_add_loop_test(tc, gradient_matches_the_reference_and_block_order_does_not_matter, 0, 3);
    tcase_add_loop_test(tc, losses_are_stable_for_large_scores, 0, 3);
    tcase_add_test(tc, predictions_and_labels);
    tcase_add_loop_test(tc, simd_kernel_is_bitwise_the_portable_one, 0, 3);
    suite_add_tcase(s, tc);

    tc = tcase_create("convergence");
    tcase_add_loop_test(tc, linear_descent_reaches_least_squares, 0, 2);
    tcase_add_loop_test(tc, descent_reaches_the_newton_optimum, 0, 2);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
