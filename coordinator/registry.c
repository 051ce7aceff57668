/* registry.c - expected and joined nodes, heartbeats and their metrics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry.h"
#include "ringleader/ring.h"

void registry_init(registry *r, const rl_spec *spec)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mtx, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->n = spec->n_nodes;
    r->nodes = calloc((size_t)r->n + 1, sizeof(node_entry));
    if (r->nodes == NULL) { /* a few KiB per node: the coordinator cannot run without it */
        fprintf(stderr, "ringleader: out of memory for %d nodes\n", r->n);
        abort();
    }
    for (int i = 0; i < r->n; i++) {
        snprintf(r->nodes[i].id, sizeof(r->nodes[i].id), "%s", spec->nodes[i].id);
        snprintf(r->nodes[i].listen, sizeof(r->nodes[i].listen), "%s", spec->nodes[i].listen);
        r->nodes[i].capacity = spec->nodes[i].capacity;
        r->nodes[i].state = NODE_EXPECTED;
    }
}

void registry_fini(registry *r)
{
    free(r->nodes);
    pthread_mutex_destroy(&r->mtx);
    pthread_cond_destroy(&r->cv);
}

int registry_count(registry *r, node_state s)
{
    int k = 0;
    pthread_mutex_lock(&r->mtx);
    for (int i = 0; i < r->n; i++)
        if (r->nodes[i].state == s) k++;
    pthread_mutex_unlock(&r->mtx);
    return k;
}

int registry_wait_joined(registry *r, uint64_t deadline_ms)
{
    pthread_mutex_lock(&r->mtx);
    for (;;) {
        int k = 0;
        for (int i = 0; i < r->n; i++)
            if (r->nodes[i].state == NODE_JOINED) k++;
        uint64_t now = rl_clock_ms();
        if (k == r->n || now >= deadline_ms || r->stopping) {
            pthread_mutex_unlock(&r->mtx);
            return k;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t w = deadline_ms - now;
        if (w > 100) w = 100; /* wake to re-check stop requests */
        ts.tv_nsec += (long)w * 1000000L;
        while (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->cv, &r->mtx, &ts);
    }
}
