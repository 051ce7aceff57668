/*
 * cmd_run.c - `ringleader run SPEC`: the coordinator. It serves the cluster's
 * RPC (authenticated), starts the nodes itself with `launch: local` or waits
 * for them with `launch: manual`, hands out the plan, follows the steps, and
 * writes run.json. Ctrl-C stops the run cleanly and still writes what it
 * has; local nodes are always stopped by PID.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

#include "checkpoint.h"
#include "cli.h"
#include "job.h"
#include "launch.h"
#include "monitor.h"
#include "ringleader/err.h"
#include "ringleader/log.h"
#include "ringleader/mem.h"
#include "ringleader/rpc.h"
#include "ringleader/spec.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void run_usage(FILE *f)
{
    fprintf(f, "usage: ringleader run SPEC [--nodes N] [--out DIR] [--baseline RUN_JSON] "
               "[--resume]\n\n"
               "Runs the job described by SPEC as its coordinator. With `launch: local` it\n"
               "starts one ringleader-node per spec node on this machine; with `launch: manual`\n"
               "it waits up to cluster.join_timeout_ms for the listed nodes to join, and\n"
               "starts without the missing ones if at least cluster.min_nodes joined.\n"
               "--nodes N (launch: local only): instead of the spec's nodes, N nodes n1..nN on\n"
               "this machine, each on a free port.\n"
               "Writes DIR/run.json (default: output.dir of the spec).\n"
               "--baseline: the run.json of the same job on 1 node (or any baseline); run.json\n"
               "then carries speedup = its median step time / this run's.\n"
               "The coordinator writes DIR/checkpoint.rlc every output.checkpoint_every_ms\n"
               "and at the end (the one before is kept as DIR/checkpoint.prev.rlc).\n"
               "--resume: continue the job from DIR's newest good checkpoint (the previous\n"
               "one if the newest is refused); the spec must be the same file.\n"
               "Exit codes: 0 ok, 1 the job failed, 2 bad spec or usage.\n");
}

/* While nodes are awaited: who is missing, every RUN_WAIT_LOG_MS. */
#define RUN_WAIT_LOG_MS 2000

static void log_waiting(job *j)
{
    char missing[600];
    int joined = registry_missing(&j->reg, missing, sizeof(missing));
    rl_log_info("waiting for nodes: %s; %d of %d joined", missing, joined, j->reg.n);
}

/* Program mode, launch local: tells the job of every program that ended
 * since the last look (each once: seen), and that all have when none runs. */
static void watch_programs(job *j, launched *progs, bool *seen)
{
    int running = launch_reap(progs);
    for (int i = 0; i < progs->n; i++) {
        if (progs->pids[i] != 0 || seen[i]) continue;
        seen[i] = true;
        char tail[LAUNCH_TAIL_BYTES];
        /* the copier may still hold the last lines: a moment for the pipe */
        uint64_t until = rl_clock_ms() + 200;
        while (progs->err_fd[i] >= 0 && rl_clock_ms() < until) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL); /* bounded by until */
        }
        launch_stderr_tail(progs, i, tail, sizeof(tail));
        job_program_exited(j, i, progs->status[i], tail);
    }
    if (running == 0) job_programs_ended(j);
}

/* Waits until the job leaves `while_status` or deadline; prints progress. */
static void follow(job *j, job_status while_status, uint64_t deadline, launched *nodes,
                   bool *seen)
{
    uint64_t next_log = rl_clock_ms() + RUN_WAIT_LOG_MS;
    while (!interrupted && rl_clock_ms() < deadline) {
        pthread_mutex_lock(&j->reg.mtx);
        job_status st = j->status;
        int joined = 0;
        for (int i = 0; i < j->reg.n; i++)
            if (j->reg.nodes[i].state == NODE_JOINED) joined++;
        pthread_mutex_unlock(&j->reg.mtx);
        if (st != while_status || (st == JOB_WAITING && joined == j->reg.n)) break;
        if (j->program && nodes->n > 0) watch_programs(j, nodes, seen);
        if (st == JOB_WAITING && rl_clock_ms() >= next_log) {
            log_waiting(j);
            next_log += RUN_WAIT_LOG_MS;
        }
        if (st == JOB_RUNNING) {
            job_progress(j, false);
            job_check_complete(j, 2000);
            job_tick(j);
        }
        if (!j->program && st == JOB_WAITING && nodes->n > 0 && launch_reap(nodes) < nodes->n) {
            job_finish(j, JOB_FAILED, "a local node exited before the job started");
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL); /* the progress and failure-detection tick */
    }
}

