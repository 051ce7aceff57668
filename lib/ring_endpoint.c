/*
 * ring_endpoint.c - a member's endpoint: the listener that lives as long as
 * the member, the accepting side of the hello handshake (challenge, hello,
 * welcome), the parking of accepted links until rl_ring_form claims those
 * of its epoch, and the fence that refuses older epochs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "ringleader/log.h"
#include "ring_internal.h"
#include "rli.h"
#include "tls.h"

#define RING_MAX_WAITING      256   /* parked, unclaimed incoming links */
#define RING_HELLO_TIMEOUT_MS 10000 /* default ep->hello_timeout_ms */

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
    int rv = rli_link_peek(l, &p, &n, &need);
    if (rv == 0) {
        if (need > 4 + 4096)
            rv = RL_EPROTO; /* a hello is small */
        else {
            rli_link_make_room(l, need);
            rli_link_post(l, l->haio, rli_until(l->hello_deadline));
            return;
        }
    }
    rl_msg m;
    if (rv == 1 && rl_msg_decode(p, n, &m) == RL_OK) {
        const rl_msg_ring_hello *h = &m.u.ring_hello;
        uint8_t want[RLI_MAC_LEN];
        if (m.type != RL_MSG_RING_HELLO || h->epoch < ep->fence_epoch || h->rank >= 4096) {
            ep->refused_stale++;
        } else if (ep->has_token && (h->nonce.len != RLI_NONCE_LEN || h->proof.len != RLI_MAC_LEN ||
                                     (rli_ring_hello_proof(&ep->token, l->nonce, h->nonce.ptr,
                                                           h->epoch, h->rank, h->member_id, want),
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
                rli_ring_welcome_proof(&ep->token, h->nonce.ptr, l->nonce, h->epoch, h->rank, want);
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

/* An accepted link's hello bytes arrived (endpoint side, before any ring). */
static void link_hello_cb(void *arg)
{
    rli_link *l = arg;
    rl_endpoint *ep = l->ep;
    pthread_mutex_lock(&ep->mtx);
    int rv = nng_aio_result(l->haio);
    l->rpending = false;
    if (rv != 0)
        l->rerr = rv;
    else
        l->rlen += nng_aio_count(l->haio);
    if (!l->hello_done) link_recv_hello(l);
    pthread_cond_broadcast(&ep->cv);
    pthread_mutex_unlock(&ep->mtx);
}

static size_t count_waiting(rl_endpoint *ep)
{
    size_t k = 0;
    for (rli_link *w = ep->waiting; w != NULL; w = w->next)
        k++;
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
            rli_link *l = rli_link_new(ep, s, 8192, link_hello_cb);
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
            rli_link_post(l, l->haio, rli_until(l->hello_deadline));
        }
    }
    if (!ep->closing && rv != NNG_ECLOSED) nng_stream_listener_accept(ep->listener, ep->accept_aio);
    pthread_mutex_unlock(&ep->mtx);
    while (reap != NULL) {
        rli_link *next = reap->next;
        rli_link_free(reap);
        reap = next;
    }
    rli_endpoint_reap_retired(ep, false); /* those whose peer closed */
}

int rl_endpoint_open(const char *url, const rl_tls_files *tls, rl_endpoint **out)
{
    rl_endpoint *ep = rli_calloc(1, sizeof(*ep));
    int rv;
    ep->hello_timeout_ms = RING_HELLO_TIMEOUT_MS;
    pthread_mutex_init(&ep->mtx, NULL);
    rl_cond_init_monotonic(&ep->cv);

    if ((rv = nng_stream_listener_alloc(&ep->listener, url)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "endpoint %s: %s", url, nng_strerror(rv));
        goto fail;
    }
    if (rli_url_is_tls(url)) {
        if ((rv = rli_tls_config_new(tls, true, NULL, &ep->tls_server)) != 0 ||
            (rv = rli_tls_client_new(tls, &ep->tls_client)) != 0)
            goto fail;
        nng_stream_listener_set_ptr(ep->listener, NNG_OPT_TLS_CONFIG, ep->tls_server);
    }
    /* Small frames must not wait for Nagle and delayed ACK. */
    nng_stream_listener_set_bool(ep->listener, NNG_OPT_TCP_NODELAY, true);
    if ((rv = nng_stream_listener_listen(ep->listener)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "endpoint %s: cannot listen: %s", url, nng_strerror(rv));
        goto fail;
    }
    snprintf(ep->url, sizeof(ep->url), "%s", url);
    int port = 0;
    if (nng_stream_listener_get_int(ep->listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0 && port > 0) {
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
    rli_tls_client_free(ep->tls_client);
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
    rli_endpoint_reap_retired(ep, true);
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
        rli_link_free(w);
        w = next;
    }
    if (ep->tls_server) nng_tls_config_free(ep->tls_server);
    rli_tls_client_free(ep->tls_client);
    pthread_mutex_destroy(&ep->mtx);
    pthread_cond_destroy(&ep->cv);
    free(ep);
}

int rli_endpoint_wait(rl_endpoint *ep, uint64_t deadline_ms)
{
    return rl_cond_wait_until(&ep->cv, &ep->mtx, deadline_ms);
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
