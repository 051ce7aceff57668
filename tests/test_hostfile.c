/* test_hostfile.c - mpirun-style hostfiles (lib/hostfile.c): hosts and
 * slots, comments and blank lines, repeated hosts, and every bad line
 * reported as FILE:LINE: message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostfile.h"
#include "rli.h"
#include "testutil.h"

static int parse(const char *text, rli_hostfile *hf)
{
    return rli_hostfile_parse("hosts", text, strlen(text), hf);
}

START_TEST(hosts_and_slots)
{
    rli_hostfile hf;
    ck_assert_int_eq(parse("# the lab\n"
                           "alpha slots=4\n"
                           "\n"
                           "   \t\n"
                           "10.200.0.2   # one slot by default\n"
                           "gamma.example.org\tslots=2\r\n"
                           "alpha slots=1 # adds to alpha's\n"
                           "last-host_1",
                           &hf),
                     RL_OK);
    ck_assert_uint_eq(hf.n, 4);
    ck_assert_str_eq(hf.hosts[0].name, "alpha");
    ck_assert_int_eq(hf.hosts[0].slots, 5);
    ck_assert_uint_eq(hf.hosts[0].line, 2);
    ck_assert_str_eq(hf.hosts[1].name, "10.200.0.2");
    ck_assert_int_eq(hf.hosts[1].slots, 1);
    ck_assert_uint_eq(hf.hosts[1].line, 5);
    ck_assert_str_eq(hf.hosts[2].name, "gamma.example.org");
    ck_assert_int_eq(hf.hosts[2].slots, 2);
    ck_assert_str_eq(hf.hosts[3].name, "last-host_1");
    ck_assert_int_eq(hf.hosts[3].slots, 1);
    ck_assert_int_eq(hf.total_slots, 9);
    ck_assert_int_eq(hf.n_errors, 0);
    rli_hostfile_fini(&hf);
}
END_TEST

static const struct {
    const char *text, *expect;
} bad_hostfiles[] = {
    {"", "hosts: no hosts (write one `HOST [slots=K]` per line)"},
    {"# only a comment\n\n", "hosts: no hosts"},
    {"a\nb slots=0\n", "hosts:2: 'slots=0': slots must be a number from 1 to 1024"},
    {"a slots=x\n", "hosts:1: 'slots=x': slots must be a number from 1 to 1024"},
    {"a slots=\n", "hosts:1: 'slots=': slots must be a number from 1 to 1024"},
    {"a slots=99999999999\n", "hosts:1: 'slots=99999999999': slots must be a number from 1 to"},
    {"a slots=1025\n", "hosts:1: 'slots=1025': slots must be a number from 1 to 1024"},
    {"a cpus=2\n", "hosts:1: unknown 'cpus=2' (expected slots=K after the host)"},
    {"a slots = 2\n", "hosts:1: unknown 'slots' (expected slots=K after the host)"},
    {"\n\na slots=2 slots=3\n", "hosts:3: 'slots=3' after slots= (one slots=K per line)"},
    {"a slots=2 b c\n", "hosts:1: 'b' after slots= (one slots=K per line)"},
    {"a:7700\n", "hosts:1: 'a:7700': write a host name or an IPv4 address (no port, no IPv6)"},
    {"[::1]\n", "hosts:1: '[::1]': write a host name or an IPv4 address"},
    {"a/b\n", "hosts:1: 'a/b' is not a host name (letters, digits, '.', '-' and '_')"},
    {"-a\n", "hosts:1: '-a' is not a host name"},
    {"a slots=1000\nb slots=25\n", "hosts:2: more than 1024 nodes in all"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
     "hosts:1: host 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is longer "
     "than 58 "
     "characters"},
};

START_TEST(bad_lines_are_reported_with_their_line)
{
    rli_hostfile hf;
    ck_assert_int_eq(parse(bad_hostfiles[_i].text, &hf), RL_ECONFIG);
    ck_assert_int_ge(hf.n_errors, 1);
    ck_assert_msg(
        strncmp(hf.errors[0], bad_hostfiles[_i].expect, strlen(bad_hostfiles[_i].expect)) == 0,
        "case %d: expected\n  %s\ngot\n  %s", _i, bad_hostfiles[_i].expect, hf.errors[0]);
    ck_assert_msg(strstr(rl_errdetail(), hf.errors[0]) != NULL, "detail: %s", rl_errdetail());
    rli_hostfile_fini(&hf);
}
END_TEST

START_TEST(every_bad_line_is_reported)
{
    rli_hostfile hf;
    ck_assert_int_eq(parse("good\nbad:1\ngood slots=2\nx slots=y\n", &hf), RL_ECONFIG);
    ck_assert_int_eq(hf.n_errors, 2);
    ck_assert_ptr_nonnull(strstr(hf.errors[0], "hosts:2: "));
    ck_assert_ptr_nonnull(strstr(hf.errors[1], "hosts:4: "));
    rli_hostfile_fini(&hf);

    /* A flood of bad lines keeps the first few and counts the rest. */
    char text[4096] = "";
    for (int i = 0; i < 40; i++)
        strcat(text, "?\n");
    ck_assert_int_eq(parse(text, &hf), RL_ECONFIG);
    ck_assert_int_eq(hf.n_errors, 40);
    ck_assert_ptr_nonnull(strstr(hf.errors[RLI_HOSTFILE_MAX_ERRORS - 1], "hosts:16: "));
    rli_hostfile_fini(&hf);
}
END_TEST

START_TEST(files_are_read_with_bounds)
{
    char *dir = rlt_tmpdir(), path[512];
    rli_hostfile hf;
    snprintf(path, sizeof(path), "%s/hosts", dir);
    rlt_write_file(path, "h1 slots=2\nh2\n", 14);
    ck_assert_int_eq(rli_hostfile_load(path, &hf), RL_OK);
    ck_assert_int_eq(hf.total_slots, 3);
    rli_hostfile_fini(&hf);

    snprintf(path, sizeof(path), "%s/missing", dir);
    ck_assert_int_ne(rli_hostfile_load(path, &hf), RL_OK);
    ck_assert_ptr_nonnull(strstr(hf.errors[0], "missing: cannot open: "));
    rli_hostfile_fini(&hf);

    snprintf(path, sizeof(path), "%s/big", dir);
    char *big = malloc(RLI_HOSTFILE_MAX_BYTES + 10);
    memset(big, '#', RLI_HOSTFILE_MAX_BYTES + 10);
    rlt_write_file(path, big, RLI_HOSTFILE_MAX_BYTES + 10);
    free(big);
    ck_assert_int_eq(rli_hostfile_load(path, &hf), RL_ECONFIG);
    ck_assert_ptr_nonnull(strstr(hf.errors[0], "big: over "));
    rli_hostfile_fini(&hf);

    const char nul[] = "a\0b\n";
    ck_assert_int_eq(rli_hostfile_parse("hosts", nul, sizeof(nul) - 1, &hf), RL_ECONFIG);
    ck_assert_str_eq(hf.errors[0], "hosts:1: contains a NUL character");
    rli_hostfile_fini(&hf);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hostfile");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, hosts_and_slots);
    tcase_add_loop_test(tc, bad_lines_are_reported_with_their_line, 0,
                        (int)(sizeof(bad_hostfiles) / sizeof(bad_hostfiles[0])));
    tcase_add_test(tc, every_bad_line_is_reported);
    tcase_add_test(tc, files_are_read_with_bounds);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
