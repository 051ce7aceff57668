#!/usr/bin/env bash
# faults.sh - issue 5's figures, on this machine, with real processes:
#   recovery: SIGKILL one of 4 local nodes mid-run, RUNS times; per run the
#     time from the kill to the next completed step (failure detected +
#     recovery_ms from run.json); prints every run and the median.
#   throttle: one of 4 nodes limited to 10% of a CPU (cgroup v1) from step
#     ~50, the same run with rebalance true and false; prints the median step
#     time while throttled and their ratio, and when the first move happened.
#   overhead: the default job with rebalance true vs false, median step time.
#   Imbalance is reported per step (slowest / mean of that step's compute
#   times) and over the window of steps 10..40 after the throttle (each
#   node's summed compute time, slowest / mean), next to the same figures
#   for a run without any throttle: the floor this machine's time-slicing
#   of 4 nodes on 2 cores puts under any placement.
# usage: bench/faults.sh [RINGLEADER] (default build/coordinator/ringleader); run as root.
#   PARTS="recovery throttle overhead" selects parts; RUNS=10 recovery runs;
#   OVERHEAD_RUNS=3 runs of each side of the overhead comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
RL=${1:-build/coordinator/ringleader}
export RINGLEADER_NODE_BIN=${RINGLEADER_NODE_BIN:-build/node/ringleader-node}
RUNS=${RUNS:-10}
PARTS=${PARTS:-"recovery throttle overhead"}
part() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }
T=$(mktemp -d)  # removed on exit (KEEP=1 keeps it)
[ -z "${KEEP:-}" ] || echo "# keeping $T"
PIDS=()
trap 'for p in "${PIDS[@]:-}"; do kill -KILL "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$T/tok"
export RINGLEADER_TOKEN=$(cat "$T/tok")
. "$(dirname "$0")/lib.sh" "$T"  # free_port
spec() { # FILE NAME STEPS ROWS FEATURES REBALANCE
  { echo "cluster:"; echo "  name: $2"; echo "  coordinator: tcp://127.0.0.1:$(free_port)"
    echo "  launch: local"; echo "  min_nodes: 2"; echo "  nodes:"
    for i in 1 2 3 4; do echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"; done
    echo "data: { source: synthetic, rows: $4, features: $5, seed: 5, block_rows: 4096 }"
    echo "model: { type: linear }"; echo "training: { steps: $3, learning_rate: 0.05 }"
    echo "fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 500, rebalance: $6 }"
    echo "output: { dir: $T/$2 }"; } > "$1"; }
node_pid() { local p; p=$(grep "id: $2," "$1" | sed 's/.*:\([0-9]*\) }/\1/'); pgrep -f "ringleader-node.*--id $2 --listen tcp://127.0.0.1:$p" | head -1; }
step_of() { "$RL" status "$(sed -n 's/^  coordinator: //p' "$1")" --timeout-ms 1000 2>/dev/null | sed -n 's/.*step \([0-9]*\)\/.*/\1/p' | head -1; }
wait_step() { local i s; for i in $(seq 1 600); do s=$(step_of "$1"); [ -n "$s" ] && [ "$s" -ge "$2" ] && return 0; sleep 0.05; done; echo "step $2 not reached" >&2; return 1; }
now_ms() { date +%s%3N; }

echo "# faults.sh $(date -u +%FT%TZ) $(uptime | sed 's/.*load/load/')"
if part recovery; then
echo "## recovery: SIGKILL 1 of 4 nodes (heartbeat 100 ms, failure_timeout 500 ms)"
for r in $(seq 1 "$RUNS"); do
  S=$T/rec$r.yaml; spec "$S" rec$r 3000 200000 32 true
  "$RL" run "$S" >/dev/null 2>"$S.err" & C=$!; PIDS+=("$C")
  wait_step "$S" 300
  k=$(now_ms); kill -KILL "$(node_pid "$S" n$(( (r % 4) + 1 )))"
  wait "$C" || true
  /usr/bin/python3 - "$T/rec$r/run.json" "$k" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); kill = int(sys.argv[2]) - r["started_unix_ms"]
f = [e for e in r["events"] if e["kind"] == "failed"][0]
total = f["t_ms"] + f["recovery_ms"] - kill
print("recovery_run status=%s detect_ms=%d recovery_ms=%d kill_to_next_step_ms=%d violations=%d"
      % (r["status"], f["t_ms"] - kill, f["recovery_ms"], total, r["coverage"]["violations"]))
PY
done
fi

