/*
 * test_rpc.c - the RPC layer over real sockets on loopback: calls and
 * statuses, deadlines, many calls in flight, batches (each call its own
 * reply, deadline and authentication; hostile batches; a server that does not
 * know them), authentication (wrong token, unauthenticated calls, a replayed
 * proof), hostile frames, and TLS with a CA made in the test.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "auth.h"
#include "ringleader/rpc.h"
#include "rli.h"
#include "rpc_internal.h"
#include "testutil.h"
#include "tls.h"

static rl_token make_token(const char *s)
{
    rl_token t;
    memset(&t, 0, sizeof(t));
    t.len = strlen(s);
    memcpy(t.bytes, s, t.len);
    return t;
}

static const char *TOKEN = "test-token-0123456789abcdef";

static rl_rpc_server *start_server(const rl_token *tok, const rl_tls_files *tls, const char *url)
{
    rl_rpc_server *s = NULL;
    rl_rpc_server_opts so = {.url = url, .token = tok, .tls = tls, .name = "test"};
    ck_assert_int_eq(rl_rpc_server_new(&so, &s), RL_OK);
    ck_assert_msg(rl_rpc_server_start(s) == RL_OK, "%s", rl_errdetail());
    return s;
}

static rl_rpc_client *open_client(const char *url, const rl_token *tok, int expect)
{
    rl_rpc_client *c = NULL;
    rl_rpc_client_opts co = {.url = url, .token = tok, .peer_id = "t1"};
    int rv = rl_rpc_client_open(&co, rl_clock_ms() + 5000, &c);
    ck_assert_msg(rv == expect, "open: got %s (%s), want %s", rl_errname(rv), rl_errdetail(),
                  rl_errname(expect));
    return c;
}

static int echo(rl_rpc_client *c, const void *data, size_t len, rl_rpc_reply *rep, int ms)
{
    rl_msg req;
    rl_msg_init(&req, RL_MSG_ECHO_REQ);
    req.u.echo_req.data = (rl_bytes){data, len};
    return rl_rpc_call(c, &req, rep, rl_clock_ms() + (uint64_t)ms);
}

START_TEST(echo_and_health)
{
    rl_token tok = make_token(TOKEN);
    rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0");
    rl_rpc_client *c = open_client(rl_rpc_server_url(s), &tok, RL_OK);
    uint8_t big[300000];
    for (size_t i = 0; i < sizeof(big); i++) big[i] = (uint8_t)(i * 7);
    rl_rpc_reply rep;
    ck_assert_int_eq(echo(c, big, sizeof(big), &rep, 5000), RL_OK);
    ck_assert_uint_eq(rep.msg.u.echo_resp.data.len, sizeof(big));
    ck_assert(memcmp(rep.msg.u.echo_resp.data.ptr, big, sizeof(big)) == 0);
    rl_rpc_reply_fini(&rep);

    rl_msg h;
    rl_msg_init(&h, RL_MSG_HEALTH_REQ);
    ck_assert_int_eq(rl_rpc_call(c, &h, &rep, rl_clock_ms() + 5000), RL_OK);
    ck_assert_str_eq(rep.msg.u.health_resp.server, "test");
    rl_rpc_reply_fini(&rep);

    rl_rpc_metrics m;
    rl_rpc_server_metrics(s, RL_MSG_ECHO_REQ, &m);
    ck_assert_uint_eq(m.calls, 1);
    ck_assert(m.lat_max_us > 0);
    rl_rpc_client_close(c);
    rl_rpc_server_free(s);
}
END_TEST

static int handle_never(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    (void)arg;
    (void)req;
    (void)resp;
    rl_rpc_ctx_defer(call); /* never answered: the client's deadline must fire */
    return RL_OK;
}

typedef struct async_result {
    atomic_int done, err;
    atomic_ullong at_ms;
    char detail[256];
} async_result;

static void on_async(void *arg, int err, rl_rpc_reply *rep)
{
    (void)rep;
    async_result *r = arg;
    snprintf(r->detail, sizeof(r->detail), "%s", err ? rl_errdetail() : "");
    atomic_store(&r->err, err);
    atomic_store(&r->at_ms, rl_clock_ms());
    atomic_store(&r->done, 1);
}

/* Waits (at most 10 s) for an async call's callback; returns its error. */
static int async_wait(async_result *r, const char *what)
{
    for (int k = 0; k < 1000 && !atomic_load(&r->done); k++) usleep(10000);
    ck_assert_msg(atomic_load(&r->done), "%s: the callback never ran", what);
    return atomic_load(&r->err);
}

/* An async call with an ms deadline must fail with RL_ETIMEDOUT after about
 * ms (within 4 s), its error saying `why`. */
static void async_times_out(rl_rpc_client *c, const rl_msg *req, uint64_t ms, const char *why)
{
    async_result r = {0};
    uint64_t t0 = rl_clock_ms();
    ck_assert_int_eq(rl_rpc_call_async(c, req, t0 + ms, on_async, &r), RL_OK);
    ck_assert_int_eq(async_wait(&r, why), RL_ETIMEDOUT);
    uint64_t el = atomic_load(&r.at_ms) - t0;
    ck_assert_msg(el + 10 >= ms && el < 4000, "returned after %llu ms", (unsigned long long)el);
    ck_assert_msg(strstr(r.detail, why) != NULL, "got \"%s\", want \"%s\"", r.detail, why);
}

/*
 * Deadlines, for synchronous and async calls alike: a reply that never comes
 * and a request that cannot even be sent (no server) end the call at its
 * deadline with an error saying which; an async call slot is usable again
 * afterwards.
 */
