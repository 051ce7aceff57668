/* yaml_tree.c - libyaml events into a bounded, positioned tree.
 *
 * The event API rather than yaml_parser_load: the document loader resolves
 * aliases into shared nodes, so a walk over a "billion laughs" document is
 * exponential, and it would not tell us where an alias was written. Here an
 * alias is an error at its position, and depth and node count are capped. */
#include <string.h>

#include <yaml.h>

#include "rli.h"
#include "yaml_tree.h"

/* libyaml's functions return 1 on success and 0 on failure; it has no name
 * for either. */
#define YAML_TREE_LIBYAML_OK 1

static rli_pos yaml_tree_pos(yaml_mark_t m)
{
    return (rli_pos){m.line, m.column};
}

void rli_yaml_free(rli_yaml_node *n)
{
    if (n == NULL) return;
    for (size_t i = 0; i < n->n; i++)
        rli_yaml_free(n->kids[i]); /* recursion bounded by RLI_YAML_MAX_DEPTH */
    free(n->kids);
    free(n->text);
    free(n);
}

static void yaml_tree_push(rli_yaml_node *parent, rli_yaml_node *kid)
{
    if (parent->n == parent->cap) {
        parent->cap = parent->cap ? 2 * parent->cap : 4;
        parent->kids = rli_realloc(parent->kids, parent->cap * sizeof(parent->kids[0]));
    }
    parent->kids[parent->n++] = kid;
}

/* Converts libyaml's error into one positioned problem. */
static int yaml_tree_syntax_error(const yaml_parser_t *p, rli_diags *d)
{
    const char *problem = p->problem ? p->problem : "unknown problem";
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        rli_diag_file(d, "out of memory while parsing");
        return RL_ENOMEM;
    case YAML_READER_ERROR: {
        /* Reader errors carry a byte offset, not a mark. */
        rli_pos pos = rli_diag_pos_of_offset(d, p->problem_offset);
        if (p->problem_value != -1)
            rli_diag_at(d, pos, "invalid text: %s (value 0x%X)", problem,
                        (unsigned)p->problem_value);
        else
            rli_diag_at(d, pos, "invalid text: %s", problem);
        return RL_ECONFIG;
    }
    default: {
        const char *hint = rli_diag_char_at(d, yaml_tree_pos(p->problem_mark)) == '\t'
                               ? " (indent with spaces: YAML does not allow tabs there)"
                               : "";
        if (p->context != NULL)
            rli_diag_at(d, yaml_tree_pos(p->problem_mark), "syntax error: %s (%s at line %zu)%s",
                        problem, p->context, p->context_mark.line + 1, hint);
        else
            rli_diag_at(d, yaml_tree_pos(p->problem_mark), "syntax error: %s%s", problem, hint);
        return RL_ECONFIG;
    }
    }
}

/* Builder state: the open maps and lists, innermost last. */
typedef struct yaml_tree_builder {
    rli_yaml_node *root;
    rli_yaml_node *open[RLI_YAML_MAX_DEPTH];
    size_t depth;
    size_t nodes;
    int documents;
} yaml_tree_builder;

/* Adds the node of a SCALAR, SEQUENCE_START or MAPPING_START event. */
static int yaml_tree_add(yaml_tree_builder *b, const yaml_event_t *ev, rli_diags *d)
{
    rli_pos pos = yaml_tree_pos(ev->start_mark);
    int is_collection = ev->type != YAML_SCALAR_EVENT;
    if (++b->nodes > RLI_YAML_MAX_NODES) {
        rli_diag_at(d, pos, "too many values (more than %d)", RLI_YAML_MAX_NODES);
        return RL_ECONFIG;
    }
    if (is_collection && b->depth == RLI_YAML_MAX_DEPTH) {
        rli_diag_at(d, pos, "maps and lists nested more than %d levels deep", RLI_YAML_MAX_DEPTH);
        return RL_ECONFIG;
    }
    rli_yaml_node *n = rli_calloc(1, sizeof(*n));
    n->pos = pos;
    if (ev->type == YAML_SCALAR_EVENT) {
        const char *tag = (const char *)ev->data.scalar.tag;
        n->kind = RLI_YAML_SCALAR;
        n->text = rli_strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->len = ev->data.scalar.length;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                    (tag != NULL && strcmp(tag, YAML_STR_TAG) == 0);
    } else {
        n->kind = ev->type == YAML_MAPPING_START_EVENT ? RLI_YAML_MAP : RLI_YAML_LIST;
    }
    if (b->depth == 0) {
        RL_ASSERT(b->root == NULL); /* one root per document, one document */
        b->root = n;
    } else {
        yaml_tree_push(b->open[b->depth - 1], n);
    }
    if (is_collection) b->open[b->depth++] = n;
    return RL_OK;
}

int rli_yaml_parse(const char *text, size_t len, rli_yaml_node **root, rli_diags *d)
{
    yaml_parser_t p;
    yaml_tree_builder b;
    int rc = RL_OK, done = 0;

    *root = NULL;
    memset(&b, 0, sizeof(b));
    if (yaml_parser_initialize(&p) != YAML_TREE_LIBYAML_OK) {
        rli_diag_file(d, "out of memory while parsing");
        return RL_ENOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (!done && rc == RL_OK) {
        yaml_event_t ev;
        if (yaml_parser_parse(&p, &ev) != YAML_TREE_LIBYAML_OK) {
            rc = yaml_tree_syntax_error(&p, d);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++b.documents > 1) {
                rli_diag_at(d, yaml_tree_pos(ev.start_mark),
                            "a second YAML document starts here; a spec is one document");
                rc = RL_ECONFIG;
            }
            break;
        case YAML_ALIAS_EVENT:
            rli_diag_at(d, yaml_tree_pos(ev.start_mark),
                        "aliases (*%s) are not supported: write the value out",
                        (const char *)ev.data.alias.anchor);
            rc = RL_ECONFIG;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            rc = yaml_tree_add(&b, &ev, d);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            RL_ASSERT(b.depth > 0);
            b.depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (rc != RL_OK) {
        rli_yaml_free(b.root);
        return rc;
    }
    *root = b.root;
    return RL_OK;
}

int rli_yaml_is_null(const rli_yaml_node *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    if (n == NULL || n->kind != RLI_YAML_SCALAR || n->quoted) return 0;
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (rli_yaml_scalar_is(n, nulls[i])) return 1;
    return 0;
}

int rli_yaml_scalar_is(const rli_yaml_node *n, const char *s)
{
    size_t len = strlen(s);
    return n != NULL && n->kind == RLI_YAML_SCALAR && n->len == len && memcmp(n->text, s, len) == 0;
}

const rli_yaml_node *rli_yaml_map_get(const rli_yaml_node *map, const char *s,
                                      const rli_yaml_node **key)
{
    if (map == NULL || map->kind != RLI_YAML_MAP) return NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        if (rli_yaml_scalar_is(map->kids[i], s)) {
            if (key != NULL) *key = map->kids[i];
            return map->kids[i + 1];
        }
    }
    return NULL;
}

const char *rli_yaml_describe(const rli_yaml_node *n, char *buf, size_t size)
{
    char q[64];
    if (n->kind == RLI_YAML_MAP)
        snprintf(buf, size, "a map");
    else if (n->kind == RLI_YAML_LIST)
        snprintf(buf, size, "a list");
    else if (rli_yaml_is_null(n))
        snprintf(buf, size, "nothing");
    else
        snprintf(buf, size, "%s'%s'", n->quoted ? "the string " : "",
                 rli_diag_quote(n->text, n->len, q, sizeof(q)));
    return buf;
}
