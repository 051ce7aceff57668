#!/usr/bin/env bash
# test_predict.sh - real training runs, then `ringleader predict` on their
# run.json: a linear synthetic job (scored on a CSV written from its own
# weights) and a standardised softmax job on configs/data/iris_like.csv
# (accuracy printed and sane); bad inputs exit 2 with a clear message:
# a truncated run.json (LINE:COL), a feature-count mismatch (both counts),
# a failed run, a CSV with labels but no --label.
# usage: test_predict.sh RINGLEADER RINGLEADER_NODE SOURCE_DIR
RL=$1 NODE=$2 SRC=$3
. "$(dirname "$0")/lib.sh"
export RINGLEADER_NODE_BIN=$NODE

new_token "$RL_TMP/good.token"

train() { # train SPEC OUTDIR
  timeout 60 "$RL" run "$1" --out "$2" >"$2.out" 2>"$2.err" ||
    { rc=$?; cat "$2.err" >&2; fail "training $1 exited $rc"; }
}
# 1. Linear, synthetic, a few steps.
write_spec "$RL_TMP/lin.yaml" 1 "$RL_TMP/good.token"
train "$RL_TMP/lin.yaml" "$RL_TMP/lin"
# A CSV of 5 rows over 8 features whose label is the model's own prediction
# (computed here from run.json's weights): predict must give mse ~ 0.
python3 - "$RL_TMP/lin/run.json" "$RL_TMP/lin.csv" <<'PY'
import json, sys, random
m = json.load(open(sys.argv[1]))["model"]
random.seed(1)
with open(sys.argv[2], "w") as f:
    f.write(",".join("f%d" % j for j in range(m["features"])) + ",y\n")
    for _ in range(5):
        x = [round(random.uniform(-2, 2), 3) for _ in range(m["features"])]
        y = sum(w * v for w, v in zip(m["weights"], x)) + m["bias"]
        f.write(",".join(map(str, x)) + ",%.9g\n" % y)
PY
out=$("$RL" predict --model "$RL_TMP/lin/run.json" --data "$RL_TMP/lin.csv" --label y \
      2>"$RL_TMP/p1.err") || { cat "$RL_TMP/p1.err" >&2; fail "predict (linear) failed"; }
[ "$(echo "$out" | wc -l)" -eq 5 ] || fail "linear: want 5 prediction lines, got: $out"
grep -Eq '^rows=5 mse=' "$RL_TMP/p1.err" || fail "linear: no summary: $(cat "$RL_TMP/p1.err")"
awk -F'mse=' '/^rows=/{ exit !($2 < 1e-6) }' "$RL_TMP/p1.err" ||
  fail "linear: mse should be ~0 on its own predictions: $(cat "$RL_TMP/p1.err")"
# Without labels (drop the y column): same 5 lines, no summary.
cut -d, -f1-8 "$RL_TMP/lin.csv" > "$RL_TMP/lin-x.csv"
out2=$("$RL" predict --model "$RL_TMP/lin" --data "$RL_TMP/lin-x.csv" 2>"$RL_TMP/p2.err") ||
  fail "predict without labels failed: $(cat "$RL_TMP/p2.err")"
[ "$out2" = "$out" ] || fail "unlabelled predictions differ from labelled ones"
! grep -q "rows=" "$RL_TMP/p2.err" || fail "a summary without labels"

# 2. Softmax on the iris-like CSV, standardised.
cp "$SRC/configs/data/iris_like.csv" "$RL_TMP/iris.csv"
write_spec "$RL_TMP/iris.yaml" 1 "$RL_TMP/good.token"
sed -i -e 's|^data: .*|data: { source: csv, csv: { path: iris.csv, label: species, standardize: true }, block_rows: 32 }|' \
       -e 's|^model: .*|model: { type: softmax, classes: 3 }|' \
       -e 's|^training: .*|training: { steps: 100, learning_rate: 0.5 }|' "$RL_TMP/iris.yaml"
train "$RL_TMP/iris.yaml" "$RL_TMP/iris"
grep -q '"mean": \[' "$RL_TMP/iris/run.json" || fail "the softmax run did not record its standardisation"
"$RL" predict --model "$RL_TMP/iris/run.json" --data "$RL_TMP/iris.csv" --label species \
  --out "$RL_TMP/pred.csv" 2>"$RL_TMP/p3.err" || fail "predict (softmax) failed: $(cat "$RL_TMP/p3.err")"
[ "$(head -1 "$RL_TMP/pred.csv")" = class ] || fail "--out has no header"
[ "$(wc -l < "$RL_TMP/pred.csv")" -eq 301 ] || fail "want 300 predictions + header in --out"
grep -Eq '^rows=300 accuracy=' "$RL_TMP/p3.err" || fail "softmax: no summary: $(cat "$RL_TMP/p3.err")"
awk -F'accuracy=' '/^rows=/{ exit !($2 > 0.9) }' "$RL_TMP/p3.err" ||
  fail "softmax accuracy too low (observed 0.99): $(cat "$RL_TMP/p3.err")"

# 3. Bad inputs: exit 2 and say what is wrong.
expect2() { # expect2 PATTERN ARGS...: predict exits 2 and stderr matches PATTERN
  local pat=$1 rc=0; shift
  "$RL" predict "$@" >/dev/null 2>"$RL_TMP/bad.err" || rc=$?
  [ "$rc" -eq 2 ] || fail "predict $*: exit $rc, want 2 ($(cat "$RL_TMP/bad.err"))"
  grep -Eq "$pat" "$RL_TMP/bad.err" || fail "predict $*: want /$pat/, got: $(cat "$RL_TMP/bad.err")"
}
head -c 200 "$RL_TMP/iris/run.json" > "$RL_TMP/trunc.json"
expect2 'trunc\.json:[0-9]+:[0-9]+: unexpected end of input' \
  --model "$RL_TMP/trunc.json" --data "$RL_TMP/iris.csv" --label species
expect2 'has 4 feature columns.*has 8 features' \
  --model "$RL_TMP/lin/run.json" --data "$RL_TMP/iris.csv" --label species
# Columns match by name (docs/operations.md): the label column of a CSV
# without --label is ignored, with a note. By position (a CSV without a
# header row), an extra column is a count mismatch with the --label hint.
"$RL" predict --model "$RL_TMP/iris" --data "$RL_TMP/iris.csv" >/dev/null 2>"$RL_TMP/p4.err" ||
  fail "predict without --label on a named run: $(cat "$RL_TMP/p4.err")"
grep -q "ignored in 'species'" "$RL_TMP/p4.err" || fail "no note on the ignored label: $(cat "$RL_TMP/p4.err")"
tail -n +2 "$RL_TMP/iris.csv" > "$RL_TMP/iris-nohdr.csv"
expect2 'has 5 columns.*4 features.*--label' --model "$RL_TMP/iris" --data "$RL_TMP/iris-nohdr.csv"
expect2 'cannot open' --model "$RL_TMP/none.json" --data "$RL_TMP/iris.csv"
printf 'a,b,c,d,species\n1,2,x,4,0\n' > "$RL_TMP/badrow.csv"
expect2 'badrow\.csv:2:3: column .c.: not a number' \
  --model "$RL_TMP/iris" --data "$RL_TMP/badrow.csv" --label species
sed 's/"status": "ok"/"status": "failed",\n  "error": "only 1 of 2 nodes joined"/' \
  "$RL_TMP/iris/run.json" > "$RL_TMP/failed.json"
expect2 'did not finish.*only 1 of 2 nodes joined' \
  --model "$RL_TMP/failed.json" --data "$RL_TMP/iris.csv" --label species
echo "test_predict: ok"