START_TEST(deadline_is_enforced)
{
    rl_token tok = make_token(TOKEN);
    rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0");
    rl_rpc_server_handle(s, RL_MSG_HEARTBEAT_REQ, handle_never, NULL);
    rl_rpc_client *c = open_client(rl_rpc_server_url(s), &tok, RL_OK);
    rl_msg req;
    rl_rpc_reply rep;
    rl_msg_init(&req, RL_MSG_HEARTBEAT_REQ);
    req.u.heartbeat_req.node_id = "t1";
    uint64_t t0 = rl_clock_ms();
    ck_assert_int_eq(rl_rpc_call(c, &req, &rep, t0 + 200), RL_ETIMEDOUT);
    uint64_t el = rl_clock_ms() - t0;
    ck_assert_msg(el >= 190 && el < 4000, "returned after %llu ms", (unsigned long long)el);
    rl_rpc_reply_fini(&rep);
    async_times_out(c, &req, 200, "no reply before the deadline");
    /* The same slot (the only one free) carries the next call. */
    rl_msg echo_req;
    rl_msg_init(&echo_req, RL_MSG_ECHO_REQ);
    echo_req.u.echo_req.data = (rl_bytes){(const uint8_t *)"abc", 3};
    async_result r2 = {0};
    ck_assert_int_eq(rl_rpc_call_async(c, &echo_req, rl_clock_ms() + 5000, on_async, &r2), RL_OK);
    ck_assert_msg(async_wait(&r2, "next call") == RL_OK, "%s", r2.detail);
    rl_rpc_client_close(c);
    rl_rpc_server_free(s);

    /* A server that is not there: the request never leaves; the call ends at its deadline. */
    rl_rpc_client_opts co = {.url = "tcp://127.0.0.1:1", .peer_id = "t1"};
    rl_rpc_client *c2 = NULL;
    ck_assert_int_eq(rl_rpc_client_open(&co, rl_clock_ms() + 1000, &c2), RL_OK); /* no token */
    t0 = rl_clock_ms();
    ck_assert_int_ne(echo(c2, "x", 1, &rep, 300), RL_OK);
    ck_assert(rl_clock_ms() - t0 < 4000);
    rl_rpc_reply_fini(&rep);
    async_times_out(c2, &echo_req, 300, "before the request was sent");
    rl_rpc_client_close(c2);
}
END_TEST

static atomic_int done_ok, done_all;
static void on_done(void *arg, int err, rl_rpc_reply *rep)
{
    size_t want = (size_t)(uintptr_t)arg;
    if (err == RL_OK && rep->msg.u.echo_resp.data.len == want) atomic_fetch_add(&done_ok, 1);
    atomic_fetch_add(&done_all, 1);
}

START_TEST(many_calls_in_flight)
{
    rl_token tok = make_token(TOKEN);
    rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0");
    rl_rpc_client *c = open_client(rl_rpc_server_url(s), &tok, RL_OK);
    static uint8_t data[200][64];
    rl_msg reqs[200];
    atomic_store(&done_ok, 0);
    atomic_store(&done_all, 0);
    for (int i = 0; i < 200; i++) {
        rl_msg_init(&reqs[i], RL_MSG_ECHO_REQ);
        reqs[i].u.echo_req.data = (rl_bytes){data[i], (size_t)(i % 64) + 1};
        ck_assert_int_eq(rl_rpc_call_async(c, &reqs[i], rl_clock_ms() + 10000, on_done,
                                           (void *)(uintptr_t)((i % 64) + 1)),
                         RL_OK);
    }
    for (int k = 0; k < 1000 && atomic_load(&done_all) < 200; k++) usleep(10000);
    ck_assert_int_eq(atomic_load(&done_ok), 200);
    rl_rpc_client_close(c);
    rl_rpc_server_free(s);
}
END_TEST

/* One thread's calls for reauth_after_a_server_restart. */
typedef struct reauth_arg {
    rl_rpc_client *c;
    int ok;
} reauth_arg;

static void *reauth_thread(void *p)
{
    reauth_arg *a = p;
    for (int k = 0; k < 5; k++) {
        rl_rpc_reply rep;
        if (echo(a->c, "again", 5, &rep, 5000) == RL_OK) a->ok++;
        rl_rpc_reply_fini(&rep);
    }
    return NULL;
}

/* A server that comes back on the same URL (a coordinator resumed) meets
 * calls from several threads of one client on the new connection at once:
 * one handshake serves them all, none fails authentication. */
START_TEST(reauth_after_a_server_restart)
{
    rl_token tok = make_token(TOKEN);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", rlt_free_port());
    rl_rpc_server *s = start_server(&tok, NULL, url);
    rl_rpc_client *c = open_client(url, &tok, RL_OK);
    rl_rpc_reply rep;
    ck_assert_int_eq(echo(c, "hi", 2, &rep, 5000), RL_OK);
    rl_rpc_reply_fini(&rep);
    rl_rpc_server_free(s);
    s = start_server(&tok, NULL, url);
    pthread_t th[4];
    reauth_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (reauth_arg){.c = c};
        pthread_create(&th[i], NULL, reauth_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(args[i].ok == 5, "thread %d: %d of 5 calls after the restart", i, args[i].ok);
    }
    rl_rpc_client_close(c);
    rl_rpc_server_free(s);
}
END_TEST

START_TEST(wrong_token_is_refused_both_ways)
{
    rl_token tok = make_token(TOKEN), bad = make_token("another-token-0123456789");
    rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0");
    rl_rpc_client *c = open_client(rl_rpc_server_url(s), &bad, RL_EAUTH);
    ck_assert_ptr_null(c);
    /* The server stays up for members. */
    c = open_client(rl_rpc_server_url(s), &tok, RL_OK);
    rl_rpc_reply rep;
    ck_assert_int_eq(echo(c, "hi", 2, &rep, 5000), RL_OK);
    rl_rpc_reply_fini(&rep);
    rl_rpc_client_close(c);
    rl_rpc_server_free(s);
}
END_TEST

START_TEST(unauthenticated_calls_are_refused)
{
    rl_token tok = make_token(TOKEN);
    rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0");
    rl_rpc_client *anon = open_client(rl_rpc_server_url(s), NULL, RL_OK);
    rl_rpc_reply rep;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(echo(anon, "hi", 2, &rep, 5000), RL_EAUTH);
        ck_assert_int_eq(rep.status, RL_STATUS_UNAUTHENTICATED);
        rl_rpc_reply_fini(&rep);
    }
    rl_rpc_metrics m;
    rl_rpc_server_metrics(s, RL_MSG_ECHO_REQ, &m);
    ck_assert_uint_eq(m.refused_unauth, 3);
    /* Health needs no authentication. */
    rl_msg h;
    rl_msg_init(&h, RL_MSG_HEALTH_REQ);
    ck_assert_int_eq(rl_rpc_call(anon, &h, &rep, rl_clock_ms() + 5000), RL_OK);
    rl_rpc_reply_fini(&rep);
    rl_rpc_client_close(anon);
    rl_rpc_server_free(s);
}
END_TEST

