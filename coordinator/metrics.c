/*
 * metrics.c - the Prometheus text exposition of a job snapshot. Every
 * family's HELP and TYPE come from METRICS_LIST; a value not known (a node
 * that has not reported yet) is left out rather than written as 0.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

typedef enum {
#define METRIC_ENUM(name, type, help) M_##name,
    METRICS_LIST(METRIC_ENUM)
#undef METRIC_ENUM
        M_COUNT
} metric_id;

static const struct {
    const char *name, *type, *help;
} metric_defs[M_COUNT] = {
#define METRIC_ROW(name, type, help) [M_##name] = {#name, #type, help},
    METRICS_LIST(METRIC_ROW)
#undef METRIC_ROW
};

static void metric_head(FILE *f, metric_id m)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", metric_defs[m].name, metric_defs[m].help,
            metric_defs[m].name, metric_defs[m].type);
}

/* A label value, escaped as the format says (\\, \" and \n). */
static void label_value(FILE *f, const char *v)
{
    fputc('"', f);
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(f, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
    fputc('"', f);
}

/* A sample value: Go's float syntax, with NaN and +Inf spelled its way; the
 * shorter of 15 and 17 digits that reads back as v. */
static void sample_value(FILE *f, double v)
{
    char buf[40];
    if (isnan(v)) {
        fputs(" NaN\n", f);
    } else if (isinf(v)) {
        fputs(v > 0 ? " +Inf\n" : " -Inf\n", f);
    } else {
        snprintf(buf, sizeof(buf), "%.15g", v);
        if (strtod(buf, NULL) != v) snprintf(buf, sizeof(buf), "%.17g", v);
        fprintf(f, " %s\n", buf);
    }
}

/* name{label="value"} v */
static void sample1(FILE *f, metric_id m, const char *suffix, const char *label, const char *value,
                    double v)
{
    fputs(metric_defs[m].name, f);
    fputs(suffix, f);
    if (label != NULL) {
        fprintf(f, "{%s=", label);
        label_value(f, value);
        fputc('}', f);
    }
    sample_value(f, v);
}

static void histogram(FILE *f, metric_id m, const snap_hist *h)
{
    metric_head(f, m);
    const char *name = metric_defs[m].name;
    for (int k = 0; k < SNAP_HIST_N; k++)
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, snap_hist_bounds[k],
                (unsigned long long)h->bucket[k]);
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->bucket[SNAP_HIST_N]);
    fprintf(f, "%s_sum", name);
    sample_value(f, h->sum);
    fprintf(f, "%s_count %llu\n", name, (unsigned long long)h->bucket[SNAP_HIST_N]);
}

static void job_families(const job_snapshot *s, FILE *f)
{
    metric_head(f, M_ringleader_job_info);
    sample1(f, M_ringleader_job_info, "", "job", s->name, 1);
    metric_head(f, M_ringleader_job_state);
    for (int st = 0; st < 4; st++)
        sample1(f, M_ringleader_job_state, "", "state", snapshot_job_status(st), s->status == st);
    metric_head(f, M_ringleader_job_step);
    sample1(f, M_ringleader_job_step, "", NULL, NULL, (double)s->steps_done);
    metric_head(f, M_ringleader_job_steps_planned);
    sample1(f, M_ringleader_job_steps_planned, "", NULL, NULL, (double)s->steps_total);
    if (isfinite(s->loss)) {
        metric_head(f, M_ringleader_job_loss);
        sample1(f, M_ringleader_job_loss, "", NULL, NULL, s->loss);
    }
    metric_head(f, M_ringleader_job_epoch);
    sample1(f, M_ringleader_job_epoch, "", NULL, NULL, (double)s->epoch);
    metric_head(f, M_ringleader_job_blocks);
    sample1(f, M_ringleader_job_blocks, "", NULL, NULL, (double)s->n_blocks);
    metric_head(f, M_ringleader_job_uptime_seconds);
    sample1(f, M_ringleader_job_uptime_seconds, "", NULL, NULL, s->t_ms / 1e3);
}

/* One gauge per node: get(n) for every node with known(n). */
#define NODE_FAMILY(m, known, get)                                                                 \
    do {                                                                                           \
        metric_head(f, m);                                                                         \
        for (int i = 0; i < s->n_nodes; i++) {                                                     \
            const snap_node *n = &s->nodes[i];                                                     \
            if (known) sample1(f, m, "", "node", n->id, (get));                                    \
        }                                                                                          \
    } while (0)

