/*
 * worker.c - the node's training loop. It asks the coordinator for a plan
 * (epoch, ring members, its blocks, the model to start from and the steps to
 * run), forms the ring, and runs synchronous data-parallel steps: gradient
 * sums over its blocks, one all-reduce of [gradient, loss, rows, coverage],
 * a coverage check, and the same update on every node.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "ringleader/agent.h"
#include "worker.h"
#include "ringleader/allreduce.h"
#include "ringleader/clock.h"
#include "ringleader/data.h"
#include "ringleader/err.h"
#include "ringleader/log.h"
#include "ringleader/mem.h"
#include "ringleader/model.h"

/* How long past two collectives' deadlines a member waits for its peers to
 * make their blocks and join a new ring (see the use): a backstop only, as
 * the coordinator's next epoch or a stop ends the wait (lib/agent.c). */
#define READY_BACKSTOP_MS 60000
/* How much nicer than the node's other threads the worker thread runs (see
 * worker_run); at most 19. */
#define WORKER_NICE 10

/* Milliseconds, with the monotonic clock's full resolution, for step timing. */
static double now_ms(void)
{
    return (double)rl_clock_ns() / 1e6;
}

/* The blocks this node holds, for one plan. */
typedef struct held {
    rl_block *blocks;
    size_t n;
    uint32_t *ids;
} held;

static void held_free(held *h)
{
    for (size_t i = 0; i < h->n; i++)
        rl_block_free(&h->blocks[i]);
    free(h->blocks);
    free(h->ids);
    memset(h, 0, sizeof(*h));
}

static bool held_has(const held *h, uint32_t id, size_t *at)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->ids[i] == id) {
            *at = i;
            return true;
        }
    return false;
}

/* Makes h hold exactly the plan's blocks: keeps those it has, makes the
 * others (synthetic: generated; csv: cut from the table, or fetched from
 * the coordinator when this node has no table). */
static int held_update(rl_agent *a, held *h, const rl_msg_plan_resp *p, const rl_data_params *dp,
                       const rl_table *table, const rl_model *m, size_t *kept)
{
    *kept = 0;
    held nh = {0};
    nh.n = p->blocks.n;
    nh.blocks = calloc(nh.n + 1, sizeof(rl_block));
    nh.ids = calloc(nh.n + 1, sizeof(uint32_t));
    if (nh.blocks == NULL || nh.ids == NULL) {
        free(nh.blocks);
        free(nh.ids);
        return RL_ENOMEM;
    }
    int rv = RL_OK;
    for (size_t i = 0; i < nh.n && rv == RL_OK; i++) {
        uint32_t id = p->blocks.v[i];
        size_t at;
        nh.ids[i] = id;
        if (held_has(h, id, &at)) {
            nh.blocks[i] = h->blocks[at];
            memset(&h->blocks[at], 0, sizeof(rl_block));
            (*kept)++;
            continue;
        }
        bool csv = p->source == RL_DATA_CSV;
        rv = table ? rl_table_block(table, dp, id, &nh.blocks[i])
             : csv ? rl_agent_fetch_block(a, dp, id, &nh.blocks[i])
                   : rl_block_synthetic(dp, id, &nh.blocks[i]);
        if (rv == RL_OK && csv && p->mean.v != NULL && p->std.v != NULL)
            rl_block_standardize(&nh.blocks[i], p->mean.v, p->std.v);
        if (rv == RL_OK) rv = rl_model_check_labels(m, &nh.blocks[i]);
    }
    held_free(h);
    *h = nh;
    return rv;
}

