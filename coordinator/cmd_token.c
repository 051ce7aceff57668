/* cmd_token.c - `ringleader token new FILE [--force]`: a fresh cluster token
 * (32 random bytes as 64 hex digits, what rl_token_load reads) in a file
 * only its owner can read. See docs/operations.md, "Certificates and tokens
 * for your own hosts". */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cli.h"

#define TOKEN_BYTES 32

static void token_usage(FILE *f)
{
    fprintf(f, "usage: ringleader token new FILE [--force]\n\n"
               "Writes a fresh cluster token (32 random bytes, hex) to FILE with mode 0600,\n"
               "for security.token_file and ringleader-node --token-file. Refuses to\n"
               "replace an existing FILE unless --force.\n");
}

/* 2*TOKEN_BYTES hex digits and a newline from the kernel's random source. */
static int token_text(char *out, size_t cap)
{
    unsigned char b[TOKEN_BYTES];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0 && errno != EINTR) return -1;
        if (n > 0) got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(b) && 2 * i + 2 < cap; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    snprintf(out + 2 * TOKEN_BYTES, cap - 2 * TOKEN_BYTES, "\n");
    memset(b, 0, sizeof(b));
    return 0;
}

/* Writes text to a new 0600 file next to path, then puts it at path: by
 * link (fails if path exists) or, with force, by rename (replaces it). */
static int token_write(const char *path, const char *text, bool force)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0) return -1;
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (ok) ok = force ? rename(tmp, path) == 0 : link(tmp, path) == 0;
    int saved = errno;
    unlink(tmp); /* after link, or after a failure; gone already after rename */
    errno = saved;
    return ok ? 0 : -1;
}

int cmd_token(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        token_usage(stdout);
        return RL_EXIT_OK;
    }
    const char *file = NULL;
    bool force = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = true;
        else if (argv[i][0] != '-' && file == NULL)
            file = argv[i];
        else {
            fprintf(stderr, "ringleader token: unexpected argument '%s'\n", argv[i]);
            token_usage(stderr);
            return RL_EXIT_USAGE;
        }
    }
    if (argc < 2 || strcmp(argv[1], "new") != 0 || file == NULL) {
        token_usage(stderr);
        return RL_EXIT_USAGE;
    }
    char text[2 * TOKEN_BYTES + 2];
    if (token_text(text, sizeof(text)) != 0) {
        fprintf(stderr, "ringleader token: no random bytes: %s\n", strerror(errno));
        return RL_EXIT_FAILED;
    }
    int rv = token_write(file, text, force);
    int err = errno;
    memset(text, 0, sizeof(text));
    if (rv != 0 && err == EEXIST) {
        fprintf(stderr, "ringleader token: %s exists; pass --force to replace it\n", file);
        return RL_EXIT_FAILED;
    }
    if (rv != 0) {
        fprintf(stderr, "ringleader token: cannot write %s: %s\n", file, strerror(err));
        return RL_EXIT_FAILED;
    }
    printf("wrote a new cluster token to %s (mode 0600); copy it to every host\n", file);
    return RL_EXIT_OK;
}
