#!/usr/bin/env bash
# test_faults.sh - fault tolerance with real processes on loopback:
#  1. a fault-free reference run;
#  2. SIGKILL one node mid-run: the run completes, the failure and its
#     recovery are in run.json, 0 coverage violations, and the model equals
#     the reference within 1e-9 relative;
#  3. SIGKILL two nodes at once: the same;
#  4. SIGSTOP a node past the failure timeout, then SIGCONT: it is failed,
#     fenced, rejoins, and the run completes with the reference model;
#  5. SIGKILL until below min_nodes: status "failed", the reason, the model
#     of the last consistent step saved;
#  6. a node throttled to 10% of a CPU (cgroup v1 cpu.cfs_quota_us) is marked
#     a straggler and loses blocks; lifted, it gets blocks back.
# usage: test_faults.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"
export RINGLEADER_NODE_BIN=$NODE
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RL_TMP/t.token"
export RINGLEADER_TOKEN=$(cat "$RL_TMP/t.token")
CG=/sys/fs/cgroup/cpu/rl-test-$$
# cg_throttle PID QUOTA_US: every thread of PID into $CG, QUOTA_US of CPU per
# 100 ms (threads it starts later inherit the group). cg_lift: the quota
# lifted, the threads back in the root group, $CG removed (also on exit).
cg_throttle() {
  mkdir -p "$CG"; echo 100000 > "$CG/cpu.cfs_period_us"; echo "$2" > "$CG/cpu.cfs_quota_us"
  for t in /proc/"$1"/task/*; do echo "${t##*/}" > "$CG/tasks" 2>/dev/null || true; done
}
cg_lift() {
  [ -d "$CG" ] || return 0
  echo -1 > "$CG/cpu.cfs_quota_us"
  local t i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    for t in $(cat "$CG/tasks"); do echo "$t" > /sys/fs/cgroup/cpu/tasks 2>/dev/null || true; done
    rmdir "$CG" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "test_faults: could not remove $CG" >&2
}
trap 'cg_lift; cleanup' EXIT

# spec FILE NAME STEPS ROWS FEATURES MIN_NODES
spec() {
  {
    echo "cluster:"
    echo "  name: $2"
    echo "  coordinator: tcp://127.0.0.1:$(free_port)"
    echo "  launch: local"
    echo "  min_nodes: $6"
    echo "  join_timeout_ms: 10000"
    echo "  nodes:"
    for i in 1 2 3 4; do echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"; done
    echo "data: { source: synthetic, rows: $4, features: $5, noise: 0.1, seed: 11, block_rows: 1000 }"
    echo "model: { type: linear }"
    echo "training: { steps: $3, learning_rate: 0.05, l2: 0.001 }"
    echo "fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 500 }"
    echo "output: { dir: $RL_TMP/$2 }"
  } > "$1"
}

# start SPEC: runs the coordinator in the background; sets CPID, CURL.
start() {
  "$RL" run "$1" >"$1.out" 2>"$1.err" &
  CPID=$!; RL_PIDS+=("$CPID")
  CURL=$(sed -n 's/^  coordinator: //p' "$1")
}
# node_pid SPEC ID: the PID of that spec's node ID (its command line names the port).
node_pid() {
  local port; port=$(grep "id: $2," "$1" | sed 's/.*:\([0-9]*\) }/\1/')
  pgrep -f "ringleader-node.*--id $2 --listen tcp://127.0.0.1:$port" | head -1
}
# wait_step N: until the running job reports step >= N (bounded: 30 s).
wait_step() {
  local i s
  for i in $(seq 1 300); do
    s=$("$RL" status "$CURL" --timeout-ms 1000 2>/dev/null | sed -n 's/.*step \([0-9]*\)\/.*/\1/p' | head -1)
    [ -n "$s" ] && [ "$s" -ge "$1" ] && return 0
    kill -0 "$CPID" 2>/dev/null || fail "coordinator exited before step $1"
    sleep 0.1
  done
  fail "step $1 not reached in 30 s"
}
finish() { # finish WANT_RC
  local rc=0
  timeout 120 tail --pid="$CPID" -f /dev/null || fail "coordinator still running after 120 s"
  wait "$CPID" || rc=$?
  [ "$rc" -eq "$1" ] || { tail -30 "$SPEC.err" >&2; fail "$SPEC: exit $rc, want $1"; }
}
check() { /usr/bin/python3 - "$@" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2])); want = sys.argv[3:]
assert r["status"] == "ok", r.get("error")
assert r["coverage"]["violations"] == 0, r["coverage"]
assert r["steps_completed"] == ref["steps_completed"]
a = ref["model"]["weights"] + [ref["model"]["bias"]]
b = r["model"]["weights"] + [r["model"]["bias"]]
rel = max(abs(x - y) for x, y in zip(a, b)) / max(abs(x) for x in a)
kinds = [e["kind"] for e in r["events"]]
for k in want: assert k in kinds, (k, kinds)
rec = [e["recovery_ms"] for e in r["events"] if e["kind"] == "failed"]
print("model vs reference: %.2e relative; events %s; recovery_ms %s" % (rel, sorted(set(kinds)), rec))
assert rel < 1e-9, rel
assert all(x is not None for x in rec), rec
PY
}

