/* bench.h - the `ringleader bench` commands and what they share: size
 * parsing and child processes of this program (started, read, stopped by PID). */
#ifndef RL_BENCH_H
#define RL_BENCH_H

#include <stddef.h>
#include <sys/types.h>

/* `ringleader bench`: the entry point the CLI table calls (coordinator/main.c). */
int cmd_bench(int argc, char **argv);
/* The benchmarks, each given argv from its own name on. */
int bench_allreduce(int argc, char **argv);
int bench_rpc(int argc, char **argv);
int bench_train(int argc, char **argv);

typedef struct bench_proc {
    pid_t pid;
    int in_fd, out_fd;
    char buf[65536];
    size_t len;
    int exited, status;
} bench_proc;

/* "64K" -> 65536, "16M" -> 16777216; 0 on error. */
size_t bench_parse_size(const char *s);
/* Comma-separated sizes into out (at most max); returns the count or -1. */
int bench_parse_size_list(const char *s, size_t *out, int max);

/* Re-executes this program with argv[0..argc) (as `ringleader bench ...`)
 * plus extra (NULL-terminated), with pipes on stdin and stdout. */
int bench_spawn_self(int argc, char **argv, const char *const *extra, bench_proc *p);
/* Reads one line from p's stdout before deadline (rl_clock_s()); 0 on success. */
int bench_read_line(bench_proc *p, char *line, size_t cap, double deadline);
/* Copies proc `relay`'s stdout to ours and drains the others, until every
 * process exits or the deadline passes (then they are killed). Returns 0 if
 * every process exited 0, 1 otherwise. */
int bench_relay_and_wait(bench_proc *p, int n, int relay, double deadline);
/* SIGKILLs and reaps every process still running. */
void bench_stop_all(bench_proc *p, int n);

#endif
