/* spec.c - the YAML cluster spec.
 *
 * lib/spec_keys.def is expanded here into a table of sections and a table of
 * keys. One generic walk over those tables loads any map of the spec: it
 * applies defaults, converts and range-checks values, and reports unknown,
 * duplicate and missing keys. Rules that tie several keys together (unique
 * node ids and addresses, min_nodes <= nodes, csv needs data.csv, ...) are
 * in spec_check_rules(). Every problem is collected with its position (see
 * diag.h) and all are printed at the end, so one run shows them all. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>

#include "diag.h"
#include "hostfile.h"
#include "ringleader/spec.h"
#include "rli.h"
#include "yaml_tree.h"

#define SPEC_MAP_MAX_ENTRIES    256        /* keys in one map of the spec */
#define SPEC_SUGGEST_MAX_LEN    64         /* longer unknown keys get no "did you mean" */
#define SPEC_CSV_HEADER_MAX     (1u << 20) /* bytes of a CSV header line */
#define SPEC_DESCRIBE_MAX_NODES 32         /* rows of the nodes table in describe */
#define SPEC_NAME_MAX           160        /* "cluster.nodes[1023].capacity" and the like */

/* ---- Value types -------------------------------------------------------- */

/* X(TYPE, short name for the reference, what a message says was expected).
 * The C type of each is SPEC_CTYPE_<TYPE>, checked against every field. */
#define SPEC_TYPE_LIST(X)                                                                          \
    X(STR, "text", "text")                                                                         \
    X(ID, "name", "a name (letters, digits, '.', '_' and '-')")                                    \
    X(URL, "URL", "a URL tcp://HOST:PORT or tls+tcp://HOST:PORT")                                  \
    X(LISTEN, "URL", "a URL tcp://HOST:PORT or tls+tcp://HOST:PORT")                               \
    X(HTTP, "URL", "a URL http://HOST:PORT or https://HOST:PORT (port 0: any free port)")          \
    X(FILE, "file", "a file name")                                                                 \
    X(DIR, "directory", "a directory name")                                                        \
    X(INT, "integer", "an integer")                                                                \
    X(I64, "integer", "an integer")                                                                \
    X(U64, "integer", "a non-negative integer")                                                    \
    X(SIZE, "bytes", "a size in bytes")                                                            \
    X(DBL, "number", "a number")                                                                   \
    X(BOOL, "bool", "true or false")                                                               \
    X(LAUNCH, "local|manual", "local or manual")                                                   \
    X(SOURCE, "synthetic|csv", "synthetic or csv")                                                 \
    X(MODEL, "linear|logistic|softmax", "linear, logistic or softmax")                             \
    X(ARGV, "list", "a list of strings, the program and its arguments")                            \
    X(ENV, "map", "a map of environment variable names to strings")

#define SPEC_CTYPE_STR    char *
#define SPEC_CTYPE_ID     char *
#define SPEC_CTYPE_URL    char *
#define SPEC_CTYPE_LISTEN char *
#define SPEC_CTYPE_HTTP   char *
#define SPEC_CTYPE_FILE   char *
#define SPEC_CTYPE_DIR    char *
#define SPEC_CTYPE_INT    int
#define SPEC_CTYPE_I64    int64_t
#define SPEC_CTYPE_U64    uint64_t
#define SPEC_CTYPE_SIZE   size_t
#define SPEC_CTYPE_DBL    double
#define SPEC_CTYPE_BOOL   int
#define SPEC_CTYPE_LAUNCH rl_launch
#define SPEC_CTYPE_SOURCE rl_data_source
#define SPEC_CTYPE_MODEL  rl_model_type
#define SPEC_CTYPE_ARGV   rl_strv
#define SPEC_CTYPE_ENV    rl_strv

typedef enum spec_type {
#define SPEC_TYPE_ENUM(name, short_name, what) SPEC_T_##name,
    SPEC_TYPE_LIST(SPEC_TYPE_ENUM)
#undef SPEC_TYPE_ENUM
} spec_type;

static const char *const spec_type_short[] = {
#define SPEC_TYPE_SHORT(name, short_name, what) [SPEC_T_##name] = short_name,
    SPEC_TYPE_LIST(SPEC_TYPE_SHORT)
#undef SPEC_TYPE_SHORT
};

static const char *const spec_type_what[] = {
#define SPEC_TYPE_WHAT(name, short_name, what) [SPEC_T_##name] = what,
    SPEC_TYPE_LIST(SPEC_TYPE_WHAT)
#undef SPEC_TYPE_WHAT
};

/* Enum fields are stored as int. */
_Static_assert(sizeof(rl_launch) == sizeof(int), "rl_launch is int-sized");
_Static_assert(sizeof(rl_data_source) == sizeof(int), "rl_data_source is int-sized");
_Static_assert(sizeof(rl_model_type) == sizeof(int), "rl_model_type is int-sized");

static const char *const spec_launch_names[] = {
    [RL_LAUNCH_LOCAL] = "local", [RL_LAUNCH_MANUAL] = "manual"};
static const char *const spec_source_names[] = {
    [RL_DATA_SYNTHETIC] = "synthetic", [RL_DATA_CSV] = "csv"};
static const char *const spec_model_names[] = {
    [RL_MODEL_LINEAR] = "linear", [RL_MODEL_LOGISTIC] = "logistic", [RL_MODEL_SOFTMAX] = "softmax"};

/* The names of an enum type's values, or NULL for other types. */
static const char *const *spec_enum_names(spec_type t, int *count)
{
#define SPEC_NAMES(a) (*count = (int)(sizeof(a) / sizeof(a[0])), a)
    switch (t) {
    case SPEC_T_LAUNCH:
        return SPEC_NAMES(spec_launch_names);
    case SPEC_T_SOURCE:
        return SPEC_NAMES(spec_source_names);
    case SPEC_T_MODEL:
        return SPEC_NAMES(spec_model_names);
    default:
        *count = 0;
        return NULL;
    }
#undef SPEC_NAMES
}

static int spec_type_is_string(spec_type t)
{
    return t == SPEC_T_STR || t == SPEC_T_ID || t == SPEC_T_URL || t == SPEC_T_LISTEN ||
           t == SPEC_T_HTTP || t == SPEC_T_FILE || t == SPEC_T_DIR;
}

/* ---- Sections and keys, from spec_keys.def ------------------------------ */

typedef enum spec_kind { SPEC_MAP, SPEC_LIST } spec_kind;
enum { SPEC_OPT = 0, SPEC_REQ = 1 };

/* The struct each section's keys fill: spec_struct_<section>. */
#define RL_SPEC_SECTION(id, parent, key, kind, type, need, help) typedef type spec_struct_##id;
#include "spec_keys.def"

enum spec_section_id {
    SPEC_S_root,
#define RL_SPEC_SECTION(id, parent, key, kind, type, need, help) SPEC_S_##id,
#include "spec_keys.def"
    SPEC_NSECTIONS
};

typedef struct spec_section {
    const char *key; /* its key in the parent's map ("" for the root) */
    int parent;      /* -1 for the root */
    spec_kind kind;
    int required;
    const char *help;
} spec_section;