/* Raw req socket helpers for hand-made exchanges. */
static nng_socket raw_dial(const char *url)
{
    nng_socket sock;
    ck_assert_int_eq(nng_req0_open(&sock), 0);
    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 3000);
    nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 3000);
    ck_assert_int_eq(nng_dial(sock, url, NULL, 0), 0);
    return sock;
}

static void raw_call(nng_socket sock, const rl_msg *req, rl_msg *resp, nng_msg **keep)
{
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(rl_msg_encode(req, &buf, &len), RL_OK);
    ck_assert_int_eq(nng_send(sock, buf, len, 0), 0);
    free(buf);
    nng_msg *m;
    ck_assert_int_eq(nng_recvmsg(sock, &m, 0), 0);
    ck_assert_int_eq(rl_msg_decode(nng_msg_body(m), nng_msg_len(m), resp), RL_OK);
    *keep = m;
}

START_TEST(captured_proof_cannot_be_replayed)
{
    rl_token tok = make_token(TOKEN);
    rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0");
    const char *url = rl_rpc_server_url(s);
    /* A legitimate exchange on connection A, recorded. */
    nng_socket a = raw_dial(url);
    uint8_t nc[RLI_NONCE_LEN], proof[RLI_MAC_LEN];
    memset(nc, 7, sizeof(nc));
    rl_msg req, resp;
    nng_msg *keep;
    rl_msg_init(&req, RL_MSG_AUTH_HELLO_REQ);
    req.u.auth_hello_req.client_nonce = (rl_bytes){nc, sizeof(nc)};
    req.u.auth_hello_req.peer_id = "t1";
    raw_call(a, &req, &resp, &keep);
    ck_assert_int_eq(resp.status, RL_STATUS_OK);
    rli_auth_client_proof(&tok, resp.u.auth_hello_resp.server_nonce.ptr, nc, "t1", proof);
    rl_msg_fini(&resp);
    nng_msg_free(keep);
    rl_msg_init(&req, RL_MSG_AUTH_PROVE_REQ);
    req.u.auth_prove_req.client_proof = (rl_bytes){proof, sizeof(proof)};
    raw_call(a, &req, &resp, &keep);
    ck_assert_int_eq(resp.status, RL_STATUS_OK);
    rl_msg_fini(&resp);
    nng_msg_free(keep);

    /* An eavesdropper replays HELLO and PROVE on connection B: the server
     * issues a fresh nonce, so the recorded proof no longer matches. */
    nng_socket b = raw_dial(url);
    rl_msg_init(&req, RL_MSG_AUTH_HELLO_REQ);
    req.u.auth_hello_req.client_nonce = (rl_bytes){nc, sizeof(nc)};
    req.u.auth_hello_req.peer_id = "t1";
    raw_call(b, &req, &resp, &keep);
    rl_msg_fini(&resp);
    nng_msg_free(keep);
    rl_msg_init(&req, RL_MSG_AUTH_PROVE_REQ);
    req.u.auth_prove_req.client_proof = (rl_bytes){proof, sizeof(proof)};
    raw_call(b, &req, &resp, &keep);
    ck_assert_int_eq(resp.status, RL_STATUS_UNAUTHENTICATED);
    rl_msg_fini(&resp);
    nng_msg_free(keep);
    /* ... and B's calls stay refused. */
    uint8_t d = 1;
    rl_msg_init(&req, RL_MSG_ECHO_REQ);
    req.u.echo_req.data = (rl_bytes){&d, 1};
    raw_call(b, &req, &resp, &keep);
    ck_assert_int_eq(resp.status, RL_STATUS_UNAUTHENTICATED);
    rl_msg_fini(&resp);
    nng_msg_free(keep);
    /* While A, which proved itself, is served. */
    raw_call(a, &req, &resp, &keep);
    ck_assert_int_eq(resp.status, RL_STATUS_OK);
    rl_msg_fini(&resp);
    nng_msg_free(keep);
    nng_close(a);
    nng_close(b);
    rl_rpc_server_free(s);
}
END_TEST

START_TEST(hostile_frames_get_a_status_and_the_server_stays_up)
{
    rl_token tok = make_token(TOKEN);
    rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0");
    nng_socket sock = raw_dial(rl_rpc_server_url(s));
    uint64_t seed = 42;
    for (int i = 0; i < 200; i++) {
        uint8_t junk[64];
        size_t n = 1 + rlt_rand(&seed) % sizeof(junk);
        for (size_t k = 0; k < n; k++) junk[k] = (uint8_t)rlt_rand(&seed);
        ck_assert_int_eq(nng_send(sock, junk, n, 0), 0);
        nng_msg *m;
        ck_assert_int_eq(nng_recvmsg(sock, &m, 0), 0);
        rl_msg resp;
        int rv = rl_msg_decode(nng_msg_body(m), nng_msg_len(m), &resp);
        ck_assert_int_eq(rv, RL_OK);
        ck_assert_int_eq(resp.status, RL_STATUS_INVALID_ARGUMENT);
        rl_msg_fini(&resp);
        nng_msg_free(m);
    }
    ck_assert_uint_ge(rl_rpc_server_bad_frames(s), 200);
    /* A newer protocol version gets a clear status. */
    rl_msg req, resp;
    rl_msg_init(&req, RL_MSG_HEALTH_REQ);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(rl_msg_encode(&req, &buf, &len), RL_OK);
    ck_assert(buf[1] == RL_PROTO_VERSION);
    buf[1] = 9; /* [version, ...]: the version is the array's first element */
    ck_assert_int_eq(nng_send(sock, buf, len, 0), 0);
    free(buf);
    nng_msg *m;
    ck_assert_int_eq(nng_recvmsg(sock, &m, 0), 0);
    ck_assert_int_eq(rl_msg_decode(nng_msg_body(m), nng_msg_len(m), &resp), RL_OK);
    ck_assert_int_eq(resp.status, RL_STATUS_FAILED_PRECONDITION);
    ck_assert_msg(strstr(resp.status_msg, "version") != NULL, "%s", resp.status_msg);
    rl_msg_fini(&resp);
    nng_msg_free(m);
    /* A message that is no method's request: UNIMPLEMENTED. */
    rl_msg_init(&req, RL_MSG_JOIN_RESP);
    req.u.join_resp.job = "x";
    nng_msg *keep;
    raw_call(sock, &req, &resp, &keep);
    ck_assert_int_eq(resp.status, RL_STATUS_UNIMPLEMENTED);
    rl_msg_fini(&resp);
    nng_msg_free(keep);
    /* Members are still served. */
    rl_rpc_client *c = open_client(rl_rpc_server_url(s), &tok, RL_OK);
    rl_rpc_reply rep;
    ck_assert_int_eq(echo(c, "ok", 2, &rep, 5000), RL_OK);
    rl_rpc_reply_fini(&rep);
    rl_rpc_client_close(c);
    nng_close(sock);
    rl_rpc_server_free(s);
}
END_TEST

