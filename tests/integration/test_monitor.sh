#!/usr/bin/env bash
# test_monitor.sh - the coordinator's HTTP monitor during a real run: /metrics
# passes `promtool check metrics`, a real Prometheus (started here, scraping
# every second) stores a series the test reads back through its HTTP API,
# /api/status is the document `ringleader status --json` prints, --watch
# redraws; a monitor port already in use fails the job at once, naming it;
# on a non-loopback address a missing or wrong bearer token gets 401; https://
# answers only clients with a certificate of the cluster's CA; log lines as JSON.
# usage: test_monitor.sh RINGLEADER RINGLEADER-NODE
RL=$1
[ -n "${RL_KEEP:-}" ] && set -x
export RINGLEADER_NODE_BIN=$2
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
command -v promtool >/dev/null || fail "promtool missing (scripts/setup.sh installs prometheus)"

# monitor_url FILE: the URL a coordinator logged ("monitor at URL ...").
monitor_url() { sed -n 's/.*monitor at \(http:[^ ]*\) .*/\1/p' "$1" | head -1; }

new_token "$RL_TMP/tok"

# A spec the monitor rejects names the key.
write_spec "$RL_TMP/bad.yaml" 1 "$RL_TMP/tok"
echo "monitor: { listen: tcp://127.0.0.1:7780 }" >> "$RL_TMP/bad.yaml"
rc=0; "$RL" validate "$RL_TMP/bad.yaml" >/dev/null 2>"$RL_TMP/bad.err" || rc=$?
[ "$rc" -eq 2 ] || fail "monitor.listen tcp:// accepted (exit $rc)"
grep -q "monitor.listen\|listen.*http://" "$RL_TMP/bad.err" || fail "no clear error: $(cat "$RL_TMP/bad.err")"

# A run that lasts until we stop it, its monitor on any free loopback port.
write_spec "$RL_TMP/run.yaml" 2 "$RL_TMP/tok"
sed -i 's/steps: 5,/steps: 1000000,/' "$RL_TMP/run.yaml"
echo "monitor: { listen: http://127.0.0.1:0 }" >> "$RL_TMP/run.yaml"
"$RL" run "$RL_TMP/run.yaml" >"$RL_TMP/run.out" 2>"$RL_TMP/run.err" &
RUN=$!; RL_PIDS+=("$RUN")
wait_for 20 grep -q "monitor at http" "$RL_TMP/run.err" || fail "no monitor URL: $(cat "$RL_TMP/run.err")"
URL=$(monitor_url "$RL_TMP/run.err")
stepped() {
  curl -sf "$URL/api/status" >"$RL_TMP/st.json" &&
    $PY -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["step"] > 20 else 1)' "$RL_TMP/st.json"
}
wait_for 30 stepped || fail "the job never passed step 20: $(cat "$RL_TMP/st.json" 2>/dev/null)"

# /metrics: valid exposition, with the job's and each node's series.
curl -sf "$URL/metrics" >"$RL_TMP/m.txt" || fail "GET /metrics failed"
promtool check metrics <"$RL_TMP/m.txt" >"$RL_TMP/promtool.out" 2>&1 ||
  fail "promtool check metrics: $(cat "$RL_TMP/promtool.out")"
grep -q '^ringleader_job_state{state="running"} 1$' "$RL_TMP/m.txt" || fail "job not running in /metrics"
for n in n1 n2; do
  grep -q "^ringleader_node_state{node=\"$n\",state=\"alive\"} 1$" "$RL_TMP/m.txt" || fail "$n not alive"
  grep -q "^ringleader_node_blocks{node=\"$n\"} [1-9]" "$RL_TMP/m.txt" || fail "$n holds no blocks"
done
grep -q '^ringleader_rpc_calls_total{method="heartbeat"} [1-9]' "$RL_TMP/m.txt" || fail "no heartbeat calls"
grep -q '^ringleader_step_duration_seconds_count [1-9]' "$RL_TMP/m.txt" || fail "no step histogram"
grep -q '^ringleader_events_total{kind="join"} 2$' "$RL_TMP/m.txt" || fail "joins not counted"
# docs/operations.md lists every metric family the scrape has.
DOC="$(dirname "$0")/../../docs/operations.md"
for m in $(sed -n 's/^# TYPE \([a-z_]*\) .*/\1/p' "$RL_TMP/m.txt"); do
  grep -q "\`$m\`" "$DOC" || fail "docs/operations.md does not list $m"
done

# /api/status is the document `ringleader status --json` prints.
"$RL" status "$RL_TMP/run.yaml" --json >"$RL_TMP/cli.json" 2>"$RL_TMP/cli.err" ||
  fail "status --json: $(cat "$RL_TMP/cli.err")"
