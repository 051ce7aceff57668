/*
 * allreduce.c - the collectives over an rl_ring.
 *
 * Ring (large buffers): the buffer is cut into N segments and each segment
 * into chunks of cfg.chunk_bytes (or in two halves, see rl_ring.split_segments).
 * Reduce-scatter runs N-1 steps, all-gather
 * N-1 more; at step t member r receives one segment from its left
 * neighbour, reduces (or copies) it chunk by chunk, and forwards each chunk
 * to its right neighbour as soon as it is ready, so that sending, receiving
 * and reducing overlap. Every member moves 2(N-1)/N of the buffer each way.
 *
 * Recursive doubling (small buffers, N >= 4): log2 rounds of pairwise swaps.
 *
 * Recursive halving + doubling (mid-size buffers, N a power of two >= 4):
 * the ring's traffic in 2 log2(N) hops.
 *
 * Direct (small buffers): one round; every member sends its whole input to
 * every other, and each reduces the N inputs in rank order.
 *
 * Which of them runs is rli_allreduce_choose's decision, from the size and
 * rl_ring_config.algorithm (allreduce.h).
 *
 * Every frame names (epoch, seq, phase, step, chunk, src_rank); a frame
 * that is not exactly the one expected next on its link is dropped and
 * counted, never reduced.
 */
#include <string.h>

#include "reduce_ops.h"
#include "ringleader/clock.h"
#include "ring_internal.h"
#include "rli.h"

enum {
    PHASE_REDUCE_SCATTER = RLI_PHASE_REDUCE_SCATTER,
    PHASE_ALL_GATHER = RLI_PHASE_ALL_GATHER,
    PHASE_DIRECT = RLI_PHASE_DIRECT,
    PHASE_DOUBLING = RLI_PHASE_DOUBLING,
    PHASE_HALVING = RLI_PHASE_HALVING,
    PHASE_HALVING_AG = RLI_PHASE_HALVING_AG,
    PHASE_OFFER = RLI_PHASE_OFFER,
    PHASE_RELEASE = RLI_PHASE_RELEASE
};
static const char *const phase_names[] = {
    "reduce-scatter",    "all-gather",         "direct",     "recursive-doubling",
    "recursive-halving", "halving-all-gather", "pull-offer", "release"};

void (*rli_allreduce_hook)(int phase, int step, size_t chunk) = NULL;

typedef struct coll {
    rl_ring *r;
    uint64_t seq;
    rli_reduce_fn reduce; /* the kernel over elements of es bytes */
    size_t es;
    uint64_t deadline;
    /* The windowed sum (reduce_ops.h), else NULL: the result is rounded
     * into wout (f32) with the groups' codes wcode. The ring's all-gather
     * carries those f32 values; the other algorithms sum int64 terms and
     * round the whole result afterwards (allreduce_run). */
    const int32_t *wcode;
    float *wout;
    /* The ring's fused windowed sum, else NULL: the caller's f32 values.
     * The first hop carries them as they are; each next member puts its
     * own on their windows as it adds them to partial sums of es bytes
     * (rli_window_add_f32), kept in the ring's `out` buffer, and the member
     * that completes a segment rounds it into wout. */
    const float *wx;
} coll;

static int mod(int a, int n)
{
    return ((a % n) + n) % n;
}

/*
 * Frames of the one-round algorithm up to this size are written from the
 * caller's thread and waited for there (rli_link_send_now), which saves a
 * task-thread wake per frame (see docs/performance.md). Why this cannot
 * deadlock: a member blocks in such a send only while the peer's
 * kernel cannot take the frame. The member furthest behind (collective k)
 * has at most its frame k unread on any link (a peer at k+1 has read it,
 * a peer at k has read k-1), and a frame this size fits what a TCP
 * connection takes without the receiving program: the peer's initial
 * receive window (64 KiB with Linux's default tcp_rmem) plus our send
 * buffer (16 KiB initially). So it finishes its sends, then reads every
 * link, which lets the members ahead of it finish theirs. Larger frames go
 * through the callback-driven queue, as the ring's do.
 */
#define DIRECT_INLINE_MAX 65536

/* Sends m, a RING_CHUNK, to peer. Lock NOT held. */
static int send_msg(coll *c, int peer, const rl_msg *m)
{
    const rl_msg_ring_chunk *b = &m->u.ring_chunk;
    int phase = (int)b->phase, step = (int)b->step;
    rli_link *l = c->r->links[peer];
    int rv;
    if ((phase == PHASE_DIRECT || phase == PHASE_DOUBLING) && b->data.len <= DIRECT_INLINE_MAX) {
        /* Blocked until the peer's link takes the frame: waiting on it too. */
        uint64_t t0 = rl_clock_ns();
        rv = rli_link_send_now(l, m, c->deadline);
        c->r->wait_ns[peer] += rl_clock_ns() - t0;
    } else {
        rli_ring_lock(c->r);
        rv = c->r->err != 0 ? rli_ring_link_error(c->r) : rli_link_send(l, m);
        rli_ring_unlock(c->r);
    }
    rli_ring_lock(c->r);
    int serr = l->serr;
    rli_ring_unlock(c->r);
    if (rv != RL_OK && serr != 0) /* the peer closed or reset the link */
        rv = rli_err_prefix(RL_EPEER, "allreduce epoch %llu seq %llu %s step %d, peer %s (rank %d)",
                            (unsigned long long)c->r->epoch, (unsigned long long)c->seq,
                            phase_names[phase], step, c->r->ids[peer], peer);
    return rv;
}

/* Frames of these phases may be pulled (ring_pull.c): the ring's and
 * recursive halving's, whose senders leave the data alone until released. */