/* ---- Batches ---------------------------------------------------------------- */

#define NB 400
typedef struct echo_want {
    const uint8_t *data;
    size_t len;
} echo_want;
static atomic_int echo_ok, echo_done;

static void on_echo_checked(void *arg, int err, rl_rpc_reply *rep)
{
    const echo_want *w = arg;
    if (err == RL_OK && rep->msg.u.echo_resp.data.len == w->len &&
        memcmp(rep->msg.u.echo_resp.data.ptr, w->data, w->len) == 0)
        atomic_fetch_add(&echo_ok, 1);
    atomic_fetch_add(&echo_done, 1);
}

/* Issues n async echo calls with distinct payloads; waits (at most 10 s) for
 * all; returns how many came back with their own payload. */
static int echo_many(rl_rpc_client *c, int n)
{
    static uint8_t data[NB][100];
    static echo_want want[NB];
    static rl_msg reqs[NB];
    atomic_store(&echo_ok, 0);
    atomic_store(&echo_done, 0);
    for (int i = 0; i < n; i++) {
        size_t len = (size_t)(i % 100) + 1;
        for (size_t k = 0; k < len; k++) data[i][k] = (uint8_t)(i * 31 + (int)k);
        want[i] = (echo_want){data[i], len};
        rl_msg_init(&reqs[i], RL_MSG_ECHO_REQ);
        reqs[i].u.echo_req.data = (rl_bytes){data[i], len};
        ck_assert_int_eq(rl_rpc_call_async(c, &reqs[i], rl_clock_ms() + 10000, on_echo_checked,
                                           &want[i]),
                         RL_OK);
    }
    for (int k = 0; k < 1000 && atomic_load(&echo_done) < n; k++) usleep(10000);
    ck_assert_int_eq(atomic_load(&echo_done), n);
    return atomic_load(&echo_ok);
}

/*
 * Calls issued while another is in flight travel together in BATCH messages
 * (one reply each, in the right place), and the server counts each call under
 * its own method; a client told not to batch sends none.
 */
START_TEST(batched_calls_each_get_their_own_reply)
{
    rl_token tok = make_token(TOKEN);
    rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0");
    rl_rpc_client *c = open_client(rl_rpc_server_url(s), &tok, RL_OK);
    ck_assert_int_eq(echo_many(c, NB), NB);
    rl_rpc_metrics mb, me;
    rl_rpc_server_metrics(s, RL_MSG_BATCH_REQ, &mb);
    rl_rpc_server_metrics(s, RL_MSG_ECHO_REQ, &me);
    ck_assert_msg(mb.calls >= 1, "no batch was sent for %d calls issued at once", NB);
    ck_assert_uint_eq(me.calls, NB);
    ck_assert_uint_eq(me.errors, 0);
    rl_rpc_client_close(c);

    rl_rpc_client_opts co = {.url = rl_rpc_server_url(s), .token = &tok, .peer_id = "t2",
                             .no_batch = true};
    ck_assert_int_eq(rl_rpc_client_open(&co, rl_clock_ms() + 5000, &c), RL_OK);
    ck_assert_int_eq(echo_many(c, 100), 100);
    rl_rpc_metrics mb2;
    rl_rpc_server_metrics(s, RL_MSG_BATCH_REQ, &mb2);
    ck_assert_uint_eq(mb2.calls, mb.calls);
    rl_rpc_client_close(c);
    rl_rpc_server_free(s);
}
END_TEST

/*
 * A queued or batched call ends at its own deadline, not its batch's: with
 * HEARTBEAT never answered, A (300 ms) holds the window; B (heartbeat, 3 s)
 * and C (echo, 800 ms) queue, then leave together when A fails; C fails at
 * 800 ms though its batch waits for B; D (echo, 150 ms), queued behind A,
 * fails before it was sent. The client then carries calls as before.
 */
START_TEST(batched_call_keeps_its_own_deadline)
{
    rl_token tok = make_token(TOKEN);
    rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0");
    rl_rpc_server_handle(s, RL_MSG_HEARTBEAT_REQ, handle_never, NULL);
    rl_rpc_client *c = open_client(rl_rpc_server_url(s), &tok, RL_OK);
    rl_msg hb, ec;
    rl_msg_init(&hb, RL_MSG_HEARTBEAT_REQ);
    hb.u.heartbeat_req.node_id = "t1";
    rl_msg_init(&ec, RL_MSG_ECHO_REQ);
    ec.u.echo_req.data = (rl_bytes){(const uint8_t *)"abc", 3};
    async_result a = {0}, b = {0}, cc = {0}, d = {0};
    uint64_t t0 = rl_clock_ms();
    ck_assert_int_eq(rl_rpc_call_async(c, &hb, t0 + 300, on_async, &a), RL_OK);
    ck_assert_int_eq(rl_rpc_call_async(c, &hb, t0 + 3000, on_async, &b), RL_OK);
    ck_assert_int_eq(rl_rpc_call_async(c, &ec, t0 + 800, on_async, &cc), RL_OK);
    ck_assert_int_eq(rl_rpc_call_async(c, &ec, t0 + 150, on_async, &d), RL_OK);
    ck_assert_int_eq(async_wait(&d, "D"), RL_ETIMEDOUT);
    ck_assert_int_eq(async_wait(&a, "A"), RL_ETIMEDOUT);
    ck_assert_int_eq(async_wait(&cc, "C"), RL_ETIMEDOUT);
    ck_assert_int_eq(async_wait(&b, "B"), RL_ETIMEDOUT);
    uint64_t ta = atomic_load(&a.at_ms) - t0, tb = atomic_load(&b.at_ms) - t0,
             tc = atomic_load(&cc.at_ms) - t0, td = atomic_load(&d.at_ms) - t0;
    ck_assert_msg(td >= 150 && td < 300, "D ended after %llu ms", (unsigned long long)td);
    ck_assert_msg(ta >= 290 && ta < 800, "A ended after %llu ms", (unsigned long long)ta);
    ck_assert_msg(tc >= 800 && tc < 1500, "C ended after %llu ms", (unsigned long long)tc);
    ck_assert_msg(tb >= 2990 && tb < 6000, "B ended after %llu ms", (unsigned long long)tb);
    ck_assert_msg(strstr(d.detail, "before the request was sent") != NULL, "%s", d.detail);
    ck_assert_msg(strstr(cc.detail, "no reply before the deadline") != NULL, "%s", cc.detail);
    ck_assert_int_eq(echo_many(c, 50), 50);
    rl_rpc_client_close(c);
    rl_rpc_server_free(s);
}
END_TEST

