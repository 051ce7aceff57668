/*
 * run_json.c - run.json: the writer (rl_run_json_write, run_json.h) and the
 * readers of the trained model and of a baseline's step time (model.h), so
 * that every field is named and formatted here only.
 *
 * The model part of the layout is
 *   "status": "ok" | "failed" | "interrupted", "error": "...",  (error unless ok)
 *   "model": {"type": "linear"|"logistic"|"softmax", "features": F,
 *             "classes": K (1 unless softmax), "weights": [K*F numbers],
 *             "bias": number (linear, logistic) | [K numbers] (softmax),
 *             "mean": null | [F numbers], "std": null | [F numbers],
 *             "feature_names": null | [F strings]},  (absent in older files)
 *   "steps_completed": S, "steps_total": N  (steps_total absent in older files)
 * and a non-finite number is written as null, so a null where a number is
 * expected means the run diverged: that is reported, not read as zero.
 * Every check names the member and its position in the file.
 * rl_run_json_read reads the whole record (steps, nodes, events) for the
 * report.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "ringleader/model.h"
#include "ringleader/run_json.h"
#include "ringleader/spec.h"
#include "ringleader/stats.h"
#include "rli.h"

/* "PATH:LINE:COL: message" at value v (or at the file when v is NULL). */
static int run_json_bad(const char *path, const rli_json *v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int run_json_bad(const char *path, const rli_json *v, const char *fmt, ...)
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
static int run_json_member(const char *path, const rli_json *obj, const char *where,
                           const char *key, const rli_json **out)
{
    *out = rli_json_get(obj, key);
    if (*out == NULL) return run_json_bad(path, obj, "%s has no \"%s\"", where, key);
    return RL_OK;
}

/* A whole number in [lo, hi]. */
static int run_json_read_int(const char *path, const rli_json *v, const char *what, long lo,
                             long hi, long *out)
{
    if (v->kind != RLI_JSON_NUMBER || v->number != floor(v->number) || v->number < (double)lo ||
        v->number > (double)hi) {
        if (v->kind == RLI_JSON_NUMBER)
            return run_json_bad(path, v, "%s is %.17g: want a whole number in %ld..%ld", what,
                                v->number, lo, hi);
        return run_json_bad(path, v, "%s is %s: want a whole number in %ld..%ld", what,
                            rli_json_kind_name(v->kind), lo, hi);
    }
    *out = (long)v->number;
    return RL_OK;
}

/* An array of exactly n numbers into out. need says why n ("features 4 x
 * classes 3"). */
static int run_json_read_numbers(const char *path, const rli_json *v, const char *what, size_t n,
                                 const char *need, double *out)
{
    if (v->kind != RLI_JSON_ARRAY)
        return run_json_bad(path, v, "%s is %s: want an array of %zu numbers", what,
                            rli_json_kind_name(v->kind), n);
    if (v->len != n)
        return run_json_bad(path, v, "%s has %zu numbers; %s needs %zu", what, v->len, need, n);
    for (size_t k = 0; k < n; k++) {
        const rli_json *e = v->items[k];
        if (e->kind == RLI_JSON_NULL)
            return run_json_bad(
                path, e, "%s[%zu] is null: the run wrote a non-finite value (diverged?)", what, k);
        if (e->kind != RLI_JSON_NUMBER)
            return run_json_bad(path, e, "%s[%zu] is %s: want a number", what, k,
                                rli_json_kind_name(e->kind));
        out[k] = e->number;
    }
    return RL_OK;
}

/* The "status" check: only a finished run has a model worth using, or,
 * when *interrupted is not NULL, an interrupted run that completed a step
 * (then *interrupted is set). */
static int run_json_read_status_of(const char *path, const rli_json *root, bool *interrupted)
{
    const rli_json *st;
    int rc = run_json_member(path, root, "run.json", "status", &st);
    if (rc != RL_OK) return rc;
    if (st->kind != RLI_JSON_STRING)
        return run_json_bad(path, st,
                            "\"status\" is %s: want \"ok\", \"failed\" or \"interrupted\"",
                            rli_json_kind_name(st->kind));
    if (strcmp(st->str, "ok") == 0) return RL_OK;
    const rli_json *done = rli_json_get(root, "steps_completed");
    if (interrupted != NULL && strcmp(st->str, "interrupted") == 0 && done != NULL &&
        done->kind == RLI_JSON_NUMBER && done->number >= 1) {
        *interrupted = true;
        return RL_OK;
    }
    const rli_json *err = rli_json_get(root, "error");
    return rli_err(RL_EPRECOND,
                   "%s: the run did not finish (status \"%.32s\": %.300s): it holds no trained "
                   "model; train again and predict with the new run.json",
                   path, st->str,
                   err != NULL && err->kind == RLI_JSON_STRING ? err->str : "no error recorded");
}

static int run_json_read_status(const char *path, const rli_json *root)
{
    return run_json_read_status_of(path, root, NULL);
}

/* "model.feature_names": absent or null leaves *names NULL; else an array
 * of f distinct strings, copied into a new array. */
static int run_json_read_names(const char *path, const rli_json *mo, long f, char ***names)
{
    const rli_json *v = rli_json_get(mo, "feature_names");
    *names = NULL;
    if (v == NULL || v->kind == RLI_JSON_NULL) return RL_OK;
    if (v->kind != RLI_JSON_ARRAY || v->len != (size_t)f)
        return run_json_bad(path, v, "model.feature_names: want null or an array of %ld strings",
                            f);
    for (size_t k = 0; k < v->len; k++) {
        if (v->items[k]->kind != RLI_JSON_STRING)
            return run_json_bad(path, v->items[k], "model.feature_names[%zu] is %s: want a string",
                                k, rli_json_kind_name(v->items[k]->kind));
        for (size_t e = 0; e < k; e++)
            if (strcmp(v->items[e]->str, v->items[k]->str) == 0)
                return run_json_bad(path, v->items[k], "model.feature_names[%zu] repeats [%zu]", k,
                                    e);
    }
    *names = rli_calloc(v->len + 1, sizeof(char *));
    for (size_t k = 0; k < v->len; k++)
        (*names)[k] = rli_strdup(v->items[k]->str);
    return RL_OK;
}

/* A whole number member of root, or 0 when absent or not one. */
static uint64_t run_json_count(const rli_json *root, const char *key)
{
    const rli_json *v = rli_json_get(root, key);
    if (v == NULL || v->kind != RLI_JSON_NUMBER || !(v->number >= 0) || v->number > 9e15) return 0;
    return (uint64_t)v->number;
}

/* Reads the "model" object into m (initialised here) and the stats. */
static int run_json_read_model(const char *path, const rli_json *mo, rl_model *m, double **mean,
                               double **std)
{
    const rli_json *type, *features, *classes, *weights, *bias, *jmean, *jstd;
    int rc;
    if ((rc = run_json_member(path, mo, "\"model\"", "type", &type)) != RL_OK ||
        (rc = run_json_member(path, mo, "\"model\"", "features", &features)) != RL_OK ||
        (rc = run_json_member(path, mo, "\"model\"", "classes", &classes)) != RL_OK ||
        (rc = run_json_member(path, mo, "\"model\"", "weights", &weights)) != RL_OK ||
        (rc = run_json_member(path, mo, "\"model\"", "bias", &bias)) != RL_OK)
        return rc;
    jmean = rli_json_get(mo, "mean");
    jstd = rli_json_get(mo, "std");

    int t = -1;
    if (type->kind == RLI_JSON_STRING)
        for (int k = RL_MODEL_LINEAR; k <= RL_MODEL_SOFTMAX; k++)
            if (strcmp(type->str, rl_model_type_name((rl_model_type)k)) == 0) t = k;
    if (t < 0)
        return run_json_bad(path, type, "model.type: want \"linear\", \"logistic\" or \"softmax\"");
    long f = 0, k = 0;
    if ((rc = run_json_read_int(path, features, "model.features", 1, RL_DATA_MAX_FEATURES, &f)) !=
        RL_OK)
        return rc;
    if (t == RL_MODEL_SOFTMAX)
        rc = run_json_read_int(path, classes, "model.classes", 2, 100000, &k);
    else
        rc = run_json_read_int(path, classes, "model.classes", 1, 1, &k);
    if (rc != RL_OK) return rc;
    char need[96];
    snprintf(need, sizeof(need), "features %ld x classes %ld", f, k);
    /* The shape is checked before the model is allocated from it. */
    if (weights->kind != RLI_JSON_ARRAY || weights->len != (size_t)(f * k))
        return run_json_read_numbers(path, weights, "model.weights", (size_t)(f * k), need, NULL);
    if ((rc = rl_model_init(m, (rl_model_type)t, (int)f, (int)k)) != RL_OK) return rc;
    rc = run_json_read_numbers(path, weights, "model.weights", (size_t)(f * k), need, m->w);
    if (rc == RL_OK && t == RL_MODEL_SOFTMAX) {
        snprintf(need, sizeof(need), "classes %ld", k);
        rc = run_json_read_numbers(path, bias, "model.bias", (size_t)k, need, m->b);
    } else if (rc == RL_OK) {
        if (bias->kind == RLI_JSON_NUMBER)
            m->b[0] = bias->number;
        else
            rc = run_json_bad(path, bias, "model.bias is %s: want a number%s",
                              rli_json_kind_name(bias->kind),
                              bias->kind == RLI_JSON_NULL ? " (the run diverged?)" : "");
    }
    int has_mean = jmean != NULL && jmean->kind != RLI_JSON_NULL;
    int has_std = jstd != NULL && jstd->kind != RLI_JSON_NULL;
    if (rc == RL_OK && has_mean != has_std)
        rc = run_json_bad(path, has_mean ? jmean : jstd,
                          "model.mean and model.std must both be arrays or both null");
    if (rc == RL_OK && has_mean) {
        *mean = rli_calloc((size_t)f, sizeof(double));
        *std = rli_calloc((size_t)f, sizeof(double));
        snprintf(need, sizeof(need), "features %ld", f);
        rc = run_json_read_numbers(path, jmean, "model.mean", (size_t)f, need, *mean);
        if (rc == RL_OK) rc = run_json_read_numbers(path, jstd, "model.std", (size_t)f, need, *std);
        for (long j = 0; rc == RL_OK && j < f; j++)
            if ((*std)[j] < 0)
                rc = run_json_bad(path, jstd->items[j], "model.std[%ld] is negative", j);
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
        rc = run_json_bad(path, root, "a run.json is an object, this is %s",
                          rli_json_kind_name(root->kind));
    } else if ((rc = run_json_read_status(path, root)) == RL_OK &&
               (rc = run_json_member(path, root, "run.json", "step_ms", &st)) == RL_OK &&
               (rc = run_json_member(path, root, "run.json", "nodes", &no)) == RL_OK) {
        p50 = rli_json_get(st, "p50");
        if (p50 == NULL || p50->kind != RLI_JSON_NUMBER || !(p50->number > 0))
            rc = run_json_bad(path, p50 ? p50 : st, "step_ms.p50 is not a positive number");
        else if (no->kind != RLI_JSON_ARRAY || no->len == 0)
            rc = run_json_bad(path, no, "\"nodes\" is not a non-empty list");
        else {
            *p50_ms = p50->number;
            *nodes = (int)no->len;
        }
    }
    rli_json_free(root);
    return rc;
}

/* Loads path's model into out; interrupted runs only if allow_interrupted. */
static int run_json_load(const char *path, bool allow_interrupted, rl_run_model *out)
{
    memset(out, 0, sizeof(*out));
    rli_json *root = NULL;
    int rc = rli_json_load(path, &root);
    if (rc != RL_OK) return rc;
    const rli_json *mo;
    if (root->kind != RLI_JSON_OBJECT) {
        rc = run_json_bad(path, root, "a run.json is an object, this is %s",
                          rli_json_kind_name(root->kind));
    } else if ((rc = run_json_read_status_of(
                    path, root, allow_interrupted ? &out->interrupted : NULL)) == RL_OK &&
               (rc = run_json_member(path, root, "run.json", "model", &mo)) == RL_OK) {
        if (mo->kind != RLI_JSON_OBJECT)
            rc = run_json_bad(path, mo, "\"model\" is %s: want an object",
                              rli_json_kind_name(mo->kind));
        else
            rc = run_json_read_model(path, mo, &out->model, &out->mean, &out->std);
        if (rc == RL_OK)
            rc = run_json_read_names(path, mo, out->model.features, &out->feature_names);
        out->steps_completed = run_json_count(root, "steps_completed");
        out->steps_total = run_json_count(root, "steps_total");
    }
    rli_json_free(root);
    if (rc != RL_OK) rl_run_model_fini(out);
    return rc;
}

int rl_run_json_load_model(const char *path, rl_run_model *out)
{
    return run_json_load(path, true, out);
}

void rl_run_model_fini(rl_run_model *m)
{
    rl_model_fini(&m->model);
    free(m->mean);
    free(m->std);
    for (int j = 0; m->feature_names != NULL && j < m->model.features; j++)
        free(m->feature_names[j]);
    free(m->feature_names);
    memset(m, 0, sizeof(*m));
}

int rl_model_load_run_json(const char *path, rl_model *m, double **mean, double **std)
{
    rl_run_model rm;
    int rc = run_json_load(path, false, &rm);
    *m = rm.model;
    *mean = rm.mean;
    *std = rm.std;
    rm.model = (rl_model){0};
    rm.mean = rm.std = NULL;
    rl_run_model_fini(&rm);
    return rc;
}

/* ---- Writer ------------------------------------------------------------------ */

void rl_json_write_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void run_json_str(FILE *f, const char *s)
{
    rl_json_write_str(f, s);
}

/* A number; a non-finite one as null (the readers report it as such). */
static void run_json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

static void run_json_nums(FILE *f, const double *v, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i) fputc(',', f);
        run_json_num(f, v[i]);
    }
    fputc(']', f);
}

