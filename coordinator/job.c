/*
 * job.c - the coordinator's side of a training job: admission, plans,
 * step reports with the per-step coverage proof, heartbeats and events.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "ringleader/err.h"
#include "ringleader/log.h"
#include "ringleader/mem.h"
#include "ringleader/stats.h"

static double job_t_ms(const job *j)
{
    return (double)(rl_clock_ms() - j->t0_ms);
}

void job_event_add(job *j, const char *kind, const char *node, const char *fmt, ...)
{
    if (j->n_events == j->cap_events) {
        j->cap_events = j->cap_events ? j->cap_events * 2 : 64;
        j->events = rl_xrealloc(j->events, j->cap_events * sizeof(job_event));
    }
    job_event *e = &j->events[j->n_events++];
    memset(e, 0, sizeof(*e));
    e->t_ms = job_t_ms(j);
    e->step = (int64_t)j->steps_done;
    snprintf(e->kind, sizeof(e->kind), "%s", kind);
    snprintf(e->node, sizeof(e->node), "%s", node ? node : "");
    e->recovery_ms = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
}

int job_init(job *j, const rl_spec *spec)
{
    memset(j, 0, sizeof(*j));
    j->spec = spec;
    registry_init(&j->reg, spec);
    j->t0_ms = rl_clock_ms();
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    j->started_unix_ms = (uint64_t)rt.tv_sec * 1000u + (uint64_t)rt.tv_nsec / 1000000u;
    j->status = JOB_WAITING;
    j->members = rl_xcalloc((size_t)spec->n_nodes + 1, sizeof(int));
    j->waiting_plan = rl_xcalloc((size_t)spec->n_nodes + 1, sizeof(rl_rpc_ctx *));
    j->steps = rl_xcalloc((size_t)spec->steps + 1, sizeof(step_rec));
    int rv = rl_data_params_from_spec(spec, &j->dp);
    if (rv != RL_OK) return rv;
    if (spec->source == RL_DATA_CSV) {
        if ((rv = rl_csv_load(spec->csv_path, spec->csv_label, &j->table)) != RL_OK) return rv;
        j->dp.rows = j->table->rows;
        j->dp.features = j->table->features;
        if (spec->standardize) {
            j->mean = rl_xcalloc((size_t)j->dp.features, sizeof(double));
            j->std = rl_xcalloc((size_t)j->dp.features, sizeof(double));
            rl_table_standardize_stats(j->table, j->mean, j->std);
        }
    }
    j->n_blocks = rl_data_n_blocks(&j->dp);
    j->owner = rl_xmalloc((j->n_blocks + 1) * sizeof(int));
    for (uint32_t b = 0; b <= j->n_blocks; b++) j->owner[b] = -1;
    if ((rv = rl_model_init(&j->model, spec->model, j->dp.features, j->dp.classes)) != RL_OK)
        return rv;
    return RL_OK;
}

void job_fini(job *j)
{
    rl_table_free(j->table);
    free(j->mean);
    free(j->std);
    rl_model_fini(&j->model);
    free(j->owner);
    free(j->members);
    free(j->waiting_plan);
    for (int64_t k = 0; j->steps != NULL && k <= j->spec->steps; k++) free(j->steps[k].node_ms);
    free(j->steps);
    free(j->events);
    registry_fini(&j->reg);
}

static int node_index(job *j, const char *id)
{
    for (int i = 0; i < j->reg.n; i++)
        if (strcmp(j->reg.nodes[i].id, id) == 0) return i;
    return -1;
}

static bool is_member(const job *j, int i)
{
    for (int k = 0; k < j->n_members; k++)
        if (j->members[k] == i) return true;
    return false;
}

static void request_replan(job *j, const char *why)
{
    if (!j->replan) snprintf(j->replan_reason, sizeof(j->replan_reason), "%s", why);
    j->replan = true;
}

/* Node i was heard from: it is connected, and if it had been failed it is
 * back (a new process, or the old one after SIGCONT) and rejoins under the
 * next epoch. Lock held. */
static void mark_alive(job *j, int i)
{
    node_entry *e = &j->reg.nodes[i];
    e->last_heartbeat_ms = rl_clock_ms();
    e->connected = true;
    if (e->state == NODE_FAILED && j->status == JOB_RUNNING) {
        e->state = NODE_JOINED;
        e->slow = false;
        e->slow_streak = 0;
        job_event_add(j, "rejoin", e->id, "heard from again; admitted under the next epoch");
        rl_log_info("node %s is back; it rejoins under the next epoch", e->id);
        request_replan(j, "rejoin");
    }
}

void job_on_disconnect(void *arg, const char *peer_id)
{
    job *j = arg;
    pthread_mutex_lock(&j->reg.mtx);
    int i = node_index(j, peer_id);
    if (i >= 0 && j->reg.nodes[i].connected) {
        j->reg.nodes[i].connected = false;
        j->reg.nodes[i].disconnected_ms = rl_clock_ms();
    }
    pthread_mutex_unlock(&j->reg.mtx);
}

/* ---- Handlers ------------------------------------------------------------------ */

