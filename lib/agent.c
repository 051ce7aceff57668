/*
 * agent.c - a node's membership: joining (authenticated), the ring endpoint,
 * and the heartbeat thread (load metrics out, new epochs and stop signals in).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringleader/agent.h"
#include "ringleader/clock.h"
#include "ringleader/data.h"
#include "ringleader/err.h"
#include "ringleader/log.h"
#include "ringleader/mem.h"
#include "rli.h"

const char *const rl_agent_phase_names[] = {"waiting", "making-blocks", "forming-ring", "stepping"};

/* Aborts the worker's ring if its epoch is below `below` (UINT64_MAX: any). */
static void abort_ring(rl_agent *a, uint64_t below, const char *why)
{
    pthread_mutex_lock(&a->mtx);
    if (a->ring != NULL && rl_ring_epoch(a->ring) < below)
        rl_ring_abort(a->ring, RL_ECANCELED, why);
    pthread_mutex_unlock(&a->mtx);
}

void rl_agent_stop_now(rl_agent *a, const char *why)
{
    atomic_store(&a->stop, true);
    rl_endpoint_fence(a->ep, UINT64_MAX);
    abort_ring(a, UINT64_MAX, why);
    pthread_mutex_lock(&a->mtx);
    pthread_cond_broadcast(&a->readmit_cv);
    pthread_mutex_unlock(&a->mtx);
}

/* ---- A lost coordinator ---------------------------------------------------------- */
/*
 * A node whose coordinator stops answering for failure_timeout_ms (or that
 * a coordinator refuses as admitted by another incarnation) does not leave
 * at once: it aborts its ring, keeps its blocks, and re-dials the same URL,
 * sending JOIN again with its ring endpoint, newest epoch and the
 * incarnation that admitted it, every REDIAL_MIN_MS doubling to
 * REDIAL_MAX_MS, for coordinator_grace_ms (the JOIN reply's; 0: it leaves).
 * A coordinator resumed from its checkpoint (`ringleader run --resume`)
 * re-admits it and plans epochs above every epoch its nodes had, so frames
 * of the old incarnation's rings are fenced (docs/operations.md).
 */
#define REDIAL_MIN_MS 50
#define REDIAL_MAX_MS 1000

static void agent_set_redialing(rl_agent *a, bool on)
{
    pthread_mutex_lock(&a->mtx);
    atomic_store(&a->redialing, on);
    pthread_cond_broadcast(&a->readmit_cv);
    pthread_mutex_unlock(&a->mtx);
}

int rl_agent_wait_readmitted(rl_agent *a)
{
    pthread_mutex_lock(&a->mtx);
    /* bounded: the heartbeat thread clears redialing or sets stop within
     * coordinator_grace_ms; the slices only re-check stop */
    while (atomic_load(&a->redialing) && !atomic_load(&a->stop))
        rl_cond_wait_until(&a->readmit_cv, &a->mtx, rl_clock_ms() + 200);
    int rv = atomic_load(&a->stop) ? RL_ECANCELED : RL_OK;
    pthread_mutex_unlock(&a->mtx);
    return rv;
}

/* Takes a JOIN reply's terms. */
static void agent_take_join(rl_agent *a, const rl_msg_join_resp *r)
{
    a->heartbeat_ms = (int)r->heartbeat_ms;
    a->failure_timeout_ms = (int)r->failure_timeout_ms;
    a->coordinator_grace_ms =
        RL_HAS_FIELD(r, join_resp, coordinator_grace_ms) ? (int)r->coordinator_grace_ms : 0;
    atomic_store(&a->incarnation, RL_HAS_FIELD(r, join_resp, incarnation) ? r->incarnation : 0);
    atomic_store(&a->spec_hash, RL_HAS_FIELD(r, join_resp, spec_hash) ? r->spec_hash : 0);
    snprintf(a->job, sizeof(a->job), "%s", r->job);
    atomic_fetch_add(&a->admissions, 1);
    if (a->heartbeat_ms <= 0) a->heartbeat_ms = 100;
    if (a->failure_timeout_ms <= a->heartbeat_ms) a->failure_timeout_ms = 5 * a->heartbeat_ms;
}