/* Manual nodes still to hear the job's end: programs that have not left,
 * built-in nodes whose connection is open. */
static int manual_nodes_connected(job *j)
{
    int n = 0;
    pthread_mutex_lock(&j->reg.mtx);
    for (int i = 0; i < j->reg.n; i++)
        if (j->reg.nodes[i].state == NODE_JOINED && (j->program || j->reg.nodes[i].connected)) n++;
    pthread_mutex_unlock(&j->reg.mtx);
    return n;
}

/* A fresh run with launch: local: nodes an earlier coordinator of this
 * spec left running (re-dialing it, lib/agent.c) hold the nodes' ring
 * addresses; they are stopped by PID before the job's own start. */
static void stop_leftovers(const rl_spec *spec, const char *why)
{
    pid_t *pids = rl_xcalloc((size_t)spec->n_nodes + 1, sizeof(pid_t));
    launch_find_running(spec, pids);
    for (int i = 0; i < spec->n_nodes; i++)
        if (pids[i] > 0) {
            rl_log_warn("node %s (pid %d) was left running by an earlier coordinator of this "
                        "job: stopping it (%s)",
                        spec->nodes[i].id, (int)pids[i], why);
            launch_kill_wait(pids[i], 2000);
        }
    free(pids);
}

/*
 * --resume with launch: local: the nodes the earlier coordinator started and
 * that still run (they re-dial it for coordinator_grace_ms, lib/agent.c) are
 * given until failure_timeout_ms plus SURVIVOR_WAIT_MS to join this one, and
 * kept; one that does not join by then is stopped by its PID (it holds the
 * node's ring address), and is started afresh with the nodes not running.
 * Returns the PIDs to keep, indexed like the spec's nodes (0: start one).
 */
#define SURVIVOR_WAIT_MS 3000
static pid_t *await_survivors(job *j)
{
    const rl_spec *spec = j->spec;
    pid_t *pids = rl_xcalloc((size_t)spec->n_nodes + 1, sizeof(pid_t));
    int found = launch_find_running(spec, pids);
    if (found == 0) return pids;
    rl_log_info("%d node%s of the earlier coordinator still running: waiting for them to join",
                found, found == 1 ? "" : "s");
    uint64_t until = rl_clock_ms() + (uint64_t)spec->failure_timeout_ms + SURVIVOR_WAIT_MS;
    for (;;) {
        int missing = 0;
        pthread_mutex_lock(&j->reg.mtx);
        for (int i = 0; i < spec->n_nodes; i++)
            if (pids[i] > 0 && j->reg.nodes[i].state != NODE_JOINED) missing++;
        pthread_mutex_unlock(&j->reg.mtx);
        if (missing == 0 || rl_clock_ms() >= until || interrupted) break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling the registry, bounded by until */
    }
    bool *late = rl_xcalloc((size_t)spec->n_nodes + 1, sizeof(bool));
    pthread_mutex_lock(&j->reg.mtx);
    for (int i = 0; i < spec->n_nodes; i++)
        late[i] = pids[i] > 0 && j->reg.nodes[i].state != NODE_JOINED;
    pthread_mutex_unlock(&j->reg.mtx);
    for (int i = 0; i < spec->n_nodes; i++)
        if (late[i]) { /* outside the job lock: this waits for the process to go */
            rl_log_warn("node %s (pid %d) of the earlier coordinator did not join within %d ms: "
                        "stopping it and starting it afresh",
                        spec->nodes[i].id, (int)pids[i],
                        spec->failure_timeout_ms + SURVIVOR_WAIT_MS);
            launch_kill_wait(pids[i], 2000);
            pids[i] = 0;
        }
    free(late);
    return pids;
}

