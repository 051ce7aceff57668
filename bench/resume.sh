#!/usr/bin/env bash
# bench/resume.sh - what a coordinator's death costs (docs/performance.md,
# "Coordinator resume"): a 4-node local job (ROWS x FEATURES synthetic rows,
# linear model) whose coordinator is SIGKILLed at step KILL_AT or just after, then
# `ringleader run --resume`, REPS times for each of two settings, alternating:
#   grace=60000  the nodes keep their blocks and re-dial; the resumed
#                coordinator re-admits them (docs/operations.md);
#   grace=0      the nodes leave after failure_timeout_ms; the resumed
#                coordinator starts new ones, which make their blocks.
# One line per run: resume_to_step_ms, from the resume event to the first
# step the resumed job completed (run.json's job clock: the coordinator's
# start to training again), the step it resumed from and the step the job
# was at when killed, the nodes re-admitted and the blocks they made again; then the model's bytes against an uninterrupted
# run's (exact sums: they must be equal).
#
#   bench/resume.sh                 # REPS=5
#   REPS=3 ROWS=400000 bench/resume.sh
#
# Env: RINGLEADER (default build/coordinator/ringleader), RINGLEADER_NODE
# (build/node/ringleader-node), REPS (5), ROWS (1000000), FEATURES (32),
# STEPS (3000), KILL_AT (1000). Exits non-zero if a run failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
RINGLEADER=${RINGLEADER:-$PWD/build/coordinator/ringleader}
export RINGLEADER_NODE_BIN=${RINGLEADER_NODE:-$PWD/build/node/ringleader-node}
REPS=${REPS:-5}
ROWS=${ROWS:-1000000}
FEATURES=${FEATURES:-32}
STEPS=${STEPS:-3000}
KILL_AT=${KILL_AT:-1000}
WORK=$(mktemp -d -p /tmp --suffix=.rl-bench-resume)
PIDS=()
trap 'for p in "${PIDS[@]:-}"; do kill -KILL "$p" 2>/dev/null; done; pkill -KILL -f "ringleader-node --coordinator tcp://127.0.0.1:.* --token-file $WORK/" 2>/dev/null; rm -rf "$WORK"' EXIT
. "$(dirname "$0")/lib.sh" "$WORK"  # free_port
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/tok"
export RINGLEADER_TOKEN=$(cat "$WORK/tok")  # for ringleader status

# job_spec NAME GRACE: the job on free ports, its output in $WORK/NAME.
job_spec() {
    local f=$WORK/$1.yaml i
    {
        echo "cluster:"
        echo "  name: $1"
        echo "  coordinator: tcp://127.0.0.1:$(free_port)"
        echo "  launch: local"
        echo "  nodes:"
        for i in 1 2 3 4; do echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"; done
        echo "security: { token_file: $WORK/tok }"
        echo "data: { source: synthetic, rows: $ROWS, features: $FEATURES, seed: 5, block_rows: 4096 }"
        echo "model: { type: linear }"
        echo "training: { steps: $STEPS, learning_rate: 0.05, exact_sum: true }"
        echo "fault_tolerance: { failure_timeout_ms: 1000, coordinator_grace_ms: $2 }"
        echo "output: { dir: $WORK/$1, checkpoint_every_ms: 500 }"
    } > "$f"
    echo "$f"
}

model() { /usr/bin/python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["model"]))' "$1"; }

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD) $(uptime | sed 's/.*load/load/') nproc=$(nproc) rows=$ROWS features=$FEATURES steps=$STEPS kill_at=$KILL_AT"
rc=0
ref=$(job_spec ref 60000)
if ! timeout -k 5 600 "$RINGLEADER" run "$ref" > /dev/null 2> "$WORK/ref.err"; then
    echo "# the uninterrupted run failed"; tail -3 "$WORK/ref.err"; exit 1
fi
model "$WORK/ref/run.json" > "$WORK/ref.model"
for rep in $(seq 1 "$REPS"); do
    for grace in 60000 0; do
        name=r$rep-g$grace
        spec=$(job_spec "$name" "$grace")
        "$RINGLEADER" run "$spec" > /dev/null 2> "$WORK/$name.err" &
        cpid=$!; PIDS+=("$cpid")
        # until the job is at step KILL_AT or beyond (bounded: 120 s)
        curl=$(sed -n 's/^  coordinator: //p' "$spec"); s=0
        for i in $(seq 1 1200); do
            s=$("$RINGLEADER" status "$curl" --timeout-ms 1000 2>/dev/null | sed -n 's/.*step \([0-9]*\)\/.*/\1/p' | head -1)
            [ -n "$s" ] && [ "$s" -ge "$KILL_AT" ] && break
            sleep 0.1
        done
        kill -KILL "$cpid"; wait "$cpid" 2>/dev/null
        # until the nodes re-dial (grace) or have left (no grace), bounded: 30 s
        for i in $(seq 1 300); do
            if [ "$grace" -gt 0 ]; then
                [ "$(grep -c 're-dialing' "$WORK/$name.err")" -ge 4 ] && break
            else
                pgrep -f "ringleader-node --coordinator $curl " > /dev/null || break
            fi
            sleep 0.1
        done
        if ! timeout -k 5 600 "$RINGLEADER" run "$spec" --resume > /dev/null 2>> "$WORK/$name.err"; then
            echo "# resume grace=$grace rep=$rep failed"; tail -3 "$WORK/$name.err"; rc=1; continue
        fi
        same=no; cmp -s <(model "$WORK/$name/run.json") "$WORK/ref.model" && same=yes
        /usr/bin/python3 - "$WORK/$name/run.json" "$WORK/$name.err" "$grace" "$rep" "$same" "$s" <<'PY' || rc=1
import json, re, sys
r = json.load(open(sys.argv[1]))
log = open(sys.argv[2]).read()
ev = [e for e in r["events"] if e["kind"] == "resume"][-1]
after = sorted(s["t_ms"] for s in r["steps"] if s["t_ms"] >= ev["t_ms"])
readmitted = sum(1 for e in r["events"] if e["kind"] == "join" and "re-admitted" in e["detail"])
made = sum(int(m) for m in re.findall(r"after re-admission: \d+ blocks, \d+ of the \d+ held kept, (\d+) made", log))
print("resume grace_ms=%s rep=%s resume_to_step_ms=%.1f from_step=%d killed_at_step=%s readmitted=%d "
      "blocks_made_by_readmitted=%d status=%s model_identical=%s" % (
      sys.argv[3], sys.argv[4], after[0] - ev["t_ms"] if after else -1, ev["step"], sys.argv[6],
      readmitted, made, r["status"], sys.argv[5]))
sys.exit(0 if r["status"] == "ok" and sys.argv[5] == "yes" else 1)
PY
    done
done
exit $rc
