/*
 * test_proto.c - the message codec, walked over every message of
 * proto/messages.def: a message added there is round-tripped, truncated,
 * mutated and type-checked here without touching this file.
 *
 *   test_proto                          runs the Check suite (fork mode)
 *   test_proto --write-corpus DIR       writes one valid frame per message
 *                                       into DIR (the fuzzer's seed corpus)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto_internal.h"
#include "rli.h"
#include "rpc_internal.h"
#include "testutil.h"
#include "wire.h"

/* ==== The message list, walked ========================================== */

static const int all_types[] = {
#define TYPE_ROW(NAME, num, lname, FIELDS) RL_MSG_##NAME,
    RL_MESSAGE_LIST(TYPE_ROW)
#undef TYPE_ROW
};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

/* A body struct holding every field type, with a descriptor built by the
 * same macros as the real ones: covers types no message uses yet. */
#define ALL_FIELDS(F)                                                                              \
    F(1, u, U64, REQ)                                                                              \
    F(2, i, I64, REQ)                                                                              \
    F(3, f, F64, OPT)                                                                              \
    F(4, b, BOOL, OPT)                                                                             \
    F(5, s, STR, OPT)                                                                              \
    F(6, bin, BIN, OPT)                                                                            \
    F(7, sl, STRLIST, REQ)                                                                         \
    F(8, ul, U32LIST, OPT)                                                                         \
    F(9, fl, F64LIST, OPT)                                                                         \
    F(63, last, U64, OPT)
#define ALL_FIELD_DECL(num, name, TYPE, req) RL_CTYPE_##TYPE name;
typedef struct all_body {
    uint64_t has;
    ALL_FIELDS(ALL_FIELD_DECL)
} all_body;

static const rli_msgdesc *all_desc(void)
{
    typedef all_body rli_body;
    static const rli_field fields[] = {ALL_FIELDS(RLI_FIELD_DESC) RLI_FIELD_END};
    static const rli_msgdesc d = {9999, "ALL_TYPES", fields, sizeof(fields) / sizeof(fields[0]) - 1,
                                  sizeof(all_body)};
    return &d;
}

/* ==== A generic filler driven by the field table ========================= */

static uint8_t bin_pool[512];

/* The filler also runs outside Check (--write-corpus), where ck_assert may
 * not be called even when it passes: plain checks that abort. */
#define NEED(cond)                                                                                 \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    NEED(p != NULL);
    return p;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    NEED(p != NULL);
    return p;
}

/* Fills every field (or only the REQ ones) with a deterministic value that
 * depends on the message, the field and the seed. Heap values are owned by
 * the body (rli_body_fini frees them); BIN points into bin_pool. */
static void fill_body(const rli_msgdesc *d, void *body, unsigned seed, bool with_opt)
{
    uint64_t *has = body;
    for (size_t i = 0; i < sizeof(bin_pool); i++)
        bin_pool[i] = (uint8_t)(i * 37u + 11u);
    memset(body, 0, d->size);
    for (size_t i = 0; i < d->nfields; i++) {
        const rli_field *f = &d->fields[i];
        char *p = (char *)body + f->offset;
        uint64_t k = (uint64_t)d->type * 1000u + f->num * 10u + seed;
        char text[128];
        if (!f->req && !with_opt) continue;
        *has |= (uint64_t)1 << f->num;
        switch (f->type) {
        case RLI_FT_U64:
            *(uint64_t *)p = 0x8000000000000000ull | (k * 0x9E3779B97F4A7C15ull);
            break;
        case RLI_FT_I64:
            *(int64_t *)p = -(int64_t)(k << 32) - 7;
            break;
        case RLI_FT_F64:
            *(double *)p = -1234.5625 * (double)f->num + (double)k / 1024.0;
            break;
        case RLI_FT_BOOL:
            *(bool *)p = true;
            break;
        case RLI_FT_STR:
            snprintf(text, sizeof(text), "%s.%s #%u caf\xc3\xa9", d->name, f->name, seed);
            *(char **)p = xstrdup(text);
            break;
        case RLI_FT_BIN: {
            rl_bytes *b = (rl_bytes *)p;
            b->ptr = bin_pool + f->num;
            b->len = 16u + f->num * 3u + seed % 5u;
            break;
        }
        case RLI_FT_STRLIST: {
            rl_strlist *l = (rl_strlist *)p;
            l->n = 3;
            l->v = xmalloc(3 * sizeof(char *));
            l->v[0] = xstrdup("alpha");
            l->v[1] = xstrdup("");
            snprintf(text, sizeof(text), "\xce\xb3-%s-%u", f->name, seed);
            l->v[2] = xstrdup(text);
            break;
        }
        case RLI_FT_U32LIST: {
            static const uint32_t vals[] = {0, 1, 0xdeadbeefu, 0xffffffffu, 65536u};
            rl_u32list *l = (rl_u32list *)p;
            l->n = 5;
            l->v = xmalloc(sizeof(vals));
            memcpy(l->v, vals, sizeof(vals));
            l->v[1] = (uint32_t)k;
            break;
        }
        case RLI_FT_F64LIST: {
            static const double vals[] = {-0.0, 1e-300, -2.5, 0.125};
            rl_f64list *l = (rl_f64list *)p;
            l->n = 4;
            l->v = xmalloc(sizeof(vals));
            memcpy(l->v, vals, sizeof(vals));
            l->v[3] += (double)k;
            break;
        }
        }
    }
}

static void fill_msg(rl_msg *m, int type, unsigned seed, bool with_opt)
{
    const rli_msgdesc *d = rli_msg_desc(type);
    NEED(d != NULL);
    rl_msg_init(m, (rl_msg_type)type);
    m->call_id = 0x0123456789abcdefull ^ (uint64_t)type ^ seed;
    m->deadline_ms = 30000u + seed;
    fill_body(d, &m->u, seed, with_opt);
}

static void encode_ok(const rl_msg *m, uint8_t **buf, size_t *len)
{
    int rv = rl_msg_encode(m, buf, len);
    ck_assert_msg(rv == RL_OK, "encode %s: %s: %s", rl_msg_name(m->type), rl_errname(rv),
                  rl_errdetail());
}

/* Encodes the fully filled message of a type. Caller frees. */
static void full_frame(int type, uint8_t **buf, size_t *len)
{
    rl_msg m;
    fill_msg(&m, type, 1, true);
    encode_ok(&m, buf, len);
    rl_msg_fini(&m);
}

static bool body_is_zero(const rl_msg *m)
{
    static const rl_msg zero;
    return memcmp(&m->u, &zero.u, sizeof(m->u)) == 0 && m->status == 0 && m->deadline_ms == 0 &&
           m->status_msg[0] == '\0';
}

/* The `has` mask of whatever body m carries (every body starts with it). */
static uint64_t msg_has(const rl_msg *m)
{
    uint64_t has;
    memcpy(&has, &m->u, sizeof(has));
    return has;
}

static bool contains(const void *hay, size_t n, const void *needle, size_t k)
{
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp((const char *)hay + i, needle, k) == 0) return true;
    return false;
}

static void assert_detail_has(const char *what)
{
    ck_assert_msg(strstr(rl_errdetail(), what) != NULL, "detail '%s' lacks '%s'", rl_errdetail(),
                  what);
}

/* ==== Frame surgery through msgpack-c ==================================== */

enum edit_op { EDIT_DROP, EDIT_REPLACE, EDIT_ADD };

/* Re-packs a valid frame with its body edited: field `num` dropped,
 * replaced by `val`, or `val` added under `num` (after the others). */
