/*
 * rpc_client.c - the RPC client: one req socket, one nng context per call in
 * flight, a deadline on every call, async calls batched under load (see
 * "Asynchronous calls"), and the client half of the authentication
 * handshake (see auth.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "auth.h"
#include "ringleader/clock.h"
#include "ringleader/log.h"
#include "rli.h"
#include "ringleader/spec.h"
#include "rpc_internal.h"
#include "tls.h"

typedef enum {
    P_FREE,    /* in the free list */
    P_LONE,    /* in flight on its own context, or its reply being delivered */
    P_QUEUED,  /* waiting for room in the window */
    P_BATCHED, /* in flight in a batch */
    P_EXPIRED, /* was batched; failed by its deadline; the batch frees it */
} pending_state;

typedef struct pending pending;
struct pending {
    rl_rpc_client *c;
    nng_ctx ctx;
    nng_aio *aio;     /* async calls: has a callback; sync calls: none */
    bool sending;
    bool counted;     /* holds a place in the window */
    pending_state state;
    uint64_t call_id;
    uint64_t deadline;
    rl_msg_type want; /* the response type */
    nng_msg *req;     /* the encoded request until it is sent alone */
    rl_rpc_done cb;
    void *arg;
    pending *next;     /* free list or queue */
    pending *all_next; /* every async slot of the client */
};

#define WINDOW_MAX 16
/* Handshakes a call makes before it gives up (a connection renewed again
 * each time: the server restarting over and over) */
#define AUTH_ATTEMPTS 3
#define DRAIN_MS 500 /* close() lets exchanges in flight end by themselves this long */

typedef struct batch {
    rl_rpc_client *c;
    nng_ctx ctx;
    nng_aio *aio;
    bool busy, sending;
    uint64_t call_id;
    uint64_t deadline; /* the latest of its calls' */
    int n;
    pending *calls[RLI_BATCH_MAX];
    msgpack_sbuffer frames; /* reused */
} batch;

struct rl_rpc_client {
    nng_socket sock;
    nng_dialer dialer;
    nng_tls_config *tls;
    char url[RL_URL_MAX];
    char peer_id[RL_ID_MAX];
    bool has_token;
    rl_token token;
    /* One handshake at a time: the server keeps one challenge per
     * connection, so two threads proving at once on a new connection would
     * spoil each other's (rl_rpc_call). */
    pthread_mutex_t auth_mtx;
    pthread_cond_t auth_cv; /* monotonic: rl_cond_wait_until */
    bool authing;           /* a thread is proving (under auth_mtx) */
    uint64_t auth_gen;      /* handshakes done by rl_rpc_call (under auth_mtx) */
    pthread_mutex_t mtx;
    atomic_uint_fast64_t next_call_id;
    pending *free_async;
    pending *all_async;
    pending *free_sync; /* contexts with callback-less aios, reused by rl_rpc_call */
    /* Batching (see "Asynchronous calls"): */
    bool batching; /* until a server shows it does not know BATCH (batch_reply_check) */
    bool closing;
    int senders;             /* threads between claiming a send and nng_ctx_send returning */
    pthread_cond_t close_cv; /* while closing: a claimed send reached nng, or an exchange ended */
    int window, inflight;
    pending *qhead, *qtail;
    batch batches[WINDOW_MAX];
    nng_aio *timer;
    uint64_t timer_at; /* 0: not armed */
};

static uint64_t remaining(uint64_t deadline)
{
    uint64_t now = rli_now_ms();
    return deadline > now ? deadline - now : 0;
}

/* An aio timeout for deadline: at least 1 ms (0 would mean "no wait" to
 * some nng calls, and the deadline decides), at most what nng_duration holds. */
static nng_duration timeout_for(uint64_t deadline)
{
    uint64_t left = remaining(deadline);
    if (left < 1) left = 1;
    if (left > (uint64_t)INT32_MAX - 1) left = (uint64_t)INT32_MAX - 1;
    return (nng_duration)left;
}

/* The request on ctx is sent: waits for its reply on aio until deadline. */
static void recv_reply(nng_ctx ctx, nng_aio *aio, uint64_t deadline)
{
    nng_aio_set_timeout(aio, timeout_for(deadline));
    nng_ctx_recv(ctx, aio);
}

/*
 * The send half of an exchange on aio ended with rv (its callback's
 * nng_aio_result): on success the exchange turns to receiving (*sending
 * false, the reply's receive posted) and true is returned, the callback's
 * work being done; on failure the message nng did not take is freed.
 */
static bool exchange_sent(nng_ctx ctx, nng_aio *aio, bool *sending, uint64_t deadline, int rv)
{
    if (rv == 0) {
        *sending = false;
        recv_reply(ctx, aio, deadline);
        return true;
    }
    nng_msg_free(nng_aio_get_msg(aio));
    nng_aio_set_msg(aio, NULL);
    return false;
}

/* Decodes a reply frame into reply (its BIN fields borrow from the frame)
 * and checks it answers call_id with the expected type. */
