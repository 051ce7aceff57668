/* err.c - the error list's names and texts, per-thread detail, and the one
 * place where foreign return codes (nng, errno, msgpack) become rl_err codes. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include <msgpack.h>
#include <nng/nng.h>

#include "rli.h"

static _Thread_local char err_detail[512];

const char *rl_strerror(int err)
{
    switch (err) {
#define RL_ERR_TEXT(name, value, text)                                                             \
    case value: return text;
        RL_ERR_LIST(RL_ERR_TEXT)
#undef RL_ERR_TEXT
    }
    return "unknown error";
}

const char *rl_errname(int err)
{
    switch (err) {
#define RL_ERR_NAME(name, value, text)                                                             \
    case value: return #name;
        RL_ERR_LIST(RL_ERR_NAME)
#undef RL_ERR_NAME
    }
    return "RL_E?";
}

const char *rl_errdetail(void)
{
    return err_detail;
}

int rli_err(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_detail, sizeof(err_detail), fmt, ap);
    va_end(ap);
    return err;
}

int rli_err_prefix(int err, const char *fmt, ...)
{
    char old[sizeof(err_detail)];
    char pre[256];
    va_list ap;
    memcpy(old, err_detail, sizeof(old));
    va_start(ap, fmt);
    vsnprintf(pre, sizeof(pre), fmt, ap);
    va_end(ap);
    /* "pre: old detail", cut to fit (pre is under half the buffer). */
    const char *rest = old[0] != '\0' ? old : rl_strerror(err);
    int at = snprintf(err_detail, sizeof(err_detail), "%s: ", pre);
    size_t len = strnlen(rest, sizeof(err_detail) - (size_t)at - 1);
    memcpy(err_detail + at, rest, len);
    err_detail[(size_t)at + len] = '\0';
    return err;
}

int rli_err_from_nng(int rv)
{
    switch (rv) {
    case 0: return RL_OK;
    case NNG_ENOMEM: return RL_ENOMEM;
    case NNG_ETIMEDOUT: return RL_ETIMEDOUT;
    case NNG_ECLOSED:
    case NNG_ECONNRESET:
    case NNG_ECONNSHUT:
    case NNG_ECONNABORTED: return RL_ECLOSED;
    case NNG_ECANCELED: return RL_ECANCELED;
    case NNG_ECONNREFUSED:
    case NNG_EUNREACHABLE:
    case NNG_EADDRINUSE: return RL_EUNAVAIL;
    case NNG_EINVAL:
    case NNG_EADDRINVAL:
    case NNG_ENOTSUP: return RL_EINVAL;
    case NNG_EMSGSIZE: return RL_ETOOBIG;
    case NNG_EPROTO:
    case NNG_EPEERAUTH:
    case NNG_ECRYPTO: return RL_EPROTO;
    case NNG_EPERM: return RL_EPERM;
    case NNG_ENOENT: return RL_ENOTFOUND;
    case NNG_EAGAIN:
    case NNG_ESTATE: return RL_EPRECOND;
    default: return RL_EIO;
    }
}

int rli_err_from_errno(int e)
{
    switch (e) {
    case 0: return RL_OK;
    case ENOMEM: return RL_ENOMEM;
    case ENOENT: return RL_ENOTFOUND;
    case EACCES:
    case EPERM: return RL_EPERM;
    case EEXIST: return RL_EEXIST;
    case EINVAL: return RL_EINVAL;
    case ETIMEDOUT: return RL_ETIMEDOUT;
    default: return RL_EIO;
    }
}

int rli_err_from_msgpack(int rv)
{
    /* msgpack-c's success value is 2, not 0: compare by name only. */
    switch (rv) {
    case MSGPACK_UNPACK_SUCCESS: return RL_OK;
    case MSGPACK_UNPACK_NOMEM_ERROR: return RL_ENOMEM;
    case MSGPACK_UNPACK_EXTRA_BYTES:
    case MSGPACK_UNPACK_CONTINUE:
    case MSGPACK_UNPACK_PARSE_ERROR:
    default: return RL_EPROTO;
    }
}

void rli_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "ringleader: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
