/* launch.c - starting and stopping local ringleader-node processes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

/* Whether /proc/PID/cmdline is ringleader-node's with --id id and
 * --coordinator url. */
static bool cmdline_is_node(const char *pid, const char *id, const char *url)
{
    char path[300], buf[8192];
    snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    const char *arg0 = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
    if (strcmp(arg0, "ringleader-node") != 0) return false;
    bool id_ok = false, url_ok = false;
    const char *prev = NULL;
    for (const char *p = buf; p < buf + n; p += strlen(p) + 1) {
        if (prev != NULL && strcmp(prev, "--id") == 0) id_ok = strcmp(p, id) == 0;
        if (prev != NULL && strcmp(prev, "--coordinator") == 0) url_ok = strcmp(p, url) == 0;
        prev = p;
    }
    return id_ok && url_ok;
}

int launch_find_running(const rl_spec *spec, pid_t *pids)
{
    int found = 0;
    for (int i = 0; i < spec->n_nodes; i++)
        pids[i] = 0;
    DIR *d = opendir("/proc");
    if (d == NULL) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        for (int i = 0; i < spec->n_nodes; i++)
            if (pids[i] == 0 && cmdline_is_node(e->d_name, spec->nodes[i].id, spec->coordinator)) {
                pids[i] = (pid_t)atol(e->d_name);
                found++;
                break;
            }
    }
    closedir(d);
    return found;
}

int launch_nodes(const rl_spec *spec, const char *node_bin, const pid_t *adopt, launched *out)
{
    out->n = spec->n_nodes;
    out->pids = rl_xcalloc((size_t)out->n, sizeof(pid_t));
    out->status = rl_xcalloc((size_t)out->n, sizeof(int));
    out->adopted = rl_xcalloc((size_t)out->n, sizeof(bool));
    for (int i = 0; i < spec->n_nodes; i++) {
        if (adopt != NULL && adopt[i] > 0) {
            out->pids[i] = adopt[i];
            out->adopted[i] = true;
            continue;
        }
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
            closefrom(3); /* none of the coordinator's sockets or files: see launch.h */
            execv(node_bin, (char *const *)argv);
            fprintf(stderr, "cannot run %s: %s\n", node_bin, strerror(errno));
            _exit(127);
        }
        out->pids[i] = pid;
    }
    return 0;
}

void launch_kill_wait(pid_t pid, int ms)
{
    kill(pid, SIGKILL);
    uint64_t gone_by = rl_clock_ms() + (uint64_t)(ms > 0 ? ms : 0);
    while (kill(pid, 0) == 0 && rl_clock_ms() < gone_by) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL); /* bounded by gone_by */
    }
}

int launch_reap(launched *l)
{
    int running = 0;
    for (int i = 0; i < l->n; i++) {
        if (l->pids[i] <= 0) continue;
        if (l->adopted != NULL && l->adopted[i]) { /* not our child: is it there? */
            if (kill(l->pids[i], 0) != 0 && errno == ESRCH) l->pids[i] = 0;
            else running++;
            continue;
        }
        pid_t w = waitpid(l->pids[i], &l->status[i], WNOHANG);
        if (w == l->pids[i])
            l->pids[i] = 0;
        else
            running++;
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
            if (l->adopted == NULL || !l->adopted[i]) waitpid(l->pids[i], &l->status[i], 0);
            l->pids[i] = 0;
        }
}

void launch_free(launched *l)
{
    if (l->copying) {
        atomic_store(&l->stop_copy, true);
        pthread_join(l->copier, NULL);
        l->copying = false;
        pthread_mutex_destroy(&l->mtx);
    }
    for (int i = 0; l->err_fd != NULL && i < l->n; i++)
        if (l->err_fd[i] >= 0) close(l->err_fd[i]);
    free(l->pids);
    free(l->status);
    free(l->adopted);
    l->adopted = NULL;
    free(l->err_fd);
    free(l->tail);
    free(l->tail_len);
    l->pids = NULL;
    l->status = NULL;
    l->err_fd = NULL;
    l->tail = NULL;
    l->tail_len = NULL;
}

