#!/usr/bin/env bash
# test_exact.sh - exact sums (training.exact_sum, docs/exactness.md) make the
# trained model the same bytes whatever the membership:
#  1. the same job on 1, 2, 3, 4 and 8 nodes: run.json's weights and bias are
#     equal doubles (as written, %.17g) in every run;
#  2. the job on 4 nodes with one SIGKILLed mid-run (its blocks move to the
#     survivors and the step is redone): the same bytes again;
#  3. the job on 4 nodes with one throttled to 10% of a CPU (cgroup v1
#     cpu.cfs_quota_us) until the coordinator moves blocks away from it (a
#     throttle-driven rebalance), then lifted: the same bytes again;
#  4. control: with exact_sum: false, 1 and 3 nodes give different bytes
#     (what the comparisons above would see without exact sums).
# Rebalancing stays on: a straggler's blocks may move in any run.
# usage: test_exact.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"
export RINGLEADER_NODE_BIN=$NODE
new_token "$RL_TMP/t.token"
export RINGLEADER_TOKEN=$(cat "$RL_TMP/t.token")
STEPS=${RL_EXACT_STEPS:-4000}
# cg_throttle and cg_lift: lib.sh.

# spec FILE NAME NODES EXACT [FAILURE_TIMEOUT_MS]: not a fault test unless told (the CPUs are
# shared: a generous failure timeout). ROWS, BLOCK_ROWS and JOB_STEPS change the job.
spec() {
  {
    echo "cluster:"
    echo "  name: $2"
    echo "  coordinator: tcp://127.0.0.1:$(free_port)"
    echo "  launch: local"
    echo "  min_nodes: 1"
    echo "  join_timeout_ms: 10000"
    echo "  nodes:"
    for i in $(seq 1 "$3"); do echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"; done
    echo "data: { source: synthetic, rows: ${ROWS:-40000}, features: 16, noise: 0.1, seed: 11, block_rows: ${BLOCK_ROWS:-1000} }"
    echo "model: { type: linear }"
    echo "training: { steps: ${JOB_STEPS:-$STEPS}, learning_rate: 0.05, l2: 0.001, exact_sum: $4 }"
    echo "fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: ${5:-5000} }"
    echo "output: { dir: $RL_TMP/$2 }"
  } > "$1"
}
start() { # start SPEC: the coordinator in the background; sets CPID, CURL
  "$RL" run "$1" >"$1.out" 2>"$1.err" &
  CPID=$!; RL_PIDS+=("$CPID")
  CURL=$(sed -n 's/^  coordinator: //p' "$1")
}
finish() { # finish SPEC: waits (bounded) for exit 0
  local rc=0
  timeout 300 tail --pid="$CPID" -f /dev/null || fail "$1: coordinator still running after 300 s"
  wait "$CPID" || rc=$?
  [ "$rc" -eq 0 ] || { tail -20 "$1.err" >&2; fail "$1: exit $rc"; }
}
run_job() { # run_job NAME NODES EXACT: a whole run
  spec "$RL_TMP/$1.yaml" "$1" "$2" "$3"; start "$RL_TMP/$1.yaml"; finish "$RL_TMP/$1.yaml"
}
# model_text RUN_JSON: the model's weights and bias as repr() of the doubles
# read back, one line (equal text = equal doubles); checks status and coverage.
model_text() { /usr/bin/python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "ok", r.get("error")
assert r["coverage"]["violations"] == 0, r["coverage"]
b = r["model"]["bias"]
print(r["steps_completed"], [repr(x) for x in r["model"]["weights"] + (b if isinstance(b, list) else [b])])
PY
}

# 1. Node counts.
for n in 1 2 3 4 8; do
  run_job "n$n" "$n" true
  model_text "$RL_TMP/n$n/run.json" > "$RL_TMP/n$n.model" || fail "n$n: bad run.json"
  if [ "$n" -ne 1 ] && ! cmp -s "$RL_TMP/n1.model" "$RL_TMP/n$n.model"; then
    diff <(tr ',' '\n' < "$RL_TMP/n1.model") <(tr ',' '\n' < "$RL_TMP/n$n.model") | head -6 >&2
    fail "$n nodes: the model differs from 1 node's"
  fi
  echo "exact sums, $n node(s): model identical to 1 node's"
done

wait_step() { # wait_step CASE N: until step N (bounded: 30 s); sets s
  local i
  for i in $(seq 1 300); do
    s=$("$RL" status "$CURL" --timeout-ms 1000 2>/dev/null | sed -n 's/.*step \([0-9]*\)\/.*/\1/p' | head -1 || true)
    [ -n "$s" ] && [ "$s" -ge "$2" ] && return 0
    kill -0 "$CPID" 2>/dev/null || fail "$1: coordinator exited before step $2"
    sleep 0.1
  done
  fail "$1: step $2 not reached in 30 s"
}

