/*
 * cmd_predict.c - `ringleader predict --model RUN.json --data CSV [--label
 * COL] [--out PRED.csv]`: applies a trained model to the rows of a CSV.
 *
 * The model, the standardisation the run applied to its training data and
 * the names of its feature columns come from the run.json
 * (rl_run_json_load_model). Columns are matched by name, in any order, and
 * others are ignored; by position only when the run recorded no names
 * (synthetic data, older files) or the CSV has no header row. With --label
 * the named column holds labels and the run is scored (mse or accuracy on
 * stderr). A run interrupted after its first step is usable, with a note.
 * See docs/operations.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "ringleader/data.h"
#include "ringleader/err.h"
#include "ringleader/model.h"
#include "ringleader/run_json.h"

#define PREDICT_CHUNK_ROWS (1 << 16) /* rows standardised and checked at a time */

static void predict_usage(FILE *f)
{
    fprintf(f,
            "usage: ringleader predict --model RUN.json --data CSV [--label COL] [--out PRED.csv]\n"
            "\n"
            "Applies the model a run trained (RUN.json, or the directory holding it) to the\n"
            "rows of CSV, with the run's standardisation. Columns are matched by name to the\n"
            "feature names the run recorded (any order; other columns are ignored); by\n"
            "position when the run recorded none or CSV has no header row (a note says so).\n"
            "A run interrupted after its first step is usable (a note gives its step).\n"
            "Prints one line per row: linear the value; logistic `probability,class`;\n"
            "softmax the class. --out writes them to a CSV file with a header instead.\n"
            "With --label COL the column holds the true labels and a summary goes to\n"
            "stderr: `rows=N mse=X` (linear) or `rows=N accuracy=X` (logistic, softmax).\n"
            "Exit codes: 0 ok, 1 cannot write the output, 2 bad usage, model or data.\n");
}

typedef struct predict_opts {
    const char *model, *data, *label, *out;
} predict_opts;

static int predict_parse(int argc, char **argv, predict_opts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = strcmp(a, "--model") == 0   ? &o->model
                          : strcmp(a, "--data") == 0  ? &o->data
                          : strcmp(a, "--label") == 0 ? &o->label
                          : strcmp(a, "--out") == 0   ? &o->out
                                                      : NULL;
        if (slot == NULL) {
            if (a[0] == '-')
                fprintf(stderr, "ringleader predict: unknown option %s\n", a);
            else
                fprintf(stderr, "ringleader predict: unknown argument '%s'\n", a);
            return -1;
        }
        if (v == NULL) {
            fprintf(stderr, "ringleader predict: %s needs a value\n", a);
            return -1;
        }
        *slot = v;
    }
    if (o->model == NULL || o->data == NULL) {
        fprintf(stderr, "ringleader predict: --model and --data are required\n");
        return -1;
    }
    return 0;
}

/* The features of the table must be the model's, by count. */
static int predict_check_shape(const predict_opts *o, const rl_model *m, const rl_table *t,
                               const char *model_path)
{
    if (t->features == m->features) return 0;
    if (o->label == NULL && t->features == m->features + 1)
        fprintf(stderr,
                "ringleader predict: %s has %d columns, the model in %s has %d features: "
                "if one column holds the labels, name it with --label COL\n",
                o->data, t->features, model_path, m->features);
    else
        fprintf(stderr,
                "ringleader predict: %s has %d feature columns%s%s%s, the model in %s has %d "
                "features\n",
                o->data, t->features, o->label ? " (besides the label '" : "",
                o->label ? o->label : "", o->label ? "')" : "", model_path, m->features);
    return -1;
}

/* Lists on stderr the columns of t that are not among the model's names:
 * ignored (the label column is not one of t's features). */
static void predict_note_ignored(const rl_table *t, const rl_run_model *rm)
{
    int n = 0;
    for (int c = 0; c < t->features; c++) {
        bool used = false;
        for (int j = 0; j < rm->model.features && !used; j++)
            used = strcmp(t->names[c], rm->feature_names[j]) == 0;
        if (used) continue;
        fprintf(stderr, "%s'%s'", n++ ? ", " : "ringleader predict: note: ignored in ", t->names[c]);
    }
    if (n > 0) fprintf(stderr, " (not among the model's features)\n");
}

/* Makes t's feature columns the model's: by name when both the run and the
 * CSV have names, else by position (with a note). Returns 0, or -1 after
 * printing why. */
static int predict_match_columns(const predict_opts *o, const rl_run_model *rm, rl_table *t)
{
    if (rm->feature_names == NULL) {
        fprintf(stderr,
                "ringleader predict: note: the run recorded no feature names (synthetic data or "
                "an older run.json): columns are matched by position\n");
        return 0;
    }
    if (!t->header) {
        fprintf(stderr,
                "ringleader predict: note: %s has no header row: columns are matched by "
                "position to the model's features\n",
                o->data);
        return 0;
    }
    predict_note_ignored(t, rm);
    if (rl_table_select(t, o->data, (const char *const *)rm->feature_names,
                        rm->model.features) != RL_OK) {
        fprintf(stderr, "ringleader predict: %s\n", rl_errdetail());
        return -1;
    }
    return 0;
}

/* Running score over the labelled rows. */
typedef struct predict_score {
    long long rows, correct;
    double sq_err;
} predict_score;

/* Writes one row's prediction and adds it to the score when y is not NULL.
 * p has m->classes entries. */
