/*
 * worker.c - the worker API (ringleader/worker.h): a program as a node of a
 * job, over the same agent (join, heartbeats, fencing), plans and rings as
 * ringleader-node's built-in trainer. See docs/worker-api.md for the
 * protocol: each collective is a header round (arguments, coverage, compute
 * times), the data, and a barrier; a failure is settled by the coordinator,
 * which names the step every member resumes at.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reduce_ops.h"
#include "ringleader/agent.h"
#include "ringleader/clock.h"
#include "ringleader/data.h"
#include "ringleader/exact.h"
#include "ringleader/log.h"
#include "ringleader/mem.h"
#include "ringleader/worker.h"
#include "rli.h"

/* How long a collective's first round waits for peers that are still
 * computing, and a worker for a plan: a backstop only, as a dead or silent
 * peer is failed by the coordinator, whose new epoch ends the wait. */
#define WORKER_WAIT_BACKSTOP_MS 600000
/* Elements a collective carries in its header round instead of a round of
 * its own (worker_inline): every member's values are gathered there, each
 * in its own slots, and every member reduces them alike. */
#define WORKER_INLINE_MAX 8

struct rl_worker {
    rl_agent *a;
    rl_ring *ring;
    uint64_t epoch, done; /* the ring's epoch; collectives completed */
    bool replan_due;      /* the next collective returns RL_EREPLAN at once ... */
    uint64_t replan_from; /* ... naming this epoch as the one replaced */
    int rank, size;
    uint32_t *blocks, n_blocks_total;
    size_t n_blocks;
    uint64_t op_ms, report_ms;
    size_t chunk_bytes;
    char tcp_congestion[16];
    /* the data section, from the plan */
    rl_data_params dp;
    int source, csv_fetch;
    char csv_path[RL_PATH_MAX], csv_label[RL_ID_MAX];
    double *mean, *std;
    rl_table *table;
    float *x, *y; /* the current blocks' rows (rl_worker_data) */
    size_t rows, data_rows;
    bool data_valid;
    /* one collective's header: per rank count, dtype, op; block counts;
     * per rank compute ms; rows */
    double *hdr, *hdr_red;
    size_t hdr_len;
    double t_return; /* when the last collective returned (0: none yet) */
    rl_agent_batch rb; /* rank 0's step records not yet reported */
    char failure[320], unreachable[RL_ID_MAX];
};

#define HDR_ARGS(w, r)    (3 * (size_t)(r))
#define HDR_BLOCK(w, b)   (3 * (size_t)(w)->size + (b))
#define HDR_COMPUTE(w, r) (3 * (size_t)(w)->size + (w)->n_blocks_total + (size_t)(r))
#define HDR_ROWS(w)       (4 * (size_t)(w)->size + (w)->n_blocks_total)
/* A small collective's data travels in its header (worker_inline): each
 * rank's WORKER_INLINE_MAX slots, after the rows. */
#define HDR_INLINE(w, r)  (HDR_ROWS(w) + 1 + (size_t)(r) * WORKER_INLINE_MAX)

static double worker_now_ms(void)
{
    return (double)rl_clock_ns() / 1e6;
}

/* ---- Step reports (rank 0) --------------------------------------------------- */

/* Files collective `step` (its header reduced in hdr_red) for the report. */
static void batch_record(rl_worker *w, uint64_t step, double t0, double t1, double t2)
{
    rl_agent_batch *b = &w->rb;
    /* loss 0: the program's own, not known here */
    size_t k = rl_agent_batch_add(b, step, t2 - t0, w->hdr_red[HDR_COMPUTE(w, w->rank)], t2 - t1,
                                  w->hdr_red[HDR_ROWS(w)], t2);
    for (size_t i = 0; i < b->nb; i++) {
        double c = w->hdr_red[HDR_BLOCK(w, i)];
        b->cov[k * b->nb + i] = c < 0 ? 0 : (uint32_t)c;
    }
    for (size_t r = 0; r < b->nm; r++)
        b->ncomp[k * b->nm + r] = w->hdr_red[HDR_COMPUTE(w, r)];
    if (step == 0 || rl_agent_batch_due(b, t2, w->report_ms))
        rl_agent_batch_flush(w->a, b, w->epoch, NULL, 0, NULL, 0, false);
}

