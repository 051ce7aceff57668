#!/usr/bin/env bash
# test_status.sh - `ringleader status` against a real coordinator (manual
# launch, waiting for nodes that never come): the right token prints the
# job and its nodes; a wrong token is an authentication error (exit 1); a
# closed port is an error (exit 1) within --timeout-ms.
# usage: test_status.sh RINGLEADER
RL=$1
. "$(dirname "$0")/lib.sh"

new_token "$RL_TMP/good.token"
new_token "$RL_TMP/bad.token"
write_spec "$RL_TMP/manual.yaml" 2 "$RL_TMP/good.token" manual
sed -i 's/join_timeout_ms: 10000/join_timeout_ms: 30000/' "$RL_TMP/manual.yaml"
coord=$(sed -n 's/^  coordinator: //p' "$RL_TMP/manual.yaml")
timeout 60 "$RL" run "$RL_TMP/manual.yaml" >"$RL_TMP/coord.out" 2>"$RL_TMP/coord.err" &
RL_PIDS+=("$!")

# The coordinator needs a moment to listen: retry the first call briefly.
ok=0
for _ in $(seq 1 50); do
  if "$RL" status "$coord" --token-file "$RL_TMP/good.token" --timeout-ms 1000 \
       >"$RL_TMP/st.out" 2>"$RL_TMP/st.err"; then ok=1; break; fi
  sleep 0.1
done
[ "$ok" -eq 1 ] || fail "status never succeeded: $(cat "$RL_TMP/st.err")"
grep -q "job it: waiting for nodes" "$RL_TMP/st.out" || fail "no job line: $(cat "$RL_TMP/st.out")"
for n in n1 n2; do
  grep -Eq "^$n +expected" "$RL_TMP/st.out" || fail "$n not listed as expected: $(cat "$RL_TMP/st.out")"
done
# The token may also come from the environment.
RINGLEADER_TOKEN=$(cat "$RL_TMP/good.token") "$RL" status "$coord" >/dev/null 2>&1 ||
  fail "status with \$RINGLEADER_TOKEN failed"

# Wrong token: exit 1, an authentication error, and the coordinator stays up.
rc=0
"$RL" status "$coord" --token-file "$RL_TMP/bad.token" >/dev/null 2>"$RL_TMP/bad.err" || rc=$?
[ "$rc" -eq 1 ] || fail "wrong token: exit $rc, want 1"
grep -qi "authenticat" "$RL_TMP/bad.err" || fail "wrong token: no clear error: $(cat "$RL_TMP/bad.err")"
"$RL" status "$coord" --token-file "$RL_TMP/good.token" >/dev/null 2>&1 ||
  fail "the coordinator stopped answering after a refused client"

# Closed port: exit 1 within the timeout (+ slack for process start-up).
closed="tcp://127.0.0.1:$(free_port)"
t0=$(date +%s%N)
rc=0
timeout 10 "$RL" status "$closed" --token-file "$RL_TMP/good.token" --timeout-ms 1000 \
  >/dev/null 2>"$RL_TMP/closed.err" || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$rc" -eq 1 ] || fail "closed port: exit $rc, want 1 ($(cat "$RL_TMP/closed.err"))"
[ "$ms" -lt 2500 ] || fail "closed port: took $ms ms with --timeout-ms 1000"
grep -q "cannot reach a coordinator at $closed within 1000 ms" "$RL_TMP/closed.err" ||
  fail "closed port: unclear error: $(cat "$RL_TMP/closed.err")"

# No token at all: a usage error (2).
rc=0
env -u RINGLEADER_TOKEN "$RL" status "$coord" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "no token: exit $rc, want 2"
echo "test_status: ok"
