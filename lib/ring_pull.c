/*
 * ring_pull.c - same-host pulls: a ring member copies a large chunk
 * straight out of its left neighbour's memory with process_vm_readv(2)
 * (Linux cross-memory attach) instead of reading it from loopback TCP.
 * The protocol and why it is safe are at ring_internal.h ("ring_pull.c").
 *
 * The fence is two words in the sender's heap: a random nonce, fixed for the
 * ring, and the sequence number of the collective running, 0 between
 * collectives. A receiver reads it after every pull; a pid that is not the
 * sender's any more (reused, another namespace) cannot show the nonce.
 */
#define _GNU_SOURCE /* process_vm_readv */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "auth.h"
#include "ring_internal.h"
#include "rli.h"

struct rli_pull_fence {
    uint64_t nonce;
    _Atomic uint64_t live; /* the collective's sequence number, 0 when none runs */
};

void rli_pull_ring_init(rl_ring *r)
{
    const char *e = getenv("RINGLEADER_CMA");
    r->pull_offer = e == NULL || (strcmp(e, "off") != 0 && strcmp(e, "0") != 0);
    r->fence = rli_calloc(1, sizeof(*r->fence));
    if (rli_random(&r->fence->nonce, sizeof(r->fence->nonce)) != RL_OK) r->pull_offer = false;
    atomic_init(&r->fence->live, 0);
}

void rli_pull_ring_free(rl_ring *r)
{
    free(r->fence);
    free(r->pullbuf);
}

void rli_pull_fence_set(rl_ring *r, uint64_t seq)
{
    /* Sequentially consistent: a closing store is visible before any later
     * write of the caller's buffers (see rli_pull_read). */
    atomic_store(&r->fence->live, seq);
}

void rli_pull_offer(const rl_ring *r, uint64_t *pid, uint64_t *fence, uint64_t *nonce)
{
    *pid = (uint64_t)getpid();
    *fence = (uint64_t)(uintptr_t)r->fence;
    *nonce = r->fence->nonce;
}

/* Reads `len` bytes at `addr` of process pid into dst; 0 or an errno. */
static int peek_remote(uint64_t pid, uint64_t addr, void *dst, size_t len)
{
    size_t done = 0;
    for (int tries = 0; done < len && tries < 64; tries++) {
        struct iovec li = {.iov_base = (uint8_t *)dst + done, .iov_len = len - done};
        struct iovec ri = {.iov_base = (void *)(uintptr_t)(addr + done), .iov_len = len - done};
        ssize_t n = process_vm_readv((pid_t)pid, &li, 1, &ri, 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? errno : EFAULT;
        done += (size_t)n;
    }
    return done == len ? 0 : EFAULT;
}

/* Does the fence at `fence` of pid show (nonce, seq)? 0, or an errno, or
 * -1 when it shows something else. */
static int fence_check(uint64_t pid, uint64_t fence, uint64_t nonce, uint64_t seq)
{
    uint64_t f[2];
    int e = peek_remote(pid, fence, f, sizeof(f));
    if (e != 0) return e;
    return f[0] == nonce && f[1] == seq ? 0 : -1;
}

void rli_pull_accept(rli_link *l, uint64_t pid, uint64_t fence, uint64_t nonce, uint64_t seq)
{
    bool ok = pid <= (uint64_t)INT32_MAX && fence != 0 && fence_check(pid, fence, nonce, seq) == 0;
    l->pull_rx = ok ? RLI_PULL_YES : RLI_PULL_NO;
    if (ok) {
        l->pull_pid = pid;
        l->pull_fence = fence;
        l->pull_nonce = nonce;
    }
}

int rli_pull_read(rli_link *l, uint64_t addr, void *dst, size_t len, uint64_t seq)
{
    int e = peek_remote(l->pull_pid, addr, dst, len);
    if (e != 0)
        return rli_err(RL_EPEER, "link to rank %d: pulling %zu bytes from pid %llu: %s",
                       l->peer_rank, len, (unsigned long long)l->pull_pid, strerror(e));
    /* The data before the fence: if the fence still shows seq, the sender
     * had not closed it when the data was read, and it writes its buffers
     * again only after closing it. */
    atomic_thread_fence(memory_order_seq_cst);
    e = fence_check(l->pull_pid, l->pull_fence, l->pull_nonce, seq);
    if (e != 0)
        return rli_err(RL_EPEER, "link to rank %d: %s while its data was pulled", l->peer_rank,
                       e < 0 ? "the sender left the collective" : strerror(e));
    return RL_OK;
}

void *rli_pull_buffer(rl_ring *r, size_t len)
{
    if (r->pullbuf_len >= len) return r->pullbuf;
    free(r->pullbuf);
    r->pullbuf_len = 0;
    if ((r->pullbuf = malloc(len)) != NULL) r->pullbuf_len = len;
    return r->pullbuf;
}
