/*
 * rpc_client.c - the RPC client: one req socket, one nng context per call in
 * flight, a deadline on every call, and the client half of the
 * authentication handshake (see auth.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "auth.h"
#include "rli.h"
#include "ringleader/spec.h"
#include "rpc_internal.h"

typedef struct pending pending;
struct pending {
    rl_rpc_client *c;
    nng_ctx ctx;
    nng_aio *aio;     /* async calls: has a callback; sync calls: none */
    bool sending;
    uint64_t call_id;
    uint64_t deadline;
    rl_msg_type want; /* the response type */
    rl_rpc_done cb;
    void *arg;
    pending *next;
};

struct rl_rpc_client {
    nng_socket sock;
    nng_dialer dialer;
    nng_tls_config *tls;
    char url[RL_URL_MAX];
    char peer_id[RL_ID_MAX];
    bool has_token;
    rl_token token;
    pthread_mutex_t mtx;
    atomic_uint_fast64_t next_call_id;
    pending *free_async;
    pending *free_sync; /* contexts with callback-less aios, reused by rl_rpc_call */
};

static uint64_t remaining(uint64_t deadline)
{
    uint64_t now = rli_now_ms();
    return deadline > now ? deadline - now : 0;
}

/* Decodes a reply message into reply (taking msg) and checks it answers
 * call_id with the expected type. */
static int take_reply(nng_msg *msg, uint64_t call_id, rl_msg_type want, rl_rpc_reply *reply)
{
    memset(reply, 0, sizeof(*reply));
    int rv = rl_msg_decode(nng_msg_body(msg), nng_msg_len(msg), &reply->msg);
    if (rv != RL_OK) {
        nng_msg_free(msg);
        return rli_err_prefix(rv, "bad reply");
    }
    reply->frame = msg;
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
    uint64_t left = remaining(deadline);
    if (left == 0) {
        rv = rli_err(RL_ETIMEDOUT, "%s to %s: deadline already passed", m->name, c->url);
        nng_msg_free(msg);
        goto out;
    }
    nng_aio_set_timeout(aio, (nng_duration)left);
    nng_aio_set_msg(aio, msg);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0) {
        nng_msg_free(msg); /* not sent: still ours */
        rv = rli_err(rli_err_from_nng(rv), "%s to %s: %s", m->name, c->url,
                     call_failure(rv, false));
        goto out;
    }
    left = remaining(deadline);
    nng_aio_set_timeout(aio, left > 0 ? (nng_duration)left : 1);
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "%s to %s: %s", m->name, c->url,
                     call_failure(rv, true));
        goto out;
    }
    rv = take_reply(nng_aio_get_msg(aio), call_id, m->resp, reply);
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
    int rv = call_once(c, req, reply, deadline_ms);
    if (rv == RL_EAUTH && c->has_token && reply->status == RL_STATUS_UNAUTHENTICATED) {
        /* The connection is new (reconnect, server restart): prove again. */
        rl_rpc_reply_fini(reply);
        if ((rv = authenticate(c, deadline_ms)) != RL_OK) return rv;
        rv = call_once(c, req, reply, deadline_ms);
    }
    return rv;
}

/* ---- Asynchronous calls -------------------------------------------------------- */

static void async_cb(void *arg)
{
    pending *p = arg;
    rl_rpc_client *c = p->c;
    int rv = nng_aio_result(p->aio);
    rl_rpc_reply reply;
    memset(&reply, 0, sizeof(reply));
    if (p->sending) {
        if (rv == 0) {
            p->sending = false;
            uint64_t left = remaining(p->deadline);
            nng_aio_set_timeout(p->aio, left > 0 ? (nng_duration)left : 1);
            nng_ctx_recv(p->ctx, p->aio);
            return;
        }
        nng_msg_free(nng_aio_get_msg(p->aio));
        rv = rli_err(rli_err_from_nng(rv), "call to %s: %s", c->url, call_failure(rv, false));
    } else if (rv != 0) {
        rv = rli_err(rli_err_from_nng(rv), "call to %s: %s", c->url, call_failure(rv, true));
    } else {
        rv = take_reply(nng_aio_get_msg(p->aio), p->call_id, p->want, &reply);
    }
    rl_rpc_done cb = p->cb;
    void *cbarg = p->arg;
    pthread_mutex_lock(&c->mtx);
    p->next = c->free_async;
    c->free_async = p;
    pthread_mutex_unlock(&c->mtx);
    cb(cbarg, rv, &reply);
    rl_rpc_reply_fini(&reply);
}

