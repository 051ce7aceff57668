/*
 * rpc_server.c - the RPC server: a pool of rep contexts, each a small state
 * machine (receive -> dispatch -> send -> receive) driven by its aio, so one
 * server serves any number of clients with no thread of its own. A BATCH
 * request is served call by call, each checked and authenticated alone, and
 * answered with one reply holding every call's reply in order.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "auth.h"
#include "ringleader/log.h"
#include "rli.h"
#include "ringleader/spec.h"
#include "rpc_internal.h"

#define LAT_WINDOW 4096 /* latency samples kept per method */
#define MAX_PIPES 4096  /* authenticated or authenticating connections */

typedef enum { CALL_RECV, CALL_BUSY, CALL_SEND } call_state;

typedef struct srv_slot srv_slot;

/* One call being served: a lone request, or one call of a batch. */
struct rl_rpc_ctx {
    rl_rpc_server *s;
    srv_slot *slot;
    bool in_batch;
    rl_msg req;
    bool has_req;
    uint32_t pipe;
    uint64_t call_id;
    rl_msg_type resp_type;
    int method;
    uint64_t t0_us;
    bool *deferred; /* the dispatcher's flag, while the handler runs */
    char peer[RL_ID_MAX];
    uint8_t scratch[2 * RLI_MAC_LEN]; /* auth replies borrow from here */
    nng_msg *reply;                   /* a batched call's reply, until the batch's goes */
};

/* One nng context, a small state machine driven by its aio: receive a
 * request, have it served (a lone call, or every call of a batch), send the
 * reply, receive again. */
struct srv_slot {
    rl_rpc_server *s;
    nng_ctx ctx;
    nng_aio *aio;
    call_state state;
    nng_msg *reqmsg;        /* the request frame; calls borrow from it */
    rl_rpc_ctx call;        /* the lone call, or the batch itself */
    rl_rpc_ctx *batch;      /* RLI_BATCH_MAX calls, allocated at the first batch */
    int nbatch;
    atomic_int batch_left;  /* calls not yet answered, +1 while dispatching */
    msgpack_sbuffer frames; /* the batch's reply frames (reused) */
    uint32_t authed_pipe;   /* the last connection this slot saw authenticated ... */
    uint64_t authed_gen;    /* ... while the server's auth generation was this */
    char authed_peer[RL_ID_MAX];
};

/* Counters are atomics so that the hot path takes no lock. */
typedef struct method_slot {
    rl_rpc_handler fn;
    void *arg;
    atomic_uint_fast64_t calls, errors, refused;
    _Atomic uint32_t *lat; /* ring of LAT_WINDOW samples (us) */
    atomic_uint_fast64_t nlat;
    atomic_uint_fast64_t lat_sum_us; /* every sample's, for a Prometheus summary */
} method_slot;

typedef struct pipe_auth {
    uint32_t pipe;
    bool hello, authed;
    uint8_t nc[RLI_NONCE_LEN], ns[RLI_NONCE_LEN];
    char peer[RL_ID_MAX];
} pipe_auth;

struct rl_rpc_server {
    nng_socket sock;
    nng_listener listener;
    nng_tls_config *tls;
    char url[RL_URL_MAX];
    char name[RL_ID_MAX];
    bool has_token;
    rl_token token;
    size_t recv_max;
    int nslots;
    srv_slot *ctxs;
    method_slot *slots; /* one per RL_RPC_LIST row */
    pthread_mutex_t mtx;  /* slots' metrics, pipes */
    pipe_auth *pipes;
    size_t npipes;
    uint64_t bad_frames, refusals_logged;
    atomic_uint_fast64_t auth_gen; /* bumped whenever a connection loses its authentication */
    uint64_t started_ms;
    bool started, stopping;
    rl_rpc_disconnect_fn on_disconnect;
    void *on_disconnect_arg;
};

/* ---- Connections and their authentication -------------------------------- */

static pipe_auth *pipe_find(rl_rpc_server *s, uint32_t pipe, bool create)
{
    for (size_t i = 0; i < s->npipes; i++)
        if (s->pipes[i].pipe == pipe) return &s->pipes[i];
    if (!create || s->npipes >= MAX_PIPES) return NULL;
    s->pipes = rli_realloc(s->pipes, (s->npipes + 1) * sizeof(*s->pipes));
    pipe_auth *p = &s->pipes[s->npipes++];
    memset(p, 0, sizeof(*p));
    p->pipe = pipe;
    return p;
}

