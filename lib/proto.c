/*
 * proto.c - the message codec, expanded from proto/messages.def.
 *
 * Reading order: the tables (status names, rl_err <-> rl_status, one
 * descriptor per message), the structure scan that runs before msgpack-c
 * sees a byte, the body layer (check, pack, decode, fini, equal) driven by
 * the descriptors, and the frame layer (envelope) on top. No function here
 * knows any particular message.
 */
#include <limits.h>
#include <string.h>

#include "proto_internal.h"
#include "rli.h"
#include "wire.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_IS_LE 1
#else
#define HOST_IS_LE 0
#endif

#define FRAME_ELEMS    7
#define MAX_FIELD      63
#define STATUS_MSG_MAX (sizeof(((rl_msg *)0)->status_msg) - 1)

typedef unsigned long long ull; /* for printf */

/* ==== Tables ============================================================= */

const char *rl_status_name(int status)
{
    switch (status) {
#define RL_STATUS(name, num, text)                                                                 \
    case num:                                                                                      \
        return #name;
#include "status.def"
#undef RL_STATUS
    }
    return "INVALID_STATUS";
}

static const struct {
    int err;
    int status;
    int dir;
} err_status_map[] = {
#define ERR_STATUS_ROW(err, status, dir) {err, RL_STATUS_##status, dir},
    RLI_ERR_STATUS_MAP(ERR_STATUS_ROW)
#undef ERR_STATUS_ROW
};

int rl_status_from_err(int err)
{
    for (size_t i = 0; i < sizeof(err_status_map) / sizeof(err_status_map[0]); i++)
        if ((err_status_map[i].dir & RLI_TO_STATUS) && err_status_map[i].err == err)
            return err_status_map[i].status;
    return RL_STATUS_UNKNOWN;
}

int rl_err_from_status(int status)
{
    for (size_t i = 0; i < sizeof(err_status_map) / sizeof(err_status_map[0]); i++)
        if ((err_status_map[i].dir & RLI_TO_ERR) && err_status_map[i].status == status)
            return err_status_map[i].err;
    return RL_EINTERNAL;
}

/*
 * One case per message. The block-scope typedef lets RLI_FIELD_DESC take
 * offsetof() in the right struct although F() rows do not name it.
 */
const rli_msgdesc *rli_msg_desc(int type)
{
#define FIELD_NUM_CHECK(num, name, TYPE, req)                                                      \
    _Static_assert((num) >= 1 && (num) <= MAX_FIELD, "messages.def: field numbers are 1..63");
#define MSG_DESC_CASE(NAME, num, lname, FIELDS)                                                    \
    case num: {                                                                                    \
        typedef rl_msg_##lname rli_body;                                                           \
        FIELDS(FIELD_NUM_CHECK)                                                                    \
        static const rli_field fields[] = {FIELDS(RLI_FIELD_DESC) RLI_FIELD_END};                  \
        static const rli_msgdesc desc = {                                                          \
            num, #NAME, fields, sizeof(fields) / sizeof(fields[0]) - 1, sizeof(rli_body)};         \
        return &desc;                                                                              \
    }
    switch (type) {
        RL_MESSAGE_LIST(MSG_DESC_CASE)
    }
#undef MSG_DESC_CASE
#undef FIELD_NUM_CHECK
    return NULL;
}

const char *rl_msg_name(int type)
{
    const rli_msgdesc *d = rli_msg_desc(type);
    return d ? d->name : NULL;
}

bool rl_msg_known(int type)
{
    return rli_msg_desc(type) != NULL;
}

const char *rli_ftype_name(rli_ftype t)
{
    switch (t) {
#define FT_NAME(T, name, wire)                                                                     \
    case RLI_FT_##T: return name;
        RLI_FTYPE_LIST(FT_NAME)
#undef FT_NAME
    }
    return "?";
}

/* What the wire must carry for a field type, for error details. */
static const char *ftype_expected(rli_ftype t)
{
    switch (t) {
#define FT_WIRE(T, name, wire)                                                                     \
    case RLI_FT_##T: return wire;
        RLI_FTYPE_LIST(FT_WIRE)
#undef FT_WIRE
    }
    return "?";
}

static const char *mp_type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return "positive integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "negative integer";
    case MSGPACK_OBJECT_FLOAT32:
        return "float32";
    case MSGPACK_OBJECT_FLOAT64:
        return "float64";
    case MSGPACK_OBJECT_STR:
        return "str";
    case MSGPACK_OBJECT_ARRAY:
        return "array";
    case MSGPACK_OBJECT_MAP:
        return "map";
    case MSGPACK_OBJECT_BIN:
        return "bin";
    case MSGPACK_OBJECT_EXT:
        return "ext";
    }
    return "unknown msgpack type";
}

static const rli_field *find_field(const rli_msgdesc *d, uint64_t num)
{
    for (size_t i = 0; i < d->nfields; i++)
        if (d->fields[i].num == num) return &d->fields[i];
    return NULL;
}

