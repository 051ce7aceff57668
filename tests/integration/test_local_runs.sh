#!/usr/bin/env bash
# test_local_runs.sh - the shortcuts of docs/operations.md "Quick local runs,
# port 0 and hostfiles" and "Status and logs", with real processes on loopback:
#  1. `run SPEC --nodes 3` (launch: local) replaces the spec's nodes with
#     n1..n3 on free ports: the job completes and run.json lists 3 nodes;
#     with launch: manual --nodes is refused, naming why.
#  2. `listen: tcp://127.0.0.1:0` in a spec: the job completes; `status SPEC`
#     shows each joined node's real port.
#  3. cluster.nodes_file with two `127.0.0.1 slots=2` lines: 4 nodes.
#  4. An unknown option to any command is named in its error.
# usage: test_local_runs.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"
export RINGLEADER_NODE_BIN=$NODE

new_token "$RL_TMP/tok"
# run_json_ids FILE: the node ids run.json lists, one line, in order.
run_json_ids() {
  python3 -c 'import json,sys; print(" ".join(n["id"] for n in json.load(open(sys.argv[1]))["nodes"]))' "$1"
}
# real_port LINE: true if the endpoint on a status row has a port other than 0.
has_real_port() { echo "$1" | grep -Eq 'tcp://127\.0\.0\.1:[1-9][0-9]*( |$)'; }

# 1. --nodes 3 on a spec that lists one node.
write_spec "$RL_TMP/one.yaml" 1 "$RL_TMP/tok"
sed -i "s|dir: $RL_TMP/out|dir: $RL_TMP/out1|" "$RL_TMP/one.yaml"
timeout 60 "$RL" run "$RL_TMP/one.yaml" --nodes 3 >"$RL_TMP/out1.txt" 2>"$RL_TMP/err1" ||
  fail "run --nodes 3 exited $?: $(tail -5 "$RL_TMP/err1")"
grep -q "3 of 3 nodes joined" "$RL_TMP/out1.txt" || fail "--nodes 3: $(cat "$RL_TMP/out1.txt")"
ids=$(run_json_ids "$RL_TMP/out1/run.json")
[ "$ids" = "n1 n2 n3" ] || fail "--nodes 3: run.json lists '$ids', want 'n1 n2 n3'"
grep -q "coord info\] node n3 joined (pid [0-9]*, ring endpoint tcp://127.0.0.1:[1-9]" "$RL_TMP/err1" ||
  fail "--nodes 3: n3 did not join on a free port: $(grep n3 "$RL_TMP/err1")"

write_spec "$RL_TMP/manual.yaml" 2 "$RL_TMP/tok" manual
rc=0
timeout 10 "$RL" run "$RL_TMP/manual.yaml" --nodes 2 >/dev/null 2>"$RL_TMP/err1m" || rc=$?
[ "$rc" -eq 2 ] || fail "--nodes with launch: manual: exit $rc, want 2"
grep -q "ringleader run: --nodes starts the nodes on this machine, but .* has launch: manual" \
  "$RL_TMP/err1m" || fail "--nodes with launch: manual: unclear error: $(cat "$RL_TMP/err1m")"

# 2a. Port 0 in the spec, launch: local: the nodes bind free ports.
write_spec "$RL_TMP/zero.yaml" 2 "$RL_TMP/tok"
sed -i -e 's|listen: tcp://127.0.0.1:[0-9]*|listen: tcp://127.0.0.1:0|' \
  -e "s|dir: $RL_TMP/out|dir: $RL_TMP/out2|" "$RL_TMP/zero.yaml"
grep -q "listen: tcp://127.0.0.1:0 }" "$RL_TMP/zero.yaml" || fail "no port 0 in the test spec"
timeout 60 "$RL" run "$RL_TMP/zero.yaml" >"$RL_TMP/out2.txt" 2>"$RL_TMP/err2" ||
  fail "a spec with listen port 0 failed: $(tail -5 "$RL_TMP/err2")"
[ "$(run_json_ids "$RL_TMP/out2/run.json")" = "n1 n2" ] || fail "port 0: run.json nodes"

# 2b. Port 0, launch: manual: while n2 is still missing, `status SPEC` shows
# n1 joined on its real port and n2 still on the spec's port 0.
sed -e 's/launch: local/launch: manual/' -e 's/join_timeout_ms: 10000/join_timeout_ms: 30000/' \
  "$RL_TMP/zero.yaml" > "$RL_TMP/zero-m.yaml"
coord=$(sed -n 's/^  coordinator: //p' "$RL_TMP/zero-m.yaml")
timeout 60 "$RL" run "$RL_TMP/zero-m.yaml" >"$RL_TMP/out2m.txt" 2>"$RL_TMP/err2m" &
cpid=$!; RL_PIDS+=("$cpid")
timeout 60 "$NODE" --coordinator "$coord" --id n1 --listen tcp://127.0.0.1:0 \
  --token-file "$RL_TMP/tok" --join-timeout-ms 20000 2>"$RL_TMP/n1.err" &
