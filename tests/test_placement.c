/*
 * test_placement.c - the coordinator's placement rules (coordinator/placement.c)
 * as pure functions: the first assignment, a failed node's blocks going to
 * the survivors, the straggler rule, and the rebalance rule with its
 * hysteresis and its moves. No processes, sockets or cgroups.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "placement.h"
#include "testutil.h"

/* 40 blocks of 1000 rows, the last one short (39,500 rows in all). */
static const placement_data DATA = {
    .rows = 39500, .block_rows = 1000, .n_blocks = 40, .features = 10, .synthetic = true};

static int owned_by(const int *owner, uint32_t n_blocks, int node)
{
    int c = 0;
    for (uint32_t b = 0; b < n_blocks; b++)
        if (owner[b] == node) c++;
    return c;
}

/* Every block has one owner and it is one of the members. */
static void assert_each_block_once(const int *owner, const int *members, int n)
{
    int total = 0;
    for (int k = 0; k < n; k++)
        total += owned_by(owner, DATA.n_blocks, members[k]);
    ck_assert_int_eq(total, (int)DATA.n_blocks);
    for (uint32_t b = 0; b < DATA.n_blocks; b++) {
        bool member = false;
        for (int k = 0; k < n; k++)
            member = member || owner[b] == members[k];
        ck_assert_msg(member, "block %u owned by %d, not a member", b, owner[b]);
    }
}

static void unowned(int *owner)
{
    for (uint32_t b = 0; b <= DATA.n_blocks; b++)
        owner[b] = -1;
}

/* ---- The first assignment ---- */

START_TEST(the_first_plan_gives_every_block_exactly_one_member)
{
    static const int members[] = {3, 0, 5, 1};
    const double weights[][4] = {{1, 1, 1, 1}, {1, 2, 3, 4}, {10, 0.1, 0.1, 10}, {0.5, 1, 1, 1}};
    for (size_t w = 0; w < sizeof(weights) / sizeof(weights[0]); w++)
        for (int n = 1; n <= 4; n++) {
            int owner[41];
            unowned(owner);
            placement_assign_by_weight(&DATA, members, n, weights[w], owner);
            assert_each_block_once(owner, members, n);
        }
}
END_TEST

START_TEST(the_first_plan_gives_rows_in_proportion_to_capacity)
{
    static const int members[] = {0, 1, 2};
    const double capacity[] = {1, 2, 1};
    int owner[41];
    unowned(owner);
    placement_assign_by_weight(&DATA, members, 3, capacity, owner);
    double rows[3];
    placement_member_rows(&DATA, owner, members, 3, rows);
    for (int k = 0; k < 3; k++) {
        double want = (double)DATA.rows * capacity[k] / 4;
        ck_assert_msg(fabs(rows[k] - want) <= (double)DATA.block_rows,
                      "member %d: %.0f rows, want %.0f within a block", k, rows[k], want);
    }
}
END_TEST

START_TEST(the_first_plan_is_deterministic_and_contiguous)
{
    static const int members[] = {2, 0, 1};
    const double capacity[] = {1, 1.5, 0.7};
    int a[41], b[41];
    unowned(a);
    unowned(b);
    placement_assign_by_weight(&DATA, members, 3, capacity, a);
    placement_assign_by_weight(&DATA, members, 3, capacity, b);
    ck_assert_mem_eq(a, b, sizeof(a));
    /* Runs in member order: the owner changes at most n-1 times. */
    int changes = 0;
    for (uint32_t q = 1; q < DATA.n_blocks; q++)
        if (a[q] != a[q - 1]) changes++;
    ck_assert_int_le(changes, 2);
    ck_assert_int_eq(a[0], 2);
    ck_assert_int_eq(a[DATA.n_blocks - 1], 1);
}
END_TEST