STEPS=1500 ROWS=40000 FEAT=16
# 1. Reference.
SPEC=$RL_TMP/ref.yaml; spec "$SPEC" ref $STEPS $ROWS $FEAT 2
start "$SPEC"; finish 0

# 2. One SIGKILL mid-run.
SPEC=$RL_TMP/kill1.yaml; spec "$SPEC" kill1 $STEPS $ROWS $FEAT 2
start "$SPEC"; wait_step 300
kill -KILL "$(node_pid "$SPEC" n3)"
finish 0
check "$RL_TMP/ref/run.json" "$RL_TMP/kill1/run.json" failed reassign || fail "one kill"

# 3. Two at once.
SPEC=$RL_TMP/kill2.yaml; spec "$SPEC" kill2 $STEPS $ROWS $FEAT 2
start "$SPEC"; wait_step 300
kill -KILL "$(node_pid "$SPEC" n2)" "$(node_pid "$SPEC" n4)"
finish 0
check "$RL_TMP/ref/run.json" "$RL_TMP/kill2/run.json" failed reassign || fail "two kills"

# 4. SIGSTOP past the failure timeout, then SIGCONT: fenced, then rejoins.
SPEC=$RL_TMP/stop.yaml; spec "$SPEC" stop $STEPS $ROWS $FEAT 2
start "$SPEC"; wait_step 300
P=$(node_pid "$SPEC" n2); kill -STOP "$P"
s0=$("$RL" status "$CURL" | sed -n 's/.*step \([0-9]*\)\/.*/\1/p' | head -1)
wait_step $((s0 + 100))          # the others go on without it
kill -CONT "$P"
finish 0
check "$RL_TMP/ref/run.json" "$RL_TMP/stop/run.json" failed rejoin || fail "stop/cont"

# 5. Below min_nodes.
SPEC=$RL_TMP/min.yaml; spec "$SPEC" min $STEPS $ROWS $FEAT 3
start "$SPEC"; wait_step 300
kill -KILL "$(node_pid "$SPEC" n1)" "$(node_pid "$SPEC" n2)"
finish 1
/usr/bin/python3 - "$RL_TMP/min/run.json" <<'PY' || fail "below min_nodes"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "failed" and "min_nodes" in r["error"], r.get("error")
assert r["steps_completed"] >= 300 and len(r["model"]["weights"]) == 16
assert r["coverage"]["violations"] == 0
print("below min_nodes:", r["error"])
PY

# 5b. SIGKILL a node while blocks are moving to it: kill n1 so that its
#     blocks move to the survivors, and at once hold n2 to 5% of a CPU
#     (cgroup v1) so that making its new blocks takes a while; wait (bounded)
#     until the coordinator's status shows n2 holding more blocks than before
#     and reporting "making-blocks", and kill n2 then. The run goes on with
#     two nodes and ends with the fault-free model. (Without the throttle the
#     move can finish between two heartbeats and never be seen.)
doing_of() { # doing_of ID: "BLOCKS PHASE" of that node in the coordinator's status
  "$RL" status "$CURL" --timeout-ms 1000 2>/dev/null | awk -v id="$1" '$1 == id { print $3, $NF }' | head -1
}
if [ ! -w /sys/fs/cgroup/cpu ]; then
  echo "test_faults: no writable cgroup v1 cpu controller; kill-during-a-move case skipped" >&2