if part throttle; then
echo "## throttle: 1 of 4 nodes at 10% of a CPU from step ~50"
CG=/sys/fs/cgroup/cpu/rl-bench-$$
for rb in ${THROTTLE_RUNS:-true false none}; do
  # none: rebalance on, no throttle (the floor)
  S=$T/thr-$rb.yaml; spec "$S" thr-$rb 400 2000000 64 "$([ $rb = none ] && echo true || echo $rb)"
  "$RL" run "$S" >/dev/null 2>"$S.err" & C=$!; PIDS+=("$C")
  wait_step "$S" 50
  P=$(node_pid "$S" n2); mkdir -p "$CG"; echo 100000 > "$CG/cpu.cfs_period_us"; echo 10000 > "$CG/cpu.cfs_quota_us"
  [ $rb = none ] && echo -1 > "$CG/cpu.cfs_quota_us"
  t=$(now_ms); for x in /proc/"$P"/task/*; do echo "${x##*/}" > "$CG/tasks"; done
  wait "$C" || true
  for x in $(cat "$CG/tasks" 2>/dev/null); do echo "$x" > /sys/fs/cgroup/cpu/tasks; done; rmdir "$CG" 2>/dev/null || true
  /usr/bin/python3 - "$T/thr-$rb/run.json" "$t" "$rb" <<'PY'
import json, sys, statistics
r = json.load(open(sys.argv[1])); t0 = int(sys.argv[2]) - r["started_unix_ms"]
st = [s for s in r["steps"] if s["t_ms"] > t0]
first = [s for s in st][:1]
moves = [e for e in r["events"] if e["kind"] == "reassign" and e["t_ms"] > t0]
late = st[20:] if len(st) > 40 else st
# wall time per step while throttled: successive completions
ts = [s["t_ms"] for s in late]
per = statistics.median([b - a for a, b in zip(ts, ts[1:])]) if len(ts) > 2 else float("nan")
first_move = (moves[0]["t_ms"] - t0) if moves else None
steps_to_move = len([s for s in st if moves and s["t_ms"] < moves[0]["t_ms"]]) if moves else None
# compute imbalance (slowest/mean) 10 steps after the throttle, and the median over steps 10..40 after
imb10 = st[10]["compute_imbalance"] if len(st) > 10 else float("nan")
later = [s["compute_imbalance"] for s in st[10:40]]
imb_med = statistics.median(later) if later else float("nan")
# window: each node's compute summed over steps 10..40, slowest / mean
tot = {}
for s in st[10:40]:
    for n, ms in s.get("compute_ms", {}).items():
        tot[n] = tot.get(n, 0.0) + ms
win = max(tot.values()) / (sum(tot.values()) / len(tot)) if tot else float("nan")
label = "none (no throttle)" if sys.argv[3] == "none" else sys.argv[3]
print("throttle rebalance=%s step_wall_ms_p50=%.1f first_move_after_ms=%s steps_before_move=%s moves=%d imbalance_at_10=%.2f imbalance_p50_10_40=%.2f imbalance_window_10_40=%.2f status=%s violations=%d"
      % (label, per, first_move, steps_to_move, len(moves), imb10, imb_med, win, r["status"], r["coverage"]["violations"]))
PY
done
fi

if part overhead; then
OVERHEAD_RUNS=${OVERHEAD_RUNS:-3}
echo "## overhead: configs/local.yaml shape, rebalance true vs false, 2000 steps, $OVERHEAD_RUNS runs each, interleaved"
for k in $(seq 1 "$OVERHEAD_RUNS"); do  # not i: spec() uses it
  for rb in true false; do
    S=$T/ov-$rb-$k.yaml; spec "$S" ov-$rb-$k 2000 200000 32 $rb
    "$RL" run "$S" >/dev/null 2>"$S.err" || true
    /usr/bin/python3 -c "import json;r=json.load(open('$T/ov-$rb-$k/run.json'));print('overhead rebalance=$rb run=$k step_ms_p50=%.3f p99=%.3f status=%s'%(r['step_ms']['p50'],r['step_ms']['p99'],r['status']))"
  done
done | tee "$T/ov.txt"
/usr/bin/python3 -c "
import re, statistics as st
rows = [l for l in open('$T/ov.txt') if l.startswith('overhead ')]
med = {rb: st.median(float(re.search(r'step_ms_p50=([0-9.]+)', l).group(1)) for l in rows if 'rebalance=%s ' % rb in l) for rb in ('true', 'false')}
print('overhead_summary runs=$OVERHEAD_RUNS step_ms_p50_true=%.3f step_ms_p50_false=%.3f overhead_pct=%+.1f' % (med['true'], med['false'], 100 * (med['true'] / med['false'] - 1)))"
fi
