/*
 * proto.h - the wire messages, expanded from proto/messages.def.
 *
 * Every frame on the wire is one msgpack array:
 *   [version, type, call_id, deadline_ms, status, status_msg, body]
 * where body is a map {field number -> value}. See proto/README.md.
 *
 * Ownership: rl_msg_decode fills an rl_msg whose STR / STRLIST / *LIST fields
 * are heap copies owned by the rl_msg (freed by rl_msg_fini), and whose BIN
 * fields borrow from the decoded buffer: they stay valid only while that
 * buffer does.
 *
 * Presence, one rule for both directions:
 *   - encode: a scalar (U64 I64 F64 BOOL) is sent when its `has` bit is set,
 *     and always when it is REQ and status is OK; a STR, BIN or list is sent
 *     when its pointer (the char *, .ptr or .v) is non-NULL, even if empty,
 *     and its `has` bit is ignored. A REQ STR/BIN/list with a NULL pointer
 *     is an error (RL_EINVAL) when status is OK; an error response (status
 *     != OK) may leave any field out, and its decoder then requires none.
 *   - decode: sets the `has` bit of every field present and gives every
 *     present pointer field a non-NULL pointer (also when empty), so a
 *     decoded message re-encodes to the same fields.
 */
#ifndef RINGLEADER_PROTO_H
#define RINGLEADER_PROTO_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RL_PROTO_VERSION 1
/* Frames larger than this are refused by every decoder and receiver. */
#define RL_PROTO_MAX_FRAME (64u * 1024u * 1024u)

/* ---- Status codes (proto/status.def) ---------------------------------- */
typedef enum rl_status {
#define RL_STATUS(name, num, text) RL_STATUS_##name = num,
#include "status.def"
#undef RL_STATUS
} rl_status;

/* "DEADLINE_EXCEEDED"; never NULL. */
RL_API const char *rl_status_name(int status);
/* The status an rl_err maps to, and back (one table, in lib/proto.c). */
RL_API int rl_status_from_err(int err);
RL_API int rl_err_from_status(int status);

/* ---- Field value types -------------------------------------------------- */
typedef struct rl_bytes {
    const uint8_t *ptr; /* borrowed */
    size_t len;
} rl_bytes;
typedef struct rl_strlist {
    char **v; /* owned */
    size_t n;
} rl_strlist;
typedef struct rl_u32list {
    uint32_t *v; /* owned */
    size_t n;
} rl_u32list;
typedef struct rl_f64list {
    double *v; /* owned */
    size_t n;
} rl_f64list;

#define RL_CTYPE_U64 uint64_t
#define RL_CTYPE_I64 int64_t
#define RL_CTYPE_F64 double
#define RL_CTYPE_BOOL bool
#define RL_CTYPE_STR char *
#define RL_CTYPE_BIN rl_bytes
#define RL_CTYPE_STRLIST rl_strlist
#define RL_CTYPE_U32LIST rl_u32list
#define RL_CTYPE_F64LIST rl_f64list

#include "messages.def"

/* ---- Message types ------------------------------------------------------ */
typedef enum rl_msg_type {
    RL_MSG_NONE = 0,
#define RL_MSG_ENUM(NAME, num, lname, FIELDS) RL_MSG_##NAME = num,
    RL_MESSAGE_LIST(RL_MSG_ENUM)
#undef RL_MSG_ENUM
} rl_msg_type;

/* One struct per message; `has` has bit n set when field n was present. */
#define RL_FIELD_DECL(num, name, TYPE, req) RL_CTYPE_##TYPE name;
#define RL_MSG_STRUCT(NAME, num, lname, FIELDS)                                                    \
    typedef struct rl_msg_##lname {                                                                \
        uint64_t has;                                                                              \
        FIELDS(RL_FIELD_DECL)                                                                      \
    } rl_msg_##lname;
RL_MESSAGE_LIST(RL_MSG_STRUCT)
#undef RL_MSG_STRUCT
#undef RL_FIELD_DECL

#define RL_HAS(body, fieldnum) (((body)->has >> (fieldnum)) & 1u)

