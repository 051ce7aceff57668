/*
 * ring_link.c - one framed link between two members: its receive buffer,
 * its send queue, and how the collective's thread waits on them (the
 * threading rules are at the top of ring_internal.h).
 *
 * A frame is a 4-byte little-endian length and one proto frame. Sends go
 * through a FIFO of frames whose bulk data is borrowed from the caller; a
 * direct link (plain TCP of a formed ring) is written by the collective's
 * own thread with sendmsg(2), any other link by nng's callbacks.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "ring_internal.h"
#include "rli.h"
#include "wire.h"

static void link_send_cb(void *arg);
static void link_retired_recv(rli_link *l);
static bool ring_poll(rl_ring *r, rli_link *in, int slice_ms, uint64_t deadline_ms);

/* TLS links: the collective's receive ended (link_tls_wait), or a retired
 * link's (rli_link_retire). */
static void link_tls_recv_cb(void *arg)
{
    rli_link *l = arg;
    pthread_mutex_lock(&l->ep->mtx);
    l->rdone = true;
    if (l->retired) link_retired_recv(l);
    pthread_cond_broadcast(&l->ep->cv);
    pthread_mutex_unlock(&l->ep->mtx);
}

/* TLS links: the caller's own send ended (rli_link_send_now). */
static void link_tls_send_now_cb(void *arg)
{
    rli_link *l = arg;
    pthread_mutex_lock(&l->ep->mtx);
    l->ddone = true;
    pthread_cond_broadcast(&l->ep->cv);
    pthread_mutex_unlock(&l->ep->mtx);
}

rli_link *rli_link_new(rl_endpoint *ep, nng_stream *s, size_t rcap, void (*hello_cb)(void *))
{
    rli_link *l = rli_calloc(1, sizeof(*l));
    l->ep = ep;
    l->stream = s;
    l->fd = l->sock = -1; /* found when a ring claims the link (rl_ring_form) */
    l->lowat = 1;
    l->peer_rank = -1;
    l->tls = rli_stream_is_tls(s);
    l->rcap = rcap;
    l->rbuf = rli_malloc(rcap);
    /* TLS: callbacks, so that the waits are the link's own (ring_internal.h) */
    void (*rcb)(void *) = l->tls ? link_tls_recv_cb : NULL;
    void (*dcb)(void *) = l->tls ? link_tls_send_now_cb : NULL;
    if (nng_aio_alloc(&l->haio, hello_cb, l) != 0 || nng_aio_alloc(&l->raio, rcb, l) != 0 ||
        nng_aio_alloc(&l->daio, dcb, l) != 0 || nng_aio_alloc(&l->saio, link_send_cb, l) != 0) {
        fprintf(stderr, "ringleader: cannot allocate nng aio\n");
        abort();
    }
    return l;
}

void rli_link_free(rli_link *l)
{
    if (l == NULL) return;
    nng_stream_close(l->stream);
    nng_aio_stop(l->haio);
    nng_aio_stop(l->raio);
    nng_aio_stop(l->daio);
    nng_aio_stop(l->saio);
    nng_aio_free(l->haio);
    nng_aio_free(l->raio);
    nng_aio_free(l->daio);
    nng_aio_free(l->saio);
    nng_stream_free(l->stream);
    free(l->rbuf);
    for (size_t i = 0; i < l->sq_count; i++)
        free(l->sq[(l->sq_head + i) % l->sq_cap]);
    free(l->sq);
    while (l->sfree != NULL) {
        rli_sframe *f = l->sfree;
        l->sfree = f->next_free;
        free(f);
    }
    free(l);
}

nng_duration rli_until(uint64_t deadline_ms)
{
    uint64_t now = rli_now_ms();
    if (now >= deadline_ms) return 0;
    /* nng durations are int32 and negative ones mean "infinite" / "default" */
    return deadline_ms - now > INT32_MAX ? INT32_MAX : (nng_duration)(deadline_ms - now);
}