/* Closing a client with calls queued, batched and awaiting replies that
 * never come (the server never answers HEARTBEAT) ends every one exactly
 * once with RL_ECLOSED or RL_ECANCELED before close returns (after its
 * 0.5 s drain), lone or batched. */
static atomic_int closed_once, closed_other;
static void on_closed(void *arg, int err, rl_rpc_reply *rep)
{
    (void)arg;
    (void)rep;
    atomic_fetch_add(err == RL_ECLOSED || err == RL_ECANCELED ? &closed_once : &closed_other, 1);
}

START_TEST(close_ends_every_call_once)
{
    rl_token tok = make_token(TOKEN);
    rl_msg hb;
    rl_msg_init(&hb, RL_MSG_HEARTBEAT_REQ);
    hb.u.heartbeat_req.node_id = "t1";
    for (int round = 0; round < 4; round++) {
        rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0"); /* fresh contexts */
        rl_rpc_server_handle(s, RL_MSG_HEARTBEAT_REQ, handle_never, NULL);
        rl_rpc_client *c = NULL;
        rl_rpc_client_opts co = {.url = rl_rpc_server_url(s), .token = &tok, .peer_id = "t1",
                                 .no_batch = round % 2 == 1, .window = 4};
        ck_assert_int_eq(rl_rpc_client_open(&co, rl_clock_ms() + 5000, &c), RL_OK);
        atomic_store(&closed_once, 0);
        atomic_store(&closed_other, 0);
        for (int i = 0; i < 100; i++)
            ck_assert_int_eq(rl_rpc_call_async(c, &hb, rl_clock_ms() + 10000, on_closed, NULL),
                             RL_OK);
        rl_rpc_client_close(c);
        ck_assert_int_eq(atomic_load(&closed_once), 100);
        ck_assert_int_eq(atomic_load(&closed_other), 0);
        rl_rpc_server_free(s);
    }
}
END_TEST

/* Closing with replies still arriving (400 echo calls issued, then close at
 * once), where nng 1.5.2's nng_close can hang for good (cf. nng issues #1543,
 * #1813; see docs/operations.md): close lets the exchanges in flight end
 * first, returns promptly, and every call has had exactly one callback, its
 * reply or an error. */
START_TEST(close_returns_while_replies_arrive)
{
    rl_token tok = make_token(TOKEN);
    rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0");
    static uint8_t data[NB][8];
    static echo_want want[NB];
    static rl_msg reqs[NB];
    for (int round = 0; round < 5; round++) {
        rl_rpc_client *c = open_client(rl_rpc_server_url(s), &tok, RL_OK);
        atomic_store(&echo_ok, 0);
        atomic_store(&echo_done, 0);
        for (int i = 0; i < NB; i++) {
            want[i] = (echo_want){data[i], sizeof(data[i])};
            rl_msg_init(&reqs[i], RL_MSG_ECHO_REQ);
            reqs[i].u.echo_req.data = (rl_bytes){data[i], sizeof(data[i])};
            ck_assert_int_eq(rl_rpc_call_async(c, &reqs[i], rl_clock_ms() + 10000,
                                               on_echo_checked, &want[i]),
                             RL_OK);
        }
        uint64_t t0 = rl_clock_ms();
        rl_rpc_client_close(c);
        uint64_t el = rl_clock_ms() - t0;
        ck_assert_msg(el < 5000, "close took %llu ms", (unsigned long long)el);
        ck_assert_int_eq(atomic_load(&echo_done), NB);
    }
    rl_rpc_server_free(s);
}
END_TEST

/* Sends a BATCH_REQ of the given frames (count may lie) on a raw socket; the
 * reply's status, and, if OK, each call's reply decoded into out. */
static int raw_batch(nng_socket sock, const rl_bytes *frames, int n, uint64_t count, rl_msg *out,
                     nng_msg **keep, char *why, size_t whylen)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < n; i++) {
        uint8_t le[4] = {(uint8_t)frames[i].len, (uint8_t)(frames[i].len >> 8),
                         (uint8_t)(frames[i].len >> 16), (uint8_t)(frames[i].len >> 24)};
        msgpack_sbuffer_write(&sb, (const char *)le, 4);
        msgpack_sbuffer_write(&sb, (const char *)frames[i].ptr, frames[i].len);
    }
    rl_msg req, resp;
    rl_msg_init(&req, RL_MSG_BATCH_REQ);
    req.call_id = 99;
    req.u.batch_req.count = count;
    req.u.batch_req.frames = (rl_bytes){(const uint8_t *)sb.data, sb.size};
    raw_call(sock, &req, &resp, keep);
    msgpack_sbuffer_destroy(&sb);
    int status = resp.status;
    snprintf(why, whylen, "%s", resp.status_msg);
    ck_assert_uint_eq(resp.call_id, 99);
    if (status == RL_STATUS_OK) {
        ck_assert_int_eq(resp.type, RL_MSG_BATCH_RESP);
        ck_assert_uint_eq(resp.u.batch_resp.count, count);
        ck_assert_int_eq(rli_batch_check(&resp.u.batch_resp.frames, count), RL_OK);
        size_t off = 0;
        for (uint64_t i = 0; i < count; i++) {
            rl_bytes f = rli_batch_next(&resp.u.batch_resp.frames, &off);
            ck_assert_int_eq(rl_msg_decode(f.ptr, f.len, &out[i]), RL_OK);
        }
    }
    rl_msg_fini(&resp);
    return status;
}