/* An array of n numbers, or null when v is NULL. */
static void run_json_nums_or_null(FILE *f, const double *v, size_t n)
{
    if (v != NULL)
        run_json_nums(f, v, n);
    else
        fputs("null", f);
}

static void run_json_model(FILE *f, const rl_model *m, const double *mean, const double *std,
                           const char *const *names)
{
    bool softmax = m->type == RL_MODEL_SOFTMAX;
    size_t K = (size_t)m->classes, F = (size_t)m->features;
    fprintf(f,
            ",\n  \"model\": {\"type\": \"%s\", \"features\": %zu, \"classes\": %zu, "
            "\"weights\": ",
            rl_model_type_name(m->type), F, softmax ? K : (size_t)1);
    run_json_nums(f, m->w, K * F);
    fputs(", \"bias\": ", f);
    if (m->b == NULL)
        fputs("null", f);
    else if (softmax)
        run_json_nums(f, m->b, K);
    else
        run_json_num(f, m->b[0]);
    fputs(", \"mean\": ", f);
    run_json_nums_or_null(f, mean, F);
    fputs(", \"std\": ", f);
    run_json_nums_or_null(f, std, F);
    fputs(", \"feature_names\": ", f);
    if (names == NULL) {
        fputs("null", f);
    } else {
        fputc('[', f);
        for (size_t j = 0; j < F; j++) {
            if (j) fputs(", ", f);
            run_json_str(f, names[j]);
        }
        fputc(']', f);
    }
    fputc('}', f);
}