void rli_link_post(rli_link *l, nng_aio *aio, nng_duration timeout)
{
    nng_iov iov = {.iov_buf = l->rbuf + l->rlen, .iov_len = l->rcap - l->rlen};
    nng_aio_set_iov(aio, 1, &iov);
    /* A TLS link's own wait bounds its receive (link_tls_wait): an nng
     * timeout there would shut the connection, even under a read-ahead
     * that outlives the collective which posted it. */
    bool own_wait = aio == l->raio && l->tls;
    nng_aio_set_timeout(aio, own_wait ? NNG_DURATION_INFINITE : timeout);
    l->rpending = true;
    if (aio == l->raio) l->rdone = false;
    nng_stream_recv(l->stream, aio);
}

void rli_link_make_room(rli_link *l, size_t need)
{
    if (l->rpos > 0) {
        memmove(l->rbuf, l->rbuf + l->rpos, l->rlen - l->rpos);
        l->rlen -= l->rpos;
        l->rpos = 0;
    }
    if (need > l->rcap) {
        l->rbuf = rli_realloc(l->rbuf, need);
        l->rcap = need;
    }
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int rli_link_peek(rli_link *l, const uint8_t **p, size_t *n, size_t *need)
{
    size_t avail = l->rlen - l->rpos;
    *need = 4 + 4096;
    if (avail < 4) return 0;
    uint32_t flen = get_le32(l->rbuf + l->rpos);
    if (flen == 0 || flen > RL_PROTO_MAX_FRAME) return RL_EPROTO;
    if (avail < 4 + (size_t)flen) {
        *need = 4 + (size_t)flen;
        return 0;
    }
    *p = l->rbuf + l->rpos + 4;
    *n = flen;
    return 1;
}

/* The collective's receive on raio has finished: account for it. */
static void link_recv_done(rli_link *l)
{
    l->rpending = false;
    int rv = nng_aio_result(l->raio);
    if (rv == 0) {
        size_t got = nng_aio_count(l->raio);
        l->rlen += got;
        if (l->ring != NULL) {
            rli_ring_lock(l->ring);
            l->ring->stats.bytes_in += got;
            rli_ring_unlock(l->ring);
        }
    } else if (rv != NNG_ECANCELED) { /* cancelled: only rli_ring_settle does */
        l->rerr = rv;
    }
}

/*
 * Caller's thread, no receive pending: sleeps in poll(2) on the link's own
 * socket until it has bytes, so that the receive posted next completes
 * inline in nng_stream_recv. A frame then wakes one thread (this one)
 * instead of two (nng's poller, then this one). While it waits it also
 * writes the queued frames of the ring's direct links as their sockets take
 * them (ring_poll). Only a hint: whatever poll says, the caller then posts
 * and waits on its aio as before. rl_ring_abort closes the stream from
 * another thread; nng shuts the socket down then (and closes the
 * descriptor only when the link is freed, after the collective), which
 * ends the poll at once; the slices bound the wait if it did not.
 */
#define LINK_POLL_SLICE_MS   10
#define LINK_LOWAT_MAX       (4u << 20)
#define LINK_LOWAT_GIVEUP_MS 100

/* Sets fd's SO_RCVLOWAT to v if it is not that already. */
static void link_set_lowat(rli_link *l, int v)
{
    if (v != l->lowat && setsockopt(l->fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) == 0)
        l->lowat = v;
}

static void link_wait_readable(rli_link *l, size_t missing, uint64_t deadline_ms)
{
    if (l->fd < 0) return;
    /* Wake when the rest of the frame is there, not at every segment: the
     * kernel holds poll(2) back until `missing` bytes are readable (it
     * also wakes on a shrinking window, an error or the peer closing, so
     * this cannot wait on bytes that cannot come). Only the rest of a frame
     * whose length prefix we have read counts, and only on a direct link:
     * every receive on it comes through here, while a link that is not
     * direct also reads ahead through nng's own poller, which would go on
     * honouring a mark left from an earlier frame. */
    if (l->direct)
        link_set_lowat(l, missing > LINK_LOWAT_MAX ? (int)LINK_LOWAT_MAX
                          : missing > 0            ? (int)missing
                                                   : 1);
    rl_endpoint *ep = l->ep;
    int spin = l->ring != NULL ? l->ring->spin_us : 0;
    if (spin > 0) { /* first spin a little (rl_ring_config.spin_us), sends unattended */
        uint64_t t0 = rli_now_us();
        while (rli_now_us() - t0 < (uint64_t)spin && rli_until(deadline_ms) > 0) {
            struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
            if (poll(&pfd, 1, 0) > 0) return;
        }
    }
    int yield = l->ring != NULL ? l->ring->yield_us : 0;
    uint64_t t0 = l->lowat > 1 ? rli_now_ms() : 0;
    pthread_mutex_lock(&ep->mtx);
    if (yield > 0) { /* give the CPU to whoever shares it, for a while (rl_ring_config.yield_us) */
        uint64_t y0 = rli_now_us();
        while (!l->closed && rli_now_us() - y0 < (uint64_t)yield && rli_until(deadline_ms) > 0) {
            if (ring_poll(l->ring, l, 0, deadline_ms)) { /* and keeps queued sends going */
                pthread_mutex_unlock(&ep->mtx);
                return;
            }
            pthread_mutex_unlock(&ep->mtx);
            sched_yield();
            pthread_mutex_lock(&ep->mtx);
        }
    }
    for (int i = 0; i < 100000; i++) { /* bounded; the deadline ends it first */
        if (l->closed || rli_until(deadline_ms) == 0) break;
        if (ring_poll(l->ring, l, LINK_POLL_SLICE_MS, deadline_ms)) break;
        /* Long without the frame: wake on any byte from now on, in case a
         * kernel does not wake a low-water wait whose bytes cannot fit in
         * the receive buffer (Linux raises the buffer to fit, and wakes
         * under memory pressure): at worst a delay, never a hang. */
        if (l->lowat > 1 && rli_now_ms() - t0 >= LINK_LOWAT_GIVEUP_MS) link_set_lowat(l, 1);
    }
    pthread_mutex_unlock(&ep->mtx);
}

/*
 * TLS links, lock NOT held: waits until *done (set by aio's callback) or
 * deadline_ms. At the deadline it closes the stream, which ends the
 * operation whatever state nng's TLS layer is in (its own timeout does not,
 * once the connection has failed: ring_internal.h), and returns
 * RL_ETIMEDOUT. Either way the aio is idle on return.
 */
static int link_tls_wait(rli_link *l, nng_aio *aio, const bool *done, uint64_t deadline_ms)
{
    rl_endpoint *ep = l->ep;
    pthread_mutex_lock(&ep->mtx);
    while (!*done && rli_endpoint_wait(ep, deadline_ms) == RL_OK) {
    }
    bool late = !*done;
    if (late) l->closed = true;
    pthread_mutex_unlock(&ep->mtx);
    if (late) nng_stream_close(l->stream);
    nng_aio_wait(aio);
    return late ? RL_ETIMEDOUT : RL_OK;
}

/* Waits for the collective's receive on l (posted) until deadline_ms. */
static void link_recv_wait(rli_link *l, uint64_t deadline_ms)
{
    if (!l->tls) {
        nng_aio_wait(l->raio); /* plain TCP and IPC honour the aio's timeout */
        link_recv_done(l);
        return;
    }
    int rv = link_tls_wait(l, l->raio, &l->rdone, deadline_ms);
    link_recv_done(l);
    if (rv == RL_ETIMEDOUT) l->rerr = NNG_ETIMEDOUT;
}

int rli_link_recv(rli_link *l, const uint8_t **p, size_t *n, uint64_t deadline_ms, bool read_ahead)
{
    for (;;) {
        size_t need;
        int rv = rli_link_peek(l, p, n, &need);
        if (rv == 1) {
            /* Read ahead into the tail while the caller works, if a chunk
             * fits there; never move the frame we hand out. */
            size_t want = l->ring != NULL ? l->ring->chunk_bytes + 8192 : 4096;
            if (want > l->rcap / 4) want = l->rcap / 4;
            /* Not on a direct link: its sends progress only while this
             * thread polls, never while it waits on nng (ring_poll). */
            if (read_ahead && !l->direct && !l->rpending && l->rerr == 0 &&
                l->rcap - l->rlen >= want)
                rli_link_post(l, l->raio, rli_until(deadline_ms));
            return RL_OK;
        }
        if (rv != 0) {
            l->rerr = NNG_EPROTO;
            return rli_err(RL_EPROTO, "link to rank %d: frame length prefix out of range",
                           l->peer_rank);
        }
        if (l->rerr != 0)
            return rli_err(l->rerr == NNG_ETIMEDOUT ? RL_ETIMEDOUT : RL_EPEER,
                           "link to rank %d: %s", l->peer_rank,
                           l->rerr == NNG_ETIMEDOUT ? "no data before the deadline"
                                                    : nng_strerror(l->rerr));
        if (!l->rpending) {
            size_t avail = l->rlen - l->rpos;
            rli_link_make_room(l, need);
            link_wait_readable(l, avail >= 4 ? need - avail : 0, deadline_ms);
            /* Posted under the lock, after a look at l->closed: nng 1.5.2
             * leaves a receive posted on a closed TCP stream pending until
             * its timeout, so one posted after rl_ring_abort closed the
             * stream would wait out the deadline. The aio has no callback,
             * so nng calls nothing of ours under the lock. */
            pthread_mutex_lock(&l->ep->mtx);
            bool closed = l->closed;
            if (!closed) rli_link_post(l, l->raio, rli_until(deadline_ms));
            pthread_mutex_unlock(&l->ep->mtx);
            if (closed) {
                l->rerr = NNG_ECLOSED;
                continue;
            }
        }
        link_recv_wait(l, deadline_ms);
    }
}

void rli_link_consume(rli_link *l, size_t n)
{
    l->rpos += 4 + n;
    /* Rewind only when no receive is writing into the tail. */
    if (l->rpos == l->rlen && !l->rpending) l->rpos = l->rlen = 0;
}

void rli_ring_settle(rl_ring *r)
{
    for (int p = 0; p < r->size; p++) {
        rli_link *l = r->links[p];
        /* A TLS read-ahead stays posted: nng 1.5.2 would shut the whole
         * connection to cancel it (ring_internal.h). */
        if (l == NULL || !l->rpending || l->tls) continue;
        nng_aio_cancel(l->raio);
        nng_aio_wait(l->raio);
        link_recv_done(l);
    }
}

static size_t sframe_size(const rli_sframe *f)
{
    return f->hdr_len + f->data_len;
}

/* The unsent bytes of the first nf queued frames of l (s_done of them are
 * written), as at most max (base, len) segments; returns how many. */
static unsigned link_queue_segments(const rli_link *l, size_t nf, const uint8_t **base, size_t *len,
                                    unsigned max)
{
    unsigned n = 0;
    size_t skip = l->s_done;
    for (size_t i = 0; i < nf && n + 2 <= max; i++) {
        const rli_sframe *f = l->sq[(l->sq_head + i) % l->sq_cap];
        const uint8_t *seg[2] = {f->hdr, f->data};
        size_t sl[2] = {f->hdr_len, f->data_len};
        for (int k = 0; k < 2; k++) {
            if (sl[k] <= skip) {
                skip -= sl[k];
                continue;
            }
            base[n] = seg[k] + skip;
            len[n] = sl[k] - skip;
            n++;
            skip = 0;
        }
    }
    return n;
}

/*
 * A direct link (a plain TCP link of a formed ring, see rl_ring_form) is
 * written by the collective's own thread: non-blocking sendmsg(2) on the
 * socket, the rest of the queue whenever that thread next waits (it polls
 * the socket for room while it waits for data, link_wait_readable, or for
 * its sends to finish, rli_ring_wait). No nng send is ever posted on it, so
 * the bytes cannot interleave with nng's, and no nng thread is woken. Lock
 * held.
 */
#define LINK_DIRECT_IOV 32
static void link_direct_write(rli_link *l)
{
    while (l->sq_count > 0 && l->serr == 0 && !l->closed) {
        const uint8_t *base[LINK_DIRECT_IOV];
        size_t len[LINK_DIRECT_IOV];
        unsigned niov = link_queue_segments(l, l->sq_count, base, len, LINK_DIRECT_IOV);
        struct iovec iov[LINK_DIRECT_IOV];
        for (unsigned k = 0; k < niov; k++)
            iov[k] = (struct iovec){.iov_base = (void *)(uintptr_t)base[k], .iov_len = len[k]};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = niov};
        ssize_t n = sendmsg(l->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                l->serr = errno == EPIPE || errno == ECONNRESET ? NNG_ECONNRESET : NNG_ECLOSED;
            return;
        }
        l->s_done += (size_t)n;
        while (l->sq_count > 0) { /* retire the frames now written */
            rli_sframe *f = l->sq[l->sq_head];
            size_t fs = sframe_size(f);
            if (l->s_done < fs) break;
            l->s_done -= fs;
            if (l->ring != NULL) l->ring->stats.bytes_out += fs;
            f->next_free = l->sfree;
            l->sfree = f;
            l->sq_head = (l->sq_head + 1) % l->sq_cap;
            l->sq_count--;
        }
    }
}

