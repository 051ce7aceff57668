/*
 * ring.h - ring membership for collectives: an endpoint that lives as long as
 * the member, and one rl_ring per epoch.
 *
 * An rl_endpoint listens on this member's URL for the whole life of the
 * process. Each time the coordinator forms a ring (a new epoch, membership
 * and order), every member calls rl_ring_form with the same member list; the
 * call connects this member to its peers node to node over NNG streams and
 * returns when all links are up. Links of older epochs are fenced: an
 * incoming link that announces a stale epoch is closed, and frames carrying
 * another epoch are dropped and counted.
 *
 * Threads: an rl_ring is used by one caller thread at a time for collectives;
 * rl_ring_abort may be called from any thread.
 */
#ifndef RINGLEADER_RING_H
#define RINGLEADER_RING_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h" /* rl_clock_ms: deadlines in this API are absolute values of it */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rl_endpoint rl_endpoint;
typedef struct rl_ring rl_ring;

/* TLS material for tls+tcp:// URLs (PEM file paths). NULL: plain TCP only. */
typedef struct rl_tls_files {
    const char *cert;
    const char *key;
    const char *ca;
    /* security.tls.verify_hostname: false. By default a dialler refuses a
     * peer whose certificate does not name the dialled host. */
    bool skip_hostname_check;
} rl_tls_files;

/*
 * Opens this member's endpoint listening on url (tcp://HOST:PORT, port 0 for
 * any free port, tls+tcp://..., ipc://PATH, inproc://NAME). The endpoint owns
 * its listener until rl_endpoint_close. tls may be NULL.
 */
RL_API int rl_endpoint_open(const char *url, const rl_tls_files *tls, rl_endpoint **out);

/*
 * From now on every ring link of ep is authenticated both ways with the
 * cluster token (HMAC challenge-response, lib/auth.h): a peer that cannot
 * prove it holds the token never becomes a member, and ep refuses to send to
 * an acceptor that cannot either. Every member of a ring must do the same.
 * Call before the first rl_ring_form.
 */
struct rl_token; /* ringleader/rpc.h */
RL_API void rl_endpoint_set_token(rl_endpoint *ep, const struct rl_token *token);

/* The URL peers should dial (with the bound port filled in). Owned by ep. */
RL_API const char *rl_endpoint_url(const rl_endpoint *ep);

/* Stops listening and frees ep. Every ring formed on it must be freed first. */
RL_API void rl_endpoint_close(rl_endpoint *ep);

typedef struct rl_ring_member {
    const char *id;  /* for messages, e.g. "n3" */
    const char *url; /* that member's endpoint URL */
} rl_ring_member;

/*
 * Which all-reduce algorithm rl_allreduce runs on a ring (allreduce.h
 * describes each and when auto picks it). A named algorithm is used for
 * every buffer it can carry (the ring for the rest), so that tests and
 * benchmarks can compare them.
 */
#define RL_ALLREDUCE_ALGORITHM_LIST(X)                                                             \
    X(AUTO, "auto")                                                                                \
    X(RING, "ring")                                                                                \
    X(DIRECT, "direct")                                                                            \
    X(DOUBLING, "doubling")                                                                        \
    X(HALVING, "halving")

typedef enum rl_allreduce_algorithm {
#define RL_ALLREDUCE_ALGORITHM_ENUM(N, name) RL_ALLREDUCE_##N,
    RL_ALLREDUCE_ALGORITHM_LIST(RL_ALLREDUCE_ALGORITHM_ENUM)
#undef RL_ALLREDUCE_ALGORITHM_ENUM
        RL_ALLREDUCE_ALGORITHM_COUNT
} rl_allreduce_algorithm;

