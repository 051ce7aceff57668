/*
 * monitor.c - the coordinator's HTTP monitor on nng's HTTP server (1.5):
 * one handler per path, each rendering from a snapshot of the job.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/tls/tls.h>

#include "dashboard.h"
#include "metrics.h"
#include "monitor.h"
#include "snapshot.h"
#include "ringleader/err.h"
#include "ringleader/mem.h"

/* The RPC methods, from proto/messages.def. */
static const rl_msg_type monitor_methods[] = {
#define MONITOR_METHOD(method, req, resp, auth, batch) RL_MSG_##req,
    RL_RPC_LIST(MONITOR_METHOD)
#undef MONITOR_METHOD
};
static const char *const monitor_method_names[] = {
#define MONITOR_METHOD_NAME(method, req, resp, auth, batch) #method,
    RL_RPC_LIST(MONITOR_METHOD_NAME)
#undef MONITOR_METHOD_NAME
};
#define MONITOR_N_METHODS (sizeof(monitor_methods) / sizeof(monitor_methods[0]))

struct monitor {
    job *job;
    rl_rpc_server *rpc;
    nng_http_server *http;
    bool auth; /* requests need the bearer token */
    rl_token token;
    char url[RL_URL_MAX];
    char method_names[MONITOR_N_METHODS][24]; /* lower case */
    pthread_mutex_t mtx;                      /* guards hists */
    snap_step_hists hists;
};

int monitor_authorized(const rl_token *required, const char *authorization)
{
    if (required == NULL) return 1;
    static const char scheme[] = "Bearer ";
    if (authorization == NULL || strncmp(authorization, scheme, strlen(scheme)) != 0) return 0;
    const char *t = authorization + strlen(scheme);
    size_t n = strlen(t);
    while (n > 0 && isspace((unsigned char)t[n - 1]))
        n--;
    if (n != required->len) return 0;
    unsigned char diff = 0; /* the same time whatever the first wrong byte */
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)t[i] ^ required->bytes[i];
    return diff == 0;
}

/* Answers aio with status and body (copied); 401 asks for the bearer token. */
static void monitor_reply(nng_aio *aio, uint16_t status, const char *type, const char *body,
                          size_t len)
{
    nng_http_res *res = NULL;
    int rv = status == NNG_HTTP_STATUS_OK ? nng_http_res_alloc(&res)
                                          : nng_http_res_alloc_error(&res, status);
    if (rv != 0) {
        nng_aio_finish(aio, rv);
        return;
    }
    if (status == NNG_HTTP_STATUS_UNAUTHORIZED)
        nng_http_res_set_header(res, "WWW-Authenticate", "Bearer realm=\"ringleader\"");
    if (status == NNG_HTTP_STATUS_OK) {
        nng_http_res_set_header(res, "Content-Type", type);
        nng_http_res_set_header(res, "Cache-Control", "no-store");
        if ((rv = nng_http_res_copy_data(res, body, len)) != 0) {
            nng_http_res_free(res);
            nng_aio_finish(aio, rv);
            return;
        }
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

/* The monitor of a handler's call, or NULL after answering 401. */
static monitor *monitor_of(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    monitor *m = nng_http_handler_get_data(h);
    if (!monitor_authorized(m->auth ? &m->token : NULL,
                            nng_http_req_get_header(req, "Authorization"))) {
        monitor_reply(aio, NNG_HTTP_STATUS_UNAUTHORIZED, NULL, NULL, 0);
        return NULL;
    }
    return m;
}

static void monitor_serve_metrics(nng_aio *aio)
{
    monitor *m = monitor_of(aio);
    if (m == NULL) return;
    metrics_rpc rpc[MONITOR_N_METHODS];
    size_t n_rpc = 0;
    for (size_t k = 0; m->rpc != NULL && k < MONITOR_N_METHODS; k++) {
        rpc[n_rpc].method = m->method_names[k];
        rl_rpc_server_metrics(m->rpc, monitor_methods[k], &rpc[n_rpc].m);
        n_rpc++;
    }
    job_snapshot s;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        monitor_reply(aio, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR, NULL, NULL, 0);
        return;
    }
    pthread_mutex_lock(&m->mtx);
    snapshot_take(m->job, &s, &m->hists);
    snap_step_hists hists = m->hists;
    pthread_mutex_unlock(&m->mtx);
    metrics_render(&s, &hists, rpc, n_rpc, f);
    snapshot_fini(&s);
    fclose(f);
    monitor_reply(aio, NNG_HTTP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static void monitor_serve_status(nng_aio *aio)
{
    monitor *m = monitor_of(aio);
    if (m == NULL) return;
    job_snapshot s;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        monitor_reply(aio, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR, NULL, NULL, 0);
        return;
    }
    snapshot_take(m->job, &s, NULL);
    snapshot_write_json(&s, f);
    snapshot_fini(&s);
    fclose(f);
    monitor_reply(aio, NNG_HTTP_STATUS_OK, "application/json", text, len);
    free(text);
}

static void monitor_serve_dashboard(nng_aio *aio)
{
    monitor *m = monitor_of(aio);
    if (m == NULL) return;
    monitor_reply(aio, NNG_HTTP_STATUS_OK, "text/html; charset=utf-8", dashboard_html,
                  dashboard_html_len);
}

static int monitor_handle(monitor *m, const char *path, void (*fn)(nng_aio *))
{
    nng_http_handler *h = NULL;
    int rv = nng_http_handler_alloc(&h, path, fn);
    if (rv == 0) rv = nng_http_handler_set_method(h, "GET");
    if (rv == 0) rv = nng_http_handler_set_data(h, m, NULL);
    if (rv == 0) rv = nng_http_server_add_handler(m->http, h);
    if (rv != 0 && h != NULL) nng_http_handler_free(h);
    return rv;
}

/* Reads a whole PEM file into a NUL-terminated heap string; NULL on error. */
static char *monitor_read_pem(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (1u << 20)) break; /* no PEM file is this large */
            buf = rl_xrealloc(buf, cap + 1);
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    bool bad = ferror(f) || cap > (1u << 20);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* https://: the cluster's certificate and key, and a client certificate
 * signed by the cluster's CA required of every client (nng's TLS). */
static int monitor_tls(monitor *m, const rl_spec *spec, char *why, size_t why_len)
{
    char *cert = monitor_read_pem(spec->tls_cert), *key = monitor_read_pem(spec->tls_key),
         *ca = monitor_read_pem(spec->tls_ca);
    nng_tls_config *cfg = NULL;
    int rv = NNG_ENOENT;
    const char *what = cert == NULL ? spec->tls_cert : key == NULL ? spec->tls_key : spec->tls_ca;
    if (cert != NULL && key != NULL && ca != NULL) {
        what = "security.tls";
        if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER)) == 0 &&
            (rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) == 0 &&
            (rv = nng_tls_config_ca_chain(cfg, ca, NULL)) == 0 &&
            (rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) == 0)
            rv = nng_http_server_set_tls(m->http, cfg);
    }
    if (rv != 0)
        snprintf(why, why_len, "monitor.listen %s: TLS with %s: %s", spec->monitor_listen, what,
                 nng_strerror(rv));
    if (cfg != NULL) nng_tls_config_free(cfg); /* the server holds its own reference */
    free(cert);
    if (key != NULL) memset(key, 0, strlen(key));
    free(key);
    free(ca);
    return rv == 0 ? 0 : -1;
}

