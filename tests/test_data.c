/* test_data.c - blocks: synthetic data is a pure function of (seed, row),
 * blocks cover the rows exactly once, CSV files load or fail with their
 * position, and standardisation matches a hand computation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringleader/data.h"
#include "ringleader/stats.h"
#include "rli.h"
#include "testutil.h"

static rl_data_params params(rl_model_type model, int classes)
{
    rl_data_params p = {.rows = 1000,
                        .features = 7,
                        .classes = classes,
                        .model = model,
                        .noise = 0.1,
                        .seed = 42,
                        .block_rows = 128};
    return p;
}

static int same_block(const rl_block *a, const rl_block *b)
{
    return a->id == b->id && a->first_row == b->first_row && a->rows == b->rows &&
           a->features == b->features &&
           memcmp(a->x, b->x, (size_t)a->rows * a->features * sizeof(float)) == 0 &&
           memcmp(a->y, b->y, (size_t)a->rows * sizeof(float)) == 0;
}

/* ---- Synthetic data ------------------------------------------------------- */

static const rl_model_type types[3] = {RL_MODEL_LINEAR, RL_MODEL_LOGISTIC, RL_MODEL_SOFTMAX};

START_TEST(synthetic_is_deterministic_in_any_order)
{
    rl_data_params p = params(types[_i], types[_i] == RL_MODEL_SOFTMAX ? 4 : 1);
    uint32_t n = rl_data_n_blocks(&p);
    ck_assert_uint_eq(n, 8); /* 7 * 128 = 896, then 104 rows */
    rl_block *fwd = calloc(n, sizeof(rl_block));
    for (uint32_t i = 0; i < n; i++)
        ck_assert_int_eq(rl_block_synthetic(&p, i, &fwd[i]), RL_OK);
    /* Backwards, and a shuffled order: bitwise the same. */
    uint32_t order[8] = {5, 2, 7, 0, 3, 6, 1, 4};
    for (uint32_t i = 0; i < n; i++) {
        rl_block a, b;
        ck_assert_int_eq(rl_block_synthetic(&p, n - 1 - i, &a), RL_OK);
        ck_assert_int_eq(rl_block_synthetic(&p, order[i], &b), RL_OK);
        ck_assert_msg(same_block(&a, &fwd[n - 1 - i]), "block %u differs", n - 1 - i);
        ck_assert_msg(same_block(&b, &fwd[order[i]]), "block %u differs", order[i]);
        rl_block_free(&a);
        rl_block_free(&b);
    }
    /* Rows do not depend on the block size: row 300 in blocks of 100. */
    rl_data_params q = p;
    q.block_rows = 100;
    rl_block c;
    ck_assert_int_eq(rl_block_synthetic(&q, 3, &c), RL_OK);
    ck_assert_int_eq(memcmp(c.x, fwd[2].x + (300 - 256) * p.features, p.features * sizeof(float)),
                     0);
    ck_assert(c.y[0] == fwd[2].y[300 - 256]);
    rl_block_free(&c);
    /* Labels are what the model type says. */
    for (uint32_t i = 0; i < n; i++)
        for (int r = 0; r < fwd[i].rows; r++) {
            float y = fwd[i].y[r];
            if (p.model == RL_MODEL_LOGISTIC) ck_assert(y == 0.0f || y == 1.0f);
            if (p.model == RL_MODEL_SOFTMAX) ck_assert(y >= 0 && y < 4 && y == floorf(y));
        }
    for (uint32_t i = 0; i < n; i++)
        rl_block_free(&fwd[i]);
    free(fwd);
}
END_TEST

START_TEST(blocks_cover_rows_exactly_once)
{
    rl_data_params p = params(RL_MODEL_LINEAR, 1);
    int64_t next = 0;
    uint32_t n = rl_data_n_blocks(&p);
    for (uint32_t i = 0; i < n; i++) {
        rl_block b;
        ck_assert_int_eq(rl_block_synthetic(&p, i, &b), RL_OK);
        ck_assert_uint_eq(b.id, i);
        ck_assert_int_eq(b.first_row, next);
        ck_assert_int_eq(b.rows, i + 1 < n ? 128 : 104);
        next += b.rows;
        rl_block_free(&b);
    }
    ck_assert_int_eq(next, p.rows);
    rl_block b;
    ck_assert_int_eq(rl_block_synthetic(&p, n, &b), RL_EINVAL);
    ck_assert_ptr_null(b.x);
    p.rows = 1024; /* divisible: all blocks full */
    ck_assert_uint_eq(rl_data_n_blocks(&p), 8);
    ck_assert_int_eq(rl_block_synthetic(&p, 7, &b), RL_OK);
    ck_assert_int_eq(b.rows, 128);
    rl_block_free(&b);
}
END_TEST

