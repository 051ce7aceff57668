/*
 * test_checkpoint.c - the checkpoint file (lib/checkpoint.c): what is
 * written comes back the same bytes; a truncated, bit-flipped,
 * foreign-version or other-spec file is refused with an error naming the
 * file and what is wrong; the write keeps the previous checkpoint. No
 * processes or sockets.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringleader/checkpoint.h"
#include "ringleader/err.h"
#include "testutil.h"

/* A small job's checkpoint: 3 features, 2 classes, 5 blocks on 3 nodes,
 * 4 steps with a hole, 2 events. The arrays live in static storage. */
static double ck_w[6] = {0.1, -2.5e-300, 3.0, NAN, 1e300, -0.0};
static double ck_b[2] = {0.5, -0.25};
static int32_t ck_owner[5] = {0, 1, 2, -1, 1};
static double ck_node_ms[3] = {1.5, NAN, 2.25};
static rl_ckpt_step ck_steps[3] = {
    {.step = 0, .t_ms = 1, .loss = 9, .ms = 2, .allreduce_ms = 0.5, .imbalance = 1.1},
    {.step = 1, .t_ms = 2, .loss = 8, .ms = 2, .allreduce_ms = 0.5, .imbalance = 0},
    {.step = 3, .t_ms = 4, .loss = 7, .ms = 3, .allreduce_ms = 0.25, .imbalance = 1.3},
};
static rl_ckpt_event ck_events[2] = {
    {.t_ms = 0, .step = 0, .kind = "join", .node = "n1", .detail = "pid 1", .recovery_ms = -1},
    {.t_ms = 3,
     .step = 2,
     .kind = "failed",
     .node = "n3",
     .detail = "no heartbeat",
     .recovery_ms = 12.5},
};

static rl_checkpoint sample(void)
{
    ck_steps[2].node_ms = ck_node_ms;
    ck_steps[2].n_node_ms = 3;
    return (rl_checkpoint){.spec_hash = 0x1234567890abcdefull,
                           .incarnation = 77,
                           .step = 4,
                           .steps_total = 10,
                           .epoch = 3,
                           .elapsed_ms = 123.5,
                           .started_unix_ms = 1700000000000ull,
                           .coverage_checked = 4,
                           .model_type = 0,
                           .features = 3,
                           .classes = 2,
                           .w = ck_w,
                           .b = ck_b,
                           .owner = ck_owner,
                           .n_blocks = 5,
                           .n_nodes = 3,
                           .steps = ck_steps,
                           .n_steps = 3,
                           .events = ck_events,
                           .n_events = 2};
}

static void encode_sample(void **buf, size_t *len)
{
    rl_checkpoint c = sample();
    ck_assert_int_eq(rl_checkpoint_encode(&c, buf, len), RL_OK);
    ck_assert_uint_gt(*len, RL_CHECKPOINT_HEADER);
}

/* Decoding buf fails with err and a detail holding `says`. */
static void refused(const void *buf, size_t len, int err, const char *says)
{
    rl_checkpoint c;
    int rv = rl_checkpoint_decode(buf, len, &c);
    rl_checkpoint_fini(&c);
    ck_assert_msg(rv == err, "len %zu: got %s (%s), wanted %s", len, rl_errname(rv), rl_errdetail(),
                  rl_errname(err));
    ck_assert_msg(strstr(rl_errdetail(), says) != NULL, "detail '%s' does not say '%s'",
                  rl_errdetail(), says);
}

START_TEST(crc32c_matches_the_published_check_value)
{
    ck_assert_uint_eq(rl_crc32c("123456789", 9), 0xe3069283u);
    ck_assert_uint_eq(rl_crc32c("", 0), 0);
}
END_TEST