START_TEST(an_unmeasured_member_is_expected_at_its_capacity_times_the_measured_mean)
{
    const double measured[] = {4.0, 0, 6.0}, capacity[] = {1, 2, 2};
    double speed[3];
    placement_expected_speeds(measured, capacity, 3, speed);
    ck_assert_double_eq(speed[0], 4.0);
    ck_assert_double_eq(speed[2], 6.0);
    ck_assert_double_eq_tol(speed[1], 2 * (4.0 / 1 + 6.0 / 2) / 2, 1e-12);
    /* Nobody measured yet: capacity itself. */
    const double none[] = {0, 0, 0};
    placement_expected_speeds(none, capacity, 3, speed);
    ck_assert_double_eq(speed[1], 2.0);
}
END_TEST

/* ---- A failure: the dead node's blocks go to the survivors ---- */

START_TEST(a_failed_nodes_blocks_go_to_survivors_none_lost_or_doubled)
{
    static const int before_members[] = {0, 1, 2, 3}, after[] = {0, 1, 3};
    const double ones[] = {1, 1, 1, 1};
    int owner[41], kept[41];
    unowned(owner);
    placement_assign_by_weight(&DATA, before_members, 4, ones, owner);
    memcpy(kept, owner, sizeof(owner));
    int dead_blocks = owned_by(owner, DATA.n_blocks, 2);
    ck_assert_int_gt(dead_blocks, 0);
    const double speed[] = {1, 1, 1};
    placement_assign_orphans(&DATA, after, 3, speed, owner);
    assert_each_block_once(owner, after, 3);
    for (uint32_t b = 0; b < DATA.n_blocks; b++)
        if (kept[b] != 2) ck_assert_msg(owner[b] == kept[b], "block %u moved off a survivor", b);
    ck_assert_int_eq(owned_by(owner, DATA.n_blocks, 2), 0);
}
END_TEST

START_TEST(a_failed_nodes_blocks_go_mostly_to_the_fastest_survivor)
{
    static const int after[] = {0, 1};
    int owner[41];
    for (uint32_t b = 0; b < DATA.n_blocks; b++)
        owner[b] = b < 10 ? 0 : b < 20 ? 1 : 7;
    const double speed[] = {3.0, 1.0}; /* node 7 failed with 20 blocks */
    placement_assign_orphans(&DATA, after, 2, speed, owner);
    assert_each_block_once(owner, after, 2);
    /* Soonest finish: loads end near 3:1 in rows. */
    double rows[2];
    placement_member_rows(&DATA, owner, after, 2, rows);
    ck_assert_msg(fabs(rows[0] / speed[0] - rows[1] / speed[1]) <= 1000.0,
                  "finish times %.0f and %.0f", rows[0] / speed[0], rows[1] / speed[1]);
}
END_TEST

START_TEST(the_first_plan_by_orphans_from_nobody_covers_every_block)
{
    static const int members[] = {4, 9, 2};
    const double speed[] = {1, 2, 1};
    int owner[41];
    unowned(owner);
    placement_assign_orphans(&DATA, members, 3, speed, owner);
    assert_each_block_once(owner, members, 3);
}
END_TEST

START_TEST(the_make_allowance_covers_the_slowest_members_new_blocks_only)
{
    static const int members[] = {0, 1};
    int before[41], after[41];
    for (uint32_t b = 0; b <= DATA.n_blocks; b++)
        before[b] = after[b] = b < 20 ? 0 : 1;
    ck_assert_double_eq(placement_make_allowance_ms(&DATA, before, after, members, 2), 0);
    after[0] = after[1] = 1; /* node 1 gains two full blocks */
    double want = PLACEMENT_MAKE_ALLOWANCE * placement_make_ms(&DATA, 2000);
    ck_assert_double_eq_tol(placement_make_allowance_ms(&DATA, before, after, members, 2), want,
                            1e-9);
}
END_TEST

/* ---- Stragglers ---- */