static const spec_section spec_sections[SPEC_NSECTIONS] = {
    [SPEC_S_root] = {"", -1, SPEC_MAP, SPEC_REQ, "the spec"},
#define RL_SPEC_SECTION(id, parent, key, kind, type, need, help)                                   \
    [SPEC_S_##id] = {#key, SPEC_S_##parent, SPEC_##kind, SPEC_##need, help},
#include "spec_keys.def"
};

enum spec_key_id {
#define RL_SPEC_KEY(section, key, type, need, def, min, max, field, help) SPEC_K_##section##_##key,
#include "spec_keys.def"
    SPEC_NKEYS
};

enum { SPEC_B_NONE, SPEC_B_GE, SPEC_B_GT, SPEC_B_LE, SPEC_B_LT };
typedef struct spec_bound {
    double v;
    int kind;
} spec_bound;

typedef struct spec_key {
    int section;
    const char *key;
    spec_type type;
    int required;
    const char *def; /* YAML text of the default, or NULL */
    spec_bound min, max;
    size_t off, size; /* the field in spec_struct_<section> */
    const char *help;
} spec_key;

/* The bounds as written in spec_keys.def; defined only for the table. */
// clang-format off
#define NONE  {0, SPEC_B_NONE}
#define GE(x) {(x), SPEC_B_GE}
#define GT(x) {(x), SPEC_B_GT}
#define LE(x) {(x), SPEC_B_LE}
#define LT(x) {(x), SPEC_B_LT}
// clang-format on
static const spec_key spec_keys[SPEC_NKEYS] = {
#define RL_SPEC_KEY(section, key, type, need, def, min, max, field, help)                          \
    [SPEC_K_##section##_##key] = {SPEC_S_##section,                                                \
                                  #key,                                                            \
                                  SPEC_T_##type,                                                   \
                                  SPEC_##need,                                                     \
                                  def,                                                             \
                                  min,                                                             \
                                  max,                                                             \
                                  offsetof(spec_struct_##section, field),                          \
                                  sizeof(((spec_struct_##section *)0)->field),                     \
                                  help},
#include "spec_keys.def"
};
#undef NONE
#undef GE
#undef GT
#undef LE
#undef LT

/* Every field has the C type its row says. */
#define RL_SPEC_KEY(section, key, type, need, def, min, max, field, help)                          \
    _Static_assert(                                                                                \
        _Generic(((spec_struct_##section *)0)->field, SPEC_CTYPE_##type : 1, default : 0),         \
        #section "." #key ": the field's C type does not match " #type);
#include "spec_keys.def"

/* ---- Loader state ------------------------------------------------------- */

enum { SPEC_UNSET = 0, SPEC_GIVEN, SPEC_BAD };

typedef struct spec_ctx {
    rl_spec *spec;
    rli_diags diags;
    rli_yaml_node *root;      /* the parsed document, owned */
    const rli_yaml_node *top; /* the root map, or `empty` for an empty document */
    rli_yaml_node empty;
    unsigned char state[SPEC_NKEYS]; /* keys outside cluster.nodes: SPEC_UNSET/GIVEN/BAD */
    unsigned char given[SPEC_NSECTIONS];
} spec_ctx;

typedef union spec_value {
    int64_t i;
    uint64_t u;
    double d;
} spec_value;

/* snprintf for display text that may be cut to fit (names, paths in messages). */
static const char *spec_fmt(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *spec_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return buf;
}

/* True if sect is (inside) a list section: one struct per list entry. */
static int spec_in_list(int sect)
{
    for (int s = sect; s > SPEC_S_root; s = spec_sections[s].parent)
        if (spec_sections[s].kind == SPEC_LIST) return 1;
    return 0;
}

/* "cluster.nodes" for a section. */
static const char *spec_section_path(int sect, char *buf, size_t size)
{
    if (sect == SPEC_S_root || spec_sections[sect].parent == SPEC_S_root) {
        snprintf(buf, size, "%s", spec_sections[sect].key);
        return buf;
    }
    char parent[SPEC_NAME_MAX];
    spec_section_path(spec_sections[sect].parent, parent, sizeof(parent));
    return spec_fmt(buf, size, "%s.%s", parent, spec_sections[sect].key);
}

/* "where.key", or "key" at the top. */
static const char *spec_join(char *buf, size_t size, const char *where, const char *key)
{
    return spec_fmt(buf, size, "%s%s%s", where, where[0] ? "." : "", key);
}

/* " in where" or " at top level", for messages. */
static const char *spec_in(char *buf, size_t size, const char *where)
{
    if (where[0] == '\0')
        snprintf(buf, size, " at top level");
    else
        snprintf(buf, size, " in %s", where);
    return buf;
}

/*
 * The position to report for key in section sect (entry `node` of a list
 * section): its value (or its key if at_key) when written, else the nearest
 * enclosing map that is written, so that "missing" points at the map.
 */
static rli_pos spec_where(const spec_ctx *c, int sect, int node, const char *key, int at_key)
{
    int chain[8], n = 0;
    for (int s = sect; s > SPEC_S_root; s = spec_sections[s].parent) {
        RL_ASSERT(n < 8);
        chain[n++] = s;
    }
    const rli_yaml_node *map = c->top;
    while (n-- > 0) {
        const spec_section *sec = &spec_sections[chain[n]];
        const rli_yaml_node *v = rli_yaml_map_get(map, sec->key, NULL);
        if (v == NULL) return map->pos;
        if (sec->kind == SPEC_LIST) {
            if (v->kind != RLI_YAML_LIST || node < 0 || (size_t)node >= v->n) return v->pos;
            v = v->kids[node];
        }
        if (v->kind != RLI_YAML_MAP) return v->pos;
        map = v;
    }
    if (key == NULL) return map->pos;
    const rli_yaml_node *k = NULL;
    const rli_yaml_node *v = rli_yaml_map_get(map, key, &k);
    if (v == NULL) return map->pos;
    return at_key ? k->pos : v->pos;
}

static rli_pos spec_where_key(const spec_ctx *c, int k, int node, int at_key)
{
    return spec_where(c, spec_keys[k].section, node, spec_keys[k].key, at_key);
}

/* ---- Converting one scalar ---------------------------------------------- */

/* Formats a bound or value: integers without a fraction. */
static const char *spec_num(double x, char *buf, size_t size)
{
    if (x == floor(x) && fabs(x) < 1e15)
        snprintf(buf, size, "%.0f", x);
    else
        snprintf(buf, size, "%g", x);
    return buf;
}

/* Checks x against the key's bounds; on failure explains into why. */
static int spec_check_range(const spec_key *k, double x, const char *text, char *why, size_t size)
{
    int lo_ok = k->min.kind == SPEC_B_NONE || (k->min.kind == SPEC_B_GE && x >= k->min.v) ||
                (k->min.kind == SPEC_B_GT && x > k->min.v);
    int hi_ok = k->max.kind == SPEC_B_NONE || (k->max.kind == SPEC_B_LE && x <= k->max.v) ||
                (k->max.kind == SPEC_B_LT && x < k->max.v);
    if (lo_ok && hi_ok) return 0;
    char lo[32], hi[32], q[64];
    spec_num(k->min.v, lo, sizeof(lo));
    spec_num(k->max.v, hi, sizeof(hi));
    rli_diag_quote(text, strlen(text), q, sizeof(q));
    if (k->min.kind == SPEC_B_GE && k->max.kind == SPEC_B_LE)
        snprintf(why, size, "%s is out of range (must be from %s to %s)", q, lo, hi);
    else if (k->min.kind != SPEC_B_NONE && k->max.kind != SPEC_B_NONE)
        snprintf(why, size, "%s is out of range (must be %s %s and %s %s)", q,
                 k->min.kind == SPEC_B_GT ? ">" : ">=", lo,
                 k->max.kind == SPEC_B_LT ? "<" : "<=", hi);
    else if (k->min.kind != SPEC_B_NONE)
        snprintf(why, size, "%s is out of range (must be %s %s)", q,
                 k->min.kind == SPEC_B_GT ? ">" : ">=", lo);
    else
        snprintf(why, size, "%s is out of range (must be %s %s)", q,
                 k->max.kind == SPEC_B_LT ? "<" : "<=", hi);
    return -1;
}

/* A plain decimal number (no hex floats, inf or nan). */
static int spec_parse_double(const char *s, double *out)
{
    if (s[0] == '\0' || strspn(s, "0123456789+-.eE") != strlen(s)) return -1;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(d)) return -1;
    *out = d;
    return 0;
}

/* An integer: decimal, 0x hex, or an integral number such as 2e5. Sets
 * *neg and the magnitude. Returns 0, -1 if not an integer, -2 if too large. */
static int spec_parse_integer(const char *s, int *neg, uint64_t *mag)
{
    const char *p = s;
    *neg = 0;
    if (*p == '+' || *p == '-') *neg = *p++ == '-';
    int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    const char *digits = hex ? p + 2 : p;
    if (digits[0] != '\0' &&
        strspn(digits, hex ? "0123456789abcdefABCDEF" : "0123456789") == strlen(digits)) {
        errno = 0;
        unsigned long long u = strtoull(digits, NULL, hex ? 16 : 10);
        if (errno == ERANGE) return -2;
        *mag = u;
        return 0;
    }
    double d;
    if (spec_parse_double(s, &d) != 0 || d != floor(d)) return -1;
    if (fabs(d) > 9007199254740992.0) return -2; /* 2^53: beyond, "integral" means nothing */
    *neg = d < 0;
    *mag = (uint64_t)fabs(d);
    return 0;
}

/* The widest values each integer type can hold. */
static void spec_int_limits(spec_type t, double *lo, double *hi)
{
    switch (t) {
    case SPEC_T_INT:
        *lo = INT_MIN, *hi = INT_MAX;
        break;
    case SPEC_T_I64:
        *lo = -9223372036854775808.0, *hi = 9223372036854775807.0;
        break;
    default:
        *lo = 0, *hi = 18446744073709551615.0;
        break;
    }
}

static int spec_convert_integer(const spec_key *k, const rli_yaml_node *n, spec_value *v, char *why,
                                size_t size)
{
    int neg = 0;
    uint64_t mag = 0;
    char q[64];
    rli_diag_quote(n->text, n->len, q, sizeof(q));
    int rc = spec_parse_integer(n->text, &neg, &mag);
    if (rc == -1) {
        snprintf(why, size, "expected %s, got '%s'", spec_type_what[k->type], q);
        return -1;
    }
    double x = rc == -2 ? (neg ? -HUGE_VAL : HUGE_VAL) : neg ? -(double)mag : (double)mag, lo, hi;
    spec_int_limits(k->type, &lo, &hi);
    if (rc == -2 || x < lo || x > hi || (neg && mag > 0 && lo == 0)) {
        if (spec_check_range(k, x, n->text, why, size) == 0)
            snprintf(why, size, "%s is out of range for %s", q, spec_type_what[k->type]);
        return -1;
    }
    if (spec_check_range(k, x, n->text, why, size) != 0) return -1;
    if (k->type == SPEC_T_U64 || k->type == SPEC_T_SIZE)
        v->u = mag;
    else
        v->i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

static int spec_host_ok(const char *host, int bracketed)
{
    for (const char *p = host; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (!isalnum(ch) && ch != '.' && ch != '-' && ch != '_' && !(bracketed && ch == ':'))
            return 0;
    }
    return host[0] != '\0';
}

/*
 * Checks a tcp:// or tls+tcp:// URL with nng's parser plus our own rules
 * (host present, numeric port 1..65535, or 0 if any_port, nothing else). On
 * success writes the endpoint "host:port" (port without leading zeros) if
 * endpoint is not NULL; two URLs with the same endpoint (and a port other
 * than 0) would bind the same socket.
 */
static int spec_check_url(const char *s, int any_port, int http, char *endpoint, size_t esize,
                          char *why, size_t size)
{
    nng_url *u = NULL;
    char q[96];
    rli_diag_quote(s, strlen(s), q, sizeof(q));
    if (nng_url_parse(&u, s) != 0) {
        snprintf(why, size, "'%s' is not a URL (expected %s)", q,
                 http ? "http://HOST:PORT or https://HOST:PORT"
                      : "tcp://HOST:PORT or tls+tcp://HOST:PORT");
        return -1;
    }
    int rc = -1;
    char h[64];
    if (http && strcmp(u->u_scheme, "http") != 0 && strcmp(u->u_scheme, "https") != 0) {
        snprintf(why, size, "'%s' has scheme '%s' (use http:// or https://)", q,
                 rli_diag_quote(u->u_scheme, strlen(u->u_scheme), h, sizeof(h)));
    } else if (!http && strcmp(u->u_scheme, "tcp") != 0 && strcmp(u->u_scheme, "tls+tcp") != 0) {
        snprintf(why, size, "'%s' has scheme '%s' (use tcp:// or tls+tcp://)", q,
                 rli_diag_quote(u->u_scheme, strlen(u->u_scheme), h, sizeof(h)));
    } else if (u->u_userinfo != NULL || u->u_query != NULL || u->u_fragment != NULL ||
               (u->u_path[0] != '\0' && !(http && strcmp(u->u_path, "/") == 0))) {
        snprintf(why, size, "'%s' must be just SCHEME://HOST:PORT", q);
    } else if (!spec_host_ok(u->u_hostname, u->u_host[0] == '[')) {
        snprintf(why, size, "'%s' has no valid host", q);
    } else if (u->u_port[0] == '\0') {
        snprintf(why, size, "'%s' has no port (tcp://HOST:PORT)", q);
    } else {
        const char *p = u->u_port;
        unsigned long port = 99999;
        if (strspn(p, "0123456789") == strlen(p) && strlen(p) <= 5) port = strtoul(p, NULL, 10);
        if (port == 0 && any_port) {
            if (endpoint != NULL) snprintf(endpoint, esize, "%s:0", u->u_hostname);
            rc = 0;
        } else if (port < 1 || port > 65535) {
            snprintf(why, size, "'%s': port '%s' is not a number from 1 to 65535", q,
                     rli_diag_quote(p, strlen(p), h, sizeof(h)));
        } else {
            if (endpoint != NULL) snprintf(endpoint, esize, "%s:%lu", u->u_hostname, port);
            rc = 0;
        }
    }
    nng_url_free(u);
    return rc;
}

/* dir/p, or p if it is absolute or dir is "."; -1 if it does not fit. */
static int spec_resolve(const char *dir, const char *p, char *out, size_t size)
{
    int n = (p[0] == '/' || strcmp(dir, ".") == 0) ? snprintf(out, size, "%s", p)
                                                   : snprintf(out, size, "%s/%s", dir, p);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* A readable regular file (not a FIFO or device: reading those could block). */
static int spec_check_file(const char *path, char *why, size_t size)
{
    struct stat st;
    char q[RL_PATH_MAX / 4];
    rli_diag_quote(path, strlen(path), q, sizeof(q));
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            snprintf(why, size, "file '%s' does not exist", q);
        else
            snprintf(why, size, "cannot read '%s': %s", q, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, size, "'%s' is not a regular file", q);
        return -1;
    }
    if (access(path, R_OK) != 0) {
        snprintf(why, size, "cannot read '%s': %s", q, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * Converts the scalar n to key k's type: numbers into *v, strings into str
 * (RL_PATH_MAX bytes; FILE names resolved against dir). Checks type, range
 * and, for FILE, that the file is readable. On failure returns -1 with the
 * reason in why.
 */
static int spec_convert(const char *dir, const spec_key *k, const rli_yaml_node *n, spec_value *v,
                        char *str, char *why, size_t size)
{
    char q[64];
    rli_diag_quote(n->text, n->len, q, sizeof(q));
    if (strlen(n->text) != n->len) {
        snprintf(why, size, "'%s' contains a NUL character", q);
        return -1;
    }
    if (spec_type_is_string(k->type)) {
        if (n->len == 0) {
            snprintf(why, size, "must not be empty (expected %s)", spec_type_what[k->type]);
            return -1;
        }
        if (n->len >= k->size) {
            snprintf(why, size, "is too long (%zu characters; at most %zu)", n->len, k->size - 1);
            return -1;
        }
        memcpy(str, n->text, n->len + 1);
    }
    switch (k->type) {
    case SPEC_T_STR:
    case SPEC_T_DIR:
        return 0;
    case SPEC_T_ID:
        if (!isalnum((unsigned char)str[0]) && str[0] != '_') goto bad_id;
        for (const char *p = str; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') goto bad_id;
        return 0;
    bad_id:
        snprintf(why, size, "'%s' is not a valid name (use letters, digits, '.', '_' and '-')", q);
        return -1;
    case SPEC_T_URL:
    case SPEC_T_LISTEN:
        return spec_check_url(str, k->type == SPEC_T_LISTEN, 0, NULL, 0, why, size);
    case SPEC_T_HTTP:
        return spec_check_url(str, 1, 1, NULL, 0, why, size);
    case SPEC_T_FILE:
        if (spec_resolve(dir, n->text, str, RL_PATH_MAX) != 0) {
            snprintf(why, size, "'%s' is too long once joined to '%s'", q, dir);
            return -1;
        }
        return spec_check_file(str, why, size);
    case SPEC_T_INT:
    case SPEC_T_I64:
    case SPEC_T_U64:
    case SPEC_T_SIZE:
        if (n->quoted) goto not_quoted;
        return spec_convert_integer(k, n, v, why, size);
    case SPEC_T_DBL:
        if (n->quoted) goto not_quoted;
        if (spec_parse_double(n->text, &v->d) != 0) {
            snprintf(why, size, "expected %s, got '%s'", spec_type_what[k->type], q);
            return -1;
        }
        return spec_check_range(k, v->d, n->text, why, size);
    case SPEC_T_BOOL: {
        static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no",
                                                                               "off"};
        if (n->quoted) goto not_quoted;
        for (size_t i = 0; i < 3; i++) {
            if (strcasecmp(n->text, yes[i]) == 0 || strcasecmp(n->text, no[i]) == 0) {
                v->i = strcasecmp(n->text, yes[i]) == 0;
                return 0;
            }
        }
        snprintf(why, size, "expected true or false, got '%s'", q);
        return -1;
    }
    case SPEC_T_LAUNCH:
    case SPEC_T_SOURCE:
    case SPEC_T_MODEL: {
        int count;
        const char *const *names = spec_enum_names(k->type, &count);
        for (int i = 0; i < count; i++) {
            if (strcmp(n->text, names[i]) == 0) {
                v->i = i;
                return 0;
            }
        }
        snprintf(why, size, "expected %s, got '%s'", spec_type_what[k->type], q);
        return -1;
    }
    case SPEC_T_ARGV:
    case SPEC_T_ENV:
        break; /* lists and maps: spec_load_strv */
    }
    RL_ASSERT(0 && "unknown spec type");
    return -1;
not_quoted:
    snprintf(why, size, "expected %s, got the quoted string '%s' (write it without quotes)",
             spec_type_what[k->type], q);
    return -1;
}

static void spec_store(const spec_key *k, void *base, const spec_value *v, const char *str)
{
    char *p = (char *)base + k->off;
    if (spec_type_is_string(k->type)) {
        size_t len = strlen(str);
        RL_ASSERT(len < k->size);
        memcpy(p, str, len + 1);
        return;
    }
    switch (k->type) {
    case SPEC_T_I64:
        memcpy(p, &v->i, sizeof(int64_t));
        break;
    case SPEC_T_U64:
        memcpy(p, &v->u, sizeof(uint64_t));
        break;
    case SPEC_T_DBL:
        memcpy(p, &v->d, sizeof(double));
        break;
    case SPEC_T_SIZE: {
        size_t x = (size_t)v->u;
        memcpy(p, &x, sizeof(x));
        break;
    }
    default: { /* INT, BOOL and the enums */
        int x = (int)v->i;
        RL_ASSERT(k->size == sizeof(int));
        memcpy(p, &x, sizeof(x));
        break;
    }
    }
}

/* The field of key k in base, as text. */
static const char *spec_format(const spec_key *k, const void *base, char *buf, size_t size)
{
    const char *p = (const char *)base + k->off;
    int i;
    int64_t i64;
    uint64_t u64;
    double d;
    size_t z;
    if (spec_type_is_string(k->type)) {
        snprintf(buf, size, "%s", p);
        return buf;
    }
    if (k->type == SPEC_T_ARGV || k->type == SPEC_T_ENV) {
        rl_strv v;
        memcpy(&v, p, sizeof(v));
        buf[0] = '\0';
        for (int j = 0, off = 0; j < v.n && off < (int)size; j++)
            off += snprintf(buf + off, size - (size_t)off, "%s%s", j ? " " : "", v.v[j]);
        return buf;
    }
    switch (k->type) {
    case SPEC_T_I64:
        memcpy(&i64, p, sizeof(i64));
        snprintf(buf, size, "%" PRId64, i64);
        break;
    case SPEC_T_U64:
        memcpy(&u64, p, sizeof(u64));
        snprintf(buf, size, "%" PRIu64, u64);
        break;
    case SPEC_T_SIZE:
        memcpy(&z, p, sizeof(z));
        snprintf(buf, size, "%zu", z);
        break;
    case SPEC_T_DBL:
        memcpy(&d, p, sizeof(d));
        snprintf(buf, size, "%g", d);
        break;
    case SPEC_T_BOOL:
        memcpy(&i, p, sizeof(i));
        snprintf(buf, size, "%s", i ? "true" : "false");
        break;
    default: {
        int count;
        const char *const *names = spec_enum_names(k->type, &count);
        memcpy(&i, p, sizeof(i));
        if (names != NULL && i >= 0 && i < count)
            snprintf(buf, size, "%s", names[i]);
        else
            snprintf(buf, size, "%d", i);
    }
    }
    return buf;
}

/* Applies the defaults of every key of sect (and of its map sub-sections). */
static void spec_apply_defaults(int sect, void *base)
{
    for (int k = 0; k < SPEC_NKEYS; k++) {
        const spec_key *key = &spec_keys[k];
        int s = key->section;
        while (s != sect && s > SPEC_S_root && spec_sections[s].kind == SPEC_MAP)
            s = spec_sections[s].parent;
        if (s != sect || key->def == NULL) continue;
        rli_yaml_node n = {
            .kind = RLI_YAML_SCALAR, .text = (char *)key->def, .len = strlen(key->def)};
        spec_value v = {0};
        char str[RL_PATH_MAX], why[256];
        int rc = spec_convert(".", key, &n, &v, str, why, sizeof(why));
        if (rc != 0) fprintf(stderr, "ringleader: bad default for %s: %s\n", key->key, why);
        RL_ASSERT(rc == 0 && "every default in spec_keys.def is valid");
        spec_store(key, base, &v, str);
    }
}

/* ---- Loading maps ------------------------------------------------------- */

static void spec_load_map(spec_ctx *c, const rli_yaml_node *map, int sect, void *base,
                          const char *where);

/* A list of strings (ARGV) or a map of names to strings (ENV, stored as
 * NAME=value): copied into an rl_strv the spec owns (rl_spec_free). */
static void spec_load_strv(spec_ctx *c, const spec_key *key, const rli_yaml_node *n, void *base,
                           const char *name)
{
    bool env = key->type == SPEC_T_ENV;
    char got[96];
    if (n->kind != (env ? RLI_YAML_MAP : RLI_YAML_LIST) || (!env && n->n == 0)) {
        rli_diag_at(&c->diags, n->pos, "%s: expected %s, got %s", name, spec_type_what[key->type],
                    rli_yaml_describe(n, got, sizeof(got)));
        return;
    }
    rl_strv v = {rli_calloc(n->n + 1, sizeof(char *)), 0};
    for (size_t i = 0; i < n->n; i += env ? 2 : 1) {
        const rli_yaml_node *e = n->kids[i], *val = env ? n->kids[i + 1] : NULL;
        const rli_yaml_node *bad = e->kind != RLI_YAML_SCALAR ? e
                                   : val != NULL && val->kind != RLI_YAML_SCALAR ? val
                                                                                : NULL;
        if (bad != NULL || strlen(e->text) != e->len || (env && e->len == 0)) {
            rli_diag_at(&c->diags, (bad ? bad : e)->pos, "%s: expected %s, got %s", name,
                        spec_type_what[key->type],
                        rli_yaml_describe(bad ? bad : e, got, sizeof(got)));
            continue;
        }
        if (!env) {
            v.v[v.n++] = rli_strdup(e->text);
            continue;
        }
        size_t len = e->len + val->len + 2;
        v.v[v.n] = rli_malloc(len);
        snprintf(v.v[v.n++], len, "%s=%s", e->text, val->text);
    }
    rl_strv old;
    memcpy(&old, (char *)base + key->off, sizeof(old));
    rl_strv_free(&old);
    memcpy((char *)base + key->off, &v, sizeof(v));
}

static void spec_load_key(spec_ctx *c, int k, const rli_yaml_node *n, void *base, const char *where)
{
    const spec_key *key = &spec_keys[k];
    int top = !spec_in_list(key->section);
    char name[SPEC_NAME_MAX], got[96], why[RL_PATH_MAX / 2], str[RL_PATH_MAX];
    spec_value v = {0};
    spec_join(name, sizeof(name), where, key->key);
    if (top) c->state[k] = SPEC_BAD;
    if (key->type == SPEC_T_ARGV || key->type == SPEC_T_ENV) {
        size_t errors = c->diags.n;
        spec_load_strv(c, key, n, base, name);
        if (top && c->diags.n == errors) c->state[k] = SPEC_GIVEN;
        return;
    }
    if (n->kind != RLI_YAML_SCALAR || rli_yaml_is_null(n)) {
        rli_diag_at(&c->diags, n->pos, "%s: expected %s, got %s", name, spec_type_what[key->type],
                    rli_yaml_describe(n, got, sizeof(got)));
        return;
    }
    if (spec_convert(c->spec->dir, key, n, &v, str, why, sizeof(why)) != 0) {
        rli_diag_at(&c->diags, n->pos, "%s: %s", name, why);
        return;
    }
    spec_store(key, base, &v, str);
    if (top) c->state[k] = SPEC_GIVEN;
}

/* Loads the list of nodes: one rl_spec_node per entry. */
static void spec_load_nodes(spec_ctx *c, const rli_yaml_node *n, const char *where)
{
    rl_spec *s = c->spec;
    char got[96], item[SPEC_NAME_MAX];
    if (rli_yaml_is_null(n) || (n->kind == RLI_YAML_LIST && n->n == 0)) {
        rli_diag_at(&c->diags, n->pos, "%s: list at least one node", where);
        return;
    }
    if (n->kind != RLI_YAML_LIST) {
        rli_diag_at(&c->diags, n->pos, "%s: expected a list of nodes, got %s", where,
                    rli_yaml_describe(n, got, sizeof(got)));
        return;
    }
    if (n->n > RL_SPEC_MAX_NODES) {
        rli_diag_at(&c->diags, n->pos, "%s: %zu nodes; at most %d", where, n->n, RL_SPEC_MAX_NODES);
        return;
    }
    RL_ASSERT(s->nodes == NULL); /* a second `nodes:` is a duplicate key, never loaded */
    s->nodes = rli_calloc(n->n, sizeof(s->nodes[0]));
    s->n_nodes = (int)n->n;
    for (size_t i = 0; i < n->n; i++) {
        const rli_yaml_node *e = n->kids[i];
        spec_apply_defaults(SPEC_S_cluster_nodes, &s->nodes[i]);
        spec_fmt(item, sizeof(item), "%s[%zu]", where, i);
        if (e->kind != RLI_YAML_MAP) {
            rli_diag_at(&c->diags, e->pos, "%s: expected a map with id and listen, got %s", item,
                        rli_yaml_describe(e, got, sizeof(got)));
            continue;
        }
        spec_load_map(c, e, SPEC_S_cluster_nodes, &s->nodes[i], item);
    }
}

static void spec_load_section(spec_ctx *c, int sect, const rli_yaml_node *n, void *base,
                              const char *where)
{
    char path[SPEC_NAME_MAX], got[96];
    spec_join(path, sizeof(path), where, spec_sections[sect].key);
    if (!spec_in_list(sect)) c->given[sect] = 1;
    if (spec_sections[sect].kind == SPEC_LIST) {
        RL_ASSERT(sect == SPEC_S_cluster_nodes); /* the only list; see spec_keys.def */
        spec_load_nodes(c, n, path);
        return;
    }
    if (rli_yaml_is_null(n)) { /* `security:` with nothing under it: an empty map */
        rli_yaml_node empty = {.kind = RLI_YAML_MAP, .pos = n->pos};
        spec_load_map(c, &empty, sect, base, path);
        return;
    }
    if (n->kind != RLI_YAML_MAP) {
        rli_diag_at(&c->diags, n->pos, "%s: expected a map, got %s", path,
                    rli_yaml_describe(n, got, sizeof(got)));
        return;
    }
    spec_load_map(c, n, sect, base, path);
}

/* Edit distance, for "did you mean"; both strings at most SPEC_SUGGEST_MAX_LEN. */
static size_t spec_edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t row[SPEC_SUGGEST_MAX_LEN + 1];
    RL_ASSERT(lb <= SPEC_SUGGEST_MAX_LEN);
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Reports an unknown key, with the closest known key of the section (edit
 * distance <= 2), or the section where a key of that name belongs. */
static void spec_unknown_key(spec_ctx *c, int sect, const rli_yaml_node *k, const char *where)
{
    char q[80], in[SPEC_NAME_MAX + 16], other[SPEC_NAME_MAX];
    const char *best = NULL;
    size_t best_d = 3;
    rli_diag_quote(k->text, k->len, q, sizeof(q));
    spec_in(in, sizeof(in), where);
    if (k->len <= SPEC_SUGGEST_MAX_LEN) {
        for (int i = 0; i < SPEC_NKEYS + SPEC_NSECTIONS; i++) {
            int is_key = i < SPEC_NKEYS;
            int s = is_key ? spec_keys[i].section : spec_sections[i - SPEC_NKEYS].parent;
            const char *name = is_key ? spec_keys[i].key : spec_sections[i - SPEC_NKEYS].key;
            if (s != sect || strlen(name) > SPEC_SUGGEST_MAX_LEN) continue;
            size_t d = spec_edit_distance(k->text, k->len, name, strlen(name));
            if (d < best_d && d < k->len) best = name, best_d = d;
        }
    }
    if (best != NULL) {
        rli_diag_at(&c->diags, k->pos, "unknown key '%s'%s (did you mean '%s'?)", q, in, best);
        return;
    }
    for (int i = 0; i < SPEC_NKEYS; i++) {
        if (spec_keys[i].section != sect && rli_yaml_scalar_is(k, spec_keys[i].key)) {
            int s = spec_keys[i].section;
            spec_section_path(s, other, sizeof(other));
            rli_diag_at(&c->diags, k->pos, "unknown key '%s'%s (it belongs in %s%s)", q, in,
                        spec_sections[s].kind == SPEC_LIST ? "each entry of " : "", other);
            return;
        }
    }
    rli_diag_at(&c->diags, k->pos, "unknown key '%s'%s", q, in);
}

static int spec_same_scalar(const rli_yaml_node *a, const rli_yaml_node *b)
{
    return a->kind == RLI_YAML_SCALAR && b->kind == RLI_YAML_SCALAR && a->len == b->len &&
           memcmp(a->text, b->text, a->len) == 0;
}

/* Loads every entry of map into base as keys of section sect, then reports
 * the required keys and sections that are missing. */
static void spec_load_map(spec_ctx *c, const rli_yaml_node *map, int sect, void *base,
                          const char *where)
{
    char in[SPEC_NAME_MAX + 16], q[80], got[96];
    spec_in(in, sizeof(in), where);
    if (map->n / 2 > SPEC_MAP_MAX_ENTRIES) {
        rli_diag_at(&c->diags, map->pos, "%zu keys%s; at most %d", map->n / 2, in,
                    SPEC_MAP_MAX_ENTRIES);
        return;
    }
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const rli_yaml_node *k = map->kids[i], *v = map->kids[i + 1];
        if (k->kind != RLI_YAML_SCALAR) {
            rli_diag_at(&c->diags, k->pos, "a key must be a name, not %s",
                        rli_yaml_describe(k, got, sizeof(got)));
            continue;
        }
        size_t first = i;
        for (size_t j = 0; j < i && first == i; j += 2)
            if (spec_same_scalar(map->kids[j], k)) first = j;
        if (first != i) {
            rli_diag_at(&c->diags, k->pos, "duplicate key '%s'%s (first at line %zu)",
                        rli_diag_quote(k->text, k->len, q, sizeof(q)), in,
                        map->kids[first]->pos.line + 1);
            continue;
        }
        int found = 0;
        for (int kk = 0; kk < SPEC_NKEYS && !found; kk++) {
            if (spec_keys[kk].section == sect && rli_yaml_scalar_is(k, spec_keys[kk].key)) {
                spec_load_key(c, kk, v, base, where);
                found = 1;
            }
        }
        for (int s = 0; s < SPEC_NSECTIONS && !found; s++) {
            if (spec_sections[s].parent == sect && rli_yaml_scalar_is(k, spec_sections[s].key)) {
                spec_load_section(c, s, v, base, where);
                found = 1;
            }
        }
        if (!found) spec_unknown_key(c, sect, k, where);
    }
    for (int kk = 0; kk < SPEC_NKEYS; kk++) {
        const spec_key *key = &spec_keys[kk];
        if (key->section == sect && key->required && !rli_yaml_map_get(map, key->key, NULL))
            rli_diag_at(&c->diags, map->pos, "missing required key '%s'%s", key->key, in);
    }
    for (int s = 0; s < SPEC_NSECTIONS; s++) {
        const spec_section *sec = &spec_sections[s];
        if (sec->parent == sect && sec->required && !rli_yaml_map_get(map, sec->key, NULL))
            rli_diag_at(&c->diags, map->pos, "missing required key '%s'%s", sec->key, in);
    }
}

/* ---- Rules across keys -------------------------------------------------- */

/*
 * Why key k has no effect in spec s, or NULL if it has one; *decided_by (if
 * not NULL) is the key that decides. The one place that says which keys
 * depend on which: used to reject such keys and to leave them out of
 * describe.
 */
static const char *spec_key_unused(const rl_spec *s, int k, int *decided_by)
{
    int by = -1;
    const char *why = NULL;
    switch (k) {
    case SPEC_K_data_rows:
    case SPEC_K_data_noise:
        by = SPEC_K_data_source;
        if (s->source != RL_DATA_SYNTHETIC) why = "only used with data.source: synthetic";
        break;
    case SPEC_K_data_csv_path:
    case SPEC_K_data_csv_label:
    case SPEC_K_data_csv_standardize:
        by = SPEC_K_data_source;
        if (s->source != RL_DATA_CSV) why = "only used with data.source: csv";
        break;
    case SPEC_K_model_classes:
        by = SPEC_K_model_type;
        if (s->model != RL_MODEL_SOFTMAX) why = "only used with model.type: softmax";
        break;
    default:
        break;
    }
    if (decided_by != NULL) *decided_by = by;
    return why;
}

/* Every tls+tcp:// URL needs security.tls. */
static void spec_check_tls_url(spec_ctx *c, const char *url, const char *name, rli_pos pos)
{
    if (strncmp(url, "tls+tcp://", 10) == 0 && !c->given[SPEC_S_security_tls])
        rli_diag_at(&c->diags, pos, "%s: a tls+tcp:// URL needs security.tls (cert, key and ca)",
                    name);
}

/* The scheme nodes get when the spec does not list them: the coordinator's. */
static const char *spec_node_scheme(const rl_spec *s)
{
    return strncmp(s->coordinator, "tls+tcp://", 10) == 0 ? "tls+tcp" : "tcp";
}

/* Fills s->nodes from the hostfile: HOST-1..HOST-K for a host of K slots,
 * each listening on port 0 of its host. */
static void spec_nodes_from_hostfile(spec_ctx *c)
{
    rl_spec *s = c->spec;
    rli_hostfile hf;
    rli_pos at = spec_where_key(c, SPEC_K_cluster_nodes_file, 0, 0);
    if (rli_hostfile_load(s->nodes_file, &hf) != RL_OK) {
        for (int i = 0; i < hf.n_errors && i < RLI_HOSTFILE_MAX_ERRORS; i++)
            rli_diag_at(&c->diags, at, "cluster.nodes_file: %s", hf.errors[i]);
        if (hf.n_errors > RLI_HOSTFILE_MAX_ERRORS)
            rli_diag_at(&c->diags, at, "cluster.nodes_file: ... and %d more problems",
                        hf.n_errors - RLI_HOSTFILE_MAX_ERRORS);
        rli_hostfile_fini(&hf);
        return;
    }
    s->nodes = rli_calloc((size_t)hf.total_slots, sizeof(s->nodes[0]));
    for (size_t h = 0; h < hf.n; h++) {
        for (int k = 1; k <= hf.hosts[h].slots; k++) {
            rl_spec_node *nd = &s->nodes[s->n_nodes++];
            spec_apply_defaults(SPEC_S_cluster_nodes, nd);
            /* Both fit: a host is at most RLI_HOSTFILE_HOST_MAX, k at most 1024. */
            spec_fmt(nd->id, sizeof(nd->id), "%s-%d", hf.hosts[h].name, k);
            spec_fmt(nd->listen, sizeof(nd->listen), "%s://%s:0", spec_node_scheme(s),
                     hf.hosts[h].name);
        }
    }
    rli_hostfile_fini(&hf);
}

/* Exactly one of cluster.nodes and cluster.nodes_file; the hostfile read. */
static void spec_check_node_source(spec_ctx *c)
{
    const rli_yaml_node *cluster = rli_yaml_map_get(c->top, "cluster", NULL);
    if (cluster == NULL || cluster->kind != RLI_YAML_MAP) return; /* reported already */
    int listed = rli_yaml_map_get(cluster, "nodes", NULL) != NULL;
    int file = c->state[SPEC_K_cluster_nodes_file] != SPEC_UNSET;
    if (listed && file)
        rli_diag_at(&c->diags, spec_where_key(c, SPEC_K_cluster_nodes_file, 0, 1),
                    "cluster.nodes_file and cluster.nodes are exclusive: list the nodes in one "
                    "of them (nodes at line %zu)",
                    spec_where(c, SPEC_S_cluster, 0, "nodes", 1).line + 1);
    else if (!listed && !file)
        rli_diag_at(&c->diags, cluster->pos,
                    "missing required key 'nodes' in cluster (or name a hostfile in "
                    "cluster.nodes_file)");
    else if (file && c->state[SPEC_K_cluster_nodes_file] == SPEC_GIVEN)
        spec_nodes_from_hostfile(c);
}

/* Node ids unique; listen addresses unique and not the coordinator's. */
static void spec_check_nodes(spec_ctx *c)
{
    rl_spec *s = c->spec;
    char coord[RL_URL_MAX + 16] = "", why[256], name[SPEC_NAME_MAX];
    char(*ep)[RL_URL_MAX + 16] = rli_calloc((size_t)s->n_nodes + 1, sizeof(*ep));
    rli_pos coord_pos = spec_where_key(c, SPEC_K_cluster_coordinator, 0, 0);

    if (c->state[SPEC_K_cluster_coordinator] == SPEC_GIVEN) {
        spec_check_url(s->coordinator, 0, 0, coord, sizeof(coord), why, sizeof(why));
        spec_check_tls_url(c, s->coordinator, "cluster.coordinator", coord_pos);
    }
    /* The monitor's https:// uses the cluster's certificate, key and CA. */
    if (c->state[SPEC_K_monitor_listen] == SPEC_GIVEN &&
        strncmp(s->monitor_listen, "https://", 8) == 0 && !c->given[SPEC_S_security_tls])
        rli_diag_at(&c->diags, spec_where_key(c, SPEC_K_monitor_listen, 0, 0),
                    "monitor.listen: an https:// URL needs security.tls (cert, key and ca)");
    for (int i = 0; i < s->n_nodes; i++) {
        const rl_spec_node *nd = &s->nodes[i];
        for (int j = 0; j < i && nd->id[0] != '\0'; j++) {
            if (strcmp(nd->id, s->nodes[j].id) == 0) {
                rli_diag_at(&c->diags, spec_where_key(c, SPEC_K_cluster_nodes_id, i, 0),
                            "cluster.nodes[%d].id: duplicate node id '%s' (also cluster.nodes[%d] "
                            "at line %zu)",
                            i, nd->id, j,
                            spec_where_key(c, SPEC_K_cluster_nodes_id, j, 0).line + 1);
                break;
            }
        }
        if (nd->listen[0] == '\0') continue;
        rli_pos at = spec_where_key(c, SPEC_K_cluster_nodes_listen, i, 0);
        snprintf(name, sizeof(name), "cluster.nodes[%d].listen", i);
        spec_check_url(nd->listen, 1, 0, ep[i], sizeof(ep[i]), why, sizeof(why));
        spec_check_tls_url(c, nd->listen, name, at);
        size_t elen = strlen(ep[i]);
        if (elen >= 2 && strcmp(ep[i] + elen - 2, ":0") == 0)
            continue; /* any port: never a clash */
        if (coord[0] != '\0' && strcmp(ep[i], coord) == 0) {
            rli_diag_at(&c->diags, at, "%s: %s is also the coordinator's address (line %zu)", name,
                        ep[i], coord_pos.line + 1);
            continue;
        }
        for (int j = 0; j < i; j++) {
            if (ep[j][0] != '\0' && strcmp(ep[i], ep[j]) == 0) {
                rli_diag_at(&c->diags, at,
                            "%s: duplicate listen address %s (also cluster.nodes[%d] at line %zu)",
                            name, ep[i], j,
                            spec_where_key(c, SPEC_K_cluster_nodes_listen, j, 0).line + 1);
                break;
            }
        }
    }
    free(ep);
    if (c->state[SPEC_K_cluster_min_nodes] == SPEC_GIVEN && s->n_nodes > 0 &&
        s->min_nodes > s->n_nodes)
        rli_diag_at(&c->diags, spec_where_key(c, SPEC_K_cluster_min_nodes, 0, 0),
                    "cluster.min_nodes: %d is more than the %d nodes listed", s->min_nodes,
                    s->n_nodes);
}

/* One field of a CSV header line at *p: trimmed, unquoted, cut to size.
 * Advances *p; returns 1 if a comma (so another field) follows. */
static int spec_csv_field(const char **p, const char *end, char *f, size_t size)
{
    const char *q = *p;
    size_t n = 0;
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    if (q < end && *q == '"') {
        for (q++; q < end; q++) {
            if (*q == '"' && (q + 1 >= end || q[1] != '"')) {
                q++;
                break;
            }
            if (*q == '"') q++; /* "" is a quote */
            if (n + 1 < size) f[n++] = *q;
        }
        while (q < end && *q != ',')
            q++;
    } else {
        while (q < end && *q != ',')
            if (n + 1 < size)
                f[n++] = *q++;
            else
                q++;
        while (n > 0 && (f[n - 1] == ' ' || f[n - 1] == '\t'))
            n--;
    }
    f[n] = '\0';
    *p = q < end ? q + 1 : q;
    return q < end;
}

/* data.source: csv: reads the header row; the label must be a column, and
 * the other columns are the features. */
static void spec_check_csv(spec_ctx *c)
{
    rl_spec *s = c->spec;
    rli_pos at_path = spec_where_key(c, SPEC_K_data_csv_path, 0, 0);
    char q[128], field[256];
    rli_diag_quote(s->csv_path, strlen(s->csv_path), q, sizeof(q));
    int fd = open(s->csv_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        rli_diag_at(&c->diags, at_path, "data.csv.path: cannot open '%s': %s", q, strerror(errno));
        return;
    }
    char *buf = rli_malloc(SPEC_CSV_HEADER_MAX + 1);
    size_t n = 0;
    const char *nl = NULL;
    while (n < SPEC_CSV_HEADER_MAX + 1 && nl == NULL) {
        ssize_t r = read(fd, buf + n, SPEC_CSV_HEADER_MAX + 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        nl = memchr(buf + n, '\n', (size_t)r);
        n += (size_t)r;
    }
    close(fd);
    const char *p = buf, *end = nl ? nl : buf + n;
    if (nl == NULL && n > SPEC_CSV_HEADER_MAX) {
        rli_diag_at(&c->diags, at_path, "data.csv.path: the header row of '%s' is over %u bytes", q,
                    SPEC_CSV_HEADER_MAX);
        goto out;
    }
    if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    if (end > p && end[-1] == '\r') end--;
    if (end == p) {
        rli_diag_at(&c->diags, at_path, "data.csv.path: '%s' has no header row", q);
        goto out;
    }
    int cols = 0, label_found = 0, more = 1;
    while (more) {
        more = spec_csv_field(&p, end, field, sizeof(field));
        cols++;
        if (strcmp(field, s->csv_label) == 0) label_found = 1;
    }
    if (c->state[SPEC_K_data_csv_label] != SPEC_GIVEN) goto out;
    if (!label_found) {
        char hq[128];
        rli_diag_at(&c->diags, spec_where_key(c, SPEC_K_data_csv_label, 0, 0),
                    "data.csv.label: no column '%s' in the header of '%s' (%s)", s->csv_label, q,
                    rli_diag_quote(buf, (size_t)(end - buf), hq, sizeof(hq)));
    } else if (cols < 2 || cols - 1 > (int)spec_keys[SPEC_K_data_features].max.v) {
        rli_diag_at(&c->diags, at_path,
                    "data.csv.path: '%s' has %d feature columns besides '%s' (must be 1 to %d)", q,
                    cols - 1, s->csv_label, (int)spec_keys[SPEC_K_data_features].max.v);
    } else if (c->state[SPEC_K_data_features] == SPEC_GIVEN && s->features != cols - 1) {
        rli_diag_at(&c->diags, spec_where_key(c, SPEC_K_data_features, 0, 0),
                    "data.features: %d, but '%s' has %d feature columns", s->features, q, cols - 1);
    } else {
        s->features = cols - 1;
    }
out:
    free(buf);
}

/*
 * allreduce.tcp_congestion, given and valid, names an algorithm: with
 * launch: local every node runs on this host, so its kernel must offer it
 * (nodes started by hand check their own when the ring forms,
 * rl_ring_form).
 */
static void spec_check_congestion(spec_ctx *c)
{
    const rl_spec *s = c->spec;
    const char *name = s->tcp_congestion;
    if (s->launch != RL_LAUNCH_LOCAL || strcmp(name, "auto") == 0 || strcmp(name, "system") == 0)
        return;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_congestion_control", "r");
    if (f == NULL) return; /* not Linux, or no /proc: the ring will tell */
    char line[512] = "";
    bool found = false;
    if (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char copy[512], *save = NULL;
        snprintf(copy, sizeof(copy), "%s", line);
        for (char *t = strtok_r(copy, " \t", &save); t != NULL && !found;
             t = strtok_r(NULL, " \t", &save))
            found = strcmp(t, name) == 0;
    }
    fclose(f);
    if (!found)
        rli_diag_at(&c->diags, spec_where_key(c, SPEC_K_allreduce_tcp_congestion, 0, 0),
                    "allreduce.tcp_congestion: '%s' is not a TCP congestion control this host's "
                    "kernel offers (it has: %s; a module may need loading: modprobe tcp_%s), or "
                    "use auto or system",
                    name, line, name);
}

static void spec_check_rules(spec_ctx *c)
{
    rl_spec *s = c->spec;

    spec_check_node_source(c);
    spec_check_nodes(c);

    /* Keys given where they have no effect. */
    for (int k = 0; k < SPEC_NKEYS; k++) {
        int by;
        const char *why = spec_key_unused(s, k, &by);
        if (why == NULL || c->state[k] != SPEC_GIVEN || c->state[by] == SPEC_BAD) continue;
        if (spec_keys[k].section == SPEC_S_data_csv) continue; /* reported once, below */
        char sect[SPEC_NAME_MAX], name[SPEC_NAME_MAX];
        spec_join(name, sizeof(name), spec_section_path(spec_keys[k].section, sect, sizeof(sect)),
                  spec_keys[k].key);
        rli_diag_at(&c->diags, spec_where_key(c, k, 0, 1), "%s: %s", name, why);
    }
    if (c->state[SPEC_K_data_source] != SPEC_BAD) {
        if (s->source == RL_DATA_CSV && !c->given[SPEC_S_data_csv])
            rli_diag_at(&c->diags, spec_where(c, SPEC_S_data, 0, NULL, 0),
                        "missing required key 'csv' in data (data.source: csv needs "
                        "csv: {path, label})");
        if (s->source != RL_DATA_CSV && c->given[SPEC_S_data_csv])
            rli_diag_at(&c->diags, spec_where(c, SPEC_S_data, 0, "csv", 1),
                        "data.csv: only used with data.source: csv");
        if (s->source == RL_DATA_CSV) {
            s->rows = 0; /* unknown until the data is read */
            s->noise = 0;
            if (c->state[SPEC_K_data_csv_path] == SPEC_GIVEN) spec_check_csv(c);
        }
    }

    if (c->state[SPEC_K_model_type] != SPEC_BAD) {
        if (s->model == RL_MODEL_SOFTMAX && c->state[SPEC_K_model_classes] == SPEC_UNSET)
            rli_diag_at(&c->diags, spec_where(c, SPEC_S_model, 0, NULL, 0),
                        "missing required key 'classes' in model (model.type: softmax needs "
                        "classes >= 2)");
        if (s->model != RL_MODEL_SOFTMAX) s->classes = 1;
    }

    if (c->state[SPEC_K_fault_tolerance_heartbeat_ms] != SPEC_BAD &&
        c->state[SPEC_K_fault_tolerance_failure_timeout_ms] != SPEC_BAD &&
        s->failure_timeout_ms <= s->heartbeat_ms) {
        int at = c->state[SPEC_K_fault_tolerance_failure_timeout_ms] == SPEC_GIVEN
                     ? SPEC_K_fault_tolerance_failure_timeout_ms
                     : SPEC_K_fault_tolerance_heartbeat_ms;
        rli_diag_at(&c->diags, spec_where_key(c, at, 0, 0),
                    "fault_tolerance.failure_timeout_ms (%d) must be greater than heartbeat_ms "
                    "(%d)",
                    s->failure_timeout_ms, s->heartbeat_ms);
    }

    if (c->state[SPEC_K_allreduce_tcp_congestion] == SPEC_GIVEN &&
        c->state[SPEC_K_cluster_launch] != SPEC_BAD)
        spec_check_congestion(c);

    if (c->state[SPEC_K_output_dir] != SPEC_GIVEN)
        snprintf(s->out_dir, sizeof(s->out_dir), "runs/%s", s->name);
}

/* ---- Public API --------------------------------------------------------- */

/* The directory part of name: "." if none. */
static void spec_dirname(const char *name, char *dir, size_t size)
{
    const char *slash = strrchr(name, '/');
    if (slash == NULL)
        snprintf(dir, size, ".");
    else if (slash == name)
        snprintf(dir, size, "/");
    else
        snprintf(dir, size, "%.*s", (int)(slash - name), name);
}

int rl_spec_load_text(const char *name, const char *text, size_t len, rl_spec **out, FILE *err)
{
    spec_ctx c;
    int rc = RL_OK;
    const unsigned char *u = (const unsigned char *)text;

    *out = NULL;
    memset(&c, 0, sizeof(c));
    rli_diags_init(&c.diags, name, text, len);
    c.spec = rli_calloc(1, sizeof(*c.spec));
    if (strlen(name) >= RL_PATH_MAX) {
        rli_diag_file(&c.diags, "the file name is too long");
        goto out;
    }
    snprintf(c.spec->path, sizeof(c.spec->path), "%s", name);
    spec_dirname(name, c.spec->dir, sizeof(c.spec->dir));
    if (len > RL_SPEC_MAX_BYTES) {
        rli_diag_file(&c.diags, "the spec is over %u bytes", RL_SPEC_MAX_BYTES);
        goto out;
    }
    if (len >= 2 && ((u[0] == 0xFE && u[1] == 0xFF) || (u[0] == 0xFF && u[1] == 0xFE))) {
        rli_diag_file(&c.diags, "the spec is UTF-16; write it in UTF-8");
        goto out;
    }
    spec_apply_defaults(SPEC_S_root, c.spec);
    rc = rli_yaml_parse(text, len, &c.root, &c.diags);
    if (rc != RL_OK) goto out;

    c.empty.kind = RLI_YAML_MAP;
    c.top = c.root;
    if (c.root == NULL || rli_yaml_is_null(c.root)) {
        if (c.root != NULL) c.empty.pos = c.root->pos;
        c.top = &c.empty;
    }
    if (c.top->kind != RLI_YAML_MAP) {
        char got[96];
        rli_diag_at(&c.diags, c.top->pos, "expected a map of sections (cluster, data, ...), got %s",
                    rli_yaml_describe(c.top, got, sizeof(got)));
        goto out;
    }
    spec_load_map(&c, c.top, SPEC_S_root, c.spec, "");
    spec_check_rules(&c);

out:
    if (rli_diags_count(&c.diags) == 0) {
        *out = c.spec;
        rc = RL_OK;
    } else {
        char first[512];
        if (err != NULL) rli_diags_print(&c.diags, err);
        rli_diags_first(&c.diags, first, sizeof(first));
        rc = rli_err(rc == RL_ENOMEM ? RL_ENOMEM : RL_ECONFIG, "%s", first);
        rl_spec_free(c.spec);
    }
    rli_yaml_free(c.root);
    rli_diags_fini(&c.diags);
    return rc;
}

int rl_spec_load(const char *path, rl_spec **out, FILE *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        if (err != NULL) fprintf(err, "%s: cannot open: %s\n", path, strerror(e));
        return rli_err(rli_err_from_errno(e), "%s: cannot open: %s", path, strerror(e));
    }
    /* One byte more than allowed, so that rl_spec_load_text sees it is too big. */
    char *buf = rli_malloc(RL_SPEC_MAX_BYTES + 1);
    size_t n = fread(buf, 1, RL_SPEC_MAX_BYTES + 1, f);
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        free(buf);
        if (err != NULL) fprintf(err, "%s: cannot read: %s\n", path, strerror(e));
        return rli_err(RL_EIO, "%s: cannot read: %s", path, strerror(e));
    }
    fclose(f);
    int rc = rl_spec_load_text(path, buf, n, out, err);
    free(buf);
    return rc;
}

void rl_strv_free(rl_strv *v)
{
    for (int i = 0; v->v != NULL && i < v->n; i++) free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

void rl_spec_free(rl_spec *spec)
{
    if (spec == NULL) return;
    rl_strv_free(&spec->program_argv);
    rl_strv_free(&spec->program_env);
    free(spec->nodes);
    free(spec);
}

int rl_spec_find_node(const rl_spec *spec, const char *id)
{
    for (int i = 0; i < spec->n_nodes; i++)
        if (strcmp(spec->nodes[i].id, id) == 0) return i;
    return -1;
}

/* The host of a tcp:// or tls+tcp:// URL into host (RL_URL_MAX), or -1. */
static int spec_url_host(const char *url, char *host, char *port, char *scheme)
{
    nng_url *u = NULL;
    if (nng_url_parse(&u, url) != 0) return -1;
    snprintf(host, RL_URL_MAX, "%s", u->u_hostname);
    if (port != NULL) snprintf(port, 16, "%s", u->u_port);
    if (scheme != NULL) snprintf(scheme, 16, "%s", u->u_scheme);
    nng_url_free(u);
    return 0;
}

int rl_spec_set_local_nodes(rl_spec *s, int n)
{
    if (n < 1 || n > RL_SPEC_MAX_NODES)
        return rli_err(RL_EINVAL, "--nodes %d: must be from 1 to %d", n, RL_SPEC_MAX_NODES);
    if (s->launch != RL_LAUNCH_LOCAL)
        return rli_err(RL_EINVAL,
                       "--nodes starts the nodes on this machine, but %s has launch: %s (you "
                       "start its nodes yourself, as cluster.%s lists them)",
                       s->path, rl_launch_name(s->launch),
                       s->nodes_file[0] ? "nodes_file" : "nodes");
    if (s->min_nodes > n)
        return rli_err(RL_EINVAL, "--nodes %d is fewer than cluster.min_nodes (%d) in %s", n,
                       s->min_nodes, s->path);
    char host[RL_URL_MAX] = "";
    if (spec_url_host(s->coordinator, host, NULL, NULL) != 0 || host[0] == '\0' ||
        strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || strcmp(host, "*") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    int v6 = strchr(host, ':') != NULL;
    rl_spec_node *nodes = rli_calloc((size_t)n, sizeof(nodes[0]));
    for (int i = 0; i < n; i++) {
        spec_apply_defaults(SPEC_S_cluster_nodes, &nodes[i]);
        snprintf(nodes[i].id, sizeof(nodes[i].id), "n%d", i + 1);
        spec_fmt(nodes[i].listen, sizeof(nodes[i].listen), "%s://%s%s%s:0", spec_node_scheme(s),
                 v6 ? "[" : "", host, v6 ? "]" : "");
    }
    free(s->nodes);
    s->nodes = nodes;
    s->n_nodes = n;
    s->nodes_file[0] = '\0';
    return RL_OK;
}

int rl_spec_listen_matches(const char *listen, const char *joined)
{
    char h1[RL_URL_MAX], h2[RL_URL_MAX], p1[16], p2[16], s1[16], s2[16];
    if (spec_url_host(listen, h1, p1, s1) != 0 || spec_url_host(joined, h2, p2, s2) != 0) return 0;
    if (strcmp(s1, s2) != 0 || strcasecmp(h1, h2) != 0) return 0;
    if (p1[strspn(p1, "0123456789")] != '\0' || p2[strspn(p2, "0123456789")] != '\0' ||
        p1[0] == '\0' || p2[0] == '\0')
        return 0;
    unsigned long a = strtoul(p1, NULL, 10), b = strtoul(p2, NULL, 10);
    return a == 0 ? b >= 1 && b <= 65535 : a == b;
}

const char *rl_launch_name(rl_launch l)
{
    int count;
    const char *const *names = spec_enum_names(SPEC_T_LAUNCH, &count);
    return (int)l >= 0 && (int)l < count ? names[l] : "?";
}

const char *rl_data_source_name(rl_data_source s)
{
    int count;
    const char *const *names = spec_enum_names(SPEC_T_SOURCE, &count);
    return (int)s >= 0 && (int)s < count ? names[s] : "?";
}

const char *rl_model_type_name(rl_model_type m)
{
    int count;
    const char *const *names = spec_enum_names(SPEC_T_MODEL, &count);
    return (int)m >= 0 && (int)m < count ? names[m] : "?";
}

/* ---- Describe and the key reference ------------------------------------- */

#define SPEC_LABEL_WIDTH 16
#define SPEC_LINE_WIDTH  96

/* The nodes as a table, one column per key of cluster.nodes. */
static void spec_describe_nodes(const rl_spec *s, FILE *out)
{
    int width[SPEC_NKEYS] = {0}, last = 0;
    char v[RL_PATH_MAX];
    fprintf(out, "%-*s %d\n", SPEC_LABEL_WIDTH, "cluster.nodes", s->n_nodes);
    for (int k = 0; k < SPEC_NKEYS; k++) {
        if (spec_keys[k].section != SPEC_S_cluster_nodes) continue;
        last = k;
        width[k] = (int)strlen(spec_keys[k].key);
        for (int i = 0; i < s->n_nodes; i++) {
            int w = (int)strlen(spec_format(&spec_keys[k], &s->nodes[i], v, sizeof(v)));
            if (w > width[k]) width[k] = w;
        }
    }
    for (int i = -1; i < s->n_nodes && i < SPEC_DESCRIBE_MAX_NODES; i++) {
        int first = 1;
        fprintf(out, "%*s", SPEC_LABEL_WIDTH + 3, "");
        for (int k = 0; k < SPEC_NKEYS; k++) {
            if (spec_keys[k].section != SPEC_S_cluster_nodes) continue;
            const char *text =
                i < 0 ? spec_keys[k].key : spec_format(&spec_keys[k], &s->nodes[i], v, sizeof(v));
            fprintf(out, "%s%-*s", first ? "" : "  ", k == last ? 0 : width[k], text);
            first = 0;
        }
        fputc('\n', out);
    }
    if (s->n_nodes > SPEC_DESCRIBE_MAX_NODES)
        fprintf(out, "%*s... and %d more\n", SPEC_LABEL_WIDTH + 3, "",
                s->n_nodes - SPEC_DESCRIBE_MAX_NODES);
}

void rl_spec_describe(const rl_spec *s, FILE *out)
{
    char v[RL_PATH_MAX], path[SPEC_NAME_MAX];
    fprintf(out, "%-*s %s\n", SPEC_LABEL_WIDTH, "spec", s->path);
    for (int sect = 1; sect < SPEC_NSECTIONS; sect++) {
        if (sect == SPEC_S_cluster_nodes) {
            spec_describe_nodes(s, out);
            continue;
        }
        if (spec_in_list(sect)) continue;
        int col = 0; /* 0: nothing printed for this section yet */
        for (int k = 0; k < SPEC_NKEYS; k++) {
            const spec_key *key = &spec_keys[k];
            if (key->section != sect || spec_key_unused(s, k, NULL) != NULL) continue;
            spec_format(key, s, v, sizeof(v));
            if (v[0] == '\0') continue;
            int w = (int)(strlen(key->key) + 1 + strlen(v));
            if (col == 0)
                col = fprintf(out, "%-*s ", SPEC_LABEL_WIDTH,
                              spec_section_path(sect, path, sizeof(path)));
            else if (col + 2 + w > SPEC_LINE_WIDTH)
                col = fprintf(out, ",\n%*s", SPEC_LABEL_WIDTH + 1, "") - 2;
            else
                col += fprintf(out, ", ");
            col += fprintf(out, "%s %s", key->key, v);
        }
        if (col > 0)
            fputc('\n', out);
        else if (sect == SPEC_S_security)
            fprintf(out, "%-*s no token_file: the token comes from RINGLEADER_TOKEN\n",
                    SPEC_LABEL_WIDTH, "security");
    }
}

/* A value as rl_spec_write_canonical writes it: doubles exactly (%a). */
static const char *spec_canon_value(const spec_key *k, const void *base, char *buf, size_t size)
{
    if (k->type != SPEC_T_DBL) return spec_format(k, base, buf, size);
    double d;
    memcpy(&d, (const char *)base + k->off, sizeof(d));
    snprintf(buf, size, "%a", d);
    return buf;
}

void rl_spec_write_canonical(const rl_spec *s, FILE *out)
{
    char v[8192], path[SPEC_NAME_MAX];
    for (int k = 0; k < SPEC_NKEYS; k++) {
        const spec_key *key = &spec_keys[k];
        if (spec_key_unused(s, k, NULL) != NULL) continue;
        spec_section_path(key->section, path, sizeof(path));
        if (key->section == SPEC_S_cluster_nodes) {
            for (int i = 0; i < s->n_nodes; i++)
                fprintf(out, "%s[%d].%s=%s\n", path, i, key->key,
                        spec_canon_value(key, &s->nodes[i], v, sizeof(v)));
        } else if (!spec_in_list(key->section)) {
            fprintf(out, "%s.%s=%s\n", path, key->key, spec_canon_value(key, s, v, sizeof(v)));
        }
    }
}

/* A key's bounds as "[lo, hi]" (empty without bounds), for the reference. */
static const char *spec_key_range(const spec_key *key, char *buf, size_t size)
{
    char lo[32], hi[32];
    buf[0] = '\0';
    if (key->min.kind == SPEC_B_NONE && key->max.kind == SPEC_B_NONE) return buf;
    snprintf(buf, size, "%s%s, %s%s", key->min.kind == SPEC_B_GT ? "(" : "[",
             key->min.kind == SPEC_B_NONE ? "-inf" : spec_num(key->min.v, lo, sizeof(lo)),
             key->max.kind == SPEC_B_NONE ? "inf" : spec_num(key->max.v, hi, sizeof(hi)),
             key->max.kind == SPEC_B_LT ? ")" : "]");
    return buf;
}

/* "required", "default X" or "optional"; code quotes the default. */
static const char *spec_key_need(const spec_key *key, const char *code, char *buf, size_t size)
{
    if (key->required)
        snprintf(buf, size, "required");
    else if (key->def != NULL)
        snprintf(buf, size, "default %s%s%s", code, key->def, code);
    else
        snprintf(buf, size, "optional");
    return buf;
}

void rl_spec_print_keys(FILE *out)
{
    char path[SPEC_NAME_MAX], range[96], need[128];
    for (int sect = 1; sect < SPEC_NSECTIONS; sect++) {
        const spec_section *sec = &spec_sections[sect];
        fprintf(out, "%s%s%s: %s\n", sect > 1 ? "\n" : "",
                spec_section_path(sect, path, sizeof(path)),
                sec->kind == SPEC_LIST ? " (list of maps)" : "", sec->help);
        for (int k = 0; k < SPEC_NKEYS; k++) {
            const spec_key *key = &spec_keys[k];
            if (key->section != sect) continue;
            spec_key_range(key, range, sizeof(range));
            fprintf(out, "  %-20s %-24s %s%s%s\n      %s\n", key->key, spec_type_short[key->type],
                    spec_key_need(key, "", need, sizeof(need)), range[0] ? ", range " : "", range,
                    key->help);
        }
    }
}

/* Writes text for a markdown table cell: '|' escaped, '<' and '>' as entities. */
static void spec_md_text(FILE *out, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '|')
            fputs("\\|", out);
        else if (*p == '<')
            fputs("&lt;", out);
        else if (*p == '>')
            fputs("&gt;", out);
        else
            fputc(*p, out);
    }
}

void rl_spec_print_keys_markdown(FILE *out)
{
    char path[SPEC_NAME_MAX], range[96], need[128];
    fputs("# The cluster spec: every key\n\n"
          "<!-- Generated from lib/spec_keys.def by `ringleader validate --keys --markdown`;\n"
          "     do not edit. Regenerate with `cmake --build build --target spec_doc`. -->\n\n"
          "A spec is one YAML document. Relative `file` paths are relative to the spec's\n"
          "directory; `directory` paths to the current directory. A range `[a, b]` includes its\n"
          "ends, `(a, b]` excludes `a`. `ringleader validate SPEC` checks a spec against this\n"
          "table and the rules that tie keys together (see docs/operations.md).\n",
          out);
    for (int sect = 1; sect < SPEC_NSECTIONS; sect++) {
        const spec_section *sec = &spec_sections[sect];
        fprintf(out, "\n## `%s`\n\n%c", spec_section_path(sect, path, sizeof(path)),
                toupper((unsigned char)sec->help[0]));
        spec_md_text(out, sec->help + 1);
        fprintf(out, ". %s%s.\n\n", sec->required ? "Required" : "Optional",
                sec->kind == SPEC_LIST ? "; a list of maps, one per entry" : "");
        fputs("| key | type | required / default | range | meaning |\n"
              "|---|---|---|---|---|\n",
              out);
        for (int k = 0; k < SPEC_NKEYS; k++) {
            const spec_key *key = &spec_keys[k];
            if (key->section != sect) continue;
            fprintf(out, "| `%s` | ", key->key);
            spec_md_text(out, spec_type_short[key->type]);
            fprintf(out, " | %s | %s | ", spec_key_need(key, "`", need, sizeof(need)),
                    spec_key_range(key, range, sizeof(range)));
            spec_md_text(out, key->help);
            fputs(" |\n", out);
        }
    }
}