/* The newest epoch this node was planned or in (the worker raises
 * planned_epoch when it takes a plan, before its ring forms). */
static uint64_t agent_newest_epoch(rl_agent *a)
{
    uint64_t p = atomic_load(&a->planned_epoch), e = atomic_load(&a->epoch);
    return p > e ? p : e;
}

/* One JOIN as a node that was admitted before. */
static int agent_rejoin(rl_agent *a, uint64_t deadline_ms)
{
    rl_msg req;
    rl_rpc_reply rep;
    rl_msg_init(&req, RL_MSG_JOIN_REQ);
    req.u.join_req.node_id = (char *)a->id;
    req.u.join_req.listen = (char *)rl_endpoint_url(a->ep);
    req.u.join_req.pid = (uint64_t)getpid();
    req.u.join_req.epoch = agent_newest_epoch(a);
    req.u.join_req.incarnation = atomic_load(&a->incarnation);
    req.u.join_req.has |= RL_FIELD_BIT(join_req, pid) | RL_FIELD_BIT(join_req, epoch) |
                          RL_FIELD_BIT(join_req, incarnation);
    int rv = rl_rpc_call(a->rpc, &req, &rep, deadline_ms);
    if (rv == RL_OK) {
        uint64_t was = atomic_load(&a->incarnation);
        agent_take_join(a, &rep.msg.u.join_resp);
        rl_log_info("re-admitted to job '%s' by the coordinator at %s (incarnation %016llx%s)",
                    a->job, a->coordinator, (unsigned long long)atomic_load(&a->incarnation),
                    atomic_load(&a->incarnation) == was ? ", the same one" : ", a new one");
    }
    rl_rpc_reply_fini(&rep);
    return rv;
}

/* Re-dials until a coordinator admits the node again (true) or the grace
 * ends or the node stops (false). The worker waits meanwhile
 * (rl_agent_wait_readmitted). */
static bool agent_redial(rl_agent *a, const char *why)
{
    uint64_t t0 = rl_clock_ms(), until = t0 + (uint64_t)a->coordinator_grace_ms;
    rl_log_warn("%s; keeping this node's blocks and re-dialing %s for up to %d ms "
                "(fault_tolerance.coordinator_grace_ms)",
                why, a->coordinator, a->coordinator_grace_ms);
    agent_set_redialing(a, true);
    /* No ring of the lost coordinator's epochs forms or runs from now on:
     * the coordinator that re-admits us plans above the epoch we name. */
    rl_endpoint_fence(a->ep, agent_newest_epoch(a) + 1);
    abort_ring(a, UINT64_MAX, "coordinator lost");
    uint64_t wait = REDIAL_MIN_MS;
    char last[256] = "no answer";
    int tries = 0; /* failed; the first and every tenth are logged */
    while (!atomic_load(&a->stop) && rl_clock_ms() < until) {
        uint64_t now = rl_clock_ms(), d = now + 1000 < until ? now + 1000 : until;
        if (agent_rejoin(a, d) == RL_OK) {
            agent_set_redialing(a, false);
            return true;
        }
        snprintf(last, sizeof(last), "%s", rl_errdetail());
        if (tries++ % 10 == 0) rl_log_info("re-dial %d: %s", tries, last);
        uint64_t left = until > rl_clock_ms() ? until - rl_clock_ms() : 0;
        uint64_t nap = wait < left ? wait : left;
        struct timespec ts = {(time_t)(nap / 1000), (long)(nap % 1000) * 1000000L};
        nanosleep(&ts, NULL); /* the backoff between dials, bounded by the grace */
        wait = wait * 2 < REDIAL_MAX_MS ? wait * 2 : REDIAL_MAX_MS;
    }
    if (!atomic_load(&a->stop))
        rl_log_error("no coordinator admitted this node within %d ms (last try: %s); leaving",
                     a->coordinator_grace_ms, last);
    return false;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f != NULL) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return (uint64_t)res * 4096u;
}

