/*
 * test_ring_tls.c - the collective's waits on TLS links (issue 15, item 2):
 * a peer that stops sending, or that closed its link before the collective
 * began, fails the collective by its deadline with an error naming the
 * peer. nng 1.5.2's TLS layer does not honour an operation's timeout once
 * its connection has failed, so before the fix the second case waited for
 * good (see ring_internal.h, "TLS links").
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ring_internal.h"
#include "ringleader/allreduce.h"
#include "ringleader/clock.h"
#include "ringleader/err.h"
#include "testutil.h"

#define DEADLINE_MS 1500
#define SLACK_MS    1000 /* the deadline plus this at most */

static const rl_tls_files demo_tls = {RL_SOURCE_DIR "/configs/tls/cert.pem",
                                      RL_SOURCE_DIR "/configs/tls/key.pem",
                                      RL_SOURCE_DIR "/configs/tls/ca.pem"};

typedef struct member {
    int rank;
    const char **urls;
    rl_endpoint *ep;
    rl_ring *ring;
    int rv;
    char msg[512];
} member;

static void *member_form(void *arg)
{
    member *m = arg;
    rl_ring_member mem[2] = {{"t0", m->urls[0]}, {"t1", m->urls[1]}};
    rl_ring_config cfg = {
        .epoch = 1, .rank = m->rank, .size = 2, .members = mem, .small_bytes = SIZE_MAX};
    m->rv = rl_ring_form(m->ep, &cfg, rl_clock_ms() + 10000, &m->ring);
    if (m->rv != RL_OK) snprintf(m->msg, sizeof(m->msg), "%s", rl_errdetail());
    return NULL;
}

/* Two members over TLS on loopback, as threads of this process. */
static void form_tls_pair(member ms[2], const char *urls[2])
{
    pthread_t th[2];
    memset(ms, 0, 2 * sizeof(*ms));
    for (int r = 0; r < 2; r++) {
        ck_assert_int_eq(rl_endpoint_open("tls+tcp://127.0.0.1:0", &demo_tls, &ms[r].ep), RL_OK);
        urls[r] = rl_endpoint_url(ms[r].ep);
    }
    for (int r = 0; r < 2; r++) {
        ms[r].rank = r;
        ms[r].urls = urls;
        pthread_create(&th[r], NULL, member_form, &ms[r]);
    }
    for (int r = 0; r < 2; r++)
        pthread_join(th[r], NULL);
    for (int r = 0; r < 2; r++)
        ck_assert_msg(ms[r].rv == RL_OK, "member %d: %s", r, ms[r].msg);
    ck_assert_msg(ms[0].ring->links[1]->tls, "the link is not TLS");
}

static void close_pair(member ms[2])
{
    for (int r = 0; r < 2; r++) {
        rl_ring_free(ms[r].ring);
        rl_endpoint_close(ms[r].ep);
    }
}

/* Member 0's all-reduce: must fail within the deadline (plus slack) and
 * name its peer t1. */
static void expect_fails_by_deadline(member *m, const char *why)
{
    double in[16] = {1}, out[16];
    uint64_t t0 = rl_clock_ms();
    int rv = rl_allreduce(m->ring, in, out, 16, RL_F64, RL_OP_SUM, t0 + DEADLINE_MS);
    uint64_t took = rl_clock_ms() - t0;
    ck_assert_msg(rv != RL_OK, "%s: the all-reduce succeeded", why);
    ck_assert_msg(took <= DEADLINE_MS + SLACK_MS, "%s: failed after %llu ms (deadline %d ms)", why,
                  (unsigned long long)took, DEADLINE_MS);
    ck_assert_msg(strstr(rl_errdetail(), "t1 (rank 1)") != NULL, "%s: the error names no peer: %s",
                  why, rl_errdetail());
}

/* The peer formed the ring and then sends nothing (as a SIGSTOPped one). */
START_TEST(silent_peer_fails_the_collective_by_its_deadline)
{
    member ms[2];
    const char *urls[2];
    form_tls_pair(ms, urls);
    expect_fails_by_deadline(&ms[0], "silent peer");
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "before the deadline"));
    close_pair(ms);
}
END_TEST

/* The peer closed its link (an aborted ring, a process gone) while member 0
 * was not receiving: nng's TLS layer shut the connection then, and the
 * receive member 0 posts afterwards must still end by its deadline. */
START_TEST(closed_peer_fails_the_next_collective_by_its_deadline)
{
    member ms[2];
    const char *urls[2];
    form_tls_pair(ms, urls);
    /* A bare close under nng's TLS layer (no close_notify first), as when a
     * member frees its ring with its last record still in nng's buffer. */
    ck_assert_int_eq(shutdown(ms[1].ring->links[0]->sock, SHUT_RDWR), 0);
    /* Wait (bounded) until member 0's socket has seen the close, and give
     * nng's poller a moment to take it, so that the receive below is
     * posted after nng's TLS layer shut the connection. */
    struct pollfd pfd = {.fd = ms[0].ring->links[1]->sock, .events = POLLRDHUP};
    ck_assert_int_ge(pfd.fd, 0);
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    usleep(200 * 1000);
    expect_fails_by_deadline(&ms[0], "closed peer");
    close_pair(ms);
}
END_TEST

/* A collective that completes on both sides, and the next one: the TLS
 * read-ahead left posted between them does not break the link. */
static void *member_twice(void *arg)
{
    member *m = arg;
    static double in[2][1 << 16], out[2][1 << 16];
    m->rv = RL_OK;
    for (int k = 0; k < 3 && m->rv == RL_OK; k++) {
        for (size_t i = 0; i < (1 << 16); i++)
            in[m->rank][i] = (double)(m->rank + 1);
        m->rv = rl_allreduce(m->ring, in[m->rank], out[m->rank], 1 << 16, RL_F64, RL_OP_SUM,
                             rl_clock_ms() + 10000);
        if (m->rv == RL_OK && out[m->rank][12345] != 3.0) m->rv = RL_EINTERNAL;
    }
    if (m->rv != RL_OK) snprintf(m->msg, sizeof(m->msg), "%s", rl_errdetail());
    return NULL;
}

START_TEST(ring_collectives_follow_each_other_on_tls)
{
    member ms[2];
    const char *urls[2];
    form_tls_pair(ms, urls);
    for (int r = 0; r < 2; r++)
        ms[r].ring->algorithm = RL_ALLREDUCE_RING;
    pthread_t th[2];
    for (int r = 0; r < 2; r++)
        pthread_create(&th[r], NULL, member_twice, &ms[r]);
    for (int r = 0; r < 2; r++)
        pthread_join(th[r], NULL);
    for (int r = 0; r < 2; r++)
        ck_assert_msg(ms[r].rv == RL_OK, "member %d: %s", r, ms[r].msg);
    close_pair(ms);
}
END_TEST

Suite *suite(void)
{
    Suite *s = suite_create("ring_tls");
    TCase *tc = tcase_create("deadlines");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, silent_peer_fails_the_collective_by_its_deadline);
    tcase_add_test(tc, closed_peer_fails_the_next_collective_by_its_deadline);
    tcase_add_test(tc, ring_collectives_follow_each_other_on_tls);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return rlt_run_suite(suite());
}
