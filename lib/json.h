/*
 * json.h - internal: a small, strict JSON reader (RFC 8259) into a tree.
 *
 * Recursive descent over a bounded text: objects, arrays, numbers (as
 * double), strings (escapes, \u with four hex digits and surrogate pairs,
 * decoded to UTF-8; the raw text must be valid UTF-8), true, false, null.
 * Strict: no comments, no trailing commas, no leading zeros, no NaN or
 * Infinity, no duplicate keys, nothing after the value but white space.
 * Hostile input stays cheap: the nesting depth, the text size and the node
 * count are bounded, and an error is reported as "LINE:COL: what" (both from
 * 1, COL in bytes) with nothing leaked. Knows nothing of run.json; see
 * run_json.c for that.
 */
#ifndef RINGLEADER_JSON_H
#define RINGLEADER_JSON_H

#include <stddef.h>

#define RLI_JSON_MAX_DEPTH 64         /* nested arrays and objects */
#define RLI_JSON_MAX_BYTES (64u << 20) /* rli_json_load refuses larger files */
#define RLI_JSON_MAX_NODES 4000000     /* values in one document */

typedef enum {
    RLI_JSON_NULL,
    RLI_JSON_BOOL,
    RLI_JSON_NUMBER,
    RLI_JSON_STRING,
    RLI_JSON_ARRAY,
    RLI_JSON_OBJECT
} rli_json_kind;

/* One value. Everything below a root is owned by it (rli_json_free). */
typedef struct rli_json {
    rli_json_kind kind;
    int line, col; /* where the value starts, from 1 */
    int boolean;   /* BOOL */
    double number; /* NUMBER: always finite */
    char *str;     /* STRING: NUL-terminated UTF-8, no embedded NUL */
    size_t len;    /* STRING: bytes; ARRAY/OBJECT: number of items */
    struct rli_json **items; /* ARRAY/OBJECT: the values, in document order */
    char **keys;             /* OBJECT: keys[i] names items[i] */
    size_t cap;
} rli_json;

/*
 * Parses len bytes of text (need not be NUL-terminated; a leading UTF-8 BOM
 * is skipped). Returns RL_OK and sets *root to a new tree the caller frees
 * with rli_json_free. Otherwise *root is NULL and the return is RL_EDATA
 * (syntax error, or a limit passed: depth over max_depth, more than
 * RLI_JSON_MAX_NODES values) or RL_ENOMEM, with rl_errdetail() "LINE:COL:
 * message". max_depth 0 means RLI_JSON_MAX_DEPTH.
 */
int rli_json_parse(const char *text, size_t len, int max_depth, rli_json **root);

/*
 * Reads and parses the file at path (at most RLI_JSON_MAX_BYTES). Same
 * results as rli_json_parse, with the detail prefixed by the path
 * ("PATH:LINE:COL: message"), plus RL_ENOTFOUND / RL_EPERM / RL_EIO when the
 * file cannot be read and RL_ETOOBIG when it is larger than the limit.
 */
int rli_json_load(const char *path, rli_json **root);

/* Frees a tree (NULL is fine). */
void rli_json_free(rli_json *v);

/* The value of key in object obj, or NULL (also when obj is NULL or not an
 * object). */
const rli_json *rli_json_get(const rli_json *obj, const char *key);

/* "null", "a boolean", "a number", "a string", "an array", "an object". */
const char *rli_json_kind_name(rli_json_kind k);

#endif