/* ==== Structure scan ===================================================== */

static uint64_t read_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int rli_msgpack_scan(const uint8_t *buf, size_t len)
{
    uint64_t left[RLI_PROTO_MAX_DEPTH + 1]; /* objects still to read per open container */
    unsigned depth = 0;
    size_t pos = 0;
    uint64_t objects = 0;

    left[0] = 1; /* the root */
    for (;;) {
        while (left[depth] == 0) {
            if (depth == 0) goto done;
            depth--;
        }
        left[depth]--;
        if (pos >= len)
            return rli_err(RL_EPROTO, "frame: truncated: %zu bytes end inside a container", len);

        uint8_t b = buf[pos];
        uint64_t head = 1, payload = 0, children = 0;
        unsigned lenbytes = 0; /* big-endian length after the type byte */
        enum { SCALAR, BYTES, ARRAY, MAP } kind = SCALAR;

        if (b <= 0x7f || b >= 0xe0) {
            /* fixint */
        } else if (b <= 0x8f) {
            children = 2u * (b & 0x0fu);
        } else if (b <= 0x9f) {
            children = b & 0x0fu;
        } else if (b <= 0xbf) {
            payload = b & 0x1fu;
        } else {
            switch (b) {
            case 0xc0:
            case 0xc2:
            case 0xc3:
                break;
            case 0xc4:
            case 0xc5:
            case 0xc6:
                kind = BYTES;
                lenbytes = 1u << (b - 0xc4);
                break;
            case 0xc7:
            case 0xc8:
            case 0xc9: /* ext: length, type byte, data */
                kind = BYTES;
                lenbytes = 1u << (b - 0xc7);
                head = 2;
                break;
            case 0xca:
                payload = 4;
                break;
            case 0xcb:
                payload = 8;
                break;
            case 0xcc:
            case 0xcd:
            case 0xce:
            case 0xcf:
                payload = 1u << (b - 0xcc);
                break;
            case 0xd0:
            case 0xd1:
            case 0xd2:
            case 0xd3:
                payload = 1u << (b - 0xd0);
                break;
            case 0xd4:
            case 0xd5:
            case 0xd6:
            case 0xd7:
            case 0xd8: /* fixext: type byte + data */
                payload = 1u + (1u << (b - 0xd4));
                break;
            case 0xd9:
            case 0xda:
            case 0xdb:
                kind = BYTES;
                lenbytes = 1u << (b - 0xd9);
                break;
            case 0xdc:
            case 0xdd:
                kind = ARRAY;
                lenbytes = b == 0xdc ? 2 : 4;
                break;
            case 0xde:
            case 0xdf:
                kind = MAP;
                lenbytes = b == 0xde ? 2 : 4;
                break;
            default: /* 0xc1 */
                return rli_err(RL_EPROTO, "frame: byte %zu: 0x%02x is not a msgpack type", pos, b);
            }
        }
        if (lenbytes > 0) {
            if (len - pos - 1 < lenbytes)
                return rli_err(RL_EPROTO, "frame: truncated at byte %zu: %u-byte length cut off",
                               pos, lenbytes);
            uint64_t n = read_be(buf + pos + 1, lenbytes);
            head += lenbytes;
            if (kind == BYTES)
                payload = n;
            else if (kind == ARRAY)
                children = n;
            else
                children = 2 * n;
        }
        if (head > len - pos || payload > len - pos - head)
            return rli_err(RL_EPROTO,
                           "frame: truncated at byte %zu: object of %llu bytes, %zu bytes left",
                           pos, (ull)(head + payload), len - pos);
        pos += head + payload;
        if (++objects > RLI_PROTO_MAX_OBJECTS)
            return rli_err(RL_ETOOBIG, "frame: more than %u msgpack objects",
                           RLI_PROTO_MAX_OBJECTS);
        if (children > 0) {
            /* Every element takes at least one byte: a larger claim is a lie. */
            if (children > len - pos)
                return rli_err(RL_EPROTO,
                               "frame: byte %zu: container claims %llu elements, %zu bytes left",
                               pos, (ull)children, len - pos);
            if (depth == RLI_PROTO_MAX_DEPTH)
                return rli_err(RL_EPROTO, "frame: byte %zu: containers nested deeper than %d", pos,
                               RLI_PROTO_MAX_DEPTH);
            left[++depth] = children;
        }
    }
done:
    if (pos != len)
        return rli_err(RL_EPROTO, "frame: %zu trailing bytes after the message", len - pos);
    return RL_OK;
}

/* ==== Body layer ========================================================= */

#define FIELD_PTR(body, f)  ((char *)(body) + (f)->offset)
#define FIELD_CPTR(body, f) ((const char *)(body) + (f)->offset)
#define HAS_BIT(num)        ((uint64_t)1 << (num))

