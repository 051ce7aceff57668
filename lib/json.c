/*
 * json.c - the strict JSON reader of json.h.
 *
 * Every node is linked into its parent as soon as it is allocated, so an
 * error anywhere leaves one tree that rli_json_free releases whole: there is
 * no partial result to track on the way out. Recursion depth is the nesting
 * depth, bounded by max_depth before descending. Lines are counted in white
 * space only: a raw newline cannot occur inside a token (strings refuse
 * control characters), so "LINE:COL" is exact for every error.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "rli.h"

#define JSON_NUMBER_MAX 512 /* bytes of one number token */

typedef struct json_parser {
    const char *s;
    size_t n, i;       /* text and the read position */
    size_t line_start; /* offset of the current line's first byte */
    int line;          /* from 1 */
    int max_depth;
    size_t nodes;
} json_parser;

/* Sets the detail "LINE:COL: message" for offset at (on the current line)
 * and returns err. */
static int json_fail_code(json_parser *p, int err, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int json_fail_code(json_parser *p, int err, size_t at, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return rli_err(err, "%d:%zu: %s", p->line, at - p->line_start + 1, msg);
}
#define json_fail(p, at, ...) json_fail_code(p, RL_EDATA, at, __VA_ARGS__)

/* A byte for messages: 'x' when printable, else 0xHH. */
static const char *json_show(unsigned char c, char *buf, size_t size)
{
    if (c >= 0x20 && c < 0x7f) snprintf(buf, size, "'%c'", c);
    else snprintf(buf, size, "byte 0x%02X", c);
    return buf;
}

/* The message for "found something else here": end of input or the byte. */
static int json_unexpected(json_parser *p, const char *expected)
{
    char b[16];
    if (p->i >= p->n) return json_fail(p, p->i, "unexpected end of input: expected %s", expected);
    return json_fail(p, p->i, "expected %s, found %s", expected,
                     json_show((unsigned char)p->s[p->i], b, sizeof(b)));
}

static void json_skip_ws(json_parser *p)
{
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == '\n') {
            p->line++;
            p->line_start = p->i + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            return;
        }
        p->i++;
    }
}

static int json_new_node(json_parser *p, rli_json_kind kind, rli_json **out)
{
    if (++p->nodes > RLI_JSON_MAX_NODES)
        return json_fail(p, p->i, "more than %d values in one document", RLI_JSON_MAX_NODES);
    rli_json *v = calloc(1, sizeof(*v));
    if (v == NULL) return json_fail_code(p, RL_ENOMEM, p->i, "out of memory");
    v->kind = kind;
    v->line = p->line;
    v->col = (int)(p->i - p->line_start + 1);
    *out = v;
    return RL_OK;
}

/* ---- Strings --------------------------------------------------------------------------- */

typedef struct json_buf {
    char *b;
    size_t len, cap;
} json_buf;

static int json_buf_put(json_parser *p, json_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < b->len + n + 1) cap *= 2;
        char *nb = realloc(b->b, cap);
        if (nb == NULL) return json_fail_code(p, RL_ENOMEM, p->i, "out of memory for a string");
        b->b = nb;
        b->cap = cap;
    }
    memcpy(b->b + b->len, s, n);
    b->len += n;
    b->b[b->len] = '\0';
    return RL_OK;
}

