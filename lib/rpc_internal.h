/* rpc_internal.h - what the RPC server and client share (internal). */
#ifndef RINGLEADER_RPC_INTERNAL_H
#define RINGLEADER_RPC_INTERNAL_H

#include <stdbool.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "ringleader/rpc.h"

/* One row of RL_RPC_LIST. */
typedef struct rli_method {
    const char *name;
    rl_msg_type req, resp;
    bool auth;
} rli_method;

/* The method whose request type is t, or NULL. Its index in the table is
 * written to *idx when idx is not NULL. */
const rli_method *rli_method_find(rl_msg_type t, int *idx);
/* Number of methods in RL_RPC_LIST. */
int rli_method_count(void);

/* Encodes m into a new nng message. */
int rli_msg_to_nng(const rl_msg *m, nng_msg **out);

/* Applies the socket options every Ringleader socket gets: receive size
 * limit, reconnect back-off, TLS for tls+tcp URLs. */
int rli_sock_setup_tls_dialer(nng_dialer d, const char *url, const rl_tls_files *tls,
                              nng_tls_config **cfg_out);
int rli_sock_setup_tls_listener(nng_listener l, const char *url, const rl_tls_files *tls,
                                nng_tls_config **cfg_out);

#endif
