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
#include <sys/wait.h>

#include "job.h"
#include "placement.h"
#include "settle.h"
#include "snapshot.h"
#include "ringleader/err.h"
#include "ringleader/log.h"
#include "ringleader/mem.h"
#include "ringleader/ring.h"

/* The coordinator's own records and replies are small: running out of
 * memory for them ends the program, with a message. */
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
    j->unreach_node = -1;
    j->members = rl_xcalloc((size_t)spec->n_nodes + 1, sizeof(int));
    j->waiting_plan = rl_xcalloc((size_t)spec->n_nodes + 1, sizeof(rl_rpc_ctx *));
    j->program = spec->program_argv.n > 0;
    j->steps_cap = j->program ? 1024 : (uint64_t)spec->steps;
    j->steps = rl_xcalloc((size_t)j->steps_cap + 1, sizeof(step_rec));
    j->settle_members = rl_xcalloc((size_t)spec->n_nodes + 1, sizeof(int));
    int rv = rl_data_params_from_spec(spec, &j->dp);
    if (rv != RL_OK) return rv;
    if (spec->source == RL_DATA_CSV) {
        /* Every label is checked here, once, with its position: a data
         * error fails the job before any node starts (docs/operations.md). */
        rl_csv_opts o = {.label = spec->csv_label,
                         .check_labels = true,
                         .model = spec->model,
                         .classes = j->dp.classes};
        if ((rv = rl_csv_load_opts(spec->csv_path, &o, &j->table)) != RL_OK) return rv;
        j->dp.rows = j->table->rows;
        j->dp.features = j->table->features;
        if (spec->standardize) {
            j->mean = rl_xcalloc((size_t)j->dp.features, sizeof(double));
            j->std = rl_xcalloc((size_t)j->dp.features, sizeof(double));
            rl_table_standardize_stats(j->table, j->mean, j->std);
        }
    }
    j->n_blocks = rl_data_n_blocks(&j->dp);
    j->owner = rl_xcalloc((size_t)j->n_blocks + 1, sizeof(int));
    for (uint32_t b = 0; b <= j->n_blocks; b++)
        j->owner[b] = -1;
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
    for (uint64_t k = 0; j->steps != NULL && k <= j->steps_cap; k++)
        free(j->steps[k].node_ms);
    free(j->steps);
    free(j->settle_members);
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

/* The data as placement sees it. */
static placement_data job_placement_data(const job *j)
{
    return (placement_data){.rows = j->dp.rows,
                            .block_rows = j->dp.block_rows,
                            .n_blocks = j->n_blocks,
                            .features = j->dp.features,
                            .synthetic = j->spec->source == RL_DATA_SYNTHETIC};
}

static int64_t block_rows_of(const job *j, uint32_t b)
{
    placement_data d = job_placement_data(j);
    return placement_block_rows(&d, b);
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
    if (i >= 0 && j->reg.nodes[i].dup_refused > 0) {
        j->reg.nodes[i].dup_refused--; /* a refused duplicate's connection, not the node's */
    } else if (i >= 0 && j->reg.nodes[i].connected) {
        j->reg.nodes[i].connected = false;
        j->reg.nodes[i].disconnected_ms = rl_clock_ms();
    }
    pthread_mutex_unlock(&j->reg.mtx);
}

static void stop_failed_locked(job *j);
static void program_check_done(job *j);
static void program_failed(job *j, int i, int code, const char *tail);

/* ---- Handlers ------------------------------------------------------------------ */

/* Answers call now with err and the text why (the caller prints it).
 * Returns RL_OK: the call is answered. */
static int refuse(rl_rpc_ctx *call, int err, const char *why)
{
    rl_log_warn("refused join: %s", why);
    rl_rpc_ctx_defer(call);
    rl_rpc_ctx_reply(call, err, why, NULL);
    return RL_OK;
}

/* Whether node i may join with q: RL_EEXIST while a live process holds the
 * id, RL_EINVAL for a ring endpoint that is not the spec's (its peers dial
 * the spec's). why: the reason, naming the node and both addresses. Lock held. */
static int join_check(job *j, int i, const rl_msg_join_req *q, char *why, size_t len)
{
    node_entry *e = &j->reg.nodes[i];
    const char *spec_url = j->spec->nodes[i].listen;
    uint64_t now = rl_clock_ms();
    if (registry_node_alive(e, now, (uint64_t)j->spec->failure_timeout_ms)) {
        e->dup_refused++; /* its connection's close is not the live node's */
        snprintf(why, len,
                 "node id %s is in use by a live node (pid %lld, ring endpoint %s, heard %llu ms "
                 "ago): refused until that one stops or is failed "
                 "(fault_tolerance.failure_timeout_ms %d)",
                 e->id, (long long)e->pid, e->listen,
                 (unsigned long long)(now - e->last_heartbeat_ms), j->spec->failure_timeout_ms);
        return RL_EEXIST;
    }
    if (q->listen[0] != '\0' && strcmp(spec_url, q->listen) != 0 &&
        !rl_spec_listen_matches(spec_url, q->listen)) {
        snprintf(why, len,
                 "node %s listens on %s but the spec says %s (cluster.nodes[%d].listen), where its "
                 "peers dial%s: start it with --listen %s or without --listen",
                 e->id, q->listen, spec_url, i,
                 strstr(q->listen, "://127.") != NULL || strstr(q->listen, "://localhost") != NULL
                     ? " (loopback is reachable from its own machine only)"
                     : "",
                 spec_url);
        return RL_EINVAL;
    }
    return RL_OK;
}

/* Admits node i (join_check passed): a new process under an id whose old
 * one is silent or disconnected replaces it; a node that joins the running
 * job late gets blocks under the next epoch. Lock held. */
static void admit(job *j, int i, const rl_msg_join_req *q)
{
    node_entry *e = &j->reg.nodes[i];
    if (e->state == NODE_JOINED && j->status == JOB_RUNNING && is_member(j, i)) {
        e->state = NODE_FAILED; /* mark_alive below brings it back */
        job_event_add(j, "failed", q->node_id,
                      "replaced by a new process (pid %llu); the old one %s",
                      (unsigned long long)q->pid,
                      e->connected ? "stopped heartbeating" : "closed its connection");
    }
    /* A node of an earlier coordinator (a resume): plans start above every
     * epoch it had, so its old rings' frames are fenced (lib/agent.c). */
    bool rejoin = RL_HAS_FIELD(q, join_req, incarnation) && q->incarnation != 0 &&
                  q->incarnation != j->incarnation;
    if (RL_HAS_FIELD(q, join_req, epoch) && q->epoch > j->epoch_floor) j->epoch_floor = q->epoch;
    if (rejoin && e->state == NODE_EXPECTED) j->readmitted++;
    snprintf(e->listen, sizeof(e->listen), "%s", q->listen);
    e->pid = (pid_t)q->pid;
    e->exited = false; /* a new process: how it ends is still to come */
    if (e->state == NODE_EXPECTED) {
        e->state = NODE_JOINED;
        bool late = j->status == JOB_RUNNING;
        job_event_add(j, "join", q->node_id, "pid %llu, ring endpoint %s%s%s",
                      (unsigned long long)q->pid, q->listen,
                      rejoin ? "; re-admitted from an earlier coordinator, with its blocks" : "",
                      late ? "; joined the running job, admitted under the next epoch" : "");
        if (late) {
            e->late = true;
            request_replan(j, "late join");
        }
    }
    e->joined_ms = rl_clock_ms();
    mark_alive(j, i);
    pthread_cond_broadcast(&j->reg.cv);
}