else
  SPEC=$RL_TMP/mref.yaml; spec "$SPEC" mref 60 2000000 64 2
  start "$SPEC"; finish 0
  SPEC=$RL_TMP/move.yaml; spec "$SPEC" move 60 2000000 64 2
  start "$SPEC"; wait_step 10
  P=$(node_pid "$SPEC" n2); b0=$(doing_of n2); b0=${b0%% *}
  kill -KILL "$(node_pid "$SPEC" n1)"
  cg_throttle "$P" 5000
  caught=
  for i in $(seq 1 300); do
    d=$(doing_of n2)
    if [ -n "$d" ] && [ "${d%% *}" -gt "$b0" ] && [ "${d#* }" = making-blocks ]; then caught=$d; break; fi
    kill -0 "$CPID" 2>/dev/null || break
    sleep 0.02
  done
  [ -n "$caught" ] || fail "n2 (held at 5% of a CPU) was never seen making new blocks after n1 died"
  kill -KILL "$P"
  cg_lift
  echo "n2 killed while making blocks: $b0 blocks before n1 died, status then: $caught"
  finish 0
  check "$RL_TMP/mref/run.json" "$RL_TMP/move/run.json" failed reassign || fail "kill during a block move"
fi

# 6. Throttle one node to 10% of a CPU until the coordinator has moved blocks
#    away from it (bounded wait), then lift it until blocks come back.
blocks_of() { # blocks_of ID: that node's block count in the coordinator's status
  "$RL" status "$CURL" --timeout-ms 1000 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }' | head -1
}
wait_blocks() { # wait_blocks ID lt|gt N SECONDS: until its block count is below / above N
  local i b
  for i in $(seq 1 $(($4 * 10))); do
    b=$(blocks_of "$1")
    if [ -n "$b" ]; then
      if [ "$2" = lt ] && [ "$b" -lt "$3" ]; then echo "$b"; return 0; fi
      if [ "$2" = gt ] && [ "$b" -gt "$3" ]; then echo "$b"; return 0; fi
    fi
    kill -0 "$CPID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
if [ -n "${RL_SKIP_THROTTLE:-}" ]; then
  echo "test_faults: throttle case skipped: $RL_SKIP_THROTTLE" >&2
elif [ -w /sys/fs/cgroup/cpu ]; then
  SPEC=$RL_TMP/thr.yaml; spec "$SPEC" thr 3000 1000000 64 2
  start "$SPEC"; wait_step 30
  P=$(node_pid "$SPEC" n2); b0=$(blocks_of n2)
  cg_throttle "$P" 10000
  low=$(wait_blocks n2 lt "$b0" 30) || fail "the throttled node kept its $b0 blocks for 30 s"
  cg_lift
  back=$(wait_blocks n2 gt "$low" 30) || fail "no blocks came back to n2 within 30 s of lifting the throttle"
  echo "throttled n2: $b0 blocks -> $low while throttled -> $back after"
  kill -TERM "$CPID"   # enough: stop the run (Ctrl-C path); run.json is still written
  finish 1
  /usr/bin/python3 - "$RL_TMP/thr/run.json" <<'PY' || fail "throttle"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["coverage"]["violations"] == 0 and r["error"] == "interrupted", r.get("error")
for e in r["events"]:
    if e["kind"] != "join": print("  event", e["t_ms"], e["kind"], e["node"], e["detail"])
PY
else
  echo "test_faults: no writable cgroup v1 cpu controller; throttle case skipped" >&2
fi
if pgrep -f "$RL_TMP" >/dev/null; then fail "processes left running: $(pgrep -af "$RL_TMP")"; fi
echo "test_faults: ok"