static int take_reply(const void *frame, size_t len, uint64_t call_id, rl_msg_type want,
                      rl_rpc_reply *reply)
{
    memset(reply, 0, sizeof(*reply));
    int rv = rl_msg_decode(frame, len, &reply->msg);
    if (rv != RL_OK) return rli_err_prefix(rv, "bad reply");
    reply->status = reply->msg.status;
    if (reply->msg.call_id != call_id)
        return rli_err(RL_EPROTO, "reply to call %llu answers call %llu",
                       (unsigned long long)call_id, (unsigned long long)reply->msg.call_id);
    if (reply->status != RL_STATUS_OK)
        return rli_err(rl_err_from_status(reply->status), "%s: %s",
                       rl_status_name(reply->status), reply->msg.status_msg);
    if (reply->msg.type != want)
        return rli_err(RL_EPROTO, "reply is %s, expected %s",
                       rl_msg_name(reply->msg.type) ? rl_msg_name(reply->msg.type) : "?",
                       rl_msg_name(want));
    return RL_OK;
}

void rl_rpc_reply_fini(rl_rpc_reply *reply)
{
    if (reply == NULL) return;
    rl_msg_fini(&reply->msg);
    if (reply->frame != NULL) nng_msg_free(reply->frame);
    memset(reply, 0, sizeof(*reply));
}

static int encode_request(rl_rpc_client *c, const rl_msg *req, uint64_t deadline,
                          uint64_t *call_id, nng_msg **out)
{
    rl_msg m = *req; /* shallow: only the envelope changes */
    *call_id = atomic_fetch_add_explicit(&c->next_call_id, 1, memory_order_relaxed) + 1;
    m.version = RL_PROTO_VERSION;
    m.call_id = *call_id;
    m.deadline_ms = remaining(deadline);
    m.status = RL_STATUS_OK;
    m.status_msg[0] = '\0';
    return rli_msg_to_nng(&m, out);
}

/* Why a call failed with nng error rv, its request already sent or not
 * (the sync and async paths say the same). */
static const char *call_failure(int rv, bool sent)
{
    if (rv != NNG_ETIMEDOUT) return nng_strerror(rv);
    return sent ? "no reply before the deadline" : "deadline exceeded before the request was sent";
}

/* A context and a callback-less aio for one synchronous call, from the pool. */
static pending *sync_slot_get(rl_rpc_client *c)
{
    pthread_mutex_lock(&c->mtx);
    pending *p = c->free_sync;
    if (p != NULL) c->free_sync = p->next;
    pthread_mutex_unlock(&c->mtx);
    if (p != NULL) return p;
    p = rli_calloc(1, sizeof(*p));
    p->c = c;
    if (nng_ctx_open(&p->ctx, c->sock) != 0 || nng_aio_alloc(&p->aio, NULL, NULL) != 0) {
        if (p->aio != NULL) nng_aio_free(p->aio);
        free(p);
        return NULL;
    }
    return p;
}

static void sync_slot_put(rl_rpc_client *c, pending *p)
{
    pthread_mutex_lock(&c->mtx);
    p->next = c->free_sync;
    c->free_sync = p;
    pthread_mutex_unlock(&c->mtx);
}

static int call_once(rl_rpc_client *c, const rl_msg *req, rl_rpc_reply *reply, uint64_t deadline)
{
    const rli_method *m = rli_method_find(req->type, NULL);
    const char *name = rl_msg_name(req->type);
    nng_msg *msg = NULL;
    uint64_t call_id;
    int rv;

    memset(reply, 0, sizeof(*reply));
    if (m == NULL) return rli_err(RL_EINVAL, "%s is not an RPC request", name ? name : "?");
    if ((rv = encode_request(c, req, deadline, &call_id, &msg)) != 0) return rv;
    pending *slot = sync_slot_get(c);
    if (slot == NULL) {
        nng_msg_free(msg);
        return rli_err(RL_ENOMEM, "%s: no nng context", m->name);
    }
    nng_ctx ctx = slot->ctx;
    nng_aio *aio = slot->aio;
    if (remaining(deadline) == 0) {
        rv = rli_err(RL_ETIMEDOUT, "%s to %s: deadline already passed", m->name, c->url);
        nng_msg_free(msg);
        goto out;
    }
    nng_aio_set_timeout(aio, timeout_for(deadline));
    nng_aio_set_msg(aio, msg);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0) {
        nng_msg_free(msg); /* not sent: still ours */
        rv = rli_err(rli_err_from_nng(rv), "%s to %s: %s", m->name, c->url,
                     call_failure(rv, false));
        goto out;
    }
    recv_reply(ctx, aio, deadline);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "%s to %s: %s", m->name, c->url,
                     call_failure(rv, true));
        goto out;
    }
    nng_msg *rmsg = nng_aio_get_msg(aio);
    rv = take_reply(nng_msg_body(rmsg), nng_msg_len(rmsg), call_id, m->resp, reply);
    reply->frame = rmsg;
    if (rv != RL_OK) rli_err_prefix(rv, "%s to %s", m->name, c->url);
out:
    sync_slot_put(c, slot);
    return rv;
}

