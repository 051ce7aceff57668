/* cmd_validate.c - `ringleader validate SPEC`: exit 0 with a summary, or 2
 * with every problem as SPEC:LINE:COL: message. */
#include <stdio.h>

#include "cli.h"
#include "ringleader/spec.h"

int cmd_validate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv) || argc != 2) {
        fprintf(argc == 2 ? stdout : stderr,
                "usage: ringleader validate SPEC\n\n"
                "Loads the cluster spec, checks every key, and prints a summary.\n"
                "Exit 0 if valid; 2 with SPEC:LINE:COL: message for every problem.\n");
        return argc == 2 ? RL_EXIT_OK : RL_EXIT_USAGE;
    }
    rl_spec *spec = NULL;
    if (rl_spec_load(argv[1], &spec, stderr) != 0) return RL_EXIT_USAGE;
    rl_spec_describe(spec, stdout);
    rl_spec_free(spec);
    return RL_EXIT_OK;
}
