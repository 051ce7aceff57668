/*
 * wapi_prog.c - a worker API program for the fault cases of
 * tests/integration/test_worker_api.sh. Runs STEPS collectives of 4 f64s
 * (a sum of ranks it checks), then leaves. Node ids come from the
 * environment, as for any program the coordinator starts.
 *
 *   wapi_prog STEPS [--exit NODE STEP CODE] [--count NODE N] [--report DIR] [--mixed]
 *
 * --exit: node NODE writes a line to stderr and exits CODE before
 *   collective STEP. --slow: before each collective every node "computes"
 *   100 us per block it holds, node NODE X times as long. --count: node NODE calls with N elements
 * instead of 4; every member then writes the error it got to DIR/ID.txt and leaves.
 * --mixed: each step is instead five collectives whose results it checks
 * against the ranks: f32 sums of 8 and 9 elements (in the header round and
 * not), i32 max and min, and a f32 exact sum of 3 (lib/worker.c,
 * worker_inline).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <ringleader/worker.h>

/* One --mixed step: 0, or 1 with a message on stderr. */
static int mixed_step(rl_worker *w, long s)
{
    int rank = rl_worker_rank(w), size = rl_worker_size(w), rv;
    float f[9];
    int32_t i[2];
    for (int n = 8; n <= 9; n++) { /* 0.5 * (r + 1) + k: exact in f32, any order */
        for (int k = 0; k < n; k++) f[k] = 0.5f * (float)(rank + 1) + (float)k;
        if ((rv = rl_worker_allreduce(w, f, (size_t)n, RL_F32, RL_OP_SUM)) != RL_OK) return rv;
        for (int k = 0; k < n; k++)
            if (f[k] != 0.25f * (float)(size * (size + 1)) + (float)(k * size)) {
                fprintf(stderr, "wapi_prog: step %ld: f32 sum of %d: element %d is %g\n", s, n, k,
                        (double)f[k]);
                return RL_EINTERNAL;
            }
    }
    i[0] = rank * 7 - 3;
    i[1] = -rank;
    if ((rv = rl_worker_allreduce(w, i, 2, RL_I32, RL_OP_MAX)) != RL_OK) return rv;
    if (i[0] != (size - 1) * 7 - 3 || i[1] != 0) {
        fprintf(stderr, "wapi_prog: step %ld: i32 max %d %d\n", s, i[0], i[1]);
        return RL_EINTERNAL;
    }
    i[0] = rank * 7 - 3;
    if ((rv = rl_worker_allreduce(w, i, 1, RL_I32, RL_OP_MIN)) != RL_OK) return rv;
    if (i[0] != -3) {
        fprintf(stderr, "wapi_prog: step %ld: i32 min %d\n", s, i[0]);
        return RL_EINTERNAL;
    }
    /* 1 + 2^-23 on rank 0, -1 on rank 1, 2^-40 elsewhere: the exact sum is representable */
    for (int k = 0; k < 3; k++)
        f[k] = rank == 0 ? 1.0f + 0x1p-23f : rank == 1 ? -1.0f : 0x1p-40f;
    if ((rv = rl_worker_allreduce(w, f, 3, RL_F32, RL_OP_SUM_EXACT)) != RL_OK) return rv;
    float want = size == 1 ? 1.0f + 0x1p-23f : 0x1p-23f + (float)(size - 2) * 0x1p-40f;
    if (f[0] != want || f[1] != want || f[2] != want) {
        fprintf(stderr, "wapi_prog: step %ld: exact sum %a, want %a\n", s, (double)f[0],
                (double)want);
        return RL_EINTERNAL;
    }
    return RL_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    long steps = atol(argv[1]), exit_step = -1, count_n = 4;
    int exit_code = 0;
    const char *exit_node = "", *count_node = "", *dir = NULL, *slow_node = NULL;
    long slow_us = 0;
    int mixed = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--exit") == 0 && i + 3 < argc) {
            exit_node = argv[i + 1];
            exit_step = atol(argv[i + 2]);
            exit_code = atoi(argv[i + 3]);
            i += 3;
        } else if (strcmp(argv[i], "--count") == 0 && i + 2 < argc) {
            count_node = argv[i + 1];
            count_n = atol(argv[i + 2]);
            i += 2;
        } else if (strcmp(argv[i], "--slow") == 0 && i + 2 < argc) {
            slow_node = argv[i + 1];
            slow_us = atol(argv[i + 2]);
            i += 2;
        } else if (strcmp(argv[i], "--mixed") == 0) {
            mixed = 1;
        } else if (strcmp(argv[i], "--report") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else {
            return 2;
        }
    }
    rl_worker *w;
    if (rl_worker_join(NULL, NULL, NULL, NULL, &w) != RL_OK) {
        fprintf(stderr, "wapi_prog: join: %s\n", rl_errdetail());
        return 1;
    }
    const char *id = rl_worker_id(w);
    double buf[16];
    for (long s = 0; s < steps; s++) {
        if (strcmp(id, exit_node) == 0 && s == exit_step) {
            fprintf(stderr, "wapi_prog: node %s gives up at step %ld\n", id, s);
            fflush(stderr);
            _exit(exit_code); /* as a program that dies: no leave, no clean-up */
        }
        if (slow_node != NULL) { /* compute time in proportion to the rows held */
            const uint32_t *ids;
            size_t nb = rl_worker_blocks(w, &ids);
            long us = (long)nb * 100 * (strcmp(id, slow_node) == 0 ? slow_us : 1);
            struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
            nanosleep(&ts, NULL); /* the program's "compute" */
        }
        if (mixed) {
            int rv = mixed_step(w, s);
            if (rv == RL_EREPLAN) {
                s--;
                continue;
            }
            if (rv != RL_OK) {
                if (rv != RL_EINTERNAL) fprintf(stderr, "wapi_prog: %s %s\n", rl_errname(rv), rl_errdetail());
                return 1;
            }
            continue;
        }
        size_t n = strcmp(id, count_node) == 0 ? (size_t)count_n : 4;
        for (size_t k = 0; k < n; k++)
            buf[k] = rl_worker_rank(w);
        int rv = rl_worker_allreduce(w, buf, n, RL_F64, RL_OP_SUM);
        if (rv == RL_EREPLAN) {
            s--;
            continue;
        }
        if (rv != RL_OK && dir == NULL) {
            fprintf(stderr, "wapi_prog: %s %s\n", rl_errname(rv), rl_errdetail());
            break;
        }
        if (rv != RL_OK) {
            char path[512];
            snprintf(path, sizeof(path), "%s/%s.txt", dir, id);
            FILE *f = fopen(path, "w");
            if (f != NULL) {
                fprintf(f, "%s %s\n", rl_errname(rv), rl_errdetail());
                fclose(f);
            }
            break;
        }
        int size = rl_worker_size(w);
        if (buf[0] != size * (size - 1) / 2.0) {
            fprintf(stderr, "wapi_prog: wrong sum %g at step %ld\n", buf[0], s);
            return 1;
        }
    }
    return rl_worker_leave(w) == RL_OK ? 0 : 1;
}
