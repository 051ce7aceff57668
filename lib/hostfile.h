/*
 * hostfile.h - internal: mpirun-style hostfiles for cluster.nodes_file.
 *
 * One host per line, `HOST [slots=K]` (K from 1 to RL_SPEC_MAX_NODES,
 * default 1); `#` starts a comment; blank lines are skipped. A host named
 * on several lines adds up its slots. Every problem is reported as
 * "FILE:LINE: message" (lines count from 1). See docs/operations.md,
 * "Quick local runs, hostfiles and status by spec".
 */
#ifndef RINGLEADER_HOSTFILE_H
#define RINGLEADER_HOSTFILE_H

#include <stddef.h>

#include "ringleader/spec.h"

#define RLI_HOSTFILE_MAX_BYTES  (1u << 20)      /* size of one hostfile */
#define RLI_HOSTFILE_HOST_MAX   (RL_ID_MAX - 6) /* room for "-1024" in a node id */
#define RLI_HOSTFILE_MAX_ERRORS 16              /* problems kept; the rest are counted */
#define RLI_HOSTFILE_ERROR_MAX  320             /* bytes of one problem */

typedef struct rli_host {
    char name[RLI_HOSTFILE_HOST_MAX + 1];
    int slots;   /* >= 1: the nodes this host runs */
    size_t line; /* where it was first named, from 1 */
} rli_host;

typedef struct rli_hostfile {
    rli_host *hosts; /* n distinct hosts in file order, owned */
    size_t n;
    int total_slots; /* the sum of every host's slots */
    char errors[RLI_HOSTFILE_MAX_ERRORS][RLI_HOSTFILE_ERROR_MAX];
    int n_errors; /* every problem found, including those not kept */
} rli_hostfile;

/*
 * Parses the len bytes at text (need not be NUL-terminated; borrowed) of
 * the hostfile called name (used in messages). Returns RL_OK with hf
 * filled, or RL_ECONFIG with every problem in hf->errors ("NAME:LINE:
 * message") and rl_errdetail() the first. Either way, free with
 * rli_hostfile_fini.
 */
int rli_hostfile_parse(const char *name, const char *text, size_t len, rli_hostfile *hf);

/* Reads the file at path (at most RLI_HOSTFILE_MAX_BYTES) and parses it. */
int rli_hostfile_load(const char *path, rli_hostfile *hf);

void rli_hostfile_fini(rli_hostfile *hf);

#endif