static int handle_join(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    const rl_msg_join_req *q = &req->u.join_req;
    if (strcmp(rl_rpc_ctx_peer(call), q->node_id) != 0) {
        rl_log_warn("refused join as '%s' from a connection authenticated as '%s'", q->node_id,
                    rl_rpc_ctx_peer(call));
        return RL_EPERM;
    }
    pthread_mutex_lock(&j->reg.mtx);
    int i = node_index(j, q->node_id);
    if (i >= 0) {
        node_entry *e = &j->reg.nodes[i];
        snprintf(e->listen, sizeof(e->listen), "%s", q->listen);
        e->pid = (pid_t)q->pid;
        if (e->state == NODE_EXPECTED) {
            e->state = NODE_JOINED;
            job_event_add(j, "join", q->node_id, "pid %llu, ring endpoint %s",
                          (unsigned long long)q->pid, q->listen);
        } else if (e->state == NODE_JOINED && j->status == JOB_RUNNING && is_member(j, i)) {
            /* A new process under a known id while the old one still counts
             * as alive: the old one is gone; treat it as failed and back. */
            e->state = NODE_FAILED;
            job_event_add(j, "failed", q->node_id, "replaced by a new process (pid %llu)",
                          (unsigned long long)q->pid);
        }
        e->joined_ms = rl_clock_ms();
        mark_alive(j, i);
        pthread_cond_broadcast(&j->reg.cv);
    }
    pthread_mutex_unlock(&j->reg.mtx);
    if (i < 0) {
        rl_log_warn("refused join from unknown node '%s'", q->node_id);
        return RL_ENOTFOUND;
    }
    rl_log_info("node %s joined (pid %llu, ring endpoint %s)", q->node_id,
                (unsigned long long)q->pid, q->listen);
    resp->u.join_resp.job = rl_xstrdup(j->spec->name);
    resp->u.join_resp.heartbeat_ms = (uint64_t)j->spec->heartbeat_ms;
    resp->u.join_resp.failure_timeout_ms = (uint64_t)j->spec->failure_timeout_ms;
    return RL_OK;
}

static int handle_heartbeat(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    const rl_msg_heartbeat_req *h = &req->u.heartbeat_req;
    (void)call;
    pthread_mutex_lock(&j->reg.mtx);
    int i = node_index(j, h->node_id);
    if (i >= 0 && j->reg.nodes[i].state != NODE_EXPECTED) {
        node_entry *e = &j->reg.nodes[i];
        mark_alive(j, i);
        e->heartbeats++;
        if (RL_HAS(h, 3)) e->step = h->step;
        if (RL_HAS(h, 4) && h->rows_per_s > 0) {
            e->rows_per_s = h->rows_per_s;
            double v = h->rows_per_s / 1000.0; /* rows per compute-ms */
            e->speed = e->speed > 0 ? 0.7 * e->speed + 0.3 * v : v;
        }
        if (RL_HAS(h, 5) && h->compute_ms > 0 && h->epoch == j->epoch &&
            h->step > j->plan_start) {
            if (e->compute_epoch != j->epoch) e->samples_epoch = 0;
            e->compute_ms = h->compute_ms;
            e->compute_epoch = j->epoch;
            e->samples_epoch++;
            e->compute_samples[e->ncompute++ % 256] = h->compute_ms;
        }
        if (RL_HAS(h, 6)) e->allreduce_ms = h->allreduce_ms;
        if (RL_HAS(h, 7)) e->cpu_load = h->cpu_load;
        if (RL_HAS(h, 8)) e->rss_bytes = h->rss_bytes;
        if (h->phase != NULL) snprintf(e->phase, sizeof(e->phase), "%s", h->phase);
    }
    bool stop = j->reg.stopping;
    uint64_t epoch = j->epoch;
    pthread_mutex_unlock(&j->reg.mtx);
    if (i < 0) return RL_ENOTFOUND;
    resp->u.heartbeat_resp.epoch = epoch;
    resp->u.heartbeat_resp.stop = stop;
    resp->u.heartbeat_resp.has |= 1u << 2;
    return RL_OK;
}

/* Fills a PLAN reply for node i. Lock held. */
static void fill_plan(job *j, int i, rl_msg *resp)
{
    rl_msg_plan_resp *p = &resp->u.plan_resp;
    const rl_spec *s = j->spec;
    int rank = -1;
    for (int k = 0; k < j->n_members; k++)
        if (j->members[k] == i) rank = k;
    if (j->status != JOB_RUNNING || rank < 0) {
        /* Not (or no longer) part of the job: go home. */
        p->stop = true;
        p->has |= 1u << 10;
        p->member_ids = (rl_strlist){rl_xcalloc(1, sizeof(char *)), 0};
        p->member_urls = (rl_strlist){rl_xcalloc(1, sizeof(char *)), 0};
        p->blocks = (rl_u32list){rl_xcalloc(1, sizeof(uint32_t)), 0};
        p->weights = (rl_f64list){rl_xcalloc(1, sizeof(double)), 0};
        p->bias = (rl_f64list){rl_xcalloc(1, sizeof(double)), 0};
        return;
    }
    p->epoch = j->epoch;
    p->rank = (uint64_t)rank;
    p->member_ids = (rl_strlist){rl_xcalloc((size_t)j->n_members, sizeof(char *)),
                                 (size_t)j->n_members};
    p->member_urls = (rl_strlist){rl_xcalloc((size_t)j->n_members, sizeof(char *)),
                                  (size_t)j->n_members};
    for (int k = 0; k < j->n_members; k++) {
        p->member_ids.v[k] = rl_xstrdup(j->reg.nodes[j->members[k]].id);
        p->member_urls.v[k] = rl_xstrdup(j->reg.nodes[j->members[k]].listen);
    }
    size_t nb = 0;
    for (uint32_t b = 0; b < j->n_blocks; b++)
        if (j->owner[b] == i) nb++;
    p->blocks = (rl_u32list){rl_xcalloc(nb + 1, sizeof(uint32_t)), nb};
    nb = 0;
    for (uint32_t b = 0; b < j->n_blocks; b++)
        if (j->owner[b] == i) p->blocks.v[nb++] = b;
    p->start_step = j->plan_start;
    p->end_step = j->plan_end;
    size_t kf = (size_t)j->model.classes * (size_t)j->model.features;
    p->weights = (rl_f64list){rl_xmalloc(kf * sizeof(double) + 1), kf};
    memcpy(p->weights.v, j->model.w, kf * sizeof(double));
    p->bias = (rl_f64list){rl_xmalloc((size_t)j->model.classes * sizeof(double)),
                           (size_t)j->model.classes};
    memcpy(p->bias.v, j->model.b, (size_t)j->model.classes * sizeof(double));
    p->source = (uint64_t)s->source;
    p->rows = (uint64_t)j->dp.rows;
    p->features = (uint64_t)j->dp.features;
    p->classes = (uint64_t)j->dp.classes;
    p->model = (uint64_t)j->dp.model;
    p->noise = j->dp.noise;
    p->seed = j->dp.seed;
    p->block_rows = (uint64_t)j->dp.block_rows;
    if (s->source == RL_DATA_CSV) {
        p->csv_path = rl_xstrdup(s->csv_path);
        p->csv_fetch = s->csv_fetch != 0;
        p->has |= 1ull << 28;
        p->csv_label = rl_xstrdup(s->csv_label);
        if (j->mean != NULL) {
            size_t f = (size_t)j->dp.features;
            p->mean = (rl_f64list){rl_xmalloc(f * sizeof(double)), f};
            p->std = (rl_f64list){rl_xmalloc(f * sizeof(double)), f};
            memcpy(p->mean.v, j->mean, f * sizeof(double));
            memcpy(p->std.v, j->std, f * sizeof(double));
        }
    }
    p->learning_rate = s->learning_rate;
    p->l2 = s->l2;
    p->chunk_bytes = s->chunk_bytes;
    p->tcp_congestion = rl_xstrdup(s->tcp_congestion);
    p->n_blocks = j->n_blocks;
    p->deadline_ms = (uint64_t)s->failure_timeout_ms + j->plan_make_ms;
    p->report_ms = (uint64_t)s->report_ms;
    p->has |= 1ull << 29;
}