static bool phase_pulls(int phase)
{
    return phase == PHASE_REDUCE_SCATTER || phase == PHASE_ALL_GATHER ||
           phase == PHASE_HALVING || phase == PHASE_HALVING_AG;
}

/* m, a RING_CHUNK of this collective carrying data[0..len) (data non-NULL
 * even when len is 0: an empty bin is still sent). */
static void chunk_msg(coll *c, rl_msg *m, int phase, int step, size_t chunk, const void *data,
                      size_t len)
{
    rl_msg_init(m, RL_MSG_RING_CHUNK);
    rl_msg_ring_chunk *b = &m->u.ring_chunk;
    b->epoch = c->r->epoch;
    b->seq = c->seq;
    b->phase = (uint64_t)phase;
    b->step = (uint64_t)step;
    b->chunk = chunk;
    b->src_rank = (uint64_t)c->r->rank;
    b->data.ptr = data;
    b->data.len = len;
}

/* Our offer to be pulled from (ring_pull.c), sent to peer ahead of our
 * first large frame to it in this collective. Lock NOT held. */
static int send_offer(coll *c, int peer)
{
    rl_msg o;
    chunk_msg(c, &o, PHASE_OFFER, 0, 0, c->r, 0);
    rl_msg_ring_chunk *b = &o.u.ring_chunk;
    rli_pull_offer(c->r, &b->pull_pid, &b->pull_fence, &b->pull_nonce);
    RL_SET_FIELD(b, ring_chunk, pull_pid);
    RL_SET_FIELD(b, ring_chunk, pull_fence);
    RL_SET_FIELD(b, ring_chunk, pull_nonce);
    c->r->links[peer]->pull_offered_seq = c->seq;
    return send_msg(c, peer, &o);
}

/* Queues one RING_CHUNK to peer whose data borrows data[0..len); a large
 * frame of a phase that pulls stays here for the peer to pull, or goes
 * inline behind our offer until the peer has answered it (ring_pull.c).
 * Lock NOT held. */
static int send_chunk(coll *c, int peer, int phase, int step, size_t chunk, const void *data,
                      size_t len)
{
    rl_msg m;
    chunk_msg(c, &m, phase, step, chunk, data, len);
    rli_link *l = c->r->links[peer];
    bool large = phase_pulls(phase) && c->r->pull_offer && !l->tls && len >= RLI_PULL_MIN;
    if (large && l->pull_tx == RLI_PULL_YES) {
        m.u.ring_chunk.pull_addr = (uint64_t)(uintptr_t)data;
        m.u.ring_chunk.data.len = 0;
        RL_SET_FIELD(&m.u.ring_chunk, ring_chunk, pull_addr);
    } else if (large && l->pull_tx == RLI_PULL_UNKNOWN && l->pull_offered_seq != c->seq) {
        int rv = send_offer(c, peer);
        if (rv != RL_OK) return rv;
    }
    if (large && l->pull_tx != RLI_PULL_NO) l->pull_sent_seq = c->seq; /* we await its release */
    return send_msg(c, peer, &m);
}

/* The ring's abort error if it was aborted, else `fallback`. */
static int abort_or(coll *c, int fallback)
{
    rli_ring_lock(c->r);
    int err = c->r->err;
    if (err != 0) fallback = rli_ring_link_error(c->r);
    rli_ring_unlock(c->r);
    return fallback;
}

/*
 * The ring's frames (got != NULL in recv_chunk) may be pulled or carry a
 * pull offer or a release (ring_pull.c). Is b, from l, a frame whose data
 * is to be pulled, and may it be?
 */
static bool pull_frame(const rli_link *l, const rl_msg_ring_chunk *b, size_t want_len)
{
    return RL_HAS_FIELD(b, ring_chunk, pull_addr) && b->data.len == 0 && want_len > 0 &&
           l->pull_rx == RLI_PULL_YES;
}

/* b, the current collective's offer frame from l: answer it (once); false
 * if it lacks a field. */
static bool pull_offer_frame(coll *c, rli_link *l, const rl_msg_ring_chunk *b)
{
    if (!RL_HAS_FIELD(b, ring_chunk, pull_pid) || !RL_HAS_FIELD(b, ring_chunk, pull_fence) ||
        !RL_HAS_FIELD(b, ring_chunk, pull_nonce))
        return false;
    if (l->pull_rx == RLI_PULL_UNKNOWN)
        rli_pull_accept(l, b->pull_pid, b->pull_fence, b->pull_nonce, c->seq);
    l->pull_seen_seq = c->seq;
    return true;
}

/*
 * Waits for the frame (phase, step, chunk) from peer, dropping and counting
 * anything else at the head of that link. On success *frame_len is the size
 * to consume and (*data, want_len) the chunk data (borrowed from the link
 * buffer). `more`: further frames are due on this link in this collective
 * (the link may read ahead). The ring's and halving's frames pass `got`,
 * which receives the frame's fields: its data may then be left to pull
 * (pull_addr set, *data NULL), and an offer before it is answered on the
 * way. Lock NOT held.
 */