/* ---- Plans and rings ---------------------------------------------------------- */

/* Asks the coordinator for a plan (reporting a failure when failed), in
 * slices so that a stop or a lost coordinator is noticed. */
static int worker_ask_plan(rl_worker *w, bool failed, bool data_done, rl_rpc_reply *rep)
{
    rl_msg req;
    rl_msg_init(&req, RL_MSG_PLAN_REQ);
    rl_msg_plan_req *q = &req.u.plan_req;
    q->node_id = (char *)w->a->id;
    q->epoch = w->epoch;
    q->step = w->done;
    q->incarnation = atomic_load(&w->a->incarnation);
    if (q->incarnation != 0) RL_SET_FIELD(q, plan_req, incarnation);
    if (failed) {
        q->failed = true;
        RL_SET_FIELD(q, plan_req, failed);
        q->error = w->failure;
        if (w->unreachable[0] != '\0') q->unreachable = w->unreachable;
        q->data_done = data_done;
        RL_SET_FIELD(q, plan_req, data_done);
    }
    uint64_t until = rl_clock_ms() + WORKER_WAIT_BACKSTOP_MS;
    for (;;) {
        if (atomic_load(&w->a->stop) || atomic_load(&w->a->coord_lost))
            return rli_err(RL_ECANCELED, "node %s: the job ended", w->a->id);
        int rv = rl_rpc_call(w->a->rpc, &req, rep, rl_clock_ms() + 2000);
        if (rv != RL_ETIMEDOUT) return rv;
        rl_rpc_reply_fini(rep);
        if (rl_clock_ms() > until)
            return rli_err(RL_ETIMEDOUT, "node %s: no plan from the coordinator in %d s", w->a->id,
                           WORKER_WAIT_BACKSTOP_MS / 1000);
    }
}

/* Takes the plan's membership, blocks and data section. */
static void worker_take_plan(rl_worker *w, const rl_msg_plan_resp *p)
{
    w->epoch = p->epoch;
    w->rank = (int)p->rank;
    w->size = (int)p->member_ids.n;
    free(w->blocks);
    w->n_blocks = p->blocks.n;
    w->blocks = rl_xcalloc(w->n_blocks + 1, sizeof(uint32_t));
    memcpy(w->blocks, p->blocks.v, w->n_blocks * sizeof(uint32_t));
    w->n_blocks_total = (uint32_t)p->n_blocks;
    w->op_ms = p->deadline_ms ? p->deadline_ms : 5000;
    w->report_ms = RL_HAS_FIELD(p, plan_resp, report_ms) ? p->report_ms : 20;
    w->chunk_bytes = p->chunk_bytes;
    snprintf(w->tcp_congestion, sizeof(w->tcp_congestion), "%s",
             p->tcp_congestion ? p->tcp_congestion : "");
    w->dp = (rl_data_params){.rows = (int64_t)p->rows,
                             .features = (int)p->features,
                             .classes = (int)p->classes,
                             .model = (rl_model_type)p->model,
                             .noise = p->noise,
                             .seed = p->seed,
                             .block_rows = (int)p->block_rows};
    w->source = (int)p->source;
    w->csv_fetch = p->csv_fetch;
    snprintf(w->csv_path, sizeof(w->csv_path), "%s", p->csv_path ? p->csv_path : "");
    snprintf(w->csv_label, sizeof(w->csv_label), "%s", p->csv_label ? p->csv_label : "");
    free(w->mean);
    free(w->std);
    w->mean = w->std = NULL;
    if (p->mean.v != NULL && p->std.v != NULL && p->mean.n == p->features) {
        w->mean = rl_xmalloc(p->mean.n * sizeof(double) + 1);
        w->std = rl_xmalloc(p->std.n * sizeof(double) + 1);
        memcpy(w->mean, p->mean.v, p->mean.n * sizeof(double));
        memcpy(w->std, p->std.v, p->std.n * sizeof(double));
    }
    w->rows = 0;
    for (size_t i = 0; i < w->n_blocks; i++) {
        int64_t left = w->dp.rows - (int64_t)w->blocks[i] * w->dp.block_rows;
        w->rows += (size_t)(left < w->dp.block_rows ? left : w->dp.block_rows);
    }
    w->data_valid = false;
    w->hdr_len = 4 * (size_t)w->size + w->n_blocks_total + 1 + (size_t)w->size * WORKER_INLINE_MAX;
    free(w->hdr);
    free(w->hdr_red);
    w->hdr = rl_xcalloc(w->hdr_len, sizeof(double));
    w->hdr_red = rl_xcalloc(w->hdr_len, sizeof(double));
    /* A program's job is not resumed from a checkpoint: its steps are
     * reported whichever coordinator admitted it (a replaced one refuses
     * them by incarnation). */
    rl_agent_batch_init(&w->rb, w->n_blocks_total, (size_t)w->size, 0);
    atomic_store(&w->a->epoch, w->epoch);
}