static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    rl_rpc_server *s = arg;
    if (ev != NNG_PIPE_EV_REM_POST) return;
    uint32_t id = (uint32_t)nng_pipe_id(p);
    char peer[RL_ID_MAX] = "";
    pthread_mutex_lock(&s->mtx);
    for (size_t i = 0; i < s->npipes; i++)
        if (s->pipes[i].pipe == id) {
            if (s->pipes[i].authed) snprintf(peer, sizeof(peer), "%s", s->pipes[i].peer);
            s->pipes[i] = s->pipes[--s->npipes];
            break;
        }
    atomic_fetch_add(&s->auth_gen, 1);
    pthread_mutex_unlock(&s->mtx);
    if (peer[0] != '\0' && s->on_disconnect != NULL && !s->stopping)
        s->on_disconnect(s->on_disconnect_arg, peer);
}

/* True if the call's connection has authenticated; fills c->peer. A context
 * slot remembers the last connection it found authenticated, valid until any
 * connection loses its authentication (auth_gen), so that the usual call
 * takes no lock. */
static bool call_is_authed(rl_rpc_server *s, rl_rpc_ctx *c)
{
    if (!s->has_token) return true;
    srv_slot *sl = c->slot;
    uint64_t gen = atomic_load(&s->auth_gen);
    if (sl->authed_pipe == c->pipe && sl->authed_gen == gen) {
        memcpy(c->peer, sl->authed_peer, sizeof(c->peer));
        return true;
    }
    pthread_mutex_lock(&s->mtx);
    pipe_auth *p = pipe_find(s, c->pipe, false);
    bool ok = p != NULL && p->authed;
    if (ok) {
        snprintf(c->peer, sizeof(c->peer), "%s", p->peer);
        memcpy(sl->authed_peer, c->peer, sizeof(c->peer));
        sl->authed_pipe = c->pipe;
        sl->authed_gen = atomic_load(&s->auth_gen);
    }
    pthread_mutex_unlock(&s->mtx);
    return ok;
}

static int handle_auth_hello(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    rl_rpc_server *s = arg;
    const rl_msg_auth_hello_req *h = &req->u.auth_hello_req;
    if (!s->has_token) return rli_err(RL_EPRECOND, "this server does not use authentication");
    if (h->client_nonce.len != RLI_NONCE_LEN)
        return rli_err(RL_EINVAL, "client_nonce must be %d bytes", RLI_NONCE_LEN);
    uint8_t *ns = call->scratch, *proof = call->scratch + RLI_NONCE_LEN;
    int rv = rli_random(ns, RLI_NONCE_LEN);
    if (rv != 0) return rv;
    rli_auth_server_proof(&s->token, h->client_nonce.ptr, ns, proof);
    pthread_mutex_lock(&s->mtx);
    pipe_auth *p = pipe_find(s, call->pipe, true);
    if (p != NULL) {
        p->hello = true;
        p->authed = false;
        atomic_fetch_add(&s->auth_gen, 1);
        memcpy(p->nc, h->client_nonce.ptr, RLI_NONCE_LEN);
        memcpy(p->ns, ns, RLI_NONCE_LEN);
        snprintf(p->peer, sizeof(p->peer), "%s", h->peer_id ? h->peer_id : "");
    }
    pthread_mutex_unlock(&s->mtx);
    if (p == NULL) return rli_err(RL_ETOOBIG, "too many connections");
    resp->u.auth_hello_resp.server_nonce = (rl_bytes){ns, RLI_NONCE_LEN};
    resp->u.auth_hello_resp.server_proof = (rl_bytes){proof, RLI_MAC_LEN};
    return RL_OK;
}