/* JOIN: admits a node listed in the spec, or (listen "") tells it the
 * spec's URL to listen on without admitting it yet. */
static int handle_join(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    const rl_msg_join_req *q = &req->u.join_req;
    if (strcmp(rl_rpc_ctx_peer(call), q->node_id) != 0) {
        rl_log_warn("refused join as '%s' from a connection authenticated as '%s'", q->node_id,
                    rl_rpc_ctx_peer(call));
        return RL_EPERM;
    }
    char why[1024];
    pthread_mutex_lock(&j->reg.mtx);
    int i = node_index(j, q->node_id);
    int rv = i < 0 ? RL_ENOTFOUND : join_check(j, i, q, why, sizeof(why));
    if (rv == RL_OK && q->listen[0] != '\0') admit(j, i, q);
    pthread_mutex_unlock(&j->reg.mtx);
    if (i < 0) {
        rl_log_warn("refused join from unknown node '%s'", q->node_id);
        return RL_ENOTFOUND;
    }
    if (rv != RL_OK) return refuse(call, rv, why);
    const char *spec_url = j->spec->nodes[i].listen;
    if (q->listen[0] == '\0')
        rl_log_info("node %s asked where to listen: %s (the spec's)", q->node_id, spec_url);
    else
        rl_log_info("node %s joined (pid %llu, ring endpoint %s)", q->node_id,
                    (unsigned long long)q->pid, q->listen);
    resp->u.join_resp.job = rl_xstrdup(j->spec->name);
    resp->u.join_resp.heartbeat_ms = (uint64_t)j->spec->heartbeat_ms;
    resp->u.join_resp.failure_timeout_ms = (uint64_t)j->spec->failure_timeout_ms;
    resp->u.join_resp.listen = rl_xstrdup(spec_url);
    resp->u.join_resp.incarnation = j->incarnation;
    /* A program's state is its own: no coordinator resumes it, so its nodes
     * do not wait for one. */
    resp->u.join_resp.coordinator_grace_ms =
        j->program ? 0 : (uint64_t)j->spec->coordinator_grace_ms;
    resp->u.join_resp.spec_hash = j->spec_hash;
    resp->u.join_resp.has |= RL_FIELD_BIT(join_resp, incarnation) |
                             RL_FIELD_BIT(join_resp, coordinator_grace_ms) |
                             RL_FIELD_BIT(join_resp, spec_hash);
    return RL_OK;
}

/* A call from a node admitted by another coordinator process (a resumed
 * job's nodes, before they join again) is answered RL_ESTALE, which sends
 * the node to JOIN (lib/agent.c). `admitted`: the node's state here is not
 * NODE_EXPECTED. Returns whether it is stale; then `why` says so. */
static bool stale_incarnation(const job *j, const char *what, const char *node, bool has,
                              uint64_t incarnation, bool admitted, char *why, size_t len)
{
    if (!has || incarnation == 0 || (admitted && incarnation == j->incarnation)) return false;
    snprintf(why, len,
             "%s from node %s, admitted by coordinator incarnation %016llx: this one is "
             "%016llx; join again",
             what, node, (unsigned long long)incarnation, (unsigned long long)j->incarnation);
    return true;
}

/* Answers a stale call (stale_incarnation) from inside its handler. */
static int refuse_stale(rl_rpc_ctx *call, const char *why)
{
    rl_rpc_ctx_defer(call);
    rl_rpc_ctx_reply(call, RL_ESTALE, why, NULL);
    return RL_OK;
}

/* A heartbeat's straggler signal (docs/operations.md): shown as sent; its
 * busy time and per-member waits feed placement when measured under the
 * current epoch. Lock held. */
static void note_waits(job *j, node_entry *e, const rl_msg_heartbeat_req *h)
{
    e->step_ms = h->step_ms;
    e->wait_ms = RL_HAS_FIELD(h, heartbeat_req, wait_ms) ? h->wait_ms : 0;
    e->busy_fraction = RL_HAS_FIELD(h, heartbeat_req, busy_fraction) ? h->busy_fraction : 1;
    e->stall_ms = RL_HAS_FIELD(h, heartbeat_req, stall_ms) ? h->stall_ms : 0;
    if (h->epoch != j->epoch || h->step <= j->plan_start) return;
    if (e->busy_epoch != j->epoch) e->busy_in_epoch = 0;
    e->busy_epoch = j->epoch;
    e->busy_in_epoch++;
    e->busy_samples[e->nbusy++ % 256] = fmax(e->step_ms - e->wait_ms, 0);
    if (h->peer_wait_ms.n == (size_t)j->n_members) {
        if (e->peer_n != h->peer_wait_ms.n) {
            free(e->peer_wait_ms);
            e->peer_wait_ms =
                rl_xcalloc(h->peer_wait_ms.n * PLACEMENT_WAIT_WINDOW + 1, sizeof(double));
            e->peer_n = h->peer_wait_ms.n;
            e->peer_in_epoch = 0;
        }
        if (e->peer_epoch != j->epoch) e->peer_in_epoch = 0;
        /* One ring of PLACEMENT_WAIT_WINDOW samples per member (k's at
         * k * PLACEMENT_WAIT_WINDOW), read by placement_window_mean. */
        for (size_t k = 0; k < e->peer_n; k++)
            e->peer_wait_ms[k * PLACEMENT_WAIT_WINDOW + e->npeer % PLACEMENT_WAIT_WINDOW] =
                h->peer_wait_ms.v[k];
        e->npeer++;
        e->peer_in_epoch++;
        e->peer_epoch = j->epoch;
    }
}

static int handle_heartbeat(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    const rl_msg_heartbeat_req *h = &req->u.heartbeat_req;
    pthread_mutex_lock(&j->reg.mtx);
    int i = node_index(j, h->node_id);
    char why[256];
    if (i >= 0 && stale_incarnation(j, "heartbeat", h->node_id,
                                    RL_HAS_FIELD(h, heartbeat_req, incarnation), h->incarnation,
                                    j->reg.nodes[i].state != NODE_EXPECTED, why, sizeof(why))) {
        pthread_mutex_unlock(&j->reg.mtx);
        return refuse_stale(call, why);
    }
    if (i >= 0 && j->reg.nodes[i].state != NODE_EXPECTED) {
        node_entry *e = &j->reg.nodes[i];
        mark_alive(j, i);
        e->heartbeats++;
        if (RL_HAS_FIELD(h, heartbeat_req, step)) e->step = h->step;
        if (RL_HAS_FIELD(h, heartbeat_req, rows_per_s) && h->rows_per_s > 0) {
            e->rows_per_s = h->rows_per_s;
            double v = h->rows_per_s / 1000.0; /* rows per compute-ms */
            e->speed = placement_smooth_speed(e->speed, v);
        }
        if (RL_HAS_FIELD(h, heartbeat_req, compute_ms) && h->compute_ms > 0 &&
            h->epoch == j->epoch && h->step > j->plan_start) {
            if (e->compute_epoch != j->epoch) e->samples_epoch = 0;
            e->compute_ms = h->compute_ms;
            e->compute_epoch = j->epoch;
            e->samples_epoch++;
            e->compute_samples[e->ncompute++ % 256] = h->compute_ms;
        }
        if (RL_HAS_FIELD(h, heartbeat_req, step_ms) && h->step_ms > 0) note_waits(j, e, h);
        if (RL_HAS_FIELD(h, heartbeat_req, allreduce_ms)) e->allreduce_ms = h->allreduce_ms;
        if (RL_HAS_FIELD(h, heartbeat_req, cpu_load)) e->cpu_load = h->cpu_load;
        if (RL_HAS_FIELD(h, heartbeat_req, rss_bytes)) e->rss_bytes = h->rss_bytes;
        if (h->phase != NULL) snprintf(e->phase, sizeof(e->phase), "%s", h->phase);
    }
    bool stop = j->reg.stopping;
    uint64_t epoch = j->epoch;
    pthread_mutex_unlock(&j->reg.mtx);
    if (i < 0) return RL_ENOTFOUND;
    resp->u.heartbeat_resp.epoch = epoch;
    resp->u.heartbeat_resp.stop = stop;
    RL_SET_FIELD(&resp->u.heartbeat_resp, heartbeat_resp, stop);
    return RL_OK;
}