START_TEST(compute_time_needs_the_minimum_samples_and_is_the_median_of_the_recent_ones)
{
    double ring[8] = {0};
    uint64_t total = 0;
    const double samples[] = {10, 11, 90, 12, 10, 11}; /* one noisy heartbeat */
    ring[total++ % 8] = samples[0];
    ck_assert_double_eq(placement_recent_compute_ms(ring, 8, total, 1), 0);
    for (int i = 1; i < 6; i++)
        ring[total++ % 8] = samples[i];
    /* The last five: 11 90 12 10 11 -> 11. */
    ck_assert_double_eq(placement_recent_compute_ms(ring, 8, total, 6), 11);
    /* Samples of an older epoch do not count as evidence. */
    ck_assert_double_eq(placement_recent_compute_ms(ring, 8, total, PLACEMENT_MIN_SAMPLES - 1), 0);
    /* Across the ring's wrap. */
    for (int i = 0; i < 7; i++)
        ring[total++ % 8] = 20 + i;
    ck_assert_double_eq(placement_recent_compute_ms(ring, 8, total, 7), 24);
}
END_TEST

START_TEST(a_node_above_the_threshold_is_flagged_after_the_minimum_rounds)
{
    straggler_state st = {0};
    for (int round = 1; round <= PLACEMENT_STRAGGLER_ROUNDS; round++) {
        straggler_verdict v = placement_straggler_rule(st, 16, 10, 1.5);
        ck_assert(v.over);
        ck_assert_int_eq(v.flagged, round == PLACEMENT_STRAGGLER_ROUNDS);
        ck_assert_int_eq(v.next.slow, round == PLACEMENT_STRAGGLER_ROUNDS);
        st = v.next;
    }
    /* Flagged once: later rounds over the threshold do not flag it again. */
    straggler_verdict v = placement_straggler_rule(st, 16, 10, 1.5);
    ck_assert(v.next.slow && !v.flagged);
}
END_TEST

START_TEST(a_node_at_or_below_the_threshold_is_not_flagged)
{
    straggler_state st = {0};
    for (int round = 0; round < 10; round++) {
        straggler_verdict v = placement_straggler_rule(st, round % 2 ? 15 : 9, 10, 1.5);
        ck_assert(!v.over && !v.flagged && !v.next.slow);
        ck_assert_int_eq(v.next.streak, 0);
        st = v.next;
    }
}
END_TEST

START_TEST(slow_rounds_that_are_not_consecutive_flag_nothing)
{
    straggler_state st = {0};
    for (int round = 0; round < 10; round++) {
        straggler_verdict v = placement_straggler_rule(st, round % 2 ? 10 : 30, 10, 1.5);
        ck_assert(!v.flagged);
        st = v.next;
    }
    ck_assert(!st.slow);
}
END_TEST

START_TEST(a_flagged_node_is_cleared_only_below_the_clear_margin)
{
    straggler_state st = {.streak = 5, .slow = true};
    /* Below the threshold but above the clear margin: still slow. */
    straggler_verdict v = placement_straggler_rule(st, 12, 10, 1.5);
    ck_assert(!v.over && v.next.slow);
    ck_assert_int_eq(v.next.streak, 0);
    v = placement_straggler_rule(v.next, 10.5, 10, 1.5);
    ck_assert(!v.next.slow);
}
END_TEST

/* ---- Rebalance ---- */

/* Two members holding half the rows each, with compute times c0, c1. */
typedef struct two {
    int members[2];
    double compute_ms[2], speed[2], rows[2];
    placement_round r;
} two;

static void two_init(two *t, double c0, double c1, uint64_t steps_left)
{
    memset(t, 0, sizeof(*t));
    t->members[0] = 0;
    t->members[1] = 1;
    int owner[41];
    for (uint32_t b = 0; b <= DATA.n_blocks; b++)
        owner[b] = b < 20 ? 0 : 1;
    placement_member_rows(&DATA, owner, t->members, 2, t->rows);
    t->compute_ms[0] = c0;
    t->compute_ms[1] = c1;
    for (int k = 0; k < 2; k++)
        t->speed[k] = t->rows[k] / t->compute_ms[k];
    t->r = (placement_round){.n = 2,
                             .members = t->members,
                             .compute_ms = t->compute_ms,
                             .speed = t->speed,
                             .rows = t->rows,
                             .steps_left = steps_left,
                             .has_last_step = true,
                             .last_step_ms = 25};
}

