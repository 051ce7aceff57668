/*
 * checkpoint.c - the job's checkpoints: what is saved from the job, how it
 * is put back, and the writer thread that keeps the file I/O (fsync) off
 * the coordinator's main loop and its RPC handlers. The job lock is held
 * only while the job is encoded into memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "ringleader/clock.h"
#include "ringleader/err.h"
#include "ringleader/log.h"
#include "ringleader/mem.h"

int ckpt_spec_hash(const rl_spec *spec, uint64_t *hash)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (m != NULL) rl_spec_write_canonical(spec, m);
    if (m == NULL || fclose(m) != 0) {
        free(text);
        fprintf(stderr, "ringleader run: the spec's hash: %s\n", strerror(errno));
        return RL_ENOMEM;
    }
    *hash = rl_checkpoint_spec_hash(text, len);
    if (*hash == 0) *hash = 1; /* 0 means "any spec" to rl_checkpoint_read */
    free(text);
    return RL_OK;
}

/* A copy of step k's record (node_ms copied too). */
static rl_ckpt_step ckpt_step_copy(const job *j, uint64_t k)
{
    const step_rec *r = &j->steps[k];
    rl_ckpt_step s = {.step = k,
                      .t_ms = r->t_ms,
                      .loss = r->loss,
                      .ms = r->ms,
                      .allreduce_ms = r->allreduce_ms,
                      .imbalance = r->imbalance};
    if (r->node_ms != NULL && r->node_n > 0) {
        s.n_node_ms = (size_t)r->node_n;
        s.node_ms = rl_xmalloc(s.n_node_ms * sizeof(double));
        memcpy(s.node_ms, r->node_ms, s.n_node_ms * sizeof(double));
    }
    return s;
}

static void ckpt_hist_push(ckpt_history *h, rl_ckpt_step s)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 1024;
        h->v = rl_xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    h->v[h->n++] = s;
}

void ckpt_history_fini(ckpt_history *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->v[i].node_ms);
    free(h->v);
    memset(h, 0, sizeof(*h));
}

int ckpt_snapshot(job *j, ckpt_history *h, uint64_t spec_hash, uint64_t incarnation,
                  rl_checkpoint *c)
{
    uint64_t done = j->model_step;
    *c = (rl_checkpoint){
        .spec_hash = spec_hash,
        .incarnation = incarnation,
        .step = done,
        .steps_total = (uint64_t)j->spec->steps,
        .epoch = j->epoch,
        .elapsed_ms = (double)(rl_clock_ms() - j->t0_ms),
        .started_unix_ms = j->started_unix_ms,
        .coverage_checked = j->coverage_checked,
        .violations = j->violations,
        .model_type = (uint32_t)j->model.type,
        .features = (uint32_t)j->model.features,
        .classes = (uint32_t)j->model.classes,
        .n_blocks = j->n_blocks,
        .n_nodes = (uint32_t)j->reg.n,
        .n_events = j->n_events,
    };
    size_t kf = (size_t)j->model.classes * (size_t)j->model.features;
    c->w = rl_xmalloc(kf * sizeof(double));
    memcpy(c->w, j->model.w, kf * sizeof(double));
    c->b = rl_xmalloc((size_t)j->model.classes * sizeof(double));
    memcpy(c->b, j->model.b, (size_t)j->model.classes * sizeof(double));
    c->owner = rl_xcalloc((size_t)j->n_blocks + 1, sizeof(int32_t));
    for (uint32_t b = 0; b < j->n_blocks; b++)
        c->owner[b] = j->owner[b];
    /* The steps below both steps_done and model_step are all reported and
     * never change again: copied into h once. Those reported above them
     * (out of order) are copied anew each time, after h's. */
    uint64_t stable = j->steps_done < done ? j->steps_done : done;
    for (uint64_t k = h->upto; k < stable; k++)
        ckpt_hist_push(h, ckpt_step_copy(j, k));
    if (stable > h->upto) h->upto = stable;
    size_t tail = 0;
    for (uint64_t k = h->upto; k < done && k < j->steps_cap; k++)
        if (j->steps[k].seen) tail++;
    c->steps = rl_xcalloc(h->n + tail + 1, sizeof(rl_ckpt_step));
    if (h->n > 0) /* node_ms borrowed from h */
        memcpy(c->steps, h->v, h->n * sizeof(rl_ckpt_step));
    c->n_steps = h->n;
    for (uint64_t k = h->upto; k < done && k < j->steps_cap; k++)
        if (j->steps[k].seen) c->steps[c->n_steps++] = ckpt_step_copy(j, k);
    c->events = rl_xcalloc(j->n_events + 1, sizeof(rl_ckpt_event));
    for (size_t k = 0; k < j->n_events; k++) {
        const job_event *e = &j->events[k];
        rl_ckpt_event *o = &c->events[k];
        o->t_ms = e->t_ms;
        o->step = e->step;
        o->recovery_ms = e->recovery_ms;
        snprintf(o->kind, sizeof(o->kind), "%s", e->kind);
        snprintf(o->node, sizeof(o->node), "%s", e->node);
        snprintf(o->detail, sizeof(o->detail), "%s", e->detail);
    }
    return RL_OK;
}

