/*
 * spec.h - the YAML cluster spec: load, validate, describe.
 *
 * A spec is loaded once into an rl_spec the caller owns (rl_spec_free).
 * Every problem found is reported with its position as
 * "SPEC:LINE:COL: message" followed by the offending source line; loading
 * collects all problems, not just the first.
 */
#ifndef RINGLEADER_SPEC_H
#define RINGLEADER_SPEC_H

#include "export.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RL_ID_MAX         64
#define RL_URL_MAX        256
#define RL_PATH_MAX       1024
#define RL_SPEC_MAX_NODES 1024       /* nodes in one spec */
#define RL_SPEC_MAX_BYTES (1u << 20) /* size of one spec file */

/* A list of strings the spec owns: v[0..n-1], v[n] NULL. */
typedef struct rl_strv {
    char **v;
    int n;
} rl_strv;

/* Frees the strings and the list, and empties v. */
void rl_strv_free(rl_strv *v);

typedef enum { RL_LAUNCH_LOCAL = 0, RL_LAUNCH_MANUAL = 1 } rl_launch;
typedef enum { RL_DATA_SYNTHETIC = 0, RL_DATA_CSV = 1 } rl_data_source;
typedef enum { RL_MODEL_LINEAR = 0, RL_MODEL_LOGISTIC = 1, RL_MODEL_SOFTMAX = 2 } rl_model_type;

typedef struct rl_spec_node {
    char id[RL_ID_MAX];
    char listen[RL_URL_MAX]; /* port 0: any port on that host (rl_spec_listen_matches) */
    double capacity;         /* relative speed hint, > 0; default 1.0 */
} rl_spec_node;

typedef struct rl_spec {
    char path[RL_PATH_MAX]; /* the spec file as given */
    char dir[RL_PATH_MAX];  /* its directory: base for relative paths */

    /* cluster */
    char name[RL_ID_MAX];
    char coordinator[RL_URL_MAX];
    rl_launch launch;
    int min_nodes;
    int join_timeout_ms; /* manual launch: how long to wait for nodes (default 30000) */
    int n_nodes;
    rl_spec_node *nodes;          /* n_nodes entries, owned: cluster.nodes or the hostfile's */
    char nodes_file[RL_PATH_MAX]; /* the hostfile, resolved; "" if the nodes are listed */

    /* security */
    char token_file[RL_PATH_MAX]; /* resolved against dir; "" if none */
    char tls_cert[RL_PATH_MAX];   /* resolved; "" if no TLS */
    char tls_key[RL_PATH_MAX];
    char tls_ca[RL_PATH_MAX];
    int tls_verify_hostname; /* bool: diallers check the peer certificate names their host */

    /* data */
    rl_data_source source;
    int64_t rows; /* synthetic; csv: 0 (known once the file is read) */
    int features; /* synthetic; csv: the header's columns except the label */
    double noise; /* synthetic; csv: 0 */
    uint64_t seed;
    int block_rows;
    char csv_path[RL_PATH_MAX]; /* resolved */
    char csv_label[RL_ID_MAX];
    int standardize; /* bool */
    int csv_fetch;   /* bool: nodes fetch their blocks from the coordinator */

    /* model */
    rl_model_type model;
    int classes; /* softmax: K >= 2; otherwise 1 (logistic) or 1 (linear) */

    /* training */
    int steps;
    double learning_rate;
    double l2;
    int report_ms; /* step reports batched over at most this many ms (0: every step) */
    int exact_sum; /* bool: gradients summed in exact accumulators (docs/exactness.md) */

    /* allreduce */
    size_t chunk_bytes;
    char tcp_congestion[16]; /* auto, system or an algorithm (rl_ring_config.tcp_congestion) */

    /* fault_tolerance */
    int heartbeat_ms;
    int failure_timeout_ms;
    int coordinator_grace_ms; /* nodes re-dial a lost coordinator this long */
    double straggler_factor;
    int rebalance; /* bool */

    /* monitor: the coordinator's HTTP endpoint; "" when off */
    char monitor_listen[RL_URL_MAX];
    char monitor_token_file[RL_PATH_MAX]; /* resolved; "" for the cluster token */

    /* output */
    char out_dir[RL_PATH_MAX]; /* as written: relative to the current directory */
    int checkpoint_every_ms;   /* 0: no checkpoints */

    /* program: the user's program instead of the built-in trainer */
    rl_strv program_argv;              /* the command; n 0: no program section */
    rl_strv program_env;               /* NAME=value entries added to its environment */
    char program_workdir[RL_PATH_MAX]; /* resolved against dir; "" the spec's directory */
} rl_spec;

