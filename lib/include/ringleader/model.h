/*
 * model.h - the trained models and their gradient kernels.
 *
 * Three models share one layout: classes rows of weights over the features
 * plus one bias per class (classes is 1 for linear and logistic). The
 * objective minimised is
 *     F(w, b) = (1/rows) * sum over rows of loss(row) + l2/2 * |w|^2
 * (the bias is not regularised), with the per-row losses
 *     linear    0.5 * (w.x + b - y)^2
 *     logistic  log(1 + exp(-z)) if y = 1, log(1 + exp(z)) if y = 0; z = w.x + b
 *     softmax   -log softmax(z)_y,  z_k = w_k.x + b_k.
 * A step is: every node sums gradients over its blocks
 * (rl_model_grad_block), the sums are all-reduced, and every node applies
 * the same rl_model_step, so the models stay bitwise equal.
 */
#ifndef RINGLEADER_MODEL_H
#define RINGLEADER_MODEL_H

#include "export.h"

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "spec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A model; the struct is the caller's, w and b are owned by it between
 * rl_model_init and rl_model_fini. */
typedef struct rl_model {
    rl_model_type type;
    int features;
    int classes; /* softmax: K >= 2; linear and logistic: 1 */
    double *w;   /* classes * features, row-major */
    double *b;   /* classes */
} rl_model;

/*
 * Sets up *m with all weights and biases zero. classes is ignored (taken as
 * 1) for linear and logistic. Returns RL_OK, RL_EINVAL (features outside
 * 1 .. RL_DATA_MAX_FEATURES, softmax with classes < 2, unknown type) or
 * RL_ENOMEM; on error *m holds nothing to release.
 */
RL_API int rl_model_init(rl_model *m, rl_model_type type, int features, int classes);

/* Releases w and b (a zeroed or already released model is fine). */
RL_API void rl_model_fini(rl_model *m);

/* Length of a gradient vector: classes * (features + 1) doubles, the w part
 * (classes x features, row-major) first, then the bias part (classes). */
RL_API size_t rl_model_grad_len(const rl_model *m);

/*
 * Labels the model can train on: linear any finite value; logistic 0 or 1;
 * softmax an integer 0 .. classes-1. Returns RL_OK or RL_EDATA naming the
 * first bad row (by its index in the data set). Call it once per block
 * before rl_model_grad_block, which aborts on a bad softmax label.
 */
RL_API int rl_model_check_labels(const rl_model *m, const rl_block *blk);

/*
 * ADDS to grad_sum (rl_model_grad_len doubles, caller-owned) the sum over
 * the block's rows of the per-row loss gradient at the current model, and to
 * *loss_sum the sum of the per-row losses. No l2 term and no division by the
 * row count: those belong to rl_model_step, after the sums from every block
 * and node are added up. blk->features must equal m->features. Each row is
 * read once: prediction, residual and gradient update are fused per row.
 * Sums are accumulated row by row in double, in row order, so the result is
 * the same on every machine running the same build for the same block.
 */
RL_API void rl_model_grad_block(const rl_model *m, const rl_block *blk, double *grad_sum,
                                double *loss_sum);

/*
 * The objective at the current model for summed losses loss_sum over rows
 * rows: loss_sum / rows + l2/2 * |w|^2.
 */
RL_API double rl_model_objective(const rl_model *m, double loss_sum, int64_t rows, double l2);

/*
 * One gradient-descent step from the summed gradient and loss of all rows
 * (rows >= 1): gradient = grad_sum / rows + l2 * w (no l2 on the bias), then
 * w -= lr * gradient, b likewise. If loss_out is not NULL it receives the
 * objective at the model BEFORE the step (rl_model_objective).
 */
RL_API void rl_model_step(rl_model *m, const double *grad_sum, double loss_sum, int64_t rows,
                          double lr, double l2, double *loss_out);

/*
 * Prediction for one row of m->features floats x, into out (caller-owned):
 * linear out[0] = w.x + b; logistic out[0] = P(y = 1); softmax out[k] =
 * P(y = k) for k < classes (so out has classes entries).
 */
RL_API void rl_model_predict_row(const rl_model *m, const float *x, double *out);

/*
 * Loads the trained model recorded in a run.json written by `ringleader run`
 * (its "status" and "model" members; everything else is ignored) into *m,
 * which this call initialises: the caller releases it with rl_model_fini.
 * The run's standardisation comes back in *mean and *std: two new arrays of
 * m->features doubles (release with free), or both NULL when the run did
 * not standardise ("mean": null). On error *m holds nothing, *mean and *std
 * are NULL, and rl_errdetail() says what and where:
 *   RL_ENOTFOUND / RL_EPERM / RL_EIO  the file cannot be read;
 *   RL_ETOOBIG   the file is over 64 MiB;
 *   RL_EDATA     not JSON, or not a run.json model, as "PATH:LINE:COL:
 *                message" (LINE and COL from 1), e.g. "model.weights has 31
 *                numbers; features 32 x classes 1 needs 32";
 *   RL_EPRECOND  the run did not finish ("status" other than "ok"): it holds
 *                no trained model; the detail quotes the run's "error";
 *   RL_ENOMEM.
 * The file is parsed by a strict, bounded JSON reader (lib/json.c).
 */
RL_API int rl_model_load_run_json(const char *path, rl_model *m, double **mean, double **std);

/*
 * Reads a finished run's median step time and node count from its run.json
 * ("status" ok, "step_ms": {"p50": ms > 0}, "nodes": the list), for a
 * speed-up against it. Errors as rl_model_load_run_json.
 */
RL_API int rl_run_json_step_ms(const char *path, double *p50_ms, int *nodes);

#ifdef __cplusplus
}
#endif
#endif
