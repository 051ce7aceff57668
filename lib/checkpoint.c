/*
 * checkpoint.c - the checkpoint file (ringleader/checkpoint.h): encoding,
 * a decoder that trusts nothing, and the atomic write.
 *
 * The payload is one msgpack map; its keys (every one required):
 *   spec_hash, incarnation, step, steps_total, epoch, elapsed_ms,
 *   started_unix_ms, coverage_checked, violations   numbers
 *   model    map: type, features, classes (uint), w, b (f64 columns)
 *   owner    array of int, one per block
 *   n_nodes  uint
 *   steps    map of columns, one entry per recorded step: step (u64),
 *            t_ms, loss, ms, allreduce_ms, imbalance (f64), node_n (u32:
 *            how many node_ms the step has), node_ms (f64, all steps' in turn)
 *   events   array of [t_ms, step, kind, node, detail, recovery_ms]
 * A column is a msgpack bin of little-endian values (IEEE-754 bits for
 * f64): the model's bytes come back unchanged, and a long step history
 * costs a copy rather than one msgpack object per number (the decoder's
 * pre-scan bounds objects, rli_msgpack_scan).
 */
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto_internal.h"
#include "rli.h"
#include "ringleader/checkpoint.h"

static const unsigned char ckpt_magic[8] = {'R', 'L', 'C', 'K', 'P', 'T', '\r', '\n'};

/* Bounds a decoded file must respect (far above any real job's). */
#define CKPT_MAX_WEIGHTS (1u << 26)
#define CKPT_MAX_BLOCKS  (1u << 26)
#define CKPT_MAX_NODES   (1u << 16)

uint64_t rl_checkpoint_spec_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The CRC-32C table, made once (reflected polynomial 0x82f63b78). */
static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_make_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc32c_table[i] = c;
    }
}

uint32_t rl_crc32c(const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_make_table);
    const unsigned char *p = data;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < len; i++)
        c = crc32c_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- Encoding -------------------------------------------------------------------- */

static void pack_key(msgpack_packer *pk, const char *k)
{
    size_t n = strlen(k);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, k, n);
}

