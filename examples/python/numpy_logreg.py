#!/usr/bin/python3
"""numpy_logreg.py - logistic regression with NumPy on a Ringleader job: each
member computes the gradient sums of its blocks' rows (w.data()), the members
sum them with w.allreduce, and every member makes the built-in trainer's
update w -= lr * (grad/rows + l2*w). ringleader.elastic.run redoes a step
after a failure or a rebalance from the last commit, and gives a process
that joined a running job the model of rank 0.

Run it as the spec's program (numpy_logreg.yaml):
    PYTHONPATH=build/python build/coordinator/ringleader run examples/python/numpy_logreg.yaml
usage: numpy_logreg.py [--steps N] [--lr X] [--l2 X] [--out FILE]
Rank 0 writes the weights and the bias to --out, one line."""
import argparse
import sys

import numpy as np

import ringleader
import ringleader.elastic as elastic


def grad_sums(X, y, wb, g):
    """g[:F] weights, g[F] bias, g[F+1] loss sum, g[F+2] rows (float64)."""
    F = X.shape[1]
    z = X @ wb[:F] + wb[F]
    p = 1.0 / (1.0 + np.exp(-z))
    r = p - y
    g[:F] = r @ X
    g[F] = r.sum()
    # -y log p - (1-y) log(1-p) = log(1 + e^-|z|) + max(z, 0) - y z
    g[F + 1] = (np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0) - y * z).sum()
    g[F + 2] = len(y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--l2", type=float, default=0.0)
    ap.add_argument("--out")
    o = ap.parse_args()

    w = ringleader.join()
    X, _ = w.data()
    F = X.shape[1]
    wb = np.zeros(F + 1)                 # the model: weights, then the bias
    g = np.zeros(F + 3)
    state = elastic.State(wb=wb, step=0)

    @elastic.run
    def train(state):
        X, y = w.data()                  # this member's rows, after any change
        X, y = X.astype(np.float64), y.astype(np.float64)
        while state.step < o.steps:
            grad_sums(X, y, wb, g)
            w.allreduce(g)               # raises Replanned: train() runs again
            n = g[F + 2]
            wb[:F] -= o.lr * (g[:F] / n + o.l2 * wb[:F])
            wb[F] -= o.lr * g[F] / n
            if w.rank == 0 and (state.step % 20 == 0 or state.step + 1 == o.steps):
                print("numpy_logreg: step %d loss %.9g (%d members)"
                      % (state.step, g[F + 1] / n, w.size), file=sys.stderr, flush=True)
            state.step += 1
            state.commit()

    train(state)
    if w.rank == 0 and o.out:
        with open(o.out, "w") as f:
            f.write(" ".join("%.17g" % v for v in wb) + "\n")
    w.leave()


if __name__ == "__main__":
    main()