START_TEST(no_rebalance_within_the_imbalance_margin)
{
    two t;
    two_init(&t, 10, 11, 1000); /* the slowest 1.05x the mean */
    imbalance_state st = {0};
    for (int round = 0; round < 5; round++) {
        rebalance_verdict v = placement_rebalance_rule(&DATA, &t.r, st);
        ck_assert(!v.move);
        ck_assert_int_eq(v.next.streak, 0);
        st = v.next;
    }
}
END_TEST

START_TEST(a_persistent_imbalance_rebalances_after_the_required_rounds)
{
    two t;
    two_init(&t, 10, 20, 1000);
    imbalance_state st = {0};
    for (int round = 1; round <= PLACEMENT_IMBALANCE_ROUNDS; round++) {
        rebalance_verdict v = placement_rebalance_rule(&DATA, &t.r, st);
        ck_assert_int_eq(v.slowest, 1);
        ck_assert_int_eq(v.move, round == PLACEMENT_IMBALANCE_ROUNDS);
        ck_assert_double_eq(v.max_ms, 20);
        st = v.next;
    }
    ck_assert_int_eq(st.streak, 0); /* counted afresh after a move */
}
END_TEST

START_TEST(a_different_slowest_node_restarts_the_count)
{
    two t, u;
    two_init(&t, 10, 20, 1000);
    two_init(&u, 20, 10, 1000);
    imbalance_state st = {0};
    rebalance_verdict v = placement_rebalance_rule(&DATA, &t.r, st);
    ck_assert(!v.move && v.next.streak == 1 && v.next.node == 1);
    v = placement_rebalance_rule(&DATA, &u.r, v.next); /* the blame moved: noise */
    ck_assert(!v.move);
    ck_assert_int_eq(v.next.streak, 0);
    v = placement_rebalance_rule(&DATA, &u.r, v.next);
    ck_assert(!v.move && v.next.streak == 1 && v.next.node == 0);
}
END_TEST

/* Four members at one speed (rows per ms) whose blocks are split as
 * owner says, compute times scaled per member by noise[k]. */
typedef struct four {
    int members[4];
    double compute_ms[4], speed[4], rows[4];
    placement_round r;
} four;

static void four_init(four *t, const int *owner, const double *noise)
{
    for (int k = 0; k < 4; k++)
        t->members[k] = k;
    placement_member_rows(&DATA, owner, t->members, 4, t->rows);
    for (int k = 0; k < 4; k++) {
        t->compute_ms[k] = t->rows[k] / 1000.0 * noise[k];
        t->speed[k] = t->rows[k] / t->compute_ms[k];
    }
    t->r = (placement_round){.n = 4,
                             .members = t->members,
                             .compute_ms = t->compute_ms,
                             .speed = t->speed,
                             .rows = t->rows,
                             .steps_left = 1000,
                             .has_last_step = true,
                             .last_step_ms = 12};
}

START_TEST(a_recovered_node_gets_blocks_back_though_no_other_is_far_over_the_mean)
{
    /* A straggler relieved to 7 blocks, then recovered: the others hold 11
     * each, only 1.1x the mean, and which of them is slowest is noise. */
    int owner[41];
    for (uint32_t b = 0; b < DATA.n_blocks; b++)
        owner[b] = b < 7 ? 3 : (int)(b - 7) % 3;
    const double noise[3][4] = {
        {1.02, 1.0, 0.99, 1.0}, {1.0, 1.03, 0.98, 1.0}, {0.99, 1.0, 1.04, 1.0}};
    imbalance_state st = {0};
    bool moved = false;
    for (int round = 0; round < 3 && !moved; round++) {
        four t;
        four_init(&t, owner, noise[round]);
        ck_assert_double_lt(t.compute_ms[3] * 1.15, 9.8); /* well under the mean */
        rebalance_verdict v = placement_rebalance_rule(&DATA, &t.r, st);
        ck_assert_int_eq(v.next.node, v.move ? st.node : 3); /* blamed: the idle one */
        moved = v.move;
        ck_assert_int_eq(moved, round + 1 == PLACEMENT_IMBALANCE_ROUNDS);
        st = v.next;
        if (moved) {
            const bool held[4] = {false, false, false, false};
            ck_assert_int_gt(placement_rebalance(&DATA, t.members, 4, t.speed, held, owner), 0);
        }
    }
    ck_assert(moved);
    ck_assert_int_gt(owned_by(owner, DATA.n_blocks, 3), 7);
    int members[4] = {0, 1, 2, 3};
    assert_each_block_once(owner, members, 4);
}
END_TEST