/*
 * Loads and validates the spec at path. On success returns RL_OK and *out is
 * a new spec the caller frees with rl_spec_free. On failure returns
 * RL_ECONFIG (or RL_ENOTFOUND, RL_EPERM, RL_EIO if the file cannot be read),
 * *out is NULL, and every problem found has been written to err (if not
 * NULL), sorted by position, each as
 *     PATH:LINE:COL: message
 *       <source line>
 *       <caret under COL>
 * rl_errdetail() then holds the first problem. Relative paths in the spec
 * (token_file, tls files, data.csv.path) are resolved against the spec's
 * directory and must name readable files. Any input is safe: the text is
 * limited to RL_SPEC_MAX_BYTES, nesting depth and node count are bounded,
 * and aliases and multi-document streams are refused.
 */
RL_API int rl_spec_load(const char *path, rl_spec **out, FILE *err);

/*
 * Same, from the len bytes at text (need not be NUL-terminated; the caller
 * keeps ownership). name is used in messages and its directory as the base
 * for relative paths ("." if name has no '/').
 */
RL_API int rl_spec_load_text(const char *name, const char *text, size_t len, rl_spec **out,
                             FILE *err);

/* Frees a spec (NULL is fine). */
RL_API void rl_spec_free(rl_spec *spec);

/* Writes the one-screen summary printed by `ringleader validate`. */
RL_API void rl_spec_describe(const rl_spec *spec, FILE *out);
/* Writes every key that takes effect with its resolved value, one
 * "section.key=value" line each (nodes as cluster.nodes[i].key), in the key
 * table's order, doubles exact: the same text for specs that differ only in
 * comments, layout, key order or defaults written out. Checkpoints hash it. */
RL_API void rl_spec_write_canonical(const rl_spec *spec, FILE *out);

/* Writes the reference of every key: name, type, default, range and help. */
RL_API void rl_spec_print_keys(FILE *out);

/* Writes the same reference as markdown: the exact content of docs/spec.md. */
RL_API void rl_spec_print_keys_markdown(FILE *out);

/* Index of the node with this id, or -1. */
RL_API int rl_spec_find_node(const rl_spec *spec, const char *id);

/*
 * `ringleader run SPEC --nodes N`: replaces the spec's nodes with n nodes
 * "n1".."nN" on the coordinator's host (127.0.0.1 if it listens on a
 * wildcard address), each listening on port 0 with the coordinator's
 * scheme. Returns RL_OK, or RL_EINVAL (rl_errdetail() says why) if n is
 * not from 1 to RL_SPEC_MAX_NODES, the spec has launch: manual (its nodes
 * are started by hand, so the coordinator cannot invent them) or
 * cluster.min_nodes is more than n; the spec is then unchanged.
 */
RL_API int rl_spec_set_local_nodes(rl_spec *spec, int n);

/*
 * True if a node that joined with ring endpoint `joined` (its bound URL)
 * listens where the spec's `listen` says: the same scheme and host (host
 * compared without case), and the same port, or any port if the spec's is
 * 0. False if either is not a tcp:// or tls+tcp:// URL.
 */
RL_API int rl_spec_listen_matches(const char *listen, const char *joined);

/* Names for the enums ("local", "csv", "softmax"). */
RL_API const char *rl_launch_name(rl_launch l);
RL_API const char *rl_data_source_name(rl_data_source s);
RL_API const char *rl_model_type_name(rl_model_type m);

#ifdef __cplusplus
}
#endif
#endif
