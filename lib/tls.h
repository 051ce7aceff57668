/* tls.h - building nng TLS configurations from PEM files (internal). */
#ifndef RINGLEADER_TLS_H
#define RINGLEADER_TLS_H

#include <stdbool.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "ringleader/ring.h"

/* True if url's scheme is tls+tcp. */
bool rli_url_is_tls(const char *url);

/*
 * A new TLS config (server or client) from files: own certificate and key,
 * and the CA that peers' certificates must chain to (peer authentication
 * required both ways). The caller frees it with nng_tls_config_free.
 */
int rli_tls_config_new(const rl_tls_files *files, bool server, nng_tls_config **out);

#endif