START_TEST(seed_changes_data_and_noise_free_labels_follow_the_true_model)
{
    rl_data_params p = params(RL_MODEL_LINEAR, 1), q = p;
    q.seed = 43;
    rl_block a, b;
    ck_assert_int_eq(rl_block_synthetic(&p, 0, &a), RL_OK);
    ck_assert_int_eq(rl_block_synthetic(&q, 0, &b), RL_OK);
    ck_assert_int_ne(memcmp(a.x, b.x, (size_t)a.rows * a.features * sizeof(float)), 0);
    rl_block_free(&b);
    /* Features look like N(0,1). */
    double s = 0, ss = 0;
    for (int i = 0; i < a.rows * a.features; i++) {
        s += a.x[i];
        ss += (double)a.x[i] * a.x[i];
    }
    double nn = a.rows * a.features, mean = s / nn;
    ck_assert_double_lt(fabs(mean), 0.1);
    ck_assert_double_lt(fabs(ss / nn - mean * mean - 1.0), 0.1);
    rl_block_free(&a);
    p.noise = 0.0;
    ck_assert_int_eq(rl_block_synthetic(&p, 1, &a), RL_OK);
    double w[7], bias;
    rl_data_true_model(&p, w, &bias);
    for (int i = 0; i < a.rows; i++) {
        double z = 0.0; /* the generator's order: the dot product, then the bias */
        for (int j = 0; j < 7; j++)
            z += w[j] * a.x[i * 7 + j];
        ck_assert(a.y[i] == (float)(z + bias));
    }
    rl_block_free(&a);
}
END_TEST

START_TEST(params_from_spec)
{
    const char *text = "cluster:\n"
                       "  coordinator: tcp://127.0.0.1:7700\n"
                       "  nodes:\n"
                       "    - { id: n1, listen: tcp://127.0.0.1:7701 }\n"
                       "data: { rows: 5000, features: 12, noise: 0.5, seed: 9, block_rows: 1000 }\n"
                       "model: { type: softmax, classes: 3 }\n";
    rl_spec *spec;
    ck_assert_int_eq(rl_spec_load_text("t.yaml", text, strlen(text), &spec, NULL), RL_OK);
    rl_data_params p;
    ck_assert_int_eq(rl_data_params_from_spec(spec, &p), RL_OK);
    ck_assert_int_eq(p.rows, 5000);
    ck_assert_int_eq(p.features, 12);
    ck_assert_int_eq(p.classes, 3);
    ck_assert_int_eq(p.model, RL_MODEL_SOFTMAX);
    ck_assert_double_eq(p.noise, 0.5);
    ck_assert_uint_eq(p.seed, 9);
    ck_assert_int_eq(p.block_rows, 1000);
    ck_assert_uint_eq(rl_data_n_blocks(&p), 5);
    rl_spec_free(spec);
}
END_TEST

/* ---- CSV ------------------------------------------------------------------ */

static char *tmpdir;

static void csv_setup(void)
{
    tmpdir = rlt_tmpdir();
}

static void csv_teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    free(tmpdir);
}

/* Writes text to DIR/name and returns the path (static buffer). */
static const char *csv_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    rlt_write_file(path, text, strlen(text));
    return path;
}

