/* placement.c - block assignment, stragglers and rebalance as pure functions (placement.h). */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "placement.h"
#include "ringleader/stats.h"

/* members[k] == node, or -1. */
static int placement_member_of(const int *members, int n, int node)
{
    for (int k = 0; k < n; k++)
        if (members[k] == node) return k;
    return -1;
}

int64_t placement_block_rows(const placement_data *d, uint32_t b)
{
    int64_t left = d->rows - (int64_t)b * d->block_rows;
    return left < d->block_rows ? left : d->block_rows;
}

double placement_make_ms(const placement_data *d, double rows)
{
    double per_value_ns =
        d->synthetic ? PLACEMENT_SYNTHETIC_NS_PER_VALUE : PLACEMENT_CSV_NS_PER_VALUE;
    return rows * (double)d->features * per_value_ns * 1e-6;
}

void placement_member_rows(const placement_data *d, const int *owner, const int *members, int n,
                           double *rows)
{
    for (int k = 0; k < n; k++) {
        rows[k] = 0;
        for (uint32_t b = 0; b < d->n_blocks; b++)
            if (owner[b] == members[k]) rows[k] += (double)placement_block_rows(d, b);
    }
}

double placement_smooth_speed(double prev, double reading)
{
    if (prev <= 0) return reading;
    return (1 - PLACEMENT_SPEED_SMOOTHING) * prev + PLACEMENT_SPEED_SMOOTHING * reading;
}

double placement_recent_compute_ms(const double *ring, size_t ring_len, uint64_t total,
                                   uint64_t in_epoch)
{
    if (in_epoch < PLACEMENT_MIN_SAMPLES) return 0;
    size_t m = in_epoch < PLACEMENT_RECENT_SAMPLES ? (size_t)in_epoch : PLACEMENT_RECENT_SAMPLES;
    double last[PLACEMENT_RECENT_SAMPLES];
    for (size_t q = 0; q < m; q++)
        last[q] = ring[(total - 1 - q) % ring_len];
    qsort(last, m, sizeof(double), rl_cmp_double);
    return last[m / 2];
}

double placement_median(const double *v, int n)
{
    assert(n >= 1 && n <= PLACEMENT_MAX_MEMBERS);
    double sorted[PLACEMENT_MAX_MEMBERS];
    memcpy(sorted, v, (size_t)n * sizeof(double));
    rl_sort_doubles(sorted, (size_t)n);
    return rl_median_sorted(sorted, (size_t)n);
}

/* ---- Assignment ---------------------------------------------------------- */

/* Runs end at the block boundary nearest the cumulative target in rows (the
 * last block may be short, so counting blocks instead would give one member
 * a whole extra block's worth). */
void placement_assign_by_weight(const placement_data *d, const int *members, int n,
                                const double *weight, int *owner)
{
    double total = 0;
    for (int k = 0; k < n; k++)
        total += weight[k];
    uint32_t given = 0;
    for (int k = 0; k < n; k++) {
        double upto = 0;
        for (int q = 0; q <= k; q++)
            upto += weight[q];
        double target = upto / total * (double)d->rows / (double)d->block_rows;
        uint32_t end = k == n - 1 ? d->n_blocks : (uint32_t)llround(target);
        if (end > d->n_blocks) end = d->n_blocks;
        for (uint32_t b = given; b < end; b++)
            owner[b] = members[k];
        given = end > given ? end : given;
    }
}

void placement_expected_speeds(const double *measured, const double *capacity, int n, double *speed)
{
    double sum = 0;
    int nm = 0;
    for (int k = 0; k < n; k++)
        if (measured[k] > 0) {
            sum += measured[k] / capacity[k];
            nm++;
        }
    for (int k = 0; k < n; k++)
        speed[k] = measured[k] > 0 ? measured[k] : capacity[k] * (nm ? sum / nm : 1.0);
}

void placement_assign_orphans(const placement_data *d, const int *members, int n,
                              const double *speed, int *owner)
{
    assert(n >= 1 && n <= PLACEMENT_MAX_MEMBERS);
    double load[PLACEMENT_MAX_MEMBERS] = {0};
    for (uint32_t b = 0; b < d->n_blocks; b++) {
        int k = owner[b] >= 0 ? placement_member_of(members, n, owner[b]) : -1;
        if (k >= 0) load[k] += (double)placement_block_rows(d, b);
    }
    for (uint32_t b = 0; b < d->n_blocks; b++) {
        if (owner[b] >= 0 && placement_member_of(members, n, owner[b]) >= 0) continue;
        double br = (double)placement_block_rows(d, b);
        int best = -1;
        double best_t = 0;
        for (int k = 0; k < n; k++) {
            double t = (load[k] + br) / speed[k];
            if (best < 0 || t < best_t) {
                best = k;
                best_t = t;
            }
        }
        owner[b] = members[best];
        load[best] += br;
    }
}

