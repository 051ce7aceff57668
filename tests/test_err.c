/* test_err.c - the error list: every code has a distinct name and text, and
 * foreign codes convert to the documented rl_err. */
#include <errno.h>
#include <string.h>

#include <msgpack.h>
#include <nng/nng.h>

#include "ringleader/clock.h"
#include "ringleader/mem.h"
#include "ringleader/ring.h"
#include "rli.h"
#include "testutil.h"

START_TEST(names_and_texts_are_distinct)
{
    static const int codes[] = {
#define C(name, value, text) name,
        RL_ERR_LIST(C)
#undef C
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_ne(rl_strerror(codes[i]), "unknown error");
        for (size_t j = i + 1; j < n; j++) {
            ck_assert_str_ne(rl_errname(codes[i]), rl_errname(codes[j]));
            ck_assert_int_ne(codes[i], codes[j]);
        }
    }
    ck_assert_str_eq(rl_strerror(9999), "unknown error");
}
END_TEST

START_TEST(detail_is_per_call_and_prefixable)
{
    ck_assert_int_eq(rli_err(RL_EPEER, "peer %s died", "n3"), RL_EPEER);
    ck_assert_str_eq(rl_errdetail(), "peer n3 died");
    ck_assert_int_eq(rli_err_prefix(RL_EPEER, "allreduce epoch %d", 4), RL_EPEER);
    ck_assert_str_eq(rl_errdetail(), "allreduce epoch 4: peer n3 died");
}
END_TEST

START_TEST(foreign_codes_convert)
{
    ck_assert_int_eq(rli_err_from_nng(0), RL_OK);
    ck_assert_int_eq(rli_err_from_nng(NNG_ETIMEDOUT), RL_ETIMEDOUT);
    ck_assert_int_eq(rli_err_from_nng(NNG_ECONNRESET), RL_ECLOSED);
    ck_assert_int_eq(rli_err_from_nng(NNG_ECONNREFUSED), RL_EUNAVAIL);
    ck_assert_int_eq(rli_err_from_errno(ENOENT), RL_ENOTFOUND);
    ck_assert_int_eq(rli_err_from_errno(EACCES), RL_EPERM);
    ck_assert_int_eq(rli_err_from_msgpack(MSGPACK_UNPACK_SUCCESS), RL_OK);
    ck_assert_int_eq(rli_err_from_msgpack(MSGPACK_UNPACK_EXTRA_BYTES), RL_EPROTO);
    ck_assert_int_eq(rli_err_from_msgpack(MSGPACK_UNPACK_CONTINUE), RL_EPROTO);
    ck_assert_int_eq(rli_err_from_msgpack(MSGPACK_UNPACK_PARSE_ERROR), RL_EPROTO);
    ck_assert_int_eq(rli_err_from_msgpack(MSGPACK_UNPACK_NOMEM_ERROR), RL_ENOMEM);
}
END_TEST

START_TEST(allocators_copy_and_never_return_null)
{
    char *a = rl_xstrdup("ring");
    ck_assert_str_eq(a, "ring");
    char *b = rl_xstrndup("leader!", 6); /* exactly n bytes, then a NUL */
    ck_assert_str_eq(b, "leader");
    void *z = rl_xmalloc(0), *zc = rl_xcalloc(0, 8);
    ck_assert_ptr_nonnull(z);
    ck_assert_ptr_nonnull(zc);
    int *v = rl_xcalloc(4, sizeof(int));
    ck_assert_int_eq(v[0] | v[1] | v[2] | v[3], 0);
    v = rl_xrealloc(v, 1000 * sizeof(int));
    v[999] = 7;
    ck_assert_int_eq(v[999], 7);
    free(a);
    free(b);
    free(z);
    free(zc);
    free(v);
}
END_TEST

START_TEST(clocks_are_one_monotonic_clock)
{
    uint64_t ms = rl_clock_ms(), ns = rl_clock_ns(), us = rl_clock_us();
    double s = rl_clock_s();
    ck_assert_uint_ge(ns / 1000000u, ms);
    ck_assert_uint_ge(us / 1000u, ns / 1000000u);
    ck_assert(s * 1e3 >= (double)ms - 1.0);
    ck_assert_uint_le(ns / 1000000u, rl_clock_ms());
    ck_assert_uint_ge(rl_clock_ns(), ns);
}
END_TEST

START_TEST(timespec_in_is_normalised)
{
    for (uint64_t ms = 0; ms < 3000; ms += 37) {
        struct timespec now, t = rl_timespec_in(CLOCK_MONOTONIC, ms);
        clock_gettime(CLOCK_MONOTONIC, &now);
        ck_assert(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
        double left = (double)(t.tv_sec - now.tv_sec) * 1e3 +
                      (double)(t.tv_nsec - now.tv_nsec) / 1e6;
        ck_assert(left <= (double)ms && left > (double)ms - 1000.0);
    }
}
END_TEST

START_TEST(cond_wait_until_times_out_at_its_deadline)
{
    pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    rl_cond_init_monotonic(&cv);
    pthread_mutex_lock(&mtx);
    ck_assert_int_eq(rl_cond_wait_until(&cv, &mtx, rl_clock_ms() - 1), RL_ETIMEDOUT);
    uint64_t t0 = rl_clock_ms(), deadline = t0 + 50;
    int rv;
    while ((rv = rl_cond_wait_until(&cv, &mtx, deadline)) == RL_OK) { /* spurious wake-ups */
    }
    ck_assert_int_eq(rv, RL_ETIMEDOUT);
    ck_assert_uint_ge(rl_clock_ms(), deadline);
    pthread_mutex_unlock(&mtx);
    pthread_cond_destroy(&cv);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("err");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, names_and_texts_are_distinct);
    tcase_add_test(tc, detail_is_per_call_and_prefixable);
    tcase_add_test(tc, foreign_codes_convert);
    tcase_add_test(tc, allocators_copy_and_never_return_null);
    tcase_add_test(tc, clocks_are_one_monotonic_clock);
    tcase_add_test(tc, timespec_in_is_normalised);
    tcase_add_test(tc, cond_wait_until_times_out_at_its_deadline);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
