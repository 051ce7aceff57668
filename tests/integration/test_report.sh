#!/usr/bin/env bash
# test_report.sh - `ringleader report` on a run with everything a report
# shows: a 1-node baseline, then 3 nodes with --baseline (speed-up) in which
# n3 is SIGKILLed mid-run (a failure, a re-plan, a recovery). The HTML has
# every chart and table, no script and no external resource; a screenshot in
# headless Chromium shows the charts. Bad input is a clear error.
# usage: test_report.sh RINGLEADER RINGLEADER-NODE
RL=$1
export RINGLEADER_NODE_BIN=$2
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
BROWSER="$PY $(dirname "$0")/browser.py"
new_token "$RL_TMP/tok"

write_spec "$RL_TMP/base.yaml" 1 "$RL_TMP/tok"
sed -i "s#steps: 5,#steps: 300,#; s#dir: $RL_TMP/out#dir: $RL_TMP/base#; s/rows: 10000,/rows: 200000,/" "$RL_TMP/base.yaml"
timeout 120 "$RL" run "$RL_TMP/base.yaml" >/dev/null 2>"$RL_TMP/base.err" || fail "baseline: $(tail -3 "$RL_TMP/base.err")"

write_spec "$RL_TMP/run.yaml" 3 "$RL_TMP/tok"
sed -i "s#steps: 5,#steps: 6000,#; s/rows: 10000,/rows: 200000,/; s/failure_timeout_ms: 5000/failure_timeout_ms: 600/" "$RL_TMP/run.yaml"
echo "monitor: { listen: http://127.0.0.1:0 }" >> "$RL_TMP/run.yaml"
"$RL" run "$RL_TMP/run.yaml" --baseline "$RL_TMP/base/run.json" >"$RL_TMP/run.out" 2>"$RL_TMP/run.err" &
RUN=$!; RL_PIDS+=("$RUN")
wait_for 20 grep -q "monitor at http" "$RL_TMP/run.err" || fail "no monitor: $(cat "$RL_TMP/run.err")"
URL=$(sed -n 's/.*monitor at \(http:[^ ]*\) .*/\1/p' "$RL_TMP/run.err" | head -1)
stepped() {
  curl -sf "$URL/api/status" >"$RL_TMP/st.json" &&
    $PY -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["step"] > 200 else 1)' "$RL_TMP/st.json"
}
wait_for 60 stepped || fail "the run never passed step 200"
pid=$(sed -n 's/.*node n3 joined (pid \([0-9]*\),.*/\1/p' "$RL_TMP/run.err" | head -1)
[ -n "$pid" ] || fail "no pid for n3 in the coordinator's log"
kill -KILL "$pid"
ended() { ! kill -0 "$RUN" 2>/dev/null; }
wait_for 120 ended || fail "the run did not end within 120 s of n3's death"
wait "$RUN" || fail "the run failed after n3 died: $(tail -3 "$RL_TMP/run.err")"
grep -q '"kind": "failed", "node": "n3"' "$RL_TMP/out/run.json" || fail "run.json has no failure of n3"

"$RL" report "$RL_TMP/out/run.json" -o "$RL_TMP/report.html" >"$RL_TMP/rep.out" 2>"$RL_TMP/rep.err" ||
  fail "report: $(cat "$RL_TMP/rep.err")"
H="$RL_TMP/report.html"
for id in loss steptime blocks nodetime recoveries speedup events summary nodes; do
  grep -q "id=\"$id\"" "$H" || fail "the report has no #$id"
done
grep -q '<script' "$H" && fail "the report has a script"
grep -Eq '(src|href)="(https?:)?//' "$H" && fail "the report loads an external resource"
$PY - "$H" <<'EOF' || fail "the report's content is wrong"
import re, sys
h = open(sys.argv[1]).read()
# n3's failure: a row with a recovery time in ms
row = re.search(r'<table id="recoveries">.*?<tr><td>n3</td><td>[0-9.]+</td><td>[0-9]+</td><td>([0-9]+)</td>', h, re.S)
assert row, "no recovery row for n3"
assert re.search(r'Speed-up <b>[0-9.]+&times;</b>', h), "no speed-up"
blocks = h[h.index('id="blocks"'):h.index('id="nodetime"')]
assert blocks.count('<polyline class="node"') == 3, "not one line per node"
assert h.count('class="ev-failed"') >= 2, "the failure is not marked on the loss and step charts"
steps = h[h.index('id="steptime"'):h.index('id="blocks"')]
assert steps.count('class="compute"') > 50 and steps.count('class="allreduce"') > 50
EOF

# Headless Chromium draws it: not blank, the charts' colours present.
$BROWSER screenshot "file://$H" "$RL_TMP/report.png" || fail "no screenshot of the report"
if [ -n "${RL_SCREENSHOT_DIR:-}" ]; then cp "$RL_TMP/report.png" "$RL_SCREENSHOT_DIR/"; fi
$BROWSER check-image "$RL_TMP/report.png" "#4c8fd6" "#f2a541" "#1f77b4" || fail "the report's screenshot"

# -o - writes to stdout; bad input is an error naming the file and where.
"$RL" report "$RL_TMP/out/run.json" -o - >"$RL_TMP/stdout.html" || fail "-o - failed"
cmp -s "$RL_TMP/stdout.html" "$H" || fail "-o - wrote another report than -o FILE"
echo '{"status": "ok", "steps": 3}' > "$RL_TMP/bad.json"
rc=0; "$RL" report "$RL_TMP/bad.json" -o "$RL_TMP/bad.html" 2>"$RL_TMP/bad.err" || rc=$?
[ "$rc" -eq 2 ] || fail "a bad run.json: exit $rc, want 2"
grep -q "bad.json:1:1: run.json has no \"wall_s\"" "$RL_TMP/bad.err" || fail "unclear error: $(cat "$RL_TMP/bad.err")"
[ ! -e "$RL_TMP/bad.html" ] || fail "a report was written for a bad run.json"
rc=0; "$RL" report "$RL_TMP/nope.json" 2>"$RL_TMP/nope.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "nope.json" "$RL_TMP/nope.err" || fail "a missing file: exit $rc: $(cat "$RL_TMP/nope.err")"
echo PASS
