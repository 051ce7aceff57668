/*
 * ring.c - endpoints, ring formation and the framed links between members.
 *
 * Each pair of members shares one TCP (or TLS, or IPC) stream, dialed by the
 * lower rank; the stream starts with a RING_HELLO naming the epoch and the
 * dialer's rank. The endpoint accepts streams at any time and parks them
 * until rl_ring_form claims those of its epoch; streams announcing an epoch
 * older than the newest formed one are refused (fencing).
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT (ring_ncpu) */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "auth.h"
#include "ringleader/log.h"
#include "ring_internal.h"
#include "rli.h"
#include "tls.h"
#include <nng/supplemental/util/platform.h>
#include "wire.h"

#define RING_DEFAULT_CHUNK 1048576u
#define RING_MAX_WAITING 256 /* parked, unclaimed incoming links */
#define RING_DIAL_RETRY_MS 10
/* One dial attempt's timeout, at most, so that rl_endpoint_fence is seen
 * while a dial to a silent host hangs: long enough for any TCP handshake a
 * cluster link completes (Linux retransmits a lost SYN after 1 s anyway). */
#define RING_DIAL_SLICE_MS 1000
#define RING_HELLO_TIMEOUT_MS 10000 /* default ep->hello_timeout_ms */

uint64_t rl_clock_ms(void)
{
    return rli_now_ms();
}

/* ---- Links ---------------------------------------------------------------- */

static void link_hello_cb(void *arg);
static void link_send_cb(void *arg);
static bool ring_poll(rl_ring *r, rli_link *in, int slice_ms, uint64_t deadline_ms);

/* Does the socket address sa equal nng's na (IPv4 or IPv6)? */
static bool same_addr(const struct sockaddr_storage *sa, const nng_sockaddr *na)
{
    if (sa->ss_family == AF_INET && na->s_family == NNG_AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        return a->sin_port == na->s_in.sa_port && a->sin_addr.s_addr == na->s_in.sa_addr;
    }
    if (sa->ss_family == AF_INET6 && na->s_family == NNG_AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        return a->sin6_port == na->s_in6.sa_port &&
               memcmp(a->sin6_addr.s6_addr, na->s_in6.sa_addr, 16) == 0;
    }
    return false;
}

/* The local and peer addresses of a TCP stream (plain or TLS); false for
 * any other stream. */
static bool stream_addrs(nng_stream *s, nng_sockaddr *loc, nng_sockaddr *rem)
{
    return nng_stream_get_addr(s, NNG_OPT_LOCADDR, loc) == 0 &&
           nng_stream_get_addr(s, NNG_OPT_REMADDR, rem) == 0 &&
           (loc->s_family == NNG_AF_INET || loc->s_family == NNG_AF_INET6);
}

static bool stream_is_tls(nng_stream *s)
{
    bool verified;
    return nng_stream_get_bool(s, NNG_OPT_TLS_VERIFIED, &verified) == 0;
}

/*
 * The socket under a TCP stream (plain or TLS), or -1. nng 1.5.2 does not
 * expose it, so this looks for the one socket of this process whose local
 * and peer addresses are the stream's: a TCP connection's address pair is
 * unique on a host. A TLS stream's socket is for socket options only (nng's
 * TLS layer does the reads and writes); IPC streams get -1.
 */
static int stream_fd(nng_stream *s)
{
    nng_sockaddr loc, rem;
    if (!stream_addrs(s, &loc, &rem)) return -1;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return -1;
    int found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end != '\0' || fd < 0 || fd == dirfd(d)) continue;
        struct sockaddr_storage a, b;
        socklen_t al = sizeof(a), bl = sizeof(b);
        if (getsockname((int)fd, (struct sockaddr *)&a, &al) == 0 && same_addr(&a, &loc) &&
            getpeername((int)fd, (struct sockaddr *)&b, &bl) == 0 && same_addr(&b, &rem))
            found = (int)fd;
    }
    closedir(d);
    return found;
}

/* Is s a TCP connection to itself (the same local and peer address)? */
static bool stream_is_self(nng_stream *s)
{
    nng_sockaddr loc, rem;
    if (!stream_addrs(s, &loc, &rem)) return false;
    if (loc.s_family == NNG_AF_INET)
        return loc.s_in.sa_port == rem.s_in.sa_port && loc.s_in.sa_addr == rem.s_in.sa_addr;
    return loc.s_in6.sa_port == rem.s_in6.sa_port &&
           memcmp(loc.s_in6.sa_addr, rem.s_in6.sa_addr, 16) == 0;
}

static rli_link *link_new(rl_endpoint *ep, nng_stream *s, size_t rcap)
{
    rli_link *l = rli_calloc(1, sizeof(*l));
    l->ep = ep;
    l->stream = s;
    l->fd = l->sock = -1; /* found when a ring claims the link (rl_ring_form) */
    l->lowat = 1;
    l->peer_rank = -1;
    l->rcap = rcap;
    l->rbuf = rli_malloc(rcap);
    if (nng_aio_alloc(&l->haio, link_hello_cb, l) != 0 ||
        nng_aio_alloc(&l->raio, NULL, NULL) != 0 || nng_aio_alloc(&l->daio, NULL, NULL) != 0 ||
        nng_aio_alloc(&l->saio, link_send_cb, l) != 0) {
        fprintf(stderr, "ringleader: cannot allocate nng aio\n");
        abort();
    }
    return l;
}

/* Closes and frees l. The endpoint mutex must NOT be held (callbacks take it). */
static void link_free(rli_link *l)
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
    for (size_t i = 0; i < l->sq_count; i++) free(l->sq[(l->sq_head + i) % l->sq_cap]);
    free(l->sq);
    while (l->sfree != NULL) {
        rli_sframe *f = l->sfree;
        l->sfree = f->next_free;
        free(f);
    }
    free(l);
}

static nng_duration until(uint64_t deadline_ms)
{
    uint64_t now = rli_now_ms();
    if (now >= deadline_ms) return 0;
    /* nng durations are int32 and negative ones mean "infinite" / "default" */
    return deadline_ms - now > INT32_MAX ? INT32_MAX : (nng_duration)(deadline_ms - now);
}

/* Posts a receive of the free tail [rlen, rcap) of rbuf on aio. The tail
 * only: frames before rlen may be in use. */