START_TEST(csv_good_file_loads)
{
    const char *path = csv_file("good.csv", "\xEF\xBB\xBF"
                                            "a, \"b\" ,label,c\r\n"
                                            "1,2,0,3\r\n"
                                            "\n"
                                            " -1.5 ,\"2e3\",1, 0.25\n"
                                            "4,5,2,6"); /* no final newline: fine */
    rl_table *t;
    ck_assert_int_eq(rl_csv_load(path, "label", &t), RL_OK);
    ck_assert_int_eq(t->rows, 3);
    ck_assert_int_eq(t->features, 3);
    ck_assert_str_eq(t->names[0], "a");
    ck_assert_str_eq(t->names[1], "b");
    ck_assert_str_eq(t->names[2], "c");
    ck_assert_str_eq(t->label, "label");
    ck_assert_int_eq(t->label_col, 2);
    const float x[9] = {1, 2, 3, -1.5f, 2000, 0.25f, 4, 5, 6}, y[3] = {0, 1, 2};
    ck_assert_int_eq(memcmp(t->x, x, sizeof(x)), 0);
    ck_assert_int_eq(memcmp(t->y, y, sizeof(y)), 0);

    rl_data_params p = {.rows = t->rows, .features = 3, .classes = 1, .block_rows = 2};
    rl_block b;
    ck_assert_int_eq(rl_table_block(t, &p, 1, &b), RL_OK);
    ck_assert_int_eq(b.first_row, 2);
    ck_assert_int_eq(b.rows, 1);
    ck_assert(b.x[0] == 4 && b.x[2] == 6 && b.y[0] == 2);
    rl_block_free(&b);
    p.features = 4;
    ck_assert_int_eq(rl_table_block(t, &p, 0, &b), RL_EINVAL);
    rl_table_free(t);
}
END_TEST

START_TEST(csv_example_config_data_loads)
{
    rl_table *t;
    ck_assert_int_eq(rl_csv_load(RL_SOURCE_DIR "/configs/data/iris_like.csv", "species", &t),
                     RL_OK);
    ck_assert_int_eq(t->features, 4);
    ck_assert_int_eq(t->rows, 300);
    rl_table_free(t);
}
END_TEST

/* A bad file and what its error must contain. */
static const struct {
    const char *text;
    const char *expect; /* after the path */
    const char *also;
} bad_csv[] = {
    {"a,b,y\n1,2,3\n1,x2,3\n", ":3:2: column 'b': not a number: 'x2'", NULL},
    {"a,b,y\n1,2,3\n1,,3\n", ":3:2: column 'b': empty field", NULL},
    {"a,b,y\n1,2,3\n\n4,5\n", ":4:3: column 'y': missing: the row has 2 of 3 fields", NULL},
    {"a,b,y\n1,2,3,4\n", ":2:4: too many fields: the header has 3 columns", NULL},
    {"a,b,y\n1,2,nan\n", ":2:3: column 'y': not a finite number", NULL},
    {"a,b,y\n1,1e39,0\n", ":2:2: column 'b': out of the range of a float", NULL},
    {"a,b,y\n1,2 3,0\n", ":2:2: column 'b': not a number: '2 3'", NULL},
    /* cut in the middle of a row: */
    {"a,b,y\n1,2,3\n4,5", ":3:3: column 'y': missing: the row has 2 of 3 fields", "truncated"},
    {"", ": empty file: a header row of column names is required", NULL},
    {"a,b,y\n", ": no data rows after the header", NULL},
    {"a,b,y", ": no data rows after the header", NULL},
    {"a,b,x\n1,2,3\n", ":1: no label column 'y' in the header (a,b,x)", NULL},
    {"a,,y\n1,2,3\n", ":1:2: column 2 has no name", NULL},
    {"a,a,y\n1,2,3\n", ":1:2: duplicate column name 'a'", NULL},
    {"y\n1\n", ":1: no feature column besides the label 'y'", NULL},
};

START_TEST(csv_bad_files_name_their_position)
{
    const char *path = csv_file("bad.csv", bad_csv[_i].text);
    rl_table *t = (rl_table *)0x1;
    int rc = rl_csv_load(path, "y", &t);
    ck_assert_int_eq(rc, RL_EDATA);
    ck_assert_ptr_null(t);
    char want[1024];
    snprintf(want, sizeof(want), "%s%s", path, bad_csv[_i].expect);
    ck_assert_msg(strstr(rl_errdetail(), want) != NULL, "case %d: wanted '%s' in '%s'", _i, want,
                  rl_errdetail());
    if (bad_csv[_i].also != NULL) ck_assert_ptr_nonnull(strstr(rl_errdetail(), bad_csv[_i].also));
}
END_TEST

START_TEST(csv_missing_file_and_long_line)
{
    rl_table *t;
    ck_assert_int_eq(rl_csv_load("/nonexistent/x.csv", "y", &t), RL_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "/nonexistent/x.csv"));
    /* A line over the limit is refused without reading it all into memory. */
    size_t n = RL_CSV_MAX_LINE + 100;
    char *big = malloc(n + 1);
    memcpy(big, "a,y\n", 4);
    memset(big + 4, '1', n - 4);
    big[n] = '\0';
    const char *path = csv_file("long.csv", big);
    free(big);
    ck_assert_int_eq(rl_csv_load(path, "y", &t), RL_EDATA);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), ":2: line longer than"));
}
END_TEST

