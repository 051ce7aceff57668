/*
 * worker.c - the node's training loop. It asks the coordinator for a plan
 * (epoch, ring members, its blocks, the model to start from and the steps to
 * run), forms the ring, and runs synchronous data-parallel steps: gradient
 * sums over its blocks, one all-reduce of [gradient, loss, rows, coverage],
 * a coverage check, and the same update on every node.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "agent.h"
#include "ringleader/allreduce.h"
#include "ringleader/clock.h"
#include "ringleader/data.h"
#include "ringleader/err.h"
#include "ringleader/log.h"
#include "ringleader/mem.h"
#include "ringleader/model.h"

/* How long past two collectives' deadlines a member waits for its peers to
 * make their blocks and join a new ring (see the use): a backstop only, as
 * the coordinator's next epoch or a stop ends the wait (agent.c). */
#define READY_BACKSTOP_MS 60000
/* How much nicer than the node's other threads the worker thread runs (see
 * worker_run); at most 19. */
#define WORKER_NICE 10

/* The blocks this node holds, for one plan. */
typedef struct held {
    rl_block *blocks;
    size_t n;
    uint32_t *ids;
} held;

static void held_free(held *h)
{
    for (size_t i = 0; i < h->n; i++) rl_block_free(&h->blocks[i]);
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

/* Fills a CSV block with rows from the coordinator, ~1 MiB per call. */
static int fetch_block(agent *a, const rl_data_params *dp, uint32_t id, rl_block *out)
{
    int rv = rl_block_alloc(dp, id, out);
    if (rv != RL_OK) return rv;
    size_t f = (size_t)dp->features;
    for (uint64_t done = 0; done < (uint64_t)out->rows;) {
        rl_msg req;
        rl_rpc_reply rep;
        rl_msg_init(&req, RL_MSG_BLOCK_FETCH_REQ);
        req.u.block_fetch_req.block = id;
        req.u.block_fetch_req.first = done;
        req.u.block_fetch_req.max_rows = (uint64_t)out->rows - done;
        rv = rl_rpc_call(a->rpc, &req, &rep, rl_clock_ms() + 10000);
        const rl_msg_block_fetch_resp *r = &rep.msg.u.block_fetch_resp;
        if (rv == RL_OK && (r->rows == 0 || done + r->rows > (uint64_t)out->rows ||
                            r->features != f || r->x.len != r->rows * f * sizeof(float) ||
                            r->y.len != r->rows * sizeof(float)))
            rv = RL_EPROTO;
        if (rv == RL_OK) {
            memcpy(out->x + done * f, r->x.ptr, r->x.len);
            memcpy(out->y + done, r->y.ptr, r->y.len);
            done += r->rows;
        }
        rl_rpc_reply_fini(&rep);
        if (rv != RL_OK) {
            rl_block_free(out);
            return rv;
        }
    }
    return RL_OK;
}

/* Makes h hold exactly the plan's blocks: keeps those it has, makes the
 * others (synthetic: generated; csv: cut from the table, or fetched from
 * the coordinator when this node has no table). */
static int held_update(agent *a, held *h, const rl_msg_plan_resp *p, const rl_data_params *dp,
                       const rl_table *table, const rl_model *m)
{
    held nh = {0};
    nh.n = p->blocks.n;
    nh.blocks = rl_xcalloc(nh.n + 1, sizeof(rl_block));
    nh.ids = rl_xcalloc(nh.n + 1, sizeof(uint32_t));
    int rv = RL_OK;
    for (size_t i = 0; i < nh.n && rv == RL_OK; i++) {
        uint32_t id = p->blocks.v[i];
        size_t at;
        nh.ids[i] = id;
        if (held_has(h, id, &at)) {
            nh.blocks[i] = h->blocks[at];
            memset(&h->blocks[at], 0, sizeof(rl_block));
            continue;
        }
        bool csv = p->source == RL_DATA_CSV;
        rv = table ? rl_table_block(table, dp, id, &nh.blocks[i])
           : csv   ? fetch_block(a, dp, id, &nh.blocks[i])
                   : rl_block_synthetic(dp, id, &nh.blocks[i]);
        if (rv == RL_OK && csv && p->mean.v != NULL && p->std.v != NULL)
            rl_block_standardize(&nh.blocks[i], p->mean.v, p->std.v);
        if (rv == RL_OK) rv = rl_model_check_labels(m, &nh.blocks[i]);
    }
    held_free(h);
    *h = nh;
    return rv;
}

static int ask_plan(agent *a, uint64_t epoch, uint64_t step, const char *failure,
                    rl_rpc_reply *rep)
{
    rl_msg req;
    rl_msg_init(&req, RL_MSG_PLAN_REQ);
    req.u.plan_req.node_id = (char *)a->id;
    req.u.plan_req.epoch = epoch;
    req.u.plan_req.step = step;
    if (failure != NULL) {
        req.u.plan_req.failed = true;
        req.u.plan_req.has |= 1u << 4;
        req.u.plan_req.error = (char *)failure;
    }
    /* The coordinator answers when it has a plan for us: wait in slices so a
     * lost coordinator is noticed. */
    for (;;) {
        if (atomic_load(&a->stop) || atomic_load(&a->coord_lost)) return RL_ECANCELED;
        int rv = rl_rpc_call(a->rpc, &req, rep, rl_clock_ms() + 2000);
        if (rv != RL_ETIMEDOUT) return rv;
        rl_rpc_reply_fini(rep);
    }
}

static void report_done(void *arg, int err, rl_rpc_reply *rep)
{
    agent *a = arg;
    if (err == RL_OK && rep->msg.u.step_report_resp.stop) atomic_store(&a->stop, true);
}

/* Step records not yet reported. Rank 0 reports every step (loss, timings,
 * the coverage proof, every member's compute time), batched: one
 * STEP_REPORT per report_ms at most, so that a fast step does not pay for a
 * coordinator round trip and the coordinator's CPU time. */
typedef struct batch {
    size_t k, cap, nb, nm; /* records, capacity, blocks, members */
    uint32_t *steps, *cov;
    double *loss, *ms, *compute, *ar, *rows, *ncomp;
    double *done_ms;  /* when each step completed (this node's clock) */
    double first_ms; /* when the oldest record was added */
} batch;

static void batch_free(batch *b)
{
    free(b->steps);
    free(b->cov);
    free(b->loss);
    free(b->ms);
    free(b->compute);
    free(b->ar);
    free(b->rows);
    free(b->ncomp);
    free(b->done_ms);
    memset(b, 0, sizeof(*b));
}

static void batch_init(batch *b, size_t cap, size_t nb, size_t nm)
{
    batch_free(b);
    b->cap = cap;
    b->nb = nb;
    b->nm = nm;
    b->steps = rl_xmalloc(cap * sizeof(uint32_t));
    b->cov = rl_xmalloc(cap * nb * sizeof(uint32_t) + 1);
    b->loss = rl_xmalloc(cap * sizeof(double));
    b->ms = rl_xmalloc(cap * sizeof(double));
    b->compute = rl_xmalloc(cap * sizeof(double));
    b->ar = rl_xmalloc(cap * sizeof(double));
    b->rows = rl_xmalloc(cap * sizeof(double));
    b->ncomp = rl_xmalloc(cap * nm * sizeof(double) + 1);
    b->done_ms = rl_xmalloc(cap * sizeof(double));
}

/* Sends the batch; the model (w, b of kf and K values, or NULL after a
 * coverage violation) is the one after its last step. */
static void batch_flush(agent *a, batch *b, uint64_t epoch, const rl_model *m, bool sync)
{
    if (b->k == 0) return;
    size_t i = b->k - 1;
    rl_msg r;
    rl_msg_init(&r, RL_MSG_STEP_REPORT_REQ);
    rl_msg_step_report_req *q = &r.u.step_report_req;
    q->node_id = (char *)a->id;
    q->epoch = epoch;
    q->step = b->steps[i];
    q->loss = b->loss[i];
    q->step_ms = b->ms[i];
    q->compute_ms = b->compute[i];
    q->allreduce_ms = b->ar[i];
    q->rows = (uint64_t)b->rows[i];
    q->coverage = (rl_u32list){b->cov + i * b->nb, b->nb};
    q->node_compute_ms = (rl_f64list){b->ncomp + i * b->nm, b->nm};
    if (m != NULL) {
        q->weights = (rl_f64list){m->w, (size_t)m->classes * (size_t)m->features};
        q->bias = (rl_f64list){m->b, (size_t)m->classes};
    }
    /* How long ago each step completed: the coordinator dates the steps
     * by its own clock (clocks of different hosts are not compared). */
    double now = (double)rl_clock_ns() / 1e6;
    for (size_t e = 0; e < b->k; e++) b->done_ms[e] = now - b->done_ms[e];
    if (b->k > 1) {
        q->batch_age_ms = (rl_f64list){b->done_ms, b->k};
        q->batch_steps = (rl_u32list){b->steps, b->k};
        q->batch_loss = (rl_f64list){b->loss, b->k};
        q->batch_step_ms = (rl_f64list){b->ms, b->k};
        q->batch_compute_ms = (rl_f64list){b->compute, b->k};
        q->batch_allreduce_ms = (rl_f64list){b->ar, b->k};
        q->batch_rows = (rl_f64list){b->rows, b->k};
        q->batch_coverage = (rl_u32list){b->cov, b->k * b->nb};
        q->batch_node_compute_ms = (rl_f64list){b->ncomp, b->k * b->nm};
    }
    b->k = 0;
    if (sync) { /* the coordinator must have it before we go on */
        rl_rpc_reply rr;
        if (rl_rpc_call(a->rpc, &r, &rr, rl_clock_ms() + 5000) != RL_OK)
            rl_log_warn("step report: %s", rl_errdetail());
        else report_done(a, RL_OK, &rr);
        rl_rpc_reply_fini(&rr);
    } else if (rl_rpc_call_async(a->rpc, &r, rl_clock_ms() + 5000, report_done, a) != RL_OK) {
        rl_log_warn("step report: %s", rl_errdetail());
    }
}

int worker_run(agent *a)
{
    uint64_t epoch = 0, step_done = 0;
    char failure[300] = "";
    held h = {0};
    rl_table *table = NULL;
    rl_model m = {0};
    double *buf = NULL, *red = NULL;
    batch rb = {0};
    int code = 0;
    /* Below the node's other threads (heartbeats, RPC, nng's): on a node
     * short of CPU (a cgroup quota, a crowded host) this thread's compute
     * would otherwise take the quota first and stall every hand-off of a
     * heartbeat to the next period, and the live node would be failed
     * (test_faults.sh case 5c: at 3% of a CPU, heartbeats lapsed in 6 of 6
     * runs, 2 of 7 with this). Linux applies it to this thread only. */
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, tid); /* -1 is a valid value: errno tells */
    if (errno == 0) {
        int want = nice_now + WORKER_NICE > 19 ? 19 : nice_now + WORKER_NICE;
        if (want != nice_now && setpriority(PRIO_PROCESS, tid, want) != 0)
            rl_log_warn("worker priority: %s", strerror(errno));
    }

    for (;;) {
        rl_rpc_reply rep;
        atomic_store(&a->phase, PHASE_WAITING);
        int rv = ask_plan(a, epoch, step_done, failure[0] ? failure : NULL, &rep);
        failure[0] = '\0';
        if (rv != RL_OK) {
            if (rv != RL_ECANCELED) {
                rl_log_error("no plan from the coordinator: %s", rl_errdetail());
                code = 1;
            }
            rl_rpc_reply_fini(&rep);
            break;
        }
        const rl_msg_plan_resp *p = &rep.msg.u.plan_resp;
        if (p->stop) {
            rl_rpc_reply_fini(&rep);
            break;
        }
        rl_data_params dp = {.rows = (int64_t)p->rows, .features = (int)p->features,
                             .classes = (int)p->classes, .model = (rl_model_type)p->model,
                             .noise = p->noise, .seed = p->seed, .block_rows = (int)p->block_rows};
        if (p->source == RL_DATA_CSV && table == NULL && !p->csv_fetch &&
            access(p->csv_path, R_OK) == 0) {
            if ((rv = rl_csv_load(p->csv_path, p->csv_label, &table)) != RL_OK) {
                rl_log_error("%s", rl_errdetail());
                snprintf(failure, sizeof(failure), "data: %s", rl_errdetail());
                rl_rpc_reply_fini(&rep);
                code = 1;
                break;
            }
        }
        if (m.w == NULL &&
            rl_model_init(&m, (rl_model_type)p->model, (int)p->features, (int)p->classes) != 0) {
            rl_log_error("model: %s", rl_errdetail());
            rl_rpc_reply_fini(&rep);
            code = 1;
            break;
        }
        size_t G = rl_model_grad_len(&m), K = (size_t)m.classes, F = (size_t)m.features;
        if (p->weights.n != K * F || p->bias.n != K) {
            rl_log_error("plan carries a model of the wrong shape");
            rl_rpc_reply_fini(&rep);
            code = 1;
            break;
        }
        memcpy(m.w, p->weights.v, K * F * sizeof(double));
        memcpy(m.b, p->bias.v, K * sizeof(double));
        atomic_store(&a->phase, PHASE_MAKING_BLOCKS);
        rv = held_update(a, &h, p, &dp, table, &m);
        atomic_store(&a->phase, PHASE_FORMING_RING);
        if (atomic_load(&a->stop)) { /* while making blocks */
            rl_rpc_reply_fini(&rep);
            break;
        }
        if (rv != RL_OK) {
            snprintf(failure, sizeof(failure), "blocks: %s", rl_errdetail());
            rl_log_error("%s", failure);
            rl_rpc_reply_fini(&rep);
            code = 1;
            break;
        }
        /* The all-reduced payload: gradient sums, loss sum, row count, one
         * count per block (the coverage proof), and one slot per member for
         * its compute time (the others add 0), so rank 0 can report them. */
        size_t nm_slots = p->member_ids.n;
        size_t nb = (size_t)p->n_blocks, plen = G + 2 + nb + nm_slots;
        free(buf);
        free(red);
        buf = rl_xmalloc(plen * sizeof(double));
        red = rl_xmalloc(plen * sizeof(double));
        batch_init(&rb, 64, nb, nm_slots);
        double report_ms = p->report_ms;

        /* Form the ring of this epoch. */
        size_t nm = p->member_ids.n;
        rl_ring_member *mem = rl_xcalloc(nm + 1, sizeof(*mem));
        for (size_t i = 0; i < nm; i++) {
            mem[i].id = p->member_ids.v[i];
            mem[i].url = p->member_urls.v[i];
        }
        rl_ring_config cfg = {.epoch = p->epoch, .rank = (int)p->rank, .size = (int)nm,
                              .members = mem, .chunk_bytes = p->chunk_bytes,
                              .small_bytes = SIZE_MAX, .yield_us = -1,
                              .tcp_congestion = p->tcp_congestion};
        /* No yielding while waiting (rl_ring_config.yield_us): between
         * training steps members reach the collective apart, and the node's
         * other threads (and the coordinator) want the CPU; measured on the
         * 4-node 50k x 32 job here, 5 interleaved runs each, step p50
         * 0.249-0.341 ms with the automatic yield against 0.218-0.256 ms
         * without. The collective alone (bench allreduce) gains from it. */
        rl_ring *ring = NULL;
        uint64_t op_ms = p->deadline_ms ? p->deadline_ms : 5000;
        /* Peers may still be making their blocks, and a member short of CPU
         * (throttled, or crowded) takes many times the coordinator's
         * estimate. It is alive, so wait for it: a member that dies or
         * stops is failed by the coordinator, whose new epoch fences this
         * wait (agent.c), so this long deadline is only the backstop. */
        uint64_t ready_deadline = rl_clock_ms() + 2 * op_ms + READY_BACKSTOP_MS;
        rv = rl_ring_form(a->ep, &cfg, ready_deadline, &ring);
        free(mem);
        epoch = p->epoch;
        atomic_store(&a->epoch, epoch);
        if (rv != RL_OK) {
            snprintf(failure, sizeof(failure), "ring epoch %llu: %s", (unsigned long long)epoch,
                     rl_errdetail());
            rl_log_warn("%s", failure);
            rl_rpc_reply_fini(&rep);
            continue;
        }
        pthread_mutex_lock(&a->mtx);
        a->ring = ring;
        pthread_mutex_unlock(&a->mtx);
        /* A member waits in forming only for the lower ranks to dial it
         * (rank 0 for none), and endpoints accept on their own, so without
         * this the first step's collective started its clock while a peer
         * that had gained many blocks still made them: it timed out on the
         * members waiting for that peer, and the step was redone under a
         * new epoch. The barrier starts every member's first step together.
         * A stop seen here was set before the agent could abort this ring
         * (it sets stop first, then aborts a->ring under a->mtx). */
        if (atomic_load(&a->stop))
            rv = RL_ECANCELED;
        else if ((rv = rl_barrier(ring, ready_deadline)) != RL_OK) {
            snprintf(failure, sizeof(failure), "ring epoch %llu: waiting for every member's "
                     "blocks: %s", (unsigned long long)epoch, rl_errdetail());
            rl_log_warn("%s", failure);
        }

        int64_t total_rows = dp.rows;
        bool rank0 = p->rank == 0;
        atomic_store(&a->phase, PHASE_STEPPING);
        for (uint64_t s = p->start_step;
             rv == RL_OK && s < p->end_step && !atomic_load(&a->stop); s++) {
            double t0 = (double)rl_clock_ns() / 1e6;
            memset(buf, 0, plen * sizeof(double));
            int64_t rows = 0;
            for (size_t i = 0; i < h.n; i++) {
                rl_model_grad_block(&m, &h.blocks[i], buf, &buf[G]);
                rows += h.blocks[i].rows;
                buf[G + 2 + h.ids[i]] += 1.0;
            }
            buf[G + 1] = (double)rows;
            double t1 = (double)rl_clock_ns() / 1e6;
            buf[G + 2 + nb + p->rank] = t1 - t0;
            rv = rl_allreduce(ring, buf, red, plen, RL_F64, RL_OP_SUM, rl_clock_ms() + op_ms);
            double t2 = (double)rl_clock_ns() / 1e6;
            if (rv != RL_OK) {
                snprintf(failure, sizeof(failure), "step %llu: %s", (unsigned long long)s,
                         rl_errdetail());
                rl_log_warn("%s", failure);
                break;
            }
            /* Coverage: every block counted exactly once, or no update. */
            uint32_t *cov = rb.cov + rb.k * nb;
            bool ok = (int64_t)red[G + 1] == total_rows;
            for (size_t b = 0; b < nb; b++) {
                cov[b] = red[G + 2 + b] < 0 ? 0 : (uint32_t)red[G + 2 + b];
                if (red[G + 2 + b] != 1.0) ok = false;
            }
            if (!ok) {
                snprintf(failure, sizeof(failure), "step %llu: coverage violation (rows %.0f of "
                         "%lld)", (unsigned long long)s, red[G + 1], (long long)total_rows);
                rl_log_error("%s", failure);
            }
            double loss = 0;
            if (ok) rl_model_step(&m, red, red[G], (int64_t)red[G + 1], p->learning_rate, p->l2,
                                  &loss);
            double t3 = (double)rl_clock_ns() / 1e6;
            atomic_store(&a->compute_ms, t1 - t0);
            pthread_mutex_lock(&a->acc_mtx);
            a->acc_compute_ms += t1 - t0;
            a->acc_rows += (double)rows;
            a->acc_steps++;
            pthread_mutex_unlock(&a->acc_mtx);
            atomic_store(&a->allreduce_ms, t2 - t1);
            atomic_store(&a->rows_per_s, t1 > t0 ? (double)rows / ((t1 - t0) / 1e3) : 0);
            atomic_store(&a->step, s + 1);
            if (rank0 || !ok) {
                size_t k = rb.k++;
                if (k == 0) rb.first_ms = t3;
                rb.steps[k] = (uint32_t)s;
                rb.loss[k] = loss;
                rb.ms[k] = t3 - t0;
                rb.compute[k] = t1 - t0;
                rb.ar[k] = t2 - t1;
                rb.rows[k] = red[G + 1];
                rb.done_ms[k] = t3;
                memcpy(rb.ncomp + k * nm_slots, &red[G + 2 + nb], nm_slots * sizeof(double));
                /* Now: a violation, the plan's last step (synchronously: the
                 * coordinator must have the model before we go), its first
                 * (so a recovery is timed to the step), a full batch, or
                 * report_ms since the oldest record. */
                bool last = s + 1 == p->end_step;
                if (!ok || last)
                    batch_flush(a, &rb, epoch, ok ? &m : NULL, true);
                else if (s == p->start_step || rb.k == rb.cap || t3 - rb.first_ms >= report_ms)
                    batch_flush(a, &rb, epoch, &m, false);
            }
            if (!ok) break;
            step_done = s + 1;
        }
        /* Steps done but not yet reported: the coordinator restarts from
         * the last model it has, so tell it before asking for a new plan. */
        batch_flush(a, &rb, epoch, &m, true);
        pthread_mutex_lock(&a->mtx);
        a->ring = NULL;
        pthread_mutex_unlock(&a->mtx);
        rl_ring_free(ring);
        rl_rpc_reply_fini(&rep);
        if (atomic_load(&a->stop)) break;
    }
    held_free(&h);
    batch_free(&rb);
    rl_table_free(table);
    rl_model_fini(&m);
    free(buf);
    free(red);
    return code;
}