static size_t list_elem_size(rli_ftype t)
{
    return t == RLI_FT_U32LIST ? sizeof(uint32_t) : sizeof(double);
}

/*
 * The encode presence rule (documented in proto.h): scalars are emitted when
 * their `has` bit is set, or when they are REQ and `require` (status OK);
 * STR, BIN and lists when their pointer is non-NULL.
 */
static bool field_present(const rli_field *f, const void *body, bool require)
{
    const char *p = FIELD_CPTR(body, f);
    uint64_t has = *(const uint64_t *)body;
    switch (f->type) {
    case RLI_FT_U64:
    case RLI_FT_I64:
    case RLI_FT_F64:
    case RLI_FT_BOOL:
        return (f->req && require) || (has & HAS_BIT(f->num)) != 0;
    case RLI_FT_STR:
        return *(char *const *)p != NULL;
    case RLI_FT_BIN:
        return ((const rl_bytes *)p)->ptr != NULL;
    case RLI_FT_STRLIST:
        return ((const rl_strlist *)p)->v != NULL;
    case RLI_FT_U32LIST:
        return ((const rl_u32list *)p)->v != NULL;
    case RLI_FT_F64LIST:
        return ((const rl_f64list *)p)->v != NULL;
    }
    return false;
}

static int too_big(const rli_msgdesc *d, const rli_field *f, const char *what, size_t n)
{
    return rli_err(RL_ETOOBIG, "%s: field %u '%s': %s %zu exceeds the frame limit of %u bytes",
                   d->name, f->num, f->name, what, n, RL_PROTO_MAX_FRAME);
}

int rli_body_check(const rli_msgdesc *d, const void *body, bool require)
{
    for (size_t i = 0; i < d->nfields; i++) {
        const rli_field *f = &d->fields[i];
        const char *p = FIELD_CPTR(body, f);
        size_t n = 0;
        bool null_vector = false;

        if (!field_present(f, body, require)) {
            if (f->req && require)
                return rli_err(RL_EINVAL, "%s: field %u '%s' (%s) is required but not set", d->name,
                               f->num, f->name, rli_ftype_name(f->type));
        }
        switch (f->type) {
        case RLI_FT_STR: {
            const char *s = *(char *const *)p;
            if (s != NULL && (n = strlen(s)) > RL_PROTO_MAX_FRAME)
                return too_big(d, f, "string length", n);
            break;
        }
        case RLI_FT_BIN: {
            const rl_bytes *b = (const rl_bytes *)p;
            null_vector = b->ptr == NULL && b->len > 0;
            if (b->len > RL_PROTO_MAX_FRAME) return too_big(d, f, "length", b->len);
            break;
        }
        case RLI_FT_STRLIST: {
            const rl_strlist *l = (const rl_strlist *)p;
            null_vector = l->v == NULL && l->n > 0;
            if (l->n > RL_PROTO_MAX_FRAME) return too_big(d, f, "count", l->n);
            for (size_t j = 0; l->v != NULL && j < l->n; j++) {
                if (l->v[j] == NULL)
                    return rli_err(RL_EINVAL, "%s: field %u '%s': element %zu is NULL", d->name,
                                   f->num, f->name, j);
                if ((n = strlen(l->v[j])) > RL_PROTO_MAX_FRAME)
                    return too_big(d, f, "string length", n);
            }
            break;
        }
        case RLI_FT_U32LIST: {
            const rl_u32list *l = (const rl_u32list *)p;
            null_vector = l->v == NULL && l->n > 0;
            if (l->n > RL_PROTO_MAX_FRAME / sizeof(uint32_t)) return too_big(d, f, "count", l->n);
            break;
        }
        case RLI_FT_F64LIST: {
            const rl_f64list *l = (const rl_f64list *)p;
            null_vector = l->v == NULL && l->n > 0;
            if (l->n > RL_PROTO_MAX_FRAME / sizeof(double)) return too_big(d, f, "count", l->n);
            break;
        }
        default:
            break;
        }
        if (null_vector)
            return rli_err(RL_EINVAL, "%s: field %u '%s': %s has a NULL pointer but n > 0", d->name,
                           f->num, f->name, rli_ftype_name(f->type));
    }
    return RL_OK;
}

/* msgpack's packers return 0 or the sink's -1: the one place we read that. */
#define PACK(call)                                                                                 \
    do {                                                                                           \
        if ((call) != 0) return RL_ENOMEM;                                                         \
    } while (0)

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    PACK(msgpack_pack_str(pk, n));
    if (n > 0) PACK(msgpack_pack_str_body(pk, s, n));
    return RL_OK;
}

