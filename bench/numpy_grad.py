#!/usr/bin/python3
"""numpy peer of `ringleader bench train`: the linear-regression gradient
X.T @ (X @ w - y) over a rows x features matrix, in float32 and float64.

One untimed warm-up pass, then the median of --iters timed passes. One line
per dtype, in the format of `ringleader bench train`:

  peer=numpy bench=train model=linear rows=.. features=.. dtype=f32|f64
  pass_ms=.. rows_per_s=.. GBps=.. iters=.. min_ms=.. max_ms=.. blas=.. threads=..

GBps = rows * features * itemsize / pass time (1 GB = 1e9 B), the feature
bytes of one pass, as for ringleader; numpy's two matrix-vector products
read X twice, so its memory traffic is twice that figure. blas= names the
BLAS library numpy has loaded (read from /proc/self/maps) and threads= its
thread count when it can be asked (OpenBLAS), else 1 for the reference BLAS.
openblas_env= shows OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as this process saw
them ("unset" when neither is set).

Uses Debian's python3-numpy (run it with /usr/bin/python3); installs nothing.
"""
import argparse
import ctypes
import os
import statistics
import sys
import time

import numpy as np


def loaded_blas():
    """(path, threads) of the BLAS library mapped into this process."""
    path = "unknown"
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                name = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(name)
                if "blas" in base or "mkl" in base or "blis" in base:
                    path = os.path.realpath(name)
                    if "openblas" in base:
                        break
    except OSError:
        pass
    threads = 1
    if "openblas" in path:
        try:
            lib = ctypes.CDLL(path)
            threads = int(lib.openblas_get_num_threads())
        except (OSError, AttributeError):
            threads = -1
    return path, threads


def one_dtype(rows, features, dtype, iters, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32).astype(dtype)
    w_true = rng.standard_normal(features).astype(dtype)
    y = (X @ w_true + dtype(0.1) * rng.standard_normal(rows).astype(dtype)).astype(dtype)
    w = w_true.copy()

    def grad_pass():
        return X.T @ (X @ w - y)

    g = grad_pass()  # warm-up
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        g = grad_pass()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return med, min(times), max(times), float(np.abs(g).sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2000000)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--dtype", default="f32,f64", help="f32, f64 or f32,f64")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    if a.rows < 1 or a.features < 1 or a.iters < 1:
        ap.error("rows, features and iters must be >= 1")
    dtypes = {"f32": np.float32, "f64": np.float64}
    names = a.dtype.split(",")
    if any(n not in dtypes for n in names):
        ap.error("--dtype: f32, f64 or f32,f64")
    env = ",".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                   if k in os.environ) or "unset"
    for n in names:
        dt = dtypes[n]
        med, mn, mx, check = one_dtype(a.rows, a.features, dt, a.iters, a.seed)
        blas, threads = loaded_blas()
        nbytes = a.rows * a.features * np.dtype(dt).itemsize
        print(f"peer=numpy bench=train model=linear rows={a.rows} features={a.features} "
              f"dtype={n} pass_ms={med * 1e3:.3f} rows_per_s={a.rows / med:.4g} "
              f"GBps={nbytes / med / 1e9:.3f} iters={a.iters} min_ms={mn * 1e3:.3f} "
              f"max_ms={mx * 1e3:.3f} numpy={np.__version__} blas={blas} threads={threads} "
              f"openblas_env={env} check={check:.6g}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