/* ---- Programs (docs/worker-api.md) ---------------------------------------------- */

/* Keeps the last LAUNCH_TAIL_BYTES of program i's stderr. Lock held. */
static void launch_keep_tail(launched *l, int i, const char *buf, size_t n)
{
    char *t = l->tail[i];
    size_t have = l->tail_len[i];
    if (n >= LAUNCH_TAIL_BYTES) {
        memcpy(t, buf + n - LAUNCH_TAIL_BYTES, LAUNCH_TAIL_BYTES);
        l->tail_len[i] = LAUNCH_TAIL_BYTES;
        return;
    }
    if (have + n > LAUNCH_TAIL_BYTES) {
        size_t drop = have + n - LAUNCH_TAIL_BYTES;
        memmove(t, t + drop, have - drop);
        have -= drop;
    }
    memcpy(t + have, buf, n);
    l->tail_len[i] = have + n;
}

/* Copies every program's stderr to ours, keeping tails, until each pipe
 * ends or launch_free stops it. */
static void *launch_copy_main(void *arg)
{
    launched *l = arg;
    struct pollfd *p = rl_xcalloc((size_t)l->n + 1, sizeof(*p));
    while (!atomic_load(&l->stop_copy)) {
        int open_fds = 0;
        for (int i = 0; i < l->n; i++) {
            p[i].fd = l->err_fd[i];
            p[i].events = POLLIN;
            p[i].revents = 0;
            if (l->err_fd[i] >= 0) open_fds++;
        }
        if (open_fds == 0) break;
        if (poll(p, (nfds_t)l->n, 100) <= 0) continue; /* 100 ms: to see stop_copy */
        for (int i = 0; i < l->n; i++) {
            if (p[i].fd < 0 || p[i].revents == 0) continue;
            char buf[4096];
            ssize_t r = read(p[i].fd, buf, sizeof(buf));
            if (r <= 0) {
                pthread_mutex_lock(&l->mtx);
                close(l->err_fd[i]);
                l->err_fd[i] = -1;
                pthread_mutex_unlock(&l->mtx);
                continue;
            }
            if (write(STDERR_FILENO, buf, (size_t)r) < 0) { /* our stderr is gone: keep the tail */
            }
            pthread_mutex_lock(&l->mtx);
            launch_keep_tail(l, i, buf, (size_t)r);
            pthread_mutex_unlock(&l->mtx);
        }
    }
    free(p);
    return NULL;
}

void launch_stderr_tail(launched *l, int i, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (l->tail == NULL || cap == 0) return;
    pthread_mutex_lock(&l->mtx);
    const char *t = l->tail[i];
    size_t n = l->tail_len[i];
    /* the last 8 lines at most, and no cut line when the buffer is full */
    size_t start = 0, lines = 0;
    for (size_t k = n; k > 0; k--)
        if (t[k - 1] == '\n' && k < n && ++lines == 8) {
            start = k;
            break;
        }
    if (start == 0 && n == LAUNCH_TAIL_BYTES) {
        const char *nl = memchr(t, '\n', n);
        if (nl != NULL) start = (size_t)(nl - t) + 1;
    }
    if (n - start > cap - 1) start = n - (cap - 1);
    memcpy(buf, t + start, n - start);
    buf[n - start] = '\0';
    pthread_mutex_unlock(&l->mtx);
}

/* The spec's file paths are relative to the coordinator's working directory
 * (the spec resolved them so); a program runs in program.workdir, so it gets
 * them absolute, made in the parent before fork. */
typedef struct launch_paths {
    char token[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
} launch_paths;

static void launch_abs(const char *cwd, const char *path, char *out, size_t cap)
{
    int k = -1;
    if (path[0] != '/' && path[0] != '\0' && cwd[0] != '\0')
        k = snprintf(out, cap, "%s/%s", cwd, path);
    if (k < 0 || (size_t)k >= cap) snprintf(out, cap, "%s", path); /* too long: as given */
}

static void launch_paths_make(const rl_spec *spec, launch_paths *lp)
{
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL) cwd[0] = '\0';
    launch_abs(cwd, spec->token_file, lp->token, sizeof(lp->token));
    launch_abs(cwd, spec->tls_cert, lp->cert, sizeof(lp->cert));
    launch_abs(cwd, spec->tls_key, lp->key, sizeof(lp->key));
    launch_abs(cwd, spec->tls_ca, lp->ca, sizeof(lp->ca));
}

