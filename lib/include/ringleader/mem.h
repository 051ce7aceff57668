/*
 * mem.h - allocation for small control-plane objects: on out-of-memory these
 * print "ringleader: out of memory allocating N bytes" and abort (bugs
 * abort, errors return; see STYLE.md). Large data buffers use malloc and
 * return RL_ENOMEM instead.
 */
#ifndef RINGLEADER_MEM_H
#define RINGLEADER_MEM_H

#include "export.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* As malloc, calloc, realloc and strdup, but never NULL: a request of 0
 * bytes gets a unique pointer, and failure aborts. Release with free. */
RL_API void *rl_xmalloc(size_t n);
RL_API void *rl_xcalloc(size_t n, size_t size);
RL_API void *rl_xrealloc(void *p, size_t n);
RL_API char *rl_xstrdup(const char *s);
/* A copy of the n bytes at s (which need not be NUL-terminated), with a NUL
 * after them. */
RL_API char *rl_xstrndup(const char *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif
