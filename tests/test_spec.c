/* test_spec.c - the YAML cluster spec: every example config loads, defaults
 * apply, every class of error is reported at its position (all in one
 * pass), relative paths resolve against the spec, and no mutation of a good
 * spec crashes, hangs or leaks the loader. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringleader/spec.h"
#include "rli.h"
#include "testutil.h"

#define CONFIGS RL_SOURCE_DIR "/configs"

/* A minimal valid spec: everything else takes its default. */
#define MINIMAL                                                                                    \
    "cluster:\n"                                                                                   \
    "  coordinator: tcp://127.0.0.1:7700\n"                                                        \
    "  nodes:\n"                                                                                   \
    "    - { id: n1, listen: tcp://127.0.0.1:7701 }\n"

/* Loads len bytes of text as "t.yaml"; returns the rc and the error output
 * in *msgs (caller frees). The spec is freed unless keep is set. */
static int load_bytes(const char *text, size_t len, char **msgs, rl_spec **keep)
{
    size_t size = 0;
    char *buf = NULL;
    FILE *err = open_memstream(&buf, &size);
    rl_spec *spec = (rl_spec *)0x1;
    ck_assert_ptr_nonnull(err);
    int rc = rl_spec_load_text("t.yaml", text, len, &spec, err);
    fclose(err);
    if (rc == RL_OK) {
        ck_assert_ptr_nonnull(spec);
        ck_assert_msg(size == 0, "no output expected on success, got:\n%s", buf);
    } else {
        ck_assert_ptr_null(spec);
        ck_assert_msg(size > 0, "an error must be printed");
    }
    if (keep != NULL)
        *keep = spec;
    else
        rl_spec_free(spec);
    if (msgs != NULL)
        *msgs = buf;
    else
        free(buf);
    return rc;
}

static int load_text(const char *text, char **msgs, rl_spec **keep)
{
    return load_bytes(text, strlen(text), msgs, keep);
}

/* Every problem line ("t.yaml:L:C: ...") in msgs. */
static int count_problems(const char *msgs)
{
    int n = 0;
    for (const char *p = msgs; (p = strstr(p, "t.yaml:")) != NULL; p++)
        if ((p == msgs || p[-1] == '\n') && p[7] >= '0' && p[7] <= '9') n++;
    return n;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- The examples ------------------------------------------------------- */

START_TEST(every_config_loads)
{
    DIR *d = opendir(CONFIGS);
    struct dirent *e;
    int loaded = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".yaml")) continue;
        char path[1024], *msgs = NULL, *summary = NULL;
        size_t msize = 0, ssize = 0;
        snprintf(path, sizeof(path), "%s/%s", CONFIGS, e->d_name);
        FILE *err = open_memstream(&msgs, &msize);
        rl_spec *spec = NULL;
        int rc = rl_spec_load(path, &spec, err);
        fclose(err);
        ck_assert_msg(rc == RL_OK, "%s: %s\n%s", e->d_name, rl_strerror(rc), msgs);
        FILE *out = open_memstream(&summary, &ssize);
        rl_spec_describe(spec, out);
        fclose(out);
        ck_assert_msg(strstr(summary, spec->name) != NULL, "%s: describe names the cluster",
                      e->d_name);
        ck_assert_msg(strstr(summary, spec->nodes[0].listen) != NULL, "%s: describe lists nodes",
                      e->d_name);
        rl_spec_free(spec);
        free(msgs);
        free(summary);
        loaded++;
    }
    closedir(d);
    ck_assert_int_ge(loaded, 4); /* local, csv, manual, tls */
}
END_TEST

START_TEST(local_yaml_is_the_default_job)
{
    rl_spec *s = NULL;
    ck_assert_int_eq(rl_spec_load(CONFIGS "/local.yaml", &s, stderr), RL_OK);
    ck_assert_str_eq(s->path, CONFIGS "/local.yaml");
    ck_assert_str_eq(s->dir, CONFIGS);
    ck_assert_str_eq(s->name, "demo");
    ck_assert_str_eq(s->coordinator, "tcp://127.0.0.1:7700");
    ck_assert_int_eq(s->launch, RL_LAUNCH_LOCAL);
    ck_assert_int_eq(s->min_nodes, 2);
    ck_assert_int_eq(s->n_nodes, 4);
    for (int i = 0; i < 4; i++) {
        char id[8], url[64];
        snprintf(id, sizeof(id), "n%d", i + 1);
        snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", 7701 + i);
        ck_assert_str_eq(s->nodes[i].id, id);
        ck_assert_str_eq(s->nodes[i].listen, url);
        ck_assert_double_eq(s->nodes[i].capacity, 1.0);
        ck_assert_int_eq(rl_spec_find_node(s, id), i);
    }
    ck_assert_int_eq(rl_spec_find_node(s, "n9"), -1);
    ck_assert_str_eq(s->token_file, CONFIGS "/demo.token");
    ck_assert_str_eq(s->tls_cert, "");
    ck_assert_int_eq(s->source, RL_DATA_SYNTHETIC);
    ck_assert_int_eq(s->rows, 200000);
    ck_assert_int_eq(s->features, 32);
    ck_assert_double_eq(s->noise, 0.1);
    ck_assert_uint_eq(s->seed, 7);
    ck_assert_int_eq(s->block_rows, 4096);
    ck_assert_int_eq(s->model, RL_MODEL_LINEAR);
    ck_assert_int_eq(s->classes, 1);
    ck_assert_int_eq(s->steps, 100);
    ck_assert_double_eq(s->learning_rate, 0.1);
    ck_assert_double_eq(s->l2, 0.0);
    ck_assert_uint_eq(s->chunk_bytes, 1048576);
    ck_assert_int_eq(s->heartbeat_ms, 100);
    ck_assert_int_eq(s->failure_timeout_ms, 500);
    ck_assert_double_eq(s->straggler_factor, 1.5);
    ck_assert_int_eq(s->rebalance, 1);
    ck_assert_str_eq(s->out_dir, "runs/demo");
    rl_spec_free(s);

    /* demo.token: a 64-hex-character token. */
    FILE *f = fopen(CONFIGS "/demo.token", "r");
    char tok[128] = "";
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(tok, sizeof(tok), f));
    fclose(f);
    tok[strcspn(tok, "\n")] = '\0';
    ck_assert_uint_eq(strlen(tok), 64);
    ck_assert_uint_eq(strspn(tok, "0123456789abcdef"), 64);
}
END_TEST

START_TEST(csv_yaml_reads_the_header)
{
    rl_spec *s = NULL;
    ck_assert_int_eq(rl_spec_load(CONFIGS "/csv.yaml", &s, stderr), RL_OK);
    ck_assert_int_eq(s->source, RL_DATA_CSV);
    ck_assert_str_eq(s->csv_path, CONFIGS "/data/iris_like.csv");
    ck_assert_str_eq(s->csv_label, "species");
    ck_assert_int_eq(s->standardize, 1);
    ck_assert_int_eq(s->features, 4); /* from the header: 5 columns, one the label */
    ck_assert_int_eq(s->model, RL_MODEL_SOFTMAX);
    ck_assert_int_eq(s->classes, 3);
    ck_assert_int_eq(s->rows, 0);
    rl_spec_free(s);
}
END_TEST

/* rl_spec_write_canonical of a spec text, caller frees. */
static char *canonical(const char *text)
{
    rl_spec *s = NULL;
    char *out = NULL;
    size_t size = 0;
    ck_assert_int_eq(load_text(text, NULL, &s), RL_OK);
    FILE *f = open_memstream(&out, &size);
    rl_spec_write_canonical(s, f);
    fclose(f);
    rl_spec_free(s);
    return out;
}

START_TEST(the_canonical_form_ignores_comments_layout_order_and_written_defaults)
{
    char *a = canonical(MINIMAL "training: { steps: 50, learning_rate: 0.05 }\n");
    char *b = canonical("# the same job, written differently\n"
                        "training:\n"
                        "  learning_rate: 0.05   # a comment\n"
                        "  steps: 50\n"
                        "cluster:\n"
                        "  nodes:\n"
                        "    - id: n1\n"
                        "      listen: tcp://127.0.0.1:7701\n"
                        "  coordinator: tcp://127.0.0.1:7700\n"
                        "  min_nodes: 1\n"
                        "data: { rows: 100000 }\n");
    char *c = canonical(MINIMAL "training: { steps: 50, learning_rate: 0.0500000001 }\n");
    char *d = canonical(MINIMAL "training: { steps: 51, learning_rate: 0.05 }\n");
    ck_assert_str_eq(a, b);
    ck_assert_str_ne(a, c); /* doubles are written exactly */
    ck_assert_str_ne(a, d);
    ck_assert_ptr_nonnull(strstr(a, "training.steps=50\n"));
    ck_assert_ptr_nonnull(strstr(a, "cluster.nodes[0].id=n1\n"));
    free(a);
    free(b);
    free(c);
    free(d);
}
END_TEST

START_TEST(defaults_apply)
{
    rl_spec *s = NULL;
    char *summary = NULL;
    size_t size = 0;
    ck_assert_int_eq(load_text(MINIMAL, NULL, &s), RL_OK);
    ck_assert_str_eq(s->name, "ringleader");
    ck_assert_str_eq(s->dir, ".");
    ck_assert_int_eq(s->launch, RL_LAUNCH_LOCAL);
    ck_assert_int_eq(s->min_nodes, 1);
    ck_assert_int_eq(s->join_timeout_ms, 30000);
    ck_assert_double_eq(s->nodes[0].capacity, 1.0);
    ck_assert_str_eq(s->token_file, "");
    ck_assert_int_eq(s->source, RL_DATA_SYNTHETIC);
    ck_assert_int_eq(s->rows, 100000);
    ck_assert_int_eq(s->features, 16);
    ck_assert_uint_eq(s->seed, 1);
    ck_assert_int_eq(s->block_rows, 4096);
    ck_assert_int_eq(s->standardize, 1);
    ck_assert_int_eq(s->model, RL_MODEL_LINEAR);
    ck_assert_int_eq(s->classes, 1);
    ck_assert_int_eq(s->steps, 100);
    ck_assert_double_eq(s->learning_rate, 0.1);
    ck_assert_uint_eq(s->chunk_bytes, 1048576);
    ck_assert_int_eq(s->heartbeat_ms, 100);
    ck_assert_int_eq(s->failure_timeout_ms, 500);
    ck_assert_double_eq(s->straggler_factor, 1.5);
    ck_assert_int_eq(s->rebalance, 1);
    ck_assert_str_eq(s->out_dir, "runs/ringleader");
    FILE *out = open_memstream(&summary, &size);
    rl_spec_describe(s, out);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(summary, "RINGLEADER_TOKEN")); /* no security section: fine */
    free(summary);
    rl_spec_free(s);

    /* The default output directory follows the cluster name. */
    ck_assert_int_eq(load_text("cluster:\n  name: job-7\n  coordinator: tcp://h:1\n"
                               "  nodes: [{id: a, listen: tcp://h:2}]\n",
                               NULL, &s),
                     RL_OK);
    ck_assert_str_eq(s->out_dir, "runs/job-7");
    rl_spec_free(s);
}
END_TEST

START_TEST(values_in_other_spellings)
{
    rl_spec *s = NULL;
    ck_assert_int_eq(load_text(MINIMAL "data:\n  rows: 2e5\n  seed: 0x10\n"
                                       "fault_tolerance:\n  rebalance: no\n"
                                       "allreduce:\n  chunk_bytes: 4096\n"
                                       "model: { type: softmax, classes: 10 }\n"
                                       "security:\n"
                                       "output:\n  dir: /tmp/out\n",
                               NULL, &s),
                     RL_OK);
    ck_assert_int_eq(s->rows, 200000);
    ck_assert_uint_eq(s->seed, 16);
    ck_assert_int_eq(s->rebalance, 0);
    ck_assert_uint_eq(s->chunk_bytes, 4096);
    ck_assert_int_eq(s->classes, 10);
    ck_assert_str_eq(s->out_dir, "/tmp/out");
    ck_assert_str_eq(rl_model_type_name(s->model), "softmax");
    ck_assert_str_eq(rl_launch_name(RL_LAUNCH_MANUAL), "manual");
    ck_assert_str_eq(rl_data_source_name(RL_DATA_CSV), "csv");
    rl_spec_free(s);
}
END_TEST

/* ---- Every class of error, at its position ------------------------------ */

static const struct {
    const char *text;
    const char *expect; /* a substring of the output */
    size_t len;         /* 0: strlen(text) */
} bad_specs[] = {
    /* YAML syntax: libyaml's marks count from 0, ours from 1 */
    {"cluster:\n  name: x\n   coordinator: y\n", "t.yaml:3:15: syntax error: mapping values"},
    {"cluster:\n\tname: x\n", "t.yaml:2:1: syntax error: found character that cannot start any "
                              "token"},
    {"cluster: [1, 2\n", "t.yaml:2:1: syntax error: did not find expected ',' or ']'"},
    {"cluster:\n  name: \"x\xff\"\n",
     "t.yaml:2:11: invalid text: invalid leading UTF-8 octet (value 0xFF)"},
    /* refused constructs */
    {MINIMAL "data: &d { rows: 5 }\nmodel: *d\n", "t.yaml:6:8: aliases (*d) are not supported"},
    {MINIMAL "---\ncluster: {}\n", "t.yaml:5:1: a second YAML document starts here"},
    {"a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
     "t.yaml:1:35: maps and lists nested more than 32 levels deep"},
    {"", "t.yaml:1:1: missing required key 'cluster' at top level"},
    {"- a\n- b\n", "t.yaml:1:1: expected a map of sections"},
    {"\xFF\xFE"
     "c\0l\0",
     "t.yaml: the spec is UTF-16", 6},
    /* unknown keys */
    {MINIMAL "fault_tolerance:\n  heartbeat_msec: 100\n",
     "t.yaml:6:3: unknown key 'heartbeat_msec' in fault_tolerance (did you mean 'heartbeat_ms'?)"},
    {MINIMAL "trainig:\n  steps: 5\n",
     "t.yaml:5:1: unknown key 'trainig' at top level (did you mean 'training'?)"},
    {MINIMAL "model:\n  steps: 5\n",
     "t.yaml:6:3: unknown key 'steps' in model (it belongs in training)"},
    {MINIMAL "cluster2: 1\n", "t.yaml:5:1: unknown key 'cluster2' at top level (did you mean"},
    {"cluster:\n  coordinator: tcp://h:1\n  nodes:\n    - { id: a, listen: tcp://h:2, port: 3 }\n",
     "t.yaml:4:35: unknown key 'port' in cluster.nodes[0]"},
    {MINIMAL "? [a]\n: 1\n", "t.yaml:5:3: a key must be a name, not a list"},
    /* wrong types */
    {MINIMAL "training:\n  steps: ten\n",
     "t.yaml:6:10: training.steps: expected an integer, got 'ten'"},
    {MINIMAL "training:\n  steps: 1.5\n",
     "t.yaml:6:10: training.steps: expected an integer, got '1.5'"},
    {MINIMAL "training:\n  steps: \"100\"\n",
     "t.yaml:6:10: training.steps: expected an integer, got the quoted string '100'"},
    {MINIMAL "training:\n  steps:\n", "t.yaml:6:9: training.steps: expected an integer, got "
                                      "nothing"},
    {MINIMAL "training: [1, 2]\n", "t.yaml:5:11: training: expected a map, got a list"},
    {MINIMAL "training:\n  learning_rate: [0.1]\n",
     "t.yaml:6:18: training.learning_rate: expected a number, got a list"},
    {MINIMAL "training:\n  learning_rate: .inf\n",
     "t.yaml:6:18: training.learning_rate: expected a number, got '.inf'"},
    {MINIMAL "fault_tolerance:\n  rebalance: maybe\n",
     "t.yaml:6:14: fault_tolerance.rebalance: expected true or false, got 'maybe'"},
    {MINIMAL "data:\n  source: parquet\n",
     "t.yaml:6:11: data.source: expected synthetic or csv, got 'parquet'"},
    {"cluster:\n  coordinator: tcp://h:1\n  nodes: { id: a }\n",
     "t.yaml:3:10: cluster.nodes: expected a list of nodes, got a map"},
    {"cluster:\n  coordinator: tcp://h:1\n  nodes: [a]\n",
     "t.yaml:3:11: cluster.nodes[0]: expected a map with id and listen, got 'a'"},
    {"cluster:\n  coordinator: tcp://h:1\n  nodes: []\n",
     "t.yaml:3:10: cluster.nodes: list at least one node"},
    {"cluster:\n  name: my job\n  coordinator: tcp://h:1\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:9: cluster.name: 'my job' is not a valid name"},
    {"cluster:\n  name: \"a\\0b\"\n  coordinator: tcp://h:1\n"
     "  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:9: cluster.name: 'a?b' contains a NUL character"},
    {"cluster:\n  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
     "  coordinator: tcp://h:1\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:9: cluster.name: is too long (68 characters; at most 63)"},
    /* out of range */
    {MINIMAL "allreduce:\n  chunk_bytes: 100\n",
     "t.yaml:6:16: allreduce.chunk_bytes: 100 is out of range (must be from 4096 to 67108864)"},
    {MINIMAL "training:\n  steps: 0\n",
     "t.yaml:6:10: training.steps: 0 is out of range (must be from 1 to 100000000)"},
    {MINIMAL "training:\n  learning_rate: 0\n",
     "t.yaml:6:18: training.learning_rate: 0 is out of range (must be > 0 and <= 1000)"},
    {MINIMAL "fault_tolerance:\n  straggler_factor: 1\n",
     "t.yaml:6:21: fault_tolerance.straggler_factor: 1 is out of range (must be > 1 and <= 1000)"},
    {MINIMAL "data:\n  features: 100001\n",
     "t.yaml:6:13: data.features: 100001 is out of range (must be from 1 to 100000)"},
    {MINIMAL "data:\n  seed: -1\n",
     "t.yaml:6:9: data.seed: -1 is out of range for a non-negative integer"},
    {MINIMAL "data:\n  rows: 99999999999999999999999\n",
     "t.yaml:6:9: data.rows: 99999999999999999999999 is out of range (must be from 1 to "
     "1000000000000)"},
    {"cluster:\n  coordinator: tcp://h:1\n  min_nodes: 3\n"
     "  nodes: [{id: a, listen: tcp://h:2}, {id: b, listen: tcp://h:3}]\n",
     "t.yaml:3:14: cluster.min_nodes: 3 is more than the 2 nodes listed"},
    {MINIMAL "fault_tolerance:\n  heartbeat_ms: 500\n",
     "t.yaml:6:17: fault_tolerance.failure_timeout_ms (500) must be greater than heartbeat_ms "
     "(500)"},
    {MINIMAL "fault_tolerance:\n  heartbeat_ms: 100\n  failure_timeout_ms: 50\n",
     "t.yaml:7:23: fault_tolerance.failure_timeout_ms (50) must be greater than heartbeat_ms"},
    /* duplicates */
    {MINIMAL "training:\n  steps: 1\n  steps: 2\n",
     "t.yaml:7:3: duplicate key 'steps' in training (first at line 6)"},
    {"cluster:\n  coordinator: tcp://h:1\n  nodes:\n    - { id: a, listen: tcp://h:2 }\n"
     "    - { id: a, listen: tcp://h:3 }\n",
     "t.yaml:5:13: cluster.nodes[1].id: duplicate node id 'a' (also cluster.nodes[0] at line 4)"},
    {"cluster:\n  coordinator: tcp://h:1\n  nodes:\n    - { id: a, listen: tcp://h:2 }\n"
     "    - { id: b, listen: tcp://H:02 }\n",
     "t.yaml:5:24: cluster.nodes[1].listen: duplicate listen address h:2 (also cluster.nodes[0] "
     "at line 4)"},
    {"cluster:\n  coordinator: tcp://h:1\n  nodes:\n    - { id: a, listen: tcp://h:1 }\n",
     "t.yaml:4:24: cluster.nodes[0].listen: h:1 is also the coordinator's address (line 2)"},
    /* URLs */
    {"cluster:\n  coordinator: tcp://h\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:16: cluster.coordinator: 'tcp://h' has no port"},
    {"cluster:\n  coordinator: tcp://h:0\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:16: cluster.coordinator: 'tcp://h:0': port '0' is not a number from 1 to 65535"},
    {"cluster:\n  coordinator: tcp://h:65536\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "port '65536' is not a number from 1 to 65535"},
    {"cluster:\n  coordinator: tcp://h:1\n  nodes: [{id: a, listen: tcp://h:65536}]\n",
     "t.yaml:3:27: cluster.nodes[0].listen: 'tcp://h:65536': port '65536' is not a number from 1 "
     "to 65535"},
    /* cluster.nodes or cluster.nodes_file, never both */
    {"cluster:\n  coordinator: tcp://h:1\n  nodes_file: hosts\n"
     "  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:3:3: cluster.nodes_file and cluster.nodes are exclusive: list the nodes in one of "
     "them (nodes at line 4)"},
    {"cluster:\n  coordinator: tcp://h:1\n  nodes_file: hosts\n",
     "t.yaml:3:15: cluster.nodes_file: file 'hosts' does not exist"},
    {"cluster:\n  coordinator: udp://h:1\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:16: cluster.coordinator: 'udp://h:1' has scheme 'udp' (use tcp:// or tls+tcp://)"},
    {"cluster:\n  coordinator: localhost:7700\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:16: cluster.coordinator: 'localhost:7700' is not a URL (expected tcp://HOST:PORT "
     "or tls+tcp://HOST:PORT)"},
    {"cluster:\n  coordinator: tcp://h:1/x\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:16: cluster.coordinator: 'tcp://h:1/x' must be just SCHEME://HOST:PORT"},
    {"cluster:\n  coordinator: tcp://:1\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:16: cluster.coordinator: 'tcp://:1' has no valid host"},
    {"cluster:\n  coordinator: nonsense\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:16: cluster.coordinator: 'nonsense' is not a URL"},
    {"cluster:\n  coordinator: tls+tcp://h:1\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:16: cluster.coordinator: a tls+tcp:// URL needs security.tls (cert, key and ca)"},
    /* missing required keys point at the enclosing map */
    {"cluster:\n  name: x\n  nodes: [{id: a, listen: tcp://h:2}]\n",
     "t.yaml:2:3: missing required key 'coordinator' in cluster"},
    {"cluster:\n  coordinator: tcp://h:1\n", "t.yaml:2:3: missing required key 'nodes' in cluster"},
    {"data:\n  rows: 5\n", "t.yaml:1:1: missing required key 'cluster' at top level"},
    {"cluster:\n  coordinator: tcp://h:1\n  nodes:\n    - { listen: tcp://h:2 }\n",
     "t.yaml:4:7: missing required key 'id' in cluster.nodes[0]"},
    {"cluster:\n  coordinator: tcp://h:1\n  nodes:\n    - id: a\n",
     "t.yaml:4:7: missing required key 'listen' in cluster.nodes[0]"},
    {MINIMAL "model:\n  type: softmax\n",
     "t.yaml:6:3: missing required key 'classes' in model (model.type: softmax needs"},
    {MINIMAL "model:\n  type: logistic\n  classes: 3\n",
     "t.yaml:7:3: model.classes: only used with model.type: softmax"},
    {MINIMAL "data:\n  source: csv\n",
     "t.yaml:6:3: missing required key 'csv' in data (data.source: csv needs csv: {path, label})"},
    {MINIMAL "data:\n  source: csv\n  csv: { label: y }\n",
     "t.yaml:7:8: missing required key 'path' in data.csv"},
    {MINIMAL "data:\n  csv: { path: t.csv, label: y }\n",
     "t.yaml:6:3: data.csv: only used with data.source: csv"},
    {MINIMAL "security:\n  tls: { cert: c.pem }\n",
     "t.yaml:6:8: missing required key 'key' in security.tls"},
    /* files */
    {MINIMAL "security:\n  token_file: nope.token\n",
     "t.yaml:6:15: security.token_file: file 'nope.token' does not exist"},
    {MINIMAL "security:\n  token_file: /\n", "t.yaml:6:15: security.token_file: '/' is not a "
                                             "regular file"},
    {MINIMAL "data:\n  source: csv\n  csv: { path: nope.csv, label: y }\n",
     "t.yaml:7:16: data.csv.path: file 'nope.csv' does not exist"},
    {MINIMAL "security:\n  tls: { cert: c.pem, key: k.pem, ca: ca.pem }\n",
     "t.yaml:6:16: security.tls.cert: file 'c.pem' does not exist"},
    /* program (docs/worker-api.md) */
    {MINIMAL "program: { command: ./train }\n",
     "t.yaml:5:21: program.command: expected a list of strings, the program and its arguments, "
     "got './train'"},
    {MINIMAL "program: { command: [] }\n", "t.yaml:5:21: program.command: expected a list"},
    {MINIMAL "program: { command: [a, [b]] }\n", "t.yaml:5:25: program.command: expected a list"},
    {MINIMAL "program: { command: [a], env: { A: [1] } }\n",
     "t.yaml:5:36: program.env: expected a map of environment variable names to strings, got a "
     "list"},
    {MINIMAL "program: { env: { A: b } }\n", "missing required key 'command' in program"},
};

START_TEST(program_section_loads_its_list_and_map)
{
    rl_spec *s = NULL;
    ck_assert_int_eq(load_text(MINIMAL "program:\n  command: [python3, train.py, --epochs, \"3\"]\n"
                                       "  env: { OMP_NUM_THREADS: 1, MODE: \"fast run\" }\n"
                                       "  workdir: work\n",
                               NULL, &s),
                     RL_OK);
    ck_assert_int_eq(s->program_argv.n, 4);
    ck_assert_str_eq(s->program_argv.v[0], "python3");
    ck_assert_str_eq(s->program_argv.v[3], "3");
    ck_assert_ptr_null(s->program_argv.v[4]);
    ck_assert_int_eq(s->program_env.n, 2);
    ck_assert_str_eq(s->program_env.v[0], "OMP_NUM_THREADS=1");
    ck_assert_str_eq(s->program_env.v[1], "MODE=fast run");
    ck_assert_str_eq(s->program_workdir, "work");
    rl_spec_free(s);
    ck_assert_int_eq(load_text(MINIMAL, NULL, &s), RL_OK); /* no program: the built-in trainer */
    ck_assert_int_eq(s->program_argv.n, 0);
    rl_spec_free(s);
}
END_TEST

START_TEST(each_error_is_reported_at_its_position)
{
    char *msgs = NULL;
    char *dir = rlt_tmpdir(); /* so that relative file names name nothing */
    size_t len = bad_specs[_i].len ? bad_specs[_i].len : strlen(bad_specs[_i].text);
    ck_assert_int_eq(chdir(dir), 0);
    ck_assert_int_eq(load_bytes(bad_specs[_i].text, len, &msgs, NULL), RL_ECONFIG);
    ck_assert_msg(strstr(msgs, bad_specs[_i].expect) != NULL, "case %d: expected\n  %s\ngot\n%s",
                  _i, bad_specs[_i].expect, msgs);
    free(msgs);
    free(dir);
}
END_TEST

START_TEST(a_problem_shows_its_line_and_a_caret)
{
    char *msgs = NULL;
    ck_assert_int_eq(load_text(MINIMAL "training:\n  steps: ten\n", &msgs, NULL), RL_ECONFIG);
    ck_assert_str_eq(msgs, "t.yaml:6:10: training.steps: expected an integer, got 'ten'\n"
                           "    steps: ten\n"
                           "           ^\n");
    ck_assert_str_eq(rl_errdetail(), "t.yaml:6:10: training.steps: expected an integer, got 'ten'");
    free(msgs);

    /* A long line is cut to a window around the column. */
    char text[4096];
    snprintf(text, sizeof(text), MINIMAL "output: { dir: %0300d, x: 1 }\n", 0);
    ck_assert_int_eq(load_text(text, &msgs, NULL), RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "t.yaml:5:318: unknown key 'x' in output\n  ..."));
    ck_assert_ptr_nonnull(strstr(msgs, "0, x: 1 }\n     "));
    ck_assert_ptr_nonnull(strstr(msgs, "      ^\n"));
    free(msgs);
}
END_TEST