static int recv_chunk(coll *c, int peer, int phase, int step, size_t chunk, size_t want_len,
                      bool more, const uint8_t **data, size_t *frame_len, rl_msg_ring_chunk *got)
{
    rl_ring *r = c->r;
    rli_link *l = r->links[peer];
    for (;;) {
        const uint8_t *p;
        size_t n;
        uint64_t t0 = rl_clock_ns();
        int rv = rli_link_recv(l, &p, &n, c->deadline, more);
        r->wait_ns[peer] += rl_clock_ns() - t0;
        if (rv == RL_ETIMEDOUT)
            return abort_or(c, rli_err(RL_ETIMEDOUT, "allreduce epoch %llu seq %llu %s step %d: "
                                       "no data from %s (rank %d) before the deadline",
                                       (unsigned long long)r->epoch, (unsigned long long)c->seq,
                                       phase_names[phase], step, r->ids[peer], peer));
        if (rv != RL_OK)
            return abort_or(c, rli_err_prefix(RL_EPEER, "allreduce epoch %llu seq %llu %s step "
                                              "%d, peer %s (rank %d)",
                                              (unsigned long long)r->epoch,
                                              (unsigned long long)c->seq, phase_names[phase],
                                              step, r->ids[peer], peer));
        rl_msg m;
        uint64_t *drop = NULL;
        bool side = false; /* a pull offer, answered: not the frame awaited */
        if (rl_msg_decode(p, n, &m) != RL_OK) {
            drop = &r->stats.dropped_malformed;
        } else {
            const rl_msg_ring_chunk *b = &m.u.ring_chunk;
            bool pulled = m.type == RL_MSG_RING_CHUNK && got != NULL && pull_frame(l, b, want_len);
            if (m.type != RL_MSG_RING_CHUNK) drop = &r->stats.dropped_malformed;
            else if (b->epoch != r->epoch || b->seq < c->seq) drop = &r->stats.dropped_stale;
            else if (got != NULL && b->seq == c->seq && b->src_rank == (uint64_t)peer &&
                     b->phase == (uint64_t)PHASE_OFFER) {
                if (pull_offer_frame(c, l, b)) side = true;
                else drop = &r->stats.dropped_malformed;
            } else if (b->seq != c->seq || b->phase != (uint64_t)phase ||
                     b->step != (uint64_t)step || b->chunk != chunk ||
                     b->src_rank != (uint64_t)peer)
                drop = &r->stats.dropped_foreign;
            else if (b->data.len != want_len && !pulled) drop = &r->stats.dropped_malformed;
            else if (RL_HAS_FIELD(b, ring_chunk, pull_addr) && !pulled)
                drop = &r->stats.dropped_malformed;
            else {
                *data = pulled ? NULL : b->data.ptr;
                if (got != NULL) *got = *b;
                if (pulled) l->pull_seen_seq = c->seq;
            }
            rl_msg_fini(&m);
        }
        rli_ring_lock(r);
        if (drop != NULL) (*drop)++;
        else r->stats.frames_in++;
        rli_ring_unlock(r);
        if (drop == NULL && !side) {
            *frame_len = n;
            return RL_OK;
        }
        rli_link_consume(l, n);
    }
}

/* Waits until every queued frame has been written. Lock NOT held. */
static int wait_sends(coll *c)
{
    rl_ring *r = c->r;
    int rv;
    rli_ring_lock(r);
    while ((rv = rli_ring_sends_state(r)) == -1) {
        if (rli_ring_wait(r, c->deadline) == RL_ETIMEDOUT) {
            rv = rli_err(RL_ETIMEDOUT, "allreduce epoch %llu seq %llu: sends not finished "
                         "before the deadline", (unsigned long long)r->epoch,
                         (unsigned long long)c->seq);
            break;
        }
    }
    rli_ring_unlock(r);
    return rv;
}

static int allreduce_direct(coll *c, const uint8_t *in, uint8_t *out, size_t count)
{
    rl_ring *r = c->r;
    size_t bytes = count * c->es;
    int n = r->size, rv = RL_OK;
    const uint8_t **from = rli_calloc((size_t)n, sizeof(*from));
    size_t *flen = rli_calloc((size_t)n, sizeof(*flen));
    uint8_t *mine = NULL;

    for (int p = 0; p < n && rv == RL_OK; p++)
        if (p != r->rank) rv = send_chunk(c, p, PHASE_DIRECT, 0, 0, in, bytes);
    for (int p = 0; p < n && rv == RL_OK; p++)
        if (p != r->rank)
            rv = recv_chunk(c, p, PHASE_DIRECT, 0, 0, bytes, false, &from[p], &flen[p], NULL);
    /* Our input is referenced by the queued frames: let them go before out
     * (which may be in) is written. */
    if (rv == RL_OK) rv = wait_sends(c);
    if (rv == RL_OK) {
        if (out == in && r->rank != 0) {
            mine = rli_malloc(bytes);
            memcpy(mine, in, bytes);
        }
        from[r->rank] = mine ? mine : in;
        c->reduce(out, from[0], from[1], count);
        for (int p = 2; p < n; p++) c->reduce(out, out, from[p], count);
        for (int p = 0; p < n; p++)
            if (p != r->rank) rli_link_consume(r->links[p], flen[p]);
    }
    free(mine);
    free(from);
    free(flen);
    return rv;
}

/* Pulls the len bytes at addr of peer's memory (recv_chunk gave no data)
 * into `into`, or the ring's pull buffer if NULL; *data is where they are. */
static int pull_chunk(coll *c, int peer, int phase, int step, uint64_t addr, void *into,
                      size_t len, const uint8_t **data)
{
    rl_ring *r = c->r;
    if (into == NULL && (into = rli_pull_buffer(r, len)) == NULL)
        return rli_err(RL_ENOMEM, "allreduce: %zu bytes to pull a chunk into", len);
    int rv = rli_pull_read(r->links[peer], addr, into, len, c->seq);
    if (rv != RL_OK)
        return abort_or(c, rli_err_prefix(RL_EPEER, "allreduce epoch %llu seq %llu %s step %d, "
                                          "peer %s (rank %d)", (unsigned long long)r->epoch,
                                          (unsigned long long)c->seq, phase_names[phase], step,
                                          r->ids[peer], peer));
    rli_ring_lock(r);
    r->stats.bytes_pulled += len;
    rli_ring_unlock(r);
    *data = into;
    return RL_OK;
}

