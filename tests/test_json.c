/*
 * test_json.c - the strict JSON reader (lib/json.c) and the run.json model
 * loader built on it (lib/run_json.c): valid documents, every kind of
 * malformed input with its LINE:COL, deep nesting refused, and every
 * truncation of a sample run.json refused (leak-free under ASan).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "ringleader/err.h"
#include "ringleader/model.h"
#include "ringleader/run_json.h"
#include "testutil.h"

static rli_json *parse_ok(const char *text)
{
    rli_json *v = NULL;
    int rc = rli_json_parse(text, strlen(text), 0, &v);
    ck_assert_msg(rc == RL_OK, "'%s': %s", text, rl_errdetail());
    ck_assert_ptr_nonnull(v);
    return v;
}

/* Parsing text fails with RL_EDATA and a detail starting with want. */
static void parse_bad(const char *text, const char *want)
{
    rli_json *v = (rli_json *)1;
    int rc = rli_json_parse(text, strlen(text), 0, &v);
    ck_assert_msg(rc == RL_EDATA, "'%s' gave %d", text, rc);
    ck_assert_ptr_null(v);
    ck_assert_msg(strncmp(rl_errdetail(), want, strlen(want)) == 0, "'%s': want '%s...', got '%s'",
                  text, want, rl_errdetail());
}

START_TEST(valid_documents)
{
    rli_json *v = parse_ok(" {\"a\": [1, -2.5e3, 0, true, false, null], \"b\": {}, \"c\": [],"
                           " \"s\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}\n");
    ck_assert_int_eq(v->kind, RLI_JSON_OBJECT);
    ck_assert_uint_eq(v->len, 4);
    const rli_json *a = rli_json_get(v, "a");
    ck_assert_int_eq(a->kind, RLI_JSON_ARRAY);
    ck_assert_uint_eq(a->len, 6);
    ck_assert(a->items[0]->number == 1.0);
    ck_assert(a->items[1]->number == -2500.0);
    ck_assert_int_eq(a->items[3]->kind, RLI_JSON_BOOL);
    ck_assert_int_eq(a->items[3]->boolean, 1);
    ck_assert_int_eq(a->items[4]->boolean, 0);
    ck_assert_int_eq(a->items[5]->kind, RLI_JSON_NULL);
    ck_assert_uint_eq(rli_json_get(v, "b")->len, 0);
    const rli_json *s = rli_json_get(v, "s");
    ck_assert_str_eq(s->str, "x\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
    ck_assert_uint_eq(s->len, strlen(s->str));
    ck_assert_ptr_null(rli_json_get(v, "missing"));
    ck_assert_ptr_null(rli_json_get(a, "a"));
    ck_assert_int_eq(a->line, 1);
    ck_assert_int_eq(a->col, 8);
    rli_json_free(v);
    /* Scalars at the top, raw UTF-8, a BOM, the run.json number format. */
    v = parse_ok("\xEF\xBB\xBF\"caf\xc3\xa9\"");
    ck_assert_str_eq(v->str, "caf\xc3\xa9");
    rli_json_free(v);
    v = parse_ok("0.10000000000000001");
    ck_assert(v->number == 0.1);
    rli_json_free(v);
    v = parse_ok("\n\n   -0");
    ck_assert_int_eq(v->line, 3);
    ck_assert_int_eq(v->col, 4);
    rli_json_free(v);
}
END_TEST

START_TEST(malformed_with_positions)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "1:1: unexpected end of input: expected a value"},
        {"   \n  ", "2:3: unexpected end of input: expected a value"},
        {"{", "1:2: unexpected end of input: expected a string key or '}'"},
        {"[1,", "1:4: unexpected end of input: expected a value"},
        {"[1 2]", "1:4: expected ',' or ']' in an array, found '2'"},
        {"{\"a\" 1}", "1:6: expected ':' after the key, found '1'"},
        {"{\"a\":1,}", "1:8: trailing comma before '}'"},
        {"[1,]", "1:4: trailing comma before ']'"},
        {"{a:1}", "1:2: expected a string key or '}', found 'a'"},
        {"{\"a\":1,\n \"a\":2}", "2:6: duplicate key \"a\""},
        {"[01]", "1:2: leading zeros are not allowed"},
        {"[-]", "1:3: expected a digit, found ']'"},
        {"1.", "1:3: unexpected end of input: expected a digit after '.'"},
        {"1e+", "1:4: unexpected end of input: expected a digit in the exponent"},
        {"1e999", "1:1: number out of the range of a double"},
        {"NaN", "1:1: expected a value, found 'N'"},
        {"[Infinity]", "1:2: expected a value, found 'I'"},
        {"tru", "1:1: unexpected end of input in 'true'"},
        {"nulx", "1:1: invalid literal"},
        {"\"abc", "1:5: unexpected end of input in a string"},
        {"\"a\tb\"", "1:3: control character 0x09 in a string"},
        {"\"\\x\"", "1:2: invalid escape: backslash then 'x'"},
        {"\"\\u12g4\"", "1:6: bad \\u escape"},
        {"\"\\udc00\"", "1:2: \\uDC00 is a lone low surrogate"},
        {"\"\\ud800x\"", "1:2: \\uD800 is a high surrogate without its low half"},
        {"\"\\u0000\"", "1:2: \\u0000 is not supported"},
        {"\"\xc3\x28\"", "1:2: invalid UTF-8"},
        {"\"\xc0\xaf\"", "1:2: invalid UTF-8"},      /* overlong */
        {"\"\xed\xa0\x80\"", "1:2: invalid UTF-8"}, /* a surrogate in UTF-8 */
        {"{} x", "1:4: unexpected 'x' after the value"},
        {"[1]\n\n  ]", "3:3: unexpected ']' after the value"},
        {"// c\n1", "1:1: expected a value, found '/'"},
        {"[1,\n  2,\n  @]", "3:3: expected a value, found '@'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) parse_bad(cases[i].text, cases[i].want);
    /* An embedded NUL is a bad byte, not the end of the text. */
    rli_json *v = NULL;
    ck_assert_int_eq(rli_json_parse("[1]\0", 4, 0, &v), RL_EDATA);
    ck_assert_str_eq(rl_errdetail(), "1:4: unexpected byte 0x00 after the value");
}
END_TEST