/* A label the model cannot train on is reported where it is, as the job
 * and `validate` report it (docs/operations.md). */
START_TEST(csv_bad_labels_name_their_position)
{
    const char *path = csv_file("lab.csv", "a,y,b\n1,1,2\n\n3,2,4\n");
    rl_table *t = (rl_table *)0x1;
    rl_csv_opts o = {.label = "y", .check_labels = true, .model = RL_MODEL_LOGISTIC, .classes = 1};
    ck_assert_int_eq(rl_csv_load_opts(path, &o, &t), RL_EDATA);
    ck_assert_ptr_null(t);
    char want[1024];
    snprintf(want, sizeof(want), "%s:4:2: column 'y': label 2 is not 0 or 1 (logistic)", path);
    ck_assert_str_eq(rl_errdetail(), want);
    o.model = RL_MODEL_SOFTMAX;
    o.classes = 2;
    ck_assert_int_eq(rl_csv_load_opts(path, &o, &t), RL_EDATA);
    snprintf(want, sizeof(want), "%s:4:2: column 'y': label 2 is not a class index 0 .. 1", path);
    ck_assert_msg(strstr(rl_errdetail(), want) != NULL, "%s", rl_errdetail());
    o.classes = 3; /* 1 and 2 are classes of 3 */
    ck_assert_int_eq(rl_csv_load_opts(path, &o, &t), RL_OK);
    rl_table_free(t);
    o.check_labels = false; /* as rl_csv_load: any number */
    o.model = RL_MODEL_LOGISTIC;
    ck_assert_int_eq(rl_csv_load_opts(path, &o, &t), RL_OK);
    rl_table_free(t);
    ck_assert(rl_label_valid(RL_MODEL_LINEAR, 1, -3.5f) && !rl_label_valid(RL_MODEL_LINEAR, 1, NAN));
    ck_assert(!rl_label_valid(RL_MODEL_SOFTMAX, 3, 1.5f) && !rl_label_valid(RL_MODEL_SOFTMAX, 3, -1));
}
END_TEST

/* A first line of numbers is data when the header is optional; the columns
 * are then named by number. */
START_TEST(csv_optional_header)
{
    const char *path = csv_file("nohdr.csv", "1,2\n3,4\n");
    rl_table *t;
    rl_csv_opts o = {.header_optional = true};
    ck_assert_int_eq(rl_csv_load_opts(path, &o, &t), RL_OK);
    ck_assert(!t->header && t->rows == 2 && t->features == 2);
    ck_assert(t->x[0] == 1 && t->x[3] == 4);
    ck_assert_str_eq(t->names[1], "2");
    rl_table_free(t);
    path = csv_file("hdr.csv", "a,2\n3,4\n"); /* one name makes it a header */
    ck_assert_int_eq(rl_csv_load_opts(path, &o, &t), RL_OK);
    ck_assert(t->header && t->rows == 1 && strcmp(t->names[0], "a") == 0);
    rl_table_free(t);
}
END_TEST

/* Columns are picked by name into the model's order; missing ones are all
 * named and leave the table as it was. */
START_TEST(table_select_matches_names)
{
    const char *path = csv_file("sel.csv", "c,y,a,b\n3,9,1,2\n6,9,4,5\n");
    rl_table *t;
    ck_assert_int_eq(rl_csv_load(path, "y", &t), RL_OK);
    const char *missing[] = {"a", "q", "b", "r"};
    ck_assert_int_eq(rl_table_select(t, "sel.csv", missing, 4), RL_EDATA);
    ck_assert_str_eq(rl_errdetail(), "sel.csv lacks the model's feature columns 'q', 'r'");
    ck_assert(t->features == 3 && t->x[0] == 3);
    const char *want[] = {"a", "b"};
    ck_assert_int_eq(rl_table_select(t, "sel.csv", want, 2), RL_OK);
    ck_assert(t->features == 2 && t->rows == 2);
    ck_assert(t->x[0] == 1 && t->x[1] == 2 && t->x[2] == 4 && t->x[3] == 5);
    ck_assert_str_eq(t->names[0], "a");
    ck_assert(t->y[1] == 9);
    rl_table_free(t);
}
END_TEST

