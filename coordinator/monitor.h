/*
 * monitor.h - the coordinator's HTTP monitor (spec key `monitor`), on nng's
 * HTTP server: /metrics (Prometheus), /api/status (the status document,
 * JSON) and the live dashboard at /. Read-only. Its handlers run on nng's
 * threads and hold the job's lock only to copy a snapshot.
 *
 * On an address other than loopback every request must carry
 * `Authorization: Bearer TOKEN` (monitor.token_file's token, else the
 * cluster's); a missing or wrong one gets 401.
 */
#ifndef RL_MONITOR_H
#define RL_MONITOR_H

#include <stddef.h>

#include "job.h"
#include "ringleader/rpc.h"

typedef struct monitor monitor;

/* Starts serving j (and srv's RPC figures; srv may be NULL) at the spec's
 * monitor.listen; cluster is the cluster token. Returns 0 and sets *out,
 * or -1 with why (naming the key and the address: in use, not
 * resolvable, unreadable token file). */
int monitor_start(job *j, rl_rpc_server *srv, const rl_token *cluster, monitor **out, char *why,
                  size_t why_len);
/* The URL it serves, the bound port filled in for port 0. */
const char *monitor_url(const monitor *m);
/* True if a request carrying header authorization (may be NULL) may read:
 * always when no token is required. A pure function, for the unit test. */
int monitor_authorized(const rl_token *required, const char *authorization);
/* Stops serving (requests in flight end first) and frees m (NULL is fine). */
void monitor_stop(monitor *m);

#endif