void ckpt_snapshot_fini(const ckpt_history *h, rl_checkpoint *c)
{
    for (size_t i = h->n; i < c->n_steps; i++) /* the tail's own copies */
        free(c->steps[i].node_ms);
    free(c->steps);
    c->steps = NULL;
    c->n_steps = 0;
    rl_checkpoint_fini(c);
}

int ckpt_load_newest(const char *dir, uint64_t spec_hash, rl_checkpoint *c, char *used,
                     size_t used_len)
{
    const char *names[2] = {RL_CHECKPOINT_FILE, RL_CHECKPOINT_PREV_FILE};
    int rv = RL_ENOTFOUND, found = 0;
    char refused[4096] = "";
    for (int i = 0; i < 2; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        rv = rl_checkpoint_read(path, spec_hash, c);
        if (rv == RL_OK) {
            snprintf(used, used_len, "%s", path);
            if (refused[0] != '\0')
                fprintf(stderr,
                        "ringleader run: falling back to the previous checkpoint %s (step %llu)\n",
                        path, (unsigned long long)c->step);
            return RL_OK;
        }
        rl_checkpoint_fini(c);
        if (rv == RL_ENOTFOUND) continue;
        found++;
        snprintf(refused, sizeof(refused), "%s", rl_errdetail());
        fprintf(stderr, "ringleader run: refused %s\n", refused);
    }
    if (found == 0)
        fprintf(stderr, "ringleader run: --resume: no checkpoint in %s (%s or %s)\n", dir,
                RL_CHECKPOINT_FILE, RL_CHECKPOINT_PREV_FILE);
    else
        fprintf(stderr, "ringleader run: --resume: no usable checkpoint in %s\n", dir);
    return rv;
}

int ckpt_restore(job *j, const rl_checkpoint *c, const char *from)
{
    char why[512] = "";
    size_t kf = (size_t)j->model.classes * (size_t)j->model.features;
    if (c->model_type != (uint32_t)j->model.type || c->features != (uint32_t)j->model.features ||
        c->classes != (uint32_t)j->model.classes)
        snprintf(why, sizeof(why),
                 "its model is %u features x %u classes of type %u, the job's %d x %d of type %d",
                 c->features, c->classes, c->model_type, j->model.features, j->model.classes,
                 (int)j->model.type);
    else if (c->n_blocks != j->n_blocks)
        snprintf(why, sizeof(why), "it has %u blocks, the job %u", c->n_blocks, j->n_blocks);
    else if (c->steps_total != (uint64_t)j->spec->steps)
        snprintf(why, sizeof(why), "it is of a %llu-step job, the spec says %d",
                 (unsigned long long)c->steps_total, j->spec->steps);
    else if (c->n_nodes != (uint32_t)j->reg.n)
        snprintf(why, sizeof(why), "it is of %u nodes, the job has %d", c->n_nodes, j->reg.n);
    if (why[0] != '\0') {
        fprintf(stderr, "ringleader run: checkpoint %s does not fit the job: %s\n", from, why);
        return RL_EPRECOND;
    }
    pthread_mutex_lock(&j->reg.mtx);
    memcpy(j->model.w, c->w, kf * sizeof(double));
    memcpy(j->model.b, c->b, (size_t)j->model.classes * sizeof(double));
    j->model_step = c->step;
    for (size_t k = 0; k < c->n_steps; k++) {
        const rl_ckpt_step *s = &c->steps[k];
        step_rec *r = &j->steps[s->step];
        *r = (step_rec){.seen = true,
                        .t_ms = s->t_ms,
                        .loss = s->loss,
                        .ms = s->ms,
                        .allreduce_ms = s->allreduce_ms,
                        .imbalance = s->imbalance};
        if (s->n_node_ms > 0) {
            r->node_ms = rl_xmalloc(s->n_node_ms * sizeof(double));
            memcpy(r->node_ms, s->node_ms, s->n_node_ms * sizeof(double));
            r->node_n = (int)s->n_node_ms;
        }
        if (s->step + 1 > j->steps_seen) j->steps_seen = s->step + 1;
    }
    j->steps_done = 0;
    while (j->steps_done < j->model_step && j->steps[j->steps_done].seen)
        j->steps_done++;
    /* The checkpoint's assignment: the first plan keeps it for the nodes
     * that are back (a re-admitted node keeps the blocks it holds) and
     * hands out the others' (job.c, assign_members_blocks). */
    if (c->owner != NULL)
        for (uint32_t b = 0; b < j->n_blocks; b++)
            j->owner[b] = c->owner[b] >= 0 && c->owner[b] < j->reg.n ? (int)c->owner[b] : -1;
    j->epoch = c->epoch;
    j->resumed = true;
    j->resumed_step = c->step;
    j->coverage_checked = c->coverage_checked;
    j->violations = c->violations;
    j->started_unix_ms = c->started_unix_ms;
    j->t0_ms = rl_clock_ms() - (uint64_t)c->elapsed_ms;
    for (size_t k = 0; k < c->n_events; k++) {
        const rl_ckpt_event *e = &c->events[k];
        job_event_add(j, e->kind, e->node, "%s", e->detail);
        job_event *o = &j->events[j->n_events - 1];
        o->t_ms = e->t_ms;
        o->step = e->step;
        o->recovery_ms = e->recovery_ms;
    }
    job_event_add(j, "resume", "", "from %s at step %llu (epoch %llu)", from,
                  (unsigned long long)c->step, (unsigned long long)c->epoch);
    pthread_mutex_unlock(&j->reg.mtx);
    return RL_OK;
}

