/*
 * proto_internal.h - the codec's tables and its table-driven core, shared by
 * lib/proto.c and the tests and fuzz harness (never installed).
 *
 * Every message of proto/messages.def has one rli_msgdesc: its name and a
 * table of rli_field rows (number, name, type, REQ/OPT, offset in the body
 * struct), generated from the FIELDS list. The encoder, decoder, fini and
 * comparer below walk that table; no code is written per message.
 */
#ifndef RINGLEADER_PROTO_INTERNAL_H
#define RINGLEADER_PROTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "ringleader/proto.h"

/* Decoder limits beyond RL_PROTO_MAX_FRAME, checked before msgpack-c
 * allocates anything (see rli_msgpack_scan). Our frames nest 3 deep. */
#define RLI_PROTO_MAX_DEPTH   16
#define RLI_PROTO_MAX_OBJECTS (1u << 20)

/* Field value types: one per TYPE word of messages.def. */
/* The field types, once: X(TYPE, name, what the wire must carry). */
#define RLI_FTYPE_LIST(X)                                                                          \
    X(U64, "u64", "unsigned integer")                                                              \
    X(I64, "i64", "integer")                                                                       \
    X(F64, "f64", "float or integer")                                                              \
    X(BOOL, "bool", "bool")                                                                        \
    X(STR, "str", "str")                                                                           \
    X(BIN, "bin", "bin")                                                                           \
    X(STRLIST, "strlist", "array of str")                                                          \
    X(U32LIST, "u32list", "bin of little-endian u32")                                              \
    X(F64LIST, "f64list", "bin of little-endian f64")

typedef enum rli_ftype {
#define RLI_FT_ENUM(T, name, wire) RLI_FT_##T,
    RLI_FTYPE_LIST(RLI_FT_ENUM)
#undef RLI_FT_ENUM
} rli_ftype;

#define RLI_REQ_REQ true
#define RLI_REQ_OPT false

/* One field of one message. num 0 ends a table. */
typedef struct rli_field {
    unsigned num; /* 1..63, the bit in `has` */
    rli_ftype type;
    bool req;
    const char *name;
    size_t offset; /* offsetof(body struct, name) */
} rli_field;

/* One message: every body struct starts with `uint64_t has`. */
typedef struct rli_msgdesc {
    int type;
    const char *name;        /* "JOIN_REQ" */
    const rli_field *fields; /* in the order of messages.def, ends with num 0 */
    size_t nfields;
    size_t size; /* sizeof the body struct */
} rli_msgdesc;

/*
 * Expands one F(num, name, TYPE, REQ|OPT) row into an rli_field initialiser.
 * Use it in a scope where the typedef name rli_body is the body struct:
 *     typedef rl_msg_join_req rli_body;
 *     static const rli_field f[] = {RL_FIELDS_JOIN_REQ(RLI_FIELD_DESC) RLI_FIELD_END};
 */
