/*
 * snapshot.c - copies the job's state under its lock, and writes the status
 * document (JSON) from a copy.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "snapshot.h"
#include "ringleader/clock.h"
#include "ringleader/mem.h"
#include "ringleader/run_json.h"

#define SNAP_BOUND_ROW(b) b,
const double snap_hist_bounds[SNAP_HIST_N] = {SNAP_HIST_BOUNDS(SNAP_BOUND_ROW)};
#undef SNAP_BOUND_ROW

void snap_hist_observe(snap_hist *h, double seconds)
{
    if (!isfinite(seconds)) return;
    for (int k = 0; k < SNAP_HIST_N; k++)
        if (seconds <= snap_hist_bounds[k]) h->bucket[k]++;
    h->bucket[SNAP_HIST_N]++;
    h->sum += seconds;
}

const char *snapshot_node_state(int state)
{
    switch ((node_state)state) {
    case NODE_EXPECTED:
        return "expected";
    case NODE_JOINED:
        return "alive";
    case NODE_FAILED:
        return "failed";
    case NODE_LEFT:
        return "left";
    }
    return "?";
}

const char *snapshot_job_status(int status)
{
    switch ((job_status)status) {
    case JOB_WAITING:
        return "waiting";
    case JOB_RUNNING:
        return "running";
    case JOB_DONE:
        return "ok";
    case JOB_FAILED:
        return "failed";
    }
    return "?";
}

/* The steps of the history: up to SNAP_MAX_STEPS of 0..done-1, evenly
 * spread, the last always in. Lock held. */
static void snapshot_steps(const job *j, job_snapshot *s)
{
    uint64_t done = j->steps_done;
    uint64_t stride =
        done <= SNAP_MAX_STEPS ? 1 : (done + SNAP_MAX_STEPS - 2) / (SNAP_MAX_STEPS - 1);
    s->steps = rl_xcalloc(SNAP_MAX_STEPS + 1, sizeof(snap_step));
    for (uint64_t k = 0; k < done && s->n_steps < SNAP_MAX_STEPS; k += stride) {
        if (k + stride >= done) k = done - 1; /* the last one in */
        const step_rec *r = &j->steps[k];
        s->steps[s->n_steps++] = (snap_step){.step = k,
                                             .t_ms = r->t_ms,
                                             .loss = r->loss,
                                             .ms = r->ms,
                                             .allreduce_ms = r->allreduce_ms};
    }
}

/* Events: counted by kind, the last SNAP_MAX_EVENTS copied. Lock held. */
static void snapshot_events(const job *j, job_snapshot *s)
{
    s->events_total = j->n_events;
    for (size_t k = 0; k < j->n_events; k++) {
        const char *kind = j->events[k].kind;
        int i = 0;
        while (i < s->n_kinds && strcmp(s->kind[i], kind) != 0)
            i++;
        if (i == s->n_kinds) {
            if (s->n_kinds == SNAP_MAX_KINDS) continue;
            snprintf(s->kind[s->n_kinds++], sizeof(s->kind[0]), "%s", kind);
        }
        s->kind_count[i]++;
    }
    size_t first = j->n_events > SNAP_MAX_EVENTS ? j->n_events - SNAP_MAX_EVENTS : 0;
    s->events = rl_xcalloc(j->n_events - first + 1, sizeof(snap_event));
    for (size_t k = first; k < j->n_events; k++) {
        const job_event *e = &j->events[k];
        snap_event *o = &s->events[s->n_events++];
        o->t_ms = e->t_ms;
        o->step = e->step;
        memcpy(o->kind, e->kind, sizeof(o->kind));
        memcpy(o->node, e->node, sizeof(o->node));
        memcpy(o->detail, e->detail, sizeof(o->detail));
    }
}

