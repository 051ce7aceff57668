#!/usr/bin/env bash
# bench/exact.sh - what exact sums cost (docs/performance.md, "Exact sums"),
# interleaved so that both sides of each comparison sit next to each other
# in time on this shared machine:
#  1. the default job (configs/local.yaml, on free ports) with
#     training.exact_sum true and false, REPS times each, alternating: one
#     line per run with run.json's step p50 and p99;
#  2. `ringleader bench allreduce` at 16 MiB of f32 with --op sum and
#     --op sum_exact, alternating, for each N in NODES.
#
#   bench/exact.sh                 # REPS=5, NODES="2 4"
#   REPS=3 NODES=4 bench/exact.sh
#
# Env: RINGLEADER (default build/coordinator/ringleader), RINGLEADER_NODE
# (build/node/ringleader-node), REPS (5), NODES ("2 4"), STEPS (the job's
# steps, default the spec's 100). Exits non-zero if a run failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
RINGLEADER=${RINGLEADER:-$PWD/build/coordinator/ringleader}
export RINGLEADER_NODE_BIN=${RINGLEADER_NODE:-$PWD/build/node/ringleader-node}
REPS=${REPS:-5}
NODES=${NODES:-"2 4"}
STEPS=${STEPS:-100}
TMP=$(mktemp -d -p /tmp --suffix=.rl-bench-exact)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh" "$TMP"  # free_port

# job_spec EXACT: configs/local.yaml on free ports, with exact_sum EXACT.
job_spec() {
    local f=$TMP/local-$1.yaml p
    sed -e "s#token_file: demo.token#token_file: $PWD/configs/demo.token#" \
        -e "s#dir: runs/demo#dir: $TMP/out-$1#" \
        -e "s#steps: 100#steps: $STEPS#" \
        -e "s#http://127.0.0.1:7780#http://127.0.0.1:0#" \
        -e "s#  l2: 0.0#  l2: 0.0\n  exact_sum: $1#" configs/local.yaml > "$f"
    for p in 7700 7701 7702 7703 7704; do sed -i "s#127.0.0.1:$p\$#127.0.0.1:$(free_port)#; s#127.0.0.1:$p }#127.0.0.1:$(free_port) }#" "$f"; done
    echo "$f"
}

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD) $(uptime | sed 's/.*load/load/') nproc=$(nproc)"
rc=0
for rep in $(seq 1 "$REPS"); do
    for exact in true false; do
        spec=$(job_spec $exact)
        if ! timeout -k 5 300 "$RINGLEADER" run "$spec" > /dev/null 2> "$TMP/err"; then
            echo "# job exact_sum=$exact rep=$rep failed"; tail -3 "$TMP/err"; rc=1; continue
        fi
        python3 - "$TMP/out-$exact/run.json" "$exact" "$rep" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("job=local exact_sum=%s rep=%s nodes=%d steps=%d step_p50_ms=%.4f step_p99_ms=%.4f" % (
    sys.argv[2], sys.argv[3], len(r["nodes"]), r["steps_completed"], r["step_ms"]["p50"],
    r["step_ms"]["p99"]))
PY
    done
done
for n in $NODES; do
    for rep in $(seq 1 "$REPS"); do
        for op in sum sum_exact; do
            timeout -k 5 300 "$RINGLEADER" bench allreduce --nodes "$n" --bytes 16M --op "$op" \
                --rounds 1 || { echo "# bench allreduce N=$n --op $op failed"; rc=1; }
        done
    done
done
exit $rc