START_TEST(all_problems_in_one_pass)
{
    char *msgs = NULL;
    const char *text = "cluster:\n"                               /* 1 */
                       "  coordinator: tcp://127.0.0.1:7700\n"    /* 2 */
                       "  launch: remote\n"                       /* 3 */
                       "  nodes:\n"                               /* 4 */
                       "    - { id: n1, listen: tcp://h:7701 }\n" /* 5 */
                       "    - { id: n1, listen: tcp://h:7701 }\n" /* 6 */
                       "security:\n"                              /* 7 */
                       "  token_file: missing.token\n"            /* 8 */
                       "training:\n"                              /* 9 */
                       "  steps: many\n"                          /* 10 */
                       "fault_tolerance:\n"                       /* 11 */
                       "  heartbeat_msec: 100\n";                 /* 12 */
    char *dir = rlt_tmpdir();
    ck_assert_int_eq(chdir(dir), 0);
    ck_assert_int_eq(load_text(text, &msgs, NULL), RL_ECONFIG);
    ck_assert_int_eq(count_problems(msgs), 6);
    const char *want[] = {
        "t.yaml:3:11: cluster.launch",          "t.yaml:6:13: cluster.nodes[1].id",
        "t.yaml:6:25: cluster.nodes[1].listen", "t.yaml:8:15: security.token_file",
        "t.yaml:10:10: training.steps",         "t.yaml:12:3: unknown key 'heartbeat_msec'"};
    const char *at = msgs;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const char *p = strstr(at, want[i]);
        ck_assert_msg(p != NULL, "missing or out of order: %s\n%s", want[i], msgs);
        at = p;
    }
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "(and 5 more problems)"));
    free(msgs);
    free(dir);
}
END_TEST