static int ask_plan(rl_agent *a, uint64_t epoch, uint64_t step, const char *failure,
                    bool data_error, const char *unreachable, rl_rpc_reply *rep)
{
    rl_msg req;
    rl_msg_init(&req, RL_MSG_PLAN_REQ);
    req.u.plan_req.node_id = (char *)a->id;
    req.u.plan_req.epoch = epoch;
    req.u.plan_req.step = step;
    if (failure != NULL) {
        req.u.plan_req.failed = true;
        RL_SET_FIELD(&req.u.plan_req, plan_req, failed);
        req.u.plan_req.error = (char *)failure;
        if (data_error) { /* the coordinator ends the job with it */
            req.u.plan_req.data_error = true;
            RL_SET_FIELD(&req.u.plan_req, plan_req, data_error);
        }
        if (unreachable[0] != '\0') req.u.plan_req.unreachable = (char *)unreachable;
    }
    /* The coordinator answers when it has a plan for us: wait in slices so a
     * lost coordinator is noticed. While the agent re-dials a lost one, a
     * failed call is tried again (its re-admission ends the wait: RL_EREPLAN,
     * the caller asks afresh), and a call refused as being from another
     * incarnation too: the agent re-joins. */
    for (;;) {
        if (atomic_load(&a->stop) || atomic_load(&a->coord_lost)) return RL_ECANCELED;
        if (atomic_load(&a->redialing))
            return rl_agent_wait_readmitted(a) == RL_OK ? RL_EREPLAN : RL_ECANCELED;
        req.u.plan_req.incarnation = atomic_load(&a->incarnation);
        if (req.u.plan_req.incarnation != 0) RL_SET_FIELD(&req.u.plan_req, plan_req, incarnation);
        int rv = rl_rpc_call(a->rpc, &req, rep, rl_clock_ms() + 2000);
        if (rv == RL_OK) return rv;
        rl_rpc_reply_fini(rep);
        if (rv == RL_ETIMEDOUT) continue;
        if (rv == RL_ESTALE || rv == RL_ECLOSED || rv == RL_EUNAVAIL) {
            /* the heartbeat thread decides within failure_timeout_ms:
             * re-dial (redialing) or leave (stop) */
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        return rv;
    }
}

/* Where each part of the all-reduced payload sits: G gradient sums, the
 * loss sum, the row count, one count per block (the coverage proof), and
 * one compute-time slot per member (the others add 0, so rank 0 can report
 * them). */
typedef struct payload {
    size_t G, nb, nm, len;
} payload;

#define PAYLOAD_LOSS(pl)       ((pl)->G)
#define PAYLOAD_ROWS(pl)       ((pl)->G + 1)
#define PAYLOAD_BLOCK(pl, b)   ((pl)->G + 2 + (b))
#define PAYLOAD_COMPUTE(pl, r) ((pl)->G + 2 + (pl)->nb + (r))

/* The worker's state across plans. */
typedef struct worker {
    rl_agent *a;
    uint64_t epoch, step_done;
    char failure[300]; /* told to the coordinator with the next PLAN request */
    bool data_error;   /* failure is in the data: told as such, then the node exits 1 */
    bool told_data_error;
    uint64_t plan_admissions; /* the agent's JOINs when the current plan came (0: none yet) */
    uint64_t spec_hash;       /* the coordinator's spec at the last plan (0: none yet) */
    char unreachable[RL_ID_MAX]; /* with it: the member the ring could not reach ("" none) */
    held h;
    rl_table *table;
    rl_model m;
    payload pl;
    double *buf, *red; /* the payload, before and after the all-reduce */
    bool exact;        /* training.exact_sum: the payload is summed in xacc */
    rl_exact *xacc;    /* the payload's exact sums (pl.len), when exact */
    double *gblk;      /* one block's gradient (pl.G + 1: the loss last), when exact */
    rl_agent_batch rb;
    /* The straggler signal (worker_account_waits): the ring's wait counters,
     * the stall watch's, and when the previous step ended, at the last step. */
    uint64_t *wait_seen;
    double *peer_ms;
    uint64_t stall_seen;
    double prev_end_ms, stall_carry_ms;
    int schedstat_fd;    /* this thread's /proc schedstat (-1: none) ... */
    uint64_t delay_seen; /* ... and its run-queue delay (ns) at the last step */
} worker;

/* Logs the failure just recorded: at info when it is routine (the job is
 * stopping, or the coordinator has already planned a newer epoch, as it does
 * for a rebalance), as a warning otherwise. */
static void worker_log_failure(const worker *w)
{
    const rl_agent *a = w->a;
    if (atomic_load(&a->stop) || atomic_load(&a->planned_epoch) > w->epoch)
        rl_log_info("%s (superseded)", w->failure);
    else
        rl_log_warn("%s", w->failure);
}

/* What the worker does after a plan. */
typedef enum { WORKER_NEXT_PLAN, WORKER_STOP, WORKER_FAIL } worker_next;

/* One step's clock readings: start, compute done, all-reduce done, update done. */
typedef struct step_times {
    double t0, t1, t2, t3;
} step_times;

/* Lowers this thread's priority below the node's other threads (heartbeats,
 * RPC): on a node short of CPU its compute would otherwise delay the
 * heartbeats until the live node is failed; see docs/performance.md. */
static void worker_lower_priority(void)
{
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, tid); /* -1 is a valid value: errno tells */
    if (errno == 0) {
        int want = nice_now + WORKER_NICE > 19 ? 19 : nice_now + WORKER_NICE;
        if (want != nice_now && setpriority(PRIO_PROCESS, tid, want) != 0)
            rl_log_warn("worker priority: %s", strerror(errno));
    }
}

