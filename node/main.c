/*
 * main.c - `ringleader-node`: joins a coordinator (authenticated), opens its
 * ring endpoint, and sends heartbeats with its load metrics until the job
 * ends or the coordinator has been gone longer than the failure timeout.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringleader/agent.h"
#include "exec.h"
#include "worker.h"
#include "ringleader/allreduce.h"
#include "ringleader/clock.h"
#include "ringleader/err.h"
#include "ringleader/log.h"
#include "ringleader/ring.h"
#include "ringleader/rpc.h"
#include "ringleader/spec.h"

/* How long a signalled node may take to stop by itself before it exits
 * anyway: a second at most in all (docs/operations.md, "TLS links, exits and
 * signals"). */
#define STOP_GRACE_MS 700
/* How long the teardown after the worker (joining the heartbeat thread,
 * closing the RPC client and the endpoint) may take before the node exits
 * anyway with the job's exit code: nng's close can hang (docs/operations.md,
 * "Limits"), and a node whose job ended must not outlive it. */
#define TEARDOWN_GRACE_MS 2000

/* The teardown's watchdog: exits the process if the teardown is not done
 * by its deadline. */
typedef struct teardown_watch {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    bool done;
    int exit_code;
} teardown_watch;

static void *teardown_watch_main(void *arg)
{
    teardown_watch *t = arg;
    uint64_t deadline = rl_clock_ms() + TEARDOWN_GRACE_MS;
    pthread_mutex_lock(&t->mtx);
    while (!t->done && rl_cond_wait_until(&t->cv, &t->mtx, deadline) == RL_OK) {
    }
    bool done = t->done;
    pthread_mutex_unlock(&t->mtx);
    if (!done) {
        rl_log_warn("closing connections still runs after %d ms; exiting now", TEARDOWN_GRACE_MS);
        fflush(stderr);
        _exit(t->exit_code);
    }
    return NULL;
}

/* The agent while the worker runs, and the signal's name once one came. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static rl_agent *g_agent;
static const char *g_stopping;

/* Publishes a (or NULL) for signal_main; a signal already taken stops it. */
static void publish_agent(rl_agent *a)
{
    pthread_mutex_lock(&g_lock);
    g_agent = a;
    if (a != NULL && g_stopping != NULL) rl_agent_stop_now(a, g_stopping);
    pthread_mutex_unlock(&g_lock);
}

/*
 * SIGINT/SIGTERM, on a thread of their own (blocked in every other thread):
 * the first breaks whatever the node waits in (the ring forming or in a
 * collective: fence and abort) so that it winds down by itself; if it has
 * not exited STOP_GRACE_MS later (an RPC call or block making cannot be
 * broken from outside), or at a second signal, the process exits here.
 */
static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    if (sigwait(set, &sig) != 0) return NULL;
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    rl_log_info("%s: stopping", name);
    pthread_mutex_lock(&g_lock);
    g_stopping = name;
    if (g_agent != NULL) rl_agent_stop_now(g_agent, name);
    pthread_mutex_unlock(&g_lock);
    siginfo_t info;
    uint64_t until = rl_clock_ms() + STOP_GRACE_MS;
    for (uint64_t now; (now = rl_clock_ms()) < until;) {
        uint64_t ms = until - now;
        struct timespec left = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        if (sigtimedwait(set, &info, &left) >= 0) break; /* a second signal */
    }
    rl_log_info("still stopping after %d ms; exiting now", STOP_GRACE_MS);
    fflush(stderr);
    _exit(0);
    return NULL;
}

/* Blocks SIGINT and SIGTERM in this thread and every thread started after
 * it (nng's too), and starts signal_main to take them. */
static void signals_start(void)
{
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, signal_main, &set) == 0) pthread_detach(th);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ringleader-node --coordinator URL --id ID [--listen URL] [--token-file F]\n"
               "                       [--join-timeout-ms MS] [--exec -- CMD ...]\n\n"
               "Joins the coordinator at URL as node ID, accepts its ring neighbours on\n"
               "--listen (default: the spec's cluster.nodes listen URL for ID, which the\n"
               "coordinator tells it), and works until the job ends.\n"
               "The cluster token comes from --token-file or $RINGLEADER_TOKEN.\n"
               "TLS (tls+tcp:// URLs): --tls-cert F --tls-key F --tls-ca F, and\n"
               "--tls-verify-hostname false to accept peer certificates for other hosts (labs).\n"
               "--exec -- CMD ...: instead of the built-in trainer, runs CMD (a worker API\n"
               "program, docs/worker-api.md) with RINGLEADER_COORDINATOR, _NODE_ID, _LISTEN and\n"
               "_TOKEN_FILE set from these options, and tells the coordinator how it ended;\n"
               "exits with its exit code. Must be the last option.\n");
}