static rl_endpoint *r_ep(rl_ring *r, rli_link *l)
{
    return r != NULL ? r->ep : l->ep;
}

/* Does direct link l have bytes to write? Lock held. */
static bool link_direct_pending(const rli_link *l)
{
    return l != NULL && l->direct && l->sq_count > 0 && l->serr == 0 && !l->closed;
}

/*
 * Lock held; released while waiting. Waits up to slice_ms (and the deadline)
 * until `in` (if not NULL) has bytes or one of r's direct links with queued
 * frames has room, and writes what those take. Returns true when `in` is
 * readable (or closed), false otherwise.
 */
static bool ring_poll(rl_ring *r, rli_link *in, int slice_ms, uint64_t deadline_ms)
{
    struct pollfd one_pfd;
    rli_link *one_who;
    struct pollfd *pfd = r != NULL ? r->pfd : &one_pfd; /* r's: size + 1 entries */
    rli_link **who = r != NULL ? r->pwho : &one_who;
    nfds_t n = 0;
    if (in != NULL) {
        pfd[n] = (struct pollfd){.fd = in->fd, .events = POLLIN};
        who[n++] = in;
    }
    for (int p = 0; r != NULL && p < r->size; p++) {
        rli_link *l = r->links[p];
        if (!link_direct_pending(l)) continue;
        if (l == in) {
            pfd[0].events |= POLLOUT;
        } else {
            pfd[n] = (struct pollfd){.fd = l->fd, .events = POLLOUT};
            who[n++] = l;
        }
    }
    if (n == 0) return false;
    nng_duration left = rli_until(deadline_ms);
    int ms = left < (nng_duration)slice_ms ? (int)left : slice_ms;
    pthread_mutex_unlock(&r_ep(r, in)->mtx);
    int rv = poll(pfd, n, ms);
    pthread_mutex_lock(&r_ep(r, in)->mtx);
    bool readable = false;
    for (nfds_t i = 0; rv > 0 && i < n; i++) {
        if (pfd[i].revents == 0) continue;
        if (who[i] == in && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
            readable = true;
        if (link_direct_pending(who[i])) link_direct_write(who[i]);
    }
    return readable;
}

/* Starts the next batch of queued frames, skipping s_done bytes already
 * written. Lock held. */
static void link_kick_send(rli_link *l)
{
    if (l->spending || l->sq_count == 0 || l->serr != 0 || l->closed) return;
    size_t nf = l->s_inflight ? l->s_inflight : (l->sq_count < 4 ? l->sq_count : 4);
    const uint8_t *base[8];
    size_t len[8];
    unsigned niov = link_queue_segments(l, nf, base, len, 8);
    nng_iov iov[8];
    for (unsigned k = 0; k < niov; k++)
        iov[k] = (nng_iov){.iov_buf = (void *)(uintptr_t)base[k], .iov_len = len[k]};
    l->s_inflight = nf;
    l->spending = true;
    nng_aio_set_iov(l->saio, niov, iov);
    nng_aio_set_timeout(l->saio, NNG_DURATION_INFINITE);
    nng_stream_send(l->stream, l->saio);
}

static void link_send_cb(void *arg)
{
    rli_link *l = arg;
    rl_endpoint *ep = l->ep;
    pthread_mutex_lock(&ep->mtx);
    int rv = nng_aio_result(l->saio);
    l->spending = false;
    if (rv != 0) {
        l->serr = rv;
    } else {
        size_t total = 0;
        l->s_done += nng_aio_count(l->saio);
        for (size_t i = 0; i < l->s_inflight; i++)
            total += sframe_size(l->sq[(l->sq_head + i) % l->sq_cap]);
        if (l->s_done >= total) {
            if (l->ring != NULL) l->ring->stats.bytes_out += total;
            for (size_t i = 0; i < l->s_inflight; i++) {
                rli_sframe *f = l->sq[(l->sq_head + i) % l->sq_cap];
                f->next_free = l->sfree;
                l->sfree = f;
            }
            l->sq_head = (l->sq_head + l->s_inflight) % l->sq_cap;
            l->sq_count -= l->s_inflight;
            l->s_inflight = 0;
            l->s_done = 0;
        }
        link_kick_send(l);
    }
    pthread_cond_broadcast(&ep->cv);
    pthread_mutex_unlock(&ep->mtx);
}

/* msgpack sink that copies small writes into the frame header and keeps the
 * one large write (the bin body) by reference. */
typedef struct sframe_sink {
    rli_sframe *f;
    bool overflow;
} sframe_sink;

static int sframe_write(void *data, const char *buf, size_t len)
{
    sframe_sink *s = data;
    rli_sframe *f = s->f;
    if (f->data_len != 0) { /* nothing may follow the bulk data */
        s->overflow = true;
        return -1;
    }
    if (len >= 64) {
        f->data = (const uint8_t *)buf;
        f->data_len = len;
        return 0;
    }
    if (f->hdr_len + len > sizeof(f->hdr)) {
        s->overflow = true;
        return -1;
    }
    memcpy(f->hdr + f->hdr_len, buf, len);
    f->hdr_len += len;
    return 0;
}

/* Encodes m into f: the length prefix and small fields in f->hdr, the bulk
 * data by reference. */
static int frame_encode(rli_sframe *f, const rl_msg *m)
{
    f->hdr_len = 4;
    f->data = NULL;
    f->data_len = 0;
    sframe_sink sink = {.f = f};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sink, sframe_write);
    int rv = rli_msg_pack(&pk, m);
    if (rv == 0 && sink.overflow) rv = rli_err(RL_EINTERNAL, "ring frame header too large");
    if (rv == 0) put_le32(f->hdr, (uint32_t)(f->hdr_len - 4 + f->data_len));
    return rv;
}

