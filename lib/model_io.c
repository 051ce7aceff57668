/*
 * model_io.c - reads the trained model back from a run.json.
 *
 * The writer is coordinator/report.c; the layout it writes is
 *   "status": "ok" | "failed", "error": "...",  (error only when failed)
 *   "model": {"type": "linear"|"logistic"|"softmax", "features": F,
 *             "classes": K (1 unless softmax), "weights": [K*F numbers],
 *             "bias": number (linear, logistic) | [K numbers] (softmax),
 *             "mean": null | [F numbers], "std": null | [F numbers]}
 * and a non-finite number is written as null, so a null where a number is
 * expected means the run diverged: that is reported, not read as zero.
 * Every check names the member and its position in the file.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "ringleader/model.h"
#include "rli.h"

/* "PATH:LINE:COL: message" at value v (or at the file when v is NULL). */
static int model_io_bad(const char *path, const rli_json *v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int model_io_bad(const char *path, const rli_json *v, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (v == NULL) return rli_err(RL_EDATA, "%s: %s", path, msg);
    return rli_err(RL_EDATA, "%s:%d:%d: %s", path, v->line, v->col, msg);
}

/* The member key of object obj, which must be present (reported at obj). */
static int model_io_member(const char *path, const rli_json *obj, const char *where,
                           const char *key, const rli_json **out)
{
    *out = rli_json_get(obj, key);
    if (*out == NULL) return model_io_bad(path, obj, "%s has no \"%s\"", where, key);
    return RL_OK;
}

/* A whole number in [lo, hi]. */
static int model_io_int(const char *path, const rli_json *v, const char *what, long lo, long hi,
                        long *out)
{
    if (v->kind != RLI_JSON_NUMBER || v->number != floor(v->number) || v->number < (double)lo ||
        v->number > (double)hi) {
        if (v->kind == RLI_JSON_NUMBER)
            return model_io_bad(path, v, "%s is %.17g: want a whole number in %ld..%ld", what,
                                v->number, lo, hi);
        return model_io_bad(path, v, "%s is %s: want a whole number in %ld..%ld", what,
                            rli_json_kind_name(v->kind), lo, hi);
    }
    *out = (long)v->number;
    return RL_OK;
}

/* An array of exactly n numbers into out. need says why n ("features 4 x
 * classes 3"). */
static int model_io_numbers(const char *path, const rli_json *v, const char *what, size_t n,
                            const char *need, double *out)
{
    if (v->kind != RLI_JSON_ARRAY)
        return model_io_bad(path, v, "%s is %s: want an array of %zu numbers", what,
                            rli_json_kind_name(v->kind), n);
    if (v->len != n)
        return model_io_bad(path, v, "%s has %zu numbers; %s needs %zu", what, v->len, need, n);
    for (size_t k = 0; k < n; k++) {
        const rli_json *e = v->items[k];
        if (e->kind == RLI_JSON_NULL)
            return model_io_bad(path, e,
                                "%s[%zu] is null: the run wrote a non-finite value (diverged?)",
                                what, k);
        if (e->kind != RLI_JSON_NUMBER)
            return model_io_bad(path, e, "%s[%zu] is %s: want a number", what, k,
                                rli_json_kind_name(e->kind));
        out[k] = e->number;
    }
    return RL_OK;
}

/* The "status" check: only a finished run has a model worth using. */
static int model_io_status(const char *path, const rli_json *root)
{
    const rli_json *st;
    int rc = model_io_member(path, root, "run.json", "status", &st);
    if (rc != RL_OK) return rc;
    if (st->kind != RLI_JSON_STRING)
        return model_io_bad(path, st, "\"status\" is %s: want \"ok\" or \"failed\"",
                            rli_json_kind_name(st->kind));
    if (strcmp(st->str, "ok") == 0) return RL_OK;
    const rli_json *err = rli_json_get(root, "error");
    return rli_err(RL_EPRECOND,
                   "%s: the run did not finish (status \"%.32s\": %.300s): it holds no trained "
                   "model; train again and predict with the new run.json",
                   path, st->str,
                   err != NULL && err->kind == RLI_JSON_STRING ? err->str : "no error recorded");
}

/* Reads the "model" object into m (initialised here) and the stats. */
static int model_io_model(const char *path, const rli_json *mo, rl_model *m, double **mean,
                          double **std)
{
    const rli_json *type, *features, *classes, *weights, *bias, *jmean, *jstd;
    int rc;
    if ((rc = model_io_member(path, mo, "\"model\"", "type", &type)) != RL_OK ||
        (rc = model_io_member(path, mo, "\"model\"", "features", &features)) != RL_OK ||
        (rc = model_io_member(path, mo, "\"model\"", "classes", &classes)) != RL_OK ||
        (rc = model_io_member(path, mo, "\"model\"", "weights", &weights)) != RL_OK ||
        (rc = model_io_member(path, mo, "\"model\"", "bias", &bias)) != RL_OK)
        return rc;
    jmean = rli_json_get(mo, "mean");
    jstd = rli_json_get(mo, "std");

    int t = -1;
    if (type->kind == RLI_JSON_STRING)
        for (int k = RL_MODEL_LINEAR; k <= RL_MODEL_SOFTMAX; k++)
            if (strcmp(type->str, rl_model_type_name((rl_model_type)k)) == 0) t = k;
    if (t < 0)
        return model_io_bad(path, type, "model.type: want \"linear\", \"logistic\" or \"softmax\"");
    long f = 0, k = 0;
    if ((rc = model_io_int(path, features, "model.features", 1, RL_DATA_MAX_FEATURES, &f)) !=
        RL_OK)
        return rc;
    if (t == RL_MODEL_SOFTMAX) rc = model_io_int(path, classes, "model.classes", 2, 100000, &k);
    else rc = model_io_int(path, classes, "model.classes", 1, 1, &k);
    if (rc != RL_OK) return rc;
    char need[96];
    snprintf(need, sizeof(need), "features %ld x classes %ld", f, k);
    /* The shape is checked before the model is allocated from it. */
    if (weights->kind != RLI_JSON_ARRAY || weights->len != (size_t)(f * k))
        return model_io_numbers(path, weights, "model.weights", (size_t)(f * k), need, NULL);
    if ((rc = rl_model_init(m, (rl_model_type)t, (int)f, (int)k)) != RL_OK) return rc;
    rc = model_io_numbers(path, weights, "model.weights", (size_t)(f * k), need, m->w);
    if (rc == RL_OK && t == RL_MODEL_SOFTMAX) {
        snprintf(need, sizeof(need), "classes %ld", k);
        rc = model_io_numbers(path, bias, "model.bias", (size_t)k, need, m->b);
    } else if (rc == RL_OK) {
        if (bias->kind == RLI_JSON_NUMBER) m->b[0] = bias->number;
        else rc = model_io_bad(path, bias, "model.bias is %s: want a number%s",
                               rli_json_kind_name(bias->kind),
                               bias->kind == RLI_JSON_NULL ? " (the run diverged?)" : "");
    }
    int has_mean = jmean != NULL && jmean->kind != RLI_JSON_NULL;
    int has_std = jstd != NULL && jstd->kind != RLI_JSON_NULL;
    if (rc == RL_OK && has_mean != has_std)
        rc = model_io_bad(path, has_mean ? jmean : jstd,
                          "model.mean and model.std must both be arrays or both null");
    if (rc == RL_OK && has_mean) {
        *mean = rli_calloc((size_t)f, sizeof(double));
        *std = rli_calloc((size_t)f, sizeof(double));
        snprintf(need, sizeof(need), "features %ld", f);
        rc = model_io_numbers(path, jmean, "model.mean", (size_t)f, need, *mean);
        if (rc == RL_OK) rc = model_io_numbers(path, jstd, "model.std", (size_t)f, need, *std);
        for (long j = 0; rc == RL_OK && j < f; j++)
            if ((*std)[j] < 0)
                rc = model_io_bad(path, jstd->items[j], "model.std[%ld] is negative", j);
    }
    if (rc != RL_OK) {
        rl_model_fini(m);
        free(*mean);
        free(*std);
        *mean = *std = NULL;
    }
    return rc;
}

int rl_run_json_step_ms(const char *path, double *p50_ms, int *nodes)
{
    rli_json *root = NULL;
    int rc = rli_json_load(path, &root);
    if (rc != RL_OK) return rc;
    const rli_json *st, *p50, *no;
    if (root->kind != RLI_JSON_OBJECT) {
        rc = model_io_bad(path, root, "a run.json is an object, this is %s",
                          rli_json_kind_name(root->kind));
    } else if ((rc = model_io_status(path, root)) == RL_OK &&
               (rc = model_io_member(path, root, "run.json", "step_ms", &st)) == RL_OK &&
               (rc = model_io_member(path, root, "run.json", "nodes", &no)) == RL_OK) {
        p50 = rli_json_get(st, "p50");
        if (p50 == NULL || p50->kind != RLI_JSON_NUMBER || !(p50->number > 0))
            rc = model_io_bad(path, p50 ? p50 : st, "step_ms.p50 is not a positive number");
        else if (no->kind != RLI_JSON_ARRAY || no->len == 0)
            rc = model_io_bad(path, no, "\"nodes\" is not a non-empty list");
        else {
            *p50_ms = p50->number;
            *nodes = (int)no->len;
        }
    }
    rli_json_free(root);
    return rc;
}

int rl_model_load_run_json(const char *path, rl_model *m, double **mean, double **std)
{
    memset(m, 0, sizeof(*m));
    *mean = *std = NULL;
    rli_json *root = NULL;
    int rc = rli_json_load(path, &root);
    if (rc != RL_OK) return rc;
    const rli_json *mo;
    if (root->kind != RLI_JSON_OBJECT) {
        rc = model_io_bad(path, root, "a run.json is an object, this is %s",
                          rli_json_kind_name(root->kind));
    } else if ((rc = model_io_status(path, root)) == RL_OK &&
               (rc = model_io_member(path, root, "run.json", "model", &mo)) == RL_OK) {
        if (mo->kind != RLI_JSON_OBJECT)
            rc = model_io_bad(path, mo, "\"model\" is %s: want an object",
                              rli_json_kind_name(mo->kind));
        else
            rc = model_io_model(path, mo, m, mean, std);
    }
    rli_json_free(root);
    return rc;
}