static void run_json_step(FILE *f, const rl_run_report *r, const rl_run_step *s, bool first)
{
    fprintf(f, "%s\n    {\"step\": %llu, \"t_ms\": ", first ? "" : ",",
            (unsigned long long)s->step);
    run_json_num(f, s->t_ms);
    fputs(", \"loss\": ", f);
    run_json_num(f, s->loss);
    fputs(", \"ms\": ", f);
    run_json_num(f, s->ms);
    fputs(", \"allreduce_ms\": ", f);
    run_json_num(f, s->allreduce_ms);
    fputs(", \"compute_imbalance\": ", f);
    run_json_num(f, s->compute_imbalance);
    if (s->compute_ms != NULL) {
        fputs(", \"compute_ms\": {", f);
        int k = 0;
        for (size_t q = 0; q < s->n_compute && q < r->n_nodes; q++) {
            if (isnan(s->compute_ms[q])) continue;
            fputs(k++ ? ", " : "", f);
            run_json_str(f, r->nodes[q].id);
            fputs(": ", f);
            run_json_num(f, s->compute_ms[q]);
        }
        fputc('}', f);
    }
    fputc('}', f);
}

static void run_json_node(FILE *f, const rl_run_node *n, bool first)
{
    fprintf(f, "%s\n    {\"id\": ", first ? "" : ",");
    run_json_str(f, n->id);
    fprintf(f, ", \"state\": \"%s\", \"blocks\": [", n->state);
    for (size_t b = 0; b < n->n_blocks; b++)
        fprintf(f, "%s%u", b ? "," : "", n->blocks[b]);
    fprintf(f, "], \"rows\": %lld, \"compute_ms_p50\": ", (long long)n->rows);
    run_json_num(f, n->compute_ms_p50);
    fputs(", \"rows_per_s\": ", f);
    run_json_num(f, n->rows_per_s);
    fputs(", \"step_ms\": ", f);
    run_json_num(f, n->step_ms);
    fputs(", \"wait_ms\": ", f);
    run_json_num(f, n->wait_ms);
    fputs(", \"busy_fraction\": ", f);
    run_json_num(f, n->busy_fraction);
    fputs(", \"stall_ms\": ", f);
    run_json_num(f, n->stall_ms);
    if (n->has_exit_code) fprintf(f, ", \"exit_code\": %d", n->exit_code);
    fputc('}', f);
}

