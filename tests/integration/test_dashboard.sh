#!/usr/bin/env bash
# test_dashboard.sh - the live dashboard (/) in headless Chromium during a
# 4-node run: once it shows n3 alive with steps passing, n3 is SIGKILLed; the
# page's DOM must show n3 failed within 2 s and keep updating afterwards. The
# dashboard's screenshot is checked as an image (not blank, charts drawn).
# usage: test_dashboard.sh RINGLEADER RINGLEADER-NODE
RL=$1
export RINGLEADER_NODE_BIN=$2
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
BROWSER="$PY $(dirname "$0")/browser.py"
new_token "$RL_TMP/tok"

write_spec "$RL_TMP/run.yaml" 4 "$RL_TMP/tok"
sed -i "s#steps: 5,#steps: 1000000,#; s/rows: 10000,/rows: 200000,/; s/failure_timeout_ms: 5000/failure_timeout_ms: 500/" "$RL_TMP/run.yaml"
echo "monitor: { listen: http://127.0.0.1:0 }" >> "$RL_TMP/run.yaml"
"$RL" run "$RL_TMP/run.yaml" >"$RL_TMP/run.out" 2>"$RL_TMP/run.err" &
RUN=$!; RL_PIDS+=("$RUN")
wait_for 20 grep -q "monitor at http" "$RL_TMP/run.err" || fail "no monitor: $(cat "$RL_TMP/run.err")"
URL=$(sed -n 's/.*monitor at \(http:[^ ]*\) .*/\1/p' "$RL_TMP/run.err" | head -1)
wait_for 20 grep -q "node n3 joined (pid" "$RL_TMP/run.err" || fail "n3 never joined"
pid=$(sed -n 's/.*node n3 joined (pid \([0-9]*\),.*/\1/p' "$RL_TMP/run.err" | head -1)

$BROWSER dashboard "$URL/" n3 "$RL_TMP/dashboard.png" >"$RL_TMP/browser.out" 2>&1 &
B=$!; RL_PIDS+=("$B")
wait_for 60 grep -q '^ready$' "$RL_TMP/browser.out" || fail "the dashboard never showed the run: $(cat "$RL_TMP/browser.out")"
kill -KILL "$pid"
ended() { ! kill -0 "$B" 2>/dev/null; }
wait_for 60 ended || fail "the browser check did not end"
wait "$B" || fail "dashboard: $(cat "$RL_TMP/browser.out")"
grep "failed shown after" "$RL_TMP/browser.out"
if [ -n "${RL_SCREENSHOT_DIR:-}" ]; then cp "$RL_TMP/dashboard.png" "$RL_SCREENSHOT_DIR/"; fi
$BROWSER check-image "$RL_TMP/dashboard.png" "#4c8fd6" "#f2a541" "#1f77b4" ||
  fail "the dashboard's screenshot"

kill -TERM "$RUN"
wait_for 30 eval '! kill -0 "$RUN" 2>/dev/null' || fail "the coordinator did not stop on SIGTERM"
wait "$RUN" 2>/dev/null || true
echo PASS
