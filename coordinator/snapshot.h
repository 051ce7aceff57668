/*
 * snapshot.h - a copy of the job's state for the readers that are not the
 * job: the status document (`ringleader status --json`, /api/status) and
 * the Prometheus metrics (/metrics). Taking one holds the job's lock only
 * for the copy; rendering works on the copy, with no lock.
 */
#ifndef RL_SNAPSHOT_H
#define RL_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ringleader/spec.h"

struct job;

/* Step history in the document: at most this many steps, evenly spread over
 * the run (the last step always in), and the last SNAP_MAX_EVENTS events. */
#define SNAP_MAX_STEPS      600
#define SNAP_MAX_EVENTS     200
#define SNAP_MAX_KINDS      24 /* distinct event kinds counted */
#define SNAP_MAX_PLAN_NODES 64 /* nodes a reassign event's detail can name (160 bytes) */

/* The histograms' upper bounds in seconds, defined once (+Inf is implied). */
#define SNAP_HIST_BOUNDS(X)                                                                        \
    X(0.0005)                                                                                      \
    X(0.001) X(0.0025) X(0.005) X(0.01) X(0.025) X(0.05) X(0.1) X(0.25) X(0.5) X(1) X(2.5) X(5)    \
        X(10)
#define SNAP_HIST_COUNT_ONE(b) +1
enum { SNAP_HIST_N = 0 SNAP_HIST_BOUNDS(SNAP_HIST_COUNT_ONE) };

/* A histogram of seconds, cumulative over the run (Prometheus semantics:
 * bucket[k] counts observations <= bound k, bucket[SNAP_HIST_N] all). */
typedef struct snap_hist {
    uint64_t bucket[SNAP_HIST_N + 1];
    double sum;
} snap_hist;

extern const double snap_hist_bounds[SNAP_HIST_N];

/* Adds one observation (seconds). */
void snap_hist_observe(snap_hist *h, double seconds);

/* Step and all-reduce time histograms, fed from the job's completed steps
 * by snapshot_take: each step 0..steps_done-1 is observed once (upto). */
typedef struct snap_step_hists {
    uint64_t upto;
    snap_hist step, allreduce;
} snap_step_hists;

typedef struct snap_node {
    char id[RL_ID_MAX];
    char listen[RL_URL_MAX];
    char phase[24];
    int state; /* node_state (registry.h) */
    int blocks;
    double rows_per_s, compute_ms, allreduce_ms, cpu_load; /* 0: not reported yet */
    double wait_ms, busy_fraction; /* the straggler signal: NaN until a step is reported */
    uint64_t rss_bytes, heartbeats, step;
    bool connected, slow;
} snap_node;

typedef struct snap_step {
    uint64_t step;
    double t_ms, loss, ms, allreduce_ms;
} snap_step;

typedef struct snap_event {
    double t_ms;
    int64_t step;
    char kind[16];
    char node[RL_ID_MAX];
    char detail[160];
} snap_event;

typedef struct job_snapshot {
    char name[RL_ID_MAX];
    int status; /* job_status (job.h) */
    bool program;
    char error[1024];
    uint64_t started_unix_ms;
    double t_ms;         /* since the job started */
    int64_t steps_total; /* the spec's training.steps; program mode: steps_seen */
    uint64_t steps_done, epoch;
    double loss, step_ms; /* the last completed step's; NaN before the first */
    uint32_t n_blocks;
    int n_nodes;
    snap_node *nodes;
    size_t n_steps;
    snap_step *steps; /* a spread of the completed steps, in order */
    size_t n_events;
    snap_event *events; /* the last ones */
    uint64_t events_total;
    int n_kinds;
    char kind[SNAP_MAX_KINDS][16]; /* events counted by kind */
    uint64_t kind_count[SNAP_MAX_KINDS];
} job_snapshot;

/* Copies j's state into s (freed with snapshot_fini), holding j's lock only
 * for the copy. hists (may be NULL) are fed the steps completed since the
 * last call. */
void snapshot_take(struct job *j, job_snapshot *s, snap_step_hists *hists);
void snapshot_fini(job_snapshot *s);

/* "expected", "alive", "failed", "left" (node); "waiting", "running", "ok",
 * "failed" (job). */
const char *snapshot_node_state(int state);
const char *snapshot_job_status(int status);

/* The status document, JSON (docs/operations.md lists its fields): the job,
 * every node, the step history, the events and block counts per epoch. */
void snapshot_write_json(const job_snapshot *s, FILE *f);
/* A "reassign" event's detail ends with "blocks ID:N ID:N ..." (job.c): the
 * node ids and counts, up to max of them, into ids and counts; returns how
 * many (0 when the detail has none; a count cut short stops the list). */
int snapshot_block_counts(const char *detail, char (*ids)[RL_ID_MAX], int *counts, int max);
/* The status document of j, a heap string (free), or NULL out of memory. */
char *snapshot_json_text(struct job *j);

#endif
