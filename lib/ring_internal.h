/*
 * ring_internal.h - the parts of the ring shared by its files and
 * allreduce.c (the algorithms). Internal to lib/.
 *
 *   ring_link.c      a framed link: receive buffer, send queue, waiting
 *   ring_socket.c    the socket under an nng stream
 *   ring_endpoint.c  the endpoint, its accepting side of the hello, fencing
 *   ring_form.c      rl_ring_form (dialing side of the hello), the ring's life
 *   ring_tune.c      tuning policy: chunking, spin, yield, congestion control
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
 * room (ring_poll in ring_link.c); no nng send is ever posted on them. Other
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
 * poll(2) on the link's own socket (link_wait_readable in ring_link.c), so that
 * the receive it then posts completes inside nng_stream_recv: no hand-off
 * at all, one wake-up per frame. rl_ring_abort only closes the streams,
 * which ends a pending receive with NNG_ECLOSED and wakes a poll at once
 * (nng shuts the socket down); a receive is never posted on a link once it
 * is marked closed.
 *
 * TLS links. nng 1.5.2's TLS layer does not honour an operation's timeout
 * once its connection has failed (the peer closed or reset it, or an
 * earlier timeout or cancel, which shut the whole connection): the
 * operation stays queued for good, and nng_aio_wait with it. So on a TLS
 * link the receive and the caller's own sends use aios with a callback, the
 * collective waits on the endpoint's condition variable until its own
 * deadline, and at the deadline it closes the stream, which is what ends
 * such an operation (link_tls_wait in ring_link.c). For the same reason a
 * read-ahead is never cancelled on a TLS link (a cancel would shut the
 * connection); it stays posted into the next collective. And a TLS send is
 * complete once nng has copied it, not written it: a ring freed right after
 * its last collective would drop its last frame with the stream, so a
 * healthy ring's TLS links are retired into the endpoint (rli_link_retire)
 * and closed when the peer closes, at the next ring formed, or with the
 * endpoint. See docs/operations.md ("TLS links, exits and signals").
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
#include "tls.h"

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
    bool tls;    /* a TLS stream: its waits are bounded by the link (link_tls_wait) */
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
    bool rdone; /* TLS links: raio's callback ran since its last post */
    int rerr; /* nng error that ended receiving, 0 if none */

    /* sending: a FIFO of frames, up to 4 in flight in one aio (8 iovs) */
    nng_aio *saio;
    rli_sframe **sq; /* ring of frames; each frame stays put while queued */
    size_t sq_cap, sq_head, sq_count, s_inflight;
    rli_sframe *sfree; /* spare frames */
    /* a small frame written from the caller's thread (rli_link_send_now) */
    nng_aio *daio;
    bool ddone; /* TLS links: daio's callback ran since its last send */
    rli_sframe dframe;
    size_t s_done; /* bytes of the in-flight batch already written */
    bool spending;
    int serr;

    /* Same-host pulls (ring_pull.c), for the ring's and halving's large frames. Sending
     * side: RLI_PULL_UNKNOWN (frames carry our offer), RLI_PULL_YES (the
     * peer pulls them from our memory) or RLI_PULL_NO. Receiving side:
     * what we made of the peer's offer, and the offer once verified. Both
     * belong to the collective's thread. */
    int pull_tx, pull_rx;
    uint64_t pull_pid, pull_fence, pull_nonce;
    /* The collective (seq) in which we last offered to the peer, sent it a
     * frame to pull or an offer (so we wait for its release), and got one
     * from it (so we send ours). */
    uint64_t pull_offered_seq, pull_sent_seq, pull_seen_seq;

    bool retired; /* in the endpoint's retired list (rli_link_retire) */
    rli_link *next; /* endpoint's list of waiting or retired links */
};

struct rl_endpoint {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    char url[RL_URL_MAX];
    nng_stream_listener *listener;
    nng_tls_config *tls_server;
    rli_tls_client *tls_client; /* one client config per dialled host */
    nng_aio *accept_aio;
    bool closing;
    uint64_t fence_epoch; /* links announcing an older epoch are refused */
    rli_link *waiting;    /* accepted links not yet claimed by a ring */
    rli_link *retired;    /* TLS links of freed rings, open until their peer closes */
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
    size_t chunk_bytes;
    rl_allreduce_algorithm algorithm; /* as configured: rli_allreduce_choose decides */
    size_t small_bytes;               /* as configured (SIZE_MAX: the default) */
    /* Cut a ring segment smaller than two chunks in two (allreduce_ring);
     * decided from the chunk size and the member list, which every member
     * shares, so every member cuts alike. */
    bool split_segments;
    int spin_us; /* busy-poll before sleeping on a link (link_wait_readable); 0: none */
    int yield_us; /* poll and sched_yield before sleeping on a link; 0: none */
    struct pollfd *pfd; /* ring_poll's scratch, size + 1 entries (collective's thread) */
    rli_link **pwho;
    char **ids;
    char **urls;
    rli_link **links; /* links[peer rank], NULL for self */
    uint64_t seq;     /* collectives started */
    int err;          /* set once by abort; every later call fails with it */
    char err_detail[256];
    rl_ring_stats stats;
    /* Nanoseconds the collectives' thread spent blocked on each peer rank
     * (rl_ring_wait_ns); written by that thread only. */
    uint64_t *wait_ns;
    /* The collectives' own scratch (the windowed sum's partial sums), kept
     * between calls so that a large buffer is not faulted in afresh each
     * time; written by the collectives' thread only. */
    void *scratch;
    size_t scratch_len;
    /* Same-host pulls (ring_pull.c): offered on this ring's plain links
     * unless RINGLEADER_CMA says no; the fence our right neighbour checks
     * after each pull from us; where the reduce-scatter's pulled chunks
     * land (the all-gather's go straight into the output). */
    bool pull_offer;
    struct rli_pull_fence *fence;
    void *pullbuf;
    size_t pullbuf_len;
};

