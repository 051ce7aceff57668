#!/usr/bin/env bash
# test_python.sh - the Python package `ringleader` (python/, docs/worker-api.md)
# with real processes:
#  1. imported from the build tree (PYTHONPATH=BUILD/python) and from an
#     install prefix (cmake --install), each loading its own tree's library;
#  2. tests/py_prog.py on 3 nodes: bad input refused with TypeError naming
#     it before any collective, every dtype and op in place, broadcast,
#     blocks, elastic.State.sync; members calling with different counts get
#     ringleader.Error on every member naming both counts;
#  3. examples/python/numpy_logreg.py on 3 nodes from the prefix's package,
#     the spec run from its directory with a relative token path and
#     program.workdir: 0 coverage violations and the built-in trainer's logistic model on the
#     same data and steps (1e-6 relative);
#  4. examples/python/torch_mlp.py on 4 nodes reaches the test accuracy of a
#     single-process run of the same script within 0.5 points;
#  5. SIGKILL of one torch_mlp worker mid-run: the job completes through
#     elastic.run with 0 coverage violations, the killed node's exit code
#     137, and the same accuracy within 0.5 points.
# usage: test_python.sh RINGLEADER RINGLEADER_NODE CMAKE BUILD_DIR SOURCE_DIR
RL=$1 NODE=$2 CMAKE=$3 BUILD=$4 SRC=$5
. "$(dirname "$0")/lib.sh"
export RINGLEADER_NODE_BIN=$NODE
PY=/usr/bin/python3
fail() {
  if [ -n "${SPEC:-}" ] && [ -f "$SPEC.err" ]; then echo "--- $SPEC.err (end)" >&2; tail -25 "$SPEC.err" >&2; fi
  echo "FAIL: $*" >&2; exit 1
}
"$PY" -c 'import numpy, torch, sklearn' 2>/dev/null ||
  fail "$PY lacks numpy, torch or sklearn (scripts/setup.sh installs python3-numpy python3-torch python3-sklearn)"
# In a sanitizer build the library needs the ASan runtime loaded first in a
# Python process (RL_PY_PRELOAD, from tests/integration/CMakeLists.txt); the
# interpreter's own allocations are not ours to check for leaks.
PYENV=""
if [ -n "${RL_PY_PRELOAD:-}" ]; then
  PYENV="LD_PRELOAD: $RL_PY_PRELOAD, ASAN_OPTIONS: \"detect_leaks=0:abort_on_error=1\", "
  py() { LD_PRELOAD=$RL_PY_PRELOAD ASAN_OPTIONS=detect_leaks=0 "$PY" "$@"; }
else
  py() { "$PY" "$@"; }
fi
new_token "$RL_TMP/t.token"

