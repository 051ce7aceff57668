/* testutil.h - small helpers shared by the Check tests. */
#ifndef RL_TESTUTIL_H
#define RL_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* Runs a suite in fork mode and returns the process exit code. */
int rlt_run_suite(Suite *s);

/* A fresh, empty temporary directory (created with mkdtemp). Caller frees. */
char *rlt_tmpdir(void);

/* Writes len bytes to path; aborts the test on failure. */
void rlt_write_file(const char *path, const void *data, size_t len);

/* A free TCP port on 127.0.0.1 (bound with port 0, then released). */
int rlt_free_port(void);

/* Deterministic xorshift64* PRNG for mutation tests. */
uint64_t rlt_rand(uint64_t *state);

#endif