/* Answers every held PLAN call. Lock held. */
static void answer_waiting_plans(job *j)
{
    for (int i = 0; i < j->reg.n; i++) {
        rl_rpc_ctx *call = j->waiting_plan[i];
        if (call == NULL) continue;
        if (j->status == JOB_RUNNING && !is_member(j, i)) continue; /* waits for a plan */
        j->waiting_plan[i] = NULL;
        rl_msg resp;
        rl_msg_init(&resp, RL_MSG_PLAN_RESP);
        fill_plan(j, i, &resp);
        rl_rpc_ctx_reply(call, RL_OK, NULL, &resp);
    }
}

static int handle_plan(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    const rl_msg_plan_req *q = &req->u.plan_req;
    int rv = RL_OK;
    pthread_mutex_lock(&j->reg.mtx);
    int i = node_index(j, q->node_id);
    if (i < 0) {
        rv = RL_ENOTFOUND;
    } else if (q->failed && j->status == JOB_RUNNING && q->epoch == j->epoch &&
               j->reg.nodes[i].state == NODE_JOINED && is_member(j, i)) {
        /* A member's collective failed: a peer died or stalls. The tick
         * decides who (closed connection or silent heartbeats) and re-plans;
         * this call waits for that plan. */
        mark_alive(j, i);
        if (j->failure_hint_ms == 0) j->failure_hint_ms = rl_clock_ms();
        rl_log_warn("node %s: %s", q->node_id, q->error ? q->error : "step failed");
        snprintf(j->last_failure, sizeof(j->last_failure), "%s: %s", q->node_id,
                 q->error ? q->error : "step failed");
        if (j->waiting_plan[i] != NULL)
            rl_rpc_ctx_reply(j->waiting_plan[i], RL_ECANCELED, "superseded", NULL);
        j->waiting_plan[i] = call;
        rl_rpc_ctx_defer(call);
    } else if (j->status == JOB_RUNNING && q->epoch < j->epoch && is_member(j, i) &&
               j->reg.nodes[i].state == NODE_JOINED) {
        mark_alive(j, i);
        fill_plan(j, i, resp); /* a newer plan is ready for this node */
    } else if (j->status == JOB_DONE || j->status == JOB_FAILED) {
        fill_plan(j, i, resp); /* stop */
    } else {
        mark_alive(j, i);
        if (j->waiting_plan[i] != NULL) /* a retried call replaces the older one */
            rl_rpc_ctx_reply(j->waiting_plan[i], RL_ECANCELED, "superseded", NULL);
        j->waiting_plan[i] = call;
        rl_rpc_ctx_defer(call);
    }
    pthread_mutex_unlock(&j->reg.mtx);
    return rv;
}

/* One step's record, from a report (alone, or one of a batch). */
typedef struct step_in {
    uint64_t step;
    double loss, ms, allreduce_ms, rows;
    double age_ms; /* how long before the report was sent the step completed */
    const uint32_t *coverage;
    size_t n_coverage;
    const double *node_ms;
    size_t n_node_ms;
} step_in;

/* Checks one step's coverage proof and files it. false: a violation (the
 * job has failed). Lock held; the job is running and the epoch current. */