static int handle_auth_prove(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    rl_rpc_server *s = arg;
    const rl_msg_auth_prove_req *pr = &req->u.auth_prove_req;
    if (!s->has_token) return rli_err(RL_EPRECOND, "this server does not use authentication");
    uint8_t want[RLI_MAC_LEN];
    char peer[RL_ID_MAX] = "";
    bool ok = false;
    pthread_mutex_lock(&s->mtx);
    pipe_auth *p = pipe_find(s, call->pipe, false);
    if (p != NULL && p->hello) {
        rli_auth_client_proof(&s->token, p->ns, p->nc, p->peer, want);
        ok = pr->client_proof.len == RLI_MAC_LEN &&
             rli_mac_equal(want, pr->client_proof.ptr, RLI_MAC_LEN);
        p->hello = false; /* one attempt per challenge */
        p->authed = ok;
        snprintf(peer, sizeof(peer), "%s", p->peer);
    }
    pthread_mutex_unlock(&s->mtx);
    if (!ok) {
        rl_log_warn("rpc %s: authentication failed for connection %u (claimed id '%s')", s->name,
                    call->pipe, peer);
        return rli_err(RL_EAUTH, "authentication failed: wrong cluster token or no challenge on "
                       "this connection");
    }
    resp->u.auth_prove_resp.peer_id = rli_strdup(peer);
    return RL_OK;
}

static int handle_health(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    rl_rpc_server *s = arg;
    (void)call;
    (void)req;
    resp->u.health_resp.server = rli_strdup(s->name);
    resp->u.health_resp.version = rli_strdup(RL_VERSION);
    resp->u.health_resp.uptime_ms = rli_now_ms() - s->started_ms;
    resp->u.health_resp.state = rli_strdup("serving");
    return RL_OK;
}

static int handle_echo(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    (void)arg;
    (void)call;
    resp->u.echo_resp.data = req->u.echo_req.data; /* borrowed until the reply is encoded */
    return RL_OK;
}

/* ---- The call state machine ------------------------------------------------ */

static void call_release_request(rl_rpc_ctx *c)
{
    if (c->has_req) rl_msg_fini(&c->req);
    c->has_req = false;
}

static void slot_recv(srv_slot *sl)
{
    sl->state = CALL_RECV;
    nng_aio_set_timeout(sl->aio, NNG_DURATION_INFINITE);
    nng_ctx_recv(sl->ctx, sl->aio);
}

/* Sends out (the lone call's or the batch's reply) and frees the request. */
static void slot_send(srv_slot *sl, nng_msg *out)
{
    if (sl->reqmsg != NULL) nng_msg_free(sl->reqmsg);
    sl->reqmsg = NULL;
    if (out == NULL) { /* cannot even encode an error: drop, keep serving */
        slot_recv(sl);
        return;
    }
    sl->state = CALL_SEND;
    nng_aio_set_msg(sl->aio, out);
    nng_aio_set_timeout(sl->aio, 5000);
    nng_ctx_send(sl->ctx, sl->aio);
}

static void record(rl_rpc_server *s, int method, int status, uint64_t t0_us)
{
    if (method < 0) return;
    method_slot *m = &s->slots[method];
    uint64_t dt = rli_now_us() - t0_us;
    atomic_fetch_add_explicit(&m->calls, 1, memory_order_relaxed);
    if (status != RL_STATUS_OK) atomic_fetch_add_explicit(&m->errors, 1, memory_order_relaxed);
    uint64_t k = atomic_fetch_add_explicit(&m->nlat, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lat_sum_us, dt, memory_order_relaxed);
    atomic_store_explicit(&m->lat[k % LAT_WINDOW], dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt,
                          memory_order_relaxed);
}

static void batch_send(srv_slot *sl);

/* Answers call c: resp (consumed) on success, or just the status. */
static void call_send(rl_rpc_ctx *c, int status, const char *msg, rl_msg *resp)
{
    rl_rpc_server *s = c->s;
    rl_msg err;
    nng_msg *out = NULL;
    if (status == RL_STATUS_OK) {
        resp->call_id = c->call_id;
        if (rli_msg_to_nng(resp, &out) != RL_OK) {
            status = RL_STATUS_INTERNAL;
            msg = "the reply could not be encoded";
        }
    }
    if (resp != NULL) rl_msg_fini(resp);
    if (status != RL_STATUS_OK) {
        rl_msg_init(&err, c->resp_type);
        err.call_id = c->call_id;
        err.status = status;
        snprintf(err.status_msg, sizeof(err.status_msg), "%s", msg ? msg : "");
        if (rli_msg_to_nng(&err, &out) != RL_OK) out = NULL;
    }
    record(s, c->method, status, c->t0_us);
    call_release_request(c); /* after encoding: the reply may borrow from it */
    if (!c->in_batch) {
        slot_send(c->slot, out);
        return;
    }
    c->reply = out;
    if (atomic_fetch_sub(&c->slot->batch_left, 1) == 1) batch_send(c->slot);
}

