/*
 * placement.h - which node holds which block: the first assignment, the
 * straggler rule, the rebalance rule with its hysteresis, and where a failed
 * node's blocks go. Pure functions over plain figures (rows, speeds, compute
 * times); the caller (job.c) gathers them from the registry, applies the
 * decisions and logs them. No locks, no clocks, no allocation.
 *
 * Blocks are owned by node indices (owner[b], -1: nobody); a plan's members
 * are node indices in ring order (members[k], k = 0..n-1, n at most
 * PLACEMENT_MAX_MEMBERS). Speeds are in rows per compute-ms.
 */
#ifndef RL_PLACEMENT_H
#define RL_PLACEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "ringleader/spec.h"

#define PLACEMENT_MAX_MEMBERS RL_SPEC_MAX_NODES

/* ---- The rules' constants (why each, in a line) ---- */
/* Weight of a new heartbeat's speed in the smoothed speed: one reading is noisy. */
#define PLACEMENT_SPEED_SMOOTHING 0.3
/* No evaluation until this many heartbeats after a plan: the ring forms and settles. */
#define PLACEMENT_SETTLE_HEARTBEATS 3u
/* A node counts as measured after this many compute samples in the epoch. */
#define PLACEMENT_MIN_SAMPLES 2u
/* Its compute time is the median of its last (up to) this many samples:
 * one noisy heartbeat on a shared machine must not move data. */
#define PLACEMENT_RECENT_SAMPLES 5u
/* Consecutive rounds over straggler_factor x median before a node is flagged. */
#define PLACEMENT_STRAGGLER_ROUNDS 2
/* A flagged node is cleared only below this x median: below the threshold,
 * so that the flag does not flicker. */
#define PLACEMENT_STRAGGLER_CLEAR 1.1
/* A node over the threshold gets no blocks back for this many heartbeats:
 * its fast readings may come between periodic stalls (a few seconds apart). */
#define PLACEMENT_HOLD_HEARTBEATS 40u
/* A rebalance needs the slowest over this x the mean, or the fastest under
 * the mean by this factor in both time and rows: a real imbalance. */
#define PLACEMENT_IMBALANCE_RATIO 1.15
/* ... a gain of at least this share of the slowest's compute and of the
 * step (not when the all-reduce dominates) ... */
#define PLACEMENT_MIN_GAIN_SHARE 0.1
/* ... and the same node slowest in this many consecutive rounds (noise moves the maximum). */
#define PLACEMENT_IMBALANCE_ROUNDS 2
/* What a move costs: this many steps redone ... */
#define PLACEMENT_MOVE_STEPS 2.0
/* ... plus re-forming the ring (ms) ... (plus making the moved blocks). */
#define PLACEMENT_REFORM_MS 20.0
/* A node grows by at most this share of its load (or PLACEMENT_GROWTH_BLOCKS
 * blocks) per rebalance, so one that only looked fast costs little. */
#define PLACEMENT_GROWTH_SHARE  0.5
#define PLACEMENT_GROWTH_BLOCKS 2.0
/* Making blocks, per value: synthetic data is generated, CSV rows copied. */
#define PLACEMENT_SYNTHETIC_NS_PER_VALUE 45.0
#define PLACEMENT_CSV_NS_PER_VALUE       2.0
/* The members' wait allowance for making moved blocks: this x the slowest's estimate. */
#define PLACEMENT_MAKE_ALLOWANCE 2.0

/* The data as placement sees it. */
typedef struct placement_data {
    int64_t rows;       /* rows in the data set */
    int64_t block_rows; /* rows per block; the last block may be short */
    uint32_t n_blocks;
    int features;
    bool synthetic; /* blocks are generated (else copied from a table) */
} placement_data;

/* Rows of block b. */
int64_t placement_block_rows(const placement_data *d, uint32_t b);
/* Time (ms) for a node to make `rows` rows of blocks. */
double placement_make_ms(const placement_data *d, double rows);
/* rows[k] = the rows members[k] holds under owner. */
void placement_member_rows(const placement_data *d, const int *owner, const int *members, int n,
                           double *rows);
/* The smoothed speed after a heartbeat reporting `reading` (prev 0: none yet). */
double placement_smooth_speed(double prev, double reading);
/* A node's compute time from its ring of compute samples (ring_len slots,
 * `total` ever written, the last `in_epoch` of them under the current epoch):
 * the median of the last PLACEMENT_RECENT_SAMPLES, or 0 when fewer than
 * PLACEMENT_MIN_SAMPLES were measured in the epoch. */
double placement_recent_compute_ms(const double *ring, size_t ring_len, uint64_t total,
                                   uint64_t in_epoch);
/* Median of n values (n >= 1, at most PLACEMENT_MAX_MEMBERS). */
double placement_median(const double *v, int n);

/* ---- Assignment ---- */

/* The first plan: each member gets a share of the rows proportional to
 * weight[k] (its capacity), as contiguous runs of blocks in member order;
 * each run ends at the block boundary nearest its cumulative target in
 * rows. Every block gets exactly one owner. */
void placement_assign_by_weight(const placement_data *d, const int *members, int n,
                                const double *weight, int *owner);
/* speed[k] = members[k]'s expected speed: measured[k] when > 0, else its
 * capacity[k] scaled by the measured members' mean speed per capacity (1.0
 * when none is measured). */
void placement_expected_speeds(const double *measured, const double *capacity, int n,
                               double *speed);
/* Gives every block not owned by a member (a failed node's, or all at the
 * start) to the member that would finish it soonest at speed[k]; blocks on
 * members stay. */
void placement_assign_orphans(const placement_data *d, const int *members, int n,
                              const double *speed, int *owner);
