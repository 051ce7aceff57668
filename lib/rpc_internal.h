/* rpc_internal.h - what the RPC server and client share (internal). */
#ifndef RINGLEADER_RPC_INTERNAL_H
#define RINGLEADER_RPC_INTERNAL_H

#include <stdbool.h>

#include <msgpack.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "ringleader/rpc.h"

/* One row of RL_RPC_LIST. */
typedef struct rli_method {
    const char *name;
    rl_msg_type req, resp;
    bool auth;
    bool batch; /* may share a BATCH message (answered at once) */
} rli_method;

/* The method whose request type is t, or NULL. Its index in the table is
 * written to *idx when idx is not NULL. */
const rli_method *rli_method_find(rl_msg_type t, int *idx);
/* Number of methods in RL_RPC_LIST. */
int rli_method_count(void);

/* Batches (BATCH_REQ / BATCH_RESP): `frames` holds whole frames, each
 * preceded by its length as a little-endian u32. A batch carries at most
 * RLI_BATCH_MAX calls. */
#define RLI_BATCH_MAX 64
/* Checks that frames holds exactly count well-framed, non-empty frames, at
 * most RLI_BATCH_MAX. Returns RL_OK or RL_EPROTO with the position. */
int rli_batch_check(const rl_bytes *frames, uint64_t count);
/* The next frame at *off in frames (checked with rli_batch_check first);
 * advances *off. */
rl_bytes rli_batch_next(const rl_bytes *frames, size_t *off);
/* Appends a frame with its length prefix to sb (kept and reused by its
 * owner, so that batches do not allocate). */
int rli_batch_append(msgpack_sbuffer *sb, const void *frame, size_t len);

/* Encodes m into a new nng message. */
int rli_msg_to_nng(const rl_msg *m, nng_msg **out);

/* Applies the socket options every Ringleader socket gets: receive size
 * limit, reconnect back-off, TLS for tls+tcp URLs. */
int rli_sock_setup_tls_dialer(nng_dialer d, const char *url, const rl_tls_files *tls,
                              nng_tls_config **cfg_out);
int rli_sock_setup_tls_listener(nng_listener l, const char *url, const rl_tls_files *tls,
                                nng_tls_config **cfg_out);

#endif