START_TEST(a_flood_of_problems_is_cut)
{
    /* 150 unknown sections: 100 are shown, the rest counted. */
    size_t cap = 8192, n = 0;
    char *text = malloc(cap), *msgs = NULL;
    n += (size_t)snprintf(text, cap, MINIMAL);
    for (int i = 0; i < 150; i++)
        n += (size_t)snprintf(text + n, cap - n, "x%d: 1\n", i);
    ck_assert_int_eq(load_text(text, &msgs, NULL), RL_ECONFIG);
    ck_assert_int_eq(count_problems(msgs), 100);
    ck_assert_ptr_nonnull(strstr(msgs, "t.yaml: 50 more problems not shown"));
    free(msgs);

    /* A map with more keys than any map of the spec needs is refused whole. */
    n = (size_t)snprintf(text, cap, MINIMAL "training:\n");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(text + n, cap - n, "  k%d: 1\n", i);
    ck_assert_int_eq(load_text(text, &msgs, NULL), RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "t.yaml:6:3: 300 keys in training; at most 256"));
    ck_assert_int_eq(count_problems(msgs), 1);
    free(msgs);
    free(text);
}
END_TEST

/* ---- Files and paths ---------------------------------------------------- */

START_TEST(relative_paths_resolve_against_the_spec)
{
    char *tmp = rlt_tmpdir(), path[512], text[1024];
    rl_spec *s = NULL;
    snprintf(path, sizeof(path), "%s/sub", tmp);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/sub/data", tmp);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/sub/tok", tmp);
    rlt_write_file(path, "secret\n", 7);
    snprintf(path, sizeof(path), "%s/sub/data/d.csv", tmp);
    rlt_write_file(path, "\"a\", b ,\"y\"\r\n1,2,0\n", 19);
    snprintf(text, sizeof(text),
             MINIMAL "security: { token_file: tok }\n"
                     "data: { source: csv, csv: { path: data/d.csv, label: y } }\n"
                     "output: { dir: out/here }\n");
    snprintf(path, sizeof(path), "%s/sub/spec.yaml", tmp);
    rlt_write_file(path, text, strlen(text));

    /* Through the full path: */
    ck_assert_int_eq(rl_spec_load(path, &s, stderr), RL_OK);
    snprintf(path, sizeof(path), "%s/sub", tmp);
    ck_assert_str_eq(s->dir, path);
    snprintf(path, sizeof(path), "%s/sub/tok", tmp);
    ck_assert_str_eq(s->token_file, path);
    snprintf(path, sizeof(path), "%s/sub/data/d.csv", tmp);
    ck_assert_str_eq(s->csv_path, path);
    ck_assert_int_eq(s->features, 2);         /* a, b; y is the label */
    ck_assert_str_eq(s->out_dir, "out/here"); /* relative to the current directory */
    rl_spec_free(s);

    /* Through a relative path from the parent directory: */
    ck_assert_int_eq(chdir(tmp), 0);
    ck_assert_int_eq(rl_spec_load("sub/spec.yaml", &s, stderr), RL_OK);
    ck_assert_str_eq(s->dir, "sub");
    ck_assert_str_eq(s->token_file, "sub/tok");
    ck_assert_str_eq(s->csv_path, "sub/data/d.csv");
    rl_spec_free(s);

    /* From its own directory, and with an absolute token path: */
    ck_assert_int_eq(chdir("sub"), 0);
    snprintf(text, sizeof(text), MINIMAL "security: { token_file: %s/sub/tok }\n", tmp);
    ck_assert_int_eq(load_text(text, NULL, &s), RL_OK);
    snprintf(path, sizeof(path), "%s/sub/tok", tmp);
    ck_assert_str_eq(s->token_file, path);
    rl_spec_free(s);
    ck_assert_int_eq(load_text(MINIMAL "security: { token_file: tok }\n", NULL, &s), RL_OK);
    ck_assert_str_eq(s->token_file, "tok");
    rl_spec_free(s);
    free(tmp);
}
END_TEST

