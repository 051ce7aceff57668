#!/usr/bin/env bash
# test_stragglers.sh - the straggler signal with real processes on loopback
# (docs/operations.md, "The straggler signal"): a node that the others wait
# for is flagged and loses blocks wherever its stall lands:
#  1. held to 10% of a CPU (cgroup v1 cpu.cfs_quota_us) from its start;
#  2. SIGSTOPped 300 ms every 2 s (under the failure timeout): not failed;
#  3. sharing its CPU with a busy loop pinned beside it (taskset).
# Each case stops the run (SIGTERM) once the blocks moved; run.json must
# show the straggler event, the per-node signal and 0 coverage violations.
# usage: test_stragglers.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"
export RINGLEADER_NODE_BIN=$NODE
fail() {
  if [ -n "${SPEC:-}" ] && [ -f "$SPEC.err" ]; then echo "--- $SPEC.err (end)" >&2; tail -25 "$SPEC.err" >&2; fi
  echo "FAIL: $*" >&2; exit 1
}
new_token "$RL_TMP/t.token"
export RINGLEADER_TOKEN=$(cat "$RL_TMP/t.token")
# cg_throttle and cg_lift: lib.sh.

spec() { # spec FILE NAME: 4 nodes, 200k x 32 linear, long enough to be stopped
  {
    echo "cluster:"
    echo "  name: $2"
    echo "  coordinator: tcp://127.0.0.1:$(free_port)"
    echo "  launch: local"
    echo "  min_nodes: 4"
    echo "  join_timeout_ms: 10000"
    echo "  nodes:"
    for i in 1 2 3 4; do echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"; done
    echo "data: { source: synthetic, rows: 200000, features: 32, noise: 0.1, seed: 5, block_rows: 4000 }"
    echo "model: { type: linear }"
    echo "training: { steps: 200000, learning_rate: 0.05 }"
    echo "fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 1500 }"
    echo "output: { dir: $RL_TMP/$2 }"
  } > "$1"
}
start() {
  "$RL" run "$1" >"$1.out" 2>"$1.err" &
  CPID=$!; RL_PIDS+=("$CPID")
  CURL=$(sed -n 's/^  coordinator: //p' "$1")
}
node_pid() { # node_pid SPEC ID: its PID, or nothing while it is not running
  local port; port=$(grep "id: $2," "$1" | sed 's/.*:\([0-9]*\) }/\1/')
  pgrep -f "ringleader-node.*--id $2 --listen tcp://127.0.0.1:$port" | head -1 || true
}
wait_pid() { # wait_pid SPEC ID: until the node runs (bounded: 10 s)
  local i p
  for i in $(seq 1 1000); do
    p=$(node_pid "$1" "$2"); [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.01
  done
  fail "node $2 of $1 did not start in 10 s"
}
status() { "$RL" status "$CURL" --timeout-ms 1000 2>/dev/null || true; }
# blocks_of ID: "ITS_BLOCKS FEWEST_OF_THE_OTHERS" from the coordinator's status.
blocks_of() {
  status | awk -v id="$1" '$1 ~ /^n[0-9]$/ { if ($1 == id) b = $3; else if (o == "" || $3 < o) o = $3 }
    END { if (b != "" && o != "") print b, o }'
}
# wait_blocks ID lt|ge N SECONDS: until its block count is below N and below
# every other node's (relieved as the slowest, not trimmed by a move that was
# about another node) / at least N.
wait_blocks() {
  local i b o
  for i in $(seq 1 $(($4 * 10))); do
    read -r b o < <(blocks_of "$1") || true
    if [ -n "${b:-}" ]; then
      if [ "$2" = lt ] && [ "$b" -lt "$3" ] && [ "$b" -lt "$o" ]; then echo "$b"; return 0; fi
      if [ "$2" = ge ] && [ "$b" -ge "$3" ]; then echo "$b"; return 0; fi
    fi
    kill -0 "$CPID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
finish() { # stops the run and waits for its run.json
  kill -TERM "$CPID" 2>/dev/null || true
  timeout 60 tail --pid="$CPID" -f /dev/null || fail "coordinator still running 60 s after SIGTERM"
  wait "$CPID" || true
}
# verdict RUN_JSON ID: ID is flagged (a straggler event, or a rebalance that
# names it the slowest), nobody failed, 0 violations, and every node shows
# the signal.
verdict() { /usr/bin/python3 - "$@" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); who = sys.argv[2]
assert r["coverage"]["violations"] == 0, r["coverage"]
kinds = [(e["kind"], e["node"]) for e in r["events"]]
blamed = [e for e in r["events"] if e["kind"] == "reassign" and "slowest %s " % who in e["detail"]]
assert ("straggler", who) in kinds or blamed, r["events"]
assert not any(k == "failed" for k, _ in kinds), kinds
for n in r["nodes"]:
    for f in ("step_ms", "wait_ms", "busy_fraction", "stall_ms"):
        assert n[f] is not None, (n["id"], f)
    print("  %s blocks %d busy %.2f wait_ms %.3f step_ms %.3f stall_ms %.3f" % (
        n["id"], len(n["blocks"]), n["busy_fraction"], n["wait_ms"], n["step_ms"], n["stall_ms"]))
for e in r["events"]:
    if e["kind"] != "join": print("  event", e["step"], e["kind"], e["node"], e["detail"])
PY
}

# Each case runs RL_STRAG_RUNS times (2 by default; bench/stragglers.sh runs 10).
for run in $(seq 1 "${RL_STRAG_RUNS:-2}"); do
  # 1. n4 throttled to 10% of a CPU from its start.
  if [ ! -w /sys/fs/cgroup/cpu ]; then
    echo "test_stragglers: no writable cgroup v1 cpu controller; throttle case skipped" >&2
  else
    SPEC=$RL_TMP/thr$run.yaml; spec "$SPEC" thr$run
    start "$SPEC"
    cg_throttle "$(wait_pid "$SPEC" n4)" 10000
    low=$(wait_blocks n4 lt 12 30) || fail "the node throttled from its start kept its blocks for 30 s"
    echo "run $run: throttled from the start: n4 down to $low blocks"
    finish; cg_lift
    verdict "$RL_TMP/thr$run/run.json" n4 || fail "throttle from the start"
  fi

  # 2. n3 SIGSTOPped 300 ms every 2 s (a bounded loop: at most 20 pulses).
  SPEC=$RL_TMP/stop$run.yaml; spec "$SPEC" stop$run
  start "$SPEC"
  P=$(wait_pid "$SPEC" n3)
  wait_blocks n3 ge 1 30 >/dev/null || fail "no status for n3"
  ( for i in $(seq 1 20); do
      kill -STOP "$P" 2>/dev/null || exit 0; sleep 0.3; kill -CONT "$P" 2>/dev/null || exit 0; sleep 1.7
    done ) &
  PULSE=$!; RL_PIDS+=("$PULSE")
  low=$(wait_blocks n3 lt 12 35) || fail "the node stopped 300 ms every 2 s kept its blocks"
  echo "run $run: stopped 300 ms every 2 s: n3 down to $low blocks"
  kill "$PULSE" 2>/dev/null || true; wait "$PULSE" 2>/dev/null || true; kill -CONT "$P" 2>/dev/null || true
  finish
  verdict "$RL_TMP/stop$run/run.json" n3 || fail "periodic SIGSTOP"

  # 3. n2 pinned to CPU 0 with a busy loop pinned beside it.
  SPEC=$RL_TMP/hog$run.yaml; spec "$SPEC" hog$run
  start "$SPEC"
  P=$(wait_pid "$SPEC" n2)
  taskset -a -c -p 0 "$P" >/dev/null || fail "taskset $P"
  taskset -c 0 bash -c 'while :; do :; done' &
  HOG=$!; RL_PIDS+=("$HOG")
  low=$(wait_blocks n2 lt 12 30) || fail "the node sharing its CPU with a busy loop kept its blocks (or others had fewer)"
  echo "run $run: CPU shared with a busy loop: n2 down to $low blocks"
  kill "$HOG"; wait "$HOG" 2>/dev/null || true
  finish
  verdict "$RL_TMP/hog$run/run.json" n2 || fail "CPU hog"
done
echo "test_stragglers: ok"