/* Forms the plan's ring and publishes it for the agent to abort. */
static int worker_form_ring(rl_worker *w, const rl_msg_plan_resp *p)
{
    size_t nm = p->member_ids.n;
    rl_ring_member *mem = rl_xcalloc(nm + 1, sizeof(*mem));
    for (size_t i = 0; i < nm; i++) {
        mem[i].id = p->member_ids.v[i];
        mem[i].url = p->member_urls.v[i];
    }
    int unreachable = -1;
    rl_ring_config cfg = {.epoch = p->epoch,
                          .rank = (int)p->rank,
                          .size = (int)nm,
                          .members = mem,
                          .chunk_bytes = w->chunk_bytes,
                          .small_bytes = SIZE_MAX,
                          .tcp_congestion = w->tcp_congestion,
                          .unreachable_rank = &unreachable};
    atomic_store(&w->a->phase, RL_AGENT_PHASE_FORMING_RING);
    int rv = rl_ring_form(w->a->ep, &cfg, rl_clock_ms() + 2 * w->op_ms + 60000, &w->ring);
    w->unreachable[0] = '\0';
    if (rv != RL_OK && unreachable >= 0 && (size_t)unreachable < nm)
        snprintf(w->unreachable, sizeof(w->unreachable), "%s", p->member_ids.v[unreachable]);
    free(mem);
    if (rv != RL_OK) return rv;
    pthread_mutex_lock(&w->a->mtx);
    w->a->ring = w->ring;
    pthread_mutex_unlock(&w->a->mtx);
    atomic_store(&w->a->phase, RL_AGENT_PHASE_STEPPING);
    return RL_OK;
}

/* Drops the ring (aborting it, so that peers still in it fail fast). */
static void worker_drop_ring(rl_worker *w, const char *why)
{
    if (w->ring == NULL) return;
    pthread_mutex_lock(&w->a->mtx);
    w->a->ring = NULL;
    pthread_mutex_unlock(&w->a->mtx);
    rl_ring_abort(w->ring, RL_ECANCELED, why);
    rl_ring_free(w->ring);
    w->ring = NULL;
}

/*
 * Gets a plan and forms its ring, telling the coordinator of a failure when
 * failed. *resume: the step the coordinator says every member resumes at
 * (the first plan's, or the settlement of a failure). Retries with a new
 * plan while a ring cannot form.
 */
