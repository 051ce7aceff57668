/*
 * cmd_status.c - `ringleader status URL|SPEC`: asks a running coordinator for
 * its job's state (the STATUS method) and prints the text it answers. Given
 * a spec, the coordinator's URL, the token file and the TLS files come from
 * it (options still override them).
 *
 * STATUS is an authenticated method, so this client proves the cluster
 * token like a node does (peer id "status-cli"). Connecting, the
 * handshake and the call share one deadline: an unreachable coordinator is
 * an error after --timeout-ms, never a hang.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ringleader/err.h"
#include "ringleader/log.h"
#include "ringleader/mem.h"
#include "ringleader/ring.h"
#include "ringleader/rpc.h"
#include "ringleader/spec.h"

static void status_usage(FILE *f)
{
    fprintf(f, "usage: ringleader status URL|SPEC [--json] [--watch] [--token-file F]\n"
               "                              [--timeout-ms MS]\n"
               "                              [--tls-cert F --tls-key F --tls-ca F]\n"
               "                              [--tls-verify-hostname true|false]\n\n"
               "Prints the state of the job run by the coordinator at URL (the spec's\n"
               "cluster.coordinator): its status, step and loss, and every node with its\n"
               "state, blocks, load and ring endpoint. The cluster token comes from\n"
               "--token-file or $RINGLEADER_TOKEN. Given a SPEC file instead of a URL, the URL,\n"
               "token file and TLS files are the spec's (the options override them).\n"
               "--json: the status document as JSON (the monitor's /api/status).\n"
               "--watch: asks again every second and redraws, like top, until Ctrl-C or the\n"
               "job's coordinator exits.\n"
               "Gives up after --timeout-ms (default 3000).\n"
               "Exit codes: 0 ok, 1 unreachable, refused or timed out, 2 bad usage or token.\n");
}

typedef struct status_opts {
    const char *url, *token_file; /* url: a URL, or a spec's path */
    rl_tls_files tls;
    long timeout_ms;
    bool verify_given; /* --tls-verify-hostname was given (else the spec's, or true) */
    bool json, watch;
} status_opts;

static int status_parse(int argc, char **argv, status_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->timeout_ms = 3000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (o->url != NULL) {
                fprintf(stderr, "ringleader status: one URL or SPEC only ('%s')\n", a);
                return -1;
            }
            o->url = a;
            continue;
        }
        if (strcmp(a, "--json") == 0 || strcmp(a, "--watch") == 0) {
            if (strcmp(a, "--json") == 0)
                o->json = true;
            else
                o->watch = true;
            continue;
        }
        if (strcmp(a, "--token-file") != 0 && strcmp(a, "--tls-cert") != 0 &&
            strcmp(a, "--tls-key") != 0 && strcmp(a, "--tls-ca") != 0 &&
            strcmp(a, "--timeout-ms") != 0 && strcmp(a, "--tls-verify-hostname") != 0) {
            fprintf(stderr, "ringleader status: unknown option %s\n", a);
            return -1;
        }
        if (v == NULL) {
            fprintf(stderr, "ringleader status: %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--token-file") == 0) {
            o->token_file = v;
        } else if (strcmp(a, "--tls-cert") == 0) {
            o->tls.cert = v;
        } else if (strcmp(a, "--tls-key") == 0) {
            o->tls.key = v;
        } else if (strcmp(a, "--tls-ca") == 0) {
            o->tls.ca = v;
        } else if (strcmp(a, "--tls-verify-hostname") == 0) {
            if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
                fprintf(stderr, "ringleader status: --tls-verify-hostname wants true or false, "
                                "not '%s'\n", v);
                return -1;
            }
            o->tls.skip_hostname_check = strcmp(v, "false") == 0;
            o->verify_given = true;
        } else if (strcmp(a, "--timeout-ms") == 0) {
            char *end;
            o->timeout_ms = strtol(v, &end, 10);
            if (*end != '\0' || o->timeout_ms <= 0 || o->timeout_ms > 3600000) {
                fprintf(stderr, "ringleader status: --timeout-ms wants 1..3600000, not '%s'\n", v);
                return -1;
            }
        }
        i++;
    }
    if (o->url == NULL) {
        fprintf(stderr,
                "ringleader status: the coordinator's URL (or the job's SPEC) is required\n");
        return -1;
    }
    return 0;
}

/* An argument with "://" is a URL; anything else names a spec. */
static int status_is_url(const char *a)
{
    return strstr(a, "://") != NULL;
}

/* Takes the URL, and what the options leave unset, from the spec at o->url.
 * The spec is kept in *spec (its strings back o) until the caller frees it. */