static void edit_frame(const uint8_t *in, size_t len, enum edit_op op, uint64_t num,
                       const msgpack_object *val, msgpack_sbuffer *out)
{
    msgpack_unpacked up;
    msgpack_packer pk;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, (const char *)in, len, &off), MSGPACK_UNPACK_SUCCESS);
    msgpack_sbuffer_init(out);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    const msgpack_object *e = up.data.via.array.ptr;
    msgpack_pack_array(&pk, 7);
    for (int i = 0; i < 6; i++)
        msgpack_pack_object(&pk, e[i]);
    const msgpack_object_map *body = &e[6].via.map;
    uint32_t n = body->size;
    bool found = false;
    for (uint32_t i = 0; i < n; i++)
        found |= body->ptr[i].key.via.u64 == num;
    ck_assert(op == EDIT_ADD || found);
    msgpack_pack_map(&pk, op == EDIT_ADD ? n + 1 : op == EDIT_DROP ? n - 1 : n);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object_kv *kv = &body->ptr[i];
        if (kv->key.via.u64 == num && op == EDIT_DROP) continue;
        msgpack_pack_object(&pk, kv->key);
        msgpack_pack_object(&pk, kv->key.via.u64 == num && op == EDIT_REPLACE ? *val : kv->val);
    }
    if (op == EDIT_ADD) {
        msgpack_pack_uint64(&pk, num);
        msgpack_pack_object(&pk, *val);
    }
    msgpack_unpacked_destroy(&up);
}

static int decode_sbuf(const msgpack_sbuffer *sb, rl_msg *m)
{
    return rl_msg_decode(sb->data, sb->size, m);
}

/* Starts a hand-made frame: array header and the six envelope elements. */
static msgpack_packer *raw_envelope(msgpack_sbuffer *sb, msgpack_packer *pk, uint64_t version,
                                    uint64_t type, uint64_t call_id, uint64_t status,
                                    const char *status_msg, size_t status_len)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint64(pk, version);
    msgpack_pack_uint64(pk, type);
    msgpack_pack_uint64(pk, call_id);
    msgpack_pack_uint64(pk, 1000);
    msgpack_pack_uint64(pk, status);
    msgpack_pack_str(pk, status_len);
    msgpack_pack_str_body(pk, status_msg, status_len);
    return pk;
}

/* ==== Tests ============================================================== */

START_TEST(descriptors_follow_the_list)
{
    for (size_t t = 0; t < NTYPES; t++) {
        const rli_msgdesc *d = rli_msg_desc(all_types[t]);
        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(d->type, all_types[t]);
        ck_assert_str_eq(rl_msg_name(all_types[t]), d->name);
        ck_assert(rl_msg_known(all_types[t]));
        ck_assert_uint_eq(d->fields[d->nfields].num, 0);
        for (size_t i = 0; i < d->nfields; i++) {
            ck_assert_uint_ge(d->fields[i].num, 1);
            ck_assert_uint_le(d->fields[i].num, 63);
            ck_assert_ptr_nonnull(d->fields[i].name);
            if (i > 0)
                ck_assert_msg(d->fields[i].num > d->fields[i - 1].num,
                              "%s: fields not in increasing number order", d->name);
        }
    }
    ck_assert(!rl_msg_known(0));
    ck_assert(!rl_msg_known(999));
    ck_assert_ptr_null(rl_msg_name(999));
    ck_assert_ptr_null(rli_msg_desc(-1));
}
END_TEST

/* The field number a name gives (RL_FIELD_NUM) is the number in the list. */
static unsigned desc_field_num(rl_msg_type type, const char *name)
{
    const rli_msgdesc *d = rli_msg_desc(type);
    for (size_t i = 0; i < d->nfields; i++)
        if (strcmp(d->fields[i].name, name) == 0) return d->fields[i].num;
    return 0;
}

START_TEST(field_numbers_by_name_match_the_list)
{
    ck_assert_int_eq(RL_FIELD_NUM(heartbeat_req, step), desc_field_num(RL_MSG_HEARTBEAT_REQ, "step"));
    ck_assert_int_eq(RL_FIELD_NUM(heartbeat_req, rss_bytes),
                     desc_field_num(RL_MSG_HEARTBEAT_REQ, "rss_bytes"));
    ck_assert_int_eq(RL_FIELD_NUM(join_req, pid), desc_field_num(RL_MSG_JOIN_REQ, "pid"));
    ck_assert_int_eq(RL_FIELD_NUM(plan_resp, stop), desc_field_num(RL_MSG_PLAN_RESP, "stop"));
    ck_assert_int_eq(RL_FIELD_NUM(heartbeat_resp, stop),
                     desc_field_num(RL_MSG_HEARTBEAT_RESP, "stop"));

    /* A bit set by name is the bit the encoder sends and the decoder sets. */
    rl_msg m, out;
    rl_msg_init(&m, RL_MSG_HEARTBEAT_REQ);
    m.u.heartbeat_req.node_id = "n1";
    m.u.heartbeat_req.cpu_load = 0.5;
    RL_SET_FIELD(&m.u.heartbeat_req, heartbeat_req, cpu_load);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(rl_msg_encode(&m, &buf, &len), RL_OK);
    ck_assert_int_eq(rl_msg_decode(buf, len, &out), RL_OK);
    ck_assert(RL_HAS_FIELD(&out.u.heartbeat_req, heartbeat_req, cpu_load));
    ck_assert(!RL_HAS_FIELD(&out.u.heartbeat_req, heartbeat_req, rss_bytes));
    ck_assert(out.u.heartbeat_req.cpu_load == 0.5);
    rl_msg_fini(&out);
    free(buf);
}
END_TEST

/* Every body key of an encoded frame, in order, must be strictly increasing. */
static void assert_keys_increasing(const uint8_t *buf, size_t len)
{
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, (const char *)buf, len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    const msgpack_object_map *body = &up.data.via.array.ptr[6].via.map;
    for (uint32_t i = 1; i < body->size; i++)
        ck_assert_uint_gt(body->ptr[i].key.via.u64, body->ptr[i - 1].key.via.u64);
    msgpack_unpacked_destroy(&up);
}

START_TEST(every_message_round_trips)
{
    for (size_t t = 0; t < NTYPES; t++) {
        for (int with_opt = 0; with_opt <= 1; with_opt++) {
            rl_msg a, b, c;
            uint8_t *buf, *buf2;
            size_t len, len2;
            fill_msg(&a, all_types[t], 7, with_opt);
            encode_ok(&a, &buf, &len);
            assert_keys_increasing(buf, len);
            int rv = rl_msg_decode(buf, len, &b);
            ck_assert_msg(rv == RL_OK, "%s: %s", rl_msg_name(all_types[t]), rl_errdetail());
            ck_assert_msg(rli_msg_equal(&a, &b), "%s (opt %d) differs after a round trip",
                          rl_msg_name(all_types[t]), with_opt);
            if (!with_opt) { /* absent OPT fields stay absent */
                const rli_msgdesc *d = rli_msg_desc(all_types[t]);
                for (size_t i = 0; i < d->nfields; i++)
                    ck_assert_uint_eq((msg_has(&b) >> d->fields[i].num) & 1, d->fields[i].req);
            }
            /* The canonical form is a fixed point. */
            encode_ok(&b, &buf2, &len2);
            ck_assert_uint_eq(len, len2);
            ck_assert_mem_eq(buf, buf2, len);
            ck_assert_int_eq(rl_msg_decode(buf2, len2, &c), RL_OK);
            ck_assert(rli_msg_equal(&b, &c));
            rl_msg_fini(&a);
            rl_msg_fini(&b);
            rl_msg_fini(&c);
            free(buf);
            free(buf2);
        }
    }
}
END_TEST

START_TEST(bin_fields_borrow_from_the_input)
{
    int bins = 0;
    for (size_t t = 0; t < NTYPES; t++) {
        const rli_msgdesc *d = rli_msg_desc(all_types[t]);
        uint8_t *buf;
        size_t len;
        rl_msg m;
        full_frame(all_types[t], &buf, &len);
        ck_assert_int_eq(rl_msg_decode(buf, len, &m), RL_OK);
        for (size_t i = 0; i < d->nfields; i++) {
            if (d->fields[i].type != RLI_FT_BIN) continue;
            const rl_bytes *b = (const rl_bytes *)((const char *)&m.u + d->fields[i].offset);
            ck_assert_uint_gt(b->len, 0);
            ck_assert_msg(b->ptr >= buf && b->ptr + b->len <= buf + len,
                          "%s.%s does not point into the input", d->name, d->fields[i].name);
            ck_assert_mem_eq(b->ptr, bin_pool + d->fields[i].num, b->len);
            bins++;
        }
        rl_msg_fini(&m);
        free(buf);
    }
    ck_assert_int_gt(bins, 0);
}
END_TEST

