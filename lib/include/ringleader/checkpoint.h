/*
 * checkpoint.h - the coordinator's checkpoint file: what a job needs to
 * continue after the coordinator dies (docs/operations.md, "Checkpoints").
 *
 * A file is a 24-byte header and a msgpack payload:
 *   bytes  0..7   magic "RLCKPT\r\n"
 *   bytes  8..11  format version, little-endian (RL_CHECKPOINT_VERSION)
 *   bytes 12..15  CRC-32C (Castagnoli) of the payload, little-endian
 *   bytes 16..23  payload length in bytes, little-endian
 *   bytes 24..    payload: one msgpack map with string keys (checkpoint.c
 *                 lists them); unknown keys are skipped, every known key is
 *                 required.
 * A reader refuses a file whose magic, version, length or checksum is not
 * right, and a payload that is not exactly one well-formed map.
 *
 * Thread-safety: every function works on its arguments only.
 */
#ifndef RINGLEADER_CHECKPOINT_H
#define RINGLEADER_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "ringleader/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RL_CHECKPOINT_VERSION 1
#define RL_CHECKPOINT_HEADER  24
/* The newest checkpoint and the one before it, in the output directory. */
#define RL_CHECKPOINT_FILE      "checkpoint.rlc"
#define RL_CHECKPOINT_PREV_FILE "checkpoint.prev.rlc"
/* Largest file a reader accepts. */
#define RL_CHECKPOINT_MAX_BYTES ((size_t)1 << 30)

/* One completed step, as run.json reports it. */
typedef struct rl_ckpt_step {
    uint64_t step;
    double t_ms, loss, ms, allreduce_ms, imbalance;
    double *node_ms; /* compute ms by node index (NaN: not a member); NULL when n_node_ms 0 */
    size_t n_node_ms;
} rl_ckpt_step;

/* One event, as run.json reports it (strings NUL-terminated, truncated to fit). */
typedef struct rl_ckpt_event {
    double t_ms;
    int64_t step;
    char kind[16];
    char node[64];
    char detail[160];
    double recovery_ms;
} rl_ckpt_event;

typedef struct rl_checkpoint {
    uint64_t spec_hash;       /* rl_checkpoint_spec_hash of the job's spec */
    uint64_t incarnation;     /* the coordinator process that wrote it */
    uint64_t step;            /* the model holds the weights after this many steps */
    uint64_t steps_total;     /* training.steps */
    uint64_t epoch;           /* the ring epoch of the last plan */
    double elapsed_ms;        /* job time when it was written */
    uint64_t started_unix_ms; /* when the job first started */
    uint64_t coverage_checked, violations;
    uint32_t model_type;
    uint32_t features, classes;
    double *w;      /* classes * features */
    double *b;      /* classes */
    int32_t *owner; /* block -> node index, -1 none */
    uint32_t n_blocks;
    uint32_t n_nodes;    /* node indices in owner and node_ms are below this */
    rl_ckpt_step *steps; /* increasing step numbers, all below step */
    size_t n_steps;
    rl_ckpt_event *events;
    size_t n_events;
} rl_checkpoint;

/* The 64-bit FNV-1a hash of len bytes (the spec's identity in a checkpoint). */
RL_API uint64_t rl_checkpoint_spec_hash(const void *data, size_t len);

/* CRC-32C (Castagnoli, reflected, initial and final xor 0xffffffff) of len bytes. */
RL_API uint32_t rl_crc32c(const void *data, size_t len);

/* Encodes c as a whole file (header and payload) into a new buffer *buf of
 * *len bytes, which the caller frees with free(). Returns RL_OK or RL_ENOMEM. */
RL_API int rl_checkpoint_encode(const rl_checkpoint *c, void **buf, size_t *len);

/* Decodes a whole file of len bytes into *c (zeroed first; the caller
 * releases it with rl_checkpoint_fini, also after an error). Returns RL_OK,
 * RL_EDATA (truncated, trailing bytes, bad magic, bad checksum, malformed or
 * inconsistent payload) or RL_EVERSION (another format version), with a
 * detail saying what is wrong and where. Trusts nothing in buf. */
RL_API int rl_checkpoint_decode(const void *buf, size_t len, rl_checkpoint *c);

/* Reads and decodes the file at path, and refuses a checkpoint of another
 * spec (RL_EPRECOND) when spec_hash is not 0. The detail names path. Also
 * RL_ENOTFOUND (no such file) and RL_EIO. *c as for rl_checkpoint_decode. */
RL_API int rl_checkpoint_read(const char *path, uint64_t spec_hash, rl_checkpoint *c);

/* Writes the file bytes buf (from rl_checkpoint_encode) as
 * DIR/RL_CHECKPOINT_FILE atomically: a temporary file, fsync, the current
 * file linked as RL_CHECKPOINT_PREV_FILE (the older previous one removed),
 * the temporary renamed over the current, fsync of the directory. A crash at
 * any point leaves a good RL_CHECKPOINT_FILE (where hard links are refused,
 * the current file is renamed instead, and for a moment only the previous
 * one exists). Creates dir if needed. Returns RL_OK or RL_EIO naming the
 * file. */
RL_API int rl_checkpoint_write_file(const char *dir, const void *buf, size_t len);

/* Releases what *c holds and zeroes it. */
RL_API void rl_checkpoint_fini(rl_checkpoint *c);

#ifdef __cplusplus
}
#endif

#endif
