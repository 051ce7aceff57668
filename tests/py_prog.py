#!/usr/bin/python3
"""py_prog.py - the Python package's contract, run as a program on every node
of a job by tests/integration/test_python.sh:
  1. bad input (non-contiguous, unsupported dtype, read-only, byte-swapped,
     object, not an array, CUDA-less torch cases, unknown op, sum_exact on
     integers) raises TypeError/ValueError naming it, before any collective:
     the valid calls after them then complete on every member;
  2. allreduce sum/min/max/sum_exact on NumPy arrays and torch tensors of
     every dtype, in place (the same object, no copy), and broadcast;
  3. rank, size, epoch, blocks: the members' blocks add up to blocks_total;
  4. members calling with different counts (NODE passes 5, the others 4):
     ringleader.Error on every member naming both counts, written to
     REPORT/<node id>.txt; the next collective works;
  5. elastic.State.sync gives every member rank 0's commit;
  6. after leave(), a call raises ringleader.Error (no crash).
usage: py_prog.py REPORT_DIR NODE"""
import os
import sys

import numpy as np
import torch

import ringleader
import ringleader.elastic as elastic

report, odd_node = sys.argv[1], sys.argv[2]
w = ringleader.join()
me = w.id


def check(cond, what):
    if not cond:
        print("py_prog %s: FAIL: %s" % (me, what), file=sys.stderr, flush=True)
        sys.exit(1)


def refused(exc, words, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc as e:
        for word in words:
            check(word in str(e), "%s for %s does not name %r: %s" % (exc.__name__, args, word, e))
        return
    check(False, "no %s for %s %s" % (exc.__name__, words, args))


# 1. bad input, refused locally (a member raising here never reaches the ring)
a = np.arange(8, dtype=np.float32)
ro = np.zeros(4)
ro.flags.writeable = False
for fn in (w.allreduce, w.broadcast):
    refused(TypeError, ["not C-contiguous", "strides"], fn, a[::2])
    refused(TypeError, ["read-only"], fn, ro)
    refused(TypeError, ["object"], fn, np.array([1, None], dtype=object))
    refused(TypeError, ["list", "neither a NumPy array nor a torch.Tensor"], fn, [1.0, 2.0])
    refused(TypeError, ["not contiguous"], fn, torch.zeros(4, 3).t())
refused(TypeError, ["float16"], w.allreduce, np.zeros(4, np.float16))
refused(TypeError, ["uint8"], w.allreduce, np.zeros(4, np.uint8))
refused(TypeError, [">f4"], w.allreduce, np.zeros(4, ">f4"))
refused(TypeError, ["complex128"], w.allreduce, np.zeros(4, np.complex128))
refused(TypeError, ["float16"], w.allreduce, torch.zeros(4, dtype=torch.float16))
refused(TypeError, ["sum_exact", "integer"], w.allreduce, np.zeros(4, np.int32), op="sum_exact")
refused(ValueError, ["'avg'", "sum, min, max, sum_exact"], w.allreduce, a, op="avg")
refused(TypeError, ["root"], w.broadcast, a, root="0")

# 2. collectives on every dtype and op, in place
n, r = w.size, w.rank
tri = n * (n + 1) // 2
for dt in (np.float32, np.float64, np.int32, np.int64):
    x = np.full(5, r + 1, dt)
    ptr = x.ctypes.data
    check(w.allreduce(x) is x and x.ctypes.data == ptr, "allreduce returns x itself")
    check((x == tri).all(), "sum %s: %s, want %d" % (dt.__name__, x, tri))
    x[:] = r + 1
    w.allreduce(x, op="min")
    check((x == 1).all(), "min %s: %s" % (dt.__name__, x))
    x[:] = r + 1
    w.allreduce(x, op="max")
    check((x == n).all(), "max %s: %s" % (dt.__name__, x))
for tdt in (torch.float32, torch.float64, torch.int32, torch.int64):
    t = torch.full((2, 3), r + 1, dtype=tdt)
    ptr = t.data_ptr()
    w.allreduce(t)
    check(bool((t == tri).all()) and t.data_ptr() == ptr, "torch %s sum: %s" % (tdt, t))
x = np.full(3, 0.1 * (r + 1))
w.allreduce(x, op="sum_exact")
want = float(np.sum([0.1 * (k + 1) for k in range(n)], dtype=np.longdouble))
check(abs(x[0] - want) <= 1e-15, "sum_exact: %r, want %r" % (x[0], want))
b = np.frombuffer(bytearray(("from %d" % r).encode().ljust(16)), np.uint8).copy()
w.broadcast(b, root=0)
check(bytes(b).strip() == b"from 0", "broadcast: %r" % bytes(b))
w.barrier()

# 3. what a member is
check(isinstance(w.rank, int) and 0 <= w.rank < w.size and w.epoch >= 1, "rank/size/epoch")
nb = np.array([len(w.blocks)], np.int64)
w.allreduce(nb)
check(int(nb[0]) == w.blocks_total, "blocks: %d of %d" % (nb[0], w.blocks_total))
X, y = w.data()
check(X.dtype == np.float32 and X.shape[0] == y.shape[0] and X.flags.writeable, "data()")

# 4. different counts: an Error on every member, naming both
try:
    w.allreduce(np.zeros(5 if me == odd_node else 4))
    msg = "no error"
except ringleader.Error as e:
    msg = "%s %s" % (e.name, e)
with open(os.path.join(report, me + ".txt"), "w") as f:
    f.write(msg + "\n")
x = np.ones(2)
w.allreduce(x)
check((x == n).all(), "allreduce after the refused one: %s" % x)

# 5. elastic.State.sync: rank 0's commit everywhere
v = np.full(3, r + 7.0)
st = elastic.State(v=v, step=r + 3, lr=0.5 * (r + 1))
v[:] = -1  # not committed: sync gives the commit of rank 0
st.step = 99
st.sync()
check((v == 7.0).all() and st.step == 3 and isinstance(st.step, int) and st.lr == 0.5,
      "State.sync: v %s step %r lr %r" % (v, st.step, st.lr))

# 6. after leave
w.leave()
refused(ringleader.Error, ["RL_EINVAL"], w.allreduce, np.ones(2))
refused(ringleader.Error, ["left"], lambda: w.rank)
print("py_prog %s: ok" % me, file=sys.stderr, flush=True)