static rl_data_params plan_data_params(const rl_msg_plan_resp *p)
{
    return (rl_data_params){.rows = (int64_t)p->rows,
                            .features = (int)p->features,
                            .classes = (int)p->classes,
                            .model = (rl_model_type)p->model,
                            .noise = p->noise,
                            .seed = p->seed,
                            .block_rows = (int)p->block_rows};
}

/* A data error (bad CSV, bad label): no re-plan can help, so it is told to
 * the coordinator with the next PLAN request, flagged, and ends the job
 * (docs/operations.md). */
static worker_next worker_data_error(worker *w, const char *what)
{
    snprintf(w->failure, sizeof(w->failure), "%s", what);
    rl_log_error("data error: %s", w->failure);
    w->data_error = true;
    return WORKER_NEXT_PLAN;
}

/* Loads the CSV table when this node has the file, and makes the model:
 * once. Then takes the plan's weights. */
static worker_next worker_take_model(worker *w, const rl_msg_plan_resp *p)
{
    rl_csv_opts o = {.label = p->csv_label,
                     .check_labels = true,
                     .model = (rl_model_type)p->model,
                     .classes = (int)p->classes};
    if (p->source == RL_DATA_CSV && w->table == NULL && !p->csv_fetch &&
        access(p->csv_path, R_OK) == 0 && rl_csv_load_opts(p->csv_path, &o, &w->table) != RL_OK)
        return worker_data_error(w, rl_errdetail());
    rl_model *m = &w->m;
    if (m->w == NULL &&
        rl_model_init(m, (rl_model_type)p->model, (int)p->features, (int)p->classes) != 0) {
        rl_log_error("model: %s", rl_errdetail());
        return WORKER_FAIL;
    }
    size_t K = (size_t)m->classes, F = (size_t)m->features;
    if (p->weights.n != K * F || p->bias.n != K) {
        rl_log_error("plan carries a model of the wrong shape");
        return WORKER_FAIL;
    }
    memcpy(m->w, p->weights.v, K * F * sizeof(double));
    memcpy(m->b, p->bias.v, K * sizeof(double));
    return WORKER_NEXT_PLAN;
}

/* Makes or keeps the plan's blocks; `readmitted`: the first plan since the
 * node joined again (a lost coordinator), whose keeping is logged. */
static worker_next worker_take_blocks(worker *w, const rl_msg_plan_resp *p,
                                      const rl_data_params *dp, bool readmitted)
{
    rl_agent *a = w->a;
    atomic_store(&a->phase, RL_AGENT_PHASE_MAKING_BLOCKS);
    size_t had = w->h.n, kept = 0;
    int rv = held_update(a, &w->h, p, dp, w->table, &w->m, &kept);
    atomic_store(&a->phase, RL_AGENT_PHASE_FORMING_RING);
    if (readmitted && rv == RL_OK)
        rl_log_info("epoch %llu after re-admission: %zu blocks, %zu of the %zu held kept, %zu made",
                    (unsigned long long)p->epoch, w->h.n, kept, had, w->h.n - kept);
    if (atomic_load(&a->stop)) return WORKER_STOP; /* while making blocks */
    if (rv == RL_EDATA) return worker_data_error(w, rl_errdetail());
    if (rv != RL_OK) {
        snprintf(w->failure, sizeof(w->failure), "blocks: %s",
                 rv == RL_ENOMEM ? rl_strerror(rv) : rl_errdetail());
        rl_log_error("%s", w->failure);
        return WORKER_FAIL;
    }
    return WORKER_NEXT_PLAN;
}

