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

#include "agent.h"
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

/* The agent while the worker runs, and the signal's name once one came. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static agent *g_agent;
static const char *g_stopping;

/* Publishes a (or NULL) for signal_main; a signal already taken stops it. */
static void publish_agent(agent *a)
{
    pthread_mutex_lock(&g_lock);
    g_agent = a;
    if (a != NULL && g_stopping != NULL) agent_stop_now(a, g_stopping);
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
    if (g_agent != NULL) agent_stop_now(g_agent, name);
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
               "                       [--join-timeout-ms MS]\n\n"
               "Joins the coordinator at URL as node ID, accepts its ring neighbours on\n"
               "--listen (default: the spec's cluster.nodes listen URL for ID, which the\n"
               "coordinator tells it), and works until the job ends.\n"
               "The cluster token comes from --token-file or $RINGLEADER_TOKEN.\n"
               "TLS (tls+tcp:// URLs): --tls-cert F --tls-key F --tls-ca F, and\n"
               "--tls-verify-hostname false to accept peer certificates for other hosts (labs).\n");
}

typedef struct node_opts {
    const char *coordinator, *id, *listen, *token_file;
    rl_tls_files tls;
    int join_timeout_ms;
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
        if (v == NULL) {
            fprintf(stderr, "ringleader-node: %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--coordinator") == 0) o->coordinator = v;
        else if (strcmp(a, "--id") == 0) o->id = v;
        else if (strcmp(a, "--listen") == 0) o->listen = v;
        else if (strcmp(a, "--token-file") == 0) o->token_file = v;
        else if (strcmp(a, "--tls-cert") == 0) o->tls.cert = v;
        else if (strcmp(a, "--tls-key") == 0) o->tls.key = v;
        else if (strcmp(a, "--tls-ca") == 0) o->tls.ca = v;
        else if (strcmp(a, "--tls-verify-hostname") == 0 && strcmp(v, "true") == 0)
            o->tls.skip_hostname_check = false;
        else if (strcmp(a, "--tls-verify-hostname") == 0 && strcmp(v, "false") == 0)
            o->tls.skip_hostname_check = true;
        else if (strcmp(a, "--join-timeout-ms") == 0) o->join_timeout_ms = atoi(v);
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

/* JOIN as o->id advertising listen ("": asks the coordinator where to
 * listen). On success rep holds the reply; the caller finis it. */
static int node_join(rl_rpc_client *c, const node_opts *o, const char *listen, rl_rpc_reply *rep)
{
    rl_msg req;
    rl_msg_init(&req, RL_MSG_JOIN_REQ);
    req.u.join_req.node_id = (char *)o->id;
    req.u.join_req.listen = (char *)listen;
    req.u.join_req.pid = (uint64_t)getpid();
    RL_SET_FIELD(&req.u.join_req, join_req, pid);
    int rv = rl_rpc_call(c, &req, rep, rl_clock_ms() + (uint64_t)o->join_timeout_ms);
    if (rv != RL_OK) rl_log_error("join refused by %s: %s", o->coordinator, rl_errdetail());
    return rv;
}

/* Without --listen: asks the coordinator for the spec's URL for this id,
 * opens the ring endpoint there; then (with or without) joins advertising
 * the endpoint's bound URL. On success *ep is open and rep holds the reply. */
static int node_open_and_join(rl_rpc_client *c, const node_opts *o, const rl_tls_files *tls,
                              const rl_token *token, rl_endpoint **ep, rl_rpc_reply *rep)
{
    const char *listen = o->listen;
    char asked[RL_URL_MAX] = "";
    if (listen == NULL) {
        int rv = node_join(c, o, "", rep);
        if (rv == RL_OK && rep->msg.u.join_resp.listen == NULL) {
            rl_log_error("the coordinator at %s did not say where to listen: give --listen",
                         o->coordinator);
            rv = RL_EPROTO;
        }
        if (rv == RL_OK) snprintf(asked, sizeof(asked), "%s", rep->msg.u.join_resp.listen);
        rl_rpc_reply_fini(rep);
        if (rv != RL_OK) return rv;
        listen = asked;
    }
    if (rl_endpoint_open(listen, tls, ep) != RL_OK) {
        rl_log_error("cannot open the ring endpoint at %s: %s", listen, rl_errdetail());
        return RL_EUNAVAIL;
    }
    rl_endpoint_set_token(*ep, token); /* ring links prove the token both ways */
    int rv = node_join(c, o, rl_endpoint_url(*ep), rep);
    if (rv != RL_OK) {
        rl_rpc_reply_fini(rep);
        rl_endpoint_close(*ep);
        *ep = NULL;
    }
    return rv;
}

int main(int argc, char **argv)
{
    node_opts o;
    if (parse(argc, argv, &o) != 0) return 2;
    rl_log_set_tag(o.id);
    signal(SIGPIPE, SIG_IGN);
    signals_start(); /* before any other thread */

    rl_token token;
    if (rl_token_load(o.token_file, &token) != 0) {
        rl_log_error("%s", rl_errdetail());
        return 2;
    }
    const rl_tls_files *tls = o.tls.cert ? &o.tls : NULL;
    rl_endpoint *ep = NULL;
    rl_rpc_client *c = NULL;
    rl_rpc_client_opts co = {.url = o.coordinator, .tls = tls, .token = &token, .peer_id = o.id};
    if (rl_rpc_client_open(&co, rl_clock_ms() + (uint64_t)o.join_timeout_ms, &c) != 0) {
        rl_log_error("cannot join %s: %s", o.coordinator, rl_errdetail());
        return 1;
    }
    rl_rpc_reply rep;
    if (node_open_and_join(c, &o, tls, &token, &ep, &rep) != RL_OK) {
        rl_rpc_client_close(c);
        return 1;
    }
    int hb_ms = (int)rep.msg.u.join_resp.heartbeat_ms;
    int fail_ms = (int)rep.msg.u.join_resp.failure_timeout_ms;
    rl_log_info("joined job '%s' at %s; ring endpoint %s", rep.msg.u.join_resp.job,
                o.coordinator, rl_endpoint_url(ep));
    rl_rpc_reply_fini(&rep);
    if (hb_ms <= 0) hb_ms = 100;
    if (fail_ms <= hb_ms) fail_ms = 5 * hb_ms;

    agent a = {.id = o.id, .rpc = c, .ep = ep, .heartbeat_ms = hb_ms,
               .failure_timeout_ms = fail_ms};
    pthread_mutex_init(&a.mtx, NULL);
    pthread_mutex_init(&a.acc_mtx, NULL);
    pthread_t hb, watch;
    pthread_create(&hb, NULL, agent_heartbeat_main, &a);
    pthread_create(&watch, NULL, agent_stall_watch_main, &a);
    publish_agent(&a);
    int exit_code = worker_run(&a);
    /* A coordinator gone after the job's last step ended the job: no failure. */
    if (atomic_load(&a.coord_lost) && !atomic_load(&a.job_done)) exit_code = 1;
    atomic_store(&a.stop, true);
    pthread_join(hb, NULL);
    pthread_join(watch, NULL);
    publish_agent(NULL);
    pthread_mutex_destroy(&a.mtx);
    pthread_mutex_destroy(&a.acc_mtx);
    rl_rpc_client_close(c);
    rl_endpoint_close(ep);
    return exit_code;
}