static int worker_next_plan(rl_worker *w, bool failed, bool data_done, uint64_t *resume)
{
    bool first = true;
    for (;;) {
        rl_rpc_reply rep;
        int rv = worker_ask_plan(w, failed, data_done, &rep);
        if (rv == RL_OK && rep.msg.u.plan_resp.stop)
            rv = rli_err(RL_ECANCELED, "node %s: the job ended", w->a->id);
        if (rv != RL_OK) {
            rl_rpc_reply_fini(&rep);
            return rv;
        }
        const rl_msg_plan_resp *p = &rep.msg.u.plan_resp;
        if (first) *resume = p->start_step;
        first = false;
        worker_take_plan(w, p);
        rv = worker_form_ring(w, p);
        rl_rpc_reply_fini(&rep);
        if (rv == RL_OK) return RL_OK;
        snprintf(w->failure, sizeof(w->failure), "ring epoch %llu: %s",
                 (unsigned long long)w->epoch, rl_errdetail());
        rl_log_info("%s", w->failure);
        failed = true;
        data_done = false;
    }
}

/* RL_EREPLAN, with the detail every member's program sees alike but its id. */
static int worker_replanned(rl_worker *w, uint64_t from)
{
    return rli_err(RL_EREPLAN,
                   "node %s: epoch %llu -> %llu at step %llu: membership or blocks changed; %zu "
                   "blocks now (%s)",
                   w->a->id, (unsigned long long)from, (unsigned long long)w->epoch,
                   (unsigned long long)w->done, w->n_blocks, w->failure);
}

/*
 * The collective in progress failed (or a newer epoch was planned): tells
 * the coordinator how far this member got and takes the new plan. Returns
 * RL_OK when the coordinator settles that this collective completed
 * (data_done, and every member resumes after it; the next one then returns
 * RL_EREPLAN), RL_EREPLAN when it is to be redone, or the error that ended
 * the job for this member.
 */
static int worker_replan(rl_worker *w, bool data_done)
{
    uint64_t before = w->epoch, done = w->done;
    worker_drop_ring(w, "a newer epoch was planned");
    rl_agent_batch_flush(w->a, &w->rb, w->epoch, NULL, 0, NULL, 0, true);
    uint64_t resume = done;
    int rv = worker_next_plan(w, true, data_done, &resume);
    if (rv != RL_OK) return rv;
    w->done = resume;
    if (data_done && resume == done + 1) {
        w->replan_due = true;
        w->replan_from = before;
        w->t_return = worker_now_ms();
        return RL_OK;
    }
    return worker_replanned(w, before);
}

/* ---- Join and leave ------------------------------------------------------------ */