/* Encodes under the lock, writes without it. Returns the write's result;
 * RL_OK without writing when the model has not moved since the last file,
 * or when the job was never planned (nothing to resume: an older job's
 * checkpoint in the directory is left alone). */
static int ckpt_write_once(ckpt_writer *w)
{
    job *j = w->j;
    void *buf = NULL;
    size_t len = 0;
    rl_checkpoint c;
    pthread_mutex_lock(&j->reg.mtx);
    bool moved = j->model_step != w->written_step && j->epoch > 0;
    double t0 = ((double)rl_clock_ns() / 1e6);
    if (moved) ckpt_snapshot(j, &w->hist, w->spec_hash, w->incarnation, &c);
    pthread_mutex_unlock(&j->reg.mtx);
    if (!moved) return RL_OK;
    double t1 = ((double)rl_clock_ns() / 1e6);
    uint64_t step = c.step;
    int rv = rl_checkpoint_encode(&c, &buf, &len);
    ckpt_snapshot_fini(&w->hist, &c);
    if (rv == RL_OK) rv = rl_checkpoint_write_file(w->dir, buf, len);
    double t2 = ((double)rl_clock_ns() / 1e6);
    if (t1 - t0 > w->lock_ms_max) w->lock_ms_max = t1 - t0;
    if (t2 - t1 > w->write_ms_max) w->write_ms_max = t2 - t1;
    free(buf);
    if (rv == RL_OK) {
        w->written_step = step;
        w->n_written++;
    } else {
        if (w->n_failed++ == 0) rl_log_warn("%s", rl_errdetail()); /* once: the disk may be full */
    }
    return rv;
}

static void *ckpt_writer_main(void *arg)
{
    ckpt_writer *w = arg;
    pthread_mutex_lock(&w->mtx);
    while (!w->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += w->every_ms / 1000;
        until.tv_nsec += (long)(w->every_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mtx, &until) != ETIMEDOUT) {
        }
        if (w->stop) break;
        pthread_mutex_unlock(&w->mtx);
        pthread_mutex_lock(&w->j->reg.mtx);
        bool running = w->j->status == JOB_RUNNING;
        pthread_mutex_unlock(&w->j->reg.mtx);
        if (running) ckpt_write_once(w);
        pthread_mutex_lock(&w->mtx);
    }
    pthread_mutex_unlock(&w->mtx);
    return NULL;
}

void ckpt_writer_start(ckpt_writer *w, job *j, const char *dir, uint64_t spec_hash,
                       uint64_t incarnation, int every_ms)
{
    memset(w, 0, sizeof(*w));
    w->j = j;
    snprintf(w->dir, sizeof(w->dir), "%s", dir);
    w->spec_hash = spec_hash;
    w->incarnation = incarnation;
    w->every_ms = every_ms;
    w->written_step = UINT64_MAX;
    pthread_mutex_init(&w->mtx, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (every_ms > 0 && pthread_create(&w->thread, NULL, ckpt_writer_main, w) == 0)
        w->running = true;
    else if (every_ms > 0)
        rl_log_warn("checkpoints: cannot start the writer thread; a checkpoint at the end only");
}

int ckpt_writer_finish(ckpt_writer *w)
{
    if (w->running) {
        pthread_mutex_lock(&w->mtx);
        w->stop = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mtx);
        pthread_join(w->thread, NULL);
        w->running = false;
    }
    int rv = w->every_ms < 0 ? RL_OK : ckpt_write_once(w);
    if (w->n_written > 0)
        rl_log_info("checkpoints: %llu written to %s, the last at step %llu; longest snapshot "
                    "(job lock held) %.3f ms, longest encode and write %.3f ms",
                    (unsigned long long)w->n_written, w->dir, (unsigned long long)w->written_step,
                    w->lock_ms_max, w->write_ms_max);
    ckpt_history_fini(&w->hist);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mtx);
    return rv;
}
