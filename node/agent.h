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

typedef struct agent {
    const char *id;
    rl_rpc_client *rpc;
    rl_endpoint *ep;
    int heartbeat_ms, failure_timeout_ms;

    pthread_mutex_t mtx;
    rl_ring *ring;            /* the ring in use, so that a stop can abort it */
    atomic_bool stop;         /* the job ended, or we were told to leave */
    atomic_bool coord_lost;   /* no answer from the coordinator for too long */
    atomic_bool job_done;     /* the worker completed the job's last step */
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
} agent;

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