static const char *worker_env(const char *given, const char *name)
{
    if (given != NULL && given[0] != '\0') return given;
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static void worker_free(rl_worker *w)
{
    if (w == NULL) return;
    worker_drop_ring(w, "leaving");
    rl_agent_close(w->a);
    free(w->blocks);
    free(w->mean);
    free(w->std);
    rl_table_free(w->table);
    free(w->x);
    free(w->y);
    free(w->hdr);
    free(w->hdr_red);
    rl_agent_batch_free(&w->rb);
    free(w);
}

int rl_worker_join(const char *coordinator, const char *node_id, const char *listen,
                   const char *token_file, rl_worker **out)
{
    *out = NULL;
    rl_tls_files tls = {getenv("RINGLEADER_TLS_CERT"), getenv("RINGLEADER_TLS_KEY"),
                        getenv("RINGLEADER_TLS_CA")};
    rl_agent_opts o = {.coordinator = worker_env(coordinator, "RINGLEADER_COORDINATOR"),
                       .id = worker_env(node_id, "RINGLEADER_NODE_ID"),
                       .listen = worker_env(listen, "RINGLEADER_LISTEN"),
                       .token_file = worker_env(token_file, "RINGLEADER_TOKEN_FILE"),
                       .tls = tls.cert != NULL ? &tls : NULL};
    if (o.coordinator == NULL || o.id == NULL)
        return rli_err(RL_EINVAL, "rl_worker_join: no %s: pass it or set %s",
                       o.coordinator == NULL ? "coordinator URL" : "node id",
                       o.coordinator == NULL ? "RINGLEADER_COORDINATOR" : "RINGLEADER_NODE_ID");
    if (getenv("RINGLEADER_TLS_VERIFY_HOSTNAME") != NULL &&
        strcmp(getenv("RINGLEADER_TLS_VERIFY_HOSTNAME"), "false") == 0)
        tls.skip_hostname_check = true;
    rl_log_set_tag(o.id); /* this process is that node */
    rl_worker *w = rl_xcalloc(1, sizeof(*w));
    int rv = rl_agent_open(&o, &w->a);
    if (rv != RL_OK) {
        free(w);
        return rv;
    }
    uint64_t resume = 0;
    rv = worker_next_plan(w, false, false, &resume);
    if (rv != RL_OK) {
        worker_free(w);
        return rv;
    }
    w->done = resume;
    *out = w;
    return RL_OK;
}

int rl_worker_leave(rl_worker *w)
{
    if (w == NULL) return RL_OK;
    rl_agent_batch_flush(w->a, &w->rb, w->epoch, NULL, 0, NULL, 0, true);
    rl_msg req;
    rl_rpc_reply rep;
    rl_msg_init(&req, RL_MSG_LEAVE_REQ);
    req.u.leave_req.node_id = (char *)w->a->id;
    req.u.leave_req.step = w->done;
    RL_SET_FIELD(&req.u.leave_req, leave_req, step);
    int rv = RL_OK;
    /* After the coordinator's stop (the job ended) or its loss there is
     * nobody to tell. */
    if (!atomic_load(&w->a->coord_lost) && !atomic_load(&w->a->stop))
        rv = rl_rpc_call(w->a->rpc, &req, &rep, rl_clock_ms() + 5000);
    else
        memset(&rep, 0, sizeof(rep));
    if (rv != RL_OK) rv = rli_err_prefix(rv, "node %s: leave", w->a->id);
    rl_rpc_reply_fini(&rep);
    atomic_store(&w->a->job_done, true); /* the coordinator closing now is no failure */
    worker_free(w);
    return rv;
}

/* ---- Accessors ----------------------------------------------------------------- */

int rl_worker_rank(const rl_worker *w)
{
    return w->rank;
}

int rl_worker_size(const rl_worker *w)
{
    return w->size;
}

uint64_t rl_worker_epoch(const rl_worker *w)
{
    return w->epoch;
}

uint64_t rl_worker_step(const rl_worker *w)
{
    return w->done;
}

const char *rl_worker_id(const rl_worker *w)
{
    return w->a->id;
}

size_t rl_worker_blocks(const rl_worker *w, const uint32_t **ids)
{
    if (ids != NULL) *ids = w->blocks;
    return w->n_blocks;
}

uint32_t rl_worker_blocks_total(const rl_worker *w)
{
    return w->n_blocks_total;
}

/* Makes block id as the built-in trainer does (node/worker.c, held_update). */
static int worker_make_block(rl_worker *w, uint32_t id, rl_block *b)
{
    if (w->source != RL_DATA_CSV) return rl_block_synthetic(&w->dp, id, b);
    if (w->table == NULL && !w->csv_fetch && access(w->csv_path, R_OK) == 0) {
        rl_csv_opts o = {.label = w->csv_label,
                         .check_labels = true,
                         .model = w->dp.model,
                         .classes = w->dp.classes};
        int rv = rl_csv_load_opts(w->csv_path, &o, &w->table);
        if (rv != RL_OK) return rv;
    }
    int rv = w->table != NULL ? rl_table_block(w->table, &w->dp, id, b)
                              : rl_agent_fetch_block(w->a, &w->dp, id, b);
    if (rv == RL_OK && w->mean != NULL) rl_block_standardize(b, w->mean, w->std);
    return rv;
}

int rl_worker_data(rl_worker *w, const float **X, const float **y, size_t *rows, size_t *features)
{
    size_t f = (size_t)w->dp.features;
    if (!w->data_valid) {
        free(w->x);
        free(w->y);
        w->x = malloc(w->rows * f * sizeof(float) + 1);
        w->y = malloc(w->rows * sizeof(float) + 1);
        if (w->x == NULL || w->y == NULL)
            return rli_err(RL_ENOMEM, "rl_worker_data: %zu rows x %zu features", w->rows, f);
        size_t at = 0;
        for (size_t i = 0; i < w->n_blocks; i++) {
            rl_block b;
            int rv = worker_make_block(w, w->blocks[i], &b);
            if (rv != RL_OK) return rv;
            memcpy(w->x + at * f, b.x, (size_t)b.rows * f * sizeof(float));
            memcpy(w->y + at, b.y, (size_t)b.rows * sizeof(float));
            at += (size_t)b.rows;
            rl_block_free(&b);
        }
        w->data_rows = at;
        w->data_valid = true;
    }
    *X = w->x;
    *y = w->y;
    *rows = w->data_rows;
    *features = f;
    return RL_OK;
}

/* ---- Collectives --------------------------------------------------------------- */

/* The header round's arguments check: every member called with the same
 * count, dtype and op. Otherwise RL_EINVAL naming the first that differs. */
static int worker_check_args(rl_worker *w, size_t count, rl_dtype dt, rl_op op)
{
    for (int r = 0; r < w->size; r++) {
        const double *g = &w->hdr_red[HDR_ARGS(w, r)];
        if (g[0] == (double)count && g[1] == (double)dt && g[2] == (double)op) continue;
        const double *m = &w->hdr_red[HDR_ARGS(w, w->rank)];
        return rli_err(RL_EINVAL,
                       "allreduce at step %llu, epoch %llu: members called with different "
                       "arguments: rank %d count %.0f %s %s, rank %d count %.0f %s %s",
                       (unsigned long long)w->done, (unsigned long long)w->epoch, w->rank, m[0],
                       rl_dtype_name((rl_dtype)m[1]), rl_op_name((rl_op)m[2]), r, g[0],
                       g[1] >= 0 && g[1] < RL_DTYPE_COUNT ? rl_dtype_name((rl_dtype)g[1]) : "?",
                       g[2] >= 0 && g[2] < RL_OP_COUNT ? rl_op_name((rl_op)g[2]) : "?");
    }
    return RL_OK;
}

/* The coverage proof in the header round: every block counted exactly
 * once, every row. Every member sees the same table, so all fail alike. */
static int worker_check_coverage(rl_worker *w)
{
    for (uint32_t b = 0; b < w->n_blocks_total; b++)
        if (w->hdr_red[HDR_BLOCK(w, b)] != 1.0)
            return rli_err(RL_ECOVERAGE, "step %llu, epoch %llu: block %u counted %.0f times",
                           (unsigned long long)w->done, (unsigned long long)w->epoch, b,
                           w->hdr_red[HDR_BLOCK(w, b)]);
    if (w->hdr_red[HDR_ROWS(w)] != (double)w->dp.rows)
        return rli_err(RL_ECOVERAGE, "step %llu, epoch %llu: %.0f rows of %lld",
                       (unsigned long long)w->done, (unsigned long long)w->epoch,
                       w->hdr_red[HDR_ROWS(w)], (long long)w->dp.rows);
    return RL_OK;
}

/* Whether count elements of dt under op go in the header round: f32, f64
 * and i32 are exact in its doubles (i64 is not). The choice depends on the
 * arguments only, which every member checks alike. */
static bool worker_inline(size_t count, rl_dtype dt, rl_op op)
{
    return count > 0 && count <= WORKER_INLINE_MAX && (dt == RL_F32 || dt == RL_F64 || dt == RL_I32) &&
           (op != RL_OP_SUM_EXACT || dt != RL_I32);
}

/* The inline collective's result, from every rank's slots in the reduced
 * header: reduced in rank order with the dtype's own kernel, as the direct
 * algorithm does (allreduce.c); the exact sum through accumulators. */
static void worker_inline_reduce(rl_worker *w, void *buf, size_t count, rl_dtype dt, rl_op op)
{
    union {
        float f[WORKER_INLINE_MAX];
        double d[WORKER_INLINE_MAX];
        int32_t i[WORKER_INLINE_MAX];
    } v;
    size_t es = rl_dtype_size(dt);
    if (op == RL_OP_SUM_EXACT) {
        rl_exact acc[WORKER_INLINE_MAX];
        rl_exact_clear(acc, count);
        for (int r = 0; r < w->size; r++)
            rl_exact_add_f64(acc, &w->hdr_red[HDR_INLINE(w, r)], count); /* f32 is exact in f64 */
        if (dt == RL_F64) rl_exact_to_f64(acc, buf, count);
        else rl_exact_to_f32(acc, buf, count);
        return;
    }
    rli_reduce_fn kernel = rli_reduce_kernel(dt, op);
    for (int r = 0; r < w->size; r++) {
        const double *g = &w->hdr_red[HDR_INLINE(w, r)];
        for (size_t i = 0; i < count; i++) {
            if (dt == RL_F32) v.f[i] = (float)g[i];
            else if (dt == RL_F64) v.d[i] = g[i];
            else v.i[i] = (int32_t)g[i];
        }
        if (r == 0) memcpy(buf, &v, count * es);
        else kernel(buf, buf, &v, count);
    }
}

/* One collective: the header round (with the data, when small), the data,
 * the barrier. */
static int worker_collective(rl_worker *w, void *buf, size_t count, rl_dtype dt, rl_op op)
{
    if (atomic_load(&w->a->stop) || w->ring == NULL)
        return rli_err(RL_ECANCELED, "node %s: the job ended", w->a->id);
    if (w->replan_due) {
        w->replan_due = false;
        return worker_replanned(w, w->replan_from);
    }
    if (atomic_load(&w->a->planned_epoch) > w->epoch) {
        snprintf(w->failure, sizeof(w->failure), "epoch %llu was planned",
                 (unsigned long long)atomic_load(&w->a->planned_epoch));
        return worker_replan(w, false);
    }
    double t0 = worker_now_ms();
    double compute = w->t_return > 0 ? t0 - w->t_return : 0;
    if (w->t_return > 0) rl_agent_add_step(w->a, compute, (double)w->rows);
    memset(w->hdr, 0, w->hdr_len * sizeof(double));
    w->hdr[HDR_ARGS(w, w->rank)] = (double)count;
    w->hdr[HDR_ARGS(w, w->rank) + 1] = (double)dt;
    w->hdr[HDR_ARGS(w, w->rank) + 2] = (double)op;
    for (size_t i = 0; i < w->n_blocks; i++)
        w->hdr[HDR_BLOCK(w, w->blocks[i])] += 1.0;
    w->hdr[HDR_COMPUTE(w, w->rank)] = compute;
    w->hdr[HDR_ROWS(w)] = (double)w->rows;
    bool inl = worker_inline(count, dt, op);
    for (size_t i = 0; inl && i < count; i++) /* the others' slots stay 0: the sum gathers */
        w->hdr[HDR_INLINE(w, w->rank) + i] = dt == RL_F32   ? (double)((const float *)buf)[i]
                                             : dt == RL_F64 ? ((const double *)buf)[i]
                                                            : (double)((const int32_t *)buf)[i];
    int rv = rl_allreduce(w->ring, w->hdr, w->hdr_red, w->hdr_len, RL_F64, RL_OP_SUM,
                          rl_clock_ms() + WORKER_WAIT_BACKSTOP_MS);
    if (rv != RL_OK) {
        snprintf(w->failure, sizeof(w->failure), "step %llu: %s", (unsigned long long)w->done,
                 rl_errdetail());
        return worker_replan(w, false);
    }
    if ((rv = worker_check_args(w, count, dt, op)) != RL_OK ||
        (rv = worker_check_coverage(w)) != RL_OK) {
        w->t_return = worker_now_ms();
        return rv;
    }
    double t1 = worker_now_ms();
    if (inl) worker_inline_reduce(w, buf, count, dt, op);
    rv = count > 0 && !inl
             ? rl_allreduce(w->ring, buf, buf, count, dt, op, rl_clock_ms() + w->op_ms)
             : RL_OK;
    if (rv == RL_OK) {
        rv = rl_barrier(w->ring, rl_clock_ms() + w->op_ms);
        if (rv != RL_OK) { /* the data is here; whether every member has it, the
                            * coordinator settles */
            snprintf(w->failure, sizeof(w->failure), "step %llu, after the data: %s",
                     (unsigned long long)w->done, rl_errdetail());
            /* its coverage was checked: recorded, in case it is settled as done */
            if (w->rank == 0) batch_record(w, w->done, t0, t1, worker_now_ms());
            return worker_replan(w, true);
        }
    } else {
        snprintf(w->failure, sizeof(w->failure), "step %llu: %s", (unsigned long long)w->done,
                 rl_errdetail());
        return worker_replan(w, false);
    }
    double t2 = worker_now_ms();
    atomic_store(&w->a->allreduce_ms, t2 - t1);
    atomic_store(&w->a->step, w->done + 1);
    if (w->rank == 0) batch_record(w, w->done, t0, t1, t2);
    w->done++;
    w->t_return = worker_now_ms();
    return RL_OK;
}

int rl_worker_allreduce(rl_worker *w, void *buf, size_t count, rl_dtype dtype, rl_op op)
{
    if (w == NULL) return rli_err(RL_EINVAL, "rl_worker_allreduce: no worker");
    if ((unsigned)dtype >= RL_DTYPE_COUNT || (unsigned)op >= RL_OP_COUNT)
        return rli_err(RL_EINVAL, "rl_worker_allreduce: unknown dtype %d or op %d", (int)dtype,
                       (int)op);
    if (buf == NULL && count > 0) return rli_err(RL_EINVAL, "rl_worker_allreduce: buf is NULL");
    if (count > (size_t)1 << 50)
        return rli_err(RL_ETOOBIG, "rl_worker_allreduce: count %zu", count);
    return worker_collective(w, buf, count, dtype, op);
}

int rl_worker_broadcast(rl_worker *w, void *buf, size_t bytes, int root)
{
    if (w == NULL) return rli_err(RL_EINVAL, "rl_worker_broadcast: no worker");
    if (buf == NULL && bytes > 0) return rli_err(RL_EINVAL, "rl_worker_broadcast: buf is NULL");
    if (root < 0 || root >= w->size)
        return rli_err(RL_EINVAL, "rl_worker_broadcast: root %d of %d members", root, w->size);
    /* A sum of 32-bit words in which only the root's are not zero: exact. */
    size_t words = (bytes + 3) / 4;
    int32_t *tmp = malloc(words * 4 + 4);
    if (tmp == NULL) return rli_err(RL_ENOMEM, "rl_worker_broadcast: %zu bytes", bytes);
    memset(tmp, 0, words * 4 + 4);
    if (w->rank == root && bytes > 0) memcpy(tmp, buf, bytes);
    int rv = worker_collective(w, tmp, words, RL_I32, RL_OP_SUM);
    if (rv == RL_OK && bytes > 0) memcpy(buf, tmp, bytes);
    free(tmp);
    return rv;
}
