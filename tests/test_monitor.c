/*
 * test_monitor.c - the monitor's pure parts, compiled in from coordinator/:
 * the Prometheus exposition of a snapshot (64 simulated nodes), the status
 * document (parsed back as JSON), the histograms and the bearer check. No
 * processes or sockets; it/monitor.sh serves a real job.
 *
 * The render timing case prints the p99 of rendering /metrics for 64 nodes
 * (docs/performance.md quotes it); it checks the output, not the time.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "metrics.h"
#include "monitor.h"
#include "registry.h"
#include "snapshot.h"
#include "job.h"
#include "ringleader/clock.h"
#include "ringleader/err.h"
#include "ringleader/stats.h"
#include "testutil.h"

#define SIM_NODES 64

/* A running job of SIM_NODES nodes: n1 failed, the others alive with
 * figures; 500 steps in the histograms; 12 RPC methods. */
static void sim_snapshot(job_snapshot *s, snap_step_hists *h, metrics_rpc *rpc, size_t *n_rpc)
{
    memset(s, 0, sizeof(*s));
    memset(h, 0, sizeof(*h));
    snprintf(s->name, sizeof(s->name), "sim");
    s->status = JOB_RUNNING;
    s->steps_total = 1000;
    s->steps_done = 500;
    s->epoch = 3;
    s->loss = 0.25;
    s->step_ms = 12.5;
    s->n_blocks = 4096;
    s->n_nodes = SIM_NODES;
    s->nodes = calloc(SIM_NODES, sizeof(snap_node));
    for (int i = 0; i < SIM_NODES; i++) {
        snap_node *n = &s->nodes[i];
        snprintf(n->id, sizeof(n->id), "n%d", i + 1);
        snprintf(n->listen, sizeof(n->listen), "tcp://10.0.0.%d:7701", i + 1);
        n->state = i == 0 ? NODE_FAILED : NODE_JOINED;
        n->blocks = i == 0 ? 0 : 64 + (i % 2);
        n->rows_per_s = i == 0 ? 0 : 1e6 + i;
        n->compute_ms = i == 0 ? 0 : 10 + i * 0.01;
        n->allreduce_ms = i == 0 ? 0 : 2;
        n->cpu_load = 0.9;
        n->rss_bytes = 50u << 20;
        n->heartbeats = i == 0 ? 0 : 100;
    }
    for (int k = 0; k < 500; k++) {
        snap_hist_observe(&h->step, 0.0125 + k * 1e-5);
        snap_hist_observe(&h->allreduce, 0.002);
    }
    h->upto = 500;
    s->n_kinds = 3;
    snprintf(s->kind[0], sizeof(s->kind[0]), "join");
    snprintf(s->kind[1], sizeof(s->kind[1]), "failed");
    snprintf(s->kind[2], sizeof(s->kind[2]), "reassign");
    s->kind_count[0] = SIM_NODES;
    s->kind_count[1] = 1;
    s->kind_count[2] = 3;
    s->n_events = 2;
    s->events = calloc(2, sizeof(snap_event));
    s->events[0] = (snap_event){.t_ms = 10, .step = 0};
    snprintf(s->events[0].kind, sizeof(s->events[0].kind), "reassign");
    snprintf(s->events[0].detail, sizeof(s->events[0].detail),
             "epoch 1 (start), from step 0, blocks n1:3 n2:4");
    s->events[1] = (snap_event){.t_ms = 20, .step = 7};
    snprintf(s->events[1].kind, sizeof(s->events[1].kind), "failed");
    snprintf(s->events[1].node, sizeof(s->events[1].node), "n1");
    snprintf(s->events[1].detail, sizeof(s->events[1].detail), "a \"quoted\" reason\n");
    s->n_steps = 2;
    s->steps = calloc(2, sizeof(snap_step));
    s->steps[0] = (snap_step){.step = 0, .t_ms = 1, .loss = 1.0, .ms = 12, .allreduce_ms = 2};
    s->steps[1] =
        (snap_step){.step = 499, .t_ms = 600, .loss = 0.25, .ms = 12.5, .allreduce_ms = 2};
    *n_rpc = 12;
    for (size_t k = 0; k < *n_rpc; k++) {
        static char names[12][24];
        snprintf(names[k], sizeof(names[k]), "m%zu", k);
        rpc[k].method = names[k];
        rpc[k].m = (rl_rpc_metrics){.calls = 100 * k,
                                    .errors = k,
                                    .lat_p50_us = 150,
                                    .lat_p99_us = 900,
                                    .lat_sum_us = 15000.0 * (double)k,
                                    .lat_count = 100 * k};
    }
}