static rl_bytes encode_frame(const rl_msg *m)
{
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(rl_msg_encode(m, &buf, &len), RL_OK);
    return (rl_bytes){buf, len};
}

/*
 * Hostile batches: a wrong count, a cut length prefix, trailing bytes, an
 * empty or oversized batch are refused whole (INVALID_ARGUMENT, nothing run);
 * inside a well-framed batch, each call is judged alone: garbage, a nested
 * batch, a method that may not be batched (PLAN), an unauthenticated call.
 */
START_TEST(hostile_batches_are_refused_and_each_call_judged_alone)
{
    rl_token tok = make_token(TOKEN);
    rl_rpc_server *s = start_server(&tok, NULL, "tcp://127.0.0.1:0");
    nng_socket sock = raw_dial(rl_rpc_server_url(s));
    rl_msg h, e, plan, inner, out[8];
    rl_msg_init(&h, RL_MSG_HEALTH_REQ);
    rl_msg_init(&e, RL_MSG_ECHO_REQ);
    e.u.echo_req.data = (rl_bytes){(const uint8_t *)"x", 1};
    rl_msg_init(&plan, RL_MSG_PLAN_REQ);
    plan.u.plan_req.node_id = "n1";
    rl_msg_init(&inner, RL_MSG_BATCH_REQ);
    rl_bytes hf = encode_frame(&h), ef = encode_frame(&e), pf = encode_frame(&plan);
    inner.u.batch_req.count = 1;
    inner.u.batch_req.frames = hf; /* not framed, but it is refused before that matters */
    rl_bytes nf = encode_frame(&inner);
    uint8_t junk[5] = {0xc1, 0xff, 0x00, 0x93, 0x01};
    rl_bytes jf = {junk, sizeof(junk)};
    nng_msg *keep;
    char why[300];
    uint64_t bad0 = rl_rpc_server_bad_frames(s);

    /* Refused whole. */
    rl_bytes two[2] = {hf, hf};
    ck_assert_int_eq(raw_batch(sock, two, 2, 3, out, &keep, why, sizeof(why)),
                     RL_STATUS_INVALID_ARGUMENT);
    ck_assert_msg(strstr(why, "frame 3 of 3") != NULL, "%s", why);
    nng_msg_free(keep);
    ck_assert_int_eq(raw_batch(sock, two, 2, 1, out, &keep, why, sizeof(why)),
                     RL_STATUS_INVALID_ARGUMENT);
    ck_assert_msg(strstr(why, "trailing") != NULL, "%s", why);
    nng_msg_free(keep);
    ck_assert_int_eq(raw_batch(sock, two, 1, 0, out, &keep, why, sizeof(why)),
                     RL_STATUS_INVALID_ARGUMENT);
    nng_msg_free(keep);
    ck_assert_int_eq(raw_batch(sock, two, 1, RLI_BATCH_MAX + 1, out, &keep, why, sizeof(why)),
                     RL_STATUS_INVALID_ARGUMENT);
    nng_msg_free(keep);
    rl_bytes cut = {hf.ptr, hf.len}; /* a length prefix that claims more than is there */
    {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        uint8_t le[4] = {0xff, 0xff, 0, 0};
        msgpack_sbuffer_write(&sb, (const char *)le, 4);
        msgpack_sbuffer_write(&sb, (const char *)cut.ptr, cut.len);
        rl_msg req, resp;
        rl_msg_init(&req, RL_MSG_BATCH_REQ);
        req.u.batch_req.count = 1;
        req.u.batch_req.frames = (rl_bytes){(const uint8_t *)sb.data, sb.size};
        raw_call(sock, &req, &resp, &keep);
        ck_assert_int_eq(resp.status, RL_STATUS_INVALID_ARGUMENT);
        ck_assert_msg(strstr(resp.status_msg, "length 65535") != NULL, "%s", resp.status_msg);
        rl_msg_fini(&resp);
        nng_msg_free(keep);
        msgpack_sbuffer_destroy(&sb);
    }
    ck_assert_uint_eq(rl_rpc_server_bad_frames(s), bad0 + 5);
    rl_rpc_metrics m;
    rl_rpc_server_metrics(s, RL_MSG_HEALTH_REQ, &m);
    ck_assert_uint_eq(m.calls, 0); /* nothing ran */

    /* Judged call by call: this connection has not authenticated. */
    rl_bytes mix[5] = {hf, jf, nf, pf, ef};
    ck_assert_int_eq(raw_batch(sock, mix, 5, 5, out, &keep, why, sizeof(why)), RL_STATUS_OK);
    ck_assert_int_eq(out[0].status, RL_STATUS_OK);
    ck_assert_int_eq(out[0].type, RL_MSG_HEALTH_RESP);
    ck_assert_int_eq(out[1].status, RL_STATUS_INVALID_ARGUMENT);
    ck_assert_int_eq(out[2].status, RL_STATUS_FAILED_PRECONDITION);
    ck_assert_msg(strstr(out[2].status_msg, "BATCH cannot be batched") != NULL, "%s",
                  out[2].status_msg);
    ck_assert_int_eq(out[3].status, RL_STATUS_FAILED_PRECONDITION);
    ck_assert_msg(strstr(out[3].status_msg, "PLAN cannot be batched") != NULL, "%s",
                  out[3].status_msg);
    ck_assert_int_eq(out[4].status, RL_STATUS_UNAUTHENTICATED);
    for (int i = 0; i < 5; i++) rl_msg_fini(&out[i]);
    nng_msg_free(keep);
    rl_rpc_server_metrics(s, RL_MSG_ECHO_REQ, &m);
    ck_assert_uint_eq(m.refused_unauth, 1);

    /* Members are still served. */
    rl_rpc_client *c = open_client(rl_rpc_server_url(s), &tok, RL_OK);
    ck_assert_int_eq(echo_many(c, 50), 50);
    rl_rpc_client_close(c);
    free((void *)hf.ptr);
    free((void *)ef.ptr);
    free((void *)pf.ptr);
    free((void *)nf.ptr);
    nng_close(sock);
    rl_rpc_server_free(s);
}
END_TEST