# 2. A node SIGKILLed mid-run.
SPEC=$RL_TMP/kill.yaml; spec "$SPEC" kill 4 true 1500; start "$SPEC"
wait_step kill 300
port=$(grep "id: n3," "$SPEC" | sed 's/.*:\([0-9]*\) }/\1/')
pid=$(pgrep -f "ringleader-node.*--id n3 --listen tcp://127.0.0.1:$port" | head -1 || true)
[ -n "$pid" ] || fail "kill: n3 is not running"
kill -KILL "$pid"
echo "killed n3 (pid $pid) after step $s"
finish "$SPEC"
/usr/bin/python3 -c 'import json,sys; assert "failed" in [e["kind"] for e in json.load(open(sys.argv[1]))["events"]]' \
  "$RL_TMP/kill/run.json" || fail "kill: no failed event in run.json"
model_text "$RL_TMP/kill/run.json" > "$RL_TMP/kill.model" || fail "kill: bad run.json"
cmp -s "$RL_TMP/n1.model" "$RL_TMP/kill.model" || fail "a kill changed the model"
echo "exact sums, 4 nodes with one killed: model identical to 1 node's"

# 3. A throttle-driven rebalance: n2 at 10% of a CPU until it holds fewer
#    blocks (bounded: 30 s), then lifted. Placement sees a throttled node by
#    its compute time, so the job computes more per step (1M rows): its
#    reference is the same job on 1 node.
blocks_of() { # blocks_of ID: that node's block count in the coordinator's status
  { "$RL" status "$CURL" --timeout-ms 1000 2>/dev/null || true; } | awk -v id="$1" '$1 == id { print $3 }' | head -1
}
if [ -w /sys/fs/cgroup/cpu ]; then
  export ROWS=1000000 BLOCK_ROWS=10000 JOB_STEPS=600
  run_job thr1 1 true
  model_text "$RL_TMP/thr1/run.json" > "$RL_TMP/thr1.model" || fail "thr1: bad run.json"
  SPEC=$RL_TMP/thr.yaml; spec "$SPEC" thr 4 true 600000; start "$SPEC"
  wait_step thr 20
  port=$(grep "id: n2," "$SPEC" | sed 's/.*:\([0-9]*\) }/\1/')
  pid=$(pgrep -f "ringleader-node.*--id n2 --listen tcp://127.0.0.1:$port" | head -1 || true)
  [ -n "$pid" ] || fail "throttle: n2 is not running"
  b0=$(blocks_of n2); [ -n "$b0" ] || fail "throttle: no status for n2"
  cg_throttle "$pid" 10000
  low=""
  for i in $(seq 1 300); do
    b=$(blocks_of n2)
    if [ -n "$b" ] && [ "$b" -lt "$b0" ]; then low=$b; break; fi
    kill -0 "$CPID" 2>/dev/null || fail "throttle: the job ended before blocks moved from n2"
    sleep 0.1
  done
  cg_lift
  [ -n "$low" ] || fail "throttle: n2 kept its $b0 blocks for 30 s at 10% of a CPU"
  echo "throttled n2 after step $s: $b0 blocks -> $low"
  finish "$SPEC"
  /usr/bin/python3 -c 'import json,sys; assert any(e["kind"] == "reassign" and "rebalance" in e["detail"] for e in json.load(open(sys.argv[1]))["events"])' \
    "$RL_TMP/thr/run.json" || fail "throttle: no rebalance event in run.json"
  model_text "$RL_TMP/thr/run.json" > "$RL_TMP/thr.model" || fail "throttle: bad run.json"
  cmp -s "$RL_TMP/thr1.model" "$RL_TMP/thr.model" || fail "a throttle-driven rebalance changed the model"
  unset ROWS BLOCK_ROWS JOB_STEPS
  echo "exact sums, 4 nodes with a throttle-driven rebalance: model identical to 1 node's"
else
  echo "test_exact: no writable cgroup v1 cpu controller; throttle case skipped" >&2
fi

# 4. Control: plain double sums depend on the grouping.
run_job p1 1 false; run_job p3 3 false
model_text "$RL_TMP/p1/run.json" > "$RL_TMP/p1.model"
model_text "$RL_TMP/p3/run.json" > "$RL_TMP/p3.model"
! cmp -s "$RL_TMP/p1.model" "$RL_TMP/p3.model" || fail "control: plain sums gave the same bytes"
echo "plain sums: 1 and 3 nodes differ, as expected"
echo "PASS"
