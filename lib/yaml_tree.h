/*
 * yaml_tree.h - internal: one YAML document as a small tree of maps, lists
 * and scalars, each with its position. Built from libyaml's events so that
 * hostile input stays cheap: aliases (billion laughs), a second document,
 * deep nesting and huge node counts are refused with a positioned problem
 * instead of being expanded. Knows nothing of the spec's keys.
 */
#ifndef RINGLEADER_YAML_TREE_H
#define RINGLEADER_YAML_TREE_H

#include <stddef.h>

#include "diag.h"

#define RLI_YAML_MAX_DEPTH 32     /* nested maps and lists */
#define RLI_YAML_MAX_NODES 100000 /* scalars, maps and lists in one document */

typedef enum { RLI_YAML_SCALAR, RLI_YAML_MAP, RLI_YAML_LIST } rli_yaml_kind;

typedef struct rli_yaml_node {
    rli_yaml_kind kind;
    rli_pos pos; /* where the node starts */
    /* scalars */
    char *text; /* NUL-terminated copy; may contain NULs (len is the truth) */
    size_t len;
    int quoted; /* quoted, block (| >) or tagged !!str: always a string */
    /* maps: kids[0] key, kids[1] value, kids[2] key ...; lists: the items */
    struct rli_yaml_node **kids;
    size_t n, cap;
} rli_yaml_node;

/*
 * Parses len bytes of text (need not be NUL-terminated). Returns RL_OK and
 * sets *root to the document (NULL if the stream has none), owned by the
 * caller (rli_yaml_free). Otherwise returns RL_ECONFIG (syntax error or a
 * refused construct) or RL_ENOMEM, adds the problem to d, and *root is NULL.
 */
int rli_yaml_parse(const char *text, size_t len, rli_yaml_node **root, rli_diags *d);

/* Frees a tree (NULL is fine). */
void rli_yaml_free(rli_yaml_node *n);

/* True for a plain null scalar: empty, ~, null, Null, NULL. */
int rli_yaml_is_null(const rli_yaml_node *n);

/* True if n is a scalar whose text is exactly s. */
int rli_yaml_scalar_is(const rli_yaml_node *n, const char *s);

/* The value of the first entry with key s in map (and its key node in *key
 * if key is not NULL), or NULL. map may be NULL or not a map. */
const rli_yaml_node *rli_yaml_map_get(const rli_yaml_node *map, const char *s,
                                      const rli_yaml_node **key);

/* "a map", "a list", "null", "the string 'x'", "'x'" for messages. */
const char *rli_yaml_describe(const rli_yaml_node *n, char *buf, size_t size);

#endif