/* The blocks registry node i owns. Lock held. */
static uint32_t job_blocks_of(const job *j, int i)
{
    uint32_t nb = 0;
    for (uint32_t b = 0; b < j->n_blocks; b++)
        nb += j->owner[b] == i;
    return nb;
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
        RL_SET_FIELD(p, plan_resp, stop);
        p->member_ids = (rl_strlist){rl_xcalloc(1, sizeof(char *)), 0};
        p->member_urls = (rl_strlist){rl_xcalloc(1, sizeof(char *)), 0};
        p->blocks = (rl_u32list){rl_xcalloc(1, sizeof(uint32_t)), 0};
        p->weights = (rl_f64list){rl_xcalloc(1, sizeof(double)), 0};
        p->bias = (rl_f64list){rl_xcalloc(1, sizeof(double)), 0};
        return;
    }
    p->epoch = j->epoch;
    p->rank = (uint64_t)rank;
    p->member_ids =
        (rl_strlist){rl_xcalloc((size_t)j->n_members, sizeof(char *)), (size_t)j->n_members};
    p->member_urls =
        (rl_strlist){rl_xcalloc((size_t)j->n_members, sizeof(char *)), (size_t)j->n_members};
    for (int k = 0; k < j->n_members; k++) {
        p->member_ids.v[k] = rl_xstrdup(j->reg.nodes[j->members[k]].id);
        p->member_urls.v[k] = rl_xstrdup(j->reg.nodes[j->members[k]].listen);
    }
    size_t nb = job_blocks_of(j, i);
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
        RL_SET_FIELD(p, plan_resp, csv_fetch);
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
    RL_SET_FIELD(p, plan_resp, report_ms);
    p->exact_sum = s->exact_sum != 0;
    RL_SET_FIELD(p, plan_resp, exact_sum);
}