START_TEST(deep_nesting_refused)
{
    enum { N = 100000 };
    char *text = malloc(2 * N + 1);
    memset(text, '[', N);
    memset(text + N, ']', N);
    text[2 * N] = '\0';
    rli_json *v = NULL;
    ck_assert_int_eq(rli_json_parse(text, 2 * N, 0, &v), RL_EDATA);
    ck_assert_ptr_null(v);
    ck_assert_str_eq(rl_errdetail(), "1:65: nesting deeper than 64 levels");
    /* Exactly the limit is fine; a custom limit is honoured. */
    ck_assert_int_eq(rli_json_parse(text + N - 64, 128, 0, &v), RL_OK);
    rli_json_free(v);
    ck_assert_int_eq(rli_json_parse(text + N - 4, 8, 3, &v), RL_EDATA);
    ck_assert_str_eq(rl_errdetail(), "1:4: nesting deeper than 3 levels");
    free(text);
}
END_TEST

static const char sample_run_json[] =
    "{\n  \"status\": \"ok\",\n  \"spec\": \"configs/csv.yaml\",\n"
    "  \"model\": {\"type\": \"softmax\", \"features\": 2, \"classes\": 3, "
    "\"weights\": [1,2,3,4,5,6], \"bias\": [0.5,-0.5,0], \"mean\": [1,2], \"std\": [2,0.5]},\n"
    "  \"steps\": [\n    {\"step\": 0, \"loss\": 1.0986, \"ms\": null}\n  ],\n"
    "  \"events\": [{\"kind\": \"reassign\", \"detail\": \"epoch 1: \\u00e9\"}]\n}\n";