START_TEST(a_fast_node_holding_an_even_share_moves_nothing)
{
    /* Ten blocks each; one reads 40% faster than the rest: under the mean by
     * more than the ratio in time, not in rows. On a shared machine that is
     * noise as often as not; the slowest is not over the mean by the ratio. */
    int owner[41];
    for (uint32_t b = 0; b < DATA.n_blocks; b++)
        owner[b] = (int)b % 4;
    const double noise[4] = {1.0, 1.0, 1.0, 0.6};
    imbalance_state st = {0};
    for (int round = 0; round < 5; round++) {
        four t;
        four_init(&t, owner, noise);
        rebalance_verdict v = placement_rebalance_rule(&DATA, &t.r, st);
        ck_assert(!v.move);
        st = v.next;
    }
}
END_TEST

START_TEST(no_rebalance_when_the_gain_does_not_pay_before_the_end)
{
    two t;
    two_init(&t, 10, 20, 3);
    imbalance_state st = {0};
    for (int round = 0; round < 5; round++) {
        rebalance_verdict v = placement_rebalance_rule(&DATA, &t.r, st);
        ck_assert(!v.move);
        st = v.next;
    }
}
END_TEST

START_TEST(a_rebalance_moves_blocks_to_the_faster_node_and_keeps_each_block_once)
{
    two t;
    two_init(&t, 10, 20, 1000);
    int owner[41];
    for (uint32_t b = 0; b <= DATA.n_blocks; b++)
        owner[b] = b < 20 ? 0 : 1;
    const bool held[] = {false, false};
    int moved = placement_rebalance(&DATA, t.members, 2, t.speed, held, owner);
    ck_assert_int_gt(moved, 0);
    assert_each_block_once(owner, t.members, 2);
    ck_assert_int_eq(owned_by(owner, DATA.n_blocks, 0), 20 + moved);
    /* Each ends within a block of its speed-proportional share. */
    double rows[2], sum = t.speed[0] + t.speed[1];
    placement_member_rows(&DATA, owner, t.members, 2, rows);
    for (int k = 0; k < 2; k++)
        ck_assert_double_le(fabs(rows[k] - (double)DATA.rows * t.speed[k] / sum), 1000);
}
END_TEST

START_TEST(a_balanced_plan_neither_moves_nor_ping_pongs)
{
    two t;
    two_init(&t, 10, 20, 1000);
    int owner[41];
    for (uint32_t b = 0; b <= DATA.n_blocks; b++)
        owner[b] = b < 20 ? 0 : 1;
    const bool held[] = {false, false};
    placement_rebalance(&DATA, t.members, 2, t.speed, held, owner);
    /* The same speeds again: nothing to move. */
    int again[41];
    memcpy(again, owner, sizeof(owner));
    ck_assert_int_eq(placement_rebalance(&DATA, t.members, 2, t.speed, held, again), 0);
    ck_assert_mem_eq(again, owner, sizeof(owner));
    /* Measured under the new plan, compute times are near equal: no move. */
    double rows[2];
    placement_member_rows(&DATA, owner, t.members, 2, rows);
    double c[2] = {rows[0] / t.speed[0], rows[1] / t.speed[1]};
    placement_round r = t.r;
    r.compute_ms = c;
    r.rows = rows;
    imbalance_state st = {0};
    for (int round = 0; round < 5; round++) {
        rebalance_verdict v = placement_rebalance_rule(&DATA, &r, st);
        ck_assert(!v.move);
        st = v.next;
    }
}
END_TEST

