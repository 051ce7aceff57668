/*
 * agent.h - what the node's threads share: the coordinator connection, the
 * latest metrics (sent with every heartbeat), and the stop / abort signals.
 */
#ifndef RL_NODE_AGENT_H
#define RL_NODE_AGENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringleader/ring.h"
#include "ringleader/rpc.h"
#include "ringleader/spec.h"

typedef struct agent {
    const char *id;
    rl_rpc_client *rpc;
    rl_endpoint *ep;
    int heartbeat_ms, failure_timeout_ms;

    pthread_mutex_t mtx;
    rl_ring *ring;          /* the ring in use, so that a stop can abort it */
    atomic_bool stop;       /* the job ended, or we were told to leave */
    atomic_bool coord_lost; /* no answer from the coordinator for too long */
    atomic_bool job_done;   /* the worker completed the job's last step */
    atomic_uint_fast64_t epoch, step;
    atomic_uint_fast64_t planned_epoch; /* the newest epoch the coordinator announced */
    atomic_int phase; /* what the worker is doing: an index into agent_phase_names */
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
    /* Nanoseconds this process did not run while its stall watch wanted to
     * (stopped, throttled, starved of CPU): agent_stall_watch_main. */
    atomic_uint_fast64_t stall_ns;
} agent;

/* One step's waiting, for agent_add_waits. */
typedef struct agent_step_waits {
    uint64_t epoch;
    double step_ms;        /* since the previous step ended (or this one began) */
    double wait_ms;        /* blocked on others, this node's own stalls taken out */
    double stall_ms;       /* this process not running */
    const double *peer_ms; /* blocked on each member, by ring rank */
    size_t members;
} agent_step_waits;

/* Adds one step to the heartbeat window. Any thread. */
void agent_add_waits(agent *a, const agent_step_waits *w);

/* Stall watch thread body: wakes every AGENT_STALL_TICK_MS until stop and
 * adds to a->stall_ns how late each wake was beyond AGENT_STALL_SLACK_MS. */
#define AGENT_STALL_TICK_MS  5
#define AGENT_STALL_SLACK_MS 2
void *agent_stall_watch_main(void *arg);

/* The worker's phases, as heartbeats (and `ringleader status`) name them. */
enum { PHASE_WAITING = 0, PHASE_MAKING_BLOCKS, PHASE_FORMING_RING, PHASE_STEPPING };
extern const char *const agent_phase_names[];

/* Stops the node now (a signal): sets stop, fences the endpoint (a ring
 * forming ends) and aborts the ring in use (a collective ends). Any thread. */
void agent_stop_now(agent *a, const char *why);

/* Heartbeat thread body: every heartbeat_ms until stop. */
void *agent_heartbeat_main(void *arg);

/* Runs plans from the coordinator until the job ends. Returns the exit code. */
int worker_run(agent *a);

#endif
