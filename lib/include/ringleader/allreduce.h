/*
 * allreduce.h - in-place or out-of-place all-reduce over an rl_ring.
 *
 * Four algorithms (rl_ring_config.algorithm names one, or auto chooses by
 * buffer size S and members N):
 *   ring: reduce-scatter then all-gather around the ring, cut into
 *     pipelined chunks; each member sends and receives 2(N-1)/N of S. Any
 *     size; auto's choice above the others' limits.
 *   direct: one round in which every member sends its buffer to every other
 *     and each reduces all N in rank order: one hop, (N-1) x S sent. Auto's
 *     choice at or below small_bytes (default: 512 KiB and at most 2 MiB
 *     sent per member) where the next two do not apply.
 *   doubling (recursive doubling): log2 rounds of pairwise swaps of the
 *     whole buffer, fewer messages than direct. Auto's choice from N = 4 up
 *     to the lesser of 64 KiB and small_bytes.
 *   halving (recursive halving then doubling, Rabenseifner): the ring's
 *     traffic in 2 log2(N) hops instead of 2(N-1). N a power of two only;
 *     auto's choice from N = 4 up to 4 MiB, unless small_bytes is 0.
 * All give every member bitwise-identical results, and the same result run
 * to run for a fixed membership, order and algorithm; for integer data all
 * algorithms agree bitwise too.
 */
#ifndef RINGLEADER_ALLREDUCE_H
#define RINGLEADER_ALLREDUCE_H

#include "export.h"

#include <stddef.h>
#include <stdint.h>

#include "exact.h"
#include "ring.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RL_DTYPE_LIST(X)                                                                           \
    X(F32, float, 4, "f32")                                                                        \
    X(F64, double, 8, "f64")                                                                       \
    X(I32, int32_t, 4, "i32")                                                                      \
    X(I64, int64_t, 8, "i64")

typedef enum rl_dtype {
#define RL_DTYPE_ENUM(N, ctype, size, name) RL_##N,
    RL_DTYPE_LIST(RL_DTYPE_ENUM)
#undef RL_DTYPE_ENUM
        RL_DTYPE_COUNT
} rl_dtype;

#define RL_OP_LIST(X)                                                                              \
    X(SUM, "sum")                                                                                  \
    X(MIN, "min")                                                                                  \
    X(MAX, "max")                                                                                  \
    X(SUM_EXACT, "sum_exact")

typedef enum rl_op {
#define RL_OP_ENUM(N, name) RL_OP_##N,
    RL_OP_LIST(RL_OP_ENUM)
#undef RL_OP_ENUM
        RL_OP_COUNT
} rl_op;

RL_API size_t rl_dtype_size(rl_dtype dt);
RL_API const char *rl_dtype_name(rl_dtype dt);
RL_API const char *rl_op_name(rl_op op);

/* The name of an algorithm ("auto", "ring", "direct", "doubling",
 * "halving"), or "?" for a value not in RL_ALLREDUCE_ALGORITHM_LIST. */
RL_API const char *rl_allreduce_algorithm_name(rl_allreduce_algorithm a);
/* Sets *out to the algorithm called name: RL_OK, or RL_EINVAL (*out untouched). */
RL_API int rl_allreduce_algorithm_parse(const char *name, rl_allreduce_algorithm *out);

/*
 * Reduces count elements of dtype dt with op across every member of r and
 * leaves the result in out on every member. in may equal out (in place).
 * Every member must make the same sequence of calls with the same count,
 * dtype and op.
 *
 * Returns RL_OK, or an error before deadline_ms (absolute, rl_clock_ms) when
 * a peer dies, stalls, sends garbage, or the ring was aborted: RL_EPEER,
 * RL_ECLOSED, RL_ETIMEDOUT, RL_ECANCELED, with a detail naming the peer,
 * epoch and sequence number. After an error the ring is aborted (peers fail
 * fast) and the contents of out are unspecified, while in (if it is not out)
 * is unchanged: re-form the ring with a new epoch and retry from in.
 */
RL_API int rl_allreduce(rl_ring *r, const void *in, void *out, size_t count, rl_dtype dt, rl_op op,
                        uint64_t deadline_ms);

/*
 * RL_OP_SUM_EXACT (f32 and f64 only; RL_EINVAL for the integer dtypes): a
 * sum of the members' values in a form whose addition is associative,
 * rounded once at the end: the same bits whatever the member count, ring
 * order or algorithm (docs/exactness.md). Two forms, chosen by dtype and
 * count alone, so every member makes the same choice:
 *  - binned (f64, and f32 below 16384 elements): the exact accumulators of
 *    exact.h travel, 32 bytes per element (4x the bytes of RL_OP_SUM for
 *    f64, 8x for f32); RL_ENOMEM if count x 32 bytes cannot be had;
 *  - windowed (f32 from 16384 elements): per group of 128 elements a window
 *    agreed by a max all-reduce, each term rounded to a multiple of 2^-40
 *    of the window and summed as int64; 1.5x the bytes of RL_OP_SUM. A term
 *    that is Inf or NaN on any member sends every member to the binned form.
 */

/*
 * The all-reduce of count exact accumulators: out[i] = the sum over members
 * of in[i] (rl_exact_merge). For callers that add many terms per member
 * exactly (the trainer adds each block's gradient) and round once after.
 * in may equal out; contract and errors as rl_allreduce.
 */
RL_API int rl_allreduce_exact(rl_ring *r, const rl_exact *in, rl_exact *out, size_t count,
                              uint64_t deadline_ms);

/* A barrier: returns when every member has entered it (or an error, as above). */
RL_API int rl_barrier(rl_ring *r, uint64_t deadline_ms);

#ifdef __cplusplus
}
#endif
#endif
