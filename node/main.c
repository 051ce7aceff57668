/* main.c - `ringleader-node`: joins a coordinator and works for it. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("ringleader-node %s\n", RL_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: ringleader-node --coordinator URL --id ID [--listen URL] [--token-file F]\n");
    return 2;
}
