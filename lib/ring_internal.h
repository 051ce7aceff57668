/*
 * ring_internal.h - the parts of the ring shared by ring.c (endpoint, links,
 * framing) and allreduce.c (the algorithms). Internal to lib/.
 *
 * Framing on a link: a 4-byte little-endian length, then one proto frame
 * (proto/messages.def) of that length. RING_CHUNK frames carry their bulk
 * data as the last field, a msgpack bin, so that a sender can hand the data
 * to the socket straight from the caller's buffer (no copy).
 *
 * Threads and locking. One mutex per endpoint, shared by its rings, protects
 * every link's send queue and flags. On a formed ring's plain TCP links
 * ("direct", l->direct) the collective's own thread writes the queue with
 * non-blocking sendmsg(2) and, whenever it waits, polls those sockets for
 * room (ring_poll in ring.c); no nng send is ever posted on them. Other
 * links (TLS, IPC, and every link while a ring forms) send callback-driven:
 * nng 1.5.2 runs an aio's callback on its task threads, never inline in
 * nng_stream_send, so that is called with the mutex held and the callbacks
 * take the mutex. Receiving is caller-driven: until an accepted link's hello
 * is read, its receive side belongs to the endpoint (a callback aio, under
 * the mutex); once a ring claims the link, it belongs to the one thread
 * running that ring's collective, which reads with a callback-less aio and
 * nng_aio_wait. nng completes such an aio inline, in the poller thread (or
 * in nng_stream_recv itself when bytes are already there), so a frame
 * reaches the collective with one thread hand-off instead of two (poller,
 * task thread, caller). On a plain TCP link the thread first sleeps in
 * poll(2) on the link's own socket (link_wait_readable in ring.c), so that
 * the receive it then posts completes inside nng_stream_recv: no hand-off
 * at all, one wake-up per frame. rl_ring_abort only closes the streams,
 * which ends a pending receive with NNG_ECLOSED and wakes a poll at once
 * (nng shuts the socket down); a receive is never posted on a link once it
 * is marked closed.
 */
#ifndef RINGLEADER_RING_INTERNAL_H
#define RINGLEADER_RING_INTERNAL_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "ringleader/ring.h"
#include "ringleader/proto.h"
#include "ringleader/rpc.h"
#include "ringleader/spec.h"

#define RLI_FRAME_HDR_MAX 192 /* length prefix + envelope + fields + bin marker */

typedef struct rli_sframe {
    struct rli_sframe *next_free;
    uint8_t hdr[RLI_FRAME_HDR_MAX];
    size_t hdr_len;
    const uint8_t *data; /* borrowed: must stay valid until the frame is sent */
    size_t data_len;
} rli_sframe;

typedef struct rli_link rli_link;
struct rli_link {
    rl_endpoint *ep;
    rl_ring *ring; /* NULL while the link waits in the endpoint for its ring */
    nng_stream *stream;
    int fd; /* the stream's socket once a ring claims a plain TCP link, else -1 */
    int sock; /* the TCP socket under a plain or TLS link, for options only; else -1 */
    int lowat; /* fd's SO_RCVLOWAT (1, the kernel's default, until link_set_lowat) */
    bool direct; /* written by the collective's thread itself: see link_direct_write */
    int peer_rank;
    uint64_t hello_epoch;
    bool dialed;     /* we dialed it (else accepted) */
    bool hello_done; /* accepted link: the hello has been read */
    bool closed;
    uint8_t nonce[32]; /* accepted link of a token endpoint: the challenge sent */
    uint64_t hello_deadline; /* accepted link: when an unsent hello closes it */

    /* receiving: bytes [rpos, rlen) of rbuf are unread */
    nng_aio *haio; /* the hello, read by the endpoint (callback) */
    nng_aio *raio; /* ring frames, read by the collective (no callback) */
    uint8_t *rbuf;
    size_t rcap, rlen, rpos;
    bool rpending;
    int rerr; /* nng error that ended receiving, 0 if none */

    /* sending: a FIFO of frames, up to 4 in flight in one aio (8 iovs) */
    nng_aio *saio;
    rli_sframe **sq; /* ring of frames; each frame stays put while queued */
    size_t sq_cap, sq_head, sq_count, s_inflight;
    rli_sframe *sfree; /* spare frames */
    /* a small frame written from the caller's thread (rli_link_send_now) */
    nng_aio *daio;
    rli_sframe dframe;
    size_t s_done; /* bytes of the in-flight batch already written */
    bool spending;
    int serr;

    rli_link *next; /* endpoint's list of waiting links */
};

struct rl_endpoint {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    char url[RL_URL_MAX];
    nng_stream_listener *listener;
    nng_tls_config *tls_server;
    nng_tls_config *tls_client;
    nng_aio *accept_aio;
    bool closing;
    uint64_t fence_epoch; /* links announcing an older epoch are refused */
    rli_link *waiting;    /* accepted links not yet claimed by a ring */
    uint64_t refused_stale;
    bool has_token; /* rl_endpoint_set_token: links are authenticated */
    rl_token token;
    uint64_t refused_auth; /* accepted links whose hello had no or a wrong proof */
    uint64_t hello_timeout_ms; /* an accepted link silent this long is closed (tests lower it) */
};