/* Answers every held PLAN call. Lock held. */
static void answer_waiting_plans(job *j)
{
    if (j->status == JOB_RUNNING && j->settle_epoch != 0) return; /* settle_try answers */
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

static void stop_failed_locked(job *j);

/* A member could not connect to member name when forming the current
 * epoch's ring. The same member, in two epochs in a row, while it heartbeats:
 * its address is not reachable from its peers (a loopback or private
 * address, a firewall), and retrying cannot help: the job fails naming it.
 * Lock held. */
static void note_unreachable(job *j, const char *reporter, const char *name, const char *error)
{
    int u = node_index(j, name);
    if (u < 0 || !is_member(j, u) || j->unreach_epoch == j->epoch) return;
    bool again = u == j->unreach_node && j->unreach_epoch + 1 == j->epoch;
    j->unreach_streak = again ? j->unreach_streak + 1 : 1;
    j->unreach_node = u;
    j->unreach_epoch = j->epoch;
    /* Alive: heard from within 3 heartbeats (1 s at least, RL_RING_CONNECT_MS
     * at most: a stopped process would have been silent through both
     * connect attempts). */
    const node_entry *e = &j->reg.nodes[u];
    uint64_t recent = 3u * (uint64_t)j->spec->heartbeat_ms;
    if (recent < 1000) recent = 1000;
    if (recent > RL_RING_CONNECT_MS) recent = RL_RING_CONNECT_MS;
    if (j->unreach_streak < 2 || !registry_node_alive(e, rl_clock_ms(), recent)) return;
    snprintf(j->error, sizeof(j->error),
             "the ring cannot form: member %s at %s did not answer %s in epochs %llu and %llu, "
             "while it heartbeats: is that address reachable from %s (routes, firewall)? "
             "The last failure: %s",
             e->id, e->listen, reporter, (unsigned long long)j->epoch - 1,
             (unsigned long long)j->epoch, reporter, error ? error : "");
    rl_log_error("%s", j->error);
    stop_failed_locked(j);
}

/* Program mode: when the members of the settled epoch have all said how
 * far their collectives got, every member resumes at the least count of
 * collectives one of them may have completed: a member that holds the data
 * of a collective but missed its closing barrier counts it (the barrier of
 * another may have completed). Then the held PLAN calls are answered.
 * See docs/worker-api.md. Lock held. */
static void settle_try(job *j)
{
    if (!j->program || j->settle_epoch == 0 || j->status != JOB_RUNNING) return;
    settle_report *r = rl_xcalloc((size_t)j->n_settle + 1, sizeof(*r));
    int n = 0;
    for (int k = 0; k < j->n_settle; k++) {
        const node_entry *e = &j->reg.nodes[j->settle_members[k]];
        if (e->state != NODE_JOINED) continue; /* failed or left: not waited for */
        if (e->rep_epoch != j->settle_epoch) { /* not heard from yet */
            free(r);
            return;
        }
        r[n++] = (settle_report){e->rep_done, e->rep_data};
    }
    bool consistent;
    uint64_t d = settle_resume_step(r, n, j->steps_done, &consistent);
    free(r);
    if (!consistent)
        rl_log_warn("epoch %llu: members' reports disagree; resuming at step %llu",
                    (unsigned long long)j->settle_epoch, (unsigned long long)d);
    rl_log_info("epoch %llu resumes at step %llu", (unsigned long long)j->epoch,
                (unsigned long long)d);
    j->plan_start = d;
    j->settle_epoch = 0;
    answer_waiting_plans(j);
}

/* PLAN in program mode: records how far the caller's collectives got in its
 * epoch, and answers with the current plan once it is settled; otherwise
 * holds the call. Lock held. */
static void plan_program(job *j, int i, rl_rpc_ctx *call, const rl_msg_plan_req *q, rl_msg *resp)
{
    node_entry *e = &j->reg.nodes[i];
    if (j->status == JOB_DONE || j->status == JOB_FAILED) {
        fill_plan(j, i, resp); /* stop */
        return;
    }
    mark_alive(j, i);
    if (q->epoch != 0) {
        e->rep_epoch = q->epoch;
        e->rep_done = q->step;
        e->rep_data = RL_HAS_FIELD(q, plan_req, data_done) && q->data_done;
    }
    if (q->failed) {
        rl_log_info("node %s: %s", q->node_id, q->error ? q->error : "step failed");
        snprintf(j->last_failure, sizeof(j->last_failure), "%s: %s", q->node_id,
                 q->error ? q->error : "step failed");
        if (j->status == JOB_RUNNING && q->epoch == j->epoch && j->settle_epoch == 0 &&
            is_member(j, i) && j->failure_hint_ms == 0)
            j->failure_hint_ms = rl_clock_ms();
        if (q->unreachable != NULL) note_unreachable(j, q->node_id, q->unreachable, q->error);
    }
    if (j->status == JOB_RUNNING && j->settle_epoch == 0 && is_member(j, i) &&
        q->epoch < j->epoch && e->state == NODE_JOINED) {
        fill_plan(j, i, resp); /* a newer plan, settled */
        return;
    }
    if (j->waiting_plan[i] != NULL) /* a retried call replaces the older one */
        rl_rpc_ctx_reply(j->waiting_plan[i], RL_ECANCELED, "superseded", NULL);
    j->waiting_plan[i] = call;
    rl_rpc_ctx_defer(call);
    settle_try(j);
}

static int handle_plan(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    const rl_msg_plan_req *q = &req->u.plan_req;
    int rv = RL_OK;
    char why[256];
    pthread_mutex_lock(&j->reg.mtx);
    int i = node_index(j, q->node_id);
    if (i < 0) {
        rv = RL_ENOTFOUND;
    } else if (stale_incarnation(j, "plan request", q->node_id,
                                 RL_HAS_FIELD(q, plan_req, incarnation), q->incarnation,
                                 j->reg.nodes[i].state != NODE_EXPECTED, why, sizeof(why))) {
        refuse_stale(call, why); /* the node joins again */
    } else if (j->program) {
        plan_program(j, i, call, q, resp);
    } else if (RL_HAS_FIELD(q, plan_req, data_error) && q->data_error && j->status == JOB_RUNNING) {
        /* Bad data is the same on every try and every node: no re-plan can
         * help, so the job ends with the node's error. */
        mark_alive(j, i);
        snprintf(j->error, sizeof(j->error), "data error on node %s: %s", q->node_id,
                 q->error ? q->error : "no detail");
        rl_log_error("%s", j->error);
        stop_failed_locked(j);
        fill_plan(j, i, resp); /* stop */
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
        if (q->unreachable != NULL) note_unreachable(j, q->node_id, q->unreachable, q->error);
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

/* Steps beyond this are not filed: the spec's, or (program mode) none. */
static uint64_t job_step_limit(const job *j)
{
    return j->program ? (uint64_t)INT32_MAX : (uint64_t)j->spec->steps;
}

/* Program mode: makes room for step s in j->steps. Lock held. */
static void job_steps_grow(job *j, uint64_t s)
{
    if (s < j->steps_cap) return;
    uint64_t cap = j->steps_cap;
    while (cap <= s)
        cap *= 2;
    j->steps = rl_xrealloc(j->steps, (size_t)(cap + 1) * sizeof(step_rec));
    memset(j->steps + j->steps_cap + 1, 0, (size_t)(cap - j->steps_cap) * sizeof(step_rec));
    j->steps_cap = cap;
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
    if (in->step >= job_step_limit(j)) return true;
    job_steps_grow(j, in->step);
    if (j->steps[in->step].seen) return true;
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
        for (int i = 0; i < s->node_n; i++)
            s->node_ms[i] = NAN;
        for (size_t k = 0; k < in->n_node_ms; k++) {
            mx = fmax(mx, in->node_ms[k]);
            sum += in->node_ms[k];
            if (k < (size_t)j->n_members) s->node_ms[j->members[k]] = in->node_ms[k];
        }
        if (sum > 0) s->imbalance = mx / (sum / (double)in->n_node_ms);
    }
    if (!j->program && in->step + 1 == (uint64_t)j->spec->steps) j->final_seen_ms = rl_clock_ms();
    if (in->step + 1 > j->steps_seen) j->steps_seen = in->step + 1;
    return true;
}

/* Step reports come asynchronously, may arrive out of order, and may carry
 * a batch of steps (batch_* lists, the last one being `step`): each step is
 * checked and filed under its number; steps_done counts the prefix. */
static int handle_step_report(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    const rl_msg_step_report_req *r = &req->u.step_report_req;
    pthread_mutex_lock(&j->reg.mtx);
    int ni = node_index(j, r->node_id);
    char why[256];
    if (stale_incarnation(j, "step report", r->node_id,
                          RL_HAS_FIELD(r, step_report_req, incarnation), r->incarnation,
                          ni >= 0 && j->reg.nodes[ni].state != NODE_EXPECTED, why, sizeof(why))) {
        pthread_mutex_unlock(&j->reg.mtx); /* steps of another coordinator's plan: never filed */
        return refuse_stale(call, why);
    }
    size_t k = r->batch_steps.n, nb = j->n_blocks;
    bool batch = k > 0;
    size_t per_node = batch ? r->batch_node_compute_ms.n / k : 0;
    if (batch &&
        (r->batch_loss.n != k || r->batch_step_ms.n != k || r->batch_allreduce_ms.n != k ||
         r->batch_rows.n != k || r->batch_coverage.n != k * nb ||
         per_node * k != r->batch_node_compute_ms.n || r->batch_steps.v[k - 1] != r->step)) {
        pthread_mutex_unlock(&j->reg.mtx);
        rl_log_warn("step report from %s refused: batch lists of unequal length", r->node_id);
        return RL_EINVAL;
    }
    /* Program mode: a step is counted under the epoch that ran it, which
     * may already be replaced (docs/worker-api.md). */
    if (j->status == JOB_RUNNING && (r->epoch == j->epoch || j->program)) {
        bool ok = true;
        for (size_t i = 0; ok && i < (batch ? k : 1); i++) {
            step_in in;
            if (batch)
                in = (step_in){r->batch_steps.v[i],
                               r->batch_loss.v[i],
                               r->batch_step_ms.v[i],
                               r->batch_allreduce_ms.v[i],
                               r->batch_rows.v[i],
                               0,
                               r->batch_coverage.v + i * nb,
                               nb,
                               r->batch_node_compute_ms.v + i * per_node,
                               per_node};
            else
                in = (step_in){r->step,
                               r->loss,
                               r->step_ms,
                               r->allreduce_ms,
                               (double)r->rows,
                               0,
                               r->coverage.v,
                               r->coverage.n,
                               r->node_compute_ms.v,
                               r->node_compute_ms.n};
            /* Dated by our clock: now, less how long ago the node says it was. */
            if (batch && r->batch_age_ms.n == k && r->batch_age_ms.v[i] >= 0 &&
                r->batch_age_ms.v[i] < 3.6e6)
                in.age_ms = r->batch_age_ms.v[i];
            ok = file_step(j, r->node_id, &in);
        }
        while (ok && j->steps_done < j->steps_cap && j->steps[j->steps_done].seen)
            j->steps_done++;
        /* The weights are the model after `step`: the last consistent one. */
        size_t kf = (size_t)j->model.classes * (size_t)j->model.features;
        if (ok && !j->program && r->step < (uint64_t)j->spec->steps && j->steps[r->step].seen &&
            r->weights.n == kf && r->bias.n == (size_t)j->model.classes &&
            r->step + 1 > j->model_step) {
            memcpy(j->model.w, r->weights.v, kf * sizeof(double));
            memcpy(j->model.b, r->bias.v, r->bias.n * sizeof(double));
            j->model_step = r->step + 1;
        }
        if (ok && !j->program && j->steps_done == (uint64_t)j->spec->steps) {
            j->status = JOB_DONE;
            j->reg.stopping = true;
            answer_waiting_plans(j);
        }
    }
    resp->u.step_report_resp.epoch = j->epoch;
    resp->u.step_report_resp.stop = j->reg.stopping;
    RL_SET_FIELD(&resp->u.step_report_resp, step_report_resp, stop);
    pthread_mutex_unlock(&j->reg.mtx);
    return RL_OK;
}

static const char *status_name(job_status s)
{
    switch (s) {
    case JOB_WAITING:
        return "waiting for nodes";
    case JOB_RUNNING:
        return "running";
    case JOB_DONE:
        return "ok";
    case JOB_FAILED:
        return "failed";
    }
    return "?";
}

/* v with `decimals` decimals, or "-" while it is not known (known false). */
static const char *status_field(char *buf, size_t len, bool known, int decimals, double v)
{
    if (known)
        snprintf(buf, len, "%.*f", decimals, v);
    else
        snprintf(buf, len, "-");
    return buf;
}

/* One node's row of the STATUS table. Lock held. */
static void status_node_line(const job *j, int i, FILE *f)
{
    const node_entry *e = &j->reg.nodes[i];
    int nb = (int)job_blocks_of(j, i);
    bool heard = e->heartbeats > 0;
    char rps[32], cms[32], cpu[32], rss[32], busy[32], wait[32];
    bool waits = e->step_ms > 0;
    fprintf(f, "%-12s %-9s %7d %12s %11s %9s %9s %6s %8s  %-21s  %s\n", e->id,
            snapshot_node_state(e->state), nb,
            status_field(rps, sizeof(rps), e->rows_per_s > 0, 0, e->rows_per_s),
            status_field(cms, sizeof(cms), e->compute_ms > 0, 3, e->compute_ms),
            status_field(cpu, sizeof(cpu), heard, 2, e->cpu_load),
            status_field(rss, sizeof(rss), heard, 1, (double)e->rss_bytes / 1048576.0),
            status_field(busy, sizeof(busy), waits, 2, e->busy_fraction),
            status_field(wait, sizeof(wait), waits, 3, e->wait_ms), e->listen,
            e->phase[0] ? e->phase : "-");
}

static int handle_status(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    (void)call;
    const char *format = req->u.status_req.format;
    if (format != NULL && strcmp(format, "json") == 0) {
        resp->u.status_resp.text = snapshot_json_text(j);
        return resp->u.status_resp.text != NULL ? RL_OK : RL_ENOMEM;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) return RL_ENOMEM;
    pthread_mutex_lock(&j->reg.mtx);
    uint64_t last = j->steps_done ? j->steps_done - 1 : 0;
    char loss[32] = "-"; /* not known before the first step */
    if (j->steps_done) snprintf(loss, sizeof(loss), "%.9g", j->steps[last].loss);
    if (j->program) /* the program decides how many steps, and has the loss */
        fprintf(f, "job %s: %s, step %llu (program), epoch %llu\n", j->spec->name,
                status_name(j->status), (unsigned long long)j->steps_seen,
                (unsigned long long)j->epoch);
    else
        fprintf(f, "job %s: %s, step %llu/%d, epoch %llu, loss %s\n", j->spec->name,
                status_name(j->status), (unsigned long long)j->steps_done, j->spec->steps,
                (unsigned long long)j->epoch, loss);
    if (j->resumed)
        fprintf(f, "%s from its checkpoint at step %llu; %d node%s re-admitted with their blocks\n",
                j->status == JOB_WAITING ? "resuming" : "resumed",
                (unsigned long long)j->resumed_step, j->readmitted,
                j->readmitted == 1 ? "" : "s");
    if (j->steps_done) fprintf(f, "last step %.3f ms\n", j->steps[last].ms);
    fprintf(f, "%-12s %-9s %7s %12s %11s %9s %9s %6s %8s  %-21s  %s\n", "node", "state", "blocks",
            "rows/s", "compute_ms", "cpu", "rss_MiB", "busy", "wait_ms", "endpoint", "doing");
    for (int i = 0; i < j->reg.n; i++)
        status_node_line(j, i, f);
    pthread_mutex_unlock(&j->reg.mtx);
    fclose(f);
    resp->u.status_resp.text = text;
    return RL_OK;
}

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

/* LEAVE: a worker API program leaves (the others go on under a new epoch
 * while enough are alive), or ringleader-node --exec tells how its program
 * ended. */
static int handle_leave(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    job *j = arg;
    const rl_msg_leave_req *q = &req->u.leave_req;
    (void)resp;
    if (strcmp(rl_rpc_ctx_peer(call), q->node_id) != 0) return RL_EPERM;
    pthread_mutex_lock(&j->reg.mtx);
    int i = node_index(j, q->node_id);
    if (i < 0) {
        pthread_mutex_unlock(&j->reg.mtx);
        return RL_ENOTFOUND;
    }
    node_entry *e = &j->reg.nodes[i];
    if (RL_HAS_FIELD(q, leave_req, exit_code)) {
        e->exited = true;
        e->exit_code = (int)q->exit_code;
        if (q->exit_code != 0) program_failed(j, i, (int)q->exit_code, q->stderr_tail);
    } else if (RL_HAS_FIELD(q, leave_req, signal)) {
        /* Killed: the node failed (its heartbeats stopped, its connection
         * closed); the job goes on as for a dead machine. */
        e->exited = true;
        e->exit_code = 128 + (int)q->signal;
        job_event_add(j, "exited", e->id, "killed by signal %llu", (unsigned long long)q->signal);
    }
    if (e->state == NODE_JOINED && !RL_HAS_FIELD(q, leave_req, signal)) {
        e->state = NODE_LEFT;
        job_event_add(j, "left", e->id, "after %llu steps", (unsigned long long)q->step);
        rl_log_info("node %s left after %llu steps", e->id, (unsigned long long)q->step);
        int alive = 0;
        for (int k = 0; k < j->reg.n; k++)
            if (j->reg.nodes[k].state == NODE_JOINED) alive++;
        if (j->status == JOB_RUNNING && is_member(j, i) && alive >= j->spec->min_nodes && alive > 0)
            request_replan(j, "leave");
    }
    program_check_done(j);
    pthread_cond_broadcast(&j->reg.cv);
    pthread_mutex_unlock(&j->reg.mtx);
    return RL_OK;
}

void job_wait_exits(job *j, uint64_t ms)
{
    uint64_t until = rl_clock_ms() + ms;
    pthread_mutex_lock(&j->reg.mtx);
    for (;;) {
        int pending = 0;
        for (int i = 0; i < j->reg.n; i++)
            if (j->reg.nodes[i].state == NODE_LEFT && !j->reg.nodes[i].exited) pending++;
        if (pending == 0 || rl_cond_wait_until(&j->reg.cv, &j->reg.mtx, until) != 0) break;
    }
    pthread_mutex_unlock(&j->reg.mtx);
}

int job_serve(job *j, rl_rpc_server *srv)
{
    int rv;
    if ((rv = rl_rpc_server_handle(srv, RL_MSG_JOIN_REQ, handle_join, j)) != 0 ||
        (rv = rl_rpc_server_handle(srv, RL_MSG_HEARTBEAT_REQ, handle_heartbeat, j)) != 0 ||
        (rv = rl_rpc_server_handle(srv, RL_MSG_LEAVE_REQ, handle_leave, j)) != 0 ||
        (rv = rl_rpc_server_handle(srv, RL_MSG_PLAN_REQ, handle_plan, j)) != 0 ||
        (rv = rl_rpc_server_handle(srv, RL_MSG_STEP_REPORT_REQ, handle_step_report, j)) != 0 ||
        (rv = rl_rpc_server_handle(srv, RL_MSG_STATUS_REQ, handle_status, j)) != 0 ||
        (rv = rl_rpc_server_handle(srv, RL_MSG_BLOCK_FETCH_REQ, handle_block_fetch, j)) != 0)
        return rv;
    return RL_OK;
}

/* ---- Placement and lifecycle ------------------------------------------------------ */

/* Ends the job as failed with j->error, already written: an event, and
 * every held PLAN call answered with stop. Lock held. */
static void stop_failed_locked(job *j)
{
    j->status = JOB_FAILED;
    job_event_add(j, "stopped", "", "%s", j->error);
    j->reg.stopping = true;
    answer_waiting_plans(j);
}

/* Members that joined the running job hold no blocks: each gets a first
 * share from the others, by expected speed within placement's growth cap;
 * later rebalances follow its measured speed. Lock held. */
static void share_with_newcomers(job *j, const double *speed)
{
    int n = j->n_members;
    placement_data d = job_placement_data(j);
    double *rows = rl_xcalloc((size_t)n + 1, sizeof(double));
    bool *held = rl_xcalloc((size_t)n + 1, sizeof(bool));
    bool any = false;
    placement_member_rows(&d, j->owner, j->members, n, rows);
    for (int k = 0; k < n; k++) {
        node_entry *e = &j->reg.nodes[j->members[k]];
        held[k] = !(e->late && rows[k] == 0); /* only newcomers gain */
        any = any || !held[k];
        e->late = false;
    }
    if (any) placement_rebalance(&d, j->members, n, speed, held, j->owner);
    free(rows);
    free(held);
}

/* The first plan: capacity-weighted contiguous runs. Later plans (and a
 * resumed job's first, from its checkpoint's assignment): orphaned
 * blocks go to the members by expected speed, the others stay, and members
 * that joined late get a first share. Lock held. */
static void assign_members_blocks(job *j, bool first)
{
    int n = j->n_members;
    placement_data d = job_placement_data(j);
    double *capacity = rl_xcalloc((size_t)n + 1, sizeof(double));
    double *measured = rl_xcalloc((size_t)n + 1, sizeof(double));
    double *speed = rl_xcalloc((size_t)n + 1, sizeof(double));
    for (int k = 0; k < n; k++) {
        capacity[k] = j->reg.nodes[j->members[k]].capacity;
        measured[k] = j->reg.nodes[j->members[k]].speed;
    }
    if (first) {
        placement_assign_by_weight(&d, j->members, n, capacity, j->owner);
    } else {
        placement_expected_speeds(measured, capacity, n, speed);
        placement_assign_orphans(&d, j->members, n, speed, j->owner);
        share_with_newcomers(j, speed);
    }
    free(capacity);
    free(measured);
    free(speed);
}

/* New epoch: members are the live nodes, orphaned blocks go to them, and
 * every member restarts from the coordinator's model (the last step whose
 * update every node applied). Lock held. */
static void replan_locked(job *j, const char *reason)
{
    int alive = 0, left = 0;
    for (int i = 0; i < j->reg.n; i++) {
        if (j->reg.nodes[i].state == NODE_JOINED) alive++;
        if (j->reg.nodes[i].state == NODE_LEFT) left++;
    }
    if (j->program && alive == 0 && left > 0) {
        j->replan = false; /* the programs are ending: nobody to plan for */
        return;
    }
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
    if (j->program && j->epoch > 0 && j->settle_epoch == 0) {
        /* Settle how far the current epoch's collectives got (settle_try). */
        j->settle_epoch = j->epoch;
        j->n_settle = j->n_members;
        memcpy(j->settle_members, j->members, (size_t)j->n_members * sizeof(int));
    }
    int *before = rl_xcalloc(j->n_blocks + 1, sizeof(int));
    memcpy(before, j->owner, (j->n_blocks + 1) * sizeof(int));
    j->n_members = 0;
    for (int i = 0; i < j->reg.n; i++)
        if (j->reg.nodes[i].state == NODE_JOINED) j->members[j->n_members++] = i;
    /* A resumed job's first plan starts from its checkpoint's assignment. */
    assign_members_blocks(j, prev == 0 && !j->resumed);
    /* Members wait for each other while the slowest makes its new blocks. */
    placement_data d = job_placement_data(j);
    j->plan_make_ms =
        (uint64_t)placement_make_allowance_ms(&d, before, j->owner, j->members, j->n_members);
    free(before);
    if (j->epoch < j->epoch_floor) j->epoch = j->epoch_floor; /* above re-admitted nodes' fences */
    j->epoch++;
    j->last_plan_ms = rl_clock_ms();
    j->imbalance_streak = 0;
    j->link_streak = 0;
    j->status = JOB_RUNNING;
    j->replan = false;
    j->failure_hint_ms = 0;
    if (j->program) {
        j->plan_end = UINT64_MAX; /* the program decides; plan_start: settle_try */
    } else {
        j->plan_start = j->model_step;
        j->plan_end = (uint64_t)j->spec->steps;
        for (uint64_t k = j->model_step; k < (uint64_t)j->spec->steps; k++)
            j->steps[k].seen = false;
        if (j->steps_done > j->model_step) j->steps_done = j->model_step;
    }
    char counts[100] = "";
    size_t off = 0;
    for (int k = 0; k < j->n_members && off < sizeof(counts) - 1; k++) {
        int nb = 0;
        for (uint32_t b = 0; b < j->n_blocks; b++)
            if (j->owner[b] == j->members[k]) nb++;
        off += (size_t)snprintf(counts + off, sizeof(counts) - off, "%s%s:%d", k ? " " : "",
                                j->reg.nodes[j->members[k]].id, nb);
    }
    if (j->program) /* the step it starts from is settled later (settle_try) */
        job_event_add(j, "reassign", "", "epoch %llu (%s), blocks %s", (unsigned long long)j->epoch,
                      reason, counts);
    else
        job_event_add(j, "reassign", "", "epoch %llu (%s), from step %llu, blocks %s",
                      (unsigned long long)j->epoch, reason, (unsigned long long)j->plan_start,
                      counts);
    rl_log_info("epoch %llu (%s): %d nodes, from step %llu", (unsigned long long)j->epoch, reason,
                j->n_members, (unsigned long long)j->plan_start);
    answer_waiting_plans(j);
    settle_try(j);
}

void job_start(job *j)
{
    pthread_mutex_lock(&j->reg.mtx);
    j->status = JOB_RUNNING;
    replan_locked(j, "start");
    pthread_mutex_unlock(&j->reg.mtx);
}

/* A straggler found: an event and an info line (a rebalance is routine;
 * failures are the warnings). Lock held. */
static void report_straggler(job *j, const node_entry *e, double compute_ms, double median)
{
    job_event_add(j, "straggler", e->id, "busy %.3f ms per step vs median %.3f ms", compute_ms,
                  median);
    rl_log_info("node %s is a straggler: busy %.3f ms per step vs median %.3f ms", e->id,
                compute_ms, median);
}

/* One member's figures for placement, this round: compute_ms is what
 * placement balances (placement_load_ms), busy_ms and step_ms as measured. */
typedef struct member_figures {
    double *compute_ms, *speed, *rows, *busy_ms, *step_ms;
} member_figures;

/* Fills f for every member. true: every member is measured in this epoch
 * and has reported since the last evaluation (placement decides once per
 * round of fresh heartbeats from every member). Lock held. */
static bool gather_round(job *j, member_figures *f)
{
    int n = j->n_members, fresh = 0, updated = 0;
    placement_data d = job_placement_data(j);
    placement_member_rows(&d, j->owner, j->members, n, f->rows);
    for (int k = 0; k < n; k++) {
        node_entry *e = &j->reg.nodes[j->members[k]];
        uint64_t in_epoch = e->compute_epoch == j->epoch ? e->samples_epoch : 0;
        double c = placement_recent_compute_ms(e->compute_samples, 256, e->ncompute, in_epoch);
        uint64_t busy_in = e->busy_epoch == j->epoch ? e->busy_in_epoch : 0;
        f->busy_ms[k] = placement_busy_ms(e->busy_samples, 256, e->nbusy, busy_in);
        f->step_ms[k] = e->step_ms;
        if (c > 0) {
            f->compute_ms[k] = c;
            fresh++;
        }
        if (e->ncompute != e->evaluated) updated++;
    }
    if (fresh < n || updated < n) return false;
    placement_load_ms(f->compute_ms, f->busy_ms, n, f->compute_ms);
    for (int k = 0; k < n; k++) {
        const node_entry *e = &j->reg.nodes[j->members[k]];
        f->speed[k] = f->rows[k] > 0 ? f->rows[k] / f->compute_ms[k] : e->speed;
    }
    for (int k = 0; k < n; k++)
        j->reg.nodes[j->members[k]].evaluated = j->reg.nodes[j->members[k]].ncompute;
    return true;
}

/* e read over the straggler threshold: no blocks back for a while, longer
 * each time it relapses (placement_hold). Lock held. */
static void hold_node(job *j, node_entry *e, uint64_t now)
{
    hold_state h = {e->hold_until_ms, e->hold_level};
    h = placement_hold(h, now, PLACEMENT_HOLD_HEARTBEATS * (uint64_t)j->spec->heartbeat_ms);
    e->hold_until_ms = h.until_ms;
    e->hold_level = h.level;
}

/* The straggler rule for every member; an over-threshold member gets no
 * blocks back for a while. Lock held. */
static void apply_straggler_rule(job *j, const double *compute_ms, double median, uint64_t now)
{
    const rl_spec *sp = j->spec;
    for (int k = 0; k < j->n_members; k++) {
        node_entry *e = &j->reg.nodes[j->members[k]];
        straggler_state st = {e->slow_streak, e->slow};
        straggler_verdict v =
            placement_straggler_rule(st, compute_ms[k], median, sp->straggler_factor);
        e->slow_streak = v.next.streak;
        e->slow = v.next.slow;
        if (v.over) hold_node(j, e, now);
        if (v.flagged) report_straggler(j, e, compute_ms[k], median);
    }
}

/* Moves blocks by measured speed; the node they are taken from, when over
 * the threshold, is a straggler. Lock held. */
static void rebalance_now(job *j, const member_figures *f, const rebalance_verdict *v,
                          double median, uint64_t now)
{
    const rl_spec *sp = j->spec;
    int n = j->n_members, s = v->slowest;
    if (s >= 0) {
        node_entry *e = &j->reg.nodes[j->members[s]];
        if (placement_is_over(f->compute_ms[s], median, sp->straggler_factor) && !e->slow) {
            e->slow = true;
            hold_node(j, e, now);
            report_straggler(j, e, f->compute_ms[s], median);
        }
    }
    bool *held = rl_xcalloc((size_t)n + 1, sizeof(bool));
    uint32_t *had = rl_xcalloc((size_t)n + 1, sizeof(uint32_t));
    for (int k = 0; k < n; k++) {
        held[k] = j->reg.nodes[j->members[k]].hold_until_ms > now;
        had[k] = job_blocks_of(j, j->members[k]);
    }
    placement_data d = job_placement_data(j);
    int moved = placement_rebalance(&d, j->members, n, f->speed, held, j->owner);
    /* A member that lost blocks gets none back for a hold: the readings
     * that moved them may come between stalls, and blocks that bounce back
     * at the next fast reading cost two moves for nothing. */
    for (int k = 0; moved > 0 && k < n; k++)
        if (job_blocks_of(j, j->members[k]) < had[k])
            hold_node(j, &j->reg.nodes[j->members[k]], now);
    free(held);
    free(had);
    if (moved > 0) {
        char why[96];
        snprintf(why, sizeof(why), "rebalance: %d blocks moved, slowest %.16s %.2f ms -> ~%.2f ms",
                 moved, s >= 0 ? j->reg.nodes[j->members[s]].id : "-", v->max_ms, v->ideal_ms);
        request_replan(j, why);
    }
}

/* The slow link rule (placement.h) over the members' waits on each other
 * in this epoch: a link named for PLACEMENT_LINK_ROUNDS rounds in a row is
 * an event, once per node and epoch. Lock held. */
static void check_slow_link(job *j, const member_figures *f)
{
    int n = j->n_members;
    double *wait = rl_xcalloc((size_t)n * (size_t)n + 1, sizeof(double));
    bool complete = true;
    for (int i = 0; i < n && complete; i++) {
        const node_entry *e = &j->reg.nodes[j->members[i]];
        complete = e->peer_epoch == j->epoch && e->peer_n == (size_t)n && f->step_ms[i] > 0 &&
                   e->peer_in_epoch >= PLACEMENT_MIN_SAMPLES;
        /* Windowed means: with steps longer than a heartbeat each heartbeat
         * carries one step's waits, and one step's pattern alone names the
         * wrong node about one round in three (the collective's waits pass
         * from the slow link's ends to their partners). */
        for (int k = 0; complete && k < n; k++)
            wait[i * n + k] =
                placement_window_mean(e->peer_wait_ms + (size_t)k * PLACEMENT_WAIT_WINDOW,
                                      PLACEMENT_WAIT_WINDOW, e->npeer, e->peer_in_epoch);
    }
    slow_link_verdict v = {.found = false};
    if (complete) {
        slow_link_state prev = {j->link_streak, j->link_a, j->link_b};
        v = placement_slow_link_rule(wait, f->compute_ms, f->step_ms, n, j->spec->straggler_factor,
                                     prev);
        j->link_streak = v.next.streak;
        j->link_a = v.next.a;
        j->link_b = v.next.b;
    }
    free(wait);
    if (v.link && (j->link_named_epoch != j->epoch || j->link_named != j->members[v.next.b])) {
        j->link_named_epoch = j->epoch;
        j->link_named = j->members[v.next.b];
        const char *a = j->reg.nodes[j->members[v.next.a]].id;
        const char *b = j->reg.nodes[j->members[v.next.b]].id;
        job_event_add(j, "slow_link", b,
                      "%s waits on %s: the link between them is slow, "
                      "not a node (steps %.1f ms, %s busy %.2f ms of them); blocks stay",
                      a, b, f->step_ms[v.next.a], b, f->compute_ms[v.next.b]);
        rl_log_info("slow link between %s and %s: blocks stay", a, b);
    }
}

/* Load-aware placement (placement.h): marks stragglers and, when the
 * predicted step time gain pays for the move, rebalances blocks by measured
 * speed. Lock held. */
static void check_balance(job *j, uint64_t now)
{
    const rl_spec *sp = j->spec;
    int n = j->n_members;
    if (n < 2 || now - j->last_plan_ms < PLACEMENT_SETTLE_HEARTBEATS * (uint64_t)sp->heartbeat_ms)
        return;
    double *all = rl_xcalloc(5 * (size_t)n, sizeof(double));
    member_figures f = {all, all + n, all + 2 * n, all + 3 * n, all + 4 * n};
    if (!gather_round(j, &f)) goto out;
    check_slow_link(j, &f);
    /* Steps that nobody's work explains (a slow link): no straggler, no move. */
    if (placement_link_bound(f.compute_ms, f.step_ms, n)) goto out;
    double median = placement_median(f.compute_ms, n);
    apply_straggler_rule(j, f.compute_ms, median, now);
    if (!sp->rebalance) goto out;
    uint64_t done = j->model_step < (uint64_t)sp->steps ? j->model_step : 0;
    placement_round r = {.n = n,
                         .members = j->members,
                         .compute_ms = f.compute_ms,
                         .speed = f.speed,
                         .rows = f.rows,
                         .steps_left = j->program ? 1000 : (uint64_t)sp->steps - done,
                         .has_last_step = j->steps_done > 0,
                         .last_step_ms = j->steps_done ? j->steps[j->steps_done - 1].ms : 0};
    /* The members' windowed mean step stands for the step when known: one
     * step caught in a stall would make any gain look small. */
    double mean_step = 0;
    for (int k = 0; k < n && mean_step >= 0; k++)
        mean_step = f.step_ms[k] > 0 ? mean_step + f.step_ms[k] / n : -1;
    if (mean_step > 0) {
        r.has_last_step = true;
        r.last_step_ms = mean_step;
    }
    placement_data d = job_placement_data(j);
    imbalance_state prev = {j->imbalance_streak, j->imbalance_node};
    rebalance_verdict v = placement_rebalance_rule(&d, &r, prev);
    j->imbalance_streak = v.next.streak;
    j->imbalance_node = v.next.node;
    if (v.move) rebalance_now(j, &f, &v, median, now);
out:
    free(all);
}

/* A node failed and no step has completed since (its "failed" event still
 * has no recovery_ms). Lock held. */
static bool recovery_pending(const job *j)
{
    for (size_t k = 0; k < j->n_events; k++)
        if (strcmp(j->events[k].kind, "failed") == 0 && j->events[k].recovery_ms < 0) return true;
    return false;
}

/* Program mode, launch manual: every node that joined has left (or
 * failed) and one left: the job is done. Lock held. */
static void program_check_done(job *j)
{
    /* launch local: the programs' exits decide (job_programs_ended) */
    if (!j->program || j->status != JOB_RUNNING || j->spec->launch == RL_LAUNCH_LOCAL) return;
    int left = 0;
    for (int i = 0; i < j->reg.n; i++) {
        if (j->reg.nodes[i].state == NODE_JOINED) return;
        if (j->reg.nodes[i].state == NODE_LEFT) left++;
    }
    if (left == 0) return;
    j->status = JOB_DONE;
    j->reg.stopping = true;
    answer_waiting_plans(j);
}

/* A program ended with a non-zero exit code: the job fails naming the
 * node, the code and the last lines of its stderr. Lock held. */
static void program_failed(job *j, int i, int code, const char *tail)
{
    /* done (every node left) but run.json not written yet: it fails still */
    if (j->status == JOB_FAILED || j->interrupted) return;
    const char *t = tail != NULL ? tail : "";
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == '\n')
        n--;
    snprintf(j->error, sizeof(j->error),
             "the program of node %s exited with code %d; the last lines of its stderr:\n%.*s",
             j->reg.nodes[i].id, code, (int)n, t);
    job_event_add(j, "exited", j->reg.nodes[i].id, "exit code %d", code);
    rl_log_error("%s", j->error);
    stop_failed_locked(j);
}

void job_program_exited(job *j, int i, int status, const char *tail)
{
    pthread_mutex_lock(&j->reg.mtx);
    node_entry *e = &j->reg.nodes[i];
    e->exited = true;
    if (WIFEXITED(status)) {
        e->exit_code = WEXITSTATUS(status);
        if (e->exit_code != 0) program_failed(j, i, e->exit_code, tail);
    } else if (WIFSIGNALED(status)) {
        /* Killed: a failure of the node, which the job survives as it would
         * a dead machine (its heartbeats stop, its connection closes). */
        e->exit_code = 128 + WTERMSIG(status);
        job_event_add(j, "exited", e->id, "killed by signal %d", WTERMSIG(status));
    }
    pthread_mutex_unlock(&j->reg.mtx);
}

void job_programs_ended(job *j)
{
    pthread_mutex_lock(&j->reg.mtx);
    bool ok = false;
    for (int i = 0; i < j->reg.n; i++)
        if (j->reg.nodes[i].exited && j->reg.nodes[i].exit_code == 0) ok = true;
    if (j->status == JOB_RUNNING || j->status == JOB_WAITING) {
        j->status = ok ? JOB_DONE : JOB_FAILED;
        if (!ok) snprintf(j->error, sizeof(j->error), "every program ended without exiting 0");
        j->reg.stopping = true;
        answer_waiting_plans(j);
    }
    pthread_mutex_unlock(&j->reg.mtx);
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
        bool gone = !e->connected && (j->failure_hint_ms != 0 || recovering ||
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
            /* the model (a program's steps) moved: a new streak */
            uint64_t progress = j->program ? j->steps_seen : j->model_step;
            if (j->retry_step != progress) {
                j->retry_step = progress;
                j->retry_streak = 0;
            }
            if (++j->retry_streak <= JOB_RETRY_MAX) {
                request_replan(j, "retry after a failed step");
            } else {
                snprintf(j->error, sizeof(j->error),
                         "%d epochs in a row failed at step %llu with every node alive; the last "
                         "failure: %s",
                         JOB_RETRY_MAX, (unsigned long long)progress, j->last_failure);
                stop_failed_locked(j);
            }
        }
    }
    if (!j->replan) check_balance(j, now);
    if (j->replan) replan_locked(j, j->replan_reason);
    settle_try(j); /* a member waited for may have failed */
    program_check_done(j);
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

void job_interrupt(job *j)
{
    pthread_mutex_lock(&j->reg.mtx);
    if (j->status != JOB_DONE && j->status != JOB_FAILED) {
        j->status = JOB_FAILED;
        j->interrupted = true;
        snprintf(j->error, sizeof(j->error), "interrupted at step %llu of %d",
                 (unsigned long long)j->model_step, j->spec->steps);
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