/* Port 0: any free port on that host, bound by the node and reported
 * when it joins; several nodes may say it on one host. Not the
 * coordinator's: nodes dial that one. */
START_TEST(listen_port_zero_is_any_port)
{
    rl_spec *s = NULL;
    char *msgs = NULL;
    ck_assert_int_eq(load_text("cluster:\n  coordinator: tcp://127.0.0.1:7700\n  nodes:\n"
                               "    - { id: a, listen: tcp://127.0.0.1:0 }\n"
                               "    - { id: b, listen: tcp://127.0.0.1:0 }\n",
                               NULL, &s),
                     RL_OK);
    ck_assert_str_eq(s->nodes[1].listen, "tcp://127.0.0.1:0");
    rl_spec_free(s);
    ck_assert_int_eq(load_text("cluster:\n  coordinator: tcp://127.0.0.1:0\n  nodes:\n"
                               "    - { id: a, listen: tcp://127.0.0.1:0 }\n",
                               &msgs, NULL),
                     RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "port '0' is not a number from 1 to 65535"));
    free(msgs);

    /* How a joined ring endpoint is compared with the spec's listen. */
    ck_assert(rl_spec_listen_matches("tcp://10.0.0.2:0", "tcp://10.0.0.2:41234"));
    ck_assert(rl_spec_listen_matches("tcp://Host.A:7701", "tcp://host.a:7701"));
    ck_assert(!rl_spec_listen_matches("tcp://10.0.0.2:7701", "tcp://10.0.0.2:7702"));
    ck_assert(!rl_spec_listen_matches("tcp://10.0.0.2:0", "tcp://127.0.0.1:41234"));
    ck_assert(!rl_spec_listen_matches("tcp://10.0.0.2:0", "tls+tcp://10.0.0.2:41234"));
    ck_assert(!rl_spec_listen_matches("tcp://10.0.0.2:0", "tcp://10.0.0.2:0"));
    ck_assert(!rl_spec_listen_matches("tcp://10.0.0.2:0", "not a url"));
}
END_TEST

/* `run SPEC --nodes N`: N nodes n1..nN on the coordinator's host, port 0. */
START_TEST(local_nodes_replace_the_list)
{
    rl_spec *s = NULL;
    ck_assert_int_eq(load_text(MINIMAL, NULL, &s), RL_OK);
    ck_assert_int_eq(rl_spec_set_local_nodes(s, 3), RL_OK);
    ck_assert_int_eq(s->n_nodes, 3);
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof(id), "n%d", i + 1);
        ck_assert_str_eq(s->nodes[i].id, id);
        ck_assert_str_eq(s->nodes[i].listen, "tcp://127.0.0.1:0");
        ck_assert_double_eq(s->nodes[i].capacity, 1.0);
    }
    ck_assert_int_eq(rl_spec_set_local_nodes(s, 0), RL_EINVAL);
    ck_assert_int_eq(rl_spec_set_local_nodes(s, RL_SPEC_MAX_NODES + 1), RL_EINVAL);
    ck_assert_int_eq(s->n_nodes, 3);
    rl_spec_free(s);

    /* A wildcard coordinator address: the nodes listen on loopback. */
    ck_assert_int_eq(
        load_text("cluster:\n  coordinator: tcp://0.0.0.0:7700\n  min_nodes: 2\n"
                  "  nodes: [{id: a, listen: tcp://h:1}, {id: b, listen: tcp://h:2}]\n",
                  NULL, &s),
        RL_OK);
    ck_assert_int_eq(rl_spec_set_local_nodes(s, 1), RL_EINVAL); /* below min_nodes */
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "fewer than cluster.min_nodes (2)"));
    ck_assert_int_eq(rl_spec_set_local_nodes(s, 2), RL_OK);
    ck_assert_str_eq(s->nodes[0].listen, "tcp://127.0.0.1:0");
    rl_spec_free(s);

    /* launch: manual: the nodes are started by hand, so --nodes is refused. */
    ck_assert_int_eq(load_text(MINIMAL "  launch: manual\n", NULL, &s), RL_OK);
    ck_assert_int_eq(rl_spec_set_local_nodes(s, 2), RL_EINVAL);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "launch: manual"));
    ck_assert_int_eq(s->n_nodes, 1);
    rl_spec_free(s);
}
END_TEST

/* cluster.nodes_file: each host of K slots gives nodes HOST-1..HOST-K on
 * port 0 of that host; the hostfile's problems carry FILE:LINE. */
