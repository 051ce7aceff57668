/* bench_main.c - `ringleader bench KIND`: dispatches to the benchmark commands. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "cli.h"

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: ringleader bench allreduce|rpc|train [options]\n\n"
                "  allreduce   the ring all-reduce between N processes on loopback\n"
                "  rpc         echo calls between two processes on loopback\n"
                "  train       the gradient kernel on one core, with memcpy bandwidth\n\n"
                "Each prints lines in the format of the peer baselines in ../shared/bench/.\n");
        return argc < 2 ? RL_EXIT_USAGE : RL_EXIT_OK;
    }
    if (strcmp(argv[1], "allreduce") == 0) return bench_allreduce(argc - 1, argv + 1);
    if (strcmp(argv[1], "rpc") == 0) return bench_rpc(argc - 1, argv + 1);
    if (strcmp(argv[1], "train") == 0) return bench_train(argc - 1, argv + 1);
    fprintf(stderr, "ringleader bench: unknown benchmark '%s'\n", argv[1]);
    return RL_EXIT_USAGE;
}