static bool file_step(job *j, const char *node_id, const step_in *in)
{
    if (in->step >= (uint64_t)j->spec->steps || j->steps[in->step].seen) return true;
    /* The coverage proof: every block counted exactly once. */
    bool ok = in->n_coverage == j->n_blocks && in->rows == (double)j->dp.rows;
    for (size_t b = 0; ok && b < in->n_coverage; b++)
        if (in->coverage[b] != 1) ok = false;
    j->coverage_checked++;
    if (!ok) {
        j->violations++;
        job_event_add(j, "violation", node_id, "step %llu: blocks not counted exactly once",
                      (unsigned long long)in->step);
        j->status = JOB_FAILED;
        snprintf(j->error, sizeof(j->error), "coverage violation at step %llu reported by %s",
                 (unsigned long long)in->step, node_id);
        j->reg.stopping = true;
        answer_waiting_plans(j);
        return false;
    }
    step_rec *s = &j->steps[in->step];
    s->seen = true;
    for (size_t k = 0; k < j->n_events; k++) /* recoveries end here */
        if (strcmp(j->events[k].kind, "failed") == 0 && j->events[k].recovery_ms < 0)
            j->events[k].recovery_ms = job_t_ms(j) - j->events[k].t_ms;
    s->t_ms = job_t_ms(j) - in->age_ms;
    s->loss = in->loss;
    s->ms = in->ms;
    s->allreduce_ms = in->allreduce_ms;
    s->imbalance = 0;
    if (in->n_node_ms > 0) {
        double mx = 0, sum = 0;
        if (s->node_n != j->reg.n) {
            free(s->node_ms);
            s->node_ms = rl_xmalloc((size_t)j->reg.n * sizeof(double) + 1);
            s->node_n = j->reg.n;
        }
        for (int i = 0; i < s->node_n; i++) s->node_ms[i] = NAN;
        for (size_t k = 0; k < in->n_node_ms; k++) {
            mx = fmax(mx, in->node_ms[k]);
            sum += in->node_ms[k];
            if (k < (size_t)j->n_members) s->node_ms[j->members[k]] = in->node_ms[k];
        }
        if (sum > 0) s->imbalance = mx / (sum / (double)in->n_node_ms);
    }
    if (in->step + 1 == (uint64_t)j->spec->steps) j->final_seen_ms = rl_clock_ms();
    return true;
}

/* Step reports come asynchronously, may arrive out of order, and may carry
 * a batch of steps (batch_* lists, the last one being `step`): each step is
 * checked and filed under its number; steps_done counts the prefix. */
static int handle_step_report(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    const rl_msg_step_report_req *r = &req->u.step_report_req;
    (void)call;
    pthread_mutex_lock(&j->reg.mtx);
    size_t k = r->batch_steps.n, nb = j->n_blocks;
    bool batch = k > 0;
    size_t per_node = batch ? r->batch_node_compute_ms.n / k : 0;
    if (batch && (r->batch_loss.n != k || r->batch_step_ms.n != k ||
                  r->batch_allreduce_ms.n != k || r->batch_rows.n != k ||
                  r->batch_coverage.n != k * nb || per_node * k != r->batch_node_compute_ms.n ||
                  r->batch_steps.v[k - 1] != r->step)) {
        pthread_mutex_unlock(&j->reg.mtx);
        rl_log_warn("step report from %s refused: batch lists of unequal length", r->node_id);
        return RL_EINVAL;
    }
    if (j->status == JOB_RUNNING && r->epoch == j->epoch) {
        bool ok = true;
        for (size_t i = 0; ok && i < (batch ? k : 1); i++) {
            step_in in;
            if (batch)
                in = (step_in){r->batch_steps.v[i], r->batch_loss.v[i], r->batch_step_ms.v[i],
                               r->batch_allreduce_ms.v[i], r->batch_rows.v[i], 0,
                               r->batch_coverage.v + i * nb, nb,
                               r->batch_node_compute_ms.v + i * per_node, per_node};
            else
                in = (step_in){r->step, r->loss, r->step_ms, r->allreduce_ms, (double)r->rows, 0,
                               r->coverage.v, r->coverage.n, r->node_compute_ms.v,
                               r->node_compute_ms.n};
            /* Dated by our clock: now, less how long ago the node says it was. */
            if (batch && r->batch_age_ms.n == k && r->batch_age_ms.v[i] >= 0 &&
                r->batch_age_ms.v[i] < 3.6e6)
                in.age_ms = r->batch_age_ms.v[i];
            ok = file_step(j, r->node_id, &in);
        }
        while (ok && j->steps_done < (uint64_t)j->spec->steps && j->steps[j->steps_done].seen)
            j->steps_done++;
        /* The weights are the model after `step`: the last consistent one. */
        size_t kf = (size_t)j->model.classes * (size_t)j->model.features;
        if (ok && r->step < (uint64_t)j->spec->steps && j->steps[r->step].seen &&
            r->weights.n == kf && r->bias.n == (size_t)j->model.classes &&
            r->step + 1 > j->model_step) {
            memcpy(j->model.w, r->weights.v, kf * sizeof(double));
            memcpy(j->model.b, r->bias.v, r->bias.n * sizeof(double));
            j->model_step = r->step + 1;
        }
        if (ok && j->steps_done == (uint64_t)j->spec->steps) {
            j->status = JOB_DONE;
            j->reg.stopping = true;
            answer_waiting_plans(j);
        }
    }
    resp->u.step_report_resp.epoch = j->epoch;
    resp->u.step_report_resp.stop = j->reg.stopping;
    resp->u.step_report_resp.has |= 1u << 2;
    pthread_mutex_unlock(&j->reg.mtx);
    return RL_OK;
}

static const char *state_name(node_state s)
{
    switch (s) {
    case NODE_EXPECTED: return "expected";
    case NODE_JOINED: return "alive";
    case NODE_FAILED: return "failed";
    case NODE_LEFT: return "left";
    }
    return "?";
}

static const char *status_name(job_status s)
{
    switch (s) {
    case JOB_WAITING: return "waiting for nodes";
    case JOB_RUNNING: return "running";
    case JOB_DONE: return "ok";
    case JOB_FAILED: return "failed";
    }
    return "?";
}

