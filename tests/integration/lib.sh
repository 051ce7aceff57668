# lib.sh - helpers for the integration tests: free ports, temporary specs,
# bounded waits, and cleanup of every process a test starts (by PID).
set -euo pipefail
RL_PIDS=()
RL_TMP=$(mktemp -d /tmp/rl-it.XXXXXX)
# report_runs: `ringleader report` ($RL, when the test set it) on every
# run.json the test's runs wrote under $RL_TMP: it must write the report, with
# the step-time chart when the run completed a step. Non-zero if one failed.
report_runs() {
  [ -n "${RL:-}" ] && [ -x "$RL" ] || return 0
  local f bad=0
  while IFS= read -r f; do
    if ! timeout 60 "$RL" report "$f" -o "$f.html" >/dev/null 2>"$f.report.err"; then
      echo "FAIL: ringleader report $f: $(cat "$f.report.err")" >&2; bad=1
    elif grep -q '"steps_completed": [1-9]' "$f" && ! grep -q 'id="steptime"' "$f.html"; then
      echo "FAIL: ringleader report $f: no step-time chart for a run with steps" >&2; bad=1
    fi
  done < <(find "$RL_TMP" -name run.json -type f 2>/dev/null)
  return "$bad"
}
cleanup() {
  local rc=$?
  for p in "${RL_PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  for p in "${RL_PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  report_runs || rc=1
  rm -rf "$RL_TMP"
  [ "$rc" -eq 0 ] || exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'; }

# write_spec FILE NODES TOKENFILE [launch]: a spec on free loopback ports.
write_spec() {
  local f=$1 n=$2 tok=$3 launch=${4:-local}
  {
    echo "cluster:"
    echo "  name: it"
    echo "  coordinator: tcp://127.0.0.1:$(free_port)"
    echo "  launch: $launch"
    echo "  min_nodes: 1"
    echo "  join_timeout_ms: 10000"
    echo "  nodes:"
    for i in $(seq 1 "$n"); do
      echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"
    done
    echo "security:"
    echo "  token_file: $tok"
    echo "data: { source: synthetic, rows: 10000, features: 8, block_rows: 1000 }"
    echo "model: { type: linear }"
    echo "training: { steps: 5, learning_rate: 0.1 }"
    echo "fault_tolerance: { failure_timeout_ms: 5000 }"  # not a fault test
    echo "output: { dir: $RL_TMP/out }"
  } > "$f"
}