static void pack_string(msgpack_packer *pk, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* A column of n values of size bytes each, value i from get(src, i). */
static void pack_column(msgpack_packer *pk, const void *src, size_t n, int size,
                        uint64_t (*get)(const void *src, size_t i))
{
    unsigned char buf[4096];
    size_t fill = 0;
    msgpack_pack_bin(pk, n * (size_t)size);
    for (size_t i = 0; i < n; i++) {
        put_le(buf + fill, get(src, i), size);
        fill += (size_t)size;
        if (fill + 8 > sizeof(buf) || i + 1 == n) {
            msgpack_pack_bin_body(pk, buf, fill);
            fill = 0;
        }
    }
}

static uint64_t bits_of_double(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static uint64_t get_f64(const void *src, size_t i)
{
    return bits_of_double(((const double *)src)[i]);
}

static void pack_doubles(msgpack_packer *pk, const double *v, size_t n)
{
    pack_column(pk, v, n, 8, get_f64);
}

/* The steps' columns. */
#define CKPT_STEP_F64(X) X(t_ms) X(loss) X(ms) X(allreduce_ms) X(imbalance)
#define CKPT_GETTER(f)                                                                             \
    static uint64_t get_step_##f(const void *src, size_t i)                                        \
    {                                                                                              \
        return bits_of_double(((const rl_ckpt_step *)src)[i].f);                                   \
    }
CKPT_STEP_F64(CKPT_GETTER)
#undef CKPT_GETTER

static uint64_t get_step_step(const void *src, size_t i)
{
    return ((const rl_ckpt_step *)src)[i].step;
}

static uint64_t get_step_node_n(const void *src, size_t i)
{
    return ((const rl_ckpt_step *)src)[i].n_node_ms;
}

static void pack_steps(msgpack_packer *pk, const rl_checkpoint *c)
{
    size_t n = c->n_steps, all = 0;
    msgpack_pack_map(pk, 8);
    pack_key(pk, "step");
    pack_column(pk, c->steps, n, 8, get_step_step);
#define CKPT_PACK(f)                                                                               \
    pack_key(pk, #f);                                                                              \
    pack_column(pk, c->steps, n, 8, get_step_##f);
    CKPT_STEP_F64(CKPT_PACK)
#undef CKPT_PACK
    pack_key(pk, "node_n");
    pack_column(pk, c->steps, n, 4, get_step_node_n);
    for (size_t i = 0; i < n; i++)
        all += c->steps[i].n_node_ms;
    pack_key(pk, "node_ms");
    msgpack_pack_bin(pk, all * 8);
    for (size_t i = 0; i < n; i++) {
        unsigned char b[8];
        for (size_t k = 0; k < c->steps[i].n_node_ms; k++) {
            put_le(b, bits_of_double(c->steps[i].node_ms[k]), 8);
            msgpack_pack_bin_body(pk, b, 8);
        }
    }
}

static void pack_payload(msgpack_packer *pk, const rl_checkpoint *c)
{
    msgpack_pack_map(pk, 14);
    pack_key(pk, "spec_hash");
    msgpack_pack_uint64(pk, c->spec_hash);
    pack_key(pk, "incarnation");
    msgpack_pack_uint64(pk, c->incarnation);
    pack_key(pk, "step");
    msgpack_pack_uint64(pk, c->step);
    pack_key(pk, "steps_total");
    msgpack_pack_uint64(pk, c->steps_total);
    pack_key(pk, "epoch");
    msgpack_pack_uint64(pk, c->epoch);
    pack_key(pk, "elapsed_ms");
    msgpack_pack_double(pk, c->elapsed_ms);
    pack_key(pk, "started_unix_ms");
    msgpack_pack_uint64(pk, c->started_unix_ms);
    pack_key(pk, "coverage_checked");
    msgpack_pack_uint64(pk, c->coverage_checked);
    pack_key(pk, "violations");
    msgpack_pack_uint64(pk, c->violations);
    pack_key(pk, "model");
    msgpack_pack_map(pk, 5);
    pack_key(pk, "type");
    msgpack_pack_uint32(pk, c->model_type);
    pack_key(pk, "features");
    msgpack_pack_uint32(pk, c->features);
    pack_key(pk, "classes");
    msgpack_pack_uint32(pk, c->classes);
    pack_key(pk, "w");
    pack_doubles(pk, c->w, (size_t)c->features * c->classes);
    pack_key(pk, "b");
    pack_doubles(pk, c->b, c->classes);
    pack_key(pk, "owner");
    msgpack_pack_array(pk, c->n_blocks);
    for (uint32_t i = 0; i < c->n_blocks; i++)
        msgpack_pack_int32(pk, c->owner[i]);
    pack_key(pk, "n_nodes");
    msgpack_pack_uint32(pk, c->n_nodes);
    pack_key(pk, "steps");
    pack_steps(pk, c);
    pack_key(pk, "events");
    msgpack_pack_array(pk, c->n_events);
    for (size_t i = 0; i < c->n_events; i++) {
        const rl_ckpt_event *e = &c->events[i];
        msgpack_pack_array(pk, 6);
        msgpack_pack_double(pk, e->t_ms);
        msgpack_pack_int64(pk, e->step);
        pack_string(pk, e->kind, sizeof(e->kind));
        pack_string(pk, e->node, sizeof(e->node));
        pack_string(pk, e->detail, sizeof(e->detail));
        msgpack_pack_double(pk, e->recovery_ms);
    }
}

int rl_checkpoint_encode(const rl_checkpoint *c, void **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    unsigned char header[RL_CHECKPOINT_HEADER] = {0};
    /* msgpack-c's sbuffer aborts nothing: a failed write leaves it short,
     * which the length check below catches. */
    msgpack_sbuffer_write(&sb, (const char *)header, sizeof(header));
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_payload(&pk, c);
    if (sb.data == NULL || sb.size < RL_CHECKPOINT_HEADER) {
        msgpack_sbuffer_destroy(&sb);
        return rli_err(RL_ENOMEM, "checkpoint: out of memory encoding step %llu",
                       (unsigned long long)c->step);
    }
    unsigned char *p = (unsigned char *)sb.data;
    size_t payload = sb.size - RL_CHECKPOINT_HEADER;
    memcpy(p, ckpt_magic, sizeof(ckpt_magic));
    put_le(p + 8, RL_CHECKPOINT_VERSION, 4);
    put_le(p + 12, rl_crc32c(p + RL_CHECKPOINT_HEADER, payload), 4);
    put_le(p + 16, payload, 8);
    *len = sb.size;
    *buf = msgpack_sbuffer_release(&sb);
    return RL_OK;
}

/* ---- Decoding -------------------------------------------------------------------- */

/* The value under key k in map m, or NULL (and an error naming k). */
static const msgpack_object *map_get(const msgpack_object *m, const char *where, const char *k)
{
    size_t kn = strlen(k);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *key = &m->via.map.ptr[i].key;
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == kn &&
            memcmp(key->via.str.ptr, k, kn) == 0)
            return &m->via.map.ptr[i].val;
    }
    rli_err(RL_EDATA, "%s: key '%s' missing", where, k);
    return NULL;
}

static int want_u64(const msgpack_object *o, const char *what, uint64_t max, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return rli_err(RL_EDATA, "%s: not an unsigned integer", what);
    if (o->via.u64 > max)
        return rli_err(RL_EDATA, "%s: %llu is above %llu", what, (unsigned long long)o->via.u64,
                       (unsigned long long)max);
    *out = o->via.u64;
    return RL_OK;
}

static int want_i64(const msgpack_object *o, const char *what, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return RL_OK;
    }
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > (uint64_t)INT64_MAX)
        return rli_err(RL_EDATA, "%s: not an integer", what);
    *out = (int64_t)o->via.u64;
    return RL_OK;
}