/* A server from before batches: it cannot decode BATCH_REQ (an unknown
 * message type to it) and answers as that code did, INVALID_ARGUMENT in an
 * ERROR_RESP; it echoes ECHO_REQ; counts the batches it refused. */
typedef struct old_server {
    nng_socket sock;
    atomic_int stop, refused;
    pthread_t th;
} old_server;

static void *old_server_main(void *arg)
{
    old_server *o = arg;
    for (int i = 0; i < 100000 && !atomic_load(&o->stop); i++) {
        nng_msg *m;
        if (nng_recvmsg(o->sock, &m, 0) != 0) continue; /* receive timeout: look at stop */
        rl_msg req, resp;
        if (rl_msg_decode(nng_msg_body(m), nng_msg_len(m), &req) != RL_OK) {
            nng_msg_free(m);
            continue;
        }
        if (req.type == RL_MSG_ECHO_REQ) {
            rl_msg_init(&resp, RL_MSG_ECHO_RESP);
            resp.u.echo_resp.data = req.u.echo_req.data;
        } else {
            rl_msg_init(&resp, RL_MSG_ERROR_RESP);
            resp.status = RL_STATUS_INVALID_ARGUMENT;
            snprintf(resp.status_msg, sizeof(resp.status_msg), "frame: unknown message type %d",
                     (int)req.type);
            if (req.type == RL_MSG_BATCH_REQ) atomic_fetch_add(&o->refused, 1);
        }
        resp.call_id = req.call_id;
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(rl_msg_encode(&resp, &buf, &len), RL_OK);
        rl_msg_fini(&req);
        nng_msg_clear(m);
        nng_msg_append(m, buf, len);
        free(buf);
        if (nng_sendmsg(o->sock, m, 0) != 0) nng_msg_free(m);
    }
    return NULL;
}

START_TEST(a_server_without_batches_gets_calls_one_by_one)
{
    old_server o;
    memset(&o, 0, sizeof(o));
    int port = rlt_free_port();
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    ck_assert_int_eq(nng_rep0_open(&o.sock), 0);
    nng_socket_set_ms(o.sock, NNG_OPT_RECVTIMEO, 100);
    nng_socket_set_ms(o.sock, NNG_OPT_SENDTIMEO, 1000);
    ck_assert_int_eq(nng_listen(o.sock, url, NULL, 0), 0);
    ck_assert_int_eq(pthread_create(&o.th, NULL, old_server_main, &o), 0);
    rl_rpc_client *c = open_client(url, NULL, RL_OK);
    ck_assert_int_eq(echo_many(c, 200), 200);
    ck_assert_int_eq(atomic_load(&o.refused), 1); /* asked once, then never again */
    ck_assert_int_eq(echo_many(c, 100), 100);
    ck_assert_int_eq(atomic_load(&o.refused), 1);
    rl_rpc_client_close(c);
    atomic_store(&o.stop, 1);
    pthread_join(o.th, NULL);
    nng_close(o.sock);
}
END_TEST

START_TEST(call_over_tls_with_a_test_ca)
{
    char *dir = rlt_tmpdir();
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt "
             "-days 2 -subj /CN=rltest-ca >/dev/null 2>&1 && "
             "openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr "
             "-subj /CN=127.0.0.1 >/dev/null 2>&1 && "
             "printf 'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost\\n' > ext.cnf && "
             "openssl x509 -req -in node.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out node.crt -days 2 -extfile ext.cnf >/dev/null 2>&1",
             dir);
    ck_assert_msg(system(cmd) == 0, "openssl could not make the test CA");
    char cert[512], key[512], ca[512], url[128];
    snprintf(cert, sizeof(cert), "%s/node.crt", dir);
    snprintf(key, sizeof(key), "%s/node.key", dir);
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    rl_tls_files tls = {cert, key, ca};
    rl_token tok = make_token(TOKEN);
    snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", rlt_free_port());
    rl_rpc_server *s = start_server(&tok, &tls, url);
    rl_rpc_client *c = NULL;
    rl_rpc_client_opts co = {.url = url, .token = &tok, .tls = &tls, .peer_id = "t1"};
    ck_assert_msg(rl_rpc_client_open(&co, rl_clock_ms() + 10000, &c) == RL_OK, "%s",
                  rl_errdetail());
    rl_rpc_reply rep;
    ck_assert_int_eq(echo(c, "secret", 6, &rep, 5000), RL_OK);
    ck_assert_uint_eq(rep.msg.u.echo_resp.data.len, 6);
    rl_rpc_reply_fini(&rep);
    rl_rpc_client_close(c);
    rl_rpc_server_free(s);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

START_TEST(url_host_is_what_the_certificate_must_name)
{
    char h[64], p[16];
    ck_assert_int_eq(rli_url_host("tls+tcp://10.200.0.1:7700", h, sizeof(h), p, sizeof(p)), RL_OK);
    ck_assert_str_eq(h, "10.200.0.1");
    ck_assert_str_eq(p, "7700");
    ck_assert_int_eq(rli_url_host("tls+tcp://node-a.lab:0/x", h, sizeof(h), p, sizeof(p)), RL_OK);
    ck_assert_str_eq(h, "node-a.lab");
    ck_assert_str_eq(p, "0");
    ck_assert_int_eq(rli_url_host("tls+tcp://[::1]:7700", h, sizeof(h), p, sizeof(p)), RL_OK);
    ck_assert_str_eq(h, "::1");
    ck_assert_str_eq(p, "7700");
    ck_assert_int_eq(rli_url_host("tcp://host", h, sizeof(h), p, sizeof(p)), RL_OK);
    ck_assert_str_eq(h, "host");
    ck_assert_str_eq(p, "");
    ck_assert_int_eq(rli_url_host("tls+tcp://:7700", h, sizeof(h), p, sizeof(p)), RL_EINVAL);
    ck_assert_int_eq(rli_url_host("tls+tcp://[::1:7700", h, sizeof(h), p, sizeof(p)), RL_EINVAL);
    ck_assert_int_eq(rli_url_host("127.0.0.1:7700", h, sizeof(h), p, sizeof(p)), RL_EINVAL);
    ck_assert_int_eq(rli_url_host("tls+tcp://a-very-long-host-name.example:1", h, 8, p, sizeof(p)),
                     RL_EINVAL);
}
END_TEST