/* Reads 4 hex digits at p->i (after "\u"). */
static int json_hex4(json_parser *p, unsigned *cp)
{
    *cp = 0;
    for (int k = 0; k < 4; k++, p->i++) {
        if (p->i >= p->n)
            return json_fail(p, p->i, "unexpected end of input in a \\u escape");
        char c = p->s[p->i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                          : 16u;
        if (d == 16) return json_fail(p, p->i, "bad \\u escape: expected 4 hex digits");
        *cp = *cp * 16 + d;
    }
    return RL_OK;
}

static size_t json_utf8_encode(unsigned cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* After a backslash: one escape into b. */
static int json_escape(json_parser *p, json_buf *b)
{
    size_t at = p->i - 1;
    if (p->i >= p->n) return json_fail(p, p->i, "unexpected end of input in an escape");
    char c = p->s[p->i++], ch[4];
    switch (c) {
    case '"': return json_buf_put(p, b, "\"", 1);
    case '\\': return json_buf_put(p, b, "\\", 1);
    case '/': return json_buf_put(p, b, "/", 1);
    case 'b': return json_buf_put(p, b, "\b", 1);
    case 'f': return json_buf_put(p, b, "\f", 1);
    case 'n': return json_buf_put(p, b, "\n", 1);
    case 'r': return json_buf_put(p, b, "\r", 1);
    case 't': return json_buf_put(p, b, "\t", 1);
    case 'u': break;
    default: {
        char shown[16];
        return json_fail(p, at, "invalid escape: backslash then %s",
                         json_show((unsigned char)c, shown, sizeof(shown)));
    }
    }
    unsigned cp, lo;
    int rc = json_hex4(p, &cp);
    if (rc != RL_OK) return rc;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return json_fail(p, at, "\\u%04X is a lone low surrogate", cp);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
            return json_fail(p, at, "\\u%04X is a high surrogate without its low half", cp);
        p->i += 2;
        if ((rc = json_hex4(p, &lo)) != RL_OK) return rc;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return json_fail(p, at, "\\u%04X is a high surrogate without its low half", cp);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp == 0) return json_fail(p, at, "\\u0000 is not supported (strings are C strings)");
    return json_buf_put(p, b, ch, json_utf8_encode(cp, ch));
}

/* Checks one raw UTF-8 sequence starting at p->i (a byte >= 0x80) and
 * returns its length, or 0 after setting the error. */
static size_t json_utf8_check(json_parser *p, int *rc)
{
    const unsigned char *u = (const unsigned char *)p->s + p->i;
    size_t left = p->n - p->i, len;
    unsigned cp, min;
    if (u[0] >= 0xC2 && u[0] <= 0xDF) len = 2, cp = u[0] & 0x1F, min = 0x80;
    else if (u[0] >= 0xE0 && u[0] <= 0xEF) len = 3, cp = u[0] & 0x0F, min = 0x800;
    else if (u[0] >= 0xF0 && u[0] <= 0xF4) len = 4, cp = u[0] & 0x07, min = 0x10000;
    else len = 0, cp = 0, min = 0;
    for (size_t k = 1; k < len; k++) {
        if (k >= left || (u[k] & 0xC0) != 0x80) {
            len = 0;
            break;
        }
        cp = (cp << 6) | (u[k] & 0x3F);
    }
    if (len == 0 || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        *rc = json_fail(p, p->i, "invalid UTF-8 in a string (byte 0x%02X)", u[0]);
        return 0;
    }
    return len;
}

/* A string token at p->i (the opening quote) into a new NUL-terminated
 * buffer *out of *len bytes; nothing to free on error. */
static int json_string(json_parser *p, char **out, size_t *len)
{
    json_buf b = {0};
    int rc = json_buf_put(p, &b, "", 0);
    p->i++; /* the opening quote */
    while (rc == RL_OK) {
        size_t run = p->i;
        while (run < p->n && p->s[run] != '"' && p->s[run] != '\\' &&
               (unsigned char)p->s[run] >= 0x20 && (unsigned char)p->s[run] < 0x80)
            run++;
        if ((rc = json_buf_put(p, &b, p->s + p->i, run - p->i)) != RL_OK) break;
        p->i = run;
        if (p->i >= p->n) {
            rc = json_fail(p, p->i, "unexpected end of input in a string");
            break;
        }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            *out = b.b;
            *len = b.len;
            return RL_OK;
        }
        if (c == '\\') {
            p->i++;
            rc = json_escape(p, &b);
        } else if (c < 0x20) {
            rc = json_fail(p, p->i, "control character 0x%02X in a string: escape it", c);
        } else {
            size_t n = json_utf8_check(p, &rc);
            if (n == 0) break;
            rc = json_buf_put(p, &b, p->s + p->i, n);
            p->i += n;
        }
    }
    free(b.b);
    return rc;
}

/* ---- Numbers and literals -------------------------------------------------------------- */

static int json_is_digit(json_parser *p)
{
    return p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9';
}

static int json_number(json_parser *p, rli_json *v)
{
    size_t start = p->i;
    if (p->s[p->i] == '-') p->i++;
    if (!json_is_digit(p)) return json_unexpected(p, "a digit");
    if (p->s[p->i] == '0') {
        p->i++;
        if (json_is_digit(p)) return json_fail(p, p->i - 1, "leading zeros are not allowed");
    } else {
        while (json_is_digit(p)) p->i++;
    }
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (!json_is_digit(p)) return json_unexpected(p, "a digit after '.'");
        while (json_is_digit(p)) p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (!json_is_digit(p)) return json_unexpected(p, "a digit in the exponent");
        while (json_is_digit(p)) p->i++;
    }
    size_t len = p->i - start;
    if (len >= JSON_NUMBER_MAX)
        return json_fail(p, start, "number of %zu characters is too long", len);
    char tmp[JSON_NUMBER_MAX];
    memcpy(tmp, p->s + start, len);
    tmp[len] = '\0';
    v->number = strtod(tmp, NULL); /* the grammar above is a subset of strtod's */
    if (!isfinite(v->number)) return json_fail(p, start, "number out of the range of a double");
    return RL_OK;
}

