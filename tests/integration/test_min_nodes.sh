#!/usr/bin/env bash
# test_min_nodes.sh - cluster.min_nodes 2 of 3 nodes (launch: manual):
#  1. only n1 and n2 come: while it waits the coordinator says who is
#     missing; when the join window ends it starts with the two and the job
#     completes;
#  2. n3 comes late: it joins the running job and gets blocks (a "join"
#     event in run.json, and its blocks in the steps after);
#  3. only n1 comes: fewer than min_nodes when the window ends, the job
#     fails naming the missing nodes.
# usage: test_min_nodes.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"

new_token "$RL_TMP/t.token"
export RINGLEADER_TOKEN=$(cat "$RL_TMP/t.token")
# spec FILE STEPS: three nodes on free loopback ports, min_nodes 2, a 3 s window.
spec() {
  cat > "$1" <<YAML
cluster:
  name: min
  coordinator: tcp://127.0.0.1:$(free_port)
  launch: manual
  min_nodes: 2
  join_timeout_ms: 3000
  nodes:
    - { id: n1, listen: tcp://127.0.0.1:$(free_port) }
    - { id: n2, listen: tcp://127.0.0.1:$(free_port) }
    - { id: n3, listen: tcp://127.0.0.1:$(free_port) }
data: { source: synthetic, rows: 200000, features: 32, seed: 3, block_rows: 1000 }
model: { type: linear }
training: { steps: $2, learning_rate: 0.05 }
fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 1000 }
output: { dir: $RL_TMP/out-$(basename "$1" .yaml) }
YAML
}
# run SPEC NODES...: the coordinator and the named nodes (no --listen); sets CPID, CURL.
run() {
  local f=$1; shift
  "$RL" run "$f" >"$f.out" 2>"$f.err" &
  CPID=$!; RL_PIDS+=("$CPID")
  CURL=$(sed -n 's/^  coordinator: //p' "$f")
  for n in "$@"; do node "$f" "$n"; done
}
node() { # node SPEC ID
  "$NODE" --coordinator "$CURL" --id "$2" --join-timeout-ms 10000 2>"$1.$2.err" &
  RL_PIDS+=("$!")
}
# finish SPEC WANT_RC: the coordinator's exit (bounded: 120 s).
finish() {
  timeout 120 tail --pid="$CPID" -f /dev/null || fail "$1: still running after 120 s"
  local rc=0; wait "$CPID" || rc=$?
  [ "$rc" -eq "$2" ] || { tail -10 "$1.err" >&2; fail "$1: exit $rc, want $2"; }
}

# 1. Two of three: the waiting log names n3, the job starts and completes.
spec "$RL_TMP/two.yaml" 300
run "$RL_TMP/two.yaml" n1 n2
finish "$RL_TMP/two.yaml" 0
grep -q "waiting for nodes: n3 (tcp://127.0.0.1:[0-9]*); 2 of 3 joined" "$RL_TMP/two.yaml.err" ||
  fail "no waiting log naming n3: $(grep -m3 waiting "$RL_TMP/two.yaml.err")"
grep -q "starting without n3" "$RL_TMP/two.yaml.out" || fail "no 'starting without n3': $(cat "$RL_TMP/two.yaml.out")"
echo "2 of 3 joined: $(grep -m1 -o 'waiting for nodes.*' "$RL_TMP/two.yaml.err"), then the job completed"

# 2. n3 comes after the start and gets blocks.
spec "$RL_TMP/late.yaml" "${RL_MIN_STEPS:-4000}"
run "$RL_TMP/late.yaml" n1 n2
for _ in $(seq 1 150); do # the start, after the 3 s window (bounded: 15 s)
  grep -q "starting without n3" "$RL_TMP/late.yaml.out" 2>/dev/null && break
  sleep 0.1
done
grep -q "starting without n3" "$RL_TMP/late.yaml.out" || fail "the job did not start without n3"
node "$RL_TMP/late.yaml" n3
finish "$RL_TMP/late.yaml" 0
/usr/bin/python3 - "$RL_TMP/out-late/run.json" <<'PY' || fail "late run.json"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "ok", r.get("error")
join = [e for e in r["events"] if e["kind"] == "join" and e["node"] == "n3"]
assert join and "joined the running job" in join[0]["detail"], r["events"]
n3 = [n for n in r["nodes"] if n["id"] == "n3"][0]
assert n3["state"] == "alive" and len(n3["blocks"]) > 0, n3
print("n3 joined at step %d (%s); it holds %d blocks at the end" %
      (join[0]["step"], join[0]["detail"], len(n3["blocks"])))
PY

# 3. One of three (below min_nodes 2): fails naming n2 and n3.
spec "$RL_TMP/one.yaml" 300
run "$RL_TMP/one.yaml" n1
finish "$RL_TMP/one.yaml" 1
grep -q "only 1 of 3 nodes joined within 3000 ms (cluster.min_nodes 2): n2 (.*), n3 (.*) did not" \
  "$RL_TMP/one.yaml.err" || fail "no error naming n2 and n3: $(tail -3 "$RL_TMP/one.yaml.err")"
echo "test_min_nodes: ok"