START_TEST(every_truncation_fails_cleanly)
{
    for (size_t t = 0; t < NTYPES; t++) {
        uint8_t *buf;
        size_t len;
        full_frame(all_types[t], &buf, &len);
        for (size_t cut = 0; cut < len; cut++) {
            /* A heap copy of exactly `cut` bytes so ASan sees any over-read. */
            uint8_t *part = xmalloc(cut > 0 ? cut : 1);
            memcpy(part, buf, cut);
            rl_msg m;
            int rv = rl_msg_decode(part, cut, &m);
            ck_assert_msg(rv == RL_EPROTO, "%s cut at %zu: %s", rl_msg_name(all_types[t]), cut,
                          rl_errname(rv));
            ck_assert(body_is_zero(&m));
            rl_msg_fini(&m);
            free(part);
        }
        free(buf);
    }
}
END_TEST

START_TEST(trailing_byte_is_refused)
{
    for (size_t t = 0; t < NTYPES; t++) {
        uint8_t *buf;
        size_t len;
        rl_msg m;
        full_frame(all_types[t], &buf, &len);
        uint8_t *longer = xmalloc(len + 1);
        memcpy(longer, buf, len);
        longer[len] = 0xc0;
        ck_assert_int_eq(rl_msg_decode(longer, len + 1, &m), RL_EPROTO);
        assert_detail_has("trailing");
        ck_assert(body_is_zero(&m));
        free(longer);
        free(buf);
    }
}
END_TEST

static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
                                      0xc1, 0xc2, 0xc3, 0xc4, 0xc6, 0xc7, 0xcb, 0xcf, 0xd3, 0xd4,
                                      0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};

/* One random edit: flip a bit, overwrite, insert or delete a byte. */
static size_t mutate(uint8_t *p, size_t len, size_t cap, uint64_t *rng)
{
    uint64_t r = rlt_rand(rng);
    size_t at = len > 0 ? (size_t)(rlt_rand(rng) % len) : 0;
    uint8_t byte = (r >> 8) & 1 ? interesting[(r >> 16) % sizeof(interesting)] : (uint8_t)(r >> 24);
    switch (r % 4) {
    case 0:
        if (len > 0) p[at] ^= (uint8_t)(1u << ((r >> 32) % 8));
        return len;
    case 1:
        if (len > 0) p[at] = byte;
        return len;
    case 2:
        if (len >= cap) return len;
        memmove(p + at + 1, p + at, len - at);
        p[at] = byte;
        return len + 1;
    default:
        if (len == 0) return 0;
        memmove(p + at, p + at + 1, len - at - 1);
        return len - 1;
    }
}

START_TEST(random_mutations_never_crash_or_leak)
{
    const unsigned total = 20000;
    uint64_t rng = 0x5eed0fba5eba11ull;
    unsigned ok = 0, errors = 0;
    for (size_t t = 0; t < NTYPES; t++) {
        uint8_t *buf;
        size_t len;
        full_frame(all_types[t], &buf, &len);
        size_t cap = len + 8;
        for (unsigned i = 0; i < total / NTYPES; i++) {
            uint8_t *p = xmalloc(cap);
            memcpy(p, buf, len);
            size_t n = len;
            unsigned edits = 1 + (unsigned)(rlt_rand(&rng) % 3);
            for (unsigned e = 0; e < edits; e++)
                n = mutate(p, n, cap, &rng);
            /* Shrink to the exact size so ASan catches an over-read. */
            uint8_t *exact = xmalloc(n > 0 ? n : 1);
            memcpy(exact, p, n);
            free(p);
            rl_msg m;
            int rv = rl_msg_decode(exact, n, &m);
            if (rv == RL_OK) {
                uint8_t *again;
                size_t alen;
                ok++;
                int erv = rl_msg_encode(&m, &again, &alen);
                /* Whatever decodes re-encodes, to the same message. */
                ck_assert_msg(erv == RL_OK, "re-encode: %s", rl_errdetail());
                rl_msg m2;
                ck_assert_int_eq(rl_msg_decode(again, alen, &m2), RL_OK);
                ck_assert(rli_msg_equal(&m, &m2));
                rl_msg_fini(&m2);
                free(again);
            } else {
                errors++;
                ck_assert_msg(rv == RL_EPROTO || rv == RL_EVERSION, "unexpected %s: %s",
                              rl_errname(rv), rl_errdetail());
                ck_assert(body_is_zero(&m));
                ck_assert_str_ne(rl_errdetail(), "");
            }
            rl_msg_fini(&m);
            free(exact);
        }
        free(buf);
    }
    ck_assert_uint_gt(ok, 0);
    ck_assert_uint_gt(errors, 0);
}
END_TEST

START_TEST(missing_required_field_is_named)
{
    int checked = 0;
    for (size_t t = 0; t < NTYPES; t++) {
        const rli_msgdesc *d = rli_msg_desc(all_types[t]);
        uint8_t *buf;
        size_t len;
        full_frame(all_types[t], &buf, &len);
        for (size_t i = 0; i < d->nfields; i++) {
            const rli_field *f = &d->fields[i];
            msgpack_sbuffer sb;
            rl_msg m;
            char want[128];
            edit_frame(buf, len, EDIT_DROP, f->num, NULL, &sb);
            int rv = decode_sbuf(&sb, &m);
            if (f->req) {
                ck_assert_int_eq(rv, RL_EPROTO);
                snprintf(want, sizeof(want), "%s: field %u '%s'", d->name, f->num, f->name);
                assert_detail_has(want);
                assert_detail_has("required");
                ck_assert_int_eq(m.type, all_types[t]);
                ck_assert(body_is_zero(&m));
                checked++;
            } else {
                ck_assert_int_eq(rv, RL_OK);
                ck_assert(!((msg_has(&m) >> f->num) & 1));
            }
            rl_msg_fini(&m);
            msgpack_sbuffer_destroy(&sb);
        }
        free(buf);
    }
    ck_assert_int_gt(checked, 0);
}
END_TEST

/* Wire values to try in place of a field's value, and who accepts them. */
enum candidate {
    C_NIL,
    C_TRUE,
    C_POS,
    C_NEG,
    C_F32,
    C_F64,
    C_STR,
    C_BIN3,
    C_BIN8,
    C_ARR_NIL,
    C_ARR_STR,
    C_MAP,
    C_EXT,
    NCANDIDATES
};

static bool accepts(rli_ftype t, enum candidate c)
{
    switch (t) {
    case RLI_FT_U64:
        return c == C_POS;
    case RLI_FT_I64:
        return c == C_POS || c == C_NEG;
    case RLI_FT_F64:
        return c == C_POS || c == C_NEG || c == C_F32 || c == C_F64;
    case RLI_FT_BOOL:
        return c == C_TRUE;
    case RLI_FT_STR:
        return c == C_STR;
    case RLI_FT_BIN:
        return c == C_BIN3 || c == C_BIN8;
    case RLI_FT_STRLIST:
        return c == C_ARR_STR;
    case RLI_FT_U32LIST:
        return c == C_BIN8;
    case RLI_FT_F64LIST:
        return c == C_BIN8;
    }
    return false;
}

