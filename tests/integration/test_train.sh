#!/usr/bin/env bash
# test_train.sh - real training runs (coordinator + local node processes):
#  1. linear regression on a CSV reaches the closed-form least-squares
#     solution (numpy lstsq on the same standardised data) and 1, 2 and 4
#     nodes give the same model within 1e-9 relative;
#  2. softmax on the example CSV trains (loss falls, coverage proven);
#  3. bad input: a truncated CSV row and a missing label column fail with the
#     file, line and column named, exit 1, and no node is left running.
# usage: test_train.sh RINGLEADER RINGLEADER_NODE SOURCE_DIR
RL=$1 NODE=$2 SRC=$3
. "$(dirname "$0")/lib.sh"
export RINGLEADER_NODE_BIN=$NODE
PY=/usr/bin/python3
new_token "$RL_TMP/t.token"

# csv_spec FILE NODES CSV LABEL MODEL STEPS LR [extra model lines]
csv_spec() {
  local f=$1 n=$2 csv=$3 label=$4 model=$5 steps=$6 lr=$7 extra=${8:-} csvextra=${9:-} out=${10:-}
  {
    echo "cluster:"
    echo "  name: tr$n"
    echo "  coordinator: tcp://127.0.0.1:$(free_port)"
    echo "  launch: local"
    echo "  join_timeout_ms: 10000"
    echo "  nodes:"
    for i in $(seq 1 "$n"); do echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"; done
    echo "security: { token_file: $RL_TMP/t.token }"
    echo "data:"
    echo "  source: csv"
    echo "  csv: { path: $csv, label: $label, standardize: true $csvextra }"
    echo "  block_rows: 50"
    echo "model: { type: $model $extra }"
    echo "training: { steps: $steps, learning_rate: $lr, l2: 0.0 }"
    # Not a fault test: a generous failure timeout (a stalled process under
    # the sanitizer is not a dead one), and no rebalancing, which would
    # change the summation order that the bitwise comparisons rely on.
    echo "fault_tolerance: { failure_timeout_ms: 5000, rebalance: false }"
    echo "output: { dir: $RL_TMP/out$n-$model$out }"
  } > "$f"
}

# 1. Linear regression on 1000 x 5 random rows.
$PY - "$RL_TMP/lin.csv" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(3)
X = rng.normal(size=(1000, 5)) * [1, 2, 0.5, 3, 1] + [0, 1, -2, 0, 5]
y = X @ [1.5, -2, 0.7, 0.1, 3] + 0.25 + rng.normal(scale=0.3, size=1000)
with open(sys.argv[1], "w") as f:
    f.write("a,b,c,d,e,target\n")
    for r, t in zip(X, y):
        f.write(",".join("%.6f" % v for v in r) + ",%.6f\n" % t)
PY
for n in 1 2 4; do
  csv_spec "$RL_TMP/lin$n.yaml" "$n" "$RL_TMP/lin.csv" target linear 400 0.5
  base=(); [ "$n" = 1 ] || base=(--baseline "$RL_TMP/out1-linear/run.json")
  timeout 120 "$RL" run "$RL_TMP/lin$n.yaml" "${base[@]}" >"$RL_TMP/lin$n.out" 2>"$RL_TMP/lin$n.err" ||
    { rc=$?; tail -20 "$RL_TMP/lin$n.err" >&2; fail "linear run with $n nodes exited $rc"; }