START_TEST(a_held_node_gains_no_blocks)
{
    two t;
    two_init(&t, 10, 20, 1000);
    int owner[41];
    for (uint32_t b = 0; b <= DATA.n_blocks; b++)
        owner[b] = b < 20 ? 0 : 1;
    const bool held[] = {true, false};
    ck_assert_int_eq(placement_rebalance(&DATA, t.members, 2, t.speed, held, owner), 0);
    ck_assert_int_eq(owned_by(owner, DATA.n_blocks, 0), 20);
}
END_TEST

START_TEST(a_node_grows_by_at_most_the_growth_cap_per_rebalance)
{
    static const int members[] = {0, 1};
    int owner[41];
    for (uint32_t b = 0; b <= DATA.n_blocks; b++)
        owner[b] = b < 2 ? 0 : 1;
    const double speed[] = {1, 1}; /* would want half the rows each */
    const bool held[] = {false, false};
    placement_rebalance(&DATA, members, 2, speed, held, owner);
    double cap = 2000 + fmax(PLACEMENT_GROWTH_SHARE * 2000,
                             PLACEMENT_GROWTH_BLOCKS * (double)DATA.block_rows);
    double rows[2];
    placement_member_rows(&DATA, owner, members, 2, rows);
    ck_assert_double_gt(rows[0], 2000);
    /* Blocks are whole: the cap holds to within half a block. */
    ck_assert_double_le(rows[0], cap + (double)DATA.block_rows / 2);
}
END_TEST

/* ---- The straggler signal ---- */

START_TEST(the_window_mean_sees_a_periodic_stall_the_median_hides)
{
    /* A node stalled one heartbeat in five: ~1 ms a step, 41 ms in the stall. */
    double ring[8] = {1, 1, 41, 1, 1, 1, 1, 41};
    ck_assert_double_eq_tol(placement_recent_compute_ms(ring, 8, 8, 8), 1.0, 1e-12);
    ck_assert_double_eq_tol(placement_window_mean(ring, 8, 8, 8), 11.0, 1e-12);
    ck_assert(placement_is_over(placement_window_mean(ring, 8, 8, 8), 1.0, 1.5));
    ck_assert_double_eq(placement_window_mean(ring, 8, 8, 1), 0.0); /* too few in the epoch */
}
END_TEST

START_TEST(a_stall_in_the_collective_counts_as_load_wherever_it_lands)
{
    /* n4's compute is normal; its stalls land in the all-reduce, so only
     * its busy time (step less waiting on others) shows them. */
    double compute[4] = {1.0, 1.1, 1.0, 1.0}, busy[4] = {1.3, 1.2, 1.3, 9.0}, load[4];
    placement_load_ms(compute, busy, 4, load);
    ck_assert_double_eq_tol(load[3], 9.0, 1e-12);
    straggler_state st = {0};
    for (int round = 0; round < PLACEMENT_STRAGGLER_ROUNDS; round++) {
        straggler_verdict v = placement_straggler_rule(st, load[3], placement_median(load, 4), 1.5);
        st = v.next;
    }
    ck_assert(st.slow);
    /* Without busy times from every member, compute times stand. */
    double partial[4] = {1.3, 0, 1.3, 9.0};
    placement_load_ms(compute, partial, 4, load);
    ck_assert_double_eq_tol(load[3], 1.0, 1e-12);
}
END_TEST