static msgpack_object candidates[NCANDIDATES];
static msgpack_object cand_elems[2];
static void init_candidates(void)
{
    static msgpack_object_kv no_kv[1];
    msgpack_object *c = candidates;
    memset(candidates, 0, sizeof(candidates));
    c[C_NIL].type = MSGPACK_OBJECT_NIL;
    c[C_TRUE].type = MSGPACK_OBJECT_BOOLEAN;
    c[C_TRUE].via.boolean = true;
    c[C_POS].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    c[C_POS].via.u64 = 5;
    c[C_NEG].type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    c[C_NEG].via.i64 = -5;
    c[C_F32].type = MSGPACK_OBJECT_FLOAT32;
    c[C_F32].via.f64 = 1.5;
    c[C_F64].type = MSGPACK_OBJECT_FLOAT64;
    c[C_F64].via.f64 = 2.5;
    c[C_STR].type = MSGPACK_OBJECT_STR;
    c[C_STR].via.str.ptr = "x";
    c[C_STR].via.str.size = 1;
    c[C_BIN3].type = MSGPACK_OBJECT_BIN;
    c[C_BIN3].via.bin.ptr = "abc";
    c[C_BIN3].via.bin.size = 3;
    c[C_BIN8].type = MSGPACK_OBJECT_BIN;
    c[C_BIN8].via.bin.ptr = "abcdefgh";
    c[C_BIN8].via.bin.size = 8;
    cand_elems[0].type = MSGPACK_OBJECT_NIL;
    cand_elems[1] = c[C_STR];
    c[C_ARR_NIL].type = MSGPACK_OBJECT_ARRAY;
    c[C_ARR_NIL].via.array.ptr = &cand_elems[0];
    c[C_ARR_NIL].via.array.size = 1;
    c[C_ARR_STR].type = MSGPACK_OBJECT_ARRAY;
    c[C_ARR_STR].via.array.ptr = &cand_elems[1];
    c[C_ARR_STR].via.array.size = 1;
    c[C_MAP].type = MSGPACK_OBJECT_MAP;
    c[C_MAP].via.map.ptr = no_kv;
    c[C_MAP].via.map.size = 0;
    c[C_EXT].type = MSGPACK_OBJECT_EXT;
    c[C_EXT].via.ext.type = 7;
    c[C_EXT].via.ext.ptr = "ext";
    c[C_EXT].via.ext.size = 3;
}

START_TEST(wrong_types_are_refused)
{
    init_candidates();
    for (size_t t = 0; t < NTYPES; t++) {
        const rli_msgdesc *d = rli_msg_desc(all_types[t]);
        uint8_t *buf;
        size_t len;
        full_frame(all_types[t], &buf, &len);
        for (size_t i = 0; i < d->nfields; i++) {
            const rli_field *f = &d->fields[i];
            for (int c = 0; c < NCANDIDATES; c++) {
                msgpack_sbuffer sb;
                rl_msg m;
                edit_frame(buf, len, EDIT_REPLACE, f->num, &candidates[c], &sb);
                int rv = decode_sbuf(&sb, &m);
                if (accepts(f->type, (enum candidate)c)) {
                    ck_assert_msg(rv == RL_OK, "%s.%s candidate %d: %s", d->name, f->name, c,
                                  rl_errdetail());
                } else {
                    char want[128];
                    ck_assert_msg(rv == RL_EPROTO, "%s.%s accepted candidate %d", d->name, f->name,
                                  c);
                    snprintf(want, sizeof(want), "%s: field %u '%s'", d->name, f->num, f->name);
                    assert_detail_has(want);
                    ck_assert(body_is_zero(&m));
                }
                rl_msg_fini(&m);
                msgpack_sbuffer_destroy(&sb);
            }
        }
        free(buf);
    }

    /* The detail reads as documented. */
    uint8_t *buf;
    size_t len;
    msgpack_sbuffer sb;
    rl_msg m;
    full_frame(RL_MSG_JOIN_REQ, &buf, &len);
    edit_frame(buf, len, EDIT_REPLACE, 2, &candidates[C_POS], &sb);
    ck_assert_int_eq(decode_sbuf(&sb, &m), RL_EPROTO);
    ck_assert_str_eq(rl_errdetail(),
                     "JOIN_REQ: field 2 'listen': expected str, got positive integer");
    msgpack_sbuffer_destroy(&sb);
    free(buf);
}
END_TEST

START_TEST(unknown_fields_are_skipped)
{
    init_candidates();
    for (size_t t = 0; t < NTYPES; t++) {
        const rli_msgdesc *d = rli_msg_desc(all_types[t]);
        uint8_t *buf;
        size_t len;
        rl_msg orig, m;
        unsigned spare = 63;
        while (spare > 0 && (d->nfields > 0 && d->fields[d->nfields - 1].num >= spare))
            spare--;
        ck_assert_uint_gt(spare, 0);
        fill_msg(&orig, all_types[t], 1, true);
        encode_ok(&orig, &buf, &len);
        for (int c = 0; c < NCANDIDATES; c++) { /* any value, containers and ext too */
            msgpack_sbuffer sb;
            edit_frame(buf, len, EDIT_ADD, spare, &candidates[c], &sb);
            ck_assert_int_eq(decode_sbuf(&sb, &m), RL_OK);
            ck_assert(rli_msg_equal(&orig, &m));
            rl_msg_fini(&m);
            /* The same unknown field twice is still a duplicate. */
            msgpack_sbuffer sb2;
            edit_frame((const uint8_t *)sb.data, sb.size, EDIT_ADD, spare, &candidates[c], &sb2);
            ck_assert_int_eq(decode_sbuf(&sb2, &m), RL_EPROTO);
            assert_detail_has("twice");
            msgpack_sbuffer_destroy(&sb2);
            msgpack_sbuffer_destroy(&sb);
        }
        /* Field numbers outside 1..63 are not skipped but refused. */
        uint64_t bad_nums[] = {0, 64, 1000};
        for (size_t k = 0; k < 3; k++) {
            msgpack_sbuffer sb;
            edit_frame(buf, len, EDIT_ADD, bad_nums[k], &candidates[C_POS], &sb);
            ck_assert_int_eq(decode_sbuf(&sb, &m), RL_EPROTO);
            assert_detail_has("outside 1..63");
            msgpack_sbuffer_destroy(&sb);
        }
        /* A known field twice. */
        if (d->nfields > 0) {
            msgpack_sbuffer sb;
            edit_frame(buf, len, EDIT_ADD, d->fields[0].num, &candidates[C_POS], &sb);
            ck_assert_int_eq(decode_sbuf(&sb, &m), RL_EPROTO);
            assert_detail_has("twice");
            msgpack_sbuffer_destroy(&sb);
        }
        rl_msg_fini(&orig);
        free(buf);
    }
}
END_TEST