static int want_f64(const msgpack_object *o, const char *what, double *out)
{
    if (o->type != MSGPACK_OBJECT_FLOAT64 && o->type != MSGPACK_OBJECT_FLOAT32)
        return rli_err(RL_EDATA, "%s: not a float", what);
    *out = o->via.f64;
    return RL_OK;
}

static int want_array(const msgpack_object *o, const char *what, uint64_t n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY) return rli_err(RL_EDATA, "%s: not an array", what);
    if (n != UINT64_MAX && o->via.array.size != n)
        return rli_err(RL_EDATA, "%s: %u entries, %llu expected", what, o->via.array.size,
                       (unsigned long long)n);
    return RL_OK;
}

/* A column of exactly n values of size bytes (n UINT64_MAX: any number,
 * returned in *n_out); *p points into the payload. */
static int want_column(const msgpack_object *o, const char *what, int size, uint64_t n,
                       const unsigned char **p, uint64_t *n_out)
{
    if (o->type != MSGPACK_OBJECT_BIN) return rli_err(RL_EDATA, "%s: not a bin", what);
    uint64_t have = o->via.bin.size;
    if (have % (uint64_t)size != 0)
        return rli_err(RL_EDATA, "%s: %llu bytes, not a whole number of %d-byte values", what,
                       (unsigned long long)have, size);
    if (n != UINT64_MAX && have / (uint64_t)size != n)
        return rli_err(RL_EDATA, "%s: %llu values, %llu expected", what,
                       (unsigned long long)(have / (uint64_t)size), (unsigned long long)n);
    *p = (const unsigned char *)o->via.bin.ptr;
    if (n_out != NULL) *n_out = have / (uint64_t)size;
    return RL_OK;
}

