/*
 * reduce_ops.c - the reduction kernels, expanded from RL_DTYPE_LIST x RL_OP_LIST.
 *
 * This file is compiled with -O3 (lib/CMakeLists.txt): GCC 12 vectorises
 * these loops only at -O3 or with -ftree-vectorize. Pointers are accessed
 * through 1-byte-aligned typedefs because frames land at any offset in a
 * receive buffer; x86 vector loads do not need alignment, so the loops stay
 * vectorised (see docs/architecture.md, "The collective").
 */
#include <stdint.h>

#include "reduce_ops.h"
#include "rli.h"

#define OP_SUM(x, y) ((x) + (y))
#define OP_MIN(x, y) ((y) < (x) ? (y) : (x))
#define OP_MAX(x, y) ((y) > (x) ? (y) : (x))

#define DEFINE_KERNEL(DT, ctype, OPNAME)                                                           \
    typedef ctype u_##DT##_##OPNAME __attribute__((aligned(1), may_alias));                       \
    static void reduce_##DT##_##OPNAME(void *dst_, const void *a_, const void *b_, size_t n)       \
    {                                                                                              \
        u_##DT##_##OPNAME *dst = dst_;                                                             \
        const u_##DT##_##OPNAME *a = a_;                                                           \
        const u_##DT##_##OPNAME *b = b_;                                                           \
        for (size_t i = 0; i < n; i++) dst[i] = OP_##OPNAME(a[i], b[i]);                           \
    }

#define DEFINE_KERNELS_FOR(DT, ctype, size, name)                                                  \
    DEFINE_KERNEL(DT, ctype, SUM) DEFINE_KERNEL(DT, ctype, MIN) DEFINE_KERNEL(DT, ctype, MAX)
RL_DTYPE_LIST(DEFINE_KERNELS_FOR)

static const rli_reduce_fn kernels[RL_DTYPE_COUNT][RL_OP_COUNT] = {
#define KROW(DT, ctype, size, name) [RL_##DT] = {reduce_##DT##_SUM, reduce_##DT##_MIN, reduce_##DT##_MAX},
    RL_DTYPE_LIST(KROW)
#undef KROW
};

rli_reduce_fn rli_reduce_kernel(rl_dtype dt, rl_op op)
{
    RL_ASSERT((unsigned)dt < RL_DTYPE_COUNT && (unsigned)op < RL_OP_COUNT);
    return kernels[dt][op]; /* NULL for RL_OP_SUM_EXACT */
}

void rli_reduce(rl_dtype dt, rl_op op, void *dst, const void *a, const void *b, size_t n)
{
    rli_reduce_fn k = rli_reduce_kernel(dt, op);
    RL_ASSERT(k != NULL);
    k(dst, a, b, n);
}

size_t rl_dtype_size(rl_dtype dt)
{
    switch (dt) {
#define SZ(DT, ctype, size, name)                                                                  \
    case RL_##DT: return size;
        RL_DTYPE_LIST(SZ)
#undef SZ
    default: return 0;
    }
}

const char *rl_dtype_name(rl_dtype dt)
{
    switch (dt) {
#define NM(DT, ctype, size, name)                                                                  \
    case RL_##DT: return name;
        RL_DTYPE_LIST(NM)
#undef NM
    default: return "?";
    }
}

const char *rl_op_name(rl_op op)
{
    switch (op) {
#define NM(OP, name)                                                                               \
    case RL_OP_##OP: return name;
        RL_OP_LIST(NM)
#undef NM
    default: return "?";
    }
}