START_TEST(other_versions_are_refused_but_answerable)
{
    for (size_t t = 0; t < NTYPES; t++) {
        uint8_t *buf;
        size_t len;
        rl_msg m, want;
        fill_msg(&want, all_types[t], 1, true);
        encode_ok(&want, &buf, &len);
        ck_assert_uint_eq(buf[0], 0x97); /* fixarray of 7 */
        ck_assert_uint_eq(buf[1], RL_PROTO_VERSION);
        buf[1] = RL_PROTO_VERSION + 1;
        ck_assert_int_eq(rl_msg_decode(buf, len, &m), RL_EVERSION);
        ck_assert_uint_eq(m.version, RL_PROTO_VERSION + 1);
        ck_assert_int_eq(m.type, all_types[t]);
        ck_assert_uint_eq(m.call_id, want.call_id);
        ck_assert(body_is_zero(&m));
        buf[1] = 0;
        ck_assert_int_eq(rl_msg_decode(buf, len, &m), RL_EVERSION);
        rl_msg_fini(&want);
        free(buf);
    }

    /* A future version with another envelope length is still EVERSION. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    rl_msg m;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_uint64(&pk, 2);
    msgpack_pack_uint64(&pk, RL_MSG_JOIN_REQ);
    msgpack_pack_uint64(&pk, 77);
    for (int i = 0; i < 6; i++)
        msgpack_pack_nil(&pk);
    ck_assert_int_eq(decode_sbuf(&sb, &m), RL_EVERSION);
    ck_assert_int_eq(m.type, RL_MSG_JOIN_REQ);
    ck_assert_uint_eq(m.call_id, 77);
    msgpack_sbuffer_destroy(&sb);

    /* A version that is not an integer is malformed, not another version. */
    msgpack_sbuffer_init(&sb);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_str_with_body(&pk, "1", 1);
    ck_assert_int_eq(decode_sbuf(&sb, &m), RL_EPROTO);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(oversized_frames_are_refused)
{
    rl_msg m;
    uint8_t *big = calloc(1, (size_t)RL_PROTO_MAX_FRAME + 1);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(rl_msg_decode(big, (size_t)RL_PROTO_MAX_FRAME + 1, &m), RL_ETOOBIG);

    /* The encoder refuses what the decoder would refuse, before writing. */
    uint8_t *buf = (uint8_t *)0x1;
    size_t len = 99;
    rl_msg_init(&m, RL_MSG_ECHO_REQ);
    m.u.echo_req.data.ptr = big;
    m.u.echo_req.data.len = RL_PROTO_MAX_FRAME - 4; /* + envelope > limit */
    ck_assert_int_eq(rl_msg_encode(&m, &buf, &len), RL_ETOOBIG);
    ck_assert_ptr_null(buf);
    ck_assert_uint_eq(len, 0);
    m.u.echo_req.data.len = (size_t)RL_PROTO_MAX_FRAME + 1;
    ck_assert_int_eq(rl_msg_encode(&m, &buf, &len), RL_ETOOBIG);
    assert_detail_has("'data'");
    m.u.echo_req.data.len = RL_PROTO_MAX_FRAME - 64;
    ck_assert_int_eq(rl_msg_encode(&m, &buf, &len), RL_OK);
    ck_assert_int_eq(rl_msg_decode(buf, len, &m), RL_OK);
    ck_assert_uint_eq(m.u.echo_req.data.len, RL_PROTO_MAX_FRAME - 64);
    free(buf);
    free(big);
}
END_TEST

START_TEST(error_status_needs_no_body)
{
    for (size_t t = 0; t < NTYPES; t++) {
        const rli_msgdesc *d = rli_msg_desc(all_types[t]);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        rl_msg m;
        raw_envelope(&sb, &pk, 1, all_types[t], 42, RL_STATUS_NOT_FOUND, "no such node", 12);
        msgpack_pack_map(&pk, 0);
        ck_assert_int_eq(decode_sbuf(&sb, &m), RL_OK);
        ck_assert_int_eq(m.status, RL_STATUS_NOT_FOUND);
        ck_assert_str_eq(m.status_msg, "no such node");
        ck_assert_uint_eq(m.call_id, 42);
        ck_assert_uint_eq(m.deadline_ms, 1000);
        ck_assert_uint_eq(msg_has(&m), 0);
        rl_msg_fini(&m);
        msgpack_sbuffer_destroy(&sb);

        /* The same empty body with status OK misses its REQ fields. */
        bool any_req = false;
        for (size_t i = 0; i < d->nfields; i++)
            any_req |= d->fields[i].req;
        raw_envelope(&sb, &pk, 1, all_types[t], 42, RL_STATUS_OK, "", 0);
        msgpack_pack_map(&pk, 0);
        ck_assert_int_eq(decode_sbuf(&sb, &m), any_req ? RL_EPROTO : RL_OK);
        rl_msg_fini(&m);
        msgpack_sbuffer_destroy(&sb);
    }
}
END_TEST

START_TEST(status_msg_limits)
{
    char text[300];
    memset(text, 'e', sizeof(text));
    msgpack_sbuffer sb;
    msgpack_packer pk;
    rl_msg m;
    raw_envelope(&sb, &pk, 1, RL_MSG_HEALTH_REQ, 1, RL_STATUS_INTERNAL, text, 255);
    msgpack_pack_map(&pk, 0);
    ck_assert_int_eq(decode_sbuf(&sb, &m), RL_OK);
    ck_assert_uint_eq(strlen(m.status_msg), 255);
    msgpack_sbuffer_destroy(&sb);
    raw_envelope(&sb, &pk, 1, RL_MSG_HEALTH_REQ, 1, RL_STATUS_INTERNAL, text, 256);
    msgpack_pack_map(&pk, 0);
    ck_assert_int_eq(decode_sbuf(&sb, &m), RL_EPROTO);
    assert_detail_has("status_msg");
    msgpack_sbuffer_destroy(&sb);
    text[3] = '\0';
    raw_envelope(&sb, &pk, 1, RL_MSG_HEALTH_REQ, 1, RL_STATUS_INTERNAL, text, 10);
    msgpack_pack_map(&pk, 0);
    ck_assert_int_eq(decode_sbuf(&sb, &m), RL_EPROTO);
    assert_detail_has("NUL");
    msgpack_sbuffer_destroy(&sb);

    /* A round trip keeps the status and its message. */
    uint8_t *buf;
    size_t len;
    rl_msg a;
    rl_msg_init(&a, RL_MSG_HEALTH_RESP);
    a.status = RL_STATUS_UNAVAILABLE;
    snprintf(a.status_msg, sizeof(a.status_msg), "draining");
    encode_ok(&a, &buf, &len);
    ck_assert_int_eq(rl_msg_decode(buf, len, &m), RL_OK);
    ck_assert(rli_msg_equal(&a, &m));
    rl_msg_fini(&m);
    free(buf);
    memset(a.status_msg, 'x', sizeof(a.status_msg));
    ck_assert_int_eq(rl_msg_encode(&a, &buf, &len), RL_EINVAL);
    a.status_msg[0] = '\0';
    a.status = -1;
    ck_assert_int_eq(rl_msg_encode(&a, &buf, &len), RL_EINVAL);
}
END_TEST

START_TEST(encoder_refuses_missing_required_values)
{
    rl_msg m;
    uint8_t *buf = NULL;
    size_t len = 0;
    fill_msg(&m, RL_MSG_JOIN_REQ, 1, true);
    free(m.u.join_req.node_id);
    m.u.join_req.node_id = NULL;
    ck_assert_int_eq(rl_msg_encode(&m, &buf, &len), RL_EINVAL);
    ck_assert_ptr_null(buf);
    ck_assert_str_eq(rl_errdetail(), "JOIN_REQ: field 1 'node_id' (str) is required but not set");
    rl_msg_fini(&m);

    /* Generic: every REQ pointer field of every message. */
    for (size_t t = 0; t < NTYPES; t++) {
        const rli_msgdesc *d = rli_msg_desc(all_types[t]);
        for (size_t i = 0; i < d->nfields; i++) {
            const rli_field *f = &d->fields[i];
            if (!f->req || f->type == RLI_FT_U64 || f->type == RLI_FT_I64 ||
                f->type == RLI_FT_F64 || f->type == RLI_FT_BOOL)
                continue;
            fill_msg(&m, all_types[t], 1, true);
            rl_msg copy = m; /* keep the owned pointers to free them */
            char *p = (char *)&m.u + f->offset;
            if (f->type == RLI_FT_STR)
                *(char **)p = NULL;
            else if (f->type == RLI_FT_BIN)
                *(rl_bytes *)p = (rl_bytes){NULL, 0};
            else if (f->type == RLI_FT_STRLIST)
                ((rl_strlist *)p)->v = NULL;
            else if (f->type == RLI_FT_U32LIST)
                ((rl_u32list *)p)->v = NULL;
            else
                ((rl_f64list *)p)->v = NULL;
            /* n stays > 0 where it was: EINVAL either way, naming the field */
            ck_assert_int_eq(rl_msg_encode(&m, &buf, &len), RL_EINVAL);
            assert_detail_has(f->name);
            rl_msg_fini(&copy);
        }
    }

    /* A BIN with a length but no pointer; an unknown type. */
    rl_msg_init(&m, RL_MSG_ECHO_REQ);
    m.u.echo_req.data.len = 3;
    ck_assert_int_eq(rl_msg_encode(&m, &buf, &len), RL_EINVAL);
    rl_msg_init(&m, (rl_msg_type)999);
    ck_assert_int_eq(rl_msg_encode(&m, &buf, &len), RL_EINVAL);
    rl_msg_fini(&m); /* unknown type: just zeroes */
}
END_TEST

/* A sink that fails after `budget` bytes. */
static int failing_sink(void *data, const char *buf, size_t len)
{
    size_t *budget = data;
    (void)buf;
    if (len > *budget) return -1;
    *budget -= len;
    return 0;
}

START_TEST(pack_reports_a_failing_sink)
{
    rl_msg m;
    fill_msg(&m, RL_MSG_HEARTBEAT_REQ, 1, true);
    for (size_t budget0 = 0; budget0 < 40; budget0++) {
        size_t budget = budget0;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &budget, failing_sink);
        ck_assert_int_eq(rli_msg_pack(&pk, &m), RL_ENOMEM);
    }
    rl_msg_fini(&m);
}
END_TEST