done
# A baseline that is not a finished run is a usage error naming the file.
echo '{"status": "ok", "step_ms": {"p50": 0}, "nodes": [{}]}' > "$RL_TMP/badbase.json"
rc=0; timeout 30 "$RL" run "$RL_TMP/lin2.yaml" --baseline "$RL_TMP/badbase.json" >/dev/null 2>"$RL_TMP/badbase.err" || rc=$?
[ "$rc" = 2 ] || fail "--baseline with a bad file exited $rc, want 2"
grep -q "badbase.json:1:.*step_ms.p50" "$RL_TMP/badbase.err" || fail "--baseline error: $(cat "$RL_TMP/badbase.err")"
rc=0; timeout 30 "$RL" run "$RL_TMP/lin2.yaml" --baseline "$RL_TMP/none.json" >/dev/null 2>"$RL_TMP/nobase.err" || rc=$?
{ [ "$rc" = 2 ] && grep -q "none.json" "$RL_TMP/nobase.err"; } || fail "--baseline with a missing file: rc $rc"
$PY - "$RL_TMP" <<'PY' || fail "linear model check"
import sys, json, numpy as np
d = sys.argv[1]
raw = np.loadtxt(d + "/lin.csv", delimiter=",", skiprows=1, dtype=np.float32).astype(np.float64)
X, y = raw[:, :5], raw[:, 5]
runs = {n: json.load(open("%s/out%d-linear/run.json" % (d, n))) for n in (1, 2, 4)}
for n, r in runs.items():
    assert r["status"] == "ok", (n, r.get("error"))
    assert r["coverage"]["violations"] == 0 and r["coverage"]["steps_checked"] == 400, r["coverage"]
    assert len(r["nodes"]) == n and sum(len(x["blocks"]) for x in r["nodes"]) == 20
    # speedup = T_s / T_p against the 1-node run, only when a baseline was given
    if n == 1:
        assert "speedup" not in r
    else:
        b = r["speedup_baseline"]
        assert b["nodes"] == 1 and b["step_ms_p50"] == runs[1]["step_ms"]["p50"], b
        assert abs(r["speedup"] - b["step_ms_p50"] / r["step_ms"]["p50"]) < 1e-9 * r["speedup"], r["speedup"]
m = runs[4]["model"]
mean, std = np.array(m["mean"]), np.array(m["std"])
# The same standardisation, then the closed form with a bias column.
Z = ((X.astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32)).astype(np.float64)
A = np.hstack([Z, np.ones((len(Z), 1))])
sol, *_ = np.linalg.lstsq(A, y, rcond=None)
w = np.array(m["weights"] + [m["bias"]])
err = np.max(np.abs(w - sol)) / np.max(np.abs(sol))
print("closed-form max relative error %.2e" % err)
assert err < 1e-6, err
ref = np.array(runs[1]["model"]["weights"] + [runs[1]["model"]["bias"]])
for n in (2, 4):
    o = np.array(runs[n]["model"]["weights"] + [runs[n]["model"]["bias"]])
    rel = np.max(np.abs(o - ref)) / np.max(np.abs(ref))
    print("%d nodes vs 1: max relative difference %.2e" % (n, rel))
    assert rel < 1e-9, (n, rel)
PY

# 2. Softmax on the example CSV, 3 nodes.
csv_spec "$RL_TMP/sm.yaml" 3 "$SRC/configs/data/iris_like.csv" species softmax 150 0.5 ", classes: 3"
timeout 120 "$RL" run "$RL_TMP/sm.yaml" >"$RL_TMP/sm.out" 2>"$RL_TMP/sm.err" ||
  { rc=$?; tail -20 "$RL_TMP/sm.err" >&2; fail "softmax run exited $rc"; }
$PY - "$RL_TMP/out3-softmax/run.json" <<'PY' || fail "softmax run.json"
import sys, json
r = json.load(open(sys.argv[1]))
assert r["status"] == "ok" and r["steps_completed"] == 150
s = r["steps"]
assert s[-1]["loss"] < 0.5 * s[0]["loss"], (s[0]["loss"], s[-1]["loss"])
assert len(r["model"]["weights"]) == 12 and len(r["model"]["bias"]) == 3
assert r["coverage"] == {"steps_checked": 150, "violations": 0}
for k in ("started_unix_ms", "wall_s", "step_ms", "events", "D", "final_loss"):
    assert k in r, k
PY
grep -q "trained: .*run.json" "$RL_TMP/sm.out" || fail "run did not print where run.json is"

# 2b. The same job with the nodes fetching their CSV blocks from the
#     coordinator over RPC (as nodes without the file do): the same model.
csv_spec "$RL_TMP/smf.yaml" 3 "$SRC/configs/data/iris_like.csv" species softmax 150 0.5 ", classes: 3" ", fetch: true" -fetch
timeout 120 "$RL" run "$RL_TMP/smf.yaml" >/dev/null 2>"$RL_TMP/smf.err" ||
  { rc=$?; tail -20 "$RL_TMP/smf.err" >&2; fail "softmax fetch run exited $rc"; }
