#!/usr/bin/env bash
# test_slow_link.sh - a slow link is recognised as a link (docs/operations.md,
# "The straggler signal"): the coordinator and four nodes each in a network
# namespace, joined by veth pairs to a bridge; n3's veth is rate-limited with
# tc tbf. The run must name the link in a slow_link event with both nodes,
# flag no straggler and move no blocks (moving blocks cannot speed a link).
# Needs root (ip netns); skipped with a message otherwise.
# usage: test_slow_link.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"
netns_usable || { echo "test_slow_link: skipped (needs root and ip netns)"; exit 0; }
netns_up c n1 n2 n3 n4
# n3's link: 2 Mbit/s with a token bucket (tc tbf), both ways of its veth.
netns_tbf n3 2mbit

new_token "$RL_TMP/t.token"
cat > "$RL_TMP/sl.yaml" <<YAML
cluster:
  name: slowlink
  coordinator: tcp://${IP[c]}:7700
  launch: manual
  min_nodes: 4
  join_timeout_ms: 20000
  nodes:
    - { id: n1, listen: tcp://${IP[n1]}:7701 }
    - { id: n2, listen: tcp://${IP[n2]}:7702 }
    - { id: n3, listen: tcp://${IP[n3]}:7703 }
    - { id: n4, listen: tcp://${IP[n4]}:7704 }
security: { token_file: $RL_TMP/t.token }
data: { source: synthetic, rows: 40000, features: 128, seed: 2, block_rows: 1000 }
model: { type: softmax, classes: 8 }
training: { steps: 150, learning_rate: 0.2 }
fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 1500 }
output: { dir: $RL_TMP/out }
YAML
in_host c "$RL" run "$RL_TMP/sl.yaml" >"$RL_TMP/c.out" 2>"$RL_TMP/c.err" &
CPID=$!; RL_PIDS+=("$CPID")
for n in n1 n2 n3 n4; do
  in_host "$n" "$NODE" --coordinator "tcp://${IP[c]}:7700" --id "$n" \
    --listen "tcp://${IP[$n]}:770${n#n}" --token-file "$RL_TMP/t.token" 2>"$RL_TMP/$n.err" &
  RL_PIDS+=("$!")
done
rc=0
timeout 150 tail --pid="$CPID" -f /dev/null || fail "the run did not end within 150 s"
wait "$CPID" || rc=$?
[ "$rc" -eq 0 ] || { tail -20 "$RL_TMP/c.err" >&2; fail "slow link run exited $rc"; }
/usr/bin/python3 - "$RL_TMP/out/run.json" <<'PY' || fail "run.json"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "ok" and r["coverage"]["violations"] == 0, r.get("error")
for n in r["nodes"]:
    print("  %s blocks %d busy %.2f wait_ms %.2f step_ms %.2f" % (
        n["id"], len(n["blocks"]), n["busy_fraction"], n["wait_ms"], n["step_ms"]))
for e in r["events"]:
    if e["kind"] != "join": print("  event", e["step"], e["kind"], e["node"], e["detail"])
links = [e for e in r["events"] if e["kind"] == "slow_link"]
assert links and all("n3" in e["node"] + e["detail"] for e in links), "no slow_link event naming n3"
assert not [e for e in r["events"] if e["kind"] in ("straggler", "failed")], "a node was blamed"
moves = [e for e in r["events"] if e["kind"] == "reassign" and "(start)" not in e["detail"]]
assert not moves, moves
print("n3 at 2 Mbit/s: %d slow_link event(s), no straggler, no blocks moved" % len(links))
PY
echo "test_slow_link: ok"
