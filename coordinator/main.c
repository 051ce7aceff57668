/*
 * main.c - the `ringleader` CLI: one table of commands, each with its own
 * --help. Exit codes: 0 ok, 1 job failed, 2 usage or config error.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define RL_COMMAND_LIST(X)                                                                         \
    X(validate, "check a cluster spec and print its summary")                                      \
    X(run, "run a job as its coordinator")                                                         \
    X(status, "print the state of a running job, asked of its coordinator")                        \
    X(predict, "apply a trained model (run.json) to the rows of a CSV")                            \
    X(report, "write a run's report (run.json) as one HTML file with charts")                      \
    X(token, "make a cluster token file: token new FILE")                                           \
    X(bench, "benchmarks: allreduce, rpc, train")

#define DECL(name, summary) int cmd_##name(int argc, char **argv);
RL_COMMAND_LIST(DECL)
#undef DECL

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
#define ROW(name, summary) {#name, cmd_##name, summary},
    RL_COMMAND_LIST(ROW)
#undef ROW
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ringleader COMMAND [ARGS]\n\n"
               "Trains models across a cluster with ring all-reduce.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun `ringleader COMMAND --help` for a command's options.\n"
               "Exit codes: 0 ok, 1 job failed, 2 usage or config error.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return RL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return RL_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("ringleader %s\n", RL_VERSION);
        return RL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    if (argv[1][0] == '-')
        fprintf(stderr, "ringleader: unknown option %s (options follow the command)\n", argv[1]);
    else
        fprintf(stderr, "ringleader: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return RL_EXIT_USAGE;
}
