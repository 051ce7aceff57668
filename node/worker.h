/* worker.h - the node's built-in trainer (worker.c). */
#ifndef RL_NODE_WORKER_H
#define RL_NODE_WORKER_H

#include "ringleader/agent.h"

/* Runs plans from the coordinator until the job ends. Returns the exit code. */
int worker_run(rl_agent *a);

#endif
