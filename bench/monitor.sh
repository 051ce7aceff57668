#!/usr/bin/env bash
# bench/monitor.sh - what the HTTP monitor costs (docs/performance.md,
# "Monitor"): the default job (configs/local.yaml, on free ports, STEPS
# steps) with the monitor off and on, REPS times each, alternating so that
# both sides sit next to each other in time on this shared machine. "On" is
# the monitor as it is used: /metrics scraped every second (Prometheus) and
# /api/status every 500 ms (the dashboard) by a curl loop for the whole run.
# One line per run with run.json's step p50 and p99 (and the requests the
# scraper got answered), then the medians and their ratio.
#
#   bench/monitor.sh               # REPS=7, STEPS=5000
#
# Env: RINGLEADER (default build/coordinator/ringleader), RINGLEADER_NODE
# (build/node/ringleader-node), REPS (7), STEPS (5000). Exits non-zero if a
# run failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
RINGLEADER=${RINGLEADER:-$PWD/build/coordinator/ringleader}
export RINGLEADER_NODE_BIN=${RINGLEADER_NODE:-$PWD/build/node/ringleader-node}
REPS=${REPS:-7}
STEPS=${STEPS:-5000}
PY=/usr/bin/python3
WORK=$(mktemp -d -p /tmp --suffix=.rl-bench-monitor)
SCRAPER=""
trap '[ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null; rm -rf "$WORK"' EXIT
. "$(dirname "$0")/lib.sh" "$WORK"  # free_port

# job_spec MON: configs/local.yaml on free ports; the monitor on a free port
# (MON=on) or the section removed (off).
job_spec() {
    local f=$WORK/local-$1.yaml p
    sed -e "s#token_file: demo.token#token_file: $PWD/configs/demo.token#" \
        -e "s#dir: runs/demo#dir: $WORK/out-$1#" \
        -e "s#steps: 100#steps: $STEPS#" configs/local.yaml > "$f"
    for p in 7700 7701 7702 7703 7704; do sed -i "s#127.0.0.1:$p\$#127.0.0.1:$(free_port)#; s#127.0.0.1:$p }#127.0.0.1:$(free_port) }#" "$f"; done
    if [ "$1" = on ]; then
        sed -i "s#http://127.0.0.1:7780#http://127.0.0.1:$(free_port)#" "$f"
    else
        sed -i '/^monitor:/,/^  listen:/d' "$f"
    fi
    echo "$f"
}

# scrape URL: /metrics every second and /api/status every 500 ms, until killed.
scrape() {
    local k=0
    while true; do
        curl -sf -o /dev/null --max-time 1 "$1/api/status" && echo status >> "$WORK/scrapes"
        if [ $((k % 2)) -eq 0 ]; then
            curl -sf -o /dev/null --max-time 1 "$1/metrics" && echo metrics >> "$WORK/scrapes"
        fi
        k=$((k + 1))
        sleep 0.5
    done
}

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD) $(uptime | sed 's/.*load/load/') nproc=$(nproc)"
rc=0
for rep in $(seq 1 "$REPS"); do
    for mon in off on; do
        spec=$(job_spec $mon)
        : > "$WORK/scrapes"
        if [ "$mon" = on ]; then
            url=$(sed -n 's#^  listen: \(http://[^ ]*\).*#\1#p' "$spec")
            scrape "$url" & SCRAPER=$!
        fi
        if ! timeout -k 5 300 "$RINGLEADER" run "$spec" > /dev/null 2> "$WORK/err"; then
            echo "# job monitor=$mon rep=$rep failed"; tail -3 "$WORK/err"; rc=1
        fi
        if [ -n "$SCRAPER" ]; then kill "$SCRAPER" 2>/dev/null; wait "$SCRAPER" 2>/dev/null; SCRAPER=""; fi
        [ -f "$WORK/out-$mon/run.json" ] || continue
        $PY - "$WORK/out-$mon/run.json" "$mon" "$rep" "$(wc -l < "$WORK/scrapes")" <<'EOF' | tee -a "$WORK/lines"
import json, sys
r = json.load(open(sys.argv[1]))
print("job=local monitor=%s rep=%s nodes=%d steps=%d step_p50_ms=%.4f step_p99_ms=%.4f scrapes=%s" % (
    sys.argv[2], sys.argv[3], len(r["nodes"]), r["steps_completed"], r["step_ms"]["p50"],
    r["step_ms"]["p99"], sys.argv[4]))
EOF
        rm -rf "$WORK/out-$mon"
    done
done
$PY - "$WORK/lines" <<'EOF'
import re, statistics, sys
p50 = {"on": [], "off": []}
for l in open(sys.argv[1]):
    m = re.search(r"monitor=(on|off) .*step_p50_ms=([0-9.]+)", l)
    if m: p50[m.group(1)].append(float(m.group(2)))
if p50["on"] and p50["off"]:
    on, off = statistics.median(p50["on"]), statistics.median(p50["off"])
    print("summary monitor_on_p50_ms=%.4f monitor_off_p50_ms=%.4f ratio=%.3f runs=%d+%d" % (
        on, off, on / off, len(p50["on"]), len(p50["off"])))
EOF
exit $rc
