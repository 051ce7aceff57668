/* test_err.c - the error list: every code has a distinct name and text, and
 * foreign codes convert to the documented rl_err. */
#include <errno.h>
#include <string.h>

#include <msgpack.h>
#include <nng/nng.h>

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

int main(void)
{
    Suite *s = suite_create("err");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, names_and_texts_are_distinct);
    tcase_add_test(tc, detail_is_per_call_and_prefixable);
    tcase_add_test(tc, foreign_codes_convert);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