/* Little-endian vector of `n` elements of `size` bytes as one bin. */
static int pack_le_vector(msgpack_packer *pk, const void *v, size_t n, size_t size)
{
    PACK(msgpack_pack_bin(pk, n * size));
    if (n == 0) return RL_OK;
    if (HOST_IS_LE) {
        PACK(msgpack_pack_bin_body(pk, v, n * size));
        return RL_OK;
    }
    /* Big-endian host: swap through a small buffer, still a few large writes. */
    uint8_t tmp[4096];
    const uint8_t *src = v;
    size_t total = n * size, done = 0;
    while (done < total) {
        size_t chunk = total - done < sizeof(tmp) ? total - done : sizeof(tmp);
        for (size_t e = 0; e < chunk; e += size)
            for (size_t k = 0; k < size; k++)
                tmp[e + k] = src[done + e + size - 1 - k];
        PACK(msgpack_pack_bin_body(pk, tmp, chunk));
        done += chunk;
    }
    return RL_OK;
}

static int pack_value(msgpack_packer *pk, const rli_field *f, const char *p)
{
    switch (f->type) {
    case RLI_FT_U64:
        PACK(msgpack_pack_uint64(pk, *(const uint64_t *)p));
        return RL_OK;
    case RLI_FT_I64:
        PACK(msgpack_pack_int64(pk, *(const int64_t *)p));
        return RL_OK;
    case RLI_FT_F64:
        PACK(msgpack_pack_double(pk, *(const double *)p));
        return RL_OK;
    case RLI_FT_BOOL:
        PACK(*(const bool *)p ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
        return RL_OK;
    case RLI_FT_STR:
        return pack_str(pk, *(char *const *)p);
    case RLI_FT_BIN: {
        const rl_bytes *b = (const rl_bytes *)p;
        PACK(msgpack_pack_bin(pk, b->len));
        if (b->len > 0) PACK(msgpack_pack_bin_body(pk, b->ptr, b->len));
        return RL_OK;
    }
    case RLI_FT_STRLIST: {
        const rl_strlist *l = (const rl_strlist *)p;
        PACK(msgpack_pack_array(pk, l->n));
        for (size_t j = 0; j < l->n; j++) {
            int rv = pack_str(pk, l->v[j]);
            if (rv != RL_OK) return rv;
        }
        return RL_OK;
    }
    case RLI_FT_U32LIST: {
        const rl_u32list *l = (const rl_u32list *)p;
        return pack_le_vector(pk, l->v, l->n, sizeof(uint32_t));
    }
    case RLI_FT_F64LIST: {
        const rl_f64list *l = (const rl_f64list *)p;
        return pack_le_vector(pk, l->v, l->n, sizeof(double));
    }
    }
    return RL_EINTERNAL;
}

/* Packs a body that rli_body_check accepted. Returns RL_OK or RL_ENOMEM. */
static int pack_body(msgpack_packer *pk, const rli_msgdesc *d, const void *body, bool require)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nfields; i++)
        if (field_present(&d->fields[i], body, require)) n++;
    PACK(msgpack_pack_map(pk, n));
    for (size_t i = 0; i < d->nfields; i++) {
        const rli_field *f = &d->fields[i];
        if (!field_present(f, body, require)) continue;
        PACK(msgpack_pack_uint64(pk, f->num));
        int rv = pack_value(pk, f, FIELD_CPTR(body, f));
        if (rv != RL_OK) return rv;
    }
    return RL_OK;
}

int rli_body_pack(msgpack_packer *pk, const rli_msgdesc *d, const void *body)
{
    int rv = rli_body_check(d, body, true);
    if (rv != RL_OK) return rv;
    rv = pack_body(pk, d, body, true);
    if (rv != RL_OK) return rli_err(rv, "%s: the msgpack sink failed", d->name);
    return RL_OK;
}

static int wrong_type(const rli_msgdesc *d, const rli_field *f, const msgpack_object *o)
{
    return rli_err(RL_EPROTO, "%s: field %u '%s': expected %s, got %s", d->name, f->num, f->name,
                   ftype_expected(f->type), mp_type_name(o->type));
}

static int no_memory(const rli_msgdesc *d, const rli_field *f, size_t n)
{
    return rli_err(RL_ENOMEM, "%s: field %u '%s': cannot allocate %zu bytes", d->name, f->num,
                   f->name, n);
}

/* A heap copy of a msgpack str, NUL-terminated; refuses embedded NULs. */
static int copy_str(const rli_msgdesc *d, const rli_field *f, const msgpack_object *o, char **out)
{
    uint32_t n = o->via.str.size;
    if (n > 0 && memchr(o->via.str.ptr, '\0', n) != NULL)
        return rli_err(RL_EPROTO, "%s: field %u '%s': string contains a NUL byte", d->name, f->num,
                       f->name);
    char *s = malloc((size_t)n + 1);
    if (s == NULL) return no_memory(d, f, (size_t)n + 1);
    if (n > 0) memcpy(s, o->via.str.ptr, n);
    s[n] = '\0';
    *out = s;
    return RL_OK;
}