struct rl_ring {
    rl_endpoint *ep;
    uint64_t epoch;
    int rank, size;
    size_t chunk_bytes, small_bytes;
    /* Cut a ring segment smaller than two chunks in two (allreduce_ring);
     * decided from the chunk size and the member list, which every member
     * shares, so every member cuts alike. */
    bool split_segments;
    int spin_us; /* busy-poll before sleeping on a link (link_wait_readable); 0: none */
    int yield_us; /* poll and sched_yield before sleeping on a link; 0: none */
    struct pollfd *pfd; /* ring_poll's scratch, size + 1 entries (collective's thread) */
    rli_link **pwho;
    size_t doubling_bytes; /* at or below (and N >= 4): recursive doubling; tests may zero it */
    size_t halving_bytes;  /* at or below (N a power of two >= 4): recursive halving */
    char **ids;
    char **urls;
    rli_link **links; /* links[peer rank], NULL for self */
    uint64_t seq;     /* collectives started */
    int err;          /* set once by abort; every later call fails with it */
    char err_detail[256];
    rl_ring_stats stats;
};

/* Phases of a collective, as carried in RING_CHUNK.phase. */
enum {
    RLI_PHASE_REDUCE_SCATTER = 0,
    RLI_PHASE_ALL_GATHER = 1,
    RLI_PHASE_DIRECT = 2,
    RLI_PHASE_DOUBLING = 3,
    RLI_PHASE_HALVING = 4,    /* recursive halving: the reduce-scatter */
    RLI_PHASE_HALVING_AG = 5 /* and its all-gather by recursive doubling */
};

/*
 * Test hook, NULL in production: the ring algorithm (allreduce.c) calls it,
 * if set, right before it reduces or copies each received chunk, on the
 * caller's thread and without the lock, with the phase (RLI_PHASE_*), step
 * and chunk index. Fault tests set it before the first collective to kill
 * or stop a member at an exact point (tests/ar_worker.c). Not thread-safe
 * to change while a collective runs.
 */
extern void (*rli_allreduce_hook)(int phase, int step, size_t chunk);

void rli_ring_lock(rl_ring *r);
void rli_ring_unlock(rl_ring *r);

/* Lock held for the send side: rli_ring_wait, rli_link_send,
 * rli_ring_sends_state, rli_ring_link_error. */
/* Waits for any link event until deadline; returns RL_OK or RL_ETIMEDOUT. */
int rli_ring_wait(rl_ring *r, uint64_t deadline_ms);

/*
 * Caller's thread, lock NOT held. Waits until deadline_ms for the next
 * complete frame on l and sets (*p, *n) to it (after the length prefix).
 * With read_ahead, a receive stays posted into the buffer's free tail so the
 * poller keeps draining the socket while the caller works on the frame. The
 * frame stays valid until rli_link_consume or the next rli_link_recv on the
 * same link: receives only append after it. Returns RL_OK, RL_ETIMEDOUT,
 * RL_EPROTO (impossible length prefix) or RL_EPEER (closed, reset, aborted).
 */
int rli_link_recv(rli_link *l, const uint8_t **p, size_t *n, uint64_t deadline_ms,
                  bool read_ahead);
/* Drops the frame returned by rli_link_recv (n as returned). */
void rli_link_consume(rli_link *l, size_t n);
/* Ends any read-ahead still posted on r's links (end of a collective). */
void rli_ring_settle(rl_ring *r);
/* Queues m (a RING_CHUNK whose data field borrows from the caller) on link. */
int rli_link_send(rli_link *l, const rl_msg *m);
/*
 * Lock NOT held. Writes m, a small RING_CHUNK, from the caller's thread with
 * a callback-less aio and waits until the socket has taken all of it: nng
 * writes it inside nng_stream_send when the socket has room, and no task
 * thread is woken. The wait depends only on the peer's kernel buffer, never
 * on what the peer's program does, so it cannot deadlock with a peer doing
 * the same. Queued like rli_link_send when the link has frames queued.
 */
int rli_link_send_now(rli_link *l, const rl_msg *m, uint64_t deadline_ms);
/* RL_OK when every queued frame on every link of r has been written, -1
 * while some are still queued, or an rl_err if a link with queued frames
 * failed (a peer that closed after receiving everything is no error). */
int rli_ring_sends_state(rl_ring *r);
/* The first link error on r as an rl_err with detail, or RL_OK. */
int rli_ring_link_error(rl_ring *r);

/*
 * What rl_ring_config.tcp_congestion (cfg) asks of a TCP link now using the
 * algorithm `current`, on a host running `local` of the ring's members with
 * `ncpu` CPUs. Pure, for the tests.
 */
#define RLI_CONGESTION_NAME_MAX 15 /* the kernel's TCP_CA_NAME_MAX, less the NUL */
/*
 * TCP_NOTSENT_LOWAT of a link whose algorithm the ring chooses: the socket
 * takes new data only while less than this is unsent. Without it cubic on
 * loopback here fell into a slow regime in 9 of 26 runs (N=2, 16 MiB:
 * 6.6-11.5 ms against about 5): a socket holding
 * more than its window sends the rest when acknowledgements come in, from
 * the peer's CPU, whose backlog delivers it after segments this CPU sent
 * later; the reordering looks like loss (hundreds of retransmissions per
 * run), which halves the window and keeps more data waiting. With 512 KiB
 * there were 0-18 retransmissions per run against 9-1674 without.
 */
#define RLI_NOTSENT_LOWAT (512 * 1024)
typedef struct rli_congestion_plan {
    const char *cand[2]; /* algorithms to try in order, the first accepted is kept */
    int n;               /* how many; 0 keeps the link's */
    bool required;       /* named in the config: a refusal is an error */
    int notsent_lowat;   /* TCP_NOTSENT_LOWAT to set, 0 for none */
} rli_congestion_plan;
void rli_congestion_choose(const char *cfg, int local, int ncpu, const char *current,
                           rli_congestion_plan *p);

#endif