/* Every call of the batch has its reply: one BATCH_RESP carries them all. */
static void batch_send(srv_slot *sl)
{
    int rv = RL_OK;
    msgpack_sbuffer_clear(&sl->frames);
    for (int i = 0; i < sl->nbatch; i++) {
        nng_msg *r = sl->batch[i].reply;
        if (rv == RL_OK)
            rv = r == NULL ? RL_ENOMEM
                           : rli_batch_append(&sl->frames, nng_msg_body(r), nng_msg_len(r));
        if (r != NULL) nng_msg_free(r);
        sl->batch[i].reply = NULL;
    }
    sl->nbatch = 0;
    if (rv != RL_OK) {
        call_send(&sl->call, RL_STATUS_INTERNAL, "the batch's replies could not be encoded", NULL);
        return;
    }
    rl_msg resp;
    rl_msg_init(&resp, RL_MSG_BATCH_RESP);
    resp.u.batch_resp.count = sl->call.req.u.batch_req.count;
    resp.u.batch_resp.frames = (rl_bytes){(const uint8_t *)sl->frames.data, sl->frames.size};
    call_send(&sl->call, RL_STATUS_OK, NULL, &resp); /* copies the frames out */
}

static void log_refusal(rl_rpc_server *s, rl_rpc_ctx *c, const char *method)
{
    pthread_mutex_lock(&s->mtx);
    uint64_t n = ++s->refusals_logged;
    pthread_mutex_unlock(&s->mtx);
    atomic_fetch_add(&s->slots[c->method].refused, 1);
    if (n <= 20 || n % 1000 == 0)
        rl_log_warn("rpc %s: refused %s from unauthenticated connection %u (%llu refusals)",
                    s->name, method, c->pipe, (unsigned long long)n);
}

static void count_bad_frame(rl_rpc_server *s)
{
    pthread_mutex_lock(&s->mtx);
    s->bad_frames++;
    pthread_mutex_unlock(&s->mtx);
}

static void batch_dispatch(srv_slot *sl);

/* Decodes call c's request from frame and has it served. c->pipe and
 * c->in_batch are set. */
static void call_dispatch(rl_rpc_ctx *c, const void *frame, size_t len)
{
    rl_rpc_server *s = c->s;
    c->t0_us = rli_now_us();
    c->method = -1;
    c->resp_type = RL_MSG_ERROR_RESP; /* until the request names its method */
    c->peer[0] = '\0';
    c->reply = NULL;
    int rv = rl_msg_decode(frame, len, &c->req);
    c->call_id = c->req.call_id;
    const rli_method *m = rli_method_find(c->req.type, &c->method);
    if (m != NULL) c->resp_type = m->resp;
    if (rv != RL_OK) {
        count_bad_frame(s);
        char why[300];
        snprintf(why, sizeof(why), "%s", rl_errdetail());
        rl_msg_fini(&c->req);
        call_send(c, rv == RL_EVERSION ? RL_STATUS_FAILED_PRECONDITION
                                       : RL_STATUS_INVALID_ARGUMENT, why, NULL);
        return;
    }
    c->has_req = true;
    if (m != NULL && c->req.type == RL_MSG_BATCH_REQ && !c->in_batch) {
        batch_dispatch(c->slot);
        return;
    }
    if (m != NULL && c->in_batch && !m->batch) {
        char why[128];
        snprintf(why, sizeof(why), "%s cannot be batched (see RL_RPC_LIST)", m->name);
        call_send(c, RL_STATUS_FAILED_PRECONDITION, why, NULL);
        return;
    }
    if (m == NULL || s->slots[c->method].fn == NULL) {
        const char *name = rl_msg_name(c->req.type);
        char why[128];
        snprintf(why, sizeof(why), "no method takes %s", name ? name : "this message type");
        call_send(c, RL_STATUS_UNIMPLEMENTED, why, NULL);
        return;
    }
    if (m->auth && !call_is_authed(s, c)) {
        log_refusal(s, c, m->name);
        call_send(c, RL_STATUS_UNAUTHENTICATED,
                  "this connection has not authenticated: call AUTH_HELLO and AUTH_PROVE first",
                  NULL);
        return;
    }
    rl_msg resp;
    rl_msg_init(&resp, m->resp);
    rli_err(RL_OK, "%s", "");
    c->slot->state = CALL_BUSY;
    method_slot *slot = &s->slots[c->method];
    /* The flag is ours, on this stack: once the handler defers, c may be
     * answered and reused by another thread, so c is not read again. */
    bool deferred = false;
    c->deferred = &deferred;
    rv = slot->fn(slot->arg, c, &c->req, &resp);
    if (deferred) {
        rl_msg_fini(&resp);
        return; /* rl_rpc_ctx_reply will send */
    }
    c->deferred = NULL;
    if (rv == RL_OK) {
        call_send(c, RL_STATUS_OK, NULL, &resp);
    } else {
        const char *d = rl_errdetail();
        call_send(c, rl_status_from_err(rv), d[0] ? d : rl_strerror(rv), &resp);
    }
}