/* Sizes the payload and the report batch for the plan. RL_ENOMEM if the
 * payload's buffers cannot be had. */
static int worker_size_buffers(worker *w, const rl_msg_plan_resp *p)
{
    payload *pl = &w->pl;
    pl->G = rl_model_grad_len(&w->m);
    pl->nb = (size_t)p->n_blocks;
    pl->nm = p->member_ids.n;
    pl->len = pl->G + 2 + pl->nb + pl->nm;
    w->exact = p->exact_sum;
    free(w->buf);
    free(w->red);
    free(w->xacc);
    free(w->gblk);
    w->buf = malloc(pl->len * sizeof(double));
    w->red = malloc(pl->len * sizeof(double));
    w->xacc = w->exact ? malloc(pl->len * sizeof(rl_exact)) : NULL;
    w->gblk = w->exact ? malloc((pl->G + 1) * sizeof(double)) : NULL;
    if (w->buf == NULL || w->red == NULL || (w->exact && (w->xacc == NULL || w->gblk == NULL)))
        return RL_ENOMEM;
    rl_agent_batch_init(&w->rb, pl->nb, pl->nm, w->plan_admissions);
    return RL_OK;
}

/* Forms the ring of the plan's epoch (the worker's epoch becomes the
 * plan's whatever the outcome) and publishes it for the agent to abort.
 * *ready_deadline: by when the members must be ready. */
static int worker_form_ring(worker *w, const rl_msg_plan_resp *p, uint64_t op_ms,
                            uint64_t *ready_deadline, rl_ring **out)
{
    rl_agent *a = w->a;
    size_t nm = p->member_ids.n;
    rl_ring_member *mem = rl_xcalloc(nm + 1, sizeof(*mem)); /* a few pointers per member */
    int unreachable = -1;
    for (size_t i = 0; i < nm; i++) {
        mem[i].id = p->member_ids.v[i];
        mem[i].url = p->member_urls.v[i];
    }
    /* No yielding while waiting (yield_us -1): between steps the node's other
     * threads and the coordinator want the CPU; see docs/performance.md. */
    rl_ring_config cfg = {.epoch = p->epoch,
                          .rank = (int)p->rank,
                          .size = (int)nm,
                          .members = mem,
                          .chunk_bytes = p->chunk_bytes,
                          .small_bytes = SIZE_MAX,
                          .yield_us = -1,
                          .tcp_congestion = p->tcp_congestion,
                          .unreachable_rank = &unreachable};
    /* Peers may still be making their blocks, and a member short of CPU
     * takes many times the coordinator's estimate. It is alive, so wait for
     * it: one that dies or stops is failed by the coordinator, whose new
     * epoch fences this wait (lib/agent.c); this deadline is only the backstop. */
    *ready_deadline = rl_clock_ms() + 2 * op_ms + READY_BACKSTOP_MS;
    int rv = rl_ring_form(a->ep, &cfg, *ready_deadline, out);
    free(mem);
    w->epoch = p->epoch;
    atomic_store(&a->epoch, w->epoch);
    if (rv != RL_OK) {
        snprintf(w->failure, sizeof(w->failure), "ring epoch %llu: %s",
                 (unsigned long long)w->epoch, rl_errdetail());
        if (unreachable >= 0 && (size_t)unreachable < nm) /* named to the coordinator */
            snprintf(w->unreachable, sizeof(w->unreachable), "%s", p->member_ids.v[unreachable]);
        worker_log_failure(w);
        return rv;
    }
    pthread_mutex_lock(&a->mtx);
    a->ring = *out;
    pthread_mutex_unlock(&a->mtx);
    return RL_OK;
}

/* Starts every member's first step together: a peer still making new
 * blocks would otherwise time out the others' first collective. A stop seen
 * here was set before the agent could abort this ring (it sets stop first,
 * then aborts a->ring under a->mtx). */
static int worker_wait_for_members(worker *w, rl_ring *ring, uint64_t ready_deadline)
{
    if (atomic_load(&w->a->stop)) return RL_ECANCELED;
    int rv = rl_barrier(ring, ready_deadline);
    if (rv != RL_OK) {
        snprintf(w->failure, sizeof(w->failure),
                 "ring epoch %llu: waiting for every member's blocks: %s",
                 (unsigned long long)w->epoch, rl_errdetail());
        worker_log_failure(w);
    }
    return rv;
}

