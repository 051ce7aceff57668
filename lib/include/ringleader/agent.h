/*
 * agent.h - a node's membership in a job: the authenticated coordinator
 * connection, the ring endpoint, the JOIN, and the heartbeat thread that
 * sends load metrics and learns of new epochs and of the job's end. Used by
 * ringleader-node (its built-in trainer) and by the worker API
 * (ringleader/worker.h); see docs/worker-api.md. A program of your own uses
 * worker.h, not this: the struct is shared with ringleader-node's threads
 * and may change.
 *
 * The fields are shared by the agent's heartbeat thread and the thread that
 * works (trains or runs collectives): atomics, or under mtx / acc_mtx.
 */
#ifndef RINGLEADER_AGENT_H
#define RINGLEADER_AGENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringleader/data.h"
#include "ringleader/ring.h"
#include "ringleader/rpc.h"
#include "ringleader/spec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rl_agent {
    const char *id; /* points to id_buf */
    char id_buf[RL_ID_MAX];
    rl_rpc_client *rpc;
    rl_endpoint *ep;
    int heartbeat_ms, failure_timeout_ms;
    char job[RL_ID_MAX]; /* the job's name, from the JOIN reply */
    char coordinator[RL_URL_MAX]; /* its URL, for messages */
    rl_token token;
    pthread_t hb_thread, stall_thread;
    bool hb_started, stall_started;

    pthread_mutex_t mtx;
    rl_ring *ring;          /* the ring in use, so that a stop can abort it */
    atomic_bool stop;       /* the job ended, or we were told to leave */
    atomic_bool coord_lost; /* no answer from the coordinator for too long: leaving */
    /* The coordinator was lost and the node re-dials it, keeping its blocks,
     * for coordinator_grace_ms (lib/agent.c); cleared (readmit_cv
     * signalled, under mtx) when a coordinator admits it again. */
    atomic_bool redialing;
    atomic_bool gave_up; /* no coordinator admitted it again within the grace */
    pthread_cond_t readmit_cv;
    int coordinator_grace_ms;
    atomic_uint_fast64_t incarnation; /* the coordinator that admitted us (JOIN_RESP) */
    atomic_uint_fast64_t admissions;  /* JOINs accepted: 1, then one per re-admission */
    atomic_uint_fast64_t spec_hash;   /* the admitting coordinator's spec (JOIN_RESP; 0: none) */
    atomic_bool job_done;   /* the worker completed the job's last step */
    atomic_uint_fast64_t epoch, step;
    atomic_uint_fast64_t planned_epoch; /* the newest epoch the coordinator announced */
    atomic_int phase; /* what the worker is doing: an index into rl_agent_phase_names */
    /* metrics of the last step (doubles stored as bits) */
    _Atomic double rows_per_s, compute_ms, allreduce_ms;
    /* steps since the last heartbeat, so that each heartbeat reports the
     * mean compute time of many steps rather than one noisy sample */
    pthread_mutex_t acc_mtx;
    double acc_compute_ms, acc_rows;
    uint64_t acc_steps;
    /* The straggler signal over the same window (docs/operations.md): step
     * time, time blocked on others' data (own stalls taken out), own stalls,
     * and time blocked on each member by ring rank under acc_epoch. */
    double acc_step_ms, acc_wait_ms, acc_stall_ms;
    double acc_peer_wait_ms[RL_SPEC_MAX_NODES];
    size_t acc_members;
    uint64_t acc_wait_steps, acc_epoch;
    /* Nanoseconds this process did not run while its stall watch thread
     * wanted to (stopped, throttled, starved of CPU); see lib/agent.c. */
    atomic_uint_fast64_t stall_ns;
} rl_agent;

/* One step's waiting, for rl_agent_add_waits. */
typedef struct rl_agent_step_waits {
    uint64_t epoch;
    double step_ms;        /* since the previous step ended (or this one began) */
    double wait_ms;        /* blocked on others, this node's own stalls taken out */
    double stall_ms;       /* this process not running */
    const double *peer_ms; /* blocked on each member, by ring rank */
    size_t members;
} rl_agent_step_waits;

/* The stall watch thread wakes every RL_AGENT_STALL_TICK_MS until stop and
 * adds to stall_ns how late each wake was beyond RL_AGENT_STALL_SLACK_MS. */
#define RL_AGENT_STALL_TICK_MS  5
#define RL_AGENT_STALL_SLACK_MS 2

/* The worker's phases, as heartbeats (and `ringleader status`) name them. */
enum {
    RL_AGENT_PHASE_WAITING = 0,
    RL_AGENT_PHASE_MAKING_BLOCKS,
    RL_AGENT_PHASE_FORMING_RING,
    RL_AGENT_PHASE_STEPPING
};
extern const char *const rl_agent_phase_names[];