/* Lock NOT held. Sends peer our release frame: we have pulled all we will
 * from it in this collective, and answer its offer. */
static int send_release(coll *c, int peer)
{
    rl_msg m;
    chunk_msg(c, &m, PHASE_RELEASE, 0, 0, c->r, 0);
    m.u.ring_chunk.pull_ok = c->r->links[peer]->pull_rx == RLI_PULL_YES;
    RL_SET_FIELD(&m.u.ring_chunk, ring_chunk, pull_ok);
    return send_msg(c, peer, &m);
}

/* Lock NOT held. Waits for peer's release frame and keeps its answer. */
static int recv_release(coll *c, int peer)
{
    const uint8_t *data;
    size_t flen;
    rl_msg_ring_chunk got = {0};
    int rv = recv_chunk(c, peer, PHASE_RELEASE, 0, 0, 0, false, &data, &flen, &got);
    if (rv != RL_OK) return rv;
    rli_link *l = c->r->links[peer];
    l->pull_tx = RL_HAS_FIELD(&got, ring_chunk, pull_ok) && got.pull_ok ? RLI_PULL_YES
                                                                         : RLI_PULL_NO;
    rli_link_consume(l, flen);
    return RL_OK;
}

/*
 * The end of a collective that may have pulled (ring_pull.c): our release to
 * every member we pulled from or got an offer from, once we are done, then
 * theirs from every member we sent a frame to pull or an offer, before our
 * buffers go back to the caller. Every member sends its releases before it
 * waits for any, so no two wait on each other.
 */
static int pull_release(coll *c)
{
    rl_ring *r = c->r;
    int rv = RL_OK;
    for (int p = 0; p < r->size && rv == RL_OK; p++)
        if (r->links[p] != NULL && r->links[p]->pull_seen_seq == c->seq) rv = send_release(c, p);
    if (rv == RL_OK) rv = wait_sends(c);
    for (int p = 0; p < r->size && rv == RL_OK; p++)
        if (r->links[p] != NULL && r->links[p]->pull_sent_seq == c->seq) rv = recv_release(c, p);
    return rv;
}

/* One pairwise swap: sends len bytes at send to peer and receives its frame
 * of want bytes for the same (phase, step). Halving's frames may be pulled
 * (ring_pull.c): into `into` (NULL: the pull buffer). Lock NOT held. */
static int swap_chunk(coll *c, int peer, int phase, int step, const void *send, size_t len,
                      size_t want, void *into, const uint8_t **data, size_t *flen)
{
    rl_msg_ring_chunk got = {0};
    int rv = send_chunk(c, peer, phase, step, 0, send, len);
    if (rv == RL_OK)
        rv = recv_chunk(c, peer, phase, step, 0, want, false, data, flen,
                        phase_pulls(phase) ? &got : NULL);
    if (rv == RL_OK && *data == NULL) rv = pull_chunk(c, peer, phase, step, got.pull_addr, into,
                                                      want, data);
    return rv;
}

/* dst = (lower rank's value) op (higher rank's), where dst holds ours: both
 * sides of a swap combine in the same order, so they hold the same bits. */
static void combine_ordered(coll *c, uint8_t *dst, const uint8_t *theirs, bool we_are_lower,
                            size_t n)
{
    if (we_are_lower) c->reduce(dst, dst, theirs, n);
    else c->reduce(dst, theirs, dst, n);
}

/*
 * Recursive doubling, for frames small enough to be sent from the caller's
 * thread: log2(P) rounds among P, the largest power of two <= N; in round k
 * each of them swaps its partial result with the one whose index differs in
 * bit k, and both combine the two, lower rank first, so all hold bitwise the
 * same value. The other N-P members fold in first: member 2i (i < N-P) sends
 * its input to 2i+1 and gets the result back from it at the end. Fewer
 * messages than the one-round algorithm (log2(P) + 2 per member, not N-1),
 * which is what counts when members outnumber cores. Frames: phase
 * "recursive-doubling", step 0 the fold-in, 1..log2(P) the rounds, then the
 * fold-out.
 */
static int allreduce_doubling(coll *c, const uint8_t *in, uint8_t *out, size_t count)
{
    rl_ring *r = c->r;
    int n = r->size, me = r->rank, p = 1, rounds = 0;
    while (p * 2 <= n) {
        p *= 2;
        rounds++;
    }
    int rem = n - p;
    size_t bytes = count * c->es;
    const uint8_t *data;
    size_t flen;
    int rv = RL_OK;
    uint8_t *acc = rli_malloc(bytes + 1); /* in stays unwritten until the end */
    memcpy(acc, in, bytes);
    if (me < 2 * rem && me % 2 == 0) { /* folded: hand over, then wait for the result */
        rv = send_chunk(c, me + 1, PHASE_DOUBLING, 0, 0, acc, bytes);
        if (rv == RL_OK)
            rv = recv_chunk(c, me + 1, PHASE_DOUBLING, rounds + 1, 0, bytes, false, &data, &flen,
                            NULL);
        if (rv == RL_OK) {
            memcpy(out, data, bytes);
            rli_link_consume(r->links[me + 1], flen);
        }
        free(acc);
        return rv;
    }
    if (me < 2 * rem) { /* take the folded member's input */
        rv = recv_chunk(c, me - 1, PHASE_DOUBLING, 0, 0, bytes, false, &data, &flen, NULL);
        if (rv == RL_OK) {
            combine_ordered(c, acc, data, false, count);
            rli_link_consume(r->links[me - 1], flen);
        }
    }
    int v = me < 2 * rem ? me / 2 : me - rem; /* index among the P */
    for (int k = 0; k < rounds && rv == RL_OK; k++) {
        int w = v ^ (1 << k), partner = w < rem ? 2 * w + 1 : w + rem;
        rv = swap_chunk(c, partner, PHASE_DOUBLING, k + 1, acc, bytes, bytes, NULL, &data,
                        &flen);
        if (rv != RL_OK) break;
        combine_ordered(c, acc, data, me < partner, count);
        rli_link_consume(r->links[partner], flen);
    }
    if (rv == RL_OK && me < 2 * rem)
        rv = send_chunk(c, me - 1, PHASE_DOUBLING, rounds + 1, 0, acc, bytes);
    if (rv == RL_OK) memcpy(out, acc, bytes);
    free(acc);
    return rv;
}

