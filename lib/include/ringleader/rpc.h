/*
 * rpc.h - gRPC-style unary RPC over NNG req/rep, with authentication.
 *
 * A server listens on one URL and serves many clients without a thread per
 * client: a pool of nng contexts, each with its own aio, receives requests
 * and dispatches them by message type to registered handlers, which run on
 * nng's task threads. A client keeps many calls in flight on one socket (one
 * nng context per call). Every call has a deadline and ends with a status
 * from proto/status.def and a message.
 *
 * Authentication: with a cluster token, a client proves membership by an
 * HMAC-SHA256 challenge-response bound to its connection (see lib/auth.c):
 * the token never travels, nonces are fresh on both sides, and a captured
 * exchange cannot be replayed on another connection. Methods marked AUTH in
 * proto/messages.def answer UNAUTHENTICATED to a connection that has not
 * proved itself; the server logs the refusal and carries on.
 */
#ifndef RINGLEADER_RPC_H
#define RINGLEADER_RPC_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "ring.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RL_TOKEN_MAX 256

/* A cluster token: from file (if not NULL/"") else from $RINGLEADER_TOKEN.
 * Surrounding white space is stripped; it must be 16..256 bytes. */
typedef struct rl_token {
    uint8_t bytes[RL_TOKEN_MAX];
    size_t len;
} rl_token;
RL_API int rl_token_load(const char *file, rl_token *out);

/* ---- Server ---------------------------------------------------------------- */

typedef struct rl_rpc_server rl_rpc_server;
typedef struct rl_rpc_ctx rl_rpc_ctx;

/*
 * A handler: req is the decoded request (its BIN fields borrow from the
 * request frame, valid until the call is answered); resp is initialised to
 * the method's response type, for the handler to fill (strings it sets are
 * freed by the server with rl_msg_fini, so give it heap copies). Returns
 * RL_OK or an rl_err (sent as the matching status, with rl_errdetail() as the
 * message), unless it called rl_rpc_ctx_defer: then the call stays open.
 */
typedef int (*rl_rpc_handler)(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp);

typedef struct rl_rpc_server_opts {
    const char *url;          /* tcp://HOST:PORT (port 0: any), tls+tcp://, ipc:// */
    const rl_tls_files *tls;  /* for tls+tcp:// */
    const rl_token *token;    /* NULL: no authentication (tests and benchmarks only) */
    const char *name;         /* reported by HEALTH */
    int contexts;             /* concurrent calls served; 0 = 64 */
    size_t recv_max;          /* largest request accepted; 0 = 4 MiB */
} rl_rpc_server_opts;

/* Creates a server (not yet listening). */
RL_API int rl_rpc_server_new(const rl_rpc_server_opts *opts, rl_rpc_server **out);
/* Registers fn for requests of type req_type (a request in RL_RPC_LIST). */
RL_API int rl_rpc_server_handle(rl_rpc_server *s, rl_msg_type req_type, rl_rpc_handler fn,
                                void *arg);
/* Starts listening and serving. */
RL_API int rl_rpc_server_start(rl_rpc_server *s);
/* The URL clients should dial (bound port filled in). */
RL_API const char *rl_rpc_server_url(const rl_rpc_server *s);
/* Calls fn(arg, peer_id) from an nng thread whenever an authenticated
 * connection closes (a peer process that died closes its connection at
 * once). Set before rl_rpc_server_start. */
typedef void (*rl_rpc_disconnect_fn)(void *arg, const char *peer_id);
RL_API void rl_rpc_server_on_disconnect(rl_rpc_server *s, rl_rpc_disconnect_fn fn, void *arg);

/* Stops serving (deferred calls are dropped) and frees s. */
RL_API void rl_rpc_server_free(rl_rpc_server *s);

/* Keeps the call open: the handler's return value and resp are ignored and
 * the call is answered later by rl_rpc_ctx_reply, which may run on another
 * thread even before the handler returns. Only from inside the handler. */
RL_API void rl_rpc_ctx_defer(rl_rpc_ctx *call);
/* Answers a deferred call: err RL_OK sends resp, else the matching status.
 * resp (may be NULL on error) is consumed (rl_msg_fini). Any thread. */
