/*
 * report.c - run.json (written atomically: a temporary file, fsync, rename)
 * and the progress line on stderr.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "ringleader/err.h"

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.17g", v);
    else fputs("null", f);
}

static void json_nums(FILE *f, const double *v, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i) fputc(',', f);
        json_num(f, v[i]);
    }
    fputc(']', f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The report's working copies are small: out of memory ends the program. */
static void *report_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "ringleader: out of memory (%zu bytes)\n", size);
        abort();
    }
    return p;
}

/* Nearest-rank percentile of n values (sorted copy). */
static double pct(const double *v, size_t n, double p)
{
    if (n == 0) return 0;
    double *t = report_malloc(n * sizeof(double));
    memcpy(t, v, n * sizeof(double));
    qsort(t, n, sizeof(double), cmp_double);
    size_t rank = (size_t)(p * (double)n + 0.999999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    double r = t[rank - 1];
    free(t);
    return r;
}

static int mkdir_p(const char *dir)
{
    char tmp[RL_PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int job_write_report(job *j, const char *dir, const char *spec_path, double wall_s)
{
    char path[RL_PATH_MAX + 32], tmp[RL_PATH_MAX + 48];
    if (mkdir_p(dir) != 0) {
        fprintf(stderr, "ringleader: cannot create %s: %s\n", dir, strerror(errno));
        return RL_EIO;
    }
    snprintf(path, sizeof(path), "%s/run.json", dir);
    snprintf(tmp, sizeof(tmp), "%s/.run.json.%d", dir, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "ringleader: cannot write %s: %s\n", tmp, strerror(errno));
        return RL_EIO;
    }
    pthread_mutex_lock(&j->reg.mtx);
    const rl_spec *s = j->spec;
    const rl_model *m = &j->model;
    size_t K = (size_t)m->classes, F = (size_t)m->features;
    bool ok = j->status == JOB_DONE;
    fprintf(f, "{\n  \"status\": \"%s\",\n", ok ? "ok" : "failed");
    if (!ok) {
        fputs("  \"error\": ", f);
        json_str(f, j->error[0] ? j->error : "the job did not complete");
        fputs(",\n", f);
    }
    fputs("  \"spec\": ", f);
    json_str(f, spec_path);
    fprintf(f, ",\n  \"started_unix_ms\": %llu,\n  \"wall_s\": ",
            (unsigned long long)j->started_unix_ms);
    json_num(f, wall_s);
    fprintf(f, ",\n  \"model\": {\"type\": \"%s\", \"features\": %zu, \"classes\": %zu, "
               "\"weights\": ",
            rl_model_type_name(m->type), F, s->model == RL_MODEL_SOFTMAX ? K : (size_t)1);
    json_nums(f, m->w, K * F);
    fputs(", \"bias\": ", f);
    if (m->b == NULL) fputs("null", f);
    else if (s->model == RL_MODEL_SOFTMAX) json_nums(f, m->b, K);
    else json_num(f, m->b[0]);
    fputs(", \"mean\": ", f);
    if (j->mean) json_nums(f, j->mean, F);
    else fputs("null", f);
    fputs(", \"std\": ", f);
    if (j->std) json_nums(f, j->std, F);
    else fputs("null", f);
    /* The saved weights are those after model_step steps. */
    fprintf(f, "},\n  \"steps_completed\": %llu,\n  \"final_loss\": ",
            (unsigned long long)j->model_step);
    if (j->model_step && j->steps[j->model_step - 1].seen)
        json_num(f, j->steps[j->model_step - 1].loss);
    else fputs("null", f);
    fputs(",\n  \"steps\": [", f);
    double *ms = report_malloc(((size_t)s->steps + 1) * sizeof(double));
    size_t nms = 0;
    for (uint64_t i = 0; i < (uint64_t)s->steps; i++) {
        step_rec *r = &j->steps[i];
        if (!r->seen) continue;
        ms[nms] = r->ms;
        fprintf(f, "%s\n    {\"step\": %llu, \"t_ms\": ", nms++ ? "," : "", (unsigned long long)i);
        json_num(f, r->t_ms);
        fputs(", \"loss\": ", f);
        json_num(f, r->loss);
        fputs(", \"ms\": ", f);
        json_num(f, r->ms);
        fputs(", \"allreduce_ms\": ", f);
        json_num(f, r->allreduce_ms);
        fputs(", \"compute_imbalance\": ", f);
        json_num(f, r->imbalance);
        if (r->node_ms != NULL) {
            fputs(", \"compute_ms\": {", f);
            int k = 0;
            for (int q = 0; q < r->node_n && q < j->reg.n; q++) {
                if (isnan(r->node_ms[q])) continue;
                fputs(k++ ? ", " : "", f);
                json_str(f, j->reg.nodes[q].id);
                fputs(": ", f);
                json_num(f, r->node_ms[q]);
            }
            fputc('}', f);
        }
        fputc('}', f);
    }
    fprintf(f, "\n  ],\n  \"step_ms\": {\"p50\": ");
    /* null, not 0, until a step is known */
    double p50_ms = nms ? pct(ms, nms, 0.50) : NAN;
    json_num(f, p50_ms);
    fputs(", \"p99\": ", f);
    json_num(f, nms ? pct(ms, nms, 0.99) : NAN);
    free(ms);
    fputs("},\n  \"nodes\": [", f);
    int members = 0;
    for (int i = 0; i < j->reg.n; i++) {
        node_entry *e = &j->reg.nodes[i];
        const char *state = e->state == NODE_JOINED ? "alive"
                          : e->state == NODE_FAILED ? "failed"
                          : e->state == NODE_LEFT   ? "left"
                                                    : "never joined";
        fprintf(f, "%s\n    {\"id\": ", i ? "," : "");
        json_str(f, e->id);
        fprintf(f, ", \"state\": \"%s\", \"blocks\": [", state);
        int64_t rows = 0;
        int nb = 0;
        for (uint32_t b = 0; b < j->n_blocks; b++)
            if (j->owner[b] == i && j->status != JOB_WAITING) {
                fprintf(f, "%s%u", nb++ ? "," : "", b);
                int64_t first = (int64_t)b * j->dp.block_rows;
                int64_t left = j->dp.rows - first;
                rows += left < j->dp.block_rows ? left : j->dp.block_rows;
            }
        if (nb) members++;
        size_t ns = e->ncompute < 256 ? (size_t)e->ncompute : 256;
        fprintf(f, "], \"rows\": %lld, \"compute_ms_p50\": ", (long long)rows);
        json_num(f, ns ? pct(e->compute_samples, ns, 0.50) : NAN); /* null: never measured */
        fputs(", \"rows_per_s\": ", f);
        json_num(f, e->rows_per_s > 0 ? e->rows_per_s : NAN);
        fputc('}', f);
    }
    fputs("\n  ],\n  \"events\": [", f);
    for (size_t i = 0; i < j->n_events; i++) {
        job_event *e = &j->events[i];
        fprintf(f, "%s\n    {\"t_ms\": ", i ? "," : "");
        json_num(f, e->t_ms);
        fprintf(f, ", \"step\": %lld, \"kind\": ", (long long)e->step);
        json_str(f, e->kind);
        fputs(", \"node\": ", f);
        json_str(f, e->node);
        fputs(", \"detail\": ", f);
        json_str(f, e->detail);
        if (strcmp(e->kind, "failed") == 0) {
            fputs(", \"recovery_ms\": ", f);
            if (e->recovery_ms >= 0) json_num(f, e->recovery_ms);
            else fputs("null", f);
        }
        fputc('}', f);
    }
    fprintf(f, "\n  ],\n  \"coverage\": {\"steps_checked\": %llu, \"violations\": %llu},\n",
            (unsigned long long)j->coverage_checked, (unsigned long long)j->violations);
    if (j->baseline_path != NULL && nms > 0) {
        /* The seed's T_s / T_p: the baseline run's median step over ours. */
        fputs("  \"speedup\": ", f);
        json_num(f, j->baseline_step_ms / p50_ms);
        fputs(",\n  \"speedup_baseline\": {\"run\": ", f);
        json_str(f, j->baseline_path);
        fputs(", \"step_ms_p50\": ", f);
        json_num(f, j->baseline_step_ms);
        fprintf(f, ", \"nodes\": %d},\n", j->baseline_nodes);
    }
    fputs("  \"D\": ", f);
    json_num(f, members ? (double)j->n_blocks / members : 0);
    fprintf(f, ",\n  \"blocks_total\": %u,\n  \"epoch\": %llu\n}\n", j->n_blocks,
            (unsigned long long)j->epoch);
    pthread_mutex_unlock(&j->reg.mtx);
    int bad = ferror(f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) bad = 1;
    if (fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        fprintf(stderr, "ringleader: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return RL_EIO;
    }
    return RL_OK;
}

void job_progress(job *j, bool final)
{
    static uint64_t last_print;
    bool tty = isatty(STDERR_FILENO);
    uint64_t now = rl_clock_ms();
    if (!final && !tty && now - last_print < 1000) return;
    last_print = now;
    pthread_mutex_lock(&j->reg.mtx);
    uint64_t n = j->steps_done;
    int alive = 0;
    for (int i = 0; i < j->reg.n; i++)
        if (j->reg.nodes[i].state == NODE_JOINED) alive++;
    double loss = n ? j->steps[n - 1].loss : NAN, ms = n ? j->steps[n - 1].ms : NAN;
    /* The last step's rows over its time: known from the step reports alone
     * (the nodes' heartbeat rates may not have arrived in a short job). */
    double rps = n && ms > 0 ? (double)j->dp.rows / (ms / 1e3) : NAN;
    pthread_mutex_unlock(&j->reg.mtx);
    const char *start = tty ? "\r\033[K" : "", *end = tty && !final ? "" : "\n";
    if (n == 0) {
        fprintf(stderr, "%sstep 0/%d  starting  nodes %d/%d%s", start, j->spec->steps, alive,
                j->reg.n, end);
    } else {
        char rate[32] = "-";
        if (isfinite(rps)) snprintf(rate, sizeof(rate), "%.3g", rps);
        fprintf(stderr, "%sstep %llu/%d  loss %.6g  step %.2f ms  %s rows/s  nodes %d/%d%s", start,
                (unsigned long long)n, j->spec->steps, loss, ms, rate, alive, j->reg.n, end);
    }
    fflush(stderr);
}