/* Adds block i's gradient and loss to the payload: into buf as a double
 * sum, or (exact) computed alone and added to the exact accumulators, so
 * that the total does not depend on which blocks a node holds or in what
 * order (docs/exactness.md). */
static void worker_add_block(worker *w, size_t i)
{
    const payload *pl = &w->pl;
    if (!w->exact) {
        rl_model_grad_block(&w->m, &w->h.blocks[i], w->buf, &w->buf[PAYLOAD_LOSS(pl)]);
        return;
    }
    memset(w->gblk, 0, (pl->G + 1) * sizeof(double));
    rl_model_grad_block(&w->m, &w->h.blocks[i], w->gblk, &w->gblk[pl->G]);
    rl_exact_add_f64(w->xacc, w->gblk, pl->G + 1); /* the loss is PAYLOAD_LOSS, right after */
}

/* Fills the payload with this node's gradient sums, rows and block counts
 * and its compute time in its rank's slot (exact: all of it enters the
 * exact accumulators; rows, counts and times are integers or one member's
 * value, exact either way). Returns the rows. */
static int64_t worker_compute(worker *w, uint64_t rank, step_times *t)
{
    const payload *pl = &w->pl;
    double *buf = w->buf;
    t->t0 = now_ms();
    memset(buf, 0, pl->len * sizeof(double));
    if (w->exact) rl_exact_clear(w->xacc, pl->len);
    int64_t rows = 0;
    for (size_t i = 0; i < w->h.n; i++) {
        worker_add_block(w, i);
        rows += w->h.blocks[i].rows;
        buf[PAYLOAD_BLOCK(pl, w->h.ids[i])] += 1.0;
    }
    buf[PAYLOAD_ROWS(pl)] = (double)rows;
    t->t1 = now_ms();
    buf[PAYLOAD_COMPUTE(pl, rank)] = t->t1 - t->t0;
    if (w->exact) rl_exact_add_f64(w->xacc, buf, pl->len);
    return rows;
}

/* The all-reduce of the payload into w->red. */
static int worker_allreduce(worker *w, rl_ring *ring, uint64_t deadline_ms)
{
    const payload *pl = &w->pl;
    if (!w->exact)
        return rl_allreduce(ring, w->buf, w->red, pl->len, RL_F64, RL_OP_SUM, deadline_ms);
    int rv = rl_allreduce_exact(ring, w->xacc, w->xacc, pl->len, deadline_ms);
    if (rv == RL_OK) rl_exact_to_f64(w->xacc, w->red, pl->len);
    return rv;
}

/* The coverage proof on the reduced payload: every block counted exactly
 * once and every row. Writes the counts to cov. */
static bool worker_check_coverage(worker *w, uint64_t s, int64_t total_rows, uint32_t *cov)
{
    const payload *pl = &w->pl;
    const double *red = w->red;
    bool ok = (int64_t)red[PAYLOAD_ROWS(pl)] == total_rows;
    for (size_t b = 0; b < pl->nb; b++) {
        double c = red[PAYLOAD_BLOCK(pl, b)];
        cov[b] = c < 0 ? 0 : (uint32_t)c;
        if (c != 1.0) ok = false;
    }
    if (!ok) {
        snprintf(w->failure, sizeof(w->failure),
                 "step %llu: coverage violation (rows %.0f of %lld)", (unsigned long long)s,
                 red[PAYLOAD_ROWS(pl)], (long long)total_rows);
        rl_log_error("%s", w->failure);
    }
    return ok;
}

/* Publishes the step's figures for the agent's heartbeats. */
static void worker_publish(rl_agent *a, uint64_t s, int64_t rows, const step_times *t)
{
    double compute = t->t1 - t->t0;
    atomic_store(&a->compute_ms, compute);
    pthread_mutex_lock(&a->acc_mtx);
    a->acc_compute_ms += compute;
    a->acc_rows += (double)rows;
    a->acc_steps++;
    pthread_mutex_unlock(&a->acc_mtx);
    atomic_store(&a->allreduce_ms, t->t2 - t->t1);
    atomic_store(&a->rows_per_s, t->t1 > t->t0 ? (double)rows / (compute / 1e3) : 0);
    atomic_store(&a->step, s + 1);
}