/* Copies a bin of little-endian elements out, whatever its alignment. */
static int copy_le_vector(const rli_msgdesc *d, const rli_field *f, const msgpack_object *o,
                          void **v, size_t *n)
{
    size_t size = list_elem_size(f->type), len = o->via.bin.size;
    if (len % size != 0)
        return rli_err(RL_EPROTO,
                       "%s: field %u '%s': bin of %zu bytes is not a whole number of %zu-byte "
                       "values",
                       d->name, f->num, f->name, len, size);
    uint8_t *dst = malloc(len > 0 ? len : 1);
    if (dst == NULL) return no_memory(d, f, len);
    if (len > 0) {
        const uint8_t *src = (const uint8_t *)o->via.bin.ptr;
        if (HOST_IS_LE) {
            memcpy(dst, src, len);
        } else {
            for (size_t e = 0; e < len; e += size)
                for (size_t k = 0; k < size; k++)
                    dst[e + k] = src[e + size - 1 - k];
        }
    }
    *v = dst;
    *n = len / size;
    return RL_OK;
}

static int decode_value(const rli_msgdesc *d, const rli_field *f, const msgpack_object *o, char *p)
{
    switch (f->type) {
    case RLI_FT_U64:
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return wrong_type(d, f, o);
        *(uint64_t *)p = o->via.u64;
        return RL_OK;
    case RLI_FT_I64:
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            *(int64_t *)p = o->via.i64;
        } else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            if (o->via.u64 > INT64_MAX)
                return rli_err(RL_EPROTO, "%s: field %u '%s': %llu is out of range for i64",
                               d->name, f->num, f->name, (ull)o->via.u64);
            *(int64_t *)p = (int64_t)o->via.u64;
        } else {
            return wrong_type(d, f, o);
        }
        return RL_OK;
    case RLI_FT_F64:
        if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
            *(double *)p = o->via.f64;
        else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            *(double *)p = (double)o->via.u64;
        else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            *(double *)p = (double)o->via.i64;
        else
            return wrong_type(d, f, o);
        return RL_OK;
    case RLI_FT_BOOL:
        if (o->type != MSGPACK_OBJECT_BOOLEAN) return wrong_type(d, f, o);
        *(bool *)p = o->via.boolean;
        return RL_OK;
    case RLI_FT_STR:
        if (o->type != MSGPACK_OBJECT_STR) return wrong_type(d, f, o);
        return copy_str(d, f, o, (char **)p);
    case RLI_FT_BIN: {
        /* Borrowed: msgpack_unpack_next leaves bin objects pointing into the
         * input buffer (test_proto checks). A present empty bin still gets a
         * non-NULL pointer so that it is re-encoded as present. */
        static const uint8_t empty_bin[1];
        if (o->type != MSGPACK_OBJECT_BIN) return wrong_type(d, f, o);
        rl_bytes *b = (rl_bytes *)p;
        b->ptr = o->via.bin.ptr != NULL ? (const uint8_t *)o->via.bin.ptr : empty_bin;
        b->len = o->via.bin.size;
        return RL_OK;
    }
    case RLI_FT_STRLIST: {
        if (o->type != MSGPACK_OBJECT_ARRAY) return wrong_type(d, f, o);
        size_t n = o->via.array.size;
        char **v = calloc(n > 0 ? n : 1, sizeof(char *));
        if (v == NULL) return no_memory(d, f, n * sizeof(char *));
        for (size_t j = 0; j < n; j++) {
            const msgpack_object *e = &o->via.array.ptr[j];
            int rv =
                e->type == MSGPACK_OBJECT_STR
                    ? copy_str(d, f, e, &v[j])
                    : rli_err(RL_EPROTO, "%s: field %u '%s': element %zu: expected str, got %s",
                              d->name, f->num, f->name, j, mp_type_name(e->type));
            if (rv != RL_OK) {
                for (size_t k = 0; k < j; k++)
                    free(v[k]);
                free(v);
                return rv;
            }
        }
        ((rl_strlist *)p)->v = v;
        ((rl_strlist *)p)->n = n;
        return RL_OK;
    }
    case RLI_FT_U32LIST:
    case RLI_FT_F64LIST: {
        if (o->type != MSGPACK_OBJECT_BIN) return wrong_type(d, f, o);
        void *v = NULL;
        size_t n = 0;
        int rv = copy_le_vector(d, f, o, &v, &n);
        if (rv != RL_OK) return rv;
        if (f->type == RLI_FT_U32LIST) {
            ((rl_u32list *)p)->v = v;
            ((rl_u32list *)p)->n = n;
        } else {
            ((rl_f64list *)p)->v = v;
            ((rl_f64list *)p)->n = n;
        }
        return RL_OK;
    }
    }
    return RL_EINTERNAL;
}

