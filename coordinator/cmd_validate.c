/* cmd_validate.c - `ringleader validate SPEC`: exit 0 with a summary, or 2
 * with every problem as SPEC:LINE:COL: message. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ringleader/spec.h"

static void validate_usage(FILE *f)
{
    fprintf(f, "usage: ringleader validate SPEC\n"
               "       ringleader validate --keys [--markdown]\n\n"
               "Loads the cluster spec, checks every key, and prints a summary.\n"
               "Exit 0 if valid; 2 with SPEC:LINE:COL: message for every problem.\n"
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
    if (argc != 2 || argv[1][0] == '-') {
        validate_usage(stderr);
        return RL_EXIT_USAGE;
    }
    rl_spec *spec = NULL;
    if (rl_spec_load(argv[1], &spec, stderr) != 0) return RL_EXIT_USAGE;
    rl_spec_describe(spec, stdout);
    validate_warn(spec, stderr);
    rl_spec_free(spec);
    return RL_EXIT_OK;
}