double placement_make_allowance_ms(const placement_data *d, const int *before, const int *owner,
                                   const int *members, int n)
{
    double most = 0;
    for (int k = 0; k < n; k++) {
        double in_rows = 0;
        for (uint32_t b = 0; b < d->n_blocks; b++)
            if (owner[b] == members[k] && before[b] != members[k])
                in_rows += (double)placement_block_rows(d, b);
        double ms = placement_make_ms(d, in_rows);
        most = ms > most ? ms : most;
    }
    return PLACEMENT_MAKE_ALLOWANCE * most;
}

/* ---- Stragglers ---------------------------------------------------------- */

bool placement_is_over(double compute_ms, double median, double factor)
{
    return compute_ms > factor * median;
}

straggler_verdict placement_straggler_rule(straggler_state prev, double compute_ms, double median,
                                           double factor)
{
    straggler_verdict v = {.next = prev};
    v.over = placement_is_over(compute_ms, median, factor);
    v.next.streak = v.over ? prev.streak + 1 : 0;
    if (v.next.streak >= PLACEMENT_STRAGGLER_ROUNDS && !prev.slow) {
        v.next.slow = true;
        v.flagged = true;
    } else if (!v.over && prev.slow && compute_ms < PLACEMENT_STRAGGLER_CLEAR * median) {
        v.next.slow = false;
    }
    return v;
}

/* ---- The straggler signal ------------------------------------------------ */

double placement_window_mean(const double *ring, size_t ring_len, uint64_t total, uint64_t in_epoch)
{
    if (in_epoch < PLACEMENT_MIN_SAMPLES) return 0;
    size_t m = in_epoch < PLACEMENT_WAIT_WINDOW ? (size_t)in_epoch : PLACEMENT_WAIT_WINDOW;
    double sum = 0;
    for (size_t q = 0; q < m; q++)
        sum += ring[(total - 1 - q) % ring_len];
    return sum / (double)m;
}

void placement_load_ms(const double *compute_ms, const double *busy_ms, int n, double *load_ms)
{
    bool all = true;
    for (int k = 0; k < n; k++)
        all = all && busy_ms[k] > 0;
    for (int k = 0; k < n; k++)
        load_ms[k] = all ? fmax(busy_ms[k], compute_ms[k]) : compute_ms[k];
}

/* Whether the busiest member is a straggler: over factor x the median. */
static bool placement_has_straggler(const double *load_ms, int n, double factor)
{
    double median = placement_median(load_ms, n), most = 0;
    for (int k = 0; k < n; k++)
        most = fmax(most, load_ms[k]);
    return placement_is_over(most, median, factor);
}

bool placement_link_bound(const double *load_ms, const double *step_ms, int n)
{
    double mean_step = 0, most_load = 0;
    for (int k = 0; k < n; k++) {
        if (step_ms[k] <= 0 || load_ms[k] <= 0) return false;
        mean_step += step_ms[k] / n;
        most_load = fmax(most_load, load_ms[k]);
    }
    return n >= 2 && mean_step >= PLACEMENT_LINK_WAIT_RATIO * most_load;
}

slow_link_verdict placement_slow_link_rule(const double *wait, const double *load_ms,
                                           const double *step_ms, int n, double factor,
                                           slow_link_state prev)
{
    assert(n >= 1 && n <= PLACEMENT_MAX_MEMBERS);
    slow_link_verdict v = {.next = {0, -1, -1}};
    int b = -1, a = -1;
    double top = 0, second = 0;
    for (int j = 0; j < n; j++) {
        double on_j = 0;
        for (int i = 0; i < n; i++)
            if (i != j) on_j += wait[i * n + j];
        if (on_j > top) {
            second = top;
            top = on_j;
            b = j;
        } else if (on_j > second) {
            second = on_j;
        }
    }
    for (int i = 0; b >= 0 && i < n; i++)
        if (i != b && (a < 0 || wait[i * n + b] > wait[a * n + b])) a = i;
    v.found = n >= 2 && b >= 0 && a >= 0 && !placement_has_straggler(load_ms, n, factor) &&
              placement_link_bound(load_ms, step_ms, n) &&
              top >= PLACEMENT_LINK_CONCENTRATION * second;
    if (!v.found) return v;
    bool same = prev.a == a && prev.b == b;
    v.next = (slow_link_state){same ? prev.streak + 1 : 1, a, b};
    v.link = v.next.streak == PLACEMENT_LINK_ROUNDS;
    return v;
}

/* ---- Rebalance ----------------------------------------------------------- */