static char *render(const job_snapshot *s, const snap_step_hists *h, const metrics_rpc *rpc,
                    size_t n_rpc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    metrics_render(s, h, rpc, n_rpc, f);
    fclose(f);
    return text;
}

static int count_lines_with(const char *text, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, len) == 0) n++;
    return n;
}

START_TEST(every_family_has_one_help_and_one_type_line)
{
    job_snapshot s;
    snap_step_hists h;
    metrics_rpc rpc[12];
    size_t n_rpc;
    sim_snapshot(&s, &h, rpc, &n_rpc);
    char *text = render(&s, &h, rpc, n_rpc);
    static const char *const names[] = {
#define NAME_ROW(name, type, help) #name,
        METRICS_LIST(NAME_ROW)
#undef NAME_ROW
    };
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        char help[128], type[128];
        snprintf(help, sizeof(help), "# HELP %s ", names[k]);
        snprintf(type, sizeof(type), "# TYPE %s ", names[k]);
        ck_assert_int_eq(count_lines_with(text, help), 1);
        ck_assert_int_eq(count_lines_with(text, type), 1);
    }
    free(text);
    snapshot_fini(&s);
}
END_TEST

START_TEST(every_simulated_node_has_its_gauges)
{
    job_snapshot s;
    snap_step_hists h;
    metrics_rpc rpc[12];
    size_t n_rpc;
    sim_snapshot(&s, &h, rpc, &n_rpc);
    char *text = render(&s, &h, rpc, n_rpc);
    ck_assert_int_eq(count_lines_with(text, "ringleader_node_blocks{"), SIM_NODES);
    ck_assert_int_eq(count_lines_with(text, "ringleader_node_state{"), SIM_NODES * 4);
    /* n1 failed and never reported: its state says so, no rate is made up */
    ck_assert_ptr_nonnull(strstr(text, "ringleader_node_state{node=\"n1\",state=\"failed\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "ringleader_node_state{node=\"n1\",state=\"alive\"} 0\n"));
    ck_assert_ptr_null(strstr(text, "ringleader_node_rows_per_second{node=\"n1\"}"));
    ck_assert_int_eq(count_lines_with(text, "ringleader_node_rows_per_second{"), SIM_NODES - 1);
    ck_assert_ptr_nonnull(strstr(text, "ringleader_node_blocks{node=\"n63\"} 64\n"));
    ck_assert_ptr_nonnull(strstr(text, "ringleader_node_compute_seconds{node=\"n2\"} 0.0100"));
    ck_assert_ptr_nonnull(strstr(text, "ringleader_job_loss 0.25\n"));
    ck_assert_ptr_nonnull(strstr(text, "ringleader_job_state{state=\"running\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "ringleader_events_total{kind=\"failed\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "ringleader_rpc_calls_total{method=\"m3\"} 300\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "ringleader_rpc_latency_seconds{method=\"m3\",quantile=\"0.99\"} 0.0009"));
    ck_assert_ptr_nonnull(
        strstr(text, "ringleader_rpc_latency_seconds_count{method=\"m3\"} 300\n"));
    free(text);
    snapshot_fini(&s);
}
END_TEST

START_TEST(histograms_are_cumulative_and_end_at_the_count)
{
    snap_hist h = {0};
    snap_hist_observe(&h, 0.0004);
    snap_hist_observe(&h, 0.003);
    snap_hist_observe(&h, 100);
    snap_hist_observe(&h, NAN);                      /* not an observation */
    ck_assert_uint_eq(h.bucket[0], 1);               /* <= 0.0005 */
    ck_assert_uint_eq(h.bucket[3], 2);               /* <= 0.005 */
    ck_assert_uint_eq(h.bucket[SNAP_HIST_N - 1], 2); /* <= 10 */
    ck_assert_uint_eq(h.bucket[SNAP_HIST_N], 3);
    ck_assert(fabs(h.sum - 100.0034) < 1e-9);
    for (int k = 1; k <= SNAP_HIST_N; k++)
        ck_assert_uint_ge(h.bucket[k], h.bucket[k - 1]);
    job_snapshot s = {.loss = NAN};
    snap_step_hists hs = {.step = h};
    char *text = render(&s, &hs, NULL, 0);
    ck_assert_ptr_nonnull(
        strstr(text, "ringleader_step_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "ringleader_step_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "ringleader_step_duration_seconds_count 3\n"));
    ck_assert_ptr_null(strstr(text, "ringleader_job_loss ")); /* no step yet: no loss */
    free(text);
}
END_TEST

START_TEST(rendering_64_nodes_p99_is_printed)
{
    job_snapshot s;
    snap_step_hists h;
    metrics_rpc rpc[12];
    size_t n_rpc;
    sim_snapshot(&s, &h, rpc, &n_rpc);
    enum { RUNS = 1000 };
    double *us = calloc(RUNS, sizeof(double));
    size_t bytes = 0;
    for (int r = 0; r < RUNS; r++) {
        uint64_t t0 = rl_clock_ns();
        char *text = render(&s, &h, rpc, n_rpc);
        us[r] = (double)(rl_clock_ns() - t0) / 1e3;
        bytes = strlen(text);
        free(text);
    }
    printf("metrics_render 64 nodes: %zu bytes, p50 %.1f us, p99 %.1f us over %d renders\n", bytes,
           rl_percentile(us, RUNS, 0.50), rl_percentile(us, RUNS, 0.99), RUNS);
    ck_assert_uint_gt(bytes, 10000);
    free(us);
    snapshot_fini(&s);
}
END_TEST

/* A running job of SIM_NODES nodes, as job.c holds it: 10000 steps done
 * (with per-node compute), 4096 blocks, 300 events. */
static void sim_job(job *j, rl_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    snprintf(spec->name, sizeof(spec->name), "sim");
    spec->steps = 20000;
    memset(j, 0, sizeof(*j));
    j->spec = spec;
    pthread_mutex_init(&j->reg.mtx, NULL);
    j->reg.n = SIM_NODES;
    j->reg.nodes = calloc(SIM_NODES, sizeof(node_entry));
    for (int i = 0; i < SIM_NODES; i++) {
        node_entry *e = &j->reg.nodes[i];
        snprintf(e->id, sizeof(e->id), "n%d", i + 1);
        e->state = NODE_JOINED;
        e->rows_per_s = 1e6;
        e->compute_ms = 10;
        e->allreduce_ms = 2;
        e->heartbeats = 100;
        e->rss_bytes = 1u << 26;
    }
    j->status = JOB_RUNNING;
    j->t0_ms = rl_clock_ms();
    j->steps_cap = (uint64_t)spec->steps;
    j->steps = calloc(j->steps_cap + 1, sizeof(step_rec));
    j->steps_done = 10000;
    for (uint64_t k = 0; k < j->steps_done; k++)
        j->steps[k] = (step_rec){.seen = true,
                                 .t_ms = (double)k,
                                 .loss = 1.0 / (double)(k + 1),
                                 .ms = 12,
                                 .allreduce_ms = 2};
    j->n_blocks = 4096;
    j->owner = calloc(j->n_blocks, sizeof(int));
    for (uint32_t b = 0; b < j->n_blocks; b++)
        j->owner[b] = (int)(b % SIM_NODES);
    j->cap_events = j->n_events = 300;
    j->events = calloc(j->cap_events, sizeof(job_event));
    for (size_t k = 0; k < j->n_events; k++) {
        snprintf(j->events[k].kind, sizeof(j->events[k].kind), "%s",
                 k % 3 ? "straggler" : "reassign");
        snprintf(j->events[k].detail, sizeof(j->events[k].detail), "epoch %zu, blocks n1:64 n2:64",
                 k);
    }
}

static void sim_job_free(job *j)
{
    free(j->reg.nodes);
    free(j->steps);
    free(j->owner);
    free(j->events);
    pthread_mutex_destroy(&j->reg.mtx);
}

START_TEST(a_scrape_of_64_nodes_p99_is_printed)
{
    /* What /metrics does but ask the RPC server: snapshot under the job's
     * lock, then render. The first scrape feeds 10000 steps into the
     * histograms; the following ones find none new, as on a live job. */
    rl_spec spec;
    job j;
    sim_job(&j, &spec);
    snap_step_hists h = {0};
    enum { RUNS = 1000 };
    double *us = calloc(RUNS, sizeof(double)), *locked = calloc(RUNS, sizeof(double));
    for (int r = 0; r < RUNS; r++) {
        job_snapshot s;
        uint64_t t0 = rl_clock_ns();
        snapshot_take(&j, &s, &h);
        uint64_t t1 = rl_clock_ns();
        char *text = render(&s, &h, NULL, 0);
        us[r] = (double)(rl_clock_ns() - t0) / 1e3;
        locked[r] = (double)(t1 - t0) / 1e3;
        ck_assert_ptr_nonnull(strstr(text, "ringleader_step_duration_seconds_count 10000\n"));
        ck_assert_int_eq(s.n_nodes, SIM_NODES);
        ck_assert_int_eq(s.nodes[5].blocks, 64);
        ck_assert(s.n_steps <= SNAP_MAX_STEPS && s.n_steps > SNAP_MAX_STEPS / 2);
        ck_assert_uint_eq(s.steps[s.n_steps - 1].step, 9999); /* the last step always in */
        ck_assert_uint_eq(s.n_events, SNAP_MAX_EVENTS);
        free(text);
        snapshot_fini(&s);
    }
    printf("scrape 64 nodes (snapshot + render): p50 %.1f us, p99 %.1f us; snapshot alone "
           "(the job's lock held): p50 %.1f us, p99 %.1f us; over %d scrapes\n",
           rl_percentile(us, RUNS, 0.50), rl_percentile(us, RUNS, 0.99),
           rl_percentile(locked, RUNS, 0.50), rl_percentile(locked, RUNS, 0.99), RUNS);
    free(us);
    free(locked);
    sim_job_free(&j);
}
END_TEST

START_TEST(the_status_document_parses_and_carries_the_nodes_and_plans)
{
    job_snapshot s;
    snap_step_hists h;
    metrics_rpc rpc[12];
    size_t n_rpc;
    sim_snapshot(&s, &h, rpc, &n_rpc);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    snapshot_write_json(&s, f);
    fclose(f);
    rli_json *v = NULL;
    ck_assert_int_eq(rli_json_parse(text, len, 0, &v), RL_OK);
    ck_assert_str_eq(rli_json_get(v, "status")->str, "running");
    ck_assert(rli_json_get(v, "step")->number == 500);
    const rli_json *nodes = rli_json_get(v, "nodes");
    ck_assert_uint_eq(nodes->len, SIM_NODES);
    ck_assert_str_eq(rli_json_get(nodes->items[0], "state")->str, "failed");
    ck_assert_int_eq(rli_json_get(nodes->items[0], "rows_per_s")->kind, RLI_JSON_NULL);
    ck_assert(rli_json_get(nodes->items[1], "blocks")->number == 65);
    const rli_json *plans = rli_json_get(v, "plans");
    ck_assert_uint_eq(plans->len, 1);
    const rli_json *blocks = rli_json_get(plans->items[0], "blocks");
    ck_assert(rli_json_get(blocks, "n1")->number == 3);
    ck_assert(rli_json_get(blocks, "n2")->number == 4);
    const rli_json *ev = rli_json_get(v, "events");
    ck_assert_str_eq(rli_json_get(ev->items[1], "detail")->str, "a \"quoted\" reason\n");
    ck_assert_uint_eq(rli_json_get(v, "steps")->len, 2);
    rli_json_free(v);
    free(text);
    snapshot_fini(&s);
}
END_TEST

START_TEST(only_the_right_bearer_token_reads)
{
    rl_token t = {.len = 20};
    memcpy(t.bytes, "0123456789abcdefghij", 20);
    ck_assert(monitor_authorized(NULL, NULL)); /* loopback: no token needed */
    ck_assert(monitor_authorized(&t, "Bearer 0123456789abcdefghij"));
    ck_assert(!monitor_authorized(&t, NULL));
    ck_assert(!monitor_authorized(&t, ""));
    ck_assert(!monitor_authorized(&t, "Bearer 0123456789abcdefghiX"));
    ck_assert(!monitor_authorized(&t, "Bearer 0123456789abcdefghi"));
    ck_assert(!monitor_authorized(&t, "Bearer 0123456789abcdefghijk"));
    ck_assert(!monitor_authorized(&t, "Basic 0123456789abcdefghij"));
    ck_assert(!monitor_authorized(&t, "0123456789abcdefghij"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("monitor");
    TCase *m = tcase_create("metrics");
    tcase_add_test(m, every_family_has_one_help_and_one_type_line);
    tcase_add_test(m, every_simulated_node_has_its_gauges);
    tcase_add_test(m, histograms_are_cumulative_and_end_at_the_count);
    tcase_add_test(m, rendering_64_nodes_p99_is_printed);
    tcase_add_test(m, a_scrape_of_64_nodes_p99_is_printed);
    suite_add_tcase(s, m);
    TCase *d = tcase_create("status");
    tcase_add_test(d, the_status_document_parses_and_carries_the_nodes_and_plans);
    tcase_add_test(d, only_the_right_bearer_token_reads);
    suite_add_tcase(s, d);
    return rlt_run_suite(s);
}
