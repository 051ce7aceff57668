/*
 * checkpoint.h - the job's checkpoints (the file format is
 * ringleader/checkpoint.h): a writer thread that saves the job every
 * output.checkpoint_every_ms and at the end, and the restore that
 * `ringleader run --resume` starts from (docs/operations.md, "Checkpoints").
 */
#ifndef RL_COORD_CHECKPOINT_H
#define RL_COORD_CHECKPOINT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "job.h"
#include "ringleader/checkpoint.h"

/* The step records a writer has copied: steps 0 .. upto-1 that were reported
 * (those below both steps_done and model_step, which never change again). */
typedef struct ckpt_history {
    rl_ckpt_step *v;
    size_t n, cap;
    uint64_t upto;
} ckpt_history;

typedef struct ckpt_writer {
    job *j;
    char dir[4096];
    uint64_t spec_hash, incarnation;
    int every_ms;
    pthread_t thread;
    bool running;
    pthread_mutex_t mtx; /* guards stop */
    pthread_cond_t cv;
    bool stop;
    uint64_t written_step; /* the step of the last file written; UINT64_MAX: none */
    ckpt_history hist;
    uint64_t n_written, n_failed;
    double lock_ms_max, write_ms_max; /* the longest snapshot (lock held), encode+write */
} ckpt_writer;

/* The spec's identity in a checkpoint: a hash of its resolved keys
 * (rl_spec_write_canonical), after `--nodes N` was applied, so that a
 * comment, a layout change or a default written out does not refuse the
 * checkpoint while any value that takes effect does. */
int ckpt_spec_hash(const rl_spec *spec, uint64_t *hash);

void ckpt_history_fini(ckpt_history *h);

/* Copies the job as it is (the model after model_step steps and what led
 * there) into *c, to encode without the lock: the steps not yet in h are
 * added to it, so the lock is held for the steps since the last snapshot
 * only. c->steps borrows h's records; release c with ckpt_snapshot_fini
 * (before h changes). Lock held. */
int ckpt_snapshot(job *j, ckpt_history *h, uint64_t spec_hash, uint64_t incarnation,
                  rl_checkpoint *c);
void ckpt_snapshot_fini(const ckpt_history *h, rl_checkpoint *c);

/* Reads DIR's newest checkpoint, or when it is refused (truncated, corrupt,
 * another version or spec) the previous one; says on stderr which file is
 * used and why another was refused. RL_ENOTFOUND when there is none, or the
 * refusal of the last one tried. */
int ckpt_load_newest(const char *dir, uint64_t spec_hash, rl_checkpoint *c, char *used,
                     size_t used_len);

/* Puts c's state into a job just initialised (job_init) for the same spec:
 * the model, the step history, events, epoch and job clock. RL_EPRECOND
 * (with the detail) when c does not fit the job (model shape, blocks,
 * steps). Lock NOT held. */
int ckpt_restore(job *j, const rl_checkpoint *c, const char *from);

/* Starts the writer thread for job j into dir, writing every every_ms;
 * every_ms < 0: no checkpoints at all (program mode, or turned off). */
void ckpt_writer_start(ckpt_writer *w, job *j, const char *dir, uint64_t spec_hash,
                       uint64_t incarnation, int every_ms);
/* Stops the thread (if any) and writes the final checkpoint of the job as it
 * is now. Returns what the write returned (RL_OK when nothing new). */
int ckpt_writer_finish(ckpt_writer *w);

#endif