static int authenticate(rl_rpc_client *c, uint64_t deadline)
{
    uint8_t nc[RLI_NONCE_LEN], want[RLI_MAC_LEN], proof[RLI_MAC_LEN];
    rl_rpc_reply r1, r2;
    rl_msg req;
    int rv = rli_random(nc, sizeof(nc));
    if (rv != 0) return rv;

    rl_msg_init(&req, RL_MSG_AUTH_HELLO_REQ);
    req.u.auth_hello_req.client_nonce = (rl_bytes){nc, sizeof(nc)};
    req.u.auth_hello_req.peer_id = c->peer_id; /* borrowed; not fini'd */
    rv = call_once(c, &req, &r1, deadline);
    if (rv != RL_OK) {
        rl_rpc_reply_fini(&r1);
        return rli_err_prefix(rv == RL_EAUTH ? RL_EAUTH : rv, "authentication");
    }
    const rl_msg_auth_hello_resp *h = &r1.msg.u.auth_hello_resp;
    if (h->server_nonce.len != RLI_NONCE_LEN || h->server_proof.len != RLI_MAC_LEN) {
        rl_rpc_reply_fini(&r1);
        return rli_err(RL_EAUTH, "authentication: malformed challenge from %s", c->url);
    }
    rli_auth_server_proof(&c->token, nc, h->server_nonce.ptr, want);
    if (!rli_mac_equal(want, h->server_proof.ptr, RLI_MAC_LEN)) {
        rl_rpc_reply_fini(&r1);
        return rli_err(RL_EAUTH, "authentication: %s could not prove it holds the cluster "
                       "token", c->url);
    }
    rli_auth_client_proof(&c->token, h->server_nonce.ptr, nc, c->peer_id, proof);
    rl_rpc_reply_fini(&r1);

    rl_msg_init(&req, RL_MSG_AUTH_PROVE_REQ);
    req.u.auth_prove_req.client_proof = (rl_bytes){proof, sizeof(proof)};
    rv = call_once(c, &req, &r2, deadline);
    rl_rpc_reply_fini(&r2);
    if (rv == RL_EAUTH)
        return rli_err(RL_EAUTH, "authentication: %s refused our proof (wrong cluster token?)",
                       c->url);
    return rv == RL_OK ? RL_OK : rli_err_prefix(rv, "authentication");
}

int rl_rpc_call(rl_rpc_client *c, const rl_msg *req, rl_rpc_reply *reply, uint64_t deadline_ms)
{
    for (int attempt = 0;; attempt++) {
        pthread_mutex_lock(&c->auth_mtx);
        uint64_t gen = c->auth_gen;
        pthread_mutex_unlock(&c->auth_mtx);
        int rv = call_once(c, req, reply, deadline_ms);
        if (rv != RL_EAUTH || !c->has_token || reply->status != RL_STATUS_UNAUTHENTICATED ||
            attempt == AUTH_ATTEMPTS)
            return rv;
        /* The connection is new (reconnect, server restart): prove again,
         * unless another thread has since this call was sent; one thread
         * proves at a time, the others wait for it until their deadline. */
        rl_rpc_reply_fini(reply);
        pthread_mutex_lock(&c->auth_mtx);
        while (c->authing && c->auth_gen == gen)
            if (rl_cond_wait_until(&c->auth_cv, &c->auth_mtx, deadline_ms) == RL_ETIMEDOUT) {
                pthread_mutex_unlock(&c->auth_mtx);
                return rli_err(RL_ETIMEDOUT, "%s to %s: authentication by another call "
                               "not finished before the deadline",
                               rl_msg_name(req->type) ? rl_msg_name(req->type) : "call", c->url);
            }
        rv = RL_OK; /* unless this thread proves, and fails */
        if (c->auth_gen == gen) {
            c->authing = true;
            pthread_mutex_unlock(&c->auth_mtx);
            rv = authenticate(c, deadline_ms);
            pthread_mutex_lock(&c->auth_mtx);
            c->authing = false;
            if (rv == RL_OK) c->auth_gen++;
            pthread_cond_broadcast(&c->auth_cv);
        }
        pthread_mutex_unlock(&c->auth_mtx);
        if (rv != RL_OK) return rv;
    }
}

/* ---- Asynchronous calls -------------------------------------------------------- */

/*
 * A call that may be batched (its method's BATCH column, a frame of at most
 * BATCH_FRAME_MAX bytes) is sent at once while fewer than `window` such
 * messages are in flight; otherwise it waits in a queue, and the next message
 * to leave carries everything queued (up to RLI_BATCH_MAX calls and
 * BATCH_BYTES) as one BATCH. The window clocks itself: under load each
 * reply releases the calls that queued behind it, and one lone call costs
 * what it did before. Other calls (PLAN, big frames) never wait.
 *
 * A queued or batched call still ends at its own deadline: the client's
 * timer fails it, and the batch's reply to it, if any, is dropped.
 */
#define BATCH_FRAME_MAX (16u << 10)
#define BATCH_BYTES (64u << 10)
#define WINDOW_DEFAULT 1

/* Sends p on its own context. */
static void send_lone(pending *p)
{
    p->sending = true;
    nng_aio_set_timeout(p->aio, timeout_for(p->deadline));
    nng_aio_set_msg(p->aio, p->req);
    p->req = NULL;
    nng_ctx_send(p->ctx, p->aio);
}

