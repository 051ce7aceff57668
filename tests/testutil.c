#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

int rlt_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    if (getenv("CK_FORK") == NULL) srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

char *rlt_tmpdir(void)
{
    char tmpl[] = "/tmp/rltest.XXXXXX";
    char *d = mkdtemp(tmpl);
    ck_assert_ptr_nonnull(d);
    return strdup(d);
}

void rlt_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static int any_loopback_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A loopback port free now and not handed out before in this process: the
 * kernel may offer a port it just gave again once the socket is closed, and
 * two endpoints of one test on one port would fail for the wrong reason. */
int rlt_free_port(void)
{
    static int given[256];
    static int ngiven;
    for (int tries = 0; tries < 50; tries++) {
        int p = any_loopback_port();
        int seen = 0;
        for (int i = 0; i < ngiven && i < 256; i++)
            seen |= given[i] == p;
        if (!seen) {
            given[ngiven++ % 256] = p;
            return p;
        }
    }
    ck_abort_msg("rlt_free_port: no port not handed out before in 50 tries");
    return -1;
}

uint64_t rlt_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
