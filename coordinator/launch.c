/* launch.c - starting and stopping local ringleader-node processes. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launch.h"
#include "ringleader/log.h"
#include "ringleader/mem.h"
#include "ringleader/ring.h"

static int is_exec(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

int launch_find_node_bin(char *out, size_t cap)
{
    const char *env = getenv("RINGLEADER_NODE_BIN");
    if (env != NULL && is_exec(env)) {
        snprintf(out, cap, "%s", env);
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(out, cap, "%s/ringleader-node", self);
            if (is_exec(out)) return 0;
            snprintf(out, cap, "%s/../node/ringleader-node", self);
            if (is_exec(out)) return 0;
        }
    }
    return -1;
}

int launch_nodes(const rl_spec *spec, const char *node_bin, launched *out)
{
    out->n = spec->n_nodes;
    out->pids = rl_xcalloc((size_t)out->n, sizeof(pid_t));
    out->status = rl_xcalloc((size_t)out->n, sizeof(int));
    for (int i = 0; i < spec->n_nodes; i++) {
        const char *argv[20];
        int k = 0;
        argv[k++] = node_bin;
        argv[k++] = "--coordinator";
        argv[k++] = spec->coordinator;
        argv[k++] = "--id";
        argv[k++] = spec->nodes[i].id;
        argv[k++] = "--listen";
        argv[k++] = spec->nodes[i].listen;
        if (spec->token_file[0] != '\0') {
            argv[k++] = "--token-file";
            argv[k++] = spec->token_file;
        }
        if (spec->tls_cert[0] != '\0') {
            argv[k++] = "--tls-cert";
            argv[k++] = spec->tls_cert;
            argv[k++] = "--tls-key";
            argv[k++] = spec->tls_key;
            argv[k++] = "--tls-ca";
            argv[k++] = spec->tls_ca;
            if (!spec->tls_verify_hostname) {
                argv[k++] = "--tls-verify-hostname";
                argv[k++] = "false";
            }
        }
        argv[k] = NULL;
        pid_t pid = fork();
        if (pid < 0) {
            rl_log_error("cannot start node %s: %s", spec->nodes[i].id, strerror(errno));
            launch_stop(out, 0);
            return -1;
        }
        if (pid == 0) {
            execv(node_bin, (char *const *)argv);
            fprintf(stderr, "cannot run %s: %s\n", node_bin, strerror(errno));
            _exit(127);
        }
        out->pids[i] = pid;
    }
    return 0;
}

int launch_reap(launched *l)
{
    int running = 0;
    for (int i = 0; i < l->n; i++) {
        if (l->pids[i] <= 0) continue;
        pid_t w = waitpid(l->pids[i], &l->status[i], WNOHANG);
        if (w == l->pids[i]) l->pids[i] = 0;
        else running++;
    }
    return running;
}

void launch_stop(launched *l, int grace_ms)
{
    for (int i = 0; i < l->n; i++)
        if (l->pids[i] > 0) kill(l->pids[i], SIGTERM);
    uint64_t deadline = rl_clock_ms() + (uint64_t)(grace_ms > 0 ? grace_ms : 0);
    while (launch_reap(l) > 0 && rl_clock_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling exits of our own children, bounded by grace_ms */
    }
    for (int i = 0; i < l->n; i++)
        if (l->pids[i] > 0) {
            kill(l->pids[i], SIGKILL);
            waitpid(l->pids[i], &l->status[i], 0);
            l->pids[i] = 0;
        }
}

void launch_free(launched *l)
{
    free(l->pids);
    free(l->status);
    l->pids = NULL;
    l->status = NULL;
}
