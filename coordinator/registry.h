/*
 * registry.h - the coordinator's view of the nodes: who is expected, who
 * joined, their last heartbeat and metrics. Safe to use from RPC handlers
 * (nng threads) and the main loop at once.
 */
#ifndef RL_REGISTRY_H
#define RL_REGISTRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringleader/spec.h"

typedef enum { NODE_EXPECTED, NODE_JOINED, NODE_FAILED, NODE_LEFT } node_state;

typedef struct node_entry {
    char id[RL_ID_MAX];
    char listen[RL_URL_MAX]; /* as reported at join */
    double capacity;
    node_state state;
    pid_t pid; /* as reported at join (0 if unknown) */
    uint64_t joined_ms, last_heartbeat_ms;
    uint64_t heartbeats;
    double rows_per_s, compute_ms, allreduce_ms, cpu_load;
    uint64_t rss_bytes;
    uint64_t step;            /* steps completed, as last reported */
    bool connected;           /* its RPC connection is open */
    uint64_t disconnected_ms; /* when it closed */
    double speed;             /* smoothed rows per compute-ms (0: not measured yet) */
    int slow_streak;          /* consecutive reports over straggler_factor x median */
    uint64_t compute_epoch;   /* the epoch compute_ms was measured under */
    uint64_t samples_epoch;   /* heartbeats with a fresh compute_ms in this epoch */
    uint64_t evaluated;       /* ncompute when placement last looked at this node */
    uint64_t hold_until_ms;   /* a recent straggler gets no blocks back before this */
    int hold_level;           /* ... its hold is PLACEMENT_HOLD_HEARTBEATS << this */
    char phase[24];           /* what it reported doing: stepping, making-blocks, ... */
    bool slow;
    double compute_samples[256]; /* compute_ms per heartbeat, a ring */
    uint64_t ncompute;
    /* The straggler signal, from its last heartbeat with one (means per
     * step over that heartbeat's window; docs/operations.md) ... */
    double step_ms, wait_ms, busy_fraction, stall_ms;
    double busy_samples[256]; /* ... busy ms per step (step - wait) per heartbeat, a ring */
    uint64_t nbusy, busy_epoch, busy_in_epoch;
    double *peer_wait_ms;          /* ... ms per step blocked on each member, by ring rank: per
                                    * member a ring of PLACEMENT_WAIT_WINDOW heartbeats' figures ... */
    size_t peer_n;                 /* ... peer_n members ... */
    uint64_t npeer, peer_in_epoch; /* ... heartbeats written, and of them in peer_epoch */
    uint64_t peer_epoch;           /* ... under this epoch */
    int dup_refused; /* duplicate joins refused whose connections have not closed yet */
    bool late;       /* joined the running job and holds no blocks yet */
    /* program mode (docs/worker-api.md): how far its collectives got, as its
     * last PLAN call from epoch rep_epoch said, and how its program ended */
    uint64_t rep_epoch, rep_done;
    bool rep_data;
    bool exited;
    int exit_code; /* exit status, or 128 + the signal that killed it */
} node_entry;

typedef struct registry {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    int n;
    node_entry *nodes;
    bool stopping; /* heartbeats answer stop=true */
} registry;

void registry_init(registry *r, const rl_spec *spec);
void registry_fini(registry *r);
/* Counts nodes in state s. Lock NOT held. */
int registry_count(registry *r, node_state s);
/* Waits until every node has joined or deadline (rl_clock_ms); returns the count joined. */
int registry_wait_joined(registry *r, uint64_t deadline_ms);
/* True while e is joined and alive: its connection open and a heartbeat
 * within failure_timeout_ms of now. Lock held. */
bool registry_node_alive(const node_entry *e, uint64_t now, uint64_t failure_timeout_ms);
/* Writes the nodes not joined as "c (tcp://...), d (tcp://...)" into buf
 * (truncated to len) and returns how many have joined. Lock NOT held. */
int registry_missing(registry *r, char *buf, size_t len);

#endif