static bool monitor_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

int monitor_start(job *j, rl_rpc_server *srv, const rl_token *cluster, monitor **out, char *why,
                  size_t why_len)
{
    const rl_spec *spec = j->spec;
    const char *listen = spec->monitor_listen;
    *out = NULL;
    monitor *m = rl_xcalloc(1, sizeof(*m));
    m->job = j;
    m->rpc = srv;
    pthread_mutex_init(&m->mtx, NULL);
    for (size_t k = 0; k < MONITOR_N_METHODS; k++) {
        snprintf(m->method_names[k], sizeof(m->method_names[k]), "%s", monitor_method_names[k]);
        for (char *p = m->method_names[k]; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    nng_url *u = NULL;
    int rv = nng_url_parse(&u, listen);
    if (rv != 0) {
        snprintf(why, why_len, "monitor.listen '%s': %s", listen, nng_strerror(rv));
        goto fail;
    }
    bool https = strcmp(u->u_scheme, "https") == 0;
    m->auth = !https && !monitor_loopback(u->u_hostname); /* https: the client certificate */
    if (m->auth && spec->monitor_token_file[0] != '\0') {
        if (rl_token_load(spec->monitor_token_file, &m->token) != RL_OK) {
            snprintf(why, why_len, "monitor.token_file: %s", rl_errdetail());
            goto fail;
        }
    } else if (m->auth) {
        m->token = *cluster;
    }
    if ((rv = nng_http_server_hold(&m->http, u)) != 0) {
        snprintf(why, why_len, "monitor.listen %s: %s", listen, nng_strerror(rv));
        goto fail;
    }
    if (https && monitor_tls(m, spec, why, why_len) != 0) goto fail;
    if ((rv = monitor_handle(m, "/metrics", monitor_serve_metrics)) != 0 ||
        (rv = monitor_handle(m, "/api/status", monitor_serve_status)) != 0 ||
        (rv = monitor_handle(m, "/", monitor_serve_dashboard)) != 0) {
        snprintf(why, why_len, "monitor.listen %s: cannot add a handler: %s", listen,
                 nng_strerror(rv));
        goto fail;
    }
    if ((rv = nng_http_server_start(m->http)) != 0) {
        snprintf(why, why_len, "monitor.listen %s: cannot listen: %s%s", listen, nng_strerror(rv),
                 rv == NNG_EADDRINUSE ? " (another coordinator's monitor? choose another port, "
                                        "or port 0 for any free one)"
                                      : "");
        goto fail;
    }
    nng_sockaddr sa;
    uint16_t port = 0;
    if (nng_http_server_get_addr(m->http, &sa) == 0)
        port = sa.s_family == NNG_AF_INET6 ? sa.s_in6.sa_port : sa.s_in.sa_port;
    port = ntohs(port);
    if (u->u_host[0] == '[')
        snprintf(m->url, sizeof(m->url), "%s://[%s]:%u", u->u_scheme, u->u_hostname,
                 (unsigned)port);
    else
        snprintf(m->url, sizeof(m->url), "%s://%s:%u", u->u_scheme, u->u_hostname, (unsigned)port);
    nng_url_free(u);
    *out = m;
    return 0;
fail:
    nng_url_free(u);
    if (m->http != NULL) nng_http_server_release(m->http);
    pthread_mutex_destroy(&m->mtx);
    memset(&m->token, 0, sizeof(m->token));
    free(m);
    return -1;
}

const char *monitor_url(const monitor *m)
{
    return m->url;
}

void monitor_stop(monitor *m)
{
    if (m == NULL) return;
    nng_http_server_stop(m->http);
    nng_http_server_release(m->http);
    pthread_mutex_destroy(&m->mtx);
    memset(&m->token, 0, sizeof(m->token));
    free(m);
}
