/*
 * ring_tune.c - the ring's tuning policy, as functions of what every member
 * can see (the member list, this process's CPUs, the config): the pipeline
 * chunk, busy-polling and yielding while a link waits, and the TCP
 * congestion control of its links. Formation (ring_form.c) applies them.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT (rli_ncpu) */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "ring_internal.h"
#include "rli.h"

#define RING_DEFAULT_CHUNK 1048576u
#define RING_MIN_CHUNK     64u
/* Spinning saves a wake-up per frame while every member has a CPU of its
 * own; with members sharing CPUs it steals theirs. See docs/performance.md. */
#define RING_SPIN_AUTO_US 50
#define RING_SPIN_MAX_US  1000
/* Yielding lets a member sharing our CPU (often the one we wait for) run at
 * once, as Open MPI's mpi_yield_when_idle does; it pays only when members
 * fill every CPU at least twice over. See docs/performance.md. */
#define RING_YIELD_AUTO_US 200

size_t rli_tune_chunk_bytes(size_t cfg_chunk_bytes)
{
    size_t c = cfg_chunk_bytes ? cfg_chunk_bytes : RING_DEFAULT_CHUNK;
    return c < RING_MIN_CHUNK ? RING_MIN_CHUNK : c;
}

/* With the default chunk, halves let the reduce of one overlap the transfer
 * of the other; each chunk costs the receiver a wake-up, dear on crowded
 * cores, hence "at most two members on any host". See docs/performance.md. */
bool rli_tune_split_segments(size_t chunk_bytes, int most)
{
    return chunk_bytes == RING_DEFAULT_CHUNK && most <= 2;
}

/* cfg > 0: as given, < 0: none, 0: the automatic value; at most the max. */
static int tune_us(int cfg, int auto_us)
{
    int us = cfg > 0 ? cfg : cfg < 0 ? 0 : auto_us;
    return us > RING_SPIN_MAX_US ? RING_SPIN_MAX_US : us;
}

int rli_tune_spin_us(int cfg_spin_us, int local, int ncpu)
{
    return tune_us(cfg_spin_us, local <= ncpu ? RING_SPIN_AUTO_US : 0);
}

int rli_tune_yield_us(int cfg_yield_us, int local, int ncpu)
{
    return tune_us(cfg_yield_us, local >= 2 * ncpu ? RING_YIELD_AUTO_US : 0);
}

/* The host part of a tcp:// style URL ("tcp://H:port" -> H), in buf. */
static void url_host(const char *url, char *buf, size_t cap)
{
    const char *h = strstr(url, "://");
    h = h != NULL ? h + 3 : url;
    const char *end = strrchr(h, ':');
    size_t n = end != NULL ? (size_t)(end - h) : strlen(h);
    if (n >= cap) n = cap - 1;
    memcpy(buf, h, n);
    buf[n] = '\0';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void rli_host_counts(char *const *urls, int n, int self, int *mine, int *most)
{
    char(*host)[RL_URL_MAX] = rli_calloc((size_t)n, RL_URL_MAX);
    char **sorted = rli_calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        url_host(urls[i], host[i], RL_URL_MAX);
        sorted[i] = host[i];
    }
    qsort(sorted, (size_t)n, sizeof(char *), cmp_str);
    *mine = *most = 0;
    for (int i = 0, run = 0; i < n; i++) {
        run = i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0 ? run + 1 : 1;
        if (run > *most) *most = run;
        if (strcmp(sorted[i], host[self]) == 0) (*mine)++;
    }
    free(sorted);
    free(host);
}

int rli_ncpu(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
}

void rli_congestion_choose(const char *cfg, int local, int ncpu, const char *current,
                           rli_congestion_plan *p)
{
    memset(p, 0, sizeof(*p));
    if (cfg == NULL || cfg[0] == '\0' || strcmp(cfg, "auto") == 0) {
        /* bbr paces every send with a kernel timer, which only costs while
         * every member has a CPU; with members sharing CPUs those sends keep
         * data moving while the sender waits for one, so links stay as they
         * are. reno is always permitted, cubic only where
         * net.ipv4.tcp_allowed_congestion_control lists it (or as root).
         * See docs/performance.md. */
        if (local > ncpu) return;
        if (strncmp(current, "bbr", 3) == 0) {
            p->cand[p->n++] = "cubic";
            p->cand[p->n++] = "reno";
        }
        p->notsent_lowat = RLI_NOTSENT_LOWAT;
        return;
    }
    if (strcmp(cfg, "system") == 0) return;
    p->cand[p->n++] = cfg;
    p->required = true;
    p->notsent_lowat = RLI_NOTSENT_LOWAT;
}