/* Serves every call of the batch in sl->call, in order, each checked (and
 * authenticated) on its own; the reply goes when the last is answered. A
 * malformed batch is refused whole, before any call runs. */
static void batch_dispatch(srv_slot *sl)
{
    rl_rpc_ctx *b = &sl->call;
    const rl_msg_batch_req *q = &b->req.u.batch_req;
    if (rli_batch_check(&q->frames, q->count) != RL_OK) {
        count_bad_frame(b->s);
        char why[300];
        snprintf(why, sizeof(why), "%s", rl_errdetail());
        call_send(b, RL_STATUS_INVALID_ARGUMENT, why, NULL);
        return;
    }
    if (sl->batch == NULL) sl->batch = rli_calloc(RLI_BATCH_MAX, sizeof(*sl->batch));
    sl->state = CALL_BUSY;
    sl->nbatch = (int)q->count;
    atomic_store(&sl->batch_left, sl->nbatch + 1);
    size_t off = 0;
    for (int i = 0; i < sl->nbatch; i++) {
        rl_rpc_ctx *c = &sl->batch[i];
        rl_bytes f = rli_batch_next(&q->frames, &off);
        c->s = sl->s;
        c->slot = sl;
        c->in_batch = true;
        c->pipe = b->pipe;
        call_dispatch(c, f.ptr, f.len);
    }
    if (atomic_fetch_sub(&sl->batch_left, 1) == 1) batch_send(sl);
}

static void slot_cb(void *arg)
{
    srv_slot *sl = arg;
    int rv = nng_aio_result(sl->aio);
    if (sl->state == CALL_RECV) {
        if (rv != 0) {
            if (rv != NNG_ECLOSED && !sl->s->stopping) slot_recv(sl);
            return;
        }
        sl->reqmsg = nng_aio_get_msg(sl->aio);
        nng_aio_set_msg(sl->aio, NULL); /* ours now: the aio holds only unsent replies */
        rl_rpc_ctx *c = &sl->call;
        c->in_batch = false;
        c->pipe = (uint32_t)nng_pipe_id(nng_msg_get_pipe(sl->reqmsg));
        call_dispatch(c, nng_msg_body(sl->reqmsg), nng_msg_len(sl->reqmsg));
    } else if (sl->state == CALL_SEND) {
        if (rv != 0) { /* not sent: still ours */
            nng_msg_free(nng_aio_get_msg(sl->aio));
            nng_aio_set_msg(sl->aio, NULL);
        }
        if (rv != NNG_ECLOSED && !sl->s->stopping) slot_recv(sl);
    }
}

void rl_rpc_ctx_defer(rl_rpc_ctx *call)
{
    RL_ASSERT(call->deferred != NULL); /* only from inside a handler */
    *call->deferred = true;
}