# json FILE EXPR: a Python expression over the JSON file as r.
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }
# spec NAME NODES PYTHONPATH [program args...]: a spec on synthetic data
# (30000 x 8, logistic labels), the program run with PYTHONPATH.
spec() {
  local name=$1 nodes=$2 pp=$3; shift 3
  SPEC=$RL_TMP/$name.yaml
  write_spec "$SPEC" "$nodes" "$RL_TMP/t.token"
  sed -i "s/rows: 10000/rows: 30000/; s#out }#out-$name }#; s/type: linear/type: logistic/" "$SPEC"
  if [ $# -gt 0 ]; then
    local cmd="" a
    for a in "$@"; do cmd="$cmd${cmd:+, }\"$a\""; done
    echo "program: { command: [$cmd], workdir: $RL_TMP, env: { ${PYENV}PYTHONPATH: $pp, OMP_NUM_THREADS: \"1\" } }" >> "$SPEC"
  fi
}
# digits_spec NAME [program args...]: 4 nodes on the digits CSV.
digits_spec() {
  local name=$1; shift
  spec "$name" 4 "$BUILD/python" "$@"
  sed -i "s#^data: .*#data: { source: csv, csv: { path: $RL_TMP/digits_train.csv, label: label, standardize: false }, block_rows: 64 }#; s/type: logistic/type: softmax, classes: 10/" "$SPEC"
}
run_job() { "$RL" run "$SPEC" > "$SPEC.out" 2> "$SPEC.err" & RUN_PID=$!; RL_PIDS+=("$RUN_PID"); }
wait_job() {
  local i
  for i in $(seq 1 $(($1 * 10))); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$RUN_PID" 2>/dev/null && fail "the run did not end within $1 s"
  RUN_RC=0; wait "$RUN_PID" || RUN_RC=$?
}
# accuracy_close A B: |A - B| <= 0.5 points.
accuracy_close() { python3 -c "import sys; sys.exit(abs($1 - $2) > 0.5)"; }

echo "== 1. import from the build tree and from an install prefix (at ${SECONDS} s)"
got=$(PYTHONPATH=$BUILD/python py -c 'import ringleader; print(ringleader._lib.PATH)') ||
  fail "import from $BUILD/python"
[ "$(realpath "$got")" = "$(realpath "$BUILD"/lib/libringleader.so.0)" ] || fail "build tree's package loads $got"
P=$RL_TMP/prefix
timeout 120 "$CMAKE" --install "$BUILD" --prefix "$P" > "$RL_TMP/install.log" 2>&1 ||
  { cat "$RL_TMP/install.log"; fail "cmake --install"; }
PP=$P/lib/python3/dist-packages
[ -f "$PP/ringleader/__init__.py" ] && [ -f "$PP/ringleader/_where.py" ] || fail "no package in $PP"
got=$(cd / && PYTHONPATH=$PP py -c 'import ringleader; print(ringleader._lib.PATH, ringleader.__file__)') ||
  fail "import from $PP"
[ "$(realpath "${got% *}")" = "$(realpath "$P"/lib/libringleader.so.0)" ] || fail "the prefix's package loads ${got% *}"
[[ "${got#* }" == "$PP"/ringleader/* ]] || fail "imported ${got#* }, not the prefix's"
out=$(cd / && unset RINGLEADER_COORDINATOR && PYTHONPATH=$PP py -c '
import ringleader
try:
    ringleader.join(node_id="n1")
except ringleader.Error as e:
    print(e.name, e)' 2>&1)
[[ "$out" == "RL_EINVAL RL_EINVAL: rl_worker_join: no coordinator URL"* ]] || fail "join without a coordinator: $out"

echo "== 2. py_prog on 3 nodes: bad input, dtypes and ops, different counts (at ${SECONDS} s)"
mkdir -p "$RL_TMP/rep"
spec prog 3 "$BUILD/python" "$PY" "$SRC/tests/py_prog.py" "$RL_TMP/rep" n2
run_job; wait_job 90; [ "$RUN_RC" = 0 ] || fail "rc $RUN_RC"
for n in n1 n2 n3; do
  grep -q "py_prog $n: ok" "$SPEC.err" || fail "$n did not pass"
  f=$RL_TMP/rep/$n.txt
  grep -q "^RL_EINVAL .*count 4 .*count 5\|^RL_EINVAL .*count 5 .*count 4" "$f" || fail "$n: $(cat "$f")"
done
R=$RL_TMP/out-prog/run.json
[ "$(json "$R" 'r["status"], r["coverage"]["violations"]')" = "ok 0" ] || fail "run.json"

echo "== 3. numpy_logreg on 3 nodes, from the prefix, against the built-in trainer (at ${SECONDS} s)"
spec ref 3 ""
sed -i 's/steps: 5, learning_rate: 0.1/steps: 100, learning_rate: 0.5/' "$SPEC"
run_job; wait_job 60; [ "$RUN_RC" = 0 ] || fail "reference run: rc $RUN_RC"
REF=$RL_TMP/out-ref/run.json
spec logreg 3 "$PP" "$PY" "$SRC/examples/python/numpy_logreg.py" --steps 100 --lr 0.5 --out "$RL_TMP/logreg.txt"
# Run as a user would, from the spec's directory with relative paths: the
# token file relative to the spec, the program in a subdirectory of it
# (ringleader run gives the program the token's path absolute).
mkdir -p "$RL_TMP/work"
sed -i "s#token_file: $RL_TMP/t.token#token_file: t.token#; s#workdir: $RL_TMP,#workdir: work,#" "$SPEC"
grep -q "token_file: t.token" "$SPEC" && grep -q "workdir: work," "$SPEC" || fail "relative paths in $SPEC"
(cd "$RL_TMP" && exec "$RL" run logreg.yaml) > "$SPEC.out" 2> "$SPEC.err" & RUN_PID=$!; RL_PIDS+=("$RUN_PID")
wait_job 90; [ "$RUN_RC" = 0 ] || fail "rc $RUN_RC"
R=$RL_TMP/out-logreg/run.json
[ "$(json "$R" 'r["status"], r["coverage"]["violations"], sorted(n["exit_code"] for n in r["nodes"])')" = "ok 0 [0, 0, 0]" ] ||
  fail "run.json: $(json "$R" 'r["status"], r["coverage"], [n.get("exit_code") for n in r["nodes"]]')"
python3 - "$REF" "$RL_TMP/logreg.txt" <<'PY' || fail "models differ"
import json, sys
m = json.load(open(sys.argv[1]))["model"]
ref = m["weights"] + [m["bias"]]
got = [float(v) for v in open(sys.argv[2]).read().split()]
assert len(got) == len(ref), (len(got), len(ref))
for a, b in zip(got, ref):
    assert abs(a - b) <= 1e-6 * max(1.0, abs(b)), (a, b)
PY

echo "== 4. torch_mlp on 4 nodes against one process (at ${SECONDS} s)"
MLP=$SRC/examples/python/torch_mlp.py
"$PY" "$MLP" --write-data "$RL_TMP" || fail "torch_mlp.py --write-data"
STEPS=300
py "$MLP" --single "$RL_TMP/digits_train.csv" --test "$RL_TMP/digits_test.csv" --steps $STEPS \
  --out "$RL_TMP/single.json" 2> "$RL_TMP/single.err" || { cat "$RL_TMP/single.err"; fail "single run"; }
ACC1=$(json "$RL_TMP/single.json" 'r["accuracy"]')
digits_spec mlp "$PY" "$MLP" --test "$RL_TMP/digits_test.csv" --steps $STEPS --out "$RL_TMP/mlp.json"
run_job; wait_job 120; [ "$RUN_RC" = 0 ] || fail "rc $RUN_RC"
R=$RL_TMP/out-mlp/run.json
[ "$(json "$R" 'r["status"], r["coverage"]["violations"]')" = "ok 0" ] || fail "run.json"
ACC4=$(json "$RL_TMP/mlp.json" 'r["accuracy"]')
[ "$(json "$RL_TMP/mlp.json" 'r["members"]')" = 4 ] || fail "not 4 members at the end"
accuracy_close "$ACC4" "$ACC1" || fail "accuracy $ACC4 on 4 nodes, $ACC1 in one process"
echo "accuracy: $ACC4 on 4 nodes, $ACC1 in one process"

echo "== 5. SIGKILL of one torch_mlp worker mid-run (at ${SECONDS} s)"
STEPS=1000
py "$MLP" --single "$RL_TMP/digits_train.csv" --test "$RL_TMP/digits_test.csv" --steps $STEPS \
  --out "$RL_TMP/single1k.json" 2> "$RL_TMP/single1k.err" || { cat "$RL_TMP/single1k.err"; fail "single run"; }
ACC1=$(json "$RL_TMP/single1k.json" 'r["accuracy"]')
digits_spec kill "$PY" "$MLP" --test "$RL_TMP/digits_test.csv" --steps $STEPS --out "$RL_TMP/kill.json"
run_job
kill_program_at "$RUN_PID" n2 "$SPEC.err" "torch_mlp: step 100 " 60
wait_job 180; [ "$RUN_RC" = 0 ] || fail "rc $RUN_RC after the kill"
R=$RL_TMP/out-kill/run.json
[ "$(json "$R" 'r["status"], r["coverage"]["violations"]')" = "ok 0" ] || fail "run.json: $(json "$R" 'r["status"], r["coverage"]')"
[[ "$(json "$R" '[e["kind"] for e in r["events"] if e["node"] == "n2"]')" == *failed* ]] || fail "no failed event"
[ "$(json "$R" '{n["id"]: n["exit_code"] for n in r["nodes"]}')" = "{'n1': 0, 'n2': 137, 'n3': 0, 'n4': 0}" ] ||
  fail "exit codes: $(json "$R" '{n["id"]: n.get("exit_code") for n in r["nodes"]}')"
[ "$(json "$RL_TMP/kill.json" 'r["members"]')" = 3 ] || fail "not 3 members at the end"
ACCK=$(json "$RL_TMP/kill.json" 'r["accuracy"]')
accuracy_close "$ACCK" "$ACC1" || fail "accuracy $ACCK after the kill, $ACC1 in one process"
echo "accuracy: $ACCK with a worker killed at step 100+, $ACC1 in one process"
echo "ok (${SECONDS} s)"
