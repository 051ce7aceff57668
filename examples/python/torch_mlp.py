#!/usr/bin/python3
"""torch_mlp.py - a PyTorch MLP (64-64-10) on scikit-learn's digits, trained
on a Ringleader job: each member takes the rows of its blocks (w.data()),
computes the gradient sums of the cross-entropy on them, the members sum
them with w.allreduce (one flat buffer), and every member makes the same
full-batch gradient step. ringleader.elastic.run redoes a step after a
failure or a rebalance from the last commit, and gives a process that joined
a running job the model of rank 0.

  torch_mlp.py --write-data DIR      writes DIR/digits_train.csv (1437 rows)
                                     and DIR/digits_test.csv (360), pixels/16
  torch_mlp.py --test TEST.csv       on a Ringleader job (the spec's data is
                                     digits_train.csv; torch_mlp.yaml)
  torch_mlp.py --single TRAIN.csv --test TEST.csv
                                     the same training in one process
  torch_mlp.py --gloo TRAIN.csv --test TEST.csv
                                     the same on torch.distributed (Gloo), with
                                     RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set;
                                     rank r takes the rows of blocks r, r+N, ...
Common options: --steps N (300), --lr X (0.5), --hidden H (64), --block-rows B
(64, as the spec's data.block_rows, for --gloo), --out FILE (rank 0 writes a
JSON line: accuracy, steps, members, step_ms), --commit-every K (1).
Rank 0 prints "torch_mlp: step S loss L" lines and the test accuracy."""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

FEATURES, CLASSES = 64, 10


def write_data(d):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    order = np.random.RandomState(0).permutation(len(y))
    X, y = X[order] / 16.0, y[order]
    n_test = len(y) // 5
    os.makedirs(d, exist_ok=True)
    head = ",".join(["p%d" % i for i in range(FEATURES)] + ["label"])
    for name, a, b in (("digits_train.csv", X[n_test:], y[n_test:]),
                       ("digits_test.csv", X[:n_test], y[:n_test])):
        with open(os.path.join(d, name), "w") as f:
            f.write(head + "\n")
            for row, label in zip(a, b):
                f.write(",".join("%g" % v for v in row) + ",%d\n" % label)


def read_csv(path):
    t = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
    return t[:, :FEATURES], t[:, FEATURES]


def make_model(hidden):
    torch.manual_seed(0)  # the same initial model everywhere (sync makes sure)
    return torch.nn.Sequential(torch.nn.Linear(FEATURES, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, CLASSES))


class Trainer:
    """The model, a flat gradient buffer [grads..., loss sum, rows] and the step."""

    def __init__(self, o):
        self.o = o
        self.model = make_model(o.hidden)
        self.params = list(self.model.parameters())
        self.sizes = [p.numel() for p in self.params]
        self.n = sum(self.sizes)
        self.flat = torch.zeros(self.n + 2, dtype=torch.float32)
        self.step_s = []

    def grad_sums(self, X, y):
        """self.flat = the gradient sums of the rows X, y, their loss sum and count."""
        for p in self.params:
            p.grad = None
        if len(y):
            loss = torch.nn.functional.cross_entropy(self.model(X), y, reduction="sum")
            loss.backward()
            torch.cat([p.grad.reshape(-1) for p in self.params], out=self.flat[:self.n])
            self.flat[self.n] = loss.detach()
        else:
            self.flat.zero_()
        self.flat[self.n + 1] = float(len(y))

    def update(self):
        """The full-batch step from the summed self.flat."""
        rows = float(self.flat[self.n + 1])
        at = 0
        with torch.no_grad():
            for p, k in zip(self.params, self.sizes):
                p.sub_(self.flat[at:at + k].view_as(p), alpha=self.o.lr / rows)
                at += k
        return float(self.flat[self.n]) / rows

    def accuracy(self, path):
        X, y = read_csv(path)
        with torch.no_grad():
            pred = self.model(torch.from_numpy(X)).argmax(1).numpy()
        return 100.0 * float((pred == y.astype(np.int64)).mean())

    def log(self, step, loss, members):
        if step % 50 == 0 or step + 1 == self.o.steps:
            print("torch_mlp: step %d loss %.6f (%d members)" % (step, loss, members),
                  file=sys.stderr, flush=True)

    def report(self, members):
        acc = self.accuracy(self.o.test)
        ms = sorted(self.step_s)
        step_ms = 1e3 * ms[len(ms) // 2] if ms else 0.0
        print("torch_mlp: test accuracy %.2f%% after %d steps on %d member(s), step %.3f ms"
              % (acc, self.o.steps, members, step_ms), file=sys.stderr, flush=True)
        if self.o.out:
            with open(self.o.out, "w") as f:
                f.write(json.dumps({"accuracy": acc, "steps": self.o.steps,
                                    "members": members, "step_ms": step_ms}) + "\n")


def tensors(X, y):
    return torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y.astype(np.int64))


def run_single(o):
    t = Trainer(o)
    X, y = tensors(*read_csv(o.single))
    for step in range(o.steps):
        t0 = time.perf_counter()
        t.grad_sums(X, y)
        loss = t.update()
        t.step_s.append(time.perf_counter() - t0)
        t.log(step, loss, 1)
    t.report(1)


def run_gloo(o):
    import torch.distributed as dist
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    t = Trainer(o)
    X, y = read_csv(o.gloo)
    blocks = range(rank, (len(y) + o.block_rows - 1) // o.block_rows, size)
    rows = np.concatenate([np.arange(b * o.block_rows, min(len(y), (b + 1) * o.block_rows))
                           for b in blocks]) if len(blocks) else np.zeros(0, np.int64)
    X, y = tensors(X[rows], y[rows])
    for p in t.params:  # rank 0's model everywhere, as elastic.State.sync does
        dist.broadcast(p.data, 0)
    for step in range(o.steps):
        t0 = time.perf_counter()
        t.grad_sums(X, y)
        dist.all_reduce(t.flat)
        loss = t.update()
        t.step_s.append(time.perf_counter() - t0)
        if rank == 0:
            t.log(step, loss, size)
    if rank == 0:
        t.report(size)
    dist.destroy_process_group()


def run_ringleader(o):
    import ringleader
    import ringleader.elastic as elastic
    w = ringleader.join()
    t = Trainer(o)
    state = elastic.State(step=0, **{n.replace(".", "_"): p for n, p in
                                      t.model.named_parameters()})

    @elastic.run
    def train(state):
        X, y = tensors(*w.data())  # this member's rows, after any change
        while state.step < o.steps:
            t0 = time.perf_counter()
            t.grad_sums(X, y)
            w.allreduce(t.flat)  # raises Replanned: train() runs again
            loss = t.update()
            t.step_s.append(time.perf_counter() - t0)
            if w.rank == 0:
                t.log(state.step, loss, w.size)
            state.step += 1
            if state.step % o.commit_every == 0 or state.step == o.steps:
                state.commit()

    train(state)
    if w.rank == 0:
        t.report(w.size)
    w.leave()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write-data")
    ap.add_argument("--single")
    ap.add_argument("--gloo")
    ap.add_argument("--test")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--block-rows", type=int, default=64)
    ap.add_argument("--commit-every", type=int, default=1)
    ap.add_argument("--out")
    o = ap.parse_args()
    torch.set_num_threads(1)
    if o.write_data:
        return write_data(o.write_data)
    if not o.test:
        ap.error("--test TEST.csv is needed (torch_mlp.py --write-data DIR writes it)")
    if o.single:
        return run_single(o)
    if o.gloo:
        return run_gloo(o)
    return run_ringleader(o)


if __name__ == "__main__":
    sys.exit(main())