static int handle_status(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    (void)call;
    (void)req;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) return RL_ENOMEM;
    pthread_mutex_lock(&j->reg.mtx);
    uint64_t last = j->steps_done ? j->steps_done - 1 : 0;
    fprintf(f, "job %s: %s, step %llu/%d, epoch %llu, loss %s\n", j->spec->name,
            status_name(j->status), (unsigned long long)j->steps_done, j->spec->steps,
            (unsigned long long)j->epoch, "");
    if (j->steps_done) fprintf(f, "last loss %.9g, step %.3f ms\n", j->steps[last].loss,
                               j->steps[last].ms);
    fprintf(f, "%-12s %-9s %7s %12s %11s %9s %9s  %s\n", "node", "state", "blocks", "rows/s",
            "compute_ms", "cpu", "rss_MiB", "doing");
    for (int i = 0; i < j->reg.n; i++) {
        node_entry *e = &j->reg.nodes[i];
        int nb = 0;
        for (uint32_t b = 0; b < j->n_blocks; b++)
            if (j->owner[b] == i) nb++;
        fprintf(f, "%-12s %-9s %7d %12.0f %11.3f %9.2f %9.1f  %s\n", e->id, state_name(e->state),
                nb, e->rows_per_s, e->compute_ms, e->cpu_load, (double)e->rss_bytes / 1048576.0,
                e->phase[0] ? e->phase : "-");
    }
    pthread_mutex_unlock(&j->reg.mtx);
    fclose(f);
    resp->u.status_resp.text = text;
    return RL_OK;
}

static int64_t block_rows_of(const job *j, uint32_t b);

/* CSV rows for a node that has no copy of the file. At most ~1 MiB per
 * reply, so that no message nears the receive limit; the node asks again
 * from where the reply ended. The data borrows from the table, which lives
 * as long as the job. */
static int handle_block_fetch(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    const rl_msg_block_fetch_req *q = &req->u.block_fetch_req;
    (void)call;
    if (j->table == NULL) return RL_EPRECOND;
    if (q->block >= j->n_blocks) return RL_ENOTFOUND;
    int64_t brows = block_rows_of(j, (uint32_t)q->block);
    if ((int64_t)q->first >= brows) return RL_EINVAL;
    size_t f = (size_t)j->dp.features;
    uint64_t cap = (1u << 20) / (f * sizeof(float)) + 1;
    uint64_t n = (uint64_t)brows - q->first;
    if (n > q->max_rows && q->max_rows > 0) n = q->max_rows;
    if (n > cap) n = cap;
    size_t row0 = (size_t)q->block * (size_t)j->dp.block_rows + (size_t)q->first;
    rl_msg_block_fetch_resp *r = &resp->u.block_fetch_resp;
    r->rows = n;
    r->features = f;
    r->x = (rl_bytes){(const uint8_t *)(j->table->x + row0 * f), (size_t)n * f * sizeof(float)};
    r->y = (rl_bytes){(const uint8_t *)(j->table->y + row0), (size_t)n * sizeof(float)};
    return RL_OK;
}

int job_serve(job *j, rl_rpc_server *srv)
{
    int rv;
    if ((rv = rl_rpc_server_handle(srv, RL_MSG_JOIN_REQ, handle_join, j)) != 0 ||
        (rv = rl_rpc_server_handle(srv, RL_MSG_HEARTBEAT_REQ, handle_heartbeat, j)) != 0 ||
        (rv = rl_rpc_server_handle(srv, RL_MSG_PLAN_REQ, handle_plan, j)) != 0 ||
        (rv = rl_rpc_server_handle(srv, RL_MSG_STEP_REPORT_REQ, handle_step_report, j)) != 0 ||
        (rv = rl_rpc_server_handle(srv, RL_MSG_STATUS_REQ, handle_status, j)) != 0 ||
        (rv = rl_rpc_server_handle(srv, RL_MSG_BLOCK_FETCH_REQ, handle_block_fetch, j)) != 0)
        return rv;
    return RL_OK;
}

/* ---- Placement and lifecycle ------------------------------------------------------ */

/* Gives each member a share of the rows proportional to its weight, as
 * contiguous runs of blocks: each run ends at the block boundary nearest
 * its cumulative target in rows (the last block may be short, so counting
 * blocks instead would give one member a whole extra block's worth). */
static void assign_blocks_by_weight(job *j, const double *weight)
{
    double total = 0;
    for (int k = 0; k < j->n_members; k++) total += weight[k];
    uint32_t given = 0;
    for (int k = 0; k < j->n_members; k++) {
        double upto = 0;
        for (int q = 0; q <= k; q++) upto += weight[q];
        double target = upto / total * (double)j->dp.rows / (double)j->dp.block_rows;
        uint32_t end = k == j->n_members - 1 ? j->n_blocks : (uint32_t)llround(target);
        if (end > j->n_blocks) end = j->n_blocks;
        for (uint32_t b = given; b < end; b++) j->owner[b] = j->members[k];
        given = end > given ? end : given;
    }
}

/* A member's expected speed in rows per compute-ms: measured when it has
 * reported, else its capacity hint scaled by the measured members' mean. */
static double member_speed(job *j, int i)
{
    double sum = 0;
    int n = 0;
    for (int k = 0; k < j->n_members; k++) {
        node_entry *e = &j->reg.nodes[j->members[k]];
        if (e->speed > 0) {
            sum += e->speed / e->capacity;
            n++;
        }
    }
    node_entry *e = &j->reg.nodes[i];
    if (e->speed > 0) return e->speed;
    return e->capacity * (n ? sum / n : 1.0);
}

/* Time to make `rows` rows of blocks on a node: synthetic data is generated
 * (about 45 ns per value here), CSV rows are copied from the table. */
static double block_make_ms(const job *j, double rows)
{
    double per_value_ns = j->spec->source == RL_DATA_SYNTHETIC ? 45.0 : 2.0;
    return rows * (double)j->dp.features * per_value_ns * 1e-6;
}

static int64_t block_rows_of(const job *j, uint32_t b)
{
    int64_t left = j->dp.rows - (int64_t)b * j->dp.block_rows;
    return left < j->dp.block_rows ? left : j->dp.block_rows;
}

/* Gives every block whose owner is not a member (a failed node's, or all of
 * them at the start) to the member that would finish it soonest, by speed:
 * blocks already on live members stay where they are. */
