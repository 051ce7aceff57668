/*
 * rli.h - internal helpers shared across lib/ (never installed, never seen
 * by coordinator/ or node/). Prefix rli_ for cross-file internals.
 */
#ifndef RINGLEADER_RLI_H
#define RINGLEADER_RLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringleader/err.h"

/* Sets this thread's error detail (printf-style) and returns err. */
int rli_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current detail with more context: "ctx: <old detail>". Returns err. */
int rli_err_prefix(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Converters: the only places foreign codes become rl_err. */
int rli_err_from_nng(int nng_rv);
int rli_err_from_errno(int e);
/* A msgpack_unpack_return: SUCCESS -> RL_OK, NOMEM_ERROR -> RL_ENOMEM, any
 * other result (EXTRA_BYTES, CONTINUE, PARSE_ERROR, unknown) -> RL_EPROTO. */
int rli_err_from_msgpack(int unpack_rv);

/* Bugs abort, errors return. */
#define RL_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) rli_assert_fail(#cond, __FILE__, __LINE__);                                   \
    } while (0)
void rli_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Small control-plane allocations abort on OOM (Redis zmalloc style). */
void *rli_malloc(size_t n);
void *rli_calloc(size_t n, size_t size);
void *rli_realloc(void *p, size_t n);
char *rli_strdup(const char *s);
char *rli_strndup(const char *s, size_t n);

/* Monotonic clock. */
uint64_t rli_now_us(void);
uint64_t rli_now_ms(void);

/* model.c: false sends every CPU down the portable gradient kernels (tests
 * compare the hand-vectorised ones against them). */
extern bool rli_model_simd;

#endif