START_TEST(nodes_file_lists_the_nodes)
{
    char *tmp = rlt_tmpdir(), *msgs = NULL;
    rl_spec *s = NULL;
    ck_assert_int_eq(chdir(tmp), 0);
    rlt_write_file("hosts", "# two lines, one host\n127.0.0.1 slots=2\n\n127.0.0.1 slots=2\n",
                   strlen("# two lines, one host\n127.0.0.1 slots=2\n\n127.0.0.1 slots=2\n"));
    rlt_write_file("more", "alpha slots=2\nbeta\n", strlen("alpha slots=2\nbeta\n"));
    ck_assert_int_eq(load_text("cluster:\n  coordinator: tcp://127.0.0.1:7700\n"
                               "  nodes_file: hosts\n  min_nodes: 4\n",
                               NULL, &s),
                     RL_OK);
    ck_assert_str_eq(s->nodes_file, "hosts");
    ck_assert_int_eq(s->n_nodes, 4);
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof(id), "127.0.0.1-%d", i + 1);
        ck_assert_str_eq(s->nodes[i].id, id);
        ck_assert_str_eq(s->nodes[i].listen, "tcp://127.0.0.1:0");
    }
    rl_spec_free(s);
    ck_assert_int_eq(load_text("cluster:\n  coordinator: tcp://127.0.0.1:7700\n"
                               "  launch: manual\n  nodes_file: more\n",
                               NULL, &s),
                     RL_OK);
    ck_assert_int_eq(s->n_nodes, 3);
    ck_assert_str_eq(s->nodes[1].id, "alpha-2");
    ck_assert_str_eq(s->nodes[2].id, "beta-1");
    ck_assert_str_eq(s->nodes[2].listen, "tcp://beta:0");
    rl_spec_free(s);

    /* min_nodes counts the hostfile's nodes. */
    ck_assert_int_eq(load_text("cluster:\n  coordinator: tcp://127.0.0.1:7700\n"
                               "  nodes_file: more\n  min_nodes: 4\n",
                               &msgs, NULL),
                     RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "cluster.min_nodes: 4 is more than the 3 nodes listed"));
    free(msgs);

    rlt_write_file("bad", "ok\nbad:22\n\nx slots=0\n", strlen("ok\nbad:22\n\nx slots=0\n"));
    ck_assert_int_eq(load_text("cluster:\n  coordinator: tcp://127.0.0.1:7700\n"
                               "  nodes_file: bad\n",
                               &msgs, NULL),
                     RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "t.yaml:3:15: cluster.nodes_file: bad:2: 'bad:22': write "
                                       "a host name or an IPv4 address (no port, no IPv6)"));
    ck_assert_ptr_nonnull(strstr(msgs, "t.yaml:3:15: cluster.nodes_file: bad:4: 'slots=0': slots "
                                       "must be a number from 1 to 1024"));
    ck_assert_int_eq(count_problems(msgs), 2);
    free(msgs);
    free(tmp);
}
END_TEST

START_TEST(csv_header_is_checked)
{
    char *tmp = rlt_tmpdir(), *msgs = NULL;
    ck_assert_int_eq(chdir(tmp), 0);
    rlt_write_file("d.csv", "x1,x2,x3,label\n1,2,3,0\n", 23);
    rlt_write_file("empty.csv", "", 0);
    rlt_write_file("one.csv", "label\n0\n", 8);

    ck_assert_int_eq(
        load_text(MINIMAL "data:\n  source: csv\n  csv: { path: d.csv, label: y }\n", &msgs, NULL),
        RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "t.yaml:7:30: data.csv.label: no column 'y' in the header "
                                       "of 'd.csv' (x1,x2,x3,label)"));
    free(msgs);
    ck_assert_int_eq(load_text(MINIMAL "data:\n  source: csv\n  features: 5\n"
                                       "  csv: { path: d.csv, label: label }\n",
                               &msgs, NULL),
                     RL_ECONFIG);
    ck_assert_ptr_nonnull(
        strstr(msgs, "t.yaml:7:13: data.features: 5, but 'd.csv' has 3 feature columns"));
    free(msgs);
    ck_assert_int_eq(load_text(MINIMAL "data:\n  source: csv\n  rows: 5\n"
                                       "  csv: { path: d.csv, label: label }\n",
                               &msgs, NULL),
                     RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "t.yaml:7:3: data.rows: only used with data.source: "
                                       "synthetic"));
    free(msgs);
    ck_assert_int_eq(load_text(MINIMAL
                               "data:\n  source: csv\n  csv: { path: empty.csv, label: y }\n",
                               &msgs, NULL),
                     RL_ECONFIG);
    ck_assert_ptr_nonnull(
        strstr(msgs, "t.yaml:7:16: data.csv.path: 'empty.csv' has no header row"));
    free(msgs);
    ck_assert_int_eq(load_text(MINIMAL
                               "data:\n  source: csv\n  csv: { path: one.csv, label: label }\n",
                               &msgs, NULL),
                     RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "'one.csv' has 0 feature columns besides 'label'"));
    free(msgs);
    free(tmp);
}
END_TEST

START_TEST(files_that_cannot_be_read)
{
    char *tmp = rlt_tmpdir(), path[512], *msgs = NULL;
    size_t size = 0;
    rl_spec *s = (rl_spec *)0x1;
    FILE *err = open_memstream(&msgs, &size);

    snprintf(path, sizeof(path), "%s/none.yaml", tmp);
    ck_assert_int_eq(rl_spec_load(path, &s, err), RL_ENOTFOUND);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(rl_spec_load(tmp, &s, err), RL_EIO);
    ck_assert_ptr_null(s);

    /* Over 1 MiB: refused before parsing. */
    size_t big = RL_SPEC_MAX_BYTES + 10;
    char *text = malloc(big);
    memset(text, '#', big);
    snprintf(path, sizeof(path), "%s/big.yaml", tmp);
    rlt_write_file(path, text, big);
    ck_assert_int_eq(rl_spec_load(path, &s, err), RL_ECONFIG);
    ck_assert_ptr_null(s);
    fclose(err);
    ck_assert_ptr_nonnull(strstr(msgs, "none.yaml: cannot open: No such file or directory"));
    ck_assert_ptr_nonnull(strstr(msgs, ": cannot read: Is a directory"));
    ck_assert_ptr_nonnull(strstr(msgs, "big.yaml: the spec is over 1048576 bytes"));

    /* err may be NULL: nothing printed, the first problem in rl_errdetail. */
    ck_assert_int_eq(rl_spec_load_text("q.yaml", "cluster: 5\n", 11, &s, NULL), RL_ECONFIG);
    ck_assert_str_eq(rl_errdetail(), "q.yaml:1:10: cluster: expected a map, got '5'");
    free(text);
    free(msgs);
    free(tmp);
}
END_TEST

/* ---- Hostile input ------------------------------------------------------ */