static void assign_orphans_by_speed(job *j)
{
    double *load = calloc((size_t)j->reg.n + 1, sizeof(double));
    bool *mem = calloc((size_t)j->reg.n + 1, sizeof(bool));
    for (int k = 0; k < j->n_members; k++) mem[j->members[k]] = true;
    for (uint32_t b = 0; b < j->n_blocks; b++)
        if (j->owner[b] >= 0 && mem[j->owner[b]]) load[j->owner[b]] += (double)block_rows_of(j, b);
    for (uint32_t b = 0; b < j->n_blocks; b++) {
        if (j->owner[b] >= 0 && mem[j->owner[b]]) continue;
        int best = -1;
        double best_t = 0;
        for (int k = 0; k < j->n_members; k++) {
            int i = j->members[k];
            double t = (load[i] + (double)block_rows_of(j, b)) / member_speed(j, i);
            if (best < 0 || t < best_t) {
                best = i;
                best_t = t;
            }
        }
        j->owner[b] = best;
        load[best] += (double)block_rows_of(j, b);
    }
    free(load);
    free(mem);
}

/* Ends the job as failed with j->error, already written: an event, and
 * every held PLAN call answered with stop. Lock held. */
static void stop_failed_locked(job *j)
{
    j->status = JOB_FAILED;
    job_event_add(j, "stopped", "", "%s", j->error);
    j->reg.stopping = true;
    answer_waiting_plans(j);
}

/* New epoch: members are the live nodes, orphaned blocks go to them, and
 * every member restarts from the coordinator's model (the last step whose
 * update every node applied). Lock held. */
static void replan_locked(job *j, const char *reason)
{
    int alive = 0;
    for (int i = 0; i < j->reg.n; i++)
        if (j->reg.nodes[i].state == NODE_JOINED) alive++;
    if (alive < j->spec->min_nodes || alive == 0) {
        snprintf(j->error, sizeof(j->error),
                 "only %d live node%s, below cluster.min_nodes (%d); the model of step %llu is "
                 "saved",
                 alive, alive == 1 ? "" : "s", j->spec->min_nodes,
                 (unsigned long long)j->model_step);
        stop_failed_locked(j);
        return;
    }
    int prev = j->n_members;
    int *before = malloc((j->n_blocks + 1) * sizeof(int));
    memcpy(before, j->owner, (j->n_blocks + 1) * sizeof(int));
    j->n_members = 0;
    for (int i = 0; i < j->reg.n; i++)
        if (j->reg.nodes[i].state == NODE_JOINED) j->members[j->n_members++] = i;
    if (prev == 0) { /* the first plan: capacity-weighted contiguous runs */
        double *w = calloc((size_t)j->n_members + 1, sizeof(double));
        for (int k = 0; k < j->n_members; k++) w[k] = j->reg.nodes[j->members[k]].capacity;
        assign_blocks_by_weight(j, w);
        free(w);
    } else {
        assign_orphans_by_speed(j);
    }
    /* Members wait for each other while the slowest makes its new blocks. */
    double most = 0;
    for (int k = 0; k < j->n_members; k++) {
        double in_rows = 0;
        for (uint32_t b = 0; b < j->n_blocks; b++)
            if (j->owner[b] == j->members[k] && before[b] != j->members[k])
                in_rows += (double)block_rows_of(j, b);
        double ms = block_make_ms(j, in_rows);
        most = ms > most ? ms : most;
    }
    free(before);
    j->plan_make_ms = (uint64_t)(2 * most);
    j->epoch++;
    j->last_plan_ms = rl_clock_ms();
    j->imbalance_streak = 0;
    j->plan_start = j->model_step;
    j->plan_end = (uint64_t)j->spec->steps;
    j->status = JOB_RUNNING;
    j->replan = false;
    j->failure_hint_ms = 0;
    for (uint64_t k = j->model_step; k < (uint64_t)j->spec->steps; k++) j->steps[k].seen = false;
    if (j->steps_done > j->model_step) j->steps_done = j->model_step;
    char counts[100] = "";
    size_t off = 0;
    for (int k = 0; k < j->n_members && off < sizeof(counts) - 1; k++) {
        int nb = 0;
        for (uint32_t b = 0; b < j->n_blocks; b++)
            if (j->owner[b] == j->members[k]) nb++;
        off += (size_t)snprintf(counts + off, sizeof(counts) - off, "%s%s:%d", k ? " " : "",
                                j->reg.nodes[j->members[k]].id, nb);
    }
    job_event_add(j, "reassign", "", "epoch %llu (%s), from step %llu, blocks %s",
                  (unsigned long long)j->epoch, reason, (unsigned long long)j->plan_start,
                  counts);
    rl_log_info("epoch %llu (%s): %d nodes, from step %llu", (unsigned long long)j->epoch,
                reason, j->n_members, (unsigned long long)j->plan_start);
    answer_waiting_plans(j);
}

void job_start(job *j)
{
    pthread_mutex_lock(&j->reg.mtx);
    j->status = JOB_RUNNING;
    replan_locked(j, "start");
    pthread_mutex_unlock(&j->reg.mtx);
}

/* Moves blocks from members above their speed-proportional share to those
 * below it, fewest moves first (largest surplus gives to largest deficit).
 * Returns the number of blocks moved. Lock held. */