/* The join window is over (or every node joined): true when at least
 * cluster.min_nodes have joined, and the job starts with them (the others
 * join the running job when they come); else the job fails naming the
 * missing nodes. */
static bool enough_joined(job *j, rl_rpc_server *srv)
{
    const rl_spec *spec = j->spec;
    char missing[600];
    int joined = registry_missing(&j->reg, missing, sizeof(missing));
    if (joined < spec->min_nodes || joined == 0) {
        char why[800];
        snprintf(why, sizeof(why),
                 "only %d of %d nodes joined within %d ms (cluster.min_nodes %d): %s did not",
                 joined, spec->n_nodes, spec->join_timeout_ms, spec->min_nodes, missing);
        fprintf(stderr, "ringleader run: %s\n", why);
        job_finish(j, JOB_FAILED, why);
        return false;
    }
    printf("cluster '%s': %d of %d nodes joined and authenticated at %s\n", spec->name, joined,
           spec->n_nodes, rl_rpc_server_url(srv));
    if (joined < spec->n_nodes)
        printf("starting without %s (at least cluster.min_nodes %d joined within %d ms); "
               "they join the running job when they come\n",
               missing, spec->min_nodes, spec->join_timeout_ms);
    fflush(stdout);
    return true;
}

typedef struct run_opts {
    const char *spec_path, *out_dir, *baseline;
    int nodes;   /* --nodes N; 0: the spec's nodes */
    bool resume; /* --resume */
} run_opts;

/* Parses argv; on a mistake says what (naming the option) and returns -1. */
static int run_parse(int argc, char **argv, run_opts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (o->spec_path != NULL) {
                fprintf(stderr, "ringleader run: one SPEC only ('%s' and '%s')\n", o->spec_path, a);
                return -1;
            }
            o->spec_path = a;
            continue;
        }
        if (strcmp(a, "--resume") == 0) {
            o->resume = true;
            continue;
        }
        if (strcmp(a, "--out") != 0 && strcmp(a, "--baseline") != 0 && strcmp(a, "--nodes") != 0) {
            fprintf(stderr, "ringleader run: unknown option %s\n", a);
            return -1;
        }
        if (v == NULL) {
            fprintf(stderr, "ringleader run: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--out") == 0) {
            o->out_dir = v;
        } else if (strcmp(a, "--baseline") == 0) {
            o->baseline = v;
        } else {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end != '\0' || end == v || n < 1 || n > RL_SPEC_MAX_NODES) {
                fprintf(stderr, "ringleader run: --nodes wants 1..%d, not '%s'\n",
                        RL_SPEC_MAX_NODES, v);
                return -1;
            }
            o->nodes = (int)n;
        }
    }
    if (o->spec_path == NULL) {
        fprintf(stderr, "ringleader run: the SPEC is required\n");
        return -1;
    }
    return 0;
}

