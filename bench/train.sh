#!/usr/bin/env bash
# bench/train.sh - the single-node gradient kernel against numpy, back to back
# for each shape: `ringleader bench train` (our kernel on one core, plus
# memcpy bandwidth from the same process), then bench/numpy_grad.py
# (X.T @ (X @ w - y) in float32 and float64). Prints every result line.
#
#   bench/train.sh                         # 50000x64 and 2000000x64
#   ROWS="50000" ITERS=5 bench/train.sh
#
# Env: RINGLEADER (the program; default build/coordinator/ringleader),
# PYTHON (a python3 that has numpy; default /usr/bin/python3, Debian's
# python3-numpy), ROWS ("50000 2000000"), FEATURES (64), MODELS
# ("linear,logistic,softmax"; numpy does linear only), ITERS (10),
# TIMEOUT (seconds per launch, 300).
# numpy runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE both unset (the
# machine notes' rule for measuring numpy); ringleader runs in the
# environment as it is. Exits non-zero if any launch failed or timed out.
set -u
cd "$(dirname "$0")/.."

RINGLEADER=${RINGLEADER:-build/coordinator/ringleader}
PYTHON=${PYTHON:-/usr/bin/python3}
ROWS=${ROWS:-"50000 2000000"}
FEATURES=${FEATURES:-64}
MODELS=${MODELS:-linear,logistic,softmax}
ITERS=${ITERS:-10}
TIMEOUT=${TIMEOUT:-300}

if [ ! -x "$RINGLEADER" ]; then
    echo "train.sh: $RINGLEADER not built (cmake --build build --target ringleader)" >&2
    exit 2
fi
if ! "$PYTHON" -c 'import numpy' 2>/dev/null; then
    echo "train.sh: $PYTHON has no numpy (apt-get install python3-numpy)" >&2
    exit 2
fi

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uptime | sed 's/.*load/load/') nproc=$(nproc)"
echo "# numpy runs as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $PYTHON bench/numpy_grad.py"
rc=0
for rows in $ROWS; do
    timeout -k 5 "$TIMEOUT" "$RINGLEADER" bench train --rows "$rows" --features "$FEATURES" \
        --model "$MODELS" --iters "$ITERS" || { echo "# ringleader rows=$rows failed rc=$?"; rc=1; }
    timeout -k 5 "$TIMEOUT" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        "$PYTHON" bench/numpy_grad.py --rows "$rows" --features "$FEATURES" \
        --dtype f32,f64 --iters "$ITERS" || { echo "# numpy rows=$rows failed rc=$?"; rc=1; }
done
exit $rc