static rli_sframe *frame_get(rli_link *l)
{
    rli_sframe *f = l->sfree;
    if (f != NULL)
        l->sfree = f->next_free;
    else
        f = rli_malloc(sizeof(*f));
    return f;
}

/* Appends f to l's send queue and starts sending. Lock held. */
static void link_enqueue(rli_link *l, rli_sframe *f)
{
    if (l->sq_count == l->sq_cap) {
        size_t ncap = l->sq_cap ? l->sq_cap * 2 : 16;
        rli_sframe **nq = rli_malloc(ncap * sizeof(*nq));
        for (size_t i = 0; i < l->sq_count; i++)
            nq[i] = l->sq[(l->sq_head + i) % l->sq_cap];
        free(l->sq);
        l->sq = nq;
        l->sq_cap = ncap;
        l->sq_head = 0;
    }
    l->sq[(l->sq_head + l->sq_count) % l->sq_cap] = f;
    l->sq_count++;
    if (l->direct)
        link_direct_write(l);
    else
        link_kick_send(l);
}

static int link_send_error(rli_link *l)
{
    return rli_err(rli_err_from_nng(l->serr), "link to rank %d: send failed: %s", l->peer_rank,
                   nng_strerror(l->serr));
}

int rli_link_send(rli_link *l, const rl_msg *m)
{
    if (l->serr != 0) return link_send_error(l);
    rli_sframe *f = frame_get(l);
    int rv = frame_encode(f, m);
    if (rv != 0) {
        f->next_free = l->sfree;
        l->sfree = f;
        return rv;
    }
    link_enqueue(l, f);
    return RL_OK;
}

