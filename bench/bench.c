/* bench.c - child processes and parsing shared by the bench commands. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "ringleader/clock.h"
#include "ringleader/mem.h"

size_t bench_parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s) return 0;
    if (*end == 'K' || *end == 'k')
        v <<= 10, end++;
    else if (*end == 'M' || *end == 'm')
        v <<= 20, end++;
    else if (*end == 'G' || *end == 'g')
        v <<= 30, end++;
    if (*end == 'i') end++;
    if (*end == 'B') end++;
    return *end == '\0' || *end == ',' ? (size_t)v : 0;
}

int bench_parse_size_list(const char *s, size_t *out, int max)
{
    int n = 0;
    while (*s != '\0') {
        if (n == max) return -1;
        size_t v = bench_parse_size(s);
        if (v == 0) return -1;
        out[n++] = v;
        const char *c = strchr(s, ',');
        if (c == NULL) break;
        s = c + 1;
    }
    return n;
}

int bench_spawn_self(int argc, char **argv, const char *const *extra, bench_proc *p)
{
    int in[2], out[2];
    if (pipe(in) != 0) return -1;
    if (pipe(out) != 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        int ne = 0;
        while (extra[ne] != NULL)
            ne++;
        char **av = rl_xcalloc((size_t)(argc + ne + 3), sizeof(char *));
        av[0] = "ringleader";
        av[1] = "bench";
        for (int i = 0; i < argc; i++)
            av[2 + i] = argv[i];
        for (int i = 0; i < ne; i++)
            av[2 + argc + i] = (char *)extra[i];
        execv("/proc/self/exe", av);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    memset(p, 0, sizeof(*p));
    p->pid = pid;
    p->in_fd = in[1];
    p->out_fd = out[0];
    return 0;
}

/* Reads what is available from p into its buffer; -1 on EOF. */
static int fill(bench_proc *p)
{
    if (p->len == sizeof(p->buf)) p->len = 0; /* overlong line: drop it */
    ssize_t n = read(p->out_fd, p->buf + p->len, sizeof(p->buf) - p->len);
    if (n > 0) p->len += (size_t)n;
    if (n == 0) return -1;
    return 0;
}

static int take_line(bench_proc *p, char *line, size_t cap)
{
    char *nl = memchr(p->buf, '\n', p->len);
    if (nl == NULL) return -1;
    size_t l = (size_t)(nl - p->buf);
    size_t c = l < cap - 1 ? l : cap - 1;
    memcpy(line, p->buf, c);
    line[c] = '\0';
    memmove(p->buf, nl + 1, p->len - l - 1);
    p->len -= l + 1;
    return 0;
}

int bench_read_line(bench_proc *p, char *line, size_t cap, double deadline)
{
    for (;;) {
        if (take_line(p, line, cap) == 0) return 0;
        double left = deadline - rl_clock_s();
        if (left <= 0) return -1;
        struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
        int r = poll(&pf, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) return -1;
        if (r > 0 && fill(p) != 0) return take_line(p, line, cap);
    }
}

int bench_relay_and_wait(bench_proc *p, int n, int relay, double deadline)
{
    int open_fds = n;
    while (open_fds > 0) {
        double left = deadline - rl_clock_s();
        if (left <= 0) {
            fprintf(stderr, "ringleader bench: workers still running at the deadline; killing "
                            "them\n");
            bench_stop_all(p, n);
            return 1;
        }
        struct pollfd pf[64];
        int idx[64], k = 0;
        for (int i = 0; i < n && k < 64; i++)
            if (p[i].out_fd >= 0) {
                pf[k].fd = p[i].out_fd;
                pf[k].events = POLLIN;
                idx[k++] = i;
            }
        int r = poll(pf, (nfds_t)k, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) break;
        for (int j = 0; j < k; j++) {
            if (!(pf[j].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            bench_proc *q = &p[idx[j]];
            int eof = fill(q);
            char line[4096];
            while (take_line(q, line, sizeof(line)) == 0)
                if (idx[j] == relay) {
                    printf("%s\n", line);
                    fflush(stdout);
                }
            if (eof) {
                close(q->out_fd);
                q->out_fd = -1;
                open_fds--;
            }
        }
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        while (!p[i].exited) {
            pid_t w = waitpid(p[i].pid, &p[i].status, WNOHANG);
            if (w == p[i].pid) {
                p[i].exited = 1;
                break;
            }
            if (rl_clock_s() > deadline) {
                bench_stop_all(p, n);
                return 1;
            }
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL); /* reaping a process that closed its stdout */
        }
        if (!WIFEXITED(p[i].status) || WEXITSTATUS(p[i].status) != 0) rc = 1;
    }
    return rc;
}

void bench_stop_all(bench_proc *p, int n)
{
    for (int i = 0; i < n; i++) {
        if (p[i].in_fd >= 0 && p[i].in_fd != 0) close(p[i].in_fd);
        p[i].in_fd = -1;
        if (p[i].out_fd > 0) close(p[i].out_fd);
        p[i].out_fd = -1;
        if (p[i].pid > 0 && !p[i].exited) {
            kill(p[i].pid, SIGKILL);
            waitpid(p[i].pid, &p[i].status, 0);
            p[i].exited = 1;
        }
    }
}
