/* rpc_common.c - the method table expanded from RL_RPC_LIST, and the glue
 * between frames and nng messages shared by the RPC server and client. */
#include <string.h>

#include "rli.h"
#include "rpc_internal.h"
#include "tls.h"
#include "wire.h"

static const rli_method methods[] = {
#define RL_RPC_ROW(METHOD, REQ, RESP, AUTH) {#METHOD, RL_MSG_##REQ, RL_MSG_##RESP, AUTH},
    RL_RPC_LIST(RL_RPC_ROW)
#undef RL_RPC_ROW
};

const rli_method *rli_method_find(rl_msg_type t, int *idx)
{
    for (int i = 0; i < (int)(sizeof(methods) / sizeof(methods[0])); i++)
        if (methods[i].req == t) {
            if (idx != NULL) *idx = i;
            return &methods[i];
        }
    return NULL;
}

int rli_method_count(void)
{
    return (int)(sizeof(methods) / sizeof(methods[0]));
}

static int nngmsg_write(void *data, const char *buf, size_t len)
{
    return nng_msg_append((nng_msg *)data, buf, len) == 0 ? 0 : -1;
}

int rli_msg_to_nng(const rl_msg *m, nng_msg **out)
{
    nng_msg *msg;
    int rv = nng_msg_alloc(&msg, 0);
    if (rv != 0) return rli_err(RL_ENOMEM, "nng_msg_alloc: %s", nng_strerror(rv));
    msgpack_packer pk;
    msgpack_packer_init(&pk, msg, nngmsg_write);
    if ((rv = rli_msg_pack(&pk, m)) != 0) {
        nng_msg_free(msg);
        return rv;
    }
    *out = msg;
    return RL_OK;
}

/* One TLS setup for both ends: a config for the URL's role, set on the
 * dialer or listener by the given setter. */
static int setup_tls(const char *url, const rl_tls_files *tls, bool server, nng_tls_config **out,
                     int (*set)(void *, nng_tls_config *), void *ep, const char *what)
{
    *out = NULL;
    if (!rli_url_is_tls(url)) return RL_OK;
    int rv = rli_tls_config_new(tls, server, out);
    if (rv != 0) return rv;
    if ((rv = set(ep, *out)) != 0)
        return rli_err(rli_err_from_nng(rv), "TLS %s %s: %s", what, url, nng_strerror(rv));
    return RL_OK;
}

static int set_dialer_tls(void *ep, nng_tls_config *cfg)
{
    return nng_dialer_set_ptr(*(nng_dialer *)ep, NNG_OPT_TLS_CONFIG, cfg);
}

static int set_listener_tls(void *ep, nng_tls_config *cfg)
{
    return nng_listener_set_ptr(*(nng_listener *)ep, NNG_OPT_TLS_CONFIG, cfg);
}

int rli_sock_setup_tls_dialer(nng_dialer d, const char *url, const rl_tls_files *tls,
                              nng_tls_config **cfg_out)
{
    return setup_tls(url, tls, false, cfg_out, set_dialer_tls, &d, "dialer");
}

int rli_sock_setup_tls_listener(nng_listener l, const char *url, const rl_tls_files *tls,
                                nng_tls_config **cfg_out)
{
    return setup_tls(url, tls, true, cfg_out, set_listener_tls, &l, "listener");
}
