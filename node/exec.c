/*
 * exec.c - `ringleader-node --exec -- CMD ...`: starts the user's program
 * with the environment `ringleader run` gives the programs it starts
 * (RINGLEADER_COORDINATOR, _NODE_ID, _LISTEN, _TOKEN_FILE, TLS), forwards
 * SIGINT and SIGTERM to it, and reports its end to the coordinator (LEAVE
 * with its exit code and stderr tail), which fails the job on a non-zero
 * exit. See docs/worker-api.md.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"
#include "ringleader/clock.h"
#include "ringleader/err.h"
#include "ringleader/log.h"
#include "ringleader/rpc.h"

#define EXEC_TAIL_BYTES 2048 /* of the program's stderr, told to the coordinator */

static volatile sig_atomic_t exec_child;

static void exec_forward(int sig)
{
    if (exec_child > 0) kill((pid_t)exec_child, sig);
}

static void exec_set_env(const node_exec_opts *o)
{
    setenv("RINGLEADER_COORDINATOR", o->coordinator, 1);
    setenv("RINGLEADER_NODE_ID", o->id, 1);
    if (o->listen != NULL) setenv("RINGLEADER_LISTEN", o->listen, 1);
    if (o->token_file != NULL) setenv("RINGLEADER_TOKEN_FILE", o->token_file, 1);
    if (o->tls != NULL) {
        setenv("RINGLEADER_TLS_CERT", o->tls->cert, 1);
        setenv("RINGLEADER_TLS_KEY", o->tls->key, 1);
        setenv("RINGLEADER_TLS_CA", o->tls->ca, 1);
        if (o->tls->skip_hostname_check) setenv("RINGLEADER_TLS_VERIFY_HOSTNAME", "false", 1);
    }
}

/* Copies the pipe to our stderr until it ends, keeping its last bytes. */
static void exec_copy_stderr(int fd, char *tail, size_t *len)
{
    char buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (write(STDERR_FILENO, buf, (size_t)r) < 0) { /* our stderr is gone: keep the tail */
        }
        size_t n = (size_t)r, have = *len;
        if (n >= EXEC_TAIL_BYTES) {
            memcpy(tail, buf + n - EXEC_TAIL_BYTES, EXEC_TAIL_BYTES);
            *len = EXEC_TAIL_BYTES;
            continue;
        }
        if (have + n > EXEC_TAIL_BYTES) {
            memmove(tail, tail + (have + n - EXEC_TAIL_BYTES), EXEC_TAIL_BYTES - n);
            have = EXEC_TAIL_BYTES - n;
        }
        memcpy(tail + have, buf, n);
        *len = have + n;
    }
}

/* Tells the coordinator how the program ended (3 s at most: after the job's
 * end it is gone). */
static void exec_report(const node_exec_opts *o, int status, const char *tail)
{
    rl_token token;
    if (rl_token_load(o->token_file, &token) != RL_OK) {
        rl_log_error("cannot report the program's end: %s", rl_errdetail());
        return;
    }
    rl_rpc_client *c = NULL;
    rl_rpc_client_opts co = {
        .url = o->coordinator, .tls = o->tls, .token = &token, .peer_id = o->id};
    if (rl_rpc_client_open(&co, rl_clock_ms() + 3000, &c) != RL_OK) {
        rl_log_warn("cannot report the program's end to %s: %s", o->coordinator, rl_errdetail());
        return;
    }
    rl_msg req;
    rl_rpc_reply rep;
    rl_msg_init(&req, RL_MSG_LEAVE_REQ);
    rl_msg_leave_req *q = &req.u.leave_req;
    q->node_id = (char *)o->id;
    if (WIFEXITED(status)) {
        q->exit_code = WEXITSTATUS(status);
        RL_SET_FIELD(q, leave_req, exit_code);
    } else {
        q->signal = (uint64_t)WTERMSIG(status);
        RL_SET_FIELD(q, leave_req, signal);
    }
    q->stderr_tail = (char *)tail;
    if (rl_rpc_call(c, &req, &rep, rl_clock_ms() + 3000) != RL_OK)
        rl_log_warn("cannot report the program's end to %s: %s", o->coordinator, rl_errdetail());
    rl_rpc_reply_fini(&rep);
    rl_rpc_client_close(c);
}

int node_exec(const node_exec_opts *o)
{
    int fds[2];
    if (pipe(fds) != 0) {
        rl_log_error("--exec: %s", strerror(errno));
        return 1;
    }
    signal(SIGINT, exec_forward);
    signal(SIGTERM, exec_forward);
    pid_t pid = fork();
    if (pid < 0) {
        rl_log_error("--exec: %s", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        closefrom(3); /* none of the node's sockets: the program has its own */
        exec_set_env(o);
        execvp(o->argv[0], o->argv);
        fprintf(stderr, "ringleader-node --exec: cannot run %s: %s\n", o->argv[0], strerror(errno));
        _exit(127);
    }
    exec_child = pid;
    close(fds[1]);
    char tail[EXEC_TAIL_BYTES + 1];
    size_t len = 0;
    exec_copy_stderr(fds[0], tail, &len);
    close(fds[0]);
    tail[len] = '\0';
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    exec_child = 0;
    /* the last 8 lines at most */
    char *start = tail;
    int lines = 0;
    for (char *p = tail + len; p > tail; p--)
        if (p[-1] == '\n' && p < tail + len && ++lines == 8) {
            start = p;
            break;
        }
    exec_report(o, status, start);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
