/* registry.c - expected and joined nodes, heartbeats and their metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "ringleader/clock.h"
#include "ringleader/mem.h"
#include "ringleader/ring.h"

void registry_init(registry *r, const rl_spec *spec)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mtx, NULL);
    rl_cond_init_monotonic(&r->cv);
    r->n = spec->n_nodes;
    r->nodes = rl_xcalloc((size_t)r->n, sizeof(node_entry));
    for (int i = 0; i < r->n; i++) {
        snprintf(r->nodes[i].id, sizeof(r->nodes[i].id), "%s", spec->nodes[i].id);
        snprintf(r->nodes[i].listen, sizeof(r->nodes[i].listen), "%s", spec->nodes[i].listen);
        r->nodes[i].capacity = spec->nodes[i].capacity;
        r->nodes[i].state = NODE_EXPECTED;
    }
}

void registry_fini(registry *r)
{
    for (int i = 0; r->nodes != NULL && i < r->n; i++)
        free(r->nodes[i].peer_wait_ms);
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
        uint64_t w = deadline_ms - now;
        if (w > 100) w = 100; /* wake to re-check stop requests */
        rl_cond_wait_until(&r->cv, &r->mtx, now + w);
    }
}

bool registry_node_alive(const node_entry *e, uint64_t now, uint64_t failure_timeout_ms)
{
    return e->state == NODE_JOINED && e->connected &&
           now - e->last_heartbeat_ms <= failure_timeout_ms;
}

int registry_missing(registry *r, char *buf, size_t len)
{
    int joined = 0;
    size_t off = 0;
    buf[0] = '\0';
    pthread_mutex_lock(&r->mtx);
    for (int i = 0; i < r->n; i++) {
        const node_entry *e = &r->nodes[i];
        if (e->state == NODE_JOINED) {
            joined++;
        } else if (off < len) {
            int w = snprintf(buf + off, len - off, "%s%s (%s)", off ? ", " : "", e->id, e->listen);
            off += w > 0 ? (size_t)w : 0;
        }
    }
    pthread_mutex_unlock(&r->mtx);
    return joined;
}
