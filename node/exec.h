/* exec.h - `ringleader-node --exec -- CMD ...`: a worker API program under
 * `launch: manual` (exec.c, docs/worker-api.md). */
#ifndef RL_NODE_EXEC_H
#define RL_NODE_EXEC_H

#include "ringleader/ring.h"

typedef struct node_exec_opts {
    const char *coordinator, *id, *listen, *token_file;
    const rl_tls_files *tls;
    char **argv; /* the program and its arguments, NULL-terminated */
} node_exec_opts;

/* Runs the program with the RINGLEADER_* environment (it joins the job
 * itself as o->id), copies its stderr to ours, and when it ends tells the
 * coordinator how (exit code or signal, and the last lines of its stderr).
 * Returns the program's exit code, or 128 + the signal that killed it. */
int node_exec(const node_exec_opts *o);

#endif
