/*
 * metrics.h - the Prometheus text exposition (format 0.0.4) of a job
 * snapshot: a pure function of its inputs, so it is tested without a job.
 */
#ifndef RL_METRICS_H
#define RL_METRICS_H

#include <stddef.h>
#include <stdio.h>

#include "snapshot.h"
#include "ringleader/rpc.h"

/* Every metric, defined once: name, TYPE and HELP (docs/operations.md lists
 * them; test it_monitor checks the list against a scrape and the docs). */
#define METRICS_LIST(X)                                                                            \
    X(ringleader_job_info, gauge, "The job, by name (always 1)")                                   \
    X(ringleader_job_state, gauge, "1 for the job's state (waiting, running, ok, failed), else 0") \
    X(ringleader_job_step, gauge, "Steps completed (every step before it is done)")                \
    X(ringleader_job_steps_planned, gauge, "Steps the job runs (training.steps)")                  \
    X(ringleader_job_loss, gauge, "Training loss after the last completed step")                   \
    X(ringleader_job_epoch, gauge, "Ring epoch: bumped on every membership or placement change")   \
    X(ringleader_job_blocks, gauge, "Data blocks in the job")                                      \
    X(ringleader_job_uptime_seconds, gauge, "Seconds since the coordinator started the job")       \
    X(ringleader_step_duration_seconds, histogram, "Wall time of each completed step")             \
    X(ringleader_allreduce_duration_seconds, histogram,                                            \
      "Time each completed step spent in the ring all-reduce")                                     \
    X(ringleader_node_state, gauge, "1 for the node's state (expected, alive, failed, left)")      \
    X(ringleader_node_blocks, gauge, "Data blocks the node holds")                                 \
    X(ringleader_node_rows_per_second, gauge, "Rows per second of compute, as the node reports")   \
    X(ringleader_node_compute_seconds, gauge, "Compute time per step, mean since its last report") \
    X(ringleader_node_allreduce_wait_seconds, gauge,                                               \
      "Time the node's last step spent in the all-reduce (waiting for the ring)")                  \
    X(ringleader_node_wait_seconds, gauge,                                                         \
      "Time per step the node waited on other members' data (the straggler signal)")               \
    X(ringleader_node_busy_ratio, gauge,                                                           \
      "Share of the node's step time not spent waiting on others (the straggler signal)")          \
    X(ringleader_node_cpu_seconds_per_second, gauge, "CPU seconds the node used per second")       \
    X(ringleader_node_resident_memory_bytes, gauge, "Resident memory of the node process")         \
    X(ringleader_node_heartbeats_total, counter, "Heartbeats received from the node")              \
    X(ringleader_rpc_calls_total, counter, "RPC calls served, by method")                          \
    X(ringleader_rpc_errors_total, counter, "RPC calls answered with an error, by method")         \
    X(ringleader_rpc_unauthenticated_total, counter,                                               \
      "RPC calls refused for want of authentication, by method")                                   \
    X(ringleader_rpc_latency_seconds, summary,                                                     \
      "RPC latency, receive to reply, by method (quantiles over the last 4096 calls)")             \
    X(ringleader_events_total, counter, "Job events (join, failed, reassign, ...), by kind")

/* One RPC method's figures, as rl_rpc_server_metrics gives them. */
typedef struct metrics_rpc {
    const char *method; /* lower case, e.g. "heartbeat" */
    rl_rpc_metrics m;
} metrics_rpc;

/* Writes the exposition of s (hists: its step histograms, may be NULL)
 * and of the n_rpc methods to f. */
void metrics_render(const job_snapshot *s, const snap_step_hists *hists, const metrics_rpc *rpc,
                    size_t n_rpc, FILE *f);

#endif