static int rebalance_by_speed(job *j, const double *speed, uint64_t now)
{
    int n = j->n_members, moved = 0;
    double total_rows = (double)j->dp.rows, sum_speed = 0;
    double *rows = calloc((size_t)n, sizeof(double)), *target = calloc((size_t)n, sizeof(double));
    for (int k = 0; k < n; k++) sum_speed += speed[k];
    for (int k = 0; k < n; k++) target[k] = total_rows * speed[k] / sum_speed;
    for (uint32_t b = 0; b < j->n_blocks; b++)
        for (int k = 0; k < n; k++)
            if (j->owner[b] == j->members[k]) rows[k] += (double)block_rows_of(j, b);
    /* A node that was slow a moment ago may only lose blocks: its fast
     * readings may be stalls that landed outside its compute. */
    /* Gains are taken in steps: a node grows by at most half its load (or
     * two blocks) per rebalance, so a node that only looked fast costs
     * little if it is still slow. */
    for (int k = 0; k < n; k++) {
        if (j->reg.nodes[j->members[k]].hold_until_ms > now && target[k] > rows[k])
            target[k] = rows[k];
        double cap = rows[k] + fmax(0.5 * rows[k], 2.0 * j->dp.block_rows);
        if (target[k] > cap) target[k] = cap;
    }
    for (;;) {
        int give = -1, take = -1;
        for (int k = 0; k < n; k++) {
            if (give < 0 || rows[k] - target[k] > rows[give] - target[give]) give = k;
            if (take < 0 || rows[k] - target[k] < rows[take] - target[take]) take = k;
        }
        uint32_t pick = UINT32_MAX;
        for (uint32_t b = j->n_blocks; b-- > 0;)
            if (j->owner[b] == j->members[give]) {
                pick = b;
                break;
            }
        if (pick == UINT32_MAX) break;
        double br = (double)block_rows_of(j, pick);
        /* Move only if it brings both closer to their targets. */
        if (rows[give] - target[give] < br / 2 || target[take] - rows[take] < br / 2) break;
        j->owner[pick] = j->members[take];
        rows[give] -= br;
        rows[take] += br;
        if (++moved > (int)j->n_blocks) break;
    }
    free(rows);
    free(target);
    return moved;
}

/* Load-aware placement: marks stragglers and, when the predicted step time
 * gain pays for the move, rebalances blocks by measured speed. Lock held. */
static void check_balance(job *j, uint64_t now)
{
    const rl_spec *sp = j->spec;
    int n = j->n_members;
    if (n < 2 || now - j->last_plan_ms < 3u * (uint64_t)sp->heartbeat_ms) return;
    double *c = calloc((size_t)n, sizeof(double)), *speed = calloc((size_t)n, sizeof(double));
    double *rows = calloc((size_t)n, sizeof(double));
    int fresh = 0, updated = 0;
    for (int k = 0; k < n; k++) {
        node_entry *e = &j->reg.nodes[j->members[k]];
        for (uint32_t b = 0; b < j->n_blocks; b++)
            if (j->owner[b] == j->members[k]) rows[k] += (double)block_rows_of(j, b);
        if (e->compute_epoch == j->epoch && e->samples_epoch >= 2) {
            /* The median of the epoch's last (up to) 5 samples: one noisy
             * heartbeat on a shared machine must not move data. */
            size_t m = e->samples_epoch < 5 ? (size_t)e->samples_epoch : 5;
            double last[5];
            for (size_t q = 0; q < m; q++) last[q] = e->compute_samples[(e->ncompute - 1 - q) % 256];
            qsort(last, m, sizeof(double), rl_cmp_double);
            c[k] = last[m / 2];
            speed[k] = rows[k] > 0 && c[k] > 0 ? rows[k] / c[k] : e->speed;
            fresh++;
        }
        if (e->ncompute != e->evaluated) updated++;
    }
    /* Decide once per round of fresh heartbeats from every member. */
    if (fresh < n || updated < n) goto out;
    for (int k = 0; k < n; k++) j->reg.nodes[j->members[k]].evaluated = j->reg.nodes[j->members[k]].ncompute;
    if (fresh < n) goto out;
    double *sorted = calloc((size_t)n, sizeof(double));
    memcpy(sorted, c, (size_t)n * sizeof(double));
    qsort(sorted, (size_t)n, sizeof(double), rl_cmp_double);
    double median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    free(sorted);
    double mx = 0, mean = 0, sum_speed = 0;
    int slowest = -1;
    for (int k = 0; k < n; k++) {
        node_entry *e = &j->reg.nodes[j->members[k]];
        if (c[k] > mx) {
            mx = c[k];
            slowest = j->members[k];
        }
        mean += c[k] / n;
        sum_speed += speed[k];
        bool over = c[k] > sp->straggler_factor * median;
        e->slow_streak = over ? e->slow_streak + 1 : 0;
        if (over) e->hold_until_ms = now + 20u * (uint64_t)sp->heartbeat_ms;
        if (e->slow_streak >= 2 && !e->slow) {
            e->slow = true;
            job_event_add(j, "straggler", e->id, "compute %.3f ms vs median %.3f ms", c[k],
                          median);
            rl_log_warn("node %s is a straggler: compute %.3f ms vs median %.3f ms", e->id, c[k],
                        median);
        } else if (!over && e->slow && c[k] < 1.1 * median) {
            e->slow = false;
        }
    }
    if (!sp->rebalance || sum_speed <= 0) goto out;
    /* Predicted slowest compute after balancing, and whether it pays: the
     * gain over the remaining steps must beat the move (a step redone plus
     * making the moved blocks), and be worth at least 10%. */
    double ideal = (double)j->dp.rows / sum_speed;
    uint64_t left = (uint64_t)sp->steps - (j->model_step < (uint64_t)sp->steps ? j->model_step : 0);
    double gain = mx - ideal;
    double step_ms = j->steps_done ? j->steps[j->steps_done - 1].ms : mx;
    /* What the move costs: a step redone, re-forming the ring, and making
     * the moved blocks where they land (the surplus rows above target). */
    double surplus = 0;
    for (int k = 0; k < n; k++) {
        double t = (double)j->dp.rows * speed[k] / sum_speed;
        if (rows[k] > t) surplus += rows[k] - t;
    }
    double cost = 2 * step_ms + 20.0 + block_make_ms(j, surplus);
    /* Worth it: a real imbalance, a gain that is a real share of the step
     * (not when the all-reduce dominates), paid back before the end, and the
     * same node slowest in consecutive rounds (noise moves the maximum). */
    bool worth = mx > 1.15 * mean && gain > 0.1 * mx && gain > 0.1 * step_ms &&
                 gain * (double)left > cost;
    if (worth && (j->imbalance_streak == 0 || j->imbalance_node == slowest)) {
        j->imbalance_streak++;
        j->imbalance_node = slowest;
    } else {
        j->imbalance_streak = 0;
    }
    if (j->imbalance_streak >= 2) {
        for (int k = 0; k < n; k++) { /* the node blocks are taken from is a straggler */
            node_entry *e = &j->reg.nodes[j->members[k]];
            if (j->members[k] == slowest && c[k] > sp->straggler_factor * median && !e->slow) {
                e->slow = true;
                e->hold_until_ms = now + 20u * (uint64_t)sp->heartbeat_ms;
                job_event_add(j, "straggler", e->id, "compute %.3f ms vs median %.3f ms", c[k],
                              median);
                rl_log_warn("node %s is a straggler: compute %.3f ms vs median %.3f ms", e->id,
                            c[k], median);
            }
        }
        int moved = rebalance_by_speed(j, speed, now);
        if (moved > 0) {
            char why[96];
            snprintf(why, sizeof(why), "rebalance: %d blocks moved, slowest %.2f ms -> ~%.2f ms",
                     moved, mx, ideal);
            request_replan(j, why);
        }
        j->imbalance_streak = 0;
    }
out:
    free(c);
    free(speed);
    free(rows);
}

