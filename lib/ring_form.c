/*
 * ring_form.c - forming one ring per epoch on an endpoint, and the ring's
 * lifecycle (abort, free, accessors).
 *
 * Each pair of members shares one TCP (or TLS, or IPC) stream, dialed by the
 * lower rank; the stream starts with a RING_HELLO naming the epoch and the
 * dialer's rank. rl_ring_form fences older epochs on the endpoint, dials
 * every higher rank, claims the links the lower ranks dialed in (parked by
 * ring_endpoint.c), tunes their sockets, and makes plain TCP links direct.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"
#include "ring_internal.h"
#include "rli.h"
#include "tls.h"
#include <nng/supplemental/util/platform.h> /* nng_msleep; after nng.h */

#define RING_DIAL_RETRY_MS 10
/* One dial attempt's timeout, at most, so that rl_endpoint_fence is seen
 * while a dial to a silent host hangs: long enough for any TCP handshake a
 * cluster link completes (Linux retransmits a lost SYN after 1 s anyway). */
#define RING_DIAL_SLICE_MS 1000

/* Receive buffer per link. The ring algorithm receives only from the left
 * neighbour: room for a few chunks there, so that the link keeps reading
 * ahead while the consumer reduces. Other links carry only the one-round
 * algorithm's frames; theirs grow on demand (rli_link_make_room). */
static size_t ring_rbuf_size(const rl_ring *r, int peer)
{
    if (peer == (r->rank + r->size - 1) % r->size) return 4 * (r->chunk_bytes + 8192);
    return 65536;
}

#define RING_TLS_PROBE_MS 2000 /* bound on the look at a refused certificate */

/* True if l failed because the TLS handshake refused peer's certificate (it
 * runs with a link's first send or receive); rli_tls_explain has named it. */
static bool link_tls_refused(rl_ring *r, rli_link *l, int peer)
{
    pthread_mutex_lock(&r->ep->mtx);
    int e = l->rerr != 0 ? l->rerr : l->serr;
    pthread_mutex_unlock(&r->ep->mtx);
    return (e == NNG_ECRYPTO || e == NNG_EPEERAUTH) &&
           rli_tls_explain(r->ep->tls_client, r->urls[peer], RING_TLS_PROBE_MS) != RL_OK;
}

/* Receives the one authentication frame of `type` (a challenge's nonce or a
 * welcome's proof, 32 bytes each) on a dialed link, before any ring uses
 * it, into val. Called without the lock. */