/* Sends the report batch, with the model after its last step unless
 * with_model is false (after a coverage violation); synchronously when
 * sync. */
static void worker_report(worker *w, bool with_model, bool sync)
{
    const rl_model *m = &w->m;
    size_t nw = (size_t)m->classes * (size_t)m->features, nb = (size_t)m->classes;
    rl_agent_batch_flush(w->a, &w->rb, w->epoch, with_model ? m->w : NULL, nw, m->b, nb, sync);
}

/* Files the step in the report batch (its coverage counts are already at
 * the batch's next slot) and sends the batch when it is due: now after a
 * violation or the plan's last step (synchronously: the coordinator must
 * have the model before we go), its first (so a recovery is timed to the
 * step), a full batch, or report_ms since the oldest record. */
static void worker_record(worker *w, const rl_msg_plan_resp *p, uint64_t s, bool ok, double loss,
                          const step_times *t)
{
    rl_agent_batch *rb = &w->rb;
    const payload *pl = &w->pl;
    size_t k = rl_agent_batch_add(rb, s, t->t3 - t->t0, t->t1 - t->t0, t->t2 - t->t1,
                                  w->red[PAYLOAD_ROWS(pl)], t->t3);
    rb->loss[k] = loss;
    memcpy(rb->ncomp + k * pl->nm, &w->red[PAYLOAD_COMPUTE(pl, 0)], pl->nm * sizeof(double));
    bool last = s + 1 == p->end_step;
    if (!ok || last)
        worker_report(w, ok, true);
    else if (s == p->start_step || rl_agent_batch_due(rb, t->t3, p->report_ms))
        worker_report(w, true, false);
}

/* Nanoseconds the worker thread has waited on a run queue (runnable, not
 * running: its CPU taken by others, or its group throttled), or 0 when the
 * kernel does not tell (no schedstat). */
static uint64_t worker_run_delay_ns(const worker *w)
{
    char buf[96];
    if (w->schedstat_fd < 0) return 0;
    ssize_t n = pread(w->schedstat_fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0) return 0;
    buf[n] = '\0';
    unsigned long long run = 0, delay = 0;
    return sscanf(buf, "%llu %llu", &run, &delay) == 2 ? (uint64_t)delay : 0;
}

/* Starts the straggler signal's counting on a formed ring: what the ring's
 * waits and the stall watch read now (the barrier's wait is not a step's). */
static void worker_start_waits(worker *w, rl_ring *ring)
{
    int n = rl_ring_size(ring);
    free(w->wait_seen);
    free(w->peer_ms);
    w->wait_seen = rl_xcalloc((size_t)n + 1, sizeof(uint64_t)); /* a few words per member */
    w->peer_ms = rl_xcalloc((size_t)n + 1, sizeof(double));
    for (int p = 0; p < n; p++)
        w->wait_seen[p] = rl_ring_wait_ns(ring, p);
    w->stall_seen = atomic_load(&w->a->stall_ns);
    w->delay_seen = worker_run_delay_ns(w);
    w->prev_end_ms = 0;
    w->stall_carry_ms = 0;
}

/* One step's waiting, into the heartbeat window: the time blocked on each
 * peer's data since the last step, less the time this process was frozen
 * (it cannot tell from inside a wait that it was frozen in it). The stall
 * watch may report a stall a little after the wait it lay in ended, so a
 * step's stall not matched by its own waiting is carried to the next step
 * once (docs/operations.md). */
static void worker_account_waits(worker *w, rl_ring *ring, const step_times *t)
{
    int n = rl_ring_size(ring);
    double wait = 0;
    for (int p = 0; p < n; p++) {
        uint64_t now = rl_ring_wait_ns(ring, p);
        w->peer_ms[p] = (double)(now - w->wait_seen[p]) / 1e6;
        w->wait_seen[p] = now;
        wait += w->peer_ms[p];
    }
    uint64_t stall_now = atomic_load(&w->a->stall_ns), delay_now = worker_run_delay_ns(w);
    /* Frozen (the stall watch) or kept off the CPU (the run-queue delay):
     * both often at once, so the larger counts. */
    double stall =
        fmax((double)(stall_now - w->stall_seen), (double)(delay_now - w->delay_seen)) / 1e6;
    w->stall_seen = stall_now;
    w->delay_seen = delay_now;
    double avail = stall + w->stall_carry_ms;
    double mine = wait < avail ? wait : avail;
    w->stall_carry_ms = avail - mine < stall ? avail - mine : stall;
    rl_agent_step_waits sw = {.epoch = w->epoch,
                              .step_ms = t->t3 - (w->prev_end_ms > 0 ? w->prev_end_ms : t->t0),
                              .wait_ms = wait - mine,
                              .stall_ms = stall,
                              .peer_ms = w->peer_ms,
                              .members = (size_t)n};
    w->prev_end_ms = t->t3;
    rl_agent_add_waits(w->a, &sw);
}