static void run_json_event(FILE *f, const rl_run_event *e, bool first)
{
    fprintf(f, "%s\n    {\"t_ms\": ", first ? "" : ",");
    run_json_num(f, e->t_ms);
    fprintf(f, ", \"step\": %lld, \"kind\": ", (long long)e->step);
    run_json_str(f, e->kind);
    fputs(", \"node\": ", f);
    run_json_str(f, e->node);
    fputs(", \"detail\": ", f);
    run_json_str(f, e->detail);
    if (strcmp(e->kind, "failed") == 0) {
        fputs(", \"recovery_ms\": ", f);
        if (e->recovery_ms >= 0)
            run_json_num(f, e->recovery_ms);
        else
            fputs("null", f);
    }
    fputc('}', f);
}

/* "step_ms", "speedup" and "D", the figures derived from the lists. */
/* The step-time percentile, NaN (written null) when no step was timed. */
static double run_json_step_p(const rl_run_report *r, double p)
{
    if (r->n_steps == 0) return NAN;
    double *ms = rli_malloc((r->n_steps + 1) * sizeof(double));
    for (size_t i = 0; i < r->n_steps; i++)
        ms[i] = r->steps[i].ms;
    double v = rl_percentile(ms, r->n_steps, p);
    free(ms);
    return v;
}

