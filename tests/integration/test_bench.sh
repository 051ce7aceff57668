#!/usr/bin/env bash
# test_bench.sh - the benchmark commands print the line formats users' scripts
# parse (the peers' format for all-reduce, ../shared/bench/BASELINES.md), with
# every exact check passed; bad options are refused. Short runs: this checks
# the interface, not the speed.
# usage: test_bench.sh RINGLEADER
RL=$1
. "$(dirname "$0")/lib.sh"
num='[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?'

# All-reduce: N=3 (sizes not divisible by N, one below N elements), one line per size.
out=$(timeout 120 "$RL" bench allreduce --nodes 3 --bytes 4,4K,1M --rounds 1 --iters 5 --budget 0.3) ||
  fail "bench allreduce exited $?"
# (Here-strings, not pipes: grep -q may exit before its writer, and under
# pipefail that writer's SIGPIPE would decide the result.)
lines=$(grep '^peer=' <<< "$out" || true)
[ "$(grep -c . <<< "$lines")" -eq 3 ] || fail "bench allreduce: want 3 lines, got: $out"
off=$(grep -Ev "^peer=ringleader nodes=3 bytes=[0-9]+ time_us=$num algbw_GBps=$num busbw_GBps=$num ok=1( |$)" <<< "$lines" || true)
[ -z "$off" ] || fail "bench allreduce: off the format or not ok=1: $off"
for b in 4 4096 1048576; do grep -q " bytes=$b " <<< "$lines" || fail "bench allreduce: no line for $b bytes"; done

# RPC: concurrency 1 (latency) and 4 (throughput), authenticated echo calls.
for c in 1 4; do
  out=$(timeout 60 "$RL" bench rpc --payload 64 --concurrency $c --calls 300 --warmup-calls 10 \
        --duration 0.3 --warmup-s 0.1) || fail "bench rpc --concurrency $c exited $?"
  grep -Eq "^peer=ringleader payload=64 concurrency=$c p50_us=$num p99_us=$num calls_per_s=$num .*errors=0( |$)" <<< "$out" ||
    fail "bench rpc --concurrency $c: $out"
done

# The gradient pass, with memcpy measured in the same run.
out=$(timeout 120 "$RL" bench train --rows 10000 --features 8) || fail "bench train exited $?"
grep -Eq "^peer=ringleader bench=train model=linear rows=10000 features=8 .*rows_per_s=$num GBps=$num" <<< "$out" ||
  fail "bench train: $out"
grep -Eq "^peer=memcpy bench=memcpy .*GBps=$num" <<< "$out" || fail "bench train: no memcpy line: $out"

# Bad options: a clear refusal, not a run.
rc=0; "$RL" bench allreduce --nodes 0 --bytes 4 >/dev/null 2>"$RL_TMP/err" || rc=$?
[ "$rc" -ne 0 ] && grep -q "bad options" "$RL_TMP/err" || fail "bench allreduce --nodes 0: exit $rc, $(cat "$RL_TMP/err")"
rc=0; "$RL" bench allreduce --frobnicate 1 >/dev/null 2>"$RL_TMP/err" || rc=$?
[ "$rc" -ne 0 ] && grep -q "unknown option --frobnicate" "$RL_TMP/err" || fail "unknown option: exit $rc"
echo "test_bench: ok"