static double double_at(const unsigned char *p, size_t i)
{
    uint64_t u = get_le(p + 8 * i, 8);
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

/* A column of exactly n doubles into a new array *out (n may be 0). */
static int want_doubles(const msgpack_object *o, const char *what, uint64_t n, double **out)
{
    const unsigned char *p = NULL;
    int rv = want_column(o, what, 8, n, &p, NULL);
    if (rv != RL_OK) return rv;
    *out = calloc((size_t)n + 1, sizeof(double));
    if (*out == NULL) return rli_err(RL_ENOMEM, "%s: out of memory", what);
    for (uint64_t i = 0; i < n; i++)
        (*out)[i] = double_at(p, i);
    return RL_OK;
}

/* A string of at most cap-1 bytes, copied NUL-terminated into out. */
static int want_str(const msgpack_object *o, const char *what, char *out, size_t cap)
{
    if (o->type != MSGPACK_OBJECT_STR) return rli_err(RL_EDATA, "%s: not a string", what);
    if (o->via.str.size >= cap)
        return rli_err(RL_EDATA, "%s: %u bytes, at most %zu", what, o->via.str.size, cap - 1);
    if (o->via.str.size > 0) memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
    return RL_OK;
}

static int decode_model(const msgpack_object *m, rl_checkpoint *c)
{
    if (m->type != MSGPACK_OBJECT_MAP) return rli_err(RL_EDATA, "model: not a map");
    const msgpack_object *o;
    uint64_t v = 0;
    int rv;
    if ((o = map_get(m, "model", "type")) == NULL) return RL_EDATA;
    if ((rv = want_u64(o, "model.type", 255, &v)) != RL_OK) return rv;
    c->model_type = (uint32_t)v;
    if ((o = map_get(m, "model", "features")) == NULL) return RL_EDATA;
    if ((rv = want_u64(o, "model.features", CKPT_MAX_WEIGHTS, &v)) != RL_OK) return rv;
    c->features = (uint32_t)v;
    if ((o = map_get(m, "model", "classes")) == NULL) return RL_EDATA;
    if ((rv = want_u64(o, "model.classes", CKPT_MAX_WEIGHTS, &v)) != RL_OK) return rv;
    c->classes = (uint32_t)v;
    uint64_t kf = (uint64_t)c->features * c->classes;
    if (c->features == 0 || c->classes == 0 || kf > CKPT_MAX_WEIGHTS)
        return rli_err(RL_EDATA, "model: %u features x %u classes is out of range", c->features,
                       c->classes);
    if ((o = map_get(m, "model", "w")) == NULL) return RL_EDATA;
    if ((rv = want_doubles(o, "model.w", kf, &c->w)) != RL_OK) return rv;
    if ((o = map_get(m, "model", "b")) == NULL) return RL_EDATA;
    return want_doubles(o, "model.b", c->classes, &c->b);
}

static int decode_steps(const msgpack_object *m, rl_checkpoint *c)
{
    if (m->type != MSGPACK_OBJECT_MAP) return rli_err(RL_EDATA, "steps: not a map");
    const msgpack_object *o;
    const unsigned char *col[6] = {0}, *node_n = NULL, *node_ms = NULL;
    const char *names[6] = {"step", "t_ms", "loss", "ms", "allreduce_ms", "imbalance"};
    uint64_t n = 0, n_node_ms = 0;
    int rv;
    for (int k = 0; k < 6; k++) {
        char w[32];
        snprintf(w, sizeof(w), "steps.%s", names[k]);
        if ((o = map_get(m, "steps", names[k])) == NULL) return RL_EDATA;
        if ((rv = want_column(o, w, 8, k == 0 ? UINT64_MAX : n, &col[k], &n)) != RL_OK) return rv;
    }
    if (n > c->step)
        return rli_err(RL_EDATA, "steps: %llu entries for a checkpoint at step %llu",
                       (unsigned long long)n, (unsigned long long)c->step);
    if ((o = map_get(m, "steps", "node_n")) == NULL) return RL_EDATA;
    if ((rv = want_column(o, "steps.node_n", 4, n, &node_n, NULL)) != RL_OK) return rv;
    if ((o = map_get(m, "steps", "node_ms")) == NULL) return RL_EDATA;
    if ((rv = want_column(o, "steps.node_ms", 8, UINT64_MAX, &node_ms, &n_node_ms)) != RL_OK)
        return rv;
    c->steps = calloc((size_t)n + 1, sizeof(*c->steps));
    if (c->steps == NULL) return rli_err(RL_ENOMEM, "steps: out of memory");
    uint64_t used = 0;
    for (uint64_t i = 0; i < n; i++) {
        rl_ckpt_step *s = &c->steps[c->n_steps++];
        s->step = get_le(col[0] + 8 * i, 8);
        if (s->step >= c->step || (i > 0 && s->step <= c->steps[i - 1].step))
            return rli_err(RL_EDATA,
                           "steps.step[%llu]: step %llu out of order or not below the "
                           "checkpoint's step %llu",
                           (unsigned long long)i, (unsigned long long)s->step,
                           (unsigned long long)c->step);
        s->t_ms = double_at(col[1], i);
        s->loss = double_at(col[2], i);
        s->ms = double_at(col[3], i);
        s->allreduce_ms = double_at(col[4], i);
        s->imbalance = double_at(col[5], i);
        uint64_t nn = get_le(node_n + 4 * i, 4);
        if (nn > c->n_nodes || nn > n_node_ms - used)
            return rli_err(RL_EDATA, "steps.node_n[%llu]: %llu node times (%u nodes, %llu left)",
                           (unsigned long long)i, (unsigned long long)nn, c->n_nodes,
                           (unsigned long long)(n_node_ms - used));
        if (nn == 0) continue;
        s->node_ms = calloc((size_t)nn, sizeof(double));
        if (s->node_ms == NULL) return rli_err(RL_ENOMEM, "steps: out of memory");
        s->n_node_ms = (size_t)nn;
        for (uint64_t k = 0; k < nn; k++)
            s->node_ms[k] = double_at(node_ms, used + k);
        used += nn;
    }
    if (used != n_node_ms)
        return rli_err(RL_EDATA, "steps.node_ms: %llu values, the steps use %llu",
                       (unsigned long long)n_node_ms, (unsigned long long)used);
    return RL_OK;
}

static int decode_events(const msgpack_object *a, rl_checkpoint *c)
{
    int rv = want_array(a, "events", UINT64_MAX);
    if (rv != RL_OK) return rv;
    c->events = calloc((size_t)a->via.array.size + 1, sizeof(*c->events));
    if (c->events == NULL) return rli_err(RL_ENOMEM, "events: out of memory");
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        char w[64];
        snprintf(w, sizeof(w), "events[%u]", i);
        const msgpack_object *e = &a->via.array.ptr[i];
        if ((rv = want_array(e, w, 6)) != RL_OK) return rv;
        const msgpack_object *f = e->via.array.ptr;
        rl_ckpt_event *ev = &c->events[c->n_events++];
        if ((rv = want_f64(&f[0], w, &ev->t_ms)) != RL_OK ||
            (rv = want_i64(&f[1], w, &ev->step)) != RL_OK ||
            (rv = want_str(&f[2], w, ev->kind, sizeof(ev->kind))) != RL_OK ||
            (rv = want_str(&f[3], w, ev->node, sizeof(ev->node))) != RL_OK ||
            (rv = want_str(&f[4], w, ev->detail, sizeof(ev->detail))) != RL_OK ||
            (rv = want_f64(&f[5], w, &ev->recovery_ms)) != RL_OK)
            return rv;
    }
    return RL_OK;
}