START_TEST(every_truncation_fails)
{
    size_t n = strlen(sample_run_json);
    rli_json *v = NULL;
    ck_assert_int_eq(rli_json_parse(sample_run_json, n, 0, &v), RL_OK);
    rli_json_free(v);
    /* The last byte is a newline: the document is complete from n - 1. */
    for (size_t cut = 0; cut < n - 1; cut++) {
        char *copy = malloc(cut + 1); /* exactly cut bytes: ASan sees any over-read */
        memcpy(copy, sample_run_json, cut);
        v = (rli_json *)1;
        int rc = rli_json_parse(copy, cut, 0, &v);
        ck_assert_msg(rc == RL_EDATA, "cut at %zu parsed", cut);
        ck_assert_ptr_null(v);
        ck_assert_msg(strchr(rl_errdetail(), ':') != NULL, "cut at %zu: %s", cut, rl_errdetail());
        free(copy);
    }
}
END_TEST

START_TEST(model_load_run_json)
{
    char *dir = rlt_tmpdir(), path[512];
    snprintf(path, sizeof(path), "%s/run.json", dir);
    rlt_write_file(path, sample_run_json, strlen(sample_run_json));
    rl_model m;
    double *mean, *std;
    ck_assert_int_eq(rl_model_load_run_json(path, &m, &mean, &std), RL_OK);
    ck_assert_int_eq(m.type, RL_MODEL_SOFTMAX);
    ck_assert_int_eq(m.features, 2);
    ck_assert_int_eq(m.classes, 3);
    ck_assert(m.w[5] == 6.0 && m.b[1] == -0.5 && mean[1] == 2.0 && std[0] == 2.0);
    rl_model_fini(&m);
    free(mean);
    free(std);

    static const struct {
        const char *text, *want;
        int rc;
    } bad[] = {
        {"[]", ":1:1: a run.json is an object", RL_EDATA},
        {"{\"status\": \"failed\", \"error\": \"interrupted\", \"model\": {}}",
         ": the run did not finish (status \"failed\": interrupted)", RL_EPRECOND},
        {"{\"status\": \"ok\"}", ":1:1: run.json has no \"model\"", RL_EDATA},
        {"{\"status\": \"ok\", \"model\": {\"type\": \"linear\", \"features\": 2, \"classes\": 1,\n"
         " \"weights\": [1], \"bias\": 0, \"mean\": null, \"std\": null}}",
         ":2:13: model.weights has 1 numbers; features 2 x classes 1 needs 2", RL_EDATA},
        {"{\"status\": \"ok\", \"model\": {\"type\": \"linear\", \"features\": 1, \"classes\": 1,"
         " \"weights\": [null], \"bias\": 0}}",
         ":1:87: model.weights[0] is null: the run wrote a non-finite value", RL_EDATA},
        {"{\"status\": \"ok\", \"model\": {\"type\": \"tree\", \"features\": 1, \"classes\": 1,"
         " \"weights\": [1], \"bias\": 0}}",
         ":1:36: model.type: want", RL_EDATA},
        {"{\"status\": \"ok\", \"model\": {\"type\": \"linear\", \"features\": 1.5, \"classes\": 1,"
         " \"weights\": [1], \"bias\": 0}}",
         ":1:58: model.features is 1.5", RL_EDATA},
        {"{\"status\": \"ok\", \"model\": {\"type\": \"linear\", \"features\": 1, \"classes\": 1,"
         " \"weights\": [1], \"bias\": 0, \"mean\": [0], \"std\": null}}",
         "model.mean and model.std must both be arrays or both null", RL_EDATA},
        {"{\"status\": \"ok\", \"model\": {\"type\": \"linear\", \"features\": 1, \"classes\": 1,"
         " \"weights\": [1], \"bias\": 0, \"mean\": [0], \"std\": [-1]}}",
         "model.std[0] is negative", RL_EDATA},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rlt_write_file(path, bad[i].text, strlen(bad[i].text));
        int rc = rl_model_load_run_json(path, &m, &mean, &std);
        ck_assert_msg(rc == bad[i].rc, "case %zu: rc %d (%s)", i, rc, rl_errdetail());
        ck_assert_msg(strstr(rl_errdetail(), bad[i].want) != NULL, "case %zu: want '%s' in '%s'",
                      i, bad[i].want, rl_errdetail());
        ck_assert(m.w == NULL && mean == NULL && std == NULL);
    }
    /* Every truncation of a good run.json is an error naming the file. */
    size_t n = strlen(sample_run_json);
    for (size_t cut = 0; cut < n - 1; cut++) {
        rlt_write_file(path, sample_run_json, cut);
        ck_assert_int_eq(rl_model_load_run_json(path, &m, &mean, &std), RL_EDATA);
        ck_assert(strncmp(rl_errdetail(), path, strlen(path)) == 0);
    }
    snprintf(path, sizeof(path), "%s/none.json", dir);
    ck_assert_int_eq(rl_model_load_run_json(path, &m, &mean, &std), RL_ENOTFOUND);
    remove(path);
    snprintf(path, sizeof(path), "%s/run.json", dir);
    remove(path);
    remove(dir);
    free(dir);
}
END_TEST