curl -sf "$URL/api/status" >"$RL_TMP/api.json" || fail "GET /api/status failed"
$PY - "$RL_TMP/cli.json" "$RL_TMP/api.json" <<'EOF' || fail "status --json and /api/status differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert set(a) == set(b), (sorted(a), sorted(b))
assert a["job"] == b["job"] == "it" and a["status"] == b["status"] == "running"
assert [n["id"] for n in a["nodes"]] == [n["id"] for n in b["nodes"]] == ["n1", "n2"]
assert b["step"] >= a["step"] > 0 and b["plans"] and b["steps"]
assert set(b["plans"][0]["blocks"]) == {"n1", "n2"}
EOF

# --watch redraws every second until stopped.
"$RL" status "$RL_TMP/run.yaml" --watch >"$RL_TMP/watch.out" 2>&1 &
W=$!; RL_PIDS+=("$W")
redrawn() { [ "$(grep -c '^job it: running' "$RL_TMP/watch.out")" -ge 3 ]; }
wait_for 10 redrawn || fail "--watch did not redraw: $(cat "$RL_TMP/watch.out")"
kill -INT "$W"; wait "$W" || fail "--watch did not end cleanly on SIGINT"

# A real Prometheus scrapes the run; the series comes back through its API.
PP=$(free_port)
cat >"$RL_TMP/prom.yml" <<EOF
global: { scrape_interval: 1s, scrape_timeout: 1s }
scrape_configs:
  - job_name: ringleader
    static_configs: [ { targets: ["${URL#http://}"] } ]
EOF
prometheus --config.file="$RL_TMP/prom.yml" --storage.tsdb.path="$RL_TMP/prom" \
  --web.listen-address="127.0.0.1:$PP" >"$RL_TMP/prom.log" 2>&1 &
PROM=$!; RL_PIDS+=("$PROM")
queried() {
  curl -sf "http://127.0.0.1:$PP/api/v1/query?query=ringleader_job_step" >"$RL_TMP/q.json" &&
    $PY - "$RL_TMP/q.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["data"]["result"]
sys.exit(0 if r and float(r[0]["value"][1]) > 0 and r[0]["metric"]["job"] == "ringleader" else 1)
EOF
}
wait_for 60 queried || fail "Prometheus has no ringleader_job_step: $(cat "$RL_TMP/q.json" 2>/dev/null; tail -5 "$RL_TMP/prom.log")"
up=$(curl -sf "http://127.0.0.1:$PP/api/v1/query?query=up" | $PY -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])')
[ "$up" = 1 ] || fail "Prometheus sees the target down"
kill "$PROM"; wait "$PROM" 2>/dev/null || true

# Another coordinator on the same monitor port: fails at once, naming it.
write_spec "$RL_TMP/clash.yaml" 1 "$RL_TMP/tok"
echo "monitor: { listen: $URL }" >> "$RL_TMP/clash.yaml"
rc=0; timeout 30 "$RL" run "$RL_TMP/clash.yaml" >/dev/null 2>"$RL_TMP/clash.err" || rc=$?
[ "$rc" -eq 1 ] || fail "a monitor port in use: exit $rc, want 1"
grep -q "monitor.listen $URL: cannot listen: Address in use" "$RL_TMP/clash.err" ||
  fail "a monitor port in use: no clear error: $(cat "$RL_TMP/clash.err")"

kill -TERM "$RUN"
rc=0; wait "$RUN" || rc=$?
[ "$rc" -eq 1 ] || fail "interrupted run: exit $rc"
grep -q '"status": "interrupted"' "$RL_TMP/out/run.json" || fail "run.json not written as interrupted"

# On a non-loopback address (the wildcard), every request needs the bearer
# token: monitor.token_file's (a read-only one), not the cluster's.
new_token "$RL_TMP/ro.tok"
write_spec "$RL_TMP/wild.yaml" 1 "$RL_TMP/tok" manual
sed -i 's/join_timeout_ms: 10000/join_timeout_ms: 60000/' "$RL_TMP/wild.yaml"
MP=$(free_port)
echo "monitor: { listen: http://0.0.0.0:$MP, token_file: $RL_TMP/ro.tok }" >> "$RL_TMP/wild.yaml"
"$RL" run "$RL_TMP/wild.yaml" >"$RL_TMP/wild.out" 2>"$RL_TMP/wild.err" &
WILD=$!; RL_PIDS+=("$WILD")
wait_for 20 grep -q "monitor at http" "$RL_TMP/wild.err" || fail "no monitor: $(cat "$RL_TMP/wild.err")"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
for path in /metrics /api/status; do
  c=$(code "http://127.0.0.1:$MP$path"); [ "$c" = 401 ] || fail "$path without a token: $c"
  c=$(code -H "Authorization: Bearer wrong" "http://127.0.0.1:$MP$path"); [ "$c" = 401 ] || fail "$path, wrong token: $c"
  c=$(code -H "Authorization: Bearer $(cat "$RL_TMP/tok")" "http://127.0.0.1:$MP$path")
  [ "$c" = 401 ] || fail "$path, the cluster token where a read-only one is set: $c"
  c=$(code -H "Authorization: Bearer $(cat "$RL_TMP/ro.tok")" "http://127.0.0.1:$MP$path")
  [ "$c" = 200 ] || fail "$path, the right token: $c"