void snapshot_take(job *j, job_snapshot *s, snap_step_hists *hists)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", j->spec->name);
    s->program = j->program;
    s->started_unix_ms = j->started_unix_ms;
    pthread_mutex_lock(&j->reg.mtx);
    s->status = (int)j->status;
    memcpy(s->error, j->error, sizeof(s->error));
    s->t_ms = (double)(rl_clock_ms() - j->t0_ms);
    s->steps_total = j->program ? (int64_t)j->steps_seen : (int64_t)j->spec->steps;
    s->steps_done = j->steps_done;
    s->epoch = j->epoch;
    s->loss = s->step_ms = NAN;
    if (j->steps_done > 0) {
        s->loss = j->steps[j->steps_done - 1].loss;
        s->step_ms = j->steps[j->steps_done - 1].ms;
    }
    s->n_blocks = j->n_blocks;
    s->n_nodes = j->reg.n;
    s->nodes = rl_xcalloc((size_t)j->reg.n + 1, sizeof(snap_node));
    for (int i = 0; i < j->reg.n; i++) {
        const node_entry *e = &j->reg.nodes[i];
        snap_node *n = &s->nodes[i];
        memcpy(n->id, e->id, sizeof(n->id));
        memcpy(n->listen, e->listen, sizeof(n->listen));
        memcpy(n->phase, e->phase, sizeof(n->phase));
        n->state = (int)e->state;
        n->rows_per_s = e->rows_per_s;
        n->compute_ms = e->compute_ms;
        n->allreduce_ms = e->allreduce_ms;
        n->cpu_load = e->cpu_load;
        n->wait_ms = e->step_ms > 0 ? e->wait_ms : NAN;
        n->busy_fraction = e->step_ms > 0 ? e->busy_fraction : NAN;
        n->rss_bytes = e->rss_bytes;
        n->heartbeats = e->heartbeats;
        n->step = e->step;
        n->connected = e->connected;
        n->slow = e->slow;
    }
    if (j->status != JOB_WAITING)
        for (uint32_t b = 0; b < j->n_blocks; b++)
            if (j->owner[b] >= 0 && j->owner[b] < j->reg.n) s->nodes[j->owner[b]].blocks++;
    snapshot_steps(j, s);
    snapshot_events(j, s);
    /* A re-plan takes steps_done back; steps are observed once, the first time. */
    for (; hists != NULL && hists->upto < j->steps_done; hists->upto++) {
        const step_rec *r = &j->steps[hists->upto];
        snap_hist_observe(&hists->step, r->ms / 1e3);
        snap_hist_observe(&hists->allreduce, r->allreduce_ms / 1e3);
    }
    pthread_mutex_unlock(&j->reg.mtx);
}

void snapshot_fini(job_snapshot *s)
{
    free(s->nodes);
    free(s->steps);
    free(s->events);
    memset(s, 0, sizeof(*s));
}

/* ---- The status document --------------------------------------------------- */

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

/* A figure a node reports, null until it has (0 is "not yet" for these). */
static void json_reported(FILE *f, double v)
{
    json_num(f, v > 0 ? v : NAN);
}

int snapshot_block_counts(const char *detail, char (*ids)[RL_ID_MAX], int *counts, int max)
{
    const char *p = strstr(detail, "blocks ");
    int n = 0;
    if (p != NULL) p += strlen("blocks ");
    while (p != NULL && *p && n < max) {
        const char *colon = strchr(p, ':'), *end = strchr(p, ' ');
        if (colon == NULL || (end != NULL && colon > end)) break;
        size_t len = (size_t)(colon - p);
        if (len == 0 || len >= RL_ID_MAX) break;
        char *num_end;
        long v = strtol(colon + 1, &num_end, 10);
        if (num_end == colon + 1 || (*num_end != ' ' && *num_end != '\0') || v < 0) break;
        memcpy(ids[n], p, len);
        ids[n][len] = '\0';
        counts[n++] = (int)v;
        p = *num_end == ' ' ? num_end + 1 : NULL;
    }
    return n;
}

/* A reassign event's block counts as an object {"ID": N, ...}. */
static void json_block_counts(FILE *f, const char *detail)
{
    char ids[SNAP_MAX_PLAN_NODES][RL_ID_MAX];
    int counts[SNAP_MAX_PLAN_NODES];
    int n = snapshot_block_counts(detail, ids, counts, SNAP_MAX_PLAN_NODES);
    fputc('{', f);
    for (int i = 0; i < n; i++) {
        fputs(i ? "," : "", f);
        rl_json_write_str(f, ids[i]);
        fprintf(f, ":%d", counts[i]);
    }
    fputc('}', f);
}