static int decode_owner(const msgpack_object *a, rl_checkpoint *c)
{
    int rv = want_array(a, "owner", UINT64_MAX);
    if (rv != RL_OK) return rv;
    if (a->via.array.size > CKPT_MAX_BLOCKS)
        return rli_err(RL_EDATA, "owner: %u blocks, at most %u", a->via.array.size,
                       CKPT_MAX_BLOCKS);
    c->n_blocks = a->via.array.size;
    c->owner = calloc((size_t)c->n_blocks + 1, sizeof(int32_t));
    if (c->owner == NULL) return rli_err(RL_ENOMEM, "owner: out of memory");
    for (uint32_t i = 0; i < c->n_blocks; i++) {
        int64_t v = 0;
        char w[64];
        snprintf(w, sizeof(w), "owner[%u]", i);
        if ((rv = want_i64(&a->via.array.ptr[i], w, &v)) != RL_OK) return rv;
        if (v < -1 || v >= (int64_t)c->n_nodes)
            return rli_err(RL_EDATA, "%s: node %lld of %u", w, (long long)v, c->n_nodes);
        c->owner[i] = (int32_t)v;
    }
    return RL_OK;
}

/* The top-level map's numbers, in the order of checkpoint.h. */
static int decode_numbers(const msgpack_object *m, rl_checkpoint *c)
{
    struct {
        const char *key;
        uint64_t *out;
        uint64_t max;
    } u[] = {{"spec_hash", &c->spec_hash, UINT64_MAX},
             {"incarnation", &c->incarnation, UINT64_MAX},
             {"step", &c->step, INT32_MAX},
             {"steps_total", &c->steps_total, INT32_MAX},
             {"epoch", &c->epoch, UINT64_MAX},
             {"started_unix_ms", &c->started_unix_ms, UINT64_MAX},
             {"coverage_checked", &c->coverage_checked, UINT64_MAX},
             {"violations", &c->violations, UINT64_MAX}};
    int rv;
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
        const msgpack_object *o = map_get(m, "checkpoint", u[i].key);
        if (o == NULL) return RL_EDATA;
        if ((rv = want_u64(o, u[i].key, u[i].max, u[i].out)) != RL_OK) return rv;
    }
    if (c->step > c->steps_total)
        return rli_err(RL_EDATA, "step %llu is past steps_total %llu", (unsigned long long)c->step,
                       (unsigned long long)c->steps_total);
    const msgpack_object *o = map_get(m, "checkpoint", "elapsed_ms");
    if (o == NULL) return RL_EDATA;
    if ((rv = want_f64(o, "elapsed_ms", &c->elapsed_ms)) != RL_OK) return rv;
    if (!(c->elapsed_ms >= 0 && c->elapsed_ms < 1e15))
        return rli_err(RL_EDATA, "elapsed_ms: %g is out of range", c->elapsed_ms);
    uint64_t n = 0;
    if ((o = map_get(m, "checkpoint", "n_nodes")) == NULL) return RL_EDATA;
    if ((rv = want_u64(o, "n_nodes", CKPT_MAX_NODES, &n)) != RL_OK) return rv;
    c->n_nodes = (uint32_t)n;
    return RL_OK;
}

