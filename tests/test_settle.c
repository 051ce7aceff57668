/*
 * test_settle.c - the step a replaced epoch's members resume at
 * (coordinator/settle.c), and the worker API's refusals that need no
 * coordinator (lib/worker.c): bad arguments are refused before anything is
 * sent; and the step-report batch's filing and when it is due (lib/agent.c).
 * No processes or sockets.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringleader/agent.h"
#include "ringleader/worker.h"
#include "settle.h"
#include "testutil.h"

START_TEST(every_member_at_the_same_count_resumes_there)
{
    settle_report r[3] = {{7, false}, {7, false}, {7, false}};
    bool ok;
    ck_assert_uint_eq(settle_resume_step(r, 3, 0, &ok), 7);
    ck_assert(ok);
}
END_TEST

START_TEST(a_member_that_holds_the_data_counts_the_collective_when_all_do)
{
    /* One completed collective 7 (done 8): the others hold its data. */
    settle_report r[3] = {{8, false}, {7, true}, {7, true}};
    bool ok;
    ck_assert_uint_eq(settle_resume_step(r, 3, 0, &ok), 8);
    ck_assert(ok);
}
END_TEST

START_TEST(a_member_without_the_data_makes_every_member_redo_it)
{
    /* Nobody can have completed 7: one lacks its data. Those holding it
     * redo it too. */
    settle_report r[3] = {{7, true}, {7, false}, {7, true}};
    bool ok;
    ck_assert_uint_eq(settle_resume_step(r, 3, 0, &ok), 7);
    ck_assert(ok);
}
END_TEST

START_TEST(no_member_left_resumes_at_the_fallback)
{
    bool ok;
    ck_assert_uint_eq(settle_resume_step(NULL, 0, 42, &ok), 42);
    ck_assert(ok);
}
END_TEST

START_TEST(a_completed_collective_another_lacks_is_reported_inconsistent)
{
    settle_report r[2] = {{8, false}, {7, false}};
    bool ok;
    ck_assert_uint_eq(settle_resume_step(r, 2, 0, &ok), 7);
    ck_assert(!ok);
}
END_TEST

START_TEST(join_without_a_coordinator_names_the_variable)
{
    unsetenv("RINGLEADER_COORDINATOR");
    unsetenv("RINGLEADER_NODE_ID");
    rl_worker *w = (rl_worker *)1;
    ck_assert_int_eq(rl_worker_join(NULL, "n1", NULL, NULL, &w), RL_EINVAL);
    ck_assert_ptr_null(w);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "RINGLEADER_COORDINATOR"));
    ck_assert_int_eq(rl_worker_join("tcp://127.0.0.1:1", NULL, NULL, NULL, &w), RL_EINVAL);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "RINGLEADER_NODE_ID"));
}
END_TEST

START_TEST(bad_collective_arguments_are_refused_before_anything_is_sent)
{
    double x = 1;
    ck_assert_int_eq(rl_worker_allreduce(NULL, &x, 1, RL_F64, RL_OP_SUM), RL_EINVAL);
    ck_assert_int_eq(rl_worker_broadcast(NULL, &x, 8, 0), RL_EINVAL);
    /* A bogus handle is never touched for a bad dtype, op or buffer. */
    rl_worker *bogus = (rl_worker *)(uintptr_t)8;
    ck_assert_int_eq(rl_worker_allreduce(bogus, &x, 1, (rl_dtype)99, RL_OP_SUM), RL_EINVAL);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "dtype 99"));
    ck_assert_int_eq(rl_worker_allreduce(bogus, &x, 1, RL_F64, (rl_op)7), RL_EINVAL);
    ck_assert_int_eq(rl_worker_allreduce(bogus, NULL, 4, RL_F64, RL_OP_SUM), RL_EINVAL);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "NULL"));
    ck_assert_int_eq(rl_worker_leave(NULL), RL_OK);
}
END_TEST

START_TEST(a_report_batch_is_due_when_full_or_its_oldest_record_is_old)
{
    rl_agent_batch b;
    memset(&b, 0, sizeof(b));
    rl_agent_batch_init(&b, 3, 2, 1);
    ck_assert(!rl_agent_batch_due(&b, 1e9, 20)); /* empty: never */
    ck_assert_uint_eq(rl_agent_batch_add(&b, 5, 2.0, 1.5, 0.5, 100, 1000.0), 0);
    ck_assert(b.steps[0] == 5 && b.ms[0] == 2.0 && b.compute[0] == 1.5 && b.ar[0] == 0.5);
    ck_assert(b.rows[0] == 100 && b.done_ms[0] == 1000.0 && b.loss[0] == 0.0);
    ck_assert(!rl_agent_batch_due(&b, 1019.9, 20));
    ck_assert(rl_agent_batch_due(&b, 1020.0, 20)); /* the oldest record is 20 ms old */
    for (size_t i = 1; i < RL_AGENT_BATCH_CAP; i++) {
        ck_assert_uint_eq(rl_agent_batch_add(&b, 5 + i, 1, 1, 0, 100, 1000.0 + (double)i * 0.01),
                          i);
        ck_assert(b.first_ms == 1000.0); /* the oldest's */
        ck_assert(rl_agent_batch_due(&b, 1000.0, 20) == (i + 1 == RL_AGENT_BATCH_CAP));
    }
    rl_agent_batch_free(&b);
    ck_assert(b.k == 0 && b.steps == NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("settle");
    TCase *t = tcase_create("resume");
    tcase_add_test(t, every_member_at_the_same_count_resumes_there);
    tcase_add_test(t, a_member_that_holds_the_data_counts_the_collective_when_all_do);
    tcase_add_test(t, a_member_without_the_data_makes_every_member_redo_it);
    tcase_add_test(t, no_member_left_resumes_at_the_fallback);
    tcase_add_test(t, a_completed_collective_another_lacks_is_reported_inconsistent);
    suite_add_tcase(s, t);
    TCase *w = tcase_create("worker_api");
    tcase_add_test(w, join_without_a_coordinator_names_the_variable);
    tcase_add_test(w, bad_collective_arguments_are_refused_before_anything_is_sent);
    tcase_add_test(w, a_report_batch_is_due_when_full_or_its_oldest_record_is_old);
    suite_add_tcase(s, w);
    return rlt_run_suite(s);
}