/* What rl_run_json_write writes, the readers read back; a failed run's
 * record names its error and is refused as a model. */
START_TEST(run_json_written_is_read_back)
{
    char *dir = rlt_tmpdir(), sub[512], path[600];
    snprintf(sub, sizeof(sub), "%s/a/b", dir); /* parents are created */
    snprintf(path, sizeof(path), "%s/run.json", sub);
    rl_model m;
    ck_assert_int_eq(rl_model_init(&m, RL_MODEL_SOFTMAX, 2, 3), RL_OK);
    for (int k = 0; k < 6; k++) m.w[k] = k + 0.25;
    for (int k = 0; k < 3; k++) m.b[k] = -k;
    double mean[] = {1, 2}, std[] = {3, 4}, cms[] = {5.5, NAN};
    uint32_t blocks[] = {0, 1};
    rl_run_step steps[] = {{.step = 0, .ms = 2, .loss = 1, .compute_ms = cms, .n_compute = 2},
                           {.step = 1, .ms = 4, .loss = NAN}};
    rl_run_node nodes[] = {{.id = "n1", .state = "alive", .blocks = blocks, .n_blocks = 2},
                           {.id = "n2", .state = "failed"}};
    rl_run_event ev[] = {{.kind = "failed", .node = "n2", .detail = "a \"quote\"",
                          .recovery_ms = -1}};
    rl_run_report r = {.ok = true, .spec = "s.yaml", .model = &m, .mean = mean, .std = std,
                       .final_loss = NAN, .steps = steps, .n_steps = 2, .nodes = nodes,
                       .n_nodes = 2, .events = ev, .n_events = 1, .blocks_total = 2};
    ck_assert_int_eq(rl_run_json_write(sub, &r), RL_OK);
    rli_json *root = NULL;
    ck_assert_int_eq(rli_json_load(path, &root), RL_OK);
    ck_assert(rli_json_get(root, "final_loss")->kind == RLI_JSON_NULL);
    ck_assert(rli_json_get(root, "D")->number == 2.0);
    const rli_json *st = rli_json_get(root, "steps");
    ck_assert(rli_json_get(rli_json_get(st->items[0], "compute_ms"), "n1")->number == 5.5);
    ck_assert_ptr_null(rli_json_get(rli_json_get(st->items[0], "compute_ms"), "n2"));
    ck_assert_ptr_null(rli_json_get(st->items[1], "compute_ms"));
    const rli_json *e = rli_json_get(root, "events")->items[0];
    ck_assert_str_eq(rli_json_get(e, "detail")->str, "a \"quote\"");
    ck_assert(rli_json_get(e, "recovery_ms")->kind == RLI_JSON_NULL);
    rli_json_free(root);

    rl_model back;
    double *bmean, *bstd, p50;
    int nodes_n;
    ck_assert_int_eq(rl_model_load_run_json(path, &back, &bmean, &bstd), RL_OK);
    ck_assert(back.type == RL_MODEL_SOFTMAX && back.features == 2 && back.classes == 3);
    ck_assert(back.w[5] == 5.25 && back.b[2] == -2 && bmean[1] == 2 && bstd[0] == 3);
    ck_assert_int_eq(rl_run_json_step_ms(path, &p50, &nodes_n), RL_OK);
    ck_assert(p50 == 2 && nodes_n == 2); /* nearest rank of {2, 4} */
    rl_model_fini(&back);
    free(bmean);
    free(bstd);

    r.ok = false;
    r.error = "stopped";
    ck_assert_int_eq(rl_run_json_write(sub, &r), RL_OK);
    ck_assert_int_eq(rl_model_load_run_json(path, &back, &bmean, &bstd), RL_EPRECOND);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "(status \"failed\": stopped)"));
    rl_model_fini(&m);
    free(dir);
}
END_TEST