static void link_post(rli_link *l, nng_aio *aio, nng_duration timeout)
{
    nng_iov iov = {.iov_buf = l->rbuf + l->rlen, .iov_len = l->rcap - l->rlen};
    nng_aio_set_iov(aio, 1, &iov);
    nng_aio_set_timeout(aio, timeout);
    l->rpending = true;
    nng_stream_recv(l->stream, aio);
}

/* Makes room for a frame of `need` bytes (prefix included): compacts the
 * unread bytes to the front and grows rbuf. No receive may be pending. */
static void link_make_room(rli_link *l, size_t need)
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

/* 1 and the frame if one is complete, 0 if not (and the size needed in
 * *need), or RL_EPROTO if the length prefix is impossible. */
static int link_peek(rli_link *l, const uint8_t **p, size_t *n, size_t *need)
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
#define LINK_POLL_SLICE_MS 10
#define LINK_LOWAT_MAX (4u << 20)
#define LINK_LOWAT_GIVEUP_MS 100

/* Sets fd's SO_RCVLOWAT to v if it is not that already. */
static void link_set_lowat(rli_link *l, int v)
{
    if (v != l->lowat &&
        setsockopt(l->fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) == 0)
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
        while (rli_now_us() - t0 < (uint64_t)spin && until(deadline_ms) > 0) {
            struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
            if (poll(&pfd, 1, 0) > 0) return;
        }
    }
    int yield = l->ring != NULL ? l->ring->yield_us : 0;
    uint64_t t0 = l->lowat > 1 ? rli_now_ms() : 0;
    pthread_mutex_lock(&ep->mtx);
    if (yield > 0) { /* give the CPU to whoever shares it, for a while (rl_ring_config.yield_us) */
        uint64_t y0 = rli_now_us();
        while (!l->closed && rli_now_us() - y0 < (uint64_t)yield && until(deadline_ms) > 0) {
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
        if (l->closed || until(deadline_ms) == 0) break;
        if (ring_poll(l->ring, l, LINK_POLL_SLICE_MS, deadline_ms)) break;
        /* Long without the frame: wake on any byte from now on, in case a
         * kernel does not wake a low-water wait whose bytes cannot fit in
         * the receive buffer (Linux raises the buffer to fit, and wakes
         * under memory pressure): at worst a delay, never a hang. */
        if (l->lowat > 1 && rli_now_ms() - t0 >= LINK_LOWAT_GIVEUP_MS) link_set_lowat(l, 1);
    }
    pthread_mutex_unlock(&ep->mtx);
}

int rli_link_recv(rli_link *l, const uint8_t **p, size_t *n, uint64_t deadline_ms,
                  bool read_ahead)
{
    for (;;) {
        size_t need;
        int rv = link_peek(l, p, n, &need);
        if (rv == 1) {
            /* Read ahead into the tail while the caller works, if a chunk
             * fits there; never move the frame we hand out. */
            size_t want = l->ring != NULL ? l->ring->chunk_bytes + 8192 : 4096;
            if (want > l->rcap / 4) want = l->rcap / 4;
            /* Not on a direct link: its sends progress only while this
             * thread polls, never while it waits on nng (ring_poll). */
            if (read_ahead && !l->direct && !l->rpending && l->rerr == 0 &&
                l->rcap - l->rlen >= want)
                link_post(l, l->raio, until(deadline_ms));
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
            link_make_room(l, need);
            link_wait_readable(l, avail >= 4 ? need - avail : 0, deadline_ms);
            /* Posted under the lock, after a look at l->closed: nng 1.5.2
             * leaves a receive posted on a closed TCP stream pending until
             * its timeout, so one posted after rl_ring_abort closed the
             * stream would wait out the deadline. The aio has no callback,
             * so nng calls nothing of ours under the lock. */
            pthread_mutex_lock(&l->ep->mtx);
            bool closed = l->closed;
            if (!closed) link_post(l, l->raio, until(deadline_ms));
            pthread_mutex_unlock(&l->ep->mtx);
            if (closed) {
                l->rerr = NNG_ECLOSED;
                continue;
            }
        }
        nng_aio_wait(l->raio);
        link_recv_done(l);
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
        if (l == NULL || !l->rpending) continue;
        nng_aio_cancel(l->raio);
        nng_aio_wait(l->raio);
        link_recv_done(l);
    }
}

static void link_recv_hello(rli_link *l); /* endpoint side, below */

/* An accepted link's hello bytes arrived (endpoint side, before any ring). */
static void link_hello_cb(void *arg)
{
    rli_link *l = arg;
    rl_endpoint *ep = l->ep;
    pthread_mutex_lock(&ep->mtx);
    int rv = nng_aio_result(l->haio);
    l->rpending = false;
    if (rv != 0) l->rerr = rv;
    else l->rlen += nng_aio_count(l->haio);
    if (!l->hello_done) link_recv_hello(l);
    pthread_cond_broadcast(&ep->cv);
    pthread_mutex_unlock(&ep->mtx);
}

static size_t sframe_size(const rli_sframe *f)
{
    return f->hdr_len + f->data_len;
}

/* The unsent bytes of the first nf queued frames of l (s_done of them are
 * written), as at most max (base, len) segments; returns how many. */
static unsigned link_queue_segments(const rli_link *l, size_t nf, const uint8_t **base,
                                    size_t *len, unsigned max)
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
    nng_duration left = until(deadline_ms);
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
    if (f != NULL) l->sfree = f->next_free;
    else f = rli_malloc(sizeof(*f));
    return f;
}