RL_API void rl_rpc_ctx_reply(rl_rpc_ctx *call, int err, const char *errmsg, rl_msg *resp);
/* The authenticated peer's id ("" if none) and its connection id. */
RL_API const char *rl_rpc_ctx_peer(const rl_rpc_ctx *call);
RL_API uint32_t rl_rpc_ctx_pipe(const rl_rpc_ctx *call);

/* Per-method metrics, kept for export. Latency: receive to reply, microseconds;
 * the quantiles over the last 4096 calls, the sum and count over all. */
typedef struct rl_rpc_metrics {
    uint64_t calls;
    uint64_t errors;
    uint64_t refused_unauth;
    double lat_p50_us, lat_p99_us, lat_max_us;
    double lat_sum_us;
    uint64_t lat_count;
} rl_rpc_metrics;
RL_API void rl_rpc_server_metrics(rl_rpc_server *s, rl_msg_type req_type, rl_rpc_metrics *out);
/* Frames that did not decode, or came from an unsupported version. */
RL_API uint64_t rl_rpc_server_bad_frames(rl_rpc_server *s);

/* ---- Client ---------------------------------------------------------------- */

typedef struct rl_rpc_client rl_rpc_client;

typedef struct rl_rpc_client_opts {
    const char *url;
    const rl_tls_files *tls;
    const rl_token *token; /* NULL: do not authenticate */
    const char *peer_id;   /* who we are, e.g. "n3" */
    size_t recv_max;       /* largest response accepted; 0 = RL_PROTO_MAX_FRAME */
    int window;            /* async batchable messages in flight before calls batch; 0 = 1, max 16 */
    bool no_batch;         /* never batch: every async call travels alone */
} rl_rpc_client_opts;

/*
 * Dials the server (nng reconnects by itself if the link drops) and, with a
 * token, authenticates, all before deadline_ms (absolute, rl_clock_ms).
 * Fails with RL_ETIMEDOUT/RL_EUNAVAIL if the server cannot be reached, or
 * RL_EAUTH if the server's proof is wrong or it refuses ours.
 */
RL_API int rl_rpc_client_open(const rl_rpc_client_opts *opts, uint64_t deadline_ms,
                              rl_rpc_client **out);
/* Closes c. Exchanges in flight get up to 0.5 s to end by themselves; then
 * every call not yet answered ends (RL_ECANCELED, or RL_ECLOSED if still
 * queued) through its callback, all before this returns. Not from a
 * callback of c. */
RL_API void rl_rpc_client_close(rl_rpc_client *c);

/* A response: msg's BIN fields borrow from the frame, which lives until
 * rl_rpc_reply_fini. */
typedef struct rl_rpc_reply {
    rl_msg msg;
    int status; /* rl_status */
    void *frame;
} rl_rpc_reply;
RL_API void rl_rpc_reply_fini(rl_rpc_reply *reply);

/*
 * Calls the method whose request is req, waiting until deadline_ms. Returns
 * RL_OK with reply filled (fini it), or an rl_err: the transport's, or the
 * status's (reply->status then says which, rl_errdetail() the message; the
 * reply still needs rl_rpc_reply_fini). A connection that lost its
 * authentication (the server restarted, the link was re-dialled) is
 * re-authenticated and the call retried once.
 */
RL_API int rl_rpc_call(rl_rpc_client *c, const rl_msg *req, rl_rpc_reply *reply,
                       uint64_t deadline_ms);

/* Asynchronous form: cb runs on an nng thread with the result; reply is
 * valid during the callback only (it is fini'd after). Calls of methods
 * marked BATCH in RL_RPC_LIST, with frames up to 16 KiB, are sent at once
 * while fewer than opts.window such messages are in flight; past that they
 * queue, and the next message to leave carries all that queued (up to 64
 * calls, 64 KiB) as one BATCH, which the server answers call by call in one
 * reply. Every call keeps its own deadline, status and reply. A batch's reply
 * waits for its slowest call: a handler that may hold a call open (defers it for
 * long) belongs to a method whose BATCH column is 0. */
typedef void (*rl_rpc_done)(void *arg, int err, rl_rpc_reply *reply);
RL_API int rl_rpc_call_async(rl_rpc_client *c, const rl_msg *req, uint64_t deadline_ms,
                             rl_rpc_done cb, void *arg);

#ifdef __cplusplus
}
#endif
#endif
