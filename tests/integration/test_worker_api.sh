#!/usr/bin/env bash
# test_worker_api.sh - the worker API and program mode with real processes:
#  1. examples/c/linear as a `program:` on 3 nodes: completes, 0 coverage
#     violations, every exit code 0, and the model of the built-in trainer
#     on the same data and steps (within 1e-6 relative);
#  2. a program exiting 3 fails the job naming the node, the code and the
#     tail of its stderr, in seconds;
#  3. members calling allreduce with different counts: every member gets
#     RL_EINVAL naming both counts, and the job still ends; 3b. f32 sums of
#     8 and 9 elements, i32 max and min, a f32 exact sum: the results the
#     program checks, carried in the header round or not;
#  4. SIGKILL of one program mid-run: both survivors get RL_EREPLAN at the
#     same step, the job completes with 0 coverage violations and the
#     built-in trainer's model;
#  5. launch: manual with `ringleader-node --exec -- CMD`: the same example
#     completes with exit codes 0 in run.json; a program exiting 3 there
#     fails the job naming the node and the code, and its node exits 3;
#  6. a program 4x slower on its blocks than the others: the coordinator
#     marks it a straggler and moves blocks away (every member gets
#     RL_EREPLAN), and the job completes with 0 coverage violations;
#  7. rl_worker_data on a CSV the programs fetch from the coordinator,
#     standardised: the built-in trainer's model (reading the file itself).
# usage: test_worker_api.sh RINGLEADER RINGLEADER_NODE LINEAR WAPI_PROG
RL=$1 NODE=$2 LINEAR=$3 PROG=$4
. "$(dirname "$0")/lib.sh"
export RINGLEADER_NODE_BIN=$NODE
fail() {
  if [ -n "${SPEC:-}" ] && [ -f "$SPEC.err" ]; then echo "--- $SPEC.err (end)" >&2; tail -25 "$SPEC.err" >&2; fi
  echo "FAIL: $*" >&2; exit 1
}
new_token "$RL_TMP/t.token"

# spec NAME STEPS [program args...]: a 3-node spec on 30000 x 8 synthetic
# rows; with program args, a program section running them.
spec() {
  local name=$1 steps=$2; shift 2
  SPEC=$RL_TMP/$name.yaml
  write_spec "$SPEC" 3 "$RL_TMP/t.token"
  sed -i "s/rows: 10000/rows: 30000/; s/steps: 5,/steps: $steps,/; s#out }#out-$name }#" "$SPEC"
  if [ $# -gt 0 ]; then
    local cmd="" a
    for a in "$@"; do cmd="$cmd${cmd:+, }\"$a\""; done
    echo "program: { command: [$cmd], workdir: $RL_TMP }" >> "$SPEC"
  fi
}
# run_job: runs $SPEC in the background (RUN_PID), its output in $SPEC.err.
run_job() { "$RL" run "$SPEC" > "$SPEC.out" 2> "$SPEC.err" & RUN_PID=$!; RL_PIDS+=("$RUN_PID"); }
# wait_job SECONDS: waits for the run; RUN_RC its exit code.
wait_job() {
  local i
  for i in $(seq 1 $(($1 * 10))); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$RUN_PID" 2>/dev/null && fail "the run did not end within $1 s"
  RUN_RC=0; wait "$RUN_PID" || RUN_RC=$?
}
# json FILE EXPR: a Python expression over the run.json as r.
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }
# same_model RUN_JSON MODEL_TXT: the built-in trainer's model and the program's agree.
same_model() {
  python3 - "$1" "$2" <<'PY' || fail "models differ"
import json, sys
m = json.load(open(sys.argv[1]))["model"]
ref = m["weights"] + [m["bias"]]
got = [float(v) for v in open(sys.argv[2]).read().split()]
assert len(got) == len(ref), (len(got), len(ref))
for a, b in zip(got, ref):
    assert abs(a - b) <= 1e-6 * max(1.0, abs(b)), (a, b)
PY
}

echo "== 1. examples/c/linear on 3 nodes against the built-in trainer (at ${SECONDS} s)"
spec ref60 60; run_job; wait_job 60; [ "$RUN_RC" = 0 ] || fail "reference run: rc $RUN_RC"
REF60=$RL_TMP/out-ref60/run.json
spec linear60 60 "$LINEAR" --steps 60 --lr 0.1 --out "$RL_TMP/linear60.txt"
run_job; wait_job 60; [ "$RUN_RC" = 0 ] || fail "program run: rc $RUN_RC"
R=$RL_TMP/out-linear60/run.json
[ "$(json "$R" 'r["status"], r["program"], r["coverage"]["violations"]')" = "ok True 0" ] ||
  fail "run.json: $(json "$R" 'r["status"], r.get("program"), r["coverage"]')"