/*
 * Field numbers by name, generated from the same list, so that code never
 * numbers a presence bit by hand: RL_FIELD_NUM(heartbeat_req, step) is the
 * number of field `step` of HEARTBEAT_REQ, a compile-time constant; a
 * misspelt message or field does not compile. (Each message gets a struct
 * rl_fnum_<lname> whose member for field n is a char[n + 1]; only its
 * sizeof is ever used.)
 *   RL_HAS_FIELD(body, lname, field)  the field was present (decoded)
 *   RL_SET_FIELD(body, lname, field)  mark a scalar field for encoding
 */
#define RL_FNUM_MEMBER(num, name, TYPE, req) char name[(num) + 1];
#define RL_MSG_FNUMS(NAME, num, lname, FIELDS)                                                     \
    struct rl_fnum_##lname {                                                                       \
        char rl_no_field_;                                                                         \
        FIELDS(RL_FNUM_MEMBER)                                                                     \
    };
RL_MESSAGE_LIST(RL_MSG_FNUMS)
#undef RL_MSG_FNUMS
#undef RL_FNUM_MEMBER
#define RL_FIELD_NUM(lname, field) ((int)sizeof(((struct rl_fnum_##lname *)0)->field) - 1)
#define RL_FIELD_BIT(lname, field) (1ull << RL_FIELD_NUM(lname, field))
#define RL_HAS_FIELD(body, lname, field) (((body)->has & RL_FIELD_BIT(lname, field)) != 0)
#define RL_SET_FIELD(body, lname, field) ((body)->has |= RL_FIELD_BIT(lname, field))

/* A whole frame: the envelope and one body. */
typedef struct rl_msg {
    uint32_t version;
    rl_msg_type type;
    uint64_t call_id;
    uint64_t deadline_ms; /* time the sender allows, relative; 0 = none */
    int status;           /* rl_status */
    char status_msg[256];
    union {
#define RL_MSG_UNION(NAME, num, lname, FIELDS) rl_msg_##lname lname;
        RL_MESSAGE_LIST(RL_MSG_UNION)
#undef RL_MSG_UNION
    } u;
} rl_msg;

/* Zeroes m and sets version and type. */
RL_API void rl_msg_init(rl_msg *m, rl_msg_type type);
/* Frees what m owns (strings, lists) and zeroes it. Safe on a zeroed msg. */
RL_API void rl_msg_fini(rl_msg *m);

/* "JOIN_REQ" for a known type, NULL for an unknown one. */
RL_API const char *rl_msg_name(int type);
/* True if the type is in the list. */
RL_API bool rl_msg_known(int type);

/*
 * Encodes m into a new heap buffer (*buf, *len), which the caller frees with
 * free(); on error *buf is NULL and nothing is allocated. Always writes
 * RL_PROTO_VERSION, whatever m->version says. Fails with RL_EINVAL if a REQ
 * field is missing while status is OK (see "Presence" above), the type is
 * unknown, status is
 * negative, status_msg is not NUL-terminated or a list has n > 0 with a NULL
 * vector; RL_ETOOBIG if the frame would exceed RL_PROTO_MAX_FRAME; RL_ENOMEM
 * if the buffer cannot grow. (RPC and the ring use the internal streaming
 * encoder in lib/wire.h, which avoids this copy.)
 */
RL_API int rl_msg_encode(const rl_msg *m, uint8_t **buf, size_t *len);

/*
 * Decodes exactly one frame from buf[0..len). Every byte must be consumed.
 * On error returns RL_EPROTO (malformed, wrong type, missing field, unknown
 * message type, trailing bytes, a string with a NUL byte, a status_msg over
 * 255 bytes: it is refused, not truncated), RL_EVERSION (unsupported protocol
 * version), RL_ETOOBIG (len > RL_PROTO_MAX_FRAME, or more than 2^20 msgpack
 * objects) or RL_ENOMEM, sets rl_errdetail() to say what and where (message,
 * field number and name), and leaves m zeroed apart from version, type and
 * call_id, which are filled when readable so that a server can answer:
 * nothing to free. Unknown field numbers (1..63) are skipped.
 * If the status is not OK, the body may be empty and no field is required.
 */
RL_API int rl_msg_decode(const void *buf, size_t len, rl_msg *m);

#ifdef __cplusplus
}
#endif
#endif
