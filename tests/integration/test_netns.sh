#!/usr/bin/env bash
# test_netns.sh - a multi-host run over real addresses: the coordinator and
# three nodes each in a network namespace this test creates, joined by veth
# pairs to a bridge; one node's link is rate-limited with tc tbf. The run
# (launch: manual) must complete with every node alive: a slow link is not a
# dead node. Needs root (ip netns); skipped with a message otherwise.
# usage: test_netns.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"
netns_usable || { echo "test_netns: skipped (needs root and ip netns)"; exit 0; }
netns_up c n1 n2 n3
# n3's link: 4 Mbit/s with a token bucket (tc tbf), both ways of its veth.
netns_tbf n3 4mbit

new_token "$RL_TMP/t.token"
cat > "$RL_TMP/mh.yaml" <<YAML
cluster:
  name: multihost
  coordinator: tcp://${IP[c]}:7700
  launch: manual
  min_nodes: 3
  join_timeout_ms: 20000
  nodes:
    - { id: n1, listen: tcp://${IP[n1]}:7701 }
    - { id: n2, listen: tcp://${IP[n2]}:7702 }
    - { id: n3, listen: tcp://${IP[n3]}:7703 }
security: { token_file: $RL_TMP/t.token }
data: { source: synthetic, rows: 30000, features: 128, seed: 2, block_rows: 1000 }
model: { type: softmax, classes: 8 }
training: { steps: 40, learning_rate: 0.2 }
fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 500 }
output: { dir: $RL_TMP/out }
YAML
in_host c "$RL" run "$RL_TMP/mh.yaml" >"$RL_TMP/c.out" 2>"$RL_TMP/c.err" &
CPID=$!; RL_PIDS+=("$CPID")
for n in n1 n2 n3; do
  in_host "$n" "$NODE" --coordinator "tcp://${IP[c]}:7700" --id "$n" \
    --listen "tcp://${IP[$n]}:770${n#n}" --token-file "$RL_TMP/t.token" 2>"$RL_TMP/$n.err" &
  RL_PIDS+=("$!")
done
rc=0
timeout 120 tail --pid="$CPID" -f /dev/null || fail "the run did not end within 120 s"
wait "$CPID" || rc=$?
[ "$rc" -eq 0 ] || { tail -20 "$RL_TMP/c.err" >&2; fail "multi-host run exited $rc"; }
/usr/bin/python3 - "$RL_TMP/out/run.json" <<'PY' || fail "run.json"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "ok" and r["coverage"]["violations"] == 0, r.get("error")
assert not [e for e in r["events"] if e["kind"] == "failed"], r["events"]
assert all(n["state"] == "alive" for n in r["nodes"]), r["nodes"]
ar = sorted(s["allreduce_ms"] for s in r["steps"])
print("multi-host over veth, n3 at 4 Mbit/s: %d steps, all-reduce p50 %.1f ms, no node failed"
      % (r["steps_completed"], ar[len(ar) // 2]))
PY
echo "test_netns: ok"