/* A node failed and no step has completed since (its "failed" event still
 * has no recovery_ms). Lock held. */
static bool recovery_pending(const job *j)
{
    for (size_t k = 0; k < j->n_events; k++)
        if (strcmp(j->events[k].kind, "failed") == 0 && j->events[k].recovery_ms < 0) return true;
    return false;
}

void job_tick(job *j)
{
    uint64_t now = rl_clock_ms();
    const rl_spec *sp = j->spec;
    pthread_mutex_lock(&j->reg.mtx);
    if (j->status != JOB_RUNNING) {
        pthread_mutex_unlock(&j->reg.mtx);
        return;
    }
    bool recovering = recovery_pending(j);
    for (int k = 0; k < j->n_members; k++) {
        node_entry *e = &j->reg.nodes[j->members[k]];
        if (e->state != NODE_JOINED) continue;
        uint64_t silent = now - e->last_heartbeat_ms;
        /* A closed connection is a failure at once when a collective failed
         * or a recovery is under way (two nodes killed together must not
         * cost two recoveries), else after two heartbeats. */
        bool gone = !e->connected &&
                    (j->failure_hint_ms != 0 || recovering ||
                     now - e->disconnected_ms > 2u * (uint64_t)sp->heartbeat_ms);
        if (silent > (uint64_t)sp->failure_timeout_ms || gone) {
            e->state = NODE_FAILED;
            recovering = true;
            const char *why = gone ? "its connection closed" : "no heartbeat";
            job_event_add(j, "failed", e->id, "%s (%llu ms since the last heartbeat)", why,
                          (unsigned long long)silent);
            rl_log_warn("node %s failed: %s", e->id, why);
            request_replan(j, "failure");
        }
    }
    /* A member's collective failed but no node is found dead: when every
     * member is waiting for a plan, or the failure timeout has passed, plan
     * the same members again under a new epoch (a ring that could not form
     * in time, say, because a node was still making its blocks). */
    if (!j->replan && j->failure_hint_ms != 0) {
        int waiting = 0;
        for (int k = 0; k < j->n_members; k++)
            if (j->waiting_plan[j->members[k]] != NULL) waiting++;
        if (waiting == j->n_members ||
            now - j->failure_hint_ms > (uint64_t)sp->failure_timeout_ms) {
            if (j->retry_step != j->model_step) { /* the model moved: a new streak */
                j->retry_step = j->model_step;
                j->retry_streak = 0;
            }
            if (++j->retry_streak <= JOB_RETRY_MAX) {
                request_replan(j, "retry after a failed step");
            } else {
                snprintf(j->error, sizeof(j->error),
                         "%d epochs in a row failed at step %llu with every node alive; the last "
                         "failure: %s",
                         JOB_RETRY_MAX, (unsigned long long)j->model_step, j->last_failure);
                stop_failed_locked(j);
            }
        }
    }
    if (!j->replan) check_balance(j, now);
    if (j->replan) replan_locked(j, j->replan_reason);
    pthread_mutex_unlock(&j->reg.mtx);
}

void job_finish(job *j, job_status st, const char *error)
{
    pthread_mutex_lock(&j->reg.mtx);
    if (j->status != JOB_DONE && j->status != JOB_FAILED) {
        j->status = st;
        if (error != NULL) snprintf(j->error, sizeof(j->error), "%s", error);
    }
    j->reg.stopping = true;
    answer_waiting_plans(j);
    pthread_cond_broadcast(&j->reg.cv);
    pthread_mutex_unlock(&j->reg.mtx);
}

void job_check_complete(job *j, uint64_t grace_ms)
{
    pthread_mutex_lock(&j->reg.mtx);
    if (j->status == JOB_RUNNING && j->final_seen_ms != 0 &&
        rl_clock_ms() - j->final_seen_ms > grace_ms) {
        uint64_t missing = 0;
        for (int k = 0; k < j->spec->steps; k++)
            if (!j->steps[k].seen) missing++;
        job_event_add(j, "reports_lost", "", "%llu step reports never arrived",
                      (unsigned long long)missing);
        j->status = JOB_DONE;
        j->reg.stopping = true;
        answer_waiting_plans(j);
    }
    pthread_mutex_unlock(&j->reg.mtx);
}