static int json_literal(json_parser *p, rli_json *v)
{
    static const struct {
        const char *text;
        rli_json_kind kind;
        int value;
    } lits[] = {{"true", RLI_JSON_BOOL, 1}, {"false", RLI_JSON_BOOL, 0}, {"null", RLI_JSON_NULL, 0}};
    for (size_t k = 0; k < sizeof(lits) / sizeof(lits[0]); k++) {
        size_t n = strlen(lits[k].text);
        if (p->s[p->i] != lits[k].text[0]) continue;
        size_t have = p->n - p->i < n ? p->n - p->i : n;
        if (memcmp(p->s + p->i, lits[k].text, have) != 0) break;
        if (have < n)
            return json_fail(p, p->i, "unexpected end of input in '%s'", lits[k].text);
        v->kind = lits[k].kind;
        v->boolean = lits[k].value;
        p->i += n;
        return RL_OK;
    }
    return json_fail(p, p->i, "invalid literal: expected true, false or null");
}

/* ---- Arrays and objects ---------------------------------------------------------------- */

/* Makes room for one more item (and key) in container v. */
static int json_grow(json_parser *p, rli_json *v)
{
    if (v->len < v->cap) return RL_OK;
    size_t cap = v->cap ? v->cap * 2 : 8;
    rli_json **items = realloc(v->items, cap * sizeof(*items));
    if (items == NULL) return json_fail_code(p, RL_ENOMEM, p->i, "out of memory");
    v->items = items;
    if (v->kind == RLI_JSON_OBJECT) {
        char **keys = realloc(v->keys, cap * sizeof(*keys));
        if (keys == NULL) return json_fail_code(p, RL_ENOMEM, p->i, "out of memory");
        v->keys = keys;
    }
    v->cap = cap;
    return RL_OK;
}

static int json_value(json_parser *p, int depth, rli_json **out);

static int json_array(json_parser *p, int depth, rli_json *v)
{
    p->i++; /* '[' */
    json_skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return RL_OK;
    }
    for (;;) {
        int rc = json_grow(p, v);
        if (rc != RL_OK) return rc;
        v->items[v->len] = NULL;
        rc = json_value(p, depth + 1, &v->items[v->len]);
        if (v->items[v->len] != NULL) v->len++;
        if (rc != RL_OK) return rc;
        json_skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            json_skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ']')
                return json_fail(p, p->i, "trailing comma before ']'");
            continue;
        }
        if (p->i < p->n && p->s[p->i] == ']') {
            p->i++;
            return RL_OK;
        }
        return json_unexpected(p, "',' or ']' in an array");
    }
}

typedef struct json_key_ref {
    const char *key;
    size_t index;
} json_key_ref;

static int json_key_cmp(const void *a, const void *b)
{
    const json_key_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Refuses a key that occurs twice in a complete object (sorted, so a large
 * object costs n log n, not n^2); reported at the later value. */
static int json_check_duplicates(const rli_json *v)
{
    if (v->len < 2) return RL_OK;
    json_key_ref *refs = malloc(v->len * sizeof(*refs));
    if (refs == NULL)
        return rli_err(RL_ENOMEM, "%d:%d: out of memory checking keys", v->line, v->col);
    for (size_t k = 0; k < v->len; k++) refs[k] = (json_key_ref){v->keys[k], k};
    qsort(refs, v->len, sizeof(*refs), json_key_cmp);
    int rc = RL_OK;
    for (size_t k = 1; k < v->len && rc == RL_OK; k++)
        if (strcmp(refs[k - 1].key, refs[k].key) == 0) {
            const rli_json *dup = v->items[refs[k].index];
            char q[64];
            snprintf(q, sizeof(q), "%s", refs[k].key);
            rc = rli_err(RL_EDATA, "%d:%d: duplicate key \"%s\" (this is its second value)",
                         dup->line, dup->col, q);
        }
    free(refs);
    return rc;
}

static int json_object(json_parser *p, int depth, rli_json *v)
{
    p->i++; /* '{' */
    json_skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return RL_OK;
    }
    for (;;) {
        int rc = json_grow(p, v);
        if (rc != RL_OK) return rc;
        if (p->i >= p->n || p->s[p->i] != '"')
            return json_unexpected(p, v->len ? "a string key after ','" : "a string key or '}'");
        size_t klen;
        char *key;
        if ((rc = json_string(p, &key, &klen)) != RL_OK) return rc;
        v->keys[v->len] = key;
        v->items[v->len] = NULL;
        json_skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') {
            v->len++;
            return json_unexpected(p, "':' after the key");
        }
        p->i++;
        rc = json_value(p, depth + 1, &v->items[v->len]);
        v->len++; /* the key is owned by v now, with or without its value */
        if (rc != RL_OK) return rc;
        json_skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            json_skip_ws(p);
            if (p->i < p->n && p->s[p->i] == '}')
                return json_fail(p, p->i, "trailing comma before '}'");
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            return json_check_duplicates(v);
        }
        return json_unexpected(p, "',' or '}' in an object");
    }
}