[ "$(json "$R" 'r["coverage"]["steps_checked"] >= 60, r["steps_completed"] >= 60')" = "True True" ] ||
  fail "steps: $(json "$R" 'r["coverage"], r["steps_completed"]')"
[ "$(json "$R" 'sorted(n["exit_code"] for n in r["nodes"])')" = "[0, 0, 0]" ] || fail "exit codes"
same_model "$REF60" "$RL_TMP/linear60.txt"

echo "== 2. a program exiting 3 fails the job naming node, code and stderr (at ${SECONDS} s)"
spec exit3 5 "$PROG" 100000 --exit n2 20 3
T0=$(date +%s); run_job; wait_job 30; T1=$(date +%s)
[ "$RUN_RC" = 1 ] || fail "rc $RUN_RC, not 1"
grep -q "the program of node n2 exited with code 3" "$SPEC.err" || fail "no node and code in the error"
grep -A3 "exited with code 3" "$SPEC.err" > "$SPEC.tail" || true
grep -q "node n2 gives up at step 20" "$SPEC.tail" || fail "no stderr tail"
R=$RL_TMP/out-exit3/run.json
[ "$(json "$R" 'r["status"]')" = failed ] || fail "run.json status"
[[ "$(json "$R" 'r["error"]')" == *"node n2 exited with code 3"* ]] || fail "run.json error: $(json "$R" 'r["error"]')"
[ $((T1 - T0)) -le 20 ] || fail "took $((T1 - T0)) s"

echo "== 3. different counts fail on every member, naming both (at ${SECONDS} s)"
mkdir -p "$RL_TMP/rep"
spec counts 5 "$PROG" 10 --count n3 5 --report "$RL_TMP/rep"
run_job; wait_job 30; [ "$RUN_RC" = 0 ] || fail "rc $RUN_RC"
for n in n1 n2 n3; do
  f=$RL_TMP/rep/$n.txt
  [ -f "$f" ] || fail "$n got no error"
  grep -q "^RL_EINVAL .*count 4 .*count 5\|^RL_EINVAL .*count 5 .*count 4" "$f" || fail "$n: $(cat "$f")"
done

echo "== 3b. small collectives of every kind, in the header round and not (at ${SECONDS} s)"
spec mixed 5 "$PROG" 200 --mixed
run_job; wait_job 60; [ "$RUN_RC" = 0 ] || fail "rc $RUN_RC: $(grep wapi_prog "$SPEC.err" | head -3)"
R=$RL_TMP/out-mixed/run.json
[ "$(json "$R" 'r["status"], r["coverage"]["violations"], r["steps_completed"] >= 1000')" = "ok 0 True" ] ||
  fail "run.json: $(json "$R" 'r["status"], r["coverage"], r["steps_completed"]')"
[ "$(json "$R" 'sorted(n["exit_code"] for n in r["nodes"])')" = "[0, 0, 0]" ] || fail "exit codes"

echo "== 4. SIGKILL of one program mid-run (at ${SECONDS} s)"
STEPS=4000
spec ref4k $STEPS; run_job; wait_job 120; [ "$RUN_RC" = 0 ] || fail "reference run: rc $RUN_RC"
REF4K=$RL_TMP/out-ref4k/run.json
spec kill $STEPS "$LINEAR" --steps $STEPS --lr 0.1 --out "$RL_TMP/kill.txt"
run_job
kill_program_at "$RUN_PID" n2 "$SPEC.err" "linear: step 200 " 30
wait_job 120; [ "$RUN_RC" = 0 ] || fail "rc $RUN_RC after the kill"
R=$RL_TMP/out-kill/run.json
[ "$(json "$R" 'r["status"], r["coverage"]["violations"]')" = "ok 0" ] || fail "run.json"
[[ "$(json "$R" '[e["kind"] for e in r["events"] if e["node"] == "n2"]')" == *failed* ]] || fail "no failed event"
[ "$(json "$R" '{n["id"]: n["exit_code"] for n in r["nodes"]}')" = "{'n1': 0, 'n2': 137, 'n3': 0}" ] ||
  fail "exit codes: $(json "$R" '{n["id"]: n.get("exit_code") for n in r["nodes"]}')"
S1=$(grep -o "node n1: epoch 1 -> [0-9]* at step [0-9]*" "$SPEC.err" | head -1 | awk '{print $NF}')
S3=$(grep -o "node n3: epoch 1 -> [0-9]* at step [0-9]*" "$SPEC.err" | head -1 | awk '{print $NF}')
[ -n "$S1" ] && [ "$S1" = "$S3" ] || fail "RL_EREPLAN at steps '$S1' (n1) and '$S3' (n3)"
same_model "$REF4K" "$RL_TMP/kill.txt"