START_TEST(what_is_written_comes_back_the_same_bytes)
{
    void *buf;
    size_t len;
    encode_sample(&buf, &len);
    rl_checkpoint c;
    ck_assert_int_eq(rl_checkpoint_decode(buf, len, &c), RL_OK);
    rl_checkpoint s = sample();
    ck_assert_uint_eq(c.spec_hash, s.spec_hash);
    ck_assert_uint_eq(c.incarnation, 77);
    ck_assert_uint_eq(c.step, 4);
    ck_assert_uint_eq(c.steps_total, 10);
    ck_assert_uint_eq(c.epoch, 3);
    ck_assert(c.elapsed_ms == 123.5);
    ck_assert_uint_eq(c.started_unix_ms, s.started_unix_ms);
    ck_assert_uint_eq(c.features, 3);
    ck_assert_uint_eq(c.classes, 2);
    ck_assert_mem_eq(c.w, ck_w, sizeof(ck_w)); /* NaN and -0.0 too: the bytes */
    ck_assert_mem_eq(c.b, ck_b, sizeof(ck_b));
    ck_assert_uint_eq(c.n_blocks, 5);
    ck_assert_mem_eq(c.owner, ck_owner, sizeof(ck_owner));
    ck_assert_uint_eq(c.n_steps, 3);
    ck_assert_uint_eq(c.steps[2].step, 3);
    ck_assert(c.steps[2].loss == 7);
    ck_assert_uint_eq(c.steps[2].n_node_ms, 3);
    ck_assert_mem_eq(c.steps[2].node_ms, ck_node_ms, sizeof(ck_node_ms));
    ck_assert_ptr_null(c.steps[0].node_ms);
    ck_assert_uint_eq(c.n_events, 2);
    ck_assert_str_eq(c.events[1].kind, "failed");
    ck_assert_str_eq(c.events[1].node, "n3");
    ck_assert_str_eq(c.events[1].detail, "no heartbeat");
    ck_assert(c.events[1].recovery_ms == 12.5);
    ck_assert_int_eq(c.events[1].step, 2);
    rl_checkpoint_fini(&c);
    free(buf);
}
END_TEST

START_TEST(a_file_truncated_at_eight_points_is_refused_as_truncated)
{
    void *buf;
    size_t len;
    encode_sample(&buf, &len);
    size_t cut[8] = {0,
                     1,
                     8,
                     RL_CHECKPOINT_HEADER - 1,
                     RL_CHECKPOINT_HEADER,
                     RL_CHECKPOINT_HEADER + 1,
                     len / 2,
                     len - 1};
    for (int i = 0; i < 8; i++)
        refused(buf, cut[i], RL_EDATA, "truncated");
    free(buf);
}
END_TEST

START_TEST(a_flipped_byte_in_the_payload_is_refused_as_corrupt)
{
    void *buf;
    size_t len;
    encode_sample(&buf, &len);
    unsigned char *p = buf;
    for (size_t at = RL_CHECKPOINT_HEADER; at < len; at += 7) {
        p[at] ^= 0x10;
        refused(buf, len, RL_EDATA, "checksum mismatch");
        p[at] ^= 0x10;
    }
    p[12] ^= 1; /* the checksum itself */
    refused(buf, len, RL_EDATA, "checksum mismatch");
    p[12] ^= 1;
    p[0] ^= 0x20; /* the magic */
    refused(buf, len, RL_EDATA, "not a ringleader checkpoint");
    p[0] ^= 0x20;
    p[16] ^= 1; /* the length */
    refused(buf, len, RL_EDATA, "bytes");
    p[16] ^= 1;
    rl_checkpoint c;
    ck_assert_int_eq(rl_checkpoint_decode(buf, len, &c), RL_OK); /* all restored */
    rl_checkpoint_fini(&c);
    free(buf);
}
END_TEST

START_TEST(another_format_version_is_refused_naming_both_versions)
{
    void *buf;
    size_t len;
    encode_sample(&buf, &len);
    unsigned char *p = buf;
    p[8] = RL_CHECKPOINT_VERSION + 1;
    refused(buf, len, RL_EVERSION, "format version 2, this ringleader reads version 1");
    free(buf);
}
END_TEST

START_TEST(a_well_checksummed_payload_that_does_not_add_up_is_refused)
{
    rl_checkpoint c = sample();
    int32_t bad_owner[5] = {0, 1, 7, -1, 1}; /* node 7 of 3 */
    c.owner = bad_owner;
    void *buf;
    size_t len;
    ck_assert_int_eq(rl_checkpoint_encode(&c, &buf, &len), RL_OK);
    refused(buf, len, RL_EDATA, "owner[2]: node 7 of 3");
    free(buf);
    c = sample();
    c.step = 3; /* step 3 recorded in a checkpoint at step 3 */
    ck_assert_int_eq(rl_checkpoint_encode(&c, &buf, &len), RL_OK);
    refused(buf, len, RL_EDATA, "steps.step[2]");
    free(buf);
    c = sample();
    c.step = 11; /* past steps_total */
    c.n_steps = 0;
    ck_assert_int_eq(rl_checkpoint_encode(&c, &buf, &len), RL_OK);
    refused(buf, len, RL_EDATA, "past steps_total");
    free(buf);
}
END_TEST