typedef struct node_opts {
    const char *coordinator, *id, *listen, *token_file;
    rl_tls_files tls;
    int join_timeout_ms;
    char **exec_argv; /* --exec -- CMD ...: the program (NULL: the built-in trainer) */
} node_opts;

static int parse(int argc, char **argv, node_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->join_timeout_ms = 30000;
    for (int i = 1; i < argc; i += 2) { /* --help and --version exit; the rest take a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--version") == 0) {
            printf("ringleader-node %s\n", RL_VERSION);
            exit(0);
        }
        if (strcmp(a, "--exec") == 0) { /* the rest is the program */
            int k = i + 1 < argc && strcmp(argv[i + 1], "--") == 0 ? i + 2 : i + 1;
            if (k >= argc) {
                fprintf(stderr, "ringleader-node: --exec needs a program: --exec -- CMD ...\n");
                return -1;
            }
            o->exec_argv = &argv[k];
            break;
        }
        if (v == NULL) {
            fprintf(stderr, "ringleader-node: %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--coordinator") == 0)
            o->coordinator = v;
        else if (strcmp(a, "--id") == 0)
            o->id = v;
        else if (strcmp(a, "--listen") == 0)
            o->listen = v;
        else if (strcmp(a, "--token-file") == 0)
            o->token_file = v;
        else if (strcmp(a, "--tls-cert") == 0)
            o->tls.cert = v;
        else if (strcmp(a, "--tls-key") == 0)
            o->tls.key = v;
        else if (strcmp(a, "--tls-ca") == 0)
            o->tls.ca = v;
        else if (strcmp(a, "--tls-verify-hostname") == 0 && strcmp(v, "true") == 0)
            o->tls.skip_hostname_check = false;
        else if (strcmp(a, "--tls-verify-hostname") == 0 && strcmp(v, "false") == 0)
            o->tls.skip_hostname_check = true;
        else if (strcmp(a, "--join-timeout-ms") == 0)
            o->join_timeout_ms = atoi(v);
        else {
            fprintf(stderr, "ringleader-node: unknown option %s\n", a);
            return -1;
        }
    }
    if (o->coordinator == NULL || o->id == NULL || o->join_timeout_ms <= 0) {
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    node_opts o;
    if (parse(argc, argv, &o) != 0) return 2;
    rl_log_set_tag(o.id);
    signal(SIGPIPE, SIG_IGN);
    if (o.exec_argv != NULL) {
        node_exec_opts eo = {.coordinator = o.coordinator,
                             .id = o.id,
                             .listen = o.listen,
                             .token_file = o.token_file,
                             .tls = o.tls.cert ? &o.tls : NULL,
                             .argv = o.exec_argv};
        return node_exec(&eo);
    }
    signals_start(); /* before any other thread */

    rl_token token; /* checked here: a bad token is a usage error (exit 2) */
    if (rl_token_load(o.token_file, &token) != 0) {
        rl_log_error("%s", rl_errdetail());
        return 2;
    }
    const rl_tls_files *tls = o.tls.cert ? &o.tls : NULL;
    rl_agent_opts ao = {.coordinator = o.coordinator,
                        .id = o.id,
                        .listen = o.listen,
                        .token_file = o.token_file,
                        .tls = tls,
                        .join_timeout_ms = o.join_timeout_ms};
    rl_agent *a = NULL;
    if (rl_agent_open(&ao, &a) != RL_OK) {
        rl_log_error("%s", rl_errdetail());
        return 1;
    }
    publish_agent(a);
    int exit_code = worker_run(a);
    /* A coordinator gone after the job's last step ended the job: no
     * failure. One that never came back (the grace passed): whatever the
     * steps, no coordinator has the job's result. */
    if (atomic_load(&a->gave_up) || (atomic_load(&a->coord_lost) && !atomic_load(&a->job_done)))
        exit_code = 1;
    publish_agent(NULL);
    teardown_watch tw = {.exit_code = exit_code};
    pthread_mutex_init(&tw.mtx, NULL);
    rl_cond_init_monotonic(&tw.cv);
    pthread_t watch;
    pthread_create(&watch, NULL, teardown_watch_main, &tw);
    rl_agent_close(a);
    pthread_mutex_lock(&tw.mtx);
    tw.done = true;
    pthread_cond_signal(&tw.cv);
    pthread_mutex_unlock(&tw.mtx);
    pthread_join(watch, NULL);
    pthread_cond_destroy(&tw.cv);
    pthread_mutex_destroy(&tw.mtx);
    return exit_code;
}
