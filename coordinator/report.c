/*
 * report.c - the job's record handed to the run.json writer (lib/run_json.c,
 * which names and formats every field) and the progress line on stderr.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "ringleader/err.h"
#include "ringleader/log.h"
#include "ringleader/mem.h"
#include "ringleader/run_json.h"
#include "ringleader/stats.h"

static const char *report_state(node_state s)
{
    return s == NODE_JOINED   ? "alive"
           : s == NODE_FAILED ? "failed"
           : s == NODE_LEFT   ? "left"
                              : "never joined";
}

/* The steps the coordinator saw, into out (s->steps entries). Lock held. */
static size_t report_steps(job *j, rl_run_step *out)
{
    size_t n = 0;
    for (uint64_t i = 0; i < j->steps_cap; i++) {
        const step_rec *r = &j->steps[i];
        if (!r->seen) continue;
        out[n++] = (rl_run_step){.step = i,
                                 .t_ms = r->t_ms,
                                 .loss = r->loss,
                                 .ms = r->ms,
                                 .allreduce_ms = r->allreduce_ms,
                                 .compute_imbalance = r->imbalance,
                                 .compute_ms = r->node_ms,
                                 .n_compute = r->node_ms != NULL ? (size_t)r->node_n : 0};
    }
    return n;
}

/* Node i of the registry, with the blocks it holds (written at blocks)
 * unless the job never started. Lock held. */
static rl_run_node report_node(job *j, int i, uint32_t *blocks)
{
    node_entry *e = &j->reg.nodes[i];
    rl_run_node n = {.id = e->id,
                     .state = report_state(e->state),
                     .blocks = blocks,
                     .rows_per_s = e->rows_per_s > 0 ? e->rows_per_s : NAN, /* null: unknown */
                     .step_ms = e->step_ms > 0 ? e->step_ms : NAN,
                     .wait_ms = e->step_ms > 0 ? e->wait_ms : NAN,
                     .busy_fraction = e->step_ms > 0 ? e->busy_fraction : NAN,
                     .stall_ms = e->step_ms > 0 ? e->stall_ms : NAN};
    for (uint32_t b = 0; b < j->n_blocks; b++)
        if (j->owner[b] == i && j->status != JOB_WAITING) {
            blocks[n.n_blocks++] = b;
            int64_t left = j->dp.rows - (int64_t)b * j->dp.block_rows;
            n.rows += left < j->dp.block_rows ? left : j->dp.block_rows;
        }
    n.has_exit_code = e->exited;
    n.exit_code = e->exit_code;
    size_t ns = e->ncompute < 256 ? (size_t)e->ncompute : 256;
    n.compute_ms_p50 = ns ? rl_percentile(e->compute_samples, ns, 0.50) : NAN; /* null: never */
    return n;
}

int job_write_report(job *j, const char *dir, const char *spec_path, double wall_s)
{
    pthread_mutex_lock(&j->reg.mtx);
    rl_run_step *steps = rl_xcalloc((size_t)j->steps_cap + 1, sizeof(*steps));
    rl_run_node *nodes = rl_xcalloc((size_t)j->reg.n + 1, sizeof(*nodes));
    rl_run_event *events = rl_xcalloc(j->n_events + 1, sizeof(*events));
    uint32_t *blocks = rl_xcalloc((size_t)j->n_blocks + 1, sizeof(uint32_t)); /* one owner each */
    rl_run_report r = {
        .ok = j->status == JOB_DONE,
        .interrupted = j->interrupted,
        .error = j->error[0] ? j->error : "the job did not complete",
        .spec = spec_path,
        .started_unix_ms = j->started_unix_ms,
        .wall_s = wall_s,
        .model = &j->model,
        .mean = j->mean,
        .std = j->std,
        /* csv: the names of the columns the model was trained on (predict
         * matches by them); synthetic data has none. */
        .feature_names = j->table != NULL ? (const char *const *)j->table->names : NULL,
        /* program mode: the collective rounds, as many as the program ran */
        .steps_completed = j->program ? j->steps_seen : j->model_step,
        .steps_total = j->program ? j->steps_seen : (uint64_t)j->spec->steps,
        .final_loss = j->model_step && j->steps[j->model_step - 1].seen
                          ? j->steps[j->model_step - 1].loss
                          : NAN,
        .steps = steps,
        .nodes = nodes,
        .n_nodes = (size_t)j->reg.n,
        .events = events,
        .n_events = j->n_events,
        .coverage_checked = j->coverage_checked,
        .coverage_violations = j->violations,
        .baseline = j->baseline_path,
        .baseline_step_ms = j->baseline_step_ms,
        .baseline_nodes = j->baseline_nodes,
        .blocks_total = j->n_blocks,
        .epoch = j->epoch,
        .program = j->program,
    };
    r.n_steps = report_steps(j, steps);
    for (int i = 0, used = 0; i < j->reg.n; i++) {
        nodes[i] = report_node(j, i, blocks + used);
        used += (int)nodes[i].n_blocks;
    }
    for (size_t i = 0; i < j->n_events; i++) {
        const job_event *e = &j->events[i];
        events[i] = (rl_run_event){.t_ms = e->t_ms,
                                   .step = e->step,
                                   .kind = e->kind,
                                   .node = e->node,
                                   .detail = e->detail,
                                   .recovery_ms = e->recovery_ms};
    }
    int rc = rl_run_json_write(dir, &r);
    pthread_mutex_unlock(&j->reg.mtx);
    if (rc != RL_OK) fprintf(stderr, "ringleader: %s\n", rl_errdetail());
    free(steps);
    free(nodes);
    free(events);
    free(blocks);
    return rc;
}

void job_progress(job *j, bool final)
{
    static uint64_t last_print;
    bool json = rl_log_is_json(); /* then a log line like any other */
    bool tty = !json && isatty(STDERR_FILENO);
    uint64_t now = rl_clock_ms();
    if (!final && !tty && now - last_print < 1000) return;
    last_print = now;
    pthread_mutex_lock(&j->reg.mtx);
    uint64_t n = j->steps_done;
    int alive = 0;
    for (int i = 0; i < j->reg.n; i++)
        if (j->reg.nodes[i].state == NODE_JOINED) alive++;
    double loss = n ? j->steps[n - 1].loss : NAN, ms = n ? j->steps[n - 1].ms : NAN;
    /* The last step's rows over its time: known from the step reports alone
     * (the nodes' heartbeat rates may not have arrived in a short job). */
    double rps = n && ms > 0 ? (double)j->dp.rows / (ms / 1e3) : NAN;
    pthread_mutex_unlock(&j->reg.mtx);
    const char *start = tty ? "\r\033[K" : "", *end = tty && !final ? "" : "\n";
    char line[256];
    if (n == 0) {
        snprintf(line, sizeof(line), "step 0/%d  starting  nodes %d/%d",
                 j->program ? 0 : j->spec->steps, alive, j->reg.n);
    } else {
        char rate[32] = "-";
        if (isfinite(rps)) snprintf(rate, sizeof(rate), "%.3g", rps);
        snprintf(line, sizeof(line),
                 "step %llu/%d  loss %.6g  step %.2f ms  %s rows/s  nodes %d/%d",
                 (unsigned long long)n, j->program ? (int)n : j->spec->steps, loss, ms, rate, alive,
                 j->reg.n);
    }
    if (json) {
        rl_log_info("%s", line);
        return;
    }
    fprintf(stderr, "%s%s%s", start, line, end);
    fflush(stderr);
}