static int status_from_spec(status_opts *o, rl_spec **spec)
{
    if (rl_spec_load(o->url, spec, stderr) != RL_OK) {
        fprintf(stderr, "ringleader status: %s: not a URL, and not a valid spec\n", o->url);
        return -1;
    }
    const rl_spec *s = *spec;
    o->url = s->coordinator;
    if (o->token_file == NULL && s->token_file[0] != '\0') o->token_file = s->token_file;
    if (o->tls.cert == NULL && s->tls_cert[0] != '\0') {
        o->tls.cert = s->tls_cert;
        if (o->tls.key == NULL) o->tls.key = s->tls_key;
        if (o->tls.ca == NULL) o->tls.ca = s->tls_ca;
    }
    if (!o->verify_given) o->tls.skip_hostname_check = !s->tls_verify_hostname;
    return 0;
}

static volatile sig_atomic_t status_stop;

static void status_on_interrupt(int sig)
{
    (void)sig;
    status_stop = 1;
}

/* One STATUS call; prints the answer (after clearing the screen when
 * watching). An exit code. */
static int status_call(rl_rpc_client *c, const status_opts *o)
{
    rl_msg req;
    rl_rpc_reply rep;
    rl_msg_init(&req, RL_MSG_STATUS_REQ);
    if (o->json) req.u.status_req.format = rl_xstrdup("json");
    int rv = rl_rpc_call(c, &req, &rep, rl_clock_ms() + (uint64_t)o->timeout_ms);
    rl_msg_fini(&req);
    int rc = RL_EXIT_FAILED;
    if (rv != RL_OK) {
        fprintf(stderr, "ringleader status: STATUS call to %s failed: %s: %s\n", o->url,
                rl_strerror(rv), rl_errdetail());
    } else {
        const char *text = rep.msg.u.status_resp.text ? rep.msg.u.status_resp.text : "";
        size_t n = strlen(text);
        if (o->watch && isatty(STDOUT_FILENO)) fputs("\033[H\033[2J", stdout);
        fputs(text, stdout);
        if (n == 0 || text[n - 1] != '\n') fputc('\n', stdout);
        rc = fflush(stdout) == 0 ? RL_EXIT_OK : RL_EXIT_FAILED;
    }
    rl_rpc_reply_fini(&rep);
    return rc;
}

/* Connects, calls STATUS and prints the answer (every second with --watch,
 * until Ctrl-C or a call fails); an exit code. */
static int status_query(status_opts o)
{
    rl_token token;
    if (rl_token_load(o.token_file, &token) != RL_OK) {
        fprintf(stderr, "ringleader status: %s\n", rl_errdetail());
        return RL_EXIT_USAGE;
    }
    rl_log_set_tag("status");
    uint64_t deadline = rl_clock_ms() + (uint64_t)o.timeout_ms;
    rl_rpc_client_opts co = {
        .url = o.url, .tls = o.tls.cert ? &o.tls : NULL, .token = &token, .peer_id = "status-cli"};
    rl_rpc_client *c = NULL;
    int rv = rl_rpc_client_open(&co, deadline, &c);
    if (rv == RL_EAUTH) {
        fprintf(stderr,
                "ringleader status: authentication with %s failed (is the token the "
                "cluster's?): %s\n",
                o.url, rl_errdetail());
        return RL_EXIT_FAILED;
    }
    if (rv == RL_ECONFIG) { /* e.g. a certificate not for the host dialled */
        fprintf(stderr, "ringleader status: %s\n", rl_errdetail());
        return RL_EXIT_FAILED;
    }
    if (rv != RL_OK) {
        fprintf(stderr, "ringleader status: cannot reach a coordinator at %s within %ld ms: %s\n",
                o.url, o.timeout_ms, rl_errdetail());
        return RL_EXIT_FAILED;
    }
    int rc = status_call(c, &o);
    if (o.watch) {
        signal(SIGINT, status_on_interrupt);
        signal(SIGTERM, status_on_interrupt);
        while (rc == RL_EXIT_OK && !status_stop) {
            uint64_t next = rl_clock_ms() + 1000;
            while (!status_stop && rl_clock_ms() < next) {
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL); /* the redraw period, bounded by next */
            }
            if (!status_stop) rc = status_call(c, &o);
        }
        if (status_stop) rc = RL_EXIT_OK;
    }
    rl_rpc_client_close(c);
    return rc;
}

int cmd_status(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        status_usage(stdout);
        return RL_EXIT_OK;
    }
    status_opts o;
    if (status_parse(argc, argv, &o) != 0) {
        status_usage(stderr);
        return RL_EXIT_USAGE;
    }
    rl_spec *spec = NULL;
    if (!status_is_url(o.url) && status_from_spec(&o, &spec) != 0) return RL_EXIT_USAGE;
    int rc = status_query(o);
    rl_spec_free(spec);
    return rc;
}
