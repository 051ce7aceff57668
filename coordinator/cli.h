/* cli.h - conventions shared by the `ringleader` commands. */
#ifndef RL_CLI_H
#define RL_CLI_H

#include <string.h>

enum { RL_EXIT_OK = 0, RL_EXIT_FAILED = 1, RL_EXIT_USAGE = 2 };

/* True if argv has --help or -h. */
static inline int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

#endif