START_TEST(status_table_round_trips)
{
    static const struct {
        int num;
        const char *name;
    } statuses[] = {
#define RL_STATUS(name, num, text) {num, #name},
#include "status.def"
#undef RL_STATUS
    };
    static const struct {
        int err, status, dir;
    } rows[] = {
#define ROW(err, status, dir) {err, RL_STATUS_##status, dir},
        RLI_ERR_STATUS_MAP(ROW)
#undef ROW
    };
    static const int errs[] = {
#define E(name, value, text) name,
        RL_ERR_LIST(E)
#undef E
    };
    size_t ns = sizeof(statuses) / sizeof(statuses[0]), nr = sizeof(rows) / sizeof(rows[0]);

    for (size_t i = 0; i < ns; i++) {
        int s = statuses[i].num;
        ck_assert_str_eq(rl_status_name(s), statuses[i].name);
        int e = rl_err_from_status(s);
        ck_assert_str_ne(rl_errname(e), "RL_E?");
        int back_rows = 0;
        bool both = false;
        for (size_t r = 0; r < nr; r++)
            if (rows[r].status == s && (rows[r].dir & RLI_TO_ERR)) {
                back_rows++;
                both |= rows[r].dir == RLI_BOTH;
            }
        ck_assert_msg(back_rows <= 1, "status %s maps back twice", statuses[i].name);
        if (both) ck_assert_int_eq(rl_status_from_err(e), s);
    }
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        int rows_to_status = 0;
        for (size_t r = 0; r < nr; r++)
            rows_to_status += rows[r].err == errs[i] && (rows[r].dir & RLI_TO_STATUS);
        ck_assert_msg(rows_to_status == 1, "%s has %d status rows", rl_errname(errs[i]),
                      rows_to_status);
        int s = rl_status_from_err(errs[i]);
        ck_assert_str_ne(rl_status_name(s), "INVALID_STATUS");
        ck_assert_int_eq(rl_status_from_err(rl_err_from_status(s)), s);
    }
    ck_assert_int_eq(rl_err_from_status(RL_STATUS_UNAUTHENTICATED), RL_EAUTH);
    ck_assert_int_eq(rl_err_from_status(RL_STATUS_UNAVAILABLE), RL_EUNAVAIL);
    ck_assert_int_eq(rl_err_from_status(RL_STATUS_DEADLINE_EXCEEDED), RL_ETIMEDOUT);
    ck_assert_int_eq(rl_err_from_status(RL_STATUS_UNKNOWN), RL_EINTERNAL);
    ck_assert_int_eq(rl_err_from_status(999), RL_EINTERNAL);
    ck_assert_int_eq(rl_status_from_err(RL_ECLOSED), RL_STATUS_UNAVAILABLE);
    ck_assert_int_eq(rl_status_from_err(RL_EPROTO), RL_STATUS_INVALID_ARGUMENT);
    ck_assert_int_eq(rl_status_from_err(9999), RL_STATUS_UNKNOWN);
    ck_assert_str_eq(rl_status_name(RL_STATUS_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
    ck_assert_str_eq(rl_status_name(999), "INVALID_STATUS");
}
END_TEST

static int decode_bytes(const uint8_t *bytes, size_t n, rl_msg *m)
{
    uint8_t *copy = xmalloc(n > 0 ? n : 1);
    memcpy(copy, bytes, n);
    int rv = rl_msg_decode(copy, n, m);
    free(copy);
    return rv;
}

/* Hand-made hostile frames: each must fail fast, small and clean. */
START_TEST(hostile_frames)
{
    rl_msg m;
    /* Deeply nested arrays: 100000 levels, and one level past our limit. */
    size_t deep = 100000;
    uint8_t *nest = xmalloc(deep + 1);
    memset(nest, 0x91, deep);
    nest[deep] = 0xc0;
    ck_assert_int_eq(decode_bytes(nest, deep + 1, &m), RL_EPROTO);
    assert_detail_has("nested");
    ck_assert_int_eq(decode_bytes(nest + deep - RLI_PROTO_MAX_DEPTH, RLI_PROTO_MAX_DEPTH + 1, &m),
                     RL_EPROTO); /* well-formed, but [[[...nil]]] is no frame */
    assert_detail_has("'version'");
    ck_assert_int_eq(
        decode_bytes(nest + deep - RLI_PROTO_MAX_DEPTH - 1, RLI_PROTO_MAX_DEPTH + 2, &m),
        RL_EPROTO);
    assert_detail_has("nested");
    free(nest);

    /* Containers and strings claiming far more than the frame holds. */
    static const uint8_t map2g[] = {0xdf, 0x80, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04};
    static const uint8_t arr4g[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
    static const uint8_t str4g[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t bin4g[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t ext4g[] = {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 'a'};
    static const uint8_t c1[] = {0xc1};
    static const uint8_t nil[] = {0xc0};
    static const uint8_t empty_arr[] = {0x90};
    static const uint8_t a6[] = {0x96, 0x01, 0x01, 0x01, 0x00, 0x00, 0xa0};
    static const uint8_t a8[] = {0x98, 0x01, 0x01, 0x01, 0x00, 0x00, 0xa0, 0x80, 0xc0};
    static const uint8_t nil_env[] = {0x97, 0x01, 0xc0, 0x01, 0x00, 0x00, 0xa0, 0x80};
    static const uint8_t nil_body[] = {0x97, 0x01, 0x01, 0x01, 0x00, 0x00, 0xa0, 0xc0};
    static const uint8_t ext_body[] = {0x97, 0x01, 0x01, 0x01, 0x00, 0x00, 0xa0, 0xd4, 0x01, 0x00};
    static const uint8_t map_root[] = {0x81, 0x01, 0x01};
    static const uint8_t neg_type[] = {0x97, 0x01, 0xff, 0x01, 0x00, 0x00, 0xa0, 0x80};
    static const struct {
        const uint8_t *b;
        size_t n;
        int want;
    } cases[] = {
        {map2g, sizeof(map2g), RL_EPROTO},
        {arr4g, sizeof(arr4g), RL_EPROTO},
        {str4g, sizeof(str4g), RL_EPROTO},
        {bin4g, sizeof(bin4g), RL_EPROTO},
        {ext4g, sizeof(ext4g), RL_EPROTO},
        {c1, sizeof(c1), RL_EPROTO},
        {nil, sizeof(nil), RL_EPROTO},
        {empty_arr, sizeof(empty_arr), RL_EPROTO},
        {a6, sizeof(a6), RL_EPROTO},
        {a8, sizeof(a8), RL_EPROTO},
        {nil_env, sizeof(nil_env), RL_EPROTO},
        {nil_body, sizeof(nil_body), RL_EPROTO},
        {ext_body, sizeof(ext_body), RL_EPROTO},
        {map_root, sizeof(map_root), RL_EPROTO},
        {neg_type, sizeof(neg_type), RL_EPROTO},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rv = decode_bytes(cases[i].b, cases[i].n, &m);
        ck_assert_msg(rv == cases[i].want, "case %zu: %s (%s)", i, rl_errname(rv), rl_errdetail());
        ck_assert(body_is_zero(&m));
    }
    ck_assert_int_eq(rl_msg_decode(NULL, 0, &m), RL_EPROTO);
    ck_assert_int_eq(rl_msg_decode(nil, 0, &m), RL_EPROTO);

    /* The same huge claims inside an otherwise valid envelope. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    raw_envelope(&sb, &pk, 1, RL_MSG_JOIN_REQ, 5, 0, "", 0);
    msgpack_sbuffer_write(&sb, (const char *)map2g, sizeof(map2g));
    ck_assert_int_eq(decode_sbuf(&sb, &m), RL_EPROTO);
    assert_detail_has("claims");
    msgpack_sbuffer_destroy(&sb);

    /* Unknown message type: refused, but type and call_id readable. */
    raw_envelope(&sb, &pk, 1, 200, 5, 0, "", 0);
    msgpack_pack_map(&pk, 0);
    ck_assert_int_eq(decode_sbuf(&sb, &m), RL_EPROTO);
    ck_assert_int_eq(m.type, 200);
    ck_assert_uint_eq(m.call_id, 5);
    assert_detail_has("unknown message type 200");
    msgpack_sbuffer_destroy(&sb);

    /* A STR field with a NUL inside; a status past INT32_MAX. */
    raw_envelope(&sb, &pk, 1, RL_MSG_JOIN_REQ, 5, 0, "", 0);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_str_with_body(&pk, "n\0de", 4);
    msgpack_pack_uint64(&pk, 2);
    msgpack_pack_str_with_body(&pk, "x", 1);
    ck_assert_int_eq(decode_sbuf(&sb, &m), RL_EPROTO);
    assert_detail_has("'node_id': string contains a NUL");
    msgpack_sbuffer_destroy(&sb);
    raw_envelope(&sb, &pk, 1, RL_MSG_HEALTH_REQ, 5, 0x80000000u, "", 0);
    msgpack_pack_map(&pk, 0);
    ck_assert_int_eq(decode_sbuf(&sb, &m), RL_EPROTO);
    msgpack_sbuffer_destroy(&sb);

    /* More objects than RLI_PROTO_MAX_OBJECTS, in an unknown field. */
    raw_envelope(&sb, &pk, 1, RL_MSG_HEALTH_REQ, 5, 0, "", 0);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_uint64(&pk, 9);
    msgpack_pack_array(&pk, RLI_PROTO_MAX_OBJECTS);
    for (unsigned i = 0; i < RLI_PROTO_MAX_OBJECTS; i++)
        msgpack_pack_nil(&pk);
    ck_assert_int_eq(decode_sbuf(&sb, &m), RL_ETOOBIG);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* The body layer over a struct with every field type. */
START_TEST(every_field_type_round_trips)
{
    const rli_msgdesc *d = all_desc();
    all_body a, b;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked up;
    size_t off = 0;

    fill_body(d, &a, 3, true);
    a.last = 1;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(rli_body_pack(&pk, d, &a), RL_OK);
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(rli_body_decode(d, &up.data, true, &b), RL_OK);
    ck_assert(rli_body_equal(d, &a, &b));
    ck_assert_mem_eq(b.ul.v, a.ul.v, 5 * sizeof(uint32_t));
    ck_assert_ptr_ne(b.ul.v, a.ul.v); /* lists are copied out */
    ck_assert(b.bin.ptr >= (const uint8_t *)sb.data &&
              b.bin.ptr + b.bin.len <= (const uint8_t *)sb.data + sb.size);
    /* U32LIST is one bin of little-endian values: 0xdeadbeef = ef be ad de. */
    static const uint8_t le[] = {0xef, 0xbe, 0xad, 0xde, 0xff, 0xff, 0xff, 0xff};
    ck_assert(contains(sb.data, sb.size, le, sizeof(le)));
    rli_body_fini(d, &b);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);

    /* Empty lists and an empty bin stay present (non-NULL) through a trip. */
    rli_body_fini(d, &a);
    static const uint8_t nothing[1];
    a.has = 0;
    a.sl.v = xmalloc(1);
    a.ul.v = xmalloc(1);
    a.fl.v = xmalloc(1);
    a.bin.ptr = nothing;
    off = 0;
    msgpack_sbuffer_init(&sb);
    ck_assert_int_eq(rli_body_pack(&pk, d, &a), RL_OK);
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(rli_body_decode(d, &up.data, true, &b), RL_OK);
    ck_assert_ptr_nonnull(b.sl.v);
    ck_assert_ptr_nonnull(b.ul.v);
    ck_assert_ptr_nonnull(b.fl.v);
    ck_assert_ptr_nonnull(b.bin.ptr);
    ck_assert_uint_eq(b.sl.n + b.ul.n + b.fl.n + b.bin.len, 0);
    ck_assert(!RL_HAS(&b, 3) && !RL_HAS(&b, 5) && RL_HAS(&b, 6) && RL_HAS(&b, 9));
    rli_body_fini(d, &b);
    rli_body_fini(d, &a);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);

    /* An n > 0 list with a NULL vector, a NULL string in a list. */
    memset(&a, 0, sizeof(a));
    a.sl.n = 2;
    ck_assert_int_eq(rli_body_check(d, &a, true), RL_EINVAL);
    char *one[1] = {NULL};
    a.sl.v = one;
    a.sl.n = 1;
    ck_assert_int_eq(rli_body_check(d, &a, true), RL_EINVAL);
    assert_detail_has("element 0 is NULL");
}
END_TEST

/* Decodes a hand-packed body {1: u, 2: i, 7: [], extra num: val} into all_body. */
static int decode_all(uint64_t num, void (*pack_val)(msgpack_packer *), all_body *b,
                      msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 2);
    msgpack_pack_int64(&pk, -1);
    msgpack_pack_uint64(&pk, 7);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_uint64(&pk, num);
    pack_val(&pk);
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
    int rv = rli_body_decode(all_desc(), &up.data, true, b);
    msgpack_unpacked_destroy(&up);
    return rv;
}

static void pv_float32(msgpack_packer *pk)
{
    msgpack_pack_float(pk, 0.5f);
}
static void pv_neg(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, -3);
}
static void pv_huge(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, UINT64_MAX);
}
static void pv_int64_max(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, INT64_MAX);
}
static void pv_bin7(msgpack_packer *pk)
{
    msgpack_pack_bin_with_body(pk, "1234567", 7);
}
static void pv_unaligned_u32(msgpack_packer *pk)
{
    /* bin8 header is 2 bytes, so the data sits at an odd offset here */
    static const uint8_t v[] = {1, 0, 0, 0, 0x78, 0x56, 0x34, 0x12};
    msgpack_pack_bin_with_body(pk, v, sizeof(v));
}
static void pv_f64_le(msgpack_packer *pk)
{
    static const uint8_t v[] = {0, 0, 0, 0, 0, 0, 0xf8, 0x3f}; /* 1.5 */
    msgpack_pack_bin_with_body(pk, v, sizeof(v));
}
static void pv_strs(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_str_with_body(pk, "a", 1);
    msgpack_pack_bin_with_body(pk, "b", 1);
}