/*
 * Recursive halving then doubling (Rabenseifner), for N a power of two and
 * mid-size buffers: the reduce-scatter in log2(N) pairwise steps, each
 * member keeping half of its current range and sending the other half to
 * the member whose index differs in that bit; then the all-gather in
 * reverse. It moves the ring's 2(N-1)/N of the buffer in 2 log2(N) hops
 * instead of 2(N-1). Every element is reduced by exactly one member, so all
 * hold the same bits. Works in out; a sent range is never written while
 * its frame is queued (the kept and the given halves are disjoint).
 */
static int allreduce_halving(coll *c, const uint8_t *in, uint8_t *out, size_t count)
{
    rl_ring *r = c->r;
    int n = r->size, me = r->rank, rounds = 0;
    while ((1 << rounds) < n) rounds++;
    size_t es = c->es, lo[32], hi[32];
    size_t a = 0, b = count;
    int rv = RL_OK;
    if (out != in) memcpy(out, in, count * es);
    for (int k = 0; k < rounds && rv == RL_OK; k++) {
        int partner = me ^ (1 << k);
        size_t mid = a + (b - a) / 2;
        bool low = (me & (1 << k)) == 0;
        size_t ka = low ? a : mid, kb = low ? mid : b; /* kept */
        size_t ga = low ? mid : a, gb = low ? b : mid; /* given */
        lo[k] = a;
        hi[k] = b;
        const uint8_t *data;
        size_t flen;
        rv = swap_chunk(c, partner, PHASE_HALVING, k, out + ga * es, (gb - ga) * es,
                        (kb - ka) * es, NULL, &data, &flen);
        if (rv != RL_OK) break;
        combine_ordered(c, out + ka * es, data, me < partner, kb - ka);
        rli_link_consume(r->links[partner], flen);
        a = ka;
        b = kb;
    }
    for (int k = rounds - 1; k >= 0 && rv == RL_OK; k--) {
        int partner = me ^ (1 << k);
        /* The partner holds the rest of the range [lo[k], hi[k]). */
        size_t pa = a == lo[k] ? b : lo[k], pb = a == lo[k] ? hi[k] : a;
        const uint8_t *data;
        size_t flen;
        rv = swap_chunk(c, partner, PHASE_HALVING_AG, k, out + a * es, (b - a) * es,
                        (pb - pa) * es, out + pa * es, &data, &flen);
        if (rv != RL_OK) break;
        if (data != out + pa * es) memcpy(out + pa * es, data, (pb - pa) * es);
        rli_link_consume(r->links[partner], flen);
        a = lo[k];
        b = hi[k];
    }
    if (rv == RL_OK) rv = pull_release(c);
    return rv;
}