/* nng's own dial (what ring links use) with the client config for url:
 * its result code. */
static int tls_stream_dial(const rl_tls_files *tls, const char *url)
{
    nng_stream_listener *l = NULL;
    nng_stream_dialer *d = NULL;
    nng_tls_config *scfg = NULL, *ccfg = NULL;
    nng_aio *la = NULL, *da = NULL;
    ck_assert_int_eq(rli_tls_config_new(tls, true, NULL, &scfg), RL_OK);
    ck_assert_int_eq(rli_tls_config_new(tls, false, url, &ccfg), RL_OK);
    ck_assert_int_eq(nng_stream_listener_alloc(&l, url), 0);
    ck_assert_int_eq(nng_stream_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, scfg), 0);
    ck_assert_int_eq(nng_stream_listener_listen(l), 0);
    ck_assert_int_eq(nng_stream_dialer_alloc(&d, url), 0);
    ck_assert_int_eq(nng_stream_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, ccfg), 0);
    ck_assert_int_eq(nng_aio_alloc(&la, NULL, NULL), 0);
    ck_assert_int_eq(nng_aio_alloc(&da, NULL, NULL), 0);
    nng_aio_set_timeout(la, 5000);
    nng_aio_set_timeout(da, 5000);
    nng_stream_listener_accept(l, la);
    nng_stream_dialer_dial(d, da);
    nng_aio_wait(da);
    int rv = nng_aio_result(da);
    nng_aio_wait(la);
    nng_stream *ss = nng_aio_result(la) == 0 ? nng_aio_get_output(la, 0) : NULL;
    if (rv == 0) { /* the handshake runs with the first send and receive */
        nng_stream *st = nng_aio_get_output(da, 0);
        char out = 'x', in = 0;
        nng_iov oiov = {.iov_buf = &out, .iov_len = 1}, iiov = {.iov_buf = &in, .iov_len = 1};
        nng_aio_set_iov(da, 1, &oiov);
        if (ss != NULL) {
            nng_aio_set_iov(la, 1, &iiov);
            nng_stream_recv(ss, la);
        }
        nng_stream_send(st, da);
        nng_aio_wait(da);
        rv = nng_aio_result(da);
        nng_stream_close(st);
        if (ss != NULL) nng_stream_close(ss);
        nng_aio_wait(la);
        nng_stream_free(st);
    }
    if (ss != NULL) nng_stream_free(ss);
    nng_stream_listener_close(l);
    nng_aio_free(la);
    nng_aio_free(da);
    nng_stream_dialer_free(d);
    nng_stream_listener_free(l);
    nng_tls_config_free(scfg);
    nng_tls_config_free(ccfg);
    return rv;
}

/* The demo certificate names 127.0.0.1: dialled at 127.0.0.2 (loopback too)
 * it is refused by nng itself, and by the RPC client with the reason. */
START_TEST(tls_refuses_a_certificate_for_another_host)
{
    rl_tls_files tls = {RL_SOURCE_DIR "/configs/tls/cert.pem", RL_SOURCE_DIR "/configs/tls/key.pem",
                        RL_SOURCE_DIR "/configs/tls/ca.pem"};
    char url[128], want[256];
    snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", rlt_free_port());
    ck_assert_int_eq(tls_stream_dial(&tls, url), 0);
    snprintf(url, sizeof(url), "tls+tcp://127.0.0.2:%d", rlt_free_port());
    int rv = tls_stream_dial(&tls, url);
    ck_assert_msg(rv == NNG_ECRYPTO || rv == NNG_EPEERAUTH, "dial: %s", nng_strerror(rv));
    tls.skip_hostname_check = true;
    ck_assert_int_eq(tls_stream_dial(&tls, url), 0);
    tls.skip_hostname_check = false;

    rl_token tok = make_token(TOKEN);
    rl_rpc_server *s = start_server(&tok, &tls, url);
    rl_rpc_client *c = NULL;
    rl_rpc_client_opts co = {.url = url, .token = &tok, .tls = &tls, .peer_id = "t1"};
    uint64_t t0 = rl_clock_ms();
    ck_assert_int_eq(rl_rpc_client_open(&co, t0 + 10000, &c), RL_ECONFIG);
    ck_assert_msg(rl_clock_ms() - t0 < 3000, "the refusal took %llu ms",
                  (unsigned long long)(rl_clock_ms() - t0));
    snprintf(want, sizeof(want),
             "TLS: the certificate of %s is not for 127.0.0.2 (it names 127.0.0.1, localhost)", url);
    ck_assert_msg(strstr(rl_errdetail(), want) != NULL, "got: %s", rl_errdetail());
    tls.skip_hostname_check = true;
    ck_assert_msg(rl_rpc_client_open(&co, rl_clock_ms() + 10000, &c) == RL_OK, "%s",
                  rl_errdetail());
    rl_rpc_client_close(c);
    rl_rpc_server_free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rpc");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, echo_and_health);
    tcase_add_test(tc, deadline_is_enforced);
    tcase_add_test(tc, many_calls_in_flight);
    tcase_add_test(tc, reauth_after_a_server_restart);
    tcase_add_test(tc, wrong_token_is_refused_both_ways);
    tcase_add_test(tc, unauthenticated_calls_are_refused);
    tcase_add_test(tc, captured_proof_cannot_be_replayed);
    tcase_add_test(tc, hostile_frames_get_a_status_and_the_server_stays_up);
    tcase_add_test(tc, call_over_tls_with_a_test_ca);
    tcase_add_test(tc, url_host_is_what_the_certificate_must_name);
    tcase_add_test(tc, tls_refuses_a_certificate_for_another_host);
    tcase_add_test(tc, batched_calls_each_get_their_own_reply);
    tcase_add_test(tc, batched_call_keeps_its_own_deadline);
    tcase_add_test(tc, hostile_batches_are_refused_and_each_call_judged_alone);
    tcase_add_test(tc, a_server_without_batches_gets_calls_one_by_one);
    tcase_add_test(tc, close_ends_every_call_once);
    tcase_add_test(tc, close_returns_while_replies_arrive);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
