#!/usr/bin/env bash
# test_dupid.sh - a second `ringleader-node --id n1` while the live n1
# heartbeats is refused (ALREADY_EXISTS, naming the id and the live one's pid
# and endpoint) and exits non-zero; the original keeps training, untouched.
# Once the original is gone (SIGKILL: its connection closes and it is
# failed), a new n1 is accepted, rejoins, and the job completes.
# usage: test_dupid.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"

new_token "$RL_TMP/t.token"
export RINGLEADER_TOKEN=$(cat "$RL_TMP/t.token")
CURL=tcp://127.0.0.1:$(free_port)
cat > "$RL_TMP/dup.yaml" <<YAML
cluster:
  name: dup
  coordinator: $CURL
  launch: manual
  min_nodes: 1
  join_timeout_ms: 20000
  nodes:
    - { id: n1, listen: tcp://127.0.0.1:$(free_port) }
    - { id: n2, listen: tcp://127.0.0.1:$(free_port) }
data: { source: synthetic, rows: 200000, features: 32, seed: 3, block_rows: 1000 }
model: { type: linear }
training: { steps: ${RL_DUP_STEPS:-6000}, learning_rate: 0.05 }
fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 500 }
output: { dir: $RL_TMP/out }
YAML
"$RL" run "$RL_TMP/dup.yaml" >"$RL_TMP/c.out" 2>"$RL_TMP/c.err" &
CPID=$!; RL_PIDS+=("$CPID")
# node ID LOG: starts a node without --listen (it takes the spec's); sets NPID.
node() {
  "$NODE" --coordinator "$CURL" --id "$1" --join-timeout-ms 10000 2>"$2" &
  NPID=$!; RL_PIDS+=("$NPID")
}
# step: the running job's step from `ringleader status` ("" if not known).
step() {
  "$RL" status "$CURL" --timeout-ms 1000 2>/dev/null | sed -n 's/.*step \([0-9]*\)\/.*/\1/p' | head -1
}
# wait_step N: until the job reports step >= N (bounded: 30 s).
wait_step() {
  local s
  for _ in $(seq 1 300); do
    s=$(step)
    [ -n "$s" ] && [ "$s" -ge "$1" ] && return 0
    kill -0 "$CPID" 2>/dev/null || fail "coordinator exited before step $1: $(tail -5 "$RL_TMP/c.err")"
    sleep 0.1
  done
  fail "step $1 not reached in 30 s"
}
node n1 "$RL_TMP/n1.err"; N1=$NPID
node n2 "$RL_TMP/n2.err"
wait_step 20

# 1. The duplicate: refused, exits non-zero within seconds, names the live one.
s0=$(step)
node n1 "$RL_TMP/dup.err"; DUP=$NPID
timeout 15 tail --pid="$DUP" -f /dev/null || fail "the duplicate n1 still runs after 15 s"
rc=0; wait "$DUP" || rc=$?
[ "$rc" -ne 0 ] || fail "the duplicate n1 exited 0"
grep -q "ALREADY_EXISTS: node id n1 is in use by a live node (pid $N1, ring endpoint tcp://127.0.0.1:" \
  "$RL_TMP/dup.err" || fail "the refusal does not name n1 and its pid $N1: $(cat "$RL_TMP/dup.err")"
wait_step $((s0 + 50)) # the original keeps training
kill -0 "$N1" 2>/dev/null || fail "the original n1 is gone"
echo "duplicate refused: $(sed -n 's/.*ALREADY_EXISTS: //p' "$RL_TMP/dup.err" | cut -c1-90)..."

# 2. The original killed: a new n1 is accepted and rejoins.
kill -KILL "$N1"
wait "$N1" 2>/dev/null || true
for _ in $(seq 1 100); do # until the coordinator has failed it (bounded: 10 s)
  grep -q "node n1 failed" "$RL_TMP/c.err" && break
  sleep 0.1
done
grep -q "node n1 failed" "$RL_TMP/c.err" || fail "the killed n1 was not failed in 10 s"
node n1 "$RL_TMP/n1b.err"; N1B=$NPID
for _ in $(seq 1 100); do # bounded: 10 s
  grep -q "node n1 joined (pid $N1B," "$RL_TMP/c.err" && break
  kill -0 "$N1B" 2>/dev/null || fail "the new n1 exited: $(cat "$RL_TMP/n1b.err")"
  sleep 0.1
done
grep -q "node n1 joined (pid $N1B," "$RL_TMP/c.err" || fail "the new n1 was not admitted in 10 s"
timeout 120 tail --pid="$CPID" -f /dev/null || fail "the job still runs after 120 s"
rc=0; wait "$CPID" || rc=$?
[ "$rc" -eq 0 ] || { tail -10 "$RL_TMP/c.err" >&2; fail "the job exited $rc"; }
/usr/bin/python3 - "$RL_TMP/out/run.json" "$s0" <<'PY' || fail "run.json"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "ok", r.get("error")
ev = [(e["kind"], e["node"], e["step"]) for e in r["events"]]
failed = [e for e in ev if e[0] == "failed"]
# The only failure is the kill, after the duplicate was refused.
assert len(failed) == 1 and failed[0][1] == "n1", ev
assert any(k in ("rejoin", "join") and n == "n1" and s > 0 for k, n, s in ev), ev
print("original n1 untouched by the duplicate; after its kill a new n1 rejoined:",
      [e for e in ev if e[1] == "n1"])
PY
echo "test_dupid: ok"