void rl_rpc_ctx_reply(rl_rpc_ctx *c, int err, const char *errmsg, rl_msg *resp)
{
    if (err == RL_OK && resp != NULL) call_send(c, RL_STATUS_OK, NULL, resp);
    else call_send(c, rl_status_from_err(err ? err : RL_EINTERNAL), errmsg ? errmsg : "", resp);
}

const char *rl_rpc_ctx_peer(const rl_rpc_ctx *c)
{
    return c->peer;
}

uint32_t rl_rpc_ctx_pipe(const rl_rpc_ctx *c)
{
    return c->pipe;
}

/* ---- Lifecycle ------------------------------------------------------------------ */

int rl_rpc_server_new(const rl_rpc_server_opts *o, rl_rpc_server **out)
{
    if (o == NULL || o->url == NULL) return rli_err(RL_EINVAL, "rpc server: no URL");
    rl_rpc_server *s = rli_calloc(1, sizeof(*s));
    int rv;
    pthread_mutex_init(&s->mtx, NULL);
    snprintf(s->url, sizeof(s->url), "%s", o->url);
    snprintf(s->name, sizeof(s->name), "%s", o->name ? o->name : "ringleader");
    if (o->token != NULL) {
        s->token = *o->token;
        s->has_token = true;
    }
    s->recv_max = o->recv_max ? o->recv_max : 4u << 20;
    s->nslots = o->contexts > 0 ? o->contexts : 64;
    s->slots = rli_calloc((size_t)rli_method_count(), sizeof(*s->slots));
    for (int i = 0; i < rli_method_count(); i++)
        s->slots[i].lat = rli_calloc(LAT_WINDOW, sizeof(*s->slots[i].lat));
    if ((rv = nng_rep0_open(&s->sock)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "rpc server: %s", nng_strerror(rv));
        goto fail;
    }
    nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, s->recv_max);
    nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_event, s);
    if ((rv = nng_listener_create(&s->listener, s->sock, o->url)) != 0) {
        rv = rli_err(rli_err_from_nng(rv), "rpc server: bad URL %s: %s", o->url,
                     nng_strerror(rv));
        goto fail;
    }
    nng_listener_set_size(s->listener, NNG_OPT_RECVMAXSZ, s->recv_max);
    if ((rv = rli_sock_setup_tls_listener(s->listener, o->url, o->tls, &s->tls)) != 0) goto fail;
    s->ctxs = rli_calloc((size_t)s->nslots, sizeof(*s->ctxs));
    for (int i = 0; i < s->nslots; i++) {
        srv_slot *sl = &s->ctxs[i];
        sl->s = s;
        sl->call.s = s;
        sl->call.slot = sl;
        msgpack_sbuffer_init(&sl->frames);
        if ((rv = nng_ctx_open(&sl->ctx, s->sock)) != 0 ||
            (rv = nng_aio_alloc(&sl->aio, slot_cb, sl)) != 0) {
            rv = rli_err(rli_err_from_nng(rv), "rpc server: %s", nng_strerror(rv));
            goto fail;
        }
    }
    rl_rpc_server_handle(s, RL_MSG_HEALTH_REQ, handle_health, s);
    rl_rpc_server_handle(s, RL_MSG_AUTH_HELLO_REQ, handle_auth_hello, s);
    rl_rpc_server_handle(s, RL_MSG_AUTH_PROVE_REQ, handle_auth_prove, s);
    rl_rpc_server_handle(s, RL_MSG_ECHO_REQ, handle_echo, s);
    *out = s;
    return RL_OK;
fail:
    rl_rpc_server_free(s);
    return rv;
}

int rl_rpc_server_handle(rl_rpc_server *s, rl_msg_type req_type, rl_rpc_handler fn, void *arg)
{
    int idx;
    if (rli_method_find(req_type, &idx) == NULL)
        return rli_err(RL_EINVAL, "message type %d is not the request of any RPC method",
                       (int)req_type);
    s->slots[idx].fn = fn;
    s->slots[idx].arg = arg;
    return RL_OK;
}

void rl_rpc_server_on_disconnect(rl_rpc_server *s, rl_rpc_disconnect_fn fn, void *arg)
{
    s->on_disconnect = fn;
    s->on_disconnect_arg = arg;
}