void rl_agent_add_waits(rl_agent *a, const rl_agent_step_waits *w)
{
    pthread_mutex_lock(&a->acc_mtx);
    size_t m = w->members < RL_SPEC_MAX_NODES ? w->members : RL_SPEC_MAX_NODES;
    if (w->epoch != a->acc_epoch || m != a->acc_members) { /* ranks changed: restart per peer */
        memset(a->acc_peer_wait_ms, 0, sizeof(a->acc_peer_wait_ms));
        a->acc_epoch = w->epoch;
        a->acc_members = m;
    }
    a->acc_step_ms += w->step_ms;
    a->acc_wait_ms += w->wait_ms;
    a->acc_stall_ms += w->stall_ms;
    for (size_t p = 0; p < m; p++)
        a->acc_peer_wait_ms[p] += w->peer_ms[p];
    a->acc_wait_steps++;
    pthread_mutex_unlock(&a->acc_mtx);
}

/* A frozen process (SIGSTOP, a CFS quota spent, a CPU taken by others)
 * cannot tell it was frozen from inside the wait it was frozen in: this
 * thread's late wakes measure it, so that the worker can take such time out
 * of its waiting on others (docs/operations.md). */
static void *agent_stall_watch_main(void *arg)
{
    rl_agent *a = arg;
    const uint64_t tick_ns = RL_AGENT_STALL_TICK_MS * 1000000ull;
    const uint64_t slack_ns = RL_AGENT_STALL_SLACK_MS * 1000000ull;
    uint64_t prev = rl_clock_ns();
    while (!atomic_load(&a->stop)) {
        struct timespec ts = {0, (long)tick_ns};
        nanosleep(&ts, NULL);
        uint64_t now = rl_clock_ns();
        uint64_t late = now - prev > tick_ns ? now - prev - tick_ns : 0;
        if (late > slack_ns) atomic_fetch_add(&a->stall_ns, late);
        prev = now;
    }
    return NULL;
}

/* The straggler signal's heartbeat fields: means per step over the steps
 * since the last heartbeat (none when no step completed). acc_mtx held;
 * peer borrows a->acc_peer_wait_ms's copy in buf. */
static void agent_fill_waits(rl_agent *a, rl_msg_heartbeat_req *h, double *buf)
{
    uint64_t k = a->acc_wait_steps;
    if (k > 0 && a->acc_step_ms > 0) {
        h->step_ms = a->acc_step_ms / (double)k;
        h->wait_ms = a->acc_wait_ms / (double)k;
        h->stall_ms = a->acc_stall_ms / (double)k;
        h->busy_fraction = 1.0 - a->acc_wait_ms / a->acc_step_ms;
        h->window_steps = k;
        for (size_t p = 0; p < a->acc_members; p++)
            buf[p] = a->acc_peer_wait_ms[p] / (double)k;
        h->peer_wait_ms = (rl_f64list){buf, a->acc_members};
        h->has |= RL_FIELD_BIT(heartbeat_req, step_ms) | RL_FIELD_BIT(heartbeat_req, wait_ms) |
                  RL_FIELD_BIT(heartbeat_req, stall_ms) |
                  RL_FIELD_BIT(heartbeat_req, busy_fraction) |
                  RL_FIELD_BIT(heartbeat_req, window_steps);
    }
    a->acc_step_ms = a->acc_wait_ms = a->acc_stall_ms = 0;
    memset(a->acc_peer_wait_ms, 0, a->acc_members * sizeof(double));
    a->acc_wait_steps = 0;
}