static int link_recv_auth(rl_ring *r, rli_link *l, int peer, rl_msg_type type, uint64_t deadline_ms,
                          uint8_t val[32])
{
    const uint8_t *p;
    size_t n;
    const char *what = type == RL_MSG_RING_CHALLENGE ? "challenge" : "welcome";
    rli_err(RL_OK, "%s", ""); /* no stale detail in the message below */
    int rv = rli_link_recv(l, &p, &n, deadline_ms, false);
    if (rv != RL_OK && link_tls_refused(r, l, peer)) return RL_ECONFIG;
    if (rv != RL_OK)
        return rli_err(rv == RL_ETIMEDOUT ? RL_ETIMEDOUT : RL_EAUTH,
                       "ring epoch %llu: no %s from %s (rank %d) at %s: %s (does it hold the "
                       "same cluster token?)",
                       (unsigned long long)r->epoch, what, r->ids[peer], peer, r->urls[peer],
                       rl_errdetail()[0] ? rl_errdetail() : rl_strerror(rv));
    rl_msg m;
    rv = rl_msg_decode(p, n, &m);
    if (rv == RL_OK) {
        rl_bytes b = m.type == RL_MSG_RING_CHALLENGE && type == m.type ? m.u.ring_challenge.nonce
                     : m.type == RL_MSG_RING_WELCOME && type == m.type ? m.u.ring_welcome.proof
                                                                       : (rl_bytes){NULL, 0};
        if (b.len == 32)
            memcpy(val, b.ptr, 32);
        else
            rv = RL_EPROTO;
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
        return rli_err(RL_ESTALE,
                       "ring epoch %llu: the endpoint is fenced for good (its owner "
                       "is stopping)",
                       (unsigned long long)r->epoch);
    return rli_err(RL_ESTALE, "ring epoch %llu: epoch %llu was formed or planned since",
                   (unsigned long long)r->epoch, (unsigned long long)r->ep->fence_epoch);
}

/* A stream dialer for peer's URL, with TLS when the URL asks for it, and the
 * aio its dials use. */
static int dialer_open(rl_ring *r, int peer, nng_stream_dialer **d, nng_aio **aio)
{
    const char *url = r->urls[peer];
    int rv;
    if ((rv = nng_stream_dialer_alloc(d, url)) != 0)
        return rli_err(rli_err_from_nng(rv), "cannot dial %s (%s): %s", r->ids[peer], url,
                       nng_strerror(rv));
    if (rli_url_is_tls(url)) {
        if (r->ep->tls_client == NULL)
            return rli_err(RL_ECONFIG, "%s is tls+tcp but this member has no TLS config", url);
        /* A config naming this peer's host; the dialer holds its own
         * reference. */
        nng_tls_config *cfg = NULL;
        if ((rv = rli_tls_client_config(r->ep->tls_client, url, &cfg)) != RL_OK) return rv;
        rv = nng_stream_dialer_set_ptr(*d, NNG_OPT_TLS_CONFIG, cfg);
        nng_tls_config_free(cfg);
        if (rv != 0)
            return rli_err(rli_err_from_nng(rv), "TLS dialer %s: %s", url, nng_strerror(rv));
    }
    nng_stream_dialer_set_bool(*d, NNG_OPT_TCP_NODELAY, true);
    if (nng_aio_alloc(aio, NULL, NULL) != 0) return rli_err(RL_ENOMEM, "no aio");
    return RL_OK;
}

/* Dials peer until it accepts, retrying refused connections until the
 * deadline; returns RL_ESTALE as soon as the endpoint is fenced past r's
 * epoch. Called without the lock. */
static int dial_until_accepted(rl_ring *r, int peer, nng_stream_dialer *d, nng_aio *aio,
                               uint64_t deadline_ms, nng_stream **out)
{
    const char *url = r->urls[peer];
    for (;;) {
        uint64_t now = rli_now_ms();
        if (now >= deadline_ms)
            return rli_err(RL_ETIMEDOUT,
                           "member %s (rank %d) at %s did not accept before the "
                           "deadline (%d ms)",
                           r->ids[peer], peer, url, RL_RING_CONNECT_MS);
        pthread_mutex_lock(&r->ep->mtx);
        int rv = ring_fence_err(r);
        pthread_mutex_unlock(&r->ep->mtx);
        if (rv != RL_OK) return rv;
        /* In slices, so that a fence is seen while a dial hangs. */
        uint64_t slice = deadline_ms - now;
        if (slice > RING_DIAL_SLICE_MS) slice = RING_DIAL_SLICE_MS;
        nng_aio_set_timeout(aio, (nng_duration)slice);
        nng_stream_dialer_dial(d, aio);
        nng_aio_wait(aio);
        rv = nng_aio_result(aio);
        if (rv == 0 && rli_stream_is_self(nng_aio_get_output(aio, 0))) {
            /* Connected to itself: a dial from an ephemeral port equal to
             * the port dialled, where nothing listens, is a TCP
             * simultaneous open (seen in a test dialling a dead member).
             * Nobody is there: retry as if refused. */
            nng_stream *s = nng_aio_get_output(aio, 0);
            nng_stream_close(s);
            nng_stream_free(s);
            rv = NNG_ECONNREFUSED;
        }
        if (rv == 0) {
            *out = nng_aio_get_output(aio, 0);
            return RL_OK;
        }
        if (rv != NNG_ECONNREFUSED && rv != NNG_ETIMEDOUT)
            return rli_err(rli_err_from_nng(rv), "dial %s (rank %d) at %s: %s", r->ids[peer], peer,
                           url, nng_strerror(rv));
        nng_msleep(RING_DIAL_RETRY_MS); /* the peer is not listening yet */
    }
}

/* Sends m, the hello, on the dialed link l and waits until it is written. */
static int send_hello(rl_ring *r, rli_link *l, int peer, const rl_msg *m, uint64_t deadline_ms)
{
    rl_endpoint *ep = r->ep;
    pthread_mutex_lock(&ep->mtx);
    int rv = rli_link_send(l, m);
    while (rv == RL_OK && l->sq_count > 0 && l->serr == 0)
        rv = rli_endpoint_wait(ep, deadline_ms);
    int serr = l->serr;
    pthread_mutex_unlock(&ep->mtx);
    if (rv == RL_OK && serr != 0) {
        if (link_tls_refused(r, l, peer)) return RL_ECONFIG;
        return rli_err(rli_err_from_nng(serr), "hello to %s (rank %d): %s", r->ids[peer], peer,
                       nng_strerror(serr));
    }
    if (rv == RL_ETIMEDOUT)
        return rli_err(RL_ETIMEDOUT, "hello to %s (rank %d) not sent before the deadline",
                       r->ids[peer], peer);
    return rv;
}

/* Receives the acceptor's welcome and checks its proof of the token, which
 * answers our nonce nd to its challenge na. */
static int check_welcome(rl_ring *r, rli_link *l, int peer, const uint8_t *na, const uint8_t *nd,
                         uint64_t deadline_ms)
{
    uint8_t got[RLI_MAC_LEN], want[RLI_MAC_LEN];
    int rv = link_recv_auth(r, l, peer, RL_MSG_RING_WELCOME, deadline_ms, got);
    if (rv != RL_OK) return rv;
    rli_ring_welcome_proof(&r->ep->token, nd, na, r->epoch, (uint64_t)r->rank, want);
    if (!rli_mac_equal(want, got, RLI_MAC_LEN))
        return rli_err(RL_EAUTH,
                       "member %s (rank %d) at %s could not prove it holds the "
                       "cluster token",
                       r->ids[peer], peer, r->urls[peer]);
    return RL_OK;
}

/* Makes the dialed stream s (taken) a link to peer: sends the RING_HELLO,
 * after answering the acceptor's challenge when the endpoint has a token,
 * then checks the acceptor's welcome. */
static int link_handshake(rl_ring *r, int peer, nng_stream *s, uint64_t deadline_ms, rli_link **out)
{
    rl_endpoint *ep = r->ep;
    /* The hello goes through the link's own send queue, like every frame. */
    rli_link *l = rli_link_new(ep, s, ring_rbuf_size(r, peer), NULL);
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
    int rv = RL_OK;
    if (ep->has_token) { /* answer the acceptor's challenge */
        rv = link_recv_auth(r, l, peer, RL_MSG_RING_CHALLENGE, deadline_ms, na);
        if (rv == RL_OK) {
            if (rli_random(nd, RLI_NONCE_LEN) != RL_OK) abort();
            rli_ring_hello_proof(&ep->token, na, nd, r->epoch, (uint64_t)r->rank, r->ids[r->rank],
                                 proof);
            m.u.ring_hello.nonce = (rl_bytes){nd, RLI_NONCE_LEN};
            m.u.ring_hello.proof = (rl_bytes){proof, RLI_MAC_LEN};
        }
    }
    if (rv == RL_OK) rv = send_hello(r, l, peer, &m, deadline_ms);
    /* and the acceptor must prove itself */
    if (rv == RL_OK && ep->has_token) rv = check_welcome(r, l, peer, na, nd, deadline_ms);
    if (rv != RL_OK) {
        rli_link_free(l);
        return rv;
    }
    *out = l;
    return RL_OK;
}

/* Dials peer and makes the stream a link of r. Called without the lock. */
static int dial_member(rl_ring *r, int peer, uint64_t deadline_ms, rli_link **out, int *unreachable)
{
    nng_stream_dialer *d = NULL;
    nng_aio *aio = NULL;
    nng_stream *s = NULL;
    /* Its endpoint listens from before it joined: connected and
     * authenticated within RL_RING_CONNECT_MS, or its address is not
     * reachable from here. */
    uint64_t connect_by = rli_now_ms() + RL_RING_CONNECT_MS;
    if (connect_by > deadline_ms) connect_by = deadline_ms;
    int rv = dialer_open(r, peer, &d, &aio);
    if (rv == RL_OK) rv = dial_until_accepted(r, peer, d, aio, connect_by, &s);
    if (rv == RL_OK) rv = link_handshake(r, peer, s, connect_by, out);
    if (rv != RL_OK && rv != RL_ESTALE && rv != RL_ECANCELED) *unreachable = peer;
    if (aio != NULL) nng_aio_free(aio);
    if (d != NULL) nng_stream_dialer_free(d);
    return rv;
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
        return rli_err(RL_EINVAL,
                       "ring epoch %llu: link to %s (rank %d): TCP congestion "
                       "control \"%s\" %s",
                       (unsigned long long)r->epoch, r->ids[l->peer_rank], l->peer_rank,
                       plan.cand[0],
                       err == ENOENT  ? "is not available in this kernel (see /proc/sys/net/ipv4/"
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

/* ---- rl_ring_form, step by step ------------------------------------------ */

static int form_check_config(const rl_endpoint *ep, const rl_ring_config *cfg, rl_ring **out)
{
    if (ep == NULL || cfg == NULL || out == NULL || cfg->size < 1 || cfg->rank < 0 ||
        cfg->rank >= cfg->size || cfg->members == NULL || cfg->size > 4096)
        return rli_err(RL_EINVAL, "rl_ring_form: bad arguments");
    for (int i = 0; i < cfg->size; i++)
        if (cfg->members[i].id == NULL || cfg->members[i].url == NULL)
            return rli_err(RL_EINVAL, "rl_ring_form: member %d has no id or url", i);
    if (cfg->tcp_congestion != NULL && strlen(cfg->tcp_congestion) > RLI_CONGESTION_NAME_MAX)
        return rli_err(RL_EINVAL,
                       "rl_ring_form: tcp_congestion \"%.40s\" is longer than %d "
                       "characters",
                       cfg->tcp_congestion, RLI_CONGESTION_NAME_MAX);
    if ((unsigned)cfg->algorithm >= RL_ALLREDUCE_ALGORITHM_COUNT)
        return rli_err(RL_EINVAL, "rl_ring_form: algorithm %d is not an rl_allreduce_algorithm",
                       (int)cfg->algorithm);
    return RL_OK;
}

/* The ring of cfg, not yet linked, with the tuning its member list asks
 * for (ring_tune.c). *local and *ncpu: this host's members and CPUs. */
static rl_ring *ring_new(rl_endpoint *ep, const rl_ring_config *cfg, int *local, int *ncpu)
{
    rl_ring *r = rli_calloc(1, sizeof(*r));
    r->ep = ep;
    r->epoch = cfg->epoch;
    r->rank = cfg->rank;
    r->size = cfg->size;
    r->chunk_bytes = rli_tune_chunk_bytes(cfg->chunk_bytes);
    r->algorithm = cfg->algorithm;
    r->small_bytes = cfg->small_bytes;
    r->ids = rli_calloc((size_t)r->size, sizeof(char *));
    r->urls = rli_calloc((size_t)r->size, sizeof(char *));
    r->links = rli_calloc((size_t)r->size, sizeof(rli_link *));
    r->wait_ns = rli_calloc((size_t)r->size, sizeof(uint64_t));
    for (int i = 0; i < r->size; i++) {
        r->ids[i] = rli_strdup(cfg->members[i].id);
        r->urls[i] = rli_strdup(cfg->members[i].url);
    }
    int most;
    *ncpu = rli_ncpu();
    rli_host_counts(r->urls, r->size, r->rank, local, &most);
    r->spin_us = rli_tune_spin_us(cfg->spin_us, *local, *ncpu);
    r->yield_us = rli_tune_yield_us(cfg->yield_us, *local, *ncpu);
    /* Chunking must be the same on every member: decided from what all share. */
    r->split_segments = rli_tune_split_segments(r->chunk_bytes, most);
    r->pfd = rli_calloc((size_t)r->size + 1, sizeof(*r->pfd));
    r->pwho = rli_calloc((size_t)r->size + 1, sizeof(*r->pwho));
    rli_pull_ring_init(r);
    return r;
}

static void free_links(rli_link *l)
{
    while (l != NULL) {
        rli_link *next = l->next;
        rli_link_free(l);
        l = next;
    }
}

/* Fences ep at r's epoch: from now on, links announcing an older epoch are
 * refused, and those parked are dropped. RL_ESTALE if ep is fenced past it. */
static int form_fence(rl_ring *r)
{
    rl_endpoint *ep = r->ep;
    rli_link *reap = NULL;
    rli_endpoint_reap_retired(ep, true); /* the rings they served are over */
    pthread_mutex_lock(&ep->mtx);
    int stale = ring_fence_err(r);
    if (stale != RL_OK) {
        pthread_mutex_unlock(&ep->mtx);
        return stale;
    }
    ep->fence_epoch = r->epoch;
    for (rli_link **pp = &ep->waiting; *pp != NULL;) {
        rli_link *w = *pp;
        if (w->closed || (w->hello_done && w->hello_epoch < r->epoch)) {
            *pp = w->next;
            w->next = reap;
            reap = w;
            if (w->hello_done) ep->refused_stale++;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&ep->mtx);
    free_links(reap); /* without the lock: their callbacks take it */
    return RL_OK;
}

/* Dials every member of higher rank, in order; *unreachable: the rank of
 * one that did not accept, or stays -1. */
static int form_dial_higher(rl_ring *r, uint64_t deadline_ms, int *unreachable)
{
    int rv = RL_OK;
    for (int p = r->rank + 1; p < r->size && rv == RL_OK; p++) {
        rli_link *l = NULL;
        rv = dial_member(r, p, deadline_ms, &l, unreachable);
        if (rv == RL_OK) {
            pthread_mutex_lock(&r->ep->mtx);
            l->ring = r;
            r->links[p] = l;
            pthread_mutex_unlock(&r->ep->mtx);
        }
    }
    return rv;
}

/* Moves the parked links of r's epoch from lower ranks into r. Lock held. */
static void claim_parked_links(rl_ring *r)
{
    for (rli_link **pp = &r->ep->waiting; *pp != NULL;) {
        rli_link *w = *pp;
        if (!w->closed && w->hello_done && w->hello_epoch == r->epoch && w->peer_rank >= 0 &&
            w->peer_rank < r->rank && r->links[w->peer_rank] == NULL) {
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
}

static bool lower_links_missing(const rl_ring *r)
{
    for (int p = 0; p < r->rank; p++)
        if (r->links[p] == NULL) return true;
    return false;
}

/* RL_ETIMEDOUT naming the lower ranks that did not dial in. */
static int lower_links_timeout(const rl_ring *r)
{
    char names[512] = "";
    size_t off = 0;
    for (int p = 0; p < r->rank; p++)
        if (r->links[p] == NULL && off < sizeof(names) - 1)
            off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s (rank %d)",
                                    off ? ", " : "", r->ids[p], p);
    return rli_err(RL_ETIMEDOUT, "ring epoch %llu: %s did not connect before the deadline",
                   (unsigned long long)r->epoch, names);
}

/* Waits until every member of lower rank has dialed in and claims its link. */
static int form_accept_lower(rl_ring *r, uint64_t deadline_ms)
{
    int rv = RL_OK;
    pthread_mutex_lock(&r->ep->mtx);
    for (;;) {
        claim_parked_links(r);
        if (!lower_links_missing(r)) break;
        if ((rv = ring_fence_err(r)) != RL_OK) break;
        if (rli_endpoint_wait(r->ep, deadline_ms) == RL_ETIMEDOUT) {
            rv = lower_links_timeout(r);
            break;
        }
    }
    pthread_mutex_unlock(&r->ep->mtx);
    return rv;
}

/* The links are this ring's now: finds their sockets (rli_stream_fd scans
 * /proc/self/fd) outside the lock, once per member rather than per accepted
 * connection, and sets their congestion control. Only this thread reads
 * l->fd. */
static int form_tune_links(rl_ring *r, const char *tcp_congestion, int local, int ncpu)
{
    int rv = RL_OK;
    for (int p = 0; rv == RL_OK && p < r->size; p++) {
        rli_link *l = r->links[p];
        if (l == NULL) continue;
        l->sock = rli_stream_fd(l->stream);
        l->fd = rli_stream_is_tls(l->stream) ? -1 : l->sock;
        rv = link_set_congestion(r, l, tcp_congestion, local, ncpu);
    }
    return rv;
}

/* Plain TCP links become direct (link_direct_write in ring_link.c) once the
 * hello and welcome frames that nng was sending on them are out. All or
 * none: a collective blocked on a non-direct link (in nng) would not write
 * a direct link's queue meanwhile. */
static int form_go_direct(rl_ring *r, uint64_t deadline_ms)
{
    int rv = RL_OK;
    pthread_mutex_lock(&r->ep->mtx);
    while (rv == RL_OK) {
        bool busy = false;
        for (int p = 0; p < r->size; p++) {
            rli_link *l = r->links[p];
            if (l != NULL && l->serr == 0 && (l->spending || l->sq_count > 0)) busy = true;
        }
        if (!busy) break;
        if (rli_endpoint_wait(r->ep, deadline_ms) == RL_ETIMEDOUT)
            rv = rli_err(RL_ETIMEDOUT,
                         "ring epoch %llu: hello frames not sent before the "
                         "deadline",
                         (unsigned long long)r->epoch);
    }
    bool all = true;
    for (int p = 0; p < r->size; p++) {
        rli_link *l = r->links[p];
        if (l != NULL && (l->fd < 0 || l->spending || l->sq_count > 0)) all = false;
    }
    for (int p = 0; rv == RL_OK && all && p < r->size; p++)
        if (r->links[p] != NULL) r->links[p]->direct = true;
    pthread_mutex_unlock(&r->ep->mtx);
    return rv;
}

int rl_ring_form(rl_endpoint *ep, const rl_ring_config *cfg, uint64_t deadline_ms, rl_ring **out)
{
    if (cfg->unreachable_rank != NULL) *cfg->unreachable_rank = -1;
    int rv = form_check_config(ep, cfg, out);
    if (rv != RL_OK) return rv;
    int local, ncpu, unreachable = -1;
    rl_ring *r = ring_new(ep, cfg, &local, &ncpu);
    rv = form_fence(r);
    if (rv == RL_OK) rv = form_dial_higher(r, deadline_ms, &unreachable);
    if (cfg->unreachable_rank != NULL) *cfg->unreachable_rank = unreachable;
    if (rv == RL_OK) rv = form_accept_lower(r, deadline_ms);
    if (rv == RL_OK) rv = form_tune_links(r, cfg->tcp_congestion, local, ncpu);
    if (rv == RL_OK) rv = form_go_direct(r, deadline_ms);
    if (rv != RL_OK) {
        rl_ring_free(r);
        return rv;
    }
    *out = r;
    return RL_OK;
}

/* ---- A formed ring -------------------------------------------------------- */

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
    for (int p = 0; p < r->size; p++) {
        rli_link *l = r->links[p];
        if (l == NULL) continue;
        /* A healthy TLS link may still hold our last frame in nng's TLS
         * buffer: it stays open until the peer closes (ring_internal.h). */
        if (r->err == 0 && l->tls && !l->closed && l->serr == 0 && l->rerr == 0) {
            rli_link_retire(l);
            r->links[p] = NULL;
        } else {
            nng_stream_close(l->stream);
        }
    }
    pthread_mutex_unlock(&r->ep->mtx);
    for (int p = 0; p < r->size; p++)
        rli_link_free(r->links[p]);
    free(r->links);
    free(r->wait_ns);
    free(r->scratch);
    rli_pull_ring_free(r);
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

uint64_t rl_ring_wait_ns(const rl_ring *r, int peer)
{
    return peer >= 0 && peer < r->size ? r->wait_ns[peer] : 0;
}

void rl_ring_get_stats(const rl_ring *r, rl_ring_stats *st)
{
    pthread_mutex_lock(&r->ep->mtx);
    *st = r->stats;
    pthread_mutex_unlock(&r->ep->mtx);
}