#define RING_SPLIT_MIN 65536 /* no half-segment chunk below this (rl_ring.split_segments) */
static int allreduce_ring(coll *c, const uint8_t *in, uint8_t *out, size_t count)
{
    rl_ring *r = c->r;
    if (c->wout != NULL && c->wx == NULL) /* the ring rounds only in the fused form */
        return rli_err(RL_EINTERNAL, "allreduce: the windowed sum on the ring without its input");
    int n = r->size, me = r->rank;
    int left = mod(me - 1, n), right = mod(me + 1, n);
    size_t es = c->es;
    size_t base = count / (size_t)n, rem = count % (size_t)n;
    size_t chunk_elems = r->chunk_bytes / es ? r->chunk_bytes / es : 1;
    size_t seg_elems = base + (rem ? 1 : 0);
    if (r->split_segments && seg_elems < 2 * chunk_elems && seg_elems * es >= 2 * RING_SPLIT_MIN)
        chunk_elems = (seg_elems + 1) / 2; /* from what every member shares */
    int rv = RL_OK;

#define SEG_OFF(s) ((size_t)(s) * base + ((size_t)(s) < rem ? (size_t)(s) : rem))
#define SEG_CNT(s) (base + ((size_t)(s) < rem ? 1u : 0u))
#define NCHUNKS(s) ((SEG_CNT(s) + chunk_elems - 1) / chunk_elems)

    /* Reduce-scatter step 0: our own segment, straight from the input. */
    {
        size_t off = SEG_OFF(me), cnt = SEG_CNT(me), nc = NCHUNKS(me);
        for (size_t k = 0; k < nc && rv == RL_OK; k++) {
            size_t e0 = k * chunk_elems, ne = cnt - e0 < chunk_elems ? cnt - e0 : chunk_elems;
            if (c->wx != NULL) /* our own values: the next member puts them on the windows */
                rv = send_chunk(c, right, PHASE_REDUCE_SCATTER, 0, k, c->wx + off + e0,
                                ne * sizeof(float));
            else
                rv = send_chunk(c, right, PHASE_REDUCE_SCATTER, 0, k, in + (off + e0) * es,
                                ne * es);
        }
    }
    int total = 2 * (n - 1);
    for (int t = 0; t < total && rv == RL_OK; t++) {
        int phase = t < n - 1 ? PHASE_REDUCE_SCATTER : PHASE_ALL_GATHER;
        int step = phase == PHASE_REDUCE_SCATTER ? t : t - (n - 1);
        int seg = phase == PHASE_REDUCE_SCATTER ? mod(me - step - 1, n) : mod(me - step, n);
        int nphase = t + 1 < n - 1 ? PHASE_REDUCE_SCATTER : PHASE_ALL_GATHER;
        int nstep = nphase == PHASE_REDUCE_SCATTER ? t + 1 : t + 1 - (n - 1);
        size_t off = SEG_OFF(seg), cnt = SEG_CNT(seg), nc = NCHUNKS(seg);
        for (size_t k = 0; k < nc && rv == RL_OK; k++) {
            size_t e0 = k * chunk_elems, ne = cnt - e0 < chunk_elems ? cnt - e0 : chunk_elems;
            uint8_t *dst = out + (off + e0) * es;
            const uint8_t *data;
            size_t flen;
            rl_msg_ring_chunk got = {0};
            bool more = t + 1 < total || k + 1 < nc;
            /* The windowed sum's f32 frames: the all-gather's and, fused, the first hop's. */
            bool f32 = c->wout != NULL &&
                       (phase == PHASE_ALL_GATHER || (c->wx != NULL && t == 0));
            size_t want = f32 ? ne * sizeof(float) : ne * es;
            rv = recv_chunk(c, left, phase, step, k, want, more, &data, &flen, &got);
            if (rv != RL_OK) break;
            /* The link reads ahead and sends while we reduce. */
            if (rli_allreduce_hook != NULL) rli_allreduce_hook(phase, step, k);
            if (data == NULL) { /* to pull: the all-gather's straight into place */
                void *into = phase != PHASE_ALL_GATHER ? NULL
                             : c->wout != NULL         ? (void *)(c->wout + off + e0)
                                                       : (void *)dst;
                rv = pull_chunk(c, left, phase, step, got.pull_addr, into, want, &data);
                if (rv != RL_OK) break;
            }
            size_t fes = es; /* the forwarded chunk's element size */
            if (phase == PHASE_REDUCE_SCATTER && c->wx != NULL) {
                int inb = t == 0 ? (int)sizeof(float) : (int)es;
                if (t == n - 2) { /* our segment is complete */
                    dst = (uint8_t *)(c->wout + off + e0);
                    fes = sizeof(float);
                    rli_window_add_round_f32(c->wx + off + e0, off + e0, ne, c->wcode, data, inb,
                                             c->wout + off + e0);
                } else {
                    rli_window_add_f32(c->wx + off + e0, off + e0, ne, c->wcode, data, inb, dst,
                                       (int)es);
                }
            } else if (phase == PHASE_REDUCE_SCATTER) {
                c->reduce(dst, in + (off + e0) * es, data, ne);
            } else if (c->wout != NULL) {
                dst = (uint8_t *)(c->wout + off + e0);
                fes = sizeof(float);
                if (data != dst) memcpy(dst, data, ne * fes);
            } else if (data != dst) {
                memcpy(dst, data, ne * es);
            }
            rli_link_consume(r->links[left], flen);
            if (t + 1 < total) rv = send_chunk(c, right, nphase, nstep, k, dst, ne * fes);
        }
    }
#undef SEG_OFF
#undef SEG_CNT
#undef NCHUNKS
    if (rv == RL_OK) rv = pull_release(c);
    return rv;
}

/* ---- Which algorithm ------------------------------------------------------ */

/* The largest buffers direct and halving carry: direct sends the whole
 * buffer in one frame, halving half of it at most. */
#define DIRECT_FRAME_MAX  (RL_PROTO_MAX_FRAME / 2)
#define HALVING_FRAME_MAX RL_PROTO_MAX_FRAME
/* Auto's limits (allreduce.h); the figures behind them are in docs/performance.md. */
#define AUTO_DIRECT_MAX      (512u << 10) /* one round: at most this... */
#define AUTO_DIRECT_SENT_MAX (2u << 20)   /* ...and at most this sent per member */
#define AUTO_DOUBLING_MAX    65536u
#define AUTO_HALVING_MAX     (4u << 20) /* above, the ring is as fast with smaller frames */

static const char *const algorithm_names[] = {
#define ALGORITHM_NAME(N, name) name,
    RL_ALLREDUCE_ALGORITHM_LIST(ALGORITHM_NAME)
#undef ALGORITHM_NAME
};

const char *rl_allreduce_algorithm_name(rl_allreduce_algorithm a)
{
    return (unsigned)a < RL_ALLREDUCE_ALGORITHM_COUNT ? algorithm_names[a] : "?";
}

int rl_allreduce_algorithm_parse(const char *name, rl_allreduce_algorithm *out)
{
    for (int a = 0; name != NULL && a < RL_ALLREDUCE_ALGORITHM_COUNT; a++)
        if (strcmp(name, algorithm_names[a]) == 0) {
            *out = (rl_allreduce_algorithm)a;
            return RL_OK;
        }
    return rli_err(RL_EINVAL, "no all-reduce algorithm is called \"%s\" (auto, ring, direct, "
                   "doubling, halving)", name != NULL ? name : "");
}