static void run_json_body(FILE *f, const rl_run_report *r)
{
    fprintf(f, "{\n  \"status\": \"%s\",\n",
            r->ok            ? "ok"
            : r->interrupted ? "interrupted"
                             : "failed");
    if (!r->ok) {
        fputs("  \"error\": ", f);
        run_json_str(f, r->error);
        fputs(",\n", f);
    }
    fputs("  \"spec\": ", f);
    run_json_str(f, r->spec);
    fprintf(f, ",\n  \"started_unix_ms\": %llu,\n  \"wall_s\": ",
            (unsigned long long)r->started_unix_ms);
    run_json_num(f, r->wall_s);
    run_json_model(f, r->model, r->mean, r->std, r->feature_names);
    /* The saved weights are those after steps_completed steps. */
    fprintf(f, ",\n  \"steps_completed\": %llu,\n  \"steps_total\": %llu,\n  \"final_loss\": ",
            (unsigned long long)r->steps_completed, (unsigned long long)r->steps_total);
    run_json_num(f, r->final_loss);
    fputs(",\n  \"steps\": [", f);
    for (size_t i = 0; i < r->n_steps; i++)
        run_json_step(f, r, &r->steps[i], i == 0);
    double p50_ms = run_json_step_p(r, 0.50);
    fprintf(f, "\n  ],\n  \"step_ms\": {\"p50\": ");
    run_json_num(f, p50_ms);
    fputs(", \"p99\": ", f);
    run_json_num(f, run_json_step_p(r, 0.99));
    fputs("},\n  \"nodes\": [", f);
    int members = 0;
    for (size_t i = 0; i < r->n_nodes; i++) {
        run_json_node(f, &r->nodes[i], i == 0);
        members += r->nodes[i].n_blocks > 0;
    }
    fputs("\n  ],\n  \"events\": [", f);
    for (size_t i = 0; i < r->n_events; i++)
        run_json_event(f, &r->events[i], i == 0);
    fprintf(f, "\n  ],\n  \"coverage\": {\"steps_checked\": %llu, \"violations\": %llu},\n",
            (unsigned long long)r->coverage_checked, (unsigned long long)r->coverage_violations);
    if (r->baseline != NULL && r->n_steps > 0) {
        /* The seed's T_s / T_p: the baseline run's median step over ours. */
        fputs("  \"speedup\": ", f);
        run_json_num(f, r->baseline_step_ms / p50_ms);
        fputs(",\n  \"speedup_baseline\": {\"run\": ", f);
        run_json_str(f, r->baseline);
        fputs(", \"step_ms_p50\": ", f);
        run_json_num(f, r->baseline_step_ms);
        fprintf(f, ", \"nodes\": %d},\n", r->baseline_nodes);
    }
    fputs("  \"D\": ", f);
    run_json_num(f, members ? (double)r->blocks_total / members : 0);
    fprintf(f, ",\n  \"blocks_total\": %u,\n  \"epoch\": %llu", r->blocks_total,
            (unsigned long long)r->epoch);
    if (r->program) fputs(",\n  \"program\": true", f);
    fputs("\n}\n", f);
}