static int decode_payload(const msgpack_object *m, rl_checkpoint *c)
{
    if (m->type != MSGPACK_OBJECT_MAP) return rli_err(RL_EDATA, "payload: not a map");
    int rv = decode_numbers(m, c);
    if (rv != RL_OK) return rv;
    const msgpack_object *o;
    if ((o = map_get(m, "checkpoint", "model")) == NULL) return RL_EDATA;
    if ((rv = decode_model(o, c)) != RL_OK) return rv;
    if ((o = map_get(m, "checkpoint", "owner")) == NULL) return RL_EDATA;
    if ((rv = decode_owner(o, c)) != RL_OK) return rv;
    if ((o = map_get(m, "checkpoint", "steps")) == NULL) return RL_EDATA;
    if ((rv = decode_steps(o, c)) != RL_OK) return rv;
    if ((o = map_get(m, "checkpoint", "events")) == NULL) return RL_EDATA;
    return decode_events(o, c);
}

int rl_checkpoint_decode(const void *buf, size_t len, rl_checkpoint *c)
{
    memset(c, 0, sizeof(*c));
    const unsigned char *p = buf;
    if (len < RL_CHECKPOINT_HEADER)
        return rli_err(RL_EDATA, "truncated: %zu bytes, shorter than the %d-byte header", len,
                       RL_CHECKPOINT_HEADER);
    if (memcmp(p, ckpt_magic, sizeof(ckpt_magic)) != 0)
        return rli_err(RL_EDATA, "not a ringleader checkpoint (bad magic)");
    uint64_t version = get_le(p + 8, 4);
    if (version != RL_CHECKPOINT_VERSION)
        return rli_err(RL_EVERSION, "format version %llu, this ringleader reads version %d",
                       (unsigned long long)version, RL_CHECKPOINT_VERSION);
    uint64_t want = get_le(p + 16, 8), have = len - RL_CHECKPOINT_HEADER;
    if (have < want)
        return rli_err(RL_EDATA, "truncated: %llu of %llu payload bytes", (unsigned long long)have,
                       (unsigned long long)want);
    if (have > want)
        return rli_err(RL_EDATA, "%llu bytes after the %llu-byte payload",
                       (unsigned long long)(have - want), (unsigned long long)want);
    uint32_t crc = rl_crc32c(p + RL_CHECKPOINT_HEADER, (size_t)want);
    if (crc != (uint32_t)get_le(p + 12, 4))
        return rli_err(RL_EDATA, "checksum mismatch (CRC-32C %08x, header says %08x): corrupt", crc,
                       (unsigned)get_le(p + 12, 4));
    int rv = rli_msgpack_scan(p + RL_CHECKPOINT_HEADER, (size_t)want);
    if (rv != RL_OK) return rli_err_prefix(RL_EDATA, "payload");
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_return ur =
        msgpack_unpack_next(&up, (const char *)p + RL_CHECKPOINT_HEADER, (size_t)want, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS)
        rv = rli_err(RL_EDATA, "payload is not msgpack (msgpack_unpack_next returned %d)", (int)ur);
    else if (off != want)
        rv = rli_err(RL_EDATA, "payload: %llu bytes after the map",
                     (unsigned long long)(want - off));
    else
        rv = decode_payload(&up.data, c);
    msgpack_unpacked_destroy(&up);
    return rv;
}