int rli_link_send_now(rli_link *l, const rl_msg *m, uint64_t deadline_ms)
{
    rl_endpoint *ep = l->ep;
    pthread_mutex_lock(&ep->mtx);
    int rv = l->ring != NULL && l->ring->err != 0 ? rli_ring_link_error(l->ring)
             : l->serr != 0                       ? link_send_error(l)
                                                  : RL_OK;
    if (rv == RL_OK && l->direct) { /* queue, write, and finish it here */
        rv = rli_link_send(l, m);
        while (rv == RL_OK && l->sq_count > 0 && l->serr == 0 && !l->closed) {
            if (rli_now_ms() >= deadline_ms) {
                rv = rli_err(RL_ETIMEDOUT,
                             "link to rank %d: send not finished before the "
                             "deadline",
                             l->peer_rank);
                break;
            }
            ring_poll(l->ring, NULL, LINK_POLL_SLICE_MS, deadline_ms);
        }
        if (rv == RL_OK && (l->serr != 0 || l->closed))
            rv = l->serr != 0 ? link_send_error(l)
                              : rli_err(RL_EPEER, "link to rank %d: closed", l->peer_rank);
        pthread_mutex_unlock(&ep->mtx);
        return rv;
    }
    if (rv == RL_OK && (l->sq_count > 0 || l->spending || l->closed)) {
        rv = rli_link_send(l, m); /* keep the order: behind what is queued */
        pthread_mutex_unlock(&ep->mtx);
        return rv;
    }
    pthread_mutex_unlock(&ep->mtx);
    if (rv != RL_OK) return rv;
    rli_sframe *f = &l->dframe;
    if ((rv = frame_encode(f, m)) != RL_OK) return rv;
    size_t total = sframe_size(f), done = 0;
    while (done < total) {
        nng_iov iov[2];
        unsigned niov = 0;
        if (done < f->hdr_len)
            iov[niov++] = (nng_iov){.iov_buf = f->hdr + done, .iov_len = f->hdr_len - done};
        size_t doff = done > f->hdr_len ? done - f->hdr_len : 0;
        if (f->data_len > doff)
            iov[niov++] = (nng_iov){.iov_buf = (void *)(uintptr_t)(f->data + doff),
                                    .iov_len = f->data_len - doff};
        nng_aio_set_iov(l->daio, niov, iov);
        nng_aio_set_timeout(l->daio, l->tls ? NNG_DURATION_INFINITE : rli_until(deadline_ms));
        l->ddone = false;
        nng_stream_send(l->stream, l->daio);
        if (l->tls && link_tls_wait(l, l->daio, &l->ddone, deadline_ms) == RL_ETIMEDOUT)
            return rli_err(RL_ETIMEDOUT, "link to rank %d: send not finished before the deadline",
                           l->peer_rank);
        if (!l->tls) nng_aio_wait(l->daio);
        if ((rv = nng_aio_result(l->daio)) != 0) {
            pthread_mutex_lock(&ep->mtx);
            l->serr = rv;
            rv = link_send_error(l);
            pthread_mutex_unlock(&ep->mtx);
            return rv;
        }
        done += nng_aio_count(l->daio);
    }
    if (l->ring != NULL) {
        pthread_mutex_lock(&ep->mtx);
        l->ring->stats.bytes_out += total;
        pthread_mutex_unlock(&ep->mtx);
    }
    return RL_OK;
}