int rl_rpc_call_async(rl_rpc_client *c, const rl_msg *req, uint64_t deadline_ms, rl_rpc_done cb,
                      void *arg)
{
    const rli_method *m = rli_method_find(req->type, NULL);
    if (m == NULL) return rli_err(RL_EINVAL, "not an RPC request");
    pthread_mutex_lock(&c->mtx);
    pending *p = c->free_async;
    if (p != NULL) c->free_async = p->next;
    pthread_mutex_unlock(&c->mtx);
    if (p == NULL) {
        p = rli_calloc(1, sizeof(*p));
        p->c = c;
        int rv;
        if ((rv = nng_ctx_open(&p->ctx, c->sock)) != 0 ||
            (rv = nng_aio_alloc(&p->aio, async_cb, p)) != 0) {
            free(p);
            return rli_err(rli_err_from_nng(rv), "async call: %s", nng_strerror(rv));
        }
    }
    nng_msg *msg;
    int rv = encode_request(c, req, deadline_ms, &p->call_id, &msg);
    if (rv != RL_OK) {
        pthread_mutex_lock(&c->mtx);
        p->next = c->free_async;
        c->free_async = p;
        pthread_mutex_unlock(&c->mtx);
        return rv;
    }
    p->cb = cb;
    p->arg = arg;
    p->want = m->resp;
    p->deadline = deadline_ms;
    p->sending = true;
    uint64_t left = remaining(deadline_ms);
    nng_aio_set_timeout(p->aio, left > 0 ? (nng_duration)left : 1);
    nng_aio_set_msg(p->aio, msg);
    nng_ctx_send(p->ctx, p->aio);
    return RL_OK;
}

/* ---- Lifecycle ---------------------------------------------------------------------- */

int rl_rpc_client_open(const rl_rpc_client_opts *o, uint64_t deadline_ms, rl_rpc_client **out)
{
    if (o == NULL || o->url == NULL) return rli_err(RL_EINVAL, "rpc client: no URL");
    rl_rpc_client *c = rli_calloc(1, sizeof(*c));
    int rv;
    pthread_mutex_init(&c->mtx, NULL);
    snprintf(c->url, sizeof(c->url), "%s", o->url);
    snprintf(c->peer_id, sizeof(c->peer_id), "%s", o->peer_id ? o->peer_id : "");
    if (o->token != NULL) {
        c->token = *o->token;
        c->has_token = true;
    }
    if ((rv = nng_req0_open(&c->sock)) != 0) {
        free(c);
        return rli_err(rli_err_from_nng(rv), "rpc client: %s", nng_strerror(rv));
    }
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, o->recv_max ? o->recv_max : RL_PROTO_MAX_FRAME);
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 10);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 200);
    if ((rv = nng_dialer_create(&c->dialer, c->sock, o->url)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "rpc client: bad URL %s: %s", o->url,
                     nng_strerror(rv));
        goto fail;
    }
    nng_dialer_set_size(c->dialer, NNG_OPT_RECVMAXSZ, o->recv_max ? o->recv_max : RL_PROTO_MAX_FRAME);
    if ((rv = rli_sock_setup_tls_dialer(c->dialer, o->url, o->tls, &c->tls)) != 0) goto fail;
    if ((rv = nng_dialer_start(c->dialer, NNG_FLAG_NONBLOCK)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "rpc client: dial %s: %s", o->url, nng_strerror(rv));
        goto fail;
    }
    if (c->has_token && (rv = authenticate(c, deadline_ms)) != RL_OK) goto fail;
    *out = c;
    return RL_OK;
fail:
    rl_rpc_client_close(c);
    return rv;
}

void rl_rpc_client_close(rl_rpc_client *c)
{
    if (c == NULL) return;
    nng_close(c->sock);
    pthread_mutex_lock(&c->mtx);
    pending *p = c->free_async;
    c->free_async = NULL;
    pending *q = c->free_sync;
    c->free_sync = NULL;
    pthread_mutex_unlock(&c->mtx);
    while (q != NULL) { /* the socket is closed: these aios are idle */
        pending *next = q->next;
        nng_aio_free(q->aio);
        free(q);
        q = next;
    }
    while (p != NULL) {
        pending *next = p->next;
        nng_aio_stop(p->aio);
        nng_aio_free(p->aio);
        free(p);
        p = next;
    }
    if (c->tls != NULL) nng_tls_config_free(c->tls);
    pthread_mutex_destroy(&c->mtx);
    memset(&c->token, 0, sizeof(c->token));
    free(c);
}
