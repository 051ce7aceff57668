/*
 * cmd_run.c - `ringleader run SPEC`: the coordinator. It serves the cluster's
 * RPC (authenticated), starts the nodes itself with `launch: local` or waits
 * for them with `launch: manual`, admits each one that joins, and tracks
 * their heartbeats. Ctrl-C stops the run cleanly; local nodes are always
 * stopped by PID.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "ringleader/err.h"
#include "launch.h"
#include "registry.h"
#include "ringleader/log.h"
#include "ringleader/rpc.h"
#include "ringleader/spec.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct coord {
    const rl_spec *spec;
    registry reg;
} coord;

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p == NULL) abort();
    memcpy(p, s, n);
    return p;
}

static int handle_join(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    coord *c = arg;
    const rl_msg_join_req *j = &req->u.join_req;
    registry *r = &c->reg;
    int rv = 0;
    const char *peer = rl_rpc_ctx_peer(call);
    if (strcmp(peer, j->node_id) != 0) {
        rl_log_warn("refused join as '%s' from a connection authenticated as '%s'", j->node_id,
                    peer);
        return RL_EPERM;
    }
    pthread_mutex_lock(&r->mtx);
    node_entry *e = NULL;
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->nodes[i].id, j->node_id) == 0) e = &r->nodes[i];
    if (e == NULL) {
        rv = RL_ENOTFOUND;
    } else {
        snprintf(e->listen, sizeof(e->listen), "%s", j->listen);
        e->pid = (pid_t)j->pid;
        e->state = NODE_JOINED;
        e->joined_ms = e->last_heartbeat_ms = rl_clock_ms();
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mtx);
    if (rv != 0) {
        rl_log_warn("refused join from unknown node '%s'", j->node_id);
        return rv;
    }
    rl_log_info("node %s joined (pid %llu, ring endpoint %s)", j->node_id,
                (unsigned long long)j->pid, j->listen);
    resp->u.join_resp.job = dup_str(c->spec->name);
    resp->u.join_resp.heartbeat_ms = (uint64_t)c->spec->heartbeat_ms;
    resp->u.join_resp.failure_timeout_ms = (uint64_t)c->spec->failure_timeout_ms;
    return RL_OK;
}

static int handle_heartbeat(void *arg, rl_rpc_ctx *call, const rl_msg *req, rl_msg *resp)
{
    coord *c = arg;
    const rl_msg_heartbeat_req *h = &req->u.heartbeat_req;
    registry *r = &c->reg;
    (void)call;
    pthread_mutex_lock(&r->mtx);
    node_entry *e = NULL;
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->nodes[i].id, h->node_id) == 0) e = &r->nodes[i];
    if (e != NULL) {
        e->last_heartbeat_ms = rl_clock_ms();
        e->heartbeats++;
        if (RL_HAS(h, 4)) e->rows_per_s = h->rows_per_s;
        if (RL_HAS(h, 5)) e->compute_ms = h->compute_ms;
        if (RL_HAS(h, 6)) e->allreduce_ms = h->allreduce_ms;
        if (RL_HAS(h, 7)) e->cpu_load = h->cpu_load;
        if (RL_HAS(h, 8)) e->rss_bytes = h->rss_bytes;
    }
    bool stop = r->stopping;
    pthread_mutex_unlock(&r->mtx);
    if (e == NULL) return RL_ENOTFOUND;
    resp->u.heartbeat_resp.epoch = 0;
    resp->u.heartbeat_resp.stop = stop;
    resp->u.heartbeat_resp.has |= 1u << 2;
    return RL_OK;
}

static void run_usage(FILE *f)
{
    fprintf(f, "usage: ringleader run SPEC [--out DIR]\n\n"
               "Runs the job described by SPEC as its coordinator. With `launch: local` it\n"
               "starts one ringleader-node per spec node on this machine; with `launch: manual`\n"
               "it waits up to cluster.join_timeout_ms for the listed nodes to join.\n"
               "Exit codes: 0 ok, 1 the job failed, 2 bad spec or usage.\n");
}

int cmd_run(int argc, char **argv)
{
    const char *spec_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            run_usage(stdout);
            return RL_EXIT_OK;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            i++; /* the output directory: used once training writes run.json */
        } else if (argv[i][0] == '-' || spec_path != NULL) {
            run_usage(stderr);
            return RL_EXIT_USAGE;
        } else {
            spec_path = argv[i];
        }
    }
    if (spec_path == NULL) {
        run_usage(stderr);
        return RL_EXIT_USAGE;
    }
    rl_spec *spec = NULL;
    if (rl_spec_load(spec_path, &spec, stderr) != 0) return RL_EXIT_USAGE;
    rl_log_set_tag("coord");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);

    int rc = RL_EXIT_FAILED;
    rl_token token;
    rl_rpc_server *srv = NULL;
    launched nodes = {0};
    coord c = {.spec = spec};
    registry_init(&c.reg, spec);
    if (rl_token_load(spec->token_file, &token) != 0) {
        fprintf(stderr, "ringleader run: %s\n", rl_errdetail());
        rc = RL_EXIT_USAGE;
        goto out;
    }
    rl_tls_files tls = {spec->tls_cert, spec->tls_key, spec->tls_ca};
    rl_rpc_server_opts so = {.url = spec->coordinator, .tls = spec->tls_cert[0] ? &tls : NULL,
                             .token = &token, .name = spec->name};
    if (rl_rpc_server_new(&so, &srv) != 0 ||
        rl_rpc_server_handle(srv, RL_MSG_JOIN_REQ, handle_join, &c) != 0 ||
        rl_rpc_server_handle(srv, RL_MSG_HEARTBEAT_REQ, handle_heartbeat, &c) != 0 ||
        rl_rpc_server_start(srv) != 0) {
        fprintf(stderr, "ringleader run: coordinator cannot serve %s: %s\n", spec->coordinator,
                rl_errdetail());
        goto out;
    }
    rl_log_info("coordinator for job '%s' listening on %s (%d nodes, launch %s)", spec->name,
                rl_rpc_server_url(srv), spec->n_nodes, rl_launch_name(spec->launch));
    if (spec->launch == RL_LAUNCH_LOCAL) {
        char bin[4096];
        if (launch_find_node_bin(bin, sizeof(bin)) != 0) {
            fprintf(stderr, "ringleader run: cannot find ringleader-node (set "
                            "RINGLEADER_NODE_BIN)\n");
            goto out;
        }
        if (launch_nodes(spec, bin, &nodes) != 0) goto out;
    }
    uint64_t deadline = rl_clock_ms() + (uint64_t)spec->join_timeout_ms;
    int joined = 0;
    while (!interrupted && rl_clock_ms() < deadline && joined < spec->n_nodes) {
        uint64_t slice = rl_clock_ms() + 100;
        joined = registry_wait_joined(&c.reg, slice < deadline ? slice : deadline);
        if (nodes.n > 0 && launch_reap(&nodes) < spec->n_nodes - joined) {
            fprintf(stderr, "ringleader run: a local node exited before joining\n");
            break;
        }
    }
    if (interrupted) {
        fprintf(stderr, "ringleader run: interrupted\n");
    } else if (joined < spec->n_nodes) {
        fprintf(stderr, "ringleader run: only %d of %d nodes joined within %d ms:", joined,
                spec->n_nodes, spec->join_timeout_ms);
        pthread_mutex_lock(&c.reg.mtx);
        for (int i = 0; i < c.reg.n; i++)
            if (c.reg.nodes[i].state != NODE_JOINED) fprintf(stderr, " %s", c.reg.nodes[i].id);
        pthread_mutex_unlock(&c.reg.mtx);
        fprintf(stderr, " did not\n");
    } else {
        printf("cluster '%s': %d of %d nodes joined and authenticated at %s\n", spec->name,
               joined, spec->n_nodes, rl_rpc_server_url(srv));
        rc = RL_EXIT_OK;
    }
out:
    /* End the job: heartbeats answer stop; local nodes are stopped by PID. */
    pthread_mutex_lock(&c.reg.mtx);
    c.reg.stopping = true;
    pthread_cond_broadcast(&c.reg.cv);
    pthread_mutex_unlock(&c.reg.mtx);
    if (nodes.n > 0) {
        launch_stop(&nodes, spec->heartbeat_ms * 5 + 500);
        launch_free(&nodes);
    }
    rl_rpc_server_free(srv);
    registry_fini(&c.reg);
    rl_spec_free(spec);
    return rc;
}
