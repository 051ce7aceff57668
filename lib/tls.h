/* tls.h - building nng TLS configurations from PEM files (internal). */
#ifndef RINGLEADER_TLS_H
#define RINGLEADER_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "ringleader/ring.h"

/* True if url's scheme is tls+tcp. */
bool rli_url_is_tls(const char *url);

/*
 * The host and port of scheme://HOST:PORT[/...] (an IPv6 host loses its
 * brackets). RL_EINVAL if url has no host or does not fit. Pure.
 */
int rli_url_host(const char *url, char *host, size_t host_cap, char *port, size_t port_cap);

/*
 * A new TLS config (server or client) from files: own certificate and key,
 * and the CA that peers' certificates must chain to (peer authentication
 * required both ways). A client config made for url also checks that the
 * peer's certificate names url's host (unless files->skip_hostname_check).
 * url is ignored for a server config. The caller frees it with
 * nng_tls_config_free.
 */
int rli_tls_config_new(const rl_tls_files *files, bool server, const char *url,
                       nng_tls_config **out);

/* The client side's PEM texts, kept to make one config per dialled host. */
typedef struct rli_tls_client rli_tls_client;
int rli_tls_client_new(const rl_tls_files *files, rli_tls_client **out);
int rli_tls_client_config(const rli_tls_client *c, const char *url, nng_tls_config **out);
void rli_tls_client_free(rli_tls_client *c);

/*
 * Why a TLS dial to url failed, when the peer's certificate is the cause:
 * connects once more (bounded by timeout_ms) only to read the certificate,
 * and returns RL_EAUTH with a message naming url, the dialled host and the
 * names the certificate holds (see docs/operations.md, "Certificates and
 * tokens for your own hosts"). RL_OK when the certificate is acceptable or
 * the peer cannot be reached: the caller keeps its own error then.
 */
int rli_tls_explain(const rli_tls_client *c, const char *url, int timeout_ms);
int rli_tls_explain_files(const rl_tls_files *files, const char *url, int timeout_ms);

#endif
