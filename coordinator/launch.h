/* launch.h - `launch: local`: one ringleader-node process per spec node on
 * this machine, each stopped by its PID at the end, whatever happened.
 * A child keeps only stdin, stdout and stderr of the coordinator's
 * descriptors: an inherited socket would keep a connection of the
 * coordinator open after it dies, which its nodes, re-dialing it, must see
 * closed (lib/agent.c). */
#ifndef RL_LAUNCH_H
#define RL_LAUNCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "ringleader/spec.h"

#define LAUNCH_TAIL_BYTES 2048 /* of each program's stderr, kept for the job's error */

typedef struct launched {
    int n;
    pid_t *pids; /* 0 once reaped */
    int *status;
    /* --resume: nodes of the earlier coordinator that joined this one, left
     * running (not our children: watched with kill(pid, 0), stopped by PID) */
    bool *adopted;
    /* program mode: each program's stderr comes through a pipe, copied to
     * ours by a thread that keeps its last LAUNCH_TAIL_BYTES */
    int *err_fd;
    char (*tail)[LAUNCH_TAIL_BYTES];
    size_t *tail_len;
    pthread_mutex_t mtx;
    pthread_t copier;
    bool copying;
    atomic_bool stop_copy;
} launched;

/* Finds ringleader-node: $RINGLEADER_NODE_BIN, beside this program, or in
 * the build tree (../node/). Writes the path to out. 0 if found. */
int launch_find_node_bin(char *out, size_t cap);

/* Starts one node per spec node, except node i where adopt (may be NULL)
 * has a PID: that process, still running, is kept as node i. Returns 0, or
 * -1 (with the ones started already stopped). */
int launch_nodes(const rl_spec *spec, const char *node_bin, const pid_t *adopt, launched *out);

/* For each spec node, the PID of a ringleader-node process on this machine
 * started for it (its command line names the node's --id and the spec's
 * --coordinator), or 0: a node left by an earlier coordinator of the job.
 * Returns how many were found. */
int launch_find_running(const rl_spec *spec, pid_t *pids);

/* Program mode: starts the spec's program once per spec node, with the
 * RINGLEADER_* environment (docs/worker-api.md), in program.workdir, its
 * stderr copied to ours and its tail kept. Returns 0, or -1 (with the ones
 * started already stopped). */
int launch_programs(const rl_spec *spec, launched *out);

/* The last lines of program i's stderr (all of it that was kept), into buf. */
void launch_stderr_tail(launched *l, int i, char *buf, size_t cap);

/* SIGKILL to pid (not necessarily our child), then waits up to ms until it
 * is gone, so that the ring address it held is free for a successor. */
void launch_kill_wait(pid_t pid, int ms);

/* Reaps nodes that exited; returns how many are still running. */
int launch_reap(launched *l);

/* SIGTERM, then SIGKILL after grace_ms, every node still running; reaps all. */
void launch_stop(launched *l, int grace_ms);
void launch_free(launched *l);

#endif
