/*
 * wire.h - internal msgpack glue shared by proto.c, rpc and the ring.
 */
#ifndef RINGLEADER_WIRE_H
#define RINGLEADER_WIRE_H

#include <msgpack.h>

#include "ringleader/proto.h"

/*
 * Packs the whole frame m into pk (any msgpack_packer sink: an sbuffer, an
 * nng_msg, an iovec builder). Returns RL_OK, RL_EINVAL if a REQ field is
 * missing or the type is unknown (see rl_msg_encode), RL_ETOOBIG if the frame
 * would exceed RL_PROTO_MAX_FRAME (checked with a counting pass before
 * anything reaches pk), or RL_ENOMEM if the sink failed, in which case pk
 * holds a partial frame that the caller discards.
 */
int rli_msg_pack(msgpack_packer *pk, const rl_msg *m);
/* The same, first telling reserve(pk->data, size) the frame's size so that
 * a growing sink allocates once (a failure is RL_ENOMEM). */
int rli_msg_pack_reserved(msgpack_packer *pk, const rl_msg *m,
                          int (*reserve)(void *data, size_t size));

#endif