START_TEST(a_checkpoint_of_another_spec_is_refused_naming_the_file)
{
    char *dir = rlt_tmpdir();
    void *buf;
    size_t len;
    encode_sample(&buf, &len);
    ck_assert_int_eq(rl_checkpoint_write_file(dir, buf, len), RL_OK);
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, RL_CHECKPOINT_FILE);
    rl_checkpoint c;
    ck_assert_int_eq(rl_checkpoint_read(path, 0x1234567890abcdefull, &c), RL_OK);
    rl_checkpoint_fini(&c);
    ck_assert_int_eq(rl_checkpoint_read(path, 42, &c), RL_EPRECOND);
    rl_checkpoint_fini(&c);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), path));
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), "another spec"));
    free(buf);
    free(dir);
}
END_TEST

START_TEST(errors_reading_a_file_name_it_and_say_what_is_wrong)
{
    char *dir = rlt_tmpdir();
    void *buf;
    size_t len;
    encode_sample(&buf, &len);
    char path[4200];
    snprintf(path, sizeof(path), "%s/cut.rlc", dir);
    rlt_write_file(path, buf, len - 5);
    rl_checkpoint c;
    ck_assert_int_eq(rl_checkpoint_read(path, 0, &c), RL_EDATA);
    rl_checkpoint_fini(&c);
    char want[4400];
    snprintf(want, sizeof(want), "checkpoint %s: truncated", path);
    ck_assert_msg(strstr(rl_errdetail(), want) != NULL, "detail: %s", rl_errdetail());
    snprintf(path, sizeof(path), "%s/none.rlc", dir);
    ck_assert_int_eq(rl_checkpoint_read(path, 0, &c), RL_ENOTFOUND);
    rl_checkpoint_fini(&c);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), path));
    free(buf);
    free(dir);
}
END_TEST

/* The whole file at dir/name. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char *b = malloc(1 << 20);
    *len = fread(b, 1, 1 << 20, f);
    fclose(f);
    return b;
}

START_TEST(a_write_keeps_the_previous_checkpoint_and_leaves_no_temporary)
{
    char *dir = rlt_tmpdir();
    char sub[4200];
    snprintf(sub, sizeof(sub), "%s/a/b", dir); /* created */
    rl_checkpoint c = sample();
    void *one, *two;
    size_t n1, n2, got;
    ck_assert_int_eq(rl_checkpoint_encode(&c, &one, &n1), RL_OK);
    c.step = 5;
    ck_assert_int_eq(rl_checkpoint_encode(&c, &two, &n2), RL_OK);
    ck_assert_int_eq(rl_checkpoint_write_file(sub, one, n1), RL_OK);
    ck_assert_int_eq(rl_checkpoint_write_file(sub, two, n2), RL_OK);
    char *cur = slurp(sub, RL_CHECKPOINT_FILE, &got);
    ck_assert_uint_eq(got, n2);
    ck_assert_mem_eq(cur, two, n2);
    free(cur);
    char *prev = slurp(sub, RL_CHECKPOINT_PREV_FILE, &got);
    ck_assert_uint_eq(got, n1);
    ck_assert_mem_eq(prev, one, n1);
    free(prev);
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s/.%s.%d", sub, RL_CHECKPOINT_FILE, (int)getpid());
    ck_assert_int_ne(access(tmp, F_OK), 0);
    free(one);
    free(two);
    free(dir);
}
END_TEST

START_TEST(a_write_into_a_directory_that_cannot_be_made_fails_naming_it)
{
    char *dir = rlt_tmpdir();
    char file[4200], sub[4300];
    snprintf(file, sizeof(file), "%s/plain", dir);
    rlt_write_file(file, "x", 1);
    snprintf(sub, sizeof(sub), "%s/inside", file);
    ck_assert_int_eq(rl_checkpoint_write_file(sub, "abc", 3), RL_EIO);
    ck_assert_ptr_nonnull(strstr(rl_errdetail(), sub));
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("file");
    tcase_add_test(tc, crc32c_matches_the_published_check_value);
    tcase_add_test(tc, what_is_written_comes_back_the_same_bytes);
    tcase_add_test(tc, a_file_truncated_at_eight_points_is_refused_as_truncated);
    tcase_add_test(tc, a_flipped_byte_in_the_payload_is_refused_as_corrupt);
    tcase_add_test(tc, another_format_version_is_refused_naming_both_versions);
    tcase_add_test(tc, a_well_checksummed_payload_that_does_not_add_up_is_refused);
    tcase_add_test(tc, a_checkpoint_of_another_spec_is_refused_naming_the_file);
    tcase_add_test(tc, errors_reading_a_file_name_it_and_say_what_is_wrong);
    tcase_add_test(tc, a_write_keeps_the_previous_checkpoint_and_leaves_no_temporary);
    tcase_add_test(tc, a_write_into_a_directory_that_cannot_be_made_fails_naming_it);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