static void *agent_heartbeat_main(void *arg)
{
    rl_agent *a = arg;
    uint64_t last_ok = rl_clock_ms();
    uint64_t t_prev = rl_clock_ms();
    double cpu_prev = cpu_seconds();
    double peer_buf[RL_SPEC_MAX_NODES]; /* the heartbeat's peer_wait_ms */
    while (!atomic_load(&a->stop)) {
        uint64_t now = rl_clock_ms();
        double cpu = cpu_seconds();
        double load = now > t_prev ? (cpu - cpu_prev) / ((double)(now - t_prev) / 1e3) : 0;
        t_prev = now;
        cpu_prev = cpu;
        rl_msg req;
        rl_rpc_reply rep;
        rl_msg_init(&req, RL_MSG_HEARTBEAT_REQ);
        rl_msg_heartbeat_req *h = &req.u.heartbeat_req;
        h->node_id = (char *)a->id;
        h->epoch = atomic_load(&a->epoch);
        h->step = atomic_load(&a->step);
        pthread_mutex_lock(&a->acc_mtx);
        if (a->acc_steps > 0) { /* the mean over the steps since the last heartbeat */
            h->compute_ms = a->acc_compute_ms / (double)a->acc_steps;
            h->rows_per_s = a->acc_compute_ms > 0 ? a->acc_rows / (a->acc_compute_ms / 1e3) : 0;
        } else {
            h->compute_ms = 0; /* no step since the last heartbeat: nothing new */
            h->rows_per_s = atomic_load(&a->rows_per_s);
        }
        a->acc_compute_ms = a->acc_rows = 0;
        a->acc_steps = 0;
        agent_fill_waits(a, h, peer_buf);
        pthread_mutex_unlock(&a->acc_mtx);
        h->allreduce_ms = atomic_load(&a->allreduce_ms);
        h->cpu_load = load;
        h->rss_bytes = rss_bytes();
        h->phase = (char *)rl_agent_phase_names[atomic_load(&a->phase)];
        h->incarnation = atomic_load(&a->incarnation);
        if (h->incarnation != 0) RL_SET_FIELD(h, heartbeat_req, incarnation);
        h->has |= RL_FIELD_BIT(heartbeat_req, step) | RL_FIELD_BIT(heartbeat_req, rows_per_s) |
                  RL_FIELD_BIT(heartbeat_req, compute_ms) |
                  RL_FIELD_BIT(heartbeat_req, allreduce_ms) |
                  RL_FIELD_BIT(heartbeat_req, cpu_load) | RL_FIELD_BIT(heartbeat_req, rss_bytes);
        uint64_t sent_ms = rl_clock_ms();
        int rv = rl_rpc_call(a->rpc, &req, &rep, sent_ms + (uint64_t)a->heartbeat_ms * 2);
        if (rv == RL_OK) {
            last_ok = rl_clock_ms();
            if (rep.msg.u.heartbeat_resp.stop) {
                atomic_store(&a->stop, true);
                abort_ring(a, UINT64_MAX, "the coordinator ended the job");
            } else if (rep.msg.u.heartbeat_resp.epoch > atomic_load(&a->epoch)) {
                /* A new plan exists (a node failed or came back): leave the
                 * old ring at once rather than wait for its deadline, and
                 * stop forming one of an older epoch (its members may be
                 * the dead). */
                atomic_store(&a->planned_epoch, rep.msg.u.heartbeat_resp.epoch);
                rl_endpoint_fence(a->ep, rep.msg.u.heartbeat_resp.epoch);
                /* Only an older ring: the worker may have formed the new
                 * one since a->epoch was read. */
                abort_ring(a, rep.msg.u.heartbeat_resp.epoch, "a newer epoch was planned");
            }
        } else if ((rv == RL_ESTALE || rl_clock_ms() - last_ok > (uint64_t)a->failure_timeout_ms) &&
                   a->coordinator_grace_ms > 0) {
            /* ESTALE: a coordinator that did not admit us (a new incarnation).
             * The job's end is heard as stop (above, or in a plan or step
             * report reply): a coordinator lost even after our last step
             * may not have the job's result, and is re-dialed. */
            char why[400];
            snprintf(why, sizeof(why), "%s (%s)",
                     rv == RL_ESTALE ? "the coordinator does not know this node"
                                     : "the coordinator is not answering",
                     rl_errdetail());
            if (agent_redial(a, why)) {
                last_ok = rl_clock_ms();
            } else {
                atomic_store(&a->gave_up, true);
                atomic_store(&a->coord_lost, true);
                atomic_store(&a->stop, true);
                abort_ring(a, UINT64_MAX, "coordinator lost");
            }
        } else if (rv == RL_ESTALE || rl_clock_ms() - last_ok > (uint64_t)a->failure_timeout_ms) {
            /* After the job's last step the coordinator ending is the job's end. */
            if (atomic_load(&a->job_done))
                rl_log_info("the coordinator closed after the job's last step; leaving");
            else if (rv == RL_ESTALE)
                rl_log_error("the coordinator does not know this node (%s); leaving",
                             rl_errdetail());
            else
                rl_log_error("coordinator gone for more than %d ms (%s); leaving",
                             a->failure_timeout_ms, rl_errdetail());
            atomic_store(&a->coord_lost, true);
            atomic_store(&a->stop, true);
            abort_ring(a, UINT64_MAX, "coordinator lost");
        }
        rl_rpc_reply_fini(&rep);
        /* The period runs from this heartbeat's send, not from its reply: on
         * a link whose queue is full of ring traffic the round trip alone
         * can take a period or two, and the coordinator, which counts from
         * each heartbeat's arrival, must not see the reply's delay added to
         * every gap (docs/operations.md, "Heartbeats on a busy link"). */
        uint64_t next_ms = sent_ms + (uint64_t)a->heartbeat_ms, now_ms = rl_clock_ms();
        if (next_ms > now_ms) {
            uint64_t left = next_ms - now_ms;
            struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    agent_set_redialing(a, false); /* a worker waiting for re-admission sees stop */
    /* Stopping (the job ended, the coordinator is gone, or a signal): a ring
     * still forming ends now rather than at its deadline, whose backstop
     * is long (worker.c, READY_BACKSTOP_MS). A formed ring is left to finish
     * its step unless aborted above. */
    rl_endpoint_fence(a->ep, UINT64_MAX);
    return NULL;
}

void rl_agent_add_step(rl_agent *a, double compute_ms, double rows)
{
    atomic_store(&a->compute_ms, compute_ms);
    pthread_mutex_lock(&a->acc_mtx);
    a->acc_compute_ms += compute_ms;
    a->acc_rows += rows;
    a->acc_steps++;
    pthread_mutex_unlock(&a->acc_mtx);
    atomic_store(&a->rows_per_s, compute_ms > 0 ? rows / (compute_ms / 1e3) : 0);
}

/* JOIN as a->id advertising listen ("": asks the coordinator where to
 * listen). On success rep holds the reply; the caller finis it. */
static int agent_join(rl_agent *a, const rl_agent_opts *o, const char *listen, rl_rpc_reply *rep)
{
    rl_msg req;
    rl_msg_init(&req, RL_MSG_JOIN_REQ);
    req.u.join_req.node_id = (char *)a->id;
    req.u.join_req.listen = (char *)listen;
    req.u.join_req.pid = (uint64_t)getpid();
    RL_SET_FIELD(&req.u.join_req, join_req, pid);
    int rv = rl_rpc_call(a->rpc, &req, rep, rl_clock_ms() + (uint64_t)o->join_timeout_ms);
    if (rv != RL_OK) rli_err_prefix(rv, "join refused by %s", o->coordinator);
    return rv;
}

/* Without a listen URL: asks the coordinator for the spec's URL for this id,
 * opens the ring endpoint there; then (with or without) joins advertising
 * the endpoint's bound URL. On success a->ep is open and rep holds the reply. */
static int agent_open_and_join(rl_agent *a, const rl_agent_opts *o, rl_rpc_reply *rep)
{
    const char *listen = o->listen;
    char asked[RL_URL_MAX] = "";
    if (listen == NULL || listen[0] == '\0') {
        int rv = agent_join(a, o, "", rep);
        if (rv == RL_OK && rep->msg.u.join_resp.listen == NULL)
            rv = rli_err(RL_EPROTO,
                         "the coordinator at %s did not say where to listen: give "
                         "a listen URL",
                         o->coordinator);
        if (rv == RL_OK) snprintf(asked, sizeof(asked), "%s", rep->msg.u.join_resp.listen);
        rl_rpc_reply_fini(rep);
        if (rv != RL_OK) return rv;
        listen = asked;
    }
    if (rl_endpoint_open(listen, o->tls, &a->ep) != RL_OK)
        return rli_err_prefix(RL_EUNAVAIL, "cannot open the ring endpoint at %s", listen);
    rl_endpoint_set_token(a->ep, &a->token); /* ring links prove the token both ways */
    int rv = agent_join(a, o, rl_endpoint_url(a->ep), rep);
    if (rv != RL_OK) rl_rpc_reply_fini(rep);
    return rv;
}

int rl_agent_open(const rl_agent_opts *o, rl_agent **out)
{
    *out = NULL;
    if (o->coordinator == NULL || o->id == NULL || strlen(o->id) >= RL_ID_MAX)
        return rli_err(RL_EINVAL,
                       "join: a coordinator URL and a node id (< %d characters) "
                       "are required",
                       RL_ID_MAX);
    rl_agent_opts oo = *o;
    if (oo.join_timeout_ms <= 0) oo.join_timeout_ms = 30000;
    rl_agent *a = rl_xcalloc(1, sizeof(*a));
    snprintf(a->id_buf, sizeof(a->id_buf), "%s", o->id);
    a->id = a->id_buf;
    pthread_mutex_init(&a->mtx, NULL);
    pthread_mutex_init(&a->acc_mtx, NULL);
    rl_cond_init_monotonic(&a->readmit_cv);
    snprintf(a->coordinator, sizeof(a->coordinator), "%s", o->coordinator);
    int rv = rl_token_load(o->token_file, &a->token);
    if (rv != RL_OK) goto fail;
    rl_rpc_client_opts co = {
        .url = o->coordinator, .tls = o->tls, .token = &a->token, .peer_id = a->id};
    rv = rl_rpc_client_open(&co, rl_clock_ms() + (uint64_t)oo.join_timeout_ms, &a->rpc);
    if (rv != RL_OK) {
        rli_err_prefix(rv, "cannot join %s", o->coordinator);
        goto fail;
    }
    rl_rpc_reply rep;
    if ((rv = agent_open_and_join(a, &oo, &rep)) != RL_OK) goto fail;
    agent_take_join(a, &rep.msg.u.join_resp);
    rl_rpc_reply_fini(&rep);
    rl_log_info("joined job '%s' at %s; ring endpoint %s", a->job, o->coordinator,
                rl_endpoint_url(a->ep));
    if (pthread_create(&a->hb_thread, NULL, agent_heartbeat_main, a) != 0) {
        rv = rli_err(RL_ENOMEM, "cannot start the heartbeat thread");
        goto fail;
    }
    a->hb_started = true;
    if (pthread_create(&a->stall_thread, NULL, agent_stall_watch_main, a) != 0) {
        rv = rli_err(RL_ENOMEM, "cannot start the stall watch thread");
        goto fail;
    }
    a->stall_started = true;
    *out = a;
    return RL_OK;
fail:
    rl_agent_close(a);
    return rv;
}

void rl_agent_close(rl_agent *a)
{
    if (a == NULL) return;
    atomic_store(&a->stop, true);
    if (a->hb_started) pthread_join(a->hb_thread, NULL);
    if (a->stall_started) pthread_join(a->stall_thread, NULL);
    rl_rpc_client_close(a->rpc);
    rl_endpoint_close(a->ep);
    pthread_mutex_destroy(&a->mtx);
    pthread_mutex_destroy(&a->acc_mtx);
    pthread_cond_destroy(&a->readmit_cv);
    free(a);
}

/* Fills a CSV block with rows from the coordinator, ~1 MiB per call. */
int rl_agent_fetch_block(rl_agent *a, const rl_data_params *dp, uint32_t id, rl_block *out)
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
        if (rv == RL_OK &&
            (r->rows == 0 || done + r->rows > (uint64_t)out->rows || r->features != f ||
             r->x.len != r->rows * f * sizeof(float) || r->y.len != r->rows * sizeof(float)))
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

/* ---- Step reports ---------------------------------------------------------- */

void rl_agent_batch_free(rl_agent_batch *b)
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

void rl_agent_batch_init(rl_agent_batch *b, size_t nb, size_t nm, uint64_t admissions)
{
    size_t cap = RL_AGENT_BATCH_CAP;
    rl_agent_batch_free(b);
    b->cap = cap;
    b->nb = nb;
    b->nm = nm;
    b->admissions = admissions;
    b->steps = rl_xcalloc(cap, sizeof(uint32_t));
    b->cov = rl_xcalloc(cap * nb + 1, sizeof(uint32_t));
    b->loss = rl_xcalloc(cap, sizeof(double));
    b->ms = rl_xcalloc(cap, sizeof(double));
    b->compute = rl_xcalloc(cap, sizeof(double));
    b->ar = rl_xcalloc(cap, sizeof(double));
    b->rows = rl_xcalloc(cap, sizeof(double));
    b->ncomp = rl_xcalloc(cap * nm + 1, sizeof(double));
    b->done_ms = rl_xcalloc(cap, sizeof(double));
}

size_t rl_agent_batch_add(rl_agent_batch *b, uint64_t s, double step_ms, double compute_ms,
                          double allreduce_ms, double rows, double done_ms)
{
    size_t k = b->k++;
    if (k == 0) b->first_ms = done_ms;
    b->steps[k] = (uint32_t)s;
    b->loss[k] = 0.0;
    b->ms[k] = step_ms;
    b->compute[k] = compute_ms;
    b->ar[k] = allreduce_ms;
    b->rows[k] = rows;
    b->done_ms[k] = done_ms;
    return k;
}

bool rl_agent_batch_due(const rl_agent_batch *b, double now_ms, uint64_t report_ms)
{
    return b->k == b->cap || (b->k > 0 && now_ms - b->first_ms >= (double)report_ms);
}

static void batch_sent(void *arg, int err, rl_rpc_reply *rep)
{
    rl_agent *a = arg;
    if (err != RL_OK && err != RL_ECLOSED) /* closed: the node is leaving */
        rl_log_warn("step report: %s", rl_strerror(err));
    else if (err == RL_OK && rep->msg.u.step_report_resp.stop)
        atomic_store(&a->stop, true);
}

void rl_agent_batch_flush(rl_agent *a, rl_agent_batch *b, uint64_t epoch, const double *weights,
                          size_t nw, const double *bias, size_t nbias, bool sync)
{
    if (b->k == 0) return;
    /* Steps of a plan from a coordinator that is gone (re-dialing) or was
     * replaced (re-admitted since): the resumed one restarts from its
     * checkpoint, and they must not reach it. */
    if (b->admissions != 0 &&
        (atomic_load(&a->redialing) || b->admissions != atomic_load(&a->admissions))) {
        b->k = 0;
        return;
    }
    size_t i = b->k - 1;
    rl_msg r;
    rl_msg_init(&r, RL_MSG_STEP_REPORT_REQ);
    rl_msg_step_report_req *q = &r.u.step_report_req;
    q->node_id = (char *)a->id;
    q->epoch = epoch;
    q->incarnation = atomic_load(&a->incarnation);
    if (q->incarnation != 0) RL_SET_FIELD(q, step_report_req, incarnation);
    q->step = b->steps[i];
    q->loss = b->loss[i];
    q->step_ms = b->ms[i];
    q->compute_ms = b->compute[i];
    q->allreduce_ms = b->ar[i];
    q->rows = (uint64_t)b->rows[i];
    q->coverage = (rl_u32list){b->cov + i * b->nb, b->nb};
    q->node_compute_ms = (rl_f64list){b->ncomp + i * b->nm, b->nm};
    if (weights != NULL) {
        q->weights = (rl_f64list){(double *)weights, nw}; /* encoded, not freed */
        q->bias = (rl_f64list){(double *)bias, nbias};
    }
    /* How long ago each step completed: the coordinator dates the steps
     * by its own clock (clocks of different hosts are not compared). */
    double now = (double)rl_clock_ns() / 1e6;
    for (size_t e = 0; e < b->k; e++)
        b->done_ms[e] = now - b->done_ms[e];
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
    if (sync) {
        rl_rpc_reply rr;
        int rv = rl_rpc_call(a->rpc, &r, &rr, rl_clock_ms() + 5000);
        if (rv != RL_OK) rl_log_warn("step report: %s", rl_errdetail());
        else batch_sent(a, RL_OK, &rr);
        rl_rpc_reply_fini(&rr);
    } else if (rl_rpc_call_async(a->rpc, &r, rl_clock_ms() + 5000, batch_sent, a) != RL_OK) {
        rl_log_warn("step report: %s", rl_errdetail());
    }
}