static void node_families(const job_snapshot *s, FILE *f)
{
    metric_head(f, M_ringleader_node_state);
    for (int i = 0; i < s->n_nodes; i++)
        for (int st = 0; st < 4; st++) {
            fprintf(f, "ringleader_node_state{node=");
            label_value(f, s->nodes[i].id);
            fprintf(f, ",state=\"%s\"} %d\n", snapshot_node_state(st), s->nodes[i].state == st);
        }
    NODE_FAMILY(M_ringleader_node_blocks, true, (double)n->blocks);
    NODE_FAMILY(M_ringleader_node_rows_per_second, n->rows_per_s > 0, n->rows_per_s);
    NODE_FAMILY(M_ringleader_node_compute_seconds, n->compute_ms > 0, n->compute_ms / 1e3);
    NODE_FAMILY(M_ringleader_node_allreduce_wait_seconds, n->allreduce_ms > 0,
                n->allreduce_ms / 1e3);
    NODE_FAMILY(M_ringleader_node_wait_seconds, isfinite(n->wait_ms), n->wait_ms / 1e3);
    NODE_FAMILY(M_ringleader_node_busy_ratio, isfinite(n->busy_fraction), n->busy_fraction);
    NODE_FAMILY(M_ringleader_node_cpu_seconds_per_second, n->heartbeats > 0, n->cpu_load);
    NODE_FAMILY(M_ringleader_node_resident_memory_bytes, n->heartbeats > 0, (double)n->rss_bytes);
    NODE_FAMILY(M_ringleader_node_heartbeats_total, true, (double)n->heartbeats);
}

static void rpc_families(const metrics_rpc *rpc, size_t n, FILE *f)
{
    metric_head(f, M_ringleader_rpc_calls_total);
    for (size_t k = 0; k < n; k++)
        sample1(f, M_ringleader_rpc_calls_total, "", "method", rpc[k].method,
                (double)rpc[k].m.calls);
    metric_head(f, M_ringleader_rpc_errors_total);
    for (size_t k = 0; k < n; k++)
        sample1(f, M_ringleader_rpc_errors_total, "", "method", rpc[k].method,
                (double)rpc[k].m.errors);
    metric_head(f, M_ringleader_rpc_unauthenticated_total);
    for (size_t k = 0; k < n; k++)
        sample1(f, M_ringleader_rpc_unauthenticated_total, "", "method", rpc[k].method,
                (double)rpc[k].m.refused_unauth);
    metric_head(f, M_ringleader_rpc_latency_seconds);
    for (size_t k = 0; k < n; k++) {
        const rl_rpc_metrics *m = &rpc[k].m;
        double q[2] = {m->lat_count ? m->lat_p50_us / 1e6 : NAN,
                       m->lat_count ? m->lat_p99_us / 1e6 : NAN};
        const char *qs[2] = {"0.5", "0.99"};
        for (int i = 0; i < 2; i++) {
            fputs("ringleader_rpc_latency_seconds{method=", f);
            label_value(f, rpc[k].method);
            fprintf(f, ",quantile=\"%s\"}", qs[i]);
            sample_value(f, q[i]);
        }
        sample1(f, M_ringleader_rpc_latency_seconds, "_sum", "method", rpc[k].method,
                m->lat_sum_us / 1e6);
        sample1(f, M_ringleader_rpc_latency_seconds, "_count", "method", rpc[k].method,
                (double)m->lat_count);
    }
}

void metrics_render(const job_snapshot *s, const snap_step_hists *hists, const metrics_rpc *rpc,
                    size_t n_rpc, FILE *f)
{
    static const snap_step_hists none;
    if (hists == NULL) hists = &none;
    job_families(s, f);
    histogram(f, M_ringleader_step_duration_seconds, &hists->step);
    histogram(f, M_ringleader_allreduce_duration_seconds, &hists->allreduce);
    node_families(s, f);
    rpc_families(rpc, n_rpc, f);
    metric_head(f, M_ringleader_events_total);
    for (int k = 0; k < s->n_kinds; k++)
        sample1(f, M_ringleader_events_total, "", "kind", s->kind[k], (double)s->kind_count[k]);
}