static void predict_emit(FILE *out, const rl_model *m, const double *p, const float *y,
                         predict_score *s)
{
    int cls = 0;
    switch (m->type) {
    case RL_MODEL_LINEAR:
        fprintf(out, "%.9g\n", p[0]);
        if (y) s->sq_err += (p[0] - *y) * (p[0] - *y);
        break;
    case RL_MODEL_LOGISTIC:
        cls = p[0] >= 0.5;
        fprintf(out, "%.6f,%d\n", p[0], cls);
        break;
    case RL_MODEL_SOFTMAX:
        for (int k = 1; k < m->classes; k++)
            if (p[k] > p[cls]) cls = k;
        fprintf(out, "%d\n", cls);
        break;
    }
    if (y) {
        s->rows++;
        s->correct += m->type != RL_MODEL_LINEAR && (float)cls == *y;
    }
}

/* Rows [first, first + PREDICT_CHUNK_ROWS) of t as a block: a view into
 * the table, not a copy, so there is nothing to free. */
static rl_block predict_view(rl_table *t, int64_t first)
{
    int64_t left = t->rows - first;
    return (rl_block){.first_row = first,
                      .rows = left < PREDICT_CHUNK_ROWS ? (int)left : PREDICT_CHUNK_ROWS,
                      .features = t->features,
                      .x = t->x + (size_t)first * (size_t)t->features,
                      .y = t->y != NULL ? t->y + first : NULL};
}

/* Checks every label first (so a bad one prints no predictions), then
 * standardises and predicts every row of t into out. Returns 0, or -1 after
 * printing why. */
static int predict_rows(const predict_opts *o, const rl_model *m, const double *mean,
                        const double *std, rl_table *t, FILE *out, predict_score *s)
{
    for (int64_t first = 0; t->y != NULL && first < t->rows; first += PREDICT_CHUNK_ROWS) {
        rl_block view = predict_view(t, first);
        if (rl_model_check_labels(m, &view) != RL_OK) {
            fprintf(stderr, "ringleader predict: %s: column '%s', data %s\n", o->data, o->label,
                    rl_errdetail());
            return -1;
        }
    }
    double *p = malloc((size_t)m->classes * sizeof(double));
    if (p == NULL) {
        fprintf(stderr, "ringleader predict: out of memory\n");
        return -1;
    }
    for (int64_t first = 0; first < t->rows; first += PREDICT_CHUNK_ROWS) {
        rl_block view = predict_view(t, first);
        if (mean != NULL) rl_block_standardize(&view, mean, std);
        for (int i = 0; i < view.rows; i++) {
            rl_model_predict_row(m, view.x + (size_t)i * (size_t)view.features, p);
            predict_emit(out, m, p, view.y != NULL ? view.y + i : NULL, s);
        }
    }
    free(p);
    return 0;
}

int cmd_predict(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        predict_usage(stdout);
        return RL_EXIT_OK;
    }
    predict_opts o;
    if (predict_parse(argc, argv, &o) != 0) {
        predict_usage(stderr);
        return RL_EXIT_USAGE;
    }
    char model_path[4096];
    struct stat st;
    if (stat(o.model, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(model_path, sizeof(model_path), "%s/run.json", o.model);
    else
        snprintf(model_path, sizeof(model_path), "%s", o.model);

    int rc = RL_EXIT_USAGE;
    rl_run_model rm;
    const rl_model *mp = &rm.model;
    rl_table *t = NULL;
    FILE *out = stdout;
    predict_score score = {0};
    if (rl_run_json_load_model(model_path, &rm) != RL_OK) {
        fprintf(stderr, "ringleader predict: %s\n", rl_errdetail());
        goto done;
    }
    if (rm.interrupted)
        fprintf(stderr,
                "ringleader predict: note: %s holds the model of an interrupted run, at step "
                "%llu of %llu\n",
                model_path, (unsigned long long)rm.steps_completed,
                (unsigned long long)rm.steps_total);
    rl_csv_opts co = {.label = o.label, .header_optional = o.label == NULL};
    if (rl_csv_load_opts(o.data, &co, &t) != RL_OK) {
        fprintf(stderr, "ringleader predict: %s\n", rl_errdetail());
        goto done;
    }
    if (predict_match_columns(&o, &rm, t) != 0) goto done;
    if (predict_check_shape(&o, mp, t, model_path) != 0) goto done;
    if (o.out != NULL) {
        out = fopen(o.out, "w");
        if (out == NULL) {
            perror(o.out);
            out = stdout;
            rc = RL_EXIT_FAILED;
            goto done;
        }
        fputs(mp->type == RL_MODEL_LINEAR     ? "prediction\n"
              : mp->type == RL_MODEL_LOGISTIC ? "probability,class\n"
                                              : "class\n",
              out);
    }
    if (predict_rows(&o, mp, rm.mean, rm.std, t, out, &score) != 0) goto done;
    rc = RL_EXIT_OK;
    if (fflush(out) != 0 || ferror(out)) {
        perror(o.out ? o.out : "stdout");
        rc = RL_EXIT_FAILED;
    }
    if (rc == RL_EXIT_OK && score.rows > 0) {
        if (mp->type == RL_MODEL_LINEAR)
            fprintf(stderr, "rows=%lld mse=%.9g\n", score.rows, score.sq_err / (double)score.rows);
        else
            fprintf(stderr, "rows=%lld accuracy=%.6f\n", score.rows,
                    (double)score.correct / (double)score.rows);
    }
done:
    if (out != stdout && fclose(out) != 0 && rc == RL_EXIT_OK) {
        perror(o.out);
        rc = RL_EXIT_FAILED;
    }
    rl_table_free(t);
    rl_run_model_fini(&rm);
    return rc;
}