RL_PIDS+=("$!")
row=""
for _ in $(seq 1 100); do  # up to ~10 s for n1 to join
  row=$("$RL" status "$RL_TMP/zero-m.yaml" --timeout-ms 1000 2>/dev/null | grep -E '^n1 +alive' || true)
  [ -n "$row" ] && break
  sleep 0.1
done
[ -n "$row" ] || fail "status SPEC never showed n1 alive: $("$RL" status "$RL_TMP/zero-m.yaml" 2>&1)"
has_real_port "$row" || fail "status shows no real port for n1: $row"
"$RL" status "$RL_TMP/zero-m.yaml" | grep -E '^n2 +expected' | grep -q 'tcp://127.0.0.1:0 ' ||
  fail "status: n2 not expected on port 0: $("$RL" status "$RL_TMP/zero-m.yaml")"
# status SPEC agrees with status URL --token-file.
"$RL" status "$coord" --token-file "$RL_TMP/tok" | grep -q '^job it: waiting for nodes' ||
  fail "status URL disagrees with status SPEC"
timeout 60 "$NODE" --coordinator "$coord" --id n2 --listen tcp://127.0.0.1:0 \
  --token-file "$RL_TMP/tok" --join-timeout-ms 20000 2>"$RL_TMP/n2.err" &
RL_PIDS+=("$!")
set +e
wait "$cpid"; crc=$?
set -e
[ "$crc" -eq 0 ] || fail "manual port-0 job exited $crc: $(tail -5 "$RL_TMP/err2m")"
grep -q "node n2 joined (pid [0-9]*, ring endpoint tcp://127.0.0.1:[1-9]" "$RL_TMP/err2m" ||
  fail "n2 did not report its bound port at join"
# A spec that does not load is named, with its problems.
echo "cluster: [" > "$RL_TMP/broken.yaml"
rc=0
"$RL" status "$RL_TMP/broken.yaml" >/dev/null 2>"$RL_TMP/st-broken" || rc=$?
[ "$rc" -eq 2 ] && grep -q "broken.yaml: not a URL, and not a valid spec" "$RL_TMP/st-broken" ||
  fail "status of a broken spec: exit $rc: $(cat "$RL_TMP/st-broken")"

# 3. A hostfile: two lines for 127.0.0.1, two slots each: 4 nodes.
printf '# two lines, one host\n127.0.0.1 slots=2\n\n127.0.0.1 slots=2  # more\n' > "$RL_TMP/hosts"
write_spec "$RL_TMP/hf.yaml" 1 "$RL_TMP/tok"
python3 - "$RL_TMP/hf.yaml" "$RL_TMP" <<'PY'
import re, sys
p, tmp = sys.argv[1], sys.argv[2]
s = open(p).read()
s = re.sub(r"  nodes:\n(    - .*\n)+", "  nodes_file: hosts\n", s)
s = s.replace("dir: %s/out" % tmp, "dir: %s/out3" % tmp)
open(p, "w").write(s)
PY
grep -q "nodes_file: hosts" "$RL_TMP/hf.yaml" || fail "no nodes_file in the test spec"
timeout 60 "$RL" run "$RL_TMP/hf.yaml" >"$RL_TMP/out3.txt" 2>"$RL_TMP/err3" ||
  fail "nodes_file run failed: $(tail -5 "$RL_TMP/err3")"
ids=$(run_json_ids "$RL_TMP/out3/run.json")
[ "$ids" = "127.0.0.1-1 127.0.0.1-2 127.0.0.1-3 127.0.0.1-4" ] ||
  fail "nodes_file: run.json lists '$ids'"
printf '127.0.0.1\n127.0.0.1 slots=two\n' > "$RL_TMP/hosts"
rc=0
"$RL" validate "$RL_TMP/hf.yaml" >/dev/null 2>"$RL_TMP/err3b" || rc=$?
[ "$rc" -eq 2 ] && grep -q "cluster.nodes_file: $RL_TMP/hosts:2: 'slots=two'" "$RL_TMP/err3b" ||
  fail "a bad hostfile line: exit $rc: $(cat "$RL_TMP/err3b")"

# 4. Unknown options, named.
for cmd in run status validate predict; do
  rc=0
  "$RL" $cmd --frobnicate 1 >/dev/null 2>"$RL_TMP/opt.err" || rc=$?
  [ "$rc" -eq 2 ] || fail "$cmd --frobnicate: exit $rc, want 2"
  grep -q "^ringleader $cmd: unknown option --frobnicate$" "$RL_TMP/opt.err" ||
    fail "$cmd: the unknown option is not named: $(head -2 "$RL_TMP/opt.err")"
done
rc=0
"$RL" --frobnicate >/dev/null 2>"$RL_TMP/opt.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "unknown option --frobnicate" "$RL_TMP/opt.err" ||
  fail "ringleader --frobnicate: $(head -1 "$RL_TMP/opt.err")"
echo "test_local_runs: ok"