/* ---- Retired TLS links ---------------------------------------------------- */

/* A retired link's receive ended (lock held): bytes are dropped and another
 * receive posted; the peer closing (or anything else ending it) closes the
 * link for rli_endpoint_reap_retired. */
static void link_retired_recv(rli_link *l)
{
    l->rpending = false;
    if (nng_aio_result(l->raio) != 0 || l->closed) {
        l->closed = true;
        nng_stream_close(l->stream);
        return;
    }
    l->rlen = l->rpos = 0;
    rli_link_post(l, l->raio, NNG_DURATION_INFINITE);
}

void rli_link_retire(rli_link *l)
{
    rl_endpoint *ep = l->ep;
    l->ring = NULL;
    l->retired = true;
    l->next = ep->retired;
    ep->retired = l;
    if (!l->rpending) /* else the read-ahead's callback sees `retired` */
        rli_link_post(l, l->raio, NNG_DURATION_INFINITE);
    else if (l->rdone) /* ended, not yet accounted */
        link_retired_recv(l);
}

void rli_endpoint_reap_retired(rl_endpoint *ep, bool all)
{
    rli_link *reap = NULL;
    pthread_mutex_lock(&ep->mtx);
    for (rli_link **pp = &ep->retired; *pp != NULL;) {
        rli_link *w = *pp;
        if (all || w->closed) {
            *pp = w->next;
            w->next = reap;
            reap = w;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&ep->mtx);
    while (reap != NULL) { /* without the lock: their callbacks take it */
        rli_link *next = reap->next;
        rli_link_free(reap);
        reap = next;
    }
}

/* ---- The ring's links as a whole (allreduce.c) ---------------------------- */

void rli_ring_lock(rl_ring *r)
{
    pthread_mutex_lock(&r->ep->mtx);
}

void rli_ring_unlock(rl_ring *r)
{
    pthread_mutex_unlock(&r->ep->mtx);
}

int rli_ring_wait(rl_ring *r, uint64_t deadline_ms)
{
    /* A ring's links are all direct or none (rl_ring_form): direct ones are
     * written here, callback-driven ones signal the cv. */
    bool direct = false;
    for (int p = 0; p < r->size; p++)
        if (link_direct_pending(r->links[p])) direct = true;
    if (!direct) return rli_endpoint_wait(r->ep, deadline_ms);
    ring_poll(r, NULL, LINK_POLL_SLICE_MS, deadline_ms);
    return rli_now_ms() >= deadline_ms ? RL_ETIMEDOUT : RL_OK;
}

int rli_ring_sends_state(rl_ring *r)
{
    if (r->err != 0) return rli_ring_link_error(r);
    int busy = 0;
    for (int p = 0; p < r->size; p++) {
        rli_link *l = r->links[p];
        if (l == NULL || l->sq_count == 0) continue;
        if (l->serr != 0 || l->closed)
            return rli_err(RL_EPEER, "ring epoch %llu: sending to %s (rank %d) failed: %s",
                           (unsigned long long)r->epoch, r->ids[p], p,
                           l->serr ? nng_strerror(l->serr) : "link closed");
        busy = 1;
    }
    return busy ? -1 : RL_OK;
}

int rli_ring_link_error(rl_ring *r)
{
    if (r->err != 0)
        return rli_err(r->err, "ring epoch %llu aborted: %s", (unsigned long long)r->epoch,
                       r->err_detail);
    for (int p = 0; p < r->size; p++) {
        rli_link *l = r->links[p];
        if (l == NULL) continue;
        int e = l->serr ? l->serr : l->rerr;
        if (e != 0 || l->closed)
            return rli_err(RL_EPEER, "ring epoch %llu: link to %s (rank %d) failed: %s",
                           (unsigned long long)r->epoch, r->ids[p], p,
                           e ? nng_strerror(e) : "closed");
    }
    return RL_OK;
}