/* Returns p to the free list. Lock held. */
static void pending_put_locked(rl_rpc_client *c, pending *p)
{
    if (p->req != NULL) nng_msg_free(p->req);
    p->req = NULL;
    p->state = P_FREE;
    p->next = c->free_async;
    c->free_async = p;
    if (c->closing) pthread_cond_broadcast(&c->close_cv); /* close() may be draining */
}

/* Arms the timer for a queued or batched call ending at deadline. Lock held. */
static void arm_timer_locked(rl_rpc_client *c, uint64_t deadline)
{
    if (c->closing || (c->timer_at != 0 && c->timer_at <= deadline)) return;
    if (c->timer_at != 0) { /* armed for later: its callback re-arms for the earliest */
        nng_aio_cancel(c->timer);
        return;
    }
    c->timer_at = deadline;
    nng_sleep_aio(timeout_for(deadline + 1), c->timer);
}

/* Fails p's call with err; why is its message (each callback sees its own). */
static void run_cb(pending *p, int err, const char *why)
{
    rl_rpc_reply empty;
    memset(&empty, 0, sizeof(empty));
    rli_err(err, "%s", why);
    p->cb(p->arg, err, &empty);
}

static void send_batch(batch *b);
static void batch_finish(batch *b, int err, const char *why, nng_msg *msg);

/* Async exchanges in flight: lone calls and batches awaiting their end. Lock held. */
static int exchanges_locked(const rl_rpc_client *c)
{
    int n = 0;
    for (const pending *p = c->all_async; p != NULL; p = p->all_next)
        n += p->state == P_LONE;
    for (int i = 0; i < c->window; i++) n += c->batches[i].busy;
    return n;
}

/* A send claimed under the lock (senders++) has been handed to nng. */
static void sender_done(rl_rpc_client *c)
{
    pthread_mutex_lock(&c->mtx);
    if (--c->senders == 0 && c->closing) pthread_cond_broadcast(&c->close_cv);
    pthread_mutex_unlock(&c->mtx);
}

/* Sends what the queue holds while the window has room (everything, alone,
 * once batching is off). */
static void pump(rl_rpc_client *c)
{
    for (int guard = 0; guard < 1024; guard++) {
        pending *lone = NULL;
        batch *b = NULL;
        pthread_mutex_lock(&c->mtx);
        pending *p = c->qhead;
        if (c->closing || p == NULL || (c->batching && c->inflight >= c->window)) {
            pthread_mutex_unlock(&c->mtx);
            return;
        }
        if (!c->batching) {
            c->qhead = c->qtail = NULL;
            for (pending *q = p; q != NULL; q = q->next) {
                q->state = P_LONE;
                q->counted = false;
            }
            c->senders++;
            pthread_mutex_unlock(&c->mtx);
            while (p != NULL) {
                pending *next = p->next; /* p may complete and be reused once sent */
                send_lone(p);
                p = next;
            }
            sender_done(c);
            return;
        }
        size_t bytes = nng_msg_len(p->req);
        int n = 1;
        for (pending *q = p->next; q != NULL && n < RLI_BATCH_MAX; q = q->next, n++) {
            if (bytes + nng_msg_len(q->req) > BATCH_BYTES) break;
            bytes += nng_msg_len(q->req);
        }
        if (n == 1) {
            c->qhead = p->next;
            p->state = P_LONE;
            p->counted = true;
            lone = p;
        } else {
            for (int i = 0; i < c->window && b == NULL; i++)
                if (!c->batches[i].busy) b = &c->batches[i];
            RL_ASSERT(b != NULL); /* busy batches hold places in the window */
            b->busy = true;
            b->n = n;
            b->deadline = 0;
            for (int i = 0; i < n; i++) {
                pending *q = c->qhead;
                c->qhead = q->next;
                q->state = P_BATCHED;
                b->calls[i] = q;
                if (q->deadline > b->deadline) b->deadline = q->deadline;
            }
        }
        if (c->qhead == NULL) c->qtail = NULL;
        c->inflight++;
        c->senders++;
        pthread_mutex_unlock(&c->mtx);
        if (lone != NULL) send_lone(lone);
        else send_batch(b);
        sender_done(c);
    }
}

/* A message of the window came back (or failed): room for what queued. */
static void window_release(rl_rpc_client *c)
{
    pthread_mutex_lock(&c->mtx);
    c->inflight--;
    pthread_mutex_unlock(&c->mtx);
    pump(c);
}

static void async_cb(void *arg)
{
    pending *p = arg;
    rl_rpc_client *c = p->c;
    int rv = nng_aio_result(p->aio);
    rl_rpc_reply reply;
    memset(&reply, 0, sizeof(reply));
    if (p->sending) {
        if (exchange_sent(p->ctx, p->aio, &p->sending, p->deadline, rv)) return;
        rv = rli_err(rli_err_from_nng(rv), "call to %s: %s", c->url, call_failure(rv, false));
    } else if (rv != 0) {
        rv = rli_err(rli_err_from_nng(rv), "call to %s: %s", c->url, call_failure(rv, true));
    } else {
        nng_msg *msg = nng_aio_get_msg(p->aio);
        rv = take_reply(nng_msg_body(msg), nng_msg_len(msg), p->call_id, p->want, &reply);
        reply.frame = msg;
    }
    bool counted = p->counted;
    p->cb(p->arg, rv, &reply);
    rl_rpc_reply_fini(&reply);
    pthread_mutex_lock(&c->mtx);
    pending_put_locked(c, p);
    pthread_mutex_unlock(&c->mtx);
    if (counted) window_release(c);
}