/* Appends f to l's send queue and starts sending. Lock held. */
static void link_enqueue(rli_link *l, rli_sframe *f)
{
    if (l->sq_count == l->sq_cap) {
        size_t ncap = l->sq_cap ? l->sq_cap * 2 : 16;
        rli_sframe **nq = rli_malloc(ncap * sizeof(*nq));
        for (size_t i = 0; i < l->sq_count; i++) nq[i] = l->sq[(l->sq_head + i) % l->sq_cap];
        free(l->sq);
        l->sq = nq;
        l->sq_cap = ncap;
        l->sq_head = 0;
    }
    l->sq[(l->sq_head + l->sq_count) % l->sq_cap] = f;
    l->sq_count++;
    if (l->direct) link_direct_write(l);
    else link_kick_send(l);
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
           : l->serr != 0                         ? link_send_error(l)
                                                  : RL_OK;
    if (rv == RL_OK && l->direct) { /* queue, write, and finish it here */
        rv = rli_link_send(l, m);
        while (rv == RL_OK && l->sq_count > 0 && l->serr == 0 && !l->closed) {
            if (rli_now_ms() >= deadline_ms) {
                rv = rli_err(RL_ETIMEDOUT, "link to rank %d: send not finished before the "
                             "deadline", l->peer_rank);
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
        nng_aio_set_timeout(l->daio, until(deadline_ms));
        nng_stream_send(l->stream, l->daio);
        nng_aio_wait(l->daio);
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

/* ---- Endpoint --------------------------------------------------------------- */

static void accept_cb(void *arg);

/* An accepted link has bytes: if its hello is complete, check it and park
 * the link for rl_ring_form; otherwise read more. Lock held. */
static void link_recv_hello(rli_link *l)
{
    rl_endpoint *ep = l->ep;
    const uint8_t *p;
    size_t n, need;
    if (l->rerr != 0) { /* closed, reset, or silent past RING_HELLO_TIMEOUT_MS */
        l->closed = true;
        nng_stream_close(l->stream);
        return;
    }
    int rv = link_peek(l, &p, &n, &need);
    if (rv == 0) {
        if (need > 4 + 4096) rv = RL_EPROTO; /* a hello is small */
        else {
            link_make_room(l, need);
            link_post(l, l->haio, until(l->hello_deadline));
            return;
        }
    }
    rl_msg m;
    if (rv == 1 && rl_msg_decode(p, n, &m) == RL_OK) {
        const rl_msg_ring_hello *h = &m.u.ring_hello;
        uint8_t want[RLI_MAC_LEN];
        if (m.type != RL_MSG_RING_HELLO || h->epoch < ep->fence_epoch || h->rank >= 4096) {
            ep->refused_stale++;
        } else if (ep->has_token &&
                   (h->nonce.len != RLI_NONCE_LEN || h->proof.len != RLI_MAC_LEN ||
                    (rli_ring_hello_proof(&ep->token, l->nonce, h->nonce.ptr, h->epoch, h->rank,
                                          h->member_id, want),
                     !rli_mac_equal(want, h->proof.ptr, RLI_MAC_LEN)))) {
            ep->refused_auth++;
            rl_log_warn("ring endpoint %s: refused a link claiming rank %llu of epoch %llu: %s",
                        ep->url, (unsigned long long)h->rank, (unsigned long long)h->epoch,
                        h->proof.len ? "wrong proof (another cluster token?)"
                                     : "no proof of the cluster token");
        } else {
            int wrv = RL_OK;
            if (ep->has_token) { /* prove ourselves in turn */
                rl_msg w;
                rl_msg_init(&w, RL_MSG_RING_WELCOME);
                rli_ring_welcome_proof(&ep->token, h->nonce.ptr, l->nonce, h->epoch, h->rank,
                                       want);
                w.u.ring_welcome.proof = (rl_bytes){want, RLI_MAC_LEN};
                wrv = rli_link_send(l, &w);
            }
            if (wrv == RL_OK) {
                l->hello_done = true;
                l->hello_epoch = h->epoch;
                l->peer_rank = (int)h->rank;
                rli_link_consume(l, n);
            }
        }
        rl_msg_fini(&m);
    }
    if (!l->hello_done) {
        l->closed = true;
        nng_stream_close(l->stream);
    }
}

static size_t count_waiting(rl_endpoint *ep)
{
    size_t k = 0;
    for (rli_link *w = ep->waiting; w != NULL; w = w->next) k++;
    return k;
}

static void accept_cb(void *arg)
{
    rl_endpoint *ep = arg;
    rli_link *reap = NULL;
    pthread_mutex_lock(&ep->mtx);
    /* Links that were refused or went silent leave the waiting list here
     * (freed below, without the lock: their callbacks take it). */
    for (rli_link **pp = &ep->waiting; *pp != NULL;) {
        rli_link *w = *pp;
        if (w->closed && !w->hello_done) {
            *pp = w->next;
            w->next = reap;
            reap = w;
        } else {
            pp = &w->next;
        }
    }
    int rv = nng_aio_result(ep->accept_aio);
    if (rv == 0) {
        nng_stream *s = nng_aio_get_output(ep->accept_aio, 0);
        if (count_waiting(ep) >= RING_MAX_WAITING) {
            nng_stream_free(s); /* flood: refuse */
        } else {
            rli_link *l = link_new(ep, s, 8192);
            l->next = ep->waiting;
            ep->waiting = l;
            if (ep->has_token) { /* the dialer must prove it holds the token */
                rl_msg c;
                rl_msg_init(&c, RL_MSG_RING_CHALLENGE);
                if (rli_random(l->nonce, RLI_NONCE_LEN) != RL_OK) abort();
                c.u.ring_challenge.nonce = (rl_bytes){l->nonce, RLI_NONCE_LEN};
                if (rli_link_send(l, &c) != RL_OK) l->closed = true;
            }
            l->hello_deadline = rli_now_ms() + ep->hello_timeout_ms;
            link_post(l, l->haio, until(l->hello_deadline));
        }
    }
    if (!ep->closing && rv != NNG_ECLOSED) nng_stream_listener_accept(ep->listener, ep->accept_aio);
    pthread_mutex_unlock(&ep->mtx);
    while (reap != NULL) {
        rli_link *next = reap->next;
        link_free(reap);
        reap = next;
    }
}

int rl_endpoint_open(const char *url, const rl_tls_files *tls, rl_endpoint **out)
{
    rl_endpoint *ep = rli_calloc(1, sizeof(*ep));
    int rv;
    ep->hello_timeout_ms = RING_HELLO_TIMEOUT_MS;
    pthread_mutex_init(&ep->mtx, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ep->cv, &ca);
    pthread_condattr_destroy(&ca);

    if ((rv = nng_stream_listener_alloc(&ep->listener, url)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "endpoint %s: %s", url, nng_strerror(rv));
        goto fail;
    }
    if (rli_url_is_tls(url)) {
        if ((rv = rli_tls_config_new(tls, true, &ep->tls_server)) != 0 ||
            (rv = rli_tls_config_new(tls, false, &ep->tls_client)) != 0)
            goto fail;
        nng_stream_listener_set_ptr(ep->listener, NNG_OPT_TLS_CONFIG, ep->tls_server);
    }
    /* Small frames must not wait for Nagle / delayed ACK (about 40 ms here). */
    nng_stream_listener_set_bool(ep->listener, NNG_OPT_TCP_NODELAY, true);
    if ((rv = nng_stream_listener_listen(ep->listener)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "endpoint %s: cannot listen: %s", url,
                     nng_strerror(rv));
        goto fail;
    }
    snprintf(ep->url, sizeof(ep->url), "%s", url);
    int port = 0;
    if (nng_stream_listener_get_int(ep->listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0 &&
        port > 0) {
        /* Replace a ":0" port with the bound one. */
        char *colon = strrchr(ep->url, ':');
        if (colon != NULL && strcmp(colon, ":0") == 0)
            snprintf(colon, sizeof(ep->url) - (size_t)(colon - ep->url), ":%d", port);
    }
    if ((rv = nng_aio_alloc(&ep->accept_aio, accept_cb, ep)) != 0) {
        rv = rli_err(RL_ENOMEM, "endpoint %s: no aio", url);
        goto fail;
    }
    nng_stream_listener_accept(ep->listener, ep->accept_aio);
    *out = ep;
    return RL_OK;
fail:
    if (ep->listener) nng_stream_listener_free(ep->listener);
    if (ep->tls_server) nng_tls_config_free(ep->tls_server);
    if (ep->tls_client) nng_tls_config_free(ep->tls_client);
    pthread_mutex_destroy(&ep->mtx);
    pthread_cond_destroy(&ep->cv);
    free(ep);
    return rv;
}

void rl_endpoint_set_token(rl_endpoint *ep, const rl_token *token)
{
    pthread_mutex_lock(&ep->mtx);
    ep->token = *token;
    ep->has_token = token->len > 0;
    pthread_mutex_unlock(&ep->mtx);
}

const char *rl_endpoint_url(const rl_endpoint *ep)
{
    return ep->url;
}

void rl_endpoint_close(rl_endpoint *ep)
{
    if (ep == NULL) return;
    pthread_mutex_lock(&ep->mtx);
    ep->closing = true;
    rli_link *w = ep->waiting;
    ep->waiting = NULL;
    pthread_mutex_unlock(&ep->mtx);
    nng_stream_listener_close(ep->listener);
    nng_aio_stop(ep->accept_aio);
    nng_aio_free(ep->accept_aio);
    nng_stream_listener_free(ep->listener);
    while (w != NULL) {
        rli_link *next = w->next;
        link_free(w);
        w = next;
    }
    if (ep->tls_server) nng_tls_config_free(ep->tls_server);
    if (ep->tls_client) nng_tls_config_free(ep->tls_client);
    pthread_mutex_destroy(&ep->mtx);
    pthread_cond_destroy(&ep->cv);
    free(ep);
}

/* ---- Ring formation ---------------------------------------------------------- */

void rli_ring_lock(rl_ring *r)
{
    pthread_mutex_lock(&r->ep->mtx);
}

void rli_ring_unlock(rl_ring *r)
{
    pthread_mutex_unlock(&r->ep->mtx);
}

static int cv_wait_until(rl_endpoint *ep, uint64_t deadline_ms)
{
    uint64_t now = rli_now_ms();
    if (now >= deadline_ms) return RL_ETIMEDOUT;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t wait_ms = deadline_ms - now;
    ts.tv_sec += (time_t)(wait_ms / 1000);
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rv = pthread_cond_timedwait(&ep->cv, &ep->mtx, &ts);
    return (rv == ETIMEDOUT && rli_now_ms() >= deadline_ms) ? RL_ETIMEDOUT : RL_OK;
}

int rli_ring_wait(rl_ring *r, uint64_t deadline_ms)
{
    /* A ring's links are all direct or none (rl_ring_form): direct ones are
     * written here, callback-driven ones signal the cv. */
    bool direct = false;
    for (int p = 0; p < r->size; p++)
        if (link_direct_pending(r->links[p])) direct = true;
    if (!direct) return cv_wait_until(r->ep, deadline_ms);
    ring_poll(r, NULL, LINK_POLL_SLICE_MS, deadline_ms);
    return rli_now_ms() >= deadline_ms ? RL_ETIMEDOUT : RL_OK;
}

/* Receive buffer per link. The ring algorithm receives only from the left
 * neighbour: room for a few chunks there, so that the link keeps reading
 * ahead while the consumer reduces. Other links carry only the one-round
 * algorithm's frames; theirs grow on demand (link_make_room). */
static size_t ring_rbuf_size(const rl_ring *r, int peer)
{
    if (peer == (r->rank + r->size - 1) % r->size) return 4 * (r->chunk_bytes + 8192);
    return 65536;
}

/* Receives the one authentication frame of `type` (a challenge's nonce or a
 * welcome's proof, 32 bytes each) on a dialed link, before any ring uses
 * it, into val. Called without the lock. */
static int link_recv_auth(rl_ring *r, rli_link *l, int peer, rl_msg_type type,
                          uint64_t deadline_ms, uint8_t val[32])
{
    const uint8_t *p;
    size_t n;
    const char *what = type == RL_MSG_RING_CHALLENGE ? "challenge" : "welcome";
    int rv = rli_link_recv(l, &p, &n, deadline_ms, false);
    if (rv != RL_OK)
        return rli_err(rv == RL_ETIMEDOUT ? RL_ETIMEDOUT : RL_EAUTH,
                       "ring epoch %llu: no %s from %s (rank %d) at %s: %s (does it hold the "
                       "same cluster token?)", (unsigned long long)r->epoch, what, r->ids[peer],
                       peer, r->urls[peer], rl_errdetail());
    rl_msg m;
    rv = rl_msg_decode(p, n, &m);
    if (rv == RL_OK) {
        rl_bytes b = m.type == RL_MSG_RING_CHALLENGE && type == m.type ? m.u.ring_challenge.nonce
                   : m.type == RL_MSG_RING_WELCOME && type == m.type   ? m.u.ring_welcome.proof
                                                                       : (rl_bytes){NULL, 0};
        if (b.len == 32) memcpy(val, b.ptr, 32);
        else rv = RL_EPROTO;
        rl_msg_fini(&m);
    }
    rli_link_consume(l, n);
    if (rv != RL_OK)
        return rli_err(RL_EAUTH, "ring epoch %llu: %s (rank %d) at %s sent no valid %s",
                       (unsigned long long)r->epoch, r->ids[peer], peer, r->urls[peer], what);
    return RL_OK;
}

/* RL_ESTALE if ep is fenced past r's epoch (a newer ring formed on it, or
 * rl_endpoint_fence), else RL_OK. Called with ep->mtx held. */
static int ring_fence_err(const rl_ring *r)
{
    if (r->ep->fence_epoch <= r->epoch) return RL_OK;
    if (r->ep->fence_epoch == UINT64_MAX)
        return rli_err(RL_ESTALE, "ring epoch %llu: the endpoint is fenced for good (its owner "
                       "is stopping)", (unsigned long long)r->epoch);
    return rli_err(RL_ESTALE, "ring epoch %llu: epoch %llu was formed or planned since",
                   (unsigned long long)r->epoch, (unsigned long long)r->ep->fence_epoch);
}

void rl_endpoint_fence(rl_endpoint *ep, uint64_t epoch)
{
    if (ep == NULL) return;
    pthread_mutex_lock(&ep->mtx);
    if (epoch > ep->fence_epoch) {
        ep->fence_epoch = epoch;
        pthread_cond_broadcast(&ep->cv); /* a forming ring looks again */
    }
    pthread_mutex_unlock(&ep->mtx);
}

/* Dials url and sends a RING_HELLO (after answering the acceptor's challenge
 * when the endpoint has a token), retrying refused connections until the
 * deadline. Called without the lock. */
static int dial_member(rl_ring *r, int peer, uint64_t deadline_ms, rli_link **out)
{
    rl_endpoint *ep = r->ep;
    const char *url = r->urls[peer];
    nng_stream_dialer *d = NULL;
    nng_aio *aio = NULL;
    nng_stream *s = NULL;
    int rv;

    if ((rv = nng_stream_dialer_alloc(&d, url)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "cannot dial %s (%s): %s", r->ids[peer], url,
                     nng_strerror(rv));
        goto out;
    }
    if (rli_url_is_tls(url)) {
        if (ep->tls_client == NULL) {
            rv = rli_err(RL_ECONFIG, "%s is tls+tcp but this member has no TLS config", url);
            goto out;
        }
        nng_stream_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, ep->tls_client);
    }
    nng_stream_dialer_set_bool(d, NNG_OPT_TCP_NODELAY, true);
    if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
        rv = rli_err(RL_ENOMEM, "no aio");
        goto out;
    }
    for (;;) {
        uint64_t now = rli_now_ms();
        if (now >= deadline_ms) {
            rv = rli_err(RL_ETIMEDOUT, "member %s (rank %d) at %s did not accept before the "
                         "deadline", r->ids[peer], peer, url);
            goto out;
        }
        pthread_mutex_lock(&ep->mtx);
        rv = ring_fence_err(r);
        pthread_mutex_unlock(&ep->mtx);
        if (rv != RL_OK) goto out;
        /* In slices, so that a fence is seen while a dial hangs. */
        uint64_t slice = deadline_ms - now;
        if (slice > RING_DIAL_SLICE_MS) slice = RING_DIAL_SLICE_MS;
        nng_aio_set_timeout(aio, (nng_duration)slice);
        nng_stream_dialer_dial(d, aio);
        nng_aio_wait(aio);
        rv = nng_aio_result(aio);
        if (rv == 0 && stream_is_self(nng_aio_get_output(aio, 0))) {
            /* Connected to itself: a dial from an ephemeral port equal to
             * the port dialled, where nothing listens, is a TCP
             * simultaneous open (seen in a test dialling a dead member).
             * Nobody is there: retry as if refused. */
            s = nng_aio_get_output(aio, 0);
            nng_stream_close(s);
            nng_stream_free(s);
            s = NULL;
            rv = NNG_ECONNREFUSED;
        }
        if (rv == 0) break;
        if (rv != NNG_ECONNREFUSED && rv != NNG_ETIMEDOUT) {
            rv = rli_err(rli_err_from_nng(rv), "dial %s (rank %d) at %s: %s", r->ids[peer], peer,
                         url, nng_strerror(rv));
            goto out;
        }
        nng_msleep(RING_DIAL_RETRY_MS); /* the peer is not listening yet */
    }
    s = nng_aio_get_output(aio, 0);

    /* The hello goes through the link's own send queue, like every frame. */
    rli_link *l = link_new(ep, s, ring_rbuf_size(r, peer));
    s = NULL;
    l->dialed = true;
    l->peer_rank = peer;
    l->hello_epoch = r->epoch;
    rl_msg m;
    rl_msg_init(&m, RL_MSG_RING_HELLO);
    m.u.ring_hello.epoch = r->epoch;
    m.u.ring_hello.rank = (uint64_t)r->rank;
    m.u.ring_hello.size = (uint64_t)r->size;
    m.u.ring_hello.member_id = r->ids[r->rank]; /* borrowed; lives as long as r */
    uint8_t na[RLI_NONCE_LEN], nd[RLI_NONCE_LEN], proof[RLI_MAC_LEN];
    if (ep->has_token) { /* answer the acceptor's challenge */
        rv = link_recv_auth(r, l, peer, RL_MSG_RING_CHALLENGE, deadline_ms, na);
        if (rv != RL_OK) {
            link_free(l);
            goto out;
        }
        if (rli_random(nd, RLI_NONCE_LEN) != RL_OK) abort();
        rli_ring_hello_proof(&ep->token, na, nd, r->epoch, (uint64_t)r->rank, r->ids[r->rank],
                             proof);
        m.u.ring_hello.nonce = (rl_bytes){nd, RLI_NONCE_LEN};
        m.u.ring_hello.proof = (rl_bytes){proof, RLI_MAC_LEN};
    }
    pthread_mutex_lock(&ep->mtx);
    rv = rli_link_send(l, &m);
    while (rv == RL_OK && l->sq_count > 0 && l->serr == 0)
        rv = cv_wait_until(ep, deadline_ms);
    if (rv == RL_OK && l->serr != 0)
        rv = rli_err(rli_err_from_nng(l->serr), "hello to %s (rank %d): %s", r->ids[peer], peer,
                     nng_strerror(l->serr));
    else if (rv == RL_ETIMEDOUT)
        rv = rli_err(RL_ETIMEDOUT, "hello to %s (rank %d) not sent before the deadline",
                     r->ids[peer], peer);
    pthread_mutex_unlock(&ep->mtx);
    if (rv == RL_OK && ep->has_token) { /* and the acceptor must prove itself */
        uint8_t got[RLI_MAC_LEN], want[RLI_MAC_LEN];
        rv = link_recv_auth(r, l, peer, RL_MSG_RING_WELCOME, deadline_ms, got);
        if (rv == RL_OK) {
            rli_ring_welcome_proof(&ep->token, nd, na, r->epoch, (uint64_t)r->rank, want);
            if (!rli_mac_equal(want, got, RLI_MAC_LEN))
                rv = rli_err(RL_EAUTH, "member %s (rank %d) at %s could not prove it holds the "
                             "cluster token", r->ids[peer], peer, r->urls[peer]);
        }
    }
    if (rv != RL_OK) {
        link_free(l);
        goto out;
    }
    *out = l;
    rv = RL_OK;
out:
    if (s != NULL) nng_stream_free(s);
    if (aio != NULL) nng_aio_free(aio);
    if (d != NULL) nng_stream_dialer_free(d);
    return rv;
}

static void ring_free_members(rl_ring *r)
{
    for (int i = 0; i < r->size; i++) {
        free(r->ids[i]);
        free(r->urls[i]);
    }
    free(r->ids);
    free(r->urls);
    free(r->pfd);
    free(r->pwho);
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

/*
 * rl_ring_config.spin_us = 0: spin when this host's members (those whose URL
 * names our host) do not outnumber the CPUs we may run on. Measured with
 * `bench allreduce` here (2 CPUs): at N=2 a 30-100 us spin took 4 B from 24
 * to 8-11 us and 1 MiB from 357-406 to 159-273 us; at N=4 (members
 * outnumber CPUs) a 30 us spin cost 5-20% and a 100 us one 2.5x.
 */
#define RING_SPIN_AUTO_US 50
#define RING_SPIN_MAX_US 1000

/*
 * rl_ring_config.yield_us = 0: when this host's members fill every CPU we may
 * run on at least twice over, a waiting member first polls its link without
 * sleeping and calls sched_yield(2) between polls, so that a member sharing
 * its CPU (often the one it waits for) runs at once, instead of after this
 * one's sleep and the sender's wake-up of it. Open MPI does the same when
 * oversubscribed (mpi_yield_when_idle). Measured with `bench allreduce`
 * here (2 CPUs), medians of 4-5 interleaved runs against no yield (a first
 * version, which polled the waited-for link alone): N=4,
 * 4 B 115 -> 77 us, 64 KiB 163 -> 122 us, 1 MiB 834 -> 582 us, 16 MiB
 * level; N=8, 4 B 415 -> 268 us, 64 KiB 599 -> 494 us, 1 MiB 3.01 -> 2.43
 * ms, 16 MiB 54.2 -> 52.9 ms. At N=3 (one CPU with a member of its own)
 * it cost 4 B 44 -> 62 us and 64 KiB 75 -> 101 us: hence "twice over".
 */
#define RING_YIELD_AUTO_US 200

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The members on our host (*mine) and on the most crowded host (*most),
 * by the host part of their URLs. */
static void ring_host_counts(const rl_ring *r, int *mine, int *most)
{
    char(*host)[RL_URL_MAX] = rli_calloc((size_t)r->size, RL_URL_MAX);
    char **sorted = rli_calloc((size_t)r->size, sizeof(char *));
    for (int i = 0; i < r->size; i++) {
        url_host(r->urls[i], host[i], RL_URL_MAX);
        sorted[i] = host[i];
    }
    qsort(sorted, (size_t)r->size, sizeof(char *), cmp_str);
    *mine = *most = 0;
    for (int i = 0, run = 0; i < r->size; i++) {
        run = i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0 ? run + 1 : 1;
        if (run > *most) *most = run;
        if (strcmp(sorted[i], host[r->rank]) == 0) (*mine)++;
    }
    free(sorted);
    free(host);
}

static int ring_ncpu(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
}

void rli_congestion_choose(const char *cfg, int local, int ncpu, const char *current,
                           rli_congestion_plan *p)
{
    memset(p, 0, sizeof(*p));
    if (cfg == NULL || cfg[0] == '\0' || strcmp(cfg, "auto") == 0) {
        /* bbr paces every send with a kernel timer (its internal pacing,
         * with no fq qdisc on the path). With a CPU per member that only
         * costs: N=2 here, 16 MiB 8.5-8.8 -> 4.6-4.9 ms and 4 MiB 2.2-2.3
         * -> 0.92-0.95 ms (bench allreduce --congestion system against
         * auto). With members sharing CPUs the timer-driven sends keep data
         * moving while the sender waits for a CPU, and cubic was slower
         * (N=4, 16 MiB 23.2-28.4 against 21.5-25.0 ms; N=8 81 against
         * 52-56 ms): those links stay as they are. reno is always
         * permitted, cubic only where net.ipv4.tcp_allowed_congestion_control
         * lists it (or as root). See README, "The collective". */
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

/* Applies rl_ring_config.tcp_congestion to l's TCP socket, if it has one. */
static int link_set_congestion(rl_ring *r, rli_link *l, const char *cfg, int local, int ncpu)
{
    if (l->sock < 0) return RL_OK;
    char cur[RLI_CONGESTION_NAME_MAX + 1] = "";
    socklen_t cl = RLI_CONGESTION_NAME_MAX;
    if (getsockopt(l->sock, IPPROTO_TCP, TCP_CONGESTION, cur, &cl) != 0) cur[0] = '\0';
    rli_congestion_plan plan;
    rli_congestion_choose(cfg, local, ncpu, cur, &plan);
    int err = 0, i = 0;
    for (; i < plan.n; i++) {
        if (strcmp(plan.cand[i], cur) == 0 ||
            setsockopt(l->sock, IPPROTO_TCP, TCP_CONGESTION, plan.cand[i],
                       (socklen_t)strlen(plan.cand[i])) == 0)
            break;
        err = errno;
    }
    if (plan.n > 0 && i == plan.n && plan.required)
        return rli_err(RL_EINVAL, "ring epoch %llu: link to %s (rank %d): TCP congestion "
                       "control \"%s\" %s", (unsigned long long)r->epoch, r->ids[l->peer_rank],
                       l->peer_rank, plan.cand[0],
                       err == ENOENT ? "is not available in this kernel (see /proc/sys/net/ipv4/"
                                       "tcp_available_congestion_control)"
                       : err == EPERM ? "is not permitted to this process (see /proc/sys/net/"
                                        "ipv4/tcp_allowed_congestion_control)"
                                      : strerror(err));
    /* Best effort: an older kernel without the option sends as before. */
    if (plan.notsent_lowat > 0)
        (void)setsockopt(l->sock, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &plan.notsent_lowat,
                         sizeof(plan.notsent_lowat));
    return RL_OK;
}

int rl_ring_form(rl_endpoint *ep, const rl_ring_config *cfg, uint64_t deadline_ms, rl_ring **out)
{
    if (ep == NULL || cfg == NULL || out == NULL || cfg->size < 1 || cfg->rank < 0 ||
        cfg->rank >= cfg->size || cfg->members == NULL || cfg->size > 4096)
        return rli_err(RL_EINVAL, "rl_ring_form: bad arguments");
    for (int i = 0; i < cfg->size; i++)
        if (cfg->members[i].id == NULL || cfg->members[i].url == NULL)
            return rli_err(RL_EINVAL, "rl_ring_form: member %d has no id or url", i);
    if (cfg->tcp_congestion != NULL && strlen(cfg->tcp_congestion) > RLI_CONGESTION_NAME_MAX)
        return rli_err(RL_EINVAL, "rl_ring_form: tcp_congestion \"%.40s\" is longer than %d "
                       "characters", cfg->tcp_congestion, RLI_CONGESTION_NAME_MAX);

    rl_ring *r = rli_calloc(1, sizeof(*r));
    r->ep = ep;
    r->epoch = cfg->epoch;
    r->rank = cfg->rank;
    r->size = cfg->size;
    r->chunk_bytes = cfg->chunk_bytes ? cfg->chunk_bytes : RING_DEFAULT_CHUNK;
    if (r->chunk_bytes < 64) r->chunk_bytes = 64;
    /* The one-round algorithm sends (N-1) x S per member against the ring's
     * 2(N-1)/N x S, in one hop instead of 2(N-1). Measured here (bench
     * allreduce --small 0 / 64M): it wins up to 256 KiB at N=2 (loses at
     * 1 MiB) and up to 512 KiB at N=4 (loses at 1 MiB). Default: at most
     * 512 KiB, and at most 2 MiB sent per member. */
    size_t small_default = (2u << 20) / (size_t)(cfg->size > 1 ? cfg->size - 1 : 1);
    if (small_default > (512u << 10)) small_default = 512u << 10;
    r->small_bytes = cfg->small_bytes == SIZE_MAX ? small_default : cfg->small_bytes;
    /* Recursive doubling beats the one round from 4 members up (fewer
     * messages per member: measured at N = 4..8, 4 B - 64 KiB, 15-35%), for
     * frames the caller's thread sends itself (DIRECT_INLINE_MAX). */
    r->doubling_bytes = cfg->size >= 4 ? (r->small_bytes < 65536 ? r->small_bytes : 65536) : 0;
    /* Recursive halving for N a power of two >= 4, above that and up to
     * 4 MiB (above, the ring's pipelined chunks are as fast and keep frames
     * small): measured at N = 4 and 8, 256 KiB - 4 MiB, 3-35% faster than
     * the one round or the ring; level at 16 MiB. small_bytes = 0 still
     * means "the ring only". */
    bool pow2 = (cfg->size & (cfg->size - 1)) == 0;
    r->halving_bytes = cfg->size >= 4 && pow2 && cfg->small_bytes != 0 ? (4u << 20) : 0;
    r->ids = rli_calloc((size_t)r->size, sizeof(char *));
    r->urls = rli_calloc((size_t)r->size, sizeof(char *));
    r->links = rli_calloc((size_t)r->size, sizeof(rli_link *));
    for (int i = 0; i < r->size; i++) {
        r->ids[i] = rli_strdup(cfg->members[i].id);
        r->urls[i] = rli_strdup(cfg->members[i].url);
    }
    int local, most, ncpu = ring_ncpu();
    ring_host_counts(r, &local, &most);
    int spin_auto = local <= ncpu ? RING_SPIN_AUTO_US : 0;
    int yield_auto = local >= 2 * ncpu ? RING_YIELD_AUTO_US : 0;
    r->spin_us = cfg->spin_us > 0 ? cfg->spin_us : cfg->spin_us < 0 ? 0 : spin_auto;
    /* With the default chunk (given or not), a segment under two chunks is cut in two so
     * that the reduce of one half overlaps the transfer of the other
     * (measured at N=2 here: 1 MiB 359-688 -> 321-368 us, 2 MiB 1.24-1.40
     * -> 0.54-0.64 ms). Each chunk costs the receiver a wake-up, which
     * members crowded on shared cores pay dearly (N=3 on 2 cores: 1 MiB
     * 0.68-0.85 -> 1.16-1.39 ms), and chunking must be the same on every
     * member: so only when no host runs more than two members, which every
     * member sees from the member list. */
    r->split_segments = r->chunk_bytes == RING_DEFAULT_CHUNK && most <= 2;
    if (r->spin_us > RING_SPIN_MAX_US) r->spin_us = RING_SPIN_MAX_US;
    r->yield_us = cfg->yield_us > 0 ? cfg->yield_us : cfg->yield_us < 0 ? 0 : yield_auto;
    if (r->yield_us > RING_SPIN_MAX_US) r->yield_us = RING_SPIN_MAX_US;
    r->pfd = rli_calloc((size_t)r->size + 1, sizeof(*r->pfd));
    r->pwho = rli_calloc((size_t)r->size + 1, sizeof(*r->pwho));

    /* Fence: from now on, links announcing an older epoch are refused. */
    rli_link *reap = NULL;
    pthread_mutex_lock(&ep->mtx);
    int stale = ring_fence_err(r);
    if (stale != RL_OK) {
        pthread_mutex_unlock(&ep->mtx);
        ring_free_members(r);
        free(r->links);
        free(r);
        return stale;
    }
    ep->fence_epoch = cfg->epoch;
    for (rli_link **pp = &ep->waiting; *pp != NULL;) {
        rli_link *w = *pp;
        if (w->closed || (w->hello_done && w->hello_epoch < cfg->epoch)) {
            *pp = w->next;
            w->next = reap;
            reap = w;
            if (w->hello_done) ep->refused_stale++;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&ep->mtx);
    while (reap != NULL) {
        rli_link *next = reap->next;
        link_free(reap);
        reap = next;
    }

    int rv = RL_OK;
    for (int p = r->rank + 1; p < r->size && rv == RL_OK; p++) {
        rli_link *l = NULL;
        rv = dial_member(r, p, deadline_ms, &l);
        if (rv == RL_OK) {
            pthread_mutex_lock(&ep->mtx);
            l->ring = r;
            r->links[p] = l;
            pthread_mutex_unlock(&ep->mtx);
        }
    }

    pthread_mutex_lock(&ep->mtx);
    while (rv == RL_OK) {
        int missing = 0;
        for (rli_link **pp = &ep->waiting; *pp != NULL;) {
            rli_link *w = *pp;
            if (!w->closed && w->hello_done && w->hello_epoch == cfg->epoch &&
                w->peer_rank >= 0 && w->peer_rank < r->rank && r->links[w->peer_rank] == NULL) {
                *pp = w->next;
                w->next = NULL;
                w->ring = r;
                r->links[w->peer_rank] = w;
                if (!w->rpending && w->rcap < ring_rbuf_size(r, w->peer_rank)) {
                    w->rcap = ring_rbuf_size(r, w->peer_rank);
                    w->rbuf = rli_realloc(w->rbuf, w->rcap);
                }
            } else {
                pp = &w->next;
            }
        }
        for (int p = 0; p < r->rank; p++)
            if (r->links[p] == NULL) missing++;
        if (missing == 0) break;
        if ((rv = ring_fence_err(r)) != RL_OK) break;
        if (cv_wait_until(ep, deadline_ms) == RL_ETIMEDOUT) {
            char names[512] = "";
            size_t off = 0;
            for (int p = 0; p < r->rank; p++)
                if (r->links[p] == NULL && off < sizeof(names) - 1)
                    off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s (rank %d)",
                                            off ? ", " : "", r->ids[p], p);
            rv = rli_err(RL_ETIMEDOUT, "ring epoch %llu: %s did not connect before the deadline",
                         (unsigned long long)cfg->epoch, names);
        }
    }
    /* The links are this ring's now: find their sockets (stream_fd scans
     * /proc/self/fd) outside the lock, once per member rather than per
     * accepted connection. Only this thread reads l->fd. */
    pthread_mutex_unlock(&ep->mtx);
    for (int p = 0; rv == RL_OK && p < r->size; p++) {
        rli_link *l = r->links[p];
        if (l == NULL) continue;
        l->sock = stream_fd(l->stream);
        l->fd = stream_is_tls(l->stream) ? -1 : l->sock;
        rv = link_set_congestion(r, l, cfg->tcp_congestion, local, ncpu);
    }
    pthread_mutex_lock(&ep->mtx);
    /* Plain TCP links become direct (link_direct_write) once the hello and
     * welcome frames that nng was sending on them are out. */
    while (rv == RL_OK) {
        bool busy = false;
        for (int p = 0; p < r->size; p++) {
            rli_link *l = r->links[p];
            if (l != NULL && l->serr == 0 && (l->spending || l->sq_count > 0)) busy = true;
        }
        if (!busy) break;
        if (cv_wait_until(ep, deadline_ms) == RL_ETIMEDOUT)
            rv = rli_err(RL_ETIMEDOUT, "ring epoch %llu: hello frames not sent before the "
                         "deadline", (unsigned long long)cfg->epoch);
    }
    /* All or none: a collective blocked on a non-direct link (in nng) would
     * not write a direct link's queue meanwhile. */
    bool all = true;
    for (int p = 0; p < r->size; p++) {
        rli_link *l = r->links[p];
        if (l != NULL && (l->fd < 0 || l->spending || l->sq_count > 0)) all = false;
    }
    for (int p = 0; rv == RL_OK && all && p < r->size; p++)
        if (r->links[p] != NULL) r->links[p]->direct = true;
    pthread_mutex_unlock(&ep->mtx);
    if (rv != RL_OK) {
        rl_ring_free(r);
        return rv;
    }
    *out = r;
    return RL_OK;
}

void rl_ring_abort(rl_ring *r, int err, const char *why)
{
    if (r == NULL) return;
    pthread_mutex_lock(&r->ep->mtx);
    if (r->err == 0) {
        r->err = err ? err : RL_ECANCELED;
        snprintf(r->err_detail, sizeof(r->err_detail), "%s", why ? why : "ring aborted");
    }
    for (int p = 0; p < r->size; p++) {
        rli_link *l = r->links[p];
        if (l != NULL && !l->closed) {
            l->closed = true;
            nng_stream_close(l->stream);
        }
    }
    pthread_cond_broadcast(&r->ep->cv);
    pthread_mutex_unlock(&r->ep->mtx);
}

void rl_ring_free(rl_ring *r)
{
    if (r == NULL) return;
    pthread_mutex_lock(&r->ep->mtx);
    for (int p = 0; p < r->size; p++)
        if (r->links[p] != NULL) nng_stream_close(r->links[p]->stream);
    pthread_mutex_unlock(&r->ep->mtx);
    for (int p = 0; p < r->size; p++) link_free(r->links[p]);
    free(r->links);
    ring_free_members(r);
    free(r);
}

uint64_t rl_ring_epoch(const rl_ring *r)
{
    return r->epoch;
}

int rl_ring_rank(const rl_ring *r)
{
    return r->rank;
}

int rl_ring_size(const rl_ring *r)
{
    return r->size;
}

void rl_ring_get_stats(const rl_ring *r, rl_ring_stats *st)
{
    pthread_mutex_lock(&r->ep->mtx);
    *st = r->stats;
    pthread_mutex_unlock(&r->ep->mtx);
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
