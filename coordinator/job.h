/*
 * job.h - the coordinator's job: who is in the ring (epoch), which node holds
 * which block, the model after the last completed step, and the record of
 * every step and event that run.json reports. RPC handlers (nng threads)
 * and the main loop share it under reg.mtx.
 */
#ifndef RL_JOB_H
#define RL_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "registry.h"
#include "ringleader/data.h"
#include "ringleader/model.h"
#include "ringleader/rpc.h"
#include "ringleader/spec.h"

typedef enum { JOB_WAITING, JOB_RUNNING, JOB_DONE, JOB_FAILED } job_status;

typedef struct step_rec {
    bool seen;
    double t_ms, loss, ms, allreduce_ms;
    double imbalance; /* slowest member's compute time / the mean (0: not known) */
    double *node_ms;  /* compute ms by registry index, NaN for non-members (NULL: none) */
    int node_n;       /* entries in node_ms */
} step_rec;

typedef struct job_event {
    double t_ms;
    int64_t step;
    char kind[16];
    char node[RL_ID_MAX];
    char detail[160];
    double recovery_ms; /* failed: failure detected -> next completed step; -1 until then */
} job_event;

typedef struct job {
    const rl_spec *spec;
    registry reg; /* reg.mtx guards everything below */
    job_status status;
    bool interrupted; /* JOB_FAILED by the user (job_interrupt): run.json "interrupted" */
    char error[1024];
    /* --baseline: a 1-node (or any) run's median step time, for `speedup` */
    const char *baseline_path;
    double baseline_step_ms;
    int baseline_nodes;
    uint64_t t0_ms, started_unix_ms;

    rl_data_params dp;
    rl_table *table; /* csv: the coordinator's copy, for the statistics */
    double *mean, *std;
    uint32_t n_blocks;
    rl_model model; /* after the last completed step */

    uint64_t epoch;
    int *members; /* node indices in ring order */
    int n_members;
    int *owner;   /* block -> node index */
    uint64_t plan_start, plan_end;
    bool replan;              /* membership or placement must change at the next tick */
    char replan_reason[96];
    uint64_t failure_hint_ms; /* a member reported a failed collective */
    /* Re-plans of the same members after failed steps, in a row, with the
     * model still at retry_step; past JOB_RETRY_MAX the job fails with the
     * last failure a node reported (a permanent one, such as a TCP
     * congestion control its kernel refuses, would otherwise retry for ever). */
#define JOB_RETRY_MAX 10
    int retry_streak;
    uint64_t retry_step;
    char last_failure[320];
    /* A ring that cannot form: the member a node could not connect to, in
     * which epoch, and in how many epochs in a row; twice while that member
     * is alive fails the job, naming it (docs/operations.md). */
    int unreach_node;
    uint64_t unreach_epoch;
    int unreach_streak;
    uint64_t last_plan_ms;    /* when the current epoch was planned */
    uint64_t plan_make_ms;    /* allowance for making the moved blocks, in the plan's deadline */
    int imbalance_streak;     /* consecutive evaluations with a rebalance worth doing ... */
    int imbalance_node;       /* ... all blaming this same slowest node */
    int link_streak, link_a, link_b; /* the slow link rule's state (placement.h) */
    int link_named;                  /* the member whose link was named ... */
    uint64_t link_named_epoch;       /* ... in this epoch (once per epoch) */
    rl_rpc_ctx **waiting_plan; /* per node: a PLAN call held until there is a plan */

    /* program mode: the user's program runs the steps (collective rounds),
     * as many as it likes; steps grows. A failure is settled before the new
     * plan is handed out: settle_epoch's members (settle_members) say how far
     * their collectives got, and every member resumes at the least
     * (docs/worker-api.md). */
    bool program;
    uint64_t steps_cap;      /* entries in steps */
    uint64_t settle_epoch;   /* 0: nothing to settle */
    int *settle_members;
    int n_settle;

    uint64_t steps_done;   /* steps 0 .. steps_done-1 all reported */
    uint64_t steps_seen;   /* one past the highest step reported */
    uint64_t model_step;   /* the model holds the weights after this many steps */
    uint64_t final_seen_ms; /* when the last step's report arrived (0: not yet) */
    step_rec *steps;
    uint64_t coverage_checked, violations;
    /* --resume (coordinator/checkpoint.c): the step of the checkpoint the
     * job continues from, which `status` shows while nodes are awaited */
    bool resumed;
    uint64_t resumed_step;
    int readmitted; /* nodes of an earlier coordinator that joined this one */
    /* This coordinator process (random, cmd_run.c): in every JOIN reply;
     * calls naming another are refused (RL_ESTALE), so that the node joins
     * again (lib/agent.c). */
    uint64_t incarnation;
    uint64_t spec_hash;   /* the resolved spec's (checkpoint.c), in JOIN replies */
    uint64_t epoch_floor; /* the newest epoch a re-admitted node had: plans go above it */
    job_event *events;
    size_t n_events, cap_events;
} job;

/* Loads the data side (csv table and statistics) and the initial model. */
int job_init(job *j, const rl_spec *spec);
void job_fini(job *j);
/* Registers the JOIN, HEARTBEAT, PLAN, STEP_REPORT and STATUS handlers. */
int job_serve(job *j, rl_rpc_server *srv);
/* Assigns blocks to the joined nodes (capacity-weighted), bumps the epoch and
 * answers the nodes' held PLAN calls. Lock NOT held. */
void job_start(job *j);
/* Ends a job not yet done or failed as interrupted by the user (SIGINT,
 * SIGTERM): failed, with run.json status "interrupted" and the model of the
 * last completed step kept for predict. */
void job_interrupt(job *j);
/* Ends the job with status st (and error text); held PLAN calls get stop. */
void job_finish(job *j, job_status st, const char *error);
/* The coordinator's heartbeat of decisions (call every few ms): fails nodes
 * whose heartbeats stopped or whose connection closed after a member
 * reported a broken ring, admits nodes that came back, and re-plans (new
 * epoch, blocks moved to the live nodes by their measured speed). */
void job_tick(job *j);
/* The RPC server's disconnect hook. */
void job_on_disconnect(void *arg, const char *peer_id);
/* Ends a job whose last step was reported while earlier reports never came
 * (lost in flight) once grace_ms have passed. */
void job_check_complete(job *j, uint64_t grace_ms);
/* Records an event. Lock held. */
void job_event_add(job *j, const char *kind, const char *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Writes DIR/run.json atomically. */
int job_write_report(job *j, const char *dir, const char *spec_path, double wall_s);
/* A program started by `launch: local` ended: status as waitpid's; tail
 * the last lines of its stderr. A non-zero exit fails the job naming the
 * node, the code and the tail; a signal fails the node only. */
void job_program_exited(job *j, int node, int status, const char *tail);
/* Program mode, launch local: every program has exited. The job is done
 * if it is still running and one of them exited 0. */
void job_programs_ended(job *j);
/* Program mode, launch manual: waits up to ms for the nodes that left to
 * report how their programs ended (ringleader-node --exec); a program run
 * without --exec never does. */
void job_wait_exits(job *j, uint64_t ms);
/* Prints one progress line (redrawn on a terminal). */
void job_progress(job *j, bool final);

#endif