static bool is_pow2(int n)
{
    return (n & (n - 1)) == 0;
}

/* Auto (allreduce.h): doubling for the smallest buffers from N = 4, halving
 * up to 4 MiB for N a power of two, direct up to small_bytes, the ring above. */
static rl_allreduce_algorithm choose_auto(size_t small_bytes, int size, size_t bytes)
{
    size_t direct_max = small_bytes;
    if (small_bytes == SIZE_MAX) {
        direct_max = AUTO_DIRECT_SENT_MAX / (size_t)(size > 1 ? size - 1 : 1);
        if (direct_max > AUTO_DIRECT_MAX) direct_max = AUTO_DIRECT_MAX;
    }
    size_t doubling_max = direct_max < AUTO_DOUBLING_MAX ? direct_max : AUTO_DOUBLING_MAX;
    if (size >= 4 && bytes <= doubling_max && bytes <= DIRECT_INLINE_MAX)
        return RL_ALLREDUCE_DOUBLING;
    if (size >= 4 && is_pow2(size) && small_bytes != 0 && bytes <= AUTO_HALVING_MAX)
        return RL_ALLREDUCE_HALVING;
    if (bytes <= direct_max && bytes <= DIRECT_FRAME_MAX) return RL_ALLREDUCE_DIRECT;
    return RL_ALLREDUCE_RING;
}

rl_allreduce_algorithm rli_allreduce_choose(rl_allreduce_algorithm want, size_t small_bytes,
                                            int size, size_t bytes)
{
    switch (want) {
    case RL_ALLREDUCE_RING: return RL_ALLREDUCE_RING;
    case RL_ALLREDUCE_DIRECT:
        return bytes <= DIRECT_FRAME_MAX ? RL_ALLREDUCE_DIRECT : RL_ALLREDUCE_RING;
    case RL_ALLREDUCE_DOUBLING:
        return bytes <= DIRECT_INLINE_MAX ? RL_ALLREDUCE_DOUBLING : RL_ALLREDUCE_RING;
    case RL_ALLREDUCE_HALVING:
        return is_pow2(size) && bytes <= HALVING_FRAME_MAX ? RL_ALLREDUCE_HALVING
                                                           : RL_ALLREDUCE_RING;
    default: return choose_auto(small_bytes, size, bytes);
    }
}

static int run_algorithm(coll *c, rl_allreduce_algorithm a, const uint8_t *in, uint8_t *out,
                         size_t count)
{
    switch (a) {
    case RL_ALLREDUCE_DOUBLING: return allreduce_doubling(c, in, out, count);
    case RL_ALLREDUCE_HALVING: return allreduce_halving(c, in, out, count);
    case RL_ALLREDUCE_DIRECT: return allreduce_direct(c, in, out, count);
    default: return allreduce_ring(c, in, out, count);
    }
}

/* The collective over count elements of c->es bytes reduced by c->reduce. */
static int allreduce_run(coll *c, const void *in, void *out, size_t count)
{
    rl_ring *r = c->r;
    if (count > SIZE_MAX / c->es)
        return rli_err(RL_ETOOBIG, "rl_allreduce: %zu elements is too many", count);

    /* One collective at a time per ring: its links' receive sides belong to
     * the calling thread until it returns (ring_internal.h). */
    rli_ring_lock(r);
    c->seq = ++r->seq;
    int rv = r->err != 0 ? rli_ring_link_error(r) : RL_OK;
    rli_ring_unlock(r);
    if (rv == RL_OK) {
        size_t bytes = count * c->es;
        /* AUTO stands for "nothing to exchange": one member or no elements. */
        rl_allreduce_algorithm a = r->size == 1 || count == 0 ? RL_ALLREDUCE_AUTO
                                   : c->wx != NULL               ? RL_ALLREDUCE_RING
                                                                 : rli_allreduce_choose(
                                                         r->algorithm, r->small_bytes, r->size,
                                                         bytes);
        if (a == RL_ALLREDUCE_AUTO) {
            if (out != in && bytes > 0) memmove(out, in, bytes);
        } else {
            /* Our right neighbour may pull from our buffers while the fence
             * shows this collective, and never after (ring_pull.c). */
            rli_pull_fence_set(r, c->seq);
            rv = run_algorithm(c, a, in, out, count);
            rli_pull_fence_set(r, 0);
        }
        if (rv == RL_OK && c->wout != NULL && a != RL_ALLREDUCE_RING)
            rli_window_round_f32(out, c->wout, 0, count, c->wcode);
        rli_ring_settle(r);
    }
    if (rv != RL_OK && rv != RL_EINVAL) {
        char why[256];
        snprintf(why, sizeof(why), "%s", rl_errdetail());
        rl_ring_abort(r, rv, why);
        rli_err(rv, "%s", why);
    }
    return rv;
}

int rl_allreduce_exact(rl_ring *r, const rl_exact *in, rl_exact *out, size_t count,
                       uint64_t deadline_ms)
{
    if (r == NULL || (count > 0 && (in == NULL || out == NULL)))
        return rli_err(RL_EINVAL, "rl_allreduce_exact: bad arguments");
    coll c = {.r = r, .reduce = rli_exact_reduce, .es = sizeof(rl_exact), .deadline = deadline_ms};
    return allreduce_run(&c, in, out, count);
}

/* RL_OP_SUM_EXACT in binned form: the values become accumulators, which are
 * reduced, then rounded once into out (in is read before out is written). */