int rli_body_decode(const rli_msgdesc *d, const msgpack_object *map, bool require, void *body)
{
    uint64_t *has = (uint64_t *)body;
    uint64_t seen = 0;
    int rv = RL_OK;

    memset(body, 0, d->size);
    if (map->type != MSGPACK_OBJECT_MAP)
        return rli_err(RL_EPROTO, "%s: body: expected map, got %s", d->name,
                       mp_type_name(map->type));
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *key = &map->via.map.ptr[i].key;
        const msgpack_object *val = &map->via.map.ptr[i].val;
        if (key->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            rv = rli_err(RL_EPROTO, "%s: body key %u: expected a field number, got %s", d->name, i,
                         mp_type_name(key->type));
            goto fail;
        }
        uint64_t num = key->via.u64;
        if (num < 1 || num > MAX_FIELD) {
            rv = rli_err(RL_EPROTO, "%s: field number %llu is outside 1..%d", d->name, (ull)num,
                         MAX_FIELD);
            goto fail;
        }
        const rli_field *f = find_field(d, num);
        if (seen & HAS_BIT(num)) {
            rv = rli_err(RL_EPROTO, "%s: field %llu '%s' appears twice", d->name, (ull)num,
                         f ? f->name : "(unknown)");
            goto fail;
        }
        seen |= HAS_BIT(num);
        if (f == NULL) continue; /* a newer peer's field: skipped */
        rv = decode_value(d, f, val, FIELD_PTR(body, f));
        if (rv != RL_OK) goto fail;
        *has |= HAS_BIT(num);
    }
    for (size_t i = 0; require && i < d->nfields; i++) {
        const rli_field *f = &d->fields[i];
        if (f->req && !(*has & HAS_BIT(f->num))) {
            rv = rli_err(RL_EPROTO, "%s: field %u '%s' (%s) is required but missing", d->name,
                         f->num, f->name, rli_ftype_name(f->type));
            goto fail;
        }
    }
    return RL_OK;
fail:
    rli_body_fini(d, body);
    return rv;
}

void rli_body_fini(const rli_msgdesc *d, void *body)
{
    for (size_t i = 0; i < d->nfields; i++) {
        const rli_field *f = &d->fields[i];
        char *p = FIELD_PTR(body, f);
        switch (f->type) {
        case RLI_FT_STR:
            free(*(char **)p);
            break;
        case RLI_FT_STRLIST: {
            rl_strlist *l = (rl_strlist *)p;
            for (size_t j = 0; l->v != NULL && j < l->n; j++)
                free(l->v[j]);
            free(l->v);
            break;
        }
        case RLI_FT_U32LIST:
            free(((rl_u32list *)p)->v);
            break;
        case RLI_FT_F64LIST:
            free(((rl_f64list *)p)->v);
            break;
        default:
            break; /* scalars; BIN is borrowed */
        }
    }
    memset(body, 0, d->size);
}

static bool same_null(const void *a, const void *b)
{
    return (a == NULL) == (b == NULL);
}

static bool field_equal(const rli_field *f, const char *pa, const char *pb)
{
    switch (f->type) {
    case RLI_FT_U64:
        return *(const uint64_t *)pa == *(const uint64_t *)pb;
    case RLI_FT_I64:
        return *(const int64_t *)pa == *(const int64_t *)pb;
    case RLI_FT_F64:
        return memcmp(pa, pb, sizeof(double)) == 0;
    case RLI_FT_BOOL:
        return *(const bool *)pa == *(const bool *)pb;
    case RLI_FT_STR: {
        const char *a = *(char *const *)pa, *b = *(char *const *)pb;
        return same_null(a, b) && (a == NULL || strcmp(a, b) == 0);
    }
    case RLI_FT_BIN: {
        const rl_bytes *a = (const rl_bytes *)pa, *b = (const rl_bytes *)pb;
        return same_null(a->ptr, b->ptr) && a->len == b->len &&
               (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
    }
    case RLI_FT_STRLIST: {
        const rl_strlist *a = (const rl_strlist *)pa, *b = (const rl_strlist *)pb;
        if (!same_null(a->v, b->v) || a->n != b->n) return false;
        for (size_t j = 0; j < a->n; j++)
            if (strcmp(a->v[j], b->v[j]) != 0) return false;
        return true;
    }
    case RLI_FT_U32LIST: {
        const rl_u32list *a = (const rl_u32list *)pa, *b = (const rl_u32list *)pb;
        return same_null(a->v, b->v) && a->n == b->n &&
               (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof(uint32_t)) == 0);
    }
    case RLI_FT_F64LIST: {
        const rl_f64list *a = (const rl_f64list *)pa, *b = (const rl_f64list *)pb;
        return same_null(a->v, b->v) && a->n == b->n &&
               (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof(double)) == 0);
    }
    }
    return false;
}

