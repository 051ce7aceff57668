/*
 * worker.h - the worker API: any program becomes a node of a Ringleader job
 * and sums its buffers with the other members' (see docs/worker-api.md).
 *
 *   rl_worker *w;
 *   rl_worker_join(NULL, NULL, NULL, NULL, &w);   // from the environment
 *   for (;;) {
 *       compute on the rows of rl_worker_data(w, ...) into grad;
 *       int rv = rl_worker_allreduce(w, grad, n, RL_F64, RL_OP_SUM);
 *       if (rv == RL_EREPLAN) continue;           // new blocks: redo the step
 *       if (rv != RL_OK) fail with rl_errdetail();
 *       update the model;
 *   }
 *   rl_worker_leave(w);
 *
 * The coordinator admits the worker, assigns it data blocks by its measured
 * load, and fails and replaces members; heartbeats run on the library's own
 * threads. The time a program spends between two collectives is its compute
 * time, which placement uses. Every collective is one step of the job: the
 * coordinator checks that its members together held every block exactly
 * once (the coverage proof) and records it in run.json.
 *
 * Guarantees: no collective completes with members of different epochs;
 * when membership or blocks change, every member's collective returns
 * RL_EREPLAN at the same step (the same count of completed collectives), and
 * rl_worker_blocks / rl_worker_data then give the new blocks.
 *
 * Plain C types and one opaque handle, for bindings (ctypes). Every call
 * returns RL_OK or an RL_E* code (ringleader/err.h) with rl_errdetail()
 * saying what happened, on the calling thread. One thread at a time may use
 * a worker.
 */
#ifndef RINGLEADER_WORKER_H
#define RINGLEADER_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "ringleader/allreduce.h"
#include "ringleader/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rl_worker rl_worker;

/*
 * Joins the job as a node and waits for its first plan (rank, members,
 * blocks) and ring. Each argument NULL (or "") is taken from the
 * environment a coordinator sets for the programs it starts:
 *   coordinator  RINGLEADER_COORDINATOR   (required one way or the other)
 *   node_id      RINGLEADER_NODE_ID       (required)
 *   listen       RINGLEADER_LISTEN        (else: the spec's URL for node_id)
 *   token_file   RINGLEADER_TOKEN_FILE    (else: $RINGLEADER_TOKEN)
 * TLS certificates come from RINGLEADER_TLS_CERT, _KEY and _CA.
 * Blocks until the job starts (at most cluster.join_timeout_ms plus the
 * wait for the first plan, 10 minutes at most). On RL_OK *out is the
 * caller's until rl_worker_leave; otherwise *out is NULL.
 */
RL_API int rl_worker_join(const char *coordinator, const char *node_id, const char *listen,
                          const char *token_file, rl_worker **out);

/* This member's rank (0 .. size-1) and the member count, in the current epoch. */
RL_API int rl_worker_rank(const rl_worker *w);
RL_API int rl_worker_size(const rl_worker *w);
/* The current epoch: it grows at every change of membership or blocks. */
RL_API uint64_t rl_worker_epoch(const rl_worker *w);
/* Collectives completed so far (the job's step count as this member sees it). */
RL_API uint64_t rl_worker_step(const rl_worker *w);
/* The node id this worker joined as; valid until rl_worker_leave. */
RL_API const char *rl_worker_id(const rl_worker *w);

/*
 * The ids of the data blocks this member holds now: returns how many and
 * sets *ids (may be NULL to count only) to an array owned by w, valid until
 * the next collective or rl_worker_leave. Blocks are ids into the spec's
 * data section (data.block_rows rows each); rl_worker_blocks_total says how
 * many the job has.
 */
RL_API size_t rl_worker_blocks(const rl_worker *w, const uint32_t **ids);
RL_API uint32_t rl_worker_blocks_total(const rl_worker *w);

/*
 * The rows of this member's current blocks of the spec's `data` section,
 * made as the built-in trainer makes them (synthetic from the seed, or cut
 * from the CSV file, or fetched from the coordinator, standardised with the
 * whole table's statistics when data.csv.standardize is on): X is rows x
 * features float32, row-major, and y the rows' labels. The arrays are owned
 * by w and stay valid until a collective returns RL_EREPLAN or
 * rl_worker_leave. Returns RL_OK, RL_EDATA (bad file or label), RL_ENOMEM,
 * or an RPC error when fetching from the coordinator.
 */
RL_API int rl_worker_data(rl_worker *w, const float **X, const float **y, size_t *rows,
                          size_t *features);

/*
 * Sums (or takes the min or max of) count elements of dtype at buf with the
 * other members' and leaves the result in buf, on every member. Every member
 * must call with the same count, dtype and op: a member calling otherwise
 * makes the call fail with RL_EINVAL on every member, naming both (before
 * any data moves). A bad argument here (NULL buf, unknown dtype or op) is
 * RL_EINVAL before anything is sent.
 *
 * Returns RL_OK, or RL_EREPLAN: membership or blocks changed (a failure, a
 * rejoin, a rebalance) and every member gets it at the same step; buf's
 * contents are then unspecified: read the new blocks and redo the step.
 * RL_ECANCELED: the job ended (the coordinator stopped it, or it is gone).
 * RL_ECOVERAGE: the members' blocks did not cover every block exactly once
 * (a bug: every member gets it, and nothing was reduced).
 * A collective waits for slow peers while they heartbeat (10 minutes at most).
 */
RL_API int rl_worker_allreduce(rl_worker *w, void *buf, size_t count, rl_dtype dtype, rl_op op);

/* Copies bytes at root's buf to every member's buf. A collective like
 * rl_worker_allreduce (a step, the same returns). */
RL_API int rl_worker_broadcast(rl_worker *w, void *buf, size_t bytes, int root);

/*
 * Leaves the job: reports what is left, tells the coordinator (the other
 * members go on under a new epoch, or the job ends once every node has
 * left), closes the connection and frees w (NULL is fine). Returns RL_OK,
 * or the error of telling the coordinator (w is freed either way).
 */
RL_API int rl_worker_leave(rl_worker *w);

#ifdef __cplusplus
}
#endif
#endif
