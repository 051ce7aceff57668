#!/usr/bin/python3
"""python_allreduce.py - the all-reduce through the Python package, run as the
program of a Ringleader job (bench/python.sh), in the protocol of the peer
../shared/bench/torch/torch_allreduce.py: for each size, a float32 NumPy
array of max(1, B/4) elements, 3 warm-ups then ITERS timed calls, each after
a barrier; time_us is the slowest member's median. Rank 0 appends one line
per size to OUT:
  peer=ringleader-python nodes=N bytes=B time_us=T algbw_GBps=A busbw_GBps=W ok=0|1
usage: python_allreduce.py OUT BYTES[,BYTES...] [ITERS]"""
import statistics
import sys
import time

import numpy as np

import ringleader


def parse(s):
    m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * m[s[-1]] if s[-1] in m else int(s)


def main():
    out, sizes = sys.argv[1], [parse(s) for s in sys.argv[2].split(",")]
    iters = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    w = ringleader.join()
    n, r = w.size, w.rank
    lines = []
    for b in sizes:
        count = max(1, b // 4)
        x = np.full(count, float(r + 1), np.float32)
        want = float(n * (n + 1) // 2)
        times = []
        for i in range(iters + 3):
            x.fill(float(r + 1))
            w.barrier()
            t = time.perf_counter()
            w.allreduce(x)
            dt = time.perf_counter() - t
            if i >= 3:
                times.append(dt)
        ok = bool((x == want).all())
        agg = np.array([statistics.median(times)], np.float64)
        w.allreduce(agg, op="max")
        okall = np.array([int(ok)], np.int32)
        w.allreduce(okall, op="min")
        med = float(agg[0])
        alg = count * 4 / med / 1e9
        lines.append("peer=ringleader-python nodes=%d bytes=%d time_us=%.2f algbw_GBps=%.4f "
                     "busbw_GBps=%.4f ok=%d" % (n, count * 4, med * 1e6, alg,
                                                alg * 2 * (n - 1) / n, int(okall[0])))
    if r == 0:
        with open(out, "a") as f:
            f.write("".join(line + "\n" for line in lines))
    w.leave()


if __name__ == "__main__":
    main()