START_TEST(value_ranges_and_conversions)
{
    all_body b;
    msgpack_sbuffer sb;
    const rli_msgdesc *d = all_desc();

    ck_assert_int_eq(decode_all(3, pv_float32, &b, &sb), RL_OK); /* F64 from float32 */
    ck_assert(b.f == 0.5);
    rli_body_fini(d, &b);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(decode_all(3, pv_neg, &b, &sb), RL_OK); /* F64 from an integer */
    ck_assert(b.f == -3.0);
    rli_body_fini(d, &b);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(decode_all(63, pv_neg, &b, &sb), RL_EPROTO); /* U64 from negative */
    assert_detail_has("ALL_TYPES: field 63 'last': expected unsigned integer, got negative");
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(decode_all(63, pv_huge, &b, &sb), RL_OK);
    ck_assert_uint_eq(b.last, UINT64_MAX);
    rli_body_fini(d, &b);
    msgpack_sbuffer_destroy(&sb);
    /* I64 range: decode_all already packs field 2, so use a map of its own. */
    msgpack_packer pk;
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_uint64(&pk, 2);
    pv_huge(&pk);
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(rli_body_decode(d, &up.data, false, &b), RL_EPROTO);
    assert_detail_has("out of range for i64");
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_init(&sb);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_uint64(&pk, 2);
    pv_int64_max(&pk);
    off = 0;
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(rli_body_decode(d, &up.data, false, &b), RL_OK);
    ck_assert(b.i == INT64_MAX);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);

    ck_assert_int_eq(decode_all(8, pv_bin7, &b, &sb), RL_EPROTO);
    assert_detail_has("not a whole number of 4-byte");
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(decode_all(9, pv_bin7, &b, &sb), RL_EPROTO);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(decode_all(8, pv_unaligned_u32, &b, &sb), RL_OK);
    ck_assert_uint_eq(b.ul.n, 2);
    ck_assert_uint_eq(b.ul.v[0], 1);
    ck_assert_uint_eq(b.ul.v[1], 0x12345678u);
    rli_body_fini(d, &b);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(decode_all(9, pv_f64_le, &b, &sb), RL_OK);
    ck_assert_uint_eq(b.fl.n, 1);
    ck_assert(b.fl.v[0] == 1.5);
    rli_body_fini(d, &b);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(decode_all(5, pv_strs, &b, &sb), RL_EPROTO); /* STR from array */
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(decode_all(63, pv_strs, &b, &sb), RL_EPROTO);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(strlist_element_errors_free_the_rest)
{
    all_body b;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_uint64(&pk, 5);
    msgpack_pack_str_with_body(&pk, "kept until the error", 20);
    msgpack_pack_uint64(&pk, 8);
    msgpack_pack_bin_with_body(&pk, "abcd", 4);
    msgpack_pack_uint64(&pk, 7);
    pv_strs(&pk);
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(rli_body_decode(all_desc(), &up.data, false, &b), RL_EPROTO);
    assert_detail_has("ALL_TYPES: field 7 'sl': element 1: expected str, got bin");
    ck_assert_ptr_null(b.s); /* zeroed; LeakSanitizer checks the frees */
    ck_assert_ptr_null(b.ul.v);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(scan_accepts_every_msgpack_format)
{
    /* Every format byte class, well formed, inside one array. */
    static const uint8_t all[] = {
        0xdc, 0x00, 0x15,                                       /* array16 of 21 */
        0x05, 0xe0, 0xc0, 0xc2, 0xc3,                           /* fixints, nil, bools */
        0xcc, 1,    0xcd, 1,    2,    0xce, 1,    2,    3,   4, /* uint 8/16/32 */
        0xcf, 1,    2,    3,    4,    5,    6,    7,    8,      /* uint64 */
        0xd3, 1,    2,    3,    4,    5,    6,    7,    8,      /* int64 */
        0xca, 0,    0,    0,    0,    0xcb, 0,    0,    0,   0, 0, 0, 0, 0, /* floats */
        0xa1, 'x',  0xd9, 1,    'y',  0xda, 0,    1,    'z',                /* strs */
        0xc4, 1,    9,    0xc7, 1,    5,    9,    0xd5, 5,   1, 2, /* bin8, ext8, fixext2 */
        0x81, 0x01, 0x90, 0xde, 0x00, 0x01, 0x01, 0xc0,            /* fixmap, map16 */
        0xdd, 0,    0,    0,    0,                                 /* array32 of 0 */
    };
    ck_assert_int_eq(rli_msgpack_scan(all, sizeof(all)), RL_OK);
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, (const char *)all, sizeof(all), &off),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, sizeof(all)); /* scan and msgpack-c agree on the length */
    ck_assert_uint_eq(up.data.via.array.size, 21);
    msgpack_unpacked_destroy(&up);
    for (size_t cut = 0; cut < sizeof(all); cut++)
        ck_assert_int_eq(rli_msgpack_scan(all, cut), RL_EPROTO);
}
END_TEST

