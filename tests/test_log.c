/* test_log.c - log lines: the wall-clock prefix in ISO-8601 UTC with
 * milliseconds, then the tag and level as before (see docs/operations.md). */
#define _GNU_SOURCE /* strptime, timegm */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringleader/log.h"
#include "testutil.h"

START_TEST(time_is_iso8601_utc_with_milliseconds)
{
    char buf[RL_LOG_TIME_LEN];
    ck_assert_str_eq(rl_log_format_time(0, buf, sizeof(buf)), "1970-01-01T00:00:00.000Z");
    /* 2026-12-02T17:03:37.123Z */
    ck_assert_str_eq(rl_log_format_time(1796231017123LL, buf, sizeof(buf)),
                     "2026-12-02T17:03:37.123Z");
    ck_assert_str_eq(rl_log_format_time(1796231017005LL, buf, sizeof(buf)),
                     "2026-12-02T17:03:37.005Z");
    /* A leap day and the last millisecond of a year. */
    ck_assert_str_eq(rl_log_format_time(1709251199999LL, buf, sizeof(buf)),
                     "2024-02-29T23:59:59.999Z");
    ck_assert_str_eq(rl_log_format_time(1735689599999LL, buf, sizeof(buf)),
                     "2024-12-31T23:59:59.999Z");
    /* Before 1970 the milliseconds still count up within the second. */
    ck_assert_str_eq(rl_log_format_time(-1, buf, sizeof(buf)), "1969-12-31T23:59:59.999Z");
    /* Cut to the buffer, never past it. */
    char small[11];
    ck_assert_str_eq(rl_log_format_time(0, small, sizeof(small)), "1970-01-01");
}
END_TEST

/* Runs one rl_log_info with stderr sent to a pipe; returns the line. */
static void capture_line(char *out, size_t size)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fds[1], STDERR_FILENO), 0);
    rl_log_set_level(RL_LOG_INFO);
    rl_log_set_tag("coord");
    rl_log_info("node %s joined", "n1");
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], out, size - 1);
    close(fds[0]);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
}

START_TEST(a_line_starts_with_the_wall_clock)
{
    char line[256];
    time_t before = time(NULL);
    capture_line(line, sizeof(line));
    time_t after = time(NULL);
    regex_t re;
    ck_assert_int_eq(
        regcomp(&re,
                "^\\[[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                "coord info\\] node n1 joined\n$",
                REG_EXTENDED | REG_NOSUB),
        0);
    ck_assert_msg(regexec(&re, line, 0, NULL, 0) == 0, "unexpected log line: %s", line);
    regfree(&re);
    /* The time is now: between the clock read before and after, to the second. */
    struct tm tm = {0};
    ck_assert_ptr_nonnull(strptime(line + 1, "%Y-%m-%dT%H:%M:%S", &tm));
    time_t t = timegm(&tm);
    ck_assert_msg(t >= before && t <= after, "log time %ld not in [%ld, %ld]", (long)t,
                  (long)before, (long)after);
}
END_TEST

START_TEST(json_format_writes_one_object_per_line)
{
    setenv("RINGLEADER_LOG_FORMAT", "json", 1); /* read at the first line (a fresh fork) */
    char line[512];
    capture_line(line, sizeof(line));
    ck_assert(rl_log_is_json());
    regex_t re;
    ck_assert_int_eq(
        regcomp(
            &re,
            "^\\{\"time\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z\","
            "\"level\":\"info\",\"node\":\"coord\",\"message\":\"node n1 joined\","
            "\"fields\":\\{\"pid\":[0-9]+\\}\\}\n$",
            REG_EXTENDED | REG_NOSUB),
        0);
    ck_assert_msg(regexec(&re, line, 0, NULL, 0) == 0, "unexpected log line: %s", line);
    regfree(&re);
}
END_TEST

START_TEST(json_format_escapes_the_message)
{
    setenv("RINGLEADER_LOG_FORMAT", "json", 1);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(dup2(fds[1], STDERR_FILENO), 0);
    rl_log_set_tag("n\"2");
    rl_log_warn("a \"quote\", a \\ and a\nnewline\t");
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char out[512];
    ssize_t n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_ptr_nonnull(strstr(out, "\"node\":\"n\\\"2\""));
    ck_assert_ptr_nonnull(
        strstr(out, "\"message\":\"a \\\"quote\\\", a \\\\ and a\\u000anewline\\u0009\""));
    ck_assert_int_eq(strchr(out, '\n') - out, n - 1); /* one line */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("time");
    tcase_add_test(tc, time_is_iso8601_utc_with_milliseconds);
    tcase_add_test(tc, a_line_starts_with_the_wall_clock);
    tcase_add_test(tc, json_format_writes_one_object_per_line);
    tcase_add_test(tc, json_format_escapes_the_message);
    suite_add_tcase(s, tc);
    return rlt_run_suite(s);
}