START_TEST(a_stalled_node_loses_blocks_by_its_busy_time)
{
    int members[4] = {0, 1, 2, 3}, owner[40];
    double cap[4] = {1, 1, 1, 1};
    placement_assign_by_weight(&DATA, members, 4, cap, owner);
    double compute[4] = {1, 1, 1, 1}, busy[4] = {1.2, 1.2, 1.2, 12}, load[4], rows[4], speed[4];
    placement_load_ms(compute, busy, 4, load);
    placement_member_rows(&DATA, owner, members, 4, rows);
    for (int k = 0; k < 4; k++)
        speed[k] = rows[k] / load[k];
    placement_round r = {.n = 4,
                         .members = members,
                         .compute_ms = load,
                         .speed = speed,
                         .rows = rows,
                         .steps_left = 1000,
                         .has_last_step = true,
                         .last_step_ms = 12};
    imbalance_state st = {0, -1};
    rebalance_verdict v = {0};
    for (int round = 0; round < PLACEMENT_IMBALANCE_ROUNDS; round++) {
        v = placement_rebalance_rule(&DATA, &r, st);
        st = v.next;
    }
    ck_assert(v.move);
    ck_assert_int_eq(v.slowest, 3);
    bool held[4] = {false, false, false, true};
    int before = owned_by(owner, DATA.n_blocks, 3);
    ck_assert_int_gt(placement_rebalance(&DATA, members, 4, speed, held, owner), 0);
    ck_assert_int_lt(owned_by(owner, DATA.n_blocks, 3), before);
    assert_each_block_once(owner, members, 4);
}
END_TEST

/* wait[i * 4 + j]: member i blocked on member j, ms per step. */
static void link_waits(double *wait, int slow)
{
    for (int i = 0; i < 16; i++)
        wait[i] = 0.2;
    for (int i = 0; i < 4; i++)
        if (i != slow) wait[i * 4 + slow] = i == 0 ? 9.0 : 4.0;
    for (int i = 0; i < 4; i++)
        wait[i * 4 + i] = 0;
}

START_TEST(waiting_on_one_node_whose_busy_time_is_normal_is_a_slow_link)
{
    double wait[16], load[4] = {1.1, 1.0, 1.2, 1.0}, step[4] = {10, 10, 10, 10};
    link_waits(wait, 2);
    slow_link_state st = {0, -1, -1};
    slow_link_verdict v = {0};
    for (int round = 0; round < PLACEMENT_LINK_ROUNDS; round++) {
        v = placement_slow_link_rule(wait, load, step, 4, 1.5, st);
        ck_assert(v.found);
        ck_assert_int_eq(v.link, round + 1 == PLACEMENT_LINK_ROUNDS);
        st = v.next;
    }
    ck_assert_int_eq(v.next.a, 0); /* waited most on ... */
    ck_assert_int_eq(v.next.b, 2); /* ... the node behind the slow link */
    v = placement_slow_link_rule(wait, load, step, 4, 1.5, st);
    ck_assert(v.found && !v.link); /* named once, not every round */
}
END_TEST

START_TEST(steps_that_nobodys_work_explains_are_link_bound)
{
    double step[4] = {10, 10, 10, 10}, idle[4] = {1.1, 1.0, 1.2, 3.0}, busy[4] = {1, 1, 1, 4};
    ck_assert(placement_link_bound(idle, step, 4));
    ck_assert(!placement_link_bound(busy, step, 4)); /* n4's work is 40% of the step */
    double unknown[4] = {10, 0, 10, 10};
    ck_assert(!placement_link_bound(idle, unknown, 4));
}
END_TEST

START_TEST(waiting_on_a_busy_node_is_a_straggler_not_a_link)
{
    double wait[16], load[4] = {1.1, 1.0, 9.0, 1.0}, step[4] = {10, 10, 10, 10};
    link_waits(wait, 2);
    slow_link_verdict v = placement_slow_link_rule(wait, load, step, 4, 1.5, (slow_link_state){0});
    ck_assert(!v.found && !v.link);
}
END_TEST

