#!/usr/bin/env bash
# speedup.sh - issue 4's speed-up figure: the same training job on 1 and on
# 2 local nodes (loopback), T_s / T_p with T = median step time from run.json,
# on a cache-resident set (50k x 64) and a memory-bound one (2M x 64); and the
# default 4-node job's step latency. Compare with membw.c's 2-thread/1-thread
# memcpy ratio (../shared/bench/membw.c, built and run here).
# usage: bench/speedup.sh [RINGLEADER]
set -euo pipefail
cd "$(dirname "$0")/.."
RL=${1:-build/coordinator/ringleader}
export RINGLEADER_NODE_BIN=${RINGLEADER_NODE_BIN:-build/node/ringleader-node}
T=$(mktemp -d)  # removed on exit
trap 'rm -rf "$T"' EXIT
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$T/tok"
export RINGLEADER_TOKEN=$(cat "$T/tok")
. "$(dirname "$0")/lib.sh" "$T"  # free_port
run() { # NODES ROWS FEATURES STEPS -> prints step_ms p50
  local f=$T/s-$1-$2.yaml
  { echo "cluster:"; echo "  name: s$1-$2"; echo "  coordinator: tcp://127.0.0.1:$(free_port)"
    echo "  launch: local"; echo "  nodes:"
    for i in $(seq 1 "$1"); do echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"; done
    echo "data: { source: synthetic, rows: $2, features: $3, seed: 3, block_rows: 4096 }"
    echo "model: { type: linear }"; echo "training: { steps: $4, learning_rate: 0.05 }"
    echo "fault_tolerance: { rebalance: false }"
    echo "output: { dir: $T/o-$1-$2 }"; } > "$f"
  timeout 600 "$RL" run "$f" >/dev/null 2>"$f.err"
  /usr/bin/python3 -c "import json,statistics;r=json.load(open('$T/o-$1-$2/run.json'));print('%.4f %.4f %.4f'%(r['step_ms']['p50'],statistics.median([s['ms']-s['allreduce_ms'] for s in r['steps']]),r['step_ms']['p99']))"
}
echo "# speedup.sh $(date -u +%FT%TZ) $(uptime | sed 's/.*load/load/')"
# REPS runs of each, 1 and 2 nodes interleaved (the box is shared and
# noisy); each figure is the median over the runs.
REPS=${REPS:-3}
for shape in "50000 64 400" "2000000 64 40"; do
  set -- $shape
  ones=""; twos=""
  for r in $(seq 1 "$REPS"); do
    ones="$ones;$(run 1 "$1" "$2" "$3")"; twos="$twos;$(run 2 "$1" "$2" "$3")"
  done
  /usr/bin/python3 -c "
import statistics as st
o = [r.split() for r in '$ones'.split(';') if r.strip()]
t = [r.split() for r in '$twos'.split(';') if r.strip()]
def med(rs, i): return st.median(float(r[i]) for r in rs)
a, b, ac, bc = med(o, 0), med(t, 0), med(o, 1), med(t, 1)
pairs = ' '.join('%s/%s' % (x[0], y[0]) for x, y in zip(o, t))
print('speedup rows=$1 features=$2 runs=$REPS T1_step_ms=%.3f T2_step_ms=%.3f speedup=%.2f (compute only: %.3f / %.3f = %.2f; per run T1/T2: %s)'%(a,b,a/b,ac,bc,ac/bc,pairs))"
done
cc -O2 -pthread -o "$T/membw" ../shared/bench/membw.c 2>/dev/null && "$T/membw" | grep -iE "memcpy" || true
# The default job (200k x 32: four nodes' kernels of 50k rows each share the
# two cores, so the step is about two kernel passes plus the all-reduce), and
# the same 4 nodes on 50k x 32, where the step is mostly the framework's own
# cost.
for shape in "default_job 200000" "small_job 50000"; do
  set -- $shape
  lats=""
  for r in $(seq 1 "$REPS"); do lats="$lats;$(run 4 "$2" 32 300)"; done
  /usr/bin/python3 -c "
import statistics as st
rs = [r.split() for r in '$lats'.split(';') if r.strip()]
print('step_latency $1 nodes=4 rows=$2 features=32 runs=%d step_ms_p50=%.4f step_ms_p99=%.4f (per run p50: %s)' % (len(rs), st.median(float(r[0]) for r in rs), st.median(float(r[2]) for r in rs), ' '.join(r[0] for r in rs)))"
done
