/*
 * err.h - the one error convention of Ringleader.
 *
 * Every function that can fail returns an int: 0 (RL_OK) on success, or a
 * positive RL_E* code from the list below. A human-readable detail (which
 * file, line, peer, epoch, step ...) is kept per thread and read with
 * rl_errdetail() right after the failing call. Foreign return codes (nng,
 * libyaml, msgpack, errno) are converted in exactly one place: lib/err.c.
 */
#ifndef RINGLEADER_ERR_H
#define RINGLEADER_ERR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The list, defined once: X(NAME, value, text). */
#define RL_ERR_LIST(X)                                                          \
    X(RL_OK, 0, "ok")                                                           \
    X(RL_EINVAL, 1, "invalid argument")                                         \
    X(RL_ENOMEM, 2, "out of memory")                                            \
    X(RL_ETIMEDOUT, 3, "deadline exceeded")                                     \
    X(RL_ECLOSED, 4, "connection or object closed")                             \
    X(RL_ECANCELED, 5, "operation canceled")                                    \
    X(RL_EPROTO, 6, "malformed or unexpected message")                          \
    X(RL_EVERSION, 7, "unsupported protocol version")                           \
    X(RL_EAUTH, 8, "authentication failed")                                     \
    X(RL_EPERM, 9, "permission denied")                                         \
    X(RL_ENOTFOUND, 10, "not found")                                            \
    X(RL_EEXIST, 11, "already exists")                                          \
    X(RL_EIO, 12, "input/output error")                                         \
    X(RL_ECONFIG, 13, "invalid configuration")                                  \
    X(RL_ESTALE, 14, "stale epoch or sequence")                                 \
    X(RL_EPEER, 15, "peer failed")                                              \
    X(RL_ETOOBIG, 16, "message or value too large")                             \
    X(RL_EUNAVAIL, 17, "service unavailable")                                   \
    X(RL_EDATA, 18, "bad input data")                                           \
    X(RL_ECOVERAGE, 19, "coverage violation")                                   \
    X(RL_EPRECOND, 20, "failed precondition")                                   \
    X(RL_EINTERNAL, 21, "internal error")                                       \
    X(RL_EREPLAN, 22, "membership or blocks changed: redo the step")

enum rl_err {
#define RL_ERR_ENUM(name, value, text) name = value,
    RL_ERR_LIST(RL_ERR_ENUM)
#undef RL_ERR_ENUM
};

/* Short text for a code ("deadline exceeded"); never NULL. */
RL_API const char *rl_strerror(int err);

/* Symbolic name for a code ("RL_ETIMEDOUT"); never NULL. */
RL_API const char *rl_errname(int err);

/*
 * The detail of the last error set on this thread, e.g.
 * "allreduce: peer n3 (rank 2) closed during reduce-scatter, epoch 4, seq 17".
 * Valid until the next failing call on this thread. Never NULL ("" if none).
 */
RL_API const char *rl_errdetail(void);

#ifdef __cplusplus
}
#endif
#endif