done
kill -TERM "$WILD"; wait "$WILD" 2>/dev/null || true

# https://: the cluster's certificate (configs/tls, for 127.0.0.1), and only
# clients with a certificate of the cluster's CA get an answer.
T="$(cd "$(dirname "$0")/../../configs/tls" && pwd)"
write_spec "$RL_TMP/tls.yaml" 1 "$RL_TMP/tok" manual
sed -i "s#join_timeout_ms: 10000#join_timeout_ms: 60000#; s#^  token_file: .*#&\n  tls: { cert: $T/cert.pem, key: $T/key.pem, ca: $T/ca.pem }#" "$RL_TMP/tls.yaml"
echo "monitor: { listen: https://127.0.0.1:0 }" >> "$RL_TMP/tls.yaml"
"$RL" run "$RL_TMP/tls.yaml" >"$RL_TMP/tls.out" 2>"$RL_TMP/tls.err" &
TLS=$!; RL_PIDS+=("$TLS")
wait_for 20 grep -q "monitor at https" "$RL_TMP/tls.err" || fail "no https monitor: $(cat "$RL_TMP/tls.err")"
TURL=$(sed -n 's/.*monitor at \(https:[^ ]*\) .*/\1/p' "$RL_TMP/tls.err" | head -1)
curl -sf --max-time 10 --cacert "$T/ca.pem" --cert "$T/cert.pem" --key "$T/key.pem" "$TURL/metrics" \
  >"$RL_TMP/tm.txt" || fail "https with the cluster's certificate: no answer"
promtool check metrics <"$RL_TMP/tm.txt" >/dev/null 2>&1 || fail "https /metrics does not pass promtool"
grep -q '^ringleader_job_state{state="waiting"} 1$' "$RL_TMP/tm.txt" || fail "https: not the waiting job"
if curl -s --max-time 10 --cacert "$T/ca.pem" -o /dev/null "$TURL/api/status"; then
  fail "https without a client certificate was answered"
fi
if curl -s --max-time 10 -o /dev/null "http://${TURL#https://}/api/status"; then
  fail "plain http to the https monitor was answered"
fi
kill -TERM "$TLS"; wait "$TLS" 2>/dev/null || true
# A spec with https:// but no security.tls is refused, naming the key.
write_spec "$RL_TMP/notls.yaml" 1 "$RL_TMP/tok"
echo "monitor: { listen: https://127.0.0.1:0 }" >> "$RL_TMP/notls.yaml"
rc=0; "$RL" validate "$RL_TMP/notls.yaml" >/dev/null 2>"$RL_TMP/notls.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "monitor.listen: an https:// URL needs security.tls" "$RL_TMP/notls.err" ||
  fail "https without security.tls: exit $rc: $(cat "$RL_TMP/notls.err")"

# RINGLEADER_LOG_FORMAT=json: every line the coordinator writes to stderr is
# one JSON object with time, level, node, message and fields.
write_spec "$RL_TMP/json.yaml" 2 "$RL_TMP/tok"
RINGLEADER_LOG_FORMAT=json timeout 60 "$RL" run "$RL_TMP/json.yaml" >/dev/null 2>"$RL_TMP/json.err" ||
  fail "json-logged run failed: $(tail -3 "$RL_TMP/json.err")"
$PY - "$RL_TMP/json.err" <<'EOF' || fail "not one JSON object per line: $(head -3 "$RL_TMP/json.err")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) >= 3, lines
for l in lines:
    o = json.loads(l)
    assert set(o) == {"time", "level", "node", "message", "fields"}, o
    assert o["time"].endswith("Z") and o["level"] in ("error", "warn", "info", "debug")
assert any(json.loads(l)["message"].startswith("node n1 joined") for l in lines)
EOF
echo "PASS"