int rl_rpc_server_start(rl_rpc_server *s)
{
    int rv = nng_listener_start(s->listener, 0);
    if (rv != 0)
        return rli_err(rli_err_from_nng(rv), "rpc server: cannot listen on %s: %s", s->url,
                       nng_strerror(rv));
    int port = 0;
    if (nng_listener_get_int(s->listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0 && port > 0) {
        char *colon = strrchr(s->url, ':');
        if (colon != NULL && strcmp(colon, ":0") == 0)
            snprintf(colon, sizeof(s->url) - (size_t)(colon - s->url), ":%d", port);
    }
    s->started_ms = rli_now_ms();
    s->started = true;
    for (int i = 0; i < s->nslots; i++) slot_recv(&s->ctxs[i]);
    return RL_OK;
}

const char *rl_rpc_server_url(const rl_rpc_server *s)
{
    return s->url;
}

void rl_rpc_server_free(rl_rpc_server *s)
{
    if (s == NULL) return;
    s->stopping = true;
    if (s->ctxs != NULL) {
        for (int i = 0; i < s->nslots; i++)
            if (s->ctxs[i].aio != NULL) nng_aio_stop(s->ctxs[i].aio);
    }
    nng_close(s->sock);
    if (s->ctxs != NULL) {
        for (int i = 0; i < s->nslots; i++) {
            srv_slot *sl = &s->ctxs[i];
            if (sl->aio != NULL) {
                nng_aio_stop(sl->aio);
                /* A reply sent while the aio was stopping is refused without a
                 * callback, so it is still here. */
                nng_msg *unsent = nng_aio_get_msg(sl->aio);
                if (unsent != NULL) nng_msg_free(unsent);
                nng_aio_free(sl->aio);
            }
            /* Deferred calls are dropped. */
            for (int k = 0; sl->batch != NULL && k < RLI_BATCH_MAX; k++) {
                call_release_request(&sl->batch[k]);
                if (sl->batch[k].reply != NULL) nng_msg_free(sl->batch[k].reply);
            }
            free(sl->batch);
            msgpack_sbuffer_destroy(&sl->frames);
            call_release_request(&sl->call);
            if (sl->reqmsg != NULL) nng_msg_free(sl->reqmsg);
        }
        free(s->ctxs);
    }
    if (s->tls != NULL) nng_tls_config_free(s->tls);
    if (s->slots != NULL)
        for (int i = 0; i < rli_method_count(); i++) free((void *)s->slots[i].lat);
    free(s->slots);
    free(s->pipes);
    pthread_mutex_destroy(&s->mtx);
    memset(&s->token, 0, sizeof(s->token));
    free(s);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void rl_rpc_server_metrics(rl_rpc_server *s, rl_msg_type req_type, rl_rpc_metrics *out)
{
    int idx;
    memset(out, 0, sizeof(*out));
    if (rli_method_find(req_type, &idx) == NULL) return;
    method_slot *m = &s->slots[idx];
    out->calls = atomic_load(&m->calls);
    out->errors = atomic_load(&m->errors);
    out->refused_unauth = atomic_load(&m->refused);
    uint64_t nl = atomic_load(&m->nlat);
    out->lat_count = nl;
    out->lat_sum_us = (double)atomic_load(&m->lat_sum_us);
    size_t n = nl < LAT_WINDOW ? (size_t)nl : LAT_WINDOW;
    uint32_t *tmp = rli_malloc(n * sizeof(uint32_t) + 1);
    for (size_t i = 0; i < n; i++) tmp[i] = atomic_load_explicit(&m->lat[i], memory_order_relaxed);
    if (n > 0) {
        qsort(tmp, n, sizeof(uint32_t), cmp_u32);
        out->lat_p50_us = tmp[(n - 1) / 2];
        out->lat_p99_us = tmp[(size_t)((double)(n - 1) * 0.99)];
        out->lat_max_us = tmp[n - 1];
    }
    free(tmp);
}

uint64_t rl_rpc_server_bad_frames(rl_rpc_server *s)
{
    pthread_mutex_lock(&s->mtx);
    uint64_t n = s->bad_frames;
    pthread_mutex_unlock(&s->mtx);
    return n;
}