bool rli_body_equal(const rli_msgdesc *d, const void *a, const void *b)
{
    if (*(const uint64_t *)a != *(const uint64_t *)b) return false;
    for (size_t i = 0; i < d->nfields; i++) {
        const rli_field *f = &d->fields[i];
        if (!field_equal(f, FIELD_CPTR(a, f), FIELD_CPTR(b, f))) return false;
    }
    return true;
}

/* ==== Frame layer ======================================================== */

void rl_msg_init(rl_msg *m, rl_msg_type type)
{
    memset(m, 0, sizeof(*m));
    m->version = RL_PROTO_VERSION;
    m->type = type;
}

void rl_msg_fini(rl_msg *m)
{
    const rli_msgdesc *d = rli_msg_desc(m->type);
    if (d != NULL) rli_body_fini(d, &m->u);
    memset(m, 0, sizeof(*m));
}

bool rli_msg_equal(const rl_msg *a, const rl_msg *b)
{
    if (a->version != b->version || a->type != b->type || a->call_id != b->call_id ||
        a->deadline_ms != b->deadline_ms || a->status != b->status ||
        strncmp(a->status_msg, b->status_msg, sizeof(a->status_msg)) != 0)
        return false;
    const rli_msgdesc *d = rli_msg_desc(a->type);
    return d == NULL || rli_body_equal(d, &a->u, &b->u);
}

static int pack_frame(msgpack_packer *pk, const rli_msgdesc *d, const rl_msg *m)
{
    PACK(msgpack_pack_array(pk, FRAME_ELEMS));
    PACK(msgpack_pack_uint32(pk, RL_PROTO_VERSION));
    PACK(msgpack_pack_uint32(pk, (uint32_t)m->type));
    PACK(msgpack_pack_uint64(pk, m->call_id));
    PACK(msgpack_pack_uint64(pk, m->deadline_ms));
    PACK(msgpack_pack_uint32(pk, (uint32_t)m->status));
    int rv = pack_str(pk, m->status_msg);
    if (rv != RL_OK) return rv;
    return pack_body(pk, d, &m->u, m->status == RL_STATUS_OK);
}

/* A sink that only counts, to learn the frame's size before writing it. */
static int count_sink(void *data, const char *buf, size_t len)
{
    (void)buf;
    *(size_t *)data += len;
    return 0;
}

int rli_msg_pack(msgpack_packer *pk, const rl_msg *m)
{
    return rli_msg_pack_reserved(pk, m, NULL);
}

int rli_msg_pack_reserved(msgpack_packer *pk, const rl_msg *m,
                          int (*reserve)(void *data, size_t size))
{
    const rli_msgdesc *d = rli_msg_desc(m->type);
    if (d == NULL)
        return rli_err(RL_EINVAL, "cannot encode message type %d: not in messages.def",
                       (int)m->type);
    if (m->status < 0) return rli_err(RL_EINVAL, "%s: status %d is negative", d->name, m->status);
    if (strnlen(m->status_msg, sizeof(m->status_msg)) > STATUS_MSG_MAX)
        return rli_err(RL_EINVAL, "%s: status_msg is not NUL-terminated", d->name);
    /* An error response may carry an empty or partial body. */
    int rv = rli_body_check(d, &m->u, m->status == RL_STATUS_OK);
    if (rv != RL_OK) return rv;

    size_t size = 0;
    msgpack_packer counter;
    msgpack_packer_init(&counter, &size, count_sink);
    rv = pack_frame(&counter, d, m);
    RL_ASSERT(rv == RL_OK);
    if (size > RL_PROTO_MAX_FRAME)
        return rli_err(RL_ETOOBIG, "%s: frame of %zu bytes exceeds the limit of %u", d->name, size,
                       RL_PROTO_MAX_FRAME);
    if (reserve != NULL && reserve(pk->data, size) != 0)
        return rli_err(RL_ENOMEM, "%s: cannot reserve %zu bytes", d->name, size);

    rv = pack_frame(pk, d, m);
    if (rv != RL_OK) return rli_err(rv, "%s: the msgpack sink failed", d->name);
    return RL_OK;
}

int rl_msg_encode(const rl_msg *m, uint8_t **buf, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    *buf = NULL;
    *len = 0;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rv = rli_msg_pack(&pk, m);
    if (rv != RL_OK) {
        msgpack_sbuffer_destroy(&sb);
        return rv;
    }
    /* Take the sbuffer's malloc'd block (it grows in steps of 2: trim it). */
    size_t size = sb.size;
    char *data = msgpack_sbuffer_release(&sb);
    char *trimmed = realloc(data, size);
    *buf = (uint8_t *)(trimmed != NULL ? trimmed : data);
    *len = size;
    return RL_OK;
}

static int envelope_type(int i, const char *name, const msgpack_object *o, msgpack_object_type t)
{
    if (o->type == t) return RL_OK;
    return rli_err(RL_EPROTO, "frame: element %d '%s': expected %s, got %s", i, name,
                   mp_type_name(t), mp_type_name(o->type));
}