int cmd_run(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        run_usage(stdout);
        return RL_EXIT_OK;
    }
    run_opts o;
    if (run_parse(argc, argv, &o) != 0) {
        run_usage(stderr);
        return RL_EXIT_USAGE;
    }
    const char *spec_path = o.spec_path, *out_dir = o.out_dir, *baseline = o.baseline;
    double base_ms = 0;
    int base_nodes = 0;
    if (baseline != NULL && rl_run_json_step_ms(baseline, &base_ms, &base_nodes) != RL_OK) {
        fprintf(stderr, "ringleader run: --baseline: %s\n", rl_errdetail());
        return RL_EXIT_USAGE;
    }
    rl_spec *spec = NULL;
    if (rl_spec_load(spec_path, &spec, stderr) != 0) return RL_EXIT_USAGE;
    if (o.nodes > 0 && rl_spec_set_local_nodes(spec, o.nodes) != RL_OK) {
        fprintf(stderr, "ringleader run: %s\n", rl_errdetail());
        rl_spec_free(spec);
        return RL_EXIT_USAGE;
    }
    if (out_dir == NULL) out_dir = spec->out_dir;
    uint64_t spec_hash = 0, incarnation = 0;
    if (ckpt_spec_hash(spec, &spec_hash) != RL_OK) {
        rl_spec_free(spec);
        return RL_EXIT_USAGE;
    }
    if (getrandom(&incarnation, sizeof(incarnation), 0) != (ssize_t)sizeof(incarnation)) {
        fprintf(stderr, "ringleader run: getrandom: %s\n", strerror(errno));
        rl_spec_free(spec);
        return RL_EXIT_USAGE;
    }
    if (o.resume && spec->program_argv.n > 0) {
        fprintf(stderr, "ringleader run: --resume: a program job (program:) keeps its own state; "
                        "the coordinator has no checkpoint of it\n");
        rl_spec_free(spec);
        return RL_EXIT_USAGE;
    }
    rl_log_set_tag("coord");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);

    uint64_t t_start = rl_clock_ms();
    int rc = RL_EXIT_FAILED;
    rl_token token;
    rl_rpc_server *srv = NULL;
    monitor *mon = NULL;
    launched nodes = {0};
    bool *seen = rl_xcalloc((size_t)spec->n_nodes + 1, sizeof(bool)); /* programs ended */
    job j;
    ckpt_writer ckpt;
    bool resume_done = false; /* --resume of a job its checkpoint says is complete */
    int init_rv = job_init(&j, spec);
    j.incarnation = incarnation;
    j.spec_hash = spec_hash;
    j.baseline_path = baseline;
    j.baseline_step_ms = base_ms;
    j.baseline_nodes = base_nodes;
    if (init_rv != RL_OK) {
        fprintf(stderr, "ringleader run: %s\n", rl_errdetail());
        job_finish(&j, JOB_FAILED, rl_errdetail());
        goto report;
    }
    if (o.resume) {
        rl_checkpoint c;
        char from[4200];
        int rv = ckpt_load_newest(out_dir, spec_hash, &c, from, sizeof(from));
        if (rv == RL_OK) rv = ckpt_restore(&j, &c, from);
        rl_checkpoint_fini(&c);
        if (rv != RL_OK) {
            job_fini(&j);
            rl_spec_free(spec);
            free(seen);
            return RL_EXIT_FAILED;
        }
        printf("resuming job '%s' from %s at step %llu of %d\n", spec->name, from,
               (unsigned long long)j.model_step, spec->steps);
        fflush(stdout);
        resume_done = j.model_step == (uint64_t)spec->steps;
    }
    if (rl_token_load(spec->token_file, &token) != 0) {
        fprintf(stderr, "ringleader run: %s\n", rl_errdetail());
        job_fini(&j);
        rl_spec_free(spec);
        free(seen);
        return RL_EXIT_USAGE;
    }
    ckpt_writer_start(&ckpt, &j, out_dir, spec_hash, incarnation,
                      j.program || spec->checkpoint_every_ms == 0 ? -1 : spec->checkpoint_every_ms);
    if (resume_done) {
        if (spec->launch == RL_LAUNCH_LOCAL)
            stop_leftovers(spec, "the job is complete: nothing to re-admit");
        printf("the job was complete at that checkpoint: nothing to run\n");
        job_finish(&j, JOB_DONE, NULL);
        goto checkpoint;
    }
    rl_tls_files tls = {spec->tls_cert, spec->tls_key, spec->tls_ca};
    rl_rpc_server_opts so = {.url = spec->coordinator,
                             .tls = spec->tls_cert[0] ? &tls : NULL,
                             .token = &token,
                             .name = spec->name};
    if (rl_rpc_server_new(&so, &srv) == 0) rl_rpc_server_on_disconnect(srv, job_on_disconnect, &j);
    if (srv == NULL || job_serve(&j, srv) != 0 || rl_rpc_server_start(srv) != 0) {
        fprintf(stderr, "ringleader run: coordinator cannot serve %s: %s\n", spec->coordinator,
                rl_errdetail());
        job_finish(&j, JOB_FAILED, rl_errdetail());
        goto checkpoint;
    }
    rl_log_info("coordinator for job '%s' listening on %s (%d nodes, launch %s)", spec->name,
                rl_rpc_server_url(srv), spec->n_nodes, rl_launch_name(spec->launch));
    if (spec->monitor_listen[0] != '\0') {
        char why[600];
        if (monitor_start(&j, srv, &token, &mon, why, sizeof(why)) != 0) {
            fprintf(stderr, "ringleader run: %s\n", why);
            job_finish(&j, JOB_FAILED, why);
            goto stop;
        }
        rl_log_info("monitor at %s (dashboard at /, /metrics, /api/status)", monitor_url(mon));
    }
    if (spec->launch == RL_LAUNCH_LOCAL && j.program) {
        if (launch_programs(spec, &nodes) != 0) {
            job_finish(&j, JOB_FAILED, "cannot start the programs");
            goto stop;
        }
    } else if (spec->launch == RL_LAUNCH_LOCAL) {
        char bin[4096];
        if (launch_find_node_bin(bin, sizeof(bin)) != 0) {
            job_finish(&j, JOB_FAILED, "cannot find ringleader-node (set RINGLEADER_NODE_BIN)");
            goto stop;
        }
        pid_t *adopt = NULL;
        if (o.resume) adopt = await_survivors(&j);
        else stop_leftovers(spec, "ringleader run --resume would have kept it");
        int lrv = launch_nodes(spec, bin, adopt, &nodes);
        free(adopt);
        if (lrv != 0) {
            job_finish(&j, JOB_FAILED, "cannot start the local nodes");
            goto stop;
        }
    }
    follow(&j, JOB_WAITING, rl_clock_ms() + (uint64_t)spec->join_timeout_ms, &nodes, seen);
    if (interrupted) {
        job_interrupt(&j);
        goto stop;
    }
    if (!enough_joined(&j, srv)) goto stop;
    job_start(&j);
    follow(&j, JOB_RUNNING, UINT64_MAX, &nodes, seen);
    if (interrupted) job_interrupt(&j);
    if (j.program && spec->launch == RL_LAUNCH_MANUAL) job_wait_exits(&j, 2000);
    job_progress(&j, true);