START_TEST(hostile_documents_stay_cheap)
{
    /* Billion laughs: refused at the first alias, never expanded. */
    const char *laughs = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                         "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                         "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n";
    char *msgs = NULL;
    ck_assert_int_eq(load_text(laughs, &msgs, NULL), RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "t.yaml:2:8: aliases (*a) are not supported"));
    free(msgs);

    /* 1 MiB of nesting and of tiny values. */
    size_t n = RL_SPEC_MAX_BYTES;
    char *text = malloc(n + 1);
    memset(text, '[', n);
    text[n] = '\0';
    ck_assert_int_eq(load_text(text, &msgs, NULL), RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "nested more than 32 levels"));
    free(msgs);
    text[0] = '[';
    for (size_t i = 1; i + 2 < n; i += 2)
        text[i] = '1', text[i + 1] = ',';
    text[n - 2] = ']';
    text[n - 1] = '\0';
    ck_assert_int_eq(load_text(text, &msgs, NULL), RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "too many values (more than 100000)"));
    free(msgs);
    free(text);

    /* 2000 nodes: over RL_SPEC_MAX_NODES. */
    size_t cap = 200000, len = 0;
    text = malloc(cap);
    len += (size_t)snprintf(text, cap, "cluster:\n  coordinator: tcp://h:1\n  nodes:\n");
    for (int i = 0; i < 2000; i++)
        len += (size_t)snprintf(text + len, cap - len, "    - {id: n%d, listen: tcp://h:%d}\n", i,
                                i + 2);
    ck_assert_int_eq(load_text(text, &msgs, NULL), RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(msgs, "t.yaml:4:5: cluster.nodes: 2000 nodes; at most 1024"));
    free(msgs);
    free(text);
}
END_TEST

/* Applies one deterministic random edit to buf (len bytes, capacity cap). */
static size_t mutate(char *buf, size_t len, size_t cap, uint64_t *rng)
{
    static const char syntax[] = ":-[]{},#&*!|>'\"%@`? \n\t0123456789.";
    size_t at = len ? (size_t)(rlt_rand(rng) % len) : 0;
    switch (rlt_rand(rng) % 6) {
    case 0: /* any byte */
        if (len) buf[at] = (char)(rlt_rand(rng) & 0xFF);
        break;
    case 1: /* a byte that means something to YAML */
        if (len) buf[at] = syntax[rlt_rand(rng) % (sizeof(syntax) - 1)];
        break;
    case 2: { /* delete a few bytes */
        size_t k = 1 + (size_t)(rlt_rand(rng) % 8);
        if (at + k > len) k = len - at;
        memmove(buf + at, buf + at + k, len - at - k);
        len -= k;
        break;
    }
    case 3: /* insert a YAML byte */
        if (len + 1 < cap) {
            memmove(buf + at + 1, buf + at, len - at);
            buf[at] = syntax[rlt_rand(rng) % (sizeof(syntax) - 1)];
            len++;
        }
        break;
    case 4: /* truncate */
        len = at;
        break;
    default: { /* copy a chunk elsewhere: duplicate keys, nodes, lines */
        size_t from = len ? (size_t)(rlt_rand(rng) % len) : 0;
        size_t k = (size_t)(rlt_rand(rng) % 40);
        if (from + k > len) k = len - from;
        if (len + k < cap) {
            memmove(buf + at + k, buf + at, len - at);
            memmove(buf + at, buf + (from >= at ? from + k : from), k);
            len += k;
        }
        break;
    }
    }
    return len;
}

START_TEST(mutated_specs_load_cleanly)
{
    FILE *f = fopen(CONFIGS "/local.yaml", "rb");
    char base[8192], buf[16384];
    ck_assert_ptr_nonnull(f);
    size_t base_len = fread(base, 1, sizeof(base), f);
    fclose(f);
    FILE *devnull = fopen("/dev/null", "w");
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 4000; iter++) {
        size_t len = base_len;
        memcpy(buf, base, len);
        int edits = 1 + (int)(rlt_rand(&rng) % 4);
        for (int e = 0; e < edits; e++)
            len = mutate(buf, len, sizeof(buf), &rng);
        rl_spec *s = (rl_spec *)0x1;
        /* The real name, so that demo.token resolves and the rules run. */
        int rc = rl_spec_load_text(CONFIGS "/local.yaml", buf, len, &s, devnull);
        ck_assert_msg(rc == RL_OK || rc == RL_ECONFIG, "iteration %d: rc %d", iter, rc);
        if (rc == RL_OK) {
            ck_assert_ptr_nonnull(s);
            rl_spec_describe(s, devnull);
            rl_spec_free(s);
            ok++;
        } else {
            ck_assert_ptr_null(s);
            ck_assert_str_ne(rl_errdetail(), "");
            bad++;
        }
    }
    fclose(devnull);
    /* Both outcomes happen: the edits are neither all fatal nor all harmless. */
    ck_assert_int_gt(ok, 50);
    ck_assert_int_gt(bad, 1000);
}
END_TEST

START_TEST(key_reference_lists_every_section)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    rl_spec_print_keys(out);
    fclose(out);
    const char *want[] = {"cluster:",         "cluster.nodes (list of maps):",
                          "security.tls:",    "data.csv:",
                          "fault_tolerance:", "heartbeat_ms",
                          "chunk_bytes",      "default 1048576, range [4096, 67108864]",
                          "straggler_factor"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(buf, want[i]) != NULL, "missing %s", want[i]);
    free(buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spec");
    TCase *tc = tcase_create("examples");
    tcase_add_test(tc, every_config_loads);
    tcase_add_test(tc, program_section_loads_its_list_and_map);
    tcase_add_test(tc, local_yaml_is_the_default_job);
    tcase_add_test(tc, csv_yaml_reads_the_header);
    tcase_add_test(tc, defaults_apply);
    tcase_add_test(tc, values_in_other_spellings);
    tcase_add_test(tc, key_reference_lists_every_section);
    tcase_add_test(tc, listen_port_zero_is_any_port);
    tcase_add_test(tc, local_nodes_replace_the_list);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, each_error_is_reported_at_its_position, 0,
                        (int)(sizeof(bad_specs) / sizeof(bad_specs[0])));
    tcase_add_test(tc, a_problem_shows_its_line_and_a_caret);
    tcase_add_test(tc, all_problems_in_one_pass);
    tcase_add_test(tc, a_flood_of_problems_is_cut);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_test(tc, relative_paths_resolve_against_the_spec);
    tcase_add_test(tc, csv_header_is_checked);
    tcase_add_test(tc, nodes_file_lists_the_nodes);
    tcase_add_test(tc, files_that_cannot_be_read);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_add_test(tc, hostile_documents_stay_cheap);
    tcase_add_test(tc, mutated_specs_load_cleanly);
    tcase_add_test(tc, the_canonical_form_ignores_comments_layout_order_and_written_defaults);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