int rl_checkpoint_read(const char *path, uint64_t spec_hash, rl_checkpoint *c)
{
    memset(c, 0, sizeof(*c));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return rli_err(e == ENOENT ? RL_ENOTFOUND : RL_EIO, "checkpoint %s: %s", path, strerror(e));
    }
    struct stat st;
    unsigned char *buf = NULL;
    int rv = RL_OK;
    if (fstat(fd, &st) != 0) {
        rv = rli_err(RL_EIO, "checkpoint %s: %s", path, strerror(errno));
        goto out;
    }
    if ((size_t)st.st_size > RL_CHECKPOINT_MAX_BYTES) {
        rv = rli_err(RL_EDATA, "checkpoint %s: %lld bytes, larger than any checkpoint", path,
                     (long long)st.st_size);
        goto out;
    }
    size_t len = (size_t)st.st_size, got = 0;
    buf = malloc(len + 1);
    if (buf == NULL) {
        rv = rli_err(RL_ENOMEM, "checkpoint %s: out of memory", path);
        goto out;
    }
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rv = rli_err(RL_EIO, "checkpoint %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0) break; /* shrunk meanwhile: decoded as truncated */
        got += (size_t)n;
    }
    if ((rv = rl_checkpoint_decode(buf, got, c)) != RL_OK) {
        rli_err_prefix(rv, "checkpoint %s", path);
        goto out;
    }
    if (spec_hash != 0 && c->spec_hash != spec_hash)
        rv = rli_err(RL_EPRECOND,
                     "checkpoint %s: written for another spec (spec hash %016llx, this spec's "
                     "%016llx)",
                     path, (unsigned long long)c->spec_hash, (unsigned long long)spec_hash);
out:
    free(buf);
    close(fd);
    return rv;
}

/* ---- Writing --------------------------------------------------------------------- */

static int ckpt_mkdir_p(const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int rl_checkpoint_write_file(const char *dir, const void *buf, size_t len)
{
    char path[4096], prev[4096], tmp[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, RL_CHECKPOINT_FILE);
    snprintf(prev, sizeof(prev), "%s/%s", dir, RL_CHECKPOINT_PREV_FILE);
    snprintf(tmp, sizeof(tmp), "%s/.%s.%d", dir, RL_CHECKPOINT_FILE, (int)getpid());
    if (ckpt_mkdir_p(dir) != 0)
        return rli_err(RL_EIO, "checkpoint: cannot create %s: %s", dir, strerror(errno));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return rli_err(RL_EIO, "checkpoint: cannot write %s: %s", tmp, strerror(errno));
    int bad = write_all(fd, buf, len) != 0 || fsync(fd) != 0;
    int e = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(tmp);
        return rli_err(RL_EIO, "checkpoint: cannot write %s: %s", tmp, strerror(e));
    }
    /* The current one becomes the previous as a second name of the same
     * file, so that a newest checkpoint exists at every moment (the rename
     * below replaces it atomically); where hard links are refused, by a
     * rename, which leaves only the previous one for a moment. */
    if (unlink(prev) != 0 && errno != ENOENT) {
        e = errno;
        unlink(tmp);
        return rli_err(RL_EIO, "checkpoint: cannot remove %s: %s", prev, strerror(e));
    }
    if (link(path, prev) != 0 && errno != ENOENT && rename(path, prev) != 0 && errno != ENOENT) {
        e = errno;
        unlink(tmp);
        return rli_err(RL_EIO, "checkpoint: cannot rename %s to %s: %s", path, prev, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return rli_err(RL_EIO, "checkpoint: cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        e = errno;
        if (dfd >= 0) close(dfd);
        return rli_err(RL_EIO, "checkpoint: cannot fsync directory %s: %s", dir, strerror(e));
    }
    close(dfd);
    return RL_OK;
}

void rl_checkpoint_fini(rl_checkpoint *c)
{
    free(c->w);
    free(c->b);
    free(c->owner);
    for (size_t i = 0; c->steps != NULL && i < c->n_steps; i++)
        free(c->steps[i].node_ms);
    free(c->steps);
    free(c->events);
    memset(c, 0, sizeof(*c));
}
