/* mem.c - allocations that abort on out-of-memory (mem.h); the library's
 * rli_ allocators (rli.h) are the same functions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringleader/mem.h"
#include "rli.h"

static void *mem_oom(size_t n)
{
    fprintf(stderr, "ringleader: out of memory allocating %zu bytes\n", n);
    abort();
}

void *rl_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : mem_oom(n);
}

void *rl_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : mem_oom(n * size);
}

void *rl_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : mem_oom(n);
}

char *rl_xstrdup(const char *s)
{
    return rl_xstrndup(s, strlen(s));
}

char *rl_xstrndup(const char *s, size_t n)
{
    char *p = rl_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *rli_malloc(size_t n)
{
    return rl_xmalloc(n);
}

void *rli_calloc(size_t n, size_t size)
{
    return rl_xcalloc(n, size);
}

void *rli_realloc(void *p, size_t n)
{
    return rl_xrealloc(p, n);
}

char *rli_strdup(const char *s)
{
    return rl_xstrdup(s);
}

char *rli_strndup(const char *s, size_t n)
{
    return rl_xstrndup(s, n);
}