START_TEST(standardisation_matches_a_hand_computation)
{
    /* Column a: 1,2,3,6 -> mean 3, population var (4+1+0+9)/4 = 3.5.
     * Column c: constant 5 -> std 0, left as it is. */
    const char *path = csv_file("s.csv", "a,y,c\n1,0,5\n2,1,5\n3,0,5\n6,1,5\n");
    rl_table *t;
    ck_assert_int_eq(rl_csv_load(path, "y", &t), RL_OK);
    double mean[2], std[2];
    rl_table_standardize_stats(t, mean, std);
    ck_assert_double_eq(mean[0], 3.0);
    ck_assert_double_eq_tol(std[0], sqrt(3.5), 1e-15);
    ck_assert_double_eq(mean[1], 5.0);
    ck_assert_double_eq(std[1], 0.0);
    rl_data_params p = {.rows = 4, .features = 2, .classes = 1, .block_rows = 3};
    rl_block b0, b1;
    ck_assert_int_eq(rl_table_block(t, &p, 0, &b0), RL_OK);
    ck_assert_int_eq(rl_table_block(t, &p, 1, &b1), RL_OK);
    rl_block_standardize(&b0, mean, std);
    rl_block_standardize(&b1, mean, std);
    ck_assert(b0.x[0] == (float)(-2.0 / sqrt(3.5)));
    ck_assert(b0.x[2] == (float)(-1.0 / sqrt(3.5)));
    ck_assert(b0.x[4] == 0.0f);
    ck_assert(b1.x[0] == (float)(3.0 / sqrt(3.5)));
    ck_assert(b0.x[1] == 5.0f && b0.x[3] == 5.0f && b1.x[1] == 5.0f);
    ck_assert(b0.y[1] == 1.0f); /* labels untouched */
    rl_block_free(&b0);
    rl_block_free(&b1);
    rl_table_free(t);
}
END_TEST

START_TEST(order_statistics_of_measurements)
{
    double v[] = {5, -1, 3, 2.5, 100, 0};
    rl_sort_doubles(v, 6);
    for (int i = 1; i < 6; i++) ck_assert(v[i - 1] <= v[i]);
    ck_assert(v[0] == -1 && v[5] == 100);
    ck_assert(rl_median_sorted(v, 6) == (2.5 + 3) / 2);
    ck_assert(rl_median_sorted(v, 5) == 2.5);
    /* Nearest rank: ceil(p * n), from 1. */
    ck_assert(rl_percentile_sorted(v, 6, 0.50) == 2.5);
    ck_assert(rl_percentile_sorted(v, 6, 0.99) == 100);
    ck_assert(rl_percentile_sorted(v, 6, 0.01) == -1);
    ck_assert(rl_percentile_sorted(v, 0, 0.5) == 0);
    double u[] = {4, 1, 3, 2};
    ck_assert(rl_percentile(u, 4, 0.5) == 2);
    ck_assert(u[0] == 4 && u[1] == 1); /* left as it was */
    double a = 1, b = 2;
    ck_assert_int_lt(rl_cmp_double(&a, &b), 0);
    ck_assert_int_gt(rl_cmp_double(&b, &a), 0);
    ck_assert_int_eq(rl_cmp_double(&a, &a), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("synthetic");
    tcase_add_loop_test(tc, synthetic_is_deterministic_in_any_order, 0, 3);
    tcase_add_test(tc, blocks_cover_rows_exactly_once);
    tcase_add_test(tc, seed_changes_data_and_noise_free_labels_follow_the_true_model);
    tcase_add_test(tc, params_from_spec);
    suite_add_tcase(s, tc);

    tc = tcase_create("csv");
    tcase_add_checked_fixture(tc, csv_setup, csv_teardown);
    tcase_add_test(tc, csv_good_file_loads);
    tcase_add_test(tc, csv_example_config_data_loads);
    tcase_add_loop_test(tc, csv_bad_files_name_their_position, 0,
                        (int)(sizeof(bad_csv) / sizeof(bad_csv[0])));
    tcase_add_test(tc, csv_missing_file_and_long_line);
    tcase_add_test(tc, csv_bad_labels_name_their_position);
    tcase_add_test(tc, csv_optional_header);
    tcase_add_test(tc, table_select_matches_names);
    tcase_add_test(tc, standardisation_matches_a_hand_computation);
    tcase_add_test(tc, order_statistics_of_measurements);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