static void send_batch(batch *b)
{
    rl_rpc_client *c = b->c;
    nng_msg *msg = NULL;
    int rv = RL_OK;
    msgpack_sbuffer_clear(&b->frames);
    for (int i = 0; i < b->n && rv == RL_OK; i++)
        rv = rli_batch_append(&b->frames, nng_msg_body(b->calls[i]->req),
                              nng_msg_len(b->calls[i]->req));
    if (rv == RL_OK) {
        rl_msg m;
        rl_msg_init(&m, RL_MSG_BATCH_REQ);
        m.u.batch_req.count = (uint64_t)b->n;
        m.u.batch_req.frames = (rl_bytes){(const uint8_t *)b->frames.data, b->frames.size};
        rv = encode_request(c, &m, b->deadline, &b->call_id, &msg);
    }
    if (rv != RL_OK) {
        batch_finish(b, rv, rl_errdetail(), NULL);
        return;
    }
    b->sending = true;
    nng_aio_set_timeout(b->aio, timeout_for(b->deadline));
    nng_aio_set_msg(b->aio, msg);
    nng_ctx_send(b->ctx, b->aio);
}

/* Decodes and checks a batch's reply; returns RL_OK, BATCH_UNKNOWN (the server
 * predates batches) or an error. */
#define BATCH_UNKNOWN (-2)
static int batch_reply_check(batch *b, nng_msg *msg, rl_msg *out)
{
    int rv = rl_msg_decode(nng_msg_body(msg), nng_msg_len(msg), out);
    if (rv != RL_OK) return rli_err_prefix(rv, "bad batch reply");
    if (out->call_id != b->call_id)
        return rli_err(RL_EPROTO, "reply to batch %llu answers call %llu",
                       (unsigned long long)b->call_id, (unsigned long long)out->call_id);
    /* A server from before batches cannot decode BATCH_REQ (or has no such
     * method) and answers with an ERROR_RESP; ours answers a batch with a
     * BATCH_RESP even to refuse it. Either way none of its calls ran. */
    if (out->status == RL_STATUS_UNIMPLEMENTED ||
        (out->status != RL_STATUS_OK && out->type == RL_MSG_ERROR_RESP))
        return BATCH_UNKNOWN;
    if (out->status != RL_STATUS_OK)
        return rli_err(rl_err_from_status(out->status), "batch: %s: %s",
                       rl_status_name(out->status), out->status_msg);
    if (out->type != RL_MSG_BATCH_RESP)
        return rli_err(RL_EPROTO, "batch reply is %s",
                       rl_msg_name(out->type) ? rl_msg_name(out->type) : "?");
    if (out->u.batch_resp.count != (uint64_t)b->n)
        return rli_err(RL_EPROTO, "batch of %d calls answered with %llu replies", b->n,
                       (unsigned long long)out->u.batch_resp.count);
    if ((rv = rli_batch_check(&out->u.batch_resp.frames, out->u.batch_resp.count)) != RL_OK)
        return rli_err_prefix(rv, "bad batch reply");
    return RL_OK;
}

/*
 * Ends batch b: with msg (its reply, taken) every call not already failed by
 * its deadline gets its own reply; without, all get err (why). A server that
 * does not know BATCH turns batching off and its calls are sent alone.
 */
