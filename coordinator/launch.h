/* launch.h - `launch: local`: one ringleader-node process per spec node on
 * this machine, each stopped by its PID at the end, whatever happened. */
#ifndef RL_LAUNCH_H
#define RL_LAUNCH_H

#include <sys/types.h>

#include "ringleader/spec.h"

typedef struct launched {
    int n;
    pid_t *pids; /* 0 once reaped */
    int *status;
} launched;

/* Finds ringleader-node: $RINGLEADER_NODE_BIN, beside this program, or in
 * the build tree (../node/). Writes the path to out. 0 if found. */
int launch_find_node_bin(char *out, size_t cap);

/* Starts one node per spec node. Returns 0, or -1 (with the ones started
 * already stopped). */
int launch_nodes(const rl_spec *spec, const char *node_bin, launched *out);

/* Reaps nodes that exited; returns how many are still running. */
int launch_reap(launched *l);

/* SIGTERM, then SIGKILL after grace_ms, every node still running; reaps all. */
void launch_stop(launched *l, int grace_ms);
void launch_free(launched *l);

#endif
