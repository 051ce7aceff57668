/*
 * hello.c - the smallest program against an installed libringleader: names
 * an error code, sums a vector over a ring of one member (a real rl_ring on
 * an ipc:// endpoint) and, given a spec file, validates it.
 *
 * Build: cc hello.c $(pkg-config --cflags --libs ringleader)
 *    or: the CMakeLists.txt beside it (find_package(ringleader)).
 * Run:   ./hello [SPEC]    exits 0 when every step worked.
 * See docs/install.md.
 */
#include <ringleader/allreduce.h>
#include <ringleader/clock.h>
#include <ringleader/err.h>
#include <ringleader/ring.h>
#include <ringleader/spec.h>

#include <stdio.h>
#include <unistd.h>

/* Sums {1, 2, 3} over a one-member ring; the result must be the input. */
static int hello_allreduce(void)
{
    char url[128];
    snprintf(url, sizeof(url), "ipc:///tmp/ringleader-hello-%ld.ipc", (long)getpid());
    rl_endpoint *ep = NULL;
    rl_ring *ring = NULL;
    int rv = rl_endpoint_open(url, NULL, &ep);
    if (rv != RL_OK) goto out;
    rl_ring_member self = {.id = "hello", .url = rl_endpoint_url(ep)};
    rl_ring_config cfg = {.epoch = 1, .rank = 0, .size = 1, .members = &self};
    rv = rl_ring_form(ep, &cfg, rl_clock_ms() + 5000, &ring);
    if (rv != RL_OK) goto out;
    float v[3] = {1, 2, 3};
    rv = rl_allreduce(ring, v, v, 3, RL_F32, RL_OP_SUM, rl_clock_ms() + 5000);
    if (rv != RL_OK) goto out;
    if (v[0] != 1 || v[1] != 2 || v[2] != 3) {
        fprintf(stderr, "hello: all-reduce of one member changed the data\n");
        rv = RL_EINTERNAL;
        goto out;
    }
    printf("allreduce over %d member(s), epoch %llu: %g %g %g\n", rl_ring_size(ring),
           (unsigned long long)rl_ring_epoch(ring), v[0], v[1], v[2]);
out:
    if (rv != RL_OK)
        fprintf(stderr, "hello: allreduce on %s: %s (%s)\n", url, rl_strerror(rv), rl_errdetail());
    rl_ring_free(ring);
    if (ep) rl_endpoint_close(ep);
    return rv;
}

/* Loads and validates the spec at path; prints its summary. */
static int hello_spec(const char *path)
{
    rl_spec *spec = NULL;
    int rv = rl_spec_load(path, &spec, stderr);
    if (rv != RL_OK) return rv;
    printf("spec %s: %d node(s)\n", path, spec->n_nodes);
    rl_spec_free(spec);
    return RL_OK;
}

int main(int argc, char **argv)
{
    printf("%s: %s\n", rl_errname(RL_ETIMEDOUT), rl_strerror(RL_ETIMEDOUT));
    if (hello_allreduce() != RL_OK) return 1;
    if (argc > 1 && hello_spec(argv[1]) != RL_OK) return 1;
    printf("hello: ok\n");
    return 0;
}