static void batch_finish(batch *b, int err, const char *why, nng_msg *msg)
{
    rl_rpc_client *c = b->c;
    char whybuf[300] = "";
    rl_msg outer;
    memset(&outer, 0, sizeof(outer));
    if (msg != NULL) {
        err = batch_reply_check(b, msg, &outer);
        why = err == RL_OK ? NULL : rl_errdetail();
    }
    if (why != NULL) snprintf(whybuf, sizeof(whybuf), "call to %s: %s", c->url, why);
    pending *mine[RLI_BATCH_MAX];
    int n = b->n;
    pthread_mutex_lock(&c->mtx);
    for (int i = 0; i < n; i++) { /* claim the calls the timer has not failed */
        pending *p = b->calls[i];
        mine[i] = p->state == P_BATCHED ? p : NULL;
        if (mine[i] != NULL) p->state = P_LONE; /* the timer no longer sees it */
    }
    bool closing = c->closing;
    if (err == BATCH_UNKNOWN) {
        c->batching = false;
        if (!closing) c->senders++;
        for (int i = 0; i < n; i++)
            if (mine[i] == NULL) pending_put_locked(c, b->calls[i]);
    }
    pthread_mutex_unlock(&c->mtx);
    if (err == BATCH_UNKNOWN) { /* never executed: each goes alone */
        rl_log_info("rpc: %s does not take batches; calls go one by one", c->url);
        rl_msg_fini(&outer);
        nng_msg_free(msg);
        snprintf(whybuf, sizeof(whybuf), "call to %s: the client closed", c->url);
        for (int i = 0; i < n; i++) {
            if (mine[i] == NULL) continue;
            if (!closing) {
                mine[i]->counted = false;
                send_lone(mine[i]);
                continue;
            }
            run_cb(mine[i], RL_ECLOSED, whybuf);
            pthread_mutex_lock(&c->mtx);
            pending_put_locked(c, mine[i]);
            pthread_mutex_unlock(&c->mtx);
        }
        if (!closing) sender_done(c);
        pthread_mutex_lock(&c->mtx);
        b->busy = false;
        if (c->closing) pthread_cond_broadcast(&c->close_cv);
        pthread_mutex_unlock(&c->mtx);
        window_release(c);
        return;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        rl_bytes f = {NULL, 0};
        if (err == RL_OK) f = rli_batch_next(&outer.u.batch_resp.frames, &off);
        if (mine[i] == NULL) continue;
        if (err != RL_OK) {
            run_cb(mine[i], err, whybuf);
            continue;
        }
        rl_rpc_reply reply;
        int rv = take_reply(f.ptr, f.len, mine[i]->call_id, mine[i]->want, &reply);
        if (rv != RL_OK) rli_err_prefix(rv, "call to %s", c->url);
        mine[i]->cb(mine[i]->arg, rv, &reply);
        rl_msg_fini(&reply.msg); /* its BIN fields borrow from msg */
    }
    rl_msg_fini(&outer);
    if (msg != NULL) nng_msg_free(msg);
    pthread_mutex_lock(&c->mtx);
    for (int i = 0; i < n; i++) pending_put_locked(c, b->calls[i]);
    b->busy = false;
    if (c->closing) pthread_cond_broadcast(&c->close_cv);
    pthread_mutex_unlock(&c->mtx);
    window_release(c);
}

static void batch_cb(void *arg)
{
    batch *b = arg;
    int rv = nng_aio_result(b->aio);
    if (b->sending) {
        if (exchange_sent(b->ctx, b->aio, &b->sending, b->deadline, rv)) return;
        batch_finish(b, rli_err_from_nng(rv), call_failure(rv, false), NULL);
    } else if (rv != 0) {
        batch_finish(b, rli_err_from_nng(rv), call_failure(rv, true), NULL);
    } else {
        batch_finish(b, RL_OK, NULL, nng_aio_get_msg(b->aio));
    }
}

/* Fails queued and batched calls whose deadline has passed. */
static void timer_cb(void *arg)
{
    rl_rpc_client *c = arg;
    pending *expired = NULL, **tail = &expired;
    struct {
        rl_rpc_done cb;
        void *arg;
    } gone[WINDOW_MAX * RLI_BATCH_MAX]; /* the batch may free these slots at once */
    int ngone = 0;
    pthread_mutex_lock(&c->mtx);
    c->timer_at = 0;
    if (c->closing) {
        pthread_mutex_unlock(&c->mtx);
        return;
    }
    uint64_t now = rli_now_ms(), next = 0;
    pending **pp = &c->qhead;
    c->qtail = NULL;
    while (*pp != NULL) {
        pending *p = *pp;
        if (p->deadline <= now) {
            *pp = p->next;
            p->next = NULL;
            *tail = p;
            tail = &p->next;
        } else {
            if (next == 0 || p->deadline < next) next = p->deadline;
            c->qtail = p;
            pp = &p->next;
        }
    }
    for (int i = 0; i < c->window; i++) {
        batch *b = &c->batches[i];
        if (!b->busy) continue;
        for (int k = 0; k < b->n; k++) {
            pending *p = b->calls[k];
            if (p->state != P_BATCHED) continue;
            if (p->deadline <= now) {
                p->state = P_EXPIRED; /* the batch returns it to the free list */
                gone[ngone].cb = p->cb;
                gone[ngone++].arg = p->arg;
            } else if (next == 0 || p->deadline < next) {
                next = p->deadline;
            }
        }
    }
    if (next != 0) arm_timer_locked(c, next);
    pthread_mutex_unlock(&c->mtx);
    char why[RL_URL_MAX + 64];
    snprintf(why, sizeof(why), "call to %s: deadline exceeded before the request was sent", c->url);
    for (pending *p = expired; p != NULL; p = p->next) run_cb(p, RL_ETIMEDOUT, why);

    rl_rpc_reply empty;
    for (int i = 0; i < ngone; i++) {
        memset(&empty, 0, sizeof(empty));
        rli_err(RL_ETIMEDOUT, "call to %s: no reply before the deadline", c->url);
        gone[i].cb(gone[i].arg, RL_ETIMEDOUT, &empty);
    }
    pthread_mutex_lock(&c->mtx);
    while (expired != NULL) {
        pending *p = expired;
        expired = p->next;
        pending_put_locked(c, p);
    }
    pthread_mutex_unlock(&c->mtx);
}