START_TEST(spread_or_little_waiting_is_no_slow_link)
{
    double wait[16], load[4] = {1.0, 1.0, 1.0, 1.0}, step[4] = {10, 10, 10, 10};
    for (int i = 0; i < 16; i++)
        wait[i] = i % 5 == 0 ? 0 : 3.0; /* everyone waits on everyone alike */
    slow_link_verdict v = placement_slow_link_rule(wait, load, step, 4, 1.5, (slow_link_state){0});
    ck_assert(!v.found);
    link_waits(wait, 1);
    double fast[4] = {2.0, 2.0, 2.0, 2.0}; /* steps barely longer than the work */
    v = placement_slow_link_rule(wait, load, fast, 4, 1.5, (slow_link_state){0});
    ck_assert(!v.found);
}
END_TEST

int main(void)
{

    Suite *s = suite_create("placement");
    TCase *a = tcase_create("assignment");
    tcase_add_test(a, the_first_plan_gives_every_block_exactly_one_member);
    tcase_add_test(a, the_first_plan_gives_rows_in_proportion_to_capacity);
    tcase_add_test(a, the_first_plan_is_deterministic_and_contiguous);
    tcase_add_test(a, an_unmeasured_member_is_expected_at_its_capacity_times_the_measured_mean);
    tcase_add_test(a, a_failed_nodes_blocks_go_to_survivors_none_lost_or_doubled);
    tcase_add_test(a, a_failed_nodes_blocks_go_mostly_to_the_fastest_survivor);
    tcase_add_test(a, the_first_plan_by_orphans_from_nobody_covers_every_block);
    tcase_add_test(a, the_make_allowance_covers_the_slowest_members_new_blocks_only);
    suite_add_tcase(s, a);
    TCase *st = tcase_create("stragglers");
    tcase_add_test(st, compute_time_needs_the_minimum_samples_and_is_the_median_of_the_recent_ones);
    tcase_add_test(st, a_node_above_the_threshold_is_flagged_after_the_minimum_rounds);
    tcase_add_test(st, a_node_at_or_below_the_threshold_is_not_flagged);
    tcase_add_test(st, slow_rounds_that_are_not_consecutive_flag_nothing);
    tcase_add_test(st, a_flagged_node_is_cleared_only_below_the_clear_margin);
    suite_add_tcase(s, st);
    TCase *r = tcase_create("rebalance");
    tcase_add_test(r, no_rebalance_within_the_imbalance_margin);
    tcase_add_test(r, a_persistent_imbalance_rebalances_after_the_required_rounds);
    tcase_add_test(r, a_different_slowest_node_restarts_the_count);
    tcase_add_test(r, no_rebalance_when_the_gain_does_not_pay_before_the_end);
    tcase_add_test(r, a_recovered_node_gets_blocks_back_though_no_other_is_far_over_the_mean);
    tcase_add_test(r, a_fast_node_holding_an_even_share_moves_nothing);
    tcase_add_test(r, a_rebalance_moves_blocks_to_the_faster_node_and_keeps_each_block_once);
    tcase_add_test(r, a_balanced_plan_neither_moves_nor_ping_pongs);
    tcase_add_test(r, a_held_node_gains_no_blocks);
    tcase_add_test(r, a_node_grows_by_at_most_the_growth_cap_per_rebalance);
    TCase *w = tcase_create("straggler signal");
    tcase_add_test(w, the_window_mean_sees_a_periodic_stall_the_median_hides);
    tcase_add_test(w, a_stall_in_the_collective_counts_as_load_wherever_it_lands);
    tcase_add_test(w, a_stalled_node_loses_blocks_by_its_busy_time);
    tcase_add_test(w, waiting_on_one_node_whose_busy_time_is_normal_is_a_slow_link);
    tcase_add_test(w, steps_that_nobodys_work_explains_are_link_bound);
    tcase_add_test(w, waiting_on_a_busy_node_is_a_straggler_not_a_link);
    tcase_add_test(w, spread_or_little_waiting_is_no_slow_link);
    suite_add_tcase(s, r);
    suite_add_tcase(s, w);
    return rlt_run_suite(s);
}