/* ==== Seed corpus ======================================================== */

static int write_seed(const char *dir, const char *name, const rl_msg *m)
{
    char path[4096];
    uint8_t *buf;
    size_t len;
    if (rl_msg_encode(m, &buf, &len) != RL_OK) {
        fprintf(stderr, "%s: %s\n", name, rl_errdetail());
        return 1;
    }
    snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        free(buf);
        return 1;
    }
    printf("%s (%zu bytes)\n", path, len);
    free(buf);
    return 0;
}

static int write_corpus(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        perror(dir);
        return 1;
    }
    for (size_t t = 0; t < NTYPES; t++) {
        const rli_msgdesc *d = rli_msg_desc(all_types[t]);
        char name[64];
        rl_msg m;
        size_t i = 0;
        for (; d->name[i] != '\0' && i + 1 < sizeof(name); i++)
            name[i] = (char)(d->name[i] >= 'A' && d->name[i] <= 'Z' ? d->name[i] + 32 : d->name[i]);
        name[i] = '\0';
        fill_msg(&m, all_types[t], 1, true);
        int rv = write_seed(dir, name, &m);
        rl_msg_fini(&m);
        if (rv != 0) return 1;
    }
    /* A batch whose frames hold real calls, so that the fuzzer starts inside
     * the framing the RPC layer walks. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    const int calls[] = {RL_MSG_HEALTH_REQ, RL_MSG_ECHO_REQ, RL_MSG_HEARTBEAT_REQ};
    for (size_t k = 0; k < sizeof(calls) / sizeof(calls[0]); k++) {
        rl_msg m;
        uint8_t *buf;
        size_t len;
        fill_msg(&m, calls[k], 2, true);
        NEED(rl_msg_encode(&m, &buf, &len) == RL_OK);
        NEED(rli_batch_append(&sb, buf, len) == RL_OK);
        free(buf);
        rl_msg_fini(&m);
    }
    rl_msg b;
    rl_msg_init(&b, RL_MSG_BATCH_REQ);
    b.u.batch_req.count = 3;
    b.u.batch_req.frames = (rl_bytes){(const uint8_t *)sb.data, sb.size};
    int rv = write_seed(dir, "batch_req_framed", &b);
    msgpack_sbuffer_destroy(&sb);
    return rv;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) return write_corpus(argv[2]);

    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("codec");
    tcase_add_test(tc, descriptors_follow_the_list);
    tcase_add_test(tc, field_numbers_by_name_match_the_list);
    tcase_add_test(tc, every_message_round_trips);
    tcase_add_test(tc, bin_fields_borrow_from_the_input);
    tcase_add_test(tc, every_truncation_fails_cleanly);
    tcase_add_test(tc, trailing_byte_is_refused);
    tcase_add_test(tc, random_mutations_never_crash_or_leak);
    tcase_add_test(tc, missing_required_field_is_named);
    tcase_add_test(tc, wrong_types_are_refused);
    tcase_add_test(tc, unknown_fields_are_skipped);
    tcase_add_test(tc, other_versions_are_refused_but_answerable);
    tcase_add_test(tc, oversized_frames_are_refused);
    tcase_add_test(tc, error_status_needs_no_body);
    tcase_add_test(tc, status_msg_limits);
    tcase_add_test(tc, encoder_refuses_missing_required_values);
    tcase_add_test(tc, pack_reports_a_failing_sink);
    tcase_add_test(tc, status_table_round_trips);
    tcase_add_test(tc, hostile_frames);
    tcase_add_test(tc, every_field_type_round_trips);
    tcase_add_test(tc, value_ranges_and_conversions);
    tcase_add_test(tc, strlist_element_errors_free_the_rest);
    tcase_add_test(tc, scan_accepts_every_msgpack_format);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