static int sum_exact_binned(rl_ring *r, const void *in, void *out, size_t count, rl_dtype dt,
                            uint64_t deadline_ms)
{
    if (count > SIZE_MAX / sizeof(rl_exact))
        return rli_err(RL_ETOOBIG, "rl_allreduce: %zu elements is too many", count);
    rl_exact *acc = malloc(count * sizeof(rl_exact) + 1);
    if (acc == NULL)
        return rli_err(RL_ENOMEM, "rl_allreduce: %zu exact accumulators", count);
    rl_exact_clear(acc, count);
    if (dt == RL_F64) rl_exact_add_f64(acc, in, count);
    else rl_exact_add_f32(acc, in, count);
    int rv = rl_allreduce_exact(r, acc, acc, count, deadline_ms);
    if (rv == RL_OK && dt == RL_F64) rl_exact_to_f64(acc, out, count);
    else if (rv == RL_OK) rl_exact_to_f32(acc, out, count);
    free(acc);
    return rv;
}

/* r->scratch holds at least `bytes`. */
static int scratch_reserve(rl_ring *r, size_t bytes)
{
    if (r->scratch_len >= bytes) return RL_OK;
    free(r->scratch);
    r->scratch_len = 0;
    if ((r->scratch = malloc(bytes)) == NULL)
        return rli_err(RL_ENOMEM, "rl_allreduce: %zu bytes of scratch for sum_exact", bytes);
    r->scratch_len = bytes;
    return RL_OK;
}

/* RL_OP_SUM_EXACT in windowed form (f32, reduce_ops.h): the groups' codes
 * are max-reduced, the terms become integers on their group's window and
 * are summed, and each sum is rounded once. The ring does it in one pass
 * with partial sums of rli_window_wire_bytes each (the fused form); the
 * other algorithms sum an int64 copy of the terms. A group with an Inf or
 * NaN term anywhere sends every member to the binned form, which defines
 * those. */
static int sum_exact_windowed(rl_ring *r, const float *in, float *out, size_t count,
                              uint64_t deadline_ms)
{
    size_t ng = (count + RLI_WINDOW_GROUP - 1) / RLI_WINDOW_GROUP;
    if (count > SIZE_MAX / sizeof(int64_t))
        return rli_err(RL_ETOOBIG, "rl_allreduce: %zu elements is too many", count);
    int32_t *code = malloc(ng * sizeof(int32_t));
    if (code == NULL) return rli_err(RL_ENOMEM, "rl_allreduce: sum_exact of %zu elements", count);
    rli_window_codes_f32(in, count, code);
    int rv = rl_allreduce(r, code, code, ng, RL_I32, RL_OP_MAX, deadline_ms);
    bool fused = r->size > 1 && rli_allreduce_choose(r->algorithm, r->small_bytes, r->size,
                                                     count * sizeof(int64_t)) == RL_ALLREDUCE_RING;
    size_t wb = fused ? (size_t)rli_window_wire_bytes(r->size) : sizeof(int64_t);
    if (rv == RL_OK && rli_window_special(code, ng)) {
        rv = sum_exact_binned(r, in, out, count, RL_F32, deadline_ms);
    } else if (rv == RL_OK && (rv = scratch_reserve(r, count * wb)) == RL_OK) {
        coll c = {.r = r, .es = wb, .deadline = deadline_ms, .wcode = code, .wout = out};
        if (fused) {
            c.wx = in;
        } else {
            rli_window_quantize_f32(in, count, code, r->scratch);
            c.reduce = rli_reduce_kernel(RL_I64, RL_OP_SUM);
        }
        rv = allreduce_run(&c, r->scratch, r->scratch, count);
    }
    free(code);
    return rv;
}

/* RL_OP_SUM_EXACT: windowed for large f32 buffers, binned otherwise. The
 * choice depends on count and dtype only, so every member makes it alike. */
static int allreduce_sum_exact(rl_ring *r, const void *in, void *out, size_t count, rl_dtype dt,
                               uint64_t deadline_ms)
{
    if (dt != RL_F32 && dt != RL_F64)
        return rli_err(RL_EINVAL, "rl_allreduce: sum_exact takes f32 or f64, not %s",
                       rl_dtype_name(dt));
    if (dt == RL_F32 && count >= RLI_WINDOW_MIN_COUNT)
        return sum_exact_windowed(r, in, out, count, deadline_ms);
    return sum_exact_binned(r, in, out, count, dt, deadline_ms);
}

int rl_allreduce(rl_ring *r, const void *in, void *out, size_t count, rl_dtype dt, rl_op op,
                 uint64_t deadline_ms)
{
    if (r == NULL || (unsigned)dt >= RL_DTYPE_COUNT || (unsigned)op >= RL_OP_COUNT ||
        (count > 0 && (in == NULL || out == NULL)))
        return rli_err(RL_EINVAL, "rl_allreduce: bad arguments");
    if (op == RL_OP_SUM_EXACT) return allreduce_sum_exact(r, in, out, count, dt, deadline_ms);
    coll c = {.r = r, .reduce = rli_reduce_kernel(dt, op), .es = rl_dtype_size(dt),
              .deadline = deadline_ms};
    return allreduce_run(&c, in, out, count);
}

int rl_barrier(rl_ring *r, uint64_t deadline_ms)
{
    int32_t one = 1, sum = 0;
    int rv = rl_allreduce(r, &one, &sum, 1, RL_I32, RL_OP_SUM, deadline_ms);
    if (rv == RL_OK && r != NULL && sum != rl_ring_size(r))
        return rli_err(RL_EINTERNAL, "barrier: %d of %d members counted", sum, rl_ring_size(r));
    return rv;
}