$PY - "$RL_TMP/out3-softmax/run.json" "$RL_TMP/out3-softmax-fetch/run.json" <<'PY' || fail "fetched blocks give another model"
import json, sys
a, b = (json.load(open(f))["model"] for f in sys.argv[1:])
assert a["weights"] == b["weights"] and a["bias"] == b["bias"], "models differ"
print("fetch over RPC: the same model bit for bit")
PY

# 3. Bad input.
head -c 2000 "$RL_TMP/lin.csv" > "$RL_TMP/trunc.csv"   # cuts the last row mid-way
csv_spec "$RL_TMP/trunc.yaml" 2 "$RL_TMP/trunc.csv" target linear 5 0.5
set +e
timeout 60 "$RL" run "$RL_TMP/trunc.yaml" >"$RL_TMP/trunc.out" 2>"$RL_TMP/trunc.err"; rc=$?
set -e
[ "$rc" -eq 1 ] || [ "$rc" -eq 2 ] || fail "truncated CSV: exit $rc, want 1 or 2"
grep -q "trunc.csv:[0-9]*:" "$RL_TMP/trunc.err" || fail "truncated CSV: no file:line in: $(cat "$RL_TMP/trunc.err")"
sed 's/target/other/' "$RL_TMP/lin.csv" > "$RL_TMP/nolabel.csv"
csv_spec "$RL_TMP/nolabel.yaml" 2 "$RL_TMP/nolabel.csv" target linear 5 0.5
set +e
timeout 60 "$RL" run "$RL_TMP/nolabel.yaml" >/dev/null 2>"$RL_TMP/nolabel.err"; rc=$?
set -e
[ "$rc" -ne 0 ] || fail "missing label column accepted"
grep -q "target" "$RL_TMP/nolabel.err" || fail "missing label not named: $(cat "$RL_TMP/nolabel.err")"
# 4. Ctrl-C: SIGINT to a running coordinator stops the run cleanly: exit 1,
#    run.json written with status "interrupted" (issue 15: its model is usable
#    by predict), the steps done so far and their model, and every node it
#    started stopped.
write_spec "$RL_TMP/intr.yaml" 2 "$RL_TMP/t.token"
sed -i -e 's/steps: 5,/steps: 10000000,/' -e "s|dir: $RL_TMP/out|dir: $RL_TMP/intr|" "$RL_TMP/intr.yaml"
"$RL" run "$RL_TMP/intr.yaml" >"$RL_TMP/intr.out" 2>"$RL_TMP/intr.err" &
cpid=$!; RL_PIDS+=("$cpid")
curl=$(sed -n 's/^  coordinator: //p' "$RL_TMP/intr.yaml")
at=
for i in $(seq 1 300); do # until step >= 20 (bounded: ~30 s)
  at=$("$RL" status "$curl" --token-file "$RL_TMP/t.token" --timeout-ms 1000 2>/dev/null |
       sed -n 's/.*step \([0-9]*\)\/.*/\1/p' | head -1 || true)
  [ -n "$at" ] && [ "$at" -ge 20 ] && break
  kill -0 "$cpid" 2>/dev/null || fail "the coordinator exited before step 20: $(tail -5 "$RL_TMP/intr.err")"
  sleep 0.1
done
[ -n "$at" ] && [ "$at" -ge 20 ] || fail "step 20 not reached in 30 s"
kill -INT "$cpid"
rc=0
timeout 30 tail --pid="$cpid" -f /dev/null || fail "the coordinator still runs 30 s after SIGINT"
wait "$cpid" || rc=$?
[ "$rc" -eq 1 ] || fail "SIGINT: exit $rc, want 1"
$PY - "$RL_TMP/intr/run.json" <<'PY' || fail "run.json after SIGINT"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "interrupted" and r["error"].startswith("interrupted"), (r["status"], r.get("error"))
assert r["steps_completed"] >= 20 and len(r["steps"]) == r["steps_completed"], r["steps_completed"]
assert len(r["model"]["weights"]) == 8 and r["coverage"]["violations"] == 0
print("SIGINT after %d steps: run.json written, status interrupted" % r["steps_completed"])
PY

if pgrep -f "$RL_TMP" >/dev/null; then fail "processes left running: $(pgrep -af "$RL_TMP")"; fi
echo "test_train: ok"