/* One training step: gradient, all-reduce, coverage check, update, report.
 * RL_OK and *ok false: a coverage violation (no update). */
static int worker_step(worker *w, const rl_msg_plan_resp *p, rl_ring *ring, uint64_t s,
                       uint64_t op_ms, int64_t total_rows, bool *ok)
{
    const payload *pl = &w->pl;
    step_times t;
    int64_t rows = worker_compute(w, p->rank, &t);
    int rv = worker_allreduce(w, ring, rl_clock_ms() + op_ms);
    t.t2 = now_ms();
    if (rv != RL_OK) {
        snprintf(w->failure, sizeof(w->failure), "step %llu: %s", (unsigned long long)s,
                 rl_errdetail());
        worker_log_failure(w);
        return rv;
    }
    *ok = worker_check_coverage(w, s, total_rows, w->rb.cov + w->rb.k * pl->nb);
    double loss = 0;
    if (*ok)
        rl_model_step(&w->m, w->red, w->red[PAYLOAD_LOSS(pl)], (int64_t)w->red[PAYLOAD_ROWS(pl)],
                      p->learning_rate, p->l2, &loss);
    t.t3 = now_ms();
    worker_account_waits(w, ring, &t);
    worker_publish(w->a, s, rows, &t);
    if (p->rank == 0 || !*ok) worker_record(w, p, s, *ok, loss, &t);
    return RL_OK;
}

/* Runs the plan's steps on the formed ring (rv: the barrier's outcome),
 * then reports what is left and detaches the ring. */
static void worker_run_steps(worker *w, const rl_msg_plan_resp *p, rl_ring *ring, uint64_t op_ms,
                             int rv)
{
    rl_agent *a = w->a;
    int64_t total_rows = (int64_t)p->rows;
    atomic_store(&a->phase, RL_AGENT_PHASE_STEPPING);
    worker_start_waits(w, ring);
    for (uint64_t s = p->start_step; rv == RL_OK && s < p->end_step && !atomic_load(&a->stop);
         s++) {
        bool ok = true;
        rv = worker_step(w, p, ring, s, op_ms, total_rows, &ok);
        if (rv != RL_OK || !ok) break;
        w->step_done = s + 1;
    }
    /* The job's last step done: the coordinator may end (and close) from
     * now on, which is then no failure (worker_run, lib/agent.c). */
    if (rv == RL_OK && w->step_done == p->end_step) atomic_store(&a->job_done, true);
    /* Steps done but not yet reported: the coordinator restarts from the
     * last model it has, so tell it before asking for a new plan. */
    worker_report(w, true, true);
    pthread_mutex_lock(&a->mtx);
    a->ring = NULL;
    pthread_mutex_unlock(&a->mtx);
}

/* A coordinator of another spec admitted this node (a new job on the same
 * URL while it waited for its own, lib/agent.c): the blocks and the table
 * may be of other data, so they go, and the plan's blocks are made anew. */
static void worker_check_spec(worker *w)
{
    uint64_t h = atomic_load(&w->a->spec_hash);
    if (w->spec_hash != 0 && h != w->spec_hash) {
        rl_log_warn("re-admitted by a coordinator of another spec (hash %016llx, was %016llx): "
                    "dropping the %zu blocks held",
                    (unsigned long long)h, (unsigned long long)w->spec_hash, w->h.n);
        held_free(&w->h);
        rl_table_free(w->table);
        w->table = NULL;
    }
    w->spec_hash = h;
}

