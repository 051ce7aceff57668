#!/usr/bin/env bash
# bench/pull.sh - what same-host pulls (lib/ring_pull.c) are worth:
# `ringleader bench allreduce` with RINGLEADER_CMA=off (every byte over
# loopback TCP) and on (the ring's large chunks pulled with
# process_vm_readv), alternating, REPS times for each N, so that each pair
# sits next to each other in time on this shared machine. Prints every
# result line with cma=off|on appended, then the per-pair ratios on/off.
#
#   bench/pull.sh                          # N = 2 4 8, 1 MiB and 16 MiB, 5 reps
#   REPS=3 NODES=4 SIZES=16M bench/pull.sh
#
# Env: RINGLEADER (default build/coordinator/ringleader), NODES ("2 4 8"),
# SIZES ("1M 16M"), REPS (5), ROUNDS (1: --rounds). Run it under the heavy
# lock. Exits non-zero if a run failed or was not exact.
set -u -o pipefail
cd "$(dirname "$0")/.."
RINGLEADER=${RINGLEADER:-$PWD/build/coordinator/ringleader}
NODES=${NODES:-"2 4 8"}
SIZES=${SIZES:-"1M 16M"}
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-1}
[ -x "$RINGLEADER" ] || { echo "pull.sh: need $RINGLEADER" >&2; exit 2; }
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
rc=0
echo "# bench/pull.sh $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null)" \
     "$(uptime | sed 's/.*load/load/')"
for n in $NODES; do
    for rep in $(seq 1 "$REPS"); do
        for cma in off on; do
            bytes=$(echo "$SIZES" | tr ' ' ',')
            if ! RINGLEADER_CMA=$cma timeout 300 "$RINGLEADER" bench allreduce --nodes "$n" \
                    --bytes "$bytes" --rounds "$ROUNDS" 2>/dev/null |
                    grep '^peer=' | sed "s/\$/ cma=$cma rep=$rep/" | tee -a "$OUT"; then
                echo "pull.sh: N=$n cma=$cma rep $rep failed" >&2
                rc=1
            fi
        done
    done
done
grep -q 'ok=0' "$OUT" && { echo "pull.sh: a result was not exact" >&2; rc=1; }
echo "## time(cma=on) / time(cma=off), per pair: median (range)"
awk '
    { for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      k = f["nodes"] " " f["bytes"] " " f["rep"]; t[k, f["cma"]] = f["time_us"]; keys[k] = 1 }
    END {
        for (k in keys) if ((k, "on") in t && (k, "off") in t) {
            split(k, p, " "); g = p[1] " " p[2]; r[g] = r[g] " " t[k, "on"] / t[k, "off"]
        }
        for (g in r) print g, r[g]
    }' "$OUT" | sort -n -k1,1 -k2,2 | while read -r n b rest; do
    # shellcheck disable=SC2086
    printf '%s\n' $rest | sort -g | awk -v n="$n" -v b="$b" '
        { v[NR] = $1 }
        END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "nodes=%s bytes=%s ratio=%.2f (%.2f-%.2f) pairs=%d\n", n, b, m, v[1], v[NR], NR }'
done
exit $rc