/* One value at p->i (after white space) into *out, linked as soon as it is
 * allocated. */
static int json_value(json_parser *p, int depth, rli_json **out)
{
    json_skip_ws(p);
    if (p->i >= p->n) return json_unexpected(p, "a value");
    char c = p->s[p->i];
    rli_json_kind kind = c == '{'   ? RLI_JSON_OBJECT
                       : c == '['   ? RLI_JSON_ARRAY
                       : c == '"'   ? RLI_JSON_STRING
                       : c == '-' || (c >= '0' && c <= '9') ? RLI_JSON_NUMBER
                                                            : RLI_JSON_NULL;
    if ((kind == RLI_JSON_OBJECT || kind == RLI_JSON_ARRAY) && depth >= p->max_depth)
        return json_fail(p, p->i, "nesting deeper than %d levels", p->max_depth);
    rli_json *v = NULL;
    int rc = json_new_node(p, kind, &v);
    if (rc != RL_OK) return rc;
    *out = v;
    switch (kind) {
    case RLI_JSON_OBJECT: return json_object(p, depth, v);
    case RLI_JSON_ARRAY: return json_array(p, depth, v);
    case RLI_JSON_STRING: return json_string(p, &v->str, &v->len);
    case RLI_JSON_NUMBER: return json_number(p, v);
    default:
        if (c == 't' || c == 'f' || c == 'n') return json_literal(p, v);
        return json_unexpected(p, "a value");
    }
}

/* ---- Public (internal) API ------------------------------------------------------------- */

int rli_json_parse(const char *text, size_t len, int max_depth, rli_json **root)
{
    *root = NULL;
    json_parser p = {.s = text, .n = len, .line = 1,
                     .max_depth = max_depth > 0 ? max_depth : RLI_JSON_MAX_DEPTH};
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.i = p.line_start = 3;
    rli_json *v = NULL;
    int rc = json_value(&p, 0, &v);
    if (rc == RL_OK) {
        json_skip_ws(&p);
        if (p.i < p.n) {
            char b[16];
            rc = json_fail(&p, p.i, "unexpected %s after the value",
                           json_show((unsigned char)p.s[p.i], b, sizeof(b)));
        }
    }
    if (rc != RL_OK) {
        rli_json_free(v);
        return rc;
    }
    *root = v;
    return RL_OK;
}

int rli_json_load(const char *path, rli_json **root)
{
    *root = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        return rli_err(rli_err_from_errno(e), "%s: cannot open: %s", path, strerror(e));
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = RL_OK;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 1u << 16;
            if (ncap > (size_t)RLI_JSON_MAX_BYTES + 1) ncap = (size_t)RLI_JSON_MAX_BYTES + 1;
            if (ncap == cap) {
                rc = rli_err(RL_ETOOBIG, "%s: larger than %u bytes", path, RLI_JSON_MAX_BYTES);
                break;
            }
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                rc = rli_err(RL_ENOMEM, "%s: no memory to read it", path);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) rc = rli_err(RL_EIO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (rc == RL_OK && (rc = rli_json_parse(buf, len, 0, root)) != RL_OK) {
        char detail[512];
        snprintf(detail, sizeof(detail), "%s", rl_errdetail());
        rli_err(rc, "%s:%s", path, detail);
    }
    free(buf);
    return rc;
}

void rli_json_free(rli_json *v)
{
    if (v == NULL) return;
    for (size_t k = 0; k < v->len && v->items != NULL; k++) {
        rli_json_free(v->items[k]);
        if (v->keys != NULL) free(v->keys[k]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

const rli_json *rli_json_get(const rli_json *obj, const char *key)
{
    if (obj == NULL || obj->kind != RLI_JSON_OBJECT) return NULL;
    for (size_t k = 0; k < obj->len; k++)
        if (strcmp(obj->keys[k], key) == 0) return obj->items[k];
    return NULL;
}

const char *rli_json_kind_name(rli_json_kind k)
{
    switch (k) {
    case RLI_JSON_NULL: return "null";
    case RLI_JSON_BOOL: return "a boolean";
    case RLI_JSON_NUMBER: return "a number";
    case RLI_JSON_STRING: return "a string";
    case RLI_JSON_ARRAY: return "an array";
    case RLI_JSON_OBJECT: return "an object";
    }
    return "?";
}