/* Reads the envelope and body of an unpacked frame into a zeroed m. */
static int decode_frame(const msgpack_object *root, rl_msg *m)
{
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size == 0)
        return rli_err(RL_EPROTO, "frame: expected an array [version, type, ...], got %s%s",
                       root->type == MSGPACK_OBJECT_ARRAY ? "an empty " : "",
                       mp_type_name(root->type));
    const msgpack_object *e = root->via.array.ptr;
    uint32_t n = root->via.array.size;
    int rv = envelope_type(0, "version", &e[0], MSGPACK_OBJECT_POSITIVE_INTEGER);
    if (rv != RL_OK) return rv;

    /* Type and call_id first, whatever the version, so a server can answer. */
    uint64_t version = e[0].via.u64;
    m->version = version > UINT32_MAX ? UINT32_MAX : (uint32_t)version;
    if (n > 1 && e[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[1].via.u64 <= INT32_MAX)
        m->type = (rl_msg_type)e[1].via.u64;
    if (n > 2 && e[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER) m->call_id = e[2].via.u64;
    if (version != RL_PROTO_VERSION)
        return rli_err(RL_EVERSION, "frame: protocol version %llu, this build speaks %d",
                       (ull)version, RL_PROTO_VERSION);
    if (n != FRAME_ELEMS)
        return rli_err(RL_EPROTO, "frame: expected %d elements, got %u", FRAME_ELEMS, n);

    if ((rv = envelope_type(1, "type", &e[1], MSGPACK_OBJECT_POSITIVE_INTEGER)) != RL_OK ||
        (rv = envelope_type(2, "call_id", &e[2], MSGPACK_OBJECT_POSITIVE_INTEGER)) != RL_OK ||
        (rv = envelope_type(3, "deadline_ms", &e[3], MSGPACK_OBJECT_POSITIVE_INTEGER)) != RL_OK ||
        (rv = envelope_type(4, "status", &e[4], MSGPACK_OBJECT_POSITIVE_INTEGER)) != RL_OK ||
        (rv = envelope_type(5, "status_msg", &e[5], MSGPACK_OBJECT_STR)) != RL_OK)
        return rv;
    const rli_msgdesc *d = rli_msg_desc(m->type);
    if (e[1].via.u64 > INT32_MAX || d == NULL)
        return rli_err(RL_EPROTO, "frame: unknown message type %llu (call_id %llu)",
                       (ull)e[1].via.u64, (ull)m->call_id);
    if (e[4].via.u64 > INT32_MAX)
        return rli_err(RL_EPROTO, "%s: status %llu is out of range", d->name, (ull)e[4].via.u64);
    uint32_t msg_len = e[5].via.str.size;
    if (msg_len > STATUS_MSG_MAX)
        return rli_err(RL_EPROTO, "%s: status_msg of %u bytes exceeds %zu", d->name, msg_len,
                       STATUS_MSG_MAX);
    if (msg_len > 0 && memchr(e[5].via.str.ptr, '\0', msg_len) != NULL)
        return rli_err(RL_EPROTO, "%s: status_msg contains a NUL byte", d->name);

    int status = (int)e[4].via.u64;
    rv = rli_body_decode(d, &e[6], status == RL_STATUS_OK, &m->u);
    if (rv != RL_OK) return rv;
    m->deadline_ms = e[3].via.u64;
    m->status = status;
    if (msg_len > 0) memcpy(m->status_msg, e[5].via.str.ptr, msg_len);
    m->status_msg[msg_len] = '\0';
    return RL_OK;
}

int rl_msg_decode(const void *buf, size_t len, rl_msg *m)
{
    memset(m, 0, sizeof(*m));
    if (len > RL_PROTO_MAX_FRAME)
        return rli_err(RL_ETOOBIG, "frame: %zu bytes exceed the limit of %u", len,
                       RL_PROTO_MAX_FRAME);
    if (buf == NULL || len == 0) return rli_err(RL_EPROTO, "frame: empty");
    int rv = rli_msgpack_scan(buf, len);
    if (rv != RL_OK) return rv;

    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    msgpack_unpack_return ur = msgpack_unpack_next(&up, buf, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS) {
        rv = rli_err(rli_err_from_msgpack(ur), "frame: msgpack_unpack_next returned %d", (int)ur);
    } else if (off != len) {
        rv = rli_err(RL_EPROTO, "frame: %zu trailing bytes after the message", len - off);
    } else {
        rv = decode_frame(&up.data, m);
    }
    msgpack_unpacked_destroy(&up);
    if (rv != RL_OK) {
        /* Keep only what lets a server answer: version, type, call_id. */
        uint32_t version = m->version;
        rl_msg_type type = m->type;
        uint64_t call_id = m->call_id;
        memset(m, 0, sizeof(*m));
        m->version = version;
        m->type = type;
        m->call_id = call_id;
    }
    return rv;
}