/* Carries out one plan: the model and blocks, the ring, the steps. */
static worker_next worker_follow_plan(worker *w, const rl_msg_plan_resp *p)
{
    if (p->stop) return WORKER_STOP;
    atomic_store(&w->a->job_done, false); /* steps to run again */
    /* This plan's epoch fences older rings from now on, also for a re-join
     * that comes before its ring forms (lib/agent.c, agent_rejoin). */
    uint64_t pe = atomic_load(&w->a->planned_epoch);
    while (pe < p->epoch && !atomic_compare_exchange_weak(&w->a->planned_epoch, &pe, p->epoch)) {
    }
    uint64_t was = w->plan_admissions;
    w->plan_admissions = atomic_load(&w->a->admissions);
    bool readmitted = was != 0 && was != w->plan_admissions;
    worker_check_spec(w);
    rl_data_params dp = plan_data_params(p);
    worker_next next = worker_take_model(w, p);
    if (next == WORKER_NEXT_PLAN && !w->data_error)
        next = worker_take_blocks(w, p, &dp, readmitted);
    if (next != WORKER_NEXT_PLAN || w->data_error) return next;
    if (worker_size_buffers(w, p) != RL_OK) {
        snprintf(w->failure, sizeof(w->failure), "step buffers: %s", rl_strerror(RL_ENOMEM));
        rl_log_error("%s", w->failure);
        return WORKER_FAIL;
    }
    rl_ring *ring = NULL;
    uint64_t op_ms = p->deadline_ms ? p->deadline_ms : 5000, ready_deadline;
    if (worker_form_ring(w, p, op_ms, &ready_deadline, &ring) != RL_OK) return WORKER_NEXT_PLAN;
    int rv = worker_wait_for_members(w, ring, ready_deadline);
    worker_run_steps(w, p, ring, op_ms, rv);
    rl_ring_free(ring);
    return atomic_load(&w->a->stop) ? WORKER_STOP : WORKER_NEXT_PLAN;
}

int worker_run(rl_agent *a)
{
    worker w = {.a = a};
    int code = 0;
    worker_lower_priority();
    w.schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    for (;;) {
        rl_rpc_reply rep;
        memset(&rep, 0, sizeof(rep)); /* ask_plan may return before any call */
        atomic_store(&a->phase, RL_AGENT_PHASE_WAITING);
        if (w.plan_admissions != atomic_load(&a->admissions)) {
            w.failure[0] = '\0'; /* of a plan of a coordinator since replaced */
            w.unreachable[0] = '\0';
        }
        int rv = ask_plan(a, w.epoch, w.step_done, w.failure[0] ? w.failure : NULL, w.data_error,
                          w.unreachable, &rep);
        w.failure[0] = '\0';
        w.unreachable[0] = '\0';
        w.told_data_error |= w.data_error;
        w.data_error = false;
        worker_next next = WORKER_STOP;
        if (rv == RL_OK) {
            next = worker_follow_plan(&w, &rep.msg.u.plan_resp);
        } else if (rv == RL_EREPLAN) {
            /* Re-admitted after losing the coordinator: the failure told
             * nothing to the coordinator that admitted us again; the blocks
             * are kept for its plan. */
            rl_log_info("re-admitted; asking for a plan (holding %zu blocks)", w.h.n);
            next = WORKER_NEXT_PLAN;
        } else if (rv != RL_ECANCELED && atomic_load(&a->job_done)) {
            /* The coordinator ended after our last step: the job's end. */
            rl_log_info("the coordinator closed after the job's last step (%s); leaving",
                        rl_errdetail());
        } else if (rv != RL_ECANCELED) {
            rl_log_error("no plan from the coordinator: %s", rl_errdetail());
            next = WORKER_FAIL;
        }
        rl_rpc_reply_fini(&rep);
        if (next == WORKER_FAIL || w.told_data_error) code = 1;
        if (next != WORKER_NEXT_PLAN) break;
    }
    held_free(&w.h);
    rl_agent_batch_free(&w.rb);
    rl_table_free(w.table);
    rl_model_fini(&w.m);
    free(w.buf);
    free(w.red);
    free(w.xacc);
    free(w.gblk);
    free(w.wait_seen);
    free(w.peer_ms);
    if (w.schedstat_fd >= 0) close(w.schedstat_fd);
    return code;
}