/* In the child: the environment a worker API program joins with. */
static void launch_program_env(const rl_spec *spec, const launch_paths *lp, int i)
{
    setenv("RINGLEADER_COORDINATOR", spec->coordinator, 1);
    setenv("RINGLEADER_NODE_ID", spec->nodes[i].id, 1);
    setenv("RINGLEADER_LISTEN", spec->nodes[i].listen, 1);
    if (lp->token[0] != '\0') setenv("RINGLEADER_TOKEN_FILE", lp->token, 1);
    if (spec->tls_cert[0] != '\0') {
        setenv("RINGLEADER_TLS_CERT", lp->cert, 1);
        setenv("RINGLEADER_TLS_KEY", lp->key, 1);
        setenv("RINGLEADER_TLS_CA", lp->ca, 1);
        if (!spec->tls_verify_hostname) setenv("RINGLEADER_TLS_VERIFY_HOSTNAME", "false", 1);
    }
    for (int k = 0; k < spec->program_env.n; k++)
        putenv(spec->program_env.v[k]); /* the child's own copy of the spec */
}

int launch_programs(const rl_spec *spec, launched *out)
{
    int n = spec->n_nodes;
    out->n = n;
    out->pids = rl_xcalloc((size_t)n, sizeof(pid_t));
    out->status = rl_xcalloc((size_t)n, sizeof(int));
    out->err_fd = rl_xcalloc((size_t)n, sizeof(int));
    out->tail = rl_xcalloc((size_t)n, sizeof(*out->tail));
    out->tail_len = rl_xcalloc((size_t)n, sizeof(size_t));
    for (int i = 0; i < n; i++)
        out->err_fd[i] = -1;
    pthread_mutex_init(&out->mtx, NULL);
    char workdir[PATH_MAX];
    const char *w = spec->program_workdir;
    if (w[0] == '/')
        snprintf(workdir, sizeof(workdir), "%s", w);
    else if (w[0] != '\0')
        snprintf(workdir, sizeof(workdir), "%s/%s", spec->dir, w);
    else
        snprintf(workdir, sizeof(workdir), "%s", spec->dir[0] ? spec->dir : ".");
    static launch_paths lp; /* large; one launch per process */
    launch_paths_make(spec, &lp);
    for (int i = 0; i < n; i++) {
        int fds[2];
        if (pipe(fds) != 0 || fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0 ||
            fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0) {
            rl_log_error("cannot start the program of node %s: %s", spec->nodes[i].id,
                         strerror(errno));
            launch_stop(out, 0);
            return -1;
        }
        pid_t pid = fork();
        if (pid < 0) {
            rl_log_error("cannot start the program of node %s: %s", spec->nodes[i].id,
                         strerror(errno));
            close(fds[0]);
            close(fds[1]);
            launch_stop(out, 0);
            return -1;
        }
        if (pid == 0) {
            dup2(fds[1], STDERR_FILENO);
            closefrom(3); /* none of the coordinator's sockets or files: see launch.h */
            if (chdir(workdir) != 0) {
                fprintf(stderr, "cannot enter program.workdir %s: %s\n", workdir, strerror(errno));
                _exit(127);
            }
            launch_program_env(spec, &lp, i);
            execvp(spec->program_argv.v[0], spec->program_argv.v);
            fprintf(stderr, "cannot run %s (in %s): %s\n", spec->program_argv.v[0], workdir,
                    strerror(errno));
            _exit(127);
        }
        close(fds[1]);
        out->err_fd[i] = fds[0];
        out->pids[i] = pid;
    }
    atomic_store(&out->stop_copy, false);
    out->copying = pthread_create(&out->copier, NULL, launch_copy_main, out) == 0;
    return 0;
}
