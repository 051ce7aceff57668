/* cmd_validate.c - `ringleader validate SPEC`: exit 0 with a summary, or 2
 * with every problem as SPEC:LINE:COL: message. With data.source csv the
 * file is read as the job would read it: header, label column, every cell a
 * number, every label one the model can train on (FILE:LINE:COL: message). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ringleader/data.h"
#include "ringleader/err.h"
#include "ringleader/spec.h"

/* Reads the spec's CSV as the coordinator will into *t. Returns 0, or -1
 * after printing the first problem. */
static int validate_csv(const rl_spec *spec, rl_table **t)
{
    rl_csv_opts o = {.label = spec->csv_label,
                     .check_labels = true,
                     .model = spec->model,
                     .classes = spec->model == RL_MODEL_SOFTMAX ? spec->classes : 1};
    if (rl_csv_load_opts(spec->csv_path, &o, t) != RL_OK) {
        fprintf(stderr, "%s\n", rl_errdetail());
        return -1;
    }
    return 0;
}

static void validate_usage(FILE *f)
{
    fprintf(f, "usage: ringleader validate SPEC\n"
               "       ringleader validate --keys [--markdown]\n\n"
               "Loads the cluster spec, checks every key, and prints a summary.\n"
               "Exit 0 if valid; 2 with SPEC:LINE:COL: message for every problem.\n"
               "With data.source csv the file is checked too (header, label column, every\n"
               "cell a number, labels valid for the model): FILE:LINE:COL: message.\n"
               "--keys lists every key of a spec with its type, default and range;\n"
               "with --markdown, as the tables of docs/spec.md (that file's exact content).\n");
}

/* Settings that are valid but unsafe outside a lab: one line each. */
static void validate_warn(const rl_spec *spec, FILE *f)
{
    if (spec->tls_cert[0] != '\0' && !spec->tls_verify_hostname)
        fprintf(f, "%s: warning: security.tls.verify_hostname is false: a peer's certificate "
                   "is not checked against the host dialled (any certificate from the CA "
                   "passes); for labs only\n",
                spec->path);
}

int cmd_validate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        validate_usage(stdout);
        return RL_EXIT_OK;
    }
    if (argc == 2 && strcmp(argv[1], "--keys") == 0) {
        rl_spec_print_keys(stdout);
        return RL_EXIT_OK;
    }
    if (argc == 3 && strcmp(argv[1], "--keys") == 0 && strcmp(argv[2], "--markdown") == 0) {
        rl_spec_print_keys_markdown(stdout);
        return RL_EXIT_OK;
    }
    int keys = argc >= 2 && strcmp(argv[1], "--keys") == 0;
    for (int i = 1; i < argc; i++) {
        int known = keys && (i == 1 || (i == 2 && strcmp(argv[i], "--markdown") == 0));
        if (argv[i][0] == '-' && !known) {
            fprintf(stderr, "ringleader validate: unknown option %s\n", argv[i]);
            validate_usage(stderr);
            return RL_EXIT_USAGE;
        }
    }
    if (argc != 2 || keys) {
        fprintf(stderr, "ringleader validate: %s\n",
                keys       ? "--keys takes no SPEC"
                : argc < 2 ? "the SPEC is required"
                           : "one SPEC only");
        validate_usage(stderr);
        return RL_EXIT_USAGE;
    }
    rl_spec *spec = NULL;
    if (rl_spec_load(argv[1], &spec, stderr) != 0) return RL_EXIT_USAGE;
    rl_table *t = NULL;
    int bad = spec->source == RL_DATA_CSV && validate_csv(spec, &t) != 0;
    if (!bad) rl_spec_describe(spec, stdout);
    if (t != NULL)
        printf("csv              %s: %lld rows, %d features, labels valid for %s\n", spec->csv_path,
               (long long)t->rows, t->features, rl_model_type_name(spec->model));
    rl_table_free(t);
    validate_warn(spec, stderr);
    rl_spec_free(spec);
    return bad ? RL_EXIT_USAGE : RL_EXIT_OK;
}