typedef struct rl_ring_config {
    uint64_t epoch;                /* > every epoch formed before on this endpoint */
    int rank;                      /* this member's index in members */
    int size;                      /* number of members, >= 1 */
    const rl_ring_member *members; /* copied; the caller keeps ownership */
    /* Pipeline chunk; 0 = the default, 1 MiB. With the default (given or
     * not), a ring segment smaller than two chunks is cut in two halves of
     * at least 64 KiB when no host runs more than two members (by URL host);
     * any other value is used as is. */
    size_t chunk_bytes;
    /* The all-reduce algorithm: RL_ALLREDUCE_AUTO (0) chooses by size and
     * members; rl_ring_form fails (RL_EINVAL) on a value not in the list. */
    rl_allreduce_algorithm algorithm;
    /* With algorithm auto: at or below, the one-round (direct) algorithm;
     * 0 = the ring only; SIZE_MAX = the default (allreduce.h). */
    size_t small_bytes;
    /* Microseconds a collective busy-polls a TCP link for data before it
     * sleeps: 0 = automatic (50 when the members on this host, by URL host,
     * are no more than the CPUs this process may run on, else none), < 0 =
     * never. Spinning saves a wake-up per frame, but steals the CPU from
     * members that share it. */
    int spin_us;
    /* Microseconds a collective polls a TCP link for data, yielding its CPU
     * between polls, before it sleeps: 0 = automatic (200 when the members
     * on this host are at least twice the CPUs this process may run on,
     * else none), < 0 = never. A member sharing the CPU then runs at once,
     * without a wake-up. After any spin (spin_us). */
    int yield_us;
    /* TCP congestion control of the ring's TCP links (plain and TLS), set
     * on this member's end of each, which governs what it sends:
     *   NULL, "" or "auto": where the members on this host (by URL host)
     *     are no more than the CPUs this process may run on, a link that
     *     uses bbr gets "cubic" ("reno" where cubic is not permitted), and
     *     every link TCP_NOTSENT_LOWAT 512 KiB; else links stay as they are.
     *     bbr paces every send with a kernel timer, which slows the
     *     collective where each member has a CPU (see docs/performance.md);
     *   "system": links stay as they are (net.ipv4.tcp_congestion_control);
     *   any other name: that algorithm and TCP_NOTSENT_LOWAT 512 KiB, or
     *     rl_ring_form fails (RL_EINVAL) if the kernel refuses it (unknown,
     *     or not permitted to this process: see
     *     net.ipv4.tcp_allowed_congestion_control). At most 15 characters. */
    const char *tcp_congestion;
    /* Out, may be NULL: when rl_ring_form fails because a member of higher
     * rank could not be connected to (refused, unreachable, or no
     * authenticated link within RL_RING_CONNECT_MS), that member's rank;
     * else -1. */
    int *unreachable_rank;
} rl_ring_config;

/* How long rl_ring_form tries to connect to (and authenticate with) a member
 * of higher rank: every member's endpoint listens from before it joins, so
 * a member not connected by then is at an address its peers cannot reach
 * (see docs/operations.md). */
#define RL_RING_CONNECT_MS 4000

/*
 * Forms the ring for cfg->epoch on ep: dials every member of higher rank and
 * waits for every member of lower rank to dial in, until deadline_ms
 * (absolute, rl_clock_ms). On success *out is a ring the caller frees with
 * rl_ring_free. On failure returns RL_ETIMEDOUT, RL_EUNAVAIL or RL_EINVAL,
 * naming the members that did not connect, or RL_ESTALE when ep is fenced
 * past cfg->epoch (rl_endpoint_fence) before or while it forms.
 */
RL_API int rl_ring_form(rl_endpoint *ep, const rl_ring_config *cfg, uint64_t deadline_ms,
                        rl_ring **out);

/*
 * Epochs below epoch are over (the coordinator planned a newer one): an
 * rl_ring_form of an older epoch in progress on ep returns RL_ESTALE at once
 * instead of waiting for members that may be dead, later ones do too, and
 * links announcing an older epoch are refused. Thread-safe; never lowers the
 * fence. Rings already formed are not touched (rl_ring_abort them).
 * UINT64_MAX fences every epoch: for an owner that is stopping.
 */
RL_API void rl_endpoint_fence(rl_endpoint *ep, uint64_t epoch);

/*
 * Makes every current and future collective on r fail with err (RL_ECANCELED
 * if 0) and closes its links, so that peers fail fast too. Thread-safe,
 * idempotent. why is copied into the error detail.
 */
RL_API void rl_ring_abort(rl_ring *r, int err, const char *why);

/* Closes the links and frees r (NULL is fine). No collective may be running. */
RL_API void rl_ring_free(rl_ring *r);

RL_API uint64_t rl_ring_epoch(const rl_ring *r);
RL_API int rl_ring_rank(const rl_ring *r);
RL_API int rl_ring_size(const rl_ring *r);

/* Nanoseconds the caller of r's collectives spent blocked receiving from
 * member `peer` (or sending to it, for frames written from the caller's
 * thread) since r formed (0 for itself or a rank out of range): how
 * long this member waited on that peer's data, the straggler signal's raw
 * figure (docs/operations.md). Call from the collectives' thread, between
 * collectives. */
RL_API uint64_t rl_ring_wait_ns(const rl_ring *r, int peer);

/* Counters of frames dropped instead of used. */
typedef struct rl_ring_stats {
    uint64_t frames_in;        /* frames used */
    uint64_t dropped_stale;    /* another epoch, or an already-finished sequence */
    uint64_t dropped_foreign;  /* not from the expected peer, phase, step or chunk */
    uint64_t dropped_malformed;/* did not decode, or the wrong size */
    uint64_t bytes_out;
    uint64_t bytes_in;
    uint64_t bytes_pulled; /* copied from a same-host neighbour's memory (docs/performance.md) */
} rl_ring_stats;
RL_API void rl_ring_get_stats(const rl_ring *r, rl_ring_stats *st);

#ifdef __cplusplus
}
#endif
#endif