rebalance_verdict placement_rebalance_rule(const placement_data *d, const placement_round *r,
                                           imbalance_state prev)
{
    rebalance_verdict v = {.next = prev, .slowest = -1};
    int n = r->n, fastest = -1;
    double mean = 0, sum_speed = 0, mean_rows = 0;
    for (int k = 0; k < n; k++) {
        if (r->compute_ms[k] > v.max_ms) {
            v.max_ms = r->compute_ms[k];
            v.slowest = k;
        }
        if (fastest < 0 || r->compute_ms[k] < r->compute_ms[fastest]) fastest = k;
        mean += r->compute_ms[k] / n;
        mean_rows += r->rows[k] / n;
        sum_speed += r->speed[k];
    }
    if (sum_speed <= 0) return v;
    double total = (double)d->rows;
    v.ideal_ms = total / sum_speed;
    double gain = v.max_ms - v.ideal_ms;
    double step_ms = r->has_last_step ? r->last_step_ms : v.max_ms;
    /* The move's cost: steps redone, re-forming the ring, and making the
     * moved blocks where they land (the surplus rows above target). */
    double surplus = 0;
    for (int k = 0; k < n; k++) {
        double t = total * r->speed[k] / sum_speed;
        if (r->rows[k] > t) surplus += r->rows[k] - t;
    }
    double cost =
        PLACEMENT_MOVE_STEPS * step_ms + PLACEMENT_REFORM_MS + placement_make_ms(d, surplus);
    /* Imbalanced: one member well over the mean, or one well under it that
     * also holds well under the mean rows (a straggler that recovered after
     * losing blocks leaves the others only a little over the mean each: with
     * four members, a third of its share each). Among members holding
     * about equal rows only the first counts, as noise makes one fastest. */
    bool over = v.max_ms > PLACEMENT_IMBALANCE_RATIO * mean;
    bool under = fastest >= 0 && PLACEMENT_IMBALANCE_RATIO * r->compute_ms[fastest] < mean &&
                 PLACEMENT_IMBALANCE_RATIO * r->rows[fastest] < mean_rows;
    bool worth = (over || under) && gain > PLACEMENT_MIN_GAIN_SHARE * v.max_ms &&
                 gain > PLACEMENT_MIN_GAIN_SHARE * step_ms && gain * (double)r->steps_left > cost;
    /* The round's culprit, the same in consecutive rounds: the slowest when
     * over, else the idle one (among equally loaded others the slowest is
     * whichever noise picks). */
    int culprit = over ? v.slowest : fastest;
    int blamed = culprit >= 0 ? r->members[culprit] : -1;
    if (worth && (prev.streak == 0 || prev.node == blamed)) {
        v.next.streak = prev.streak + 1;
        v.next.node = blamed;
    } else {
        v.next.streak = 0;
    }
    if (v.next.streak >= PLACEMENT_IMBALANCE_ROUNDS) {
        v.move = true;
        v.next.streak = 0;
    }
    return v;
}

int placement_rebalance(const placement_data *d, const int *members, int n, const double *speed,
                        const bool *held, int *owner)
{
    assert(n >= 1 && n <= PLACEMENT_MAX_MEMBERS);
    double rows[PLACEMENT_MAX_MEMBERS], target[PLACEMENT_MAX_MEMBERS];
    double total_rows = (double)d->rows, sum_speed = 0;
    int moved = 0;
    for (int k = 0; k < n; k++)
        sum_speed += speed[k];
    for (int k = 0; k < n; k++)
        target[k] = total_rows * speed[k] / sum_speed;
    placement_member_rows(d, owner, members, n, rows);
    for (int k = 0; k < n; k++) {
        if (held[k] && target[k] > rows[k]) target[k] = rows[k];
        double cap = rows[k] + fmax(PLACEMENT_GROWTH_SHARE * rows[k],
                                    PLACEMENT_GROWTH_BLOCKS * (double)d->block_rows);
        if (target[k] > cap) target[k] = cap;
    }
    for (;;) {
        int give = -1, take = -1;
        for (int k = 0; k < n; k++) {
            if (give < 0 || rows[k] - target[k] > rows[give] - target[give]) give = k;
            if (take < 0 || rows[k] - target[k] < rows[take] - target[take]) take = k;
        }
        uint32_t pick = UINT32_MAX;
        for (uint32_t b = d->n_blocks; b-- > 0;)
            if (owner[b] == members[give]) {
                pick = b;
                break;
            }
        if (pick == UINT32_MAX) break;
        double br = (double)placement_block_rows(d, pick);
        /* Move only if it brings both closer to their targets. */
        if (rows[give] - target[give] < br / 2 || target[take] - rows[take] < br / 2) break;
        owner[pick] = members[take];
        rows[give] -= br;
        rows[take] += br;
        if (++moved > (int)d->n_blocks) break;
    }
    return moved;
}
