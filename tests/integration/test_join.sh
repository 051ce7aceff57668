#!/usr/bin/env bash
# test_join.sh - real processes: `ringleader run` starts 4 local nodes that
# join authenticated; a node with the wrong token is refused and the
# coordinator stays up; nodes that never join make the run fail with their
# names, and nothing is left running.
# usage: test_join.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"

new_token "$RL_TMP/good.token"
new_token "$RL_TMP/bad.token"

# 1. launch: local, 4 nodes.
write_spec "$RL_TMP/local.yaml" 4 "$RL_TMP/good.token"
out=$(RINGLEADER_NODE_BIN=$NODE timeout 60 "$RL" run "$RL_TMP/local.yaml" 2>"$RL_TMP/err1") ||
  { rc=$?; cat "$RL_TMP/err1" >&2; fail "local run exited $rc"; }
echo "$out" | grep -q "4 of 4 nodes joined" || fail "expected 4 of 4 joined, got: $out"
for i in 1 2 3 4; do grep -q "node n$i joined" "$RL_TMP/err1" || fail "n$i not logged as joined"; done

# 2. launch: manual; one node holds the wrong token, one never comes.
write_spec "$RL_TMP/manual.yaml" 3 "$RL_TMP/good.token" manual
# min_nodes 3: the job needs every node, so the missing ones fail it (with
# fewer, it would start without them: test_min_nodes.sh).
sed -i 's/join_timeout_ms: 10000/join_timeout_ms: 6000/; s/min_nodes: 1/min_nodes: 3/' "$RL_TMP/manual.yaml"
coord=$(sed -n 's/^  coordinator: //p' "$RL_TMP/manual.yaml")
timeout 60 "$RL" run "$RL_TMP/manual.yaml" >"$RL_TMP/out2" 2>"$RL_TMP/err2" &
cpid=$!; RL_PIDS+=("$cpid")
timeout 20 "$NODE" --coordinator "$coord" --id n1 --token-file "$RL_TMP/good.token" \
  --join-timeout-ms 15000 2>"$RL_TMP/n1.err" &
RL_PIDS+=("$!")
set +e
timeout 20 "$NODE" --coordinator "$coord" --id n2 --token-file "$RL_TMP/bad.token" \
  --join-timeout-ms 15000 2>"$RL_TMP/n2.err"
n2rc=$?
wait "$cpid"; crc=$?
set -e
[ "$n2rc" -ne 0 ] || fail "a node with the wrong token joined"
grep -qi "token\|authentic" "$RL_TMP/n2.err" || fail "wrong-token node gave no clear error: $(cat "$RL_TMP/n2.err")"
[ "$crc" -eq 1 ] || fail "coordinator exit $crc with nodes missing, want 1"
grep -q "did not" "$RL_TMP/err2" && grep -q "n3" "$RL_TMP/err2" ||
  fail "coordinator did not name the missing nodes: $(cat "$RL_TMP/err2")"
grep -q "node n1 joined" "$RL_TMP/err2" || fail "the good node was not admitted while a bad one was refused"
# 3. A failure every epoch, with every node alive, ends the job: nodes
# started by hand (the spec check of the algorithm is for local launches)
# whose kernel has no such TCP congestion control cannot form a ring, and
# the coordinator stops after JOB_RETRY_MAX epochs in a row, naming it,
# instead of re-planning for ever.
write_spec "$RL_TMP/cc.yaml" 2 "$RL_TMP/good.token" manual
echo "allreduce: { tcp_congestion: nosuchcc }" >> "$RL_TMP/cc.yaml"
coord=$(sed -n 's/^  coordinator: //p' "$RL_TMP/cc.yaml")
timeout 60 "$RL" run "$RL_TMP/cc.yaml" >"$RL_TMP/out3" 2>"$RL_TMP/err3" &
cpid=$!; RL_PIDS+=("$cpid")
for i in 1 2; do
  timeout 60 "$NODE" --coordinator "$coord" --id n$i --token-file "$RL_TMP/good.token" \
    --join-timeout-ms 15000 2>"$RL_TMP/cc-n$i.err" &
  RL_PIDS+=("$!")
done
set +e
wait "$cpid"; crc=$?
set -e
[ "$crc" -ne 124 ] || fail "the coordinator was still re-planning after 60 s"
[ "$crc" -ne 0 ] || fail "a job whose ring cannot form succeeded"
grep -q "10 epochs in a row failed at step 0" "$RL_TMP/err3" ||
  fail "no bounded-retry error: $(tail -5 "$RL_TMP/err3")"
grep -q 'TCP congestion control "nosuchcc" is not available' "$RL_TMP/err3" ||
  fail "the error does not name the algorithm: $(tail -5 "$RL_TMP/err3")"
echo "test_join: ok"
