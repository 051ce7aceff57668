/*
 * linear.c - a linear model (squared loss) trained with the worker API on
 * this node's blocks of the job's data: the gradient sums of every member
 * are added with rl_worker_allreduce and every member applies the same
 * update, as the built-in trainer does. On RL_EREPLAN (a member failed,
 * came back, or blocks moved) it takes its new blocks, re-syncs the model
 * from rank 0 and redoes the step. See docs/worker-api.md.
 *
 *   linear [--steps N] [--lr X] [--l2 X] [--out FILE]
 *
 * Started by `ringleader run SPEC` with a `program:` section (or by
 * `ringleader-node --exec -- linear ...`): everything else comes from the
 * environment. Rank 0 writes the model to --out: "w0 w1 ... b", one line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringleader/worker.h>

typedef struct opts {
    long steps;
    double lr, l2;
    const char *out;
} opts;

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.steps = 100, .lr = 0.1, .l2 = 0, .out = NULL};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--steps") == 0)
            o->steps = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--lr") == 0)
            o->lr = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--l2") == 0)
            o->l2 = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--out") == 0)
            o->out = argv[i + 1];
        else
            return -1;
    }
    return argc % 2 == 1 && o->steps > 0 ? 0 : -1;
}

/* Gradient and loss sums of the rows: g[0..F) weights, g[F] bias, g[F+1]
 * loss, g[F+2] rows. */
static void grad_sums(const float *X, const float *y, size_t rows, size_t F, const double *w,
                      double b, double *g)
{
    memset(g, 0, (F + 3) * sizeof(double));
    for (size_t r = 0; r < rows; r++) {
        const float *x = X + r * F;
        double p = b;
        for (size_t f = 0; f < F; f++)
            p += w[f] * x[f];
        double e = p - y[r];
        for (size_t f = 0; f < F; f++)
            g[f] += e * x[f];
        g[F] += e;
        g[F + 1] += 0.5 * e * e;
    }
    g[F + 2] = (double)rows;
}

static int fail(const char *what, int rv)
{
    fprintf(stderr, "linear: %s: %s (%s)\n", what, rl_errdetail(), rl_errname(rv));
    return 1;
}

int main(int argc, char **argv)
{
    opts o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: linear [--steps N] [--lr X] [--l2 X] [--out FILE]\n");
        return 2;
    }
    rl_worker *w;
    int rv = rl_worker_join(NULL, NULL, NULL, NULL, &w);
    if (rv != RL_OK) return fail("join", rv);
    const float *X, *y;
    size_t rows, F;
    if ((rv = rl_worker_data(w, &X, &y, &rows, &F)) != RL_OK) return fail("data", rv);
    /* the model, then the step counter: what a newcomer gets from rank 0 */
    double *m = calloc(F + 2, sizeof(double)), *g = calloc(F + 3, sizeof(double));
    int sync = rl_worker_step(w) > 0; /* joined a running job */
    long t = 0;
    while (t < o.steps) {
        if (sync) {
            m[F + 1] = (double)t;
            rv = rl_worker_broadcast(w, m, (F + 2) * sizeof(double), 0);
            if (rv == RL_EREPLAN) continue;
            if (rv != RL_OK) return fail("broadcast", rv);
            t = (long)m[F + 1];
            sync = 0;
        }
        if ((rv = rl_worker_data(w, &X, &y, &rows, &F)) != RL_OK) return fail("data", rv);
        grad_sums(X, y, rows, F, m, m[F], g);
        rv = rl_worker_allreduce(w, g, F + 3, RL_F64, RL_OP_SUM);
        if (rv == RL_EREPLAN) { /* new blocks or members: redo the step */
            fprintf(stderr, "linear: %s\n", rl_errdetail());
            sync = 1;
            continue;
        }
        if (rv != RL_OK) return fail("allreduce", rv);
        double n = g[F + 2];
        for (size_t f = 0; f < F; f++)
            m[f] -= o.lr * (g[f] / n + o.l2 * m[f]);
        m[F] -= o.lr * g[F] / n;
        if (rl_worker_rank(w) == 0 && (t % 20 == 0 || t + 1 == o.steps))
            fprintf(stderr, "linear: step %ld loss %.9g (%zu members)\n", t, g[F + 1] / n,
                    (size_t)rl_worker_size(w));
        t++;
    }
    if (rl_worker_rank(w) == 0 && o.out != NULL) {
        FILE *f = fopen(o.out, "w");
        if (f == NULL) return fail("--out", RL_EIO);
        for (size_t k = 0; k <= F; k++)
            fprintf(f, "%s%.17g", k ? " " : "", m[k]);
        fputc('\n', f);
        fclose(f);
    }
    free(m);
    free(g);
    rv = rl_worker_leave(w);
    return rv == RL_OK ? 0 : fail("leave", rv);
}