int rl_rpc_call_async(rl_rpc_client *c, const rl_msg *req, uint64_t deadline_ms, rl_rpc_done cb,
                      void *arg)
{
    const rli_method *m = rli_method_find(req->type, NULL);
    if (m == NULL) return rli_err(RL_EINVAL, "not an RPC request");
    nng_msg *msg;
    uint64_t call_id;
    int rv = encode_request(c, req, deadline_ms, &call_id, &msg);
    if (rv != RL_OK) return rv;
    pthread_mutex_lock(&c->mtx);
    pending *p = c->closing ? NULL : c->free_async;
    if (p != NULL) c->free_async = p->next;
    bool closing = c->closing;
    pthread_mutex_unlock(&c->mtx);
    if (closing) {
        nng_msg_free(msg);
        return rli_err(RL_ECLOSED, "call to %s: the client is closing", c->url);
    }
    if (p == NULL) {
        p = rli_calloc(1, sizeof(*p));
        p->c = c;
        if ((rv = nng_ctx_open(&p->ctx, c->sock)) != 0 ||
            (rv = nng_aio_alloc(&p->aio, async_cb, p)) != 0) {
            free(p);
            nng_msg_free(msg);
            return rli_err(rli_err_from_nng(rv), "async call: %s", nng_strerror(rv));
        }
        pthread_mutex_lock(&c->mtx);
        bool late = c->closing; /* close() walks the list once closing is set */
        if (!late) {
            p->all_next = c->all_async;
            c->all_async = p;
        }
        pthread_mutex_unlock(&c->mtx);
        if (late) {
            nng_aio_free(p->aio);
            nng_ctx_close(p->ctx);
            free(p);
            nng_msg_free(msg);
            return rli_err(RL_ECLOSED, "call to %s: the client is closing", c->url);
        }
    }
    p->cb = cb;
    p->arg = arg;
    p->want = m->resp;
    p->call_id = call_id;
    p->deadline = deadline_ms;
    p->req = msg;
    p->next = NULL;
    pthread_mutex_lock(&c->mtx);
    if (c->closing) { /* close() began meanwhile */
        pending_put_locked(c, p);
        pthread_mutex_unlock(&c->mtx);
        return rli_err(RL_ECLOSED, "call to %s: the client is closing", c->url);
    }
    bool queue = m->batch && nng_msg_len(msg) <= BATCH_FRAME_MAX && c->batching;
    if (queue && c->qhead == NULL && c->inflight < c->window) {
        c->inflight++; /* the window has room: off at once */
        queue = false;
        p->counted = true;
    } else {
        p->counted = false;
    }
    if (queue) {
        p->state = P_QUEUED;
        if (c->qtail != NULL) c->qtail->next = p;
        else c->qhead = p;
        c->qtail = p;
        arm_timer_locked(c, deadline_ms);
    } else {
        p->state = P_LONE;
        c->senders++;
    }
    pthread_mutex_unlock(&c->mtx);
    if (queue) {
        pump(c);
    } else {
        send_lone(p);
        sender_done(c);
    }
    return RL_OK;
}

/* ---- Lifecycle ---------------------------------------------------------------------- */

#define TLS_PROBE_MS 2000 /* bound on the look at a refused certificate (rli_tls_explain) */

static int tls_probe_ms(uint64_t deadline_ms)
{
    uint64_t now = rl_clock_ms();
    uint64_t left = deadline_ms > now ? deadline_ms - now : 1;
    return left < TLS_PROBE_MS ? (int)left : TLS_PROBE_MS;
}

int rl_rpc_client_open(const rl_rpc_client_opts *o, uint64_t deadline_ms, rl_rpc_client **out)
{
    if (o == NULL || o->url == NULL) return rli_err(RL_EINVAL, "rpc client: no URL");
    if (o->window < 0 || o->window > WINDOW_MAX)
        return rli_err(RL_EINVAL, "rpc client: window %d (0..%d)", o->window, WINDOW_MAX);
    rl_rpc_client *c = rli_calloc(1, sizeof(*c));
    int rv;
    pthread_mutex_init(&c->mtx, NULL);
    pthread_mutex_init(&c->auth_mtx, NULL);
    rl_cond_init_monotonic(&c->auth_cv);
    pthread_cond_init(&c->close_cv, NULL);
    snprintf(c->url, sizeof(c->url), "%s", o->url);
    snprintf(c->peer_id, sizeof(c->peer_id), "%s", o->peer_id ? o->peer_id : "");
    if (o->token != NULL) {
        c->token = *o->token;
        c->has_token = true;
    }
    c->window = o->window > 0 ? o->window : WINDOW_DEFAULT;
    c->batching = !o->no_batch;
    if ((rv = nng_req0_open(&c->sock)) != 0) {
        pthread_cond_destroy(&c->close_cv);
        pthread_mutex_destroy(&c->mtx);
        pthread_mutex_destroy(&c->auth_mtx);
        pthread_cond_destroy(&c->auth_cv);
        free(c);
        return rli_err(rli_err_from_nng(rv), "rpc client: %s", nng_strerror(rv));
    }
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, o->recv_max ? o->recv_max : RL_PROTO_MAX_FRAME);
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 10);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 200);
    if ((rv = nng_aio_alloc(&c->timer, timer_cb, c)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "rpc client: %s", nng_strerror(rv));
        goto fail;
    }
    for (int i = 0; i < c->window; i++) {
        batch *b = &c->batches[i];
        b->c = c;
        msgpack_sbuffer_init(&b->frames);
        if ((rv = nng_ctx_open(&b->ctx, c->sock)) != 0 ||
            (rv = nng_aio_alloc(&b->aio, batch_cb, b)) != 0) {
            rv = rli_err(rli_err_from_nng(rv), "rpc client: %s", nng_strerror(rv));
            goto fail;
        }
    }
    if ((rv = nng_dialer_create(&c->dialer, c->sock, o->url)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "rpc client: bad URL %s: %s", o->url,
                     nng_strerror(rv));
        goto fail;
    }
    nng_dialer_set_size(c->dialer, NNG_OPT_RECVMAXSZ, o->recv_max ? o->recv_max : RL_PROTO_MAX_FRAME);
    if ((rv = rli_sock_setup_tls_dialer(c->dialer, o->url, o->tls, &c->tls)) != 0) goto fail;
    /* nng's dialer retries a refused certificate in silence: ask once, so
     * that a certificate not for this host fails in seconds, named. */
    if (c->tls != NULL && (rv = rli_tls_explain_files(o->tls, o->url, tls_probe_ms(deadline_ms))) != 0)
        goto fail;
    if ((rv = nng_dialer_start(c->dialer, NNG_FLAG_NONBLOCK)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "rpc client: dial %s: %s", o->url, nng_strerror(rv));
        goto fail;
    }
    if (c->has_token && (rv = authenticate(c, deadline_ms)) != RL_OK) {
        if (rv == RL_ETIMEDOUT && c->tls != NULL) /* the peer may have come up since */
            rv = rli_tls_explain_files(o->tls, o->url, TLS_PROBE_MS) != RL_OK ? RL_ECONFIG : rv;
        goto fail;
    }
    *out = c;
    return RL_OK;