stop:
    job_finish(&j, JOB_FAILED, "stopped");
    if (nodes.n > 0) {
        /* Nodes leave on their own once told to stop; then by signal, by PID. */
        uint64_t grace = rl_clock_ms() + (uint64_t)spec->heartbeat_ms * 3 + 1000;
        while (launch_reap(&nodes) > 0 && rl_clock_ms() < grace) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL); /* bounded by grace */
        }
        launch_stop(&nodes, 1000);
        launch_free(&nodes);
    } else {
        /* Manual nodes and programs hear the end from their heartbeats'
         * replies: serve them a few heartbeats more (bounded) rather than
         * let them find the coordinator gone, which a node takes for a
         * coordinator to re-dial (lib/agent.c). */
        uint64_t grace = rl_clock_ms() + (uint64_t)spec->heartbeat_ms * 3 + 500;
        while (manual_nodes_connected(&j) > 0 && rl_clock_ms() < grace) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL); /* bounded by grace */
        }
    }
    monitor_stop(mon);
    rl_rpc_server_free(srv);
checkpoint:
    ckpt_writer_finish(&ckpt);
report:
    /* resumed: the job's time so far, from its first start (less the time
     * no coordinator ran) */
    if (o.resume) t_start = j.t0_ms;
    if (job_write_report(&j, out_dir, spec_path, (double)(rl_clock_ms() - t_start) / 1e3) ==
        RL_OK)
        printf("%s: %s/run.json\n",
               j.status == JOB_DONE ? "trained"
               : j.interrupted      ? "interrupted"
                                    : "failed",
               out_dir);
    if (j.status == JOB_DONE) {
        rc = RL_EXIT_OK;
    } else if (j.interrupted) {
        fprintf(stderr, "ringleader run: %s; run.json keeps the model of that step%s\n", j.error,
                j.model_step > 0 ? " (predict can use it)" : "");
    } else {
        fprintf(stderr, "ringleader run: job failed: %s\n", j.error);
    }
    job_fini(&j);
    rl_spec_free(spec);
    free(seen);
    return rc;
}
