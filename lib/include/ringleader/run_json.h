/*
 * run.json - the record of one run, written by `ringleader run` and read by
 * `ringleader predict` and `ringleader run --baseline`. lib/run_json.c
 * holds both the writer (here) and the readers (rl_model_load_run_json and
 * rl_run_json_step_ms, declared in model.h), so every field name and format
 * is defined in one place. Users' scripts read these fields: keep them.
 */
#ifndef RINGLEADER_RUN_JSON_H
#define RINGLEADER_RUN_JSON_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ringleader/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One step of "steps". */
typedef struct rl_run_step {
    uint64_t step;
    double t_ms, loss, ms, allreduce_ms, compute_imbalance;
    /* Compute ms per node, indexed as rl_run_report.nodes (NaN: that node had
     * none), or NULL to leave "compute_ms" out; n_compute entries. */
    const double *compute_ms;
    size_t n_compute;
} rl_run_step;

/* One node of "nodes". */
typedef struct rl_run_node {
    const char *id;
    const char *state;      /* "alive", "failed", "left" or "never joined" */
    const uint32_t *blocks; /* the blocks it held last, n_blocks of them */
    size_t n_blocks;
    int64_t rows;
    double compute_ms_p50, rows_per_s;
    /* program mode: "exit_code", how its program ended (128 + N: killed by
     * signal N); written when has_exit_code */
    bool has_exit_code;
    int exit_code;
    /* The straggler signal of its last heartbeat with one, means per step
     * (NaN: null): step time, time waiting on others, its busy fraction
     * (1 - wait / step) and time its process did not run. */
    double step_ms, wait_ms, busy_fraction, stall_ms;
} rl_run_node;

/* One event of "events". */
typedef struct rl_run_event {
    double t_ms;
    int64_t step;
    const char *kind, *node, *detail;
    double recovery_ms; /* written for kind "failed" only; < 0 is null */
} rl_run_event;

/* Everything a run.json holds. Non-finite numbers are written as null. */
typedef struct rl_run_report {
    bool ok;           /* "status": "ok", else "failed" or "interrupted" */
    bool interrupted;  /* with !ok: stopped by the user (SIGINT, SIGTERM), "interrupted" */
    const char *error; /* written when !ok */
    const char *spec;
    uint64_t started_unix_ms;
    double wall_s;
    const rl_model *model; /* with its standardisation, or NULL mean and std */
    const double *mean, *std;
    /* "model.feature_names": the CSV header names of the model's features,
     * in order (model->features of them), or NULL (synthetic data): null. */
    const char *const *feature_names;
    uint64_t steps_completed, steps_total; /* "steps_total": the spec's training.steps */
    double final_loss;                     /* NaN: null */
    const rl_run_step *steps;              /* "step_ms" is their p50 and p99 */
    size_t n_steps;
    const rl_run_node *nodes; /* "D" is blocks_total over those holding blocks */
    size_t n_nodes;
    const rl_run_event *events;
    size_t n_events;
    uint64_t coverage_checked, coverage_violations;
    /* The --baseline run (NULL: no "speedup"), its median step and nodes. */
    const char *baseline;
    double baseline_step_ms;
    int baseline_nodes;
    uint32_t blocks_total;
    uint64_t epoch;
    bool program; /* "program": true when the user's program ran the steps */
} rl_run_report;

/*
 * Writes DIR/run.json atomically (a temporary file in DIR, fsync, rename),
 * creating DIR and its parents. Returns RL_OK, or RL_EIO with rl_errdetail()
 * "cannot create DIR: why" or "cannot write PATH: why".
 */
RL_API int rl_run_json_write(const char *dir, const rl_run_report *r);

/* A whole run.json as `ringleader report` reads it: r holds its lists (steps
 * with compute_ms indexed as r.nodes, nodes with their block counts but
 * blocks NULL, events), status the "status" text; a number the file has as
 * null is NaN. Everything is owned by the record. */
typedef struct rl_run_record {
    rl_run_report r;
    const char *status;        /* "ok", "failed" or "interrupted" */
    double step_ms_p50, step_ms_p99;
    double speedup;            /* NaN: the run had no --baseline */
    double baseline_step_ms;   /* with speedup */
    int baseline_nodes;
    void *priv_;
} rl_run_record;

/*
 * Reads the run.json at path into *out (free with rl_run_record_free).
 * RL_OK, or RL_ENOTFOUND / RL_EPERM / RL_EIO, or RL_EDATA with
 * rl_errdetail() "PATH:LINE:COL: what" for a file that is not a run.json
 * (a member missing or of the wrong kind, named).
 */
RL_API int rl_run_json_read(const char *path, rl_run_record **out);
RL_API void rl_run_record_free(rl_run_record *rec);

/* Writes s (NUL-terminated UTF-8) to f as a JSON string literal, quotes
 * included: '"' and '\\' escaped, control characters as \u00XX. Used by
 * every JSON document the project writes (run.json, status, logs). */
RL_API void rl_json_write_str(FILE *f, const char *s);

/* A trained model as `predict` reads it from a run.json. */
typedef struct rl_run_model {
    rl_model model;
    double *mean, *std;   /* the run's standardisation, or both NULL */
    char **feature_names; /* model.features names in order, or NULL (synthetic data,
                             or a run.json written before names were recorded) */
    bool interrupted;     /* "status" "interrupted": the model after steps_completed */
    uint64_t steps_completed, steps_total; /* steps_total 0: not recorded */
} rl_run_model;

/*
 * Loads the model of a run.json into *out (overwritten; release it with
 * rl_run_model_fini, also after an error). Like rl_model_load_run_json
 * (same errors), but a run with "status" "interrupted" that completed at
 * least one step is accepted (out->interrupted says so): its model is the
 * consistent one after steps_completed steps. A failed run, or one
 * interrupted before its first step, is RL_EPRECOND.
 */
RL_API int rl_run_json_load_model(const char *path, rl_run_model *out);

/* Releases what rl_run_json_load_model allocated (a zeroed struct is fine). */
RL_API void rl_run_model_fini(rl_run_model *m);

#ifdef __cplusplus
}
#endif
#endif
