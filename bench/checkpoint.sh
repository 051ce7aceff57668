#!/usr/bin/env bash
# bench/checkpoint.sh - what checkpoints cost (docs/performance.md,
# "Checkpoints"): the default job (configs/local.yaml on free ports, 4 local
# nodes) with output.checkpoint_every_ms EVERY (on) and 0 (off), REPS times
# each, alternating so that both sides of each pair sit next to each other
# in time on this shared machine; for each step count in STEPS_LIST. One
# line per run: the process's wall time, run.json's step p50, and the
# coordinator's own account of its checkpoints (how many, the longest time
# the job lock was held for a snapshot, the longest encode and write).
#
#   bench/checkpoint.sh                       # REPS=10, STEPS_LIST="100 5000", EVERY=2000
#   REPS=3 STEPS_LIST=20000 bench/checkpoint.sh
#
# Env: RINGLEADER (default build/coordinator/ringleader), RINGLEADER_NODE
# (build/node/ringleader-node), REPS, STEPS_LIST, EVERY. Exits non-zero if a
# run failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
RINGLEADER=${RINGLEADER:-$PWD/build/coordinator/ringleader}
export RINGLEADER_NODE_BIN=${RINGLEADER_NODE:-$PWD/build/node/ringleader-node}
REPS=${REPS:-10}
STEPS_LIST=${STEPS_LIST:-"100 5000"}
EVERY=${EVERY:-2000}
WORK=$(mktemp -d -p /tmp --suffix=.rl-bench-ckpt)
trap 'rm -rf "$WORK"' EXIT
. "$(dirname "$0")/lib.sh" "$WORK"  # free_port

# job_spec STEPS EVERY_MS: configs/local.yaml on free ports.
job_spec() {
    local f=$WORK/local-$1-$2.yaml p
    sed -e "s#token_file: demo.token#token_file: $PWD/configs/demo.token#" \
        -e "s#dir: runs/demo#dir: $WORK/out-$2\n  checkpoint_every_ms: $2#" \
        -e "s#steps: 100#steps: $1#" configs/local.yaml > "$f"
    for p in 7700 7701 7702 7703 7704; do sed -i "s#127.0.0.1:$p\$#127.0.0.1:$(free_port)#; s#127.0.0.1:$p }#127.0.0.1:$(free_port) }#" "$f"; done
    echo "$f"
}

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD) $(uptime | sed 's/.*load/load/') nproc=$(nproc)"
rc=0
for steps in $STEPS_LIST; do
    for rep in $(seq 1 "$REPS"); do
        for every in "$EVERY" 0; do
            spec=$(job_spec "$steps" "$every")
            rm -rf "$WORK/out-$every"
            t0=$(date +%s.%N)
            if ! timeout -k 5 600 "$RINGLEADER" run "$spec" > /dev/null 2> "$WORK/err"; then
                echo "# job steps=$steps checkpoint_every_ms=$every rep=$rep failed"; tail -3 "$WORK/err"; rc=1; continue
            fi
            t1=$(date +%s.%N)
            python3 - "$WORK/out-$every/run.json" "$steps" "$every" "$rep" "$t0" "$t1" "$WORK/err" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
m = re.search(r"checkpoints: (\d+) written .* \(job lock held\) ([0-9.]+) ms, longest encode and write ([0-9.]+) ms",
              open(sys.argv[7]).read())
n, lock, write = (m.group(1), m.group(2), m.group(3)) if m else ("0", "-", "-")
print("job=local steps=%s checkpoint_every_ms=%s rep=%s wall_s=%.3f step_p50_ms=%.4f checkpoints=%s lock_max_ms=%s write_max_ms=%s" % (
    sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[6]) - float(sys.argv[5]),
    r["step_ms"]["p50"], n, lock, write))
PY
        done
    done
done
exit $rc