#define RLI_FIELD_DESC(num, name, TYPE, req)                                                       \
    {(num), RLI_FT_##TYPE, RLI_REQ_##req, #name, offsetof(rli_body, name)},
#define RLI_FIELD_END                                                                              \
    {                                                                                              \
        0, RLI_FT_U64, false, NULL, 0                                                              \
    }

/* The descriptor of a message type from messages.def, NULL if unknown.
 * Descriptors are static: valid for the life of the program. */
const rli_msgdesc *rli_msg_desc(int type);

/* "u64", "str", "u32list" ... for messages. */
const char *rli_ftype_name(rli_ftype t);

/*
 * The body layer, usable with any descriptor (the tests build one for a
 * struct that holds every field type). `body` points at the body struct.
 *
 * rli_body_check: RL_OK, RL_EINVAL naming the first REQ field that is
 *   missing (if `require`) or a field whose value cannot be encoded (n > 0
 *   with a NULL vector, a NULL string in a list), or RL_ETOOBIG for a single
 *   value larger than RL_PROTO_MAX_FRAME.
 * rli_body_pack: checks (with require), then packs the body map into pk.
 *   RL_ENOMEM if the sink fails (pk then holds a partial map: discard it).
 * rli_body_decode: fills a zeroed body from a msgpack map. If `require` is
 *   set, every REQ field must be present. On error frees what it allocated
 *   and leaves the body zeroed. BIN values point into the msgpack object's
 *   buffer. Details name the message, field number and field name.
 * rli_body_fini: frees STR, STRLIST, U32LIST and F64LIST values (not BIN,
 *   which is borrowed) and zeroes the body.
 * rli_body_equal: same `has` and every field equal (strings and lists by
 *   content, BIN by bytes, F64 bit for bit).
 */
int rli_body_check(const rli_msgdesc *d, const void *body, bool require);
int rli_body_pack(msgpack_packer *pk, const rli_msgdesc *d, const void *body);
int rli_body_decode(const rli_msgdesc *d, const msgpack_object *map, bool require, void *body);
void rli_body_fini(const rli_msgdesc *d, void *body);
bool rli_body_equal(const rli_msgdesc *d, const void *a, const void *b);

/* Envelope and body equal (m->type selects the union member). */
bool rli_msg_equal(const rl_msg *a, const rl_msg *b);

/*
 * Walks the msgpack encoding in buf[0..len) without allocating: exactly one
 * object, every byte used, no container claiming more elements than bytes
 * remain, nesting at most RLI_PROTO_MAX_DEPTH, at most RLI_PROTO_MAX_OBJECTS
 * objects. Runs before msgpack_unpack_next, which would otherwise try to
 * allocate 2^32 elements for a 5-byte "array32 of 4294967295" header.
 * Returns RL_OK, RL_EPROTO or RL_ETOOBIG (too many objects), with a detail
 * giving the byte offset.
 */
int rli_msgpack_scan(const uint8_t *buf, size_t len);

/*
 * The one table between rl_err and rl_status:
 *     X(RL_E..., STATUS, direction)
 * direction RLI_BOTH: err -> status and status -> err;
 *           RLI_TO_STATUS: only err -> status (several errors share a status);
 *           RLI_TO_ERR: only status -> err.
 * Every rl_err has one row with RLI_BOTH or RLI_TO_STATUS; every status has
 * at most one row with RLI_BOTH or RLI_TO_ERR (test_proto checks both).
 * Unlisted errors map to UNKNOWN, unlisted statuses to RL_EINTERNAL.
 */
#define RLI_ERR_STATUS_MAP(X)                                                                      \
    X(RL_OK, OK, RLI_BOTH)                                                                         \
    X(RL_EINVAL, INVALID_ARGUMENT, RLI_BOTH)                                                       \
    X(RL_ECONFIG, INVALID_ARGUMENT, RLI_TO_STATUS)                                                 \
    X(RL_EDATA, INVALID_ARGUMENT, RLI_TO_STATUS)                                                   \
    X(RL_EPROTO, INVALID_ARGUMENT, RLI_TO_STATUS)                                                  \
    X(RL_EINVAL, OUT_OF_RANGE, RLI_TO_ERR)                                                         \
    X(RL_ETIMEDOUT, DEADLINE_EXCEEDED, RLI_BOTH)                                                   \
    X(RL_ENOTFOUND, NOT_FOUND, RLI_BOTH)                                                           \
    X(RL_EEXIST, ALREADY_EXISTS, RLI_BOTH)                                                         \
    X(RL_EPERM, PERMISSION_DENIED, RLI_BOTH)                                                       \
    X(RL_EAUTH, UNAUTHENTICATED, RLI_BOTH)                                                         \
    X(RL_ENOMEM, RESOURCE_EXHAUSTED, RLI_BOTH)                                                     \
    X(RL_ETOOBIG, RESOURCE_EXHAUSTED, RLI_TO_STATUS)                                               \
    X(RL_EPRECOND, FAILED_PRECONDITION, RLI_BOTH)                                                  \
    X(RL_ESTALE, ABORTED, RLI_BOTH)                                                                \
    X(RL_EREPLAN, FAILED_PRECONDITION, RLI_TO_STATUS)                                              \
    X(RL_ECANCELED, CANCELLED, RLI_BOTH)                                                           \
    X(RL_EUNAVAIL, UNAVAILABLE, RLI_BOTH)                                                          \
    X(RL_ECLOSED, UNAVAILABLE, RLI_TO_STATUS)                                                      \
    X(RL_EPEER, UNAVAILABLE, RLI_TO_STATUS)                                                        \
    X(RL_EVERSION, UNIMPLEMENTED, RLI_BOTH)                                                        \
    X(RL_ECOVERAGE, DATA_LOSS, RLI_BOTH)                                                           \
    X(RL_EINTERNAL, INTERNAL, RLI_BOTH)                                                            \
    X(RL_EIO, INTERNAL, RLI_TO_STATUS)                                                             \
    X(RL_EINTERNAL, UNKNOWN, RLI_TO_ERR)

enum { RLI_BOTH = 3, RLI_TO_STATUS = 1, RLI_TO_ERR = 2 };

#endif