static int run_json_mkdir_p(const char *dir)
{
    char tmp[RL_PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int rl_run_json_write(const char *dir, const rl_run_report *r)
{
    char path[RL_PATH_MAX + 32], tmp[RL_PATH_MAX + 48];
    if (run_json_mkdir_p(dir) != 0)
        return rli_err(RL_EIO, "cannot create %s: %s", dir, strerror(errno));
    snprintf(path, sizeof(path), "%s/run.json", dir);
    snprintf(tmp, sizeof(tmp), "%s/.run.json.%d", dir, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL) return rli_err(RL_EIO, "cannot write %s: %s", tmp, strerror(errno));
    run_json_body(f, r);
    int bad = ferror(f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) bad = 1;
    if (fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        int rc = rli_err(RL_EIO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return rc;
    }
    return RL_OK;
}

/* ---- The whole record (rl_run_json_read) ------------------------------------- */

typedef struct run_record_priv {
    rli_json *root; /* the strings point into it */
    rl_run_step *steps;
    rl_run_node *nodes;
    rl_run_event *events;
    double *compute; /* n_steps x n_nodes */
} run_record_priv;

/* A number, or NaN for null (a non-finite value written); else an error. */
static int run_json_read_num(const char *path, const rli_json *obj, const char *where,
                             const char *key, double *out)
{
    const rli_json *v;
    *out = NAN; /* defined on every path: callers read it only on RL_OK */
    int rc = run_json_member(path, obj, where, key, &v);
    if (rc != RL_OK) return rc;
    if (v->kind == RLI_JSON_NULL) return RL_OK;
    if (v->kind != RLI_JSON_NUMBER)
        return run_json_bad(path, v, "%s \"%s\" is %s: want a number", where, key,
                            rli_json_kind_name(v->kind));
    *out = v->number;
    return RL_OK;
}

static int run_json_read_text(const char *path, const rli_json *obj, const char *where,
                              const char *key, const char **out)
{
    const rli_json *v;
    int rc = run_json_member(path, obj, where, key, &v);
    if (rc != RL_OK) return rc;
    if (v->kind != RLI_JSON_STRING)
        return run_json_bad(path, v, "%s \"%s\" is %s: want a string", where, key,
                            rli_json_kind_name(v->kind));
    *out = v->str;
    return RL_OK;
}

static int run_json_read_list(const char *path, const rli_json *root, const char *key,
                              const rli_json **out)
{
    int rc = run_json_member(path, root, "run.json", key, out);
    if (rc == RL_OK && (*out)->kind != RLI_JSON_ARRAY)
        rc = run_json_bad(path, *out, "\"%s\" is %s: want a list", key,
                          rli_json_kind_name((*out)->kind));
    return rc;
}

static int run_json_read_nodes(const char *path, const rli_json *list, rl_run_record *rec,
                               run_record_priv *p)
{
    p->nodes = calloc(list->len + 1, sizeof(rl_run_node));
    if (p->nodes == NULL) return rli_err(RL_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < list->len; i++) {
        const rli_json *o = list->items[i], *blocks;
        rl_run_node *n = &p->nodes[i];
        double rows;
        int rc;
        if (o->kind != RLI_JSON_OBJECT)
            return run_json_bad(path, o, "nodes[%zu] is not an object", i);
        if ((rc = run_json_read_text(path, o, "a node", "id", &n->id)) != RL_OK ||
            (rc = run_json_read_text(path, o, "a node", "state", &n->state)) != RL_OK ||
            (rc = run_json_member(path, o, "a node", "blocks", &blocks)) != RL_OK ||
            (rc = run_json_read_num(path, o, "a node", "rows", &rows)) != RL_OK ||
            (rc = run_json_read_num(path, o, "a node", "compute_ms_p50", &n->compute_ms_p50)) !=
                RL_OK ||
            (rc = run_json_read_num(path, o, "a node", "rows_per_s", &n->rows_per_s)) != RL_OK)
            return rc;
        if (blocks->kind != RLI_JSON_ARRAY)
            return run_json_bad(path, blocks, "a node's \"blocks\" is not a list");
        n->n_blocks = blocks->len;
        n->rows = isfinite(rows) ? (int64_t)rows : 0;
    }
    rec->r.nodes = p->nodes;
    rec->r.n_nodes = list->len;
    return RL_OK;
}

static int run_json_read_steps(const char *path, const rli_json *list, rl_run_record *rec,
                               run_record_priv *p)
{
    size_t nn = rec->r.n_nodes;
    p->steps = calloc(list->len + 1, sizeof(rl_run_step));
    p->compute = calloc(list->len * nn + 1, sizeof(double));
    if (p->steps == NULL || p->compute == NULL)
        return rli_err(RL_ENOMEM, "%s: out of memory", path);
    for (size_t k = 0; k < list->len; k++) {
        const rli_json *o = list->items[k];
        rl_run_step *s = &p->steps[k];
        double step = NAN;
        int rc;
        if (o->kind != RLI_JSON_OBJECT)
            return run_json_bad(path, o, "steps[%zu] is not an object", k);
        if ((rc = run_json_read_num(path, o, "a step", "step", &step)) != RL_OK ||
            (rc = run_json_read_num(path, o, "a step", "t_ms", &s->t_ms)) != RL_OK ||
            (rc = run_json_read_num(path, o, "a step", "loss", &s->loss)) != RL_OK ||
            (rc = run_json_read_num(path, o, "a step", "ms", &s->ms)) != RL_OK ||
            (rc = run_json_read_num(path, o, "a step", "allreduce_ms", &s->allreduce_ms)) != RL_OK)
            return rc;
        if (!(step >= 0)) return run_json_bad(path, o, "a step's \"step\" is not a count");
        s->step = (uint64_t)step;
        const rli_json *c = rli_json_get(o, "compute_ms"); /* optional: per node */
        double *row = p->compute + k * nn;
        for (size_t i = 0; i < nn; i++)
            row[i] = NAN;
        if (c != NULL && c->kind == RLI_JSON_OBJECT) {
            for (size_t e = 0; e < c->len; e++)
                for (size_t i = 0; i < nn; i++)
                    if (strcmp(c->keys[e], p->nodes[i].id) == 0 &&
                        c->items[e]->kind == RLI_JSON_NUMBER)
                        row[i] = c->items[e]->number;
            s->compute_ms = row;
            s->n_compute = nn;
        }
    }
    rec->r.steps = p->steps;
    rec->r.n_steps = list->len;
    return RL_OK;
}

static int run_json_read_events(const char *path, const rli_json *list, rl_run_record *rec,
                                run_record_priv *p)
{
    p->events = calloc(list->len + 1, sizeof(rl_run_event));
    if (p->events == NULL) return rli_err(RL_ENOMEM, "%s: out of memory", path);
    for (size_t k = 0; k < list->len; k++) {
        const rli_json *o = list->items[k];
        rl_run_event *e = &p->events[k];
        double step = NAN;
        int rc;
        if (o->kind != RLI_JSON_OBJECT)
            return run_json_bad(path, o, "events[%zu] is not an object", k);
        if ((rc = run_json_read_num(path, o, "an event", "t_ms", &e->t_ms)) != RL_OK ||
            (rc = run_json_read_num(path, o, "an event", "step", &step)) != RL_OK ||
            (rc = run_json_read_text(path, o, "an event", "kind", &e->kind)) != RL_OK ||
            (rc = run_json_read_text(path, o, "an event", "node", &e->node)) != RL_OK ||
            (rc = run_json_read_text(path, o, "an event", "detail", &e->detail)) != RL_OK)
            return rc;
        e->step = isfinite(step) ? (int64_t)step : -1;
        e->recovery_ms = -1;
        const rli_json *r = rli_json_get(o, "recovery_ms");
        if (r != NULL && r->kind == RLI_JSON_NUMBER) e->recovery_ms = r->number;
    }
    rec->r.events = p->events;
    rec->r.n_events = list->len;
    return RL_OK;
}

void rl_run_record_free(rl_run_record *rec)
{
    if (rec == NULL) return;
    run_record_priv *p = rec->priv_;
    if (p != NULL) {
        rli_json_free(p->root);
        free(p->steps);
        free(p->nodes);
        free(p->events);
        free(p->compute);
        free(p);
    }
    free(rec);
}

int rl_run_json_read(const char *path, rl_run_record **out)
{
    *out = NULL;
    rl_run_record *rec = calloc(1, sizeof(*rec));
    run_record_priv *p = calloc(1, sizeof(*p));
    if (rec == NULL || p == NULL) {
        free(rec);
        free(p);
        return rli_err(RL_ENOMEM, "%s: out of memory", path);
    }
    rec->priv_ = p;
    int rc = rli_json_load(path, &p->root);
    const rli_json *root = p->root, *nodes, *steps, *events, *sm;
    if (rc != RL_OK) goto out;
    if (root->kind != RLI_JSON_OBJECT) {
        rc = run_json_bad(path, root, "a run.json is an object, this is %s",
                          rli_json_kind_name(root->kind));
        goto out;
    }
    double completed = NAN, total = NAN, base_nodes = NAN;
    if ((rc = run_json_read_text(path, root, "run.json", "status", &rec->status)) != RL_OK ||
        (rc = run_json_read_num(path, root, "run.json", "wall_s", &rec->r.wall_s)) != RL_OK ||
        (rc = run_json_read_num(path, root, "run.json", "steps_completed", &completed)) != RL_OK ||
        (rc = run_json_read_num(path, root, "run.json", "final_loss", &rec->r.final_loss)) !=
            RL_OK ||
        (rc = run_json_member(path, root, "run.json", "step_ms", &sm)) != RL_OK ||
        (rc = run_json_read_list(path, root, "nodes", &nodes)) != RL_OK ||
        (rc = run_json_read_list(path, root, "steps", &steps)) != RL_OK ||
        (rc = run_json_read_list(path, root, "events", &events)) != RL_OK ||
        (rc = run_json_read_nodes(path, nodes, rec, p)) != RL_OK ||
        (rc = run_json_read_steps(path, steps, rec, p)) != RL_OK ||
        (rc = run_json_read_events(path, events, rec, p)) != RL_OK)
        goto out;
    rec->r.ok = strcmp(rec->status, "ok") == 0;
    rec->r.interrupted = strcmp(rec->status, "interrupted") == 0;
    const rli_json *err = rli_json_get(root, "error"), *spec = rli_json_get(root, "spec");
    rec->r.error = err != NULL && err->kind == RLI_JSON_STRING ? err->str : NULL;
    rec->r.spec = spec != NULL && spec->kind == RLI_JSON_STRING ? spec->str : "";
    rec->r.steps_completed = isfinite(completed) ? (uint64_t)completed : 0;
    rec->r.steps_total = rec->r.steps_completed;
    if (run_json_read_num(path, root, "run.json", "steps_total", &total) == RL_OK &&
        isfinite(total))
        rec->r.steps_total = (uint64_t)total;
    rec->step_ms_p50 = rec->step_ms_p99 = NAN;
    if (sm->kind == RLI_JSON_OBJECT) {
        const rli_json *a = rli_json_get(sm, "p50"), *b = rli_json_get(sm, "p99");
        if (a != NULL && a->kind == RLI_JSON_NUMBER) rec->step_ms_p50 = a->number;
        if (b != NULL && b->kind == RLI_JSON_NUMBER) rec->step_ms_p99 = b->number;
    }
    const rli_json *ep = rli_json_get(root, "epoch"), *bt = rli_json_get(root, "blocks_total");
    if (ep != NULL && ep->kind == RLI_JSON_NUMBER) rec->r.epoch = (uint64_t)ep->number;
    if (bt != NULL && bt->kind == RLI_JSON_NUMBER) rec->r.blocks_total = (uint32_t)bt->number;
    const rli_json *pg = rli_json_get(root, "program");
    rec->r.program = pg != NULL && pg->kind == RLI_JSON_BOOL && pg->boolean;
    rec->speedup = NAN;
    const rli_json *su = rli_json_get(root, "speedup"),
                   *sb = rli_json_get(root, "speedup_baseline");
    if (su != NULL && su->kind == RLI_JSON_NUMBER) {
        rec->speedup = su->number;
        if (sb != NULL && sb->kind == RLI_JSON_OBJECT) {
            const rli_json *bp = rli_json_get(sb, "step_ms_p50"), *br = rli_json_get(sb, "run");
            if (bp != NULL && bp->kind == RLI_JSON_NUMBER) rec->baseline_step_ms = bp->number;
            if (br != NULL && br->kind == RLI_JSON_STRING) rec->r.baseline = br->str;
            if (run_json_read_num(path, sb, "speedup_baseline", "nodes", &base_nodes) == RL_OK &&
                isfinite(base_nodes))
                rec->baseline_nodes = (int)base_nodes;
        }
    }
out:
    if (rc != RL_OK) {
        rl_run_record_free(rec);
        return rc;
    }
    *out = rec;
    return RL_OK;
}