/* An interrupted run keeps its model for predict (with its step), a failed
 * one does not; the feature names come back in order. */
START_TEST(run_json_interrupted_and_feature_names)
{
    char *dir = rlt_tmpdir(), path[600];
    snprintf(path, sizeof(path), "%s/run.json", dir);
    rl_model m;
    ck_assert_int_eq(rl_model_init(&m, RL_MODEL_LOGISTIC, 2, 1), RL_OK);
    m.w[1] = 0.5;
    const char *names[] = {"height", "we\"ight"};
    rl_run_report r = {.ok = false, .interrupted = true, .error = "interrupted at step 7 of 20",
                       .spec = "s.yaml", .model = &m, .feature_names = names,
                       .steps_completed = 7, .steps_total = 20, .final_loss = NAN};
    ck_assert_int_eq(rl_run_json_write(dir, &r), RL_OK);
    rl_run_model rm;
    ck_assert_int_eq(rl_run_json_load_model(path, &rm), RL_OK);
    ck_assert(rm.interrupted && rm.steps_completed == 7 && rm.steps_total == 20);
    ck_assert(rm.model.w[1] == 0.5 && rm.mean == NULL);
    ck_assert_str_eq(rm.feature_names[0], "height");
    ck_assert_str_eq(rm.feature_names[1], "we\"ight");
    rl_run_model_fini(&rm);
    /* The older reader still wants a finished run. */
    rl_model back;
    double *bmean, *bstd;
    ck_assert_int_eq(rl_model_load_run_json(path, &back, &bmean, &bstd), RL_EPRECOND);
    /* Interrupted before its first step, or failed: no model. */
    r.steps_completed = 0;
    ck_assert_int_eq(rl_run_json_write(dir, &r), RL_OK);
    ck_assert_int_eq(rl_run_json_load_model(path, &rm), RL_EPRECOND);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "status \"interrupted\""));
    r.steps_completed = 7;
    r.interrupted = false;
    ck_assert_int_eq(rl_run_json_write(dir, &r), RL_OK);
    ck_assert_int_eq(rl_run_json_load_model(path, &rm), RL_EPRECOND);
    /* A finished synthetic run: names null. */
    r.ok = true;
    r.feature_names = NULL;
    ck_assert_int_eq(rl_run_json_write(dir, &r), RL_OK);
    ck_assert_int_eq(rl_run_json_load_model(path, &rm), RL_OK);
    ck_assert(!rm.interrupted && rm.feature_names == NULL);
    rl_run_model_fini(&rm);
    rl_model_fini(&m);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, valid_documents);
    tcase_add_test(tc, malformed_with_positions);
    tcase_add_test(tc, deep_nesting_refused);
    tcase_add_test(tc, every_truncation_fails);
    tcase_add_test(tc, model_load_run_json);
    tcase_add_test(tc, run_json_written_is_read_back);
    tcase_add_test(tc, run_json_interrupted_and_feature_names);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
