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
    uint64_t n_written, n_failed;
} ckpt_writer;

/* The spec's identity in a checkpoint: the spec file's bytes, and the node
 * count of `--nodes N` (0: the spec's). RL_EIO when the file cannot be read. */
int ckpt_spec_hash(const char *spec_path, int nodes_override, uint64_t *hash);

/* Encodes the job as it is (the model after model_step steps and what led
 * there) as a whole checkpoint file into a new buffer. Lock held; cheap
 * enough to hold it (a copy of the step records, no I/O). */
int ckpt_encode_job(job *j, uint64_t spec_hash, uint64_t incarnation, void **buf, size_t *len,
                    uint64_t *step);

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

/* Starts the writer thread (every_ms > 0) for job j into dir; every_ms 0:
 * the final checkpoint only, < 0: none (program mode). */
void ckpt_writer_start(ckpt_writer *w, job *j, const char *dir, uint64_t spec_hash,
                       uint64_t incarnation, int every_ms);
/* Stops the thread (if any) and writes the final checkpoint of the job as it
 * is now. Returns what the write returned (RL_OK when nothing new). */
int ckpt_writer_finish(ckpt_writer *w);

#endif