/* Phases of a collective, as carried in RING_CHUNK.phase. */
enum {
    RLI_PHASE_REDUCE_SCATTER = 0,
    RLI_PHASE_ALL_GATHER = 1,
    RLI_PHASE_DIRECT = 2,
    RLI_PHASE_DOUBLING = 3,
    RLI_PHASE_HALVING = 4,    /* recursive halving: the reduce-scatter */
    RLI_PHASE_HALVING_AG = 5, /* and its all-gather by recursive doubling */
    RLI_PHASE_OFFER = 6,      /* the ring's sender offers to be pulled from (ring_pull.c) */
    RLI_PHASE_RELEASE = 7     /* the ring's receiver is done pulling, and answers the offer */
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

/* ---- ring_link.c: a link's life and its receive buffer -------------------- */

/* A link on stream s (taken) with an rcap-byte receive buffer. hello_cb, if
 * not NULL, is the callback of its hello aio (haio: accepted links only).
 * Aborts if nng cannot allocate an aio. */
rli_link *rli_link_new(rl_endpoint *ep, nng_stream *s, size_t rcap, void (*hello_cb)(void *));
/* Closes and frees l (NULL is fine). The endpoint mutex must NOT be held
 * (callbacks take it). */
void rli_link_free(rli_link *l);
/* What is left until deadline_ms (rl_clock_ms), as an nng timeout: 0 when
 * past, at most INT32_MAX (nng's negative durations mean "infinite"). */
nng_duration rli_until(uint64_t deadline_ms);
/* Posts a receive of the free tail [rlen, rcap) of l's buffer on aio. The
 * tail only: frames before rlen may be in use. */
void rli_link_post(rli_link *l, nng_aio *aio, nng_duration timeout);
/* Makes room for a frame of `need` bytes (prefix included): compacts the
 * unread bytes to the front and grows the buffer. No receive may be pending. */
void rli_link_make_room(rli_link *l, size_t need);
/* 1 and the frame (*p, *n) if one is complete, 0 if not (and the size
 * needed in *need), or RL_EPROTO if the length prefix is impossible. */
int rli_link_peek(rli_link *l, const uint8_t **p, size_t *n, size_t *need);

/* Lock held. Hands l, a healthy TLS link of a ring being freed, to its
 * endpoint: it stays open, its pending sends still flowing, until the peer
 * closes it (a receive stays posted to see that), the next rl_ring_form on
 * the endpoint, or rl_endpoint_close. */
void rli_link_retire(rli_link *l);
/* Lock NOT held. Frees the retired links (all, or only the closed ones). */
void rli_endpoint_reap_retired(rl_endpoint *ep, bool all);

/* ---- ring_socket.c: what nng does not tell about a stream ----------------- */

/*
 * The socket under a TCP stream (plain or TLS), or -1 (IPC, or not found).
 * A TLS stream's socket is for socket options only: nng's TLS layer does
 * its reads and writes. Scans /proc/self/fd: call once per link.
 */
int rli_stream_fd(nng_stream *s);
/* Is s a TLS stream? */
bool rli_stream_is_tls(nng_stream *s);
/* Is s a TCP connection to itself (the same local and peer address)? */
bool rli_stream_is_self(nng_stream *s);

/* ---- ring_endpoint.c ------------------------------------------------------ */

/* Lock held; released while waiting. Waits on ep's condition variable (any
 * link or endpoint event) until deadline_ms; returns RL_OK or RL_ETIMEDOUT. */
int rli_endpoint_wait(rl_endpoint *ep, uint64_t deadline_ms);

/* ---- ring_tune.c: tuning policy, pure but for rli_ncpu -------------------- */

/* rl_ring_config.chunk_bytes as used: 0 = the default (1 MiB), at least 64. */
size_t rli_tune_chunk_bytes(size_t cfg_chunk_bytes);
/* Cut a ring segment under two chunks in two halves (see rl_ring_config
 * chunk_bytes)? most: the members on the most crowded host. */
bool rli_tune_split_segments(size_t chunk_bytes, int most);
/* rl_ring_config.spin_us and yield_us as used, on a host running `local`
 * of the ring's members with `ncpu` CPUs (see ring.h). */
int rli_tune_spin_us(int cfg_spin_us, int local, int ncpu);
int rli_tune_yield_us(int cfg_yield_us, int local, int ncpu);
/* Of the n members at urls, those on the host of urls[self] (*mine) and on
 * the most crowded host (*most), by the host part of the URLs. */
void rli_host_counts(char *const *urls, int n, int self, int *mine, int *most);
/* The CPUs this process may run on (its affinity mask), at least 1. */
int rli_ncpu(void);

/*
 * What rl_ring_config.tcp_congestion (cfg) asks of a TCP link now using the
 * algorithm `current`, on a host running `local` of the ring's members with
 * `ncpu` CPUs. Pure, for the tests.
 */
#define RLI_CONGESTION_NAME_MAX 15 /* the kernel's TCP_CA_NAME_MAX, less the NUL */
/*
 * TCP_NOTSENT_LOWAT of a link whose algorithm the ring chooses: a socket
 * holding more than its window unsent sends the rest out of order with later
 * segments, which looks like loss and halves the window. See docs/performance.md.
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

/* ---- ring_pull.c: same-host pulls (cross-memory attach) ------------------- */

/*
 * A frame of the ring or of recursive halving of at least RLI_PULL_MIN
 * bytes to a member on the same host carries only where its data is
 * (pull_addr), and the receiver copies the data straight out of the
 * sender's memory with process_vm_readv(2): one copy where loopback TCP
 * makes two, and the all-gathers' land in the output itself. Neither side
 * knows at first whether the other can (same host, same pid namespace,
 * ptrace permitted), so until the receiver has answered, the sender offers
 * it (pid, fence address, nonce) in a frame of its own before its first
 * large frame to it in a collective; the receiver reads the fence, and if
 * it finds the nonce says yes, else no, in its release frame at the end of
 * the collective. From the next one on, the sender's large frames to it are
 * pulled (RLI_PULL_YES) or stay inline (RLI_PULL_NO). TLS links never offer.
 *
 * Correctness. A pulled frame's bytes must not change until the receiver
 * has read them. Within a collective the algorithm's order guarantees it:
 * a member writes a region again only after data that depends on the
 * member that pulls it having read it (the ring's right neighbour; in
 * halving, the partner it gave that half to). At the end, a member that
 * sent frames to pull returns only after the release frame of each member
 * it sent them to, sent after that member's last pull. And on any failure,
 * each member closes its fence before it returns: every pull reads the
 * fence after the data and refuses the data unless the fence still shows
 * the collective's sequence number, so no member ever uses bytes its
 * sender's caller may have changed since.
 */
#define RLI_PULL_MIN (64u * 1024u)
enum { RLI_PULL_UNKNOWN = 0, RLI_PULL_YES = 1, RLI_PULL_NO = -1 };

/* Sets up r's fence and whether r offers (RINGLEADER_CMA=off: never). */
void rli_pull_ring_init(rl_ring *r);
void rli_pull_ring_free(rl_ring *r);
/* Opens r's fence for collective seq, or closes it (seq 0). */
void rli_pull_fence_set(rl_ring *r, uint64_t seq);
/* The offer fields of this process for r's frames. */
void rli_pull_offer(const rl_ring *r, uint64_t *pid, uint64_t *fence, uint64_t *nonce);
/* Verifies the offer (pid, fence, nonce) of l's peer for collective seq
 * and records the answer in l->pull_rx (and the offer if yes). */
void rli_pull_accept(rli_link *l, uint64_t pid, uint64_t fence, uint64_t nonce, uint64_t seq);
/* Copies len bytes at addr of l's peer into dst, then checks the peer's
 * fence still shows seq. RL_OK or RL_EPEER naming what failed. */
int rli_pull_read(rli_link *l, uint64_t addr, void *dst, size_t len, uint64_t seq);
/* r->pullbuf holds at least len bytes (NULL if it cannot). */
void *rli_pull_buffer(rl_ring *r, size_t len);

/* ---- allreduce.c ---------------------------------------------------------- */

/*
 * The algorithm rl_allreduce runs for a buffer of `bytes` > 0 on a ring of
 * size >= 2 members configured with `want` and `small_bytes`
 * (rl_ring_config): never RL_ALLREDUCE_AUTO. Pure, for the tests.
 */
rl_allreduce_algorithm rli_allreduce_choose(rl_allreduce_algorithm want, size_t small_bytes,
                                            int size, size_t bytes);

#endif