fail:
    rl_rpc_client_close(c);
    return rv;
}

void rl_rpc_client_close(rl_rpc_client *c)
{
    if (c == NULL) return;
    pthread_mutex_lock(&c->mtx);
    c->closing = true; /* nothing new is sent or queued */
    c->qhead = c->qtail = NULL;
    /* Sends already claimed reach nng first (nng_ctx_send does not block),
     * so that no aio is stopped under a send about to start. */
    struct timespec until = rl_timespec_in(CLOCK_REALTIME, 10000);
    while (c->senders > 0 && pthread_cond_timedwait(&c->close_cv, &c->mtx, &until) == 0) {
    }
    /* Exchanges in flight get DRAIN_MS to end by themselves (their replies
     * usually arrive within milliseconds): nng 1.5.2's nng_close can hang for
     * good when it meets replies still arriving on the connection (nng's
     * tracker has such close hangs, e.g. #1543 and #1813; docs/operations.md, "Limits").
     * Then every aio is stopped, which ends what is left (RL_ECANCELED) and
     * waits for its callback, and only then the socket closes. */
    until = rl_timespec_in(CLOCK_REALTIME, DRAIN_MS);
    while (exchanges_locked(c) > 0 &&
           pthread_cond_timedwait(&c->close_cv, &c->mtx, &until) == 0) {
    }
    pthread_mutex_unlock(&c->mtx);
    if (c->timer != NULL) nng_aio_stop(c->timer);
    for (int i = 0; i < c->window; i++)
        if (c->batches[i].aio != NULL) nng_aio_stop(c->batches[i].aio);
    for (pending *p = c->all_async; p != NULL; p = p->all_next) nng_aio_stop(p->aio);
    nng_close(c->sock);
    /* No callback runs now. A call still queued, or whose exchange a stop
     * cut short (nng 1.5.2 refuses an operation started on a stopped aio
     * without a callback: a reply receive posted as its aio was stopped),
     * has not been answered: it ends here. */
    char why[RL_URL_MAX + 64];
    snprintf(why, sizeof(why), "call to %s: the client closed", c->url);
    for (pending *p = c->all_async; p != NULL; p = p->all_next)
        if (p->state == P_QUEUED || p->state == P_LONE || p->state == P_BATCHED)
            run_cb(p, RL_ECLOSED, why);
    pending *q = c->free_sync;
    while (q != NULL) { /* the socket is closed: these aios are idle */
        pending *next = q->next;
        nng_aio_free(q->aio);
        free(q);
        q = next;
    }
    pending *p = c->all_async;
    while (p != NULL) {
        pending *next = p->all_next;
        if (p->req != NULL) nng_msg_free(p->req);
        nng_aio_free(p->aio);
        free(p);
        p = next;
    }
    for (int i = 0; i < c->window; i++) {
        if (c->batches[i].aio != NULL) nng_aio_free(c->batches[i].aio);
        msgpack_sbuffer_destroy(&c->batches[i].frames);
    }
    if (c->timer != NULL) nng_aio_free(c->timer);
    if (c->tls != NULL) nng_tls_config_free(c->tls);
    pthread_cond_destroy(&c->close_cv);
    pthread_mutex_destroy(&c->mtx);
    pthread_mutex_destroy(&c->auth_mtx);
    pthread_cond_destroy(&c->auth_cv);
    memset(&c->token, 0, sizeof(c->token));
    free(c);
}
