/* rpc_common.c - the method table expanded from RL_RPC_LIST, and the glue
 * between frames and nng messages shared by the RPC server and client. */
#include <string.h>

#include "rli.h"
#include "rpc_internal.h"
#include "tls.h"
#include "wire.h"

static const rli_method methods[] = {
#define RL_RPC_ROW(METHOD, REQ, RESP, AUTH, BATCH)                                                 \
    {#METHOD, RL_MSG_##REQ, RL_MSG_##RESP, AUTH, BATCH},
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

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int rli_batch_check(const rl_bytes *frames, uint64_t count)
{
    if (count == 0 || count > RLI_BATCH_MAX)
        return rli_err(RL_EPROTO, "batch of %llu calls (1..%d)", (unsigned long long)count,
                       RLI_BATCH_MAX);
    size_t off = 0, len = frames->len;
    for (uint64_t i = 0; i < count; i++) {
        if (len - off < 4)
            return rli_err(RL_EPROTO, "batch frame %llu of %llu: length cut at byte %zu",
                           (unsigned long long)i + 1, (unsigned long long)count, off);
        uint32_t n = get_le32(frames->ptr + off);
        off += 4;
        if (n == 0 || n > len - off)
            return rli_err(RL_EPROTO, "batch frame %llu of %llu: length %u at byte %zu, %zu "
                           "bytes left", (unsigned long long)i + 1, (unsigned long long)count,
                           n, off - 4, len - off);
        off += n;
    }
    if (off != len)
        return rli_err(RL_EPROTO, "batch of %llu frames: %zu trailing bytes",
                       (unsigned long long)count, len - off);
    return RL_OK;
}

rl_bytes rli_batch_next(const rl_bytes *frames, size_t *off)
{
    uint32_t n = get_le32(frames->ptr + *off);
    rl_bytes b = {frames->ptr + *off + 4, n};
    *off += 4 + (size_t)n;
    return b;
}

int rli_batch_append(msgpack_sbuffer *sb, const void *frame, size_t len)
{
    uint8_t le[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    if (len == 0 || len > UINT32_MAX || msgpack_sbuffer_write(sb, (const char *)le, 4) != 0 ||
        msgpack_sbuffer_write(sb, frame, len) != 0)
        return rli_err(RL_ENOMEM, "batch: cannot append a frame of %zu bytes", len);
    return RL_OK;
}

/* The msgpack sink: an nng message allocated once the frame's size is
 * known (rli_msg_pack_reserved counts first), then appended to. */
static int nngmsg_write(void *data, const char *buf, size_t len)
{
    nng_msg **m = data;
    if (*m == NULL && nng_msg_alloc(m, 0) != 0) return -1;
    return nng_msg_append(*m, buf, len) == 0 ? 0 : -1;
}

static int nngmsg_reserve(void *data, size_t size)
{
    nng_msg **m = data;
    if (nng_msg_alloc(m, size) != 0) return -1;
    nng_msg_clear(*m); /* keeps the capacity */
    return 0;
}

int rli_msg_to_nng(const rl_msg *m, nng_msg **out)
{
    nng_msg *msg = NULL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &msg, nngmsg_write);
    int rv = rli_msg_pack_reserved(&pk, m, nngmsg_reserve);
    if (rv != 0) {
        if (msg != NULL) nng_msg_free(msg);
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
    int rv = rli_tls_config_new(tls, server, url, out);
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