echo "== 5. launch: manual, ringleader-node --exec (at ${SECONDS} s)"
# manual NAME PROGRAM...: a manual spec, its coordinator and 3 --exec nodes
# (NODE_PIDS), started in the background.
manual() {
  local name=$1; shift
  spec "$name" 60 "$@"
  sed -i "s/launch: local/launch: manual/" "$SPEC"   # program: marks the mode
  run_job
  local url; url=$(sed -n 's/^  coordinator: //p' "$SPEC")
  NODE_PIDS=()
  for n in n1 n2 n3; do
    (cd "$RL_TMP" && exec "$NODE" --coordinator "$url" --id $n --token-file "$RL_TMP/t.token" \
       --exec -- "$@") >> "$SPEC.err" 2>&1 &
    NODE_PIDS+=($!); RL_PIDS+=($!)
  done
}
manual manual "$LINEAR" --steps 60 --lr 0.1 --out "$RL_TMP/manual.txt"
wait_job 60; [ "$RUN_RC" = 0 ] || fail "manual run: rc $RUN_RC"
for p in "${NODE_PIDS[@]}"; do wait "$p" || fail "an --exec node exited $?"; done
R=$RL_TMP/out-manual/run.json
[ "$(json "$R" 'r["status"], r["coverage"]["violations"], sorted(n["exit_code"] for n in r["nodes"])')" = "ok 0 [0, 0, 0]" ] ||
  fail "manual run.json: $(json "$R" 'r["status"], r["coverage"], [n.get("exit_code") for n in r["nodes"]]')"
same_model "$REF60" "$RL_TMP/manual.txt"
manual mexit3 "$PROG" 100000 --exit n2 20 3
wait_job 30; [ "$RUN_RC" = 1 ] || fail "manual exit 3: rc $RUN_RC"
RC2=0; wait "${NODE_PIDS[1]}" || RC2=$?
[ "$RC2" = 3 ] || fail "the --exec node of n2 exited $RC2, not 3"
[[ "$(json "$RL_TMP/out-mexit3/run.json" 'r["error"]')" == *"node n2 exited with code 3"*"gives up at step 20"* ]] ||
  fail "manual exit 3 error: $(json "$RL_TMP/out-mexit3/run.json" 'r["error"]')"
for p in "${NODE_PIDS[0]}" "${NODE_PIDS[2]}"; do   # the others end when told to stop
  for i in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && fail "an --exec node did not end after the job failed"
done

echo "== 6. a straggler program loses blocks (at ${SECONDS} s)"
spec slow 5 "$PROG" 1500 --slow n2 4
run_job; wait_job 120; [ "$RUN_RC" = 0 ] || fail "rc $RUN_RC"
R=$RL_TMP/out-slow/run.json
[ "$(json "$R" 'r["status"], r["coverage"]["violations"]')" = "ok 0" ] || fail "run.json"
[[ "$(json "$R" '[(e["kind"], e["node"]) for e in r["events"]]')" == *"('straggler', 'n2')"* ]] ||
  fail "no straggler event for n2"
[[ "$(json "$R" '[e["detail"] for e in r["events"] if e["kind"] == "reassign"]')" == *rebalance* ]] ||
  fail "no rebalance"
[ "$(json "$R" '[len(n["blocks"]) for n in r["nodes"] if n["id"] == "n2"][0] < 10')" = True ] ||
  fail "n2 kept its blocks: $(json "$R" '[(n["id"], len(n["blocks"])) for n in r["nodes"]]')"

echo "== 7. CSV rows fetched and standardised as the built-in trainer's (at ${SECONDS} s)"
CSV=$(cd "$(dirname "$0")/../../configs/data" && pwd)/iris_like.csv
# csv_spec NAME FETCH: spec NAME's data section replaced by the CSV.
csv_spec() {
  sed -i "s#^data: .*#data: { source: csv, block_rows: 32, csv: { path: $CSV, label: species, fetch: $2 } }#" "$SPEC"
}
spec csvref 50; csv_spec csvref false; run_job; wait_job 60; [ "$RUN_RC" = 0 ] || fail "rc $RUN_RC"
spec csvprog 50 "$LINEAR" --steps 50 --lr 0.1 --out "$RL_TMP/csv.txt"; csv_spec csvprog true
run_job; wait_job 60; [ "$RUN_RC" = 0 ] || fail "rc $RUN_RC"
same_model "$RL_TMP/out-csvref/run.json" "$RL_TMP/csv.txt"
echo "PASS (${SECONDS} s)"
