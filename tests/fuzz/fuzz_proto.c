/*
 * fuzz_proto.c - libFuzzer harness for the message codec.
 *
 * Any input must decode to RL_OK or a documented error, never crash or
 * leak. Whatever decodes must re-encode, decode again to an equal message,
 * and re-encode to the same bytes (the canonical form is a fixed point).
 * A BATCH's frames are walked the way the RPC server and client walk them,
 * each call decoded (and re-checked) in turn.
 * Seeds: tests/fuzz/corpus/fuzz_proto/, written by `test_proto --write-corpus`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto_internal.h"
#include "rli.h"
#include "rpc_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_batch(const rl_msg *m)
{
    const rl_bytes *frames;
    uint64_t count;
    if (m->type == RL_MSG_BATCH_REQ) {
        frames = &m->u.batch_req.frames;
        count = m->u.batch_req.count;
    } else if (m->type == RL_MSG_BATCH_RESP) {
        frames = &m->u.batch_resp.frames;
        count = m->u.batch_resp.count;
    } else {
        return;
    }
    if (rli_batch_check(frames, count) != RL_OK) return;
    size_t off = 0;
    for (uint64_t i = 0; i < count; i++) {
        rl_bytes f = rli_batch_next(frames, &off);
        if (f.ptr < frames->ptr || f.ptr + f.len > frames->ptr + frames->len) abort();
        rl_msg sub;
        (void)rl_msg_decode(f.ptr, f.len, &sub);
        rl_msg_fini(&sub);
    }
    if (off != frames->len) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_msg m, m2;
    uint8_t *enc = NULL, *enc2 = NULL;
    size_t len = 0, len2 = 0;

    int rv = rl_msg_decode(data, size, &m);
    if (rv != RL_OK) {
        if (rv != RL_EPROTO && rv != RL_EVERSION && rv != RL_ETOOBIG && rv != RL_ENOMEM) abort();
        rl_msg_fini(&m);
        return 0;
    }
    walk_batch(&m);
    if (rl_msg_encode(&m, &enc, &len) != RL_OK) abort();
    if (rl_msg_decode(enc, len, &m2) != RL_OK) abort();
    if (!rli_msg_equal(&m, &m2)) abort();
    if (rl_msg_encode(&m2, &enc2, &len2) != RL_OK) abort();
    if (len != len2 || memcmp(enc, enc2, len) != 0) abort();
    rl_msg_fini(&m2); /* before enc: its BIN fields borrow from it */
    rl_msg_fini(&m);
    free(enc);
    free(enc2);
    return 0;
}