void snapshot_write_json(const job_snapshot *s, FILE *f)
{
    fputs("{\"job\":", f);
    rl_json_write_str(f, s->name);
    fprintf(f, ",\"status\":\"%s\",\"program\":%s", snapshot_job_status(s->status),
            s->program ? "true" : "false");
    if (s->error[0] && s->status == JOB_FAILED) {
        fputs(",\"error\":", f);
        rl_json_write_str(f, s->error);
    }
    fprintf(f, ",\"started_unix_ms\":%llu,\"t_ms\":", (unsigned long long)s->started_unix_ms);
    json_num(f, s->t_ms);
    fprintf(f, ",\"step\":%llu,\"steps_total\":%lld,\"epoch\":%llu,\"loss\":",
            (unsigned long long)s->steps_done, (long long)s->steps_total,
            (unsigned long long)s->epoch);
    json_num(f, s->loss);
    fputs(",\"step_ms\":", f);
    json_num(f, s->step_ms);
    fprintf(f, ",\"blocks_total\":%u,\"nodes\":[", s->n_blocks);
    for (int i = 0; i < s->n_nodes; i++) {
        const snap_node *n = &s->nodes[i];
        fputs(i ? ",{\"id\":" : "{\"id\":", f);
        rl_json_write_str(f, n->id);
        fprintf(f, ",\"state\":\"%s\",\"blocks\":%d,\"rows_per_s\":", snapshot_node_state(n->state),
                n->blocks);
        json_reported(f, n->rows_per_s);
        fputs(",\"compute_ms\":", f);
        json_reported(f, n->compute_ms);
        fputs(",\"allreduce_ms\":", f);
        json_reported(f, n->allreduce_ms);
        fputs(",\"wait_ms\":", f);
        json_num(f, n->wait_ms);
        fputs(",\"busy\":", f);
        json_num(f, n->busy_fraction);
        fputs(",\"cpu_load\":", f);
        json_num(f, n->heartbeats > 0 ? n->cpu_load : NAN);
        fputs(",\"rss_bytes\":", f);
        json_num(f, n->heartbeats > 0 ? (double)n->rss_bytes : NAN);
        fprintf(f, ",\"step\":%llu,\"heartbeats\":%llu,\"connected\":%s,\"slow\":%s,\"endpoint\":",
                (unsigned long long)n->step, (unsigned long long)n->heartbeats,
                n->connected ? "true" : "false", n->slow ? "true" : "false");
        rl_json_write_str(f, n->listen);
        fputs(",\"doing\":", f);
        rl_json_write_str(f, n->phase);
        fputc('}', f);
    }
    fputs("],\"steps\":[", f);
    for (size_t k = 0; k < s->n_steps; k++) {
        const snap_step *p = &s->steps[k];
        fprintf(f, "%s{\"step\":%llu,\"t_ms\":", k ? "," : "", (unsigned long long)p->step);
        json_num(f, p->t_ms);
        fputs(",\"loss\":", f);
        json_num(f, p->loss);
        fputs(",\"ms\":", f);
        json_num(f, p->ms);
        fputs(",\"allreduce_ms\":", f);
        json_num(f, p->allreduce_ms);
        fputc('}', f);
    }
    fprintf(f, "],\"events_total\":%llu,\"events\":[", (unsigned long long)s->events_total);
    for (size_t k = 0; k < s->n_events; k++) {
        const snap_event *e = &s->events[k];
        fputs(k ? ",{\"t_ms\":" : "{\"t_ms\":", f);
        json_num(f, e->t_ms);
        fprintf(f, ",\"step\":%lld,\"kind\":", (long long)e->step);
        rl_json_write_str(f, e->kind);
        fputs(",\"node\":", f);
        rl_json_write_str(f, e->node);
        fputs(",\"detail\":", f);
        rl_json_write_str(f, e->detail);
        fputc('}', f);
    }
    fputs("],\"plans\":[", f);
    bool first = true;
    for (size_t k = 0; k < s->n_events; k++) {
        const snap_event *e = &s->events[k];
        if (strcmp(e->kind, "reassign") != 0) continue;
        fputs(first ? "{\"t_ms\":" : ",{\"t_ms\":", f);
        first = false;
        json_num(f, e->t_ms);
        fprintf(f, ",\"step\":%lld,\"blocks\":", (long long)e->step);
        json_block_counts(f, e->detail);
        fputc('}', f);
    }
    fputs("]}\n", f);
}

char *snapshot_json_text(job *j)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) return NULL;
    job_snapshot s;
    snapshot_take(j, &s, NULL);
    snapshot_write_json(&s, f);
    snapshot_fini(&s);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