/* The allowance (ms) for making the blocks a plan moved (owner differs from
 * before on some member): PLACEMENT_MAKE_ALLOWANCE x the member slowest to
 * make its new blocks. */
double placement_make_allowance_ms(const placement_data *d, const int *before, const int *owner,
                                   const int *members, int n);

/* ---- Stragglers ---- */

typedef struct straggler_state {
    int streak; /* consecutive rounds over the threshold */
    bool slow;  /* flagged as a straggler */
} straggler_state;

typedef struct straggler_verdict {
    straggler_state next;
    bool over;    /* over the threshold this round: hold its gains */
    bool flagged; /* became a straggler this round */
} straggler_verdict;

/* Whether compute_ms is over factor x median. */
bool placement_is_over(double compute_ms, double median, double factor);
/* One round of the straggler rule for one node. */
straggler_verdict placement_straggler_rule(straggler_state prev, double compute_ms, double median,
                                           double factor);

/* ---- The straggler signal (docs/operations.md) ---- */

/* Heartbeats whose busy times are averaged: a mean, not a median, so that a
 * stall every few heartbeats still counts (a median hides periodic stalls). */
#define PLACEMENT_WAIT_WINDOW 8u
/* A slow link: the members' mean step is at least this x the busiest
 * member's busy time (they mostly wait, yet nobody is busy) ... */
#define PLACEMENT_LINK_WAIT_RATIO 3.0
/* ... the waiting on one node is at least this x that on any other ... */
#define PLACEMENT_LINK_CONCENTRATION 1.5
/* ... for this many rounds in a row, naming the same edge. */
#define PLACEMENT_LINK_ROUNDS 3

/* The mean of the last (up to) PLACEMENT_WAIT_WINDOW samples of a ring
 * (ring_len slots, `total` ever written, the last `in_epoch` of them under
 * the current epoch), or 0 when fewer than PLACEMENT_MIN_SAMPLES. */
double placement_window_mean(const double *ring, size_t ring_len, uint64_t total,
                             uint64_t in_epoch);
/* What placement balances, per member: its busy time per step (step time
 * less the time it waited on others) when every member has one (> 0),
 * never below its compute time; else its compute time. A stall counts
 * wherever it lands: compute, collective, block making. */
void placement_load_ms(const double *compute_ms, const double *busy_ms, int n, double *load_ms);

/* Whether the members mostly wait while nobody is busy: the mean step is at
 * least PLACEMENT_LINK_WAIT_RATIO x the busiest member's load (step_ms and
 * load_ms per member, all > 0). No node's work explains such steps, so no
 * node is a straggler and no move can help. */
bool placement_link_bound(const double *load_ms, const double *step_ms, int n);

typedef struct slow_link_state {
    int streak; /* consecutive rounds naming the same edge ... */
    int a, b;   /* ... member positions: a waited on b */
} slow_link_state;

typedef struct slow_link_verdict {
    slow_link_state next;
    bool link;  /* a slow link, named this round (streak reached) */
    bool found; /* this round looks like a slow link */
} slow_link_verdict;

/* One round of the slow link rule: wait[i * n + j] is the time per step
 * member i was blocked on member j's data, load_ms and step_ms per member.
 * A slow link when nobody is a straggler (the busiest at most `factor` x
 * the median load), the members mostly wait (PLACEMENT_LINK_WAIT_RATIO) and
 * the waiting concentrates on one node b (PLACEMENT_LINK_CONCENTRATION):
 * the edge is b and the member a that waited on it most. Moving blocks
 * cannot speed a link: the caller names it and moves nothing. */
slow_link_verdict placement_slow_link_rule(const double *wait, const double *load_ms,
                                           const double *step_ms, int n, double factor,
                                           slow_link_state prev);

/* ---- Rebalance ---- */

typedef struct imbalance_state {
    int streak; /* consecutive rounds with a rebalance worth doing ... */
    int node;   /* ... all blaming this node (an index in members[]'s space) */
} imbalance_state;

/* One evaluation round: every member measured. */
typedef struct placement_round {
    int n;
    const int *members;       /* node indices */
    const double *compute_ms; /* per member, > 0 */
    const double *speed;      /* per member */
    const double *rows;       /* per member, under the current plan */
    uint64_t steps_left;
    bool has_last_step;  /* a step completed: last_step_ms is its time */
    double last_step_ms; /* (else the slowest's compute time stands for it) */
} placement_round;

typedef struct rebalance_verdict {
    imbalance_state next;
    bool move;       /* rebalance now */
    int slowest;     /* member position of the slowest (-1: none) */
    double max_ms;   /* the slowest's compute time */
    double ideal_ms; /* the predicted slowest after balancing */
} rebalance_verdict;

/* The rebalance rule: worth it when a member is over the mean by
 * PLACEMENT_IMBALANCE_RATIO, or under it by that factor in both compute time
 * and rows (a node that lost blocks and is fast again), the predicted gain passes the thresholds
 * above and pays for the move over the steps left, for PLACEMENT_IMBALANCE_ROUNDS rounds in a row
 * blaming the same node (the slowest when one is over, else the fastest). */
rebalance_verdict placement_rebalance_rule(const placement_data *d, const placement_round *r,
                                           imbalance_state prev);
/* Moves blocks from members above their speed-proportional share to those
 * below it, largest surplus to largest deficit, the highest-numbered block
 * first; a held[k] member gains nothing and no member grows by more than
 * the growth cap. Returns the blocks moved. */
int placement_rebalance(const placement_data *d, const int *members, int n, const double *speed,
                        const bool *held, int *owner);

#endif