/* How to join. coordinator and id are required; listen NULL asks the
 * coordinator for the spec's URL of id; token_file NULL reads
 * $RINGLEADER_TOKEN; tls NULL: plain TCP. */
typedef struct rl_agent_opts {
    const char *coordinator, *id, *listen, *token_file;
    const rl_tls_files *tls;
    int join_timeout_ms; /* 0: 30000 */
} rl_agent_opts;

/*
 * Connects to the coordinator (authenticated), opens the ring endpoint,
 * joins, and starts the heartbeat and stall watch threads. On RL_OK *out is the caller's
 * until rl_agent_close; otherwise nothing is left open and rl_errdetail()
 * says what was refused and by whom. Blocks up to join_timeout_ms.
 */
RL_API int rl_agent_open(const rl_agent_opts *o, rl_agent **out);

/* Stops the heartbeat and stall watch threads, closes the connection and the endpoint, and
 * frees a (NULL is fine). The caller's ring, if any, must be freed first. */
RL_API void rl_agent_close(rl_agent *a);

/* While the agent re-dials a lost coordinator (a->redialing): waits until
 * one admits the node again (RL_OK) or the node stops (RL_ECANCELED: the
 * grace ended, or a signal). Returns RL_OK at once when not re-dialing. */
RL_API int rl_agent_wait_readmitted(rl_agent *a);

/* Stops the node now (a signal): sets stop, fences the endpoint (a ring
 * forming ends) and aborts the ring in use (a collective ends). Any thread. */
RL_API void rl_agent_stop_now(rl_agent *a, const char *why);

/* Adds one step's compute time and rows to the next heartbeat's figures. */
RL_API void rl_agent_add_step(rl_agent *a, double compute_ms, double rows);

/* Adds one step's waiting to the next heartbeat's straggler signal
 * (HEARTBEAT_REQ step_ms .. window_steps). Any thread. */
RL_API void rl_agent_add_waits(rl_agent *a, const rl_agent_step_waits *w);

/*
 * Step records not yet reported. The ring's rank 0 reports every step (its
 * loss, timings, the coverage proof, every member's compute time), batched:
 * one STEP_REPORT per report interval at most, so that a fast step does not
 * pay for a coordinator round trip. rl_agent_batch_add files a step's
 * figures; the caller fills the record's cov and ncomp (nb and nm values
 * a record, at index k before the add) and loss.
 */
#define RL_AGENT_BATCH_CAP 64 /* records a STEP_REPORT carries at most */
typedef struct rl_agent_batch {
    size_t k, cap, nb, nm; /* records, capacity, blocks, members */
    uint32_t *steps, *cov;
    double *loss, *ms, *compute, *ar, *rows, *ncomp;
    double *done_ms;     /* when each step completed (rl_clock_ns, in ms) */
    double first_ms;     /* when the oldest record was added */
    uint64_t admissions; /* the agent's JOINs when the plan of these steps came */
} rl_agent_batch;

/* Sizes b (freed first) for RL_AGENT_BATCH_CAP records of nb blocks and
 * nm members, empty, of a plan that came after `admissions` JOINs (0:
 * records are never dropped as stale, for jobs no coordinator resumes from
 * a checkpoint). Aborts on out of memory, as rl_xcalloc. */
RL_API void rl_agent_batch_init(rl_agent_batch *b, size_t nb, size_t nm, uint64_t admissions);
RL_API void rl_agent_batch_free(rl_agent_batch *b);

/* Files step s, completed at done_ms (rl_clock_ns in ms), with its times
 * and rows (loss 0) as record k; returns k. b must not be full. */
RL_API size_t rl_agent_batch_add(rl_agent_batch *b, uint64_t s, double step_ms,
                                 double compute_ms, double allreduce_ms, double rows,
                                 double done_ms);

/* Whether b is due to be sent at now_ms: full, or its oldest record
 * report_ms old. */
RL_API bool rl_agent_batch_due(const rl_agent_batch *b, double now_ms, uint64_t report_ms);

/*
 * Sends b's records as one STEP_REPORT of epoch and empties b: with the
 * model after the last step when weights is not NULL (nw weights, nbias
 * biases); synchronously when sync (the coordinator has it on return),
 * else in the background. Records of a plan from a coordinator since lost
 * or replaced (re-dialing, or re-admitted since) are dropped, unless b's
 * admissions is 0. A reply that says the job stops sets a->stop.
 */
RL_API void rl_agent_batch_flush(rl_agent *a, rl_agent_batch *b, uint64_t epoch,
                                 const double *weights, size_t nw, const double *bias,
                                 size_t nbias, bool sync);

/* Fills *out with CSV block id's rows fetched from the coordinator (which
 * has the table), about 1 MiB per call, 10 s each at most. On error *out is
 * released. */
RL_API int rl_agent_fetch_block(rl_agent *a, const rl_data_params *dp, uint32_t id, rl_block *out);

#ifdef __cplusplus
}
#endif
#endif
