#!/usr/bin/env bash
# python.sh - issue 16's speed figures for the Python package, each next to
# its peer in the same run, REPS times over (this shared 2-core box changes
# speed within minutes):
#   1. NumPy f32 all-reduce through the Python package on N local nodes
#      (bench/python_allreduce.py as a job's program) against
#      torch.distributed.all_reduce with Gloo (../shared/bench/torch/
#      torch_allreduce.py N SIZES), and against the same loop in C over the
#      worker API (build/bench/wapi_allreduce): the binding's cost per call
#      is python's time minus C's, at 4 B on 1 node (no network: the least
#      noise) and on N nodes; and `ringleader bench allreduce` (peer=ringleader,
#      --rounds 1), the bare collective without the worker API's header and
#      barrier rounds;
#   2. examples/python/torch_mlp.py's step time on N nodes with Ringleader
#      against the same script on torch.distributed with Gloo (--gloo).
# Every result is a line in the peers' format; the ratios follow.
#   peer=P nodes=N bytes=B time_us=T algbw_GBps=A busbw_GBps=W ok=0|1
#   peer=P bench=torch_mlp nodes=N steps=S step_ms=T accuracy=A ok=0|1
#
#   bench/python.sh                       # N=4, 4 B .. 16 MiB, 3 reps
#   REPS=1 SIZES="4 16M" bench/python.sh
# Env: BUILD (build), N (4), SIZES ("4 64K 1M 16M"), ITERS (30), REPS (3),
# MLP_STEPS (300), BASELINES (../shared/bench, or ../../shared/bench). Run it under the heavy lock.
set -u -o pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
BUILD=${BUILD:-$SRC/build}
N=${N:-4}
SIZES=${SIZES:-"4 64K 1M 16M"}
ITERS=${ITERS:-30}
REPS=${REPS:-3}
MLP_STEPS=${MLP_STEPS:-300}
BASELINES=${BASELINES:-$SRC/../shared/bench}
[ -d "$BASELINES" ] || BASELINES=$SRC/../../shared/bench   # from a worktree in ../wt/NAME
PY=/usr/bin/python3
RL=$BUILD/coordinator/ringleader
for f in "$RL" "$BUILD/bench/wapi_allreduce" "$BASELINES/torch/torch_allreduce.py"; do
    [ -e "$f" ] || { echo "python.sh: need $f" >&2; exit 2; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/t.token"
chmod 600 "$T/t.token"
. "$(dirname "$0")/lib.sh" "$T"  # free_port
csv_sizes=$(echo "$SIZES" | tr ' ' ',')
rc=0

# job NODES DATA_LINE PROGRAM...: runs PROGRAM on NODES local nodes; its
# output in $T/job.err.
job() {
    local nodes=$1 data=$2; shift 2
    local spec=$T/job.yaml cmd="" a i
    for a in "$@"; do cmd="$cmd${cmd:+, }\"$a\""; done
    {
        echo "cluster:"
        echo "  name: bench-python"
        echo "  coordinator: tcp://127.0.0.1:$(free_port)"
        echo "  launch: local"
        echo "  nodes:"
        for i in $(seq 1 "$nodes"); do echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"; done
        echo "security: { token_file: $T/t.token }"
        echo "$data"
        echo "output: { dir: $T/out }"
        echo "program: { command: [$cmd], workdir: $T, env: { PYTHONPATH: $BUILD/python, OMP_NUM_THREADS: \"1\" } }"
    } >"$spec"
    timeout 600 "$RL" run "$spec" >"$T/job.out" 2>"$T/job.err" ||
        { echo "# job failed: $*" >&2; tail -5 "$T/job.err" >&2; rc=1; }
}
synthetic="data: { rows: $((N * 1000)), features: 4, block_rows: 1000 }"

for rep in $(seq 1 "$REPS"); do
    echo "# rep $rep nodes $N $(date -u +%H:%M:%S) $(uptime | sed 's/.*load/load/')"
    : >"$T/r.txt"
    $PY "$BASELINES/torch/torch_allreduce.py" "$N" "$csv_sizes" "$ITERS" 2>/dev/null |
        grep '^peer=' >>"$T/r.txt" || rc=1
    job "$N" "$synthetic" "$PY" "$SRC/bench/python_allreduce.py" "$T/r.txt" "$csv_sizes" "$ITERS"
    job "$N" "$synthetic" "$BUILD/bench/wapi_allreduce" "$T/r.txt" "$csv_sizes" "$ITERS"
    # the bare collective (rl_allreduce on a ring, no worker API rounds), for reference
    "$RL" bench allreduce --nodes "$N" --bytes "$csv_sizes" --rounds 1 | grep '^peer=' >>"$T/r.txt" || rc=1
    cat "$T/r.txt"
    : >"$T/one.txt"
    job 1 "data: { rows: 1000, features: 4, block_rows: 1000 }" "$PY" "$SRC/bench/python_allreduce.py" "$T/one.txt" 4 1000
    job 1 "data: { rows: 1000, features: 4, block_rows: 1000 }" "$BUILD/bench/wapi_allreduce" "$T/one.txt" 4 1000
    cat "$T/one.txt"
    cat "$T/r.txt" >>"$T/all-$rep.txt"
    cat "$T/one.txt" >>"$T/one-$rep.txt"

    # torch_mlp: Ringleader, then Gloo, on the same data and steps
    $PY "$SRC/examples/python/torch_mlp.py" --write-data "$T" || rc=1
    job "$N" "data: { source: csv, csv: { path: $T/digits_train.csv, label: label, standardize: false }, block_rows: 64 }
model: { type: softmax, classes: 10 }" \
        "$PY" "$SRC/examples/python/torch_mlp.py" --test "$T/digits_test.csv" --steps "$MLP_STEPS" --out "$T/mlp-rl.json"
    port=$(free_port)
    pids=()
    for r in $(seq 0 $((N - 1))); do
        RANK=$r WORLD_SIZE=$N MASTER_ADDR=127.0.0.1 MASTER_PORT=$port OMP_NUM_THREADS=1 \
            timeout 600 $PY "$SRC/examples/python/torch_mlp.py" --gloo "$T/digits_train.csv" \
            --test "$T/digits_test.csv" --steps "$MLP_STEPS" --out "$T/mlp-gloo.json" 2>>"$T/gloo.err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    for who in rl gloo; do
        peer=$([ $who = rl ] && echo ringleader-python || echo torch-gloo)
        $PY - "$T/mlp-$who.json" "$peer" "$N" <<'PY' || rc=1
import json, sys
r = json.load(open(sys.argv[1]))
print("peer=%s bench=torch_mlp nodes=%s steps=%d step_ms=%.3f accuracy=%.2f ok=%d"
      % (sys.argv[2], sys.argv[3], r["steps"], r["step_ms"], r["accuracy"],
         int(r["members"] == int(sys.argv[3]))))
PY
    done | tee -a "$T/mlp-$rep.txt"
    rm -f "$T"/mlp-*.json
done

for rep in $(seq 1 "$REPS"); do
    echo "## rep $rep: time(ringleader-python) / time(peer)"
    "$BASELINES/summarize.sh" ratio ringleader-python "$T/all-$rep.txt" | grep -v '^$'
    $PY - "$T/all-$rep.txt" "$T/one-$rep.txt" "$T/mlp-$rep.txt" <<'PY'
import sys
def lines(path):
    out = []
    for line in open(path):
        if line.startswith("peer="):
            out.append(dict(kv.split("=", 1) for kv in line.split()))
    return out
def t(rows, peer, nodes, b):
    for r in rows:
        if r["peer"] == peer and r["nodes"] == nodes and r.get("bytes") == b:
            return float(r["time_us"])
allr, one, mlp = lines(sys.argv[1]), lines(sys.argv[2]), lines(sys.argv[3])
n = allr[0]["nodes"] if allr else "?"
for rows, nodes in ((one, "1"), (allr, n)):
    py, c = t(rows, "ringleader-python", nodes, "4"), t(rows, "ringleader-c", nodes, "4")
    if py is not None and c is not None:
        print("binding nodes=%s bytes=4 python_us=%.2f c_us=%.2f overhead_us=%.2f" % (nodes, py, c, py - c))
sm = {r["peer"]: float(r["step_ms"]) for r in mlp}
if len(sm) == 2:
    print("torch_mlp nodes=%s step_ms ringleader-python=%.3f torch-gloo=%.3f ratio=%.2f"
          % (n, sm["ringleader-python"], sm["torch-gloo"], sm["ringleader-python"] / sm["torch-gloo"]))
PY
done
exit $rc
